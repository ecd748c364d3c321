import os

import numpy as np
import pytest
import scipy.sparse as sps

# The dispatcher's cost table follows the CPU; the tests' path assertions need one fixed row.
os.environ.setdefault("WSEKERN_COSTS", "zen3/avx2")

TOL = {np.dtype(np.float32): dict(rtol=1e-5, atol=1e-5),
       np.dtype(np.float64): dict(rtol=1e-12, atol=1e-12)}


def tol(dtype):
    return TOL[np.dtype(dtype)]


def random_csr(m, k, density, dtype=np.float64, index_dtype=np.int32, seed=0):
    """A CSR matrix with the requested density and index dtype (values in [-1, 1])."""
    rng = np.random.default_rng(seed)
    nnz = int(round(density * m * k))
    flat = rng.choice(m * k, size=nnz, replace=False) if m * k else np.zeros(0, int)
    rows, cols = np.divmod(flat, max(k, 1))
    values = rng.uniform(-1, 1, size=nnz).astype(dtype)
    A = sps.csr_array((values, (rows, cols)), shape=(m, k), dtype=dtype)
    A.indices = A.indices.astype(index_dtype)
    A.indptr = A.indptr.astype(index_dtype)
    return A


def reference(W, X, transpose=False):
    """Dense NumPy reference in float64."""
    Wd = W.toarray() if sps.issparse(W) else np.asarray(W)
    Wd = Wd.T if transpose else Wd
    return Wd.astype(np.float64) @ np.asarray(X, dtype=np.float64)


@pytest.fixture(params=[np.int32, np.int64], ids=["i32", "i64"])
def index_dtype(request):
    """Pushes both index widths through every kernel that takes it."""
    return request.param


@pytest.fixture
def paths():
    """Set both step kernels' SIMD path for a test (``paths("baseline")``), and put back the
    ones in use."""
    from wsekern import _screen, _step_cost
    before = _step_cost.use_simd_path("avx512"), _screen.use_simd_path("avx512")

    def use(path):
        return _step_cost.use_simd_path(path), _screen.use_simd_path(path)
    yield use
    _step_cost.use_simd_path(before[0])
    _screen.use_simd_path(before[1])


@pytest.fixture
def keras():
    """Real Keras 3 on the PyTorch backend, the oracle; skips where keras or torch is absent."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    pytest.importorskip("torch")
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "torch":
        pytest.skip(f"Keras runs on {keras.backend.backend()} here, not torch")
    return keras


def keras_twins(keras, build, run):
    """``run(K, model)`` on the same model built in Keras and in wsekern.nn (``build(K)``),
    ours from Keras's initial weights. Returns (Keras's result, ours)."""
    from wsekern import nn

    out, weights = [], None
    for K in (keras, nn):
        keras.utils.set_random_seed(0)
        model = build(K)
        if weights is None:
            weights = model.get_weights()
        else:
            model.set_weights(weights)
        out.append(run(K, model))
    return out


def run_in_child(code, *, limit_gb=None, env=None, timeout=120):
    """Run ``code`` in a fresh interpreter, so that a segfault or an abort fails the calling
    test instead of killing the run. ``limit_gb`` caps the child's address space (an absurd
    allocation then fails instead of swapping); ``env`` replaces its environment."""
    import subprocess
    import sys
    import textwrap
    code = textwrap.dedent(code)
    if limit_gb is not None:
        code = ("import resource\nresource.setrlimit(resource.RLIMIT_AS, "
                f"({limit_gb} << 30, {limit_gb} << 30))\n" + code)
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=timeout)


def run_on_simd(simd, code, *, timeout=120, env_pop=()):
    """``code`` run by :func:`run_in_child` with the SIMD path ``simd`` forced
    (WSEKERN_SIMD), the variables ``env_pop`` unset; skips the calling test where this CPU
    and build do not run ``simd`` (an x86 path on aarch64, AVX-512 on an AVX2 CPU)."""
    from wsekern.simd_path import simd_available
    if simd not in simd_available():
        pytest.skip(f"this CPU does not run the {simd} path")
    env = dict(os.environ, WSEKERN_SIMD=simd)
    for name in env_pop:
        env.pop(name, None)
    return run_in_child(code, env=env, timeout=timeout)


def assert_child_says(proc, words):
    """The child exited 0 having printed exactly ``words`` (split on whitespace)."""
    assert proc.returncode == 0 and proc.stdout.split() == list(words), (
        proc.stdout[-2000:] + proc.stderr[-2000:])


_REFUSAL_LOOP = """
for _i, _case in enumerate(cases):
    try:
        _case()
    except {errors} as _e:
        _msg = str(_e)
        if not _msg or ({needles!r} and not any(n in _msg for n in {needles!r})):
            raise SystemExit(f"case {{_i}}: {{type(_e).__name__}} with no clear message: "
                             f"{{_msg!r}}")
    else:
        raise SystemExit(f"case {{_i}} was accepted")
print("refused", len(cases))
"""


def assert_refused_in_child(code, count, errors=(ValueError,), needles=(), **child):
    """``code`` defines ``cases``, a list of callables that must each raise one of ``errors``
    (builtin exception classes) with a message holding one of ``needles`` (any message
    when empty). Runs in a child process (see ``run_in_child``); ``count`` guards against
    a list that lost its cases."""
    import textwrap
    names = "(" + ", ".join(e.__name__ for e in errors) + ",)"
    loop = _REFUSAL_LOOP.format(errors=names, needles=tuple(needles))
    proc = run_in_child(textwrap.dedent(code) + loop, **child)
    assert proc.returncode == 0 and proc.stdout.strip() == f"refused {count}", (
        proc.stdout[-2000:] + proc.stderr[-2000:])


def nhwc_windows(x, g):
    """(B, OH, OW, kh, kw, C) of x padded by the geometry (float64), zeros in the padding."""
    (sh, sw), (t, l), (dh, dw) = g.stride, g.pad, g.dilation
    bottom = max((g.OH - 1) * sh + (g.kh - 1) * dh + 1 - g.H - t, 0)
    right = max((g.OW - 1) * sw + (g.kw - 1) * dw + 1 - g.W - l, 0)
    xp = np.pad(x.astype(np.float64), ((0, 0), (t, bottom), (l, right), (0, 0)))
    out = np.empty((g.B, g.OH, g.OW, g.kh, g.kw, g.C))
    for i in range(g.kh):
        for j in range(g.kw):
            out[:, :, :, i, j] = xp[:, i * dh:i * dh + (g.OH - 1) * sh + 1:sh,
                                    j * dw:j * dw + (g.OW - 1) * sw + 1:sw]
    return out
