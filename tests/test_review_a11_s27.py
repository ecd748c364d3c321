"""Review of stop 44's hand-over and flush (review_a11): a queued step's operand patterns
kept as bits (src/_nz_bits.pyx, hand27) against NumPy's ``a != 0`` at every size around the
64-bit words and 16-lane passes, on NaN, inf and -0.0, in C and F order, on both passes; a
pattern taken at the hand-over does not see the array written after it (the next step
reuses its buffers); and a flush's steps timed together (training.planned_steps, acct27)
against each step timed alone (planned_step), dense and sparse plans, the dense ramp's
fallback and the all-nonzero shortcut included, float for float."""
import numpy as np
import pytest
import scipy.sparse as sps

import wsekern as wk
from wsekern import _nz_bits
from wsekern.nn import columns
from wsekern.wafer import analytic, training
from wsekern.wafer.placement import WeightStats

PATHS = ("avx512", "baseline")
SIZES = [1, 7, 8, 15, 16, 17, 63, 64, 65, 127, 128, 129, 191, 200, 1031]
SPECIAL = np.array([0.0, -0.0, np.nan, np.inf, -np.inf, 1e-45, -1e-45, 1.0, -2.5],
                   np.float64)


@pytest.fixture(params=PATHS)
def path(request):
    before = _nz_bits.use_simd_path(request.param)
    yield request.param
    _nz_bits.use_simd_path(before)


def _values(rng, n, dtype):
    """n values drawn from SPECIAL: zeros of both signs, NaN, infinities, denormals."""
    return SPECIAL[rng.integers(0, len(SPECIAL), n)].astype(dtype)


def _bits_array(bits, n):
    """The bits as NumPy unpacks them (little-endian bit order), the first n and the rest."""
    b = np.unpackbits(bits.view(np.uint8), bitorder="little").astype(bool)
    return b[:n], b[n:]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nonzero_bits_are_numpys_at_every_size(path, dtype):
    rng = np.random.default_rng(11)
    for n in SIZES:
        for shape in ((1, n), (n, 1), (3, n)):
            a = _values(rng, int(np.prod(shape)), dtype).reshape(shape)
            for arr in (a, np.asfortranarray(a)):
                bits, count = _nz_bits.nonzero_bits(arr)
                flat = (arr != 0).ravel(order="K")
                got, rest = _bits_array(bits, arr.size)
                assert np.array_equal(got, flat) and not rest.any()
                assert count == np.count_nonzero(arr)
                assert np.array_equal(_nz_bits.unpack(bits, arr.size), flat)
                # as the costing reads it: a bool array of the operand's order
                nz = columns.taken(arr)
                pattern = nz.pattern()
                assert pattern.dtype == np.bool_ and np.array_equal(pattern, arr != 0)
                want = arr != 0
                assert (pattern.flags.c_contiguous, pattern.flags.f_contiguous) == \
                    (want.flags.c_contiguous, want.flags.f_contiguous)
                assert nz.pattern_nnz()[1] == count


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_grad_bits_are_numpys_at_every_size(path, dtype):
    rng = np.random.default_rng(12)
    for n in SIZES:
        g = _values(rng, 3 * n, dtype).reshape(3, n)
        y = _values(rng, 3 * n, dtype).reshape(3, n)
        bits, count = _nz_bits.relu_grad_bits(g, y)
        want = (g != 0) & (y > 0)
        got, rest = _bits_array(bits, g.size)
        assert np.array_equal(got, want.ravel()) and not rest.any()
        assert count == np.count_nonzero(want)
        s = columns.SampleMajor(g, relu=y)
        assert np.array_equal(s.pattern(), want.T) and s.pattern_nnz()[1] == count


