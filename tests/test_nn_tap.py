"""nn.tensor.tap: how a placed layer catches its output's gradient. An op's output is hooked
in place (no node added); the hook must see the whole gradient of the output (every
consumer's share), once, before the op's own backward runs, and change no gradient.
References: the same graph without the tap, and NumPy's closed forms."""
import numpy as np

from wsekern.nn.tensor import Tensor, tap


def _graph(hook):
    """L = sum(y * a) + sum(y * b) with y = x * w: two consumers of y (an op's output)."""
    rng = np.random.default_rng(3)
    x = Tensor(rng.standard_normal((4, 5)), requires_grad=True)
    w = Tensor(rng.standard_normal((4, 5)), requires_grad=True)
    a, b = rng.standard_normal((2, 4, 5))
    y = x * w
    if hook is not None:
        y = tap(y, hook)
    loss = (y * a).sum() + (y * b).sum()
    loss.backward()
    return x, w, a, b


def test_tap_sees_the_whole_gradient_once_and_changes_none():
    seen = []
    x, w, a, b = _graph(lambda g: seen.append(np.array(g, copy=True)))
    x0, w0, _, _ = _graph(None)
    assert len(seen) == 1
    np.testing.assert_array_equal(seen[0], a + b)           # dL/dy, both consumers
    np.testing.assert_array_equal(x.grad, x0.grad)
    np.testing.assert_array_equal(w.grad, w0.grad)
    np.testing.assert_allclose(x.grad, (a + b) * w.data, rtol=1e-12)


def test_tap_runs_before_the_ops_own_backward():
    # an op whose backward reuses its gradient's memory (as in-place kernels may): the
    # hook must have read it first
    x = Tensor(np.arange(1.0, 7.0).reshape(2, 3), requires_grad=True)

    def backward(g):
        x.accumulate(2 * g)
        g[...] = 0

    y = Tensor(2 * x.data, parents=(x,), backward=backward)
    seen = []
    z = tap(y, lambda g: seen.append(g.copy()))
    (z * np.full((2, 3), 3.0)).sum().backward()
    np.testing.assert_array_equal(seen[0], np.full((2, 3), 3.0))
    np.testing.assert_array_equal(x.grad, np.full((2, 3), 6.0))


def test_tap_on_a_leaf_and_on_a_constant():
    leaf = Tensor(np.ones(3), requires_grad=True)
    seen = []
    (tap(leaf, seen.append) * np.array([1.0, 2.0, 3.0])).sum().backward()
    np.testing.assert_array_equal(seen[0], [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(leaf.grad, [1.0, 2.0, 3.0])
    const = Tensor(np.ones(3))
    out = tap(const, seen.append)
    assert not out.requires_grad and len(seen) == 1
    np.testing.assert_array_equal(out.data, const.data)


def test_tap_each_backward_of_a_new_graph_hooks_once():
    # a layer's output is made anew each step: two steps, two calls, no hook carried over
    calls = []
    for step in range(2):
        x = Tensor(np.full(2, step + 1.0), requires_grad=True)
        y = tap(x * 3.0, calls.append)
        y.sum().backward()
        np.testing.assert_array_equal(x.grad, [3.0, 3.0])
    assert len(calls) == 2
