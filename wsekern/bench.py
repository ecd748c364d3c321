"""``wsekern bench``: wsekern against the libraries people use, measured in the same run.

Times are the best of ``repeat`` runs after a warm-up. NumPy's BLAS (and MKL, torch)
are limited to the same thread count as wsekern through threadpoolctl when it is
installed. On machines that set OPENBLAS_CORETYPE, unset it (and OPENBLAS_L2_SIZE)
for the command, or NumPy's BLAS runs a slow kernel.
"""
import contextlib
import os
import time

import numpy as np
import scipy.sparse as sps

from .conv import _im2col, ConvGeometry, conv2d, conv2d_path
from .kernels import spmm, spmm_path
from .sparse import pack

SPARSITIES = (0.0, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99)
SIZES = ((1024, 1024, 256), (4096, 4096, 64))


def best_time(fn, repeat=5, min_time=0.05):
    """Best wall time of ``fn()`` over ``repeat`` runs (more for very fast calls)."""
    fn()
    times = []
    start = time.perf_counter()
    while len(times) < repeat or (time.perf_counter() - start < min_time and len(times) < 200):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


@contextlib.contextmanager
def limit_threads(n):
    """Limit BLAS/OpenMP pools (NumPy, MKL) and torch to ``n`` threads where possible."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        ctx = contextlib.nullcontext()
    else:
        ctx = threadpool_limits(limits=n)
    torch = _optional("torch")
    before = torch.get_num_threads() if torch else None
    if torch:
        torch.set_num_threads(n)
    try:
        with ctx:
            yield
    finally:
        if torch:
            torch.set_num_threads(before)


def _optional(name):
    try:
        return __import__(name)
    except ImportError:
        return None


def random_positions(total, count, rng):
    """``count`` distinct sorted integers below ``total``. Sparse draws sample with
    replacement and drop repeats, O(count log count) instead of a permutation of all
    ``total`` positions; dense ones permute."""
    if count > total // 8:
        return np.sort(rng.permutation(total)[:count]) if total < 2**22 else _dense_draw(
            total, count, rng)
    picked = _distinct(rng.integers(0, total, size=count + count // 4 + 16))
    while len(picked) < count:                           # rare: too many repeats
        picked = _distinct(np.concatenate([picked, rng.integers(0, total, size=count)]))
    return np.sort(rng.choice(picked, size=count, replace=False))


def _dense_draw(total, count, rng):
    """Each position with probability count/total, then trimmed or topped up to ``count``."""
    picked = np.flatnonzero(rng.random(total) < count / total)
    if len(picked) > count:
        picked = np.sort(rng.choice(picked, size=count, replace=False))
    elif len(picked) < count:
        free = np.ones(total, dtype=bool)
        free[picked] = False
        extra = rng.choice(np.flatnonzero(free), size=count - len(picked), replace=False)
        picked = np.sort(np.concatenate([picked, extra]))
    return picked


def _distinct(a):
    """Sorted distinct values (np.unique's hash path is many times slower on this data)."""
    a = np.sort(a)
    return a[np.concatenate(([True], a[1:] != a[:-1]))] if len(a) else a


def random_weight(m, k, sparsity, dtype=np.float32, seed=0):
    """Unstructured random sparsity: exactly round((1 - sparsity) * m * k) kept entries."""
    rng = np.random.default_rng(seed)
    nnz = int(round((1 - sparsity) * m * k))
    flat = random_positions(m * k, nnz, rng)              # sorted: CSR order already
    rows, cols = np.divmod(flat, k)
    index = np.int32 if m * k < 2**31 else np.int64
    indptr = np.zeros(m + 1, dtype=index)
    np.cumsum(np.bincount(rows, minlength=m), out=indptr[1:])
    values = rng.uniform(-1, 1, size=nnz).astype(dtype)
    return sps.csr_array((values, cols.astype(index), indptr), shape=(m, k))


def spmm_peers(W, X, threads):
    """name -> callable computing W @ X, for each peer installed here."""
    Wd = W.toarray()
    peers = {"numpy": lambda: Wd @ X, "scipy": lambda: W @ X}
    mkl = _optional("sparse_dot_mkl")
    if mkl is not None:
        peers["mkl"] = lambda: mkl.dot_product_mkl(W, X)
    torch = _optional("torch")
    if torch is not None:
        Wt = torch.sparse_csr_tensor(torch.from_numpy(W.indptr.astype(np.int64)),
                                     torch.from_numpy(W.indices.astype(np.int64)),
                                     torch.from_numpy(W.data), size=W.shape)
        Xt = torch.from_numpy(X)
        peers["torch"] = lambda: Wt @ Xt
    return peers


def machine_line():
    """What a number is tied to: CPU, caches, SIMD path (and those available), cost table."""
    from ._cpu import describe
    from .config import get_config
    cfg = get_config()
    return (f"CPU {describe()}; SIMD path {cfg['simd']} (runs {', '.join(cfg['simd_available'])})"
            f"; cost table {cfg['cost_table']}; OpenMP {'on' if cfg['openmp'] else 'off'}, "
            f"{cfg['threads']} threads")


def bench_spmm(sizes=SIZES, sparsities=SPARSITIES, threads=(1, 2), repeat=5, out=print):
    """Print the spmm comparison table; return its rows as dicts."""
    rows = []
    out(machine_line())
    header = (f"{'M':>5} {'K':>5} {'N':>4} {'thr':>3} {'sparsity':>8} {'path':>15} "
              f"{'wsekern':>9} {'dense-W':>9} {'numpy':>9} {'scipy':>9} {'mkl':>9} {'torch':>9}"
              f" | {'x numpy':>7} {'x scipy':>7} {'x mkl':>6} {'x torch':>7} {'dW/np':>6}")
    out("spmm, float32, times in ms (best of %d); 'x peer' = peer time / wsekern time" % repeat)
    out("wsekern: W packed once; dense-W: W passed as a dense ndarray (dispatcher decides)")
    out(header)
    for M, K, N in sizes:
        X = np.random.default_rng(1).standard_normal((K, N)).astype(np.float32)
        for s in sparsities:
            W = random_weight(M, K, s)
            P = pack(W)
            Wd = W.toarray()
            for t in threads:
                with limit_threads(t):
                    row = {"M": M, "K": K, "N": N, "threads": t, "sparsity": s,
                           "path": spmm_path(P, X)}
                    row["wsekern"] = best_time(lambda: spmm(P, X, n_threads=t), repeat)
                    row["dense-W"] = best_time(lambda: spmm(Wd, X, n_threads=t), repeat)
                    for name, fn in spmm_peers(W, X, t).items():
                        row[name] = best_time(fn, repeat)
                rows.append(row)
                out(_format_row(row))
    out("")
    bench_dead_rows(out=out, repeat=repeat)
    return rows


def _format_row(r):
    def ms(key):
        return f"{r[key] * 1e3:9.3f}" if key in r else f"{'-':>9}"

    def ratio(key, width):
        return f"{r[key] / r['wsekern']:{width}.2f}" if key in r else f"{'-':>{width}}"
    dense_ratio = r["dense-W"] / r["numpy"]
    return (f"{r['M']:5d} {r['K']:5d} {r['N']:4d} {r['threads']:3d} {r['sparsity']:8.2f} "
            f"{r['path']:>15} {ms('wsekern')} {ms('dense-W')} {ms('numpy')} {ms('scipy')} "
            f"{ms('mkl')} {ms('torch')} | {ratio('numpy', 7)} {ratio('scipy', 7)} "
            f"{ratio('mkl', 6)} {ratio('torch', 7)} {dense_ratio:6.2f}")


def bench_dead_rows(sizes=SIZES, sparsity=0.9, dead=0.5, repeat=5, out=print):
    """Activation sparsity: X with half its rows zero (dead ReLU units) against X dense."""
    out(f"spmm with {dead:.0%} of X's rows zero vs X dense, W {sparsity:.0%} zeros, 1 thread")
    out(f"{'M':>5} {'K':>5} {'N':>4} {'path':>15} {'X dense':>9} {'X dead':>9} {'speed-up':>8}")
    rows = []
    for M, K, N in sizes:
        P = pack(random_weight(M, K, sparsity))
        rng = np.random.default_rng(2)
        X = rng.standard_normal((K, N)).astype(np.float32)
        Xd = X.copy()
        Xd[rng.random(K) < dead] = 0
        with limit_threads(1):
            t_dense = best_time(lambda: spmm(P, X, n_threads=1), repeat)
            t_dead = best_time(lambda: spmm(P, Xd, n_threads=1), repeat)
        out(f"{M:5d} {K:5d} {N:4d} {spmm_path(P, Xd):>15} {t_dense * 1e3:9.3f} "
            f"{t_dead * 1e3:9.3f} {t_dense / t_dead:8.2f}")
        rows.append({"M": M, "K": K, "N": N, "dense": t_dense, "dead": t_dead})
    return rows


def openblas_warning():
    """A line to print when the environment slows NumPy's BLAS, else None."""
    bad = [v for v in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if v in os.environ]
    if bad:
        return (f"note: {' and '.join(bad)} set; NumPy's BLAS may run a slow kernel. "
                f"For a fair comparison: env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE wsekern bench ...")
    return None


def bench_conv(repeat=5, threads=1, out=print):
    """conv2d on x 8x64x32x32, w 64x64x3x3, stride 1, padding 1, float32, against
    im2col + NumPy BLAS and torch.nn.functional.conv2d (when installed)."""
    rng = np.random.default_rng(0)
    torch = _optional("torch")
    out(machine_line())
    out(f"conv2d x 8x64x32x32, w 64x64x3x3, pad 1, float32, {threads} thread(s), ms (best of {repeat})")
    out(f"{'w zeros':>7} {'x zeros':>7} {'path':>12} {'wsekern':>9} {'im2col':>9} {'torch':>9}"
        f" | {'x im2col':>8} {'x torch':>7}")
    rows = []
    for ws in (0.0, 0.9):
        for xs in (0.0, 0.8):
            x = (rng.standard_normal((8, 64, 32, 32)) * (rng.random((8, 64, 32, 32)) >= xs)
                 ).astype(np.float32)
            w = (rng.standard_normal((64, 64, 3, 3)) * (rng.random((64, 64, 3, 3)) >= ws)
                 ).astype(np.float32)
            g = ConvGeometry.of(x.shape, w.shape, 1, 1, 1, 1)
            w2 = w.reshape(1, 64, -1)

            def im2col_blas():
                return np.matmul(w2, _im2col(x, g))
            with limit_threads(threads):
                r = {"w": ws, "x": xs, "path": conv2d_path(x, w, padding=1),
                     "wsekern": best_time(lambda: conv2d(x, w, padding=1, n_threads=threads), repeat),
                     "im2col": best_time(im2col_blas, repeat)}
                if torch is not None:
                    xt, wt = torch.from_numpy(x), torch.from_numpy(w)
                    with torch.no_grad():
                        r["torch"] = best_time(lambda: torch.nn.functional.conv2d(xt, wt, padding=1),
                                               repeat)
            t_torch = f"{r['torch'] * 1e3:9.3f}" if "torch" in r else f"{'-':>9}"
            x_torch = f"{r['torch'] / r['wsekern']:7.2f}" if "torch" in r else f"{'-':>7}"
            out(f"{ws:7.2f} {xs:7.2f} {r['path']:>12} {r['wsekern'] * 1e3:9.3f} "
                f"{r['im2col'] * 1e3:9.3f} {t_torch} | {r['im2col'] / r['wsekern']:8.2f} {x_torch}")
            rows.append(r)
    return rows


def _torch_mlp_epoch(torch, sizes, x, y, batch_size, threads):
    """Seconds for one epoch of a dense PyTorch MLP (ReLU, softmax cross-entropy, Adam)."""
    torch.manual_seed(0)
    mods = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        mods += [torch.nn.Linear(a, b), torch.nn.ReLU()]
    model = torch.nn.Sequential(*mods[:-1])
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)

    def epoch():
        perm = torch.randperm(len(xt))
        for s in range(0, len(xt), batch_size):
            idx = perm[s:s + batch_size]
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(xt[idx]), yt[idx]).backward()
            opt.step()
    with limit_threads(threads):
        epoch()                       # warm-up
        t0 = time.perf_counter()
        epoch()
        return time.perf_counter() - t0


