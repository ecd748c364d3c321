"""s18 audit: what a new user ran into (an architecture researcher defining their own wafer,
a Keras user porting keras.io programs, a scipy.sparse user). Each test failed on main c6e5e7b
unless it says otherwise."""
import numpy as np
import pytest
import scipy.sparse as sps

import wsekern
from wsekern import nn
from wsekern.errors import SramOverflowError


# A Keras program's custom layer that calls keras.ops (a torch tensor on the torch backend)
# ran under wsekern.nn, but the graph stopped there: fit left every weight unchanged and
# logged the same loss each epoch, with no word. A clear TypeError now names the fix.
def test_keras_ops_in_a_custom_layer_is_refused_not_silently_untrained(keras):
    class Halve(nn.layers.Layer):
        def call(self, x):
            return keras.ops.mean(x, axis=-1, keepdims=True)

    nn.utils.set_random_seed(0)
    model = nn.Sequential([nn.Input((4,)), nn.layers.Dense(3), Halve()])
    model.compile(optimizer=nn.optimizers.SGD(0.1), loss="mse")
    with pytest.raises(TypeError, match=r"Halve\.call returned a torch\.Tensor.*wsekern\.nn\.ops"):
        model.fit(np.ones((8, 4), np.float32), np.zeros((8, 1), np.float32), epochs=2,
                  verbose=0)


def test_numpy_in_a_layer_with_weights_is_refused():
    class Raw(nn.layers.Layer):
        def build(self, input_shape):
            self.w = self.add_weight(shape=(input_shape[-1], 2))

        def call(self, x):
            return np.asarray(x) @ np.asarray(self.w)

    with pytest.raises(TypeError, match=r"Raw\.call returned a numpy\.ndarray"):
        Raw()(np.ones((3, 4), np.float32))


