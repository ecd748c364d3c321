"""Embeddings, multi-head attention and the pre-LayerNorm transformer block.

nanoGPT-style: shapes in comments on every reshape; the attention core is one fused op
(forward and backward by hand) beside the projections, which are Dense layers (so they
take ``sparsity`` and pruning like any Dense).
"""
import numpy as np
import scipy.sparse as sps

from ... import _transformer
from .. import activations, constraints, initializers, regularizers, utils
from ..tensor import Tensor, add, reshape, transpose
from ..variables import VariableView
from . import transposes
from .base import Layer, inherited_training, keras_mask, mask_array
from .core import Dense, Dropout, _init_name
from .normalization import LayerNormalization


def _uniform(low, high):
    def init(shape, dtype=np.float32):
        return utils.rng().uniform(low, high, size=shape).astype(dtype)
    init.__name__ = "uniform"
    return init


def embedding_lookup(table, ids):
    """``table[ids]`` with the gradient summed back per row (a sparse one-hot product)."""
    ids = np.asarray(ids)
    flat = ids.reshape(-1)

    def backward(g):
        g2 = g.reshape(len(flat), -1)                                    # (tokens, dim)
        onehot = sps.csr_array((np.ones(len(flat), dtype=g.dtype), (flat, np.arange(len(flat)))),
                               shape=(table.shape[0], len(flat)))
        table.accumulate(onehot @ g2)                                    # (vocab, dim)
    return Tensor(table.data[ids], parents=(table,), backward=backward)


class Embedding(Layer):
    """``keras.layers.Embedding``: integer ids -> vectors (uniform(-0.05, 0.05) init)."""
    _regularizable = ("embeddings",)

    def __init__(self, input_dim, output_dim, embeddings_initializer="uniform", mask_zero=False,
                 **kwargs):
        super().__init__(**kwargs)
        if input_dim <= 0 or output_dim <= 0:
            raise ValueError(f"input_dim and output_dim must be positive; received "
                             f"{input_dim}, {output_dim}")
        self.input_dim, self.output_dim = int(input_dim), int(output_dim)
        self.embeddings_initializer = embeddings_initializer
        self.mask_zero = bool(mask_zero)
        self.supports_masking = self.mask_zero

    def compute_mask(self, inputs, mask=None):
        """With ``mask_zero``, True where the token id is not 0 (padding), else None."""
        if not self.mask_zero:
            return None
        ids = inputs.data if isinstance(inputs, Tensor) else np.asarray(inputs)
        return Tensor(ids != 0)

    def build(self, input_shape):
        init = _uniform(-0.05, 0.05) if self.embeddings_initializer == "uniform" \
            else self.embeddings_initializer
        self.embeddings = self.add_weight("embeddings", (self.input_dim, self.output_dim), init)

    def call(self, x, training=False):
        ids = x.data if isinstance(x, Tensor) else np.asarray(x)
        if ids.dtype.kind == "f":
            if not np.all(ids == np.round(ids)):
                raise ValueError(f"Embedding expects integer token ids; received {ids.dtype} "
                                 f"values that are not whole numbers")
            ids = ids.astype(np.int64)
        elif ids.dtype.kind == "b":
            ids = ids.astype(np.int64)          # as Keras (which casts): not a mask index
        elif ids.dtype.kind not in "iu":
            raise TypeError(f"Embedding expects integer token ids; received {ids.dtype}")
        if ids.size and (ids.min() < 0 or ids.max() >= self.input_dim):
            raise ValueError(f"token ids must be in [0, {self.input_dim}); received values from "
                             f"{ids.min()} to {ids.max()}")
        return embedding_lookup(self.embeddings, ids)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.output_dim,)

    def get_config(self):
        return {**super().get_config(), "input_dim": self.input_dim, "output_dim": self.output_dim,
                "mask_zero": self.mask_zero}


