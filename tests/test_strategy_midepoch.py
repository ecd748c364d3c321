"""Figures read in the middle of an epoch: a callback that reads, after each batch, that
step's cost (the step's cycles, each layer's totals and last-step figures, its reports)
sees what a train_on_batch loop over the same batches reads after each of its steps, and
what the strategy keeps per step when nobody reads until the end (and, for the MLP's first
layer, whose input is the batch, the forward's useful MACs and nonzeros NumPy counts); on
both modes, through the epoch's last, shorter batch, and up to the step where an exception
stopped fit."""
import numpy as np
import pytest
import scipy.sparse as sps
from test_strategy_lazy import CASES, _mlp, _same

import wsekern as wk
from wsekern import nn
from wsekern.nn import callbacks as cbks

SAMPLES, BATCH = 29, 8              # batches of 8, 8, 8 and a last one of 5


def _setup(build, shape, mode):
    nn.utils.set_random_seed(0)
    strategy = wk.WaferStrategy(wk.WaferConfig.small(16, 16), mode=mode)
    with strategy.scope():
        model = build()
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    strategy.place(model, BATCH, samples=SAMPLES)
    rng = np.random.default_rng(7)
    x = (rng.random((SAMPLES,) + shape) - 0.3).astype(np.float32)
    return strategy, model, x, rng.integers(0, 10, SAMPLES)


def _step_figures(strategy):
    """What a reader sees of the step just costed."""
    return {"steps": strategy.steps, "samples": strategy.samples,
            "cycles": strategy.step_cycles[-1],
            "layers": [{"totals": dict(p.totals), "nnz": p.last_input_nnz,
                        "size": p.last_input_size, "out": p.last_output_size,
                        "columns": p.last_columns, "latency": p.last_latency,
                        "zeros": p.activation_zeros, "sram": p.sram_peak,
                        "forward": p.forward_figures(),
                        "reports": {k: r.to_dict() for k, r in p.reports.items()}}
                       for p in strategy.placements]}


def _report(model):
    report = model.wafer_report().to_dict()
    report.pop("cpu_samples_per_s")          # measured, not simulated
    return report


class _Reader(cbks.Callback):
    def __init__(self, strategy, stop_after=None, x=None):
        super().__init__()
        self.strategy, self.stop_after, self.x, self.read = strategy, stop_after, x, []

    def on_train_batch_end(self, batch, logs=None):
        self.read.append(_step_figures(self.strategy))
        if self.x is not None:          # the MLP: its first layer's input is the batch
            first = self.strategy.placements[0]
            xb = self.x[batch * BATCH:(batch + 1) * BATCH]
            per_k = np.diff(sps.csc_array(first.weight_matrix()).indptr)   # kept per input
            useful = int(np.count_nonzero(xb, axis=0) @ per_k)             # NumPy's count
            assert first.last_useful == useful
            assert first.last_input_nnz == np.count_nonzero(xb)
        if self.stop_after is not None and batch == self.stop_after:
            raise KeyboardInterrupt("stopped by the test")


def _by_train_on_batch(build, shape, mode, steps=None):
    strategy, model, x, y = _setup(build, shape, mode)
    read = []
    for i, start in enumerate(range(0, SAMPLES, BATCH)):
        if steps is not None and i == steps:
            break
        model.train_on_batch(x[start:start + BATCH], y[start:start + BATCH])
        read.append(_step_figures(strategy))
    return strategy, model, read


@pytest.mark.parametrize("build,shape,mode", CASES)
def test_each_batch_read_by_a_callback_is_that_steps_cost(build, shape, mode):
    strategy, model, x, y = _setup(build, shape, mode)
    reader = _Reader(strategy, x=x if build is _mlp else None)
    model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0, callbacks=[reader])
    ref_strategy, ref_model, ref = _by_train_on_batch(build, shape, mode)
    assert len(reader.read) == 4 and reader.read[-1]["samples"] == SAMPLES
    assert [r["layers"][0]["columns"] for r in reader.read][-1] != \
        reader.read[0]["layers"][0]["columns"]          # the last batch is shorter
    _same(reader.read, ref)
    _same(_report(model), _report(ref_model))
    # a fit nobody reads until the end keeps the same step for step
    quiet, quiet_model, qx, qy = _setup(build, shape, mode)
    quiet_model.fit(qx, qy, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
    _same(quiet.step_cycles, [r["cycles"] for r in reader.read])
    _same(_report(quiet_model), _report(model))
    _same([dict(p.totals) for p in quiet.placements],
          [layer["totals"] for layer in reader.read[-1]["layers"]])


@pytest.mark.parametrize("build,shape,mode", CASES)
def test_a_fit_stopped_by_an_exception_keeps_the_steps_it_took(build, shape, mode):
    strategy, model, x, y = _setup(build, shape, mode)
    reader = _Reader(strategy, stop_after=1, x=x if build is _mlp else None)
    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0,
                  callbacks=[reader])
    _, ref_model, ref = _by_train_on_batch(build, shape, mode, steps=2)
    assert strategy.steps == 2
    _same(reader.read, ref)
    _same(_step_figures(strategy), ref[-1])
    _same(_report(model), _report(ref_model))
