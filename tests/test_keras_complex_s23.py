"""Complex input to ops and activations: refused by name where Keras 3 on torch refuses it
(NumPy would answer lexicographically, or drop the imaginary part with only a warning),
computed as NumPy/torch where Keras computes it."""
import warnings

import numpy as np
import pytest

from wsekern.nn import activations as A
from wsekern.nn import ops
from wsekern.nn.tensor import ComplexInputError, Tensor

Z = np.array([[1 + 2j, -3 + 0.5j], [0.25 - 1j, 2 + 0j]], np.complex64)


def _patterns(x):
    return [(x,), (x, x), ([x, x],)]


def _pattern_of(fn):
    """The first calling pattern that ``fn`` runs on real input (so a refusal of the
    complex call is about complex numbers, not the pattern)."""
    for i, args in enumerate(_patterns(Z.real.copy())):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fn(*args)
            return i
        except Exception:
            continue
    pytest.fail(f"{fn.__name__} runs on none of the real patterns")


@pytest.mark.parametrize("name", ops._REAL_ONLY + ops._COMPLEX_NOT_YET)
def test_op_refuses_complex_by_name(name):
    fn = getattr(ops, name)
    i = _pattern_of(fn)
    for z in (Z, Tensor(Z), Z.astype(np.complex128)):
        with pytest.raises(ComplexInputError, match=rf"ops\.{name}\b.*complex"):
            fn(*_patterns(z)[i])


@pytest.mark.parametrize("name", A._REAL_ONLY)
def test_activation_refuses_complex_by_name(name):
    with pytest.raises(ComplexInputError, match="complex64"):
        getattr(A, name)(Z)
    with pytest.raises(ComplexInputError):
        A.get(name)(Tensor(Z))
    assert A.name_of(getattr(A, name)) in (name, "hard_silu")   # the alias's name


def test_refusal_is_every_error_keras_raises():
    # Keras on torch raises NotImplementedError (relu), RuntimeError (sort), TypeError (fabs)
    for fn in (ops.relu, ops.sort, ops.fabs):
        for cls in (NotImplementedError, RuntimeError, TypeError):
            with pytest.raises(cls):
                fn(Z)


def test_refused_ops_still_take_real_input_with_gradient():
    x = Tensor(np.array([[-1.0, 2.0], [3.0, -4.0]], np.float32), requires_grad=True)
    ops.sum(ops.relu(x)).backward()
    np.testing.assert_array_equal(x.grad, [[0, 1], [1, 0]])
    assert float(ops.max(x)) == 3.0
    assert np.asarray(ops.sort(np.array([3, 1, 2]))).tolist() == [1, 2, 3]


def test_sqrt_of_complex_as_numpy():
    # was: the real part's sqrt (NaN for negatives) with only a ComplexWarning
    for name, ref in (("sqrt", np.sqrt(Z)), ("rsqrt", 1 / np.sqrt(Z))):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            out = getattr(ops, name)(Z)
        assert out.dtype == np.complex64
        np.testing.assert_allclose(np.asarray(out), ref, rtol=1e-6)


def test_norm_of_complex_as_numpy():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for kw in ({}, {"axis": 0}, {"ord": 1, "axis": 1}, {"ord": np.inf, "axis": 1}):
            out = ops.norm(Z, **kw)
            assert out.dtype == np.float32, kw
            ref = np.linalg.norm(Z.astype(np.complex128), **kw)
            np.testing.assert_allclose(np.asarray(out), ref, rtol=1e-6)


