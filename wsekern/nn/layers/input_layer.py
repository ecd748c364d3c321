"""``keras.Input``: a symbolic tensor made by an ``InputLayer`` (the functional API's
start, and the optional first element of a Sequential model)."""
import numpy as np

from ..symbolic import KerasTensor, Node
from .base import Layer


def _dims(shape, what):
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (shape,)
    if not isinstance(shape, (tuple, list)):
        raise ValueError(f"{what} must be a tuple of positive ints or None; received {shape!r}")
    dims = []
    for s in shape:
        if s is None:
            dims.append(None)
        elif isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s > 0:
            dims.append(int(s))
        else:
            raise ValueError(f"{what} must hold positive ints or None; received {tuple(shape)}")
    return tuple(dims)


class InputLayer(Layer):
    """The model's input: ``shape`` without the batch dimension (None where any size goes)."""

    def __init__(self, shape=None, batch_size=None, dtype="float32", name=None,
                 batch_shape=None, **kwargs):
        super().__init__(name=name, dtype=dtype, **kwargs)
        if batch_shape is not None:
            batch_shape = _dims(batch_shape[1:], "batch_shape[1:]")
            shape = batch_shape if shape is None else shape
        if shape is None:
            raise ValueError("Input needs a shape, e.g. Input(shape=(784,)) or "
                             "Input(shape=(None, 16)) for sequences of any length")
        self.shape = _dims(shape, "Input shape")
        if batch_size is not None and (isinstance(batch_size, bool) or
                                       not isinstance(batch_size, (int, np.integer))
                                       or batch_size < 1):
            raise ValueError(f"batch_size must be a positive int; received {batch_size!r}")
        self.batch_size = None if batch_size is None else int(batch_size)
        self.built = True
        self.input_shape = self.output_shape = (self.batch_size,) + self.shape
        tensor = KerasTensor(self.output_shape, self.dtype, name=self.name)
        tensor.node = Node(self, (), {}, tensor)
        self._inbound_nodes.append(tensor.node)
        self._tensor = tensor

    def call(self, x):
        return x

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = {**super().get_config(), "shape": list(self.shape)}
        if self.batch_size is not None:
            config["batch_size"] = self.batch_size
        return config


def Input(shape=None, batch_size=None, dtype=None, name=None, batch_shape=None, **kwargs):
    """``keras.Input``: a symbolic tensor of ``shape`` (batch excluded) to call layers on.

    Parameters
    ----------
    shape : tuple
        The shape of one sample; ``None`` entries take any size.
    batch_size : int, optional
        A fixed batch size.
    dtype : str, default "float32"
    name : str, optional
    batch_shape : tuple, optional
        The whole shape, batch included (instead of ``shape``).

    Returns
    -------
    KerasTensor-like symbolic tensor
        Call layers on it, then build ``Model(inputs, outputs)``.

    Examples
    --------
    >>> from wsekern import nn
    >>> inputs = nn.Input(shape=(16,))
    >>> model = nn.Model(inputs, nn.layers.Dense(4)(inputs))
    >>> model.output_shape
    (None, 4)
    """
    layer = InputLayer(shape=shape, batch_size=batch_size, dtype=dtype or "float32", name=name,
                       batch_shape=batch_shape, **kwargs)
    return layer._tensor
