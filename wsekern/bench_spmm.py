"""``wsekern bench spmm --table``: spmm against SciPy and NumPy on every SIMD path this CPU runs.

For each path (the one chosen by default, then each one forced through WSEKERN_SIMD in a
child process, so the dispatcher's cost table follows the path as it would for a user), fp32
and fp64, W = ``scipy.sparse.random(M, K, density, random_state=0)`` in CSR and X standard
normal: wsekern.spmm, SciPy ``W @ X`` and NumPy's dense ``W @ X``, timed interleaved (one
call of each per round, ``repeat`` rounds, median of the calling thread's CPU time, wall-clock
ratios beside), 1 thread everywhere (threadpoolctl).
Then X with half its rows zero (dead ReLU units) against X dense, and sddmm against the
dense reference (``(A @ B.T)`` at the pattern) and SciPy's sampled product.
"""
import json
import os
import subprocess
import sys
import time

import numpy as np
import scipy.sparse as sps

# (M, K, N, fraction of W that is zero): the shapes.
CASES = ((1024, 1024, 16, 0.9), (1024, 1024, 64, 0.9), (1024, 1024, 256, 0.9),
         (1024, 1024, 1024, 0.9), (4096, 4096, 64, 0.9), (1024, 1024, 256, 0.5))
DTYPES = ("float32", "float64")


