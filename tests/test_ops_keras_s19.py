"""The keras.ops that session 19 added to wsekern.nn.ops: values and dtypes against
keras.ops on the torch backend (skipped without Keras), values against NumPy/SciPy and
gradients against central finite differences in float64 (run everywhere, CI included)."""
import numpy as np
import pytest
from test_nn_grad import numeric_grad

from wsekern.nn import ops
from wsekern.nn.tensor import Tensor

rng = np.random.default_rng(19)
A = rng.standard_normal((3, 4)).astype(np.float32)
B = rng.standard_normal((3, 4)).astype(np.float32)
V3 = rng.standard_normal((2, 3)).astype(np.float32)
W3 = rng.standard_normal((2, 3)).astype(np.float32)
U = rng.uniform(-0.9, 0.9, (3, 4)).astype(np.float32)          # inside (-1, 1)
BIG = rng.uniform(1.1, 3.0, (3, 4)).astype(np.float32)         # > 1
C3 = rng.standard_normal((2, 3, 4)).astype(np.float32)
SPD = (lambda m: (m @ m.T + 4 * np.eye(4)).astype(np.float32))(rng.standard_normal((4, 4)))
NANS = np.array([[1.0, np.nan, 3.0, -2.0], [np.nan, np.nan, np.nan, np.nan],
                 [0.5, 2.0, np.nan, 7.0]], dtype=np.float32)
I32 = np.array([[3, 0, 5], [2, 7, 1]], dtype=np.int32)

