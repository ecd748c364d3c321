"""The CPU description and the per-microarchitecture cost table the dispatcher uses."""
import dataclasses
import os

import numpy as np
import pytest
from conftest import random_csr

import wsekern
from wsekern import _cpu, costs, kernels


@pytest.mark.parametrize("vendor, family, model, uarch", [
    ("AuthenticAMD", 25, 1, "zen3"),       # EPYC Milan, the machine of issue 19
    ("AuthenticAMD", 25, 0x21, "zen3"),    # Ryzen 5000
    ("AuthenticAMD", 25, 0x11, "zen4"),    # EPYC Genoa
    ("AuthenticAMD", 23, 0x31, "zen1-2"),
    ("GenuineIntel", 6, 0x55, "unknown"),
    ("unknown", None, None, "unknown"),
])
def test_uarch_from_cpuid_numbers(vendor, family, model, uarch):
    assert _cpu.uarch_of(vendor, family, model) == uarch


@pytest.mark.parametrize("machine, uarch", [("x86_64", "zen4"), ("AMD64", "zen4"),
                                             ("aarch64", "unknown"), ("arm64", "unknown")])
def test_an_x86_name_only_for_an_x86_process(monkeypatch, machine, uarch):
    """Under qemu-user an aarch64 build reads the x86 host's /proc/cpuinfo: its family and
    model must not pick an x86 cost row (an unknown CPU takes its path's default row)."""
    fields = {"vendor_id": "AuthenticAMD", "cpu family": "25", "model": "17",
              "model name": "AMD EPYC"}
    monkeypatch.setattr(_cpu, "_cpuinfo_fields", lambda: fields)
    monkeypatch.setattr(_cpu.platform, "machine", lambda: machine)
    _cpu.cpu_info.cache_clear()
    try:
        assert _cpu.cpu_info()["uarch"] == uarch
    finally:
        monkeypatch.undo()
        _cpu.cpu_info.cache_clear()


@pytest.mark.parametrize("text, size", [("512K", 512 * 1024), ("32768K", 32 * 1024**2),
                                        ("8M", 8 * 1024**2), ("65536", 65536), ("", None),
                                        (None, None), ("big", None)])
def test_cache_sizes_parse_as_sysfs_writes_them(text, size):
    assert _cpu._size_bytes(text) == size


def test_cpu_info_has_every_field():
    info = _cpu.cpu_info()
    assert set(info) == {"model", "vendor", "family", "model_number", "caches", "uarch"}
    assert all(isinstance(v, int) and v > 0 for v in info["caches"].values())
    assert info["model"] in _cpu.describe()


def test_every_simd_path_has_a_default_row():
    for simd in wsekern.simd_path.SIMD_BITS:
        assert costs.TABLES[(None, simd)].name == f"default/{simd}"


def test_the_table_follows_the_cpu_and_path(monkeypatch):
    monkeypatch.delenv("WSEKERN_COSTS", raising=False)
    monkeypatch.setattr(costs, "_cache", {})
    monkeypatch.setattr(costs, "cpu_info", lambda: {"uarch": "zen3"})
    assert costs.cost_table("avx2").name == "zen3/avx2"
    assert costs.cost_table("avx512").name == "default/avx512"   # no Zen 3 row for it
    monkeypatch.setattr(costs, "_cache", {})
    monkeypatch.setattr(costs, "cpu_info", lambda: {"uarch": "unknown"})
    assert costs.cost_table("baseline").name == "default/baseline"


def test_wsekern_costs_names_the_row(monkeypatch):
    monkeypatch.setattr(costs, "_cache", {})
    monkeypatch.setenv("WSEKERN_COSTS", "default/avx512")
    assert costs.cost_table("baseline").name == "default/avx512"
    monkeypatch.setenv("WSEKERN_COSTS", "pentium4")
    with pytest.raises(ValueError, match="'pentium4'"):
        costs.cost_table("avx2")


