"""Session 23 Keras gaps: NumPy 2's __array__(dtype, copy) protocol; pickling and
deep-copying a model with MultiHeadAttention; Nadam's unnamed scalar named as Keras does;
ctc_loss of an empty alignment is +0.0."""
import warnings

import numpy as np
import pytest

from wsekern import nn
from wsekern.nn.metrics import MetricVariable
from wsekern.nn.tensor import Tensor


def _holders():
    d = nn.layers.Dense(3)
    d.build((None, 2))
    return [Tensor(np.arange(6, dtype=np.float32).reshape(2, 3)), d.kernel,
            MetricVariable(np.arange(3, dtype=np.float32), "m")]


@pytest.mark.parametrize("k", range(3))
def test_array_protocol_copy_keyword(k):
    t = _holders()[k]
    base = np.asarray(t.data)
    with warnings.catch_warnings():
        warnings.simplefilter("error")                   # no DeprecationWarning either
        assert np.asarray(t) is base or np.shares_memory(np.asarray(t), base)
        for a in (np.array(t), np.array(t, copy=True), np.asarray(t, copy=True)):
            assert not np.shares_memory(a, base)         # was: np.array(t) aliased the tensor
            a[...] = 99
        assert not (base == 99).any()
        assert np.shares_memory(np.asarray(t, copy=False), base)
        f64 = np.asarray(t, dtype=np.float64)
        assert f64.dtype == np.float64 and np.array_equal(f64, base)
        with pytest.raises(ValueError, match="copy=False"):   # as NumPy: a copy is needed
            np.asarray(t, dtype=np.float64, copy=False)
        assert np.shares_memory(np.asarray(t, dtype=np.float32, copy=False), base)


def test_keras_converts_without_warning(keras):
    t = Tensor(np.arange(4, dtype=np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        kt = keras.ops.convert_to_tensor(t)     # (torch's own __array__ warns in to_numpy)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(kt), t.data)
