"""The hand-over's float32 passes (src/_step_glue.pyx: a layer's input pattern and a fused
ReLU's gradient pattern) on the AVX-512 path (64 values a round, where the CPU runs it)
and the baseline (SSE2) against NumPy: the same bytes and counts for every length around
the rounds (tails), either memory order, and zeros of both signs, NaN, infinities and
subnormals placed across the rounds."""
import numpy as np
import pytest

from wsekern import _step_glue
from wsekern._step_glue import nonzero_pattern, relu_grad_pattern

SPECIAL = np.array([0.0, -0.0, np.nan, np.inf, -np.inf, 1e-45, -1e-45, 1.0, -1.0],
                   np.float32)


@pytest.fixture
def glue_path():
    before = _step_glue.use_simd_path("avx512")
    yield _step_glue.use_simd_path
    _step_glue.use_simd_path(before)


def _values(rng, shape):
    v = rng.standard_normal(shape).astype(np.float32)
    v[rng.random(shape) < 0.4] = 0.0
    flat = v.reshape(-1)
    at = rng.integers(0, flat.size, max(flat.size // 5, 1)) if flat.size else []
    flat[at] = rng.choice(SPECIAL, len(at))
    return v


@pytest.mark.parametrize("path", ["avx512", "baseline"])
def test_the_float32_passes_give_numpys_patterns_on_each_path(glue_path, path):
    glue_path(path)
    rng = np.random.default_rng(17)
    for rows, cols in [(1, 1), (1, 63), (1, 64), (1, 65), (3, 43), (2, 64), (7, 129),
                       (32, 784), (32, 1024), (5, 1000), (64, 3)]:
        for order in ("C", "F"):
            a = np.asarray(_values(rng, (rows, cols)), order=order)
            nz, count = nonzero_pattern(a)
            assert nz.dtype == np.bool_
            assert np.array_equal(nz, a != 0) and count == np.count_nonzero(a != 0)
            assert nz.flags.c_contiguous == (a != 0).flags.c_contiguous
            g, y = _values(rng, (rows, cols)), _values(rng, (rows, cols))
            got, count = relu_grad_pattern(g, y)
            want = (g != 0) & (y > 0)
            assert np.array_equal(got, want) and count == np.count_nonzero(want)


def test_the_path_is_refused_by_name():
    with pytest.raises(ValueError, match="path must be 'avx512', 'avx2' or 'baseline'; "
                                         "received 'sse'"):
        _step_glue.use_simd_path("sse")
