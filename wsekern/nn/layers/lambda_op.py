"""``OpLayer``: arithmetic written on symbolic tensors (``x + y``, ``0.5 * x``, ``x[:, 0]``)
recorded as a node of the functional graph, and saved by the op's name."""
import numpy as np

from ..tensor import as_tensor
from .base import Layer, _auto_name

_BINARY = {"add": lambda a, b: a + b, "subtract": lambda a, b: a - b,
           "multiply": lambda a, b: a * b, "divide": lambda a, b: a / b,
           "matmul": lambda a, b: a @ b}
# boolean ops Keras records in a functional graph to compute a mask (Embedding(mask_zero)
# gives not_equal(x, 0), Masking any(not_equal(x, v), -1), merged masks logical_or): their
# output is a mask, which carries no gradient
_MASK_BINARY = {"not_equal": np.not_equal, "equal": np.equal, "logical_or": np.logical_or,
                "logical_and": np.logical_and}
_MASK_REDUCE = {"any": np.any, "all": np.all}
_OPS = set(_BINARY) | set(_MASK_BINARY) | set(_MASK_REDUCE) | {"negative", "get_item",
                                                               "logical_not"}


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
    (``reverse``: the constant is the left operand). The boolean ops (``not_equal``,
    ``equal``, ``logical_and/or/not``, ``any``/``all`` over ``axis``) make masks: their
    output has no gradient."""

    def __init__(self, op, constant=None, reverse=False, index=None, axis=None,
                 keepdims=False, name=None, **kwargs):
        super().__init__(name=name or _auto_name(str(op)), **kwargs)
        if op not in _OPS:
            raise ValueError(f"unknown op {op!r}; available: {sorted(_OPS)}")
        if constant is not None and not isinstance(constant, (int, float)):
            raise ValueError(f"an op's constant must be a number; received {constant!r:.80}")
        self.op, self.constant, self.reverse = op, constant, bool(reverse)
        self.index = encode_index(index) if isinstance(index, (tuple, slice, int)) \
            or index is Ellipsis else index
        self._index = decode_index(self.index) if op == "get_item" else None
        if axis is not None and not (isinstance(axis, int) and not isinstance(axis, bool)
                                     or isinstance(axis, list) and all(
                                         isinstance(a, int) and not isinstance(a, bool)
                                         for a in axis)):
            raise ValueError(f"an op's axis must be an int or a list of ints; received "
                             f"{axis!r:.80}")
        self.axis, self.keepdims = axis, bool(keepdims)

    def call(self, *inputs):
        if self.op in _MASK_BINARY or self.op in _MASK_REDUCE or self.op == "logical_not":
            return self._mask_op(inputs)
        if self.op == "negative":
            return -inputs[0]
        if self.op == "get_item":
            return inputs[0][self._index]
        fn = _BINARY[self.op]
        if self.constant is None:
            return fn(inputs[0], inputs[1])
        c = as_tensor(np.asarray(self.constant, dtype=inputs[0].dtype))
        return fn(c, inputs[0]) if self.reverse else fn(inputs[0], c)

    def _mask_op(self, inputs):
        data = [np.asarray(getattr(t, "data", t)) for t in inputs]
        if self.op == "logical_not":
            return as_tensor(np.logical_not(data[0]))
        if self.op in _MASK_REDUCE:
            axis = tuple(self.axis) if isinstance(self.axis, list) else self.axis
            return as_tensor(np.asarray(_MASK_REDUCE[self.op](data[0], axis=axis,
                                                              keepdims=self.keepdims)))
        a, b = (data[0], data[1]) if self.constant is None else (data[0], self.constant)
        if self.reverse:
            a, b = b, a
        return as_tensor(np.asarray(_MASK_BINARY[self.op](a, b)))

    def get_config(self):
        config = {**super().get_config(), "op": self.op, "constant": self.constant,
                  "reverse": self.reverse, "index": self.index}
        if self.op in _MASK_REDUCE:
            config.update(axis=self.axis, keepdims=self.keepdims)
        return config
