"""What an event-level run will cost before it runs: wavelet-link events and bytes.

Counted from the placement alone (region, mapping, the nonzeros each PE column
streams), in O(nnz) time, the way event.py sets the engine up:

- a streamed item (a nonzero, its fp32 index wavelet, or a round's end-of-stream
  marker) enters at the edge and, at each of the L PEs of its line, is ramped to the
  core and (but at the last) sent on: 2 L events;
- a reduction wavelet (``values_per_dense_wavelet`` partial sums) costs 3 events: core
  to router, the link, router to core; every PE but a chain's last sends its block
  each round.

Memory: the engine's queues and per-PE state, the streams and the temporaries that
sort them, the operands in float64, the analytic model of the same placement (its
per-PE arrays are capped at ``analytic.PER_PE_LIMIT`` entries) and the reports'
wafer-sized maps.
"""
import math
from dataclasses import dataclass

import numpy as np

from . import analytic
from .placement import bounds

QUEUE_BYTES = 32          # sizeof(Queue) in src/_event.pyx (3 doubles, 2 int16, a byte)
SLOT_BYTES = 32           # sizeof(Slot) (3 doubles, an int32); a queue holds its depth plus
                          # the wavelets in flight
# Everything else a PE of the region costs, beside its queues and accumulators:
# - the engine's records: its Pe (128 B), link_free and link_count (88), its reducer's
#   wake time (8), its routes (2 a colour, and as much in the Python route table): 236 B;
# - the calendar's buckets (an int32 per pending wake; the buffers of cycles that have
#   run are reused): measured 12-114 B a PE (s15: 64^2 to 512^2 PEs, 128^2 the most);
# - the Python set-up of the reduction (children, send colours, accumulator offsets) and
#   of W's blocks (cursors), the placement's per-block arrays, the stats' copies and the
#   report's link counts: about 250 B.
# About 600 B; 1 KiB leaves room. (The measured peaks need less: the other terms count
# the maps whole-wafer and both accumulator buffers, more than is resident.)
PE_BYTES = 1024
STREAM_ITEM_BYTES = 80    # an item (int32 index, float64 value) and its sort temporaries
# A nonzero of W: the CSC copy the weight-stationary set-up makes (12 B), the placer's
# int64 row and column (WeightStats) and block of it (24), the engine's block lists nz_k,
# nz_r, nz_v (16) and their column counts (at most 4), or, activation-stationary, its COO
# and int64 copies before they become stream items (40). Measured up to 64 B (s15: SpMV,
# 5.4 M nonzeros on 128 x 128 PEs; 58 B with 6.7 M on 64 x 64).
W_NNZ_BYTES = 72
X_NNZ_BYTES = 24          # a nonzero of X: its row and column (int64) and value
MAP_BYTES_PER_PE = 104    # the analytic and event reports' wafer-sized maps
# The analytic model's per-PE, per-sample arrays (R x C x N, the first term's limit): the
# work, the arrivals and the pipeline's temporaries of the compressed-block model, 48 B
# measured (s15: 128 x 128 PEs, 256 samples; the peak of that whole run).
ANALYTIC_BYTES = 64
COLOURS = 3               # the stream and two reduction colours


@dataclass(frozen=True)
class EventCost:
    """The estimate of an event run: wavelet-link ``events`` and peak ``bytes``."""
    events: int
    bytes: int
    mapping: str
    region: tuple

    def check(self, max_events, max_memory):
        """Raise WorkLimitError naming the estimate and the knob when over a limit."""
        from ..errors import WorkLimitError
        r0, c0, R, C = self.region
        where = f"the {self.mapping} placement on {R}x{C} PEs"
        if max_events is not None and self.events > max_events:
            raise WorkLimitError(
                f"an event simulation of {where} would process about {self.events:,} "
                f"wavelet-link events (the engine runs 1-10 million a second), over "
                f"max_events={int(max_events):,}; raise Wafer(max_events=...) (simulate "
                f"--max-events), use mode='analytic', or give a smaller region=")
        if max_memory is not None and self.bytes > max_memory:
            raise WorkLimitError(
                f"an event simulation of {where} would need about {self.bytes / 2**20:,.0f} "
                f"MiB, over max_memory={max_memory / 2**20:,.0f} MiB; raise "
                f"Wafer(max_memory=...) (simulate --max-memory-gb), use mode='analytic', or "
                f"give a smaller region=")


def event_cost(W, X, config, region, mapping):
    """:class:`EventCost` of ``event.weight_stationary`` / ``activation_stationary`` of
    Y = W @ X (W a SciPy sparse array, X dense 2-D) on ``region``."""
    r0, c0, R, C = (int(v) for v in region)
    if not W.has_canonical_format:                 # duplicates are summed before streaming
        W = W.copy()
        W.sum_duplicates()
    M, K = W.shape
    N = X.shape[1]
    nnz_w = int(W.nnz)
    wps = config.wavelets_per_sparse_value
    vpw = config.values_per_dense_wavelet
    if mapping == "weight-stationary":
        line, rounds, chain = R, N, C              # X streams down the columns
        nnz_x = int(np.count_nonzero(X))
        items = nnz_x * wps + C * N
        blocks = np.diff(bounds(M, R))   # each chain reduces a block of rows of Y
    else:
        line, rounds, chain = C, M, R              # W streams along the rows
        nnz_x = 0
        items = nnz_w * wps + R * M
        blocks = np.diff(bounds(N, C))
    wavelets = int(np.sum(-(-blocks // vpw)))       # per round, one sender of each chain
    events = 2 * line * items + 3 * rounds * (chain - 1) * wavelets
    pes = R * C
    engine = pes * (2 * COLOURS * (QUEUE_BYTES + queue_slots(config) * SLOT_BYTES)
                    + PE_BYTES + 2 * 8 * int(blocks.max(initial=1)))
    operands = (8 * (2 * K * N + M * N) + W_NNZ_BYTES * nnz_w + X_NNZ_BYTES * nnz_x
                + 8 * (M + K))
    per_pe = R * C * N if R * C * N <= analytic.PER_PE_LIMIT else C * N
    ana = ANALYTIC_BYTES * per_pe                      # the analytic model's R x C x N arrays
    maps = MAP_BYTES_PER_PE * config.rows * config.cols
    total = engine + STREAM_ITEM_BYTES * items + operands + ana + maps
    return EventCost(int(events), int(total), mapping, (r0, c0, R, C))


def queue_slots(config):
    """Slots of each engine queue: its depth plus the wavelets a link, ramp or relay
    stage holds in flight (src/_event.pyx ``Engine.__init__``)."""
    lat = max(1.0, config.stage_cycles - 2 * config.ramp_cycles)
    flight = max(config.hop_cycles + config.turn_cycles, config.ramp_cycles,
                 lat + config.ramp_cycles, config.hop_cycles)
    return config.queue_depth + math.ceil(flight)