def test_unpack_refuses_more_bits_than_held_and_takes_none():
    bits = np.zeros(2, np.uint64)
    for n in (-1, 129):
        with pytest.raises(ValueError, match=f"within 0..128 .*received {n}"):
            _nz_bits.unpack(bits, n)
    assert _nz_bits.unpack(np.zeros(0, np.uint64), 0).shape == (0,)
    # what the passes do not take: NumPy's way (columns.taken keeps the array)
    for a in (np.zeros((0, 4), np.float32), np.ones((3, 4), np.float16),
              np.ones((4, 6), np.float32)[:, ::2], np.ones(5, np.float32)):
        assert _nz_bits.nonzero_bits(a) is None
    assert _nz_bits.relu_grad_bits(np.ones((2, 3)), np.ones((3, 2))) is None


def test_a_pattern_taken_at_the_hand_over_does_not_see_the_next_steps_writes():
    """A layer reuses its buffers step after step: a queued step's pattern is the one of
    its own step, taken when handed over, whatever is written into the array after."""
    rng = np.random.default_rng(13)
    for n in (13, 64, 130):
        x = (rng.random((9, n)) < 0.5).astype(np.float32)
        g = rng.standard_normal((n, 9)).astype(np.float32)
        y = (rng.random((n, 9)) - 0.5).astype(np.float32)
        want_x, want_g = x != 0, ((g != 0) & (y > 0)).T
        taken, sample_major = columns.taken(x), columns.SampleMajor(g, relu=y)
        kept = columns.SampleMajor(g, keep=y > 0)
        x[...] = 1.0 - x                 # the next step's operands, in the same buffers
        g[...] = 0.0
        y[...] = -y
        assert np.array_equal(taken.pattern(), want_x)
        assert np.array_equal(sample_major.pattern(), want_g)
        assert np.array_equal(kept.pattern(), want_g)
        assert taken.nnz == np.count_nonzero(want_x)


def _relu_like(rng, rows, n, zeros):
    a = rng.standard_normal((rows, n)).astype(np.float32)
    a[rng.random((rows, n)) < zeros] = 0.0
    return a


def _plans():
    """Dense and sparse plans on one and on several PE columns (the chain whose ramp term
    can bind), with and without the input gradient."""
    rng = np.random.default_rng(14)
    # slow links: the ramp's load binds on sparse batches (test_review_w6_s22's config)
    slow = wk.WaferConfig.wse3(rows=16, cols=16, dtype="fp32").with_(
        ramp_cycles=1.0, task_cycles=2.0, link_wavelets_per_cycle=0.25)
    for M, K, density, region, cfg in [
            (8, 64, 1.0, (0, 0, 1, 8), slow), (8, 64, 1.0, (0, 0, 2, 12), slow),
            (8, 64, 0.5, (0, 0, 1, 8), slow),
            (40, 30, 1.0, (0, 0, 4, 4), wk.WaferConfig.small(16, 16)),
            (40, 30, 1.0, (0, 0, 1, 1), wk.WaferConfig.small(16, 16)),
            (64, 96, 1.0, (0, 0, 2, 12), wk.WaferConfig.small(16, 16)),
            (40, 30, 0.3, (0, 0, 4, 4), wk.WaferConfig.small(16, 16)),
            (70, 50, 0.1, (0, 0, 3, 8), wk.WaferConfig.small(16, 16)),
            (90, 130, 0.2, (0, 0, 6, 9), wk.WaferConfig.wse2())]:
        if density == 1.0:
            W = sps.csr_array(rng.standard_normal((M, K)).astype(np.float32) + 5.0)
        else:
            W = sps.random(M, K, density=density, format="csr", random_state=rng,
                           dtype=np.float32)
        for needs in (True, False):
            for N in (1, 7, 13, 65):
                yield cfg, region, W, needs, N


def _steps(rng, K, M, N):
    """A flush's operands: sparse, all-zero, all-nonzero twice (the shortcut by shape),
    C and F order."""
    out = []
    for zx, zg in [(0.5, 0.3), (1.0, 1.0), (0.0, 0.0), (0.95, 0.0), (0.0, 0.0), (0.2, 0.7),
                   (0.95, 0.95)]:
        x, g = _relu_like(rng, K, N, zx) != 0, _relu_like(rng, M, N, zg) != 0
        if len(out) % 2:
            x, g = np.asfortranarray(x), np.asfortranarray(g)
        out.append((x, g, (int(np.count_nonzero(x)), int(np.count_nonzero(g)))))
    return out


