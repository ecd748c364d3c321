"""Each dispatcher path gives the reference answer; NaN/inf propagate as in scipy.sparse."""
import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sps
from conftest import random_csr, reference, tol

import wsekern


def _x_with_zero_rows(K, N, dead_fraction, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((K, N)).astype(dtype)
    X[rng.random(K) < dead_fraction] = 0
    return X


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_zero_rows_of_X_are_skipped(dtype, n_threads, index_dtype):
    W = random_csr(300, 400, 0.1, dtype, index_dtype)
    X = _x_with_zero_rows(400, 64, 0.5, dtype=dtype)
    assert wsekern.spmm_path(W, X) == "csr-skip-rows"
    np.testing.assert_allclose(wsekern.spmm(W, X, n_threads=n_threads), reference(W, X),
                               **tol(dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("transpose", [False, True])
@pytest.mark.parametrize("N", [1, 16, 33, 64, 70])
def test_packed_W_skips_zero_rows_of_X_by_its_columns(dtype, n_threads, transpose, N,
                                                      index_dtype):
    """Issue 16: a packed W's cached CSC passes over whole columns that meet dead rows of
    X (no per-nonzero work); every width (blocks of 32 columns and their tails)."""
    W = random_csr(300, 400, 0.1, dtype, index_dtype)
    P = wsekern.pack(W)
    P = wsekern.PackedSparse(P.data, P.indices.astype(index_dtype),
                             P.indptr.astype(index_dtype), P.shape)
    K = 300 if transpose else 400
    X = _x_with_zero_rows(K, N, 0.5, dtype=dtype)
    assert wsekern.spmm_path(P, X, transpose=transpose) == "csc-skip-rows"
    ref = reference(W.T if transpose else W, X)
    np.testing.assert_allclose(wsekern.spmm(P, X, transpose=transpose, n_threads=n_threads),
                               ref, **tol(dtype))


def test_column_path_needs_finite_weights_and_matching_dtype():
    """An inf weight meeting a dead row must give NaN (inf * 0): the column path would skip
    that row, so it is not taken; nor for a float32 W meeting a float64 X."""
    W = random_csr(50, 60, 0.2, np.float64, np.int32)
    W.data[0] = np.inf
    X = _x_with_zero_rows(60, 128, 0.5)
    X[W.indices[0]] = 0
    P = wsekern.pack(W)
    assert wsekern.spmm_path(P, X) == "csr-skip-rows"
    got = wsekern.spmm(P, X)
    with np.errstate(invalid="ignore"):
        np.testing.assert_array_equal(np.isnan(got), np.isnan(W @ X))
    assert np.isnan(got[0]).all()
    P32 = wsekern.pack(W.astype(np.float32))
    P32.set_values(np.ones(P32.nnz))
    assert wsekern.spmm_path(P32, X) == "csr-skip-rows"
    np.testing.assert_allclose(wsekern.spmm(P32, X), reference(P32.to_scipy(), X), **tol(
        np.float64))


def test_column_path_only_while_its_buffer_fits_in_L2(monkeypatch):
    from wsekern import kernels
    P = wsekern.pack(random_csr(300, 400, 0.1))
    X = _x_with_zero_rows(400, 64, 0.5)
    assert wsekern.spmm_path(P, X) == "csc-skip-rows"
    monkeypatch.setattr(kernels, "l2_bytes", lambda: 2 * 300 * kernels.SCATTER_BLOCK * 8 - 8)
    assert wsekern.spmm_path(P, X) == "csr-skip-rows"
    np.testing.assert_allclose(wsekern.spmm(P, X), reference(P.to_scipy(), X), **tol(
        np.float64))


def test_narrow_X_keeps_its_zero_rows_when_dropping_them_costs_more():
    """Dropping W's nonzeros that meet zero rows costs a gather each (csr_compact); with 8
    columns the multiply-adds saved are worth less (measured 0.74x of X dense at N=16)."""
    W = random_csr(300, 400, 0.1)
    X = _x_with_zero_rows(400, 8, 0.5)
    assert wsekern.spmm_path(W, X) == "csr"
    np.testing.assert_allclose(wsekern.spmm(W, X), reference(W, X), **tol(np.float64))


@pytest.mark.parametrize("n_threads", [1, 2])
def test_very_sparse_X_multiplies_only_nonzero_pairs(n_threads, index_dtype):
    W = random_csr(200, 300, 0.1, np.float64, index_dtype)
    X = random_csr(300, 50, 0.005, seed=3).toarray()
    assert wsekern.spmm_path(W, X) == "csr-sparse-x"
    np.testing.assert_allclose(wsekern.spmm(W, X, n_threads=n_threads), reference(W, X),
                               **tol(np.float64))


def test_all_zero_X():
    W = random_csr(50, 40, 0.2)
    Y = wsekern.spmm(W, np.zeros((40, 8)))
    np.testing.assert_array_equal(Y, 0)


def test_dense_W_goes_to_blas_and_skips_dead_rows():
    rng = np.random.default_rng(0)
    W = rng.standard_normal((100, 120))
    X = _x_with_zero_rows(120, 30, 0.5)
    assert wsekern.spmm_path(W, X) == "blas-skip-rows"
    np.testing.assert_allclose(wsekern.spmm(W, X), W @ X, **tol(np.float64))
    X = rng.standard_normal((120, 30))
    assert wsekern.spmm_path(W, X) == "blas"
    np.testing.assert_allclose(wsekern.spmm(W, X), W @ X, **tol(np.float64))


def test_dense_enough_sparse_W_is_densified():
    W = random_csr(200, 200, 0.9)
    X = np.random.default_rng(0).standard_normal((200, 64))
    assert wsekern.spmm_path(W, X) == "blas-densified"
    np.testing.assert_allclose(wsekern.spmm(W, X), reference(W, X), **tol(np.float64))


@pytest.mark.parametrize("X_kind", ["dense", "dead-rows", "very-sparse"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_X_propagates_as_in_scipy(X_kind, bad):
    W = random_csr(60, 80, 0.1, seed=2)
    X = {"dense": np.random.default_rng(0).standard_normal((80, 16)),
         "dead-rows": _x_with_zero_rows(80, 16, 0.5),
         "very-sparse": random_csr(80, 16, 0.01, seed=1).toarray()}[X_kind]
    X[W.indices[0], 3] = bad        # meets a stored weight
    X[79, 5] = bad
    expected = W @ X
    got = wsekern.spmm(W, X)
    np.testing.assert_allclose(got, expected, **tol(np.float64))   # NaN == NaN here
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))


@pytest.mark.parametrize("X_kind", ["dead-rows", "very-sparse"])
def test_stored_inf_weight_times_zero_activation_is_nan(X_kind):
    W = random_csr(30, 40, 0.2, seed=4)
    W.data[0] = np.inf
    X = {"dead-rows": _x_with_zero_rows(40, 8, 0.5),
         "very-sparse": random_csr(40, 8, 0.01, seed=2).toarray()}[X_kind]
    X[W.indices[0]] = 0   # inf * 0 must give NaN, as scipy does
    expected = W @ X
    got = wsekern.spmm(W, X)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    assert np.isnan(got).any()
    np.testing.assert_allclose(got, expected)
    got_packed = wsekern.spmm(wsekern.pack(W), X)
    np.testing.assert_array_equal(np.isnan(got_packed), np.isnan(expected))


def test_dense_W_treats_its_zeros_as_not_stored_even_with_nan_X():
    rng = np.random.default_rng(0)
    W = rng.standard_normal((20, 30))
    W[:, 4] = 0
    X = rng.standard_normal((30, 5))
    X[4, 2] = np.nan         # meets only zeros of W: not multiplied
    expected = sps.csr_array(W) @ X
    got = wsekern.spmm(W, X)
    assert not np.isnan(got).any()
    np.testing.assert_allclose(got, expected, **tol(np.float64))


def _run_with_simd(simd, args, cwd):
    env = dict(os.environ, WSEKERN_SIMD=simd)
    # Run outside the source tree, so the installed (compiled) package is imported.
    return subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True,
                          cwd=cwd)


@pytest.mark.parametrize("simd", ["baseline", "avx2", "avx512"])
def test_every_simd_path_the_cpu_runs_gives_the_reference_answer(simd, tmp_path):
    if simd not in wsekern.sysinfo.simd_available():
        pytest.skip(f"this CPU does not run the {simd} path")
    res = _run_with_simd(simd, [os.path.join(os.path.dirname(__file__), "simd_child.py")],
                         tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == simd


@pytest.mark.parametrize("simd", ["baseline", "avx2", "avx512"])
def test_the_simd_choice_reaches_the_elementwise_modules(simd, tmp_path):
    """GELU (_activations) and the softmax (_transformer) hold their own copies of the
    dispatch flag; WSEKERN_SIMD must set them too."""
    if simd not in wsekern.sysinfo.simd_available():
        pytest.skip(f"this CPU does not run the {simd} path")
    code = ("import wsekern\nfrom wsekern import _activations, _transformer\n"
            "print(_activations.SIMD_PATH, _transformer.SIMD_PATH)")
    res = _run_with_simd(simd, ["-c", code], tmp_path)
    assert res.returncode == 0, res.stderr
    want = simd
    assert res.stdout.split() == [want, want]


def test_a_simd_path_the_cpu_cannot_run_is_refused(tmp_path):
    missing = [p for p in ("avx2", "avx512") if p not in wsekern.sysinfo.simd_available()]
    if not missing:
        pytest.skip("this CPU runs every SIMD path")
    res = _run_with_simd(missing[-1], ["-c", "import wsekern"], tmp_path)
    assert res.returncode != 0
    assert f"WSEKERN_SIMD={missing[-1]}" in res.stderr and "baseline" in res.stderr


def test_an_unknown_simd_name_is_refused(tmp_path):
    res = _run_with_simd("sse9", ["-c", "import wsekern"], tmp_path)
    assert res.returncode != 0
    assert "'sse9'" in res.stderr and "avx512" in res.stderr


def test_an_unknown_simd_name_stops_the_import_with_a_clean_chain(tmp_path):
    """From Python: an ImportError caused by the ValueError, whose traceback is the import
    line alone (not the chain of modules that happened to load the SIMD choice first)."""
    code = ("import traceback\n"
            "try:\n    import wsekern\n"
            "except ImportError as e:\n"
            "    assert isinstance(e.__cause__, ValueError), repr(e.__cause__)\n"
            "    assert e.__cause__.__traceback__ is None\n"
            "    assert len(traceback.extract_tb(e.__traceback__)) == 2, "
            "traceback.format_exc()\n"
            "    print(e)\n"
            "else:\n    raise SystemExit('imported')\n")
    res = _run_with_simd("bogus", ["-c", code], tmp_path)
    assert res.returncode == 0, res.stderr
    assert "WSEKERN_SIMD must be one of" in res.stdout and "'bogus'" in res.stdout


def test_an_unknown_simd_name_gives_the_command_its_message_alone(tmp_path):
    """From the command line: the message on one line and exit code 2, no traceback."""
    commands = [["-m", "wsekern.cli", "config"]]
    script = os.path.join(os.path.dirname(sys.executable), "wsekern")
    if os.path.exists(script):      # the installed console script
        commands.append([script, "config"])
    for args in commands:
        res = _run_with_simd("bogus", args, tmp_path)
        assert res.returncode == 2, (args, res.stderr)
        assert res.stderr == ("wsekern: error: WSEKERN_SIMD must be one of baseline, avx2, "
                              "avx512 or best; received 'bogus'\n"), (args, res.stderr)
        assert res.stdout == ""


def test_show_config_names_the_cpu_and_the_simd_path(capsys):
    wsekern.show_config()
    text = capsys.readouterr().out
    cfg = wsekern.get_config()
    assert cfg["simd"] in cfg["simd_available"]
    assert cfg["simd_available"][0] == "baseline"
    for key in ("cpu", "caches", "simd_available", "cost_table", "openmp", "threads", "simd",
                "compiler", "numpy", "scipy"):
        assert key in text


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("dead", [0.0, 0.5])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_sparse_dense_W_compacts_rows(dtype, dead, n_threads):
    """A dense W that is mostly zeros is compacted row by row, never converted whole."""
    W = random_csr(150, 203, 0.05, dtype, seed=9).toarray()
    W[3, 7] = np.inf                      # meets a dead row below: inf * 0 = NaN
    X = _x_with_zero_rows(203, 300, dead, dtype=dtype)
    X[7] = 0
    path = wsekern.spmm_path(W, X)
    assert path.startswith("dense-skip-zeros")
    expected = sps.csr_array(W) @ X
    got = wsekern.spmm(W, X, n_threads=n_threads)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    assert np.isnan(got[3]).all()
    finite = ~np.isnan(expected)
    np.testing.assert_allclose(got[finite], expected[finite], **tol(dtype))
