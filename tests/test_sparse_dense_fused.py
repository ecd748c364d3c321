"""The sparse Dense step as one fused node: the bias and GELU in the sparse forward, GELU's
derivative and the bias gradient in the backward's transpose (wsekern/sparse_dense.py,
src/_sparse_dense.pyx, src/wsk_transpose.h), against NumPy and finite differences."""

import numpy as np
import pytest
import scipy.sparse as sps
from conftest import assert_refused_in_child
from scipy.special import erf

from wsekern import pack
from wsekern import sparse_dense as sd


def _kernel(K, N, density, dtype, seed=0):
    W = sps.random(K, N, density=density, random_state=seed, format="csr", dtype=np.float64)
    W.data -= 0.5
    P = pack(W.astype(dtype))
    return P, P.toarray().astype(np.float64)


def _relu(z):
    return np.maximum(z, 0), (z > 0).astype(np.float64)


def _gelu(z):
    """Exact GELU and its derivative, float64 (independent of wsekern's kernels)."""
    phi = 0.5 * (1 + erf(z / np.sqrt(2)))
    return z * phi, phi + z * np.exp(-0.5 * z * z) / np.sqrt(2 * np.pi)


def _masked_times(Wd, Xt):
    """W^T Xt over stored weights only (a NaN of Xt meets no pruned weight)."""
    out = np.zeros((Wd.shape[1], Xt.shape[1]))
    for n in range(Wd.shape[1]):
        ks = np.nonzero(Wd[:, n])[0]
        out[n] = (Wd[ks, n][:, None] * Xt[ks].astype(np.float64)).sum(0)
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("K,N,B", [(7, 5, 3), (130, 70, 129), (1, 1, 1), (9, 4, 0), (16, 8, 8)])
@pytest.mark.parametrize("density", [0.0, 0.15, 1.0])
def test_fused_forward_matches_numpy(dtype, K, N, B, density):
    P, Wd = _kernel(K, N, density, dtype, seed=K + B)
    rng = np.random.default_rng(B)
    Xt = rng.standard_normal((K, B)).astype(dtype)
    bias = rng.standard_normal(N).astype(dtype)
    tol = 2e-5 if dtype == np.float32 else 1e-12
    z = _masked_times(Wd, Xt) + bias[:, None]
    plain = sd.forward(P, Xt, bias)
    assert plain.dtype == dtype and plain.shape == (N, B)
    np.testing.assert_allclose(plain, z, rtol=tol, atol=tol)
    for act, ref in (("gelu", _gelu), ("relu", _relu)):
        y, d = sd.forward(P, Xt, bias, activation=act)
        assert y.dtype == d.dtype == dtype and y.shape == d.shape == (N, B)
        gy, gd = ref(z)
        np.testing.assert_allclose(y, gy, rtol=tol, atol=tol)
        np.testing.assert_allclose(d, gd, rtol=tol, atol=tol)
    np.testing.assert_allclose(sd.forward(P, Xt), _masked_times(Wd, Xt), rtol=tol, atol=tol)


def test_fused_forward_nan_reaches_only_connected_outputs():
    P, Wd = _kernel(20, 12, 0.2, np.float32, seed=3)
    Xt = np.random.default_rng(0).standard_normal((20, 5)).astype(np.float32)
    k = int(np.nonzero(Wd.any(axis=1))[0][0])
    Xt[k, 2] = np.nan
    y, d = sd.forward(P, Xt, np.ones(12, np.float32), activation="gelu")
    hit = Wd[k] != 0                                     # the outputs row k's weights reach
    assert np.isnan(y[hit, 2]).all() and np.isnan(d[hit, 2]).all()
    assert np.isfinite(y[~hit]).all() and np.isfinite(np.delete(y, 2, axis=1)).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(0, 5), (5, 0), (1, 1), (33, 17), (2048, 128), (67, 1031),
                                   (128, 40), (8, 16)])
