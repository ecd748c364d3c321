"""spmm against the dense NumPy reference, over dtypes, index dtypes, densities, formats and
threads."""
import numpy as np
import pytest
import scipy.sparse as sps
from conftest import random_csr, reference, run_in_child, tol

import wsekern


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("density", [0.0, 0.01, 0.1, 0.5, 1.0])
@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("n", [1, 7, 16, 33, 64, 200])
def test_csr_matches_dense_reference(dtype, density, n_threads, n, index_dtype):
    W = random_csr(67, 45, density, dtype, index_dtype, seed=n)
    X = np.random.default_rng(1).standard_normal((45, n)).astype(dtype)
    Y = wsekern.spmm(W, X, n_threads=n_threads)
    assert Y.dtype == dtype and Y.shape == (67, n)
    np.testing.assert_allclose(Y, reference(W, X), **tol(dtype))


@pytest.mark.parametrize("fmt", ["csr", "csc", "coo", "bsr", "lil", "dok", "dia"])
@pytest.mark.parametrize("transpose", [False, True])
def test_every_scipy_format(fmt, transpose):
    W = random_csr(40, 30, 0.2, np.float64, seed=3).asformat(fmt)
    X = np.random.default_rng(2).standard_normal((40 if transpose else 30, 9))
    Y = wsekern.spmm(W, X, transpose=transpose)
    np.testing.assert_allclose(Y, reference(W, X, transpose), **tol(np.float64))


def test_spmatrix_and_sparray_both_work():
    W = random_csr(20, 10, 0.3, seed=1)
    X = np.ones((10, 3))
    np.testing.assert_allclose(wsekern.spmm(sps.csr_matrix(W), X), reference(W, X))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("transpose", [False, True])
def test_packed_matches_reference_and_transpose(dtype, transpose, index_dtype):
    W = random_csr(120, 90, 0.1, dtype, index_dtype, seed=4)
    P = wsekern.pack(W)
    X = np.random.default_rng(0).standard_normal((120 if transpose else 90, 48)).astype(dtype)
    np.testing.assert_allclose(wsekern.spmm(P, X, transpose=transpose),
                               reference(W, X, transpose), **tol(dtype))


@pytest.mark.parametrize("density", [0.0, 0.05, 0.2, 0.6, 1.0])
@pytest.mark.parametrize("transpose", [False, True])
def test_dense_W_skips_its_zeros(density, transpose):
    W = random_csr(80, 70, density, seed=5).toarray()
    X = np.random.default_rng(0).standard_normal((80 if transpose else 70, 20))
    np.testing.assert_allclose(wsekern.spmm(W, X, transpose=transpose),
                               reference(W, X, transpose), **tol(np.float64))


def test_mixed_dtypes_promote_like_numpy():
    W = random_csr(30, 20, 0.3, np.float32, seed=1)
    X = np.random.default_rng(0).standard_normal((20, 5))
    Y = wsekern.spmm(W, X)
    assert Y.dtype == np.float64
    np.testing.assert_allclose(Y, reference(W, X), rtol=1e-6)
    assert wsekern.spmm(W.astype(np.float64), X.astype(np.float32)).dtype == np.float64


@pytest.mark.parametrize("order", ["C", "F"])
def test_fortran_and_strided_X(order):
    W = random_csr(50, 40, 0.2, seed=7)
    base = np.asarray(np.random.default_rng(0).standard_normal((80, 30)), order=order)
    X = base[::2, 1::3]          # non-contiguous view
    np.testing.assert_allclose(wsekern.spmm(W, X), reference(W, X), **tol(np.float64))


def test_vector_X_gives_vector():
    W = random_csr(50, 40, 0.2, seed=7)
    x = np.random.default_rng(0).standard_normal(40)
    y = wsekern.spmm(W, x)
    assert y.shape == (50,)
    np.testing.assert_allclose(y, W @ x, **tol(np.float64))


@pytest.mark.parametrize("shape", [(0, 5, 3), (5, 0, 3), (5, 4, 0), (0, 0, 0)])
def test_zero_size(shape):
    M, K, N = shape
    W = sps.csr_array((M, K))
    X = np.ones((K, N))
    Y = wsekern.spmm(W, X)
    assert Y.shape == (M, N)
    np.testing.assert_array_equal(Y, np.zeros((M, N)))
    assert wsekern.spmm(np.zeros((M, K)), X).shape == (M, N)
    assert wsekern.spmm(wsekern.pack(W), X).shape == (M, N)