def sinusoidal_positions(length, dim, max_wavelength=10000.0, dtype=np.float32):
    """The transformer's sine/cosine position encoding, (length, dim)."""
    pos = np.arange(length)[:, None]
    i = np.arange(dim)[None, :]
    angle = pos / np.power(max_wavelength, (2 * (i // 2)) / dim)
    return np.where(i % 2 == 0, np.sin(angle), np.cos(angle)).astype(dtype)


class TokenAndPositionEmbedding(Layer):
    """Token embedding plus a position embedding, learned or sinusoidal (keras_hub's layer)."""

    def __init__(self, vocabulary_size, sequence_length, embedding_dim, positions="learned",
                 **kwargs):
        super().__init__(**kwargs)
        if positions not in ("learned", "sinusoidal"):
            raise ValueError(f"positions must be 'learned' or 'sinusoidal'; received {positions!r}")
        self.vocabulary_size, self.sequence_length = int(vocabulary_size), int(sequence_length)
        self.embedding_dim, self.positions = int(embedding_dim), positions

    def build(self, input_shape):
        if input_shape[-1] is not None and input_shape[-1] > self.sequence_length:
            raise ValueError(f"sequences of {input_shape[-1]} tokens exceed sequence_length="
                             f"{self.sequence_length}")
        self.token = Embedding(self.vocabulary_size, self.embedding_dim, name=f"{self.name}/token",
                               dtype=self.dtype)
        self.token._build(input_shape)
        self._variables.extend(self.token._variables)
        if self.positions == "learned":
            self.position = self.add_weight("position", (self.sequence_length, self.embedding_dim),
                                            _uniform(-0.05, 0.05))
        else:
            self.position = Tensor(sinusoidal_positions(self.sequence_length, self.embedding_dim,
                                                        dtype=self.dtype))

    def call(self, x, training=False):
        T = x.shape[-1]
        if T > self.sequence_length:
            raise ValueError(f"sequences of {T} tokens exceed "
                             f"sequence_length={self.sequence_length}")
        tok = self.token(x)                                                  # (B, T, d)
        pos = self.position if T == self.sequence_length else _rows(self.position, T)
        return add(tok, pos)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.embedding_dim,)

    def get_config(self):
        return {**super().get_config(), "vocabulary_size": self.vocabulary_size,
                "sequence_length": self.sequence_length, "embedding_dim": self.embedding_dim,
                "positions": self.positions}


def _rows(t, n):
    """The first ``n`` rows of a 2-D tensor."""
    def backward(g):
        full = np.zeros_like(t.data)
        full[:n] = g
        t.accumulate(full)
    return Tensor(t.data[:n], parents=(t,), backward=backward)


def attention(q, k, v, mask=None, dropout=0.0, training=False, rng=None):
    """softmax(q k^T / sqrt(d) + mask) v, fused, for q, k, v of shape (B, heads, T, d).

    ``mask`` is a boolean (B or 1, 1 or heads, Tq, Tk) array, True where attention is
    allowed. Forward and backward by hand: one graph node instead of seven.
    """
    d = q.shape[-1]
    scale = float(1.0 / np.sqrt(d))         # a Python float keeps float32 arrays float32
    s = np.matmul(q.data, np.swapaxes(k.data, -1, -2)) * scale             # (B, h, Tq, Tk)
    if mask is not None:
        # Keras's large negative rather than -inf: a row with nothing allowed (a padded
        # query) attends uniformly instead of giving NaN, and NaN in q or k stays NaN
        s = np.where(mask, s, s.dtype.type(-1e9))
    if s.shape[-1]:                         # no keys: no weights, and an output of zeros
        s = s - s.max(axis=-1, keepdims=True)
    p = np.exp(s)
    p /= p.sum(axis=-1, keepdims=True)
    keep = None
    if training and dropout > 0:
        keep = ((rng or utils.rng()).random(p.shape) >= dropout).astype(p.dtype) / (
            1 - dropout)
        pd = p * keep
    else:
        pd = p
    out = np.matmul(pd, v.data)                                              # (B, h, Tq, dv)

    def backward(g):
        if v.requires_grad:
            v.accumulate(np.matmul(np.swapaxes(pd, -1, -2), g))
        dpd = np.matmul(g, np.swapaxes(v.data, -1, -2))                      # (B, h, Tq, Tk)
        dp = dpd * keep if keep is not None else dpd
        ds = p * (dp - (dp * p).sum(axis=-1, keepdims=True)) * scale
        if q.requires_grad:
            q.accumulate(np.matmul(ds, k.data))
        if k.requires_grad:
            k.accumulate(np.matmul(np.swapaxes(ds, -1, -2), q.data))
    return Tensor(out.astype(q.dtype, copy=False), parents=(q, k, v), backward=backward), p


# p, the attention weights kept for the backward pass, above this many bytes is refused
ATTENTION_WEIGHTS_LIMIT = 8 * 2**30


def attention_heads_last(q, k, v, causal=False):
    """softmax(q k^T / sqrt(dk), causal: query i sees keys j <= i, as Keras) v for q
    (B, Tq, heads, dk), k (B, Tk, heads, dk), v (B, Tk, heads, dv) - the layout the
    projections produce, so neither the inputs nor the output (B, Tq, heads, dv) is
    transposed. Forward and backward are src/_transformer.pyx (BLAS per batch and head,
    the softmax in one pass per row). float32 or float64, every size positive
    (:func:`heads_last_applies`)."""
    qd, kd, vd = (np.ascontiguousarray(t.data) for t in (q, k, v))
    B, Tq, H, dk = qd.shape
    Tk, dv = kd.shape[1], vd.shape[3]
    if not (kd.shape == (B, Tk, H, dk) and vd.shape == (B, Tk, H, dv)
            and qd.dtype == kd.dtype == vd.dtype):
        raise ValueError(f"attention needs q (B, Tq, heads, dk), k (B, Tk, heads, dk) and v "
                         f"(B, Tk, heads, dv) of one dtype; received {qd.shape} {qd.dtype}, "
                         f"{kd.shape} {kd.dtype}, {vd.shape} {vd.dtype}")
    weights = B * H * Tq * Tk * qd.itemsize
    if weights > ATTENTION_WEIGHTS_LIMIT:
        raise MemoryError(f"attention over {B} x {H} heads x {Tq} x {Tk} keeps "
                          f"{weights / 2**30:.1f} GiB of weights for the backward pass (limit "
                          f"{ATTENTION_WEIGHTS_LIMIT / 2**30:.0f} GiB); use smaller batches")
    scale = float(1.0 / np.sqrt(dk))
    p = np.empty((B, H, Tq, Tk), qd.dtype)                                  # (B, h, Tq, Tk)
    out = np.empty((B, Tq, H, dv), qd.dtype)                                # (B, Tq, h, dv)
    _transformer.attention_forward(qd, kd, vd, scale, bool(causal), p, out)

    def backward(g):
        g = np.ascontiguousarray(g, dtype=qd.dtype)                         # (B, Tq, h, dv)
        dq, dk_, dv_ = np.empty_like(qd), np.empty_like(kd), np.empty_like(vd)
        _transformer.attention_backward(g, qd, kd, vd, p, scale, dq, dk_, dv_,
                                        np.empty((Tq, Tk), qd.dtype))
        q.accumulate(dq)
        k.accumulate(dk_)
        v.accumulate(dv_)
    return Tensor(out, parents=(q, k, v), backward=backward)


def heads_last_applies(dtype, B, Tq, Tk, dk, dv, causal, mask, dropout):
    """Whether :func:`attention_heads_last` computes this attention: no mask but the
    causal one, no dropout, float32/float64 and every size positive. Anything else takes
    :func:`attention`."""
    return (mask is None and not dropout and np.dtype(dtype) in (np.float32, np.float64)
            and min(B, Tq, Tk, dk, dv) > 0)


def attention_reference(q, k, v, mask=None):
    """The readable version, composed of autograd ops (for checking the fused one)."""
    from ..tensor import matmul
    d = q.shape[-1]
    s = matmul(q, transpose(k, (0, 1, 3, 2))) * (1.0 / np.sqrt(d))
    if mask is not None:
        s = s + np.where(mask, 0.0, -1e30)
    return matmul(activations.softmax(s), v)


def _sublayers_changed(container):
    """What a layer made of sublayers (MultiHeadAttention, TransformerBlock) does when
    some of them were re-pruned from outside (a .keras file's masks loaded into them):
    its variable list is rebuilt from theirs (a pruned Dense replaced its kernel
    variable), and its ``sparsity`` becomes the fraction of their kernels pruned."""
    container._refresh_variables()
    kernels = [w.mask for w in _kernel_leaves(container)]
    kept = sum(int(m.sum()) for m in kernels)
    container.sparsity = 1.0 - kept / max(1, sum(m.size for m in kernels))


def _stale(container, listed):
    """Whether ``listed`` (the container's variables, a view standing for its base) no
    longer are its sublayers' own: one of them was re-pruned directly
    (``mha.query_dense.set_sparsity``, ``GradualPruning(layers=[...])``) and holds a new
    kernel variable, which the optimizer must see instead of the dead one."""
    try:
        subs = container.sublayers
    except AttributeError:                  # not built yet
        return False
    live = [v for layer in subs for _, v, _ in layer._variables]
    return len(live) != len(listed) or any(a is not b for a, b in zip(live, listed))


def _frozen(container):
    """ids of the variables of the container's sublayers set ``trainable = False`` (at any
    depth): the container lists them itself, so its walk no longer skips them."""
    ids = set()
    for layer in container.sublayers:
        if not layer.trainable:
            ids.update(id(v) for _, v, _ in layer._variables)
        elif hasattr(layer, "sublayers"):
            ids |= _frozen(layer)
    return ids


def _own_of_container(container, own):
    """``own`` (variable, trainable) with a frozen sublayer's variables not trainable."""
    try:
        frozen = _frozen(container)
    except AttributeError:                  # not built yet
        return own
    if not frozen:
        return own
    return [(t, tr and id(t) not in frozen and id(getattr(t, "base", t)) not in frozen)
            for t, tr in own]


def _kernel_leaves(layer):
    for sub in layer.sublayers:
        if hasattr(sub, "sublayers"):
            yield from _kernel_leaves(sub)
        elif hasattr(sub, "set_sparsity") and hasattr(sub, "mask"):
            yield sub


class MultiHeadAttention(Layer):
    """``keras.layers.MultiHeadAttention``, called as Keras's (query, value, key=None,
    attention_mask=None, return_attention_scores=False, use_causal_mask=False).

    Keras's arguments: an initializer draws each projection's weight as Keras's does
    (glorot, he and lecun with the fans of its input and output axes, any other in Keras's
    3-D shape); the ``kernel_*`` and ``bias_*`` regularizers and constraints reach all four
    projections, each seeing its weight in Keras's shape, and so does activity_regularizer.
    Attention runs over the sequence axis (``attention_axes`` None or 1); ``sliding_window``
    and ``use_gate`` are refused; ``flash_attention`` changes nothing (one result). The
    projections are Dense layers (``sparsity`` prunes them)."""
    _regularizable = ("kernel", "bias")

    def __init__(self, num_heads, key_dim, value_dim=None, dropout=0.0, use_bias=True,
                 output_shape=None, attention_axes=None, sliding_window=None,
                 flash_attention=None, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, kernel_constraint=None, bias_constraint=None,
                 use_gate=False, seed=None, sparsity=0.0, **kwargs):
        super().__init__(kernel_regularizer=kernel_regularizer,
                         bias_regularizer=bias_regularizer,
                         activity_regularizer=activity_regularizer,
                         kernel_constraint=kernel_constraint, bias_constraint=bias_constraint,
                         **kwargs)
        if num_heads <= 0 or key_dim <= 0:
            raise ValueError(f"num_heads and key_dim must be positive; received {num_heads}, "
                             f"{key_dim}")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1); received {dropout}")
        axes = (attention_axes,) if isinstance(attention_axes, int) else attention_axes
        if axes is not None and tuple(axes) not in ((1,), (-2,)):
            raise ValueError(f"MultiHeadAttention attends over the sequence axis of (batch, "
                             f"seq, features) inputs only: attention_axes None or 1; received "
                             f"{attention_axes!r}")
        if sliding_window is not None:
            raise ValueError(f"MultiHeadAttention(sliding_window=...) is not supported; "
                             f"received {sliding_window!r}: give None, or an attention_mask "
                             f"that allows each query its window")
        if use_gate:
            raise ValueError("MultiHeadAttention(use_gate=True) is not supported; give "
                             "use_gate=False")
        if flash_attention and dropout > 0:     # Keras's refusal
            raise ValueError("Dropout is not supported when flash attention is enabled: set "
                             "dropout=0.0 to use flash attention")
        if seed is not None and (isinstance(seed, bool) or not isinstance(
                seed, (int, np.integer)) or seed < 0):
            raise ValueError(f"seed must be None or a non-negative int; received {seed!r}")
        self.num_heads, self.key_dim = int(num_heads), int(key_dim)
        self.value_dim = int(value_dim or key_dim)
        self.dropout, self.use_bias = float(dropout), bool(use_bias)
        self._output_dim = _output_dim(output_shape)
        self._output_shape_arg = output_shape       # the config keeps it as given
        self.attention_axes = None if axes is None else tuple(axes)
        self.flash_attention = flash_attention
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.seed = None if seed is None else int(seed)
        self._dropout_rng = None if seed is None else np.random.default_rng(self.seed)
        self._init_args = (kernel_initializer, bias_initializer)
        self.sparsity = float(sparsity)
        self.last_attention = None

    @property
    def sublayers(self):
        return [self.query_dense, self.key_dense, self.value_dense, self.output_dense]

    def build(self, query_shape, value_shape=None, key_shape=None):
        value_shape = value_shape or query_shape
        key_shape = key_shape or value_shape
        h, k, vd = self.num_heads, self.key_dim, self.value_dim
        out_dim = self._output_dim or query_shape[-1]
        # as Keras's: the activity regularizer goes to the four projections (not this
        # layer's output), and each regularizer/constraint sees its weight in Keras's shape
        mk = dict(use_bias=self.use_bias, sparsity=self.sparsity, dtype=self.dtype,
                  activity_regularizer=self.activity_regularizer)
        shapes = [((query_shape[-1], h, k), (h, k)), ((key_shape[-1], h, k), (h, k)),
                  ((value_shape[-1], h, vd), (h, vd)), ((h, vd, out_dim), (out_dim,))]
        q, kk, v, o = ({**mk, **_in_keras_shapes(self._weight_options, s),
                       **self._initializers(s)} for s in shapes)
        self.query_dense = Dense(h * k, name=f"{self.name}/query", **q)
        self.key_dense = Dense(h * k, name=f"{self.name}/key", **kk)
        self.value_dense = Dense(h * vd, name=f"{self.name}/value", **v)
        self.output_dense = Dense(out_dim, name=f"{self.name}/attention_output", **o)
        self.query_dense._build(query_shape)
        self.key_dense._build(key_shape)
        self.value_dense._build(value_shape)
        self.output_dense._build(tuple(query_shape[:-1]) + (h * vd,))
        self._refresh_variables()

    def _initializers(self, shapes):
        """A projection's kernel/bias initializers drawing Keras's shapes (kernel, bias) and
        giving the Dense sublayer's flat ones."""
        return {f"{w}_initializer": _init_in_shape(init, shape) for w, init, shape in
                (("kernel", self.kernel_initializer, shapes[0]),
                 ("bias", self.bias_initializer, shapes[1]))}

    def _heads(self, t, dim):
        B, T = t.shape[0], t.shape[1]
        t = reshape(t, (B, T, self.num_heads, dim))                         # (B, T, h, d)
        return transpose(t, (0, 2, 1, 3))                                    # (B, h, T, d)

    supports_masking = True

    def __call__(self, query, value=None, key=None, query_mask=None, value_mask=None,
                 key_mask=None, attention_mask=None, return_attention_scores=False,
                 training=None, use_causal_mask=False):
        from ..symbolic import any_symbolic, call_symbolic
        masks = dict(query_mask=query_mask, value_mask=value_mask, key_mask=key_mask)
        args = (query, value, key, attention_mask, use_causal_mask, training)
        if return_attention_scores and self.flash_attention:     # Keras's refusal
            raise ValueError("Returning attention scores is not supported when flash "
                             "attention is enabled: give flash_attention=None or False")
        if any_symbolic(args, {}):          # the functional API: a node of the graph
            if not self.built:              # from all three shapes (value's may differ)
                self._build_both(*(None if t is None else tuple(t.shape)
                                   for t in (query, value, key)))
            extra = {"return_attention_scores": True} if return_attention_scores else {}
            return call_symbolic(self, (query,), dict(
                value=value, key=key, attention_mask=attention_mask,
                use_causal_mask=use_causal_mask, **extra,
                **{k: m for k, m in masks.items() if m is not None}))
        value = query if value is None else value
        if training is None:            # Keras: a call without it takes its caller's
            training = inherited_training()
        if not self.built:
            self._build_both(tuple(query.shape), tuple(value.shape),
                             None if key is None else tuple(key.shape))
        # Keras: the masks the inputs carry (Embedding(mask_zero=True)...) join attention_mask
        query_mask = keras_mask(query) if query_mask is None else query_mask
        value_mask = keras_mask(value) if value_mask is None else value_mask
        key_mask = keras_mask(key) if key_mask is None and key is not None else key_mask
        attention_mask = _with_input_masks(attention_mask, query_mask, value_mask, key_mask,
                                           (query.shape[0], query.shape[1], value.shape[1]))
        out = self.call(query, value, key, attention_mask, use_causal_mask, training,
                        return_attention_scores=return_attention_scores)
        if query_mask is not None:
            (out[0] if return_attention_scores else out)._keras_mask = mask_array(query_mask)
        return out

    def _build_both(self, query_shape, value_shape=None, key_shape=None):
        self.input_shape = query_shape
        self.build(query_shape, value_shape, key_shape)
        self.built = True
        self.output_shape = tuple(query_shape[:-1]) + (self._output_dim or query_shape[-1],)

    def _build(self, input_shape):
        self._build_both(tuple(input_shape), tuple(input_shape))
        return self.output_shape

    def call(self, query, value=None, key=None, attention_mask=None, use_causal_mask=False,
             training=False, return_attention_scores=False):
        value = query if value is None else value
        key = value if key is None else key
        if query.shape[-1] != self.input_shape[-1]:
            raise ValueError(f"layer {self.name!r} expects queries with {self.input_shape[-1]} "
                             f"features; received shape {query.shape}")
        shapes = {"query": query.shape, "value": value.shape, "key": key.shape}
        if any(len(v) != 3 for v in shapes.values()) or len(
                {v[0] for v in shapes.values()}) != 1 or key.shape[1] != value.shape[1]:
            raise ValueError(f"layer {self.name!r} expects query (batch, Tq, dim), value and "
                             f"key (batch, Tk, dim) with one batch size and one Tk; received "
                             + ", ".join(f"{n} {v}" for n, v in shapes.items()))
        B, Tq, Tk = query.shape[0], query.shape[1], key.shape[1]
        h, kd, vd = self.num_heads, self.key_dim, self.value_dim
        with transposes.reading_one_input():     # sparse q, k, v: one transpose of x
            q = self.query_dense(query, training=training)                   # (B, Tq, h*k)
            k = self.key_dense(key, training=training)                       # (B, Tk, h*k)
            v = self.value_dense(value, training=training)                   # (B, Tk, h*v)
        scores = None
        if not return_attention_scores and q.dtype == k.dtype == v.dtype and heads_last_applies(
                q.dtype, B, Tq, Tk, kd, vd, use_causal_mask, attention_mask,
                self.dropout if training else 0):
            out = attention_heads_last(reshape(q, (B, Tq, h, kd)), reshape(k, (B, Tk, h, kd)),
                                       reshape(v, (B, Tk, h, vd)), use_causal_mask)
        else:
            mask = _combine_masks(attention_mask, use_causal_mask, B, Tq, Tk)
            qh, kh = self._heads(q, kd), self._heads(k, kd)                 # (B, h, T, k)
            out, p = attention(qh, kh, self._heads(v, vd), mask, self.dropout, training,
                               self._dropout_rng)                            # (B, h, Tq, v)
            out = transpose(out, (0, 2, 1, 3))                               # (B, Tq, h, v)
            scores = _scores(p, qh, kh) if return_attention_scores else None
        self.last_attention = (B, h, Tq, Tk, kd, vd)
        out = self.output_dense(reshape(out, (B, Tq, h * vd)), training=training)
        return (out, scores) if return_attention_scores else out

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self._output_dim or input_shape[-1],)

    def get_config(self):
        unset = dict.fromkeys(["kernel_regularizer", "bias_regularizer", "activity_regularizer",
                               "kernel_constraint", "bias_constraint"])     # Keras writes None
        return {**unset, **super().get_config(), "num_heads": self.num_heads,
                "key_dim": self.key_dim,
                "value_dim": self.value_dim, "dropout": self.dropout, "use_bias": self.use_bias,
                "output_shape": self._output_shape_arg, "attention_axes": self.attention_axes,
                "sliding_window": None, "use_gate": False,
                "flash_attention": self.flash_attention,
                "kernel_initializer": _init_name(self._init_args[0]),
                "bias_initializer": _init_name(self._init_args[1]), "seed": self.seed,
                "sparsity": self.sparsity}

    def set_sparsity(self, sparsity, mask=None):
        self.sparsity = float(sparsity)
        for layer in self.sublayers:
            layer.set_sparsity(sparsity)
        self._refresh_variables()

    def _refresh_variables(self):
        # the projections' weights in Keras's shapes: views of their flat variables (kept
        # from one refresh to the next while the variable is the same, so the optimizer's
        # slots stay theirs); a pruned kernel, packed to its kept values, is listed as is
        old = {id(v.base): v for _, v, _ in self.__dict__.get("_variables", ())
               if isinstance(v, VariableView)}
        out = []
        for layer, shapes in zip(self.sublayers, self._keras_shapes()):
            for (name, var, trainable), shape in zip(layer._variables, shapes):
                if name == "bias" or (name == "kernel" and layer.pattern is None):
                    view = old.get(id(var))
                    var = view if view is not None and view.base is var else \
                        VariableView(var, shape)
                out.append((name, var, trainable))
        self._variables = out

    sublayers_changed = _sublayers_changed

    def _own_variables(self):
        if _stale(self, [v.base if isinstance(v, VariableView) else v
                         for _, v, _ in self._variables]):
            self._refresh_variables()
        return _own_of_container(self, super()._own_variables())

    def _walk_variables(self, trainable_only, seen_layers=None, memo=None):
        # the projections' variables are this layer's own (the views above): the walk does
        # not list their flat selves again
        seen_layers = set() if seen_layers is None else seen_layers
        seen_layers.update(id(layer) for layer in self.sublayers)
        return super()._walk_variables(trainable_only, seen_layers, memo)

    def _weight_groups(self):
        # each sublayer's weights through its own get/set_weights: a sparse Dense presents
        # Keras's dense kernel (as a saved mask and load_weights expect), not its kept values
        return [(None, [])] + [(layer, layer.weights) for layer in self.sublayers]

    def _keras_shapes(self):
        """Keras's shapes of each projection's (kernel, bias): the Dense sublayers keep
        them flat, (d, heads*key_dim) and (heads*key_dim,); Keras splits the heads out."""
        h, k, vd = self.num_heads, self.key_dim, self.value_dim
        q, key, v, o = self.sublayers
        return [((q.kernel_shape[0], h, k), (h, k)), ((key.kernel_shape[0], h, k), (h, k)),
                ((v.kernel_shape[0], h, vd), (h, vd)), ((h, vd, o.units), (o.units,))]

    def get_weights(self):
        """Keras's arrays in Keras's order and shapes: query, key, value kernels
        (d, heads, key_dim) and biases (heads, key_dim), the output kernel
        (heads, value_dim, d_out) and bias (d_out,)."""
        out = []
        for layer, shapes in zip(self.sublayers, self._keras_shapes()):
            out.extend(w.reshape(s) for w, s in zip(layer.get_weights(), shapes))
        return out

    def set_weights(self, weights):
        """Keras's arrays (as :meth:`get_weights` gives them); the flat 2-D kernels and 1-D
        biases the Dense sublayers hold (files written before session 17) are taken too."""
        weights = list(weights)
        per = 2 if self.use_bias else 1
        if len(weights) != 4 * per:
            raise ValueError(f"layer {self.name!r} expects {4 * per} weight arrays (query, "
                             f"key, value and output kernels{', each with its bias' * (per - 1)}"
                             f"); received {len(weights)}")
        flat = []
        for i, (layer, shapes) in enumerate(zip(self.sublayers, self._keras_shapes())):
            for j, shape in enumerate(shapes[:per]):
                w = np.asarray(weights[i * per + j])
                dense = layer.kernel_shape if j == 0 else (layer.units,)
                if w.shape not in (shape, dense):
                    raise ValueError(f"layer {self.name!r}: {layer.name.rsplit('/', 1)[-1]} "
                                     f"{('kernel', 'bias')[j]} has Keras's shape {shape} (or "
                                     f"the flat {dense}); received {w.shape}")
                flat.append(w.reshape(dense))
        for i, layer in enumerate(self.sublayers):
            layer.set_weights(flat[i * per:(i + 1) * per])


