"""The sparse Dense step written batch-major (wsekern.sparse_dense.forward_batch_major,
times_w_batch_major, scale_rows) against NumPy, and the transposes consecutive sparse
layers hand each other (wsekern.nn.layers.transposes): same answers as transposing anew."""
import sys
import textwrap

import numpy as np
import pytest
import scipy.sparse as sps
from conftest import assert_refused_in_child

from wsekern import pack
from wsekern import sparse_dense as sd
from wsekern.nn.layers import transposes


def _kernel(K, N, density, dtype, seed=0):
    W = sps.random(K, N, density=density, random_state=seed, format="csr", dtype=np.float64)
    W.data -= 0.5
    P = pack(W.astype(dtype))
    return P, P.toarray()


def _gelu(z):
    from scipy.special import erf
    phi = 0.5 * (1 + erf(z / np.sqrt(2)))
    return z * phi, phi + z * np.exp(-0.5 * z * z) / np.sqrt(2 * np.pi)


# odd shapes, more rows than one band (16), a batch wider than one column block, empty
SHAPES = [(7, 5, 3), (64, 33, 17), (130, 70, 300), (1, 1, 1), (9, 4, 0), (0, 6, 5),
          (5, 0, 4)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("K,N,B", SHAPES)
@pytest.mark.parametrize("density", [0.0, 0.15, 1.0])
@pytest.mark.parametrize("activation", [None, "gelu", "relu"])
def test_forward_batch_major_matches_numpy(dtype, K, N, B, density, activation):
    P, Wd = _kernel(K, N, density, dtype)
    rng = np.random.default_rng(1)
    Xt = rng.standard_normal((K, B)).astype(dtype)
    bias = rng.standard_normal(N).astype(dtype)
    y, yt, d = sd.forward_batch_major(P, Xt, bias, activation)
    z = Xt.T.astype(np.float64) @ Wd + bias                                   # (B, N)
    ref, dref = {None: (z, None), "gelu": _gelu(z),
                 "relu": (np.maximum(z, 0), (z > 0).astype(float))}[activation]
    tol = 1e-4 if dtype == np.float32 else 1e-12
    assert y.dtype == yt.dtype == dtype and y.shape == (B, N) and yt.shape == (N, B)
    assert y.flags.c_contiguous and yt.flags.c_contiguous
    np.testing.assert_allclose(y, ref, rtol=tol, atol=tol)
    np.testing.assert_array_equal(yt, y.T)
    if activation is None:
        assert d is None
    else:
        assert d.shape == (N, B) and d.dtype == dtype
        np.testing.assert_allclose(d, dref.T, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("K,N,B", SHAPES)
@pytest.mark.parametrize("density", [0.0, 0.15, 1.0])
def test_input_gradient_batch_major_matches_numpy(dtype, K, N, B, density):
    P, Wd = _kernel(K, N, density, dtype)
    Gt = np.random.default_rng(2).standard_normal((N, B)).astype(dtype)
    dx, dxt = sd.times_w_batch_major(P, Gt)
    tol = 1e-4 if dtype == np.float32 else 1e-12
    assert dx.dtype == dtype and dx.shape == (B, K) and dxt.shape == (K, B)
    np.testing.assert_allclose(dx, Gt.T.astype(np.float64) @ Wd.T, rtol=tol, atol=tol)
    np.testing.assert_array_equal(dxt, dx.T)


def test_batch_major_threads_and_column_blocks_cover_everything(monkeypatch):
    """Several column blocks (a small L2 budget) and two threads: every entry written."""
    import wsekern.sparse_dense as mod
    monkeypatch.setattr(mod, "column_block", lambda k, n, size: 16)
    P, Wd = _kernel(90, 50, 0.2, np.float32, seed=3)
    Xt = np.random.default_rng(3).standard_normal((90, 77)).astype(np.float32)
    for threads in (1, 2):
        y, yt, d = sd.forward_batch_major(P, Xt, None, "relu", n_threads=threads)
        z = Xt.T @ Wd
        np.testing.assert_allclose(y, np.maximum(z, 0), rtol=1e-4, atol=1e-4)
        np.testing.assert_array_equal(yt, y.T)
        np.testing.assert_array_equal(d, (z > 0).T)


def test_a_nan_of_x_reaches_only_the_outputs_its_stored_weights_connect():
    P, Wd = _kernel(20, 12, 0.2, np.float64, seed=4)
    Xt = np.random.default_rng(4).standard_normal((20, 6))
    Xt[3, 2] = np.nan
    y, yt, _ = sd.forward_batch_major(P, Xt)
    connected = Wd[3] != 0
    assert np.isnan(y[2, connected]).all()
    assert not np.isnan(np.delete(y, 2, axis=0)).any() and not np.isnan(y[2, ~connected]).any()
    dx, _ = sd.times_w_batch_major(P, np.where(np.isnan(yt), 0.0, yt))
    assert not np.isnan(dx).any()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(3, 5), (40, 300), (0, 4), (4, 0)])
