"""Review k9 (s25): checks of base25's, dispatch25's and conv25's work that their own tests
do not make."""
import os

import numpy as np
import pytest
from conftest import random_csr, run_in_child

import wsekern
from wsekern import costs, kernels


def test_planes_grad_weight_counts_every_image_with_fewer_threads_than_asked():
    # The OpenMP team can be smaller than num_threads (OMP_THREAD_LIMIT, OMP_DYNAMIC on a
    # loaded machine, a nested region): every image must still be summed once. Before the
    # fix, each thread took images B*t/n .. B*(t+1)/n of the n asked for, so a team of one
    # summed half of them (45 % off at 2 threads asked, no error).
    env = dict(os.environ, OMP_THREAD_LIMIT="1")
    res = run_in_child("""
        import numpy as np
        from wsekern import _conv, conv_planes
        rng = np.random.default_rng(0)
        shape, kshape = (6, 10, 10, 4), (3, 3, 4, 5)
        mask = rng.random(kshape) < 0.3
        x = rng.standard_normal(shape)
        g = conv_planes.PlaneGeometry.of(shape, kshape, ((1, 1), (1, 1)), (1, 1))
        pat = conv_planes.PlanePattern(mask, g)
        R = rng.standard_normal((shape[0], g.OH, g.OW, kshape[3]))
        G, _ = conv_planes.grad_planes(R, np.ones_like(R), False, g)
        X = conv_planes.to_planes(x, g)
        # independent reference: the weight gradient as a sum over taps
        xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
        ref = np.zeros(kshape)
        for i in range(3):
            for j in range(3):
                ref[i, j] = np.einsum("bhwc,bhwo->co", xp[:, i:i + g.OH, j:j + g.OW], R)
        ref = ref.ravel()[pat.flat_o]
        for th in (1, 2, 3):
            acc = np.zeros((th, pat.nnz))
            _conv.planes_grad_weight(X, G, pat.x_off, pat.o_ptr, g.reach, g.n_out, acc, th)
            np.testing.assert_allclose(acc.sum(axis=0), ref, rtol=1e-12, atol=1e-12)
        print("ok")
    """, env=env)
    assert res.returncode == 0 and res.stdout.split() == ["ok"], res.stderr[-2000:]


@pytest.mark.parametrize("row, vector_bytes, m, n", [
    ("zen5/avx2", 32, 1024, 4), ("zen5/avx2", 32, 128, 1), ("zen5/avx2", 32, 128, 16),
    ("zen5/baseline", 16, 128, 1), ("zen5/baseline", 16, 128, 16)])
def test_zen5_narrow_paths_keep_small_or_narrow_half_dead_x_on_the_csr_kernel(
        monkeypatch, row, vector_bytes, m, n):
    """Packed W at 90 % zeros, half of X's rows dead, float32, on Zen 5's AVX2 and baseline
    rows: the column path's leftover columns and its call cost what dispatch25 measured on
    this CPU for those paths (review k9, whole calls, Zen 5, load 12: AVX2 1024^2 x 4 130
    against 56 us; 128^2 x 1 and x 16 13-15 against 8-10 us on both paths), so the CSR
    kernel; the rows without those terms took the column path (1024^2 x 4 on the baseline
    is one whole vector, the column path's own case). Product checked."""
    table = costs._named(row)
    monkeypatch.setattr(kernels, "cost_table", lambda: table)
    monkeypatch.setattr(kernels, "l2_bytes", lambda: 1024 * 1024)
    monkeypatch.setattr(kernels, "_vector_bytes", lambda: vector_bytes)
    W = random_csr(m, m, 0.1, dtype=np.float32)
    P = wsekern.pack(W)
    rng = np.random.default_rng(8)
    X = rng.standard_normal((m, n)).astype(np.float32)
    X[rng.permutation(m)[:m // 2]] = 0
    assert kernels.spmm_path(P, X) == "csr"
    np.testing.assert_allclose(kernels.spmm(P, X, n_threads=1),
                               W.toarray().astype(np.float64) @ X, rtol=1e-4, atol=1e-4)


def test_switching_the_simd_path_keeps_the_cpus_block_mode():
    # The block mode belongs to the CPU (set once from its uarch by simd_path); the tests
    # that switch paths in one process (_spmm.simd_init(bits), then back) reset it to 0
    # for the rest of the process before the fix: on Zen 5 every later in-process test of
    # the baseline and AVX2 kernels then ran mode 0 only.
    res = run_in_child("""
        from wsekern import _spmm
        _spmm.simd_init(0, "zen5")
        _spmm.simd_init(1)
        a = _spmm.block_mode()
        _spmm.simd_init(0)
        b = _spmm.block_mode()
        _spmm.simd_init(0, "zen4")
        print(a, b, _spmm.block_mode())
    """)
    assert res.stdout.split() == ["1", "1", "0"], res.stderr[-2000:]