def test_transpose_scaled_with_row_sums(dtype, shape):
    rng = np.random.default_rng(sum(shape))
    a = rng.standard_normal(shape).astype(dtype)
    scale = rng.standard_normal(shape[::-1]).astype(dtype)
    t, sums = sd.transpose(a, scale=scale, row_sums=True)
    assert t.dtype == sums.dtype == dtype and t.flags.c_contiguous
    want = a.T.astype(np.float64) * scale
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(t, want, rtol=tol, atol=tol)
    np.testing.assert_allclose(sums, want.sum(axis=1), rtol=tol, atol=tol * max(1, shape[0]))
    t2, sums2 = sd.transpose(a, row_sums=True)
    np.testing.assert_array_equal(t2, a.T)
    np.testing.assert_allclose(sums2, a.T.astype(np.float64).sum(axis=1), rtol=tol,
                               atol=tol * max(1, shape[0]))
    np.testing.assert_array_equal(sd.transpose(a), a.T)


@pytest.mark.parametrize("shape", [(1, 1), (7, 9), (8, 16), (64, 32), (65, 33), (71, 47),
                                   (130, 100), (2048, 24), (203, 515)])
def test_transpose_scaled_in_one_pass_gives_the_two_pass_bits(shape):
    """float32 on the AVX2 path scales and sums each run as it leaves the tiles' buffer;
    the baseline path transposes, then scales and sums each row. The same bits, over
    ragged edges of the 8 x 8 tiles, the 16-column strips, the 32-column bands and the
    64-row blocks, with the scale, the sums or both."""
    from wsekern import _sparse_dense
    from wsekern.simd_path import SIMD_BITS, SIMD_PATH, simd_available
    if "avx2" not in simd_available():
        pytest.skip("this CPU does not run the avx2 path")
    rng = np.random.default_rng(sum(shape))
    a = rng.standard_normal(shape).astype(np.float32)
    scale = rng.standard_normal(shape[::-1]).astype(np.float32)
    want = a.T.astype(np.float64) * scale
    got = {}
    try:
        for path in ("baseline", "avx2"):
            _sparse_dense.simd_init(SIMD_BITS[path])
            got[path] = (sd.transpose(a, scale=scale, row_sums=True),
                         sd.transpose(a, row_sums=True), sd.transpose(a, scale=scale))
    finally:
        _sparse_dense.simd_init(SIMD_BITS[SIMD_PATH])
    for (t, sums), (t2, sums2), t3 in got.values():
        np.testing.assert_allclose(t, want, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(sums, want.sum(axis=1), rtol=1e-5, atol=1e-5 * shape[0])
        np.testing.assert_array_equal(t2, a.T)
        np.testing.assert_allclose(sums2, a.T.astype(np.float64).sum(axis=1), rtol=1e-5,
                                   atol=1e-5 * shape[0])
        np.testing.assert_array_equal(t3, t)
    (t, sums), (t2, sums2), t3 = got["avx2"]
    (u, usums), (u2, usums2), u3 = got["baseline"]
    np.testing.assert_array_equal(t, u)
    np.testing.assert_array_equal(sums, usums)
    np.testing.assert_array_equal(sums2, usums2)
    np.testing.assert_array_equal(t3, u3)


def test_fused_operands_are_checked():
    P, _ = _kernel(6, 4, 0.5, np.float32)
    with pytest.raises(ValueError, match=r"bias of shape \(4,\).*received shape \(5,\)"):
        sd.forward(P, np.ones((6, 3), np.float32), np.ones(5, np.float32))
    with pytest.raises(ValueError, match="activation must be one of"):
        sd.forward(P, np.ones((6, 3), np.float32), activation="tanh")
    with pytest.raises(ValueError, match=r"scale must be.*\(3, 2\)"):
        sd.transpose(np.ones((2, 3), np.float32), scale=np.ones((2, 3), np.float32))
    with pytest.raises(ValueError, match="scale must be"):
        sd.transpose(np.ones((2, 3), np.float32), scale=np.ones((3, 2), np.float64))


def test_the_choice_counts_the_whole_sparse_step():
    """The transposes and the SDDMM are part of the sparse step's cost: dear enough, they
    make the masked GEMMs the better path though the products alone are cheaper."""
    from wsekern.costs import CostTable
    P, _ = _kernel(128, 512, 0.1, np.float32)
    base = dict(blas_mac=0.022, spmm_mac=0.075, dense_scan=0, densify=0.16,
                conv_direct=(0, 0), conv_input=(0, 0))
    assert sd.sparse_pays(P, 2048, cost=CostTable("t", **base))
    assert not sd.sparse_pays(P, 2048, cost=CostTable("t", **base, transpose=10.0))
    assert not sd.sparse_pays(P, 2048, cost=CostTable("t", **base, transpose_l2=10.0))
    assert not sd.sparse_pays(P, 2048, cost=CostTable("t", **base, sampled_mac=1.0))
    t = CostTable("t", **base, transpose=0.3, transpose_l2=0.5)
    sparse, dense = sd.step_costs(P, 2048, cost=t)
    # two transposes from memory (X, dY) and two written by the products (Y, dX)
    assert sparse == pytest.approx(1e-9 * (P.nnz * 2048 * (2 * 0.075 + t.sampled_mac)
                                           + 2048 * (128 + 512) * (0.3 + 0.5)))
    assert dense == pytest.approx(1e-9 * (3 * 128 * 512 * 2048 * 0.022 + 128 * 512 * 0.16))


# -- the layer ------------------------------------------------------------------------------
def _gelu_layer(monkeypatch, masked, dtype="float64", shape=(3, 4, 21), sparsity=0.8,
                upstream=None, activation="gelu"):
    from wsekern.nn import layers as L
    from wsekern.nn import utils
    from wsekern.nn.layers import core
    from wsekern.nn.tensor import Tensor
    monkeypatch.setattr(core.sparse_dense_kernels, "sparse_pays", lambda P, b: not masked)
    utils.set_random_seed(1)
    layer = L.Dense(13, activation=activation, sparsity=sparsity, dtype=dtype,
                    bias_initializer="random_normal")
    x = Tensor(np.random.default_rng(4).standard_normal(shape).astype(dtype),
               requires_grad=True)
    y = layer(x)
    w = np.random.default_rng(5).standard_normal(y.shape).astype(upstream or dtype)
    (y * Tensor(w)).sum().backward()
    monkeypatch.undo()
    return layer, x, y, w


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("activation", ["gelu", "relu"])
def test_fused_layer_is_one_node_with_numpy_gradients(monkeypatch, masked, activation):
    layer, x, y, w = _gelu_layer(monkeypatch, masked, activation=activation)
    K, b = layer.get_weights()
    assert set(map(id, y._parents)) == {id(x), id(layer.kernel), id(layer.bias)}
    z = x.data @ K + b                                     # (3, 4, 13)
    gy, gd = (_gelu if activation == "gelu" else _relu)(z)
    np.testing.assert_allclose(y.data, gy, rtol=1e-12, atol=1e-12)
    gz = w * gd
    np.testing.assert_allclose(x.grad, gz @ K.T, rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(layer.bias.grad, gz.sum(axis=(0, 1)), rtol=1e-11, atol=1e-12)
    full = x.data.reshape(-1, 21).T @ gz.reshape(-1, 13)
    mask = layer.mask
    grad = np.zeros_like(full)
    rows = np.repeat(np.arange(21), np.diff(layer.pattern.indptr))
    grad[rows, layer.pattern.indices] = layer.kernel.grad
    np.testing.assert_allclose(grad[mask], full[mask], rtol=1e-11, atol=1e-12)
    assert not grad[~mask].any()                           # pruned weights get no gradient


def test_fused_gelu_layer_matches_finite_differences(monkeypatch):
    from wsekern.nn import layers as L
    from wsekern.nn import utils
    from wsekern.nn.layers import core
    from wsekern.nn.tensor import Tensor
    monkeypatch.setattr(core.sparse_dense_kernels, "sparse_pays", lambda P, b: True)
    utils.set_random_seed(2)
    layer = L.Dense(5, activation="gelu", sparsity=0.5, dtype="float64",
                    bias_initializer="random_normal")
    xv = np.random.default_rng(0).standard_normal((4, 6))
    w = np.random.default_rng(1).standard_normal((4, 5))

    def loss(xa):
        return float((layer(Tensor(xa)).data * w).sum())
    x = Tensor(xv.copy(), requires_grad=True)
    (layer(x) * Tensor(w)).sum().backward()
    eps = 1e-6
    for i, j in [(0, 0), (1, 3), (3, 5), (2, 2)]:
        e = np.zeros_like(xv)
        e[i, j] = eps
        fd = (loss(xv + e) - loss(xv - e)) / (2 * eps)
        assert x.grad[i, j] == pytest.approx(fd, rel=1e-6, abs=1e-8)
    values = layer.kernel.data
    g = layer.kernel.grad.copy()
    for p in range(0, len(values), 3):
        old = values[p]
        values[p] = old + eps
        up = loss(xv)
        values[p] = old - eps
        down = loss(xv)
        values[p] = old
        assert g[p] == pytest.approx((up - down) / (2 * eps), rel=1e-6, abs=1e-8)


@pytest.mark.parametrize("masked", [False, True])
def test_float32_model_keeps_float32_gradients(monkeypatch, masked):
    layer, x, y, w = _gelu_layer(monkeypatch, masked, dtype="float32", upstream="float64")
    assert y.dtype == np.float32
    assert x.grad.dtype == layer.kernel.grad.dtype == layer.bias.grad.dtype == np.float32
    ref_layer, _, _, _ = _gelu_layer(monkeypatch, masked, dtype="float32")
    np.testing.assert_allclose(layer.kernel.grad, ref_layer.kernel.grad, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("masked", [False, True])
def test_empty_batch_and_all_pruned_kernel(monkeypatch, masked):
    from wsekern.nn import layers as L
    from wsekern.nn.layers import core
    from wsekern.nn.tensor import Tensor
    layer, x, y, w = _gelu_layer(monkeypatch, masked, shape=(0, 21))
    assert y.shape == (0, 13) and x.grad.shape == (0, 21)
    assert not layer.kernel.grad.any() and not layer.bias.grad.any()
    monkeypatch.setattr(core.sparse_dense_kernels, "sparse_pays", lambda P, b: not masked)
    layer = L.Dense(13, activation="gelu", sparsity=0.5, dtype="float64",
                    bias_initializer="random_normal")
    layer._build_only((None, 21))
    layer.set_sparsity(0.5, mask=np.zeros((21, 13), dtype=bool))     # every weight pruned
    x = Tensor(np.random.default_rng(0).standard_normal((5, 21)), requires_grad=True)
    y = layer(x)
    y.sum().backward()
    b = layer.get_weights()[1]
    np.testing.assert_allclose(y.data, _gelu(np.broadcast_to(b, (5, 13)))[0], rtol=1e-12)
    assert not x.grad.any() and layer.kernel.grad.shape == (0,)
    np.testing.assert_allclose(layer.bias.grad, 5 * _gelu(b)[1], rtol=1e-12)


def test_the_cython_entry_points_refuse_mis_sized_operands_in_a_child_process():
    """bias, d, scale, row_sums and dst were trusted to the wrapper's checks: a short one
    read or wrote past its end (a segfault; heap corruption for dst). Run straight into
    the Cython entry points, in a child so that a crash fails this test."""
    import textwrap
    code = textwrap.dedent("""
        import numpy as np
        import scipy.sparse as sps
        from wsekern import _sparse_dense as S
        W = sps.random(64, 32, density=0.3, format="csr", random_state=0)
        vals, cols, ptr = W.data, W.indices.astype(np.int32), W.indptr.astype(np.int32)
        X = np.ones((32, 512))
        out = np.empty((64, 512))
        src = np.ones((100, 40))
        cases = [
            lambda: S.rows_times_dense(vals, cols, ptr, X, out, 1, 0, np.ones(2), None),
            lambda: S.rows_times_dense(vals, cols, ptr, X, out, 1, 0, None, np.ones((1, 1))),
            lambda: S.transpose(src, np.empty((40, 99))),
            lambda: S.transpose(src, np.empty((40, 100)), 1, np.ones((1, 1))),
            lambda: S.transpose(src, np.empty((40, 100)), 1, None, np.ones(1)),
            # out's rows and X's columns were trusted too: indptr and X read past their ends
            lambda: S.rows_times_dense(vals, cols, ptr, X, np.empty((200, 512))),
            lambda: S.rows_times_dense(vals, cols, ptr, np.ones((32, 8)), out),
            lambda: S.rows_times_dense(vals, cols, ptr[:0], X, out[:0]),
        ]
    """)
    assert_refused_in_child(code, 8, (ValueError,), ("received",))
