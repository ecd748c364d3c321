"""wsekern.nn.ops against NumPy (forward) and finite differences (gradients)."""
import numpy as np
import pytest
from ops_grads import check_grad
from scipy.special import erf as np_erf
from scipy.special import logsumexp as np_logsumexp

from wsekern.nn import ops
from wsekern.nn.tensor import Tensor


def keras_or_none():
    """Keras 3 on the torch backend where both are installed (the oracle), else None."""
    import os
    if os.environ.get("KERAS_BACKEND", "torch") != "torch":
        return None
    try:
        os.environ.setdefault("KERAS_BACKEND", "torch")
        import keras
        import torch  # noqa: F401
        return keras
    except Exception:      # absent or broken: the oracle tests skip
        return None


rng = np.random.default_rng(0)
A = rng.standard_normal((3, 4))
B = rng.standard_normal((3, 4))
POS = rng.uniform(0.5, 2.0, (3, 4))
ROW = rng.standard_normal((4,))

BINARY = [
    ("add", np.add), ("subtract", np.subtract), ("multiply", np.multiply),
    ("divide", np.divide), ("maximum", np.maximum), ("minimum", np.minimum),
]


@pytest.mark.parametrize("name,ref", BINARY, ids=[b[0] for b in BINARY])
def test_binary_forward_and_grad_with_broadcasting(name, ref):
    op = getattr(ops, name)
    b = POS if name == "divide" else B
    np.testing.assert_allclose(op(A, b).data, ref(A, b))
    np.testing.assert_allclose(op(A, ROW).data, ref(A, ROW))
    check_grad(op, A, b)
    check_grad(op, A, ROW + 3 if name == "divide" else ROW)      # broadcast (4,) against (3, 4)


UNARY = [
    ("exp", np.exp, A), ("log", np.log, POS), ("sqrt", np.sqrt, POS), ("abs", np.abs, A),
    ("square", np.square, A), ("negative", np.negative, A), ("sin", np.sin, A),
    ("cos", np.cos, A), ("tan", np.tan, A * 0.3), ("tanh", np.tanh, A), ("log1p", np.log1p, POS),
    ("expm1", np.expm1, A), ("erf", np_erf, A), ("rsqrt", lambda v: 1 / np.sqrt(v), POS),
    ("reciprocal", lambda v: 1 / v, POS),
    ("relu", lambda v: np.maximum(v, 0), A), ("sigmoid", lambda v: 1 / (1 + np.exp(-v)), A),
    ("softplus", lambda v: np.log1p(np.exp(v)), A),
    ("silu", lambda v: v / (1 + np.exp(-v)), A),
    ("elu", lambda v: np.where(v > 0, v, np.expm1(v)), A),
    ("selu", lambda v: 1.0507009873554805 * np.where(v > 0, v, 1.6732632423543772 * np.expm1(v)),
     A),
    ("leaky_relu", lambda v: np.where(v > 0, v, 0.2 * v), A),
    ("softsign", lambda v: v / (1 + np.abs(v)), A),
    ("log_sigmoid", lambda v: -np.log1p(np.exp(-v)), A),
    ("gelu", lambda v: 0.5 * v * (1 + np.tanh(np.sqrt(2 / np.pi) * (v + 0.044715 * v ** 3))), A),
    ("softmax", lambda v: np.exp(v) / np.exp(v).sum(-1, keepdims=True), A),
    ("log_softmax", lambda v: v - np_logsumexp(v, axis=-1, keepdims=True), A),
]


@pytest.mark.parametrize("name,ref,x", UNARY, ids=[u[0] for u in UNARY])
def test_unary_forward_and_grad(name, ref, x):
    op = getattr(ops, name)
    np.testing.assert_allclose(op(x).data, ref(x), rtol=1e-12, atol=1e-12)
    check_grad(op, x)


def test_power_grad_in_base_and_exponent():
    np.testing.assert_allclose(ops.power(POS, 1.7).data, POS ** 1.7)
    check_grad(lambda a: ops.power(a, 1.7), POS)
    check_grad(ops.power, POS, B)


def test_clip_forward_and_grad_away_from_bounds():
    x = np.array([[-2.0, -0.3, 0.2, 1.9], [0.7, -1.4, 0.0, 3.0]])
    np.testing.assert_array_equal(ops.clip(x, -1, 1).data, np.clip(x, -1, 1))
    check_grad(lambda a: ops.clip(a, -1.0, 1.0), x)


REDUCE = ["sum", "mean", "max", "min", "logsumexp", "var", "std", "prod"]