# (name, args, kwargs): the same call on keras.ops and on wsekern.nn.ops
VALUES = [
    ("ravel", (C3,), {}), ("vstack", ([A, B],), {}), ("hstack", ([A, B],), {}),
    ("dstack", ([A, B],), {}), ("array_split", (np.arange(7.0, dtype=np.float32), 3), {}),
    ("hsplit", (A, 2), {}), ("vsplit", (C3, 2), {}), ("dsplit", (C3, 2), {}),
    ("fliplr", (A,), {}), ("flipud", (A,), {}), ("rot90", (C3,), {"k": 3, "axes": (1, 2)}),
    ("rot90", (A,), {"k": -1}), ("diag", (A,), {"k": 1}), ("diag", (A[0],), {"k": -1}),
    ("diagonal", (C3,), {"offset": 1, "axis1": -1, "axis2": 0}),
    ("diagflat", (V3,), {"k": 1}), ("trace", (C3,), {"offset": -1, "axis1": 1, "axis2": 2}),
    ("trace", (I32,), {}), ("meshgrid", (A[0], V3[0]), {}),
    ("meshgrid", (A[0], V3[0], B[1]), {"indexing": "ij"}), ("kron", (V3, A), {}),
    ("inner", (A, B), {}), ("cross", (V3, W3), {}), ("cross", (C3[..., :3], C3[::-1, :, 1:]), {"axis": -1}),
    ("get_item", (C3, (1, slice(0, 2))), {}), ("copy", (A,), {}),
    ("array", ([[1.0, 2.0]],), {}), ("empty", ((2, 3),), {}), ("empty_like", (I32,), {}),
    ("scatter", (np.array([[0, 1], [2, 3], [0, 1]]), np.array([1.0, 2.0, 4.0], np.float32),
                 (3, 4)), {}),
    ("scatter", (np.array([[1], [1]]), V3, (3, 3)), {}),
    ("scatter_update", (A, np.array([[0, 1], [2, 3]]), np.array([9.0, 8.0], np.float32)), {}),
    ("scatter_update", (A, np.array([[0, 1], [0, 1]]), np.array([9.0, 8.0], np.float32)),
     {"reduction": "add"}),
    ("scatter_update", (A, np.array([[1]]), B[:1]), {"reduction": "max"}),
    ("slice_update", (C3, (0, 1, 2), np.ones((2, 2, 2), np.float32)), {}),
    ("segment_sum", (A, np.array([0, 2, 0])), {}),
    ("segment_sum", (A, np.array([0, -1, 5])), {"num_segments": 3}),
    ("segment_max", (A, np.array([1, 1, 3])), {}), ("segment_min", (A, np.array([0, 0, 0])), {}),
    ("segment_prod", (A, np.array([1, 0, 1])), {"num_segments": 3}),
    ("select", ([A > 0, B > 0], [A, B]), {"default": -1.0}),
    ("searchsorted", (np.array([1.0, 2.0, 2.0, 5.0], np.float32),
                      np.array([2.0, 0.0, 6.0], np.float32)), {"side": "right"}),
    ("searchsorted", (np.array([1.0, 2.0, 2.0, 5.0], np.float32),
                      np.array([2.0, 0.0, 6.0], np.float32)), {}),
    ("digitize", (A, np.array([-1.0, 0.0, 1.0], np.float32)), {}),
    ("bincount", (np.array([0, 1, 1, 3]),), {"minlength": 6}),
    ("bincount", (np.array([0, 1, 1, 3]),), {"weights": np.array([0.5, 1, 2, 3], np.float32)}),
    ("bincount", (I32,), {"minlength": 8}),
    ("isin", (I32, np.array([1, 5, 9])), {}), ("isin", (I32, [1, 5]), {"invert": True}),
    ("unravel_index", (np.array([0, 5, 11]), (3, 4)), {}),
    ("argpartition", (np.array([3.0, 1.0, 2.0], np.float32), 1), {}),
    ("depth_to_space", (rng.standard_normal((1, 2, 2, 8)).astype(np.float32), 2), {}),
    ("space_to_depth", (rng.standard_normal((1, 4, 2, 3)).astype(np.float32), 2), {}),
    ("extract_sequences", (C3, 2, 1), {}),
    # elementwise
    ("arcsin", (U,), {}), ("arccos", (U,), {}), ("arctan", (A,), {}), ("arcsinh", (A,), {}),
    ("arccosh", (BIG,), {}), ("arctanh", (U,), {}), ("sinh", (A,), {}), ("cosh", (A,), {}),
    ("cbrt", (A,), {}), ("exp2", (A,), {}), ("deg2rad", (A,), {}), ("rad2deg", (A,), {}),
    ("erfc", (A,), {}), ("erfinv", (U,), {}), ("sinc", (np.r_[A[0], 0.0].astype(np.float32),),
                                                {}),
    ("i0", (A,), {}), ("arctan2", (A, B), {}), ("hypot", (A, B[0]), {}),
    ("logaddexp", (A, B), {}), ("logaddexp2", (A, B), {}), ("fmod", (A, B), {}),
    ("fmod", (I32, np.int32(4)), {}), ("fmax", (NANS, A), {}), ("fmin", (A, NANS), {}),
    ("trunc", (A * 3,), {}), ("fabs", (A,), {}), ("heaviside", (np.r_[A[0], 0.0], 0.5), {}),
    ("signbit", (A,), {}), ("isclose", (A, A + 1e-6), {}), ("allclose", (A, B), {}),
    ("isposinf", (np.array([np.inf, -np.inf, 1.0]),), {}),
    ("isneginf", (np.array([np.inf, -np.inf, 1.0]),), {}),
    ("arcsin", (np.array([0, 1], np.int32),), {}), ("cosh", (A.astype(np.float64),), {}),
    ("bitwise_and", (I32, 6), {}), ("bitwise_xor", (I32, I32[:, ::-1]), {}),
    ("bitwise_invert", (I32,), {}), ("left_shift", (I32, 2), {}), ("gcd", (I32, 4), {}),
    ("ldexp", (A, np.array([1, 2, 3, 0], np.int32)), {}),
    ("saturate_cast", (A * 300, "uint8"), {}), ("real", (A,), {}),
    ("conj", (A,), {}), ("angle", (A,), {}), ("isreal", (A,), {}),
    # reductions, scans, statistics
    ("count_nonzero", (I32 > 2,), {"axis": 1}), ("count_nonzero", (A,), {}),
    ("ptp", (A,), {"axis": 0}), ("ptp", (A,), {"axis": 1, "keepdims": True}),
    ("cumprod", (A,), {"axis": 1}), ("cumprod", (A,), {}), ("diff", (A,), {"n": 2}),
    ("diff", (A,), {"axis": 0}), ("average", (A,), {"axis": 1, "weights": np.arange(4.0, dtype=np.float32)}),
    ("average", (A,), {}),
    ("median", (A,), {}), ("median", (C3,), {"axis": (0, 2)}),
    ("median", (A,), {"axis": 1, "keepdims": True}),
    ("quantile", (A, 0.3), {"axis": 1}), ("quantile", (C3, [0.1, 0.5, 1.0]), {"axis": -1}),
    ("quantile", (A, 0.3), {"method": "lower"}), ("quantile", (A, 0.3), {"method": "higher"}),
    ("quantile", (A, 0.3), {"method": "midpoint"}),
    ("quantile", (A, [0.25, 0.5]), {"method": "nearest", "axis": 0, "keepdims": True}),
    ("percentile", (A, 40), {"axis": 0}), ("quantile", (NANS, 0.5), {"axis": 1}),
    ("nansum", (NANS,), {"axis": 1}), ("nanmean", (NANS,), {"axis": 0}),
    ("nanvar", (NANS,), {"axis": 0}), ("nanstd", (NANS,), {}), ("nanmax", (NANS,), {"axis": 1}),
    ("nanmin", (NANS,), {"axis": 0}), ("nanprod", (NANS,), {"axis": 1}),
    ("nancumsum", (NANS,), {"axis": 1}), ("nancumprod", (NANS,), {"axis": 1}),
    ("nanargmax", (NANS[[0, 2]],), {"axis": 1}), ("nanargmin", (NANS[[0, 2]],), {"axis": 1}),
    ("nanmedian", (NANS,), {"axis": 1}), ("nanquantile", (NANS, 0.25), {"axis": 1}),
    ("nanpercentile", (NANS, 75), {"axis": 0}),
    ("logspace", (0, 2, 5), {}), ("logspace", (0, 3), {"num": 4, "base": 2}),
    ("geomspace", (1, 1000, 4), {}), ("trapezoid", (A,), {}),
    ("trapezoid", (A,), {"x": np.array([0.0, 1.0, 3.0, 6.0]), "axis": 1}),
    ("vander", (A[0],), {"N": 3}), ("vander", (A[0],), {"increasing": True}),
    ("hamming", (5,), {}), ("hanning", (5,), {}), ("bartlett", (5,), {}),
    ("blackman", (5,), {}), ("kaiser", (5, 2.0), {}),
    ("histogram", (A.ravel(),), {"bins": 4}), ("correlate", (A[0], B[1, :3]), {}),
    ("correlate", (A[0], B[1, :3]), {"mode": "full"}),
    ("correlate", (A[0], B[1, :3]), {"mode": "same"}), ("corrcoef", (A,), {}),
    ("cdist", (A, B[:2]), {}),
    # nn
    ("celu", (A,), {"alpha": 0.5}), ("glu", (A,), {}), ("hard_tanh", (A * 2,), {}),
    ("hard_shrink", (A,), {}), ("soft_shrink", (A,), {"threshold": 0.3}),
    ("tanh_shrink", (A,), {}), ("sparse_plus", (A * 2,), {}), ("sparse_sigmoid", (A * 2,), {}),
    ("squareplus", (A,), {"b": 2}), ("threshold", (A, 0.1, -5.0), {}),
    ("psnr", (A, B, 2.0), {}), ("in_top_k", (np.array([1, 0, 3]), A, 2), {}),
    ("batch_normalization", (C3, C3[0, :, 0], np.abs(C3[1, :, 1]), 1),
     {"offset": A[0, :3], "scale": B[0, :3]}),
    ("layer_normalization", (C3,), {"gamma": A[0], "beta": B[0]}),
    ("layer_normalization", (C3,), {"axis": (1, 2)}),
    ("rms_normalization", (C3,), {"scale": A[0]}),
    # linalg
    ("inv", (SPD,), {}), ("det", (SPD,), {}), ("slogdet", (-SPD[:3, :3],), {}),
    ("logdet", (SPD,), {}), ("solve", (SPD, A.T), {}),
    ("solve_triangular", (SPD, A.T), {"lower": True}), ("solve_triangular", (SPD, A.T), {}),
    ("cholesky", (SPD,), {}), ("cholesky", (SPD,), {"upper": True}),
    ("cholesky_inverse", (np.linalg.cholesky(SPD),), {}), ("matrix_rank", (A,), {}),
    ("pinv", (A,), {}), ("lstsq", (A.T, B[0]), {}), ("svd", (A,), {"compute_uv": False}),
]


