"""``wsekern bench``: wsekern against the libraries people use, measured in the same run.

Times are the best of ``repeat`` runs after a warm-up (on one thread the thread's CPU
time, see :func:`call_clock`). NumPy's BLAS (and MKL, torch)
are limited to the same thread count as wsekern through threadpoolctl when it is
installed. On machines that set OPENBLAS_CORETYPE, unset it (and OPENBLAS_L2_SIZE)
for the command, or NumPy's BLAS runs a slow kernel.
"""
import contextlib
import os
import time

import numpy as np

from .conv import ConvGeometry, conv2d, conv2d_path, im2col
from .kernels import spmm, spmm_path
from .sparse import pack
from .workloads import random_weight

SPARSITIES = (0.0, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99)
SIZES = ((1024, 1024, 256), (4096, 4096, 64))


def best_time(fn, repeat=5, min_time=0.05, clock=time.perf_counter):
    """Best time of ``fn()`` over ``repeat`` runs (more for very fast calls), read on
    ``clock``: wall time by default; see :func:`call_clock` for one thread."""
    fn()
    times = []
    start = time.perf_counter()
    while len(times) < repeat or (time.perf_counter() - start < min_time and len(times) < 200):
        t0 = clock()
        fn()
        times.append(clock() - t0)
    return min(times)


def call_clock(threads):
    """The clock a bench reads for calls on ``threads`` threads. One thread: the calling
    thread's CPU time, since every library then runs the call in that thread. When another
    process shares the core, the OS gives it the core for a whole tick (4 ms at 250 Hz)
    in the middle of any call longer than that, so a wall-clock best of a few calls jumps
    by about 4 ms from run to run while the thread's CPU time stays put. More threads:
    wall time (CPU time would add the threads up); wall time too without threadpoolctl,
    whose absence leaves NumPy's BLAS on its own threads, which that clock would miss."""
    if threads == 1 and _optional("threadpoolctl") is not None:
        return time.thread_time
    return time.perf_counter


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


def peers_header(out):
    """Print what each peer runs at, read back here; in a ``--peers-isa same`` child, what
    they were held to and each switch that did not take."""
    from .bench_peers import held_path, peers_lines, read_back
    for line in peers_lines(read_back(), held_path()):
        out(line)


def machine_line():
    """What a number is tied to: CPU, caches, SIMD path (and those available), cost table."""
    from ._cpu import describe
    from .sysinfo import get_config
    cfg = get_config()
    return (f"CPU {describe()}; SIMD path {cfg['simd']} (runs {', '.join(cfg['simd_available'])})"
            f"; cost table {cfg['cost_table']}; OpenMP {'on' if cfg['openmp'] else 'off'}, "
            f"{cfg['threads']} threads")


SPMM_LEGEND = """\
columns:
  M K N     Y (M x N) = W (M x K) @ X (K x N); X dense, standard normal
  thr       threads given to every library alike (threadpoolctl / torch.set_num_threads)
  sparsity  fraction of W's entries that are zero
  path      the kernel wsekern chose for this W and X (wsekern.spmm_path)
  wsekern   wsekern.spmm with W packed once (pack(W), outside the timing)
  dense-W   wsekern.spmm with W passed as a dense ndarray (its dispatcher decides)
  numpy     W.toarray() @ X (dense BLAS, zeros multiplied)
  scipy     scipy.sparse csr_array W @ X
  mkl       sparse_dot_mkl.dot_product_mkl(W, X), when installed ('-' otherwise)
  torch     torch.sparse_csr_tensor W @ X, when installed ('-' otherwise)
  x peer    peer time / wsekern time: above 1, wsekern is faster
  dW/np     dense-W time / numpy time: what passing a dense W costs against BLAS\
"""


