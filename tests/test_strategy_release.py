"""A WaferStrategy reused for many models holds them weakly: a model the user drops is
freed with its layers and placement, and its steps, samples and costing seconds stay in
the strategy's sums (counted in closed form: steps = batches taken)."""
import gc
import weakref

import numpy as np

import wsekern as wk
from wsekern import nn
from wsekern.nn import layers as L

BATCH = 4


def _model(strategy, tag):
    with strategy.scope():
        model = nn.Sequential([nn.Input((6,)), L.Dense(5, activation="relu", name=f"d_{tag}"),
                               L.Dense(3, name=f"o_{tag}")], name=f"m_{tag}")
    model.compile(optimizer="sgd", loss="mse")
    return model


def _train(model, steps):
    rng = np.random.default_rng(0)
    for _ in range(steps):
        model.train_on_batch(rng.random((BATCH, 6), np.float32),
                             rng.random((BATCH, 3), np.float32))


def test_dropped_models_are_freed_and_their_steps_stay_counted():
    strategy = wk.WaferStrategy(wk.WaferConfig.small(16, 16), defer_steps=16)
    gone = []
    for i, steps in enumerate((3, 2, 5)):
        model = _model(strategy, i)
        _train(model, steps)                # queued (defer_steps=16): costed when let go
        gone.append((weakref.ref(model), weakref.ref(model.layers[0])))
        del model
    kept = _model(strategy, "kept")
    _train(kept, 1)
    gc.collect()
    assert strategy.steps == 3 + 2 + 5 + 1
    assert strategy.samples == BATCH * 11
    assert [(m() is None, layer() is None) for m, layer in gone] == [(True, True)] * 3
    assert strategy.models == [kept]
    assert strategy.model_placement(kept).steps == 1
    assert strategy.mode == "layer-pipelined"       # the one model held: no error


def test_a_dropped_models_costing_seconds_stay_in_the_sum():
    strategy = wk.WaferStrategy(wk.WaferConfig.small(16, 16), defer_steps=1)
    model = _model(strategy, "a")
    _train(model, 2)
    before = (strategy.steps, strategy.samples, strategy.cost_seconds)
    assert before[0] == 2 and before[2] > 0
    ref = weakref.ref(model)
    del model
    gc.collect()
    assert ref() is None
    assert (strategy.steps, strategy.samples, strategy.cost_seconds) == before
    assert strategy.models == []


def test_a_dropped_strategy_and_model_are_freed_with_their_layers():
    """The layers' map to their placements (placed.py) keeps neither alive."""
    strategy = wk.WaferStrategy(wk.WaferConfig.small(16, 16))
    model = _model(strategy, "s")
    _train(model, 1)
    refs = [weakref.ref(o) for o in (strategy, model, model.layers[0])]
    del strategy, model
    gc.collect()
    assert [r() is None for r in refs] == [True, True, True]


def test_the_one_models_placement_stays_readable_until_another_is_placed():
    """The per-model readers read a one-model strategy's model after the program dropped
    it (whenever the collector runs), until another model is placed: then it is freed."""
    strategy = wk.WaferStrategy(wk.WaferConfig.small(16, 16), defer_steps=16)
    model = _model(strategy, "one")
    _train(model, 2)
    layer = weakref.ref(model.layers[0])
    del model
    gc.collect()
    assert strategy.mode == "layer-pipelined" and len(strategy.step_cycles) == 2
    other = _model(strategy, "other")
    gc.collect()
    assert layer() is None
    assert strategy.models == [other] and strategy.step_cycles == [] and strategy.steps == 2


def test_a_model_placed_again_for_another_batch_keeps_its_steps_in_the_sums():
    """fit at another batch size places the model again and its report starts afresh; the
    strategy's sums go on counting the steps the earlier placement costed (review_k10:
    they went 16, 16, 8 while the model took 16, 32, 40 steps)."""
    strategy = wk.WaferStrategy(wk.WaferConfig.small(16, 16), defer_steps=16)
    model = _model(strategy, "again")
    rng = np.random.default_rng(0)
    x, y = rng.random((64, 6), np.float32), rng.random((64, 3), np.float32)
    seen = []
    for batch, epochs in ((8, 2), (4, 1), (8, 1)):
        model.fit(x, y, batch_size=batch, epochs=epochs, verbose=0)
        seen.append((strategy.steps, strategy.samples,
                     strategy.model_placement(model).steps))
    assert seen == [(16, 128, 16), (32, 192, 16), (40, 256, 8)]
