"""The per-step plans of WaferStrategy (training.step_plan / planned_step): a step costed
from its plan is the step a full costing gives, whatever changed since the plan was made
(the weight's pattern, the batch, the sequence length, the kernel's dtype); and the one
pass over the PE blocks (src/_step_cost.pyx) counts each block's nonzero products as a
direct NumPy count does."""
import numpy as np
import pytest
import scipy.sparse as sps

import wsekern as wk
from wsekern import nn
from wsekern._pipeline import grid_pipeline
from wsekern._step_cost import ws_dead_columns, ws_pack_entries, ws_step_columns, ws_step_stream
from wsekern.nn import columns
from wsekern.nn import layers as L
from wsekern.nn.strategy import LayerPlacement
from wsekern.wafer import analytic, training
from wsekern.wafer.placement import Operands, WeightStats


def test_a_step_counts_each_blocks_nonzero_products_as_numpy_does():
    """Per PE block: the products of a nonzero weight and a nonzero activation over the
    batch, against the block of W's pattern times the block of X's, summed; and the step's
    cycles are the placed report's (weight_stationary, exact=False)."""
    rng = np.random.default_rng(3)
    cfg = wk.WaferConfig.small(16, 16)
    M, K, N = 90, 70, 13
    W = sps.random(M, K, density=0.15, format="csr", random_state=4, dtype=np.float32)
    W.data[:] = 1.0
    x_nz = rng.random((K, N)) < 0.3
    x_nz[5] = False                     # a column of W no activation reaches
    stats = WeightStats(W)
    for region in [(0, 0, 4, 5), (0, 0, 7, 3), (0, 0, 1, 1)]:
        R, C = region[2], region[3]
        st = analytic._step_structure(stats, cfg, region)
        S = st["S"]
        choice, comp_total, dense_total = _row_major(st)
        out = ws_step_stream(x_nz.view(np.uint8), st["k_b"], S.indptr, S.indices, S.data,
                             st["t_dense"], choice, comp_total, dense_total,
                             float(cfg.task_cycles), float(cfg.scalar_cycles_per_element),
                             float(cfg.task_cycles), int(cfg.wavelets_per_sparse_value), 1.0)
        m_b, _ = stats.row_block(R)
        k_b, _ = stats.col_block(C)
        w_nz = W.toarray() != 0
        want = np.array([[int((w_nz[m_b[r]:m_b[r + 1], k_b[c]:k_b[c + 1]].astype(np.int64)
                               @ x_nz[k_b[c]:k_b[c + 1]]).sum()) for c in range(C)]
                         for r in range(R)])
        assert np.array_equal(out[-1].reshape(R, C), want)
        # a step passes the structure checked once (check=False): the same figures
        unchecked = ws_step_stream(x_nz.view(np.uint8), st["k_b"], S.indptr, S.indices,
                                   S.data, st["t_dense"], choice, comp_total,
                                   dense_total, float(cfg.task_cycles),
                                   float(cfg.scalar_cycles_per_element),
                                   float(cfg.task_cycles), int(cfg.wavelets_per_sparse_value),
                                   1.0, False)
        for a, b in zip(out, unchecked):
            assert np.array_equal(a, b) and type(a) is type(b)
        assert want.sum() == int((w_nz.astype(np.int64) @ x_nz).sum())
        got = analytic.weight_stationary_cycles(stats, x_nz, cfg, region)
        rep = analytic.weight_stationary(W, x_nz.astype(np.float32), cfg, region, exact=False,
                                         full=False)
        assert got == (rep.cycles, rep.cycles_lower, rep.sram_peak_bytes)
        assert rep.macs_useful == want.sum()


def _row_major(st):
    """The step structure's block arrays (kept numbered b = c * R + r) as b = r * C + c."""
    R, C = st["R"], st["C"]
    return tuple(np.ascontiguousarray(st[k].reshape(C, R).T, dtype).ravel()
                 for k, dtype in (("choice_cm", np.int8), ("comp_total_cm", np.int64),
                                  ("dense_total_cm", np.int64)))