def test_the_table_moves_the_dense_sparse_crossover(monkeypatch):
    """A row whose BLAS is cheap sends a sparse W to densified BLAS; a dear one keeps CSR."""
    W = random_csr(200, 200, 0.3)
    X = np.random.default_rng(0).standard_normal((200, 64))
    cheap = costs.CostTable("test/cheap-blas", 1e-6, 1.0, 1.0, 1e-6, (0, 1), (0, 1))
    dear = costs.CostTable("test/dear-blas", 1.0, 1e-6, 1e-6, 1.0, (0, 1), (0, 1))
    for table, path in ((cheap, "blas-densified"), (dear, "csr")):
        monkeypatch.setattr(kernels, "cost_table", lambda t=table: t)
        assert kernels.spmm_path(W, X) == path
        np.testing.assert_allclose(kernels.spmm(W, X), W.toarray() @ X, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("row", ["zen3/avx2", "zen3/baseline"])
def test_narrow_x_at_half_zeros_stays_csr(monkeypatch, row):
    """Zen 3, 1024^2 at 50-70 % zeros: densifying (a scatter per stored weight, and BLAS
    slow for narrow X) lost to the CSR kernel and to SciPy at N = 16 (0.75-1.15x SciPy's
    speed), and still wins at N = 256 and 50 % zeros."""
    table = costs._named(row)
    monkeypatch.setattr(kernels, "cost_table", lambda: table)
    rng = np.random.default_rng(0)
    for zeros in (0.5, 0.7):
        W = random_csr(1024, 1024, 1 - zeros)
        assert kernels.spmm_path(W, rng.standard_normal((1024, 16))) == "csr"
    assert kernels.spmm_path(random_csr(1024, 1024, 0.5),
                             rng.standard_normal((1024, 256))) == "blas-densified"


@pytest.mark.parametrize("direct, path", [((0.0, 2.2), "direct"), ((0.5, 5.0), "im2col-blas")])
def test_the_table_chooses_the_conv_path(monkeypatch, direct, path):
    """At 80% weight zeros: the direct path while it is fitted cheaper than im2col, not after."""
    from wsekern import conv as conv_mod
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 8, 9, 9))
    w = rng.standard_normal((4, 8, 3, 3)) * (rng.random((4, 8, 3, 3)) < 0.2)
    table = costs.CostTable("test/conv", 0.02, 0.07, 0.3, 0.2, direct, (9.0, 9.0))
    monkeypatch.setattr(conv_mod, "cost_table", lambda: table)
    assert conv_mod.conv2d_path(x, w, padding=1) == path
    xpad = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    windows = np.lib.stride_tricks.sliding_window_view(xpad, (3, 3), axis=(2, 3))
    ref = np.einsum("bchwij,ocij->bohw", windows, w)
    np.testing.assert_allclose(conv_mod.conv2d(x, w, padding=1), ref, rtol=1e-12, atol=1e-12)


def test_tests_run_on_a_fixed_table():
    # conftest pins the table so that the path assertions hold on every CPU.
    assert wsekern.get_config()["cost_table"] == os.environ["WSEKERN_COSTS"]


def test_bench_header_ties_numbers_to_the_machine():
    from wsekern.bench import machine_line
    line = machine_line()
    cfg = wsekern.get_config()
    assert _cpu.cpu_info()["model"] in line
    assert f"SIMD path {cfg['simd']}" in line and cfg["cost_table"] in line
    for level in _cpu.cpu_info()["caches"]:
        assert level in line


@pytest.mark.parametrize("simd", sorted(wsekern.simd_path.SIMD_BITS))
@pytest.mark.parametrize("uarch, family, model", [("zen4", 25, 17), ("zen5", 26, 2)])
def test_zen4_and_zen5_have_a_row_for_every_path(monkeypatch, simd, uarch, family, model):
    """Zen 4 (EPYC family 25 model 17) and Zen 5 (family 26) take their own measured rows,
    not the defaults."""
    assert _cpu.uarch_of("AuthenticAMD", family, model) == uarch
    assert costs.TABLES[(uarch, simd)].name == f"{uarch}/{simd}"
    monkeypatch.delenv("WSEKERN_COSTS", raising=False)
    monkeypatch.setattr(costs, "_cache", {})
    monkeypatch.setattr(costs, "cpu_info", lambda: {"uarch": uarch})
    assert costs.cost_table(simd).name == f"{uarch}/{simd}"


