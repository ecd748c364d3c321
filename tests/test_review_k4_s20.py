"""review_k4 (session 20): fresh eyes on keras20's Keras files and ops20's last keras.ops."""
import numpy as np
import pytest

from wsekern.nn import ops
from wsekern.nn.tensor import Tensor


def test_jvp_refuses_an_absurd_number_of_backward_passes_before_spending_one(monkeypatch):
    """jvp costs one backward pass per output entry: an outer product of a 1000-vector has
    10**6 entries, each a pass over a 10**6-element graph (~1e12 element operations, hours).
    Refused with the estimate before any pass; a small jvp still runs."""
    def no_backward(self, *a, **k):
        raise AssertionError("a backward pass was spent before the estimate")
    x = np.linspace(-1.0, 1.0, 1000)
    with monkeypatch.context() as m:
        m.setattr(Tensor, "backward", no_backward)
        with pytest.raises(ValueError, match=r"jvp: 1000000 output entries.*fewer output"):
            ops.jvp(lambda a: ops.outer(a, a), (x,), (np.ones_like(x),))
    # the pytree form is counted over all its outputs too
    with monkeypatch.context() as m:
        m.setattr(Tensor, "backward", no_backward)
        with pytest.raises(ValueError, match="output entries"):
            ops.jvp(lambda a: {"o": ops.outer(a, a), "s": ops.sin(a)}, (x,),
                    (np.ones_like(x),))
    # a modest one is untouched: d/dx (x * x) . t = 2 x t
    small = x[:50]
    _, t = ops.jvp(lambda a: a * a, (small,), (np.ones_like(small),))
    np.testing.assert_allclose(t.data, 2 * small, rtol=1e-12)


def test_without_h5py_a_keras_file_we_wrote_is_refused_with_a_true_reason(tmp_path):
    """save('m.keras') writes Keras's format (weights in HDF5) where h5py is installed; read
    where it is not, the error said "files saved by wsekern.nn need nothing more", false for
    this very file. Now it names the extra and what needs it, for load_model and for
    load_weights of a .weights.h5 file."""
    pytest.importorskip("h5py")
    from conftest import run_in_child

    from wsekern import nn
    m = nn.Sequential([nn.Input((5,)), nn.layers.Dense(3)])
    m.compile("adam", "mse")
    m.save(tmp_path / "m.keras")
    m.save_weights(tmp_path / "w.weights.h5")
    proc = run_in_child(f"""
        import sys
        sys.modules["h5py"] = None                      # as if it were not installed
        from wsekern import nn
        for load in (lambda: nn.load_model({str(tmp_path / "m.keras")!r}),
                     lambda: nn.Sequential([nn.Input((5,)), nn.layers.Dense(3)]).load_weights(
                         {str(tmp_path / "w.weights.h5")!r})):
            try:
                load()
                print("LOADED")
            except ImportError as e:
                print("ERR", e)
        """)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(("ERR", "LOADED"))]
    assert len(lines) == 2, proc.stdout + proc.stderr[-2000:]
    for ln in lines:
        assert ln.startswith("ERR") and "wsekern[keras]" in ln, ln
        assert "saved by wsekern.nn need nothing more" not in ln, ln
    assert "wsekern.nn's save" in lines[0] and "w.weights.h5" in lines[1], lines


def _opt(K, name):
    return {"adagrad": lambda: K.optimizers.Adagrad(0.1),
            "adadelta": lambda: K.optimizers.Adadelta(1.0),
            "adamax": lambda: K.optimizers.Adamax(0.02),
            "lion": lambda: K.optimizers.Lion(0.003),
            "nadam": lambda: K.optimizers.Nadam(0.01)}[name]()


@pytest.mark.parametrize("name", ["adagrad", "adadelta", "adamax", "lion", "nadam"])
@pytest.mark.parametrize("direction", ["ours-to-keras", "keras-to-ours"])
def test_optimizer_state_of_adagrad_adadelta_adamax_lion_nadam_crosses_keras_files(
        keras, tmp_path, name, direction):
    """Keras lays these optimizers' slots out per variable, name by name, as it does Adam's;
    ours has the same slots and updates. They were dropped both ways (a warning, and the
    next epoch trained from fresh state: losses 1e-3..1e-2 apart). Now the next epoch after
    a save and a load equals the original's."""
    import warnings

    from wsekern import nn
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 5)).astype("float32")
    y = rng.normal(size=(16, 3)).astype("float32")
    src, dst = (nn, keras) if direction == "ours-to-keras" else (keras, nn)
    keras.utils.set_random_seed(0)
    m = src.Sequential([src.Input((5,)), src.layers.Dense(6, activation="tanh"),
                        src.layers.Dense(3)])
    m.compile(_opt(src, name), "mse")
    m.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    path = tmp_path / "m.keras"
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        m.save(path)
        loaded = keras.models.load_model(path) if dst is keras else nn.load_model(path)
    said = [str(x.message) for x in w if "optimizer" in str(x.message)]
    assert not said, said
    assert type(loaded.optimizer).__name__.lower() == name
    assert int(np.asarray(loaded.optimizer.iterations)) == 4
    theirs = loaded.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0).history
    ours = m.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0).history
    np.testing.assert_allclose(theirs["loss"], ours["loss"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), m.predict(x, verbose=0),
                               rtol=1e-4, atol=1e-5)


