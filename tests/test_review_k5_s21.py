"""Review of session 21's Keras work (review_k5): the Fourier ops' memory estimate."""
import numpy as np
import pytest

from wsekern.nn import ops


def _spy(monkeypatch):
    """The FFT itself replaced by a marker: the sizes below would allocate GiBs."""
    monkeypatch.setattr(ops, "_linear_complex", lambda *a, **k: "computed")


@pytest.mark.parametrize("dtype, n, refused", [
    # float32 rows give a complex64 spectrum of n // 2 + 1 values: 2**20 rows of 1022
    # samples are 4 GiB exactly (kept), of 1024 just above (refused); float64 twice that
    ("float32", 300, False), ("float32", 1022, False), ("float32", 1024, True),
    ("float64", 400, False), ("float64", 510, False), ("float64", 512, True)])
def test_rfft_estimate_is_the_spectrum_size(monkeypatch, dtype, n, refused):
    """The estimate was 16 bytes x rows x fft_length, 2x (float64) to 4x (float32) the
    output: rfft of 2**20 float32 rows of 300 (a 1.2 GiB spectrum, which Keras computes)
    was refused as ~4.7 GiB."""
    _spy(monkeypatch)
    x = np.broadcast_to(np.zeros((), dtype), (2 ** 20, n))
    if refused:
        with pytest.raises(ValueError, match=rf"rfft: fft_length=None \(the input's last "
                                             rf"axis, {n}\) asks for 1048576 x {n // 2 + 1} "
                                             r"output samples, ~4\.\d GiB"):
            ops.rfft(x)
    else:
        assert ops.rfft(x) == "computed"
        assert ops.rfft(x[:, :8], n) == "computed"          # padded to n: the same size


@pytest.mark.parametrize("dtype, n, refused", [
    ("float32", 300, False), ("float32", 1024, False), ("float32", 1026, True),
    ("float64", 512, False), ("float64", 514, True)])
def test_irfft_estimate_is_the_signal_size(monkeypatch, dtype, n, refused):
    """irfft's output is n real samples a row, at the input's precision (float32 stays
    float32): 2**20 rows of 1024 float32 samples are 4 GiB (kept); was refused from 256."""
    _spy(monkeypatch)
    z = np.broadcast_to(np.zeros((), dtype), (2 ** 20, 3))
    if refused:
        with pytest.raises(ValueError, match=rf"irfft: fft_length={n} asks for 1048576 x "
                                             rf"{n} output samples.*smaller fft_length"):
            ops.irfft((z, z), n)
    else:
        assert ops.irfft((z, z), n) == "computed"


def test_fourier_estimate_matches_what_numpy_returns():
    """The estimate's item sizes are those of the arrays the ops return."""
    for dt in ("float32", "float64"):
        re, im = ops.rfft(np.ones((3, 10), dt), 16)
        assert re.shape == (3, 9) and re.dtype == dt
        assert ops.irfft((re, im), 16).dtype == dt
        assert np.fft.rfft(np.ones(16, dt)).dtype.itemsize == \
            np.result_type(dt, np.complex64).itemsize


# -- the four confusion counts (new this session; the fraud example ran them with no sample
# weight reaching them: class_weight weighs the loss only, so counts that dropped the
# weights passed it) ----------------------------------------------------------------------
_COUNTS = {"TruePositives": (1, 1), "FalsePositives": (0, 1), "TrueNegatives": (0, 0),
           "FalseNegatives": (1, 0)}


def _count_cases():
    rng = np.random.default_rng(3)
    for shape in ((12,), (6, 3)):
        for thresholds in (None, 0.3, [0.2, 0.5, 0.8]):
            t = (rng.random(shape) < 0.4).astype("float32")
            p = rng.random(shape).astype("float32")
            for w in (None, rng.random(shape[:1]).astype("float32"),
                      rng.random(shape).astype("float32")):
                yield t, p, w, thresholds