def test_duplicates_are_summed_and_unsorted_indices_work(index_dtype):
    indptr = np.array([0, 4, 4, 7], dtype=index_dtype)
    indices = np.array([3, 0, 3, 1, 2, 2, 0], dtype=index_dtype)
    data = np.array([1.0, 2.0, 3.0, 4.0, 5.0, -1.0, 0.5])
    W = sps.csr_array((data, indices, indptr), shape=(3, 4))
    assert not W.has_canonical_format
    X = np.random.default_rng(0).standard_normal((4, 6))
    expected = np.zeros((3, 4))
    for i in range(3):
        for p in range(indptr[i], indptr[i + 1]):
            expected[i, indices[p]] += data[p]
    np.testing.assert_allclose(wsekern.spmm(W, X), expected @ X, **tol(np.float64))
    np.testing.assert_allclose(wsekern.spmm(wsekern.pack(W), X), expected @ X)
    coo = sps.coo_array((data, (np.repeat([0, 2], [4, 3]), indices)), shape=(3, 4))
    np.testing.assert_allclose(wsekern.spmm(coo, X), expected @ X, **tol(np.float64))


def test_out_argument():
    W = random_csr(30, 20, 0.3, seed=1)
    X = np.random.default_rng(0).standard_normal((20, 5))
    out = np.full((30, 5), np.nan)
    Y = wsekern.spmm(W, X, out=out)
    assert Y is out
    np.testing.assert_allclose(out, reference(W, X), **tol(np.float64))
    with pytest.raises(ValueError, match="out must be"):
        wsekern.spmm(W, X, out=np.empty((30, 5), dtype=np.float32))
    with pytest.raises(ValueError, match="out must be"):
        wsekern.spmm(W, X, out=np.empty((5, 30)).T)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_column_blocks_match_reference(dtype, n_threads, index_dtype, monkeypatch):
    """A small L2 makes the dispatcher run the CSR kernel over X's columns in blocks."""
    from wsekern import kernels
    monkeypatch.setattr(kernels, "l2_bytes", lambda: 8192)
    W = random_csr(70, 300, 0.1, dtype, index_dtype)
    X = np.random.default_rng(0).standard_normal((300, 133)).astype(dtype)
    assert 0 < kernels.column_block(300, 133, X.itemsize) < 133
    np.testing.assert_allclose(wsekern.spmm(W, X, n_threads=n_threads), reference(W, X),
                               **tol(dtype))
    X[np.random.default_rng(1).random(300) < 0.5] = 0
    assert wsekern.spmm_path(W, X) == "csr-skip-rows"
    np.testing.assert_allclose(wsekern.spmm(W, X, n_threads=n_threads), reference(W, X),
                               **tol(dtype))


def test_column_block_follows_the_l2_size(monkeypatch):
    """Blocks keep K rows of a block in 1/4 of the L2, in whole widest tiles of the path."""
    from wsekern import kernels
    monkeypatch.setattr(kernels, "l2_bytes", lambda: 512 * 1024)
    avx2 = kernels.TILE_BYTES["avx2"]                        # 64 fp32 or 32 fp64 columns
    assert kernels.column_block(1024, 256, 4, avx2) == 64   # 32 fit: one tile
    assert kernels.column_block(256, 256, 4, avx2) == 128   # 128 fit
    assert kernels.column_block(1024, 256, 8, avx2) == 32
    assert kernels.column_block(1024, 64, 4, avx2) == 0     # one tile covers X: no blocks
    assert kernels.column_block(1024, 256, 8, kernels.TILE_BYTES["baseline"]) == 16
    monkeypatch.setattr(kernels, "l2_bytes", lambda: 2 * 1024 * 1024)
    assert kernels.column_block(1024, 1024, 4, avx2) == 128
    assert 0 < kernels.column_block(1024, 1024, 4) <= 1024   # the path in use


def test_blocked_skip_rows_with_very_few_nonzeros_in_a_child():
    """W with 1-3 nonzeros on the blocked csr-skip-rows path: the per-row counts buffer was
    sized by the nonzeros, not the rows, and the kernel wrote past it (a crash at exit)."""
    import textwrap
    code = textwrap.dedent("""
        import numpy as np, scipy.sparse as sps, wsekern
        from wsekern import kernels
        kernels.l2_bytes = lambda: 8192
        rng = np.random.default_rng(0)
        for nnz in (1, 2, 3):
            for dtype in (np.float32, np.float64):
                rows, cols = rng.integers(0, 300, nnz), rng.integers(0, 200, nnz)
                W = sps.csr_matrix((np.ones(nnz), (rows, cols)), shape=(300, 200), dtype=dtype)
                X = rng.standard_normal((200, 133)).astype(dtype)
                X[1::2] = 0
                X[cols[0]] = 1.0                     # a live row for the stored weight
                assert wsekern.spmm_path(W, X) == "csr-skip-rows"
                for _ in range(20):
                    got = wsekern.spmm(W, X)
                np.testing.assert_allclose(got, W.toarray().astype(np.float64) @ X, rtol=1e-6)
        print("ok")
    """)
    done = run_in_child(code)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_scan_rows_counts_and_all_finite_match_numpy(dtype):
    """The one pass over X the dispatcher decides from (rows, finiteness, exact nonzero
    count, which replaced a density sample) and the finiteness check of W's values."""
    from wsekern import _spmm
    rng = np.random.default_rng(3)
    for K, N in ((1, 1), (7, 3), (64, 33), (200, 17)):
        X = (rng.standard_normal((K, N)) * (rng.random((K, N)) < 0.3)).astype(dtype)
        X[rng.random(K) < 0.3] = 0
        alive = np.empty(K, np.uint8)
        kept, finite, nnz = _spmm.scan_rows(X, alive)
        assert (kept, finite, nnz) == ((X != 0).any(1).sum(), True, np.count_nonzero(X))
        np.testing.assert_array_equal(alive, (X != 0).any(1))
        for special in (np.nan, np.inf, -np.inf):
            Y = X.copy()
            Y[rng.integers(K), rng.integers(N)] = special
            assert _spmm.scan_rows(Y, alive)[1] is False
            flat = Y.ravel().copy()
            assert _spmm.all_finite(flat) is False
            assert _spmm.all_finite(np.nan_to_num(flat, nan=1.0, posinf=2.0,
                                                  neginf=3.0)) is True
    assert _spmm.all_finite(np.empty(0, dtype)) is True


