"""A Dense layer's backward without its temporaries: the activation's derivative times the
upstream gradient and the bias gradient in one native pass (src/_activations.pyx
``scale_column_sums``) into a reused per-thread buffer, and Tensor.accumulate adding in
place into the sums it allocated during a backward pass. Checked against NumPy written out
(bit for bit) and for the ownership rules: an array handed in is never written, and a
gradient read after ``backward()`` never changes."""
import textwrap

import numpy as np
import pytest
from conftest import assert_refused_in_child

from wsekern import _activations
from wsekern.nn.layers.linear import linear
from wsekern.nn.tensor import Tensor, add, mul


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
    """Two GELU layers of different sizes and a plain one in one graph (the reused buffer
    serves each in turn): every gradient is NumPy's composition, bit for bit."""
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


def test_accumulate_sums_in_place_only_what_it_allocated_in_the_pass():
    rng = np.random.default_rng(1)
    x = Tensor(rng.standard_normal((4, 3)).astype(np.float32), requires_grad=True)
    parts = [rng.standard_normal((4, 3)).astype(np.float32) for _ in range(4)]
    kept = [p.copy() for p in parts]
    # x feeds four products: its gradient is the sum of four arrays in graph order
    ys = [mul(x, Tensor(p)) for p in parts]
    total = ys[0]
    for y in ys[1:]:
        total = add(total, y)
    total.backward(np.ones((4, 3), np.float32))
    assert np.allclose(x.grad, sum(kept), rtol=1e-6)
    for p, k in zip(parts, kept):                          # nothing handed in was written
        assert np.array_equal(p, k)
    # a later pass (another graph reaching x) adds a new array: the first is not touched
    first = x.grad
    first_copy = first.copy()
    q = rng.standard_normal((4, 3)).astype(np.float32)
    mul(x, Tensor(q)).backward(np.ones((4, 3), np.float32))
    assert np.array_equal(first, first_copy)
    assert x.grad is not first and np.array_equal(x.grad, first_copy + q)


def test_accumulate_outside_a_pass_never_writes_in_place():
    t = Tensor(np.zeros(3), requires_grad=True)
    a, b, c = np.ones(3), np.full(3, 2.0), np.full(3, 4.0)
    t.accumulate(a)
    t.accumulate(b)
    held = t.grad
    t.accumulate(c)
    assert np.array_equal(held, [3.0, 3.0, 3.0]) and np.array_equal(t.grad, [7.0, 7.0, 7.0])
    assert np.array_equal(a, [1.0, 1.0, 1.0]) and np.array_equal(b, [2.0, 2.0, 2.0])


def test_accumulate_in_a_pass_keeps_dtype_and_shape_rules():
    """A later gradient of another dtype or a broadcast shape is added as before (a new
    array), never squeezed into the owned one."""
    x = Tensor(np.ones((2, 3), np.float32), requires_grad=True)
    seen = []

    def backward(g):
        x.accumulate(np.ones((2, 3), np.float32))
        x.accumulate(np.ones((2, 3), np.float32))          # owned from here
        x.accumulate(np.full((2, 3), 0.5))                  # float64: a new float64 array
        seen.append(x.grad.dtype)
        x.accumulate(np.ones(3, np.float64))                # broadcast: new array
    y = Tensor(np.zeros(1), parents=(x,), backward=backward)
    y.backward(np.ones(1))
    assert seen == [np.dtype(np.float64)]
    assert x.grad.dtype == np.float64 and np.array_equal(x.grad, np.full((2, 3), 3.5))
