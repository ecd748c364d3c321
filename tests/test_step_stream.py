"""X's pass in the step kernels (src/wsk_stream.h): ws_step_columns and dense_stream read
X's pattern K-major (X itself, or a copy made by 16 x 16 byte tiles or byte by byte), count
each PE column's nonzeros per sample, and write the per-sample figures sample after sample
across the columns (8 columns wide on the AVX-512 path). Checked on each path against
independent references: NumPy's sums for dense_stream, ws_step_stream (one pass over X in
its own loop) for ws_step_columns, the plain-Python chain for both chains; X in every
layout (K-major, sample-major, pitched, strided, reversed), sizes that are not multiples of
a tile (K, N from 0 to 50), bytes other than 0 and 1, and NaN and the infinities in the
floats the figures take."""
import numpy as np
import pytest
from test_step_blocks_simd import _case, _chain_reference, _same
from test_strategy_step_plan import _by_columns

from wsekern._screen import dense_stream
from wsekern._step_cost import ws_dead_columns, ws_pack_entries, ws_step_columns, ws_step_stream

PATHS = ("avx512", "baseline")
SPECIAL = (0.0, -0.0, np.inf, -np.inf, np.nan)


def _layouts(x):
    """``x`` (K x N bytes) as views of one content in each layout the pass takes."""
    K, N = x.shape
    out = {"k-major": np.ascontiguousarray(x),
           "sample-major": np.ascontiguousarray(x.T).T}
    wide = np.full((N, K + 7), 9, np.uint8)            # a batch's slice: pitch K + 7
    wide[:, 3:K + 3] = x.T
    out["pitched"] = wide[:, 3:K + 3].T
    big = np.full((2 * K + 1, 3 * N + 2), 7, np.uint8)
    big[1::2, 2::3][:K, :N] = x
    out["strided"] = big[1::2, 2::3][:K, :N]
    out["reversed"] = np.ascontiguousarray(x[::-1, ::-1])[::-1, ::-1]
    out["sample-major reversed"] = np.ascontiguousarray(x.T[::-1])[::-1].T
    for name, v in out.items():
        assert np.array_equal(v, x), name
    return out


def _pattern(rng, K, N, raw):
    """K x N bytes: 0/1 at a random density, or any byte (``raw``)."""
    nz = rng.random((K, N)) < rng.choice([0.0, 0.1, 0.5, 1.0])
    if not raw:
        return nz.view(np.uint8)
    return np.where(nz, rng.integers(1, 256, (K, N)), 0).astype(np.uint8)


def _dense_reference(x, k_b, tmax, eos, wpv, dt, fill):
    """dense_stream's figures in NumPy: a[n, c] the sum of column c's bytes of sample n."""
    K, N = x.shape
    C = len(k_b) - 1
    a = np.zeros((N, C), np.int64)
    for c in range(C):
        a[:, c] = x[k_b[c]:k_b[c + 1]].sum(axis=0, dtype=np.int64)
    v = a * wpv + 1
    with np.errstate(invalid="ignore"):                # inf - inf, 0 * inf: NaN, as in C
        cum = np.cumsum(v, axis=0) * dt
        work = a * tmax + eos
        first = (cum - v * dt) + fill
        last = (cum - dt) + fill
    a_max = max(int(a.sum(axis=0).max(initial=0)), 0)
    v_max = max(int(v.sum(axis=0).max(initial=0)), 0)
    return work, first, last, a_max, v_max


def _bounds(rng, K, C):
    cuts = np.sort(rng.integers(0, K + 1, C - 1)) if C > 1 else np.zeros(0, int)
    return np.concatenate([[0], cuts, [K]]).astype(np.int_)


@pytest.mark.parametrize("K", [0, 1, 15, 16, 17, 33, 50])
@pytest.mark.parametrize("N", [0, 1, 7, 16, 17, 33])
def test_dense_stream_counts_x_in_any_layout_on_each_path(paths, K, N):
    """dense_stream against NumPy: the same work, first, last, a_max and v_max for every
    layout of X and both paths; X's bytes are summed as they are (0/1 and any byte)."""
    rng = np.random.default_rng(K * 100 + N)
    for trial in range(4):
        C = int(rng.integers(1, 12))
        k_b = _bounds(rng, K, C)
        x = _pattern(rng, K, N, raw=trial % 2 == 1)
        floats = [float(rng.integers(1, 40)) + 0.25, float(rng.integers(0, 5)), 1.5,
                  float(rng.integers(0, 9))]                   # tmax, eos, dt, fill
        if trial == 3:
            floats[int(rng.integers(0, 4))] = float(rng.choice(SPECIAL))
        tmax, eos, dt, fill = floats
        wpv = int(rng.integers(1, 4))
        want = _dense_reference(x, k_b, tmax, eos, wpv, dt, fill)
        for path in PATHS:
            paths(path)
            for name, view in _layouts(x).items():
                got = dense_stream(view, k_b, tmax, eos, wpv, dt, fill)
                assert len(got) == 5
                for g, w in zip(got, want):
                    assert _same(g, w), (path, name, trial, g, w)


