"""Every figure of seeded runs, pinned to what main gave before a flush timed each layer's
queued steps together (stop 43, 7e632ad): dense, sparse, conv, embedding, GPT and
weight-streaming models, costed as each step comes (K=1) and queued (K=16), and a model
placed again mid-queue. Each run is its steps' cycles, every layer's totals and counts and
every link's, as exact float reprs, hashed. A flush's steps must stay in order, each with
its own operands; each K=16 run that can checks that its steps were timed together.

Print the hashes (on the code they pin: only when a change to the cost model is intended):
``WSEKERN_COSTS=zen3/avx2 python tests/test_strategy_flush_hash.py``.
"""
import hashlib

import numpy as np
import pytest
from test_strategy_deferred import MODELS, _fit, _gpt, _PlaceAgain, _sparse

import wsekern as wk
from wsekern import nn
from wsekern.nn.strategy import ModelPlacement

IDS = ["dense", "sparse", "conv", "embedding", "sparse-streaming", "conv-streaming"]
BUILDS = dict(zip(IDS, MODELS))

# main's (7e632ad) hashes, zen3/avx2 cost table as the tests pin it (conftest.py)
PINNED = {
    "dense-K1": "a8010127801bf88c",
    "dense-K16": "a8010127801bf88c",
    "sparse-K1": "3f4fcf8fc997f152",
    "sparse-K16": "3f4fcf8fc997f152",
    "conv-K1": "dc4bdb66d56c4284",
    "conv-K16": "dc4bdb66d56c4284",
    "embedding-K1": "7b99d1e7b42bcbb3",
    "embedding-K16": "7b99d1e7b42bcbb3",
    "sparse-streaming-K1": "9a4679963ed36c5e",
    "sparse-streaming-K16": "9a4679963ed36c5e",
    "conv-streaming-K1": "ee1eac3b1be7abdb",
    "conv-streaming-K16": "ee1eac3b1be7abdb",
    "gpt-K1": "3c5704d3eac0b3c0",
    "gpt-K16": "3c5704d3eac0b3c0",
    "placed-again-K1": "8eff0a6a3f5e7344",
    "placed-again-K16": "8eff0a6a3f5e7344",
}


def _digest(strategy):
    figures = (list(strategy.step_cycles), strategy.steps, strategy.samples,
               [(sorted(p.totals.items()), p.sram_peak, p.activation_zeros, p.costed_steps,
                 p.last_latency, p.last_input_nnz, p.columns_max) for p in strategy.placements],
               [(sorted(e.totals.items()), e.steps, e.last_latency) for e in strategy.edges],
               sorted((m.name, c) for m, c in strategy.attention_cycles.items()))
    return hashlib.sha256(repr(figures).encode()).hexdigest()[:16]


def _gpt_run(K):
    rng = np.random.default_rng(5)
    x, y = rng.integers(0, 12, (20, 8)), rng.integers(0, 12, (20, 8))
    nn.utils.set_random_seed(0)
    strategy = wk.WaferStrategy(wk.WaferConfig.small(64, 64), defer_steps=K)
    with strategy.scope():
        model = _gpt()
        model.compile()
    model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    return strategy


def run(name, K):
    """The seeded run ``name`` with ``defer_steps=K``: (its hash, the flushes whose steps
    were timed together)."""
    together = []
    original = getattr(ModelPlacement, "_queued_figures", None)   # (None: main's code)

    def queued_figures(self, queue):
        got = original(self, queue)
        together.append(got is not None)
        return got
    if original is not None:
        ModelPlacement._queued_figures = queued_figures
    try:
        if name == "gpt":
            strategy = _gpt_run(K)
        elif name == "placed-again":
            strategy = _fit(_sparse, None, K, epochs=1, callbacks=[_PlaceAgain])[0]
        else:
            strategy = _fit(*BUILDS[name], K)[0]
    finally:
        if original is not None:
            ModelPlacement._queued_figures = original
    return _digest(strategy), sum(together)


CASES = [(name, K) for name in IDS + ["gpt", "placed-again"] for K in (1, 16)]


@pytest.mark.parametrize("name,K", CASES, ids=[f"{n}-K{K}" for n, K in CASES])
def test_every_figure_is_mains(name, K):
    digest, together = run(name, K)
    assert digest == PINNED[f"{name}-K{K}"]
    # a layer-pipelined queue's steps were timed together (attention and weight
    # streaming cost theirs one by one)
    assert (together > 0) == (K > 1 and name in ("dense", "sparse", "conv", "embedding",
                                                 "placed-again"))


if __name__ == "__main__":
    for name, K in CASES:
        print(f'    "{name}-K{K}": "{run(name, K)[0]}",')
