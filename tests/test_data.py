"""The built-in datasets: real data from installed packages, split as the issue says."""
import numpy as np
import pytest

import wsekern as wk


@pytest.mark.parametrize("loader, n_train, n_test, features", [
    (wk.data.load_digits, 1438, 359, 64), (wk.data.load_mnist, 4000, 1000, 784)])
def test_shapes_ranges_and_stratified_split(loader, n_train, n_test, features):
    (x, y), (xt, yt) = loader()
    assert x.shape == (n_train, features) and xt.shape == (n_test, features)
    assert x.dtype == np.float32 and y.dtype == np.int64
    assert 0 <= x.min() and x.max() <= 1 and x.max() > 0.9
    train_share = np.bincount(y) / len(y)
    test_share = np.bincount(yt) / len(yt)
    np.testing.assert_allclose(train_share, test_share, atol=0.01)
    (x2, _), _ = loader()
    np.testing.assert_array_equal(x, x2)                  # fixed seed
    assert not (y[:50] == np.sort(y[:50])).all()          # shuffled


def test_reshape_for_cnns():
    (x, _), _ = wk.data.load_digits(reshape=True)
    assert x.shape[1:] == (8, 8, 1)