def _ids(cases):
    return [f"{c[0]}-{i}" for i, c in enumerate(cases)]


def _as_list(out):
    return list(out) if isinstance(out, (tuple, list)) else [out]


@pytest.mark.parametrize("name,args,kwargs", VALUES, ids=_ids(VALUES))
def test_value_and_dtype_match_keras(keras, name, args, kwargs):
    want = _as_list(getattr(keras.ops, name)(*args, **kwargs))
    got = _as_list(getattr(ops, name)(*args, **kwargs))
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert isinstance(g, Tensor)
        w = keras.ops.convert_to_numpy(w)
        assert g.dtype == w.dtype, (name, g.dtype, w.dtype)
        assert g.shape == w.shape, (name, g.shape, w.shape)
        if name in ("empty", "empty_like"):          # Keras's are uninitialised
            continue
        if w.dtype.kind in "biu":
            np.testing.assert_array_equal(g.data, w)
        else:
            np.testing.assert_allclose(g.data, w, rtol=2e-5, atol=2e-6)


def test_nonzero_matches_keras_stacked(keras):
    # Keras on torch returns one (ndim, n) tensor, NumPy and JAX a tuple: ours is the
    # tuple, which unpacks the same way and indexes as NumPy does
    got = ops.nonzero(I32 > 2)
    want = keras.ops.convert_to_numpy(keras.ops.nonzero(I32 > 2))
    np.testing.assert_array_equal(np.stack([g.data for g in got]), want)
    assert got[0].dtype == want.dtype
    np.testing.assert_array_equal(I32[tuple(g.data for g in got)], I32[I32 > 2])


