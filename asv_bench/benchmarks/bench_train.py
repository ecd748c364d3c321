"""asv: training epochs of wsekern.nn, the cases of ``wsekern bench train`` (MLPs dense and
90% sparse, the keras.io MNIST convnet dense and pruned, the char GPT, ten tiny layers at
batch 1), with their peak memory. One thread, as the CLI table; no shuffling."""
from threadpoolctl import threadpool_limits

from wsekern.bench_train import CASES, case_data, scaled, wsekern_model

# asv runs each case several times: a fifth of each case's samples keeps it under a minute
SCALE = 0.2
NAMES = [c.name for c in CASES]


class TrainEpoch:
    params = [NAMES]
    param_names = ["case"]
    timeout = 600

    def setup(self, name):
        self.case = scaled(CASES[NAMES.index(name)], SCALE)
        self.x, self.y = case_data(self.case)
        self.model = wsekern_model(self.case)
        self.limits = threadpool_limits(1)
        self.epoch()                                  # builds the model, warms up

    def teardown(self, name):
        self.limits.restore_original_limits()

    def epoch(self):
        self.model.fit(self.x, self.y, batch_size=self.case.batch, epochs=1, verbose=0,
                       shuffle=False)

    def time_epoch(self, name):
        self.epoch()

    def peakmem_epoch(self, name):
        self.epoch()
