"""Gradual magnitude pruning (Zhu & Gupta 2017) as a training callback.

At step t in [t0, t0 + n * dt], every dt steps, each pruned layer keeps the largest-
magnitude weights so that its sparsity is
``s_t = s_f + (s_i - s_f) * (1 - (t - t0) / (n * dt)) ** 3``.
Pruned weights are removed from the packed pattern, so later steps neither store nor
multiply them. A pruning step gives the repacked kernel a new variable, which restarts
its optimizer state (Adam's moments) for that layer.
"""
from .callbacks import Callback


def cubic_sparsity(step, initial_sparsity, final_sparsity, begin_step, pruning_steps, frequency):
    """Zhu & Gupta's schedule at ``step`` (held at the ends of the ramp)."""
    span = pruning_steps * frequency
    t = min(max(step - begin_step, 0), span)
    return final_sparsity + (initial_sparsity - final_sparsity) * (1 - t / span) ** 3


class GradualPruning(Callback):
    """Prune ``layers`` (default: every Dense, Conv2D, attention and transformer block) from
    ``initial_sparsity`` to ``final_sparsity`` over ``pruning_steps`` pruning events
    ``frequency`` steps apart, starting at ``begin_step``."""

    def __init__(self, final_sparsity, initial_sparsity=0.0, begin_step=0, pruning_steps=10,
                 frequency=100, layers=None):
        super().__init__()
        for name, v in (("final_sparsity", final_sparsity), ("initial_sparsity", initial_sparsity)):
            if not 0 <= v < 1:
                raise ValueError(f"{name} must be in [0, 1); received {v!r}")
        if initial_sparsity > final_sparsity:
            raise ValueError(f"initial_sparsity ({initial_sparsity}) must not exceed "
                             f"final_sparsity ({final_sparsity})")
        if pruning_steps < 1 or frequency < 1 or begin_step < 0:
            raise ValueError("pruning_steps and frequency must be >= 1, begin_step >= 0")
        self.final_sparsity, self.initial_sparsity = float(final_sparsity), float(initial_sparsity)
        self.begin_step, self.pruning_steps, self.frequency = begin_step, pruning_steps, frequency
        self.layers = layers
        self.step = 0
        self.history = []        # (step, sparsity)

    def _targets(self):
        from .layers import Conv2D, Dense, MultiHeadAttention, TransformerBlock
        if self.layers is not None:
            return list(self.layers)
        prunable = (Dense, Conv2D, MultiHeadAttention, TransformerBlock)
        return [l for l in self.model.layers if isinstance(l, prunable)]

    def sparsity_at(self, step):
        return cubic_sparsity(step, self.initial_sparsity, self.final_sparsity, self.begin_step,
                              self.pruning_steps, self.frequency)

    def on_train_batch_begin(self, batch, logs=None):
        t = self.step
        end = self.begin_step + self.pruning_steps * self.frequency
        if self.begin_step <= t <= end and (t - self.begin_step) % self.frequency == 0:
            s = self.sparsity_at(t)
            for layer in self._targets():
                if s > 0 and abs(s - getattr(layer, "sparsity", 0.0)) > 1e-12:
                    layer.set_sparsity(s)
            self.history.append((t, s))
        self.step += 1
