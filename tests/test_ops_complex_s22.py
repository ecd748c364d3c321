"""keras.ops.view_as_complex, view_as_real, polar and eig (session 22): complex Tensors as
Keras on torch returns them (dtypes, values), without gradient (an input that needs one is
refused by name). Against NumPy here and Keras 3 (torch backend) where installed."""
import numpy as np
import pytest

from wsekern.nn import ops
from wsekern.nn.tensor import Tensor

RNG = np.random.default_rng(22)
X32 = RNG.standard_normal((3, 4, 2)).astype(np.float32)
ABS = np.abs(RNG.standard_normal((3, 1))).astype(np.float32)
ANG = RNG.uniform(-4, 4, (1, 5)).astype(np.float32)
MATS = RNG.standard_normal((2, 4, 4)).astype(np.float32)


def np_of(t):
    return np.asarray(getattr(t, "data", t))


def test_view_as_complex_and_back_by_numpy():
    z = ops.view_as_complex(X32)
    assert z.dtype == np.complex64 and z.shape == (3, 4)
    np.testing.assert_array_equal(np_of(z), X32[..., 0] + 1j * X32[..., 1])
    back = ops.view_as_real(z)
    assert back.dtype == np.float32
    np.testing.assert_array_equal(np_of(back), X32)
    # float64 and ints become complex64, as Keras on torch; a 1-D pair is a 0-d complex
    assert ops.view_as_complex(X32.astype(np.float64)).dtype == np.complex64
    assert ops.view_as_complex(np.array([3, 4])).shape == ()
    r = ops.view_as_real(np.array([1 + 2j, -3j]))         # complex128 -> float64
    assert r.dtype == np.float64
    np.testing.assert_array_equal(np_of(r), [[1, 2], [0, -3]])


def test_parts_are_kept_exactly():
    # an infinite imaginary part leaves the real part alone; a zero's sign is kept
    z = np_of(ops.view_as_complex(np.array([[1.0, np.inf], [2.0, -0.0]], np.float32)))
    assert z[0].real == 1.0 and z[0].imag == np.inf
    assert np.signbit(z[1].imag)
    p = np_of(ops.polar(np.array([-1.0, np.inf]), np.array([0.0, 0.0])))
    assert np.signbit(p[0].imag) and p[1].real == np.inf and np.isnan(p[1].imag)   # as torch


def test_polar_by_numpy():
    z = ops.polar(ABS, ANG)
    assert z.dtype == np.complex64 and z.shape == (3, 5)
    np.testing.assert_allclose(np_of(z), ABS * np.exp(1j * ANG.astype(np.float64)), rtol=1e-6,
                               atol=1e-6)
    assert ops.polar(ABS.astype(np.float64), ANG).dtype == np.complex128
    assert ops.polar(np.array([1, 2]), np.array([0, 1])).dtype == np.complex64


def test_eig_by_numpy():
    w, v = ops.eig(MATS)
    assert w.dtype == v.dtype == np.complex64 and w.shape == (2, 4) and v.shape == (2, 4, 4)
    w, v = np_of(w), np_of(v)
    A = MATS.astype(np.complex128)
    np.testing.assert_allclose(A @ v, v * w[:, None, :], atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(v, axis=-2), 1, rtol=1e-6)
    w64, _ = ops.eig(MATS.astype(np.float64))
    assert w64.dtype == np.complex128
    # a rotation: eigenvalues +-i
    wr, _ = ops.eig(np.array([[0.0, -1.0], [1.0, 0.0]], np.float32))
    np.testing.assert_allclose(sorted(np_of(wr), key=lambda c: c.imag), [-1j, 1j], atol=1e-7)


def test_complex_results_work_with_the_complex_aware_ops():
    z = ops.view_as_complex(X32)
    zn = X32[..., 0] + 1j * X32[..., 1]
    np.testing.assert_array_equal(np_of(ops.real(z)), zn.real)
    np.testing.assert_array_equal(np_of(ops.imag(z)), zn.imag)
    np.testing.assert_array_equal(np_of(ops.conj(z)), np.conj(zn))
    np.testing.assert_allclose(np_of(ops.abs(z)), np.abs(zn), rtol=1e-6)
    np.testing.assert_allclose(np_of(ops.angle(z)), np.angle(zn), rtol=1e-6)
    np.testing.assert_allclose(np_of(z * z), zn * zn, rtol=1e-6)
    assert (z + 1).dtype == np.complex64 and (2.5 * z).dtype == np.complex64   # as torch
    np.testing.assert_allclose(np_of(ops.sum(z)), zn.sum(), rtol=1e-6)


