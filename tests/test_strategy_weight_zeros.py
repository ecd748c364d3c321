"""A Dense kernel is checked every step for weights that became (or stopped being) zero:
wafer.analytic.has_zero (src/_screen.pyx's one pass in SSE2 lanes) against NumPy's
``(w == 0).any()``, and the placement's W following the kernel."""
import numpy as np
import pytest

import wsekern as wk
from wsekern import nn
from wsekern.nn import layers as L
from wsekern.wafer import analytic


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_has_zero_is_numpys_any_of_equal_zero(dtype):
    rng = np.random.default_rng(5)
    tiny = np.finfo(dtype).smallest_subnormal
    for n in list(range(0, 40)) + [4095, 4096, 4097, 4111, 8192 + 17, 20000]:
        base = (rng.random(n) + 0.5).astype(dtype)
        assert analytic.has_zero(base) is False
        specials = [0.0, -0.0, np.nan, np.inf, -np.inf, tiny, -tiny]
        for pos in sorted({0, n // 2, n - 1, max(n - 16, 0), min(4095, n - 1)}) if n else []:
            for v in specials:
                a = base.copy()
                a[pos] = v
                want = bool((a == 0).any())
                assert analytic.has_zero(a) is want, (n, pos, v)
                assert analytic.has_zero(a.reshape(1, n)) is want
    # other layouts and types take NumPy's way: the same answer
    a = (rng.random((6, 10)) + 0.5).astype(dtype)
    a[3, 4] = -0.0
    assert analytic.has_zero(a) is True
    assert analytic.has_zero(a[:, ::2]) is bool((a[:, ::2] == 0).any())
    assert analytic.has_zero(a.T) is True
    assert analytic.has_zero(a.astype(np.float16)) is True
    assert analytic.has_zero(np.array([1, 0, 2])) is True
    assert analytic.has_zero([1.0, 2.0]) is False
    assert analytic.has_zero(np.zeros((0, 3), dtype)) is False
    assert analytic.has_zero(np.full(7, np.nan, dtype)) is False


def test_the_placement_follows_a_dense_kernels_zeros():
    """A weight of a Dense kernel that becomes zero leaves W (one entry fewer, a new
    matrix); when it is nonzero again, W is whole again."""
    nn.utils.set_random_seed(0)
    strategy = wk.WaferStrategy(wk.WaferConfig.small(16, 16))
    with strategy.scope():
        model = nn.Sequential([nn.Input((12,)), L.Dense(7, name="d")])
        model.compile(optimizer="adam", loss="mse")
    p = {q.layer.name: q for q in strategy.placements}["d"]
    kernel = p.layer.kernel.data
    kernel[kernel == 0] = 0.5
    W = p.weight_matrix()
    assert W.nnz == 12 * 7 and p.weight_matrix() is W         # unchanged: the same matrix
    kernel[3, 2] = -0.0
    W0 = p.weight_matrix()
    assert W0 is not W and W0.nnz == 12 * 7 - 1 and W0[2, 3] == 0
    assert p.weight_matrix() is W0
    kernel[3, 2] = np.nan                    # NaN is not zero: W is whole again
    W1 = p.weight_matrix()
    assert W1 is not W0 and W1.nnz == 12 * 7


@pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")
def test_has_zero_is_numpys_answer_for_array_subclasses():
    """A subclass takes NumPy's way on itself: an np.matrix does not raise, and a masked
    array's masked zero does not count, as in ``(w == 0).any()``."""
    cases = [np.matrix([[1.0, 2.0], [3.0, 0.0]], np.float32), np.matrix([[1.0, 2.0]]),
             np.ma.array([1.0, 0.0, 2.0], mask=[0, 1, 0]),          # the zero is masked
             np.ma.array([1.0, 0.0], mask=[1, 0])]
    for a in cases:
        assert analytic.has_zero(a) is bool((a == 0).any()), a
