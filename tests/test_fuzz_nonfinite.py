"""NaN and inf on every forced path: spmm against scipy.sparse (a stored value multiplies as
IEEE says, an unstored zero is not multiplied), conv2d against the dense IEEE reference
(torch's answer), the event simulation against the CPU kernel, max pooling against torch's
rule."""
import dataclasses

import numpy as np
import pytest
import scipy.sparse as sps
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_conv import conv_reference

import wsekern
from wsekern import conv as conv_mod
from wsekern import kernels

SETTINGS = settings(max_examples=60, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.function_scoped_fixture])

# Dispatcher costs (lower case: fields of the cost table) and constants (upper case: module
# attributes of kernels) that force each spmm path (monkeypatched; a renamed one fails).
SPMM_PATHS = {
    "blas": dict(blas_mac=-1.0, ZERO_ROW_SKIP_FRACTION=2.0),
    "blas-skip-rows": dict(blas_mac=-1.0, ZERO_ROW_SKIP_FRACTION=0.0),
    "dense-skip-zeros": dict(blas_mac=1e9, ZERO_ROW_SKIP_FRACTION=2.0),
    "dense-skip-zeros-rows": dict(blas_mac=1e9, ZERO_ROW_SKIP_FRACTION=0.0),
    "blas-densified": dict(densify=0.0, blas_mac=-1.0, ZERO_ROW_SKIP_FRACTION=2.0),
    "csr-sparse-x": dict(densify=1e9, SPARSE_X_DENSITY=2.0),
    "csr": dict(densify=1e9, SPARSE_X_DENSITY=-1.0, ZERO_ROW_SKIP_FRACTION=2.0),
    "csr-skip-rows": dict(densify=1e9, csr_compact=-1.0, SPARSE_X_DENSITY=-1.0,
                          ZERO_ROW_SKIP_FRACTION=0.0),
    # Taken only by a packed W with finite values: else the CSR paths above.
    "csc-skip-rows": dict(densify=1e9, spmm_scatter_mac=-1.0, SPARSE_X_DENSITY=-1.0,
                          ZERO_ROW_SKIP_FRACTION=0.0),
}
DENSE_W_PATHS = {"blas", "blas-skip-rows", "dense-skip-zeros", "dense-skip-zeros-rows"}
SPECIAL = [np.nan, np.inf, -np.inf]


def _force(monkeypatch, path):
    costs = {k: v for k, v in SPMM_PATHS[path].items() if k.islower()}
    table = dataclasses.replace(kernels.cost_table(), **costs)
    monkeypatch.setattr(kernels, "cost_table", lambda simd=None: table)
    for name, value in SPMM_PATHS[path].items():
        if name.isupper():
            monkeypatch.setattr(kernels, name, value)


def _sprinkle(rng, a, fraction):
    """Put NaN/inf at a random ``fraction`` of the entries of ``a`` (in place)."""
    hit = rng.random(a.shape) < fraction
    a[hit] = rng.choice(SPECIAL, size=int(hit.sum()))
    return a


@st.composite
def nonfinite_problems(draw):
    M, K, N = draw(st.integers(1, 12)), draw(st.integers(1, 12)), draw(st.integers(1, 6))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    Wd = rng.standard_normal((M, K)) * (rng.random((M, K)) < draw(st.sampled_from([0.1, 0.5,
                                                                                     0.95])))
    _sprinkle(rng, Wd, draw(st.sampled_from([0.0, 0.05, 0.2])))
    X = rng.standard_normal((K, N)) * (rng.random((K, N)) < draw(st.sampled_from([0.05, 0.5,
                                                                                    1.0])))
    X[rng.random(K) < draw(st.sampled_from([0.0, 0.5]))] = 0          # dead rows (ReLU)
    _sprinkle(rng, X, draw(st.sampled_from([0.0, 0.05, 0.2])))
    # A sparse W keeps some explicit zeros: stored, so they multiply (0 * inf = NaN).
    stored = (Wd != 0) | (rng.random((M, K)) < 0.1)
    return Wd.astype(dtype), stored, X.astype(dtype), draw(st.booleans())


@pytest.mark.parametrize("path", list(SPMM_PATHS))
@SETTINGS
@given(problem=nonfinite_problems())
def test_spmm_nonfinite_on_every_forced_path(monkeypatch, path, problem):
    Wd, stored, X, transpose = problem
    rows, cols = np.nonzero(stored)
    Ws = sps.csr_array((Wd[rows, cols], (rows, cols)), shape=Wd.shape)   # explicit zeros kept
    if path in DENSE_W_PATHS:
        operands = [(Wd, sps.csr_array(Wd.astype(np.float64)))]          # zeros not stored
    else:
        operands = [(Ws, Ws), (wsekern.pack(Ws), Ws)]
    _force(monkeypatch, path)
    for W, stored_form in operands:
        Wop = stored_form.T if transpose else stored_form
        Xop = X if not transpose else np.resize(X, (Wop.shape[1], X.shape[1]))
        expected = sps.csr_array(Wop.astype(np.float64)) @ Xop.astype(np.float64)
        with np.errstate(invalid="ignore", over="ignore"):
            got = wsekern.spmm(W, Xop, transpose=transpose)
        tol = 1e-4 if got.dtype == np.float32 else 1e-10
        np.testing.assert_allclose(got, expected, rtol=tol, atol=tol)  # NaN/inf positions too


