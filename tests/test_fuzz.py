"""Property tests: random shapes, densities and raw CSR arrays never crash the kernels."""
import numpy as np
import pytest
import scipy.sparse as sps
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import wsekern

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@st.composite
def problems(draw):
    M = draw(st.integers(0, 40))
    K = draw(st.integers(0, 40))
    N = draw(st.integers(0, 40))
    density = draw(st.sampled_from([0.0, 0.01, 0.1, 0.5, 1.0]))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((M, K)) * (rng.random((M, K)) < density)
    X = rng.standard_normal((K, N)) * (rng.random((K, N)) < draw(st.sampled_from([0.01, 0.5, 1.0])))
    X[rng.random(K) < draw(st.sampled_from([0.0, 0.5]))] = 0
    return W.astype(dtype), X.astype(dtype), draw(st.booleans()), draw(st.sampled_from([1, 2]))


@SETTINGS
@given(problems())
def test_spmm_equals_reference(problem):
    W, X, transpose, threads = problem
    Wop = W.T if transpose else W
    if Wop.shape[1] != X.shape[0]:
        X = np.ones((Wop.shape[1], X.shape[1]), dtype=X.dtype)
    expected = Wop.astype(np.float64) @ X.astype(np.float64)
    tol = 1e-4 if W.dtype == np.float32 else 1e-11
    for op in (W, sps.csr_array(W), wsekern.pack(W), sps.coo_array(W)):
        got = wsekern.spmm(op, X, transpose=transpose, n_threads=threads)
        np.testing.assert_allclose(got, expected, rtol=tol, atol=tol)


@SETTINGS
@given(n_rows=st.integers(0, 6), n_cols=st.integers(0, 6),
       indptr=hnp.arrays(np.int64, st.integers(0, 8), elements=st.integers(-3, 12)),
       indices=hnp.arrays(np.int64, st.integers(0, 12), elements=st.integers(-3, 9)),
       index_dtype=st.sampled_from([np.int32, np.int64]))
def test_raw_csr_arrays_never_crash(n_rows, n_cols, indptr, indices, index_dtype):
    """Any raw arrays: either a clear ValueError, or the answer of an explicit loop."""
    A = sps.csr_array((n_rows, n_cols))
    A.indptr = indptr.astype(index_dtype)
    A.indices = indices.astype(index_dtype)
    A.data = np.arange(1.0, len(indices) + 1)
    X = np.arange(1.0, 2 * n_cols + 1).reshape(n_cols, 2)
    try:
        got = wsekern.spmm(A, X)
    except ValueError as exc:
        assert str(exc)
        return
    expected = np.zeros((n_rows, 2))
    for i in range(n_rows):
        for p in range(indptr[i], indptr[i + 1]):
            expected[i] += A.data[p] * X[indices[p]]
    np.testing.assert_allclose(got, expected)


@SETTINGS
@given(problems(), st.integers(0, 20))
def test_sddmm_equals_reference(problem, D):
    W, _, _, threads = problem
    rng = np.random.default_rng(D)
    A = rng.standard_normal((W.shape[0], D)).astype(W.dtype)
    B = rng.standard_normal((W.shape[1], D)).astype(W.dtype)
    S = wsekern.sddmm(A, B, sps.csr_array(W), n_threads=threads)
    expected = (A.astype(np.float64) @ B.T.astype(np.float64)) * (W != 0)
    tol = 1e-4 if W.dtype == np.float32 else 1e-11
    np.testing.assert_allclose(S.toarray(), expected, rtol=tol, atol=tol)


