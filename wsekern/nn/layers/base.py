"""Keras's layer contract: ``__init__`` validates and stores, ``build`` makes weights, ``call``.

A layer's weights are its own variables (``add_weight``, in creation order) followed by those
of every layer and Variable assigned to its attributes - directly or inside lists, tuples
and dicts, recursively - as Keras tracks them, so ``fit`` trains the sub-layers of a custom
layer or model.
"""
import collections
import functools
import inspect
import itertools
import math
import threading

import numpy as np

from ..._budget import check_memory
from .. import constraints, initializers, regularizers
from ..naming import auto_name as _auto_name
from ..naming import building, building_stack
from ..symbolic import any_symbolic, call_symbolic
from ..tensor import Tensor
from ..variables import Variable


class _Calling(threading.local):
    """This thread's layer calls in progress, outermost first, each as (training flag,
    whether it or one it is nested in was given ``training`` - Keras's None: not, the id of
    its outermost call - a layer's losses last one outer call), below them those of no
    call. Per thread: a predict in one thread while another trains keeps its own flag."""

    def __init__(self):
        self.stack = [(False, False, 0)]


_CALLING = _Calling()
_OUTER_IDS = itertools.count(1)     # over all threads: no two outer calls share an id


def training_given():
    """True when the call in progress, or one it is nested in, was given ``training=``
    (fit, evaluate and predict give it); False for a bare ``model(x)``."""
    return _CALLING.stack[-1][1]


def inherited_training():
    """The training flag a call without ``training=`` takes: its caller's (False outside
    any call)."""
    return _CALLING.stack[-1][0]


# Bookkeeping attributes that never hold sub-layers: skipped by the tracking walk.
_UNTRACKED = frozenset({"_variables", "_inbound_nodes", "_losses", "_compiled_outputs",
                        "_weight_options", "activity_regularizer",
                        "_compile_config", "_metrics_arg", "_weighted_metrics_arg", "history",
                        "optimizer", "strategy", "input_shape",
                        "output_shape", "_input_shape_arg", "_nodes", "_inputs_struct",
                        "_outputs_struct", "_output_loss_trackers", "_symbolic", "_fit_cache"})


# Attribute types that never hold a Layer or Variable, skipped by type before any call (a
# layer's __dict__ is mostly these, and the weight walk runs on every train_on_batch).
_LEAF_TYPES = frozenset([str, int, float, bool, type(None), np.ndarray, np.float32, np.float64,
                         np.int64, np.bool_] +
                        [type(np.dtype(t)) for t in (np.float16, np.float32, np.float64,
                                                     np.int32, np.int64, np.bool_)])


def _tracked_values(value, out):
    """Layers and Variables in ``value`` (itself, or inside lists/tuples/dicts), in order."""
    if isinstance(value, (np.ndarray, str, int, float)) or value is None:
        return out
    if isinstance(value, (Layer, Variable)):
        out.append(value)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _tracked_values(v, out)
    elif isinstance(value, dict):
        for v in value.values():
            _tracked_values(v, out)
    return out


# keyword arguments whose values (of these types) cannot hold a symbolic tensor
_PLAIN_KWARGS = frozenset({"training", "mask"})
_PLAIN_VALUES = frozenset({bool, type(None), np.ndarray, Tensor})


def _call_accepts(cls, name):
    """Whether ``cls.call`` takes the keyword ``name`` (or ``**kwargs``); cached per class."""
    cache = cls.__dict__.get("_call_signature_cache")
    if cache is None:
        cache = {}
        cls._call_signature_cache = cache
    if name not in cache:
        params = inspect.signature(cls.call).parameters
        cache[name] = name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())
    return cache[name]


def keras_mask(value):
    """The mask a Tensor carries (Keras's ``_keras_mask``): a boolean array, or None; for a
    list/tuple of inputs, the list of their masks when any has one."""
    if type(value) is Tensor:
        return value._keras_mask
    if isinstance(value, (list, tuple)):
        masks = [getattr(v, "_keras_mask", None) for v in value]
        return masks if any(m is not None for m in masks) else None
    return getattr(value, "_keras_mask", None)


def mask_array(mask):
    """A mask (boolean array or Tensor) as a boolean ndarray."""
    return np.asarray(mask.data if isinstance(mask, Tensor) else mask, dtype=bool)