def _by_columns(K, R, C, k_b, S, choice, comp_total, dense_total):
    """ws_step_stream's row-major structure laid out for ws_step_columns."""
    rows = (S.indices // C).astype(np.int32)
    return (S.indptr, rows, S.data.astype(np.int32),
            *(np.ascontiguousarray(a.reshape(R, C).T).ravel()
              for a in (choice, comp_total, dense_total)))


def _random_entries(rng, R, C, per_k=4):
    """A random step structure's K, PE column bounds k_b (C + 1) and entries S (K x R * C
    CSR: W's nonzeros per column k and block r * C + k's PE column, counts 1-4), up to
    ``per_k`` entries per column of W on average."""
    K = C + int(rng.integers(0, 3 * C + 1))
    cuts = np.sort(rng.integers(0, K + 1, C - 1)) if C > 1 else np.zeros(0, int)
    k_b = np.concatenate([[0], cuts, [K]]).astype(np.int_)
    pe_col = np.searchsorted(k_b, np.arange(K), side="right") - 1
    nnz = int(rng.integers(0, per_k * K + 1))
    wk_ = rng.integers(0, K, nnz) if K else np.zeros(0, int)
    wr = rng.integers(0, R, nnz)
    S = sps.csr_array((rng.integers(1, 5, nnz).astype(np.int64),
                       (wk_, wr * C + pe_col[wk_])), shape=(K, R * C))
    S.sum_duplicates()
    S.indptr, S.indices = S.indptr.astype(np.int64), S.indices.astype(np.int32)
    return K, k_b, S


@pytest.mark.parametrize("R, C, N", [(5, 4, 9), (1, 6, 3), (7, 1, 5), (3, 3, 1), (4, 5, 0),
                                     (6, 8, 40)])
def test_the_step_pass_down_each_pe_column_gives_the_same_figures(R, C, N):
    """ws_step_columns (each PE column's activations, scalar work and formats together)
    against ws_step_stream (one pass over X, one over the blocks): every figure equal, of
    the same type, for random format choices 0/1/2, whole and fractional task cycles (an
    infinite and a NaN one too), columns of W no activation reaches, and PE columns with no
    X row."""
    rng = np.random.default_rng(R * 100 + C * 10 + N)
    for trial in range(12):
        K, k_b, S = _random_entries(rng, R, C)
        choice = rng.integers(0, 3, R * C).astype(np.int8)
        if trial % 3 == 0:
            choice[:] = 2
        comp_total = rng.integers(100, 200, R * C).astype(np.int64)
        dense_total = rng.integers(100, 200, R * C).astype(np.int64)
        t_dense = rng.integers(4, 60, R).astype(np.float64)
        if trial % 4 == 1:
            t_dense += rng.random(R)
        if trial in (5, 10):                    # an infinite or NaN task time: no branch
            t_dense[int(rng.integers(0, R))] = np.inf if trial == 5 else np.nan
        x_nz = rng.random((K, N)) < rng.choice([0.0, 0.2, 0.7, 1.0])
        if K and trial % 2:
            x_nz[rng.integers(0, K)] = False
        if C and trial % 3 == 1:                # a PE column no activation reaches
            c = int(rng.integers(0, C))
            x_nz[k_b[c]:k_b[c + 1]] = False
        task, scalar, eos = (4.0, 22.0, 4.0) if trial % 5 else (3.5, 1.25, 2.0)
        x = x_nz.view(np.uint8)
        if trial % 2:                          # samples as rows, seen transposed
            x = np.ascontiguousarray(x.T).T
        tail = (task, scalar, eos, 2, 0.5)
        want = ws_step_stream(x, k_b, S.indptr, S.indices, S.data, t_dense, choice,
                              comp_total, dense_total, *tail)
        cols = _by_columns(K, R, C, k_b, S, choice, comp_total, dense_total)
        narrow = cols[:4] + tuple(a.astype(np.int32) for a in cols[4:])   # int32 totals
        for check, layout in ((True, cols), (False, cols), (False, narrow)):
            got = ws_step_columns(x, k_b, *layout[:3], t_dense, *layout[3:], *tail, check)
            assert len(got) == 7
            for a, b in zip(got, want[:7]):
                assert type(a) is type(b)
                assert np.array_equal(a, b, equal_nan=True), (trial, a, b)
            # the columns no activation reaches, their figures worked out once: the same
            dead = ws_dead_columns(t_dense, *layout[3:], task, scalar)
            got = ws_step_columns(x, k_b, *layout[:3], t_dense, *layout[3:], *tail, check,
                                  None, dead)
            for a, b in zip(got, want[:7]):
                assert type(a) is type(b)
                assert np.array_equal(a, b, equal_nan=True), (trial, "dead", a, b)
            # W's entries packed in one uint16 each (row block | count << 8): the same
            packed = ws_pack_entries(layout[1], layout[2])
            assert packed.dtype == np.uint16 and np.array_equal(packed & 0xFF, layout[1])
            assert np.array_equal(packed >> 8, layout[2])
            for d in (None, dead):
                got = ws_step_columns(x, k_b, *layout[:3], t_dense, *layout[3:], *tail,
                                      check, None, d, packed)
                for a, b in zip(got, want[:7]):
                    assert type(a) is type(b)
                    assert np.array_equal(a, b, equal_nan=True), (trial, "packed", a, b)
        # with the columns' chain run in the same call: grid_pipeline's very float
        L = np.array([int(rng.integers(0, 4))], np.int_)
        pipe = (L, 1.0, 2.0, float(rng.integers(1, 5)), 9.0, float(rng.integers(0, 6)),
                float(rng.integers(0, 30)))
        got = ws_step_columns(x, k_b, *narrow[:3], t_dense, *narrow[3:], *tail, False, pipe)
        work, first, last = want[:3]
        est = grid_pipeline(work.T[None], first.T[None], last.T[None], L, 1.0, 2.0, pipe[3],
                            9.0, task, pipe[5], np.array([pipe[6]]))
        assert type(got[7]) is float and np.array_equal(got[7], est, equal_nan=True)
        dead = ws_dead_columns(t_dense, *narrow[3:], task, scalar)
        for packed in (None, ws_pack_entries(narrow[1], narrow[2])):
            got = ws_step_columns(x, k_b, *narrow[:3], t_dense, *narrow[3:], *tail, False,
                                  pipe, dead, packed)
            assert type(got[7]) is float and np.array_equal(got[7], est, equal_nan=True)
            for a, b in zip(got, want[:7]):
                assert np.array_equal(a, b, equal_nan=True), (trial, "dead+chain", a, b)


def test_the_packed_entries_hold_what_fits_in_a_byte_and_only_that():
    """ws_pack_entries packs row block and count into one uint16 where both lie in
    0..255 (the edges included) and gives None where either does not."""
    rows = np.array([0, 255, 7, 128], np.int32)
    data = np.array([255, 0, 1, 128], np.int32)
    packed = ws_pack_entries(rows, data)
    assert packed.dtype == np.uint16
    assert packed.tolist() == [0xFF00, 0x00FF, 0x0107, 0x8080]
    assert ws_pack_entries(np.zeros(0, np.int32), np.zeros(0, np.int32)).shape == (0,)
    for r, d in ((256, 1), (1, 256), (-1, 1), (1, -1), (2 ** 31 - 1, 1)):
        assert ws_pack_entries(np.array([3, r], np.int32), np.array([1, d], np.int32)) is None
    # a structure _step_structure makes: 16 row blocks, a few nonzeros per block and column
    cfg = wk.WaferConfig.small(16, 16)
    W = sps.random(300, 200, density=0.3, format="csr", random_state=3)
    st = analytic._step_structure(WeightStats(W), cfg, (0, 0, 16, 16))
    assert st["packed"] is not None
    assert np.array_equal(st["packed"], st["s_rows"] | (st["s_data"] << 8))
    # 300 nonzeros in one block's column: no packing, and the step is the report's still
    W = sps.csr_array(np.ones((300, 6), np.float32))
    st = analytic._step_structure(WeightStats(W), cfg, (0, 0, 1, 2))
    assert st["packed"] is None and st["s_data"].max() == 300
    x_nz = np.random.default_rng(1).random((6, 5)) < 0.6
    rep = analytic.weight_stationary(W, x_nz.astype(np.float32), cfg, (0, 0, 1, 2),
                                     exact=False, full=False)
    assert analytic.weight_stationary_cycles(WeightStats(W), x_nz, cfg, (0, 0, 1, 2)) == (
        rep.cycles, rep.cycles_lower, rep.sram_peak_bytes)


@pytest.mark.parametrize("M, K, R, C", [(90, 70, 4, 5), (40, 30, 1, 1), (12, 50, 12, 7),
                                        (30, 0, 3, 1), (0, 9, 1, 3), (60, 20, 7, 20)])
def test_the_entries_by_column_counted_in_one_table_are_scipys(M, K, R, C, monkeypatch):
    """_entries_by_column's dense count (bincount over K x R cells) against SciPy's
    sum_duplicates and transpose (the path beyond the cell limit): the same indptr,
    indices and counts, of the same dtypes, for random patterns with duplicate entries,
    empty columns and rows, an empty W."""
    rng = np.random.default_rng(M + K + R + C)
    for density in (0.0, 0.1, 0.6):
        nnz = int(density * M * K)
        rows, cols = rng.integers(0, max(M, 1), nnz), rng.integers(0, max(K, 1), nnz)
        order = np.argsort(rows, kind="stable")      # CSR that keeps the duplicates
        W = sps.csr_array((np.ones(nnz, np.float32), cols[order].astype(np.int32),
                           np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=M))])),
                          shape=(M, K))
        stats = WeightStats(W)
        assert len(stats.w_row) == nnz
        rb, cb = stats.row_block(R)[1], stats.col_block(C)[1]
        dense = analytic._entries_by_column(stats, rb, cb, R, C)
        monkeypatch.setattr(analytic, "_DENSE_COUNT_CELLS", -1)
        sparse = analytic._entries_by_column(stats, rb, cb, R, C)
        monkeypatch.undo()
        for a, b in ((dense.indptr, sparse.indptr), (dense.indices, sparse.indices),
                     (dense.data, sparse.data)):
            assert a.dtype == b.dtype and np.array_equal(a, b)
        assert dense.shape == sparse.shape == (K, R * C)
        assert dense.data.sum() == len(stats.w_row)


