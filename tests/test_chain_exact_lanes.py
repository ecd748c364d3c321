"""The step chains' lanes (src/wsk_chain.h, src/wsk_step_chain.h) against the recurrence
written out in Python, on both SIMD paths:

- a dense step's chain of whole numbers takes the exact scan (in the step's fused pass and
  in dense_stream's chain of its arrays): on the AVX-512 path its running maximum goes 8
  positions a vector (each vector's prefix maximum, then the vectors' before it); chains
  whose scanned positions (C - 2) fill no vector, part of one, exactly one, and several
  with a short last;
- each sample's row reads its counts from a copy sample by sample (wsk_counts_nc, by 8 x 8
  blocks on the AVX-512 path): columns and samples short of a block, whole blocks, and
  blocks with edges on either side.

No sample, one, and odd and even numbers of them."""
import numpy as np
import pytest
from test_step_blocks_simd import _case, _same
from test_step_chain_fused import _chain
from test_strategy_step_plan import _by_columns

from wsekern._screen import DenseStep, dense_stream
from wsekern._step_cost import WsStep, ws_step_columns


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
                    # the same chain on the stream's arrays (src/_chain.pxd's chain_columns)
                    got = dense_stream(x, k_b, tmax, eos, wpv, dt, fill, pipe)[5]
                    assert _same(got, want), (L, cushion, path, N, got, want)


@pytest.mark.parametrize("C", [5, 8, 16, 23, 41])
def test_rows_of_counts_copied_sample_by_sample_are_the_recurrence(paths, C):
    rng = np.random.default_rng(4000 + C)
    R = 3
    x_nz, k_b, S, choice, comp, dense, t_dense, tail = _case(rng, R, C, 3, ())
    cols = _by_columns(None, R, C, k_b, S, choice, comp, dense)
    K = x_nz.shape[0]
    args = (k_b, *cols[:3], t_dense, *cols[3:], *tail, True)
    # a weight-stationary step (its paired rounds) and a dense one of fractions (the
    # general scan), each sample's columns of other counts
    ws_pipe = (np.array([2], np.int_), 1.0, 7.0, 16.0, 5.0, 3.0, 2.5)
    dense_pipe = (np.array([3], np.int_), 1.5, 0.25, 3.0, 4.5, 1.5, 0.0)
    dense_args = (K, k_b, 2.5, 1.0, 2, 1.5, 0.5)
    for N in (0, 1, 7, 8, 9, 16, 17, 40):
        x = (rng.random((K, N)) < rng.choice([0.1, 0.5])).view(np.uint8)
        work, first, last = ws_step_columns(x, *args)[:3]
        want_ws = _chain(work, first, last, True, 2.5, 2, 1.0, 7.0, 16.0, 5.0, tail[0],
                         3.0, tail[4])
        work, first, last = dense_stream(x, *dense_args[1:])[:3]
        want_dense = _chain(work, first, last, False, 0.0, 3, 1.5, 0.25, 3.0, 4.5, 1.5,
                            0.0, 1.5)
        for path in ("avx512", "baseline"):
            paths(path)
            got = WsStep(K, *args, ws_pipe).run(x)[3]
            assert _same(got, want_ws), (path, N, got, want_ws)
            got = DenseStep(*dense_args, dense_pipe).run(x)[2]
            assert _same(got, want_dense), (path, N, got, want_dense)


@pytest.mark.parametrize("C", [2, 33, 65, 100])
def test_paired_scans_in_one_register_round_as_the_recurrence(paths, C):
    # wsk_chain_next2's two scans share a register: figures of many bits (random hops,
    # ramps, latencies and launches) so that each sum rounds, and any other order or
    # grouping of the operations would show
    rng = np.random.default_rng(5000 + C)
    R = 3
    for trial in range(6):
        x_nz, k_b, S, choice, comp, dense, t_dense, tail = _case(rng, R, C, 3, ())
        tail = tail[:4] + ((1.0, 1.5, 0.75)[trial % 3],)
        cols = _by_columns(None, R, C, k_b, S, choice, comp, dense)
        K = x_nz.shape[0]
        args = (k_b, *cols[:3], t_dense, *cols[3:], *tail, True)
        L = int(rng.integers(1, 5))
        hop, ramp, lat, launch = (float(v) for v in rng.random(4) * (1.0, 3.0, 10.0, 5.0))
        cushion, fill = float(rng.choice([0.0, L + 0.5, 1000.0])), float(rng.random() * 3)
        pipe = (np.array([L], np.int_), hop, ramp, lat, launch, cushion, fill)
        for N in (2, 9, 32):
            x = (rng.random((K, N)) < rng.choice([0.1, 0.4, 0.8])).view(np.uint8)
            work, first, last = ws_step_columns(x, *args)[:3]
            want = _chain(work, first, last, True, fill, L, hop, ramp, lat, launch, tail[0],
                          cushion, tail[4])
            for path in ("avx512", "baseline"):
                paths(path)
                got = WsStep(K, *args, pipe).run(x)[3]
                assert _same(got, want), (trial, path, N, got, want)
