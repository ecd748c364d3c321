"""wafer23: the send queue inside the training step's fused chain.

wafer22 gave the training step's chain the first PE's send queue (an eighth ``pipeline``
figure, ``push``) through an unfused route: WsStep and DenseStep made the step's N x C
arrays and chained them afterwards, where the queue can bind (a link slower than a wavelet
a cycle). The fused pass (src/wsk_step_chain.h) now takes ``push`` itself, a round at a
time (never paired): the same floats as grid_pipeline(push=) on the arrays the unfused
pass makes, and no N x C arrays made.
"""
import tracemalloc

import numpy as np
import pytest
from test_wafer_s22 import _step_args

from wsekern._pipeline import grid_pipeline
from wsekern._screen import DenseStep, dense_stream
from wsekern._step_cost import WsStep, ws_step_columns

HOP, RAMP, LAT, LAUNCH, TASK, CUSHION, FILL = 1.0, 1.0, 3.0, 21.0, 4.0, 17.0, 3.0
KW = dict(hop=HOP, ramp=RAMP, lat=LAT, launch=LAUNCH, task=TASK, cushion=CUSHION)


def _steps(K, C, N, dt, push, seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.random((K, N)) < 0.3).astype(np.uint8)
    args = _step_args(rng, K, C)
    L = np.array([int(rng.integers(3, 12))], np.int_)
    ws = WsStep(K, *args, TASK, 1.0, TASK, 1, dt,
                pipeline=(L, HOP, RAMP, LAT, LAUNCH, CUSHION, FILL, push))
    dense = DenseStep(K, args[0], 20.0, TASK, 1, dt, FILL,
                      (L, HOP, RAMP, LAT, LAUNCH, TASK, CUSHION, push))
    return x, args, L, ws, dense


@pytest.mark.parametrize("push", [0, 1, 5, 40])
@pytest.mark.parametrize("N", [1, 2, 7, 8, 33])
@pytest.mark.parametrize("dt", [1.5, 2.0, 4.0])
def test_the_fused_step_takes_the_send_queue_as_grid_pipeline_does(dt, N, push):
    """WsStep.run and DenseStep.run with ``push`` at a slow link (odd and even N: the
    fused loop pairs rounds elsewhere) give grid_pipeline(push=)'s float on the arrays
    ws_step_columns and dense_stream make."""
    K, C = 40, 6
    x, args, L, ws, dense = _steps(K, C, N, dt, push, seed=N + push)
    ref = ws_step_columns(x, *args, TASK, 1.0, TASK, 1, dt)
    work, first, last = (a.T[None] for a in ref[:3])
    want = grid_pipeline(work, first, last, L, fill=np.array([FILL]), dt=dt, push=push, **KW)
    assert ws.run(x)[3] == want
    d = dense_stream(x, args[0], 20.0, TASK, 1, dt, FILL)
    dwant = grid_pipeline(*(a.T[None] for a in d[:3]), L, dt=dt, push=push, **KW)
    assert dense.run(x)[2] == dwant


@pytest.mark.parametrize("dt", [2.0, 1.0])
def test_the_step_makes_no_samples_by_columns_arrays_where_the_send_queue_binds(dt):
    """A kept step at a slow link with the send queue runs its chain in the samples' pass,
    as at a wavelet a cycle: it makes none of the three N x C float arrays of the unfused
    route (traced allocations stay below one of them)."""
    K, C, N = 64, 32, 512
    x, _, _, ws, dense = _steps(K, C, N, dt, 6)
    one = N * C * 8
    for run in (ws.run, dense.run):
        run(x)
        tracemalloc.start()
        try:
            run(x)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < one, (run, peak, one)