def test_nn_ops_in_a_custom_layer_trains_and_constants_stay_allowed():
    """Guard (passes on the old code too): the right way still trains, and a layer of no
    weights on inputs that need no gradient may still return an array."""
    class Halve(nn.layers.Layer):
        def call(self, x):
            return nn.ops.mean(x, axis=-1, keepdims=True)

    class OneHot(nn.layers.Layer):
        def call(self, x):
            return np.eye(3, dtype=np.float32)[np.asarray(x).astype(int)]

    nn.utils.set_random_seed(0)
    model = nn.Sequential([nn.Input((4,)), nn.layers.Dense(3), Halve()])
    model.compile(optimizer=nn.optimizers.SGD(0.1), loss="mse")
    before = [w.copy() for w in model.get_weights()]
    history = model.fit(np.ones((8, 4), np.float32), np.zeros((8, 1), np.float32), epochs=2,
                        verbose=0)
    assert history.history["loss"][1] < history.history["loss"][0]
    assert all(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    np.testing.assert_array_equal(np.asarray(OneHot()(np.array([0, 2]))),
                                  [[1, 0, 0], [0, 0, 1]])


# An SDDMM's report said "X's zeros are never sent (skipped)", the weight-stationary SpMM's
# note, while it streams B's rows whole and multiplies A's and B's zeros (its "skipped
# (X=0)" is 0); what it skips is the pattern's zeros.
def test_sddmm_report_says_which_zeros_it_skips():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((64, 16)).astype(np.float32)
    A[rng.random(A.shape) < 0.3] = 0
    B = rng.standard_normal((48, 16)).astype(np.float32)
    P = sps.random_array((64, 48), density=0.2, format="csr", random_state=1)
    _, report = wsekern.Wafer(wsekern.WaferConfig.small(16, 16)).sddmm(A, B, P)
    useful = (((A != 0).astype(float) @ (B != 0).T.astype(float)) * (P.toarray() != 0)).sum()
    assert report.macs_useful == useful < report.macs_performed == P.nnz * 16
    assert report.macs_skipped_activation == 0
    note = report.explanation()["zeros_skipped"]
    assert "never sent" not in note and "their zeros multiplied" in note
    assert "their zeros multiplied" in str(report)
    _, spmm_report = wsekern.Wafer(wsekern.WaferConfig.small(16, 16)).spmm(P, B)
    assert "X's zeros are never sent" in spmm_report.explanation()["zeros_skipped"]


# With region=None, a problem that fits nowhere raised the last candidate's overflow, whose
# advice was "Use a larger region, region=None to let the placer choose, or another
# mapping": the user had done all three. The error now says no region fits, and keeps the
# overflow's figures.
def test_a_problem_that_fits_nowhere_says_so():
    W = sps.random_array((64, 64), density=0.1, format="csr", dtype=np.float32,
                         random_state=0)
    tight = wsekern.Wafer(wsekern.WaferConfig.small(4, 4).with_(sram_bytes=4200))
    with pytest.raises(SramOverflowError, match=r"no region of the 4x4 wafer fits") as info:
        tight.spmm(W, np.ones((64, 2), np.float32))
    assert "region=None" not in str(info.value)
    assert info.value.capacity == 4200 and info.value.needed > 4200 and info.value.breakdown
    # a region given by the user keeps the advice to try another
    with pytest.raises(SramOverflowError, match=r"region=None to let the placer choose"):
        tight.spmm(W, np.ones((64, 2), np.float32), region=(4, 4))


# SeparableConv1D kept its kernels in the 2-D layer's shapes, (1, k, in, dm) and
# (1, 1, in * dm, filters); Keras's are (k, in, dm) and (1, in * dm, filters), so
# set_weights(keras_model.get_weights()) was refused ("has shape (1, 3, 4, 2); received
# (3, 4, 2)").
def test_separable_conv1d_takes_keras_weights(keras):
    def build(K):
        inp = K.Input((12, 4))
        h = K.layers.SeparableConv1D(5, 3, strides=2, padding="same", depth_multiplier=2,
                                     dilation_rate=1, activation="relu")(inp)
        h = K.layers.SeparableConv1D(3, 2, dilation_rate=2)(h)
        return K.Model(inp, K.layers.Flatten()(h))

    x = np.random.default_rng(3).standard_normal((6, 12, 4)).astype(np.float32)
    keras.utils.set_random_seed(0)
    theirs = build(keras)
    weights = theirs.get_weights()
    ours = build(nn)
    assert [w.shape for w in ours.get_weights()] == [w.shape for w in weights]
    ours.set_weights(weights)
    np.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-6)
    losses = []
    for K, model in ((keras, theirs), (nn, ours)):
        model.compile(optimizer=K.optimizers.SGD(0.1), loss="mse")
        y = np.zeros((6, model.output_shape[-1]), np.float32)
        losses.append(model.fit(x, y, epochs=2, batch_size=3, shuffle=False,
                                verbose=0).history["loss"])
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-5)


# `wsekern simulate matmul --mapping weight-stationary` ran SUMMA and printed "mapping any":
# the flag was dropped without a word, and SUMMA or MeshGEMM (the README's matmul mappings)
# could not be asked for. The flag now reaches matmul, which names the ones it takes.
def test_cli_simulate_matmul_honours_mapping(capsys):
    from wsekern.cli import main
    argv = ["simulate", "matmul", "--m", "64", "--k", "64", "--n", "64", "--wafer", "small"]
    assert main(argv + ["--mapping", "meshgemm"]) == 0
    out = capsys.readouterr().out
    assert "SimReport — meshgemm" in out and "mapping meshgemm" in out
    assert main(argv + ["--mapping", "summa"]) == 0
    assert "SimReport — summa" in capsys.readouterr().out
    assert main(argv + ["--mapping", "weight-stationary"]) != 0
    err = capsys.readouterr().err
    assert "'summa', 'meshgemm'" in err and "'weight-stationary'" in err


