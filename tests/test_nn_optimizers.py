"""Optimizers and schedules against hand-rolled NumPy transcriptions of Keras 3's update
rules (keras/src/optimizers/*.py), their state round trip, configs and bad values; and
against Keras itself where keras and torch are installed."""
import math

import numpy as np
import pytest
from test_nn_ops import keras_or_none

from wsekern import nn
from wsekern.nn import optimizers as O
from wsekern.nn.tensor import Tensor

STEPS = 5


def grads(shape=(3, 4), steps=STEPS, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape) for _ in range(steps)]


def run(opt, w0, gs):
    w = Tensor(w0.copy(), requires_grad=True)
    for g in gs:
        w.grad = g.copy()
        opt.apply_gradients([w])
    return w.data


# Reference rules, written from the Keras 3 source independently of wsekern's code.
def ref_rmsprop(w, gs, lr=0.001, rho=0.9, momentum=0.0, eps=1e-7, centered=False):
    vel, mom, avg = np.zeros_like(w), np.zeros_like(w), np.zeros_like(w)
    for g in gs:
        vel = rho * vel + (1 - rho) * g ** 2
        if centered:
            avg = rho * avg + (1 - rho) * g
            den = vel - avg ** 2 + eps
        else:
            den = vel + eps
        inc = lr * g / np.sqrt(den)
        if momentum > 0:
            mom = momentum * mom + inc
            w = w - mom
        else:
            w = w - inc
    return w


def ref_adagrad(w, gs, lr=0.001, init=0.1, eps=1e-7):
    acc = np.full_like(w, init)
    for g in gs:
        acc = acc + g ** 2
        w = w - lr * g / np.sqrt(acc + eps)
    return w


def ref_adadelta(w, gs, lr=0.001, rho=0.95, eps=1e-7):
    ag, ad = np.zeros_like(w), np.zeros_like(w)
    for g in gs:
        ag = rho * ag + (1 - rho) * g ** 2
        delta = -np.sqrt(ad + eps) * g / np.sqrt(ag + eps)
        ad = rho * ad + (1 - rho) * delta ** 2
        w = w + lr * delta
    return w


def ref_adamax(w, gs, lr=0.001, b1=0.9, b2=0.999, eps=1e-7):
    m, u = np.zeros_like(w), np.zeros_like(w)
    for t, g in enumerate(gs, 1):
        m = m + (g - m) * (1 - b1)
        u = np.maximum(b2 * u, np.abs(g))
        w = w - lr * m / ((1 - b1 ** t) * (u + eps))
    return w


def ref_nadam(w, gs, lr=0.001, b1=0.9, b2=0.999, eps=1e-7):
    m, v, u_product = np.zeros_like(w), np.zeros_like(w), 1.0
    for t, g in enumerate(gs, 1):
        u_product = u_product * b1 * (1 - 0.5 * 0.96 ** t)
        u_t = b1 * (1 - 0.5 * 0.96 ** t)
        u_t1 = b1 * (1 - 0.5 * 0.96 ** (t + 1))
        m = m + (g - m) * (1 - b1)
        v = v + (g * g - v) * (1 - b2)
        m_hat = u_t1 * m / (1 - u_product * u_t1) + (1 - u_t) * g / (1 - u_product)
        v_hat = v / (1 - b2 ** t)
        w = w - m_hat * lr / (np.sqrt(v_hat) + eps)
    return w


def ref_lion(w, gs, lr=0.001, b1=0.9, b2=0.99):
    m = np.zeros_like(w)
    for g in gs:
        w = w - lr * np.sign(m * b1 + g * (1 - b1))
        m = m * b2 + g * (1 - b2)
    return w


def ref_adam(w, gs, lr=0.001, b1=0.9, b2=0.999, eps=1e-7, amsgrad=False):
    m, v, vh = np.zeros_like(w), np.zeros_like(w), np.zeros_like(w)
    for t, g in enumerate(gs, 1):
        alpha = lr * math.sqrt(1 - b2 ** t) / (1 - b1 ** t)
        m = m + (g - m) * (1 - b1)
        v = v + (g * g - v) * (1 - b2)
        if amsgrad:
            vh = np.maximum(vh, v)
        w = w - alpha * m / (np.sqrt(vh if amsgrad else v) + eps)
    return w


CASES = [
    (lambda: O.RMSprop(0.01), lambda w, g: ref_rmsprop(w, g, 0.01)),
    (lambda: O.RMSprop(0.01, momentum=0.5, centered=True),
     lambda w, g: ref_rmsprop(w, g, 0.01, momentum=0.5, centered=True)),
    (lambda: O.Adagrad(0.05), lambda w, g: ref_adagrad(w, g, 0.05)),
    (lambda: O.Adadelta(1.0), lambda w, g: ref_adadelta(w, g, 1.0)),
    (lambda: O.Adamax(0.01), lambda w, g: ref_adamax(w, g, 0.01)),
    (lambda: O.Nadam(0.01), lambda w, g: ref_nadam(w, g, 0.01)),
    (lambda: O.Lion(0.01), lambda w, g: ref_lion(w, g, 0.01)),
    (lambda: O.Adam(0.01, amsgrad=True), lambda w, g: ref_adam(w, g, 0.01, amsgrad=True)),
]


