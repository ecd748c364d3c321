"""The benches' clock: one thread reads the thread's CPU time, so a tick the OS gives another
process on the same core is not counted; more threads read wall time."""
import time

from wsekern.bench import bench_conv, best_time, call_clock


def test_call_clock_by_threads():
    assert call_clock(1) is time.thread_time
    assert call_clock(2) is time.perf_counter
    assert call_clock(8) is time.perf_counter


def test_best_time_reads_the_clock_given():
    # a clock that reads 0, 5, 10, 12, 20, 27 around three calls: their times are 5, 2, 7
    readings = iter([0.0, 5.0, 10.0, 12.0, 20.0, 27.0])
    calls = []
    assert best_time(lambda: calls.append(1), repeat=3, min_time=0,
                     clock=lambda: next(readings)) == 2.0
    assert len(calls) == 4              # a warm-up call, then the three timed


def test_bench_conv_says_which_clock():
    for threads, clock in ((1, "thread CPU time"), (2, "wall time")):
        lines = []
        rows = bench_conv(repeat=1, threads=threads, out=lines.append, shape=(1, 4, 6))
        header = [line for line in lines if line.startswith("conv2d x 1x4x6x6")]
        assert header and header[0].endswith(f"ms (best of 1, {clock})"), lines
        assert len(rows) == 6 and all(r["wsekern"] > 0 and r["im2col"] > 0 for r in rows)


def test_bench_spmm_reads_the_thread_clock_on_one_thread(monkeypatch):
    # every one-thread call of the spmm table (wsekern and its peers) and of the dead-row
    # table is read on the thread's CPU clock; two threads on wall time
    import wsekern.bench as bench
    seen = []
    real = bench.best_time

    def spy(fn, repeat=5, min_time=0.05, clock=time.perf_counter):
        seen.append(clock)
        return real(fn, repeat=1, min_time=0, clock=clock)
    monkeypatch.setattr(bench, "best_time", spy)
    lines = []
    bench.bench_spmm(sizes=((32, 32, 8),), sparsities=(0.9,), threads=(1,), repeat=1,
                     out=lines.append)
    assert seen and all(c is time.thread_time for c in seen), seen
    assert any("thread CPU time" in line for line in lines)
    seen.clear()
    bench.bench_spmm(sizes=((32, 32, 8),), sparsities=(0.9,), threads=(2,), repeat=1,
                     out=lambda line: None)
    assert {c for c in seen[:3]} == {time.perf_counter}, seen   # the spmm rows, 2 threads