def test_decompositions_match_keras_up_to_signs(keras):
    w, v = ops.eigh(SPD)
    kw, kv = (keras.ops.convert_to_numpy(t) for t in keras.ops.eigh(SPD))
    np.testing.assert_allclose(w.data, kw, rtol=1e-5)
    np.testing.assert_allclose(np.abs(v.data), np.abs(kv), rtol=1e-4, atol=1e-5)
    q, r = ops.qr(A.T)
    np.testing.assert_allclose(q.data @ r.data, A.T, atol=1e-5)
    kq = keras.ops.convert_to_numpy(keras.ops.qr(A.T)[0])
    np.testing.assert_allclose(np.abs(q.data), np.abs(kq), atol=1e-5)
    u, s, vh = ops.svd(A, full_matrices=False)
    np.testing.assert_allclose((u.data * s.data) @ vh.data, A, atol=1e-5)
    assert u.dtype == s.dtype == np.float32


# -- values where Keras is absent: NumPy / SciPy references ------------------------------
def test_values_against_numpy():
    np.testing.assert_array_equal(ops.rot90(C3, 1, (0, 2)).data, np.rot90(C3, 1, (0, 2)))
    np.testing.assert_array_equal(ops.rot90(C3, 2, (2, 1)).data, np.rot90(C3, 2, (2, 1)))
    np.testing.assert_array_equal(ops.diagonal(C3, -1, 2, 1).data, np.diagonal(C3, -1, 2, 1))
    np.testing.assert_array_equal(ops.kron(V3, A).data, np.kron(V3, A))
    np.testing.assert_array_equal(ops.kron(A[0], C3).data, np.kron(A[0], C3))
    np.testing.assert_allclose(ops.cross(C3[..., :3], V3[0]).data, np.cross(C3[..., :3], V3[0]),
                               rtol=1e-6)
    for got, want in zip(ops.meshgrid(A[0], V3[0], B[1]), np.meshgrid(A[0], V3[0], B[1])):
        np.testing.assert_array_equal(got.data, want)
    for i, part in enumerate(ops.array_split(np.arange(10), 4)):
        np.testing.assert_array_equal(part.data, np.array_split(np.arange(10), 4)[i])
    for q in (0.0, 0.3, 0.5, 1.0):
        for method in ("linear", "lower", "higher", "midpoint", "nearest"):
            np.testing.assert_allclose(ops.quantile(C3, q, axis=(0, 2), method=method).data,
                                       np.quantile(C3, q, axis=(0, 2), method=method),
                                       rtol=1e-6, err_msg=method)
    np.testing.assert_allclose(ops.nanquantile(NANS[[0, 2]], [0.2, 0.9], axis=1).data,
                               np.nanquantile(NANS[[0, 2]], [0.2, 0.9], axis=1), rtol=1e-6)
    np.testing.assert_allclose(ops.correlate(A[0], B[1, :3], "same").data,
                               np.correlate(A[0], B[1, :3], "same"), rtol=1e-5)
    # sparsemax against the simplex projection by bisection on tau (Keras 3.13 on torch
    # sums the whole cumsum into tau, so its rows need not sum to 1: not the oracle here)
    z = np.concatenate([A * 2, C3.reshape(-1, 4)]).astype(np.float64)
    lo, hi = z.min(-1, keepdims=True) - 1, z.max(-1, keepdims=True)
    for _ in range(200):
        mid = (lo + hi) / 2
        big = np.maximum(z - mid, 0).sum(-1, keepdims=True) > 1
        lo, hi = np.where(big, mid, lo), np.where(big, hi, mid)
    np.testing.assert_allclose(ops.sparsemax(z).data, np.maximum(z - lo, 0), atol=1e-12)
    np.testing.assert_allclose(ops.sparsemax(C3, axis=1).data,
                               np.moveaxis(ops.sparsemax(np.moveaxis(C3, 1, -1)).data, -1, 1))
    np.testing.assert_allclose(ops.sinc(np.array([0.0, 0.5])).data, np.sinc([0.0, 0.5]))
    # where Keras on torch departs from NumPy, ours follows NumPy
    np.testing.assert_allclose(ops.cross(A[:, :2], B[:, :2]).data,
                               A[:, 0] * B[:, 1] - A[:, 1] * B[:, 0], rtol=1e-6)
    np.testing.assert_allclose(ops.cross(C3[..., :3], V3[0], axisc=0).data,
                               np.cross(C3[..., :3], V3[0], axisc=0), rtol=1e-6)
    np.testing.assert_allclose(ops.ptp(A, keepdims=True).data, np.ptp(A, keepdims=True))
    np.testing.assert_allclose(ops.average(A, weights=np.abs(B) + 0.1).data,
                               np.average(A, weights=np.abs(B) + 0.1), rtol=1e-6)
    np.testing.assert_allclose(ops.average(A, 1, np.arange(4.0)).data,
                               np.average(A, 1, np.arange(4.0)), rtol=1e-6)
    np.testing.assert_allclose(ops.rms_normalization(C3, axis=1).data,
                               C3 / np.sqrt((C3 ** 2).mean(1, keepdims=True) + 1e-7), rtol=1e-6)
    np.testing.assert_array_equal(ops.imag(A).data, np.zeros_like(A))
    x = ops.scatter(np.array([[0], [0], [2]]), np.array([1.0, 2.0, 4.0]), (3,))
    np.testing.assert_array_equal(x.data, [3.0, 0.0, 4.0])      # duplicates sum
    np.testing.assert_array_equal(ops.segment_max(A, np.array([0, 0, 2])).data[1],
                                  np.full(4, -np.inf, np.float32))


