"""asv benchmarks for the simulated wafer: the analytic model's speed, and its outputs."""
import numpy as np

import wsekern
from wsekern.workloads import random_weight


class WeightStationaryReport:
    """W 4096x4096 (90% zeros) @ X 4096x64 (half zeros) on the full WSE-2 rectangle."""
    timeout = 300

    def setup(self):
        self.W = random_weight(4096, 4096, 0.9)
        rng = np.random.default_rng(0)
        self.X = rng.standard_normal((4096, 64)).astype(np.float32)
        self.X[rng.random(self.X.shape) < 0.5] = 0
        self.wafer = wsekern.Wafer(wsekern.WaferConfig.wse2())

    def _report(self):
        return self.wafer.spmm(self.W, self.X, region=(750, 994), mapping="weight-stationary")[1]

    def time_report(self):
        self._report()

    def peakmem_report(self):
        self._report()

    def track_cycles(self):
        return self._report().cycles
    track_cycles.unit = "cycles"

    def track_utilization(self):
        return 100 * self._report().utilization
    track_utilization.unit = "percent"


class Placer:
    params = [0.5, 0.9, 0.99]
    param_names = ["sparsity"]
    timeout = 300

    def setup(self, sparsity):
        self.W = random_weight(1024, 1024, sparsity)
        self.X = np.random.default_rng(0).standard_normal((1024, 32)).astype(np.float32)
        self.wafer = wsekern.Wafer(wsekern.WaferConfig.wse2())

    def time_placer(self, sparsity):
        self.wafer.spmm(self.W, self.X)

    def track_placed_cycles(self, sparsity):
        return self.wafer.spmm(self.W, self.X)[1].cycles
    track_placed_cycles.unit = "cycles"


class EventSpMV:
    """The event-level simulation: one SpMV, W 16384x16384 at 2% density, x half zeros,
    on 128x128 PEs of a WSE-2 (the size the vendor's simulator ran out of memory at)."""
    timeout = 300

    def setup(self):
        self.W = random_weight(16384, 16384, 0.98, dtype=np.float64)
        rng = np.random.default_rng(1)
        self.x = rng.standard_normal((16384, 1)) * (rng.random((16384, 1)) >= 0.5)
        self.config = wsekern.WaferConfig.wse2()

    def _run(self):
        from wsekern.wafer import event
        return event.weight_stationary(self.W, self.x, self.config, (0, 0, 128, 128))[1]

    def time_event(self):
        self._run()

    def peakmem_event(self):
        self._run()

    def track_events_per_second(self):
        return self._run().details["events_per_second"] / 1e6
    track_events_per_second.unit = "M events/s"

    def track_analytic_error(self):
        rep = self._run()
        return 100 * (rep.details["analytic"]["cycles"] / rep.cycles - 1)
    track_analytic_error.unit = "percent"
