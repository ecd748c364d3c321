"""The step kernels with everything but X taken once (src/_step_cost.pyx ``WsStep``,
src/_screen.pyx ``DenseStep``: what a training step's costing keeps per placement) against
the one-call kernels they share their loops with (``ws_step_columns``, ``dense_stream``): the
same figures on each SIMD path, for X in any layout and any batch, the same refusals, and
the structure's arrays held while a step is kept."""
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from test_step_blocks_simd import _case, _same
from test_strategy_step_plan import _by_columns

from wsekern._screen import DenseStep, dense_stream
from wsekern._step_cost import WsStep, ws_dead_columns, ws_pack_entries, ws_step_columns, ws_table

# (L, hop, ramp, lat, launch, cushion, fill): whole numbers, and some not
WS_PIPELINES = [(np.array([3], np.int_), 1.0, 7.0, 16.0, 5.0, 2.0, 9.0),
                (np.array([1], np.int_), 1.5, 0.25, 3.0, 4.5, 0.0, 2.5)]
# (L, hop, ramp, lat, launch, task, cushion)
DS_PIPELINES = [(np.array([2], np.int_), 1.0, 7.0, 16.0, 5.0, 4.0, 3.0),
                (np.array([4], np.int_), 0.5, 1.25, 2.0, 3.0, 1.5, 0.0)]


def _layouts(x):
    """``x`` as given, as a transposed copy's transpose (samples-major memory, as a layer's
    batch seen transposed), and every other sample of a wider array (strided)."""
    wide = np.zeros((x.shape[0], 2 * x.shape[1]), np.uint8)
    wide[:, ::2] = x
    return [x, np.ascontiguousarray(x.T).T, wide[:, ::2]]


@pytest.mark.parametrize("R", [1, 8, 9, 17, 127])
def test_a_kept_ws_step_gives_ws_step_columns_figures(paths, R):
    rng = np.random.default_rng(R)
    for trial in range(6):
        C = int(rng.integers(1, 7))
        x_nz, k_b, S, choice, comp, dense, t_dense, tail = _case(
            rng, R, C, int(rng.integers(0, 12)), (0.0, -0.0, np.inf, np.nan) if trial == 5 else ())
        cols = _by_columns(None, R, C, k_b, S, choice, comp, dense)
        narrow = cols[:4] + tuple(a.astype(np.int32) for a in cols[4:])
        K = x_nz.shape[0]
        for layout in (cols, narrow):
            dead = ws_dead_columns(t_dense, *layout[3:], *tail[:2])
            packed = ws_pack_entries(layout[1], layout[2])
            table = ws_table(*layout[:3], R)
            bound = np.maximum(layout[4].reshape(C, R).astype(np.int64),
                               layout[5].reshape(C, R)).max(axis=1).astype(np.int64)
            for pipe in WS_PIPELINES:
                for extra in ((None, None, None, None), (dead, packed, table, bound),
                              (dead, None, table, None), (None, packed, None, bound)):
                    # k_b strided in one case (any strides taken, as by ws_step_columns)
                    kb = np.repeat(k_b, 2)[::2] if extra[0] is None else k_b
                    args = (kb, *layout[:3], t_dense, *layout[3:], *tail, True, pipe, *extra)
                    for path in ("avx512", "baseline"):
                        paths(path)
                        step = WsStep(K, *args)
                        # one step, several batches: X's width and layout change per step
                        for N in (x_nz.shape[1], 0, 5):
                            x = (rng.random((K, N)) < 0.3) if N != x_nz.shape[1] else x_nz
                            for view in _layouts(x.view(np.uint8)):
                                want = ws_step_columns(view, *args)
                                got = step.run(view)
                                assert len(got) == 5
                                for a, b in zip(got, (want[3], want[4], want[5], want[7])):
                                    assert _same(a, b), (trial, path, N, a, b)
                                # v_west: the most wavelets (values and an end marker a
                                # sample) down one column but the first
                                cum = np.concatenate(
                                    [[0], np.cumsum(view.astype(bool).sum(axis=1))])
                                v_c = (cum[kb[1:]] - cum[kb[:-1]]) * tail[3] + N
                                assert got[4] == (v_c[1:].max() if N and C > 1 else 0)


def test_a_ws_step_refuses_what_ws_step_columns_refuses():
    rng = np.random.default_rng(3)
    R, C = 8, 3
    x_nz, k_b, S, choice, comp, dense, t_dense, tail = _case(rng, R, C, 4, ())
    cols = _by_columns(None, R, C, k_b, S, choice, comp, dense)
    K = x_nz.shape[0]
    args = (k_b, *cols[:3], t_dense, *cols[3:], *tail, True, WS_PIPELINES[0])
    with pytest.raises(ValueError, match="pipeline"):
        WsStep(K, *args[:-1])
    with pytest.raises(ValueError, match="one entry"):
        WsStep(K, *args[:-1], (np.array([1, 2]),) + WS_PIPELINES[0][1:])
    with pytest.raises(ValueError, match=r"K must be X's rows \(>= 0\); received -1"):
        WsStep(-1, *args)
    step = WsStep(K, *args)
    with pytest.raises(ValueError, match=rf"the step's {K} rows; received shape \({K + 1}, 4\)"):
        step.run(np.zeros((K + 1, 4), np.uint8))
    with pytest.raises(ValueError, match="dtype"):
        step.run(np.zeros((K, 4), np.float32))
    # a structure ws_step_columns refuses is refused alike, with its message
    bad = list(args)
    bad[2] = bad[2].copy()                  # s_rows
    assert bad[2].size
    bad[2][0] = R
    with pytest.raises(ValueError) as one:
        ws_step_columns(x_nz.view(np.uint8), *bad)
    with pytest.raises(ValueError) as kept:
        WsStep(K, *bad)
    assert str(one.value) == str(kept.value) and "lies outside" in str(one.value)
    with pytest.raises(ValueError) as one:
        ws_step_columns(np.zeros((K + 1, 2), np.uint8), *args)
    with pytest.raises(ValueError) as kept:
        WsStep(K + 1, *args)
    assert str(one.value) == str(kept.value)


