"""The step's pass over each PE column's blocks in 8 lanes (src/_step_cost.pyx, AVX-512
where the CPU runs it) against the same pass in r order and against ws_step_stream: every
figure equal, zeros' signs and NaN included, for columns of 1 to 130 blocks (whole lanes
and tails), every format choice, int32 and int64 block totals, and task times holding
0.0, -0.0, infinities and NaN (where the lanes' maxima may differ from the loop's, the
loop runs)."""
import numpy as np
import pytest
import scipy.sparse as sps
from test_strategy_step_plan import _by_columns, _random_entries
from test_strategy_step_plan import (
    test_the_step_pass_down_each_pe_column_gives_the_same_figures as _step_pass_test,
)

from wsekern import _step_cost
from wsekern._step_cost import (
    ws_dead_columns,
    ws_pack_entries,
    ws_step_columns,
    ws_step_stream,
    ws_table,
)


@pytest.fixture
def simd_path():
    """Set the pass's path for a test, and put back the one in use."""
    before = _step_cost.use_simd_path("avx512")
    yield _step_cost.use_simd_path
    _step_cost.use_simd_path(before)


def _same(a, b):
    """Equal arrays or numbers, NaN equal to NaN and 0.0 unequal to -0.0, of one type."""
    assert type(a) is type(b)
    a, b = np.asarray(a), np.asarray(b)
    assert a.dtype == b.dtype and a.shape == b.shape
    if a.dtype.kind == "f":
        assert np.array_equal(np.signbit(a), np.signbit(b))
    return np.array_equal(a, b, equal_nan=True)


