"""The one-pass optimizer updates (wsekern._optim) against the NumPy code they replace:
every optimizer that has one, float32 and float64, with weight decay and each kind of
clipping, NaN and inf in the gradients; and the cases that must fall back to NumPy
(non-contiguous, float16, read-only, shared memory) still update correctly."""
import numpy as np
import pytest

from wsekern import _optim
from wsekern.nn import optimizers as O
from wsekern.nn.tensor import Tensor

MAKERS = {
    "sgd": lambda **k: O.SGD(0.05, **k),
    "sgd_momentum": lambda **k: O.SGD(0.05, momentum=0.9, **k),
    "sgd_nesterov": lambda **k: O.SGD(0.05, momentum=0.9, nesterov=True, **k),
    "rmsprop": lambda **k: O.RMSprop(0.01, **k),
    "rmsprop_momentum": lambda **k: O.RMSprop(0.01, momentum=0.5, **k),
    "rmsprop_centered": lambda **k: O.RMSprop(0.01, centered=True, **k),
    "rmsprop_centered_momentum": lambda **k: O.RMSprop(0.01, momentum=0.5, centered=True,
                                                       **k),
    "adam": lambda **k: O.Adam(0.01, **k),
    "adam_amsgrad": lambda **k: O.Adam(0.01, amsgrad=True, **k),
    "adamw": lambda **k: O.AdamW(0.01, **{"weight_decay": 0.1, **k}),
    "adagrad": lambda **k: O.Adagrad(0.05, **k),
    "adamax": lambda **k: O.Adamax(0.01, **k),
    "nadam": lambda **k: O.Nadam(0.01, **k),
    "lion": lambda **k: O.Lion(0.01, **k),
}
EXTRAS = {"plain": {}, "weight_decay": {"weight_decay": 0.05}, "clipnorm": {"clipnorm": 0.5},
          "clipvalue": {"clipvalue": 0.3}, "global_clipnorm": {"global_clipnorm": 0.7}}


def _gradients(shape, dtype, steps, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape).astype(dtype) for _ in range(steps)]


def _train(opt, ws, gs_per_var, fused):
    """Apply the gradients step by step to Tensors holding ``ws``; returns (weights, slots)."""
    opt._use_fused = fused
    variables = [Tensor(w.copy(), requires_grad=True) for w in ws]
    for step in range(len(gs_per_var[0])):
        for v, gs in zip(variables, gs_per_var):
            v.grad = gs[step].copy()
        opt.apply_gradients(variables)
    slots = [a for arrays in (opt._state[id(v)][1] for v in variables) for a in arrays]
    return [v.data for v in variables], slots


def _assert_same(a, b):
    assert a.dtype == b.dtype and a.shape == b.shape
    np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
    np.testing.assert_array_equal(a, b)            # bit for bit, as the fused loops promise