def _wsekern_mlp_epoch(sizes, x, y, batch_size, sparsity, threads):
    from .nn import Input, Sequential, layers, utils
    utils.set_random_seed(0)
    model = Sequential([Input(shape=(sizes[0],))])
    for units in sizes[1:-1]:
        model.add(layers.Dense(units, activation="relu", sparsity=sparsity))
    model.add(layers.Dense(sizes[-1], activation="softmax"))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    with limit_threads(threads):
        model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0)      # warm-up
        model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0)
    return model._last_epoch_seconds


def bench_train(threads=1, out=print):
    """Epoch times of wsekern.nn against PyTorch (dense), in the same run."""
    from . import data
    torch = _optional("torch")
    if torch is not None:
        torch.set_num_threads(threads)
    rows = []
    (xd, yd), _ = data.load_digits()
    (xm, ym), (xmt, ymt) = data.load_mnist()
    x10k = np.concatenate([xm, xmt, xm, xmt])[:10_000]            # 10,000 real digits
    y10k = np.concatenate([ym, ymt, ym, ymt])[:10_000]
    cases = [("MLP 64-256-256-10, digits, batch 64", (64, 256, 256, 10), xd, yd, 64, 0.0),
             ("MLP 784-1024-1024-10, 10k MNIST, batch 128, 90% sparse",
              (784, 1024, 1024, 10), x10k, y10k, 128, 0.9)]
    out(f"training epoch time, {threads} thread(s); torch is dense, Adam everywhere")
    out(f"{'case':<58} {'wsekern':>9} {'torch':>9} {'wsekern/torch':>14}")
    for name, sizes, x, y, bs, sparsity in cases:
        t_w = _wsekern_mlp_epoch(sizes, x, y, bs, sparsity, threads)
        t_t = _torch_mlp_epoch(torch, sizes, x, y, bs, threads) if torch is not None else None
        ratio = f"{t_w / t_t:14.2f}" if t_t else f"{'-':>14}"
        t_t_s = f"{t_t * 1e3:7.1f}ms" if t_t else f"{'-':>9}"
        out(f"{name:<58} {t_w * 1e3:7.1f}ms {t_t_s} {ratio}")
        rows.append({"case": name, "wsekern": t_w, "torch": t_t})
    return rows