def _to_tensors(value):
    if isinstance(value, Tensor):
        return value
    if isinstance(value, np.ndarray):
        return Tensor(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_to_tensors(v) for v in value)
    if isinstance(value, dict):
        return {k: _to_tensors(v) for k, v in value.items()}
    return value


def _leaves(value):
    if isinstance(value, (list, tuple)):
        return [v for x in value for v in _leaves(x)]
    if isinstance(value, dict):
        return [v for x in value.values() for v in _leaves(x)]
    return [value]


def _array_like(o):
    """An array of some library that is not a wsekern Tensor (NumPy's, torch's, ...)."""
    return not isinstance(o, Tensor) and not isinstance(
        o, (str, bytes, int, float, bool, type(None))) and (
        isinstance(o, (np.ndarray, np.generic)) or hasattr(o, "__array__")
        or hasattr(o, "__dlpack__"))


def _loss_tensor(value, what, needs_grad):
    """``value`` (a loss or penalty) as a Tensor; refused where its gradient would be lost
    without a word: another library's tensor (keras.ops, a keras.regularizers object), or
    a NumPy result where the weight or output it penalises needs a gradient."""
    if isinstance(value, Tensor):
        return value
    if _array_like(value) and (needs_grad or not isinstance(value, (np.ndarray, np.generic))):
        kind = type(value)
        raise TypeError(
            f"{what} is a {kind.__module__}.{kind.__qualname__}, not a wsekern.nn Tensor: "
            "its gradient would be lost, so fit would report the penalty but not "
            "train against it. Build it with wsekern.nn.ops or the Tensor's operators (for "
            "a keras.regularizers object, use wsekern.nn.regularizers)")
    return Tensor(np.asarray(value))


def _check_output_carries_gradients(layer, out, args):
    """Refuse an output array that is not a Tensor where gradients were wanted: keras.ops
    (a torch tensor) or NumPy on a Tensor drops the graph, and fit then trains nothing."""
    foreign = [o for o in _leaves(out) if _array_like(o)]
    if not foreign:
        return
    symbolic = [a for a in _leaves(args) if type(a).__name__ == "KerasTensor"]
    if symbolic:                                # keras.Input's tensor, not nn.Input's
        raise TypeError(f"{type(layer).__name__} was called on a {type(symbolic[0]).__module__}"
                        f".KerasTensor of the keras package; wsekern.nn layers take "
                        f"wsekern.nn.Input(...) tensors or arrays: replace keras.Input with "
                        f"nn.Input")
    if not any(isinstance(a, Tensor) and a.requires_grad for a in _leaves(args)) \
            and not layer.trainable_weights:
        return                                  # nothing to differentiate: a constant is fine
    kind = type(foreign[0])
    raise TypeError(
        f"{type(layer).__name__}.call returned a {kind.__module__}.{kind.__qualname__} where "
        "a wsekern.nn Tensor was expected: its inputs or weights need gradients, and they "
        "cannot flow through that array, so fit would leave the weights unchanged (keras.ops "
        "and NumPy functions applied to a Tensor give such arrays). Inside call(), use "
        "wsekern.nn.ops (`from wsekern.nn import ops`) or the Tensor's methods and operators")


def _shape_of(value):
    if isinstance(value, (list, tuple)):
        return [_shape_of(v) for v in value]
    if isinstance(value, dict):
        return {k: _shape_of(v) for k, v in value.items()}
    return tuple(value.shape) if hasattr(value, "shape") else tuple(np.shape(value))


def _batchless(shape):
    """A concrete input shape with its batch dimension as None, as Keras builds layers."""
    if isinstance(shape, list):
        return [_batchless(s) for s in shape]
    if isinstance(shape, dict):
        return {k: _batchless(s) for k, s in shape.items()}
    return (None,) + tuple(shape[1:]) if shape else shape


def _marking_built(build):
    """``build`` made to leave the layer built, as Keras's build wrapper does: a layer
    built directly (``layer.build(shape)``; a custom layer's build building its sub-layers,
    keras.io's pattern) was built again by its first call, a second set of variables
    that the call then used (weights set in between were ignored)."""
    @functools.wraps(build)
    def built_after(self, *args, **kwargs):
        out = build(self, *args, **kwargs)
        shape = args[0] if args else kwargs.get("input_shape")
        if self.__dict__.get("input_shape") is None and shape is not None:
            try:               # as _build_only keeps it (lists and dicts: several inputs)
                self.input_shape = shape if isinstance(shape, (list, dict)) else tuple(shape)
            except TypeError:
                pass
        self.built = True
        return out
    built_after._marks_built = True
    return built_after