def test_a_flushs_steps_timed_together_are_each_step_timed_alone(monkeypatch):
    rng = np.random.default_rng(15)
    ramps, kinds = [0], set()
    orig = analytic.dense_screen_cycles

    def counted(*a, **k):
        ramps[0] += 1
        return orig(*a, **k)
    for cfg, region, W, needs, N in _plans():
        stats, stats_t = WeightStats(W), WeightStats(W.T)
        steps = _steps(rng, W.shape[1], W.shape[0], N)
        plans = [training.step_plan(cfg, "layer-pipelined", region, W, stats, stats_t, N,
                                    needs) for _ in range(2)]
        kinds.add(plans[0]["kind"])
        want = []
        for x, g, nnz in steps:
            parts, latency, sram = training.planned_step(plans[0], x, g, nnz=nnz)
            want.append(((*parts.values(),), latency, sram))
        monkeypatch.setattr(analytic, "dense_screen_cycles", counted)
        got = training.planned_steps(plans[1], [s[0] for s in steps], [s[1] for s in steps],
                                     [s[2] for s in steps])
        monkeypatch.setattr(analytic, "dense_screen_cycles", orig)
        assert repr(got) == repr(want)          # the same floats, ints and Nones
        if plans[0]["kind"] == "dense":       # the plan keeps the last all-nonzero one's
            assert plans[1]["forward"].get("seen") == plans[0]["forward"].get("seen")
    assert kinds == {"dense", "sparse"}
    assert ramps[0] > 0                         # the ramp's fallback was taken


def _flush_peaks(defer_bytes):
    """(the bytes each flush allocated at its peak, the bytes the queue held before it) of
    a sparse layer's epoch under WaferStrategy(defer_bytes=...): 16 steps of 64 samples."""
    import tracemalloc

    from wsekern import nn
    from wsekern.nn import layers as L
    from wsekern.nn.strategy import ModelPlacement
    nn.utils.set_random_seed(0)
    strategy = wk.WaferStrategy(wk.WaferConfig.small(32, 32), defer_bytes=defer_bytes)
    with strategy.scope():
        model = nn.Sequential([nn.Input((256,)),
                               L.Dense(256, activation="relu", sparsity=0.8, name="big"),
                               L.Dense(10, activation="softmax", name="out")])
        model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(16)
    x = (rng.random((1024, 256)) - 0.5).astype(np.float32)
    y = rng.integers(0, 10, 1024)
    strategy.place(model, 64, samples=len(x))
    peaks, held = [], []
    orig = ModelPlacement._flush

    def flush(self):
        if self._flushing or not self._queue:
            return orig(self)
        held.append(self._queue_bytes)
        tracemalloc.start()         # what the flush allocates (NumPy's arrays included)
        try:
            return orig(self)
        finally:
            peaks.append(tracemalloc.get_traced_memory()[1])
            tracemalloc.stop()
    ModelPlacement._flush = flush
    try:
        model.fit(x, y, batch_size=64, epochs=1, shuffle=False, verbose=0)
    finally:
        ModelPlacement._flush = orig
    return peaks, held


def test_a_flush_holds_about_the_bytes_its_queue_was_capped_at():
    """defer_bytes bounds what a queue holds; a flush that unpacks every queued step's
    patterns at once (bits to a byte an element: 8x) before costing the first holds up
    to 8x the cap. One step's patterns here: 256 x 64 three times and 10 x 64, ~50 KB as
    bytes, ~6 KB as bits; a cap of 100 KB holds the 16 steps' bits (~93 KB), whose bytes
    are ~800 KB. Allowed: the cap, one step's patterns as bytes, and 64 KB for the rest."""
    cap = 100_000
    peaks, held = _flush_peaks(cap)
    step = 3 * 256 * 64 + 10 * 64
    assert peaks and max(held) <= cap + step
    assert max(peaks) <= cap + step + 65536, (peaks, held)