@pytest.mark.parametrize("name", REDUCE)
@pytest.mark.parametrize("axis,keepdims", [(None, False), (0, False), (-1, True), ((0, 1), False)])
def test_reductions(name, axis, keepdims):
    x = rng.standard_normal((3, 4, 2))
    ref = np_logsumexp if name == "logsumexp" else getattr(np, name)
    np.testing.assert_allclose(getattr(ops, name)(x, axis=axis, keepdims=keepdims).data,
                               ref(x, axis=axis, keepdims=keepdims), rtol=1e-12)
    check_grad(lambda a: getattr(ops, name)(a, axis=axis, keepdims=keepdims), x)


def test_prod_gradient_with_a_zero_entry():
    x = np.array([[2.0, 0.0, 3.0], [1.5, -2.0, 0.5]])
    check_grad(lambda a: ops.prod(a, axis=1), x)


def test_max_ties_share_the_gradient():
    x = Tensor(np.array([1.0, 3.0, 3.0]), requires_grad=True)
    ops.max(x).backward()
    np.testing.assert_array_equal(x.grad, [0, 0.5, 0.5])


def test_argmax_argmin_match_numpy():
    x = rng.standard_normal((4, 5))
    np.testing.assert_array_equal(ops.argmax(x, axis=-1).data, np.argmax(x, -1))
    np.testing.assert_array_equal(ops.argmin(x).data, np.argmin(x))


def test_matmul_batched_and_vectors():
    a, b = rng.standard_normal((2, 3, 4)), rng.standard_normal((4, 5))
    np.testing.assert_allclose(ops.matmul(a, b).data, a @ b)
    check_grad(ops.matmul, a, b)
    v = rng.standard_normal(4)
    np.testing.assert_allclose(ops.matmul(a, v).data, a @ v)
    check_grad(ops.matmul, a, v)
    check_grad(ops.matmul, v, b)
    check_grad(ops.matmul, v, v)


def test_dot_and_tensordot():
    a, b = rng.standard_normal((2, 3, 4)), rng.standard_normal((5, 4, 2))
    np.testing.assert_allclose(ops.dot(a, b).data, np.dot(a, b))
    check_grad(ops.dot, a, b)
    np.testing.assert_allclose(ops.tensordot(a, b, axes=([2], [1])).data,
                               np.tensordot(a, b, axes=([2], [1])))


@pytest.mark.parametrize("spec,shapes", [
    ("ij,jk->ik", [(3, 4), (4, 5)]),
    ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
    ("bqhd,bkhd->bhqk", [(2, 3, 2, 4), (2, 5, 2, 4)]),
    ("...ij,jk", [(2, 3, 4), (4, 5)]),
    ("ij->j", [(3, 4)]),
    ("ij,ij->", [(3, 4), (3, 4)]),
    ("i,j->ij", [(3,), (4,)]),
    ("ik,j->ij", [(3, 5), (4,)]),          # k is summed inside one operand only
])
def test_einsum_forward_and_grad(spec, shapes):
    arrs = [rng.standard_normal(s) for s in shapes]
    np.testing.assert_allclose(ops.einsum(spec, *arrs).data, np.einsum(spec, *arrs), atol=1e-12)
    check_grad(lambda *t: ops.einsum(spec, *t), *arrs)


def test_shape_ops():
    x = rng.standard_normal((2, 3, 4))
    check_grad(lambda a: ops.reshape(a, (6, 4)), x)
    check_grad(lambda a: ops.transpose(a, (2, 0, 1)), x)
    np.testing.assert_array_equal(ops.transpose(x).data, x.T)
    assert ops.expand_dims(x, 1).shape == (2, 1, 3, 4)
    check_grad(lambda a: ops.expand_dims(a, -1), x)
    assert ops.squeeze(np.ones((1, 3, 1)), axis=0).shape == (3, 1)
    assert ops.squeeze(np.ones((1, 3, 1))).shape == (3,)
    check_grad(lambda a: ops.swapaxes(a, 0, 2), x)
    check_grad(lambda a: ops.moveaxis(a, 0, -1), x)
    check_grad(lambda a: ops.broadcast_to(a, (5, 3, 4)), x[0])
    assert ops.shape(x) == (2, 3, 4) and ops.shape(Tensor(x)) == (2, 3, 4)


def test_squeeze_of_a_non_unit_axis_names_it():
    with pytest.raises(ValueError, match="axis 1 of size 3"):
        ops.squeeze(np.ones((1, 3)), axis=1)