class Layer:
    """Base layer. Subclasses define ``build(input_shape)``, ``call(x)`` (with ``training``
    only if they use it), optionally ``compute_output_shape(input_shape)`` (inferred by a
    call on placeholder arrays otherwise) and ``get_config()``."""

    # the weights taking Keras's `<name>_regularizer` and `<name>_constraint` arguments,
    # by add_weight name, as ("kernel", "bias") for Dense, or (argument name, weight name)
    _regularizable = ()

    def __init_subclass__(cls, **kwargs):
        # Keras's attributes for the arguments (`layer.kernel_regularizer`, ...), read from
        # and written to the options add_weight uses
        super().__init_subclass__(**kwargs)
        build = cls.__dict__.get("build")
        if build is not None and not getattr(build, "_marks_built", False):
            cls.build = _marking_built(build)
        for arg, weight in _regularizable(cls):
            for kind in ("regularizer", "constraint"):
                if not hasattr(cls, f"{arg}_{kind}"):
                    setattr(cls, f"{arg}_{kind}", _option_property((weight, kind)))

    def __init__(self, name=None, trainable=True, dtype="float32", input_shape=None,
                 input_dim=None, activity_regularizer=None, **kwargs):
        kwargs.pop("autocast", None)        # Keras arguments with no meaning here
        self._weight_options = {}           # (weight name, "regularizer"/"constraint") -> fn
        for arg, weight in _regularizable(type(self)):
            for kind, get in (("regularizer", regularizers.get), ("constraint", constraints.get)):
                value = kwargs.pop(f"{arg}_{kind}", None)
                if value is not None:
                    self._weight_options[(weight, kind)] = get(value)
        self.activity_regularizer = regularizers.get(activity_regularizer)
        if kwargs:
            hint = ""
            if any(k.endswith(("_regularizer", "_constraint")) for k in kwargs):
                takes = [f"{a}_{k}" for a, _ in _regularizable(type(self))
                         for k in ("regularizer", "constraint")] + ["activity_regularizer"]
                hint = (f"; {type(self).__name__} takes {', '.join(takes)} (add a penalty "
                        f"with add_loss(...), or in your own layer add_weight(regularizer=..., "
                        f"constraint=...))")
            raise TypeError(f"{type(self).__name__} got unexpected keyword arguments "
                            f"{sorted(kwargs)}{hint}")
        self.name = name or _auto_name(type(self).__name__)
        self.trainable = bool(trainable)
        self.dtype = np.dtype("float32" if dtype is None else getattr(dtype, "name", dtype))
        if input_dim is not None and input_shape is None:
            input_shape = (input_dim,)
        self._input_shape_arg = (tuple(int(s) if s is not None else None for s in input_shape)
                                 if input_shape is not None else None)
        self.built = False
        self._variables = []          # (name, Tensor, trainable)
        self._losses = []
        self._inbound_nodes = []      # functional API: the calls on symbolic tensors
        self.input_shape = None
        self.output_shape = None

    def __getstate__(self):
        # the last call's losses (activity regularizers, add_loss) keep their values but not
        # their autograd graph, whose closures neither pickle nor deep-copy
        d = dict(self.__dict__)
        if d.get("_losses"):
            d["_losses"] = [Tensor(t.data) if isinstance(t, Tensor) else t
                            for t in d["_losses"]]
        return d

    @property
    def trainable(self):
        return self.__dict__.get("_trainable", True)

    @trainable.setter
    def trainable(self, value):
        # Keras: setting it on a layer sets it on every layer inside (a frozen base model's
        # BatchNormalization then runs in inference mode)
        value = bool(value)
        self.__dict__["_trainable"] = value
        if "_variables" in self.__dict__:
            for layer in self._sublayers():
                layer.trainable = value

    def _ensure_base(self):
        """A subclass whose ``__init__`` forgot ``super().__init__()`` gets a clear error."""
        if "_variables" not in self.__dict__:
            raise RuntimeError(f"{type(self).__name__}.__init__ must call super().__init__() "
                               f"before using the layer")

    # -- weights ------------------------------------------------------------
    def add_weight(self, *args, shape=None, initializer=None, dtype=None, trainable=True,
                   regularizer=None, constraint=None, name=None, **kwargs):
        """``add_weight(shape=, initializer=, dtype=, trainable=, regularizer=, name=)`` as in
        Keras 3 (``name`` optional, initializer by name or object; the default is
        glorot_uniform, or zeros for integer dtypes). The older positional form
        ``add_weight(name, shape, initializer, trainable)`` is accepted too."""
        self._ensure_base()
        kwargs.pop("autocast", None)
        kwargs.pop("aggregation", None)
        if kwargs:
            raise TypeError(f"add_weight got unexpected keyword arguments {sorted(kwargs)}")
        if args and isinstance(args[0], str):          # add_weight(name, shape, init, trainable)
            legacy = dict(zip(("name", "shape", "initializer", "trainable"), args))
            name = legacy.get("name", name)
            shape = legacy.get("shape", shape)
            initializer = legacy.get("initializer", initializer)
            trainable = legacy.get("trainable", trainable)
        elif args:                                      # Keras 3 positional order
            given = dict(zip(("shape", "initializer", "dtype", "trainable"), args))
            shape = given.get("shape", shape)
            initializer = given.get("initializer", initializer)
            dtype = given.get("dtype", dtype)
            trainable = given.get("trainable", trainable)
        options = self.__dict__.get("_weight_options", {})
        if regularizer is None:             # the layer's `<name>_regularizer` argument
            regularizer = options.get((name, "regularizer"))
        if constraint is None:
            constraint = options.get((name, "constraint"))
        shape = () if shape is None else tuple(shape)
        if any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0
               for s in shape):
            raise ValueError(f"add_weight needs a shape of non-negative ints; received {shape}")
        dtype = self.dtype if dtype is None else np.dtype(getattr(dtype, "name", dtype))
        if initializer is None:
            initializer = "glorot_uniform" if dtype.kind == "f" else "zeros"
        regularizer = regularizers.get(regularizer)
        constraint = constraints.get(constraint)
        name = name or f"variable_{len(self._variables)}"
        init = initializers.get(initializer)
        shape = tuple(int(s) for s in shape)
        # the initializers draw in float64, then cast: both live at once
        check_memory(math.prod(shape) * (8 + dtype.itemsize),
                     f"layer {self.name!r}: the weight {name!r} of shape {shape}",
                     "give the layer fewer units, filters or a smaller kernel")
        value = np.asarray(init(shape, dtype=dtype), dtype=dtype)
        var = Variable(value, trainable=bool(trainable) and self.trainable,
                       name=f"{self.name}/{name}", regularizer=regularizer,
                       constraint=constraint)
        var.trainable = bool(trainable)
        self._variables.append((name, var, bool(trainable)))
        return var

    def _own_variables(self):
        """(Tensor, trainable) of this layer alone: add_weight's, then Variable attributes."""
        own = [(t, tr) for _, t, tr in self._variables]
        seen = {id(t) for t, _ in own}
        for key, value in self.__dict__.items():
            if type(value) in _LEAF_TYPES or key in _UNTRACKED or isinstance(value, Layer):
                continue
            for v in _tracked_values(value, []):
                if isinstance(v, Variable) and id(v) not in seen:
                    seen.add(id(v))
                    own.append((v, v.trainable))
        return own

    def _sublayers(self):
        """Layers assigned to attributes (directly or in lists/tuples/dicts), in order."""
        found, seen = [], {id(self)}
        for key, value in self.__dict__.items():
            if type(value) in _LEAF_TYPES or key in _UNTRACKED:
                continue
            for v in _tracked_values(value, []):
                if isinstance(v, Layer) and id(v) not in seen:
                    seen.add(id(v))
                    found.append(v)
        return found

    def _parts(self, memo=None):
        """(``_own_variables()``, ``_sublayers()``), kept in ``memo`` (a dict for one walk
        of the tree, by layer id; the tree holds its layers, so ids stay unique) when given."""
        if memo is None:
            return self._own_variables(), self._sublayers()
        got = memo.get(id(self))
        if got is None:
            got = memo[id(self)] = (self._own_variables(), self._sublayers())
        return got

    def _walk_variables(self, trainable_only, seen_layers=None, memo=None):
        """Own variables, then each tracked sub-layer's, without repeats."""
        seen_layers = set() if seen_layers is None else seen_layers
        seen_layers.add(id(self))
        if trainable_only and not self.trainable:
            return []
        own, subs = self._parts(memo)
        out = [t for t, tr in own if tr or not trainable_only]
        for layer in subs:
            if id(layer) not in seen_layers:
                out.extend(layer._walk_variables(trainable_only, seen_layers, memo))
        return out

    @staticmethod
    def _dedup(tensors):
        seen, out = set(), []
        for t in tensors:
            if id(t) not in seen:
                seen.add(id(t))
                out.append(t)
        return out

    @property
    def weights(self):
        return self._dedup(self._walk_variables(False))

    variables = weights

    @property
    def trainable_weights(self):
        return self._dedup(self._walk_variables(True))

    trainable_variables = trainable_weights

    @property
    def non_trainable_weights(self):
        trainable = {id(t) for t in self.trainable_weights}
        return [t for t in self.weights if id(t) not in trainable]

    non_trainable_variables = non_trainable_weights

    def _weight_groups(self):
        """The weights split by owner, in ``weights`` order: this layer's own, then each
        sub-layer's (through its get/set_weights, which may present them differently, as a
        sparse Dense presents its packed kernel as Keras's dense one)."""
        own = [t for t, _ in self._own_variables()]
        groups, seen = [(None, own)], {id(t) for t in own}
        for layer in self._sublayers():
            ws = [t for t in layer.weights if id(t) not in seen]
            if ws:
                groups.append((layer, layer.weights))
                seen.update(id(t) for t in ws)
        return groups

    def get_weights(self):
        """The layer's weights as NumPy arrays, in Keras's order and shapes."""
        out = []
        for owner, tensors in self._weight_groups():
            if owner is None:
                out.extend(t.data.copy() for t in tensors)
            else:
                out.extend(owner.get_weights())
        return out

    def set_weights(self, weights):
        weights = list(weights)
        groups = self._weight_groups()
        expected = sum(len(ts) for _, ts in groups)
        if len(weights) != expected:
            raise ValueError(f"layer {self.name!r} expects {expected} weight arrays; "
                             f"received {len(weights)}")
        own = groups[0][1]
        for t, w in zip(own, weights):
            w = np.asarray(w)
            if w.shape != t.shape:
                raise ValueError(f"layer {self.name!r}: weight {t.name!r} has shape {t.shape}; "
                                 f"received {w.shape}")
        for t, w in zip(own, weights):
            t.data[...] = w
        i = len(own)
        for owner, tensors in groups[1:]:
            owner.set_weights(weights[i:i + len(tensors)])
            i += len(tensors)

    def count_params(self):
        return int(sum(np.prod(w.shape) for w in self.get_weights()))

    # -- losses ----------------------------------------------------------------------
    def add_loss(self, loss):
        """Add a scalar loss (a Tensor) to the model's training objective for this call."""
        self._ensure_base()
        self._losses.append(_loss_tensor(loss, f"the loss given to {type(self).__name__}"
                                               f".add_loss", False))

    @property
    def losses(self):
        """As Keras 3: the losses added during the last call (activity regularizers,
        ``add_loss``) of this layer and of its sub-layers, in Keras's ``_flatten_layers``
        order, then the penalties of the regularized weights in ``trainable_weights`` order
        (so a frozen layer's weights are not penalized; its activity losses still count)."""
        out = [loss for layer in self._flatten_layers() for loss in layer._losses]
        out.extend(t.regularizer(t) for t in self.trainable_weights
                   if getattr(t, "regularizer", None) is not None)
        return out

    def _flatten_layers(self, memo=None):
        """This layer, then its sub-layers at any depth in Keras's ``_flatten_layers``
        order: a deque from which each layer's own sub-layers go back to the front,
        reversed (so [A [a1, a2], B] gives A, a2, a1, B)."""
        out, seen = [self], {id(self)}
        queue = collections.deque(self._parts(memo)[1])
        while queue:
            layer = queue.popleft()
            if id(layer) in seen:
                continue
            seen.add(id(layer))
            out.append(layer)
            queue.extendleft(layer._parts(memo)[1])
        return out

    def _clear_losses(self, seen=None):
        seen = set() if seen is None else seen
        seen.add(id(self))
        self._losses = []
        for layer in self._sublayers():
            if id(layer) not in seen:
                layer._clear_losses(seen)

    # -- the contract ----------------------------------------------------------------
    def build(self, input_shape):
        self.built = True

    def call(self, x, training=False):
        raise NotImplementedError(f"{type(self).__name__} must define call()")

    def compute_output_shape(self, input_shape):
        return _infer_output_shape(self, input_shape)

    def __call__(self, *args, **kwargs):
        if "_variables" not in self.__dict__:
            self._ensure_base()
        # the common call, on Tensors with at most `training`/`mask` given, skips the walk
        # for symbolic inputs and the conversion (a Tensor is neither symbolic nor converted)
        plain = all(type(a) is Tensor for a in args) and all(
            k in _PLAIN_KWARGS and type(v) in _PLAIN_VALUES for k, v in kwargs.items())
        if not plain:
            if any_symbolic(args, kwargs):
                return call_symbolic(self, args, kwargs)
            args = tuple(_to_tensors(a) for a in args)
        first = not self.built
        if first:
            self._build_only(_batchless(_shape_of(args[0])) if args else None)
        cls = type(self)
        # Keras's implicit masks: the first input's mask reaches a `mask` argument
        previous_mask = keras_mask(args[0]) if args else None
        if previous_mask is not None and kwargs.get("mask") is None \
                and _call_accepts(cls, "mask"):
            kwargs["mask"] = previous_mask
        # Keras's call context: a layer called without `training` inherits its caller's
        stack = _CALLING.stack
        caller_training, caller_given, outer = stack[-1]
        given = kwargs.get("training")
        training = caller_training if given is None else given
        if _call_accepts(cls, "training"):
            kwargs["training"] = bool(training)
        else:
            kwargs.pop("training", None)
        if "mask" in kwargs and not _call_accepts(cls, "mask"):
            kwargs.pop("mask")
        # a layer called twice in one forward (shared) keeps both calls' losses, as Keras
        if len(stack) == 1:
            outer = next(_OUTER_IDS)
        if self.__dict__.get("_losses_call") != outer:
            self._losses = []
            self.__dict__["_losses_call"] = outer
        stack.append((bool(training), given is not None or caller_given, outer))
        if first:               # what the first call builds is in this layer's path (Keras)
            built_in = building_stack()
            built_in.append(self)
        try:
            out = self.call(*args, **kwargs)
        finally:
            stack.pop()
            if first:
                built_in.pop()
        if type(out) is not Tensor:
            _check_output_carries_gradients(self, out, args)
        if getattr(self, "activity_regularizer", None) is not None:
            self._activity_losses(out)
        if self.output_shape is None:            # built by this call: shapes from its result
            self.output_shape = _batchless(_shape_of(out))
        if self.supports_masking and isinstance(out, Tensor):
            out_mask = self.compute_mask(args[0] if args else None, previous_mask)
            if out_mask is not None:
                out._keras_mask = out_mask
        return out

    # Keras's masking: a layer that keeps the time steps passes its input's mask on.
    supports_masking = False

    def compute_mask(self, inputs, mask=None):
        """The mask of this layer's output, given its input and the input's mask (boolean,
        True = a real step). Default: the input's mask, unchanged."""
        return mask

    def _build_only(self, input_shape):
        """Build for ``input_shape`` without computing the output shape (the call that
        follows gives it)."""
        self.input_shape = input_shape if isinstance(input_shape, (list, dict)) \
            else tuple(input_shape)
        with building(self):
            self.build(self.input_shape)
        self.built = True

    def _build(self, input_shape):
        """Build for ``input_shape`` (batch dimension first, may be None)."""
        self.input_shape = input_shape if isinstance(input_shape, (list, dict)) \
            else tuple(input_shape)
        with building(self):
            self.build(self.input_shape)
            self.built = True
            # sublayers first called to infer the shape are built in this layer's path too
            out = self.compute_output_shape(self.input_shape)
        self.output_shape = tuple(out) if isinstance(out, (tuple, list)) and (
            not out or not isinstance(out[0], (tuple, list))) else out
        return self.output_shape

    def _activity_losses(self, out):
        """Keras's activity penalty: the regularizer of each output divided by its batch
        size (0 for an empty batch), added to this call's losses."""
        outs = out if isinstance(out, (list, tuple)) else \
            list(out.values()) if isinstance(out, dict) else [out]
        for o in outs:
            if not isinstance(o, Tensor):
                continue
            loss = _loss_tensor(self.activity_regularizer(o), f"the penalty of "
                                f"{type(self).__name__}'s activity regularizer "
                                f"{self.activity_regularizer!r}", o.requires_grad)
            if o.ndim > 0:
                loss = loss * (1.0 / o.shape[0] if o.shape[0] else 0.0)
            self._losses.append(loss)

    def get_config(self):
        config = {"name": self.name, "trainable": self.trainable, "dtype": self.dtype.name}
        if self._input_shape_arg is not None:
            config["input_shape"] = list(self._input_shape_arg)
        if self.__dict__.get("activity_regularizer") is not None:
            config["activity_regularizer"] = _serialize_option(self.activity_regularizer)
        args = {w: a for a, w in _regularizable(type(self))}
        for (weight, kind), fn in self.__dict__.get("_weight_options", {}).items():
            config[f"{args[weight]}_{kind}"] = _serialize_option(fn)
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    # -- the functional API --------------------------------------------------------------
    @property
    def output(self):
        """The symbolic output of this layer's only call on symbolic inputs."""
        return self._only_node("output").output_tensors

    @property
    def input(self):
        return self._only_node("input").input_tensors

    def _only_node(self, what):
        if not self._inbound_nodes:
            raise AttributeError(f"layer {self.name!r} has not been called on symbolic inputs "
                                 f"(keras.Input), so it has no {what}")
        if len(self._inbound_nodes) > 1:
            raise AttributeError(f"layer {self.name!r} was called {len(self._inbound_nodes)} "
                                 f"times (a shared layer), so its {what} is ambiguous")
        return self._inbound_nodes[0]

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name!r}>"


