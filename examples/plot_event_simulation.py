"""
An event-level run against the analytic model
=============================================

On a 16 x 16 grid the placer picks a region and a mapping analytically; ``mode="event"``
then runs that placement wavelet by wavelet, the PEs computing the product themselves.
"""
import matplotlib.pyplot as plt
import numpy as np
import scipy.sparse as sps

import wsekern

rng = np.random.default_rng(1)
W = sps.random_array((256, 256), density=0.1, format="csr", dtype=np.float32, rng=rng)
X = np.maximum(rng.standard_normal((256, 16)), 0).astype(np.float32)
wafer = wsekern.Wafer(wsekern.WaferConfig.small(16, 16))

Y, report = wafer.spmm(W, X, mode="event")
print("max |Y - W @ X|:", np.abs(Y - W @ X).max())
analytic = report.details["analytic"]
print(f"event {report.cycles:,.0f} cycles; analytic {analytic['cycles']:,.0f} "
      f"(bounds {analytic['cycles_lower']:,.0f} .. {analytic['cycles_upper']:,.0f})")
print(report)

# %%
# Busy cycles, SRAM, traffic and the two kinds of stall, per PE.
path = report.plot("event_report.png")
fig, ax = plt.subplots(figsize=(16, 3.5))
ax.imshow(plt.imread(path))
ax.axis("off")
