"""
Training a sparse MLP, costed on the wafer
==========================================

A 90 %-sparse MLP on scikit-learn's digits, Keras-style, inside a
:class:`wsekern.WaferStrategy`: every training step is also costed on a simulated WSE-2.
"""
import matplotlib.pyplot as plt

import wsekern as wk
from wsekern import nn

(x, y), (xt, yt) = wk.data.load_digits()
nn.utils.set_random_seed(0)
strategy = wk.WaferStrategy(wk.WaferConfig.wse2())
with strategy.scope():
    model = nn.Sequential([nn.Input(shape=(64,)),
                           nn.layers.Dense(256, activation="relu", sparsity=0.9),
                           nn.layers.Dense(256, activation="relu", sparsity=0.9),
                           nn.layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
model.fit(x, y, epochs=3, batch_size=64, verbose=0)
loss, accuracy = model.evaluate(xt, yt, verbose=0)
print(f"test accuracy {accuracy:.1%}")
report = model.wafer_report()
print(report)

# %%
# Where the layers sit and what each costs per step; the bottleneck layer in red.
path = report.plot("placement.png")
fig, ax = plt.subplots(figsize=(12, 8.5))
ax.imshow(plt.imread(path))
ax.axis("off")
