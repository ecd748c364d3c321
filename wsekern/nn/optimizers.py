"""Keras 3's optimizers (SGD, RMSprop, Adam, AdamW, Adagrad, Adadelta, Adamax, Nadam, Lion)
with its update rules, gradient clipping, configs and a saveable state.

One implementation: ``Optimizer`` owns the step count (a 0-d int64 array, so it saves and
restores exactly), the learning rate (a float or a schedule), clipping, decoupled weight
decay and per-variable slots; each subclass names its slots and defines ``_update`` (the
NumPy rule, for every dtype and layout) and ``_fused`` (the same rule in one pass, from
``wsekern._optim``, for contiguous float32/float64 variables; the same numbers).
"""
import math
import sys

import numpy as np

from .. import _optim
from . import constraints, registry, schedules
from .naming import auto_name
from .schedules import (  # noqa: F401
    CosineDecay,
    CosineDecayRestarts,
    ExponentialDecay,
    InverseTimeDecay,
    LearningRateSchedule,
    PiecewiseConstantDecay,
    PolynomialDecay,
)
from .tensor import Tensor
from .variables import Variable, VariableView, unnamed_variable_name

# Keras's optimizer variables after the step count and learning rate: groups of slot
# names, each group made for every variable in turn (Keras's add_optimizer_variables)
KERAS_SLOT_GROUPS = {"SGD": [("momentum",)],
                     "RMSprop": [("velocity",), ("momentum",), ("average_gradient",)],
                     "Adam": [("momentum", "velocity"), ("velocity_hat",)],
                     "AdamW": [("momentum", "velocity"), ("velocity_hat",)],
                     # Keras's add_optimizer_variables(var_list, [names]): per variable, each name
                     # (Keras 3.15's adagrad/adadelta/adamax/lion.py; our slots, same updates)
                     "Adagrad": [("accumulator",)],
                     "Adadelta": [("accumulated_grad", "accumulated_delta_var")],
                     "Adamax": [("m", "u")],
                     "Lion": [("momentum",)],
                     "Nadam": [("momentum", "velocity")]}
# slots whose Keras name is not ours (Keras's adamax.py: "momentum" and "norm")
KERAS_SLOT_NAMES = {"Adamax": {"m": "momentum", "u": "norm"}}

# ``from wsekern.nn.optimizers.schedules import CosineDecay`` works as in Keras
sys.modules[__name__ + ".schedules"] = schedules


