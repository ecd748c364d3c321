"""
A small design-space sweep
==========================

Grid size and the two sparsities of a ``spmm``, serially (``client=False``; a Dask
cluster takes the same call). Points that differ only in weight sparsity come out equal
when the chosen mapping multiplies W's zeros: the notes say so.
"""
import matplotlib.pyplot as plt

import wsekern
from wsekern import sweeps

space = {"rows": [16, 32], "cols": [16, 32], "sparsity": [0.5, 0.9],
         "act_sparsity": [0.0, 0.5], "m": [512], "k": [512], "n": [32]}
frame = wsekern.sweep(space, "spmm", base="small", client=False)
print(frame[["rows", "cols", "sparsity", "act_sparsity", "cycles", "energy_joules",
             "mapping_used"]].to_string())
for note in sweeps.skip_notes(frame):
    print("note:", note)

# %%
# The Pareto front of cycles and energy.
path = sweeps.plot_pareto(frame, "pareto.png")
fig, ax = plt.subplots(figsize=(9, 7))
ax.imshow(plt.imread(path))
ax.axis("off")
