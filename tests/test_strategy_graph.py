"""The wafer places whole graphs: links between the regions of a functional model's layers
are costed as fabric traffic from the real zeros, the fill is the graph's longest path, and a
subclassed model (no traced graph) is costed layer by layer and says so."""
import math

import numpy as np

import wsekern as wk
from wsekern import nn
from wsekern.nn import layers as L


def branchy(strategy):
    nn.utils.set_random_seed(0)
    with strategy.scope():
        inp = nn.Input(shape=(32,))
        a = L.Dense(64, activation="relu", name="a")(inp)
        b = L.Dense(48, activation="relu", name="b")(a)
        c = L.Dense(48, activation="relu", name="c")(L.Dropout(0.0)(a))
        out = L.Dense(10, activation="softmax", name="out")(L.add([b, c]))
        model = nn.Model(inp, out)
        model.compile(optimizer=nn.optimizers.SGD(0.01), loss="sparse_categorical_crossentropy")
    return model


def test_graph_links_carry_the_real_nonzeros_and_the_fill_is_the_longest_path():
    cfg = wk.WaferConfig.small(32, 32)
    strategy = wk.WaferStrategy(cfg)
    model = branchy(strategy)
    x = np.random.default_rng(0).random((16, 32)).astype("float32") - 0.3
    model.train_on_batch(x, np.arange(16) % 10)
    by = {p.layer.name: p for p in strategy.placements}
    links = {(e.src.layer.name, e.dst.layer.name): e for e in strategy.edges}
    assert list(links) == [("a", "b"), ("a", "c"), ("b", "out"), ("c", "out")]
    # a -> b carries relu(a(x)): its nonzeros as sparse fp16 wavelets, or dense pairs
    Wa, ba = model.get_layer("a").get_weights()
    h = np.maximum(x @ Wa + ba, 0)
    sparse, dense = np.count_nonzero(h), math.ceil(h.size / 2)
    e = links[("a", "b")]
    assert e.totals["forward_wavelets"] == min(sparse, dense)
    assert e.totals["backward_wavelets"] == dense                 # b's input gradient
    lanes = min(by["a"].region[2], by["b"].region[2])
    assert e.totals["cycles"] == (min(sparse, dense) + dense) / lanes + \
        e.hops() * cfg.hop_cycles + 2 * cfg.ramp_cycles
    # the step: slowest node or link, plus the longest latency path (branches overlap)
    lat = {n: p.last_latency for n, p in by.items()}
    hop = {k: v.last_latency for k, v in links.items()}
    fill = lat["a"] + max(hop[("a", "b")] + lat["b"] + hop[("b", "out")],
                          hop[("a", "c")] + lat["c"] + hop[("c", "out")]) + lat["out"]
    costs = [p.totals for p in strategy.placements]
    stage = max([sum(t.values()) for t in costs] + [v.totals["cycles"] for v in links.values()])
    assert strategy.step_cycles[-1] == stage + fill
    assert fill < sum(lat.values()) + sum(hop.values())
    report = model.wafer_report()
    text = str(report)
    assert "a -> b" in text and "c -> out" in text and "wavelets/step" in text
    assert report.to_dict()["traced"] and len(report.to_dict()["edges"]) == 4


def test_subclassed_model_is_costed_layer_by_layer_and_the_report_says_so():
    class Net(nn.Model):
        def __init__(self):
            super().__init__()
            self.a = L.Dense(32, activation="relu")
            self.b = L.Dense(10, activation="softmax")

        def call(self, x):
            return self.b(self.a(x))

    strategy = wk.WaferStrategy(wk.WaferConfig.small(16, 16))
    nn.utils.set_random_seed(0)
    with strategy.scope():
        model = Net()
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x = np.random.default_rng(0).random((8, 16)).astype("float32")
    model.fit(x, np.arange(8) % 10, batch_size=8, verbose=0)
    assert len(strategy.placements) == 2 and strategy.edges == [] and not strategy.traced
    totals = [sum(p.totals.values()) for p in strategy.placements]
    assert strategy.step_cycles[-1] == max(totals) + sum(p.last_latency
                                                         for p in strategy.placements)
    assert "not traced" in str(model.wafer_report())