def test_every_row_is_named_by_its_key():
    """A row filed under the wrong key would be used for the wrong CPU or path."""
    for (uarch, simd), table in costs.TABLES.items():
        assert table.name == f"{uarch or 'default'}/{simd}"
    assert len({t.name for t in costs.TABLES.values()}) == len(costs.TABLES)


def test_this_cpu_takes_the_row_of_its_uarch(monkeypatch):
    """On a CPU the table knows (Zen 3, Zen 4) the row of its uarch is the one in use."""
    info = _cpu.cpu_info()
    monkeypatch.delenv("WSEKERN_COSTS", raising=False)
    monkeypatch.setattr(costs, "_cache", {})
    for simd in wsekern.sysinfo.simd_available():
        key = (info["uarch"], simd)
        want = costs.TABLES[key].name if key in costs.TABLES else f"default/{simd}"
        assert costs.cost_table(simd).name == want


@pytest.mark.parametrize("row", ["zen4/avx512", "zen4/avx2", "zen4/baseline"])
def test_zen4_small_w_at_half_zeros_stays_csr(monkeypatch, row):
    """Zen 4, fp32 at 50 % zeros, each path forced (s18): the densified route cost 20-25 us
    a call beyond csr_to_dense + BLAS, and lost to the CSR kernel at 64^2 x 64 (35-41 us
    against 16-19, SciPy 20-22: slower than SciPy) and 128^2 x 64 (60-69 us against
    30-48); it still won at 64 x 8192 x 256 (4.6-4.8 ms against 5.6-6.7) and 256^2 x 1024
    (1.8-2.0 ms against 1.9-3.3). The native route and the Python route choose alike (the
    native one declines a densified call)."""
    table = costs._named(row)
    monkeypatch.setattr(kernels, "cost_table", lambda: table)
    rng = np.random.default_rng(0)
    for m, k, n in ((64, 64, 64), (128, 128, 64)):
        W = random_csr(m, k, 0.5, dtype=np.float32)
        X = rng.standard_normal((k, n)).astype(np.float32)
        assert kernels.spmm_path(W, X) == "csr", (m, k, n)
        got = _spmm_native(W, X)
        assert got is not None, (m, k, n)
        np.testing.assert_allclose(got, W.toarray().astype(np.float64) @ X, rtol=1e-4,
                                   atol=1e-4)
    for m, k, n in ((64, 8192, 256), (256, 256, 1024)):
        W = random_csr(m, k, 0.5, dtype=np.float32)
        X = rng.standard_normal((k, n)).astype(np.float32)
        assert kernels.spmm_path(W, X) == "blas-densified", (m, k, n)


def _spmm_native(W, X):
    from wsekern import _spmm
    return _spmm.csr_spmm_plain(W, X, False, None, 1, kernels._GLOBALS)


def test_densified_cost_is_the_old_formula_without_the_new_terms():
    """A row without densify_call and blas_small (the Zen 3 rows) prices the
    densified route as before: csr_to_dense per element and per weight, then BLAS."""
    t = costs._named("zen3/avx2")
    M, K, N, nnz = 300, 200, 40, 1234
    old = (M * K * t.densify + nnz * t.densify_nnz
           + M * K * N * t.blas_mac * (1 + t.blas_narrow_n / N))
    assert t.densified(M, K, K, N, nnz) == pytest.approx(old, rel=1e-12)
    z = costs._named("zen4/avx512")
    assert z.densify_call > 0 and z.blas_small > 0
    for k_live, per_nnz in ((K, z.densify_nnz), (150, z.densify_nnz + z.densify_live_nnz)):
        new = (z.densify_call + M * k_live * z.densify + nnz * per_nnz
               + M * k_live * N * z.blas_mac * (1 + z.blas_narrow_n / N)
               * (1 + z.blas_small / M + z.blas_small / k_live))
        new -= z.csr_extra(M, K, k_live, N, nnz)         # the CSR route's own extras
        assert z.densified(M, K, k_live, N, nnz) == pytest.approx(new, rel=1e-12)


