"""``OpLayer``: arithmetic written on symbolic tensors (``x + y``, ``0.5 * x``, ``x[:, 0]``)
recorded as a node of the functional graph, and saved by the op's name."""
import numpy as np

from ..tensor import as_tensor
from .base import Layer, _auto_name

_BINARY = {"add": lambda a, b: a + b, "subtract": lambda a, b: a - b,
           "multiply": lambda a, b: a * b, "divide": lambda a, b: a / b,
           "matmul": lambda a, b: a @ b}
_OPS = set(_BINARY) | {"negative", "get_item"}


def encode_index(idx):
    """A NumPy index as JSON: ints, None, '...', and {'start', 'stop', 'step'} slices."""
    items = idx if isinstance(idx, tuple) else (idx,)
    out = []
    for item in items:
        if item is Ellipsis:
            out.append("...")
        elif isinstance(item, slice):
            out.append({"start": item.start, "stop": item.stop, "step": item.step})
        elif item is None or (isinstance(item, (int, np.integer)) and not isinstance(item, bool)):
            out.append(None if item is None else int(item))
        else:
            raise TypeError(f"symbolic tensors take ints, slices, None and ... as indices; "
                            f"received {item!r}")
    return out


def decode_index(items):
    if not isinstance(items, list):
        raise ValueError(f"an index must be a list; received {items!r:.80}")
    out = []
    for item in items:
        if item == "...":
            out.append(Ellipsis)
        elif isinstance(item, dict) and set(item) == {"start", "stop", "step"} and all(
                v is None or (isinstance(v, int) and not isinstance(v, bool))
                for v in item.values()):
            out.append(slice(item["start"], item["stop"], item["step"]))
        elif item is None or (isinstance(item, int) and not isinstance(item, bool)):
            out.append(item)
        else:
            raise ValueError(f"bad index item {item!r:.80}")
    return tuple(out)


class OpLayer(Layer):
    """``op`` applied to one or two tensor inputs, or to one input and a ``constant``
    (``reverse``: the constant is the left operand)."""

    def __init__(self, op, constant=None, reverse=False, index=None, name=None, **kwargs):
        super().__init__(name=name or _auto_name(str(op)), **kwargs)
        if op not in _OPS:
            raise ValueError(f"unknown op {op!r}; available: {sorted(_OPS)}")
        if constant is not None and not isinstance(constant, (int, float)):
            raise ValueError(f"an op's constant must be a number; received {constant!r:.80}")
        self.op, self.constant, self.reverse = op, constant, bool(reverse)
        self.index = encode_index(index) if isinstance(index, (tuple, slice, int)) \
            or index is Ellipsis else index
        self._index = decode_index(self.index) if op == "get_item" else None

    def call(self, *inputs):
        if self.op == "negative":
            return -inputs[0]
        if self.op == "get_item":
            return inputs[0][self._index]
        fn = _BINARY[self.op]
        if self.constant is None:
            return fn(inputs[0], inputs[1])
        c = as_tensor(np.asarray(self.constant, dtype=inputs[0].dtype))
        return fn(c, inputs[0]) if self.reverse else fn(inputs[0], c)

    def get_config(self):
        return {**super().get_config(), "op": self.op, "constant": self.constant,
                "reverse": self.reverse, "index": self.index}