def test_the_packed_entries_are_refused_when_they_do_not_match():
    """ws_step_columns refuses a ``packed`` of another length, or (when checking) one
    that does not hold s_rows and s_data, and ws_pack_entries arrays of two lengths (in a
    child process: a segfault fails this test only)."""
    from conftest import assert_refused_in_child
    assert_refused_in_child("""
        import numpy as np
        from wsekern._step_cost import ws_pack_entries, ws_step_columns
        rows, data = np.array([0, 0], np.int32), np.array([1, 2], np.int32)
        ok = [np.ones((4, 2), np.uint8), np.array([0, 2, 4], np.int_),
              np.array([0, 1, 2, 2, 2], np.int64), rows, data, np.ones(1),
              np.zeros(2, np.int8), np.zeros(2, np.int64), np.zeros(2, np.int64), 4.0, 22.0,
              4.0, 2, 1.0, True, None, None]
        packed = ws_pack_entries(rows, data)
        ws_step_columns(*ok, packed)
        cases = [lambda: ws_step_columns(*ok, packed[:1]),
                 lambda: ws_step_columns(*ok, packed + np.uint16(1)),
                 lambda: ws_step_columns(*ok, packed + np.uint16(256)),
                 lambda: ws_step_columns(*ok, packed.astype(np.int32)),
                 lambda: ws_pack_entries(rows, data[:1])]
    """, 5, needles=("packed", "dtype", "one length"))