def _number(name, value, lo=None, hi=None, lo_open=False, hi_open=False):
    """``value`` as a float, or a ValueError naming it and the range that would work."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number; received {value!r}") from None
    bad = not math.isfinite(v)
    if lo is not None:
        bad |= v <= lo if lo_open else v < lo
    if hi is not None:
        bad |= v >= hi if hi_open else v > hi
    if bad:
        rng = f"{'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
        raise ValueError(f"{name} must be a finite number in {rng}; received {value!r}")
    return v


class Optimizer:
    """Shared machinery; subclasses set ``_slots`` (state names per variable) and
    ``_update(w, g, slots, lr, step)`` where ``step`` is the 1-based step being taken, and
    may set ``_fused(w, g, slots, lr, step, decay)``: the update including the weight decay
    ``w -= w * decay`` (decay None: none), True when done, False to run the NumPy code."""
    _slots = ()
    _use_fused = True          # False: always the NumPy code (tests compare the two)

    def __init__(self, learning_rate=0.001, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, use_ema=False, ema_momentum=0.99,
                 ema_overwrite_frequency=None, loss_scale_factor=None,
                 gradient_accumulation_steps=None, name=None, **kwargs):
        if kwargs:
            raise TypeError(f"{type(self).__name__} got unexpected keyword arguments "
                            f"{sorted(kwargs)}")
        if use_ema or loss_scale_factor is not None or gradient_accumulation_steps is not None:
            raise NotImplementedError("use_ema, loss_scale_factor and gradient_accumulation_"
                                      "steps are not implemented in wsekern.nn")
        self.learning_rate = learning_rate
        self.weight_decay = None if weight_decay is None else _number("weight_decay",
                                                                      weight_decay, 0)
        clips = {"clipnorm": clipnorm, "clipvalue": clipvalue, "global_clipnorm": global_clipnorm}
        if sum(v is not None for v in clips.values()) > 1:
            raise ValueError(f"only one of clipnorm, clipvalue and global_clipnorm can be set; "
                             f"received {({k: v for k, v in clips.items() if v is not None})}")
        for k, v in clips.items():
            setattr(self, k, None if v is None else _number(k, v, 0))
        self.name = auto_name(type(self).__name__) if name is None else name
        self._iterations = np.zeros((), dtype=np.int64)
        self._state = {}          # id(variable) -> (variable, [slot arrays])

    # _state is keyed by id(variable): a pickled or deep-copied optimizer re-keys it by the
    # copied variables' ids, or each would lose its slots (moments from zero while the
    # step count goes on: a silently different training)
    def __getstate__(self):
        d = dict(self.__dict__)
        d["_state"] = list(self._state.values())
        return d

    def __setstate__(self, d):
        d = dict(d)
        entries = d.pop("_state", [])
        self.__dict__.update(d)
        self._state = {id(v): (v, slots) for v, slots in entries}

    # -- step count and learning rate --------------------------------------------------
    @property
    def iterations(self):
        return int(self._iterations)

    @iterations.setter
    def iterations(self, value):
        self._iterations[...] = int(value)

    @property
    def learning_rate(self):
        lr = self._learning_rate
        return float(lr(self.iterations)) if callable(lr) else float(lr)

    @learning_rate.setter
    def learning_rate(self, value):
        if isinstance(value, dict):
            value = schedules.deserialize(value)
        if not callable(value):
            value = _number("learning_rate", value, 0)
        self._learning_rate = value

    # -- the update ------------------------------------------------------------------------
    def apply_gradients(self, variables):
        """One step over the variables' ``.grad`` (Tensors); variables without a grad are
        skipped, as Keras filters empty gradients. Also accepts Keras's
        ``[(grad, variable), ...]`` pairs."""
        variables = list(variables)
        if variables and isinstance(variables[0], tuple):
            pairs = [(g, v) for g, v in variables if g is not None]
        else:
            pairs = [(v.grad, v) for v in variables if v.grad is not None]
        if not pairs:
            return
        grads = self._clip([np.asarray(g).astype(v.data.dtype, copy=False) for g, v in pairs])
        lr = self.learning_rate
        step = self.iterations + 1
        self._begin_step(step)
        decay = self.weight_decay * lr if self.weight_decay else None
        fused = self._use_fused
        for g, (_, v) in zip(grads, pairs):
            w, slots = v.data, self._slots_of(v)
            if fused and self._fused(w, g, slots, lr, step, decay):
                continue
            if decay is not None:
                w -= w * decay
            self._update(w, g, slots, lr, step)
        for _, v in pairs:              # as Keras: each updated weight re-projected
            c = getattr(v, "constraint", None)
            if c is not None:
                constraints.apply(c, v)
        self._iterations += 1

    def apply(self, grads, trainable_variables=None):
        """Keras's ``apply(grads, trainable_variables)``: one step with these gradients
        of these variables. With the variables alone (``apply(variables)``) their
        ``.grad`` is used, as by :meth:`apply_gradients`."""
        if trainable_variables is None:
            return self.apply_gradients(grads)
        grads, trainable_variables = list(grads), list(trainable_variables)
        if len(grads) != len(trainable_variables):
            raise ValueError(f"apply got {len(grads)} gradients for "
                             f"{len(trainable_variables)} variables")
        return self.apply_gradients(list(zip(grads, trainable_variables)))

    def _clip(self, grads):
        if self.clipnorm:
            return [g * (self.clipnorm / max(float(np.sqrt((g * g).sum())), self.clipnorm))
                    for g in grads]
        if self.global_clipnorm:
            norm = math.sqrt(sum(float((g * g).sum()) for g in grads))
            scale = self.global_clipnorm * min(1.0 / norm if norm else math.inf,
                                               1.0 / self.global_clipnorm)
            return [g * g.dtype.type(scale) for g in grads]
        if self.clipvalue:
            return [np.clip(g, -self.clipvalue, self.clipvalue) for g in grads]
        return grads

    def _summary_params(self):
        """(count, bytes) of what Keras counts as the optimizer's variables once it has
        taken a step (the summary's "Optimizer params"): the step count, the learning rate
        unless a schedule gives it, Nadam's running product, and the slots; None before."""
        if not self._state and not self.iterations:
            return None
        scalars = 1 + (not callable(self._learning_rate)) + hasattr(self, "_u_product")
        slots = [a for _, arrays in self._state.values() for a in arrays]
        return (scalars + sum(a.size for a in slots),
                4 * scalars + sum(a.nbytes for a in slots))     # Keras's scalars: 4 bytes

    def _slots_of(self, v):
        entry = self._state.get(id(v))
        if entry is None or entry[0] is not v:          # holding v keeps its id unique
            if not self._state and hasattr(self, "_u_product"):
                self._u_product_name()                  # named when built, as in Keras
            entry = (v, [self._init_slot(name, v.data) for name in self._active_slots()])
            self._state[id(v)] = entry
        return entry[1]

    def _active_slots(self):
        return self._slots

    def build(self, variables):
        """Keras's ``build(var_list)``: the slots of these variables made now (zeros), in
        this order (otherwise at each variable's first update)."""
        for v in variables:
            self._slots_of(v)

    @property
    def variables(self):
        """Keras's ``optimizer.variables``: the step count, the learning rate (unless a
        schedule gives it), then each variable's slots in Keras's order and shapes, named as
        Keras names them (``adam/dense_kernel_momentum``). The step count and the slots share
        memory with this optimizer (an ``assign`` changes its state); the learning rate and
        Nadam's running product are copies. Slots exist once built or after a step."""
        prefix = self.name
        out = [_state_variable(self._iterations, f"{prefix}/iteration")]
        if not callable(self._learning_rate):
            out.append(_state_variable(np.asarray(self._learning_rate, np.float32),
                                       f"{prefix}/learning_rate"))
        active = list(self._active_slots())
        groups = KERAS_SLOT_GROUPS.get(type(self).__name__, [tuple(active)])
        entries = list(self._state.values())
        rename = KERAS_SLOT_NAMES.get(type(self).__name__, {})
        for group in groups:
            names = [n for n in group if n in active]
            for v, slots in entries:
                key = str(getattr(v, "path", None) or getattr(v, "name", None)
                          or "variable").replace("/", "_")
                out.extend(_state_variable(slots[active.index(n)],
                                           f"{prefix}/{key}_{rename.get(n, n)}")
                           for n in names)
        if hasattr(self, "_u_product") and (self._state or self.iterations):   # once built
            out.append(_state_variable(np.asarray(self._u_product, np.float32),
                                       self._u_product_name()))
        return out

    def _init_slot(self, name, w):
        return np.zeros_like(w)

    def _fused(self, w, g, slots, lr, step, decay):
        return False

    def _begin_step(self, step):
        """Optimizer-wide work before the per-variable updates (Nadam's running product)."""

    # -- state ------------------------------------------------------------------------------
    def state_arrays(self, variables):
        """``{"iterations": 0-d int64, f"{i}/{j}": slot j of variables[i]}`` for the variables
        that have state (copies: later steps do not change them)."""
        out = {"iterations": self._iterations.copy()}
        for i, v in enumerate(variables):
            entry = self._state.get(id(v))
            if entry is not None and entry[0] is v:
                for j, arr in enumerate(entry[1]):
                    out[f"{i}/{j}"] = arr.copy()
        return out

    def load_state_arrays(self, variables, arrays):
        """Restore what ``state_arrays(variables)`` returned, so training resumes exactly."""
        arrays = dict(arrays)
        if "iterations" not in arrays:
            raise ValueError("optimizer state has no 'iterations' entry; received keys "
                             f"{sorted(arrays)}")
        it = np.asarray(arrays.pop("iterations"))
        if it.shape != () or it.dtype.kind not in "iu" or it < 0:
            raise ValueError(f"optimizer state 'iterations' must be a non-negative 0-d integer; "
                             f"received shape {it.shape}, dtype {it.dtype}")
        n_slots = len(self._active_slots())
        state = {}
        for key in sorted(arrays):
            i_str, _, j_str = key.partition("/")
            if not (f"{i_str}{j_str}".isascii() and i_str.isdigit() and j_str.isdigit()) \
                    or int(i_str) >= len(variables) \
                    or int(j_str) >= n_slots:
                raise ValueError(f"optimizer state key {key!r} does not name slot j < {n_slots} "
                                 f"of variable i < {len(variables)} ({type(self).__name__} "
                                 f"keeps {list(self._active_slots())})")
            i, j = int(i_str), int(j_str)
            arr, v = np.asarray(arrays[key]), variables[i]
            if isinstance(v, VariableView) and arr.shape == v.base.data.shape:
                arr = arr.reshape(v.data.shape)   # a MultiHeadAttention slot kept flat (<= s21)
            if arr.shape != v.data.shape or arr.dtype != v.data.dtype:
                raise ValueError(f"optimizer state {key!r}: expected shape {v.data.shape} and "
                                 f"dtype {v.data.dtype} (variable {getattr(v, 'name', i)!r}); "
                                 f"received shape {arr.shape}, dtype {arr.dtype}")
            state.setdefault(i, {})[j] = arr.copy()
        for i, slots in state.items():
            if len(slots) != n_slots:
                missing = [f"{i}/{j}" for j in range(n_slots) if j not in slots]
                raise ValueError(f"optimizer state for variable {i} is incomplete: missing "
                                 f"{missing}")
        self._state = {id(variables[i]): (variables[i], [state[i][j] for j in range(n_slots)])
                       for i in sorted(state)}       # the variables' order (``variables``)
        self._iterations[...] = int(it)
        self._restore_derived()

    def _restore_derived(self):
        """Recompute optimizer-wide values that follow from the step count."""

    # -- config -------------------------------------------------------------------------------
    def _hyper(self):
        return {}

    def get_config(self):
        lr = self._learning_rate
        lr_cfg = schedules.serialize(lr) if isinstance(lr, LearningRateSchedule) else (
            float(lr) if not callable(lr) else None)
        if lr_cfg is None:
            raise ValueError("a learning rate given as a plain function cannot be saved; use a "
                             "LearningRateSchedule subclass with get_config")
        return {"name": self.name, "learning_rate": lr_cfg, "weight_decay": self.weight_decay,
                "clipnorm": self.clipnorm, "global_clipnorm": self.global_clipnorm,
                "clipvalue": self.clipvalue, **self._hyper()}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        if isinstance(config.get("learning_rate"), dict):
            config["learning_rate"] = schedules.deserialize(config["learning_rate"],
                                                            custom_objects)
        for k in ("use_ema", "ema_momentum", "ema_overwrite_frequency", "loss_scale_factor",
                  "gradient_accumulation_steps", "is_legacy_optimizer"):
            if k in config and config[k] in (None, False, 0.99):
                config.pop(k)
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name!r} learning_rate={self.learning_rate}>"


