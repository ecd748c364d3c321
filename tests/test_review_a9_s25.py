"""review_a9 (stop 42): models of one WaferStrategy scope other than the MLPs
test_strategy_models.py trains (a conv net and an embedding model side by side; an
encoder trained between the steps of the classifier built on it), each model's every
figure against the same model alone in a strategy of its own, bit for bit; and two
activations/reductions at NaN and -inf against Keras on torch."""
import numpy as np
import pytest
from test_strategy_deferred import _conv, _embedding, _figures
from test_strategy_lazy import _same

import wsekern as wk
from wsekern import nn
from wsekern.nn import activations, ops
from wsekern.nn import layers as L
from wsekern.nn.tensor import Tensor, tsum


def _strategy(K):
    return wk.WaferStrategy(wk.WaferConfig.small(16, 16), defer_steps=K)


def _data(name, seed, n=21):
    rng = np.random.default_rng(seed)
    if name == "emb":
        return rng.integers(0, 20, (n, 6)).astype(np.int32), rng.integers(0, 10, n)
    return (rng.random((n, 8, 8, 2)) - 0.3).astype(np.float32), rng.integers(0, 10, n)


def _run(present, K):
    """conv's fit, emb's train_on_batch, conv's train_on_batch, emb's fit (each model's
    steps when alone: the others' left out); every present model's figures."""
    builds = {"conv": _conv, "emb": _embedding}
    strategy = _strategy(K)
    models = {}
    with strategy.scope():
        for name in present:
            nn.utils.set_random_seed(0)
            models[name] = builds[name]()
            models[name].compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    for name, how, seed in (("conv", "fit", 1), ("emb", "tob", 2), ("conv", "tob", 3),
                            ("emb", "fit", 4)):
        if name in models:
            x, y = _data(name, seed)
            if how == "fit":
                models[name].fit(x, y, batch_size=8, shuffle=False, verbose=0)
            else:
                models[name].train_on_batch(x[:5], y[:5])
    return {name: _figures(strategy.model_placement(m), m) for name, m in models.items()}


@pytest.mark.parametrize("K", [1, 3])
def test_a_conv_net_and_an_embedding_model_in_one_scope_cost_as_alone(K):
    pair = _run(["conv", "emb"], K)
    _same(pair["conv"], _run(["conv"], K)["conv"])
    _same(pair["emb"], _run(["emb"], K)["emb"])


def _encoder():
    return nn.Sequential([nn.Input((12,)), L.Dense(16, activation="relu", sparsity=0.5,
                                                   name="e1")], name="encoder")


def _classifier(encoder):
    inputs = nn.Input((12,))
    return nn.Model(inputs, L.Dense(10, activation="softmax", name="head")(encoder(inputs)),
                    name="classifier")


def test_an_encoder_trained_between_its_classifiers_fits_costs_as_alone():
    """The classifier's figures equal those of the same classifier whose encoder took its
    steps in another strategy; the encoder's equal its steps in a strategy of its own."""
    rng = np.random.default_rng(0)
    x, y = (rng.random((21, 12)) - 0.3).astype(np.float32), rng.integers(0, 10, 21)
    target = rng.random((21, 16)).astype(np.float32)
    got = []
    for shared in (True, False):
        strategy, elsewhere = _strategy(3), _strategy(3)
        with strategy.scope():
            nn.utils.set_random_seed(0)
            encoder = _encoder()
            classifier = _classifier(encoder)
        classifier.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        encoder.compile(optimizer="sgd", loss="mse")
        classifier.fit(x, y, batch_size=8, shuffle=False, verbose=0)
        if not shared:
            encoder.strategy = elsewhere        # its steps placed and costed there
        encoder.fit(x, target, batch_size=8, shuffle=False, verbose=0)
        classifier.fit(x, y, batch_size=8, shuffle=False, verbose=0)
        own = encoder.strategy.model_placement(encoder)
        got.append((_figures(strategy.model_placement(classifier), classifier),
                    _figures(own, encoder)))
        # every step costed each layer of its model, on that model's placement of it
        held = strategy.model_placement(classifier)
        assert held.steps == 6 and [p.costed_steps for p in held.placements] == [6, 6]
        assert own.steps == 3 and [p.costed_steps for p in own.placements] == [3]
    _same(got[0], got[1])


def _grads(fn, x, torch_side=False):
    if torch_side:
        import torch
        t = torch.tensor(np.array(x, np.float32), requires_grad=True)
        out = fn(t)
        out.sum().backward()
        return out.detach().numpy(), t.grad.numpy()
    t = Tensor(np.array(x, np.float32), requires_grad=True)
    out = fn(t)
    tsum(out).backward()
    return np.asarray(out.data), np.asarray(t.grad)


def test_relu_capped_is_zero_at_minus_inf_as_keras(keras):
    """relu6 and relu(max_value=) below 0: 0 (Keras on torch), not 0 * -inf = NaN nor -0."""
    x = [-np.inf, -1.0, 0.0, 3.0, 7.0, np.inf]
    for ours, theirs in ((activations.relu6, keras.activations.relu6),
                         (lambda t: activations.relu(t, max_value=4.0),
                          lambda t: keras.activations.relu(t, max_value=4.0))):
        got, grad = _grads(ours, x)
        want, want_grad = _grads(theirs, x, torch_side=True)
        np.testing.assert_array_equal(got, want)
        assert not np.signbit(got).any()
        np.testing.assert_array_equal(grad, want_grad)


@pytest.mark.parametrize("name", ["max", "min"])
def test_a_whole_reduction_with_a_nan_gives_its_gradient_to_the_nan_as_keras(keras, name):
    """keras.ops.max/min over every axis (torch.max: the gradient evenly over the elements
    equal to the result, a NaN result's being the NaNs), not NaN to every element."""
    x = [[1.0, np.nan, 1.0], [2.0, 2.0, -1.0]]
    for initial in (None, 0.5):
        got, grad = _grads(lambda t: getattr(ops, name)(t, initial=initial), x)
        want, want_grad = _grads(lambda t: getattr(keras.ops, name)(t, initial=initial), x,
                                 torch_side=True)
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(grad, want_grad)
    # without a NaN, ties still share it evenly
    got, grad = _grads(lambda t: getattr(ops, name)(t), [[2.0, 2.0], [-1.0, -1.0]])
    np.testing.assert_array_equal(grad, [[0.5, 0.5], [0, 0]] if name == "max"
                                  else [[0, 0], [0.5, 0.5]])
