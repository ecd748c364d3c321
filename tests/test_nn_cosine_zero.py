"""The CosineSimilarity loss with Keras 3's numerics: each vector times
min(rsqrt(sum of squares), 1/epsilon = 1e7). A zero prediction row's value is 0 and its
gradient NaN, as Keras's step on it gives (ours was a huge finite gradient from a 1e-12
clamp); a tiny nonzero row's gradient is the clamp's finite 1e7 factor; elsewhere the exact
gradient (finite differences)."""
import os

import numpy as np
import pytest

from wsekern import nn
from wsekern.nn.tensor import Tensor


def value_and_grad(y_true, y_pred):
    t = Tensor(y_pred, requires_grad=True)
    v = nn.losses.cosine_similarity(y_true, t)
    v.sum().backward()
    return v.data, t.grad


def test_exact_gradient_by_finite_differences():
    rng = np.random.default_rng(0)
    yt, yp = rng.standard_normal((2, 4, 5))
    v, g = value_and_grad(yt, yp)
    want = -np.sum(yt * yp, -1) / np.linalg.norm(yt, axis=-1) / np.linalg.norm(yp, axis=-1)
    np.testing.assert_allclose(v, want, rtol=1e-12)
    h = 1e-6
    for i, j in np.ndindex(yp.shape):
        d = np.zeros_like(yp)
        d[i, j] = h
        fd = (value_and_grad(yt, yp + d)[0].sum() - value_and_grad(yt, yp - d)[0].sum()) / 2 / h
        assert g[i, j] == pytest.approx(fd, rel=1e-5, abs=1e-8)


def test_zero_and_tiny_prediction_rows_as_keras_computes_them():
    yt = np.array([[1, 2, 3], [1, 2, 3], [0, 0, 0]], np.float32)
    yp = np.array([[0, 0, 0], [1e-8, 0, 0], [1, 2, 0]], np.float32)
    v, g = value_and_grad(yt, yp)
    np.testing.assert_array_equal(v[[0, 2]], [0, 0])
    assert np.isnan(g[0]).all()                                    # Keras's NaN
    t = yt[1] / np.linalg.norm(yt[1])
    # under the clamp (sum of squares 1e-16 < 1e-14) the factor is the constant 1e7
    assert v[1] == pytest.approx(-t[0] * 1e-8 * 1e7, rel=1e-6)
    np.testing.assert_allclose(g[1], -t * 1e7, rtol=1e-6)
    np.testing.assert_array_equal(g[2], 0)                         # a zero target: no pull


def test_equal_to_keras_value_and_gradient():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    torch = pytest.importorskip("torch")
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "torch":
        pytest.skip(f"Keras runs on {keras.backend.backend()}, not torch")
    rng = np.random.default_rng(1)
    yt = rng.standard_normal((6, 4)).astype(np.float32)
    yp = rng.standard_normal((6, 4)).astype(np.float32)
    yp[0] = 0
    yp[1] = [3e-8, 0, -1e-8, 0]
    yt[2] = 0
    yp[3] = [1e-7, 0, 0, 0]                    # sum of squares 1e-14: at the clamp's edge
    p = torch.tensor(yp, requires_grad=True)
    want = keras.losses.CosineSimilarity()(torch.tensor(yt), p)
    want.backward()
    t = Tensor(yp, requires_grad=True)
    got = nn.losses.CosineSimilarity()(yt, t)
    got.backward()
    assert float(got.data) == pytest.approx(float(want.detach()), rel=1e-6)
    np.testing.assert_allclose(t.grad, p.grad.numpy(), rtol=1e-5, atol=1e-7)   # NaN == NaN