def _init_in_shape(init, shape):
    """``init`` for a Dense sublayer's flat weight as Keras's EinsumDense draws it: a
    VarianceScaling one (glorot, he, lecun) with the fans of the input and output axes,
    which are the flat kernel's; any other in Keras's ``shape``, reshaped (the same values
    in C order)."""
    if isinstance(init, initializers.VarianceScaling):
        return init
    if _is_foreign_object(init):
        # Keras's initializers are stateless: MultiHeadAttention clones one per projection
        # (an unseeded one then draws anew; called as given, query and key were equal)
        init = type(init).from_config(init.get_config())
        if all(hasattr(init, a) for a in ("scale", "mode", "distribution")):
            return init     # its VarianceScaling on the flat shape: EinsumDense's fans

    return _DrawInShape(init, shape)


class _DrawInShape:
    """``init`` drawn in ``shape`` and reshaped to the flat weight's: a class, not a
    closure, so that a model holding it pickles."""

    def __init__(self, init, shape):
        self.init, self.shape = init, shape

    def __call__(self, flat, dtype=None):
        return np.reshape(np.asarray(self.init(self.shape, dtype=dtype)), flat)


def _output_dim(output_shape):
    """Keras's output_shape: None, an int or a tuple of dims; ours projects to one last
    axis, so a tuple of one int (Dense refused (10,) as a bad units value)."""
    dims = output_shape
    if isinstance(dims, (tuple, list)) and len(dims) == 1:
        dims = dims[0]
    if dims is None or (isinstance(dims, (int, np.integer)) and not isinstance(dims, bool)
                        and dims > 0):
        return None if dims is None else int(dims)
    raise ValueError(f"MultiHeadAttention(output_shape=...) must be None, a positive int or "
                     f"a tuple of one; received {output_shape!r}: ours projects the output "
                     f"to one last axis")


