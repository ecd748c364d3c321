"""Review s14 (second): the benches' one-thread clock is only the thread's CPU time when
every peer really runs in the calling thread."""
import time

from conftest import run_in_child


def test_one_thread_reads_wall_time_without_threadpoolctl():
    # without threadpoolctl NumPy's BLAS keeps its pool (2 threads here): the calling
    # thread's CPU clock read about half a 1024^2 x 256 matmul's time (3.7 against 7.9 ms)
    r = run_in_child("""
import sys, time
sys.modules["threadpoolctl"] = None
from wsekern.bench import bench_spmm, call_clock
assert call_clock(1) is time.perf_counter and call_clock(2) is time.perf_counter
lines = []
bench_spmm(sizes=((16, 16, 4),), sparsities=(0.9,), threads=(1,), repeat=1, out=lines.append)
assert any("one thread: wall time" in line for line in lines), lines
print("ok")
""")
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stdout + r.stderr


def test_spmm_peers_are_loaded_before_the_threads_are_limited(monkeypatch):
    # threadpoolctl limits the libraries loaded when the limit is set: MKL, which
    # sparse_dot_mkl loads on import in spmm_peers, must be loaded before it
    import wsekern.bench as bench
    order = []
    real_peers, real_limit = bench.spmm_peers, bench.limit_threads

    def peers(*args):
        order.append("peers")
        return real_peers(*args)

    def limit(n):
        order.append("limit")
        return real_limit(n)
    monkeypatch.setattr(bench, "spmm_peers", peers)
    monkeypatch.setattr(bench, "limit_threads", limit)
    monkeypatch.setattr(bench, "best_time",
                        lambda fn, repeat=5, min_time=0.05, clock=time.perf_counter: 1e-3)
    bench.bench_spmm(sizes=((16, 16, 4),), sparsities=(0.9,), threads=(1, 2), repeat=1,
                     out=lambda line: None)
    assert order[:4] == ["peers", "limit", "peers", "limit"], order   # then the dead-row table
