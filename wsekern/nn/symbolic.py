"""The functional API's symbolic tensors: ``Input(shape=...)`` returns a ``KerasTensor``;
calling a layer on KerasTensors records a ``Node`` (the layer and its arguments) and returns
new KerasTensors whose shapes come from the layer, so ``Model(inputs, outputs)`` can walk the
graph back from its outputs."""
import numpy as np

from .tensor import Tensor


class KerasTensor:
    """A placeholder with a shape (batch first, None where unknown), a dtype, and the node
    that made it."""

    def __init__(self, shape, dtype="float32", name=None, node=None, index=0):
        self.shape = tuple(None if s is None else int(s) for s in shape)
        self.dtype = np.dtype(dtype)
        self.name = name
        self.node = node
        self.index = index

    @property
    def ndim(self):
        return len(self.shape)

    def __repr__(self):
        return f"<KerasTensor shape={self.shape}, dtype={self.dtype.name}, name={self.name}>"

    def __array__(self, *args, **kwargs):
        raise TypeError("a symbolic KerasTensor (from keras.Input) has no values: build a "
                        "Model(inputs, outputs) and call it on arrays, or wrap NumPy code in "
                        "a Layer")

    # arithmetic on symbolic tensors records an op node, as keras.ops does
    def __add__(self, other):
        return _op("add", self, other)

    def __radd__(self, other):
        return _op("add", self, other, reverse=True)

    def __sub__(self, other):
        return _op("subtract", self, other)

    def __rsub__(self, other):
        return _op("subtract", self, other, reverse=True)

    def __mul__(self, other):
        return _op("multiply", self, other)

    def __rmul__(self, other):
        return _op("multiply", self, other, reverse=True)

    def __truediv__(self, other):
        return _op("divide", self, other)

    def __rtruediv__(self, other):
        return _op("divide", self, other, reverse=True)

    def __matmul__(self, other):
        return _op("matmul", self, other)

    def __neg__(self):
        from .layers.lambda_op import OpLayer
        return OpLayer("negative")(self)

    def __getitem__(self, idx):
        from .layers.lambda_op import OpLayer
        return OpLayer("get_item", index=idx)(self)


class Node:
    """One call of ``layer`` on symbolic arguments."""

    def __init__(self, layer, args, kwargs, outputs):
        self.layer = layer
        self.args, self.kwargs = args, kwargs
        self.input_tensors = flatten((args, kwargs))
        self.outputs = outputs
        self.output_tensors = outputs

    @property
    def parents(self):
        return [t.node for t in self.input_tensors]


def flatten(structure):
    """The KerasTensors (or Tensors / arrays) of a nested list/tuple/dict, in order."""
    out = []

    def walk(v):
        if isinstance(v, (list, tuple)):
            for item in v:
                walk(item)
        elif isinstance(v, dict):
            for item in v.values():
                walk(item)
        elif isinstance(v, KerasTensor):
            out.append(v)
    walk(structure)
    return out


def map_structure(fn, structure):
    if isinstance(structure, (list, tuple)):
        return type(structure)(map_structure(fn, v) for v in structure)
    if isinstance(structure, dict):
        return {k: map_structure(fn, v) for k, v in structure.items()}
    return fn(structure)


def _has_symbolic(v):
    if isinstance(v, KerasTensor):
        return True
    if isinstance(v, (list, tuple)):
        return any(_has_symbolic(item) for item in v)
    if isinstance(v, dict):
        return any(_has_symbolic(item) for item in v.values())
    return False


def any_symbolic(args, kwargs):
    """Whether a KerasTensor is among the arguments, nested or not (every layer call asks:
    stops at the first, and builds no list)."""
    for v in args:
        if _has_symbolic(v):
            return True
    for v in kwargs.values():
        if _has_symbolic(v):
            return True
    return False


PLACEHOLDER = 3     # the size a None dimension takes while an output shape is found


def _placeholder(t):
    if not isinstance(t, KerasTensor):
        return t
    shape = tuple(PLACEHOLDER if s is None else s for s in t.shape)
    if t.dtype.kind in "iu":
        return Tensor(np.zeros(shape, dtype=t.dtype))
    return Tensor(np.zeros(shape, dtype=t.dtype))


def call_symbolic(layer, args, kwargs):
    """Record ``layer(*args, **kwargs)`` on KerasTensors and return symbolic outputs whose
    shapes come from a call on placeholder zeros (None dimensions given back as None)."""
    inputs = flatten((args, kwargs))
    first = args[0] if args else inputs[0]
    if not layer.built:
        shape = map_structure(lambda t: t.shape if isinstance(t, KerasTensor) else t, first)
        layer._build_only(list(shape) if isinstance(shape, tuple) and shape
                          and isinstance(shape[0], tuple) else shape)
    values = layer(*map_structure(_placeholder, args),
                   **{**map_structure(_placeholder, kwargs), "training": False})
    layer._clear_losses()       # the placeholder call's losses, its sub-layers' too (a model)
    none_axes = {i for t in inputs for i, s in enumerate(t.shape) if s is None and i > 0}
    index = [0]

    def symbolic(v):
        shape = np.shape(v.data if isinstance(v, Tensor) else v)
        shape = tuple(None if i == 0 or (i in none_axes and s == PLACEHOLDER) else int(s)
                      for i, s in enumerate(shape))
        dtype = v.dtype if hasattr(v, "dtype") else np.asarray(v).dtype
        out = KerasTensor(shape, dtype, name=f"{layer.name}/output_{index[0]}", index=index[0])
        index[0] += 1
        return out
    outputs = map_structure(symbolic, values)
    shapes = map_structure(lambda t: t.shape, outputs)
    if layer.output_shape is None or not layer._inbound_nodes:
        layer.output_shape = list(shapes) if isinstance(shapes, tuple) and shapes and \
            isinstance(shapes[0], tuple) else shapes
    node = Node(layer, args, kwargs, outputs)
    for t in flatten(outputs):
        t.node = node
    layer._inbound_nodes.append(node)
    return outputs


def _op(name, tensor, other, reverse=False):
    """``tensor <op> other`` (``other <op> tensor`` when ``reverse``) as an OpLayer node."""
    from .layers.lambda_op import OpLayer
    if isinstance(other, KerasTensor):
        pair = (other, tensor) if reverse else (tensor, other)
        return OpLayer(name)(*pair)
    if isinstance(other, (np.integer, np.floating)):
        other = other.item()
    if not isinstance(other, (int, float)) or isinstance(other, bool):
        raise TypeError(f"symbolic tensors combine with other symbolic tensors or numbers; "
                        f"received {type(other).__name__} (wrap arrays in a Layer)")
    return OpLayer(name, constant=other, reverse=reverse)(tensor)