def test_the_dead_columns_figures_are_refused_when_they_do_not_match():
    """ws_dead_columns and ws_step_columns' ``dead`` refuse mismatched lengths with a
    message (in a child process: a segfault fails this test only)."""
    from conftest import assert_refused_in_child
    assert_refused_in_child("""
        import numpy as np
        from wsekern._step_cost import ws_dead_columns, ws_step_columns
        ok = [np.ones((4, 2), np.uint8), np.array([0, 2, 4], np.int_), np.zeros(5, np.int64),
              np.zeros(0, np.int32), np.zeros(0, np.int32), np.ones(1), np.zeros(2, np.int8),
              np.zeros(2, np.int64), np.zeros(2, np.int64), 4.0, 22.0, 4.0, 2, 1.0, True,
              None]
        dead = ws_dead_columns(np.ones(1), ok[6], ok[7], ok[8], 4.0, 22.0)
        ws_step_columns(*ok, dead)
        cases = [lambda: ws_step_columns(*ok, dead[:3]),
                 lambda: ws_step_columns(*ok, list(dead)),
                 lambda: ws_step_columns(*ok, (dead[0][:1],) + dead[1:]),
                 lambda: ws_dead_columns(np.ones(1), np.zeros(3, np.int8), ok[7], ok[8], 4.0,
                                         1.0),
                 lambda: ws_dead_columns(np.ones(1), ok[6], ok[7], ok[8].astype(np.int32),
                                         4.0, 1.0),
                 lambda: ws_dead_columns(np.ones(0), ok[6], ok[7], ok[8], 4.0, 1.0)]
    """, 6, needles=("dead", "block arrays", "dtype", "R must"))


def test_the_column_pass_refuses_blocks_that_do_not_match():
    """ws_step_columns refuses out-of-range rows and mismatched lengths with a message (in
    a child process: a segfault fails this test only)."""
    from conftest import assert_refused_in_child
    assert_refused_in_child("""
        import numpy as np
        from wsekern._step_cost import ws_step_columns
        ok = [np.ones((4, 2), np.uint8), np.array([0, 2, 4], np.int_), np.zeros(5, np.int64),
              np.zeros(0, np.int32), np.zeros(0, np.int32), np.ones(1), np.zeros(2, np.int8),
              np.zeros(2, np.int64), np.zeros(2, np.int64), 4.0, 22.0, 4.0, 2, 1.0]
        ws_step_columns(*ok)
        ws_step_columns(*ok[:7], np.zeros(2, np.int32), np.zeros(2, np.int32), *ok[9:])

        def case(**changed):
            args = list(ok) + [True, None]          # check, pipeline
            for i, v in changed.items():
                args[int(i[1:])] = v
            return lambda: ws_step_columns(*args)
        cases = [case(a6=np.zeros(3, np.int8)),                         # blocks: 2, not 3
                 case(a8=np.zeros(1, np.int64)),
                 case(a2=np.zeros(4, np.int64)),                        # K + 1 = 5 pointers
                 case(a2=np.array([0, 1, 1, 1, 1], np.int64), a3=np.array([1], np.int32),
                      a4=np.ones(1, np.int32)),                         # row 1 of 1
                 case(a2=np.array([0, 1, 1, 1, 1], np.int64), a3=np.array([-1], np.int32),
                      a4=np.ones(1, np.int32)),
                 case(a2=np.array([0, 9, 9, 9, 9], np.int64)),          # past the entries
                 case(a2=np.array([0, 1, 0, 1, 1], np.int64), a3=np.zeros(1, np.int32),
                      a4=np.ones(1, np.int32)),                         # decreasing
                 case(a1=np.array([0, 3, 2], np.int_)),
                 case(a1=np.array([0, 2, 5], np.int_)),                 # past K
                 case(a7=np.zeros(2, np.int32)),                        # dtypes differ
                 case(a7=np.zeros(2), a8=np.zeros(2)),                  # not integers
                 case(a7=np.zeros((2, 1), np.int64), a8=np.zeros((2, 1), np.int64)),
                 case(a8=[0, 0]),
                 case(a14=True, a15=(np.zeros(2, np.int_), 1.0, 1.0, 1.0, 1.0, 1.0, 0.0)),
                 case(a14=True, a15=(np.zeros(1, np.int_), 1.0, 1.0, 1.0, 1.0, -1.0, 0.0)),
                 case(a14=True, a15=(np.array([-1], np.int_), 1.0, 1.0, 1.0, 1.0, 1.0, 0.0))]
    """, 16, needles=("block arrays", "outside", "s_indptr", "k_b", "s_rows", "dtype",
                      "contiguous", "ndim", "dimensions", "one entry", "cushion", "L[0]"))