def test_bad_inputs_are_refused_by_name():
    with pytest.raises(ValueError, match=r"view_as_complex: the last dimension .* must be 2.*"
                                         r"\(2, 3\)"):
        ops.view_as_complex(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match=r"view_as_real needs a complex tensor.*float32.*"
                                         r"ops.stack"):
        ops.view_as_real(X32)
    with pytest.raises(ValueError, match=r"eig needs \(\.\.\., n, n\) square.*\(2, 3\)"):
        ops.eig(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match=r"view_as_complex needs real numbers"):
        ops.view_as_complex(np.zeros((2, 2), np.complex64))


@pytest.mark.parametrize("call", [
    lambda t: ops.view_as_complex(t), lambda t: ops.polar(t, t), lambda t: ops.polar(1.0, t),
    lambda t: ops.eig(ops.reshape(t, (2, 2)))])
def test_an_input_that_needs_a_gradient_is_refused(call):
    t = Tensor(np.ones((2, 2), np.float32), requires_grad=True)
    with pytest.raises(NotImplementedError, match=r"complex result cannot carry a gradient"
                                                  r".*\(real, imag\) pairs.*stop_gradient"):
        call(t)
    call(ops.stop_gradient(t))                                  # no gradient asked: fine


# -- against Keras ---------------------------------------------------------------------
def test_complex_ops_as_keras(keras):
    K = keras.ops
    kn = keras.ops.convert_to_numpy
    cases = [
        ("view_as_complex", (X32,), 0),
        ("view_as_complex", (X32.astype(np.float64),), 0),
        ("view_as_real", (X32[..., 0] + 1j * X32[..., 1],), 0),
        ("view_as_real", ((X32[..., 0] + 1j * X32[..., 1]).astype(np.complex64),), 0),
        ("polar", (ABS, ANG), 1e-6),
        ("polar", (ABS.astype(np.float64), ANG.astype(np.float64)), 1e-12),
        ("polar", (np.array([-1.0, 2.0], np.float32), np.array([0.0, 1.0], np.float32)), 1e-6),
    ]
    for name, args, atol in cases:
        k, o = getattr(K, name)(*args), getattr(ops, name)(*args)
        assert str(k.dtype).replace("torch.", "") == str(o.dtype), name
        np.testing.assert_allclose(np_of(o), kn(k), rtol=atol, atol=atol, err_msg=name)
    # complex results through the complex-aware ops, as Keras's
    kz, oz = K.view_as_complex(X32), ops.view_as_complex(X32)
    for name in ("real", "imag", "conj", "abs", "angle"):
        k, o = getattr(K, name)(kz), getattr(ops, name)(oz)
        assert str(k.dtype).replace("torch.", "") == str(o.dtype), name
        np.testing.assert_allclose(np_of(o), kn(k), rtol=1e-6, atol=1e-7, err_msg=name)
    assert str((kz + 1).dtype).replace("torch.", "") == str((oz + 1).dtype)


def test_eig_as_keras(keras):
    for mats in (MATS, MATS.astype(np.float64), np.array([[0.0, -1.0], [1.0, 0.0]], np.float32),
                 np.array([[2.0, 1.0], [1.0, 2.0]], np.float32)):
        kw, kv = (keras.ops.convert_to_numpy(t) for t in keras.ops.eig(mats))
        ow, ov = ops.eig(mats)
        assert str(ow.dtype) == str(kw.dtype) and str(ov.dtype) == str(kv.dtype)
        tol = 1e-5 if mats.dtype == np.float32 else 1e-12
        # the same LAPACK routine (geev): the same order, and vectors equal up to a phase
        np.testing.assert_allclose(np_of(ow), kw, rtol=tol, atol=tol)
        phase = np.sum(np.conj(kv) * np_of(ov), axis=-2, keepdims=True)
        np.testing.assert_allclose(np.abs(phase), 1, rtol=tol * 10)
        np.testing.assert_allclose(np_of(ov), kv * phase, atol=tol * 10)


def test_every_keras_op_exists(keras):
    missing = [n for n in dir(keras.ops) if not n.startswith("_")
               and callable(getattr(keras.ops, n)) and not hasattr(ops, n)]
    assert missing == []