def test_scale_rows_matches_numpy(dtype, shape):
    rng = np.random.default_rng(5)
    a = rng.standard_normal(shape).astype(dtype)
    s = rng.standard_normal(shape).astype(dtype)
    ref = a * s
    out, sums = sd.scale_rows(a, s, row_sums=True)
    assert out is a
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(out, ref, rtol=tol, atol=tol)
    np.testing.assert_allclose(sums, ref.sum(axis=1), rtol=tol, atol=10 * tol)
    with pytest.raises(ValueError, match="received"):
        sd.scale_rows(a, s[:, :-1] if shape[1] else s[:-1])
    with pytest.raises(ValueError, match="received"):
        sd.scale_rows(np.ones((4, 6), dtype)[:, ::2])               # not contiguous


def test_batch_major_entry_points_refuse_mis_sized_operands_in_a_child_process():
    """The Cython entry points check every operand's shape themselves (their loops trust
    them): a short one would read or write past its end. In a child: a crash fails."""
    code = textwrap.dedent("""
        import numpy as np
        import scipy.sparse as sps
        from wsekern import _sparse_dense as S
        W = sps.random(64, 32, density=0.3, format="csr", random_state=0)
        vals, cols, ptr = W.data, W.indices.astype(np.int32), W.indptr.astype(np.int32)
        X = np.ones((32, 512))
        out_t, out = np.empty((512, 64)), np.empty((64, 512))
        f = S.rows_times_dense_t
        bad_col = cols.copy()
        bad_col[-1] = 10**9
        bad_ptr = ptr.copy()
        bad_ptr[1] = 2**30
        cases = [
            lambda: f(vals, cols, ptr, X, np.empty((512, 63)), out),
            lambda: f(vals, cols, ptr, X, np.empty((511, 64)), out),
            lambda: f(vals, cols, ptr, np.ones((32, 100)), out_t, out),
            lambda: f(vals[:5], cols, ptr, X, out_t, out),
            lambda: f(vals, cols[:5], ptr, X, out_t, out),
            lambda: f(vals, cols, ptr + 1, X, out_t, out),
            lambda: f(vals, cols, ptr, X, out_t, out, 1, 0, np.ones(2)),
            lambda: f(vals, cols, ptr, X, out_t, out, 1, 0, None, np.ones((64, 5))),
            lambda: f(vals, cols, ptr, X, out_t, np.ones((3, 512))),
            lambda: f(vals, cols, np.zeros(0, dtype=np.int32), X, out_t, out),
            lambda: S.scale_rows(np.ones((4, 6)), np.ones((4, 5))),
            lambda: S.scale_rows(np.ones((4, 6)), None, np.ones(3)),
            # index values: the loops read X's row cols[p] and walk indptr unchecked
            lambda: f(vals, bad_col, ptr, X, out_t, out),
            lambda: f(vals, cols, bad_ptr, X, out_t, out),
            lambda: S.rows_times_dense(vals, bad_col, ptr, X, out),
            lambda: S.rows_times_dense(vals, cols, bad_ptr, X, out),
            lambda: S.rows_times_dense(vals, cols, ptr[:10], X, out),
        ]
    """)
    assert_refused_in_child(code, 17, errors=(ValueError,), needles=("received",))


# -- transposes handed between layers ----------------------------------------------------
def test_a_registered_transpose_is_found_through_views_only_while_its_owner_lives():
    transposes.clear()
    a = np.arange(12.0).reshape(3, 4)
    at = np.ascontiguousarray(a.T)
    transposes.register(a, at)
    assert transposes.find(a.reshape(1, 3, 4).reshape(3, 4)) is at      # the graph's views
    assert transposes.find(a.copy()) is None                           # other memory
    assert transposes.find(a[:, :2]) is None                           # another shape
    assert transposes.find(a, take=True) is None          # an output's is never taken
    transposes.register(a, at, gradient=True)
    assert transposes.find(a, take=True) is at and transposes.find(a, take=True) is None
    transposes.register(a, at)
    del a
    import gc
    gc.collect()
    assert not transposes._entries                                     # forgotten with it