def _regularizable(cls):
    """(argument name, weight name) of each weight ``cls`` takes regularizers for."""
    return [(w, w) if isinstance(w, str) else tuple(w) for w in cls._regularizable]


def _option_property(key):
    get = regularizers.get if key[1] == "regularizer" else constraints.get

    def fget(self):
        return self.__dict__.get("_weight_options", {}).get(key)

    def fset(self, value):
        options = self.__dict__.setdefault("_weight_options", {})
        options.pop(key, None)
        if value is not None:
            options[key] = get(value)
    return property(fget, fset)


def _serialize_option(fn):
    """A regularizer or constraint as a config keeps it: {'class_name', 'config'} for an
    object with get_config, the registered name of a plain function."""
    from ..registry import get_registered_name, serialize_object
    if hasattr(fn, "get_config"):
        table = {**regularizers._CLASSES, **constraints._CLASSES}
        return serialize_object(fn, table)
    return get_registered_name(fn)


_PLACEHOLDER = 3       # the size a None dimension takes when a call infers the output shape


def _infer_output_shape(layer, input_shape):
    """The output shape of ``layer.call`` found by running it on zeros of ``input_shape``
    (None dimensions become small placeholders and come back as None)."""
    def zeros(shape):
        if isinstance(shape, list) and (not shape or isinstance(shape[0], (tuple, list))):
            return [zeros(s) for s in shape]
        if isinstance(shape, dict):
            return {k: zeros(s) for k, s in shape.items()}
        concrete = tuple(_PLACEHOLDER if s is None else int(s) for s in shape)
        return Tensor(np.zeros(concrete, dtype=layer.dtype))

    kwargs = {"training": False} if _call_accepts(type(layer), "training") else {}
    kept, layer._losses = list(layer._losses), []
    out = layer.call(zeros(input_shape), **kwargs)
    layer._losses = kept                      # a shape query adds no loss
    none_axes = ({i for i, s in enumerate(input_shape) if s is None and i > 0}
                 if isinstance(input_shape, tuple) else set())

    def shape_back(t):
        if isinstance(t, (list, tuple)):
            return [shape_back(v) for v in t]
        if isinstance(t, dict):
            return {k: shape_back(v) for k, v in t.items()}
        return tuple(None if i == 0 or (i in none_axes and s == _PLACEHOLDER) else int(s)
                     for i, s in enumerate(np.shape(t.data if isinstance(t, Tensor) else t)))
    return shape_back(out)
