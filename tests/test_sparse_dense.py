"""The sparse-weight layer's products (wsekern.sparse_dense) against NumPy, and the sparse
Dense layer's step: both gradients, pruned weights kept at zero, sparse == masked path."""
import os
import textwrap

import numpy as np
import pytest
import scipy.sparse as sps
from conftest import assert_refused_in_child, run_in_child

from wsekern import PackedSparse, pack
from wsekern import sparse_dense as sd


def _kernel(K, N, density, dtype, seed=0, index_dtype=None):
    W = sps.random(K, N, density=density, random_state=seed, format="csr", dtype=np.float64)
    W.data -= 0.5
    P = pack(W.astype(dtype))
    if index_dtype is not None and P.indices.dtype != index_dtype:
        P = PackedSparse(P.data, P.indices.astype(index_dtype), P.indptr.astype(index_dtype),
                         P.shape)
    return P, P.toarray()


def _pattern(P):
    mask = np.zeros(P.shape, dtype=bool)
    mask[np.repeat(np.arange(P.shape[0]), np.diff(P.indptr)), P.indices] = True
    return mask


def _ref_times(Wd, mask, Xt):
    """sum over stored k of W[k, n] * Xt[k, :], in float64, only over stored weights."""
    K, N = Wd.shape
    out = np.zeros((N, Xt.shape[1]))
    for n in range(N):
        ks = np.nonzero(mask[:, n])[0]
        out[n] = (Wd[ks, n][:, None].astype(np.float64) * Xt[ks].astype(np.float64)).sum(0)
    return out