SWEEP_POINTS = 200


def sweep_space(points=SWEEP_POINTS):
    """The benchmark's spmm sweep: 200 points (10 sparsities x 5 x 2 wafer sizes x 2 dtypes),
    or ``points`` sparsities from 0.5 to 0.99 on one 224 x 256 fp16 wafer when fewer."""
    # Each point lets the placer search rectangles for W 2048 x 2048 @ X 2048 x 64 on a
    # wafer of the given size: 0.5-2 s of work each.
    space = {"m": [2048], "k": [2048], "n": [64],
             "sparsity": [0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97, 0.99],
             "rows": [160, 192, 224, 256, 288], "cols": [224, 256],
             "dtype": ["fp16", "fp32"]}
    if points < 1:
        raise ValueError(f"points must be at least 1; received {points}")
    if points < SWEEP_POINTS:
        space.update(sparsity=[round(float(s), 4) for s in np.linspace(0.5, 0.99, points)],
                     rows=[224], cols=[256], dtype=["fp16"])
    return space


def bench_sweep(out=print, workers=2, points=SWEEP_POINTS, progress=False):
    """A 200-point spmm sweep (each point ~0.7 s of simulation; :func:`sweep_space`)
    serially and on a LocalCluster of ``workers`` processes: speed-up, points/s and overhead
    per point. Serial runs with one thread per library, as the workers do (Dask's nanny
    sets it). Twice the points' work in all: about 2 x 0.7 s x ``points``."""
    from distributed import Client
    from . import sweeps as sw
    space = sweep_space(points)
    t0 = time.perf_counter()
    with limit_threads(1):
        serial = sw.sweep(space, "spmm", client=False, progress=progress)
    t_serial = time.perf_counter() - t0
    with sw.local_cluster(workers) as cluster, Client(cluster) as client:
        client.submit(sum, [1]).result()                 # workers up before timing
        t0 = time.perf_counter()
        parallel = sw.sweep(space, "spmm", client=client, progress=progress)
        t_par = time.perf_counter() - t0
    n = len(serial)
    work = serial["wall_seconds"].sum()
    out(f"{n} points, {work / n:.2f} s of simulation each on average")
    out(f"serial: {t_serial:.1f} s ({n / t_serial:.2f} points/s)")
    out(f"{workers} workers: {t_par:.1f} s ({n / t_par:.2f} points/s), speed-up "
        f"{t_serial / t_par:.2f}x, overhead {(t_par - work / workers) / n * 1e3:.1f} ms/point")
    same = serial.drop(columns="wall_seconds").equals(parallel.drop(columns="wall_seconds"))
    out(f"frames equal but for wall time: {same}")
    return t_serial, t_par