def _is_foreign_object(init):
    """A Keras initializer object (kept as a callable by initializers.get)."""
    return (not isinstance(init, initializers.Initializer)
            and callable(getattr(type(init), "from_config", None))
            and callable(getattr(init, "get_config", None)))


def _scores(p, q, k):
    """The attention weights p = softmax(q k^T / sqrt(d)) (B, heads, Tq, Tk), before
    dropout, as Keras returns them; differentiable in q and k (the softmax's backward)."""
    scale = float(1.0 / np.sqrt(q.shape[-1]))

    def backward(g):
        ds = p * (g - (g * p).sum(axis=-1, keepdims=True)) * scale
        if q.requires_grad:
            q.accumulate(np.matmul(ds, k.data))
        if k.requires_grad:
            k.accumulate(np.matmul(np.swapaxes(ds, -1, -2), q.data))
    return Tensor(p, parents=(q, k), backward=backward)


def _in_keras_shapes(options, shapes):
    """A projection's ``kernel_/bias_`` regularizer and constraint arguments, each given its
    weight reshaped from the Dense sublayer's flat shape to Keras's (``shapes`` = kernel,
    bias): norms along an axis (MaxNorm, UnitNorm, a callable) then match Keras's."""
    out = {}
    for (weight, kind), fn in options.items():
        shape = shapes[0] if weight == "kernel" else shapes[1]
        if fn is None or isinstance(fn, (regularizers.L1L2, constraints.NonNeg)):
            out[f"{weight}_{kind}"] = fn            # elementwise: the shape does not matter
        elif kind == "regularizer":
            out[f"{weight}_{kind}"] = lambda w, fn=fn, shape=shape: fn(reshape(w, shape))
        else:
            out[f"{weight}_{kind}"] = _constraint_in_shape(fn, shape)
    return out