def test_corrcoef_of_complex_as_numpy():
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(3, 5)) + 1j * rng.normal(size=(3, 5))).astype(np.complex64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = ops.corrcoef(x)
    assert out.dtype == np.complex64
    np.testing.assert_allclose(np.asarray(out), np.corrcoef(x.astype(np.complex128)),
                               rtol=1e-5, atol=1e-6)


def test_cholesky_inverse_reads_one_triangle_and_conjugates():
    L = np.array([[2.0, 0.0], [1.0, 3.0]])
    junk = L + np.triu(np.full((2, 2), 7.0), 1)        # torch reads only the lower part
    np.testing.assert_allclose(np.asarray(ops.cholesky_inverse(junk)),
                               np.linalg.inv(L @ L.T), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(ops.cholesky_inverse(junk.T, upper=True)),
                               np.linalg.inv(L @ L.T), rtol=1e-12)
    Lc = np.array([[2, 0], [1 + 1j, 3]], np.complex128)
    np.testing.assert_allclose(np.asarray(ops.cholesky_inverse(Lc)),
                               np.linalg.inv(Lc @ Lc.conj().T), rtol=1e-12)


def _arrays(v):
    if isinstance(v, (tuple, list)):
        return [a for u in v for a in _arrays(u)]
    if isinstance(v, Tensor):
        return [np.asarray(v.data)]
    if hasattr(v, "detach"):
        return [v.detach().cpu().numpy()]
    return [np.asarray(v)]


# Keras answers, wsekern refuses by name (ops._COMPLEX_NOT_YET) or with a named ValueError
_KNOWN_GAPS = {"view_as_complex"}
# the probe's pattern is not what the op takes (real input differs too): not about complex
_NOT_COMPLEX = {"correlate", "full", "nonzero", "where", "cholesky_inverse", "vectorize",
                "map", "scan", "fori_loop", "while_loop", "cond", "switch", "associative_scan",
                "custom_gradient", "stop_gradient", "is_tensor", "convert_to_tensor",
                "convert_to_numpy", "empty_like", "empty", "shape", "dtype", "cast",
                "saturate_cast", "view", "slice", "dot_product_attention"}


def test_every_op_on_complex_as_keras(keras):
    """Every keras.ops op and activation wsekern has, on complex64 input: where Keras
    refuses, ours refuses (ComplexInputError or a named error); where Keras answers, ours
    gives the same values and dtype (or is a known, named gap)."""
    import torch
    wrong = []
    for kind, kmod, wmod in (("ops", keras.ops, ops), ("act", keras.activations, A)):
        for name in sorted(dir(kmod)):
            if (name.startswith("_") or name in _NOT_COMPLEX or name in
                    ("get", "serialize", "deserialize") or not hasattr(wmod, name)
                    or not callable(getattr(kmod, name))):
                continue
            kf, wf = getattr(kmod, name), getattr(wmod, name)
            for i, args in enumerate(_patterns(torch.as_tensor(Z.real.copy()))):
                try:
                    kf(*args)
                    break
                except Exception:
                    continue
            else:
                continue
            try:
                kc = _arrays(kf(*_patterns(torch.as_tensor(Z))[i]))
            except Exception:
                kc = None
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("error", np.exceptions.ComplexWarning)
                    wc = _arrays(wf(*_patterns(Z)[i]))
            except ComplexInputError:
                wc = None
            except ValueError as e:            # a named refusal (eig, view_as_complex)
                assert name in str(e) and "complex" in str(e), str(e)
                wc = None
            except Exception as e:             # a refusal must be one that names the op
                if kc is None and type(e) in (TypeError, ValueError):
                    wc = None
                else:
                    wrong.append(f"{kind}.{name}: ours raises {type(e).__name__}: {e}")
                    continue
            if kc is None and wc is not None:
                wrong.append(f"{kind}.{name}: Keras refuses complex, ours answers")
            elif kc is not None and wc is None and name not in _KNOWN_GAPS:
                wrong.append(f"{kind}.{name}: Keras answers complex, ours refuses")
            elif kc is not None and wc is not None:
                same = len(kc) == len(wc) and all(
                    a.shape == b.shape and a.dtype == b.dtype
                    and np.allclose(a, b, rtol=1e-4, atol=1e-5, equal_nan=True)
                    for a, b in zip(kc, wc))
                if not same:
                    wrong.append(f"{kind}.{name}: values or dtype differ from Keras")
    assert not wrong, "\n".join(wrong)


def test_refused_list_is_what_keras_refuses(keras):
    import torch
    for name in ops._REAL_ONLY:
        kf = getattr(keras.ops, name)
        i = _pattern_of(getattr(ops, name))
        with pytest.raises(Exception):
            kf(*_patterns(torch.as_tensor(Z))[i])


def test_tensor_order_comparisons_refuse_complex():
    t, r = Tensor(Z), Tensor(Z.real.copy())
    for a, b in ((t, t), (t, 1.0), (r, 1j), (r, t)):
        for cmp in (lambda a, b: a < b, lambda a, b: a <= b, lambda a, b: a > b,
                    lambda a, b: a >= b):
            with pytest.raises(ComplexInputError, match="complex"):
                cmp(a, b)
    np.testing.assert_array_equal(np.asarray(r > 0), Z.real > 0)
    np.testing.assert_array_equal(np.asarray(t == t), np.ones((2, 2), bool))   # == is defined


def test_tensor_order_comparisons_on_complex_as_keras(keras):
    import torch
    k = torch.as_tensor(Z)
    with pytest.raises(Exception):
        k < k
    with pytest.raises(ComplexInputError):
        Tensor(Z) < Tensor(Z)


def test_eig_of_complex_matrices_by_numpy():
    rng = np.random.default_rng(3)
    for dt in (np.complex64, np.complex128):
        a = (rng.normal(size=(2, 4, 4)) + 1j * rng.normal(size=(2, 4, 4))).astype(dt)
        w, v = ops.eig(a)                              # was: refused (real matrices only)
        assert w.dtype == dt and v.dtype == dt
        w, v = np.asarray(w), np.asarray(v)
        tol = 1e-4 if dt == np.complex64 else 1e-12
        np.testing.assert_allclose(a @ v, v * w[:, None, :], atol=tol)
        np.testing.assert_allclose(np.linalg.norm(v, axis=-2), 1, rtol=tol)


def test_eig_of_complex_matrices_as_keras(keras):
    import torch
    rng = np.random.default_rng(4)
    a = (rng.normal(size=(3, 4, 4)) + 1j * rng.normal(size=(3, 4, 4))).astype(np.complex64)
    kw, kv = keras.ops.eig(torch.as_tensor(a))
    w, v = ops.eig(a)
    assert w.dtype == kw.numpy().dtype and v.dtype == kv.numpy().dtype
    # the order of the eigenvalues is LAPACK's (torch runs cgeev in single precision,
    # NumPy in double: it can differ), so pair each of Keras's with ours
    w, v, kw, kv = np.asarray(w), np.asarray(v), kw.numpy(), kv.numpy()
    for b in range(len(a)):
        order = [int(np.argmin(np.abs(w[b] - k))) for k in kw[b]]
        assert sorted(order) == list(range(4))
        np.testing.assert_allclose(w[b][order], kw[b], atol=2e-5)
        np.testing.assert_allclose(v[b][:, order], kv[b], atol=2e-5)
