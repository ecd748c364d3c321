"""conv2d's padding="same"/"valid" as torch takes them: against explicit padding in NumPy,
the adjoint identities of the backward, and torch where it is installed."""
import numpy as np
import pytest
from test_conv import conv_reference

import wsekern

# (B, C, H, W), (O, C/groups, kh, kw), dilation, groups; odd and even kernels, so the
# total 'same' padding is odd (extra zero after) as well as even
CASES = [
    ((2, 3, 7, 6), (4, 3, 3, 3), 1, 1),
    ((1, 2, 6, 7), (3, 2, 2, 4), 1, 1),
    ((2, 4, 8, 5), (4, 2, 4, 3), (2, 1), 2),
    ((1, 1, 5, 5), (2, 1, 1, 1), 1, 1),
]


def same_by_hand(x, w, dilation):
    """'same' padding spelt out: total d*(k-1) per axis, the extra zero after."""
    d = (dilation, dilation) if np.isscalar(dilation) else dilation
    pads = [(t // 2, t - t // 2) for t in (d[0] * (w.shape[2] - 1), d[1] * (w.shape[3] - 1))]
    return np.pad(x, ((0, 0), (0, 0), pads[0], pads[1]))


def operands(case, seed=0):
    xs, ws, dilation, groups = case
    rng = np.random.default_rng(seed)
    x = np.maximum(rng.standard_normal(xs), 0)
    w = rng.standard_normal(ws) * (rng.random(ws) > 0.5)
    return x, w, dilation, groups


@pytest.mark.parametrize("case", CASES)
def test_same_keeps_the_size_and_equals_explicit_padding(case):
    x, w, dilation, groups = operands(case)
    out = wsekern.conv2d(x, w, padding="same", dilation=dilation, groups=groups)
    assert out.shape[2:] == x.shape[2:]
    ref = conv_reference(same_by_hand(x, w, dilation), w, None, 1, 0, dilation, groups)
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-12)
    assert wsekern.conv2d_path(x, w, padding="same", dilation=dilation, groups=groups) in (
        "direct", "input-sparse", "im2col-blas")


@pytest.mark.parametrize("case", CASES)
def test_valid_is_no_padding(case):
    x, w, dilation, groups = operands(case)
    np.testing.assert_array_equal(
        wsekern.conv2d(x, w, padding="valid", dilation=dilation, groups=groups),
        wsekern.conv2d(x, w, padding=0, dilation=dilation, groups=groups))


@pytest.mark.parametrize("case", CASES)
def test_same_backward_is_the_adjoint_of_the_forward(case):
    """<g, conv(x, w)> = <grad_x, x> = <grad_w, w>: conv is linear in each operand."""
    x, w, dilation, groups = operands(case, seed=1)
    out = wsekern.conv2d(x, w, padding="same", dilation=dilation, groups=groups)
    g = np.random.default_rng(2).standard_normal(out.shape)
    gx, gw, gb = wsekern.conv2d_backward(g, x, w, padding="same", dilation=dilation,
                                         groups=groups)
    assert gx.shape == x.shape and gw.shape == w.shape
    np.testing.assert_allclose(np.vdot(g, out), np.vdot(gx, x), rtol=1e-10)
    np.testing.assert_allclose(np.vdot(g, out), np.vdot(gw, w), rtol=1e-10)
    np.testing.assert_allclose(gb, g.sum(axis=(0, 2, 3)), rtol=1e-12)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.filterwarnings("ignore:Using padding=.same.")
def test_same_matches_torch(case):
    torch = pytest.importorskip("torch")
    x, w, dilation, groups = operands(case, seed=3)
    g = np.random.default_rng(4).standard_normal(x.shape[:1] + w.shape[:1] + x.shape[2:])
    tx = torch.tensor(x, requires_grad=True)
    tw = torch.tensor(w, requires_grad=True)
    tout = torch.nn.functional.conv2d(tx, tw, padding="same", dilation=dilation, groups=groups)
    tout.backward(torch.tensor(g))
    out = wsekern.conv2d(x, w, padding="same", dilation=dilation, groups=groups)
    gx, gw, _ = wsekern.conv2d_backward(g, x, w, padding="same", dilation=dilation,
                                        groups=groups)
    np.testing.assert_allclose(out, tout.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(gx, tx.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(gw, tw.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_bad_padding_strings_are_refused_with_what_works():
    x, w = np.ones((1, 1, 5, 5)), np.ones((1, 1, 3, 3))
    with pytest.raises(ValueError, match=r"'same' or 'valid'; received 'full'"):
        wsekern.conv2d(x, w, padding="full")
    with pytest.raises(ValueError, match=r"'same' or 'valid'; received 'SAME'"):
        wsekern.conv2d_backward(np.ones((1, 1, 5, 5)), x, w, padding="SAME")
    with pytest.raises(ValueError, match=r"needs stride 1.*stride=2"):
        wsekern.conv2d(x, w, padding="same", stride=2)
    with pytest.raises(ValueError, match="4-D"):
        wsekern.conv2d(np.ones((5, 5)), w, padding="same")


@pytest.mark.parametrize("mode", ["analytic", "event"])
def test_the_wafer_takes_the_same_strings(mode):
    """Wafer.conv2d computes and costs 'same' as the explicitly padded convolution."""
    x, w, _, _ = operands(((1, 2, 6, 5), (3, 2, 2, 3), 1, 1), seed=5)
    x, w = x.astype(np.float32), w.astype(np.float32)
    wafer = wsekern.Wafer(wsekern.WaferConfig.wse2())
    y, report = wafer.conv2d(x, w, padding="same", region=(2, 2), mode=mode)
    y_ref, report_ref = wafer.conv2d(same_by_hand(x, w, 1), w, padding=0, region=(2, 2),
                                     mode=mode)
    np.testing.assert_allclose(y, wsekern.conv2d(x, w, padding="same"), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-6)
    assert report.cycles == report_ref.cycles
    assert report.problem["padding"] == "same"
    assert report.problem["operands"]["x"]["shape"] == list(x.shape)
