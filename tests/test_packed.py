"""PackedSparse: layout, conversions, and in-place value updates."""
import numpy as np
import pytest
import scipy.sparse as sps
from conftest import assert_refused_in_child, random_csr, tol

import wsekern


def test_pack_properties(index_dtype):
    W = random_csr(30, 20, 0.25, np.float32, index_dtype)
    P = wsekern.pack(W)
    assert P.shape == (30, 20) and P.nnz == W.nnz and P.dtype == np.float32
    assert P.indices.dtype == np.int32          # narrowest index that fits
    assert P.data.ctypes.data % 64 == 0         # aligned values
    np.testing.assert_array_equal(P.to_scipy().toarray(), W.toarray())
    assert isinstance(P.to_scipy(), sps.csr_array)
    assert "30x20" in repr(P)


def test_pack_sums_duplicates_and_sorts():
    W = sps.coo_array((np.array([1.0, 2.0, 3.0]), (np.array([0, 0, 1]), np.array([2, 2, 0]))),
                      shape=(2, 3))
    P = wsekern.pack(W)
    assert P.nnz == 2
    np.testing.assert_array_equal(P.toarray(), [[0, 0, 3], [3, 0, 0]])


def test_pack_dense_drops_zeros_and_dtype_override():
    W = np.array([[0.0, 1.0], [2.0, 0.0]])
    P = wsekern.pack(W, dtype=np.float32)
    assert P.nnz == 2 and P.dtype == np.float32
    assert wsekern.pack(P) is P


def test_set_values_in_place_keeps_pattern_and_updates_transpose():
    W = random_csr(40, 25, 0.3, seed=2)
    P = wsekern.pack(W)
    X = np.random.default_rng(0).standard_normal((40, 3))
    wsekern.spmm(P, X, transpose=True)           # builds and caches the transpose
    new = np.random.default_rng(1).standard_normal(P.nnz)
    indices_before = P.indices.copy()
    P.set_values(new)
    np.testing.assert_array_equal(P.indices, indices_before)
    W2 = sps.csr_array((new, P.indices, P.indptr), shape=P.shape)
    np.testing.assert_allclose(wsekern.spmm(P, np.ones((25, 2))), W2 @ np.ones((25, 2)))
    np.testing.assert_allclose(wsekern.spmm(P, X, transpose=True), W2.T @ X, **tol(np.float64))


def test_set_values_from_dense_takes_pattern_entries():
    W = random_csr(10, 8, 0.3, seed=3)
    P = wsekern.pack(W)
    dense = np.arange(80.0).reshape(10, 8)
    P.set_values(dense)
    np.testing.assert_array_equal(P.toarray(), dense * (W.toarray() != 0))


def test_transpose_updates_flow_back():
    P = wsekern.pack(random_csr(10, 8, 0.3, seed=3))
    T = P.T
    T.set_values(np.arange(T.nnz, dtype=float))
    np.testing.assert_array_equal(P.toarray(), T.toarray().T)


def test_data_is_read_only():
    P = wsekern.pack(random_csr(10, 8, 0.3, seed=3))
    with pytest.raises(ValueError):
        P.data[0] = 1.0
    for part in (P.data, P.indices, P.indptr):       # and the flag cannot be set back
        for view in (part, part.base):
            with pytest.raises((ValueError, TypeError, AttributeError)):
                view.flags.writeable = True
    np.testing.assert_array_equal(P.data, P.to_scipy().data)


def test_nan_weight_updates_refresh_the_finite_flag():
    P = wsekern.pack(random_csr(20, 30, 0.3, seed=1))
    X = np.random.default_rng(0).standard_normal((30, 4))
    X[::2] = 0
    assert P.all_finite
    vals = P.data.copy()
    vals[0] = np.inf
    P.set_values(vals)
    assert not P.all_finite
    expected = P.to_scipy() @ X
    np.testing.assert_array_equal(np.isnan(wsekern.spmm(P, X)), np.isnan(expected))


def test_absurd_shapes_are_refused_by_name_and_a_huge_transpose_is_estimated_first():
    """A dimension of 2**63 gave Cython's bare OverflowError; a valid 2**40-column matrix
    was accepted, then its transpose asked SciPy for 8 TiB of row pointers. Run in a
    child with capped memory, so a regression fails instead of swapping."""
    assert_refused_in_child("""
        import numpy as np
        from wsekern import PackedSparse
        one = (np.ones(1), np.zeros(1, np.int64), np.array([0, 1], np.int64))
        wide = PackedSparse(*one, (1, 2**40))           # valid: one row, one nonzero
        assert wide.nnz == 1 and wide.shape == (1, 2**40)
        cases = [lambda: PackedSparse(*one, (1, 2**63)),
                 lambda: PackedSparse(*one, (2**64, 1)),
                 lambda: wide.T]
    """, 3, (ValueError, MemoryError), ("2**63", "received", "GiB"), limit_gb=4)


