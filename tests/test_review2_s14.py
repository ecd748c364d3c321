"""Review s14 (second): X's K-major copy (src/wsk_stream.h wsk_x_kmajor) in the layouts
the step tests do not build -- zero strides (a broadcast pattern, along k and along the
samples, the latter through the 16 x 16 tile path), a one-row X whose strides are both 1,
and whole tiles only -- on each path; and conv2d's weight cache given the same bytes in
the same (O, depth) shape for another layer geometry."""
import numpy as np
import pytest
from test_conv import conv_reference
from test_step_stream import PATHS, _dense_reference, _same

import wsekern
import wsekern.conv as conv_mod
from wsekern._screen import dense_stream


def _odd_layouts(rng, K, N):
    """(name, view, contiguous copy) of K x N byte patterns laid out oddly."""
    col = (rng.random(K) < 0.5).astype(np.uint8)
    row = (rng.random(N) < 0.5).astype(np.uint8)
    yield "same row for every k (sk 0)", np.broadcast_to(row, (K, N))
    yield "same column for every sample (sn 0, sk 1)", np.broadcast_to(col[:, None], (K, N))
    x = (rng.random((N, K)) < 0.3).astype(np.uint8)
    yield "sample-major, samples reversed", x[::-1].T
    yield "sample-major, both reversed", x[::-1, ::-1].T
    # a (K, 1) C-contiguous array's strides are (1, 1): the same pair as its transpose
    one = (rng.random((N, 1)) < 0.5).astype(np.uint8)
    yield "one k, strides (1, 1)", one.T


@pytest.mark.parametrize("K, N", [(1, 40), (16, 16), (32, 48), (31, 17), (17, 64), (64, 5)])
def test_dense_stream_reads_odd_layouts_on_each_path(paths, K, N):  # noqa: F811
    rng = np.random.default_rng(K * 1000 + N)
    for name, view in _odd_layouts(rng, K, N):
        if view.shape != (K, N):
            continue                                  # the one-k case only where K == 1
        x = np.ascontiguousarray(view)
        C = 3 if K >= 3 else 1
        k_b = np.linspace(0, K, C + 1).astype(np.int_)
        want = _dense_reference(x, k_b, 2.5, 1.0, 2, 1.5, 0.5)
        for path in PATHS:
            paths(path)
            got = dense_stream(view, k_b, 2.5, 1.0, 2, 1.5, 0.5)
            for g, w in zip(got, want):
                assert _same(g, w), (path, name)


def test_weight_cache_same_bytes_same_w2_shape_other_layer(monkeypatch):
    """(4, 2, 3, 3) and (4, 2, 9, 1) weights with the same bytes flatten to the same
    (4, 18) w2: the cached offsets of one must not serve the other (and groups=2 on 4
    channels against groups=1 on 2 channels: the same w too)."""
    monkeypatch.setattr(conv_mod, "DIRECT_FIXED", -1e9)
    monkeypatch.setattr(conv_mod, "_OFFSETS_CACHE", [])
    rng = np.random.default_rng(11)
    w = rng.standard_normal((4, 2, 3, 3)) * (rng.random((4, 2, 3, 3)) < 0.5)
    x = rng.standard_normal((2, 2, 9, 8))
    for weights, padding in ((w, 1), (w.reshape(4, 2, 9, 1), (4, 0)), (w, 1)):
        assert wsekern.conv2d_path(x, weights, padding=padding) == "direct"
        y = wsekern.conv2d(x, weights, padding=padding)
        np.testing.assert_allclose(y, conv_reference(x, weights, None, 1, padding, 1, 1),
                                   rtol=1e-10, atol=1e-10)
    assert len(conv_mod._OFFSETS_CACHE) == 1            # one weight array, its geometries
    x4 = rng.standard_normal((1, 4, 7, 7))
    for xs, groups in ((x4, 2), (x4[:, :2], 1), (x4, 2)):
        assert wsekern.conv2d_path(xs, w, padding=1, groups=groups) == "direct"
        y = wsekern.conv2d(xs, w, padding=1, groups=groups)
        np.testing.assert_allclose(y, conv_reference(xs, w, None, 1, 1, 1, groups),
                                   rtol=1e-10, atol=1e-10)


def test_event_report_prints_the_rate_per_cpu_second():
    """7243c8e's line (it had no test): the event report gives the events per CPU second
    beside the wall rate, the events over the run's CPU seconds."""
    from test_event import _problem

    from wsekern.wafer import event
    from wsekern.wafer.config import WaferConfig
    W, X = _problem(48, 40, 3, 0.3, 0.5, seed=5)
    _, rep = event.weight_stationary(W, X, WaferConfig.small(8, 8), (0, 0, 3, 4))
    d = rep.details
    line = [s for s in str(rep).splitlines() if "event simulation" in s]
    rate = (d["events"] / d["cpu_seconds"] if d["cpu_seconds"] > 0 else float("inf")) / 1e6
    assert line and line[0].endswith(f"({rate:.1f} M per CPU second)"), line
