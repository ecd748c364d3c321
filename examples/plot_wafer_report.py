"""
A wafer report
==============

The same product on a simulated WSE-2: the report says what was simulated, the cycles and
their bounds, the bottleneck and why utilisation is what it is; its plot maps busy cycles,
SRAM and traffic per PE.
"""
import json

import matplotlib.pyplot as plt
import numpy as np
import scipy.sparse as sps

import wsekern

rng = np.random.default_rng(0)
W = sps.random_array((1024, 1024), density=0.1, format="csr", dtype=np.float32, rng=rng)
X = np.maximum(rng.standard_normal((1024, 64)), 0).astype(np.float32)

wafer = wsekern.Wafer(wsekern.WaferConfig.wse2())
_, report = wafer.spmm(W, X, compute=False)      # the cost only
print(report)

# %%
# The JSON form carries the problem and the explanations, so a saved file can be traced
# back to its inputs.
saved = report.to_dict()
print(json.dumps(saved["problem"], indent=1))
print(json.dumps(saved["explanation"]["bounds"], indent=1))

# %%
# The per-PE maps, scales from zero (SRAM's up to the 48 KiB capacity).
path = report.plot("wafer_report.png")
fig, ax = plt.subplots(figsize=(14, 4.5))
ax.imshow(plt.imread(path))
ax.axis("off")