@pytest.mark.parametrize("name", sorted(_COUNTS))
def test_confusion_counts_weighted_by_hand(name):
    """Sum of the weights of the (label, prediction > threshold) pairs of the metric's
    kind, over two batches; a weight per sample weighs each of its entries; a scalar for
    one threshold, one count per threshold for a list."""
    from wsekern.nn import metrics as M
    label, positive = _COUNTS[name]
    for t, p, w, thresholds in _count_cases():
        m = getattr(M, name)(thresholds=thresholds)
        m.update_state(t, p, sample_weight=w)
        m.update_state(t[::-1], p, sample_weight=w)
        ts = np.atleast_1d(0.5 if thresholds is None else thresholds)
        ww = np.ones_like(p) if w is None else np.broadcast_to(
            w.reshape(w.shape + (1,) * (p.ndim - w.ndim)), p.shape)
        want = [sum((((tt == label) & ((p > th) == bool(positive))) * ww).sum()
                    for tt in (t, t[::-1])) for th in ts]
        got = np.asarray(m.result())
        assert got.shape == (() if np.ndim(thresholds) == 0 else (len(ts),))
        np.testing.assert_allclose(got, want if got.ndim else want[0], rtol=1e-6,
                                   err_msg=f"{name} {thresholds} {p.shape} w={w is not None}")
        m.reset_state()
        assert np.all(np.asarray(m.result()) == 0)


@pytest.mark.parametrize("name", sorted(_COUNTS))
def test_confusion_counts_as_keras(keras, name):
    """The same cases (and logits outside [0, 1], which Keras compares as given) against
    Keras's metric of the same name."""
    import warnings

    from wsekern.nn import metrics as M
    for t, p, w, thresholds in _count_cases():
        for q in (p, (p - 0.5) * 4):
            ours, theirs = getattr(M, name)(thresholds=thresholds), \
                getattr(keras.metrics, name)(thresholds=thresholds)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ours.update_state(t, q, sample_weight=w)
            theirs.update_state(t, q, sample_weight=w)
            np.testing.assert_allclose(np.asarray(ours.result()),
                                       np.asarray(theirs.result()), rtol=1e-6)


