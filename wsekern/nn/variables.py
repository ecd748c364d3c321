"""``Variable``: a Tensor that holds state (a weight, a counter) and is assigned in place,
as ``keras.Variable``. Layers track the Variables assigned to their attributes."""
import numpy as np

from . import initializers
from .naming import auto_name, variable_path
from .tensor import Tensor, VariableValue


class Variable(Tensor):
    """``keras.Variable(initializer, shape=None, dtype=None, trainable=True, name=None)``.

    ``initializer`` is an array-like value, or an initializer (name or callable) together
    with ``shape``. ``assign``/``assign_add``/``assign_sub`` write in place, so every
    reference to the variable (optimizer state included) sees the new value.

    Parameters
    ----------
    initializer : array-like, str or callable
        The value, or an initializer such as ``"glorot_uniform"`` used with ``shape``.
    shape : tuple, optional
    dtype : str, optional
    trainable : bool, default True
        Whether ``fit`` updates it.
    name : str, optional
    regularizer : callable, optional
        Its penalty is added to the loss.
    constraint : callable, optional
        The optimizer assigns ``constraint(variable)`` after each update.
    """
    __slots__ = ("trainable", "regularizer", "constraint", "_path")

    def __init__(self, initializer, shape=None, dtype=None, trainable=True, name=None,
                 regularizer=None, constraint=None):
        if isinstance(initializer, str) or (callable(initializer)
                                            and not isinstance(initializer, Tensor)):
            if shape is None:
                raise ValueError(f"Variable with initializer {initializer!r} needs a shape")
            init = initializers.get(initializer)
            value = init(tuple(int(s) for s in shape), dtype=np.dtype(dtype or "float32"))
        else:
            raw = initializer.data if isinstance(initializer, Tensor) else initializer
            value = np.array(raw, dtype=dtype)
            if value.dtype.kind not in "fiub":
                raise TypeError(f"a Variable holds numbers; received dtype {value.dtype}")
            if shape is not None and tuple(value.shape) != tuple(shape):
                raise ValueError(f"Variable value has shape {value.shape}; shape={tuple(shape)} "
                                 f"was given")
        if name is None:
            name = unnamed_variable_name()
        super().__init__(np.asarray(value), requires_grad=bool(trainable), name=name)
        self.trainable = bool(trainable)
        self.regularizer = regularizer
        self.constraint = constraint
        self._path = variable_path(name)

    @property
    def value(self):
        """The array, as a :class:`~wsekern.nn.tensor.VariableValue`: an ndarray view of
        it that also has ``.grad`` (keras.io's torch guides read ``v.value.grad``) and that
        the ops take as this variable."""
        out = self.data.view(VariableValue)
        out._variable = self
        return out

    @property
    def path(self):
        """Keras's path: the layers being built when it was made, then its name
        (``sequential/dense/kernel``; ``dense/kernel`` for a layer built on its own)."""
        return getattr(self, "_path", None) or self.name

    def _checked(self, value, what):
        v = np.asarray(value.data if isinstance(value, Tensor) else value)
        try:
            return np.broadcast_to(v, self.data.shape).astype(self.data.dtype, copy=False)
        except ValueError:
            raise ValueError(f"{what} to variable {self.name!r} of shape {self.data.shape}: "
                             f"received shape {v.shape}") from None

    def assign(self, value):
        self.data[...] = self._checked(value, "assign")
        return self

    def assign_add(self, value):
        self.data += self._checked(value, "assign_add")
        return self

    def assign_sub(self, value):
        self.data -= self._checked(value, "assign_sub")
        return self

    def __repr__(self):
        return (f"<Variable name={self.name!r} shape={self.shape} dtype={self.dtype} "
                f"trainable={self.trainable}>")


class VariableView(Variable):
    """``base`` seen in another ``shape``: its array reshaped (a view, so an assign, a
    ``set_weights`` or an optimizer step through either is seen by both), its gradient
    reshaped likewise, and its name, trainability, regularizer and constraint. A
    MultiHeadAttention lists its projections' flat weights this way, in Keras's 3-D
    shapes."""
    __slots__ = ("_base", "_shape")

    def __init__(self, base, shape):
        shape = tuple(int(s) for s in shape)
        if int(np.prod(shape)) != base.data.size:
            raise ValueError(f"a view of variable {base.name!r} (shape {base.data.shape}) "
                             f"needs as many elements; received shape {shape}")
        self._base, self._shape = base, shape
        self._parents, self._backward, self._keras_mask = (), None, None

    def __reduce__(self):
        # copy.deepcopy of a model: a view of the copied base (the memo makes it the
        # copy's own flat variable), not a detached array
        return (VariableView, (self._base, self._shape))

    @property
    def base(self):
        return self._base

    @property
    def data(self):
        # copy=False: a reshape that would copy (a non-contiguous base) raises, never
        # hands out an array whose writes are lost
        return np.reshape(self._base.data, self._shape, copy=False)

    @data.setter
    def data(self, value):
        self._base.data[...] = np.reshape(self._checked(value, "assign"),
                                          self._base.data.shape)

    @property
    def grad(self):
        g = self._base.grad
        return None if g is None else np.reshape(g, self._shape)

    @grad.setter
    def grad(self, value):
        self._base.grad = None if value is None else np.reshape(value, self._base.data.shape)

    def accumulate(self, g):
        self._base.accumulate(np.reshape(g, self._base.data.shape))

    @property
    def requires_grad(self):
        return self._base.requires_grad

    @property
    def name(self):
        return self._base.name

    @property
    def path(self):
        return self._base.path

    @property
    def trainable(self):
        return self._base.trainable

    @trainable.setter
    def trainable(self, value):
        self._base.trainable = value

    @property
    def regularizer(self):
        return self._base.regularizer

    @property
    def constraint(self):
        return self._base.constraint

    def assign(self, value):
        self.data[...] = self._checked(value, "assign")
        return self

    def assign_add(self, value):
        d = self.data
        d += self._checked(value, "assign_add")
        return self

    def assign_sub(self, value):
        d = self.data
        d -= self._checked(value, "assign_sub")
        return self


def unnamed_variable_name():
    """Keras's name for a variable made without one: "variable", then "variable_1", ...
    counted over the process in the one table Keras also names layers from."""
    return auto_name("variable")