# -- the transpose refreshed by set_values' native pass (copy and gather in one call) ------
def _transpose_matches(P):
    """P's cached transpose holds exactly P's values, transposed (bit for bit)."""
    T = P._transpose[0]
    np.testing.assert_array_equal(T.toarray(), P.toarray().T)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("source", ["same", "other_dtype", "strided", "ints", "dense",
                                    "own_data", "transpose_data"])
def test_set_values_refreshes_the_cached_transpose_from_any_source(dtype, source):
    rng = np.random.default_rng(5)
    P = wsekern.pack(random_csr(37, 23, 0.3, dtype, seed=4))
    P.T                                            # cache the transpose
    assert P._transpose[1].dtype == np.int32       # the narrow permutation
    new = rng.standard_normal(2 * P.nnz)
    values = {"same": new[:P.nnz].astype(dtype),
              "other_dtype": new[:P.nnz].astype(np.float64 if dtype == np.float32
                                                 else np.float32),
              "strided": new.astype(dtype)[::2],
              "ints": np.arange(P.nnz),
              "dense": rng.standard_normal(P.shape).astype(dtype),
              "own_data": P.data,
              "transpose_data": P.T.data[::-1].copy()}[source]
    expected = None if source == "dense" else np.array(values)
    P.set_values(values)
    if source == "dense":
        mask = P.toarray() != 0
        np.testing.assert_array_equal(P.toarray()[mask], values[mask])
    else:
        np.testing.assert_array_equal(P.data, np.asarray(expected).astype(dtype))
    _transpose_matches(P)
    # written straight from the transpose's own values (the native pass declines: they
    # share memory with what it writes)
    P.set_values(P.T.data)
    _transpose_matches(P)


def test_copy_and_gather_declines_what_it_cannot_take():
    from wsekern import _optim
    n = 8
    v, d, o = (np.arange(n, dtype=np.float32) for _ in range(3))
    perm = np.arange(n, dtype=np.int32)[::-1].copy()
    assert _optim.copy_and_gather(v, d, perm, o) and np.array_equal(o, v[::-1])
    ro = d.copy()
    ro.flags.writeable = False
    for args in [(v, d, perm.astype(np.int16), o), (v, d, perm[:-1], o),
                 (v.astype(np.float64), d, perm, o), (v, d, perm, d), (v, d, perm, v),
                 (v, ro, perm, o), (v, d, perm, o[::-1]), (v, d, perm, [0.0] * n),
                 (v, d[:4], perm[:4], d[4:]), (v.astype(">f4"), d, perm, o)]:
        assert _optim.copy_and_gather(*args) is False


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
def test_a_sparse_dense_layers_transpose_matches_its_kernel_after_every_update(optimizer):
    """Trained steps (the forward refreshes the packed kernel and its transpose from the
    variable), with the pruning mask changed half way: after each step the packed values
    are the variable's and the cached transpose is their exact transpose."""
    from wsekern import nn
    from wsekern.nn import layers as L
    rng = np.random.default_rng(0)
    opt = {"sgd": lambda: nn.optimizers.SGD(0.05),
           "momentum": lambda: nn.optimizers.SGD(0.05, momentum=0.9),
           "adam": lambda: nn.optimizers.Adam(0.01)}[optimizer]()
    # big enough that the sparse step pays (it multiplies by the cached transpose)
    model = nn.Sequential([L.Dense(256, activation="relu", input_shape=(128,), sparsity=0.9),
                           L.Dense(256, activation="relu", sparsity=0.9), L.Dense(3)])
    model.compile(optimizer=opt, loss="sparse_categorical_crossentropy")
    x = rng.standard_normal((64, 128)).astype(np.float32)
    y = rng.integers(0, 3, 64)
    sparse = [layer for layer in model.layers if layer.pattern is not None]
    for step in range(6):
        if step == 3:                               # new masks: new patterns, new transposes
            for layer in sparse:
                layer.set_sparsity(0.8)
            model.compile(optimizer=nn.optimizers.Adam(0.01),
                          loss="sparse_categorical_crossentropy")
        model.train_on_batch(x, y)
        for layer in sparse:
            P = layer.pattern
            assert P._transpose is not None         # the forward used it
            # the forward ran before the update: refresh from the updated variable
            P.set_values(layer.kernel.data)
            np.testing.assert_array_equal(P.data, layer.kernel.data)
            _transpose_matches(P)
            kernel = layer.get_weights()[0]
            np.testing.assert_array_equal(P.T.toarray(), kernel.T)
