"""A kept WsStep's scalar work per block from its table laid out by quads of k (on the
AVX-512 path where the CPU has VNNI: src/_step_cost.pyx wsk_table_quads_vnni) against the
same step without a table (W's entries one by one) and against ws_step_stream: the same
figures, for PE columns of 0 to 70 rows of X (whole quads, a partial one, none), 1 to 127
row blocks (whole 16-block registers and tails), counts up to 127 (and above: the rows
one by one), batches of 1 to 256 samples (255 is the bytes' bound; 256 takes the rows),
PE columns that no activation reaches, with and without their figures worked out once."""
import numpy as np
import pytest
from test_step_blocks_simd import _same, entries_of_counts
from test_step_prepared import WS_PIPELINES, _by_columns

from wsekern import _step_cost
from wsekern._step_cost import WsStep, ws_dead_columns, ws_step_stream, ws_table


@pytest.fixture
def simd_path():
    """Set the pass's path for a test, and put back the one in use."""
    before = _step_cost.use_simd_path("avx512")
    yield _step_cost.use_simd_path
    _step_cost.use_simd_path(before)


def _structure(rng, R, case):
    """k_b, W's entries (K x R * C CSR) and its counts per (k, row block) for a random W."""
    C = int(rng.integers(1, 6))
    heights = rng.integers(0, 10, C)
    if case == 0:
        heights[-1] = 70                # quads past a register's worth of k
    heights[0] = max(heights[0], 1)
    K = int(heights.sum())
    k_b = np.concatenate([[0], np.cumsum(heights)]).astype(np.int_)
    top = 127 if case < 4 else 200      # above 127 the table by quads is not made
    counts = rng.integers(0, top + 1, (K, R)) * (rng.random((K, R)) < 0.5)
    counts[0, 0] = top
    return K, C, k_b, entries_of_counts(counts, k_b), counts


@pytest.mark.parametrize("path", ["avx512", "baseline"])
@pytest.mark.parametrize("R", [1, 15, 16, 17, 33, 127])
@pytest.mark.parametrize("with_dead", [False, True])
def test_the_table_by_quads_gives_the_entries_figures(simd_path, path, R, with_dead):
    simd_path(path)
    rng = np.random.default_rng(R + 1000 * with_dead)
    tail = (4.0, 1.25, 4.0, 2, 0.5)        # task, scalar, eos, wpv, dt
    for case in range(5):
        K, C, k_b, S, counts = _structure(rng, R, case)
        choice = rng.integers(0, 3, R * C).astype(np.int8)
        totals = rng.integers(0, 200, (2, R * C)).astype(np.int64)
        t_dense = rng.integers(4, 60, R).astype(np.float64) + rng.random(R)
        layout = _by_columns(None, R, C, k_b, S, choice, *totals)
        table = ws_table(*layout[:3], R)
        assert np.array_equal(table, counts)
        pipe = WS_PIPELINES[case % 2]
        dead = ws_dead_columns(t_dense, *layout[3:], *tail[:2]) if with_dead else None
        quads = WsStep(K, k_b, *layout[:3], t_dense, *layout[3:], *tail, True, pipe, dead,
                       None, table)
        rows = WsStep(K, k_b, *layout[:3], t_dense, *layout[3:], *tail, True, pipe, dead)
        for N in (1, 7, 32, 255, 256):
            x = rng.random((K, N)) < rng.choice([0.1, 0.6, 1.0])
            for c in rng.integers(0, C, C // 2 + 1):     # columns no activation reaches
                x[k_b[c]:k_b[c + 1]] = False
            for xv in (x.view(np.uint8), np.asfortranarray(x).view(np.uint8)):
                got, want = quads.run(xv), rows.run(xv)
                assert all(_same(a, b) for a, b in zip(got, want)), (R, case, N, got, want)
            ref = ws_step_stream(x.view(np.uint8), k_b, S.indptr, S.indices, S.data, t_dense,
                                 choice, *totals, *tail)
            assert (got[0], got[1], got[2]) == (float(ref[3]), int(ref[4]), int(ref[5]))
