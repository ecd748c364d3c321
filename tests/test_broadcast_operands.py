"""A broadcast view (stride 0) holds a few bytes but has the shape of a huge array: the
kernels copy their operands contiguous, so such an operand is refused like any estimate
beyond the memory budget, naming the copy, instead of allocating terabytes. A small
broadcast view is a valid operand and gives the dense answer."""
import numpy as np
import scipy.sparse as sps
from conftest import assert_refused_in_child

import wsekern
from wsekern import pool


def test_huge_broadcast_operands_are_refused_in_a_child_process():
    code = """
        import numpy as np
        import scipy.sparse as sps
        import wsekern
        from wsekern import pool
        one = np.ones(1, np.float32)
        W = sps.random(8, 2**22, density=1e-6, format="csr", dtype=np.float32, random_state=0)
        P = sps.random(4, 4, density=0.5, format="csr", dtype=np.float32, random_state=0)
        cases = [
            lambda: wsekern.spmm(W, np.broadcast_to(one, (2**22, 2**20))),
            lambda: wsekern.sddmm(np.broadcast_to(one, (4, 2**40)),
                                  np.broadcast_to(one, (4, 2**40)), P),
            lambda: wsekern.conv2d(np.broadcast_to(one, (2**12, 64, 2**10, 2**10)),
                                   np.ones((1, 64, 3, 3), np.float32)),
            lambda: pool.max_pool2d(np.broadcast_to(one, (2**12, 64, 2**10, 2**10)), 2),
        ]
    """
    assert_refused_in_child(code, 4, errors=(MemoryError,),
                            needles=("broadcast view", "lower the padding, the batch"),
                            limit_gb=4)


def test_small_broadcast_operands_give_the_dense_answer():
    W = sps.random(6, 5, density=0.5, format="csr", random_state=1)
    x = np.broadcast_to(np.arange(3.0), (5, 3))
    np.testing.assert_allclose(wsekern.spmm(W, x), W.toarray() @ x)
    xi = np.broadcast_to(np.arange(16.0).reshape(1, 1, 4, 4), (2, 3, 4, 4))
    np.testing.assert_array_equal(pool.max_pool2d(xi, 2),
                                  xi.reshape(2, 3, 2, 2, 2, 2).max(axis=(3, 5)))