def test_the_step_pass_refuses_blocks_that_do_not_match():
    """Out-of-range indices or mismatched lengths are refused with a message, not read
    past the arrays (in a child process: a segfault fails this test only)."""
    from conftest import assert_refused_in_child
    assert_refused_in_child("""
        import numpy as np
        from wsekern._step_cost import ws_step_stream
        ok = [np.ones((4, 2), np.uint8), np.array([0, 2, 4], np.int_), np.zeros(5, np.int64),
              np.zeros(0, np.int32), np.zeros(0, np.int64), np.ones(1), np.zeros(2, np.int8),
              np.zeros(2, np.int64), np.zeros(2, np.int64), 4.0, 22.0, 4.0, 2, 1.0]
        ws_step_stream(*ok)

        def case(**changed):
            args = list(ok)
            for i, v in changed.items():
                args[int(i[1:])] = v
            return lambda: ws_step_stream(*args)
        cases = [case(a6=np.zeros(3, np.int8)),                         # blocks: 2, not 3
                 case(a8=np.zeros(1, np.int64)),
                 case(a2=np.zeros(4, np.int64)),                        # K + 1 = 5 pointers
                 case(a2=np.array([0, 1, 1, 1, 1], np.int64), a3=np.array([7], np.int32),
                      a4=np.ones(1, np.int64)),                         # block 7 of 2
                 case(a2=np.array([0, 1, 1, 1, 1], np.int64), a3=np.array([-1], np.int32),
                      a4=np.ones(1, np.int64)),
                 case(a2=np.array([0, 9, 9, 9, 9], np.int64)),          # past the entries
                 case(a2=np.array([0, 1, 0, 1, 1], np.int64), a3=np.zeros(1, np.int32),
                      a4=np.ones(1, np.int64)),                         # decreasing
                 case(a1=np.array([0, 3, 2], np.int_)),
                 case(a1=np.array([0, 2, 5], np.int_))]                 # past K
    """, 9, needles=("block arrays", "outside", "s_indptr", "k_b", "s_indices"))


def test_weight_streaming_follows_one_chain_per_samples_per_column():
    """The exact weight-streaming model follows the farthest chain of each samples-per-column
    count: the very floats of following every PE column (one chain per column)."""
    cfg = wk.WaferConfig.small(12, 9)
    rng = np.random.default_rng(5)
    W = sps.random(20, 30, density=0.3, format="csr", random_state=6, dtype=np.float32)
    for N in (7, 9, 23):               # fewer samples than columns, as many, uneven shares
        X = (rng.random((30, N)) < 0.5).astype(np.float32)
        region = (0, 0, 12, 9)
        ops = Operands(W, X)
        R, C = region[2], region[3]
        st = analytic._as_stream(ops, cfg, R, C)
        _, row_block = ops.col_block(R)
        got = analytic._as_exact(ops, cfg, R, C, row_block, st["N_c"], st["t_axpy"],
                                 st["dt"], st["L_c"], st["fill"], st["chain"])
        # every column's chain, as the model was written before
        M = ops.M
        nnz_rm = np.bincount(row_block[ops.w_col] * M + ops.w.w_row,
                             minlength=R * M).reshape(R, M).astype(np.float64)
        v_rm = nnz_rm * cfg.wavelets_per_sparse_value + 1
        fill_c = np.arange(1, C + 1) * cfg.hop_cycles + cfg.ramp_cycles
        work = st["t_axpy"][:, None, None] * nnz_rm[None] + cfg.task_cycles
        every = analytic._pipeline_cycles(cfg, work, v_rm, st["dt"][:, None], fill_c,
                                          st["L_c"])
        assert got[0] == every


