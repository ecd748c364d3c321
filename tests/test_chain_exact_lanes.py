"""A dense step's chain of whole numbers takes the exact scan (src/wsk_chain.h): on the
AVX-512 path its running maximum goes 8 positions a vector (each vector's prefix maximum,
then the vectors' before it). Against the recurrence written out in Python, on chains whose
scanned positions (C - 2) fill no vector, part of one, exactly one, and several with a
short last; no sample, one, and an odd and an even number of them."""
import numpy as np
import pytest
from test_step_blocks_simd import _same
from test_step_chain_fused import _chain

from wsekern._screen import DenseStep, dense_stream


@pytest.mark.parametrize("C", [3, 4, 9, 10, 11, 18, 27, 66, 131])
def test_the_exact_scan_in_lanes_is_the_recurrence(paths, C):
    rng = np.random.default_rng(3000 + C)
    K = 4 * C
    # whole figures (the exact scan); dt 1 and 2 (a link at half a wavelet a cycle)
    for tmax, eos, wpv, dt, fill in ((7.0, 4.0, 2, 1.0, 9.0), (3.0, 2.0, 1, 2.0, 0.0)):
        for L, hop, ramp, lat, launch in ((1, 1.0, 0.0, 1.0, 2.0), (3, 1.0, 7.0, 16.0, 5.0),
                                          (2, 0.0, 0.0, 0.0, 0.0)):
            # columns of uneven length, so their counts, hence the maxima, vary by position
            k_b = np.concatenate([[0], np.sort(rng.integers(0, K + 1, C))]).astype(np.int_)
            cushion = float(rng.choice([0.0, 2.0, 1000.0]))
            task = float(rng.choice([4.0, 1.0]))
            pipe = (np.array([L], np.int_), hop, ramp, lat, launch, task, cushion)
            for N in (0, 1, 2, 7, 32):
                x = (rng.random((K, N)) < rng.choice([0.05, 0.5, 1.0])).view(np.uint8)
                work, first, last = dense_stream(x, k_b, tmax, eos, wpv, dt, fill)[:3]
                want = _chain(work, first, last, False, 0.0, L, hop, ramp, lat, launch,
                              task, cushion, dt)
                for path in ("avx512", "baseline"):
                    paths(path)
                    got = DenseStep(K, k_b, tmax, eos, wpv, dt, fill, pipe).run(x)[2]
                    assert _same(got, want), (L, cushion, path, N, got, want)