def _two_sparse_layers(seed, activation, dtype="float32"):
    from wsekern.nn import layers as L
    from wsekern.nn import utils
    utils.set_random_seed(seed)
    a = L.Dense(24, activation=activation, sparsity=0.7, dtype=dtype)
    b = L.Dense(9, activation="relu", sparsity=0.6, dtype=dtype)
    a.build((None, 16))
    b.build((None, 24))
    return a, b


@pytest.mark.parametrize("activation", ["gelu", "relu", None])
def test_consecutive_sparse_layers_share_transposes_with_the_same_answers(monkeypatch,
                                                                         activation):
    """Layer b reads layer a's output transpose, and a's backward b's input-gradient
    transpose, from the hand-over; with it emptied before every lookup each transposes
    anew. Both give the same values and gradients, and the hand-over is used."""
    from wsekern.nn.layers import core
    from wsekern.nn.tensor import Tensor
    monkeypatch.setattr(core.sparse_dense_kernels, "sparse_pays", lambda P, b: True)
    xv = np.random.default_rng(6).standard_normal((2, 5, 16)).astype(np.float32)
    w = np.random.default_rng(7).standard_normal((2, 5, 9)).astype(np.float32)

    def step(share):
        a, b = _two_sparse_layers(3, activation)
        found = []
        real_find = transposes.find

        def find(arr, take=False):
            if not share:
                transposes.clear()
            hit = real_find(arr, take)
            found.append(hit is not None)
            return hit
        with monkeypatch.context() as m:
            m.setattr(transposes, "find", find)
            x = Tensor(xv, requires_grad=True)
            y = b(a(x, training=True), training=True)          # training: hand-overs on
            (y * Tensor(w)).sum().backward()
        return (y.data, x.grad, a.kernel.grad, a.bias.grad, b.kernel.grad), found
    shared, hits = step(True)
    fresh, misses = step(False)
    assert sum(hits) == 2 and not any(misses)        # b's forward, a's backward
    for s, f in zip(shared, fresh):
        assert s.dtype == np.float32
        np.testing.assert_array_equal(s, f)


def test_an_input_refilled_in_place_is_not_read_from_a_stale_transpose(monkeypatch):
    """A caller's batch array is never registered: refilling it between steps must give
    the new answer."""
    from wsekern.nn import layers as L
    from wsekern.nn.layers import core
    from wsekern.nn.tensor import Tensor
    monkeypatch.setattr(core.sparse_dense_kernels, "sparse_pays", lambda P, b: True)
    layer = L.Dense(8, sparsity=0.5)
    buf = np.ones((4, 6), dtype=np.float32)
    first = layer(Tensor(buf, requires_grad=True)).data.copy()
    buf[:] = 2
    second = layer(Tensor(buf, requires_grad=True)).data
    np.testing.assert_allclose(second, 2 * first - layer.get_weights()[1], rtol=1e-6)


def test_an_inference_output_edited_in_place_is_not_read_from_a_stale_transpose(monkeypatch):
    """predict_on_batch hands back the very array the layer wrote; a caller may edit it in
    place before feeding it to another sparse layer, so inference registers no transpose."""
    from wsekern import nn
    from wsekern.nn import layers as L
    from wsekern.nn.layers import core
    monkeypatch.setattr(core.sparse_dense_kernels, "sparse_pays", lambda P, b: True)
    enc = nn.Sequential([L.Input(shape=(64,)), L.Dense(64, activation="relu", sparsity=0.9)])
    dec = nn.Sequential([L.Input(shape=(64,)), L.Dense(32, sparsity=0.9)])
    x = np.random.default_rng(0).standard_normal((16, 64)).astype(np.float32)
    h = enc.predict_on_batch(x)
    assert np.abs(h).sum() > 0
    h *= 0
    np.testing.assert_array_equal(dec.predict_on_batch(h), dec.predict_on_batch(h.copy()))