def test_concatenate_stack_split():
    a, b = rng.standard_normal((2, 3)), rng.standard_normal((2, 5))
    np.testing.assert_array_equal(ops.concatenate([a, b], axis=1).data, np.concatenate([a, b], 1))
    check_grad(lambda p, q: ops.concatenate([p, q], axis=-1), a, b)
    check_grad(lambda p, q: ops.stack([p, q], axis=1), a, b[:, :3])
    np.testing.assert_array_equal(ops.stack([a, a], axis=-1).data, np.stack([a, a], -1))
    parts = ops.split(b, [1, 3], axis=1)
    for got, ref in zip(parts, np.split(b, [1, 3], axis=1)):
        np.testing.assert_array_equal(got.data, ref)
    check_grad(lambda q: ops.split(q, [1, 3], axis=1)[1] * 2 + 0, b)
    check_grad(lambda q: ops.concatenate(ops.split(q, 2, axis=0)[::-1], 1), b)
    with pytest.raises(ValueError, match="equal parts"):
        ops.split(b, 2, axis=1)


def test_take_and_take_along_axis_with_repeats_and_negatives():
    x = rng.standard_normal((4, 3))
    idx = np.array([0, 2, 2, -1])
    np.testing.assert_array_equal(ops.take(x, idx, axis=0).data, np.take(x, idx, axis=0))
    np.testing.assert_array_equal(ops.take(x, idx).data, np.take(x, idx))
    check_grad(lambda a: ops.take(a, idx, axis=0), x)          # repeated index accumulates
    check_grad(lambda a: ops.take(a, np.array([[1, 1], [0, 2]]), axis=1), x)
    ia = np.array([[0, 0], [2, 1], [1, 1], [2, 0]])
    np.testing.assert_array_equal(ops.take_along_axis(x, ia, axis=1).data,
                                  np.take_along_axis(x, ia, axis=1))
    check_grad(lambda a: ops.take_along_axis(a, ia, axis=1), x)
    with pytest.raises(IndexError, match="received values from"):
        ops.take(x, np.array([4]), axis=0)


def test_where_with_broadcast_and_scalars():
    cond = A > 0
    np.testing.assert_array_equal(ops.where(cond, A, 0.0).data, np.where(cond, A, 0.0))
    check_grad(lambda a, b: ops.where(cond, a, b), A, ROW)
    rows, cols = ops.where(cond)
    np.testing.assert_array_equal(rows.data, np.nonzero(cond)[0])


def test_pad_tile_repeat_flip_cumsum_roll_sort_topk():
    x = rng.standard_normal((3, 4))
    np.testing.assert_array_equal(ops.pad(x, [[1, 0], [2, 1]]).data, np.pad(x, [[1, 0], [2, 1]]))
    check_grad(lambda a: ops.pad(a, [[1, 0], [2, 1]], constant_values=3.0), x)
    np.testing.assert_array_equal(ops.tile(x, (2, 1, 3)).data, np.tile(x, (2, 1, 3)))
    check_grad(lambda a: ops.tile(a, (2, 1, 3)), x)
    np.testing.assert_array_equal(ops.repeat(x, 2, axis=1).data, np.repeat(x, 2, axis=1))
    check_grad(lambda a: ops.repeat(a, [1, 0, 3], axis=0), x)
    check_grad(lambda a: ops.repeat(a, 2), x)
    check_grad(lambda a: ops.flip(a, 1), x)
    np.testing.assert_allclose(ops.cumsum(x, axis=1).data, np.cumsum(x, 1))
    check_grad(lambda a: ops.cumsum(a, axis=0), x)
    check_grad(lambda a: ops.cumsum(a), x)
    check_grad(lambda a: ops.roll(a, 1, axis=1), x)
    np.testing.assert_array_equal(ops.sort(x).data, np.sort(x))
    check_grad(ops.sort, x)
    vals, idx = ops.top_k(x, 2)
    np.testing.assert_array_equal(vals.data, -np.sort(-x)[:, :2])
    np.testing.assert_array_equal(np.take_along_axis(x, idx.data, -1), vals.data)
    check_grad(lambda a: ops.top_k(a, 2)[0], x)
    np.testing.assert_array_equal(ops.argsort(x, axis=0).data, np.argsort(x, axis=0))


