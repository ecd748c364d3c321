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


def test_small_outputs_and_outputs_past_the_cap_are_plain_arrays(monkeypatch):
    P, Wd = _kernel()
    small = sd.transpose(np.ones((8, 8), np.float32))
    assert small.flags.owndata
    monkeypatch.setattr(sd, "POOL_MAX_BYTES", 0)
    Xt = np.random.default_rng(4).standard_normal((K, B)).astype(np.float32)
    Y, Yt, _ = sd.forward_batch_major(P, Xt)
    assert Y.flags.owndata and Yt.flags.owndata
    np.testing.assert_allclose(Yt, Wd.T @ Xt.astype(np.float64), rtol=1e-4, atol=1e-4)


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
