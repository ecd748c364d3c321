"""Review of stop 44's route27 (the live-column densify), base27 (the baseline tile's
four-weight load) and nn27 (Keras 3's state per thread, serialization), by review_k11."""
import numpy as np
import pytest
from conftest import assert_refused_in_child

# spmm forced onto the densified route over X's live rows (densify and BLAS free in the
# cost table), X with half its rows zero: the CSR's index checks must still come first.
_FORCED_LIVE_DENSIFY = """
import dataclasses
import numpy as np, scipy.sparse as sps
import wsekern
from wsekern import costs, kernels
table = dataclasses.replace(costs.cost_table(), densify_call=0.0, densify=0.0,
                            densify_nnz=0.0, densify_live_nnz=0.0, blas_mac=0.0)
kernels.cost_table = lambda: table
M, K, N = 40, 64, 8
rng = np.random.default_rng(0)
X = rng.standard_normal((K, N)).astype(np.float32)
X[1::2] = 0
good = sps.random(M, K, density=0.3, format="csr", dtype=np.float32, random_state=1)
assert kernels.spmm_path(good, X) == "blas-skip-rows-densified"

def hostile(index, col=None, ptr=None):
    def case():
        W = good.copy()
        W.indices = W.indices.astype(index)
        W.indptr = W.indptr.astype(index)
        if col is not None:
            W.indices[len(W.indices) // 2] = col
        if ptr is not None:
            W.indptr[ptr[0]] = ptr[1]
        wsekern.spmm(W, X)
    return case

cases = []
for index in (np.int32, np.int64):
    cases += [hostile(index, col=K), hostile(index, col=K + 10**6), hostile(index, col=-1),
              hostile(index, col=-2**31),
              hostile(index, ptr=(M, good.nnz + 1000)),      # past the stored weights
              hostile(index, ptr=(M // 2, good.nnz + 5))]    # decreasing
"""


def test_live_densify_refuses_hostile_csr_indices_in_child():
    """route27's csr_to_dense_live writes wherever ``slot[cols[p]]`` says: a column index
    out of [0, K) or an indptr past the weights would write out of bounds. spmm's densified
    route over X's live rows must refuse them (ValueError naming W) before the pass."""
    assert_refused_in_child(_FORCED_LIVE_DENSIFY, 12, errors=(ValueError,),
                            needles=("W",))


def test_deserialize_keras_object_refuses_non_string_names():
    """nn27's deserialize_keras_object: a hostile config whose class_name or registered
    name is not a string raised ``TypeError: unhashable type`` (a dict lookup) instead of
    naming what it received and what would work."""
    from wsekern.nn.saving import deserialize_keras_object
    bad = [{"class_name": ["Dense"], "config": {}},
           {"class_name": "Dense", "config": {"units": 2}, "registered_name": {"a": 1}},
           {"class_name": "function", "config": {"a": 1}},
           {"class_name": "function", "config": "relu", "registered_name": ["x"]}]
    for config in bad:
        with pytest.raises(ValueError, match="must be a string"):
            deserialize_keras_object(config)


def test_deserialize_keras_object_refuses_deep_nesting():
    """A config nested past Python's recursion limit: a ValueError naming the depth, not
    a RecursionError from deep inside."""
    from wsekern.nn.saving import deserialize_keras_object
    config = []
    for _ in range(50_000):
        config = [config]
    with pytest.raises(ValueError, match="nested"):
        deserialize_keras_object(config)
    np.testing.assert_equal(deserialize_keras_object([[1.5], {"a": [2]}]), [[1.5], {"a": [2]}])