# A sweep of the matmul workload could not name a mapping ("'mapping' is neither a
# WaferConfig field nor a parameter of the 'matmul' workload"), so SUMMA and MeshGEMM could
# not be compared point by point; spmm's and conv2d's points take one.
def test_a_matmul_sweep_takes_a_mapping():
    pytest.importorskip("pandas")
    from wsekern import sweeps
    frame = sweeps.sweep({"m": [32], "k": [32], "n": [32], "rows": [4], "cols": [4],
                          "mapping": ["summa", "meshgemm"]}, "matmul", client=False,
                         base="small")
    assert list(frame["status"]) == ["ok", "ok"]
    assert list(frame["mapping_used"]) == ["summa", "meshgemm"]
    A = np.random.default_rng(0).standard_normal((32, 32)).astype(np.float32)
    wafer = wsekern.Wafer(wsekern.WaferConfig.small(4, 4))
    for mapping, cycles in zip(frame["mapping_used"], frame["cycles"]):
        assert cycles == wafer.matmul(A, A, mapping=mapping, compute=False)[1].cycles


# keras.regularizers objects given to wsekern layers (a Keras program half ported) computed
# with torch: fit logged the penalty but its gradient was lost, so the weights trained as
# if unregularized (kernel 0.7832 where L2(10) gives 0.3771). Keras's L1/L2/L1L2/
# Orthogonal objects now become ours; a loss that would lose its gradient is refused.
def test_keras_regularizer_objects_train_as_in_keras(keras):
    x = np.random.default_rng(0).standard_normal((16, 4)).astype(np.float32)
    y = np.random.default_rng(1).standard_normal((16, 1)).astype(np.float32)

    def build(K):
        return K.Sequential([K.Input((4,)), K.layers.Dense(
            3, kernel_regularizer=keras.regularizers.L2(0.5),
            activity_regularizer=keras.regularizers.L1(0.1),
            bias_regularizer=keras.regularizers.L1L2(0.1, 0.2)), K.layers.Dense(1)])
    out = []
    for K in (keras, nn):
        keras.utils.set_random_seed(0)
        model = build(K)
        if out:
            model.set_weights(out[0][1])
        start = model.get_weights()
        model.compile(optimizer=K.optimizers.SGD(0.05), loss="mse")
        history = model.fit(x, y, epochs=3, batch_size=8, shuffle=False, verbose=0)
        out.append((history.history["loss"], start, model.get_weights()))
    np.testing.assert_allclose(out[1][0], out[0][0], rtol=1e-5)
    for ours, theirs in zip(out[1][2], out[0][2]):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)


def test_losses_that_would_lose_their_gradient_are_refused(keras):
    class Custom(keras.regularizers.Regularizer):
        def __call__(self, x):
            return keras.ops.sum(x)

    with pytest.raises(TypeError, match=r"Custom is a Keras regularizer.*nn\.regularizers"):
        nn.layers.Dense(2, kernel_regularizer=Custom())

    class Penalised(nn.layers.Layer):
        def call(self, x):
            self.add_loss(keras.ops.mean(keras.ops.square(x)))
            return x

    with pytest.raises(TypeError, match=r"Penalised\.add_loss is a torch\.Tensor"):
        Penalised()(nn.ops.convert_to_tensor(np.ones((2, 3), np.float32)))
    # a number or a NumPy constant is still a loss (Keras takes them too)
    layer = nn.layers.Dense(2)
    layer.add_loss(0.5)
    layer.add_loss(np.float32(0.25))
    assert [float(v.data) for v in layer.losses] == [0.5, 0.25]
    # an nn layer called on keras.Input's tensor says which Input to use
    with pytest.raises(TypeError, match=r"replace keras\.Input with nn\.Input"):
        nn.layers.Dense(3)(keras.Input((4,)))


def test_separable_conv1d_still_takes_the_old_kernel_shapes():
    """A file saved before holds (1, k, in, dm) and (1, 1, in * dm, filters): the same
    data, still loaded."""
    rng = np.random.default_rng(0)
    layer = nn.layers.SeparableConv1D(4, 3, depth_multiplier=2)
    x = rng.standard_normal((2, 8, 3)).astype(np.float32)
    before = np.asarray(layer(x))
    depthwise, pointwise, bias = layer.get_weights()
    layer.set_weights([depthwise[None], pointwise[None], bias])
    np.testing.assert_array_equal(np.asarray(layer(x)), before)
