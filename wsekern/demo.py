"""``wsekern demo``: a pruned weight times ReLU activations, against NumPy and SciPy."""
import numpy as np

from .bench import best_time, limit_threads
from .kernels import spmm, spmm_path
from .sparse import pack
from .sysinfo import get_config
from .workloads import random_weight


def run_demo(size=2048, sparsity=0.9, batch=128, out=print):
    """Multiply a ``size``-square weight with ``sparsity`` zeros by ReLU activations."""
    if not 0 <= sparsity < 1:
        raise ValueError(f"sparsity must be in [0, 1); received {sparsity}")
    if size < 1:
        raise ValueError(f"size must be positive; received {size}")
    cfg = get_config()
    openmp = "on" if cfg["openmp"] else "off"
    out(f"wsekern {cfg['wsekern']} — SIMD {cfg['simd']}, OpenMP {openmp}, "
        f"{cfg['threads']} threads")
    W = random_weight(size, size, sparsity)
    P = pack(W)
    rng = np.random.default_rng(0)
    # Activations after a ReLU: about half the values are zero and, as in a trained
    # network, some units are dead for the whole batch.
    X = np.maximum(rng.standard_normal((size, batch)), 0).astype(np.float32)
    X[rng.random(size) < 0.3] = 0
    dead = np.mean(~X.any(axis=1))
    out(f"W: {size}x{size}, {sparsity:.0%} zeros ({P.nnz:,} kept); X: {size}x{batch} ReLU "
        f"activations, {np.mean(X == 0):.0%} zeros, {dead:.0%} dead rows")
    Y = spmm(P, X)
    ref = W.toarray().astype(np.float64) @ X
    err = np.abs(Y - ref).max() / max(np.abs(ref).max(), 1e-30)
    out(f"path chosen: {spmm_path(P, X)}; max relative error vs NumPy float64: {err:.1e}")
    Wd = W.toarray()
    with limit_threads(1):
        t_w = best_time(lambda: spmm(P, X, n_threads=1))
        t_np = best_time(lambda: Wd @ X)
        t_sp = best_time(lambda: W @ X)
    out(f"1 thread:  wsekern {t_w * 1e3:7.2f} ms | NumPy dense {t_np * 1e3:7.2f} ms "
        f"({t_np / t_w:.1f}x) | scipy.sparse {t_sp * 1e3:7.2f} ms ({t_sp / t_w:.1f}x)")
    return {"wsekern": t_w, "numpy": t_np, "scipy": t_sp, "error": err}