def test_ctc_decode_refuses_an_absurd_beam_width_with_the_reason():
    """beam_width=10**9 made the beam search ask NumPy for 37 GiB of paths (a MemoryError
    naming an array shape (2000000000, 5) the caller never asked for). Refused before any
    allocation, naming beam_width; the child has a 3 GiB address space, so the old code's
    allocation fails there instead of swapping."""
    from conftest import run_in_child
    proc = run_in_child("""
        import numpy as np
        from wsekern.nn import ops
        x = np.random.default_rng(0).normal(size=(1, 5, 4)).astype("float32")
        try:
            ops.ctc_decode(x, np.array([5]), strategy="beam_search", beam_width=10**9)
        except Exception as e:
            print(type(e).__name__, e)
        """, limit_gb=3)
    assert proc.stdout.startswith("ValueError ctc_decode"), proc.stdout + proc.stderr[-2000:]
    assert "beam_width=1000000000" in proc.stdout and "smaller beam_width" in proc.stdout
    # an ordinary beam is untouched
    x = np.random.default_rng(0).normal(size=(2, 6, 5)).astype("float32")
    paths, scores = ops.ctc_decode(x, np.array([6, 4]), strategy="beam_search",
                                   beam_width=100, top_paths=3)
    assert paths.shape == (3, 2, 6) and scores.shape == (2, 3)


def test_loss_and_metric_objects_reach_keras_compiled(keras, tmp_path):
    """A model compiled with loss/metric objects (Huber(delta=0.3), TopK(k=2), a weighted
    MAE) was written uncompiled for Keras (a warning, and Keras's fit impossible without
    recompiling). Now Keras loads it compiled, its evaluate equals ours (delta and k kept:
    Keras's own Huber.get_config drops delta) and the next epoch's loss equals ours."""
    import warnings

    from wsekern import nn
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 5)).astype("float32")
    y = rng.normal(size=(16, 4)).astype("float32")
    keras.utils.set_random_seed(0)
    m = nn.Sequential([nn.Input((5,)), nn.layers.Dense(4)])
    m.compile(nn.optimizers.SGD(0.05, momentum=0.9), loss=nn.losses.Huber(delta=0.3),
              metrics=["mae", nn.metrics.TopKCategoricalAccuracy(k=2)],
              weighted_metrics=[nn.metrics.MeanSquaredError()])
    m.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    path = tmp_path / "m.keras"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m.save(path)
    km = keras.models.load_model(path)
    assert km.compiled
    theirs = km.evaluate(x, y, verbose=0, return_dict=True)
    ours = m.evaluate(x, y, verbose=0, return_dict=True)
    assert set(theirs) == set(ours), (theirs, ours)
    for k in ours:
        np.testing.assert_allclose(theirs[k], ours[k], rtol=1e-5, atol=1e-6, err_msg=k)
    a = km.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0).history["loss"]
    b = m.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0).history["loss"]
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


_SCHEDULES = {
    "exponential": lambda S: S.ExponentialDecay(0.05, 2, 0.5, staircase=True),
    "cosine": lambda S: S.CosineDecay(0.05, 5, alpha=0.1, warmup_target=0.1, warmup_steps=2),
    "cosine-restarts": lambda S: S.CosineDecayRestarts(0.05, 2, t_mul=2.0, m_mul=0.5),
    "inverse-time": lambda S: S.InverseTimeDecay(0.05, 2, 0.5),
    "piecewise": lambda S: S.PiecewiseConstantDecay([2, 4], [0.05, 0.02, 0.01]),
    "polynomial": lambda S: S.PolynomialDecay(0.05, 5, 0.001, power=2.0, cycle=True)}


@pytest.mark.parametrize("name", list(_SCHEDULES))
def test_a_learning_rate_schedule_reaches_keras_compiled(keras, tmp_path, name):
    """An optimizer with a learning-rate schedule was written for Keras without its
    compile_config (Keras loaded it uncompiled, the optimizer state lost). Keras has each
    of our schedules with the same config: now Keras loads it compiled, with the Adam
    state and the step count, and its next two epochs (the rate still decaying) equal ours."""
    import warnings

    from wsekern import nn
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 5)).astype("float32")
    y = rng.normal(size=(16, 3)).astype("float32")
    keras.utils.set_random_seed(0)
    m = nn.Sequential([nn.Input((5,)), nn.layers.Dense(6, activation="tanh"),
                       nn.layers.Dense(3)])
    m.compile(nn.optimizers.Adam(_SCHEDULES[name](nn.optimizers.schedules)), "mse")
    m.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m.save(tmp_path / "m.keras")
    km = keras.models.load_model(tmp_path / "m.keras")
    assert km.compiled and int(km.optimizer.iterations.numpy()) == 4
    a = km.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0).history["loss"]
    b = m.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0).history["loss"]
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=2e-6)
