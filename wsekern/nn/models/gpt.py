"""A decoder-only language model (nanoGPT's shape) built from wsekern.nn layers."""
from dataclasses import asdict, dataclass

import numpy as np

from .. import layers, losses, utils
from .sequential import Sequential


@dataclass
class GPTConfig:
    vocab_size: int
    context: int = 64            # tokens of context (sequence_length)
    n_layer: int = 2
    n_head: int = 4
    d_model: int = 128
    mlp_dim: int = 512
    dropout: float = 0.0
    positions: str = "learned"   # or "sinusoidal"
    sparsity: float = 0.0        # weight sparsity of the attention and MLP projections
    epsilon: float = 1e-5        # LayerNorm epsilon (PyTorch's default, as in nanoGPT)

    def __post_init__(self):
        for name in ("vocab_size", "context", "n_layer", "n_head", "d_model", "mlp_dim"):
            if int(getattr(self, name)) <= 0:
                raise ValueError(f"GPTConfig.{name} must be positive; "
                                 f"received {getattr(self, name)}")
        if self.d_model % self.n_head:
            raise ValueError(f"d_model={self.d_model} must be a multiple of n_head={self.n_head}")


class GPT(Sequential):
    """Token + position embedding, ``n_layer`` pre-LN causal transformer blocks, a final
    LayerNorm and an untied linear head to the vocabulary (logits). Train it with ``fit``
    on (B, T) token windows and (B, T) next tokens, loss sparse categorical cross-entropy
    from logits (``compile()`` with no arguments sets AdamW and that loss)."""

    def __init__(self, config, name="gpt"):
        if not isinstance(config, GPTConfig):
            raise TypeError(f"GPT needs a GPTConfig; received {type(config).__name__}")
        self.config = config
        c = config
        super().__init__([layers.Input(shape=(c.context,), dtype="int64"),
                          layers.TokenAndPositionEmbedding(c.vocab_size, c.context, c.d_model,
                                                           positions=c.positions, name="wte"),
                          *[layers.TransformerBlock(c.n_head, c.mlp_dim, dropout=c.dropout,
                                                    sparsity=c.sparsity, epsilon=c.epsilon,
                                                    name=f"block_{i}")
                            for i in range(c.n_layer)],
                          layers.LayerNormalization(epsilon=c.epsilon, name="ln_f"),
                          layers.Dense(c.vocab_size, name="lm_head")], name=name)

    def compile(self, optimizer="adamw", loss=None, metrics=None, **kwargs):
        loss = loss or losses.SparseCategoricalCrossentropy(from_logits=True)
        super().compile(optimizer, loss, metrics=metrics, **kwargs)

    def _input_specs(self):
        return [(None, np.dtype(np.int64))]

    def _check_array(self, x, spec, what):
        """Any sequence length up to the context (the positions are cropped)."""
        if x.ndim != 2 or x.shape[1] > self.config.context:
            raise ValueError(f"{what} must be (batch, tokens) with at most {self.config.context} "
                             f"tokens; received shape {x.shape}")
        return super()._check_array(x, spec, what)

    def generate(self, prompt, max_new_tokens, temperature=1.0, top_k=None, seed=None):
        """Extend ``prompt`` (token ids) by sampling ``max_new_tokens`` tokens; the same
        ``seed`` gives the same tokens. ``temperature`` 0 picks the most likely token."""
        ids = [int(t) for t in np.asarray(prompt).ravel()]
        if not ids:
            raise ValueError("generate needs a prompt of at least one token")
        if max(ids) >= self.config.vocab_size or min(ids) < 0:
            raise ValueError(f"prompt token ids must be in [0, {self.config.vocab_size})")
        if not temperature >= 0 or (top_k is not None and top_k < 1) or max_new_tokens < 0:
            raise ValueError(f"generate needs temperature >= 0, top_k >= 1 and "
                             f"max_new_tokens >= 0; received temperature={temperature!r}, "
                             f"top_k={top_k!r}, max_new_tokens={max_new_tokens!r}")
        rng = np.random.default_rng(seed) if seed is not None else utils.rng()
        for _ in range(int(max_new_tokens)):
            window = np.asarray(ids[-self.config.context:])[None, :]
            logits = self(window, training=False).data[0, -1].astype(np.float64)
            if temperature == 0:
                ids.append(int(np.argmax(logits)))
                continue
            logits = logits / temperature
            if top_k is not None and top_k < len(logits):
                cut = np.partition(logits, -top_k)[-top_k]
                logits = np.where(logits < cut, -np.inf, logits)
            p = np.exp(logits - logits.max())
            p /= p.sum()
            ids.append(int(rng.choice(len(p), p=p)))
        return np.asarray(ids)

    def get_config(self):
        return {**super().get_config(), "gpt": asdict(self.config)}
