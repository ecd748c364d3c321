"""pytest-benchmark: one training epoch of wsekern.nn MLPs (PyTorch's peer numbers come
from `wsekern bench train`, which runs both in the same process)."""
import numpy as np
import pytest

import wsekern as wk
from wsekern import nn


@pytest.fixture(scope="module")
def digits():
    return wk.data.load_digits()


@pytest.mark.parametrize("sparsity", [0.0, 0.9])
def test_mlp_epoch_on_digits(benchmark, digits, sparsity):
    (x, y), _ = digits
    nn.utils.set_random_seed(0)
    model = nn.Sequential([nn.layers.Dense(256, activation="relu", input_shape=(64,),
                                           sparsity=sparsity),
                           nn.layers.Dense(256, activation="relu", sparsity=sparsity),
                           nn.layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    benchmark.group = "train-epoch-digits"
    history = benchmark(model.fit, x, y, batch_size=64, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
