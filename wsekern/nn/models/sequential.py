"""``Sequential``: a linear stack of layers, a Model like any other."""
import numpy as np

from ..layers.base import Layer
from ..layers.core import InputLayer as _CoreInputLayer
from ..layers.input_layer import InputLayer
from ..naming import auto_name, building
from ..symbolic import KerasTensor
from ..tensor import Tensor
from .model import Model


class Sequential(Model):
    """A linear stack of layers, used as ``keras.Sequential``.

    Parameters
    ----------
    layers : list of Layer, optional
        The layers in order (an :func:`~wsekern.nn.Input` first fixes the input shape);
        ``add`` appends more.
    name : str, optional
    trainable : bool, default True

    Examples
    --------
    >>> import numpy as np
    >>> from wsekern import nn
    >>> model = nn.Sequential([nn.Input(shape=(4,)), nn.layers.Dense(8, activation="relu",
    ...                        sparsity=0.5), nn.layers.Dense(1)])
    >>> model.compile(optimizer="adam", loss="mse")
    >>> model.predict(np.ones((2, 4), np.float32), verbose=0).shape
    (2, 1)
    """

    def __init__(self, layers=None, name=None, trainable=True):
        super().__init__(name=name, trainable=trainable)    # sequential, sequential_1..
        self._layers = []
        self._input_shape = None           # without the batch dimension
        self._input_dtype = np.dtype(np.float32)   # Input(dtype=...): int64 for token ids
        self._build_on_add = False          # one build (and wafer placement) for the list
        for layer in layers or []:
            self.add(layer)
        self._build_on_add = True
        if self._layers and self._input_shape is not None:
            self.build()

    # -- structure --------------------------------------------------------------
    @property
    def layers(self):
        return list(self._layers)

    def add(self, layer):
        if isinstance(layer, KerasTensor) and isinstance(layer.node.layer, InputLayer) \
                and not layer.node.args:
            layer = layer.node.layer                  # Sequential([keras.Input(...), ...])
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential.add expects a Layer or keras.Input(...); received "
                            f"{type(layer).__name__}")
        if isinstance(layer, (InputLayer, _CoreInputLayer)):
            if self._layers or self._input_shape is not None:
                raise ValueError("an Input can only be the first element of a Sequential model")
            self._input_shape = tuple(layer.shape)
            self._input_dtype = layer.dtype
            return
        if not self._layers and self._input_shape is None and layer._input_shape_arg is not None:
            self._input_shape = layer._input_shape_arg
        elif not self._layers and self._input_shape is None and isinstance(layer, Model) \
                and layer.built and isinstance(layer.input_shape, tuple) \
                and layer.input_shape[:1] == (None,):
            # a built model first (Sequential([base_model, ...])): its input shape, as Keras
            self._input_shape = tuple(layer.input_shape[1:])
        self._layers.append(layer)
        self._symbolic = None
        if self._input_shape is not None and self._build_on_add:
            self.built = False
            self.build()

    def pop(self):
        if not self._layers:
            raise ValueError("there are no layers to pop")
        layer = self._layers.pop()
        self._symbolic = None
        self.built = False
        if self._layers and self._input_shape is not None:
            self.build()
        return layer

    def build(self, input_shape=None):
        """Build every layer for ``input_shape`` (with or without the batch dimension)."""
        if input_shape is not None:
            shape = tuple(input_shape)
            self._input_shape = shape[1:] if shape and shape[0] is None else shape
        if self._input_shape is None:
            raise ValueError("the model's input shape is unknown: give the first layer "
                             "input_shape=..., start with nn.Input(shape=...), or call build()")
        shape = (None,) + tuple(self._input_shape)
        self.input_shape = shape
        auto_name("Functional")     # Keras's build makes a Functional, which takes a name
        with building(self):
            for layer in self._layers:
                shape = layer._build(shape) if not layer.built else layer.output_shape
        self.output_shape = shape
        self.built = True
        self._is_placed = False
        self._placed()
        return shape

    def _build(self, input_shape):
        return self.build((None,) + tuple(input_shape[1:]))

    def compute_output_shape(self, input_shape):
        return self.output_shape

    def _graph(self):
        """The stack as a functional graph (``model.inputs``/``outputs``, ``layer.output``),
        made once the input shape is known."""
        if self.__dict__.get("_symbolic") is None:
            if self._input_shape is None:
                raise AttributeError(f"model {self.name!r} has no input shape yet, so no "
                                     f"symbolic inputs; start it with keras.Input(...)")
            from ..layers.input_layer import Input
            inp = Input(shape=self._input_shape, dtype=self._input_dtype.name)
            out = inp
            for layer in self._layers:
                out = layer(out)
            self._symbolic = ([inp], [out])
        return self._symbolic

    @property
    def inputs(self):
        return self._graph()[0]

    @property
    def outputs(self):
        return self._graph()[1]

    def _input_specs(self):
        return [(self._input_shape, self._input_dtype)]

    def _checked_x(self, x, what="x"):
        return super()._checked_x(_one_input(x, what), what)

    # -- forward ------------------------------------------------------------------
    def call(self, x, training=False):
        if not isinstance(x, Tensor):
            x = _one_input(x, "the input")
        if not isinstance(x, Tensor):
            x = Tensor(np.asarray(x, dtype=self._input_dtype))
        elif x.dtype != self._input_dtype and not x.requires_grad:
            x = Tensor(x.data.astype(self._input_dtype))
        for layer in self._layers:
            x = layer(x, training=training)
        return x

    def dataflow_graph(self):
        """(producer, consumer) pairs of the layers with weights, for the wafer's placement:
        a chain, layers without weights passed through."""
        weighted = [l for l in self._layers if l.weights]
        return list(zip(weighted, weighted[1:]))

    # -- saving -------------------------------------------------------------------------
    def get_config(self):
        return {"name": self.name, "input_shape": list(self._input_shape or []),
                "input_dtype": self._input_dtype.name,
                "layers": [{"class_name": type(l).__name__, "config": l.get_config()}
                           for l in self._layers]}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        """The model :meth:`get_config` describes, with fresh weights (Keras's
        ``Sequential.from_config``; Model's ``cls(**config)`` cannot take it)."""
        from ..registry import with_objects
        from ..saving.model_config import sequential_from_config
        with with_objects(custom_objects):
            return sequential_from_config(config, custom_objects, "Sequential.from_config")


def _one_input(x, what):
    """A Sequential model's one input from what a caller may wrap it in: a list or tuple of
    one array is that array, as in Keras (``np.asarray`` made it a batch of one sample, so
    ``predict([x])`` returned shape (1, ...) per batch); a dict is refused by name."""
    if isinstance(x, (list, tuple)) and len(x) == 1 and isinstance(x[0], (np.ndarray, Tensor)):
        return x[0]
    if isinstance(x, dict):
        raise ValueError(f"a Sequential model takes one input array; received {what} as a "
                         f"dict with keys {list(x)}: pass the array itself, or name the "
                         f"inputs in a functional model (keras.Input(name=...))")
    return x