def test_blas_densified_does_not_multiply_unstored_zeros_by_inf():
    """Issue 12 defect 4: W 90% dense, one inf in X; SciPy gives 0 where W is not stored."""
    rng = np.random.default_rng(0)
    W = sps.random_array((200, 200), density=0.9, rng=rng, format="csr")
    X = rng.standard_normal((200, 64))
    X[3, 5] = np.inf
    got = wsekern.spmm(W, X)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(W @ X))
    assert not np.isnan(got).any()             # positive weights times +inf: inf, never NaN
    assert np.isinf(got[:, 5]).sum() == (W.toarray()[:, 3] != 0).sum() > 0


def test_every_spmm_path_is_reached(monkeypatch):
    """The forcing table above does force each path (so the property test covers them)."""
    rng = np.random.default_rng(1)
    Wd = rng.standard_normal((30, 40)) * (rng.random((30, 40)) < 0.5)
    X = rng.standard_normal((40, 8))
    X[::3] = 0
    for path in SPMM_PATHS:
        with monkeypatch.context() as m:
            _force(m, path)
            W = Wd if path in DENSE_W_PATHS else sps.csr_array(Wd)
            W = wsekern.pack(W) if path == "csc-skip-rows" else W
            Xp = np.where(rng.random(X.shape) < 0.01, X, 0) if path == "csr-sparse-x" else X
            assert wsekern.spmm_path(W, Xp) == path


# -- conv2d: one contract on every path ------------------------------------------------------
CONV_PATHS = ["auto", "direct", "input-sparse", "im2col-blas"]


def _force_conv(monkeypatch, path):
    if path == "direct":
        monkeypatch.setattr(conv_mod, "DIRECT_FIXED", -1e9)
    elif path == "input-sparse":
        monkeypatch.setattr(conv_mod, "INPUT_FIXED", -1e9)
        monkeypatch.setattr(conv_mod, "INPUT_MIN_CHANNELS", 1)
    elif path == "im2col-blas":
        monkeypatch.setattr(conv_mod, "DIRECT_FIXED", 1e9)
        monkeypatch.setattr(conv_mod, "INPUT_FIXED", 1e9)


@pytest.mark.parametrize("path", CONV_PATHS)
@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**16), stride=st.integers(1, 3), padding=st.integers(0, 1),
       special_x=st.sampled_from([0.0, 0.05]), special_w=st.sampled_from([0.0, 0.1]))
def test_conv2d_nonfinite_on_every_forced_path(monkeypatch, path, seed, stride, padding,
                                                special_x, special_w):
    """The dense IEEE answer (as torch computes it) whatever the path: a zero weight meets
    an inf pixel as NaN, an inf weight meets a zero pixel (padding too) as NaN."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, 3, 6, 6)) * (rng.random((2, 3, 6, 6)) < 0.5)
    w = rng.standard_normal((4, 3, 3, 3)) * (rng.random((4, 3, 3, 3)) < 0.3)
    _sprinkle(rng, x, special_x)
    _sprinkle(rng, w, special_w)
    _force_conv(monkeypatch, path)
    with np.errstate(invalid="ignore"):
        got = wsekern.conv2d(x, w, stride=stride, padding=padding)
        expected = conv_reference(x, w, None, (stride, stride), (padding, padding), (1, 1), 1)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10)


def test_conv2d_nan_count_does_not_depend_on_the_path(monkeypatch):
    """Issue 12: one inf pixel and a sparse kernel gave 24 NaNs on im2col, 6 or 1 direct."""
    x = np.ones((1, 2, 5, 5))
    x[0, 0, 2, 2] = np.inf
    w = np.zeros((3, 2, 3, 3))
    w[0, 0, 1, 1] = 1.0
    counts = set()
    for path in CONV_PATHS:
        with monkeypatch.context() as m:
            _force_conv(m, path)
            with np.errstate(invalid="ignore"):
                counts.add(int(np.isnan(wsekern.conv2d(x, w, padding=1)).sum()))
    # Every filter meets the inf pixel in 9 windows; filter 0 there by 1 * inf = inf once.
    assert counts == {3 * 9 - 1}
    torch = pytest.importorskip("torch")
    expected = torch.nn.functional.conv2d(torch.tensor(x), torch.tensor(w), padding=1).numpy()
    assert int(np.isnan(expected).sum()) == 3 * 9 - 1


def test_conv2d_backward_masked_gradient_is_zero_even_next_to_nan():
    """A masked weight's gradient is zero, not NaN * 0 (the BLAS path masked by multiplying)."""
    x = np.ones((1, 1, 4, 4))
    x[0, 0, 0, 0] = np.nan          # only tap (0, 0) ever reads it
    w = np.ones((1, 1, 2, 2))
    mask = np.array([[[[False, True], [True, True]]]])
    with np.errstate(invalid="ignore"):
        _, gw, _ = wsekern.conv2d_backward(np.ones((1, 1, 3, 3)), x, w, weight_mask=mask)
    np.testing.assert_array_equal(gw, [[[[0.0, 9.0], [9.0, 9.0]]]])