def test_one_hot_cast_convert_arange_ones_zeros():
    oh = ops.one_hot(np.array([0, 2, 5, -1]), 3)
    np.testing.assert_array_equal(oh.data, [[1, 0, 0], [0, 0, 1], [0, 0, 0], [0, 0, 0]])
    assert oh.dtype == np.float32
    t = ops.convert_to_tensor([1.5, 2.0])
    assert isinstance(t, Tensor) and t.dtype == np.float32
    assert ops.convert_to_tensor([1, 2]).dtype == np.int32
    assert ops.convert_to_tensor(np.zeros(2)).dtype == np.float64     # arrays keep their dtype
    assert isinstance(ops.convert_to_numpy(t), np.ndarray)
    assert ops.cast(t, "int32").dtype == np.int32
    assert ops.arange(5).dtype == np.int32
    np.testing.assert_array_equal(ops.arange(1, 2, 0.5).data, [1.0, 1.5])
    assert ops.ones((2, 3)).dtype == np.float32 and ops.zeros((2,), "int32").dtype == np.int32


def test_cast_float_to_float_carries_the_gradient_in_the_source_dtype():
    x = Tensor(np.ones(3, np.float64), requires_grad=True)
    ops.sum(ops.cast(x, "float32") * 2.0).backward()
    assert x.grad.dtype == np.float64
    np.testing.assert_array_equal(x.grad, 2.0)


def test_python_scalars_are_weakly_typed():
    x = Tensor(np.ones(3, np.float32))
    for out in (x * 2.0, 2.0 * x, x / 2.0, 2.0 / x, x - 1.0, 1.0 - x, x ** 2.0, ops.add(x, 1.0),
                ops.maximum(x, 0.5), ops.where(x.data > 0, x, 0.0), ops.clip(x, 0.0, 1.0)):
        assert out.dtype == np.float32


def test_mean_of_integers_is_float_and_empty_mean_is_nan():
    assert ops.mean(np.array([1, 2])).dtype == np.float32
    with np.errstate(invalid="ignore"):
        assert np.isnan(ops.mean(np.zeros((0,), np.float32)).data)


def test_zero_size_inputs_are_valid():
    e = np.zeros((0, 3))
    assert ops.sum(e, axis=0).shape == (3,)
    assert ops.matmul(e, np.ones((3, 2))).shape == (0, 2)
    assert ops.concatenate([e, np.ones((2, 3))], axis=0).shape == (2, 3)
    assert ops.max(e, initial=-1.0).data == -1.0
    with pytest.raises(ValueError, match="pass initial"):
        ops.max(e)


def test_nan_flows_through():
    x = np.array([1.0, np.nan, 2.0])
    assert np.isnan(ops.exp(x).data[1]) and np.isnan(ops.sum(x).data)
    np.testing.assert_array_equal(ops.nan_to_num(x).data, [1.0, 0.0, 2.0])


def test_comparisons_are_elementwise_and_hashing_by_identity():
    x = Tensor(np.array([1.0, 2.0]))
    np.testing.assert_array_equal((x > 1.5).data, [False, True])
    np.testing.assert_array_equal((x == 2.0).data, [False, True])
    np.testing.assert_array_equal((x != Tensor(np.array([1.0, 0.0]))).data, [False, True])
    np.testing.assert_array_equal(ops.equal(x, 2.0).data, [False, True])
    assert len({x, Tensor(np.array([1.0, 2.0]))}) == 2
    # keras.io's custom-metric guide: cast(y_true == y_pred) counts matches
    hits = ops.cast(ops.cast(np.array([1, 2, 3]), "int32") == ops.cast(np.array([1, 0, 3]),
                                                                      "int32"), "float32")
    assert float(ops.sum(hits)) == 2.0


def test_numpy_arithmetic_defers_to_tensor():
    x = Tensor(np.ones(2), requires_grad=True)
    y = np.array([2.0, 3.0]) * x
    assert isinstance(y, Tensor)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [2.0, 3.0])


def test_einsum_diagonal_gradient_refused_clearly():
    x = Tensor(np.eye(3), requires_grad=True)
    with pytest.raises(NotImplementedError, match="repeated label"):
        ops.einsum("ii->", x).backward()


def test_ops_namespaces_and_unknown_op():
    assert ops.nn.softmax is ops.softmax and ops.numpy.einsum is ops.einsum
    with pytest.raises(AttributeError, match="no op 'frobnicate'"):
        ops.frobnicate


def test_conv_op_matches_the_conv_layers_and_has_gradients():
    from wsekern.nn import layers as L
    x = rng.standard_normal((2, 5, 6, 4))
    layer = L.Conv2D(3, 3, padding="same", strides=2, use_bias=False, dtype="float64")
    expect = layer(Tensor(x)).data
    np.testing.assert_allclose(ops.conv(x, layer.kernel, strides=2, padding="same").data,
                               expect)
    k = rng.standard_normal((3, 2, 4))                  # 1-D, grouped: 4 channels / 2
    check_grad(lambda a, b: ops.conv(a, b, padding="same"), x[:, 0], k)