def _case(rng, R, C, N, special):
    K, k_b, S = _random_entries(rng, R, C, 4 * max(R // 8, 1))
    choice = rng.integers(0, 3, R * C).astype(np.int8)
    if rng.random() < 0.4:
        choice[:] = rng.integers(0, 3)
    comp_total = rng.integers(-50, 200, R * C).astype(np.int64)
    dense_total = rng.integers(-50, 200, R * C).astype(np.int64)
    t_dense = rng.integers(4, 60, R).astype(np.float64) + (rng.random(R) if rng.random() < 0.5
                                                           else 0.0)
    for _ in range(int(rng.integers(1, 4)) if special else 0):
        t_dense[int(rng.integers(0, R))] = rng.choice(special)
    x_nz = rng.random((K, N)) < rng.choice([0.0, 0.05, 0.3, 1.0])
    task, scalar = ((4.0, 22.0), (3.5, 1.25), (0.0, 0.0), (4.0, -3.0))[int(rng.integers(0, 4))]
    return x_nz, k_b, S, choice, comp_total, dense_total, t_dense, (task, scalar, task, 2, 0.5)


@pytest.mark.parametrize("R", [1, 7, 8, 9, 16, 17, 64, 127, 130])
@pytest.mark.parametrize("special", [(), (0.0, -0.0), (0.0, -0.0, np.inf, -np.inf, np.nan)],
                         ids=["finite", "zeros", "zeros-inf-nan"])
def test_the_lanes_give_the_loops_figures(simd_path, R, special):
    rng = np.random.default_rng(R * 7 + len(special))
    for trial in range(8):
        C, N = int(rng.integers(1, 7)), int(rng.integers(0, 12))
        x_nz, k_b, S, choice, comp_total, dense_total, t_dense, tail = _case(rng, R, C, N,
                                                                              special)
        if trial == 0 and special:
            t_dense[:] = special[1 % len(special)]             # a whole column of one value
        x = x_nz.view(np.uint8)
        want = ws_step_stream(x, k_b, S.indptr, S.indices, S.data, t_dense, choice,
                              comp_total, dense_total, *tail)
        cols = _by_columns(None, R, C, k_b, S, choice, comp_total, dense_total)
        narrow = cols[:4] + tuple(a.astype(np.int32) for a in cols[4:])
        for layout in (cols, narrow):
            dead = ws_dead_columns(t_dense, *layout[3:], *tail[:2])
            packed = ws_pack_entries(layout[1], layout[2])
            table = ws_table(*layout[:3], R)
            assert table is not None            # the entries' counts fit in a byte
            runs = {}
            for path in ("avx512", "baseline"):
                simd_path(path)
                runs[path] = [ws_step_columns(x, k_b, *layout[:3], t_dense, *layout[3:],
                                              *tail, check, None, d, p, t)
                              for d in (None, dead) for p in (None, packed)
                              for t in (None, table) for check in (False, True)]
            for got in runs["avx512"] + runs["baseline"]:
                assert len(got) == 7
                for a, b in zip(got, want[:7]):
                    assert _same(a, b), (trial, a, b)


@pytest.mark.parametrize("R", [1, 7, 8, 9, 17, 127])
def test_a_column_under_the_peak_so_far_gives_the_same_sram(simd_path, R):
    """ws_step_columns with ``sram_bound`` (each PE column's largest block total, here from
    NumPy) skips the totals of a column whose bound the step's SRAM peak so far reaches:
    every figure ws_step_stream's, on both paths, int64 and int32 totals, with and without
    the dead columns' figures; totals differ from column to column (negative ones too),
    peaks early or late. A bound that is not the totals' maximum is refused when checked."""
    rng = np.random.default_rng(R * 13)
    for trial in range(10):
        C, N = int(rng.integers(1, 9)), int(rng.integers(0, 12))
        x_nz, k_b, S, choice, comp_total, dense_total, t_dense, tail = _case(rng, R, C, N, ())
        if trial % 3 == 1:                  # the largest totals in the last column
            comp_total[-R:] += 1000
        elif trial % 3 == 2:                # ... or in the first, with the others far below
            dense_total[:R] += 1000
        x = x_nz.view(np.uint8)
        want = ws_step_stream(x, k_b, S.indptr, S.indices, S.data, t_dense, choice,
                              comp_total, dense_total, *tail)
        cols = _by_columns(None, R, C, k_b, S, choice, comp_total, dense_total)
        narrow = cols[:4] + tuple(a.astype(np.int32) for a in cols[4:])
        bound = np.maximum(cols[4], cols[5]).reshape(C, R).max(axis=1).astype(np.int64)
        for layout in (cols, narrow):
            dead = ws_dead_columns(t_dense, *layout[3:], *tail[:2])
            for path in ("avx512", "baseline"):
                simd_path(path)
                for d in (None, dead):
                    for check in (False, True):
                        got = ws_step_columns(x, k_b, *layout[:3], t_dense, *layout[3:],
                                              *tail, check, None, d, None, None, bound)
                        for a, b in zip(got, want[:7]):
                            assert _same(a, b), (trial, path, a, b)
        wrong = bound.copy()
        wrong[int(rng.integers(0, C))] += 1
        with pytest.raises(ValueError, match="sram_bound"):
            ws_step_columns(x, k_b, *cols[:3], t_dense, *cols[3:], *tail, True, None, None,
                            None, None, wrong)
        with pytest.raises(ValueError, match="sram_bound must hold"):
            ws_step_columns(x, k_b, *cols[:3], t_dense, *cols[3:], *tail, False, None, None,
                            None, None, bound[:-1])


@pytest.mark.parametrize("R", [1, 8, 9, 17])
def test_a_nan_task_or_scalar_gives_the_loops_figures(simd_path, R):
    """The lanes look for a NaN block time only where one can arise (a task or scalar
    cycle count NaN, infinite, or so large that A * task + scalar * sw could be inf - inf;
    or a NaN in t_dense): with each of those, every figure is ws_step_stream's on both
    paths."""
    rng = np.random.default_rng(R * 31)
    odd = (np.nan, np.inf, -np.inf, 1e300, -1e300, 1e250)
    for trial in range(12):
        C, N = int(rng.integers(1, 6)), int(rng.integers(1, 12))
        x_nz, k_b, S, choice, comp_total, dense_total, t_dense, tail = _case(rng, R, C, N, ())
        task, scalar = tail[0], tail[1]
        if trial % 3 != 1:
            task = float(odd[int(rng.integers(0, len(odd)))])
        if trial % 3 != 0:
            scalar = -float(odd[int(rng.integers(0, len(odd)))])
        if trial == 11:
            t_dense[int(rng.integers(0, R))] = np.nan
        if trial % 2:
            choice[:] = 1                  # compressed: each NaN time reaches the maximum
        tail = (task, scalar, task) + tail[3:]
        x_nz[:, :1] = True                 # activations in every column
        x = x_nz.view(np.uint8)
        with np.errstate(all="ignore"):
            want = ws_step_stream(x, k_b, S.indptr, S.indices, S.data, t_dense, choice,
                                  comp_total, dense_total, *tail)
        cols = _by_columns(None, R, C, k_b, S, choice, comp_total, dense_total)
        for path in ("avx512", "baseline"):
            simd_path(path)
            got = ws_step_columns(x, k_b, *cols[:3], t_dense, *cols[3:], *tail)
            for a, b in zip(got, want[:7]):
                assert _same(a, b), (trial, path, task, scalar, a, b)


def test_the_path_is_named_and_an_unknown_one_refused(simd_path):
    assert simd_path("baseline") == "baseline"
    assert simd_path("avx2") == "baseline"
    assert simd_path("avx512") in ("avx512", "baseline")
    with pytest.raises(ValueError, match="path must be"):
        simd_path("sse9")


@pytest.mark.parametrize("path", ["avx512", "baseline"])
def test_the_step_pass_down_each_pe_column_on_each_path(simd_path, path):
    """The step-plan tests' random structures (formats, fractional, infinite and NaN task
    times, dead columns, packed entries, the chain) on each path."""
    simd_path(path)
    for R, C, N in ((9, 4, 9), (17, 3, 5), (33, 2, 3)):
        _step_pass_test(R, C, N)


def _dense_table(layout, K, R):
    """W's nonzeros per (column k, row block r) summed from the entries, as NumPy sees them."""
    s_indptr, s_rows, s_data = layout[:3]
    want = np.zeros((K, R), np.int64)
    np.add.at(want, (np.repeat(np.arange(K), np.diff(s_indptr)), s_rows), s_data)
    return want


def test_the_table_holds_the_entries_and_only_what_fits_in_a_byte():
    """ws_table is W's nonzeros per (column k, row block r) summed from the entries, as
    bytes; None where a count passes 255."""
    rng = np.random.default_rng(5)
    for R, C in ((1, 1), (7, 3), (130, 2)):
        K, k_b, S = _random_entries(rng, R, C, 4 * max(R // 8, 1))
        layout = _by_columns(None, R, C, k_b, S, np.zeros(R * C, np.int8),
                             np.zeros(R * C, np.int64), np.zeros(R * C, np.int64))
        table = ws_table(*layout[:3], R)
        assert table.dtype == np.uint8 and table.flags.c_contiguous
        assert np.array_equal(table, _dense_table(layout, K, R))
    s_indptr, rows = np.array([0, 2, 3], np.int64), np.array([0, 1, 1], np.int32)
    assert ws_table(s_indptr, rows, np.array([255, 1, 0], np.int32), 2)[0, 0] == 255
    assert ws_table(s_indptr, rows, np.array([256, 1, 0], np.int32), 2) is None
    assert ws_table(s_indptr, rows, np.array([-1, 1, 0], np.int32), 2) is None


def entries_of_counts(counts, k_b):
    """W's nonzeros per (column k, row block r), ``counts`` (K x R), as entries of the
    row-major structure ws_step_stream reads: K x R * C CSR, k's block r * C + its PE
    column (C + 1 bounds ``k_b``)."""
    (K, R), C = counts.shape, len(k_b) - 1
    pe_col = np.searchsorted(k_b, np.arange(K), side="right") - 1
    k, r = np.nonzero(counts)
    S = sps.csr_array((counts[k, r].astype(np.int64), (r * C + pe_col[k]).astype(np.int32),
                       np.concatenate([[0], np.cumsum(np.count_nonzero(counts, axis=1))])
                       .astype(np.int64)), shape=(K, R * C))
    S.indptr, S.indices = S.indptr.astype(np.int64), S.indices.astype(np.int32)
    return S


@pytest.mark.parametrize("path", ["avx512", "baseline"])
def test_the_table_gives_the_entries_figures_with_large_counts(simd_path, path):
    """Columns of W with up to 255 nonzeros in one block and batches of up to 600 samples:
    the table's sums (8 blocks at a time on AVX-512) are the entries' sums."""
    simd_path(path)
    rng = np.random.default_rng(9)
    for R, C, N in ((9, 2, 600), (17, 3, 1), (64, 1, 300)):
        K = int(rng.integers(C, 3 * C + 2))
        k_b = np.concatenate([[0], np.sort(rng.integers(0, K + 1, C - 1)), [K]]).astype(np.int_)
        counts = rng.integers(0, 256, (K, R)) * (rng.random((K, R)) < 0.6)
        counts[0, :] = 255
        S = entries_of_counts(counts, k_b)
        choice = rng.integers(0, 3, R * C).astype(np.int8)
        totals = rng.integers(0, 200, (2, R * C)).astype(np.int64)
        t_dense = rng.integers(4, 60, R).astype(np.float64)
        x = (rng.random((K, N)) < 0.7).view(np.uint8)
        tail = (4.0, 1.25, 4.0, 2, 0.5)
        want = ws_step_stream(x, k_b, S.indptr, S.indices, S.data, t_dense, choice, *totals,
                              *tail)
        layout = _by_columns(None, R, C, k_b, S, choice, *totals)
        table = ws_table(*layout[:3], R)
        assert np.array_equal(table, counts)
        got = ws_step_columns(x, k_b, *layout[:3], t_dense, *layout[3:], *tail, True, None,
                              None, None, table)
        for a, b in zip(got, want[:7]):
            assert _same(a, b), (R, C, N, a, b)


def test_a_table_unlike_the_entries_is_refused():
    """ws_step_columns refuses a table of another shape, or (when checking) one whose
    bytes differ from the entries, with a message (in a child process)."""
    from conftest import assert_refused_in_child
    assert_refused_in_child("""
        import numpy as np
        from wsekern._step_cost import ws_step_columns, ws_table
        k_b = np.array([0, 2], np.int_)
        s_indptr = np.array([0, 1, 2], np.int64)
        s_rows, s_data = np.array([0, 1], np.int32), np.array([3, 1], np.int32)
        table = ws_table(s_indptr, s_rows, s_data, 2)
        ok = (np.ones((2, 4), np.uint8), k_b, s_indptr, s_rows, s_data, np.ones(2),
              np.zeros(2, np.int8), np.zeros(2, np.int64), np.zeros(2, np.int64), 1.0, 1.0,
              1.0, 1, 1.0, True, None, None, None)
        ws_step_columns(*ok, table)
        extra = table.copy()
        extra[0, 1] = 1
        cases = [lambda: ws_step_columns(*ok, table[:1]),
                 lambda: ws_step_columns(*ok, np.zeros((2, 3), np.uint8)),
                 lambda: ws_step_columns(*ok, table + np.uint8(1)),
                 lambda: ws_step_columns(*ok, extra),
                 lambda: ws_step_columns(*ok, table.astype(np.int32))]
    """, 5, needles=("table", "Buffer dtype mismatch"))


def _chain_reference(work, first, last, Lg, hop, ramp, lat, launch, task, cushion, f,
                     dt=1.0):
    """The chain's rounds (src/_chain.pxd) in plain Python floats: positions are the
    columns of samples-major (N x P) work, first and last, each shifted by ``f``; a link
    holds a wavelet ``dt`` cycles (sums max(dt, 1) apart, a ramp's first sums dt after
    the round's end of stream)."""
    def dmax(a, b):
        return a if a > b else b
    N, P = work.shape
    delta = hop + 2 * ramp + lat
    sp = dt if dt > 1.0 else 1.0
    Ls = float(Lg) if sp == 1.0 else float(Lg - 1) * sp + 1.0
    E, free1, free2, hist, done = [0.0] * P, [0.0] * P, [0.0] * P, [], 0.0
    for n in range(N):
        G = []
        for c in range(P):
            start = dmax(dmax(E[c], free2[c]), float(first[n, c]) + f)
            E[c] = dmax(start + float(work[n, c]), (float(last[n, c]) + f) + task)
            G.append(dmax(E[c], free1[c]))
        hist.append(G)
        free = list(G)
        if P == 1 or Lg == 0:
            D = G[P - 1] + task
        else:
            h = G[0] + launch + ramp
            tl = h + Ls - 1
            free[0] = tl - ramp - lat + 1
            for c in range(1, P - 1):
                h = dmax(h + delta, dmax(G[c], (float(last[n, c]) + f) + dt) + lat + ramp)
                tl = dmax(tl + delta, h + Ls - 1)
                free[c] = tl - ramp - lat + 1
            D = dmax(dmax(tl + hop + ramp, G[P - 1] + Lg - 1),
                     ((float(last[n, P - 1]) + f) + dt) + Ls - 1) + 1 + task
            ahead = n * Lg + Lg - 1 - int(cushion)
            if ahead >= 0:
                nb, back = divmod(ahead, Lg)
                for c in range(P - 1):
                    free[c] = dmax(free[c], hist[nb][c + 1] + back * sp + 1)
        free[P - 1] = D
        free2, free1 = free1, free
        done = dmax(done, D)
    return done


@pytest.mark.parametrize("C", [1, 2, 7, 8, 9, 16, 17, 40, 130])
@pytest.mark.parametrize("special", [(), (0.0, -0.0, np.inf, -np.inf, np.nan)],
                         ids=["finite", "zeros-inf-nan"])
def test_the_chain_is_the_same_on_each_path(simd_path, C, special):
    """The columns' chain run in ws_step_columns (8 positions wide on the AVX-512 path)
    against grid_pipeline and a plain-Python recurrence: the same float, NaN and the
    infinities included (in the task times, the task, the fill), 1 to 130 positions (whole lanes and
    tails), every L from 0 to 3 and cushions below and above a round."""
    from wsekern._pipeline import grid_pipeline
    rng = np.random.default_rng(C * 11 + len(special))
    for trial in range(6):
        R, N = int(rng.integers(1, 20)), int(rng.integers(1, 10))
        x_nz, k_b, S, choice, comp_total, dense_total, t_dense, tail = _case(rng, R, C, N,
                                                                              special)
        if special and trial % 2:           # the task (every round's) infinite or NaN
            tail = (float(rng.choice(special[2:])),) + tail[1:]
        task = tail[0]
        x = x_nz.view(np.uint8)
        want = ws_step_stream(x, k_b, S.indptr, S.indices, S.data, t_dense, choice,
                              comp_total, dense_total, *tail)
        layout = _by_columns(None, R, C, k_b, S, choice, comp_total, dense_total)
        L = np.array([trial % 4], np.int_)
        fill = float(rng.choice(special)) if special and trial % 3 == 0 else \
            float(rng.integers(0, 30))
        pipe = (L, 1.0, 2.0, float(rng.integers(1, 5)), 9.0, float(rng.integers(0, 6)), fill)
        work, first, last = want[:3]
        est = grid_pipeline(work.T[None], first.T[None], last.T[None], L, 1.0, 2.0, pipe[3],
                            9.0, task, pipe[5], np.array([pipe[6]]))
        ref = _chain_reference(work, first, last, int(L[0]), 1.0, 2.0, pipe[3], 9.0, task,
                               pipe[5], pipe[6])
        assert _same(float(est), ref), (trial, est, ref)
        for path in ("avx512", "baseline"):
            simd_path(path)
            got = ws_step_columns(x, k_b, *layout[:3], t_dense, *layout[3:], *tail, False,
                                  pipe)
            assert _same(got[7], ref), (path, trial, got[7], ref)
