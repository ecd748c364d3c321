"""``Variable.path`` as Keras 3 makes it: the names of the layers being built (or called
for the first time) when the variable is made, then its own (``outer/sub/x1/kernel``);
and the optimizer's slots named from it (``adam/s3_fit_kernel_momentum``)."""
import numpy as np

from wsekern import nn


def _paths(K):
    out = {}

    class M(K.Model):
        def __init__(self):
            super().__init__(name="m")
            self.d = K.layers.Dense(2, name="md")

        def call(self, x):
            return self.d(x)

    class Block(K.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.d = K.layers.Dense(2, name="bd")

        def call(self, x):
            return self.d(x)

    one = np.ones((1, 3), np.float32)
    m = M()
    m(one)
    block = Block(name="block")
    block(one)
    inner = K.Sequential([K.layers.Dense(3, name="i1")], name="inner")
    x = K.Input((4,))
    functional = K.Model(x, K.layers.Dense(2, name="head")(inner(x)))
    outer = K.Sequential([K.Input((4,)), K.Sequential([K.layers.Dense(3, name="x1")],
                                                      name="sub"),
                          K.layers.Dense(2, name="x2")], name="outer")
    built = K.Sequential([K.layers.Dense(2, name="late")], name="s2")
    built.build((None, 3))
    fitted = K.Sequential([K.layers.Dense(2, name="fit")], name="s3")
    fitted.compile(optimizer="adam", loss="mse")
    fitted.fit(np.ones((2, 3)), np.ones((2, 2)), verbose=0)
    conv = K.Sequential([K.Input((4, 4, 1)), K.layers.Conv2D(2, 3, name="cv"),
                         K.layers.BatchNormalization(name="bn")], name="s4")
    q = K.Input((3, 4))
    attention = K.Model(q, K.layers.MultiHeadAttention(2, 2, name="mha")(q, q))
    alone = K.layers.Dense(2, name="alone")
    alone.build((None, 3))
    for name, model in (("subclass", m), ("block", block), ("functional", functional),
                        ("nested", outer), ("build", built), ("fit", fitted),
                        ("conv", conv), ("attention", attention), ("alone", alone)):
        out[name] = [v.path for v in model.weights]
    # the optimizer's own name is numbered per process: its slots' paths after it
    out["slots"] = [v.path.split("/", 1)[1] for v in fitted.optimizer.variables]
    return out


def test_paths_as_keras(keras):
    assert _paths(nn) == _paths(keras)


def test_paths_name_the_enclosing_layers():
    got = _paths(nn)
    assert got["nested"] == ["outer/sub/x1/kernel", "outer/sub/x1/bias", "outer/x2/kernel",
                             "outer/x2/bias"]
    assert got["subclass"] == ["m/md/kernel", "m/md/bias"]
    assert got["functional"] == ["inner/i1/kernel", "inner/i1/bias", "head/kernel",
                                 "head/bias"]
    assert got["attention"][:2] == ["mha/query/kernel", "mha/query/bias"]
    assert got["slots"][2:4] == ["s3_fit_kernel_momentum", "s3_fit_kernel_velocity"]
