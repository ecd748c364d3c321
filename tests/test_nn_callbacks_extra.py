"""ReduceLROnPlateau and ModelCheckpoint(save_freq=): the rule traced by hand on scripted
logs, then in a real fit; real Keras (torch backend) as the oracle where installed."""
import os

import numpy as np
import pytest

from wsekern import nn
from wsekern.nn import callbacks, layers


class _Holder:
    """Just enough of a model for a callback driven by hand: an optimizer."""

    def __init__(self, optimizer):
        self.optimizer = optimizer


def drive_plateau(cb, optimizer, values):
    cb.set_model(_Holder(optimizer))
    cb.on_train_begin({})
    rates = []
    for epoch, v in enumerate(values):
        logs = {"val_loss": v}
        cb.on_epoch_end(epoch, logs)
        rates.append(float(optimizer.learning_rate))
        assert logs["learning_rate"] > 0
    return rates


def test_plateau_reduces_after_patience_then_cools_down():
    opt = nn.optimizers.SGD(learning_rate=1.0)
    cb = callbacks.ReduceLROnPlateau(factor=0.5, patience=2, cooldown=1, min_delta=0.0)
    # best 1.0 at epoch 0; epochs 1,2 no better -> halve at 2. Epoch 3 ends the cooldown and,
    # as in Keras, already counts (wait 1); epoch 4 no better -> halve. Epoch 5 likewise
    # counts; epoch 6 improves; 7,8 no better -> halve at 8.
    rates = drive_plateau(cb, opt, [1.0, 1.0, 1.1, 1.2, 1.0, 1.3, 0.5, 0.6, 0.7])
    assert rates == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25, 0.25, 0.25, 0.125]


def test_plateau_min_delta_min_lr_and_max_mode():
    opt = nn.optimizers.SGD(learning_rate=0.1)
    cb = callbacks.ReduceLROnPlateau(factor=0.1, patience=1, min_delta=0.05, min_lr=0.005)
    # 0.98 is not better than 1.0 by more than min_delta: counts as a plateau.
    rates = drive_plateau(cb, opt, [1.0, 0.98, 0.97, 0.96, 0.95])
    assert np.allclose(rates, [0.1, 0.01, 0.005, 0.005, 0.005])

    opt = nn.optimizers.SGD(learning_rate=1.0)
    cb = callbacks.ReduceLROnPlateau(monitor="val_accuracy", factor=0.5, patience=1)
    assert cb.mode == "max"
    cb.set_model(_Holder(opt))
    cb.on_train_begin({})
    for epoch, acc in enumerate([0.5, 0.6, 0.6, 0.7]):
        cb.on_epoch_end(epoch, {"val_accuracy": acc})
    assert opt.learning_rate == 0.5


def test_plateau_refuses_bad_factor_and_a_schedule():
    with pytest.raises(ValueError, match=r"factor must be in \[0, 1\).*1.5"):
        callbacks.ReduceLROnPlateau(factor=1.5)
    sched = nn.optimizers.schedules.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.9)
    cb = callbacks.ReduceLROnPlateau()
    cb.set_model(_Holder(nn.optimizers.SGD(learning_rate=sched)))
    with pytest.raises(TypeError, match="schedule"):
        cb.on_train_begin({})


def test_plateau_in_fit_lowers_the_rate_when_validation_stalls():
    nn.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 4)).astype("float32")
    y = rng.standard_normal((64, 1)).astype("float32")      # noise: val_loss cannot improve long
    model = nn.Sequential([nn.Input((4,)), layers.Dense(1)])
    model.compile(optimizer=nn.optimizers.SGD(learning_rate=0.05), loss="mse")
    cb = callbacks.ReduceLROnPlateau(factor=0.5, patience=1, min_delta=10.0)   # never "better"
    hist = model.fit(x, y, epochs=4, batch_size=16, validation_split=0.25, callbacks=[cb],
                     verbose=0)
    # every epoch after the first is a plateau: the rate halves at epochs 1, 2, 3.
    assert hist.history["learning_rate"] == pytest.approx([0.05, 0.05, 0.025, 0.0125])
    assert model.optimizer.learning_rate == pytest.approx(0.00625)


