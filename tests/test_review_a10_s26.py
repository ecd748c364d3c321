"""Review of stop 43's step costing (review_a10): a kept WsStep's VNNI pass over its table
by quads of k (src/_step_cost.pyx ``wsk_table_quads_vnni``, acct26) against
ws_step_columns, which never takes it, at the edges of what that pass accepts: batches of
255 and 256 samples (A[k] one unsigned byte or not), counts of 127 and 128 in the table
(one signed byte or not), PE columns of rows off the quads and off the 16 lanes, and a
column of 65,536 rows of W at the largest counts (its sums just below 2**31) and one of
66,312 (255 * 127 * 66,312 passes 2**31: summed in one 32-bit lane it would wrap). The
cases check that the kept step took the pass where it should, so that they could tell."""
import numpy as np
import pytest
import scipy.sparse as sps
from test_step_blocks_simd import _same
from test_strategy_step_plan import _by_columns

from wsekern import _step_cost
from wsekern._step_cost import WsStep, ws_dead_columns, ws_pack_entries, ws_step_columns

PIPE = (np.array([3], np.int_), 1.0, 7.0, 16.0, 5.0, 2.0, 9.0)
TAIL = (4.0, 22.0, 4.0, 2, 0.5)            # task, scalar, eos, wavelets per value, dt


@pytest.fixture
def quads(monkeypatch):
    """The kept steps' quad tables (None where the VNNI pass declines), in order."""
    made = []
    orig = _step_cost._quad_table

    def counted(table, k_b):
        q = orig(table, k_b)
        made.append(q)
        return q
    monkeypatch.setattr(_step_cost, "_quad_table", counted)
    before = _step_cost.use_simd_path("avx512")
    yield made
    _step_cost.use_simd_path(before)


# this CPU runs the pass: a one-cell table is laid out by quads (None without VNNI)
VNNI = _step_cost._quad_table(np.ones((1, 1), np.uint8), np.array([0, 1])) is not None


def _structure(rng, K, R, C, k_b, top, per_k):
    """W's entries per column k (row blocks distinct, so each count is one table cell), up
    to ``per_k`` a column, counts in 1..top."""
    pe_col = np.searchsorted(k_b, np.arange(K), side="right") - 1
    ks, rs = [], []
    for k in range(K):
        r = rng.choice(R, size=int(rng.integers(0, min(per_k, R) + 1)), replace=False)
        ks += [k] * len(r)
        rs += list(r)
    ks, rs = np.array(ks, int), np.array(rs, int)
    data = rng.integers(1, top + 1, len(ks)).astype(np.int64)
    S = sps.csr_array((data, (ks, rs * C + pe_col[ks])), shape=(K, R * C))
    S.sort_indices()
    S.indptr, S.indices = S.indptr.astype(np.int64), S.indices.astype(np.int32)
    return S


def _args(rng, K, R, C, k_b, S, choice=None):
    if choice is None:
        choice = rng.integers(0, 3, R * C).astype(np.int8)
    comp = rng.integers(-50, 200, R * C).astype(np.int64)
    dense = rng.integers(-50, 200, R * C).astype(np.int64)
    t_dense = rng.integers(4, 60, R).astype(np.float64) + rng.random(R)
    layout = _by_columns(None, R, C, k_b, S, choice, comp, dense)
    dead = ws_dead_columns(t_dense, *layout[3:], *TAIL[:2])
    packed = ws_pack_entries(layout[1], layout[2])
    table = _step_cost.ws_table(*layout[:3], R)
    bound = np.maximum(layout[4].reshape(C, R), layout[5].reshape(C, R)).max(axis=1)
    return (k_b, *layout[:3], t_dense, *layout[3:], *TAIL, True, PIPE, dead, packed, table,
            bound.astype(np.int64))


def _check(args, K, x, path):
    _step_cost.use_simd_path(path)
    got = WsStep(K, *args).run(x)
    want = ws_step_columns(x, *args)
    for a, b in zip(got, (want[3], want[4], want[5], want[7])):
        assert _same(a, b), (path, x.shape, a, b)


@pytest.mark.parametrize("R", [1, 15, 16, 17, 33])
def test_the_quads_pass_gives_the_table_rows_figures_at_its_edges(quads, R):
    rng = np.random.default_rng(R)
    for top in (127, 128):
        C = 3
        heights = rng.integers(0, 11, C)
        heights[0] = 9                              # two quads and one row
        K = int(heights.sum())
        k_b = np.concatenate([[0], np.cumsum(heights)]).astype(np.int_)
        S = _structure(rng, K, R, C, k_b, top, 4)
        S.data[:1] = top                            # the top count is in the table
        args = _args(rng, K, R, C, k_b, S)
        assert args[-2] is not None and args[-2].max() == top
        for N in (1, 7, 255, 256):
            for dens in (1.0, 0.6):                 # A[k] = N in every row, or fewer
                x = (rng.random((K, N)) < dens).view(np.uint8)
                if N > 1:
                    x[:, 0] = 200                   # a byte other than 1 counts as one
                for path in ("avx512", "baseline"):
                    _check(args, K, x, path)
        if VNNI:
            assert (quads[-1] is not None) == (top <= 127)


def test_a_column_of_65536_rows_at_the_largest_counts(quads):
    """Every sum 65,536 * 255 * 127, just below 2**31 (the pass's 32-bit lanes), taken by
    the pass; at 66,312 rows the sum passes 2**31 - 1: whichever pass runs, the same
    figures."""
    R, C = 1, 1
    for K in (65536, 66312):
        k_b = np.array([0, K], np.int_)
        S = sps.csr_array((np.full(K, 127, np.int64), np.zeros(K, np.int32),
                           np.arange(K + 1, dtype=np.int64)), shape=(K, 1))
        # the block compressed: its time is the scalar work's (a wrapped sum would show)
        args = _args(np.random.default_rng(K), K, R, C, k_b, S, np.ones(1, np.int8))
        x = np.ones((K, 255), np.uint8)
        _check(args, K, x, "avx512")
        if VNNI and K == 65536:
            assert quads[-1] is not None
