"""The OpenBLAS core NumPy's BLAS runs, read back at run time, and the cost table's BLAS
priced at it (wsekern/_blas_core.py, CostTable.at_blas_core)."""
import os
import platform
import subprocess
import sys

import numpy as np
import pytest
from conftest import random_csr

import wsekern
from wsekern import _blas_core, costs, kernels

# the module alone (it imports only NumPy), so that a child reads the core in a blink
_READ_CORE = f"""
import importlib.util
spec = importlib.util.spec_from_file_location("bc", {_blas_core.__file__!r})
bc = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bc)
print(*bc.read_blas_core(), sep="|")
"""


def _openblas_loaded():
    return "openblas" in _blas_core._numpy_blas_name() and _blas_core._loaded_openblas_paths()


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"),
                    reason="OPENBLAS_CORETYPE names x86 cores here")
def test_the_core_openblas_runs_is_read_back_from_the_library():
    if not _openblas_loaded():
        pytest.skip(f"NumPy's BLAS is not a loaded OpenBLAS: {_blas_core._numpy_blas_name()!r}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENBLAS_")}
    coretypes = [None, "Nehalem"]
    if "avx2" in wsekern.simd_path.simd_available():
        coretypes.append("Haswell")
    children = {}
    for coretype in coretypes:
        child_env = dict(env, **({"OPENBLAS_CORETYPE": coretype} if coretype else {}))
        children[coretype] = subprocess.Popen([sys.executable, "-c", _READ_CORE], env=child_env,
                                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                              text=True)
    for coretype, child in children.items():
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        core, source = out.strip().split("|")
        assert source == "library", (coretype, out)
        if coretype is None:   # OpenBLAS's own pick: a core of known width on x86
            assert _blas_core.core_class(core) is not None, core
        else:
            assert core == coretype


def test_the_core_falls_back_to_openblas_coretype_then_unknown(monkeypatch):
    missing = ["/nonexistent/libopenblas.so"]   # no such library: CDLL refuses it
    monkeypatch.setattr(_blas_core, "_loaded_openblas_paths", lambda: missing)
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Sandybridge")
    monkeypatch.setattr(_blas_core, "_numpy_blas_name", lambda: "scipy-openblas")
    assert _blas_core.read_blas_core() == ("Sandybridge", "OPENBLAS_CORETYPE")
    monkeypatch.setattr(_blas_core, "_numpy_blas_name", lambda: "mkl-sdl")
    assert _blas_core.read_blas_core() == ("unknown", "NumPy's BLAS is mkl-sdl")
    monkeypatch.setattr(_blas_core, "_numpy_blas_name", lambda: "scipy-openblas")
    monkeypatch.delenv("OPENBLAS_CORETYPE")
    assert _blas_core.read_blas_core()[0] == "unknown"
    assert _blas_core.core_class("unknown") is None
    assert _blas_core.core_class(" HASWELL ") == "avx2"