# -- a planned step is the fully costed step, whatever changed --------------------------
def _reference_W(layer):
    """The layer's kept weights as W (M x K), made here from the layer alone."""
    if getattr(layer, "pattern", None) is not None:
        return sps.csr_array(layer.mask.T.astype(np.float64))
    return sps.csr_array((layer.kernel.data != 0).T.astype(np.float64))


@pytest.fixture
def recorded(monkeypatch):
    """Every costed step of every layer: (placement, config, mode, x_nz, g_nz, parts)."""
    steps = []
    original = LayerPlacement.cost_step

    def cost_step(self, cfg, mode):
        x_nz, g_nz = columns.pattern(self.last_input), columns.pattern(self.last_grad)
        before = dict(self.totals)
        out = original(self, cfg, mode)
        parts = {k: self.totals[k] - before[k] for k in before}
        steps.append((self, cfg, mode, x_nz, g_nz, self.needs_input_grad, parts))
        return out
    monkeypatch.setattr(LayerPlacement, "cost_step", cost_step)
    return steps


def _check_every_step(steps):
    """Each recorded step's parts against training.step_cost on the layer's weights now
    (the check runs right after the step, before anything changes again)."""
    for p, cfg, mode, x_nz, g_nz, needs, parts in steps:
        W = _reference_W(p.layer)
        want, _, _ = training.step_cost(cfg, mode, p.region, W, WeightStats(W),
                                        WeightStats(sps.csr_array(W.T)), x_nz, g_nz, needs)
        for k in want:
            assert parts[k] == pytest.approx(want[k], rel=1e-12, abs=0.0), (p.layer.name, k)
    steps.clear()


def _eager(mode):
    """A strategy costing each step when it is taken (``defer_steps=1``): these checks read
    a step's costing right after it, against the layer's weights then (a queued step is
    costed later, with its own weights: tests/test_strategy_deferred.py)."""
    return wk.WaferStrategy(wk.WaferConfig.small(24, 24), mode=mode, defer_steps=1)


