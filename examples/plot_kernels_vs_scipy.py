"""
Zero-skipping spmm against SciPy and NumPy
==========================================

A 90 %-pruned weight times ReLU activations: the same product from
:func:`wsekern.spmm`, ``scipy.sparse`` and dense NumPy, checked equal, then timed on one
thread (the best of several runs, each library limited alike).
"""
import time

import matplotlib.pyplot as plt
import numpy as np
import scipy.sparse as sps

import wsekern

rng = np.random.default_rng(0)
W = sps.random_array((1024, 1024), density=0.1, format="csr", dtype=np.float32,
                     rng=rng)
X = np.maximum(rng.standard_normal((1024, 128)), 0).astype(np.float32)   # ReLU: half zeros
P = wsekern.pack(W)                      # the weight laid out once, as in training

Y = wsekern.spmm(P, X, n_threads=1)
reference = W.toarray().astype(np.float64) @ X
print("path:", wsekern.spmm_path(P, X))
print("max relative error vs float64:", np.abs(Y - reference).max() / np.abs(reference).max())

# %%
# Timings: the best of five, one thread each.
from threadpoolctl import threadpool_limits  # noqa: E402 (after the gallery text)


def best(fn, repeat=5):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


Wd = W.toarray()
with threadpool_limits(1):
    t = {"wsekern.spmm": best(lambda: wsekern.spmm(P, X, n_threads=1)),
         "scipy.sparse": best(lambda: W @ X),
         "NumPy (dense)": best(lambda: Wd @ X)}
for name, seconds in t.items():
    print(f"{name:14s} {seconds * 1e3:7.2f} ms")

fig, ax = plt.subplots(figsize=(6, 2.5))
ax.barh(list(t), [v * 1e3 for v in t.values()], color=["#3b6ea5", "#999999", "#cccccc"])
ax.set_xlabel("ms, one thread (lower is better)")
ax.set_title("W 1024x1024 (90 % zeros) @ X 1024x128 (ReLU)")
fig.tight_layout()