def bench_spmm(sizes=SIZES, sparsities=SPARSITIES, threads=(1, 2), repeat=5, out=print):
    """Print the spmm comparison table; return its rows as dicts."""
    rows = []
    out(machine_line())
    peers_header(out)
    header = (f"{'M':>5} {'K':>5} {'N':>4} {'thr':>3} {'sparsity':>8} {'path':>15} "
              f"{'wsekern':>9} {'dense-W':>9} {'numpy':>9} {'scipy':>9} {'mkl':>9} {'torch':>9}"
              f" | {'x numpy':>7} {'x scipy':>7} {'x mkl':>6} {'x torch':>7} {'dW/np':>6}")
    one = "thread CPU time" if call_clock(1) is time.thread_time else "wall time"
    out(f"spmm, float32, times in ms (best of {repeat}; one thread: {one}, see "
        f"call_clock); 'x peer' = peer time / wsekern time")
    out(SPMM_LEGEND)
    out(header)
    for M, K, N in sizes:
        X = np.random.default_rng(1).standard_normal((K, N)).astype(np.float32)
        for s in sparsities:
            W = random_weight(M, K, s)
            P = pack(W)
            Wd = W.toarray()
            for t in threads:
                # the peers' libraries loaded first: threadpoolctl limits only those loaded
                peers = spmm_peers(W, X, t)
                with limit_threads(t):
                    row = {"M": M, "K": K, "N": N, "threads": t, "sparsity": s,
                           "path": spmm_path(P, X)}
                    clock = call_clock(t)
                    row["wsekern"] = best_time(lambda: spmm(P, X, n_threads=t), repeat,
                                               clock=clock)
                    row["dense-W"] = best_time(lambda: spmm(Wd, X, n_threads=t), repeat,
                                               clock=clock)
                    for name, fn in peers.items():
                        row[name] = best_time(fn, repeat, clock=clock)
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
    out(f"spmm with {dead:.0%} of X's rows zero vs X dense, W {sparsity:.0%} zeros, 1 thread "
        f"(thread CPU time)")
    out("  (X dead: the same dead rows every call, as dead ReLU units give, where the packed W "
        "keeps its compaction; new map: other dead rows every call, nothing kept)")
    out(f"{'M':>5} {'K':>5} {'N':>4} {'path':>15} {'X dense':>9} {'X dead':>9} {'speed-up':>8} "
        f"{'new map':>9} {'speed-up':>8}")
    rows = []
    for M, K, N in sizes:
        P = pack(random_weight(M, K, sparsity))
        rng = np.random.default_rng(2)
        X = rng.standard_normal((K, N)).astype(np.float32)
        Xd, Xd2 = X.copy(), X.copy()
        Xd[rng.random(K) < dead] = 0
        Xd2[rng.random(K) < dead] = 0
        turn = [Xd2, Xd]

        def dead_new():
            turn.reverse()
            return spmm(P, turn[0], n_threads=1)
        with limit_threads(1):
            t_dense = best_time(lambda: spmm(P, X, n_threads=1), repeat, clock=time.thread_time)
            t_dead = best_time(lambda: spmm(P, Xd, n_threads=1), repeat, clock=time.thread_time)
            t_new = best_time(dead_new, repeat, clock=time.thread_time)
        out(f"{M:5d} {K:5d} {N:4d} {spmm_path(P, Xd):>15} {t_dense * 1e3:9.3f} "
            f"{t_dead * 1e3:9.3f} {t_dense / t_dead:8.2f} {t_new * 1e3:9.3f} "
            f"{t_dense / t_new:8.2f}")
        rows.append({"M": M, "K": K, "N": N, "dense": t_dense, "dead": t_dead,
                     "dead_new": t_new})
    return rows


def openblas_warning():
    """A line to print when the environment slows NumPy's BLAS, else None."""
    bad = [v for v in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if v in os.environ]
    if bad:
        return (f"note: {' and '.join(bad)} set; NumPy's BLAS may run a slow kernel. "
                f"For a fair comparison: env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "
                f"wsekern bench ...")
    return None


# torch held to the ISA of a forced wsekern path, so that a forced path is compared with what
# torch runs on a CPU that has only that ISA. oneDNN's floor is SSE4.1, above the x86-64
# baseline (SSE2), so the baseline row favours torch.
TORCH_ISA_ENV = {"baseline": {"ONEDNN_MAX_CPU_ISA": "SSE41", "ATEN_CPU_CAPABILITY": "default"},
                 "avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}}


def _conv_cases(B, C, S):
    """The (w zeros, x zeros, x, w) cases of bench conv, the same arrays on every call."""
    rng = np.random.default_rng(0)
    for ws in (0.0, 0.8, 0.9):
        for xs in (0.0, 0.8):
            x = (rng.standard_normal((B, C, S, S)) * (rng.random((B, C, S, S)) >= xs)
                 ).astype(np.float32)
            w = (rng.standard_normal((C, C, 3, 3)) * (rng.random((C, C, 3, 3)) >= ws)
                 ).astype(np.float32)
            yield ws, xs, x, w


def _torch_conv_time(torch, x, w, repeat, clock):
    """torch.nn.functional.conv2d's best time on one bench conv case (stride 1, pad 1)."""
    xt, wt = torch.from_numpy(x), torch.from_numpy(w)
    with torch.no_grad():
        return best_time(lambda: torch.nn.functional.conv2d(xt, wt, padding=1), repeat,
                         clock=clock)


def torch_conv_times(shape, repeat, threads):
    """torch's best time for each bench conv case, in this process (the child's side)."""
    import torch
    with limit_threads(threads):
        return [_torch_conv_time(torch, x, w, repeat, call_clock(threads))
                for _, _, x, w in _conv_cases(*shape)]


def _torch_conv_times_at_isa(path, shape, repeat, threads):
    """torch's times with its kernels held to ``path``'s ISA (a child process, since oneDNN
    and ATen read the limit once, at start) and what torch read back there; None and why
    when they cannot be measured."""
    import json
    import subprocess
    import sys
    code = ("import json; from wsekern.bench import torch_conv_times; "
            "from wsekern.bench_peers import read_back; "
            f"t = torch_conv_times({tuple(shape)!r}, {int(repeat)}, {int(threads)}); "
            "print(json.dumps({'times': t, 'peers': read_back()}))")
    env = {**os.environ, **TORCH_ISA_ENV[path]}
    try:
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                              text=True, timeout=600)
        if done.returncode != 0:
            return None, done.stderr.strip().splitlines()[-1:] or ["no message"]
        got = json.loads(done.stdout.strip().splitlines()[-1])
        return got["times"], got["peers"]
    except (OSError, ValueError, IndexError, KeyError, subprocess.TimeoutExpired) as exc:
        return None, [repr(exc)]