@st.composite
def conv_problems(draw):
    groups = draw(st.sampled_from([1, 2]))
    C = groups * draw(st.integers(1, 3))
    O = groups * draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    H = draw(st.integers(max(1, (kh - 1) * dilation[0] + 1 - 2 * padding[0]), 9))
    W = draw(st.integers(max(1, (kw - 1) * dilation[1] + 1 - 2 * padding[1]), 9))
    B = draw(st.integers(1, 3))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    keep = draw(st.sampled_from([0.2, 1.0]))
    x = rng.standard_normal((B, C, H, W)) * (rng.random((B, C, H, W)) < keep)
    w = rng.standard_normal((O, C // groups, kh, kw)) * (rng.random((O, C // groups, kh, kw))
                                                       < draw(st.sampled_from([0.1, 1.0])))
    return x, w, dict(stride=stride, padding=padding, dilation=dilation, groups=groups)


@SETTINGS
@given(conv_problems(), st.sampled_from(["auto", "direct", "input-sparse", "im2col-blas"]))
def test_conv2d_equals_reference(problem, path):
    from test_conv import conv_reference

    from wsekern import conv as conv_mod
    x, w, kw = problem
    costs = {"direct": ("DIRECT_FIXED", -1e9), "input-sparse": ("INPUT_FIXED", -1e9)}
    saved = (conv_mod.DIRECT_FIXED, conv_mod.INPUT_FIXED, conv_mod.INPUT_MIN_CHANNELS)
    try:
        if path in costs:
            setattr(conv_mod, costs[path][0], costs[path][1])
            conv_mod.INPUT_MIN_CHANNELS = 1
        elif path == "im2col-blas":
            conv_mod.DIRECT_FIXED = conv_mod.INPUT_FIXED = 1e9
        got = wsekern.conv2d(x, w, **kw)
    finally:
        conv_mod.DIRECT_FIXED, conv_mod.INPUT_FIXED, conv_mod.INPUT_MIN_CHANNELS = saved
    np.testing.assert_allclose(got, conv_reference(x, w, None, kw["stride"], kw["padding"],
                                                   kw["dilation"], kw["groups"]),
                               rtol=1e-10, atol=1e-10)


@SETTINGS
@given(problems(), st.sampled_from(["weight-stationary", "activation-stationary"]),
       st.integers(1, 6), st.integers(1, 6), st.sampled_from(["fp16", "fp32"]))
def test_wafer_report_invariants_on_random_problems(problem, mapping, R, C, dtype):
    W, X, _, _ = problem
    if min(W.shape) == 0 or X.shape[1] == 0:
        return
    X = X[:W.shape[1]] if X.shape[0] >= W.shape[1] else np.ones((W.shape[1], X.shape[1]))
    cfg = wsekern.WaferConfig.small(6, 6, dtype=dtype)
    try:
        _, r = wsekern.Wafer(cfg).spmm(W, X, region=(R, C), mapping=mapping)
    except wsekern.SramOverflowError:
        return
    dense_useful = int(((W != 0).astype(np.int64) @ (X != 0).astype(np.int64)).sum())
    assert r.macs_useful == dense_useful <= r.macs_performed
    assert r.macs_performed + r.macs_skipped_weight + r.macs_skipped_activation == r.macs_dense
    assert r.cycles_lower <= r.cycles <= r.cycles_upper
    assert (r.sram_bytes <= cfg.sram_bytes).all()


@SETTINGS
@given(seed=st.integers(0, 2**16), H=st.integers(1, 5), k=st.integers(1, 3),
       pad=st.integers(0, 9), stride=st.integers(1, 12), dilation=st.integers(1, 3))
def test_conv2d_large_padding_and_stride(seed, H, k, pad, stride, dilation):
    """Padding and stride large against the input (the padding is then never built): the
    reference forward, and backward by the adjoint identities <gy, conv(x, w)> =
    <grad_x, x> = <grad_w, w> (conv2d is linear in each operand)."""
    from test_conv import conv_reference
    if (k - 1) * dilation + 1 > H + 2 * pad:
        return
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, 2, H, H))
    w = rng.standard_normal((3, 2, k, k)) * (rng.random((3, 2, k, k)) < 0.7)
    kw = dict(stride=stride, padding=pad, dilation=dilation)
    y = wsekern.conv2d(x, w, **kw)
    np.testing.assert_allclose(y, conv_reference(x, w, None, (stride,) * 2, (pad,) * 2,
                                                 (dilation,) * 2, 1), rtol=1e-10, atol=1e-10)
    gy = rng.standard_normal(y.shape)
    gx, gw, gb = wsekern.conv2d_backward(gy, x, w, **kw)
    inner = float((gy * y).sum())
    np.testing.assert_allclose([(gx * x).sum(), (gw * w).sum()], [inner, inner],
                               rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(gb, gy.sum(axis=(0, 2, 3)), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("fmt", ["csr", "csc", "bsr", "coo", "dia"])
@pytest.mark.parametrize("index_dtype", [np.int8, np.uint8, np.int16, np.uint16, np.uint32,
                                         np.uint64])
def test_narrow_and_unsigned_index_arrays(fmt, index_dtype):
    """Valid matrices whose index arrays are narrow or unsigned give the reference answer
    (SciPy negates a uint8 DIA offset in its transpose and got 1 where 2 is right)."""
    D = np.eye(6, 8) + 2 * np.eye(6, 8, 1) - 3 * np.eye(6, 8, -2)
    A = getattr(sps, f"{fmt}_array")(D)
    if fmt == "coo":
        A.coords = tuple(c.astype(index_dtype) for c in A.coords)
    elif fmt == "dia":
        A.offsets = A.offsets.astype(np.int64).astype(index_dtype)
    else:
        A.indices, A.indptr = A.indices.astype(index_dtype), A.indptr.astype(index_dtype)
    D_seen = D.copy()
    if fmt == "dia" and np.dtype(index_dtype).kind == "u":
        D_seen = np.eye(6, 8) + 2 * np.eye(6, 8, 1)      # offset -2 wrapped: a far diagonal
        D_seen += -3 * np.eye(6, 8, int(np.array(-2).astype(index_dtype)))
    for transpose in (False, True):
        Dop = D_seen.T if transpose else D_seen
        X = np.arange(1.0, Dop.shape[1] * 2 + 1).reshape(-1, 2)
        try:
            got = wsekern.spmm(A, X, transpose=transpose)
        except ValueError as exc:        # a wrapped offset far outside the matrix
            assert fmt == "dia" and "far outside" in str(exc)
            continue
        np.testing.assert_allclose(got, Dop @ X)
        np.testing.assert_allclose(wsekern.pack(A).toarray(), D_seen)