def _fit_with_checkpoint(tmp_path, **kwargs):
    nn.utils.set_random_seed(0)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((40, 3)).astype("float32")
    y = x.sum(axis=1, keepdims=True)
    model = nn.Sequential([nn.Input((3,)), layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    cb = callbacks.ModelCheckpoint(**kwargs)
    model.fit(x, y, epochs=2, batch_size=10, callbacks=[cb], verbose=0)
    return model, sorted(os.listdir(tmp_path))


def test_checkpoint_every_n_batches_counts_across_epochs(tmp_path):
    # 4 batches per epoch, 8 in all, save_freq=3: after batches 3 (epoch 1) and 6 (epoch 2,
    # its 2nd batch) -- Keras counts batches since training began.
    path = str(tmp_path / "m-{epoch}-{batch}.weights.npz")
    model, files = _fit_with_checkpoint(tmp_path, filepath=path, save_freq=3,
                                        save_weights_only=True, monitor="loss")
    assert files == ["m-1-3.weights.npz", "m-2-2.weights.npz"]


def test_checkpoint_save_freq_best_only_watches_batch_loss(tmp_path):
    path = str(tmp_path / "best-{batch}.keras")
    model, files = _fit_with_checkpoint(tmp_path, filepath=path, save_freq=2,
                                        save_best_only=True, monitor="loss")
    assert files and all(f.startswith("best-") for f in files)
    restored = nn.models.load_model(str(tmp_path / files[-1]))
    assert restored.count_params() == model.count_params()


def test_checkpoint_initial_threshold_and_bad_arguments(tmp_path):
    path = str(tmp_path / "m-{epoch}.keras")
    _, files = _fit_with_checkpoint(tmp_path, filepath=path, save_best_only=True,
                                    monitor="loss", initial_value_threshold=-1.0)
    assert files == []                                   # no loss is below -1
    for bad in (0, -2, 1.5, "batch", True):
        with pytest.raises(ValueError, match="save_freq"):
            callbacks.ModelCheckpoint(path, save_freq=bad)
    cb = callbacks.ModelCheckpoint(str(tmp_path / "{nope}.keras"))
    cb.set_model(None)
    with pytest.raises(KeyError, match="nope"):
        cb.on_epoch_end(0, {"loss": 1.0})


def test_plateau_matches_keras(keras):
    values = [1.0, 1.0, 1.1, 0.9, 0.95, 0.97, 0.99, 0.5, 0.5, 0.5, 0.5, 0.5]
    kw = dict(factor=0.3, patience=2, cooldown=1, min_delta=0.01, min_lr=0.002)
    km = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    km.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1), loss="mse")
    kcb = keras.callbacks.ReduceLROnPlateau(**kw)
    kcb.set_model(km)
    kcb.on_train_begin({})
    expected = []
    for epoch, v in enumerate(values):
        kcb.on_epoch_end(epoch, {"val_loss": v})
        expected.append(float(keras.ops.convert_to_numpy(km.optimizer.learning_rate)))
    got = drive_plateau(callbacks.ReduceLROnPlateau(**kw), nn.optimizers.SGD(learning_rate=0.1),
                        values)
    assert got == pytest.approx(expected, rel=1e-6)


# -- plot_model ------------------------------------------------------------------------------
def _residual_model():
    inp = nn.Input((8,), name="x")
    h = layers.Dense(4, activation="relu", name="h")(inp)
    skip = layers.Dense(4, name="skip")(inp)
    out = layers.Dense(2, name="out")(layers.add([h, skip]))
    return nn.Model(inp, out, name="resid")


def test_model_to_dot_has_every_layer_and_edge():
    dot = nn.utils.model_to_dot(_residual_model(), show_shapes=True,
                                show_layer_activations=True)
    assert dot.startswith('digraph "resid"')
    for text in ("x (InputLayer)", "h (Dense)", "skip (Dense)", "out (Dense)", "(Add)",
                 "activation: relu", "output: (None, 2)"):
        assert text in dot
    assert dot.count("->") == 5          # x->h, x->skip, h->add, skip->add, add->out
    seq = nn.Sequential([nn.Input((3,)), layers.Dense(2), layers.Dense(1)])
    assert nn.utils.model_to_dot(seq).count("->") == 1


def test_plot_model_formats(tmp_path):
    model = _residual_model()
    text = nn.utils.plot_model(model, to_file=tmp_path / "m.txt")
    lines = open(text).read().splitlines()
    assert lines[0] == 'Model "resid"' and any("out (Dense)" in l and "<- add" in l
                                               for l in lines)
    dot = nn.utils.plot_model(model, to_file=str(tmp_path / "m.dot"), rankdir="LR")
    assert "rankdir=LR" in open(dot).read()
    with pytest.raises(ValueError, match=r"\.bmp"):
        nn.utils.plot_model(model, to_file=str(tmp_path / "m.bmp"))
    with pytest.raises(ValueError, match="rankdir"):
        nn.utils.plot_model(model, to_file=str(tmp_path / "m.dot"), rankdir="up")
    import shutil
    if shutil.which("dot") is None:
        with pytest.raises(ImportError, match="Graphviz.*model.dot"):
            nn.utils.plot_model(model, to_file=str(tmp_path / "m.png"))
    else:
        png = nn.utils.plot_model(model, to_file=str(tmp_path / "m.png"), show_shapes=True)
        assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert sorted(os.listdir(tmp_path)) == ["m.dot", "m.txt"] + (
        ["m.png"] if shutil.which("dot") else [])


def test_plot_model_files_are_readable_as_open_would_make_them(tmp_path):
    """mkstemp made them 0600 (owner only), unlike every other file a user writes."""
    from wsekern._atomic import UMASK
    path = nn.utils.plot_model(_residual_model(), to_file=str(tmp_path / "m.dot"))
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~UMASK
    assert os.listdir(tmp_path) == ["m.dot"]
