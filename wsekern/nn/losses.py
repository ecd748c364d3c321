"""Losses with Keras's names; each returns a scalar Tensor (mean over the batch)."""
import numpy as np

from .tensor import Tensor

EPSILON = 1e-7      # Keras's backend epsilon: probabilities are clipped to [eps, 1 - eps]


def _labels(y_true, n_classes):
    y = np.asarray(y_true)
    if y.ndim > 1 and y.shape[-1] == 1:
        y = y[..., 0]
    if y.dtype.kind == "f":
        if not np.all(y == np.round(y)):
            raise ValueError("sparse categorical labels must be integers")
        y = y.astype(np.int64)
    if y.dtype.kind not in "iu":
        raise ValueError(f"sparse categorical labels must be integers; received dtype {y.dtype}")
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(f"labels must be in [0, {n_classes}) for a model with {n_classes} "
                         f"outputs; received values from {y.min()} to {y.max()}")
    return y


def _log_softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


class Loss:
    name = None

    def __init__(self, from_logits=False):
        self.from_logits = bool(from_logits)

    def __call__(self, y_true, y_pred):
        return self.call(y_true, y_pred)

    def get_config(self):
        return {"name": self.name, "from_logits": self.from_logits}


class MeanSquaredError(Loss):
    name = "mean_squared_error"

    def call(self, y_true, y_pred):
        y = np.asarray(y_true, dtype=y_pred.dtype).reshape(y_pred.shape)
        diff = y_pred.data - y
        n = diff.size

        def backward(g):
            y_pred.accumulate((g * 2.0 / n * diff).astype(diff.dtype, copy=False))
        return Tensor(np.mean(diff * diff), parents=(y_pred,), backward=backward)


class SparseCategoricalCrossentropy(Loss):
    name = "sparse_categorical_crossentropy"

    def call(self, y_true, y_pred):
        p = y_pred.data
        lead = p.shape[:-1]
        y = _labels(y_true, p.shape[-1]).reshape(lead)
        return _categorical(y_pred, y, self.from_logits, sparse=True)


class CategoricalCrossentropy(Loss):
    name = "categorical_crossentropy"

    def call(self, y_true, y_pred):
        y = np.asarray(y_true, dtype=y_pred.dtype)
        if y.shape != y_pred.shape:
            raise ValueError(f"categorical targets must have the predictions' shape "
                             f"{y_pred.shape}; received {y.shape} (use sparse_categorical_"
                             f"crossentropy for integer labels)")
        return _categorical(y_pred, y, self.from_logits, sparse=False)


def _categorical(y_pred, y, from_logits, sparse):
    p = y_pred.data
    n = int(np.prod(p.shape[:-1]))
    if from_logits:
        logp = _log_softmax(p)
        soft = np.exp(logp)
    else:
        # Keras renormalises the probabilities, then clips them.
        q = p / p.sum(axis=-1, keepdims=True)
        clipped = np.clip(q, EPSILON, 1 - EPSILON)
        logp = np.log(clipped)
    if sparse:
        picked = np.take_along_axis(logp, y[..., None], axis=-1)[..., 0]
        loss = -picked.mean()
    else:
        loss = -(y * logp).sum(axis=-1).mean()

    def backward(g):
        onehot = y if not sparse else _onehot(y, p.shape[-1], p.dtype)
        if from_logits:
            grad = (soft * onehot.sum(axis=-1, keepdims=True) - onehot) / n
        else:
            s = p.sum(axis=-1, keepdims=True)
            inside = ((q > EPSILON) & (q < 1 - EPSILON)).astype(p.dtype)
            gq = -onehot / clipped * inside / n                       # d loss / d q
            grad = (gq - (gq * q).sum(axis=-1, keepdims=True)) / s      # through q = p / sum(p)
        y_pred.accumulate((g * grad).astype(p.dtype, copy=False))
    return Tensor(np.asarray(loss, dtype=p.dtype), parents=(y_pred,), backward=backward)


def _onehot(y, n, dtype):
    out = np.zeros(y.shape + (n,), dtype=dtype)
    np.put_along_axis(out, y[..., None], 1, axis=-1)
    return out


class BinaryCrossentropy(Loss):
    name = "binary_crossentropy"

    def call(self, y_true, y_pred):
        y = np.asarray(y_true, dtype=y_pred.dtype).reshape(y_pred.shape)
        z = y_pred.data
        n = z.size
        if self.from_logits:
            # max(z, 0) - z * y + log(1 + exp(-|z|)), the stable form
            loss = np.mean(np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z))))
            sig = 0.5 * (1 + np.tanh(0.5 * z))
            grad = (sig - y) / n
        else:
            p = np.clip(z, EPSILON, 1 - EPSILON)
            loss = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
            inside = ((z > EPSILON) & (z < 1 - EPSILON)).astype(z.dtype)
            grad = (-(y / p) + (1 - y) / (1 - p)) * inside / n
        return Tensor(np.asarray(loss, dtype=z.dtype), parents=(y_pred,),
                      backward=lambda g: y_pred.accumulate((g * grad).astype(z.dtype, copy=False)))


_LOSSES = {"mse": MeanSquaredError, "mean_squared_error": MeanSquaredError,
           "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
           "categorical_crossentropy": CategoricalCrossentropy,
           "binary_crossentropy": BinaryCrossentropy}


def get(identifier):
    """A loss from Keras's name, an instance, or a callable(y_true, y_pred) -> Tensor."""
    if isinstance(identifier, Loss) or callable(identifier) and not isinstance(identifier, type):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Loss):
        return identifier()
    if identifier not in _LOSSES:
        raise ValueError(f"unknown loss {identifier!r}; available: {sorted(_LOSSES)}")
    return _LOSSES[identifier]()


mean_squared_error = mse = MeanSquaredError()