SHAPES = [(7, 5, 3), (64, 33, 17), (130, 70, 128), (1, 1, 1), (9, 4, 0)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("K,N,B", SHAPES)
@pytest.mark.parametrize("density", [0.0, 0.1, 1.0])
def test_products_match_numpy(dtype, index_dtype, K, N, B, density):
    rng = np.random.default_rng(K * N + B)
    P, Wd = _kernel(K, N, density, dtype, index_dtype=index_dtype)
    assert P.indices.dtype == index_dtype
    Xt = rng.standard_normal((K, B)).astype(dtype)
    Gt = rng.standard_normal((N, B)).astype(dtype)
    tol = dict(rtol=2e-5, atol=2e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    yt = sd.times_wt(P, Xt)
    assert yt.dtype == dtype and yt.shape == (N, B)
    np.testing.assert_allclose(yt, Wd.T.astype(np.float64) @ Xt, **tol)
    dxt = sd.times_w(P, Gt)
    assert dxt.dtype == dtype and dxt.shape == (K, B)
    np.testing.assert_allclose(dxt, Wd.astype(np.float64) @ Gt, **tol)
    dw = sd.pattern_grad(P, Xt, Gt)
    assert dw.dtype == dtype and dw.shape == (P.nnz,)
    full = Xt.astype(np.float64) @ Gt.T.astype(np.float64)
    rows = np.repeat(np.arange(K), np.diff(P.indptr))
    np.testing.assert_allclose(dw, full[rows, P.indices], **tol)


def test_one_nonzero_and_threads():
    P = pack(sps.csr_array(([2.5], ([3], [1])), shape=(6, 4)).astype(np.float32))
    Xt = np.arange(6 * 5, dtype=np.float32).reshape(6, 5)
    yt = sd.times_wt(P, Xt, n_threads=2)
    expect = np.zeros((4, 5), np.float32)
    expect[1] = 2.5 * Xt[3]
    np.testing.assert_array_equal(yt, expect)
    Gt = np.ones((4, 5), np.float32)
    assert sd.pattern_grad(P, Xt, Gt, n_threads=2).tolist() == [Xt[3].sum()]


def test_column_blocks_cover_every_column(monkeypatch):
    """Wide batches go in L2-sized column blocks: every block, the ragged last included."""
    monkeypatch.setattr(sd, "column_block", lambda k, n, itemsize: 24)
    P, Wd = _kernel(40, 30, 0.2, np.float64, seed=3)
    Xt = np.random.default_rng(1).standard_normal((40, 101))
    np.testing.assert_allclose(sd.times_wt(P, Xt), Wd.T @ Xt, rtol=1e-12, atol=1e-12)


def test_nan_reaches_only_connected_outputs():
    P, Wd = _kernel(20, 12, 0.2, np.float64, seed=5)
    Xt = np.random.default_rng(2).standard_normal((20, 6))
    Xt[4, 2] = np.nan
    yt = sd.times_wt(P, Xt)
    connected = _pattern(P)[4]                      # outputs a stored weight links to input 4
    assert np.isnan(yt[connected, 2]).all()
    assert not np.isnan(yt[~connected]).any()
    ok = ~np.isnan(yt)
    np.testing.assert_allclose(yt[ok], _ref_times(Wd, _pattern(P), Xt)[ok], rtol=1e-12)


def test_non_contiguous_and_integer_operands():
    P, Wd = _kernel(16, 9, 0.3, np.float32, seed=7)
    big = np.random.default_rng(3).standard_normal((32, 20)).astype(np.float32)
    Xt = big[::2, ::3]                               # (16, 7), neither C nor F
    np.testing.assert_allclose(sd.times_wt(P, Xt), Wd.T @ Xt, rtol=2e-5, atol=2e-5)
    Xi = np.arange(16 * 3).reshape(16, 3)
    np.testing.assert_allclose(sd.times_wt(P, Xi), Wd.T @ Xi, rtol=2e-5, atol=2e-4)


@pytest.mark.parametrize("shape", [(0, 5), (5, 0), (1, 1), (33, 17), (300, 9), (9, 300)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
def test_transpose(shape, dtype):
    a = np.arange(np.prod(shape)).reshape(shape).astype(dtype)
    t = sd.transpose(a)
    assert t.flags.c_contiguous and t.dtype == dtype
    np.testing.assert_array_equal(t, a.T)
    np.testing.assert_array_equal(sd.transpose(a[::2]), a[::2].T)    # non-contiguous source


def test_bad_operands_say_what_was_received():
    P, _ = _kernel(6, 4, 0.5, np.float32)
    with pytest.raises(ValueError, match=r"shape \(6, batch\).*received shape \(5, 3\)"):
        sd.times_wt(P, np.ones((5, 3), np.float32))
    with pytest.raises(ValueError, match=r"shape \(4, batch\)"):
        sd.times_w(P, np.ones((6, 3), np.float32))
    with pytest.raises(ValueError, match="same batch"):
        sd.pattern_grad(P, np.ones((6, 3), np.float32), np.ones((4, 2), np.float32))
    with pytest.raises(TypeError, match="PackedSparse"):
        sd.times_wt(np.ones((6, 4)), np.ones((6, 3)))
    with pytest.raises(TypeError, match="real numbers"):
        sd.times_wt(P, np.ones((6, 3), complex))
    with pytest.raises(ValueError, match="2-D"):
        sd.transpose(np.ones(3))


def test_hostile_operands_in_a_child():
    """Shapes that would read or write out of bounds if a check were missing: an error, not
    a crash."""
    code = textwrap.dedent("""
        import numpy as np, scipy.sparse as sps
        from wsekern import pack, sparse_dense as sd
        P = pack(sps.random(50, 40, density=0.3, random_state=0, format="csr",
                            dtype=np.float32))
        cases = [lambda: sd.times_wt(P, np.ones((49, 3), np.float32)),
                 lambda: sd.times_w(P, np.ones((50, 3), np.float32)),
                 lambda: sd.pattern_grad(P, np.ones((50, 3), np.float32),
                                         np.ones((40, 4), np.float32)),
                 lambda: sd.pattern_grad(P, np.ones((50, 3), np.float32),
                                         np.ones((39, 3), np.float32)),
                 lambda: sd.times_wt(P, np.ones((50,), np.float32)),
                 lambda: sd.times_wt(P, np.ones((50, 3, 1), np.float32)),
                 # the fused forward and the scaled transpose (test_sparse_dense_fused.py)
                 lambda: sd.forward(P, np.ones((50, 3), np.float32), np.ones(3, np.float32),
                                    activation="gelu"),
                 lambda: sd.forward(P, np.ones((50, 3), np.float32),
                                    np.ones((40, 1), np.float32)),
                 lambda: sd.forward(P, np.ones((49, 3), np.float32), activation="relu"),
                 lambda: sd.transpose(np.ones((50, 3), np.float32),
                                      scale=np.ones((3, 49), np.float32)),
                 lambda: sd.transpose(np.ones((50, 3), np.float32),
                                      scale=np.ones(150, np.float32))]
    """)
    assert_refused_in_child(code, 11, (ValueError, TypeError))


def test_sparse_pays_follows_the_cost_table():
    from wsekern.costs import CostTable
    P, _ = _kernel(100, 100, 0.1, np.float32)
    cheap = CostTable("t", blas_mac=1.0, spmm_mac=1.0, dense_scan=0, densify=0,
                      conv_direct=(0, 0), conv_input=(0, 0))
    dear = CostTable("t", blas_mac=1.0, spmm_mac=20.0, dense_scan=0, densify=0,
                     conv_direct=(0, 0), conv_input=(0, 0))
    assert sd.sparse_pays(P, 32, cost=cheap)
    assert not sd.sparse_pays(P, 32, cost=dear)


# -- the layer ------------------------------------------------------------------------------
def _layer_step(sparsity, monkeypatch=None, masked=False, dtype="float64"):
    from wsekern.nn import layers as L
    from wsekern.nn import utils
    from wsekern.nn.layers import core
    from wsekern.nn.tensor import Tensor
    if masked:
        monkeypatch.setattr(core.sparse_dense_kernels, "sparse_pays", lambda P, b: False)
    utils.set_random_seed(1)
    layer = L.Dense(13, sparsity=sparsity, dtype=dtype)
    layer.build((None, 21))
    x = Tensor(np.random.default_rng(4).standard_normal((6, 21)).astype(dtype),
               requires_grad=True)
    y = layer(x)
    w = np.random.default_rng(5).standard_normal(y.shape)
    (y * Tensor(w)).sum().backward()
    return layer, x, y, w


@pytest.mark.parametrize("masked", [False, True])
def test_sparse_dense_layer_gradients(monkeypatch, masked):
    layer, x, y, w = _layer_step(0.8, monkeypatch, masked)
    K = layer.get_weights()[0]
    mask = layer.mask
    assert np.count_nonzero(mask) == round(0.2 * mask.size)
    np.testing.assert_allclose(y.data, x.data @ K + layer.get_weights()[1], rtol=1e-12)
    np.testing.assert_allclose(x.grad, w @ K.T, rtol=1e-12, atol=1e-12)
    full = x.data.T @ w                                   # d(sum y*w)/dK, dense
    rows, cols = np.nonzero(mask)
    grad = np.zeros_like(full)
    grad[layer.pattern.to_scipy().tocoo().row, layer.pattern.indices] = layer.kernel.grad
    np.testing.assert_allclose(grad[rows, cols], full[rows, cols], rtol=1e-12, atol=1e-12)
    assert not grad[~mask].any()                          # pruned weights get no gradient


def test_sparse_and_masked_paths_agree_and_pruned_weights_stay_zero(monkeypatch):
    from wsekern.nn import Input, Sequential, layers, utils
    from wsekern.nn.layers import core

    def train(masked):
        if masked:
            monkeypatch.setattr(core.sparse_dense_kernels, "sparse_pays", lambda P, b: False)
        utils.set_random_seed(0)
        model = Sequential([Input(shape=(30,)),
                            layers.Dense(40, activation="relu", sparsity=0.9),
                            layers.Dense(3, activation="softmax")])
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        rng = np.random.default_rng(0)
        x = rng.standard_normal((64, 30)).astype(np.float32)
        y = rng.integers(0, 3, 64)
        model.fit(x, y, batch_size=16, epochs=2, verbose=0, shuffle=False)
        monkeypatch.undo()
        return model
    sparse, masked = train(False), train(True)
    first = sparse.layers[0]
    assert not first.get_weights()[0][~first.mask].any()
    for a, b in zip(sparse.get_weights(), masked.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_every_simd_path_matches_numpy():
    """Each SIMD path this CPU runs (WSEKERN_SIMD, set before import: a child process)."""
    from wsekern.simd_path import simd_available
    code = textwrap.dedent("""
        import numpy as np, scipy.sparse as sps
        from scipy.special import erf
        from wsekern import pack, sparse_dense as sd
        for dtype in (np.float32, np.float64):
            W = sps.random(70, 45, density=0.15, random_state=1, format="csr", dtype=dtype)
            P, Wd = pack(W), W.toarray().astype(np.float64)
            rng = np.random.default_rng(0)
            for B in (1, 7, 33, 300):
                Xt = rng.standard_normal((70, B)).astype(dtype)
                Gt = rng.standard_normal((45, B)).astype(dtype)
                tol = 1e-4 if dtype == np.float32 else 1e-12
                assert np.allclose(sd.times_wt(P, Xt), Wd.T @ Xt, rtol=tol, atol=tol)
                assert np.allclose(sd.times_w(P, Gt), Wd @ Gt, rtol=tol, atol=tol)
                rows = np.repeat(np.arange(70), np.diff(P.indptr))
                full = Xt.astype(np.float64) @ Gt.T
                assert np.allclose(sd.pattern_grad(P, Xt, Gt), full[rows, P.indices],
                                   rtol=tol, atol=tol)
            # the fused forward (bias + GELU) and the tiled, scaled transposes
            tol = 2e-5 if dtype == np.float32 else 1e-12
            b = rng.standard_normal(45).astype(dtype)
            z = Wd.T @ Xt + b[:, None]
            phi = 0.5 * (1 + erf(z / np.sqrt(2)))
            y, d = sd.forward(P, Xt, b, activation="gelu")
            assert np.allclose(y, z * phi, rtol=tol, atol=tol)
            assert np.allclose(d, phi + z * np.exp(-z * z / 2) / np.sqrt(2 * np.pi),
                               rtol=tol, atol=tol)
            for shape in ((64, 40), (37, 131), (256, 16)):
                a = rng.standard_normal(shape).astype(dtype)
                s = rng.standard_normal(shape[::-1]).astype(dtype)
                t, r = sd.transpose(a, scale=s, row_sums=True)
                assert np.allclose(t, a.T * s, rtol=tol, atol=tol)
                assert np.allclose(r, (a.T * s).sum(1), rtol=tol, atol=10 * tol)
        print("ok")
    """)
    for path in simd_available():
        env = dict(os.environ, WSEKERN_SIMD=path)
        run = run_in_child(code, env=env)
        assert run.returncode == 0 and run.stdout.strip() == "ok", (path, run.stderr[-2000:])


@pytest.mark.parametrize("activation", [None, "gelu", "relu"])     # fused in the node
@pytest.mark.parametrize("where", ["x", "g"])
def test_a_nan_reaches_the_same_outputs_on_both_paths(monkeypatch, where, activation):
    """Which path runs is the cost table's choice; the answer must not be: a NaN in x (or
    in the output gradient) reaches only what a stored weight connects it to."""
    from wsekern.nn import layers as L
    from wsekern.nn import utils
    from wsekern.nn.layers import core
    from wsekern.nn.tensor import Tensor

    weights = []

    def step(masked):
        with monkeypatch.context() as m:
            m.setattr(core.sparse_dense_kernels, "sparse_pays", lambda P, b: not masked)
            utils.set_random_seed(1)
            layer = L.Dense(13, activation=activation, sparsity=0.8, dtype="float64")
            layer.build((None, 21))
            xv = np.random.default_rng(4).standard_normal((6, 21))
            w = np.random.default_rng(5).standard_normal((6, 13))
            if where == "x":
                xv[2, 7] = np.nan
            else:
                w[3, 5] = np.nan
            x = Tensor(xv, requires_grad=True)
            y = layer(x)
            weights.append(layer.get_weights())
            (y * Tensor(w)).sum().backward()
            return y.data, x.grad, layer.kernel.grad
    for a, b in zip(step(False), step(True)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)       # NaNs in the same places
    y, dx, _ = step(False)
    assert 0 < np.isnan(y if where == "x" else dx).sum() < (y if where == "x" else dx).shape[1]
    if where == "x":
        # a NaN in x sends every path to the sparse step (the masked GEMM would spread
        # it), so the two steps above are one: hold it against scipy.sparse, which never
        # multiplies an unstored weight
        W, b = weights[-1][0], weights[-1][1]
        xv = np.random.default_rng(4).standard_normal((6, 21))
        xv[2, 7] = np.nan
        z = (sps.csr_array(W).T @ xv.T).T + b
        ref = {None: z, "relu": np.maximum(z, 0), "gelu": None}[activation]
        if ref is None:
            from scipy.special import erf
            ref = z * 0.5 * (1 + erf(z / np.sqrt(2)))
        np.testing.assert_allclose(y, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("pays", [False, True])
def test_a_nan_in_a_float64_input_to_a_float32_layer_meets_no_pruned_weight(monkeypatch,
                                                                            pays):
    """float64 x into a float32 sparse Dense takes the masked path (promoted as the dense
    layer promotes); a NaN there was multiplied by the pruned weights' zeros and reached
    every output of its row."""
    from wsekern.nn import layers as L
    from wsekern.nn.layers import core
    monkeypatch.setattr(core.sparse_dense_kernels, "sparse_pays", lambda P, b: pays)
    layer = L.Dense(12, sparsity=0.8)
    x = np.random.default_rng(0).standard_normal((5, 20))
    x[1, 3] = np.nan
    y = layer(x).data
    W, b = layer.get_weights()[:2]
    assert y.dtype == np.float64
    ref = (sps.csr_array(W.astype(np.float64)).T @ x.T).T + b
    np.testing.assert_allclose(y, ref, rtol=1e-6, atol=1e-6)
    assert np.isnan(y[1]).sum() == (W[3] != 0).sum() < 12


@pytest.mark.parametrize("pays", [False, True])
def test_float64_input_is_promoted_as_the_dense_layer_promotes_it(monkeypatch, pays):
    from wsekern.nn import layers as L
    from wsekern.nn.layers import core
    monkeypatch.setattr(core.sparse_dense_kernels, "sparse_pays", lambda P, b: pays)
    sparse, dense = L.Dense(32, sparsity=0.9), L.Dense(32)
    x = np.random.default_rng(0).standard_normal((128, 64))          # float64
    y = sparse(x)
    assert y.dtype == dense(x).dtype == np.float64
    np.testing.assert_allclose(y.data, x @ sparse.get_weights()[0] + sparse.get_weights()[1],
                               rtol=1e-12)
