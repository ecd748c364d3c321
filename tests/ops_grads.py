"""Gradients of sum(outputs * R) two ways, for the keras.ops comparison tests: through
keras.ops on torch (torch autograd) and through wsekern.nn.ops (our autograd); R is a fixed
random array per output, so every output of an op is checked together."""
import numpy as np
from test_nn_grad import numeric_grad

from wsekern.nn import ops
from wsekern.nn.tensor import Tensor


def as_list(out):
    return list(out) if isinstance(out, (tuple, list)) else [out]


def torch_grads(keras, fn, arrays):
    """Gradients of sum(fn(*tensors) * R) through keras.ops on torch (torch autograd)."""
    import torch
    ts = [torch.tensor(np.asarray(a, np.float64), requires_grad=True) for a in arrays]
    outs = as_list(fn(keras.ops, *ts))
    total = sum((o * torch.tensor(np.random.default_rng(5 + i).standard_normal(
        tuple(o.shape)))).sum() for i, o in enumerate(outs))
    return [g.numpy() for g in torch.autograd.grad(total, ts)]


def our_grads(fn, arrays):
    """The same through wsekern.nn.ops."""
    ts = [Tensor(np.asarray(a, np.float64), requires_grad=True) for a in arrays]
    outs = as_list(fn(ops, *ts))
    total = None
    for i, o in enumerate(outs):
        term = ops.sum(ops.multiply(o, np.random.default_rng(5 + i).standard_normal(o.shape)))
        total = term if total is None else ops.add(total, term)
    total.backward()
    return [t.grad for t in ts]


def check_grad(fn, *arrays, rtol=1e-5, atol=1e-7):
    """Gradient of sum(fn(*tensors) * R) w.r.t. each array (every output of fn, R as above):
    our autograd against central differences in float64."""
    arrays = [np.array(a, dtype=np.float64) for a in arrays]

    def outs(*ts):
        return as_list(fn(*ts))
    Rs = [np.random.default_rng(5 + i).standard_normal(o.shape)
          for i, o in enumerate(outs(*[Tensor(a) for a in arrays]))]

    def f():
        return float(sum((np.asarray(o.data) * R).sum()
                         for o, R in zip(outs(*[Tensor(a) for a in arrays]), Rs)))
    ts = [Tensor(a.copy(), requires_grad=True) for a in arrays]
    total = None
    for o, R in zip(outs(*ts), Rs):
        term = ops.sum(ops.multiply(o, R))
        total = term if total is None else ops.add(total, term)
    total.backward()
    for i, (t, a) in enumerate(zip(ts, arrays)):
        got = np.zeros_like(a) if t.grad is None else t.grad
        np.testing.assert_allclose(got, numeric_grad(f, a), rtol=rtol, atol=atol,
                                   err_msg=f"operand {i}")
