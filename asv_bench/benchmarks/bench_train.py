"""asv: training epochs of wsekern.nn MLPs, dense and 90% sparse."""
import numpy as np

import wsekern as wk
from wsekern import nn


class MlpEpoch:
    params = [0.0, 0.9]
    param_names = ["sparsity"]
    timeout = 300

    def setup(self, sparsity):
        (xm, ym), (xt, yt) = wk.data.load_mnist()
        self.x = np.concatenate([xm, xt, xm, xt])[:10_000]
        self.y = np.concatenate([ym, yt, ym, yt])[:10_000]
        nn.utils.set_random_seed(0)
        self.model = nn.Sequential([
            nn.layers.Dense(1024, activation="relu", input_shape=(784,), sparsity=sparsity),
            nn.layers.Dense(1024, activation="relu", sparsity=sparsity),
            nn.layers.Dense(10, activation="softmax")])
        self.model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")

    def time_epoch(self, sparsity):
        self.model.fit(self.x, self.y, batch_size=128, epochs=1, verbose=0)