@pytest.mark.parametrize("make,ref", CASES, ids=["rmsprop", "rmsprop_centered_momentum",
                                                  "adagrad", "adadelta", "adamax", "nadam",
                                                  "lion", "adam_amsgrad"])
def test_update_rules_match_keras_formulas(make, ref):
    w0 = np.random.default_rng(1).standard_normal((3, 4))
    gs = grads()
    np.testing.assert_allclose(run(make(), w0, gs), ref(w0, gs), rtol=1e-12, atol=1e-14)


def test_clipnorm_clipvalue_global_clipnorm():
    w0 = np.zeros(4)
    g = np.array([3.0, 4.0, 0.0, 0.0])              # norm 5
    np.testing.assert_allclose(run(O.SGD(1.0, clipnorm=1.0), w0, [g]), -g / 5)
    np.testing.assert_allclose(run(O.SGD(1.0, clipvalue=3.5), w0, [g]), -np.minimum(g, 3.5))
    a, b = Tensor(np.zeros(2), requires_grad=True), Tensor(np.zeros(2), requires_grad=True)
    a.grad, b.grad = np.array([3.0, 0.0]), np.array([0.0, 4.0])   # global norm 5
    O.SGD(1.0, global_clipnorm=2.5).apply_gradients([a, b])
    np.testing.assert_allclose(np.concatenate([a.data, b.data]), [-1.5, 0, 0, -2.0])
    with pytest.raises(ValueError, match="only one of clipnorm"):
        O.SGD(clipnorm=1.0, clipvalue=1.0)


def test_get_rmsprop_is_the_compile_default():
    opt = O.get("rmsprop")
    assert isinstance(opt, O.RMSprop) and opt.learning_rate == 0.001 and opt.rho == 0.9
    for name in ("adagrad", "adadelta", "adamax", "nadam", "lion", "adamw", "SGD", "Adam"):
        assert isinstance(O.get(name), O.Optimizer)


@pytest.mark.parametrize("cls", [O.SGD, O.RMSprop, O.Adam, O.AdamW, O.Adagrad, O.Adadelta,
                                 O.Adamax, O.Nadam, O.Lion])
def test_state_round_trip_resumes_exactly(cls):
    kwargs = {"momentum": 0.9} if cls in (O.SGD, O.RMSprop) else {}
    w0 = [np.random.default_rng(2).standard_normal(s) for s in ((3, 4), (4,))]
    gs = grads((3, 4), 6, seed=3), grads((4,), 6, seed=4)
    ws = [Tensor(w.copy(), requires_grad=True) for w in w0]
    straight = cls(**kwargs)
    for k in range(6):
        for w, g in zip(ws, gs):
            w.grad = g[k]
        straight.apply_gradients(ws)
    # three steps, save, rebuild from config + state, three more
    ws2 = [Tensor(w.copy(), requires_grad=True) for w in w0]
    first = cls(**kwargs)
    for k in range(3):
        for w, g in zip(ws2, gs):
            w.grad = g[k]
        first.apply_gradients(ws2)
    arrays = first.state_arrays(ws2)
    assert arrays["iterations"].shape == () and arrays["iterations"].dtype == np.int64
    assert int(arrays["iterations"]) == 3
    second = O.deserialize(O.serialize(first))
    second.load_state_arrays(ws2, arrays)
    for k in range(3, 6):
        for w, g in zip(ws2, gs):
            w.grad = g[k]
        second.apply_gradients(ws2)
    for a, b in zip(ws, ws2):
        np.testing.assert_array_equal(a.data, b.data)


def test_load_state_arrays_validates_keys_shapes_dtypes():
    w = Tensor(np.zeros((2, 2)), requires_grad=True)
    w.grad = np.ones((2, 2))
    opt = O.Adam()
    opt.apply_gradients([w])
    good = opt.state_arrays([w])
    assert sorted(good) == ["0/0", "0/1", "iterations"]
    with pytest.raises(ValueError, match="'0/1'.*shape"):
        O.Adam().load_state_arrays([w], {**good, "0/1": np.zeros(3)})
    with pytest.raises(ValueError, match="dtype float64"):
        O.Adam().load_state_arrays([w], {**good, "0/0": np.zeros((2, 2), np.float32)})
    with pytest.raises(ValueError, match="'0/7'"):
        O.Adam().load_state_arrays([w], {**good, "0/7": np.zeros((2, 2))})
    with pytest.raises(ValueError, match="missing"):
        O.Adam().load_state_arrays([w], {"iterations": good["iterations"], "0/0": good["0/0"]})
    with pytest.raises(ValueError, match="'iterations'"):
        O.Adam().load_state_arrays([w], {"0/0": good["0/0"], "0/1": good["0/1"]})