@pytest.mark.parametrize("K", [0, 1, 15, 16, 17, 100])
def test_a_kept_dense_step_gives_dense_streams_figures(paths, K):
    rng = np.random.default_rng(K)
    for trial in range(8):
        C = int(rng.integers(0, 12))
        top = int(rng.integers(0, K + 1))          # the bounds need not reach K
        k_b = np.concatenate([[0], np.sort(rng.integers(0, top + 1, C))]).astype(np.int_)
        if trial % 2:
            k_b = np.repeat(k_b, 3)[::3]            # strided bounds
        figures = ((7.0, 4.0, 2, 1.0, 9.0), (2.5, 1.0, 2, 1.5, 0.5))[trial % 2]
        for pipe in DS_PIPELINES:
            for path in ("avx512", "baseline"):
                paths(path)
                step = DenseStep(K, k_b, *figures, pipe)
                for N in (0, 1, 16, 33):
                    x = rng.random((K, N)) < rng.choice([0.0, 0.2, 1.0])
                    x = x.view(np.uint8) * np.uint8(1 if trial % 3 else 255)   # bytes count
                    for view in _layouts(x):
                        want = dense_stream(view, k_b, *figures, pipe)
                        got = step.run(view)
                        assert len(got) == 3
                        for a, b in zip(got, want[3:]):
                            assert _same(a, b), (trial, path, N, a, b)


def test_a_dense_step_refuses_what_dense_stream_refuses():
    k_b = np.array([0, 3, 5], np.int_)
    pipe = DS_PIPELINES[0]
    with pytest.raises(ValueError, match="pipeline"):
        DenseStep(5, k_b, 7.0, 4.0, 2, 1.0, 9.0)
    with pytest.raises(ValueError, match="one entry"):
        DenseStep(5, k_b, 7.0, 4.0, 2, 1.0, 9.0, (np.array([1, 2]),) + pipe[1:])
    for bad in (np.array([0, 4, 3], np.int_), np.array([0, 3, 6], np.int_)):
        with pytest.raises(ValueError) as one:
            dense_stream(np.zeros((5, 2), np.uint8), bad, 7.0, 4.0, 2, 1.0, 9.0, pipe)
        with pytest.raises(ValueError) as kept:
            DenseStep(5, bad, 7.0, 4.0, 2, 1.0, 9.0, pipe)
        assert str(one.value) == str(kept.value)
    step = DenseStep(5, k_b, 7.0, 4.0, 2, 1.0, 9.0, pipe)
    with pytest.raises(ValueError, match=r"the step's 5 rows; received shape \(4, 2\)"):
        step.run(np.zeros((4, 2), np.uint8))
    with pytest.raises(ValueError, match="wpv"):
        DenseStep(5, k_b, 7.0, 4.0, -1, 1.0, 9.0, pipe).run(np.zeros((5, 2), np.uint8))


def test_kept_steps_hold_their_arrays():
    """The caller's arrays dropped and their memory reused: a kept step still reads its own
    (in a child process: reading freed memory could crash)."""
    code = textwrap.dedent("""
        import gc, sys
        import numpy as np
        sys.path.insert(0, %r)
        from test_step_blocks_simd import _case
        from test_strategy_step_plan import _by_columns
        from test_step_prepared import WS_PIPELINES, DS_PIPELINES
        from wsekern._screen import DenseStep, dense_stream
        from wsekern._step_cost import WsStep, ws_step_columns, ws_table

        rng = np.random.default_rng(5)
        R, C = 9, 4
        x_nz, k_b, S, choice, comp, dense, t_dense, tail = _case(rng, R, C, 6, ())
        cols = _by_columns(None, R, C, k_b, S, choice, comp, dense)
        x = x_nz.view(np.uint8)
        def made():
            copies = [np.array(a) for a in (k_b, *cols[:3], t_dense, *cols[3:])]
            table = ws_table(*copies[1:4], R)
            args = (*copies, *tail, True, (WS_PIPELINES[0][0].copy(),) + WS_PIPELINES[0][1:],
                    None, None, table)
            return WsStep(x.shape[0], *args), ws_step_columns(x, *args)
        step, want = made()
        dstep = DenseStep(x.shape[0], np.array(k_b), 7.0, 4.0, 2, 1.0, 9.0,
                          (DS_PIPELINES[0][0].copy(),) + DS_PIPELINES[0][1:])
        dwant = dense_stream(x, k_b, 7.0, 4.0, 2, 1.0, 9.0, DS_PIPELINES[0])
        gc.collect()
        junk = [np.full(n, 77, np.int64) for n in range(1, 400)]
        assert step.run(x)[:4] == (want[3], want[4], want[5], want[7])
        assert dstep.run(x) == dwant[3:]
        print("ok")
    """) % str(__import__("pathlib").Path(__file__).parent)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
