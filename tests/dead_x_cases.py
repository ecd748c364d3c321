"""Operands of the dead-row tests (test_spmm_dead_plain, test_spmm_live_blocks), built in
their child processes: W in CSR of an index type, in one of a few forms, and X with a share
of its rows dead (all zero)."""
import numpy as np
import scipy.sparse as sps


def dead_x_operands(M, K, N, density, dead, form, dt, idx, rng, seed):
    """(data, indices, indptr, X, dead_rows). ``form``: "sorted"; "unsorted" (each row's
    column indices in descending order); "dup" (each stored weight followed by half of it
    at the same column); "nan-w" (inf/NaN weights, some meeting dead rows); "nan-x"
    (NaN/inf in X's first and last live rows)."""
    W = sps.random(M, K, density=density, format="csr", dtype=dt, random_state=seed)
    data, indices, indptr = W.data.copy(), W.indices.astype(idx), W.indptr.astype(idx)
    if form == "dup":
        data = np.repeat(data, 2)
        data[1::2] *= 0.5
        indices, indptr = np.repeat(indices, 2), (2 * indptr).astype(idx)
    if form == "unsorted":
        for s, e in zip(indptr[:-1], indptr[1:]):
            data[s:e], indices[s:e] = data[s:e][::-1].copy(), indices[s:e][::-1].copy()
    X = rng.standard_normal((K, N)).astype(dt)
    dead_rows = rng.permutation(K)[:int(round(dead * K))]
    X[dead_rows] = 0
    if form == "nan-w":
        hit = np.flatnonzero(np.isin(indices, dead_rows))[:3]
        data[hit] = [np.nan, np.inf, -np.inf][:len(hit)]
        data[::9] = np.nan
    if form == "nan-x":
        live = np.setdiff1d(np.arange(K), dead_rows)
        X[live[0], 0] = np.nan
        X[live[-1], -1] = np.inf
    return data, indices, indptr, X, dead_rows
