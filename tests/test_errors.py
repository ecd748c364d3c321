"""Bad input gets a clear ValueError/TypeError naming what was received; never a crash."""
import re

import numpy as np
import pytest
import scipy.sparse as sps
from conftest import random_csr

import wsekern


def _raw_csr(data, indices, indptr, shape):
    """A csr_array built without SciPy's checks, as a careless caller could."""
    A = sps.csr_array(shape)
    A.data, A.indices, A.indptr = np.asarray(data, float), np.asarray(indices), np.asarray(indptr)
    return A


def test_shape_mismatch_names_both_shapes():
    W = random_csr(10, 8, 0.3)
    with pytest.raises(ValueError, match=r"W.shape=\(10, 8\), X.shape=\(9, 3\)"):
        wsekern.spmm(W, np.ones((9, 3)))
    with pytest.raises(ValueError, match="transpose=True"):
        wsekern.spmm(W, np.ones((8, 3)), transpose=True)


@pytest.mark.parametrize("X", [np.ones((2, 2, 2)), np.float64(3.0)])
def test_bad_ndim(X):
    with pytest.raises(ValueError, match="1-D or 2-D"):
        wsekern.spmm(random_csr(4, 2, 0.5), X)


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.complex128, object, bool, np.float16])
def test_bad_dtypes(dtype):
    W = random_csr(4, 3, 0.5)
    with pytest.raises(TypeError, match="float32 or float64"):
        wsekern.spmm(W, np.ones((3, 2), dtype=dtype))
    with pytest.raises(TypeError, match="float32 or float64"):
        wsekern.spmm(np.ones((4, 3), dtype=dtype), np.ones((3, 2)))
    if dtype not in (object, np.float16):      # SciPy cannot even hold these
        with pytest.raises(TypeError, match="float32 or float64"):
            wsekern.spmm(W.astype(dtype), np.ones((3, 2)))


def test_sparse_X_is_refused_with_advice():
    with pytest.raises(TypeError, match="dense array"):
        wsekern.spmm(random_csr(4, 3, 0.5), sps.csr_array(np.ones((3, 2))))


@pytest.mark.parametrize("indices, indptr, match", [
    ([0, 5], [0, 1, 2], "column index 5 .* out of range"),
    ([0, -1], [0, 1, 2], "column index -1"),
    ([0, 1], [0, 2, 1], "non-decreasing|indptr"),
    ([0, 1], [1, 1, 2], r"indptr\[0\] must be 0"),
    ([0, 1], [0, 1, 3], r"indptr\[-1\]"),
    ([0, 1], [0, 2], "indptr must have 3 entries"),
])
def test_malformed_csr(indices, indptr, match):
    W = _raw_csr(np.ones(len(indices)), indices, indptr, (2, 3))
    with pytest.raises(ValueError, match=match):
        wsekern.spmm(W, np.ones((3, 2)))
    with pytest.raises(ValueError, match=match):
        wsekern.pack(W)


def test_out_of_range_coo():
    W = sps.coo_array((np.ones(2), (np.array([0, 1]), np.array([0, 1]))), shape=(2, 3))
    W.col = np.array([0, 7])
    with pytest.raises(ValueError, match="column index 7 is out of range"):
        wsekern.spmm(W, np.ones((3, 1)))


def test_sddmm_errors():
    A, B = np.ones((4, 3)), np.ones((5, 3))
    P = random_csr(4, 5, 0.5)
    with pytest.raises(ValueError, match="same number of columns"):
        wsekern.sddmm(A, np.ones((5, 2)), P)
    with pytest.raises(ValueError, match=r"pattern of shape \(4, 5\)"):
        wsekern.sddmm(A, B, random_csr(5, 4, 0.5))
    with pytest.raises(TypeError, match="pattern must be"):
        wsekern.sddmm(A, B, np.ones((4, 5)))
    with pytest.raises(TypeError, match="float32 or float64"):
        wsekern.sddmm(A.astype(int), B, P)
    with pytest.raises(ValueError, match="2-D"):
        wsekern.sddmm(np.ones(4), B, P)


@pytest.mark.parametrize("n_threads, exc", [(0, ValueError), ("2", TypeError), (1.5, TypeError)])
def test_bad_n_threads(n_threads, exc):
    with pytest.raises(exc, match="n_threads"):
        wsekern.spmm(random_csr(4, 3, 0.5), np.ones((3, 2)), n_threads=n_threads)


def test_pack_errors():
    with pytest.raises(ValueError, match="2-D"):
        wsekern.pack(np.ones(3))
    with pytest.raises(TypeError, match="float32 or float64"):
        wsekern.pack(np.ones((2, 2), dtype=int))
    P = wsekern.pack(random_csr(4, 3, 0.5))
    with pytest.raises(ValueError, match="set_values expects"):
        P.set_values(np.ones(P.nnz + 1))