def test_the_transpose_table_survives_threads():
    """Models run in threads share the table: no KeyError or 'dictionary changed size'
    from concurrent eviction, lookup and removal."""
    import threading
    errors = []

    def work(seed):
        rng = np.random.default_rng(seed)
        keep = []
        try:
            for i in range(3000):
                a = np.empty((2, int(rng.integers(1, 4))), np.float32)
                transposes.register(a, np.empty(a.shape[::-1], np.float32),
                                    gradient=bool(i % 2))
                keep.append(a)
                if len(keep) > 80:
                    keep.pop(int(rng.integers(0, len(keep))))
                transposes.find(keep[int(rng.integers(0, len(keep)))], take=bool(i % 3 == 0))
        except Exception as e:                     # noqa: BLE001 - any error fails the test
            errors.append(repr(e))

    threads = [threading.Thread(target=work, args=(s,)) for s in range(4)]
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)                   # switch often so the races show
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(old)
        transposes.clear()
    assert errors == []


def test_layers_reading_one_tensor_share_its_transpose_with_the_same_answers(monkeypatch):
    """q, k and v read one tensor: the first transposes it, the other two take that
    transpose (one transpose of x, not three); without the sharing the values and every
    gradient are the same. A new tensor over the same buffer, refilled in place, is
    transposed anew (found by the tensor, not its memory)."""
    from wsekern.nn import layers as L
    from wsekern.nn import utils
    from wsekern.nn.layers import core
    from wsekern.nn.tensor import Tensor
    monkeypatch.setattr(core.sparse_dense_kernels, "sparse_pays", lambda P, b: True)
    xv = np.random.default_rng(8).standard_normal((3, 4, 16)).astype(np.float32)
    utils.set_random_seed(2)
    qkv = [L.Dense(n, sparsity=0.7, dtype="float32") for n in (8, 8, 12)]
    for layer in qkv:
        layer.build((None, 16))
    real_transpose = core.sparse_dense_kernels.transpose

    def step(share, data=xv):
        calls = []

        def transpose(a, **kw):
            calls.append(a.shape)
            return real_transpose(a, **kw)
        with monkeypatch.context() as m:
            m.setattr(core.sparse_dense_kernels, "transpose", transpose)
            if not share:
                m.setattr(transposes, "shared_input", lambda x, shape: None)
            for layer in qkv:
                layer.kernel.grad = None
            x = Tensor(data, requires_grad=True)
            with transposes.reading_one_input():              # as the attention calls them
                ys = [layer(x, training=True) for layer in qkv]
            sum((y * y).sum() for y in ys).backward()
        x_transposes = sum(1 for s in calls if s == (12, 16))
        return [y.data for y in ys] + [x.grad] + [la.kernel.grad for la in qkv], x_transposes
    shared, n_shared = step(True)
    fresh, n_fresh = step(False)
    assert n_shared == 1 and n_fresh == 3
    for s, f in zip(shared, fresh):
        assert s.dtype == np.float32
        np.testing.assert_array_equal(s, f)
    buf = xv.copy()
    step(True, buf)
    buf *= -2                                         # refilled in place: a new tensor
    refilled, _ = step(True, buf)
    expect, _ = step(False, buf)
    for s, f in zip(refilled, expect):
        np.testing.assert_array_equal(s, f)


def test_a_tensor_changed_in_place_between_forwards_is_transposed_anew(monkeypatch):
    """The same Tensor object, its data refilled in place between two training forwards
    with no backward between (or inside and outside an attention's block): each forward
    reads the data it is given, never a transpose kept from before."""
    from wsekern.nn import layers as L
    from wsekern.nn.layers import core
    from wsekern.nn.tensor import Tensor
    monkeypatch.setattr(core.sparse_dense_kernels, "sparse_pays", lambda P, b: True)
    layer = L.Dense(24, sparsity=0.8, use_bias=False, dtype="float32")
    arr = np.random.default_rng(3).standard_normal((16, 32)).astype(np.float32)
    t = Tensor(arr)
    layer(Tensor(arr.copy()))                                           # builds it
    kernel = layer.get_weights()[0]
    for inside in (False, True):
        for fill in (1.0, -3.0):
            arr[...] = np.random.default_rng(int(5 + fill + 10 * inside)).standard_normal(arr.shape)
            if inside:
                with transposes.reading_one_input():
                    y = layer(t, training=True)
            else:
                y = layer(t, training=True)
            np.testing.assert_allclose(y.data, arr @ kernel, rtol=1e-5, atol=1e-5)
