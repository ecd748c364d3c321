"""Findings of the s15 review handed to the lead: a byte-swapped W computed as SciPy does,
and binary cross-entropy with logits taking any target, as Keras does."""
import numpy as np
import pytest
import scipy.sparse as sps

import wsekern
from wsekern import nn


def _swapped_csr(W):
    B = W.copy()
    B.data = B.data.astype(B.data.dtype.newbyteorder(">" if np.little_endian else "<"))
    assert not B.dtype.isnative
    return B


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_byte_swapped_w_gives_the_native_ws_product(dtype):
    W = sps.random(7, 5, density=0.5, format="csr", dtype=dtype, random_state=1)
    X = np.arange(10, dtype=dtype).reshape(5, 2)
    want = wsekern.spmm(W, X)
    np.testing.assert_array_equal(wsekern.spmm(_swapped_csr(W), X), want)
    dense = W.toarray()
    np.testing.assert_array_equal(wsekern.spmm(dense.astype(dense.dtype.newbyteorder(">")), X),
                                  wsekern.spmm(dense, X))
    np.testing.assert_allclose(want, W @ X, rtol=1e-6)


def test_the_wafer_takes_a_byte_swapped_w():
    W = sps.random(6, 4, density=0.5, format="csr", random_state=2)
    X = np.arange(8.0).reshape(4, 2)
    wafer = wsekern.Wafer(wsekern.WaferConfig.wse2())
    Y, report = wafer.spmm(_swapped_csr(W), X)
    Y0, report0 = wafer.spmm(W, X)
    np.testing.assert_array_equal(Y, Y0)
    assert str(report) == str(report0)


def test_binary_crossentropy_with_logits_takes_any_target_as_keras_does():
    x, y = 0.7, 3.0          # Keras 3 on torch: -0.9968
    want = max(x, 0) - x * y + np.log1p(np.exp(-abs(x)))
    got = nn.losses.binary_crossentropy(np.array([[y]]), np.array([[x]]), from_logits=True)
    np.testing.assert_allclose(np.asarray(getattr(got, "data", got)), [want], rtol=1e-6)
    with pytest.raises(ValueError, match=r"targets must be in \[0, 1\]"):
        nn.losses.binary_crossentropy(np.array([[y]]), np.array([[0.7]]))


@pytest.mark.parametrize("value", [np.float32(0.5), np.float16(0.5), np.int64(0), 0.5])
def test_a_numpy_scalar_sparsity_is_taken_as_its_float(value):
    layer = nn.layers.Dense(4, sparsity=value)
    layer.build((None, 8))
    kept = np.count_nonzero(layer.get_weights()[0])
    assert kept == 32 - int(32 * float(value))


@pytest.mark.parametrize("value", [True, np.bool_(True), 1.0, -0.1, np.float32(np.nan), "0.5"])
def test_a_sparsity_that_is_not_a_fraction_below_one_is_refused(value):
    with pytest.raises(ValueError, match="sparsity must be a number in"):
        nn.layers.Dense(4, sparsity=value)
