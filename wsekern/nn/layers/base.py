"""Keras's layer contract: ``__init__`` validates and stores, ``build`` makes weights, ``call``."""
import re

import numpy as np

from .. import initializers
from ..tensor import Tensor

_COUNTS = {}


def _auto_name(cls_name):
    """Keras's default names: Conv2D -> conv2d, MaxPooling2D -> max_pooling2d, then _1, _2..."""
    snake = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", cls_name)
    snake = re.sub("([a-z])([A-Z])", r"\1_\2", snake).lower()
    n = _COUNTS.get(snake, 0)
    _COUNTS[snake] = n + 1
    return snake if n == 0 else f"{snake}_{n}"


class Layer:
    """Base layer. Subclasses define ``build(input_shape)``, ``call(x, training)``,
    ``compute_output_shape(input_shape)`` and ``get_config()``."""

    def __init__(self, name=None, trainable=True, dtype="float32", input_shape=None,
                 input_dim=None, **kwargs):
        if kwargs:
            raise TypeError(f"{type(self).__name__} got unexpected keyword arguments "
                            f"{sorted(kwargs)}")
        self.name = name or _auto_name(type(self).__name__)
        self.trainable = bool(trainable)
        self.dtype = np.dtype(dtype)
        if input_dim is not None and input_shape is None:
            input_shape = (input_dim,)
        self._input_shape_arg = tuple(input_shape) if input_shape is not None else None
        self.built = False
        self._variables = []          # (name, Tensor, trainable)
        self.input_shape = None
        self.output_shape = None

    # -- weights ------------------------------------------------------------
    def add_weight(self, name, shape, initializer="glorot_uniform", trainable=True):
        init = initializers.get(initializer)
        t = Tensor(init(tuple(shape), dtype=self.dtype), requires_grad=trainable and self.trainable,
                   name=f"{self.name}/{name}")
        self._variables.append((name, t, trainable))
        return t

    @property
    def weights(self):
        return [t for _, t, _ in self._variables]

    @property
    def trainable_weights(self):
        return [t for _, t, tr in self._variables if tr and self.trainable]

    @property
    def non_trainable_weights(self):
        return [t for _, t, tr in self._variables if not (tr and self.trainable)]

    def get_weights(self):
        """The layer's weights as NumPy arrays, in Keras's order and shapes."""
        return [t.data.copy() for t in self.weights]

    def set_weights(self, weights):
        current = self.weights
        if len(weights) != len(current):
            raise ValueError(f"layer {self.name!r} expects {len(current)} weight arrays; "
                             f"received {len(weights)}")
        for t, w in zip(current, weights):
            w = np.asarray(w)
            if w.shape != t.shape:
                raise ValueError(f"layer {self.name!r}: weight {t.name!r} has shape {t.shape}; "
                                 f"received {w.shape}")
            t.data[...] = w

    def count_params(self):
        return int(sum(np.prod(w.shape) for w in self.get_weights()))

    # -- the contract ----------------------------------------------------------------
    def build(self, input_shape):
        self.built = True

    def call(self, x, training=False):
        raise NotImplementedError

    def compute_output_shape(self, input_shape):
        return input_shape

    def __call__(self, x, training=False):
        if not self.built:
            self._build(tuple(x.shape))
        return self.call(x, training=training)

    def _build(self, input_shape):
        """Build for ``input_shape`` (batch dimension first, may be None)."""
        self.input_shape = tuple(input_shape)
        self.build(self.input_shape)
        self.built = True
        self.output_shape = tuple(self.compute_output_shape(self.input_shape))
        return self.output_shape

    def get_config(self):
        config = {"name": self.name, "trainable": self.trainable, "dtype": self.dtype.name}
        if self._input_shape_arg is not None:
            config["input_shape"] = list(self._input_shape_arg)
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name!r}>"