# -- file_layer_order is the saving thread's alone: another thread trains meanwhile --------
def test_a_thread_trains_predicts_and_reads_weights_while_another_saves(tmp_path,
                                                                          monkeypatch):
    """A save held inside (after its spec, before its weights) while another thread calls
    get_weights, predict, fit and set_weights on the same model: that thread sees Keras's
    order throughout (the old swap on the model handed it the files' order: get_weights
    came back in another order), trains as a twin trained alone, and the save, let go
    afterwards, writes the trained model."""
    import threading

    from test_keras_small_s21 import _branch

    import wsekern.nn.saving as saving
    from wsekern import nn
    rng = np.random.default_rng(1)
    x = rng.normal(size=(16, 4)).astype("float32")
    y = rng.normal(size=(16, 2)).astype("float32")

    def fresh():
        m = _branch()
        m.set_weights([np.random.default_rng(7 + i).normal(size=w.shape).astype(w.dtype)
                       for i, w in enumerate(m.get_weights())])
        m.compile(optimizer=nn.optimizers.Adam(0.01), loss="mse")
        return m
    twin = fresh()
    start = twin.get_weights()
    twin_pred = twin.predict(x, verbose=0)
    twin.fit(x, y, batch_size=8, epochs=2, verbose=0, shuffle=False)
    m = fresh()

    inside, go, errors, seen = threading.Event(), threading.Event(), [], {}
    real_spec = saving.model_spec

    def held_spec(model):
        spec = real_spec(model)
        inside.set()
        assert go.wait(60)
        return spec
    monkeypatch.setattr(saving, "model_spec", held_spec)

    def save():
        try:
            m.save(tmp_path / "m.wsekern")
        except BaseException as e:            # noqa: BLE001 - reported below
            errors.append(e)

    def use():
        try:
            seen["start"] = m.get_weights()
            seen["pred"] = m.predict(x, verbose=0)
            m.fit(x, y, batch_size=8, epochs=2, verbose=0, shuffle=False)
            seen["trained"] = m.get_weights()
            m.set_weights(seen["trained"])            # in the same order it was read
        except BaseException as e:            # noqa: BLE001 - reported below
            errors.append(e)
    saver = threading.Thread(target=save)
    saver.start()
    assert inside.wait(60)
    user = threading.Thread(target=use)
    user.start()
    user.join(120)
    go.set()
    saver.join(60)
    assert not errors, errors
    for a, b in zip(seen["start"], start):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(seen["pred"], twin_pred)
    for a, b, c in zip(seen["trained"], twin.get_weights(), m.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
        np.testing.assert_array_equal(a, c)
    back = nn.load_model(tmp_path / "m.wsekern")
    for a, b in zip(back.get_weights(), m.get_weights()):
        np.testing.assert_array_equal(a, b)


# -- BatchNormalization's backward (rewritten in torch's form this session) ---------------
_BN_CASES = [((6, 4), True, True), ((6, 4), False, True), ((6, 4), True, False),
             ((6, 4), False, False), ((1, 4), True, True), ((3, 5, 2), True, True),
             ((2, 3, 2, 3), False, True)]


@pytest.mark.parametrize("shape, center, scale", _BN_CASES)
def test_batch_norm_training_gradients_by_finite_differences(shape, center, scale):
    """float64, training: d/d(input), gamma and beta of sum(bn(x) * R) against central
    differences (test_nn_grad covered gamma and beta both on, a 3-D input only)."""
    from test_nn_grad import check_layer

    from wsekern import nn
    layer = nn.layers.BatchNormalization(center=center, scale=scale, epsilon=1e-5,
                                         dtype="float64")
    x = np.random.default_rng(4).normal(size=shape) * 2 + 0.5
    check_layer(layer, x, training=True, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("shape, center, scale", _BN_CASES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_batch_norm_training_step_as_keras(keras, shape, center, scale, dtype):
    """One training call and its gradients against Keras on torch (float32 within a few
    ulps of the largest value; Keras's float64 carries float32 rounding: 1e-6)."""
    import torch

    from wsekern import nn
    from wsekern.nn.tensor import Tensor
    rng = np.random.default_rng(5)
    x = (rng.normal(size=shape) * 3 + 1).astype(dtype)
    R = rng.normal(size=shape).astype(dtype)
    theirs = keras.layers.BatchNormalization(center=center, scale=scale, momentum=0.8,
                                             dtype=dtype)
    ours = nn.layers.BatchNormalization(center=center, scale=scale, momentum=0.8, dtype=dtype)
    theirs.build(shape)
    ours(Tensor(x))                        # builds (inference: the moving statistics kept)
    if scale:
        g = rng.normal(size=shape[-1]).astype(dtype)
        theirs.gamma.assign(g)
        ours.gamma.data[...] = g
    xt = torch.tensor(x, requires_grad=True)
    yt = theirs(xt, training=True)
    (yt * torch.tensor(R)).sum().backward()
    xo = Tensor(x, requires_grad=True)
    yo = ours(xo, training=True)
    (yo * R).sum().backward()
    tol = 1e-5 if dtype == "float32" else 1e-6

    def close(a, b, what):
        b = np.asarray(b, np.float64)
        np.testing.assert_allclose(np.asarray(a, np.float64), b, rtol=0,
                                   atol=tol * max(np.abs(b).max(), 1e-3), err_msg=what)
    close(yo.data, yt.detach().numpy(), "output")
    close(xo.grad, xt.grad.numpy(), "input gradient")
    assert xo.grad.dtype == dtype
    for name in ("moving_mean", "moving_variance"):
        close(getattr(ours, name).data, getattr(theirs, name).numpy(), name)


def test_stft_refuses_too_many_frames_before_gathering_them():
    """stft gathered every frame (signals x frames x fft_length samples) before rfft's
    estimate could refuse: 2**24 samples at stride 1 are 64 GiB of frames, a MemoryError
    after the attempt (or the OOM killer). In a child under a 3 GiB cap."""
    from conftest import assert_refused_in_child
    assert_refused_in_child("""
        import numpy as np
        from wsekern.nn import ops
        x = np.zeros((1, 2 ** 24), np.float32)
        cases = [lambda: ops.stft(x, 256, 1, 256),
                 lambda: ops.stft(np.zeros((64, 2 ** 18), np.float64), 512, 4, 512)]
        """, 2, needles=("sequence_stride=",), limit_gb=3)


def test_stft_budget_message():
    with pytest.raises(ValueError, match=r"stft: sequence_stride=1 asks for 16777217 x 129 "
                                         r"output samples, ~16\.\d GiB .*use a larger "
                                         r"sequence_stride \(16777217 frames a signal\)"):
        ops.stft(np.zeros((1, 2 ** 24), np.float32), 256, 1, 256)


# -- a layer built directly is built (Keras's build wrapper) -------------------------------
def _block(lib):
    class Block(lib.layers.Layer):            # keras.io's custom layer: builds its part
        def __init__(self, **kw):
            super().__init__(**kw)
            self.d = lib.layers.Dense(3)

        def build(self, input_shape):
            self.d.build(input_shape)

        def call(self, x):
            return self.d(x)
    return Block()


def test_a_sublayer_built_in_build_is_not_built_again():
    """A custom layer whose build() builds its sub-layer: the sub-layer's first call built
    it again, so the block had two kernels and two biases (the first pair dead)."""
    from wsekern import nn
    x = np.random.default_rng(0).normal(size=(5, 4)).astype("float32")
    block = _block(nn)
    y = block(x).data
    assert [w.shape for w in block.weights] == [(4, 3), (3,)]
    k, b = block.get_weights()
    np.testing.assert_allclose(y, x @ k + b, rtol=1e-6)
    inp = nn.Input((4,))
    model = nn.Model(inp, _block(nn)(inp))
    assert [w.shape for w in model.trainable_weights] == [(4, 3), (3,)]


@pytest.mark.parametrize("direct", ["dense", "block"])
def test_weights_set_after_a_direct_build_are_the_ones_called(direct):
    """layer.build(shape); layer.set_weights(w); layer(x): the call used fresh weights of a
    second build (Keras marks the layer built, so the call uses w)."""
    from wsekern import nn
    layer = nn.layers.Dense(3) if direct == "dense" else _block(nn)
    layer.build((None, 4))
    assert layer.built and layer.input_shape == (None, 4)
    k = np.arange(12, dtype="float32").reshape(4, 3) / 10
    b = np.array([1, -1, 0.5], "float32")
    layer.set_weights([k, b])
    x = np.random.default_rng(1).normal(size=(2, 4)).astype("float32")
    np.testing.assert_allclose(layer(x).data, x @ k + b, rtol=1e-6)
    assert len(layer.weights) == 2


def test_custom_block_weights_as_keras(keras):
    """The same block in Keras: the same weight shapes, and ours set from Keras's weights
    predicts as Keras."""
    from wsekern import nn
    x = np.random.default_rng(2).normal(size=(3, 4)).astype("float32")
    theirs, ours = _block(keras), _block(nn)
    theirs.build((None, 4))
    ours.build((None, 4))
    assert [tuple(w.shape) for w in ours.weights] == [tuple(w.shape) for w in theirs.weights]
    ours.set_weights([np.asarray(w) for w in theirs.get_weights()])
    np.testing.assert_allclose(ours(x).data, theirs(x).detach().numpy(), rtol=1e-6)
