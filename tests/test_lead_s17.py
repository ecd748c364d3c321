"""The lead's small fixes of session 17, each against what the code said before."""
from types import SimpleNamespace

import numpy as np
import pytest

from wsekern.wafer import validate


def test_an_empty_run_is_not_called_fabric_bound():
    """A 0-cycle run (bottleneck "none": an empty operand) sent nothing over the fabric."""
    case = validate.Case("s", "uniform", 0.5, 0.5, batch=4, region=2, mapping="auto",
                         dtype="float32")
    for bottleneck, want in [("none", "latency-bound"), ("latency", "latency-bound"),
                             ("overhead", "compute-bound"), ("fabric", "fabric-bound")]:
        names = validate.regime(case, SimpleNamespace(bottleneck=bottleneck))
        assert names == [want], (bottleneck, names)


class _Recorded:
    """A PyDataset of 8 batches that records the order its batches are read in."""

    def __new__(cls, nn_module):
        class Recorded(nn_module.utils.PyDataset):
            def __init__(self):
                super().__init__()
                self.seen = []

            def __len__(self):
                return 8

            def __getitem__(self, i):
                self.seen.append(i)
                rng = np.random.default_rng(i)
                return rng.standard_normal((4, 3)).astype("float32"), \
                    rng.standard_normal((4, 1)).astype("float32")
        return Recorded()


def _epoch_orders(nn_module, **fit_kwargs):
    model = nn_module.Sequential([nn_module.Input((3,)), nn_module.layers.Dense(1)])
    model.compile("sgd", "mse")
    data = _Recorded(nn_module)
    model.fit(data, epochs=3, verbose=0, **fit_kwargs)
    seen = data.seen[len(data.seen) - 24:]       # Keras first reads one batch for its shapes
    return [seen[8 * e:8 * e + 8] for e in range(3)]


@pytest.mark.parametrize("shuffle", [True, False])
def test_fit_shuffles_a_py_dataset_s_batches_each_epoch_as_keras(shuffle):
    from wsekern import nn
    nn.utils.set_random_seed(0)
    orders = _epoch_orders(nn, **({} if shuffle else {"shuffle": False}))
    for order in orders:
        assert sorted(order) == list(range(8))          # every batch once an epoch
    if shuffle:
        assert any(order != list(range(8)) for order in orders)
        assert len({tuple(o) for o in orders}) > 1      # a new order each epoch
        nn.utils.set_random_seed(0)
        assert _epoch_orders(nn) == orders              # seeded: reproducible
    else:
        assert orders == [list(range(8))] * 3


def test_keras_itself_shuffles_a_py_dataset_in_fit():
    """The behaviour matched: Keras 3's fit reads a PyDataset's batches shuffled by default."""
    pytest.importorskip("torch")
    keras = pytest.importorskip("keras")
    keras.utils.set_random_seed(0)
    orders = _epoch_orders(keras)
    assert all(sorted(o) == list(range(8)) for o in orders)
    assert any(o != list(range(8)) for o in orders)


@pytest.mark.parametrize("kind", ["dense", "conv"])
def test_a_pruned_layer_says_when_set_weights_drops_values_outside_its_pattern(kind):
    """review_k: a dense model's weights copied into a pruned layer silently gave another
    model. The pattern is kept (as documented), with a warning naming what was dropped."""
    import warnings

    from wsekern import nn
    if kind == "dense":
        layer = nn.layers.Dense(6, sparsity=0.5)
        layer.build((None, 4))
    else:
        layer = nn.layers.Conv2D(3, 2, sparsity=0.5)
        layer.build((None, 5, 5, 2))
    kernel = np.ones(layer.get_weights()[0].shape, dtype="float32")
    bias = np.zeros(layer.get_weights()[1].shape, dtype="float32")
    with pytest.warns(UserWarning, match=r"dropped \d+ nonzero kernel values outside it"):
        layer.set_weights([kernel, bias])
    kept = layer.get_weights()[0]
    assert 0 < np.count_nonzero(kept) < kernel.size          # the pattern was kept
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        layer.set_weights([kept, bias])              # its own weights back: nothing dropped
    with pytest.raises(ValueError):                   # a wrong shape: the usual error, no warning
        layer.set_weights([np.ones((1, 1), "float32"), bias])
