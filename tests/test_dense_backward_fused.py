"""A Dense layer's backward: the activation's derivative times the upstream gradient and
the bias gradient in one native pass (src/_activations.pyx ``scale_column_sums``),
checked bit for bit against NumPy written out; bad shapes in a child process."""
import textwrap

import numpy as np
import pytest
from conftest import assert_refused_in_child

from wsekern import _activations
from wsekern.nn.layers.linear import linear
from wsekern.nn.tensor import Tensor


def _bits(a):
    return np.ascontiguousarray(a).view(np.uint8)


def _same(a, b):
    """The same values bit for bit, NaN at the same places (whatever its sign bit)."""
    nan = np.isnan(a)
    return (a.shape == b.shape and np.array_equal(nan, np.isnan(b))
            and np.array_equal(_bits(np.where(nan, 0, a)), _bits(np.where(nan, 0, b))))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(2048, 512), (1, 2), (2, 7), (100, 65), (3, 1000), (0, 5)])
def test_scale_column_sums_gives_numpy_bits(dtype, shape):
    rng = np.random.default_rng(0)
    g = rng.standard_normal(shape).astype(dtype)
    d = rng.standard_normal(shape).astype(dtype)
    if shape[0]:
        g[:, 0] = -0.0                               # signed zeros keep their sign
        g[0, -1], d[-1, 1] = np.inf, np.nan
    ref = g * d
    out, sums = np.empty_like(g), np.empty(shape[1], dtype)
    _activations.scale_column_sums(g, d, out, sums)
    assert _same(out, ref)
    assert _same(sums, ref.sum(axis=0))
    g2 = g.copy()                                    # out may be g itself
    _activations.scale_column_sums(g2, d, g2, sums)
    assert _same(g2, ref)


def test_scale_column_sums_refuses_mismatched_shapes_in_a_child_process():
    code = textwrap.dedent("""
        import numpy as np
        from wsekern import _activations as A
        f = np.float32
        g = np.zeros((4, 6), f)
        cases = [
            lambda: A.scale_column_sums(g, np.zeros((4, 5), f), np.zeros((4, 6), f),
                                        np.zeros(6, f)),
            lambda: A.scale_column_sums(g, np.zeros((3, 6), f), np.zeros((4, 6), f),
                                        np.zeros(6, f)),
            lambda: A.scale_column_sums(g, g, np.zeros((5, 6), f), np.zeros(6, f)),
            lambda: A.scale_column_sums(g, g, np.zeros((4, 6), f), np.zeros(5, f)),
            lambda: A.scale_column_sums(g, g, np.zeros((4, 6), f), np.zeros(7, f)),
        ]
    """)
    assert_refused_in_child(code, 5, (ValueError,), ("shape",))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("units", [1, 2, 9, 64])
def test_dense_backward_equals_numpy_written_out(dtype, units):
    """Two GELU layers of different sizes and a plain one in one graph: every gradient is
    NumPy's composition, bit for bit (one unit: NumPy's pairwise sum, not the fused one)."""
    rng = np.random.default_rng(units)
    x = rng.standard_normal((3, 5, 4)).astype(dtype)
    ws = [rng.standard_normal(s).astype(dtype) for s in ((4, 16), (16, units), (units, 3))]
    bs = [rng.standard_normal(s[1]).astype(dtype) for s in ((4, 16), (16, units), (units, 3))]
    g = rng.standard_normal((3, 5, 3)).astype(dtype)
    X = Tensor(x, requires_grad=True)
    Ws = [Tensor(w, requires_grad=True) for w in ws]
    Bs = [Tensor(b, requires_grad=True) for b in bs]
    h = linear(X, Ws[0], Bs[0], gelu=True)
    h = linear(h, Ws[1], Bs[1], gelu=True)
    y = linear(h, Ws[2], Bs[2])
    y.backward(g)

    from wsekern import _activations as A
    acts, ds = [x.reshape(15, 4)], []
    for w, b in zip(ws[:2], bs[:2]):
        pre = (acts[-1] @ w + b).reshape(-1)
        out, d = np.empty_like(pre), np.empty_like(pre)
        A.gelu(pre, out, d)
        acts.append(out.reshape(15, -1))
        ds.append(d.reshape(15, -1))
    gy = g.reshape(15, 3)
    want = {"W2": acts[2].T @ gy, "b2": gy.sum(axis=0)}
    gh = (gy @ ws[2].T) * ds[1]
    want.update(W1=acts[1].T @ gh, b1=gh.sum(axis=0))
    gh = (gh @ ws[1].T) * ds[0]
    want.update(W0=acts[0].T @ gh, b0=gh.sum(axis=0), x=(gh @ ws[0].T).reshape(x.shape))
    got = {"W0": Ws[0].grad, "W1": Ws[1].grad, "W2": Ws[2].grad, "b0": Bs[0].grad,
           "b1": Bs[1].grad, "b2": Bs[2].grad, "x": X.grad}
    for name, w in want.items():
        assert got[name].dtype == dtype
        assert np.array_equal(_bits(got[name]), _bits(w)), name
