"""The fused exact GELU (src/_activations.pyx) against SciPy's erf, finite differences
and, where installed, torch."""
import numpy as np
import pytest
from conftest import run_in_child
from scipy.special import erf

from wsekern.nn import activations
from wsekern.nn.tensor import Tensor


def gelu_reference(v):
    v = v.astype(np.float64)
    cdf = 0.5 * (1 + erf(v / np.sqrt(2)))
    return v * cdf, cdf + v * np.exp(-0.5 * v * v) / np.sqrt(2 * np.pi)


@pytest.mark.parametrize("dtype, tol", [(np.float32, 2e-6), (np.float64, 1e-14)])
@pytest.mark.parametrize("shape", [(0,), (7,), (3, 5, 11), (2, 0, 4)])
def test_gelu_matches_erf_formula(dtype, tol, shape):
    v = (np.random.default_rng(0).standard_normal(shape) * 4).astype(dtype)
    x = Tensor(v, requires_grad=True)
    y = activations.gelu(x)
    assert y.dtype == dtype and y.shape == shape
    R = np.random.default_rng(1).standard_normal(shape).astype(dtype)
    (y * Tensor(R)).sum().backward()
    out, d = gelu_reference(v)
    np.testing.assert_allclose(y.data, out, rtol=tol, atol=tol)
    np.testing.assert_allclose(x.grad, R * d, rtol=tol * 10, atol=tol * 10)


def test_gelu_gradient_by_finite_differences():
    v = np.random.default_rng(2).standard_normal(50) * 3
    x = Tensor(v, requires_grad=True)
    activations.gelu(x).sum().backward()
    num = (gelu_reference(v + 1e-6)[0] - gelu_reference(v - 1e-6)[0]) / 2e-6
    np.testing.assert_allclose(x.grad, num, rtol=1e-6, atol=1e-8)


def test_gelu_non_finite_and_strided_input():
    v = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 40.0, -40.0], dtype=np.float32)
    y = activations.gelu(Tensor(v)).data
    assert np.isnan(y[0]) and y[1] == np.inf and np.isnan(y[2])      # -inf * 0, as v * cdf
    np.testing.assert_array_equal(y[3:], [0, 0, 40, 0])
    s = np.arange(24, dtype=np.float32).reshape(4, 6)[:, ::2] - 5    # not contiguous
    np.testing.assert_allclose(activations.gelu(Tensor(s)).data, gelu_reference(s)[0],
                               rtol=2e-6, atol=2e-6)