def _constraint_in_shape(con, shape):
    def constrain(w):
        flat = w.shape
        w = reshape(w, shape) if isinstance(w, Tensor) else np.reshape(w, shape)
        return np.reshape(np.asarray(getattr(c := con(w), "data", c)), flat)
    return constrain


def _with_input_masks(attention_mask, query_mask, value_mask, key_mask, shape):
    """attention_mask (B, Tq, Tk) AND query_mask (B, Tq, 1) AND value/key masks (B, 1, Tk),
    as Keras combines them, of ``shape`` (B, Tq, Tk); None when there is no mask at all."""
    auto = None
    for m, axis in ((query_mask, -1), (value_mask, -2), (key_mask, -2)):
        if m is not None:
            m = np.expand_dims(mask_array(m), axis)
            auto = m if auto is None else auto & m
    if auto is None:
        return attention_mask
    auto = np.broadcast_to(auto, shape)
    if attention_mask is None:
        return auto
    return mask_array(attention_mask) & auto


def _combine_masks(attention_mask, use_causal_mask, B, Tq, Tk):
    """A boolean (B or 1, 1, Tq, Tk) mask, True where attention is allowed, or None."""
    mask = None
    if attention_mask is not None:
        m = np.asarray(getattr(attention_mask, "data", attention_mask))
        if m.shape[-2:] != (Tq, Tk):
            raise ValueError(f"attention_mask must end in ({Tq}, {Tk}); received shape {m.shape}")
        mask = m.astype(bool).reshape((-1, 1, Tq, Tk) if m.ndim == 3 else m.shape)
    if use_causal_mask:
        # Keras's rule (and PyTorch's is_causal): query i sees keys j <= i, counted from
        # the first of each, whatever the lengths
        causal = np.tril(np.ones((Tq, Tk), dtype=bool))[None, None]
        mask = causal if mask is None else (mask & causal)
    return mask


