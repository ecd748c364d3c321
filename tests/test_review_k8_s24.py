"""review_k8's checks of session 24's keras24 branch, each against real Keras 3 on torch
where installed."""
import numpy as np
import pytest

from wsekern.nn import ops


@pytest.mark.parametrize("x", [3, 3.0, [1, 2], [0.5, 2.0], True, np.int64(3),
                               np.array([1, 2], np.int64), np.array([1, 2], np.int32)])
def test_i0_of_python_numbers_in_keras_dtype(keras, x):
    """Keras converts Python ints and lists to int32 (floats to float32) before i0, so
    i0(3) is float32; keras24's int64 -> float64 rule made it float64 (main gave float32)."""
    want = keras.ops.convert_to_numpy(keras.ops.i0(x))
    got = ops.i0(x)
    assert got.dtype == want.dtype, (x, got.dtype, want.dtype)
    np.testing.assert_allclose(got.data, want, rtol=1e-6)