class SGD(Optimizer):
    """v = momentum * v - lr * g; w += v (Nesterov: w += momentum * v - lr * g)."""

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.momentum = _number("momentum", momentum, 0, 1)
        self.nesterov = bool(nesterov)

    def _active_slots(self):
        return ("momentum",) if self.momentum else ()

    def _hyper(self):
        return {"momentum": self.momentum, "nesterov": self.nesterov}

    def _fused(self, w, g, slots, lr, step, decay):
        return _optim.sgd(w, g, slots[0] if self.momentum else None, lr, self.momentum,
                          self.nesterov, decay)

    def _update(self, w, g, slots, lr, step):
        if not self.momentum:
            w -= lr * g
            return
        (v,) = slots
        v *= self.momentum
        v -= lr * g
        if self.nesterov:
            w += self.momentum * v - lr * g
        else:
            w += v


class RMSprop(Optimizer):
    """Keras's RMSprop: epsilon inside the square root; optional momentum and centring."""

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7,
                 centered=False, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.rho = _number("rho", rho, 0, 1)
        self.momentum = _number("momentum", momentum, 0, 1)
        self.epsilon = _number("epsilon", epsilon, 0)
        self.centered = bool(centered)

    def _active_slots(self):
        return ("velocity",) + (("momentum",) if self.momentum else ()) + \
            (("average_gradient",) if self.centered else ())

    def _hyper(self):
        return {"rho": self.rho, "momentum": self.momentum, "epsilon": self.epsilon,
                "centered": self.centered}

    def _fused(self, w, g, slots, lr, step, decay):
        return _optim.rmsprop(w, g, slots[0], slots[1] if self.momentum else None,
                              slots[-1] if self.centered else None, lr, self.rho,
                              self.momentum, self.epsilon, decay)

    def _update(self, w, g, slots, lr, step):
        velocity = slots[0]
        velocity *= self.rho
        velocity += (1 - self.rho) * g * g
        if self.centered:
            avg = slots[-1]
            avg *= self.rho
            avg += (1 - self.rho) * g
            denominator = velocity - avg * avg + self.epsilon
        else:
            denominator = velocity + self.epsilon
        increment = lr * g / np.sqrt(denominator)
        if self.momentum:
            mom = slots[1]
            mom *= self.momentum
            mom += increment
            w -= mom
        else:
            w -= increment