def _model(strategy, first_sparsity=0.0, inputs=(20,)):
    nn.utils.set_random_seed(0)
    with strategy.scope():
        model = nn.Sequential([nn.Input(inputs),
                               L.Dense(48, activation="relu", name="a", sparsity=first_sparsity),
                               L.Dense(24, activation="relu", name="b"),
                               L.Dense(4, name="c")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


def _batch(rng, n, shape=(20,)):
    x = np.maximum(rng.standard_normal((n,) + shape), 0).astype(np.float32)
    return x, rng.integers(0, 4, n)


@pytest.mark.parametrize("mode", ["layer-pipelined", "weight-streaming"])
def test_a_plan_is_made_again_when_the_pattern_changes_mid_training(recorded, mode):
    strategy = _eager(mode)
    model = _model(strategy, first_sparsity=0.5)
    rng = np.random.default_rng(0)
    for _ in range(2):
        model.train_on_batch(*_batch(rng, 8))
    _check_every_step(recorded)
    model.layers[0].set_sparsity(0.8)               # pruned further mid-training
    model.layers[1].set_sparsity(0.5)               # a dense layer pruned
    for _ in range(2):
        model.train_on_batch(*_batch(rng, 8))
        _check_every_step(recorded)


def _two_checked_steps(recorded, seed):
    """A dense MLP placed layer-pipelined after two steps, each checked."""
    strategy = _eager("layer-pipelined")
    model = _model(strategy)
    rng = np.random.default_rng(seed)
    for _ in range(2):
        model.train_on_batch(*_batch(rng, 8))
    _check_every_step(recorded)
    return model, rng


def test_a_plan_is_made_again_when_set_weights_zeroes_weights(recorded):
    model, rng = _two_checked_steps(recorded, seed=1)
    w = model.layers[1].get_weights()
    w[0][rng.random(w[0].shape) < 0.6] = 0.0        # a dense layer given zeros
    model.layers[1].set_weights(w)
    model.train_on_batch(*_batch(rng, 8))
    model.train_on_batch(*_batch(rng, 8))
    _check_every_step(recorded)


@pytest.mark.parametrize("mode", ["layer-pipelined", "weight-streaming"])
def test_a_plan_is_made_again_when_the_batch_size_changes(recorded, mode):
    strategy = _eager(mode)
    model = _model(strategy, first_sparsity=0.5)
    rng = np.random.default_rng(2)
    for n in (8, 8, 5, 5, 8, 1):
        model.train_on_batch(*_batch(rng, n))
        _check_every_step(recorded)


def test_weight_streaming_reports_built_when_read_are_the_steps(recorded):
    """Weight streaming costs a step without its reports (they wait until read): each
    step's reports, read after it, field by field those step_cost gives on that step's
    nonzero patterns, the first step's (a new plan) as the later ones'."""
    from test_wafer_step_cache import _fields
    strategy = _eager("weight-streaming")
    model = _model(strategy, first_sparsity=0.5)
    rng = np.random.default_rng(4)
    peaks = {}
    for n in (8, 8, 5):
        model.train_on_batch(*_batch(rng, n))
        assert len(recorded) == 3
        for p, cfg, mode, x_nz, g_nz, needs, _ in recorded:
            W = _reference_W(p.layer)
            _, want, _ = training.step_cost(cfg, mode, p.region, W, WeightStats(W),
                                            WeightStats(sps.csr_array(W.T)), x_nz, g_nz,
                                            needs)
            got = p.reports
            assert sorted(got) == sorted(want)
            for k, r in want.items():
                assert _fields(got[k]) == _fields(r), (p.layer.name, k)
            peak = max(r.sram_peak_bytes for r in want.values())
            peaks[p.layer.name] = max(peaks.get(p.layer.name, 0), peak)
            assert p.sram_peak == peaks[p.layer.name]
        _check_every_step(recorded)


def test_a_plan_is_made_again_when_the_sequence_length_changes(recorded):
    strategy = _eager("layer-pipelined")
    model = _model(strategy, first_sparsity=0.5, inputs=(None, 20))
    rng = np.random.default_rng(3)
    for T in (3, 3, 5, 2, 2):
        x = np.maximum(rng.standard_normal((4, T, 20)), 0).astype(np.float32)
        model.train_on_batch(x, rng.integers(0, 4, (4, T)))
        _check_every_step(recorded)


def test_a_plan_is_made_again_when_the_kernels_dtype_changes(recorded):
    """A kernel cast to float16: weights below its range become zeros, and the step is
    costed on the pattern they leave."""
    model, rng = _two_checked_steps(recorded, seed=4)
    layer = model.layers[1]
    k = layer.kernel.data
    k[rng.random(k.shape) < 0.5] = 1e-9             # flush to zero in float16
    layer.kernel.data = k.astype(np.float16)
    assert (layer.kernel.data == 0).sum() > 0
    model.train_on_batch(*_batch(rng, 8))
    _check_every_step(recorded)



def test_each_planned_step_is_costed_from_its_own_batchs_nonzeros(recorded):
    """A sparse layer's planned steps (ws_step_columns down each PE column) follow each
    batch: two batches of the same size, one with few zero inputs and one with many, give
    different forward and input-gradient cycles, each the full costing of that batch's
    patterns (training.step_cost), and equal batches give equal steps."""
    strategy = _eager("layer-pipelined")
    model = _model(strategy, first_sparsity=0.7)
    rng = np.random.default_rng(7)
    x, y = _batch(rng, 8)
    model.train_on_batch(x, y)                       # the fully costed step: the plan
    recorded.clear()
    dense_x = np.abs(rng.standard_normal((8, 20))).astype(np.float32) + 0.1
    sparse_x = dense_x * (rng.random((8, 20)) < 0.15)
    for batch in (dense_x, sparse_x, dense_x):
        model.train_on_batch(batch, y)
    first = [s for s in recorded if s[0].layer.name == "a"]
    assert [int(s[3].sum()) for s in first] == [160, int((sparse_x != 0).sum()), 160]
    assert first[0][0]._plan["kind"] == "sparse"      # planned, by the column pass
    fwd = [s[6]["forward"] for s in first]
    assert fwd[0] != fwd[1] and fwd[0] == fwd[2]      # the batch's nonzeros count
    second = [s for s in recorded if s[0].layer.name == "b"]
    assert second[0][6]["input-gradient"] > 0
    _check_every_step(recorded)


def test_the_dense_stream_runs_the_columns_chain_as_grid_pipeline_does():
    """dense_stream(..., pipeline=...) (the columns' chain run in the same call) gives
    grid_pipeline's float on the arrays it returns, and the same arrays as without it;
    a bad chain is refused."""
    from wsekern._screen import dense_stream
    rng = np.random.default_rng(11)
    for K, C, N in [(9, 3, 5), (1, 1, 1), (12, 5, 0), (30, 7, 17), (6, 6, 2)]:
        cuts = np.sort(rng.integers(0, K + 1, C - 1))
        k_b = np.concatenate([[0], cuts, [K]]).astype(np.int_)
        x_nz = (rng.random((K, N)) < 0.5).view(np.uint8)
        L = np.array([int(rng.integers(0, 4))], np.int_)
        pipe = (L, 1.0, 2.0, 3.0, 9.0, 4.0, float(rng.integers(0, 6)))
        plain = dense_stream(x_nz, k_b, 7.0, 4.0, 2, 0.5, 13.0)
        got = dense_stream(x_nz, k_b, 7.0, 4.0, 2, 0.5, 13.0, pipe)
        for a, b in zip(got[:5], plain):
            assert np.array_equal(a, b) and type(a) is type(b)
        work, first, last = plain[:3]
        est = grid_pipeline(work.T[None], first.T[None], last.T[None], L, 1.0, 2.0, 3.0, 9.0,
                            4.0, pipe[6])
        assert type(got[5]) is float and got[5] == est
    from conftest import assert_refused_in_child
    assert_refused_in_child("""
        import numpy as np
        from wsekern._screen import dense_stream
        x, k_b = np.ones((4, 3), np.uint8), np.array([0, 2, 4], np.int_)

        def case(*pipe):
            return lambda: dense_stream(x, k_b, 7.0, 4.0, 2, 0.5, 13.0, pipe)
        cases = [case(np.zeros(2, np.int_), 1.0, 2.0, 3.0, 9.0, 4.0, 1.0),
                 case(np.zeros(1, np.int_), 1.0, 2.0, 3.0, 9.0, 4.0, -1.0),
                 case(np.zeros(1, np.int_), 1.0, 2.0, 3.0, 9.0, 4.0, float("nan")),
                 case(np.array([-2], np.int_), 1.0, 2.0, 3.0, 9.0, 4.0, 1.0)]
    """, 4, needles=("one entry", "cushion", "L[0]"))


def test_the_dense_stream_gives_numpys_figures_in_every_layout_of_x():
    """dense_stream's work, arrivals and maxima against NumPy's sums, for X's pattern laid
    out by rows, by samples (rows adjacent: the transposed view a layer hands over, which
    takes the running-count path), samples reversed, and bounds that leave rows of X out."""
    from wsekern._screen import dense_stream
    rng = np.random.default_rng(12)
    for K, C, N in [(9, 3, 5), (1, 1, 1), (30, 7, 17), (6, 6, 2), (40, 1, 3), (5, 2, 0)]:
        x_nz = rng.random((K, N)) < rng.choice([0.1, 0.5, 0.9])
        inner = np.sort(rng.integers(0, K + 1, C + 1))
        for k_b in (np.concatenate([[0], inner[1:-1], [K]]), inner):
            k_b = k_b.astype(np.int_)
            a = np.array([x_nz[k_b[c]:k_b[c + 1]].sum(axis=0) for c in range(C)],
                         np.int64).T.reshape(N, C)
            v = a * 2 + 1
            cum = np.cumsum(v, axis=0).astype(np.float64) * 0.5
            want = (a * 7.0 + 4.0, (cum - v * 0.5) + 13.0, (cum - 0.5) + 13.0,
                    int(a.sum(axis=0).max(initial=0)), int(v.sum(axis=0).max(initial=0)))
            by_sample = np.ascontiguousarray(x_nz.T).T           # strides (1, K)
            for x in (x_nz, by_sample):
                got = dense_stream(x.view(np.uint8), k_b, 7.0, 4.0, 2, 0.5, 13.0)
                for g, w in zip(got, want):
                    assert type(g) is type(w) and np.array_equal(g, w), (K, C, N, k_b)
            rev = by_sample[:, ::-1]          # samples reversed: the figures of reversed X
            got = dense_stream(rev.view(np.uint8), k_b, 7.0, 4.0, 2, 0.5, 13.0)
            ref = dense_stream(np.ascontiguousarray(rev).view(np.uint8), k_b, 7.0, 4.0, 2,
                               0.5, 13.0)
            for g, w in zip(got, ref):
                assert np.array_equal(g, w)


@pytest.mark.parametrize("config", ["small", "wse2"])
def test_a_dense_plans_sram_peak_is_the_placed_reports(config):
    """W fully nonzero, its blocks dense whatever the batch (analytic.dense_screen): the
    SRAM peak read from W's structure alone is the placed report's for every batch, and
    the per-step structure's (weight_stationary_cycles); None (the report raises) where a
    block fits in neither format."""
    rng = np.random.default_rng(8)
    cfg = wk.WaferConfig.small(16, 16) if config == "small" else wk.WaferConfig.wse2()
    checked = 0
    for M, K in ((90, 70), (33, 128), (8, 5)):
        W = sps.csr_array(rng.random((M, K)).astype(np.float32) + 0.5)
        stats = WeightStats(W)
        for region in [(0, 0, 4, 5), (0, 0, 7, 3), (0, 0, 1, 1), (0, 0, 2, 9)]:
            if analytic.dense_screen(stats, cfg, region) is None:
                continue
            peak = analytic.dense_sram_peak(stats, cfg, region)
            for N in (0, 1, 13):
                x_nz = rng.random((K, N)) < rng.choice([0.0, 0.4, 1.0])
                try:
                    rep = analytic.weight_stationary(W, x_nz.astype(np.float32), cfg, region,
                                                     exact=False, full=False)
                except wk.SramOverflowError:
                    assert peak is None
                    continue
                assert type(peak) is int and peak == rep.sram_peak_bytes
                if N:
                    assert analytic.weight_stationary_cycles(stats, x_nz, cfg, region)[2] \
                        == peak
                checked += 1
    assert checked
