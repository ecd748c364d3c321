"""The per-step bookkeeping made leaner keeps its meaning: backward visits the graph in the
order it did (so gradients add up in the same order, bit for bit), and a layer call still
finds a KerasTensor wherever it is nested in its arguments."""
import numpy as np

from wsekern import nn
from wsekern.nn.symbolic import any_symbolic
from wsekern.nn.tensor import Tensor


def _reference_order(root):
    """The visiting order of backward before the change (every node, gradient or not)."""
    order, seen = [], set()
    stack = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.append((node, True))
        stack.extend((p, False) for p in node._parents if id(p) not in seen)
    return order


def test_backward_visits_in_the_reference_order_on_a_random_dag():
    rng = np.random.default_rng(0)
    leaves = [Tensor(rng.standard_normal(3), requires_grad=bool(i % 3)) for i in range(6)]
    consts = [Tensor(rng.standard_normal(3)) for _ in range(3)]
    nodes = leaves + consts
    calls, traced_ids = [], set()
    for k in range(40):                        # shared subexpressions: a DAG, not a tree
        a, b = (nodes[i] for i in rng.choice(len(nodes), 2, replace=False))
        t = a * b if k % 2 else a + b
        backward = t._backward
        if backward is not None:
            def traced(g, t=t, backward=backward):
                calls.append(t)
                backward(g)
            t._backward = traced
            traced_ids.add(id(t))
        nodes.append(t)
    root = nodes[-1]
    for n in nodes[-15:-1]:
        root = root + n
    want = [id(n) for n in reversed(_reference_order(root)) if id(n) in traced_ids]
    root.backward(np.ones(3))
    assert [id(n) for n in calls] == want
    assert len(calls) > 10


def test_backward_gradients_match_finite_differences_with_shared_nodes():
    x = Tensor(np.array([0.3, -1.2, 2.0]), requires_grad=True)
    y = x * x
    z = (y + x) * y + Tensor(np.ones(3)) * x           # y used twice, a constant parent
    z.sum().backward()
    v = x.data
    np.testing.assert_allclose(x.grad, 4 * v ** 3 + 3 * v ** 2 + 1, rtol=1e-12)


def test_any_symbolic_finds_nested_keras_tensors():
    kt = nn.Input(shape=(4,))
    t = Tensor(np.zeros((1, 4)))
    assert not any_symbolic((t, [t, {"a": t}]), {"training": True, "mask": None})
    assert any_symbolic((kt,), {})
    assert any_symbolic((t, [t, (t, kt)]), {})
    assert any_symbolic((t,), {"other": {"x": [kt]}})
    assert not any_symbolic((), {})