def _scaled(cases, quick):
    """--quick halves M and K (a quarter of the work) so the table runs in seconds."""
    return [(m // 2, k // 2, n, s) for m, k, n, s in cases] if quick else list(cases)


def balanced_orders(k):
    """Orders of ``k`` contenders, one per round, in which each contender directly follows
    each other one equally often over a cycle (a Williams design: k rounds for even k, 2k
    for odd k, each order followed by its reverse). Rotating one order would not do: in
    (a, b, c), (b, c, a), (c, a, b) c always runs right after b."""
    if k < 2:
        return [list(range(k))]
    base = [0]
    for i in range(1, k):
        base.append((i + 1) // 2 if i % 2 else k - i // 2)
    orders = []
    for r in range(k):
        row = [(b + r) % k for b in base]
        orders.append(row)
        if k % 2:
            orders.append(row[::-1])
    return orders


def interleaved_medians(fns, repeat):
    """name -> median seconds, calling each of ``fns`` once per round (after a warm-up), so a
    slow spell of a shared machine hits every contender alike. Seconds of this thread's CPU
    time: every contender runs on the calling thread alone (1 thread everywhere), and the
    time slices a loaded machine gives other processes are not counted (wall-clock medians
    moved 30 % between runs with 10 jobs on 2 cores). The order changes from round to round
    (:func:`balanced_orders`), so each contender follows each other one equally often: the
    one right after NumPy's dense product meets caches that product left cold, and no
    contender may always be that one. The wall-clock medians are returned too, under
    ``name + "_wall"``."""
    for fn in fns.values():
        fn()
    cpu = {name: [] for name in fns}
    wall = {name: [] for name in fns}
    items = list(fns.items())
    orders = balanced_orders(len(items))
    for r in range(repeat):
        for i in orders[r % len(orders)]:
            name, fn = items[i]
            w0, c0 = time.perf_counter(), time.thread_time()
            fn()
            cpu[name].append(time.thread_time() - c0)
            wall[name].append(time.perf_counter() - w0)
    result = {name: float(np.median(t)) for name, t in cpu.items()}
    result.update({f"{name}_wall": float(np.median(t)) for name, t in wall.items()})
    return result


def _spmm_rows(cases, repeat):
    from .kernels import spmm, spmm_path
    rows = []
    for dtype in DTYPES:
        for M, K, N, zeros in cases:
            W = sps.random(M, K, density=1 - zeros, format="csr", dtype=dtype, random_state=0)
            X = np.random.default_rng(1).standard_normal((K, N)).astype(dtype)
            Wd = W.toarray()
            t = interleaved_medians({"wsekern": lambda: spmm(W, X, n_threads=1),
                                     "scipy": lambda: W @ X, "numpy": lambda: Wd @ X}, repeat)
            rows.append({"dtype": dtype, "M": M, "K": K, "N": N, "zeros": zeros,
                         "path": spmm_path(W, X), **t})
    return rows


def _dead_rows(cases, repeat):
    """Half of X's rows zero against X dense, W 90 % zeros, as a SciPy CSR and packed (whose
    cached CSC lets whole columns meeting dead rows be passed over)."""
    from .kernels import spmm, spmm_path
    from .sparse import pack
    rows = []
    for M, K, N, zeros in cases:
        if zeros != 0.9:
            continue
        W = sps.random(M, K, density=0.1, format="csr", dtype="float32", random_state=0)
        rng = np.random.default_rng(2)
        X = rng.standard_normal((K, N)).astype(np.float32)
        Xd, Xd2 = X.copy(), X.copy()
        Xd[rng.permutation(K)[:K // 2]] = 0
        Xd2[rng.permutation(K)[:K // 2]] = 0
        for form, Wf in (("csr", W), ("packed", pack(W))):
            t = interleaved_medians({"dense": lambda: spmm(Wf, X, n_threads=1),
                                     "dead": lambda: spmm(Wf, Xd, n_threads=1)}, repeat)
            # a packed W keeps its compaction to a live map met twice in a row (dead ReLU
            # units): the same dead rows every call is its best case, so the rows also time
            # dead rows that change every call (two maps in turn), where nothing is kept
            turn = [Xd2, Xd]

            def dead_new():
                turn.reverse()
                return spmm(Wf, turn[0], n_threads=1)
            t_new = interleaved_medians({"dead_new": dead_new}, repeat)
            rows.append({"M": M, "K": K, "N": N, "W": form, "path": spmm_path(Wf, Xd), **t,
                         **t_new})
    return rows


def _sddmm_rows(quick, repeat):
    """sddmm(A, B, W) against NumPy's (A @ B.T) sampled at W's pattern and SciPy's sampled
    product (``W.multiply(A @ B.T)`` would be dense: SciPy has no SDDMM, this is its idiom)."""
    from .kernels import sddmm
    rows = []
    n = 512 if quick else 1024
    for dtype in DTYPES:
        for d, zeros in ((64, 0.9), (128, 0.9), (128, 0.99)):
            P = sps.random(n, n, density=1 - zeros, format="csr", dtype=dtype, random_state=0)
            rng = np.random.default_rng(0)
            A = rng.standard_normal((n, d)).astype(dtype)
            B = rng.standard_normal((n, d)).astype(dtype)
            r, c = P.nonzero()

            def numpy_sampled():
                return (A @ B.T)[r, c]

            def scipy_sampled():          # row-wise dots at the pattern, vectorised
                return np.einsum("ij,ij->i", A[r], B[c])
            t = interleaved_medians({"wsekern": lambda: sddmm(A, B, P, n_threads=1),
                                     "numpy": numpy_sampled, "gather": scipy_sampled}, repeat)
            rows.append({"dtype": dtype, "M": n, "N": n, "D": d, "zeros": zeros, **t})
    return rows


def measure(quick=False, repeat=None):
    """The rows of this process's SIMD path (1 thread), as a dict of lists."""
    from .bench import limit_threads
    from .bench_peers import PEER_SWITCHES, held_path, read_back
    from .sysinfo import get_config
    repeat = repeat or (5 if quick else 9)
    cases = _scaled(CASES, quick)
    with limit_threads(1):
        return {"simd": get_config()["simd"], "cost_table": get_config()["cost_table"],
                "peers": read_back(), "peers_held": held_path(),
                "peers_env": {k: os.environ[k] for k in PEER_SWITCHES if k in os.environ},
                "spmm": _spmm_rows(cases, repeat), "dead_rows": _dead_rows(cases, repeat),
                "sddmm": _sddmm_rows(quick, repeat)}


def _child(path, quick, repeat, peers_isa="native"):
    """measure() in a child process with WSEKERN_SIMD=path (None: the default choice);
    ``peers_isa="same"``: its peers held to the ISA of the path it runs."""
    from .bench_peers import can_hold, held_env
    from .simd_path import simd_available
    env = dict(os.environ)
    env.pop("WSEKERN_SIMD", None)
    if path:
        env["WSEKERN_SIMD"] = path
    if peers_isa == "same" and can_hold():
        env = held_env(path or simd_available()[-1], env)
    env.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    code = (f"import json, wsekern.bench_spmm as b; "
            f"print(json.dumps(b.measure(quick={quick!r}, repeat={repeat!r})))")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True)
    if done.returncode != 0:
        raise RuntimeError(f"the {path or 'default'} path's child failed "
                           f"(exit {done.returncode}):\n{done.stderr.strip()}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench_table(quick=False, repeat=None, out=print, peers_isa="native"):
    """Print the table for the default path and each path forced; return the results.
    ``peers_isa="same"``: each path's peers held to its ISA (see bench_peers)."""
    from .bench import machine_line
    from .simd_path import simd_available
    out(machine_line())
    out(f"spmm, 1 thread everywhere, ms = median CPU time of the calling thread over "
        f"{repeat or (5 if quick else 9)} interleaved rounds; 'x scipy' = SciPy's time / "
        f"wsekern's time, 'wall' the same ratio of wall-clock medians"
        f"{'; --quick: M and K halved' if quick else ''}")
    results = []
    for path in [None] + simd_available():
        res = _child(path, quick, repeat, peers_isa)
        res["forced"] = path or "default"
        results.append(res)
        _print_result(res, out)
    return results


def _print_result(res, out):
    out("")
    from .bench_peers import peers_lines
    out(f"path {res['forced']} (runs {res['simd']}; cost table {res['cost_table']})")
    for line in peers_lines(res.get("peers", {}), res.get("peers_held"),
                            res.get("peers_env", {})):
        out(line)
    out(f"{'dtype':>7} {'M':>5} {'K':>5} {'N':>5} {'zeros':>5} {'route':>16} {'wsekern':>8} "
        f"{'scipy':>8} {'numpy':>8} | {'x scipy':>7} {'x numpy':>7} | {'wall':>5} {'wall':>5}")
    for r in res["spmm"]:
        out(f"{r['dtype']:>7} {r['M']:5d} {r['K']:5d} {r['N']:5d} {r['zeros']:5.2f} "
            f"{r['path']:>16} {r['wsekern'] * 1e3:8.2f} {r['scipy'] * 1e3:8.2f} "
            f"{r['numpy'] * 1e3:8.2f} | {r['scipy'] / r['wsekern']:7.2f} "
            f"{r['numpy'] / r['wsekern']:7.2f} | {_wall_ratio(r, 'scipy', 'wsekern'):5.2f} "
            f"{_wall_ratio(r, 'numpy', 'wsekern'):5.2f}")
    out("  X with half its rows zero vs X dense (fp32, W 90 % zeros):")
    for r in res["dead_rows"]:
        out(f"  {r['M']:5d}x{r['K']:<5d} x {r['N']:<5d} {r.get('W', 'csr'):>6} "
            f"{r['path']:>14} dense "
            f"{r['dense'] * 1e3:7.2f} ms, half dead {r['dead'] * 1e3:7.2f} ms, "
            f"speed-up {r['dense'] / r['dead']:5.2f}x "
            f"(wall {_wall_ratio(r, 'dense', 'dead'):.2f}x); new dead rows each call "
            f"{r.get('dead_new', float('nan')) * 1e3:7.2f} ms, "
            f"{r['dense'] / r.get('dead_new', float('nan')):5.2f}x")
    out("  sddmm vs NumPy (A @ B.T)[pattern] and a gather + row-dot (einsum):")
    for r in res["sddmm"]:
        out(f"  {r['dtype']:>7} {r['M']}x{r['N']} D={r['D']:<4d} zeros {r['zeros']:.2f}: "
            f"wsekern {r['wsekern'] * 1e3:7.2f} ms, numpy {r['numpy'] * 1e3:7.2f} ms "
            f"(x{r['numpy'] / r['wsekern']:.2f}), gather {r['gather'] * 1e3:7.2f} ms "
            f"(x{r['gather'] / r['wsekern']:.2f})")


def _wall_ratio(row, slow, fast):
    """``slow``'s wall-clock median over ``fast``'s (rows saved before it was kept: nan)."""
    return row.get(f"{slow}_wall", float("nan")) / row.get(f"{fast}_wall", float("nan"))
