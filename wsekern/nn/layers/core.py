"""Input, Dense (optionally sparse), Activation, Dropout, Flatten, Reshape."""
import warnings

import numpy as np
import scipy.sparse as sps

from ... import sparse_dense as sparse_dense_kernels
from ...sparse import pack
from .. import activations, columns, regularizers, utils
from ..placed import placement_of
from ..tensor import Tensor, reshape
from ..variables import Variable
from . import transposes
from .base import Layer
from .linear import add_bias_activation, linear, linear_applies


class InputLayer(Layer):
    """The model's input: shape without the batch dimension (``keras.Input(shape=...)``)."""

    def __init__(self, shape=None, batch_size=None, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        if shape is None:
            raise ValueError("Input needs a shape, e.g. Input(shape=(784,))")
        self.shape = tuple(int(s) for s in np.atleast_1d(shape))
        if any(s <= 0 for s in self.shape):
            raise ValueError(f"Input shape must be positive; received {self.shape}")
        self.batch_size = batch_size

    def call(self, x, training=False):
        return x

    def get_config(self):
        return {**super().get_config(), "shape": list(self.shape)}


def Input(shape=None, batch_size=None, name=None, dtype="float32"):
    """``keras.Input``: a placeholder for the first element of a Sequential model."""
    return InputLayer(shape=shape, batch_size=batch_size, name=name, dtype=dtype)


def check_sparsity(sparsity):
    # any real scalar (NumPy's float32 and integer scalars too), not a bool
    if (not isinstance(sparsity, (int, float, np.integer, np.floating))
            or isinstance(sparsity, (bool, np.bool_)) or not 0 <= sparsity < 1):
        raise ValueError(f"sparsity must be a number in [0, 1); received {sparsity!r}")
    return float(sparsity)


def magnitude_mask(w, sparsity):
    """Keep the largest-magnitude ``1 - sparsity`` fraction of ``w`` (ties broken by index)."""
    n = w.size
    keep = n - int(round(sparsity * n))
    mask = np.zeros(n, dtype=bool)
    if keep > 0:
        order = np.argsort(-np.abs(w).ravel(), kind="stable")
        mask[order[:keep]] = True
    return mask.reshape(w.shape)


class Dense(Layer):
    """``keras.layers.Dense``, plus ``sparsity``: the fraction of the kernel pruned to zero.

    A sparse kernel is packed once (:func:`wsekern.pack`, with its transpose) and the
    step runs on its kept values only (:mod:`wsekern.sparse_dense`: forward, input
    gradient, and the weight gradient at the kept positions), or as dense GEMMs on the
    masked kernel where this CPU's cost table says so; pruned weights stay zero.
    Its trainable variable is then the vector of kept values; ``get_weights`` still
    returns Keras's dense ``(input_dim, units)`` kernel.
    """
    supports_masking = True
    _regularizable = ("kernel", "bias")

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", sparsity=0.0, **kwargs):
        super().__init__(**kwargs)
        if isinstance(units, bool) or not isinstance(units, (int, np.integer)) or units <= 0:
            raise ValueError(f"units must be a positive int; received {units!r}")
        self.units = int(units)
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = bias_initializer
        self.sparsity = check_sparsity(sparsity)
        self.pattern = None           # PackedSparse (input_dim x units) when sparse

    def build(self, input_shape):
        if len(input_shape) < 2:
            raise ValueError(f"Dense expects inputs of rank >= 2 (batch, features); received "
                             f"shape {input_shape}")
        in_dim = input_shape[-1]
        self.kernel = self.add_weight("kernel", (in_dim, self.units), self.kernel_initializer)
        if self.use_bias:
            self.bias = self.add_weight("bias", (self.units,), self.bias_initializer)
        if self.sparsity > 0:
            self.set_sparsity(self.sparsity)

    def set_sparsity(self, sparsity, mask=None):
        """Prune to ``sparsity`` by magnitude (or to ``mask``) and repack the kernel."""
        dense = self.get_weights()[0]
        self.sparsity = check_sparsity(sparsity)
        if mask is None:
            mask = magnitude_mask(dense, self.sparsity)
        self._install_pattern(dense * mask, mask)

    def _install_pattern(self, dense, mask):
        rows, cols = np.nonzero(mask)
        structure = sps.csr_array((np.ones(len(rows), dtype=self.dtype), (rows, cols)),
                                  shape=dense.shape)
        self.pattern = pack(structure)
        self.pattern.set_values(dense)
        reg = self._weight_options.get(("kernel", "regularizer"))
        con = self._weight_options.get(("kernel", "constraint"))
        values = Variable(self.pattern.data.copy(), trainable=self.trainable,
                          name=f"{self.name}/kernel", regularizer=_on_kept(reg, self.pattern),
                          constraint=_kept_constraint(con, self.pattern))
        self._variables[0] = ("kernel", values, True)
        self.kernel = values

    @property
    def mask(self):
        if self.pattern is None:
            return np.ones(self.kernel_shape, dtype=bool)
        return _pattern_mask(self.pattern)

    def call(self, x, training=False):
        if x.shape[-1] != self.kernel_shape[0]:
            raise ValueError(f"layer {self.name!r} expects inputs with {self.kernel_shape[0]} "
                             f"features; received shape {x.shape}")
        placement = placement_of(self) if training else None
        bias = self.bias if self.use_bias else None
        if self.pattern is not None:
            # one fused node: x @ kernel + bias, and a GELU or ReLU inside. Placed, the
            # wafer strategy is handed the product's gradient, before the activation: the
            # ReLU's backward passes dY where its output is > 0 (else 0), so it stays
            # fused; a GELU is applied after the tap
            fused = FUSED.get(self.activation)
            if placement is not None and fused != "relu":
                fused = None
            y = sparse_dense(x, self.kernel, self.pattern, bias, fused, share=training)
            if placement is not None:
                K, units = self.kernel_shape
                out = y.data if fused else None
                y = placement.observe(
                    x.data.reshape(-1, K).T, x.requires_grad, y,
                    lambda g: columns.SampleMajor(
                        g.reshape(-1, units),
                        relu=None if out is None else out.reshape(-1, units)))
            return y if fused else self.activation(y)
        if linear_applies(x, self.kernel, bias):
            # a placed layer hands the wafer strategy the product's gradient, before the
            # activation: the GELU is then not fused
            gelu = self.activation is activations.gelu and placement is None
            y = linear(x, self.kernel, bias, gelu=gelu)
            if placement is not None:
                K, units = self.kernel_shape
                y = placement.observe(x.data.reshape(-1, K).T, x.requires_grad, y,
                                      lambda g: g.reshape(-1, units).T)
            return y if gelu else self.activation(y)
        lead = x.shape[:-1]
        x2 = reshape(x, (-1, x.shape[-1])) if x.ndim != 2 else x
        y = x2 @ self.kernel
        if self.use_bias:
            y = y + self.bias
        if placement is not None:          # hand the step to the wafer strategy
            y = placement.observe(x2.data.T, x.requires_grad, y, lambda g: g.T)
        if x.ndim != 2:
            y = reshape(y, lead + (self.units,))
        return self.activation(y)

    @property
    def kernel_shape(self):
        # from the weights: build() called directly (as Keras code does) sets no input_shape
        if self.pattern is not None:
            return tuple(self.pattern.shape)
        return tuple(self.kernel.shape)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_weights(self):
        weights = super().get_weights()
        if self.pattern is not None:
            self.pattern.set_values(self.kernel.data)
            weights[0] = self.pattern.toarray()
        return weights

    def set_weights(self, weights):
        if self.pattern is None:
            return super().set_weights(weights)
        weights = list(weights)
        kernel = np.asarray(weights[0])
        if kernel.shape != self.kernel_shape:
            raise ValueError(f"layer {self.name!r}: kernel has shape {self.kernel_shape}; "
                             f"received {kernel.shape}")
        warn_outside_pattern(self, kernel, _pattern_mask(self.pattern))
        self.pattern.set_values(kernel)
        weights[0] = self.pattern.data.copy()
        super().set_weights(weights)

    def get_config(self):
        return {**super().get_config(), "units": self.units,
                "activation": activations.name_of(self.activation), "use_bias": self.use_bias,
                "kernel_initializer": _init_name(self.kernel_initializer),
                "bias_initializer": _init_name(self.bias_initializer), "sparsity": self.sparsity}


def warn_outside_pattern(layer, kernel, kept):
    """A pruned layer keeps its pattern: say so when set_weights drops nonzero values
    outside it (a dense model's weights copied in give another model otherwise)."""
    outside = np.asarray(kernel)[~kept]
    dropped = np.count_nonzero(outside)
    if dropped:
        warnings.warn(
            f"layer {layer.name!r} is pruned ({np.count_nonzero(kept)} of {kept.size} weights "
            f"kept): set_weights kept its pattern and dropped {dropped} nonzero kernel values "
            f"outside it (largest magnitude {np.nanmax(np.abs(outside)):.3g}); to prune these "
            f"weights instead, build the layer without sparsity=, set them, then call "
            f"layer.set_sparsity({layer.sparsity})", stacklevel=3)


def _kept_positions(P):
    """(rows, cols) of a packed pattern's stored values, in their order."""
    return np.repeat(np.arange(P.shape[0]), np.diff(P.indptr)), np.asarray(P.indices)


def kept_to_dense(values, P):
    """The dense kernel (pruned entries 0) of a sparse layer's kept ``values``, as a graph
    node: a regularizer written for Keras's dense kernel gets its gradient back."""
    rows, cols = _kept_positions(P)
    dense = np.zeros(P.shape, dtype=values.dtype)
    dense[rows, cols] = values.data

    def backward(g):
        values.accumulate(g[rows, cols])
    return Tensor(dense, parents=(values,), backward=backward)


def _on_kept(reg, P):
    """A kernel regularizer for the kept values: L1/L2 on them directly (the pruned zeros
    add nothing), any other one on the dense kernel they make."""
    if reg is None or isinstance(reg, regularizers.L1L2):
        return reg
    return lambda values: reg(kept_to_dense(values, P))


def _kept_constraint(con, P):
    """A kernel constraint for the kept values: applied to the dense kernel (pruned entries
    0, as Keras's kernel would hold them), its kept positions taken back."""
    if con is None:
        return None

    def constrain(values):
        rows, cols = _kept_positions(P)
        dense = np.zeros(P.shape, dtype=values.dtype)
        dense[rows, cols] = values.data
        out = con(dense)
        return np.asarray(getattr(out, "data", out))[rows, cols]
    return constrain


def _init_name(init):
    """An initializer argument as a config keeps it: its name, {'class_name', 'config'} for
    an Initializer object (its name alone was 'custom': the file then failed to load), the
    registered name of a plain function."""
    from .. import initializers
    from ..registry import get_registered_name, serialize_object
    if isinstance(init, (str, dict)) or init is None:      # a name, or as a config gave it
        return init
    if isinstance(init, initializers.Initializer):
        return serialize_object(init, initializers._CLASSES)
    config = _foreign_init_config(init, initializers)
    return config if config is not None else get_registered_name(init)


def _foreign_init_config(init, initializers):
    """A Keras initializer object as ours serializes (its class name alone lost its
    arguments: a clone or a loaded model's fresh draw took Constant(0), not Constant(0.5));
    None where ours cannot rebuild it."""
    get_config = getattr(init, "get_config", None)
    if not callable(get_config) or type(init).__module__.split(".")[0] != "keras":
        return None     # a user's own class keeps its registered name
    try:
        config = dict(get_config())
    except Exception:   # a callable's get_config we cannot read: keep its name
        return None
    for key in ("input_axes", "output_axes"):      # Keras's fans for N-D kernels
        if config.get(key, 0) is None:
            del config[key]
    out = {"class_name": type(init).__name__, "config": config}
    try:
        initializers.deserialize(out)
    except (ValueError, TypeError):
        return None
    return out


def _pattern_mask(P):
    mask = np.zeros(P.shape, dtype=bool)
    rows = np.repeat(np.arange(P.shape[0]), np.diff(P.indptr))
    mask[rows, P.indices] = True
    return mask


# the activations a sparse Dense applies inside its node (Keras's relu with its defaults)
FUSED = {activations.gelu: "gelu", activations.relu: "relu"}


def sparse_dense(x, values, P, bias=None, activation=None, share=True):
    """``act(x @ K + bias)`` (bias and activation, "gelu" or "relu", optional) for x
    (..., in) and a sparse kernel K (pattern ``P``, values ``values``), as one graph node.

    Where this CPU's rates say the sparse step beats the dense GEMMs on the masked kernel
    (:func:`wsekern.sparse_dense.sparse_pays`, both paths fused alike), it runs on K's
    stored values only, with the batch transposed so every inner loop runs over it:
    forward ``Y^T = K^T X^T`` with the bias and activation applied as each output row leaves
    the product, input gradient ``dX^T = K dY^T``, weight gradient ``X^T dY`` at K's
    pattern (an SDDMM); the upstream gradient's transpose applies the activation's
    derivative and sums the bias gradient in the same pass. The products write y and dx
    batch-major themselves; x's and the upstream gradient's transposes are taken from
    the neighbouring sparse layer when it wrote them (:mod:`.transposes`). Otherwise dense
    GEMMs on the masked kernel. Either way pruned weights are never stored and get no gradient.
    ``share=False`` (inference) registers no transpose of y: y goes back to the caller, who
    may write into it before handing it to another layer.
    """
    xd = x.data
    n_in, units = P.shape
    x2 = xd.reshape(-1, n_in)                                          # (rows, in)
    P.set_values(values.data)
    # the masked GEMM would multiply a NaN or inf of x by pruned weights; the sparse step
    # never does (an unstored weight is never multiplied, as in scipy.sparse and spmm)
    # x of another dtype than K (float64 into a float32 layer) is promoted as the dense
    # layer promotes it: the masked GEMM; the sparse step works in K's dtype
    if x.dtype != P.dtype or (not sparse_dense_kernels.sparse_pays(P, x2.shape[0])
                              and np.isfinite(x2).all()):
        return _masked_dense(x, values, P, bias, activation)
    kernels = sparse_dense_kernels
    xt = transposes.find(x2)                          # the previous sparse layer's output
    if xt is None:                                    # q, k, v: one input, one transpose
        xt = transposes.shared_input(x, x2.shape[::-1])
    if xt is None:
        xt = kernels.transpose(x2)                                     # (in, rows)
        transposes.share_input(x, xt)                 # (only inside reading_one_input)
    # y batch-major for the graph, yt and the derivative dt feature-major for the products
    y, yt, dt = kernels.forward_batch_major(P, xt, None if bias is None else bias.data,
                                            activation)                # (rows, units)
    parents = (x, values) if bias is None else (x, values, bias)
    if share and (x.requires_grad or values.requires_grad):
        transposes.register(y, yt)                     # a next sparse layer's input

    def backward(g):
        # in the kernel's dtype, as the dense layer keeps a float32 model's gradients
        g2 = g.reshape(-1, units).astype(P.dtype, copy=False)          # (rows, units)
        bias_grad = bias is not None and bias.requires_grad
        gt = transposes.find(g2, take=True)            # the next sparse layer's dX^T
        if gt is None:
            gt = kernels.transpose(g2, scale=dt, row_sums=bias_grad)   # (units, rows)
        else:
            gt = kernels.scale_rows(gt, dt, row_sums=bias_grad)
        if bias_grad:
            gt, db = gt
            bias.accumulate(db.astype(bias.dtype, copy=False))
        if x.requires_grad:
            dx, dxt = kernels.times_w_batch_major(P, gt)               # (rows, in)
            transposes.register(dx, dxt, gradient=True)   # the previous sparse layer's gt
            x.accumulate(dx.reshape(xd.shape))
        if values.requires_grad:
            values.accumulate(kernels.pattern_grad(P, xt, gt))
    return Tensor(y.reshape(xd.shape[:-1] + (units,)), parents=parents, backward=backward)


def _masked_dense(x, values, P, bias=None, activation=None):
    """``act(x @ K + bias)`` by dense GEMMs on K with its pruned entries zero, fused as
    :func:`linear`; the weight gradient is taken at K's pattern only."""
    xd = x.data
    n_in, units = P.shape
    x2 = xd.reshape(-1, n_in)
    kernel = P.toarray()
    rows = np.repeat(np.arange(n_in), np.diff(P.indptr))
    if np.isfinite(x2).all():
        y = x2 @ kernel
    else:       # x of another dtype than K, with a NaN or inf: never times a pruned weight
        Pp = P.astype(np.result_type(x2.dtype, P.dtype))
        kernels = sparse_dense_kernels
        y = kernels.transpose(kernels.times_wt(Pp, kernels.transpose(x2.astype(Pp.dtype))))
    d = add_bias_activation(y, None if bias is None else bias.data, activation)
    parents = (x, values) if bias is None else (x, values, bias)

    def backward(g):
        # in the output's dtype: a float32 model keeps float32 gradients under a float64
        # upstream gradient (a float64 x into a float32 layer made the output float64)
        g2 = g.reshape(-1, units).astype(y.dtype, copy=False)
        if d is not None:
            g2 = g2 * d
        if x.requires_grad:
            if np.isfinite(g2).all():
                dx = g2 @ kernel.T
            else:                               # as the sparse step: no NaN * pruned weight
                kernels = sparse_dense_kernels
                g2k = g2.astype(P.dtype, copy=False)
                dx = kernels.transpose(kernels.times_w(P, kernels.transpose(g2k)))
            x.accumulate(dx.reshape(xd.shape))
        if values.requires_grad:
            values.accumulate((x2.T @ g2)[rows, P.indices].astype(values.dtype, copy=False))
        if bias is not None and bias.requires_grad:
            bias.accumulate(g2.sum(axis=0).astype(bias.dtype, copy=False))
    return Tensor(y.reshape(xd.shape[:-1] + (units,)), parents=parents, backward=backward)


class Activation(Layer):
    supports_masking = True
    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation = activations.get(activation)

    def call(self, x, training=False):
        return self.activation(x)

    def get_config(self):
        return {**super().get_config(), "activation": activations.name_of(self.activation)}


class Dropout(Layer):
    """Inverted dropout: zero a ``rate`` fraction in training and scale the rest up."""
    supports_masking = True

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not 0 <= rate < 1:
            raise ValueError(f"rate must be in [0, 1); received {rate!r}")
        self.rate = float(rate)
        self.seed = seed
        self._rng = np.random.default_rng(seed) if seed is not None else None

    def call(self, x, training=False):
        if not training or self.rate == 0:
            return x
        rng = self._rng or utils.rng()
        keep = (rng.random(x.shape) >= self.rate).astype(x.dtype) / (1 - self.rate)
        return x * keep

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


class Flatten(Layer):
    def call(self, x, training=False):
        return reshape(x, (x.shape[0], -1))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], int(np.prod(input_shape[1:])))


class Reshape(Layer):
    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        self.target_shape = tuple(int(s) for s in target_shape)

    def build(self, input_shape):
        n_in = int(np.prod(input_shape[1:]))
        known = int(np.prod([s for s in self.target_shape if s != -1]))
        if (-1 not in self.target_shape and known != n_in) or (known == 0 or n_in % known):
            raise ValueError(f"cannot reshape inputs of shape {input_shape[1:]} ({n_in} values) "
                             f"to {self.target_shape}")

    def call(self, x, training=False):
        return reshape(x, (x.shape[0],) + self.target_shape)

    def compute_output_shape(self, input_shape):
        n_in = int(np.prod(input_shape[1:]))
        shape = list(self.target_shape)
        if -1 in shape:
            shape[shape.index(-1)] = n_in // int(np.prod([s for s in shape if s != -1]))
        return (input_shape[0],) + tuple(shape)

    def get_config(self):
        return {**super().get_config(), "target_shape": list(self.target_shape)}
