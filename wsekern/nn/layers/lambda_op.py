"""``OpLayer``: arithmetic written on symbolic tensors (``x + y``, ``x[:, 0]``) recorded as
a node of the functional graph."""
from .base import Layer


class OpLayer(Layer):
    """Applies ``fn`` to its inputs (Tensors); made by KerasTensor operators, not saved."""

    def __init__(self, fn, **kwargs):
        super().__init__(**kwargs)
        self.fn = fn

    def call(self, *inputs):
        return self.fn(*inputs)

    def get_config(self):
        raise NotImplementedError(
            f"layer {self.name!r} is Python arithmetic on symbolic tensors and cannot be saved "
            f"as a config; use a merge layer (layers.Add, layers.Multiply, ...) or a "
            f"registered custom Layer instead")
