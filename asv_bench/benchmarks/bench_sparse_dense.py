"""asv benchmarks for the sparse-weight layer's step products (wsekern.sparse_dense): a
dense batch times a 90%-zero kernel, forward, input gradient and weight gradient, against
the dense GEMM each replaces (1 thread)."""
import numpy as np

from wsekern import pack
from wsekern import sparse_dense as sd
from wsekern.workloads import random_weight


class SparseDenseStep:
    # (inputs, units, batch): the MLP's 784/1024 x 1024 at batch 128, the GPT's MLP blocks
    params = ([(784, 1024, 128), (1024, 1024, 128), (128, 512, 2048), (512, 128, 2048)],
              ["forward", "input-grad", "weight-grad", "dense-gemm"])
    param_names = ["shape", "product"]
    timeout = 120

    def setup(self, shape, product):
        K, N, B = shape
        W = random_weight(K, N, 0.9, seed=0)
        self.P = pack(W)
        self.P.T                                            # the cached transpose, built once
        rng = np.random.default_rng(1)
        self.Xt = rng.standard_normal((K, B)).astype(np.float32)
        self.Gt = rng.standard_normal((N, B)).astype(np.float32)
        self.X = np.ascontiguousarray(self.Xt.T)
        self.Wd = W.toarray()
        self.fn = {"forward": lambda: sd.times_wt(self.P, self.Xt, n_threads=1),
                   "input-grad": lambda: sd.times_w(self.P, self.Gt, n_threads=1),
                   "weight-grad": lambda: sd.pattern_grad(self.P, self.Xt, self.Gt,
                                                          n_threads=1),
                   "dense-gemm": lambda: self.X @ self.Wd}[product]

    def time_product(self, shape, product):
        self.fn()