# -- issue 12: a table of messages, each saying what was received and what would work -------
def _coo_with(row, col, shape=(3, 4)):
    W = sps.coo_array(shape)
    W.coords = (np.asarray(row), np.asarray(col))
    W.data = np.ones(len(row))
    return W


def _lil_with(rows, shape=(2, 3)):
    W = sps.lil_array(shape)
    W.rows, W.data = rows, _lil_rows(*([1.0] * len(r) for r in rows))
    return W


def _dia_with(offsets, data, shape=(3, 4)):
    W = sps.dia_array(shape)
    W.offsets, W.data = np.asarray(offsets), np.asarray(data, dtype=float)
    return W


def _bsr_with(data):
    W = sps.bsr_array(np.eye(4), blocksize=(2, 2))
    W.data = data
    return W


def _lil_rows(*rows):
    a = np.empty(len(rows), dtype=object)
    a[:] = [list(r) for r in rows]
    return a


X4 = np.ones((4, 2))
MESSAGES = [
    # (call, exception, what was received, what would work)
    (lambda: wsekern.spmm(_coo_with([0, 7], [0, 1]), X4), ValueError,
     r"row index 7", r"valid: 0 to 2"),
    (lambda: wsekern.spmm(_coo_with([0, 1], [0]), X4), ValueError,
     r"received \(1,\)", r"col must have shape \(2,\)"),
    (lambda: wsekern.spmm(_coo_with([0.0], [1.0]), X4), TypeError,
     r"received dtype float64", r"integer array"),
    (lambda: wsekern.spmm(_lil_with(_lil_rows([0], [9])), np.ones((3, 1))), ValueError,
     r"row 1: column index 9", r"valid: 0 to 2"),
    (lambda: wsekern.spmm(_lil_with(_lil_rows([0])), np.ones((3, 1))), ValueError,
     r"received \(1,\)", r"object array of 2 lists"),
    (lambda: wsekern.spmm(_dia_with([0, 0], np.ones((2, 4))), X4), ValueError,
     r"received \[0, 0\]", r"distinct"),
    (lambda: wsekern.spmm(_dia_with([0], np.ones((2, 4))), X4), ValueError,
     r"received shape \(2, 4\)", r"one row per offset"),
    (lambda: wsekern.spmm(_dia_with([0, 10**15], np.ones((2, 4))), X4), ValueError,
     r"offset 1000000000000000", r"run from -2 to 3"),
    (lambda: wsekern.spmm(_bsr_with(np.ones((2, 0, 0))), X4), ValueError,
     r"received shape \(2, 0, 0\)", r"R, C >= 1"),
    (lambda: wsekern.PackedSparse(np.ones(2), np.array([0, 10**8]), np.array([0, 1, 2]), (2, 3)),
     ValueError, r"column index 100000000", r"valid: 0 to 2"),
    (lambda: wsekern.PackedSparse(np.ones(2), np.array([2, 1]), np.array([0, 2, 2]), (2, 3)),
     ValueError, r"row 0 has 2 then 1", r"wsekern.pack\(scipy_matrix\) sorts"),
    (lambda: wsekern.PackedSparse(np.ones(2), np.array([0, 1]), np.array([0, 1]), (2, 3)),
     ValueError, r"received 2", r"indptr must have 3 entries"),
    (lambda: wsekern.PackedSparse(np.ones(2, int), np.array([0, 1]), np.array([0, 1, 2]), (2, 3)),
     TypeError, r"received int64", r"float32 or float64"),
    (lambda: wsekern.Wafer(wsekern.WaferConfig.small(2, 2)).matmul(np.ones((2, 2), complex),
                                                                   np.ones((2, 2))),
     TypeError, r"received complex128", r"float32 or float64"),
    (lambda: wsekern.Wafer(wsekern.WaferConfig.small(2, 2)).matmul(np.ones((2, 2), object),
                                                                   np.ones((2, 2))),
     TypeError, r"received object", r"astype\(np.float32\)"),
    (lambda: wsekern.conv2d(np.ones((1, 1, 3, 3)), sps.csr_array(np.eye(2))), TypeError,
     r"received a sparse csr_array", r"toarray\(\)"),
    (lambda: wsekern.spmm(random_csr(4, 3, 0.5), np.ones((3, 2)), n_threads=0), ValueError,
     r"n_threads=0", r"positive count"),
]


@pytest.mark.parametrize("call, exc, received, works", MESSAGES,
                         ids=[f"{i}" for i in range(len(MESSAGES))])
def test_message_says_what_was_received_and_what_works(call, exc, received, works):
    with pytest.raises(exc) as info:
        call()
    assert re.search(received, str(info.value)), str(info.value)
    assert re.search(works, str(info.value)), str(info.value)


