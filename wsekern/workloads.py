"""Seeded inputs for the kernels and the simulator: weights and activations.

One home for every generator the CLI, the sweeps, the validation and the benchmarks
use, so the same seed gives the same operands wherever a problem is made. Each takes
a seed (an int) or a ``numpy.random.Generator`` to draw from.

- :func:`random_weight`: unstructured sparsity, an exact number of kept entries.
- :func:`power_law`: R-MAT rows and columns (a few rows hold most nonzeros).
- :func:`pruned`: a dense normal array with a random fraction zeroed (activations after
  a ReLU-like mask, or a magnitude-agnostic pruning of weights).
- :func:`banded`: a band around the diagonal (stencils, local attention).
"""
import math

import numpy as np
import scipy.sparse as sps

from ._budget import check_memory


def _rng(seed):
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def _check_size(elements, bytes_per_element, what):
    """Refuse before drawing a workload that would not fit (its temporaries included)."""
    check_memory(float(elements) * bytes_per_element, what, "use smaller sizes")


def _check_fraction(value, name):
    if not 0 <= value <= 1:
        raise ValueError(f"{name} must be in [0, 1]; received {value}")


def random_positions(total, count, rng):
    """``count`` distinct sorted integers below ``total``. Sparse draws sample with
    replacement and drop repeats, O(count log count) instead of a permutation of all
    ``total`` positions; dense ones permute."""
    if count == 0:                                       # also total == 0: nothing to draw
        return np.zeros(0, np.int64)
    if count > total // 8:
        return np.sort(rng.permutation(total)[:count]) if total < 2**22 else _dense_draw(
            total, count, rng)
    picked = _distinct(rng.integers(0, total, size=count + count // 4 + 16))
    while len(picked) < count:                           # rare: too many repeats
        picked = _distinct(np.concatenate([picked, rng.integers(0, total, size=count)]))
    return np.sort(rng.choice(picked, size=count, replace=False))


def _dense_draw(total, count, rng):
    """Each position with probability count/total, then trimmed or topped up to ``count``."""
    picked = np.flatnonzero(rng.random(total) < count / total)
    if len(picked) > count:
        picked = np.sort(rng.choice(picked, size=count, replace=False))
    elif len(picked) < count:
        free = np.ones(total, dtype=bool)
        free[picked] = False
        extra = rng.choice(np.flatnonzero(free), size=count - len(picked), replace=False)
        picked = np.sort(np.concatenate([picked, extra]))
    return picked


def _distinct(a):
    """Sorted distinct values (np.unique's hash path is many times slower on this data)."""
    a = np.sort(a)
    return a[np.concatenate(([True], a[1:] != a[:-1]))] if len(a) else a


def random_weight(m, k, sparsity, dtype=np.float32, seed=0):
    """Unstructured random sparsity: exactly round((1 - sparsity) * m * k) kept entries,
    values uniform in [-1, 1); a CSR array with sorted indices."""
    _check_fraction(sparsity, "sparsity")
    rng = _rng(seed)
    nnz = int(round((1 - sparsity) * m * k))
    # positions drawn with spares, rows and columns, values: about 48 bytes a nonzero
    _check_size(nnz + m, 48, f"a random {m} x {k} weight with {nnz:,} nonzeros")
    flat = random_positions(m * k, nnz, rng)              # sorted: CSR order already
    rows, cols = np.divmod(flat, k)
    index = np.int32 if m * k < 2**31 else np.int64
    indptr = np.zeros(m + 1, dtype=index)
    np.cumsum(np.bincount(rows, minlength=m), out=indptr[1:])
    values = rng.uniform(-1, 1, size=nnz).astype(dtype)
    return sps.csr_array((values, cols.astype(index), indptr), shape=(m, k))


def power_law(m, k, nnz, seed=0, probs=(0.57, 0.19, 0.19, 0.05)):
    """An m x k R-MAT matrix with about ``nnz`` nonzeros (power-law rows and columns),
    duplicates summed; values standard normal (float64)."""
    rng = _rng(seed)
    _check_size(nnz + m, 64, f"an R-MAT {m} x {k} matrix with {nnz:,} nonzeros")
    levels = max(1, math.ceil(math.log2(max(m, k, 2))))
    n = int(nnz * 1.3) + 16
    rows = np.zeros(n, np.int64)
    cols = np.zeros(n, np.int64)
    cum = np.cumsum(probs)
    for _ in range(levels):
        q = np.searchsorted(cum, rng.random(n) * cum[-1], side="right")
        rows = 2 * rows + (q >= 2)
        cols = 2 * cols + (q % 2)
    keep = (rows < m) & (cols < k)
    rows, cols = rows[keep][:nnz], cols[keep][:nnz]
    W = sps.csr_array((rng.standard_normal(len(rows)), (rows, cols)), shape=(m, k))
    W.sum_duplicates()
    return W


def uniform_sparse(m, k, density, seed=0):
    """scipy.sparse.random's m x k CSR matrix (each entry kept with ``density``, values
    uniform in [0, 1), float64): the validation sweep's uniform rows."""
    _check_fraction(density, "density")
    _check_size(float(m) * k * density + m, 48, f"a uniform sparse {m} x {k} matrix")
    return sps.random(m, k, density=density, random_state=_rng(seed), format="csr")


def pruned(shape, sparsity, seed=0, dtype=np.float32):
    """Standard normal values of ``shape`` with each one zeroed with probability
    ``sparsity`` (a draw of the values, then of the mask, from the same generator)."""
    _check_fraction(sparsity, "sparsity")
    _check_size(np.prod(shape, dtype=np.float64), 24, f"pruned values of shape {shape}")
    rng = _rng(seed)
    values = rng.standard_normal(shape)
    return (values * (rng.random(shape) >= sparsity)).astype(dtype, copy=False)


def activations(shape, sparsity, seed=0, dtype=np.float32):
    """ReLU-like activations: standard normal in ``dtype``, each zeroed with probability
    ``sparsity`` (zeros are +0.0, as a ReLU gives)."""
    _check_fraction(sparsity, "sparsity")
    # float64 draws, the copy in dtype, the uniform draws for the mask and the mask
    _check_size(np.prod(shape, dtype=np.float64), 25 + np.dtype(dtype).itemsize,
                f"activations of shape {shape}")
    rng = _rng(seed)
    X = rng.standard_normal(shape).astype(dtype)
    X[rng.random(shape) < sparsity] = 0
    return X


def banded(m, k, bandwidth, dtype=np.float32, seed=0):
    """An m x k CSR matrix whose nonzeros are the entries with |i - j| <= ``bandwidth``
    (the diagonal scaled to the rectangle: j measured against i * k / m), values
    uniform in [-1, 1)."""
    if bandwidth < 0:
        raise ValueError(f"bandwidth must be at least 0; received {bandwidth}")
    rng = _rng(seed)
    _check_size(float(m) * min(k, 2 * bandwidth + 1) + m, 32, f"a banded {m} x {k} matrix")
    centre = np.arange(m) * k // max(m, 1)
    lo = np.clip(centre - bandwidth, 0, k)
    hi = np.clip(centre + bandwidth + 1, 0, k)
    counts = hi - lo
    indptr = np.zeros(m + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    starts = np.repeat(lo - indptr[:-1], counts)
    cols = starts + np.arange(indptr[-1])
    values = rng.uniform(-1, 1, size=int(indptr[-1])).astype(dtype)
    return sps.csr_array((values, cols, indptr), shape=(m, k))