@pytest.mark.parametrize("fn,ref", [
    (ops.inv, np.linalg.inv), (ops.det, np.linalg.det),
    (lambda m: ops.cholesky(m), np.linalg.cholesky),
    (lambda m: ops.eigh(m)[0], lambda m: np.linalg.eigh(m)[0]),
])
def test_linalg_values_batched(fn, ref):
    batch = np.stack([SPD, SPD + np.eye(4, dtype=np.float32)]).astype(np.float64)
    np.testing.assert_allclose(fn(batch).data, ref(batch), rtol=1e-10)


# -- gradients: autograd against central differences in float64 -----------------------------
def check_grad(fn, *arrays, rtol=1e-5, atol=1e-7):
    """Gradient of sum(fn(*tensors) * R) w.r.t. each array: autograd vs central differences."""
    arrays = [np.array(a, dtype=np.float64) for a in arrays]

    def outs(*ts):
        return [o for o in _as_list(fn(*ts))]
    Rs = [np.random.default_rng(5 + i).standard_normal(o.shape)
          for i, o in enumerate(outs(*[Tensor(a) for a in arrays]))]

    def f():
        return float(builtin_sum((np.asarray(o.data) * R).sum()
                                 for o, R in zip(outs(*[Tensor(a) for a in arrays]), Rs)))
    ts = [Tensor(a.copy(), requires_grad=True) for a in arrays]
    total = None
    for o, R in zip(outs(*ts), Rs):
        term = ops.sum(ops.multiply(o, R))
        total = term if total is None else ops.add(total, term)
    total.backward()
    for i, (t, a) in enumerate(zip(ts, arrays)):
        got = np.zeros_like(a) if t.grad is None else t.grad
        np.testing.assert_allclose(got, numeric_grad(f, a), rtol=rtol, atol=atol,
                                   err_msg=f"operand {i}")


builtin_sum = sum


