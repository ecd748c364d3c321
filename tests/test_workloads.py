"""wsekern.workloads: the seeded generators, against NumPy references; WaferConfig.preset."""
import numpy as np
import pytest

from wsekern import workloads
from wsekern.wafer import WaferConfig


def test_random_weight_keeps_an_exact_count_and_is_seeded():
    W = workloads.random_weight(37, 53, 0.8, seed=4)
    assert W.nnz == round(0.2 * 37 * 53) and W.has_sorted_indices
    assert W.dtype == np.float32 and np.all(np.abs(W.data) <= 1)
    again = workloads.random_weight(37, 53, 0.8, seed=4)
    assert (W != again).nnz == 0
    assert (W != workloads.random_weight(37, 53, 0.8, seed=5)).nnz > 0
    assert workloads.random_weight(0, 5, 0.5).shape == (0, 5)
    with pytest.raises(ValueError, match=r"sparsity must be in \[0, 1\]; received 1.5"):
        workloads.random_weight(4, 4, 1.5)


def test_pruned_and_activations_match_their_numpy_recipes():
    rng = np.random.default_rng(7)
    ref = rng.standard_normal((30, 20))
    ref = (ref * (rng.random((30, 20)) >= 0.6)).astype(np.float32)
    np.testing.assert_array_equal(workloads.pruned((30, 20), 0.6, 7), ref)
    rng = np.random.default_rng(3)
    X = rng.standard_normal((30, 20)).astype(np.float32)
    X[rng.random((30, 20)) < 0.5] = 0
    got = workloads.activations((30, 20), 0.5, np.random.default_rng(3))
    np.testing.assert_array_equal(got, X)
    assert not np.signbit(got[got == 0]).any()          # ReLU zeros are +0.0
    assert workloads.activations((0, 3), 0.5).shape == (0, 3)


def test_power_law_rows_are_skewed():
    W = workloads.power_law(256, 256, 4000, seed=1)
    per_row = np.sort(np.diff(W.indptr))[::-1]
    assert W.shape == (256, 256) and 0 < W.nnz <= 4000
    assert per_row[:26].sum() > 0.3 * W.nnz              # top 10% of rows: > 30% of nonzeros


@pytest.mark.parametrize("m, k, b", [(10, 10, 0), (10, 10, 2), (8, 20, 3), (20, 8, 1), (0, 4, 1)])
def test_banded_against_a_dense_mask(m, k, b):
    W = workloads.banded(m, k, b, seed=2)
    i, j = np.indices((m, k))
    mask = np.abs(j - i * k // max(m, 1)) <= b
    np.testing.assert_array_equal(W.toarray() != 0, mask)
    with pytest.raises(ValueError, match="bandwidth must be at least 0; received -1"):
        workloads.banded(4, 4, -1)


def test_preset_resolves_every_name_and_refuses_others():
    assert WaferConfig.preset("wse2") == WaferConfig.wse2()
    assert WaferConfig.preset("wse3", rows=32, cols=32) == WaferConfig.wse3(rows=32, cols=32)
    assert WaferConfig.preset("small", rows=4, cols=6) == WaferConfig.small(4, 6)
    with pytest.raises(ValueError, match=r"unknown wafer preset 'wse9'; choose one of"):
        WaferConfig.preset("wse9")


def test_generators_refuse_what_would_not_fit_before_drawing(monkeypatch):
    from wsekern import _budget
    monkeypatch.setattr(_budget, "memory_budget", lambda: 10_000)
    for make in (lambda: workloads.activations((100, 100), 0.5),
                 lambda: workloads.pruned((100, 100), 0.5),
                 lambda: workloads.random_weight(1000, 1000, 0.9),
                 lambda: workloads.uniform_sparse(1000, 1000, 0.1),
                 lambda: workloads.power_law(1000, 1000, 10_000),
                 lambda: workloads.banded(1000, 1000, 5)):
        with pytest.raises(MemoryError, match="GiB.*use smaller sizes"):
            make()
    assert workloads.activations((10, 10), 0.5).shape == (10, 10)     # small ones still run