def test_wafer_matmul_refuses_int_and_complex():
    """Issue 12: Wafer.matmul accepted int, complex and object arrays."""
    wafer = wsekern.Wafer(wsekern.WaferConfig.small(2, 2))
    for dtype in (np.int64, np.complex128, object):
        with pytest.raises(TypeError, match="float32 or float64"):
            wafer.matmul(np.ones((2, 3), dtype=dtype), np.ones((3, 2)))
        with pytest.raises(TypeError, match="float32 or float64"):
            wafer.matmul(np.ones((2, 3)), np.ones((3, 2), dtype=dtype))


@pytest.mark.parametrize("M, K, N", [(0, 3, 2), (2, 0, 2), (2, 3, 0), (0, 0, 0)])
def test_wafer_zero_size_products_give_the_empty_answer(M, K, N):
    """Issue 12: Wafer.matmul / Wafer.sddmm with a zero-size dimension raised IndexError."""
    wafer = wsekern.Wafer(wsekern.WaferConfig.small(2, 2))
    A, B = np.ones((M, K)), np.ones((K, N))
    Y, report = wafer.matmul(A, B)
    np.testing.assert_array_equal(Y, np.zeros((M, N)))
    assert report.cycles == 0 and report.macs_dense == 0
    pattern = sps.csr_array(np.ones((M, N)))
    S, report = wafer.sddmm(np.ones((M, K)), np.ones((N, K)), pattern)
    np.testing.assert_array_equal(S.toarray(), np.zeros((M, N)))
    assert report.cycles == 0


def test_simulate_matmul_with_m_zero(capsys):
    from wsekern.cli import main
    assert main(["simulate", "matmul", "--m", "0", "--k", "4", "--n", "4", "--wafer",
                 "small"]) == 0
    assert "cycles" in capsys.readouterr().out


def test_n_threads_is_capped_at_the_machine(monkeypatch):
    """Issue 12 defect 5: n_threads=1000 started 1000 OpenMP threads."""
    from wsekern import _threads
    if not _threads._spmm.openmp_enabled():
        pytest.skip("built without OpenMP")
    cap = _threads.machine_threads()
    assert _threads.resolve_threads(1000, 10**12) == min(cap, _threads.max_threads() * 10**6)
    assert _threads.resolve_threads(1000, 10**12) <= cap
    monkeypatch.setattr(_threads, "machine_threads", lambda: 3)
    assert _threads.resolve_threads(1000, 10**12) == 3
    assert _threads.resolve_threads(-1, 10**12) == 3
    assert _threads.resolve_threads(-2, 10**12) == 2


def test_spmm_out_aliasing_x_as_numpy_matmul():
    """Issue 12 defect 3: spmm(W, X, out=X) returned wrong values (max error 31 on csr)."""
    rng = np.random.default_rng(0)
    W = random_csr(50, 50, 0.3, seed=3)
    X = rng.standard_normal((50, 50))
    expected = W.toarray() @ X
    for Wop in (W, W.toarray(), wsekern.pack(W)):
        X2 = X.copy()
        assert wsekern.spmm(Wop, X2, out=X2) is X2
        np.testing.assert_allclose(X2, expected, rtol=1e-12, atol=1e-12)
    v = X[:, 0].copy()
    np.testing.assert_allclose(wsekern.spmm(W, v, out=v), expected[:, 0], rtol=1e-12)


def test_complex_matrix_market_is_refused(tmp_path, capsys):
    """Issue 12: a complex .mtx silently dropped its imaginary part."""
    from wsekern.cli import main
    path = tmp_path / "c.mtx"
    path.write_text("%%MatrixMarket matrix coordinate complex general\n3 3 2\n"
                    "1 1 1.0 2.0\n2 2 0.0 1.0\n")
    assert main(["simulate", "spmm", "--matrix", str(path), "--wafer", "small"]) == 2
    assert "complex values" in capsys.readouterr().err


def test_matrix_market_declaring_1e8_square_is_refused_before_loading(tmp_path, capsys):
    """Issue 12 defect 10: a 76-byte .mtx declaring 1e8 x 1e8 ran 68 s and took 16 GB."""
    from wsekern.cli import main
    path = tmp_path / "big.mtx"
    path.write_text("%%MatrixMarket matrix coordinate real general\n"
                    "100000000 100000000 1\n1 1 1.0\n")
    assert main(["simulate", "spmm", "--matrix", str(path), "--wafer", "small"]) == 2
    err = capsys.readouterr().err
    assert "GiB" in err and "--n" in err


def test_integer_and_pattern_matrix_market_are_read(tmp_path, capsys):
    from wsekern.cli import main
    for field, line in (("integer", "2 1 3\n"), ("pattern", "2 1\n")):
        path = tmp_path / f"{field}.mtx"
        path.write_text(f"%%MatrixMarket matrix coordinate {field} general\n3 3 1\n{line}")
        assert main(["simulate", "spmm", "--matrix", str(path), "--n", "2", "--wafer", "small",
                     "--json"]) == 0
        assert '"macs_dense": 18' in capsys.readouterr().out
