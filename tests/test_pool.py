"""Pooling against plain loops and finite differences (torch's semantics)."""
import numpy as np
import pytest

import wsekern


def pool_reference(x, k, s, p, op):
    B, C, H, W = x.shape
    fill = -np.inf if op == "max" else 0.0
    xp = np.pad(x, ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])), constant_values=fill)
    OH = (H + 2 * p[0] - k[0]) // s[0] + 1
    OW = (W + 2 * p[1] - k[1]) // s[1] + 1
    out = np.empty((B, C, OH, OW))
    for oh in range(OH):
        for ow in range(OW):
            win = xp[:, :, oh * s[0]:oh * s[0] + k[0], ow * s[1]:ow * s[1] + k[1]]
            out[:, :, oh, ow] = win.max(axis=(2, 3)) if op == "max" else win.mean(axis=(2, 3))
    return out


CASES = [((2, 3, 8, 8), (2, 2), (2, 2), (0, 0)), ((1, 2, 7, 9), (3, 3), (2, 1), (1, 1)),
         ((2, 1, 5, 6), (3, 2), (1, 2), (1, 0))]


@pytest.mark.parametrize("op", ["max", "avg"])
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pool_forward(op, case, dtype):
    shape, k, s, p = case
    x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    fn = wsekern.max_pool2d if op == "max" else wsekern.avg_pool2d
    y = fn(x, k, s, p)
    assert y.dtype == dtype
    np.testing.assert_allclose(y, pool_reference(x.astype(np.float64), k, s, p, op),
                               rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("op", ["max", "avg"])
@pytest.mark.parametrize("case", CASES)
def test_pool_backward_finite_differences(op, case):
    shape, k, s, p = case
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape)
    fwd = wsekern.max_pool2d if op == "max" else wsekern.avg_pool2d
    bwd = wsekern.max_pool2d_backward if op == "max" else wsekern.avg_pool2d_backward
    R = rng.standard_normal(fwd(x, k, s, p).shape)
    g = bwd(R, x, k, s, p)
    num = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        old = x[idx]
        x[idx] = old + 1e-6
        up = (fwd(x, k, s, p) * R).sum()
        x[idx] = old - 1e-6
        down = (fwd(x, k, s, p) * R).sum()
        x[idx] = old
        num[idx] = (up - down) / 2e-6
    np.testing.assert_allclose(g, num, rtol=1e-5, atol=1e-6)


def test_stride_defaults_to_kernel():
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    np.testing.assert_array_equal(wsekern.max_pool2d(x, 2)[0, 0], [[5, 7], [13, 15]])


@pytest.mark.parametrize("kwargs, match", [
    (dict(kernel_size=2, padding=2), "at most half"),
    (dict(kernel_size=9), "does not fit"),
    (dict(kernel_size=0), "kernel_size"),
])
def test_pool_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        wsekern.max_pool2d(np.ones((1, 1, 4, 4)), **kwargs)
    with pytest.raises(ValueError, match="4-D"):
        wsekern.avg_pool2d(np.ones((4, 4)), 2)


@pytest.mark.parametrize("op", ["max", "avg"])
@pytest.mark.parametrize("case", CASES)
def test_pool_matches_torch_when_installed(op, case):
    torch = pytest.importorskip("torch")
    shape, k, s, p = case
    x = np.random.default_rng(3).standard_normal(shape)
    xt = torch.from_numpy(x).requires_grad_()
    fn = torch.nn.functional.max_pool2d if op == "max" else torch.nn.functional.avg_pool2d
    yt = fn(xt, k, s, p)
    R = np.random.default_rng(4).standard_normal(tuple(yt.shape))
    yt.backward(torch.from_numpy(R))
    fwd = wsekern.max_pool2d if op == "max" else wsekern.avg_pool2d
    bwd = wsekern.max_pool2d_backward if op == "max" else wsekern.avg_pool2d_backward
    np.testing.assert_allclose(fwd(x, k, s, p), yt.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(bwd(R, x, k, s, p), xt.grad.numpy(), rtol=1e-12, atol=1e-12)