# -- the event simulation computes what the CPU kernel computes -----------------------------
@pytest.mark.parametrize("mapping", ["weight-stationary", "activation-stationary"])
def test_event_mode_nan_weights_match_the_cpu_kernel(mapping):
    rng = np.random.default_rng(0)
    W = sps.random_array((8, 8), density=0.4, rng=rng, format="csr")
    W.data[:3] = [np.nan, np.inf, -np.inf]
    X = rng.standard_normal((8, 4))
    X[rng.random((8, 4)) < 0.5] = 0
    wafer = wsekern.Wafer(wsekern.WaferConfig.small(4, 4))
    cpu = wsekern.spmm(W, X)
    for region in [(1, 1), (2, 2), (4, 4)]:
        Y, _ = wafer.spmm(W, X, mode="event", mapping=mapping, region=region)
        np.testing.assert_allclose(Y, cpu, rtol=1e-12, atol=1e-12)


# -- max pooling: torch's rule for windows of -inf -------------------------------------------
@pytest.mark.parametrize("kernel, stride, padding", [(3, 1, 1), (2, 2, 1), (3, 2, 1), (2, 1, 1)])
def test_max_pool_backward_all_minus_inf_windows_keep_their_gradient(kernel, stride, padding):
    """Each window sends its gradient to its first input when all are -inf (torch keeps the
    first in-bounds index), never to the padding: the gradient sums to the output's."""
    from wsekern.pool import max_pool2d, max_pool2d_backward
    x = np.full((1, 2, 4, 4), -np.inf)
    y = max_pool2d(x, kernel, stride, padding)
    g = np.arange(1.0, y.size + 1).reshape(y.shape)
    gx = max_pool2d_backward(g, x, kernel, stride, padding)
    assert gx.sum() == g.sum()
    # The first in-bounds input of window (oh, ow) is (max(oh*s - p, 0), max(ow*s - p, 0)).
    expected = np.zeros_like(x)
    for oh in range(y.shape[2]):
        for ow in range(y.shape[3]):
            i, j = max(oh * stride - padding, 0), max(ow * stride - padding, 0)
            expected[:, :, i, j] += g[:, :, oh, ow]
    np.testing.assert_array_equal(gx, expected)
    torch = pytest.importorskip("torch")
    xt = torch.tensor(x, requires_grad=True)
    torch.nn.functional.max_pool2d(xt, kernel, stride, padding).backward(torch.tensor(g))
    np.testing.assert_array_equal(gx, xt.grad.numpy())


@pytest.mark.parametrize("mapping", ["weight-stationary", "activation-stationary"])
def test_event_mode_inf_activations_match_the_cpu_kernel(mapping):
    """inf/NaN in X meet only stored weights (dense blocks included), as on the CPU."""
    rng = np.random.default_rng(1)
    wafer = wsekern.Wafer(wsekern.WaferConfig.small(4, 4))
    for density in (0.3, 0.9):
        W = sps.random_array((8, 8), density=density, rng=rng, format="csr")
        X = rng.standard_normal((8, 4))
        X[X < 0] = 0
        X[0, 0], X[1, 1], X[2, 2] = np.inf, np.nan, -np.inf
        Y, _ = wafer.spmm(W, X, mode="event", mapping=mapping, region=(2, 2))
        np.testing.assert_allclose(Y, wsekern.spmm(W, X), rtol=1e-12, atol=1e-12)


def test_event_conv2d_nonfinite_matches_the_cpu_kernel():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((1, 2, 5, 5))
    x[0, 0, 2, 2], x[0, 1, 0, 4] = np.inf, np.nan
    w = rng.standard_normal((4, 1, 3, 3)) * (rng.random((4, 1, 3, 3)) < 0.4)
    w[1, 0, 1, 1] = np.inf
    wafer = wsekern.Wafer(wsekern.WaferConfig.small(4, 4))
    with np.errstate(invalid="ignore"):
        y, _ = wafer.conv2d(x, w, padding=1, groups=2, mode="event", region=(2, 2))
        np.testing.assert_allclose(y, wsekern.conv2d(x, w, padding=1, groups=2),
                                   rtol=1e-12, atol=1e-12)
