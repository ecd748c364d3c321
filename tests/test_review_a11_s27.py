"""Review of stop 44's hand-over and flush (review_a11): a queued step's operand patterns,
taken at the hand-over (nn/columns.py), are its own step's whatever the layer writes into
the same arrays after; and a flush, with the queue's steps timed together (acct27's
training.planned_steps), allocates about the bytes the queue was capped at
(``defer_bytes``): with the patterns queued as bits (hand27's e10e0b3, reverted in
cae448b) it unpacked every step's at once, 8x the cap. The batched figures' equality with
the one-by-one ones is tests/test_step_cycles_many.py's; every figure of seeded runs
against main's: /work/notes/s27/review_a11/hashrun.py (32 runs x 3 SIMD paths, equal)."""
import tracemalloc

import numpy as np

import wsekern as wk
from wsekern import nn
from wsekern.nn import columns
from wsekern.nn import layers as L
from wsekern.nn.strategy import ModelPlacement


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


def _flush_peaks(defer_bytes):
    """(the bytes each flush allocated at its peak, the bytes the queue held before it) of
    a sparse layer's epoch under WaferStrategy(defer_bytes=...): 16 steps of 64 samples."""
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
    """defer_bytes bounds what a queue holds, and a flush holds about that: one that
    unpacked every queued step's patterns at once (bits to a byte an element: 8x) before
    costing the first held up to 8x the cap (774 KB here, with hand27's bits). One step's
    patterns here: 256 x 64 three times and 10 x 64, ~50 KB as bytes, ~6 KB as bits; a cap
    of 100 KB holds the 16 steps' bits (~93 KB), whose bytes are ~800 KB. Allowed: the
    cap, one step's patterns as bytes, and 64 KB for the rest."""
    cap = 100_000
    peaks, held = _flush_peaks(cap)
    step = 3 * 256 * 64 + 10 * 64
    assert peaks and max(held) <= cap + step
    assert max(peaks) <= cap + step + 65536, (peaks, held)