@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
def test_check_csr_range_edges(index_dtype):
    """The vectorised range check in the index type: the largest int32 index is valid for
    a wider matrix, and out of range for one exactly that wide; negatives always fail."""
    from wsekern import _spmm
    big = 2**31 - 1
    indptr = np.array([0, 3], index_dtype)
    indices = np.array([0, 5, big], index_dtype)
    assert _spmm.check_csr(indptr, indices, big + 6) is None
    assert f"column index {big} at position 2" in _spmm.check_csr(indptr, indices, big)
    indices[1] = -1
    assert "column index -1 at position 1" in _spmm.check_csr(indptr, indices, big + 6)
    assert "column index 0 at position 0" in _spmm.check_csr(indptr, indices[:3] * 0, 0)


def test_a_shape_mismatch_names_both_sides():
    """The message said "W with 4 columns to match X with 4 rows" for an X of 5 rows."""
    with pytest.raises(ValueError, match=r"W with 4 columns to match X's rows \(5\)"):
        wsekern.spmm(np.ones((3, 4)), np.ones((5, 2)))
    with pytest.raises(ValueError, match=r"W.T with 3 columns to match X's rows \(4\)"):
        wsekern.spmm(np.ones((3, 4)), np.ones((4, 2)), transpose=True)


@pytest.mark.parametrize("bad", [0, "4", 2.5, [2], True])
def test_bad_thread_counts_are_refused_on_every_path(bad):
    """The BLAS path (dense W) accepted them: only the CSR path asked resolve_threads."""
    W = np.ones((3, 4))
    for operand in (W, sps.csr_array(W)):
        with pytest.raises((TypeError, ValueError), match="n_threads"):
            wsekern.spmm(operand, np.ones((4, 2)), n_threads=bad)


@pytest.mark.parametrize("n_block", [0, 8])
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
def test_csr_kernel_checks_each_row_before_it_reads_x(index_dtype, n_block):
    """csr_spmm(check_cols=True) counts the rows holding an index outside X's rows and
    multiplies none of them (a read past X's end); the other rows are the product. Without
    the check (check_csr's indptr-only form), the structure is accepted."""
    from wsekern import _spmm
    W = sps.random(30, 50, density=0.2, format="csr", random_state=3)
    indices = W.indices.astype(index_dtype)
    indptr = W.indptr.astype(index_dtype)
    X = np.random.default_rng(3).standard_normal((50, 24))
    expected = W.toarray() @ X
    out = np.full((30, 24), np.nan)
    assert _spmm.csr_spmm(W.data, indices, indptr, X, out, None, 1, n_block, True) == 0
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)
    bad_rows = [r for r in (4, 17) if indptr[r + 1] > indptr[r]]
    indices[indptr[bad_rows[0]]] = 2**30            # a read of X there would fault
    indices[indptr[bad_rows[1] + 1] - 1] = -3
    assert _spmm.check_csr(indptr, indices, 50, False) is None
    assert "out of range" in _spmm.check_csr(indptr, indices, 50)
    out[:] = np.nan
    assert _spmm.csr_spmm(W.data, indices, indptr, X, out, None, 2, n_block, True) == 2
    good = np.setdiff1d(np.arange(30), bad_rows)
    np.testing.assert_allclose(out[good], expected[good], rtol=1e-12, atol=1e-12)
    assert np.isnan(out[bad_rows]).all()                # never multiplied


def test_a_callers_out_is_untouched_when_an_index_is_out_of_range():
    """The CSR kernel checks a SciPy CSR's indices row by row as it goes; with the
    caller's out it must check first (the good rows were written before the error)."""
    W = sps.random(40, 64, density=0.3, format="csr", random_state=4)
    W.indices[5] = 64
    out = np.full((40, 300), 7.0)
    with pytest.raises(ValueError, match="out of range"):
        wsekern.spmm(W, np.ones((64, 300)), out=out)
    assert (out == 7.0).all()