def test_config_round_trip_with_schedule_and_bad_values_named():
    sched = O.schedules.ExponentialDecay(0.1, 10, 0.5)
    opt = O.RMSprop(sched, rho=0.8, clipnorm=1.0)
    d = O.serialize(opt)
    assert d["class_name"] == "RMSprop"
    assert d["config"]["learning_rate"]["class_name"] == "ExponentialDecay"
    import json
    back = O.deserialize(json.loads(json.dumps(d)))
    assert back.get_config() == opt.get_config()
    bad = {"class_name": "Adam", "config": {**O.Adam().get_config(), "learning_rate": -1.0}}
    with pytest.raises(ValueError, match="learning_rate"):
        O.deserialize(bad)
    with pytest.raises(ValueError, match="learning_rate"):
        O.get({"class_name": "Adam", "config": {"learning_rate": float("nan")}})
    with pytest.raises(ValueError, match="beta_1"):
        O.Adam(beta_1=1.5)
    with pytest.raises(ValueError, match="unknown optimizer 'Adamz'"):
        O.deserialize({"class_name": "Adamz", "config": {}})


def test_custom_optimizer_through_registry():
    @nn.registry.register_keras_serializable(package="Test")
    class HalfSGD(O.SGD):
        pass
    try:
        back = O.deserialize(O.serialize(HalfSGD(0.5)))
        assert type(back) is HalfSGD and back.learning_rate == 0.5
    finally:
        nn.registry.get_custom_objects().pop("Test>HalfSGD")


def test_schedules_match_keras_formulas():
    S = O.schedules
    assert S.ExponentialDecay(1.0, 10, 0.5, staircase=True)(19) == pytest.approx(0.5)
    assert S.InverseTimeDecay(1.0, 10, 0.5)(20) == pytest.approx(1 / (1 + 0.5 * 2))
    assert S.PolynomialDecay(1.0, 10, 0.0, power=2)(5) == pytest.approx(0.25)
    assert S.PolynomialDecay(1.0, 10, 0.0)(50) == pytest.approx(0.0)
    assert S.PolynomialDecay(1.0, 10, 0.0, cycle=True)(15) == pytest.approx(1 - 15 / 20)
    assert S.PiecewiseConstantDecay([10, 20], [1.0, 0.5, 0.1])(10) == 1.0
    assert S.PiecewiseConstantDecay([10, 20], [1.0, 0.5, 0.1])(11) == 0.5
    assert S.CosineDecay(1.0, 10, alpha=0.1)(5) == pytest.approx(0.1 + 0.9 * 0.5)
    assert S.CosineDecay(0.0, 10, warmup_target=1.0, warmup_steps=4)(2) == pytest.approx(0.5)
    r = S.CosineDecayRestarts(1.0, 10, t_mul=2.0, m_mul=0.5)
    assert r(0) == pytest.approx(1.0)
    assert r(10) == pytest.approx(0.5)          # second period starts at half the peak
    assert r(20) == pytest.approx(0.5 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    from wsekern.nn.optimizers.schedules import CosineDecay  # Keras's import path
    assert CosineDecay is S.CosineDecay
    with pytest.raises(ValueError, match="decay_steps"):
        S.ExponentialDecay(1.0, 0, 0.5)


keras = keras_or_none()


@pytest.mark.skipif(keras is None, reason="keras with the torch backend is not installed")
@pytest.mark.parametrize("name,kwargs", [
    ("RMSprop", {"learning_rate": 0.01}), ("RMSprop", {"momentum": 0.5, "centered": True}),
    ("Adagrad", {"learning_rate": 0.05}), ("Adadelta", {"learning_rate": 1.0}),
    ("Adamax", {"learning_rate": 0.01}), ("Nadam", {"learning_rate": 0.01}),
    ("Lion", {"learning_rate": 0.01}), ("Adam", {"amsgrad": True}),
    ("SGD", {"momentum": 0.9, "nesterov": True}), ("AdamW", {"weight_decay": 0.1}),
    ("SGD", {"learning_rate": 0.1, "global_clipnorm": 0.5}),
])
def test_against_keras(name, kwargs):
    w0 = np.random.default_rng(1).standard_normal((3, 4)).astype(np.float32)
    gs = [g.astype(np.float32) for g in grads()]
    kv = keras.Variable(w0.copy())
    kopt = getattr(keras.optimizers, name)(**kwargs)
    for g in gs:
        kopt.apply_gradients([(keras.ops.convert_to_tensor(g), kv)])
    ours = run(getattr(O, name)(**kwargs), w0, gs)
    np.testing.assert_allclose(ours, keras.ops.convert_to_numpy(kv), rtol=1e-5, atol=1e-6)
