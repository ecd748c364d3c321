"""Review of s17's native changes (review_n): a kept step (src/_step_cost.pyx ``WsStep``,
src/_screen.pyx ``DenseStep``) reads its own copies of the structure, so the caller writing
to or dropping its arrays after the step was built, or a second ``__init__`` (refused: a step
is built once, since a run on another thread reads its arrays without the GIL), leaves the
step's figures those of the one-call kernels on the structure as it was checked (before:
a write after the checks, or a refused re-init leaving pointers into arrays not held, read and
wrote out of bounds: SIGSEGV). Each in a child process."""
import os
import textwrap

from conftest import run_in_child

_PRE = """
import gc, sys
import numpy as np
sys.path.insert(0, %r)
from test_step_blocks_simd import _case
from test_strategy_step_plan import _by_columns
from test_step_prepared import WS_PIPELINES, DS_PIPELINES
from wsekern._step_cost import WsStep, ws_step_columns, ws_dead_columns, ws_pack_entries
from wsekern._step_cost import ws_table
from wsekern._screen import DenseStep, dense_stream
rng = np.random.default_rng(3)
R, C = 8, 3
x_nz, k_b, S, choice, comp, dense, t_dense, tail = _case(rng, R, C, 4, ())
cols = _by_columns(None, R, C, k_b, S, choice, comp, dense)
K = x_nz.shape[0]
X = np.ones_like(x_nz)
def fresh():
    c = tuple(np.array(a, copy=True) for a in cols)
    dead = ws_dead_columns(t_dense, *c[3:], *tail[:2])
    return (k_b.copy(), *c[:3], t_dense.copy(), *c[3:], *tail, True, WS_PIPELINES[0], dead,
            ws_pack_entries(c[1], c[2]), ws_table(*c[:3], R), None)
def same(a, b):
    return all(x == y or (x != x and y != y) for x, y in zip(a, b))
""" % os.path.dirname(os.path.abspath(__file__))


def _child(body):
    proc = run_in_child(_PRE + textwrap.dedent(body), timeout=240)
    assert proc.returncode == 0 and proc.stdout.split()[-1:] == ["ok"], (
        proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])


def test_a_ws_step_ignores_writes_to_and_frees_of_the_callers_arrays():
    _child("""
    args = fresh()
    want = ws_step_columns(X, *args)
    want = (want[3], want[4], want[5], want[7])
    step = WsStep(K, *args)
    assert same(step.run(X), want)
    # every array written over with values the checks refuse (rows, counts, bounds)
    for a in args[:9] + tuple(args[16]) + args[17:19]:
        if isinstance(a, np.ndarray):
            a[...] = np.iinfo(a.dtype).max if a.dtype.kind in "iu" else np.nan
    assert same(step.run(X), want), (step.run(X), want)
    del args, a
    gc.collect()
    junk = [np.full(1 << 16, -1, np.int64) for _ in range(64)]
    assert same(step.run(X), want)
    print("ok")
    """)


def test_a_refused_second_init_leaves_a_ws_step_as_it_was():
    _child("""
    args = fresh()
    want = ws_step_columns(X, *args)
    want = (want[3], want[4], want[5], want[7])
    step = WsStep(K, *args)
    big = np.zeros(1 << 20, np.int64)
    bad = list(fresh())
    bad[6], bad[7] = big, big.copy()       # the block totals the wrong size: refused
    for obj in (step, WsStep.__new__(WsStep)):   # built once; a bare one's bad first init
        try:
            obj.__init__(K, *bad)
        except (ValueError, TypeError):
            pass
        else:
            raise AssertionError("not refused")
    try:
        step.__init__(K, *fresh())            # a valid one too: built once
    except TypeError as e:
        assert "built once" in str(e), e
    else:
        raise AssertionError("rebuilt")
    del bad, big
    gc.collect()
    junk = [np.full(1 << 20, -1, np.int64) for _ in range(4)]
    assert same(step.run(X), want), (step.run(X), want)
    print("ok")
    """)


def test_a_dense_step_ignores_writes_to_its_bounds_and_a_refused_init():
    _child("""
    kb = k_b.copy()
    L = DS_PIPELINES[0][0].copy()
    pipe = (L,) + DS_PIPELINES[0][1:]
    want = dense_stream(X, kb, 1.0, 2.0, 1, 1.0, 0.0, pipe)
    want = (want[3], want[4], want[5])
    step = DenseStep(K, kb, 1.0, 2.0, 1, 1.0, 0.0, pipe)
    assert same(step.run(X), want)
    kb[:] = 1 << 40                        # bounds far past X's rows
    assert same(step.run(X), want), step.run(X)
    for bad in ((np.array([0, K + 5]),) + (1.0, 2.0, 1, 1.0, 0.0, pipe),
                (k_b.copy(), 1.0, 2.0, 1, 1.0, 0.0, (np.array([1, 2]),) + pipe[1:])):
        try:
            step.__init__(K, *bad)
        except (ValueError, TypeError):
            pass
        else:
            raise AssertionError("not refused")
    try:
        step.__init__(K, k_b.copy(), 1.0, 2.0, 1, 1.0, 0.0, pipe)
    except TypeError as e:
        assert "built once" in str(e), e
    else:
        raise AssertionError("rebuilt")
    del kb
    gc.collect()
    assert same(step.run(X), want), step.run(X)
    print("ok")
    """)


def test_livemap_compaction_reads_and_writes_only_the_row(tmp_path):
    # tests/c/livemap_guard.c: the live-map compaction (AVX-512 VPOPCNTDQ) on hostile and
    # valid columns, every array ending at (or starting after) a PROT_NONE page: a read or
    # write outside the row faults; -1 exactly when a column is outside [0, K - 1], else
    # the remap's kept entries (mutants checked: the range compare made signed fails 112
    # checks; the tail's values loaded unmasked faults)
    import shutil
    import subprocess
    from pathlib import Path

    import pytest
    root = Path(__file__).resolve().parent.parent
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler on PATH")
    exe = tmp_path / "livemap_guard"
    flags = ["-O1", "-g", "-fsanitize=undefined", "-fno-sanitize-recover=all", "-Wno-psabi",
             f"-I{root / 'src'}"]
    built = subprocess.run([cc, *flags, str(root / "tests" / "c" / "livemap_guard.c"), "-o",
                            str(exe), "-lm"], capture_output=True, text=True, timeout=300)
    if built.returncode and "sanitize" in built.stderr:
        pytest.skip(f"{cc} builds no sanitizers here: {built.stderr[-300:]}")
    assert built.returncode == 0, built.stderr
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    ran = subprocess.run([str(exe)], capture_output=True, text=True, timeout=300, env=env)
    assert ran.returncode == 0, (ran.returncode, ran.stdout[-2000:], ran.stderr[-2000:])
    out = ran.stdout.split()
    assert out[:1] == ["skip:"] or out[:2] == ["ok", "4816"], ran.stdout[-2000:]