class TransformerBlock(Layer):
    """Pre-LayerNorm block: x + MHA(LN(x)); x + MLP(LN(x)), the MLP ``d -> mlp_dim -> d``."""

    def __init__(self, num_heads, mlp_dim, dropout=0.0, activation="gelu", causal=True,
                 sparsity=0.0, epsilon=1e-5, **kwargs):
        super().__init__(**kwargs)
        self.num_heads, self.mlp_dim = int(num_heads), int(mlp_dim)
        self.dropout, self.causal, self.sparsity = float(dropout), bool(causal), float(sparsity)
        self.activation_name = activation
        self.epsilon = float(epsilon)

    @property
    def sublayers(self):
        return [self.ln1, self.attn, self.ln2, self.fc, self.proj]

    def build(self, input_shape):
        d = input_shape[-1]
        if d % self.num_heads:
            raise ValueError(f"the model width {d} must be a multiple of "
                             f"num_heads={self.num_heads}")
        kw = dict(dtype=self.dtype)
        self.ln1 = LayerNormalization(epsilon=self.epsilon, name=f"{self.name}/ln_1", **kw)
        self.attn = MultiHeadAttention(self.num_heads, d // self.num_heads, dropout=self.dropout,
                                       sparsity=self.sparsity, name=f"{self.name}/attn", **kw)
        self.ln2 = LayerNormalization(epsilon=self.epsilon, name=f"{self.name}/ln_2", **kw)
        self.fc = Dense(self.mlp_dim, activation=self.activation_name, sparsity=self.sparsity,
                        name=f"{self.name}/mlp_fc", **kw)
        self.proj = Dense(d, sparsity=self.sparsity, name=f"{self.name}/mlp_proj", **kw)
        self.drop = Dropout(self.dropout)
        for layer in (self.ln1, self.attn, self.ln2, self.fc):
            layer._build(input_shape)
        self.proj._build(tuple(input_shape[:-1]) + (self.mlp_dim,))
        self._refresh_variables()

    def _refresh_variables(self):
        self._variables = [v for layer in self.sublayers for v in layer._variables]

    sublayers_changed = _sublayers_changed

    def _own_variables(self):
        if "attn" in self.__dict__:
            self.attn._own_variables()          # its own list first (a pruned projection)
        if _stale(self, [v for _, v, _ in self._variables]):
            self._refresh_variables()
        return _own_of_container(self, super()._own_variables())

    def _weight_groups(self):
        # each sublayer's weights through its own get/set_weights: a sparse Dense presents
        # Keras's dense kernel (as a saved mask and load_weights expect), not its kept values
        return [(None, [])] + [(layer, layer.weights) for layer in self.sublayers]

    def call(self, x, training=False):
        h = self.ln1(x, training=training)
        x = x + self.drop(self.attn(h, h, use_causal_mask=self.causal, training=training),
                          training=training)
        h = self.fc(self.ln2(x, training=training), training=training)
        return x + self.drop(self.proj(h, training=training), training=training)

    def set_sparsity(self, sparsity, mask=None):
        self.sparsity = float(sparsity)
        self.attn.set_sparsity(sparsity)
        self.fc.set_sparsity(sparsity)
        self.proj.set_sparsity(sparsity)
        self._refresh_variables()

    def get_config(self):
        return {**super().get_config(), "num_heads": self.num_heads, "mlp_dim": self.mlp_dim,
                "dropout": self.dropout, "activation": self.activation_name,
                "causal": self.causal, "sparsity": self.sparsity, "epsilon": self.epsilon}