class Adam(Optimizer):
    """Keras's Adam: bias correction folded into the learning rate, epsilon 1e-7, the step
    count shared by all variables (the optimizer's ``iterations``)."""

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 amsgrad=False, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.beta_1 = _number("beta_1", beta_1, 0, 1, hi_open=True)
        self.beta_2 = _number("beta_2", beta_2, 0, 1, hi_open=True)
        self.epsilon = _number("epsilon", epsilon, 0)
        self.amsgrad = bool(amsgrad)

    def _active_slots(self):
        return ("momentum", "velocity") + (("velocity_hat",) if self.amsgrad else ())

    def _hyper(self):
        return {"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon,
                "amsgrad": self.amsgrad}

    def _alpha(self, lr, step):
        return lr * math.sqrt(1 - self.beta_2 ** step) / (1 - self.beta_1 ** step)

    def _fused(self, w, g, slots, lr, step, decay):
        return _optim.adam(w, g, slots[0], slots[1], slots[2] if self.amsgrad else None,
                           self._alpha(lr, step), self.beta_1, self.beta_2, self.epsilon,
                           decay)

    def _update(self, w, g, slots, lr, step):
        m, v = slots[0], slots[1]
        alpha = self._alpha(lr, step)
        b1, b2 = self.beta_1, self.beta_2
        m += (g - m) * (1 - b1)
        v += (g * g - v) * (1 - b2)
        if self.amsgrad:
            np.maximum(slots[2], v, out=slots[2])
            v = slots[2]
        w -= alpha * m / (np.sqrt(v) + self.epsilon)