def test_blas_terms_scale_by_the_cores_measured_ratio():
    """Closed forms: BLAS per multiply-add times the fp32 (fp64) ratio of the core's kernels
    to the row's, the rest of each route (W's scan, csr_to_dense, W streamed past L3) as
    measured."""
    row = costs._named("zen5/baseline")
    assert row.blas_core == "avx512"
    assert row.at_blas_core(None) is row and row.at_blas_core("avx512") is row
    f32, f64 = costs.BLAS_CORE_TIME["sse"]
    t = row.at_blas_core("sse")
    assert t.blas_core == "sse" and t.name == row.name
    assert costs.blas_scale(t) == pytest.approx((f32, f64), rel=1e-12)
    M, K, k_live, N, nnz, density = 1024, 1024, 900, 64, 400_000, 0.4
    blas32 = M * k_live * N * row.blas_mac * (1 + row.blas_narrow_n / N) * f32
    blas64 = blas32 / f32 * f64 * row.blas_fp64
    assert t.blas(M * k_live * N, N) == pytest.approx(blas32, rel=1e-12)
    scan = M * K * row.dense_scan + density * M * k_live * N * row.spmm_mac
    stream = M * K * 4 * row.blas_stream
    gather = M * K * row.blas_gather        # X's dead rows: W's kept columns copied first
    assert t.dense_w(M, K, k_live, N, density, 4, 0) == pytest.approx(
        (blas32 + stream + gather, scan), rel=1e-12)
    assert t.dense_w(M, K, k_live, N, density, 8, 0)[0] == pytest.approx(
        blas64 + 2 * stream + gather, rel=1e-12)
    small = 1 + row.blas_small / M + row.blas_small / k_live
    # X's dead rows: only W's live columns densified, no gather
    densify = (row.densify_call + M * k_live * row.densify
               + nnz * (row.densify_nnz + row.densify_live_nnz))
    extra = t.csr_extra(M, K, k_live, N, nnz)     # the CSR route's own, not BLAS's
    assert t.densified(M, K, k_live, N, nnz) == pytest.approx(
        densify + blas32 * small - extra, rel=1e-12)
    # the densified route's fp64: the core's fp64 ratio over its fp32 one, not blas_fp64
    assert t.densified(M, K, k_live, N, nnz, 8) == pytest.approx(
        densify + blas32 / f32 * f64 * small - t.csr_extra(M, K, k_live, N, nnz, 8),
        rel=1e-12)
    # a row measured on the Haswell kernels (Zen 3) priced at AVX-512 ones: the ratio of both
    zen3 = costs._named("zen3/avx2").at_blas_core("avx512")
    h32, h64 = costs.BLAS_CORE_TIME["avx2"]
    assert costs.blas_scale(zen3) == pytest.approx((1 / h32, 1 / h64), rel=1e-12)


def _route_with_core(monkeypatch, core, W, X):
    monkeypatch.setattr(costs, "_cache", {})
    # raising=False: on the code before the core was read, the route must still be asked
    monkeypatch.setattr(costs, "blas_core", lambda: (core, "test"), raising=False)
    return kernels.spmm_path(W, X)


def test_the_route_follows_the_blas_core(monkeypatch):
    """Zen 3's AVX2 row densifies 1024^2 at 50 % zeros against N = 256 with the Haswell
    kernels it was measured with; BLAS on Nehalem's kernels (5.2 / 1.85 of that time a
    multiply-add, fp32) leaves the cell to the CSR kernel. A row named by WSEKERN_COSTS is
    priced as measured, whatever the core."""
    monkeypatch.delenv("WSEKERN_COSTS", raising=False)
    monkeypatch.setattr(costs, "cpu_info", lambda: {"uarch": "zen3"})
    monkeypatch.setattr(costs, "_simd_in_use", ["avx2"])
    W = random_csr(1024, 1024, 0.5)
    X = np.random.default_rng(0).standard_normal((1024, 256))
    assert _route_with_core(monkeypatch, "Haswell", W, X) == "blas-densified"
    assert _route_with_core(monkeypatch, "unknown", W, X) == "blas-densified"
    assert _route_with_core(monkeypatch, "Nehalem", W, X) == "csr"
    assert kernels.cost_table().name == "zen3/avx2"
    np.testing.assert_allclose(kernels.spmm(W, X), W.toarray() @ X, rtol=1e-12, atol=1e-12)
    monkeypatch.setenv("WSEKERN_COSTS", "zen3/avx2")
    assert _route_with_core(monkeypatch, "Nehalem", W, X) == "blas-densified"


def test_show_config_prints_the_blas_core_and_factor(monkeypatch, capsys):
    monkeypatch.delenv("WSEKERN_COSTS", raising=False)
    monkeypatch.setattr(costs, "cpu_info", lambda: {"uarch": "zen5"})
    monkeypatch.setattr(costs, "_simd_in_use", ["baseline"])
    monkeypatch.setattr(costs, "_cache", {})
    monkeypatch.setattr(costs, "blas_core", lambda: ("Nehalem", "test"), raising=False)
    monkeypatch.setattr(_blas_core, "_read", [("Nehalem", "test")])
    wsekern.show_config()
    out = capsys.readouterr().out
    assert "blas_core: Nehalem (test; sse)" in out
    assert "blas_factor: x5.20 fp32, x3.60 fp64 (the row's BLAS priced at sse kernels)" in out