def test_zen4_avx2_compaction_from_its_measured_rate(monkeypatch):
    """zen4/avx2's csr_compact 0.9 (1.2 before s18): with half of X's rows dead, a SciPy CSR
    at N = 28 and a packed W at N = 72 take csr-skip-rows (1.12-1.48x and 1.20-1.63x faster
    than the csr and csc-skip-rows routes 1.2 chose, whole calls, 1024^2 and 4096^2); N = 16
    still does not compact (the gather costs more than it saves there)."""
    table = costs._named("zen4/avx2")
    monkeypatch.setattr(kernels, "cost_table", lambda: table)
    monkeypatch.setattr(kernels, "l2_bytes", lambda: 1024 * 1024)   # Zen 4's, as measured
    rng = np.random.default_rng(2)
    W = random_csr(1024, 1024, 0.1, dtype=np.float32)
    for n, packed, path in ((28, False, "csr-skip-rows"), (72, True, "csr-skip-rows"),
                            (16, False, "csr")):
        X = rng.standard_normal((1024, n)).astype(np.float32)
        X[rng.permutation(1024)[:512]] = 0
        op = wsekern.pack(W) if packed else W
        assert kernels.spmm_path(op, X) == path, (n, packed)
        np.testing.assert_allclose(kernels.spmm(op, X, n_threads=1),
                                   W.toarray().astype(np.float64) @ X, rtol=1e-4, atol=1e-4)