class AdamW(Adam):
    """Adam with decoupled weight decay (Keras's default 0.004)."""

    def __init__(self, learning_rate=0.001, weight_decay=0.004, **kwargs):
        super().__init__(learning_rate, weight_decay=weight_decay, **kwargs)


class Adagrad(Optimizer):
    """acc += g^2; w -= lr * g / sqrt(acc + epsilon)."""

    def __init__(self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7,
                 **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.initial_accumulator_value = _number("initial_accumulator_value",
                                                 initial_accumulator_value, 0)
        self.epsilon = _number("epsilon", epsilon, 0)

    _slots = ("accumulator",)

    def _init_slot(self, name, w):
        return np.full_like(w, self.initial_accumulator_value)

    def _hyper(self):
        return {"initial_accumulator_value": self.initial_accumulator_value,
                "epsilon": self.epsilon}

    def _fused(self, w, g, slots, lr, step, decay):
        return _optim.adagrad(w, g, slots[0], lr, self.epsilon, decay)

    def _update(self, w, g, slots, lr, step):
        acc = slots[0]
        acc += g * g
        w -= lr * g / np.sqrt(acc + self.epsilon)


class Adadelta(Optimizer):
    """Keras's Adadelta (its learning_rate multiplies the Adadelta step; default 0.001)."""
    _slots = ("accumulated_grad", "accumulated_delta_var")

    def __init__(self, learning_rate=0.001, rho=0.95, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.rho = _number("rho", rho, 0, 1)
        self.epsilon = _number("epsilon", epsilon, 0)

    def _hyper(self):
        return {"rho": self.rho, "epsilon": self.epsilon}

    def _update(self, w, g, slots, lr, step):
        acc_g, acc_d = slots
        rho, eps = self.rho, self.epsilon
        acc_g *= rho
        acc_g += (1 - rho) * g * g
        delta = -np.sqrt(acc_d + eps) * g / np.sqrt(acc_g + eps)
        acc_d *= rho
        acc_d += (1 - rho) * delta * delta
        w += lr * delta


class Adamax(Optimizer):
    """``m += (g - m)(1 - b1); u = max(b2 u, |g|); w -= lr m / ((1 - b1^t)(u + eps))``."""
    _slots = ("m", "u")

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.beta_1 = _number("beta_1", beta_1, 0, 1, hi_open=True)
        self.beta_2 = _number("beta_2", beta_2, 0, 1, hi_open=True)
        self.epsilon = _number("epsilon", epsilon, 0)

    def _hyper(self):
        return {"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}

    def _fused(self, w, g, slots, lr, step, decay):
        return _optim.adamax(w, g, slots[0], slots[1], lr, self.beta_1, self.beta_2,
                             1 - self.beta_1 ** step, self.epsilon, decay)

    def _update(self, w, g, slots, lr, step):
        m, u = slots
        m += (g - m) * (1 - self.beta_1)
        np.maximum(self.beta_2 * u, np.abs(g), out=u)
        w -= lr * m / ((1 - self.beta_1 ** step) * (u + self.epsilon))


class Nadam(Optimizer):
    """Keras's Nadam (Dozat's schedule: mu_t = b1 (1 - 0.5 * 0.96^t)). The running product
    of mu_t follows from the step count, so it is recomputed on restore, not saved."""
    _slots = ("momentum", "velocity")

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.beta_1 = _number("beta_1", beta_1, 0, 1, hi_open=True)
        self.beta_2 = _number("beta_2", beta_2, 0, 1, hi_open=True)
        self.epsilon = _number("epsilon", epsilon, 0)
        self._u_product = 1.0

    def _u_product_name(self):
        """Keras's unnamed running-product variable: "variable", "variable_1", ... by how
        many unnamed variables the process made before this optimizer was built."""
        if getattr(self, "_u_name", None) is None:
            self._u_name = unnamed_variable_name()
        return self._u_name

    def _mu(self, t):
        return self.beta_1 * (1.0 - 0.5 * 0.96 ** t)

    def _begin_step(self, step):
        self._u_product *= self._mu(step)

    def _restore_derived(self):
        self._u_product = math.prod(self._mu(t) for t in range(1, self.iterations + 1))

    def _hyper(self):
        return {"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}

    def _fused(self, w, g, slots, lr, step, decay):
        u_t, u_t1 = self._mu(step), self._mu(step + 1)
        u_prod = self._u_product
        return _optim.nadam(w, g, slots[0], slots[1], lr, self.beta_1, self.beta_2, u_t1,
                            1 - u_prod * u_t1, 1 - u_t, 1 - u_prod, 1 - self.beta_2 ** step,
                            self.epsilon, decay)

    def _update(self, w, g, slots, lr, step):
        m, v = slots
        u_t, u_t1 = self._mu(step), self._mu(step + 1)
        u_prod = self._u_product
        m += (g - m) * (1 - self.beta_1)
        v += (g * g - v) * (1 - self.beta_2)
        m_hat = u_t1 * m / (1 - u_prod * u_t1) + (1 - u_t) * g / (1 - u_prod)
        v_hat = v / (1 - self.beta_2 ** step)
        w -= m_hat * lr / (np.sqrt(v_hat) + self.epsilon)


class Lion(Optimizer):
    """w -= lr * sign(b1 m + (1 - b1) g); m = b2 m + (1 - b2) g."""
    _slots = ("momentum",)

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.99, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.beta_1 = _number("beta_1", beta_1, 0, 1, lo_open=True)
        self.beta_2 = _number("beta_2", beta_2, 0, 1)

    def _hyper(self):
        return {"beta_1": self.beta_1, "beta_2": self.beta_2}

    def _fused(self, w, g, slots, lr, step, decay):
        return _optim.lion(w, g, slots[0], lr, self.beta_1, self.beta_2, decay)

    def _update(self, w, g, slots, lr, step):
        (m,) = slots
        w -= lr * np.sign(m * self.beta_1 + g * (1.0 - self.beta_1))
        m *= self.beta_2
        m += g * (1.0 - self.beta_2)


_CLASSES = {c.__name__: c for c in (SGD, RMSprop, Adam, AdamW, Adagrad, Adadelta, Adamax, Nadam,
                                    Lion)}
_OPTIMIZERS = {k.lower(): v for k, v in _CLASSES.items()}


def serialize(optimizer):
    return registry.serialize_object(optimizer, _CLASSES)


def deserialize(config, custom_objects=None):
    """An optimizer from ``serialize``'s dict, validating every value it reads."""
    if isinstance(config, dict) and isinstance(config.get("class_name"), str) and \
            config["class_name"].lower() in _OPTIMIZERS and config["class_name"] not in _CLASSES:
        config = {**config, "class_name": _OPTIMIZERS[config["class_name"].lower()].__name__}
    with registry.with_objects(custom_objects):      # for schedules inside
        return registry.deserialize_object(config, _CLASSES, "optimizer", custom_objects)


def get(identifier):
    """An optimizer from a name ("rmsprop", "adam", ...), a serialized dict, or an instance."""
    def by_name(name):
        cls = _OPTIMIZERS.get(name.lower())
        return None if cls is None else cls()
    return registry.resolve(identifier, Optimizer, "optimizer", by_name=by_name,
                            deserialize=deserialize,
                            expected=f"{sorted(_OPTIMIZERS)}, a serialized dict, or an "
                                     "Optimizer instance")


def _state_variable(array, name):
    """A non-trainable Variable holding ``array`` itself (no copy: writes reach it)."""
    v = Variable.__new__(Variable)
    Tensor.__init__(v, array, requires_grad=False, name=name)
    v.trainable, v.regularizer, v.constraint = False, None, None
    return v