@pytest.mark.parametrize("C", [1, 7, 8, 9, 17, 40])
def test_dense_streams_chain_is_the_same_on_each_path(paths, C):
    """dense_stream's chain (8 positions wide on the AVX-512 path) against the plain-Python
    recurrence, NaN and the infinities included (in tmax, the task, the arrays)."""
    rng = np.random.default_rng(C)
    for trial in range(6):
        K, N = int(rng.integers(0, 40)), int(rng.integers(1, 10))
        k_b = _bounds(rng, K, C)
        x = _pattern(rng, K, N, raw=False)
        tmax = float(rng.choice(SPECIAL)) if trial % 3 == 2 else 12.5
        task = float(rng.choice(SPECIAL[2:])) if trial % 3 == 1 else 4.0
        L = np.array([trial % 4], np.int_)
        pipe = (L, 1.0, 2.0, float(rng.integers(1, 5)), 9.0, task, float(rng.integers(0, 6)))
        work, first, last, _, _ = _dense_reference(x, k_b, tmax, 1.0, 2, 1.0, 3.0)
        ref = _chain_reference(work, first, last, int(L[0]), 1.0, 2.0, pipe[3], 9.0, task,
                               pipe[6], 0.0)
        for path in PATHS:
            paths(path)
            got = dense_stream(np.ascontiguousarray(x.T).T, k_b, tmax, 1.0, 2, 1.0, 3.0, pipe)
            assert _same(got[5], ref), (path, trial, got[5], ref)


@pytest.mark.parametrize("K_cols", [(1, 1), (15, 2), (16, 3), (17, 4), (33, 5), (50, 9)])
@pytest.mark.parametrize("N", [0, 1, 15, 16, 17, 40])
def test_ws_step_columns_counts_x_in_any_layout_on_each_path(paths, K_cols, N):
    """ws_step_columns against ws_step_stream (its own pass over a K-major X): every figure
    and the chain equal for every layout of X, both paths, X's bytes any value (a nonzero
    counts once), and NaN and the infinities in the block times, eos and dt."""
    K_min, C = K_cols
    rng = np.random.default_rng(K_min * 1000 + N)
    for trial in range(4):
        R = int(rng.integers(1, 20))
        special = SPECIAL if trial >= 2 else ()
        x_nz, k_b, S, choice, comp_total, dense_total, t_dense, tail = _case(rng, R, C, N,
                                                                              special)
        K = x_nz.shape[0]
        x = _pattern(rng, K, N, raw=trial % 2 == 1)
        if trial == 3:                      # eos or dt: a zero, an infinity or NaN
            i = int(rng.choice([2, 4]))
            tail = tail[:i] + (float(rng.choice(SPECIAL)),) + tail[i + 1:]
        if trial == 2:
            # a sample with no nonzero in a column where a compressed block's share (+0.0)
            # ties a dense one's time (-0.0): the maximum's sign (the later one's) reaches
            # work through eos = -0.0
            t_dense[:] = -0.0
            choice[:] = np.arange(choice.size) % 2
            tail = tail[:2] + (-0.0,) + tail[3:]
            x[:, :1] = 0
        want = ws_step_stream(np.ascontiguousarray(x), k_b, S.indptr, S.indices, S.data,
                              t_dense, choice, comp_total, dense_total, *tail)
        layout = _by_columns(None, R, C, k_b, S, choice, comp_total, dense_total)
        dead = ws_dead_columns(t_dense, *layout[3:], *tail[:2])
        packed = ws_pack_entries(layout[1], layout[2])
        pipe = (np.array([trial % 3], np.int_), 1.0, 2.0, 3.0, 9.0, 2.0, 5.0)
        ref = _chain_reference(*want[:3], trial % 3, 1.0, 2.0, 3.0, 9.0, tail[0], 2.0, 5.0)
        for path in PATHS:
            paths(path)
            for name, view in _layouts(x).items():
                got = ws_step_columns(view, k_b, *layout[:3], t_dense, *layout[3:], *tail,
                                      True, pipe, dead, packed)
                assert len(got) == 8
                for g, w in zip(got, want[:7] + (ref,)):
                    assert _same(g, w), (path, name, trial, g, w)