def test_zen4_avx2_column_path_priced_from_whole_calls(monkeypatch):
    """zen4/avx2's spmm_scatter_mac 0.1 (0.09 before s21): a packed W with half of X's rows
    dead takes csr-skip-rows at N = 64 (1024^2 and 2048^2: faster whole calls than the
    column path 0.09 chose, a new map each call, and a repeated map skips the compaction),
    the column path still at N = 48 (1024^2) and N = 16; each product checked."""
    table = costs._named("zen4/avx2")
    monkeypatch.setattr(kernels, "cost_table", lambda: table)
    monkeypatch.setattr(kernels, "l2_bytes", lambda: 1024 * 1024)   # Zen 4's, as measured
    rng = np.random.default_rng(3)
    for m, n, path in ((1024, 64, "csr-skip-rows"), (2048, 64, "csr-skip-rows"),
                       (1024, 48, "csc-skip-rows"), (1024, 16, "csc-skip-rows")):
        W = random_csr(m, m, 0.1, dtype=np.float32)
        P = wsekern.pack(W)
        X = rng.standard_normal((m, n)).astype(np.float32)
        X[rng.permutation(m)[:m // 2]] = 0
        assert kernels.spmm_path(P, X) == path, (m, n)
        np.testing.assert_allclose(kernels.spmm(P, X, n_threads=1),
                                   W.toarray().astype(np.float64) @ X, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("simd", sorted(wsekern.simd_path.SIMD_BITS))
def test_the_default_rows_hold_zen4s_rates(simd):
    """An unknown CPU takes Zen 4's rates on its path (s24: the row fitted on the first
    AVX-512 machine sent half-dead X to the column path on Zen 5 at 0.5-0.8x X dense)."""
    default, zen4 = costs.TABLES[(None, simd)], costs.TABLES[("zen4", simd)]
    assert dataclasses.replace(default, name=zen4.name) == zen4


def _half_dead(m, n, seed):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((m, n)).astype(np.float32)
    X[rng.permutation(m)[:m // 2]] = 0
    return X


@pytest.mark.parametrize("row", ["default/avx512", "zen5/avx512"])
def test_avx512_rows_compact_half_dead_x_at_n_64(monkeypatch, row):
    """Packed W, 90 % zeros, half of X's rows dead, N = 64: csr-skip-rows, not the column
    path the first AVX-512 row chose (Zen 5, whole calls: 1024^2 0.10 against 0.23-0.25 ms,
    4096^2 1.25-1.46 against 5.1-5.3); each product checked."""
    table = costs._named(row)
    monkeypatch.setattr(kernels, "cost_table", lambda: table)
    monkeypatch.setattr(kernels, "l2_bytes", lambda: 1024 * 1024)
    W = random_csr(1024, 1024, 0.1, dtype=np.float32)
    P = wsekern.pack(W)
    X = _half_dead(1024, 64, 4)
    assert kernels.spmm_path(P, X) == "csr-skip-rows"
    np.testing.assert_allclose(kernels.spmm(P, X, n_threads=1),
                               W.toarray().astype(np.float64) @ X, rtol=1e-4, atol=1e-4)


def test_zen5_avx512_routes_from_whole_calls(monkeypatch):
    """zen5/avx512 (s24, whole calls on Zen 5, alternating, median of 5): a packed W with half
    of X's rows dead compacts at N = 32 too (1024^2: 0.07 against the column path's
    0.11 ms), and W at 50 % zeros with N = 128 is densified (1024^2: 1.7 against 2.3 ms)."""
    table = costs._named("zen5/avx512")
    monkeypatch.setattr(kernels, "cost_table", lambda: table)
    monkeypatch.setattr(kernels, "l2_bytes", lambda: 1024 * 1024)
    W = random_csr(1024, 1024, 0.1, dtype=np.float32)
    X = _half_dead(1024, 32, 5)
    assert kernels.spmm_path(wsekern.pack(W), X) == "csr-skip-rows"
    np.testing.assert_allclose(kernels.spmm(wsekern.pack(W), X, n_threads=1),
                               W.toarray().astype(np.float64) @ X, rtol=1e-4, atol=1e-4)
    W = random_csr(1024, 1024, 0.5, dtype=np.float32)
    X = np.random.default_rng(6).standard_normal((1024, 128)).astype(np.float32)
    assert kernels.spmm_path(W, X) == "blas-densified"
    np.testing.assert_allclose(kernels.spmm(W, X, n_threads=1),
                               W.toarray().astype(np.float64) @ X, rtol=1e-3, atol=1e-3)


def test_dense_w_costs_follow_ws_size_against_l3():
    """zen5/avx512's dense-W figures in closed form: a W in half of L3 is scanned at
    dense_scan_cached an element, a bigger one at dense_scan, and BLAS (with its narrow-N
    term) then pays blas_stream a byte of W; float64 BLAS blas_fp64 times more."""
    t = costs._named("zen5/avx512")
    l3 = 32 << 20
    M = K = 1024
    N, d = 64, 0.2
    macs = M * K * N
    blas = macs * t.blas_mac * (1 + t.blas_narrow_n / N)
    sparse = d * macs * t.spmm_mac
    assert t.dense_w(M, K, K, N, d, 4, l3) == pytest.approx(
        (blas, M * K * 0.15 + sparse))
    assert t.dense_w(M, K, K, N, d, 8, l3) == pytest.approx(
        (blas * 1.16, M * K * 0.15 + sparse))
    M = K = 4096                      # 64 MiB of float32: past L3
    macs = M * K * N
    assert t.dense_w(M, K, K, N, d, 4, l3) == pytest.approx(
        (macs * t.blas_mac * (1 + t.blas_narrow_n / N) + M * K * 4 * 0.032,
         M * K * 0.33 + d * macs * t.spmm_mac))
    # a CPU whose L3 is not known: every W taken as streamed
    assert t.dense_w(M, K, K, N, d, 4, 0) == t.dense_w(M, K, K, N, d, 4, l3)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_zen5_avx512_scans_a_dense_w_held_in_cache(monkeypatch, dtype):
    """Dense W 1024^2 at 80 % zeros, N = 64 (4-8 MiB: in Zen 5's L3 between calls): the scan
    runs 0.06-0.2 ns an element, not the 0.33 of a W streamed from memory, and float64 BLAS
    2.5x float32's: dense-skip-zeros (whole calls, s25: fp32 0.50 against BLAS's 0.58-0.60
    ms, fp64 0.91-1.27 against 1.46-2.12); the one-rate row took BLAS. Product checked."""
    table = costs._named("zen5/avx512")
    monkeypatch.setattr(kernels, "cost_table", lambda: table)
    monkeypatch.setattr(kernels, "l3_bytes", lambda: 32 << 20, raising=False)
    rng = np.random.default_rng(7)
    W = rng.standard_normal((1024, 1024)).astype(dtype)
    W[rng.random(W.shape) < 0.8] = 0
    X = rng.standard_normal((1024, 64)).astype(dtype)
    assert kernels.spmm_path(W, X) == "dense-skip-zeros"
    np.testing.assert_allclose(kernels.spmm(W, X, n_threads=1),
                               W.astype(np.float64) @ X, rtol=1e-4, atol=1e-4)


def test_column_path_cost_counts_the_leftover_columns():
    """A column of X past the whole vectors takes a scalar pass over the live weights:
    spmm_scatter_tail each, and the call 5.5 us more than the CSR route's; a row that has
    not measured them prices every column per MAC."""
    t = costs._named("zen5/avx512")
    live, call = 1000, 5500
    assert t.column(live, 16, 16) == pytest.approx(call + live * 16 * t.spmm_scatter_mac)
    assert t.column(live, 4, 16) == pytest.approx(call + live * 4 * 0.48)
    assert t.column(live, 20, 16) == pytest.approx(
        call + live * (16 * t.spmm_scatter_mac + 4 * 0.48))
    assert t.column(live, 4, 8) == pytest.approx(call + live * 4 * 0.48)   # float64, AVX-512
    z3 = costs._named("zen3/avx2")
    assert z3.column(live, 4, 8) == pytest.approx(live * 4 * z3.spmm_scatter_mac)
    assert t.csr_weight(1) == 0.35 and t.csr_weight(64) == pytest.approx(64 * t.spmm_mac)
    assert z3.csr_weight(1) == z3.spmm_mac


@pytest.mark.parametrize("row", ["default/avx512", "zen4/avx512", "zen5/avx512"])
@pytest.mark.parametrize("n, path", [(4, "csr"), (8, "csr"), (1, "csc-skip-rows")])
def test_narrow_half_dead_x_takes_the_column_path_only_where_it_pays(monkeypatch, row, n,
                                                                       path):
    """Packed W 1024^2 at 90 % zeros, half of X's rows dead, float32 on AVX-512 (16 lanes):
    at N = 4 and 8 every column of the column path is a scalar pass (0.44-0.48 ns a live
    weight each, Zen 5, every path), so the CSR kernel wins (whole calls, s25: N = 4 0.085
    against 0.13 ms, N = 8 0.054-0.057 against 0.23-0.24); at N = 1 the column path's one
    pass beats the CSR kernel's 0.35 ns a weight (0.050-0.053 against 0.065-0.066). The
    Zen 4 row (every AVX-512 CPU the table does not know) took the column path at N = 2-16."""
    _packed_half_dead_takes(monkeypatch, row, 1024, n, path)


@pytest.mark.parametrize("row", ["default/avx512", "zen5/avx512"])
@pytest.mark.parametrize("n", [1, 16])
def test_small_w_half_dead_x_stays_on_the_csr_kernel(monkeypatch, row, n):
    """Packed W 128^2 at 90 % zeros, half of X's rows dead: the column path's call costs
    ~5.5 us more than the CSR route's (Zen 5, whole calls, s25: 12.2-13.7 against 6.8-10.4
    us at N = 1-32, 64^2-256^2); the Zen 4 row took it, 1.3-1.9x slower. Product checked."""
    _packed_half_dead_takes(monkeypatch, row, 128, n, "csr")


def _packed_half_dead_takes(monkeypatch, row, m, n, path):
    """A packed m^2 W at 90 % zeros times X (m, n) with half its rows dead takes ``path``
    under the cost row ``row``, float32 on AVX-512's 64-byte vectors, 1 MiB of L2; the
    product (the native route's) checked against NumPy."""
    table = costs._named(row)
    monkeypatch.setattr(kernels, "cost_table", lambda: table)
    monkeypatch.setattr(kernels, "l2_bytes", lambda: 1024 * 1024)
    monkeypatch.setattr(kernels, "_vector_bytes", lambda: 64, raising=False)
    W = random_csr(m, m, 0.1, dtype=np.float32)
    P = wsekern.pack(W)
    X = _half_dead(m, n, 8)
    assert kernels.spmm_path(P, X) == path
    np.testing.assert_allclose(kernels.spmm(P, X, n_threads=1),
                               W.toarray().astype(np.float64) @ X, rtol=1e-4, atol=1e-4)


def test_float64_densified_route_is_priced_as_measured_not_by_blas_fp64(monkeypatch):
    """``blas_fp64`` (fp64 BLAS over the CSR kernel's fp64 slowdown) prices a dense W
    (``dense_w``) but not the densified route: applied there it moved fp64 cells with X all
    live to the CSR route, 23 of 26 slower (s26 review_a10). A cell densified in fp32 stays
    densified in fp64 on the native route and the Python one alike."""
    M = K = N = 256
    W32 = random_csr(M, K, 0.5, dtype=np.float32)
    nnz = W32.nnz
    base = costs._named("zen3/avx2")
    scale = dict(densify=0.0, densify_nnz=0.0, densify_call=0.0, blas_small=0.0,
                 blas_narrow_n=0.0)
    # BLAS 0.8x the CSR kernel's time at fp32: densified wins there, and at fp64 too
    mac = nnz * N * base.spmm_mac / (M * K * N) * 0.8
    table = dataclasses.replace(base, blas_mac=mac, blas_fp64=1.5, **scale)
    assert table.densified(M, K, K, N, nnz, 8) == table.densified(M, K, K, N, nnz)
    assert table.dense_w(M, K, K, N, 0.5, 8)[0] == pytest.approx(
        1.5 * table.dense_w(M, K, K, N, 0.5, 4)[0], rel=1e-12)
    monkeypatch.setattr(kernels, "cost_table", lambda: table)
    X = np.random.default_rng(1).standard_normal((K, N))
    W64 = W32.astype(np.float64)
    assert kernels.spmm_path(W32, X.astype(np.float32)) == "blas-densified"
    assert kernels.spmm_path(W64, X) == "blas-densified"
    np.testing.assert_allclose(kernels.spmm(W64, X), W64.toarray() @ X, rtol=1e-12, atol=1e-12)


def test_blas_over_live_rows_pays_for_gathering_w():
    """BLAS over X's live rows of a dense W first reads W's finiteness and copies its kept
    columns (``blas_gather`` an element of W): priced on the dense-W route when rows are
    skipped, not when X is all live; the densified route densifies only the live columns
    (no gather: ``densify_live_nnz`` a weight instead)."""
    t = dataclasses.replace(costs._named("zen3/avx2"), blas_gather=0.5)
    plain = costs._named("zen3/avx2")
    M, K, N, nnz = 300, 200, 40, 1234
    for k_live, extra in ((K, 0.0), (150, M * K * 0.5)):
        assert t.dense_w(M, K, k_live, N, 0.3)[0] == pytest.approx(
            plain.dense_w(M, K, k_live, N, 0.3)[0] + extra, rel=1e-12)
        assert t.densified(M, K, k_live, N, nnz) == plain.densified(M, K, k_live, N, nnz)


def test_csr_sweep_is_a_ramp_in_density_for_wide_x_rows():
    """The CSR kernel's density term: none below SWEEP_FROM, ``spmm_sweep`` from SWEEP_TO,
    linear between; none for X rows under SWEEP_ROW_BYTES; weighed inside densified()
    against the CSR kernel's time at spmm_mac."""
    t = dataclasses.replace(costs._named("zen3/avx2"), spmm_sweep=0.4)
    mid = (costs.SWEEP_FROM + costs.SWEEP_TO) / 2
    for density, want in ((0.1, 0.0), (costs.SWEEP_FROM, 0.0), (mid, 0.2),
                          (costs.SWEEP_TO, 0.4), (0.95, 0.4)):
        assert t.csr_sweep(density, 64) == pytest.approx(want, abs=1e-12)
    assert t.csr_sweep(0.9, costs.SWEEP_ROW_BYTES // 4 - 1) == 0.0        # fp32, narrow
    assert t.csr_sweep(0.9, costs.SWEEP_ROW_BYTES // 8, 8) == pytest.approx(0.4)
    assert costs._named("zen3/avx2").csr_sweep(0.9, 256) == 0.0       # not measured: none
    M, K, k_live, N = 200, 300, 150, 64
    nnz = int(0.45 * M * K)
    plain = dataclasses.replace(t, spmm_sweep=0.0)
    sweep = t.csr_sweep(nnz / (M * K), N)
    assert sweep > 0
    assert t.densified(M, K, k_live, N, nnz) == pytest.approx(
        plain.densified(M, K, k_live, N, nnz) - nnz * k_live / K * N * t.spmm_mac * sweep,
        rel=1e-12)


@pytest.mark.parametrize("dead", [False, True])
def test_csr_sweep_moves_a_dense_enough_w_to_blas_on_both_routes(monkeypatch, dead):
    """W at 50 % zeros, X 256 columns: priced at spmm_mac alone the CSR kernel is the
    cheaper route (the table below puts BLAS 5 % above it), with the density term it is
    not: the native route (which declines a densified call) and the Python route move
    alike."""
    M = K = 256
    N = 256
    W = random_csr(M, K, 0.5, dtype=np.float32)
    nnz = W.nnz
    k_live = K // 2 if dead else K
    base = costs._named("zen3/avx2")
    free = dict(densify=0.0, densify_nnz=0.0, densify_live_nnz=0.0, densify_call=0.0,
                blas_small=0.0, blas_narrow_n=0.0)
    t_sparse = nnz * k_live / K * N * base.spmm_mac
    # BLAS 5 % above the CSR route as priced without the term (its compaction included)
    t_csr = t_sparse + base.csr_extra(M, K, k_live, N, nnz)
    flat = dataclasses.replace(base, blas_mac=t_csr / (M * k_live * N) * 1.05, **free)
    rising = dataclasses.replace(flat, spmm_sweep=0.3)
    assert flat.densified(M, K, k_live, N, nnz) > t_sparse > rising.densified(
        M, K, k_live, N, nnz)
    X = np.random.default_rng(4).standard_normal((K, N)).astype(np.float32)
    if dead:
        X[1::2] = 0
    for table, path in ((flat, "csr-skip-rows" if dead else "csr"),
                        (rising, "blas-skip-rows-densified" if dead else "blas-densified")):
        monkeypatch.setattr(kernels, "cost_table", lambda table=table: table)
        assert kernels.spmm_path(W, X) == path
        native = _spmm_native(W, X)
        assert (native is not None) == path.startswith("csr")
        np.testing.assert_allclose(kernels.spmm(W, X, n_threads=1),
                                   W.toarray().astype(np.float64) @ X, rtol=1e-4, atol=1e-4)


def test_csr_extra_is_the_compaction_or_the_dead_rows_and_the_density_term():
    """What the CSR route costs past nnz * k_live / K * N * spmm_mac (the figure the routes
    weigh densifying against): X all live, nothing (bar the density term); X's rows dead
    and compaction paying (kernels' compact_pays), csr_compact a weight; not paying, the
    dead rows' multiply-adds."""
    t = costs._named("zen3/avx2")
    M, K, N, nnz = 300, 200, 160, 1234
    assert t.csr_extra(M, K, K, N, nnz) == 0.0
    k_live = 120                       # compaction pays: 2.0 < 0.4 * 160 * 0.075
    assert t.csr_compact < (K - k_live) / K * N * t.spmm_mac
    assert t.csr_extra(M, K, k_live, N, nnz) == pytest.approx(nnz * t.csr_compact, rel=1e-12)
    n = 4                              # it does not: the kernel multiplies every row
    assert not t.csr_compact < (K - k_live) / K * n * t.spmm_mac
    assert t.csr_extra(M, K, k_live, n, nnz) == pytest.approx(
        nnz * (K - k_live) / K * n * t.spmm_mac, rel=1e-12)
    s = dataclasses.replace(t, spmm_sweep=0.3)
    dense = int(0.6 * M * K)           # past SWEEP_TO: the whole term
    assert s.csr_extra(M, K, K, N, dense) == pytest.approx(
        dense * N * t.spmm_mac * 0.3, rel=1e-12)
    assert s.csr_extra(M, K, k_live, N, dense) == pytest.approx(
        dense * (t.csr_compact + k_live / K * N * t.spmm_mac * 0.3), rel=1e-12)
