"""The column-index range check of the sparse Dense products (src/wsk_csr_check.h: blocks of
1024 indices by vector compares, a failing block searched for the position) against a plain
scan: every out-of-range index is refused with its position and value, wherever it falls
(first block, a block boundary, the scalar tail), and no valid index is refused."""
import textwrap

import numpy as np
import pytest
from conftest import assert_refused_in_child, run_in_child

from wsekern import _sparse_dense as S

LENGTHS = (1, 7, 8, 9, 1023, 1024, 1025, 2053)


@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("n", LENGTHS)
def test_valid_indices_up_to_the_last_row_are_accepted_and_multiplied(n, index_dtype):
    """Indices 0 and K - 1 (the bounds) at both ends and random ones between: the product
    of a one-row CSR matrix equals NumPy's (nothing refused that is in range)."""
    rng = np.random.default_rng(n)
    K, B = 37, 5
    cols = rng.integers(0, K, n).astype(index_dtype)
    cols[0], cols[-1] = K - 1, 0
    vals = rng.standard_normal(n)
    X = rng.standard_normal((K, B))
    out = np.empty((1, B))
    S.rows_times_dense(vals, cols, np.array([0, n], index_dtype), X, out)
    np.testing.assert_allclose(out[0], vals @ X[cols], rtol=1e-12, atol=1e-12)


def test_every_out_of_range_index_is_refused_with_its_position_in_a_child_process():
    """An index below 0, at K, or far beyond (int32's and int64's largest) placed first, in
    the middle, last, and at 1023/1024 (the block boundary): the products would read X's row
    there unchecked, so each is refused, naming the first bad position and its value. In a
    child so that a read past X fails this test instead of killing the run."""
    code = textwrap.dedent(f"""
        import re
        import numpy as np
        from wsekern import _sparse_dense as S
        K, B, checked = 37, 3, 0
        X = np.ones((K, B))
        for dt, huge in ((np.int32, 2**31 - 1), (np.int64, 2**62)):
            for n in {LENGTHS}:
                for at in sorted({{0, n // 2, n - 1, min(1023, n - 1), min(1024, n - 1)}}):
                    for bad in (-1, K, huge):
                        cols = (np.arange(n) % K).astype(dt)
                        cols[at] = bad
                        if at + 1 < n:
                            cols[-1] = -5               # a later bad one is not the first
                        try:
                            S.rows_times_dense(np.ones(n), cols, np.array([0, n], dt), X,
                                               np.empty((1, B)))
                        except ValueError as e:
                            m = re.search(r"received (-?\\d+) at position (\\d+)", str(e))
                            assert m and (int(m[1]), int(m[2])) == (bad, at), (n, at, str(e))
                            checked += 1
                        else:
                            raise SystemExit(f"accepted {{bad}} at {{at}} of {{n}} ({{dt}})")
        print("ok", checked)
    """)
    proc = run_in_child(code)
    assert proc.returncode == 0 and proc.stdout.startswith("ok "), proc.stderr[-2000:]
    expected = sum(3 * len({0, n // 2, n - 1, min(1023, n - 1), min(1024, n - 1)})
                   for n in LENGTHS) * 2
    assert int(proc.stdout.split()[1]) == expected


def test_sampled_dots_refuses_out_of_range_indices_and_a_decreasing_indptr_in_a_child():
    """sampled_dots read B's row cols[p] and walked indptr with only indptr[-1] checked (a
    PackedSparse's were trusted): a hostile index read far past B, an indptr that rose past
    nnz and fell back wrote past out. Straight into the Cython entry point, in a child."""
    code = """
        import numpy as np
        from wsekern import _sparse_dense as S
        f = np.float32
        A, B, out = np.ones((2, 64), f), np.ones((4, 64), f), np.empty(9, f)
        ptr = np.array([0, 4, 9], np.int32)
        def cols_with(v, dt=np.int32):
            c = np.array([0, 2, 1, 3, 0, 1, 2, 3, 1], dt)
            c[5] = v
            return c
        cases = [
            lambda: S.sampled_dots(A, B, cols_with(10**9), ptr, out),
            lambda: S.sampled_dots(A, B, cols_with(-1), ptr, out),
            lambda: S.sampled_dots(A, B, cols_with(4), ptr, out),
            lambda: S.sampled_dots(A, B, cols_with(-2**40, np.int64), ptr.astype(np.int64),
                                   out),
            lambda: S.sampled_dots(A, B, cols_with(1), np.array([0, 2**30, 9], np.int32), out),
        ]
    """
    assert_refused_in_child(code, 5, (ValueError,), ("received",))