def test_gelu_matches_torch_when_installed():
    torch = pytest.importorskip("torch")
    v = (np.random.default_rng(3).standard_normal((64, 33)) * 3).astype(np.float32)
    x = Tensor(v, requires_grad=True)
    activations.gelu(x).sum().backward()
    vt = torch.from_numpy(v).requires_grad_()
    yt = torch.nn.functional.gelu(vt)
    yt.sum().backward()
    np.testing.assert_allclose(activations.gelu(Tensor(v)).data, yt.detach().numpy(),
                               rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(x.grad, vt.grad.numpy(), rtol=1e-5, atol=1e-6)


@pytest.fixture(params=["avx512", "avx2", "baseline"])
def simd_path(request):
    """Each float32 path of src/wsk_vmath.h (one the CPU lacks skipped)."""
    from wsekern import _activations
    before = _activations.SIMD_PATH
    if _activations.use_simd_path(request.param) != request.param:
        _activations.use_simd_path(before)
        pytest.skip(f"this CPU cannot run the {request.param} path")
    yield request.param
    _activations.use_simd_path(before)


def test_gelu_float32_polynomials_on_both_paths(simd_path):
    """The vectorised Phi (wsk_vmath.h) against SciPy's erfc in double, over the range
    where it switches between its two forms and far into both tails; every length mod 8
    so the padded last vector is covered."""
    from scipy.special import erfc

    from wsekern import _activations
    v = np.concatenate([np.linspace(-14, 14, 280001), [0.6 * np.sqrt(2)] * 3,
                        np.nextafter(np.float32(0.6 * np.sqrt(2)), [0, 2])]).astype(np.float32)
    for n in (len(v), len(v) - 1, len(v) - 3, 5, 1):
        out, d = np.empty(n, np.float32), np.empty(n, np.float32)
        _activations.gelu(v[:n], out, d, 1)
        vd = v[:n].astype(np.float64)
        phi = 0.5 * erfc(-vd / np.sqrt(2))
        pdf = np.exp(-0.5 * vd * vd) / np.sqrt(2 * np.pi)
        np.testing.assert_allclose(out, vd * phi, rtol=1e-6, atol=2e-7 * np.abs(vd).max())
        np.testing.assert_allclose(d, phi + vd * pdf, rtol=0, atol=4e-7)
        # the negative tail keeps its relative precision (0.5 * (1 + erff) loses it all)
        tail = (vd < -3) & (vd > -9)
        np.testing.assert_allclose(out[tail], (vd * phi)[tail], rtol=1e-5)


def test_gelu_float32_non_finite_on_both_paths(simd_path):
    from wsekern import _activations
    v = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-30, 87.0, -87.0, 100.0, -100.0,
                  np.finfo(np.float32).max, -np.finfo(np.float32).max], dtype=np.float32)
    out, d = np.empty_like(v), np.empty_like(v)
    _activations.gelu(v, out, d, 1)
    assert np.isnan(out[0]) and np.isnan(d[0])
    assert out[1] == np.inf and np.isnan(out[2])            # inf * 1 and -inf * 0
    np.testing.assert_array_equal(out[3:], np.array([0, 0, v[5] / 2, 87, 0, 100, 0, v[10], 0],
                                                    dtype=np.float32))
    np.testing.assert_array_equal(d[3:10], [0.5, 0.5, 0.5, 1, 0, 1, 0])


def test_gelu_float32_avx512_gives_the_avx2_bits():
    """The 16-lane version runs the 8-lane one's operations lane by lane: the same bits,
    over both forms, both tails, non-finite values and every length mod 16."""
    from wsekern import _activations
    before = _activations.SIMD_PATH
    try:
        if _activations.use_simd_path("avx512") != "avx512":
            pytest.skip("this CPU cannot run the avx512 path")
        rng = np.random.default_rng(3)
        v = np.concatenate([np.linspace(-14, 14, 20001), rng.standard_normal(4096) * 3,
                            [np.nan, np.inf, -np.inf, 0.0, -0.0, 87.0, -87.0, 100.0]])
        v = v.astype(np.float32)
        for n in [len(v)] + list(range(1, 34)):
            got = [np.empty(n, np.float32) for _ in range(4)]
            _activations.use_simd_path("avx512")
            _activations.gelu(v[-n:], got[0], got[1], 1)
            _activations.use_simd_path("avx2")
            _activations.gelu(v[-n:], got[2], got[3], 1)
            np.testing.assert_array_equal(got[0], got[2])
            np.testing.assert_array_equal(got[1], got[3])
    finally:
        _activations.use_simd_path(before)


def test_use_simd_path_refuses_unknown_names():
    from wsekern import _activations
    with pytest.raises(ValueError, match="'avx512', 'avx2' or 'baseline'"):
        _activations.use_simd_path("avx")
    with pytest.raises(ValueError, match="'avx512', 'avx2' or 'baseline'"):
        _activations.use_simd_path("best")


def test_gelu_refuses_outputs_shorter_than_x_in_a_child_process():
    """The loops write len(x) values into out and d (a short out used to be written past)."""
    code = ("import numpy as np\nfrom wsekern import _activations as A\n"
            "for dt in (np.float32, np.float64):\n"
            "    x = np.ones(1 << 16, dt)\n"
            "    for out, d in ((np.empty(4, dt), np.empty(1 << 16, dt)),\n"
            "                   (np.empty(1 << 16, dt), np.empty(4, dt))):\n"
            "        try:\n"
            "            A.gelu(x, out, d, 1)\n"
            "        except ValueError as e:\n"
            "            assert 'x' in str(e) and '4' in str(e), str(e)\n"
            "        else:\n"
            "            raise SystemExit('accepted')\n"
            "print('ok')\n")
    proc = run_in_child(code)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stdout + proc.stderr
