"""SGD (momentum, Nesterov), Adam and AdamW with Keras 3's update rules, and LR schedules."""
import math

import numpy as np


class LearningRateSchedule:
    """A learning rate as a function of the optimizer's step (0-based), as in Keras."""

    def __call__(self, step):
        raise NotImplementedError


class ExponentialDecay(LearningRateSchedule):
    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False):
        if decay_steps <= 0:
            raise ValueError(f"decay_steps must be positive; received {decay_steps}")
        self.initial_learning_rate, self.decay_steps = float(initial_learning_rate), decay_steps
        self.decay_rate, self.staircase = float(decay_rate), bool(staircase)

    def __call__(self, step):
        p = step / self.decay_steps
        return self.initial_learning_rate * self.decay_rate ** (math.floor(p) if self.staircase else p)


class CosineDecay(LearningRateSchedule):
    """Keras 3's CosineDecay: optional linear warm-up to ``warmup_target``, then cosine decay."""

    def __init__(self, initial_learning_rate, decay_steps, alpha=0.0, warmup_target=None,
                 warmup_steps=0):
        if decay_steps < 0 or warmup_steps < 0:
            raise ValueError("decay_steps and warmup_steps must be >= 0")
        self.initial_learning_rate, self.decay_steps = float(initial_learning_rate), decay_steps
        self.alpha, self.warmup_target, self.warmup_steps = alpha, warmup_target, warmup_steps

    def __call__(self, step):
        start = self.initial_learning_rate
        if self.warmup_target is not None and step < self.warmup_steps:
            return start + (self.warmup_target - start) * step / self.warmup_steps
        peak = self.warmup_target if self.warmup_target is not None else start
        t = min(step - self.warmup_steps, self.decay_steps) / max(self.decay_steps, 1)
        cosine = 0.5 * (1 + math.cos(math.pi * t))
        return peak * ((1 - self.alpha) * cosine + self.alpha)


class PiecewiseConstantDecay(LearningRateSchedule):
    def __init__(self, boundaries, values):
        if len(values) != len(boundaries) + 1:
            raise ValueError("values must have one more entry than boundaries")
        self.boundaries, self.values = list(boundaries), list(values)

    def __call__(self, step):
        for b, v in zip(self.boundaries, self.values):
            if step <= b:
                return v
        return self.values[-1]


class Optimizer:
    """Shared machinery: the step count, the learning rate (float or schedule), per-variable
    state keyed by the variable, and the update loop. Subclasses define ``_update``."""

    def __init__(self, learning_rate=0.001, weight_decay=None, clipnorm=None):
        if not callable(learning_rate) and not learning_rate > 0:
            raise ValueError(f"learning_rate must be positive or a schedule; received {learning_rate!r}")
        self._learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.clipnorm = clipnorm
        self.iterations = 0
        self._state = {}

    @property
    def learning_rate(self):
        lr = self._learning_rate
        return float(lr(self.iterations)) if callable(lr) else float(lr)

    @learning_rate.setter
    def learning_rate(self, value):
        self._learning_rate = value

    def apply_gradients(self, variables):
        """One step over the variables' ``.grad`` (Tensors); variables without a grad are skipped."""
        lr = self.learning_rate
        for v in variables:
            if v.grad is None:
                continue
            g = v.grad.astype(v.data.dtype, copy=False)
            if self.clipnorm is not None:
                norm = float(np.sqrt((g * g).sum()))
                if norm > self.clipnorm:
                    g = g * (self.clipnorm / norm)
            if self.weight_decay:
                v.data -= v.data * (self.weight_decay * lr)
            state = self._state.get(id(v))
            if state is None or state[0] is not v:     # holding v keeps its id unique
                state = (v, self._init_state(v.data))
                self._state[id(v)] = state
            self._update(v.data, g, state[1], lr)
        self.iterations += 1

    def _init_state(self, w):
        return ()

    def get_config(self):
        lr = self._learning_rate
        return {"name": type(self).__name__.lower(),
                "learning_rate": lr if not callable(lr) else type(lr).__name__,
                "weight_decay": self.weight_decay, "clipnorm": self.clipnorm}


class SGD(Optimizer):
    """Keras's SGD: v = momentum * v - lr * g; w += v (Nesterov: w += momentum * v - lr * g)."""

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, **kwargs):
        super().__init__(learning_rate, **kwargs)
        if not 0 <= momentum <= 1:
            raise ValueError(f"momentum must be in [0, 1]; received {momentum}")
        self.momentum, self.nesterov = float(momentum), bool(nesterov)

    def _init_state(self, w):
        return (np.zeros_like(w),)

    def _update(self, w, g, state, lr):
        if self.momentum == 0:
            w -= lr * g
            return
        (v,) = state
        v *= self.momentum
        v -= lr * g
        if self.nesterov:
            w += self.momentum * v - lr * g
        else:
            w += v


class Adam(Optimizer):
    """Keras's Adam: bias correction folded into the learning rate, epsilon 1e-7."""

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon

    def _init_state(self, w):
        return (np.zeros_like(w), np.zeros_like(w), [0])

    def _update(self, w, g, state, lr):
        m, v, t = state
        t[0] += 1
        b1, b2 = self.beta_1, self.beta_2
        alpha = lr * math.sqrt(1 - b2 ** t[0]) / (1 - b1 ** t[0])
        m += (g - m) * (1 - b1)
        v += (g * g - v) * (1 - b2)
        w -= alpha * m / (np.sqrt(v) + self.epsilon)


class AdamW(Adam):
    """Adam with decoupled weight decay (Keras's default 0.004)."""

    def __init__(self, learning_rate=0.001, weight_decay=0.004, **kwargs):
        super().__init__(learning_rate, weight_decay=weight_decay, **kwargs)


_OPTIMIZERS = {"sgd": SGD, "adam": Adam, "adamw": AdamW}


def get(identifier):
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in _OPTIMIZERS:
        return _OPTIMIZERS[identifier.lower()]()
    raise ValueError(f"unknown optimizer {identifier!r}; available: {sorted(_OPTIMIZERS)} or an "
                     f"Optimizer instance")