@pytest.mark.parametrize("extra", sorted(EXTRAS))
@pytest.mark.parametrize("name", sorted(MAKERS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_equals_numpy_path(name, extra, dtype):
    shapes = [(37, 19), (19,)]           # odd sizes: the vector loops' tails too
    ws = [np.random.default_rng(1 + i).standard_normal(s).astype(dtype)
          for i, s in enumerate(shapes)]
    gs = [_gradients(s, dtype, 6, seed=10 + i) for i, s in enumerate(shapes)]
    got = _train(MAKERS[name](**EXTRAS[extra]), ws, gs, fused=True)
    want = _train(MAKERS[name](**EXTRAS[extra]), ws, gs, fused=False)
    for a, b in zip(got[0] + got[1], want[0] + want[1]):
        _assert_same(a, b)
    assert not np.array_equal(got[0][0], ws[0])            # it did train


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_fused_nan_and_inf_gradients_as_numpy(name):
    ws = [np.linspace(-1, 1, 40, dtype=np.float32)]
    gs = _gradients((40,), np.float32, 3)
    gs[1][[3, 7]] = np.nan
    gs[1][11] = np.inf
    gs[2][5] = -np.inf
    with np.errstate(all="ignore"):
        got = _train(MAKERS[name](), ws, [gs], fused=True)
        want = _train(MAKERS[name](), ws, [gs], fused=False)
    for a, b in zip(got[0] + got[1], want[0] + want[1]):
        _assert_same(a, b)


def _adam_args(w):
    return (w, np.ones_like(w), np.zeros_like(w), np.zeros_like(w), None, 1e-3, 0.9, 0.999,
            1e-7)


def test_the_fused_path_takes_contiguous_float_arrays():
    for dtype in (np.float32, np.float64):
        w = np.ones((4, 5), dtype=dtype)
        assert _optim.adam(*_adam_args(w))
        # m = 0.1, v = 0.001 after one step; alpha given as is (no bias correction)
        np.testing.assert_allclose(w, 1 - 1e-3 * 0.1 / (np.sqrt(0.001) + 1e-7), rtol=1e-6)
    assert _optim.adam(*_adam_args(np.zeros((0, 3), np.float32)))      # empty: nothing to do


@pytest.mark.parametrize("case", ["strided", "fortran", "float16", "int", "read_only",
                                  "slot_shape", "slot_dtype", "aliased", "byteswapped",
                                  "not_array"])
def test_the_fused_path_declines_what_it_cannot_take(case):
    w = np.ones((4, 6), dtype=np.float32)
    args = list(_adam_args(w))
    if case == "strided":
        args[0] = np.ones((4, 12), np.float32)[:, ::2]
    elif case == "fortran":
        args[0] = np.asfortranarray(w)
    elif case == "float16":
        args[0] = w.astype(np.float16)
    elif case == "int":
        args[0] = w.astype(np.int32)
    elif case == "read_only":
        w.flags.writeable = False
    elif case == "slot_shape":
        args[2] = np.zeros((6, 4), np.float32)
    elif case == "slot_dtype":
        args[3] = np.zeros((4, 6), np.float64)
    elif case == "aliased":
        args[3] = args[2]
    elif case == "byteswapped":                  # '>f4': NPY_FLOAT's type, other byte order
        args[0] = w.astype(">f4")
    else:
        args[1] = [[1.0] * 6] * 4
    before = [np.array(a, copy=True) for a in args[:4]]
    assert _optim.adam(*args) is False
    for a, b in zip(args[:4], before):
        np.testing.assert_array_equal(np.asarray(a), b)            # nothing written


@pytest.mark.parametrize("name", ["adam", "sgd_momentum", "rmsprop_centered_momentum", "lion"])
def test_variables_the_fused_path_declines_still_train_as_numpy(name):
    """A strided view and a float16 variable go through the NumPy code inside the same
    step as a contiguous one, and each gives the NumPy path's numbers."""
    base = np.random.default_rng(3).standard_normal((8, 10)).astype(np.float32)
    gs = _gradients((8, 5), np.float32, 4)

    def train(fused):
        opt = MAKERS[name]()
        opt._use_fused = fused
        holder = base.copy()
        strided = Tensor(holder[:, ::2], requires_grad=True)        # a view, not contiguous
        half = Tensor(base[:, :5].astype(np.float16), requires_grad=True)
        dense = Tensor(base[:, :5].copy(), requires_grad=True)
        for g in gs:
            strided.grad, half.grad, dense.grad = g.copy(), g.astype(np.float16), g.copy()
            opt.apply_gradients([strided, half, dense])
        return holder, half.data, dense.data

    got, want = train(True), train(False)
    for a, b in zip(got, want):
        _assert_same(a, b)
    assert got[1].dtype == np.float16
    np.testing.assert_array_equal(got[0][:, 1::2], base[:, 1::2])    # the gaps untouched


@pytest.mark.parametrize("name", ["adam", "sgd_momentum"])
def test_a_byteswapped_variable_trains_as_numpy(name):
    """A Variable made from a big-endian array keeps its byte order; its slots and cast
    gradient follow it. The fused loops read native floats, so it must go the NumPy way."""
    from wsekern.nn.variables import Variable
    base = np.linspace(-1, 1, 6).astype(">f4")
    gs = _gradients((6,), np.float32, 3)

    def train(fused):
        opt = MAKERS[name]()
        opt._use_fused = fused
        v = Variable(base.copy())
        assert v.data.dtype == np.dtype(">f4")
        for g in gs:
            v.grad = g.copy()
            opt.apply_gradients([v])
        return v.data

    _assert_same(train(True), train(False))
    assert not np.array_equal(train(True), base)                   # it did train
