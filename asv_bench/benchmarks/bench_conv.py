"""asv benchmarks for conv2d: weight x input sparsity, against im2col + NumPy BLAS."""
import numpy as np

import wsekern
from wsekern.conv import ConvGeometry, im2col


class Conv2d:
    params = ([0.0, 0.9], [0.0, 0.8], ["wsekern", "im2col-numpy"])
    param_names = ["weight_sparsity", "input_sparsity", "impl"]

    def setup(self, ws, xs, impl):
        rng = np.random.default_rng(0)
        self.x = (rng.standard_normal((8, 64, 32, 32))
                  * (rng.random((8, 64, 32, 32)) >= xs)).astype(np.float32)
        self.w = (rng.standard_normal((64, 64, 3, 3))
                  * (rng.random((64, 64, 3, 3)) >= ws)).astype(np.float32)
        g = ConvGeometry.of(self.x.shape, self.w.shape, 1, 1, 1, 1)
        w2 = self.w.reshape(1, 64, -1)
        self.fn = {"wsekern": lambda: wsekern.conv2d(self.x, self.w, padding=1, n_threads=1),
                   "im2col-numpy": lambda: np.matmul(w2, im2col(self.x, g))}[impl]

    def time_conv2d(self, ws, xs, impl):
        self.fn()


class Conv2dBackward:
    params = [0.0, 0.9]
    param_names = ["weight_sparsity"]

    def setup(self, ws):
        rng = np.random.default_rng(0)
        self.x = rng.standard_normal((8, 64, 32, 32)).astype(np.float32)
        self.w = (rng.standard_normal((64, 64, 3, 3))
                  * (rng.random((64, 64, 3, 3)) >= ws)).astype(np.float32)
        self.g = rng.standard_normal((8, 64, 32, 32)).astype(np.float32)

    def time_conv2d_backward(self, ws):
        wsekern.conv2d_backward(self.g, self.x, self.w, padding=1, weight_mask=self.w != 0,
                                n_threads=1)


class Pool:
    def setup(self):
        self.x = np.random.default_rng(0).standard_normal((8, 64, 32, 32)).astype(np.float32)

    def time_max_pool2d(self):
        wsekern.max_pool2d(self.x, 2)

    def time_avg_pool2d(self):
        wsekern.avg_pool2d(self.x, 2)
