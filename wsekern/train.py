"""``wsekern train`` and ``wsekern demo``: sparse models on real data, costed on the wafer."""
import time

import numpy as np

from . import data
from .nn import Input, Sequential, layers, utils
from .wafer import WaferConfig, WaferStrategy


def wafer_config(name, rows=None, cols=None):
    if name == "small":
        return WaferConfig.small(rows or 32, cols or 32)
    if name not in ("wse2", "wse3"):
        raise ValueError(f"wafer must be wse2, wse3 or small; received {name!r}")
    return getattr(WaferConfig, name)()


def load(dataset, images=False):
    if dataset == "digits":
        return data.load_digits(reshape=images)
    if dataset == "mnist":
        return data.load_mnist(reshape=images)
    raise ValueError(f"dataset must be 'digits' or 'mnist'; received {dataset!r}")


def build_mlp(n_in, sparsity, hidden=(256, 256)):
    model = Sequential([Input(shape=(n_in,))])
    for units in hidden:
        model.add(layers.Dense(units, activation="relu", sparsity=sparsity))
    model.add(layers.Dense(10, activation="softmax"))
    return model


def build_cnn(shape, sparsity):
    return Sequential([
        Input(shape=shape),
        layers.Conv2D(32, 3, padding="same", activation="relu"),
        layers.Conv2D(32, 3, padding="same", activation="relu", sparsity=sparsity),
        layers.MaxPooling2D(),
        layers.Flatten(),
        layers.Dense(64, activation="relu", sparsity=sparsity),
        layers.Dense(10, activation="softmax"),
    ])


def train(kind="mlp", dataset="digits", sparsity=0.9, epochs=15, batch_size=64, wafer="wse2",
          plot=None, seed=0, verbose=1, out=print):
    """Train, evaluate and cost a model; returns (model, test accuracy, wafer report)."""
    if kind not in ("mlp", "cnn"):
        raise ValueError(f"model must be 'mlp' or 'cnn'; received {kind!r}")
    (x, y), (xt, yt) = load(dataset, images=(kind == "cnn"))
    utils.set_random_seed(seed)
    strategy = WaferStrategy(wafer_config(wafer))
    with strategy.scope():
        model = build_mlp(x.shape[1], sparsity) if kind == "mlp" else build_cnn(x.shape[1:], sparsity)
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=verbose)
    loss, acc = model.evaluate(xt, yt, verbose=0)
    report = model.wafer_report()
    out(f"{kind} on {dataset}, {sparsity:.0%} weight sparsity: test accuracy {acc:.2%} (loss {loss:.4f})")
    out(str(report))
    if plot:
        report.plot(plot)
        out(f"placement plot written to {plot}")
    return model, acc, report


def demo(out=print, plot="wsekern-demo.png", epochs=30):
    """The README's main job: a 90%-sparse MLP on the digits, against its dense twin."""
    t0 = time.perf_counter()
    (x, y), (xt, yt) = data.load_digits()
    results = {}
    for sparsity in (0.9, 0.0):
        utils.set_random_seed(0)
        strategy = WaferStrategy(WaferConfig.wse2()) if sparsity else None
        if strategy is not None:
            with strategy.scope():
                model = build_mlp(64, sparsity)
        else:
            model = build_mlp(64, sparsity)
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        model.fit(x, y, batch_size=64, epochs=epochs, verbose=0)
        _, acc = model.evaluate(xt, yt, verbose=0)
        results[sparsity] = (model, acc, model._last_epoch_seconds)
    sparse_model, acc_s, t_s = results[0.9]
    _, acc_d, t_d = results[0.0]
    out(f"wsekern demo: MLP 64-256-256-10 on scikit-learn's digits ({len(x):,} train / "
        f"{len(xt):,} test), {epochs} epochs, Adam")
    out(f"  90% sparse: test accuracy {acc_s:.2%}, CPU epoch {t_s * 1e3:.1f} ms")
    out(f"  dense:      test accuracy {acc_d:.2%}, CPU epoch {t_d * 1e3:.1f} ms "
        f"(sparse/dense time {t_s / t_d:.2f}x)")
    report = sparse_model.wafer_report()
    out(str(report))
    if plot:
        report.plot(plot)
        out(f"placement plot written to {plot}")
    out(f"done in {time.perf_counter() - t0:.1f} s")
    return results