def bench_conv(repeat=5, threads=1, out=print, shape=(8, 64, 32)):
    """conv2d on x BxCxSxS, w CxCx3x3 (``shape`` = (B, C, S), default 8x64x32x32), stride 1,
    padding 1, float32, against im2col + NumPy BLAS and torch.nn.functional.conv2d (when
    installed). When WSEKERN_SIMD forces a path narrower than the CPU's best, torch is also
    timed held to that path's ISA (column ``torch@isa``), in a child process; not in a
    ``--peers-isa same`` child, whose torch is held already."""
    from .bench_peers import held_path, not_taken
    from .sysinfo import get_config
    B, C, S = (int(v) for v in shape)
    if min(B, C, S) < 1:
        raise ValueError(f"bench conv's size must be three positive numbers (batch, channels, "
                         f"image side); received {shape}")
    torch = _optional("torch")
    cfg = get_config()
    at_isa = None
    out(machine_line())
    peers_header(out)
    path = cfg["simd"]
    if (torch is not None and path in TORCH_ISA_ENV and path != cfg["simd_available"][-1]
            and not held_path()):
        at_isa, got = _torch_conv_times_at_isa(path, (B, C, S), repeat, threads)
        limits = " ".join(f"{k}={v}" for k, v in TORCH_ISA_ENV[path].items())
        read = (f"; read back: torch ATen {got['aten']}, oneDNN {got['onednn']} "
                f"(conv {got['onednn_conv']})" if at_isa else "")
        out(f"torch@isa: torch held to the {path} path's ISA ({limits}), timed in a "
            f"child process" + (read if at_isa else f"; failed: {' '.join(got)}"))
        missed = not_taken(path, {**got, "openblas": None}, TORCH_ISA_ENV[path]) if at_isa else []
        for _, switch, want, have in missed:
            out(f"warning: torch@isa: {switch}={want} did not take: torch runs {have}")
    clock = call_clock(threads)
    out(f"conv2d x {B}x{C}x{S}x{S}, w {C}x{C}x3x3, pad 1, float32, {threads} thread(s), "
        f"ms (best of {repeat}, "
        f"{'thread CPU time' if clock is time.thread_time else 'wall time'})")
    out(f"{'w zeros':>7} {'x zeros':>7} {'path':>12} {'wsekern':>9} {'im2col':>9} {'torch':>9}"
        f" | {'x im2col':>8} {'x torch':>7}"
        + (f" | {'torch@isa':>9} {'x t@isa':>7}" if at_isa else ""))
    rows = []
    for i, (ws, xs, x, w) in enumerate(_conv_cases(B, C, S)):
        g = ConvGeometry.of(x.shape, w.shape, 1, 1, 1, 1)
        w2 = w.reshape(1, C, -1)

        def im2col_blas():
            return np.matmul(w2, im2col(x, g))
        with limit_threads(threads):
            r = {"w": ws, "x": xs, "path": conv2d_path(x, w, padding=1),
                 "wsekern": best_time(lambda: conv2d(x, w, padding=1, n_threads=threads),
                                      repeat, clock=clock),
                 "im2col": best_time(im2col_blas, repeat, clock=clock)}
            if torch is not None:
                r["torch"] = _torch_conv_time(torch, x, w, repeat, clock)
        if at_isa:
            r["torch_at_isa"] = at_isa[i]
        t_torch = f"{r['torch'] * 1e3:9.3f}" if "torch" in r else f"{'-':>9}"
        x_torch = f"{r['torch'] / r['wsekern']:7.2f}" if "torch" in r else f"{'-':>7}"
        isa_cols = (f" | {r['torch_at_isa'] * 1e3:9.3f} {r['torch_at_isa'] / r['wsekern']:7.2f}"
                    if at_isa else "")
        out(f"{ws:7.2f} {xs:7.2f} {r['path']:>12} {r['wsekern'] * 1e3:9.3f} "
            f"{r['im2col'] * 1e3:9.3f} {t_torch} | {r['im2col'] / r['wsekern']:8.2f} {x_torch}"
            + isa_cols)
        rows.append(r)
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
    if not 1 <= points <= SWEEP_POINTS:
        raise ValueError(f"points must be from 1 to {SWEEP_POINTS} (the full sweep); "
                         f"received {points}")
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
