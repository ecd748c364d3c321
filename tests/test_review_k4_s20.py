"""review_k4 (session 20): fresh eyes on keras20's Keras files and ops20's last keras.ops."""
import numpy as np
import pytest

from wsekern.nn import ops
from wsekern.nn.tensor import Tensor


def test_jvp_refuses_an_absurd_number_of_backward_passes_before_spending_one(monkeypatch):
    """jvp costs one backward pass per output entry: an outer product of a 1000-vector has
    10**6 entries, each a pass over a 10**6-element graph (~1e12 element operations, hours).
    Refused with the estimate before any pass; a small jvp still runs."""
    def no_backward(self, *a, **k):
        raise AssertionError("a backward pass was spent before the estimate")
    x = np.linspace(-1.0, 1.0, 1000)
    with monkeypatch.context() as m:
        m.setattr(Tensor, "backward", no_backward)
        with pytest.raises(ValueError, match=r"jvp: 1000000 output entries.*fewer output"):
            ops.jvp(lambda a: ops.outer(a, a), (x,), (np.ones_like(x),))
    # the pytree form is counted over all its outputs too
    with monkeypatch.context() as m:
        m.setattr(Tensor, "backward", no_backward)
        with pytest.raises(ValueError, match="output entries"):
            ops.jvp(lambda a: {"o": ops.outer(a, a), "s": ops.sin(a)}, (x,),
                    (np.ones_like(x),))
    # a modest one is untouched: d/dx (x * x) . t = 2 x t
    small = x[:50]
    _, t = ops.jvp(lambda a: a * a, (small,), (np.ones_like(small),))
    np.testing.assert_allclose(t.data, 2 * small, rtol=1e-12)
