"""asv benchmarks for the sparse matmul family (spmm, sddmm), with peers for ratios."""
import numpy as np

import wsekern
from wsekern.workloads import random_weight


class Spmm:
    params = ([(1024, 1024, 256), (4096, 4096, 64)], [0.0, 0.5, 0.9, 0.99],
              ["wsekern", "wsekern-dense-W", "numpy", "scipy"])
    param_names = ["size", "sparsity", "impl"]
    timeout = 120

    def setup(self, size, sparsity, impl):
        M, K, N = size
        self.W = random_weight(M, K, sparsity, seed=0)
        self.P = wsekern.pack(self.W)
        self.Wd = self.W.toarray()
        self.X = np.random.default_rng(1).standard_normal((K, N)).astype(np.float32)
        self.fn = {"wsekern": lambda: wsekern.spmm(self.P, self.X, n_threads=1),
                   "wsekern-dense-W": lambda: wsekern.spmm(self.Wd, self.X, n_threads=1),
                   "numpy": lambda: self.Wd @ self.X,
                   "scipy": lambda: self.W @ self.X}[impl]

    def time_spmm(self, size, sparsity, impl):
        self.fn()


class SpmmDeadRows:
    """Half the rows of X zero (dead ReLU units) against X dense."""
    params = ([(1024, 1024, 256), (4096, 4096, 64)], [0.0, 0.5])
    param_names = ["size", "dead_fraction"]

    def setup(self, size, dead):
        M, K, N = size
        self.P = wsekern.pack(random_weight(M, K, 0.9, seed=0))
        rng = np.random.default_rng(2)
        self.X = rng.standard_normal((K, N)).astype(np.float32)
        self.X[rng.random(K) < dead] = 0

    def time_spmm(self, size, dead):
        wsekern.spmm(self.P, self.X, n_threads=1)


class Sddmm:
    params = [0.9, 0.99]
    param_names = ["sparsity"]

    def setup(self, sparsity):
        self.P = wsekern.pack(random_weight(1024, 1024, sparsity, seed=0))
        rng = np.random.default_rng(0)
        self.A = rng.standard_normal((1024, 128)).astype(np.float32)
        self.B = rng.standard_normal((1024, 128)).astype(np.float32)

    def time_sddmm(self, sparsity):
        wsekern.sddmm(self.A, self.B, self.P, n_threads=1)

    def peakmem_sddmm(self, sparsity):
        wsekern.sddmm(self.A, self.B, self.P, n_threads=1)


class SpmmWidths:
    """Issue 19's table: W = scipy.sparse.random(density 0.1, random_state=0), fp32 and fp64,
    X 1024 x N for N from 16 to 1024, against SciPy in the same run."""
    params = ([16, 64, 256, 1024], ["float32", "float64"], ["wsekern", "scipy"])
    param_names = ["n", "dtype", "impl"]
    timeout = 120

    def setup(self, n, dtype, impl):
        import scipy.sparse as sps
        W = sps.random(1024, 1024, density=0.1, format="csr", dtype=dtype, random_state=0)
        X = np.random.default_rng(1).standard_normal((1024, n)).astype(dtype)
        self.fn = {"wsekern": lambda: wsekern.spmm(W, X, n_threads=1),
                   "scipy": lambda: W @ X}[impl]

    def time_spmm(self, n, dtype, impl):
        self.fn()