def test_a_wpv_whose_sums_could_wrap_is_refused():
    """The samples' pass sums a * wpv + 1 in int64: dense_stream, ws_step_columns and
    ws_step_stream refuse a negative wpv, or one past the bound for X's K x N, with a
    message (in a child process); the bound itself is taken, and its sum is exact."""
    from conftest import assert_refused_in_child
    assert_refused_in_child("""
        import numpy as np
        from wsekern._screen import dense_stream
        from wsekern._step_cost import ws_step_columns, ws_step_stream
        x = np.full((2, 4), 255, np.uint8)
        k_b = np.array([0, 2], np.int_)
        most = (2 ** 63 - 1 - 4) // (255 * 2 * 4)
        got = dense_stream(x, k_b, 1.0, 1.0, most, 1.0, 0.0)
        assert got[4] == 4 * (510 * most + 1), got
        s_indptr = np.array([0, 1, 2], np.int64)
        s_rows, s_data = np.array([0, 1], np.int32), np.array([3, 1], np.int32)
        head = (x, k_b, s_indptr, s_rows, s_data, np.ones(2), np.zeros(2, np.int8),
                np.zeros(2, np.int64), np.zeros(2, np.int64), 1.0, 1.0, 1.0)
        ws_step_columns(*head, most, 1.0)
        stream = head[:4] + (s_data.astype(np.int64),) + head[5:]
        ws_step_stream(*stream, most, 1.0)
        cases = [lambda w=w, f=f: f(w) for w in (-1, most + 1, 2 ** 62)
                 for f in (lambda w: dense_stream(x, k_b, 1.0, 1.0, w, 1.0, 0.0),
                           lambda w: ws_step_columns(*head, w, 1.0),
                           lambda w: ws_step_stream(*stream, w, 1.0))]
        # a broadcast X of 2**40 x 2**20 bytes: 255 K N would wrap; only wpv 0 is taken
        huge = np.lib.stride_tricks.as_strided(x, (2 ** 40, 2 ** 20), (0, 0))
        cases.append(lambda: dense_stream(huge, np.array([0, 1]), 1.0, 1.0, 1, 1.0, 0.0))
    """, 10, needles=("wpv must be within",))


@pytest.mark.parametrize("C", [1, 2, 3, 8, 9, 17, 40, 300])
def test_dense_streams_exact_scan_is_the_recurrence_on_each_path(paths, C):
    """Where tmax, eos, dt, fill and the chain's constants are whole numbers (the
    simulator's configs), dense_stream's chain takes its exact scan (src/wsk_chain.h: one
    running maximum): the plain-Python recurrence's float on both paths, negative numbers,
    -0.0 and values near the scan's bound included; past the bound (tmax 2**45) or with a
    fraction, the general scan, the same float."""
    rng = np.random.default_rng(1000 + C)
    whole = (0.0, -0.0, 1.0, 2.0, 3.0, 5.0, -2.0, 19.0)
    for trial in range(8):
        K, N = int(rng.integers(0, 3 * C + 5)), int(rng.integers(1, 40))
        k_b = _bounds(rng, K, C)
        x = _pattern(rng, K, N, raw=trial % 2 == 1)
        tmax, eos, dt, fill = (float(rng.choice(whole)) for _ in range(4))
        if trial == 5:
            tmax = 2.0 ** 33 + 1.0                 # large, still inside the bound
        elif trial == 6:
            tmax = 2.0 ** 45                       # past it: the general scan
        elif trial == 7:
            fill += 0.5                            # not whole: the general scan
        hop, ramp, lat, launch, task = (float(rng.choice(whole)) for _ in range(5))
        L = np.array([int(rng.integers(0, 7))], np.int_)
        cushion = float(rng.integers(0, 12))
        pipe = (L, hop, ramp, lat, launch, task, cushion)
        wpv = int(rng.integers(1, 4))
        work, first, last, _, _ = _dense_reference(x, k_b, tmax, eos, wpv, dt, fill)
        ref = _chain_reference(work, first, last, int(L[0]), hop, ramp, lat, launch, task,
                               cushion, 0.0, dt)
        for path in PATHS:
            paths(path)
            got = dense_stream(np.ascontiguousarray(x.T).T, k_b, tmax, eos, wpv, dt, fill,
                               pipe)
            assert _same(got[5], ref), (path, trial, got[5], ref)