def _sym(m):
    return ops.multiply(ops.add(m, ops.transpose(m)), 0.5)


IDX = np.array([[0, 1], [2, 3], [0, 1]])
GRADS = [
    ("ravel/vstack/hstack/dstack", lambda a, b: ops.dstack([ops.vstack([a, b]), ops.vstack(
        [ops.hstack([b, a])[:, :4], ops.reshape(ops.ravel(a), (3, 4))])]), A, B),
    ("array_split", lambda a: ops.array_split(a, 3, axis=1)[0] * 2, A),
    ("rot90", lambda a: ops.rot90(a, 3, (2, 0)), C3),
    ("diag/diagflat", lambda a, v: ops.add(ops.diag(ops.diag(a, 1)), ops.diagflat(v)[:3, :3]),
     A, V3),
    ("diagonal/trace", lambda a: ops.trace(a, 1, 0, 2) + ops.diagonal(a, -1, 2, 1), C3),
    ("meshgrid", lambda a, b: ops.multiply(*ops.meshgrid(a, b)), A[0], V3[0]),
    ("kron", ops.kron, V3, A), ("inner", ops.inner, A, B),
    ("cross3", ops.cross, C3[..., :3], V3[:, None, :]), ("cross2", ops.cross, A[:, :2], B[:, :2]),
    ("scatter", lambda v: ops.scatter(IDX, v, (3, 4)), np.array([1.0, 2.0, 4.0])),
    ("scatter_update", lambda a, u: ops.scatter_update(a, IDX, u), A, np.array([1.0, 2.0, 4.0])),
    ("scatter_update add", lambda a, u: ops.scatter_update(a, IDX, u, reduction="add"),
     A, np.array([1.0, 2.0, 4.0])),
    ("slice_update", lambda a, u: ops.slice_update(a, (1, 1), u), A, V3),
    ("segment_sum", lambda a: ops.segment_sum(a, np.array([1, -1, 1]), 3), A),
    ("segment_max", lambda a: ops.segment_max(a, np.array([1, 0, 1])), A),
    ("segment_min", lambda a: ops.segment_min(a, np.array([0, 0, 1])), A),
    ("segment_prod", lambda a: ops.segment_prod(a, np.array([1, 0, 1]), 3), A),
    ("select", lambda a, b: ops.select([A > 0, B > 0], [a, b], 0.5), A, B),
    ("bincount weights", lambda w: ops.bincount(np.array([0, 1, 1, 3]), weights=w),
     np.array([0.5, 1.0, 2.0, 3.0])),
    ("depth_to_space", lambda x: ops.depth_to_space(x, 2), rng.standard_normal((1, 2, 1, 4))),
    ("space_to_depth", lambda x: ops.space_to_depth(x, 2), rng.standard_normal((1, 2, 4, 1))),
    ("extract_sequences", lambda x: ops.extract_sequences(x, 3, 1), A),
    ("arcsin", ops.arcsin, U), ("arccos", ops.arccos, U), ("arctan", ops.arctan, A),
    ("arcsinh", ops.arcsinh, A), ("arccosh", ops.arccosh, BIG), ("arctanh", ops.arctanh, U),
    ("sinh", ops.sinh, A), ("cosh", ops.cosh, A), ("cbrt", ops.cbrt, BIG),
    ("exp2", ops.exp2, A), ("deg2rad", ops.deg2rad, A), ("rad2deg", ops.rad2deg, A),
    ("erfc", ops.erfc, A), ("erfinv", ops.erfinv, U), ("sinc", ops.sinc, A), ("i0", ops.i0, A),
    ("arctan2", ops.arctan2, A, B), ("hypot", ops.hypot, A, B[0]),
    ("logaddexp", ops.logaddexp, A, B[:1]), ("logaddexp2", ops.logaddexp2, A, B),
    ("fmod", ops.fmod, A * 3, BIG), ("fmax", ops.fmax, A, B), ("fmin", ops.fmin, A, B),
    ("fabs", ops.fabs, A), ("ldexp", lambda a: ops.ldexp(a, np.int32(3)), A),
    ("ptp", lambda a: ops.ptp(a, 1), A), ("cumprod", lambda a: ops.cumprod(a, 0), A),
    ("cumprod zeros", lambda a: ops.cumprod(a), np.array([2.0, 0.0, 3.0, 0.0, 1.5])),
    ("diff", lambda a: ops.diff(a, 2, 1), A),
    ("average", lambda a, w: ops.average(a, 1, w), A, np.abs(B[0]) + 0.5),
    ("median", lambda a: ops.median(a, 1), A),
    ("quantile", lambda a: ops.quantile(a, [0.2, 0.7], 0), C3),
    ("percentile nearest", lambda a: ops.percentile(a, 30, method="nearest"), A),
    ("nanmean/nanstd/nanvar", lambda a: ops.nanmean(a, 1) + ops.nanstd(a, 1) + ops.sum(
        ops.nanvar(a, 0)), NANS[[0, 2]]),
    ("nanmax/nanmin", lambda a: ops.nanmax(a, 1) * ops.nanmin(a, 1), NANS[[0, 2]]),
    ("nansum/nanprod", lambda a: ops.nansum(a, 1) + ops.nanprod(a, 1), NANS[[0, 2]]),
    ("nancumsum/nancumprod", lambda a: ops.nancumsum(a, 1) + ops.nancumprod(a, 1),
     NANS[[0, 2]]),
    ("nanmedian", lambda a: ops.nanmedian(a, 1), NANS[[0, 2]]),
    ("trapezoid", lambda a, x: ops.trapezoid(a, x, axis=1), A, np.array([0.0, 1.0, 3.0, 6.0])),
    ("vander", lambda a: ops.vander(a, 3), A[0]),
    ("correlate", lambda a, b: ops.correlate(a, b, "full"), A[0], B[1, :3]),
    ("corrcoef", ops.corrcoef, A), ("cdist", ops.cdist, A, B[:2]),
    ("celu", lambda a: ops.celu(a, 0.5), A), ("glu", ops.glu, A),
    ("hard_tanh", ops.hard_tanh, A * 2), ("hard_shrink", ops.hard_shrink, A),
    ("soft_shrink", ops.soft_shrink, A), ("tanh_shrink", ops.tanh_shrink, A),
    ("sparse_plus", ops.sparse_plus, A * 2), ("sparse_sigmoid", ops.sparse_sigmoid, A * 2),
    ("squareplus", ops.squareplus, A), ("sparsemax", lambda a: ops.sparsemax(a, 0), A * 2),
    ("threshold", lambda a: ops.threshold(a, 0.1, -5.0), A),
    ("psnr", lambda a, b: ops.psnr(a, b, 2.0), A, B),
    ("batch_normalization", lambda x, m, v, o, s: ops.batch_normalization(
        x, m, v, 1, offset=o, scale=s), C3, C3[0, :, 0], np.abs(C3[1, :, 1]), A[0, :3],
     B[0, :3]),
    ("layer_normalization", lambda x, g, b: ops.layer_normalization(x, g, b), C3, A[0], B[0]),
    ("layer_normalization axes", lambda x: ops.layer_normalization(x, axis=(0, 2)), C3),
    ("rms_normalization", lambda x, s: ops.rms_normalization(x, s, axis=1), C3, A[0, :3]),
    ("inv", ops.inv, SPD), ("det", ops.det, SPD[:3, :3] + A[:, :3]),
    ("slogdet", lambda m: ops.slogdet(m)[1], -SPD), ("logdet", ops.logdet, SPD),
    ("solve", ops.solve, SPD, A.T), ("solve vector", ops.solve, SPD, A[0]),
    ("solve_triangular lower", lambda a, b: ops.solve_triangular(a, b, lower=True), SPD, A.T),
    ("solve_triangular upper", ops.solve_triangular, SPD, A[1]),
    ("cholesky", lambda m: ops.cholesky(_sym(m)), SPD),
    ("cholesky upper", lambda m: ops.cholesky(m, upper=True), SPD),
    ("cholesky_inverse", ops.cholesky_inverse, np.linalg.cholesky(SPD)),
    ("eigh", lambda m: ops.eigh(_sym(m)), SPD + np.diag([0.0, 1.0, 2.0, 3.0])),
    ("eigh lower triangle", lambda m: ops.eigh(m)[1], SPD + np.diag([0.0, 1.0, 2.0, 3.0])),
    ("svd values", lambda m: ops.svd(m, compute_uv=False), A),
]


@pytest.mark.parametrize("case", GRADS, ids=[g[0] for g in GRADS])
def test_gradient_against_finite_differences(case):
    _, fn, *arrays = case
    check_grad(fn, *arrays, rtol=1e-5, atol=1e-6)
