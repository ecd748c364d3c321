"""The sparse step's big outputs come from kept buffers (wsekern.sparse_dense._empty): a
buffer is handed out again only once no array refers to it, results stay those of NumPy,
the owner an output's transpose is registered against still dies with the output, and a
sparse model trains to the same weights with the buffers as without them."""
import gc
import weakref

import numpy as np
import pytest
import scipy.sparse as sps

from wsekern import pack
from wsekern import sparse_dense as sd
from wsekern.nn.layers import transposes

# 256 x 512 float32 = 512 KiB: above POOL_MIN_BYTES
K, N, B = 96, 256, 512


@pytest.fixture(autouse=True)
def _fresh_pool():
    sd.release_buffers()
    yield
    sd.release_buffers()


def _kernel(seed=0, dtype=np.float32):
    W = sps.random(K, N, density=0.1, random_state=seed, format="csr", dtype=np.float64)
    W.data -= 0.5
    P = pack(W.astype(dtype))
    return P, P.toarray().astype(np.float64)


def _address(a):
    return a.__array_interface__["data"][0]


def test_a_dropped_output_is_reused_and_results_match_numpy():
    P, Wd = _kernel()
    rng = np.random.default_rng(1)
    addresses = set()
    for step in range(4):
        Xt = rng.standard_normal((K, B)).astype(np.float32)
        Y, Yt, _ = sd.forward_batch_major(P, Xt)
        ref = Wd.T @ Xt.astype(np.float64)
        np.testing.assert_allclose(Yt, ref, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(Y, ref.T, rtol=1e-4, atol=1e-4)
        assert Y.flags.c_contiguous and Y.flags.writeable and Y.shape == (B, N)
        assert _address(Y) % 64 == 0 and _address(Yt) % 64 == 0
        addresses.add((_address(Y), _address(Yt)))
        del Y, Yt
    assert len(addresses) == 1                       # every step on the same two buffers


def test_an_output_still_referred_to_is_never_handed_out_again():
    """Kept whole, as a view, or only through its transpose's reshape: its values do not
    change while later calls of the same shape run."""
    P, Wd = _kernel()
    rng = np.random.default_rng(2)
    Xt = rng.standard_normal((K, B)).astype(np.float32)
    Y, Yt, _ = sd.forward_batch_major(P, Xt)
    view = Yt[3:, ::2]
    reshaped = Y.reshape(-1)
    saved = Y.copy(), view.copy()
    del Yt
    held = []
    for _ in range(3):
        Xt2 = rng.standard_normal((K, B)).astype(np.float32)
        held.append(sd.forward_batch_major(P, Xt2))
        held.append(sd.transpose(np.ones((N, B), np.float32)))
        held.append(sd.times_w_batch_major(P, rng.standard_normal((N, B)).astype(np.float32)))
    np.testing.assert_array_equal(Y, saved[0])
    np.testing.assert_array_equal(view, saved[1])
    np.testing.assert_array_equal(reshaped, saved[0].reshape(-1))
    mine = {_address(Y), _address(view.base if view.base is not None else view)}
    for item in held:
        for a in (item if isinstance(item, tuple) else (item,)):
            if a is not None:
                assert _address(a) not in mine


def test_the_owner_of_a_kept_output_dies_with_its_last_view():
    """The transposes the sparse layers hand each other forget an output when the array
    owning its memory dies: for a kept buffer that owner must still be the output, not
    the buffer."""
    P, _ = _kernel()
    Xt = np.random.default_rng(3).standard_normal((K, B)).astype(np.float32)
    Y, Yt, _ = sd.forward_batch_major(P, Xt)
    view = Y.reshape(B, N)
    ref = weakref.ref(transposes._owner(view))
    del Y, Yt
    gc.collect()
    assert ref() is not None
    del view
    gc.collect()
    assert ref() is None


def _kept():
    return sum(len(entries) for entries in sd._pool.values())


def test_small_outputs_and_outputs_past_the_cap_are_not_kept(monkeypatch):
    P, Wd = _kernel()
    small = sd.transpose(np.ones((8, 8), np.float32))
    assert _kept() == 0 and _address(small) % 64 == 0
    np.testing.assert_array_equal(small, np.ones((8, 8)))
    monkeypatch.setattr(sd, "POOL_MAX_BYTES", 0)
    Xt = np.random.default_rng(4).standard_normal((K, B)).astype(np.float32)
    Y, Yt, _ = sd.forward_batch_major(P, Xt)
    assert _kept() == 0
    assert _address(Y) % 64 == 0 and _address(Yt) % 64 == 0
    np.testing.assert_allclose(Yt, Wd.T @ Xt.astype(np.float64), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(Y, Yt.T, rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("batch", [1, 3, 32, 33, 512])
def test_every_product_output_starts_on_64_bytes(dtype, batch):
    """Below the pool's sizes too (malloc's blocks start on 16 bytes): the sparse MLP's
    SDDMM ran 20% slower on operands that did not, at random from one model to the next.
    Each output, many times over (a 16-byte-aligned allocator passes one by luck), and
    the products still NumPy's."""
    P, Wd = _kernel(7, dtype)
    rng = np.random.default_rng(batch)
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    held = []
    for _ in range(6):
        Xt = rng.standard_normal((K, batch)).astype(dtype)
        G = rng.standard_normal((batch, N)).astype(dtype)
        Y, Yt, D = sd.forward_batch_major(P, Xt, activation="relu")
        Gt = sd.transpose(G)               # batch 1: G.T is G's memory, not an output
        Gs, sums = sd.transpose(G, scale=D, row_sums=True)
        dX, dXt = sd.times_w_batch_major(P, Gt)
        Z = sd.times_wt(P, Xt)
        for a in (Y, Yt, D, Gt, Gs, dX, dXt, Z):
            assert a.dtype == dtype and a.flags.c_contiguous and a.flags.writeable
            if not np.shares_memory(a, G):
                assert _address(a) % 64 == 0, (a.shape, _address(a) % 64)
        Zr = Wd.T @ Xt.astype(np.float64)
        np.testing.assert_allclose(Z, Zr, **tol)
        np.testing.assert_allclose(Yt, np.maximum(Zr, 0), **tol)
        np.testing.assert_allclose(Y, np.maximum(Zr, 0).T, **tol)
        np.testing.assert_array_equal(D, (Zr > 0).astype(dtype))
        np.testing.assert_array_equal(Gt, G.T)
        np.testing.assert_allclose(Gs, G.T * D, **tol)
        np.testing.assert_allclose(sums, (G.T * D).sum(axis=1), **tol)
        np.testing.assert_allclose(dXt, Wd @ G.T.astype(np.float64), **tol)
        np.testing.assert_allclose(dX, (Wd @ G.T.astype(np.float64)).T, **tol)
        held.append((Y, Yt, D, Gt, Gs, dX, dXt, Z))


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int8, np.complex128,
                                   np.dtype("V3"), np.dtype([("a", "f4"), ("b", "u1")])])
@pytest.mark.parametrize("shape", [(784, 32), (1024, 32), (7, 9), (5,), (1,), (0, 5), (3, 0)])
def test_empty_gives_the_shape_and_dtype_asked_64_byte_aligned(dtype, shape):
    """Item sizes that do not divide 64 (3, 5 bytes) cannot all start on 64 bytes: those
    are plain np.empty arrays; a zero-size array has no bytes to align."""
    dtype = np.dtype(dtype)
    held = [sd._empty(shape, dtype) for _ in range(12)]
    for a in held:
        assert a.shape == shape and a.dtype == dtype
        assert a.flags.c_contiguous and a.flags.writeable
        if a.size and 64 % dtype.itemsize == 0:
            assert _address(a) % 64 == 0
    if held[0].size:
        for i, a in enumerate(held):             # no two share memory
            a.view(np.uint8)[...] = i
        for i, a in enumerate(held):
            assert (a.view(np.uint8) == i).all()


def test_the_owner_of_a_small_output_dies_with_its_last_view():
    """A small output is a view of a fresh, larger array (to start on 64 bytes): the owner
    the sparse layers' transposes are registered against must die with the output."""
    P, _ = _kernel()
    Xt = np.random.default_rng(8).standard_normal((K, 4)).astype(np.float32)
    Y, Yt, _ = sd.forward_batch_major(P, Xt)
    assert Y.nbytes < sd.POOL_MIN_BYTES
    view = Y.reshape(4, N)
    ref = weakref.ref(transposes._owner(view))
    del Y, Yt
    gc.collect()
    assert ref() is not None
    del view
    gc.collect()
    assert ref() is None


def test_data_offset_is_the_address_modulo_align():
    from wsekern import _sparse_dense
    raw = np.empty(100, np.uint8)
    for start in range(8):
        for align in (1, 2, 16, 64, 4096):
            assert _sparse_dense.data_offset(raw[start:], align) == \
                (_address(raw) + start) % align
    for align in (0, -64):
        with pytest.raises(ValueError, match=f"align must be > 0; received {align}"):
            _sparse_dense.data_offset(raw, align)
    with pytest.raises(TypeError):
        _sparse_dense.data_offset([1, 2], 64)


def test_release_leaves_live_outputs_alone():
    P, Wd = _kernel()
    Xt = np.random.default_rng(5).standard_normal((K, B)).astype(np.float32)
    Y, Yt, _ = sd.forward_batch_major(P, Xt)
    saved = Yt.copy()
    sd.release_buffers()
    for _ in range(2):
        sd.forward_batch_major(P, 2 * Xt)
    np.testing.assert_array_equal(Yt, saved)
    np.testing.assert_allclose(Y.T, Wd.T @ Xt.astype(np.float64), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_training_with_the_buffers_gives_the_weights_of_training_without(monkeypatch,
                                                                        activation):
    """Three steps of a sparse MLP whose activations are above POOL_MIN_BYTES: the same
    weights, bit for bit, as with every output a fresh array."""
    from wsekern import nn
    from wsekern.nn import layers as L
    from wsekern.nn import utils
    from wsekern.nn.layers import core
    monkeypatch.setattr(core.sparse_dense_kernels, "sparse_pays", lambda P, b: True)
    rng = np.random.default_rng(6)
    x = rng.standard_normal((512, 64)).astype(np.float32)
    y = rng.integers(0, 10, 512)

    def train(pool_min):
        monkeypatch.setattr(sd, "POOL_MIN_BYTES", pool_min)
        sd.release_buffers()
        transposes.clear()
        utils.set_random_seed(0)
        model = nn.Sequential([L.Input(shape=(64,)),
                               L.Dense(256, activation=activation, sparsity=0.8),
                               L.Dense(256, activation=activation, sparsity=0.8),
                               L.Dense(10)])
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        for _ in range(3):
            model.train_on_batch(x, y)
        return model.get_weights()

    with_buffers = train(sd.POOL_MIN_BYTES)
    assert sd._pool                                   # the buffers were used
    without = train(1 << 62)
    for a, b in zip(with_buffers, without):
        np.testing.assert_array_equal(a, b)


def test_threads_never_share_a_buffer():
    """Products run from several threads at once each get their own output: every result
    equals NumPy's while the others run."""
    import threading
    P, Wd = _kernel()
    errors = []

    def work(seed):
        rng = np.random.default_rng(seed)
        try:
            for _ in range(6):
                Xt = rng.standard_normal((K, B)).astype(np.float32)
                Y, Yt, _ = sd.forward_batch_major(P, Xt, n_threads=1)
                ref = Wd.T @ Xt.astype(np.float64)
                np.testing.assert_allclose(Yt, ref, rtol=1e-4, atol=1e-4)
                np.testing.assert_allclose(Y, ref.T, rtol=1e-4, atol=1e-4)
        except Exception as exc:                    # noqa: BLE001  (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
