"""wsekern.nn's Keras API: training to the issue's accuracies, determinism, saving,
callbacks, optimizers against independent references, and bad input."""
import csv

import numpy as np
import pytest

import wsekern as wk
from wsekern import nn
from wsekern.nn import layers as L


@pytest.fixture(scope="module")
def digits():
    return wk.data.load_digits()


def mlp(sparsity=0.0, seed=0):
    nn.utils.set_random_seed(seed)
    model = nn.Sequential([L.Dense(256, activation="relu", input_shape=(64,), sparsity=sparsity),
                           L.Dense(256, activation="relu", sparsity=sparsity),
                           L.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


# -- accuracy targets of the issue ------------------------------------------------------
def test_mlp_on_digits_reaches_97_percent(digits):
    (x, y), (xt, yt) = digits
    model = mlp()
    model.fit(x, y, epochs=60, batch_size=32, verbose=0)
    loss, acc = model.evaluate(xt, yt, verbose=0)
    assert acc >= 0.97


def test_90_percent_sparse_mlp_on_digits_reaches_95_5_percent(digits):
    (x, y), (xt, yt) = digits
    model = mlp(sparsity=0.9)
    model.fit(x, y, epochs=60, batch_size=32, verbose=0)
    for layer in model.layers[:2]:
        assert np.mean(layer.get_weights()[0] == 0) == pytest.approx(0.9, abs=1e-3)
    assert model.evaluate(xt, yt, verbose=0)[1] >= 0.955


def test_cnn_on_digits_reaches_97_percent():
    (x, y), (xt, yt) = wk.data.load_digits(reshape=True)
    nn.utils.set_random_seed(0)
    model = nn.Sequential([nn.Input(shape=(8, 8, 1)),
                           L.Conv2D(32, 3, padding="same", activation="relu"),
                           L.Conv2D(32, 3, padding="same", activation="relu"),
                           L.MaxPooling2D(), L.Flatten(),
                           L.Dense(64, activation="relu"), L.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=15, batch_size=32, verbose=0)
    assert model.evaluate(xt, yt, verbose=0)[1] >= 0.97


def test_issue_acceptance_program_on_mnist_with_the_wafer():
    """The issue's program, unchanged but for verbose=0."""
    (x_train, y_train), (x_test, y_test) = wk.data.load_mnist()
    strategy = wk.WaferStrategy(wk.WaferConfig.wse2())
    with strategy.scope():
        model = nn.Sequential([
            nn.layers.Dense(units=1024, activation='relu', input_shape=(784,)),
            nn.layers.Dense(units=10, activation='softmax')
        ])
        model.compile(optimizer='adam', loss='sparse_categorical_crossentropy',
                      metrics=['accuracy'])
    model.fit(x_train, y_train, epochs=5, verbose=0)
    loss, acc = model.evaluate(x_test, y_test, verbose=0)
    report = model.wafer_report()
    assert acc >= 0.93
    assert report.mode == "layer-pipelined" and "dense" in str(report)
    assert report.cycles_per_step > 0 and report.wafer_samples_per_s > 0


# -- determinism, weights, summary ------------------------------------------------------
def test_same_seed_same_weights_and_losses(digits):
    (x, y), _ = digits
    runs = []
    for _ in range(2):
        model = mlp(sparsity=0.5, seed=7)
        h = model.fit(x[:300], y[:300], epochs=2, verbose=0)
        runs.append((model.get_weights(), h.history["loss"]))
    for a, b in zip(runs[0][0], runs[1][0]):
        np.testing.assert_array_equal(a, b)
    assert runs[0][1] == runs[1][1]


def test_weights_in_keras_order_and_shapes():
    model = nn.Sequential([L.Dense(8, input_shape=(5,)), L.BatchNormalization(), L.Dense(3)])
    shapes = [w.shape for w in model.get_weights()]
    assert shapes == [(5, 8), (8,), (8,), (8,), (8,), (8,), (8, 3), (3,)]
    model.set_weights([np.full(s, 0.5) for s in shapes])
    assert all((w == 0.5).all() for w in model.get_weights())
    with pytest.raises(ValueError, match="weight arrays"):
        model.set_weights(model.get_weights()[:-1])
    lines = []
    model.summary(print_fn=lines.append)
    assert any("Total params: 107" in l for l in lines)     # 48 + 4 * 8 + 27, as Keras counts


def test_default_initialisers_are_keras_defaults():
    nn.utils.set_random_seed(0)
    layer = L.Dense(300)
    layer._build((None, 200))
    k, b = layer.get_weights()
    limit = np.sqrt(6 / (200 + 300))
    assert np.abs(k).max() <= limit and np.abs(k).max() > 0.95 * limit   # glorot_uniform
    assert not b.any()


# -- saving --------------------------------------------------------------------------
def test_save_and_load_roundtrip_with_sparse_layers(tmp_path, digits):
    (x, y), (xt, yt) = digits
    model = mlp(sparsity=0.8)
    model.fit(x[:200], y[:200], epochs=1, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = nn.load_model(path)
    np.testing.assert_allclose(loaded.predict(xt), model.predict(xt), rtol=1e-6)
    assert loaded.layers[0].pattern.nnz == model.layers[0].pattern.nnz
    assert loaded.evaluate(xt, yt, verbose=0) == pytest.approx(model.evaluate(xt, yt, verbose=0))
    loaded.fit(x[:64], y[:64], epochs=1, verbose=0)      # compiled again from the file


def test_load_rejects_files_that_are_not_models(tmp_path):
    path = tmp_path / "junk.keras"
    path.write_bytes(b"not a zip")
    with pytest.raises(Exception):
        nn.load_model(path)


# -- callbacks -----------------------------------------------------------------------
def test_history_validation_and_callbacks(tmp_path, digits):
    (x, y), _ = digits
    events = []

    class Recorder(nn.callbacks.Callback):
        def on_train_begin(self, logs=None): events.append("train_begin")
        def on_epoch_begin(self, epoch, logs=None): events.append(f"epoch_begin {epoch}")
        def on_train_batch_end(self, batch, logs=None): events.append("batch")
        def on_epoch_end(self, epoch, logs=None): events.append(f"epoch_end {epoch}")
        def on_train_end(self, logs=None): events.append("train_end")

    log = tmp_path / "log.csv"
    ckpt = tmp_path / "best.keras"
    model = mlp()
    sched = nn.callbacks.LearningRateScheduler(lambda e, lr: 0.01 * 0.5 ** e)
    h = model.fit(x[:256], y[:256], epochs=3, batch_size=64, validation_split=0.25, verbose=0,
                  callbacks=[Recorder(), nn.callbacks.CSVLogger(log), sched,
                             nn.callbacks.ModelCheckpoint(ckpt, save_best_only=True)])
    assert set(h.history) >= {"loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"}
    assert h.history["learning_rate"] == [0.01, 0.005, 0.0025]
    assert events[0] == "train_begin" and events[-1] == "train_end"
    assert events.count("batch") == 3 * 3                   # 192 samples / 64
    rows = list(csv.DictReader(open(log)))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2] and "val_loss" in rows[0]
    assert ckpt.exists() and nn.load_model(ckpt).predict(x[:2]).shape == (2, 10)


def test_early_stopping_restores_best_weights(digits):
    (x, y), _ = digits
    model = mlp()
    stop = nn.callbacks.EarlyStopping(monitor="loss", patience=0, mode="max",
                                      restore_best_weights=True)
    h = model.fit(x[:128], y[:128], epochs=10, verbose=0, callbacks=[stop])
    assert len(h.history["loss"]) == 2      # the loss fell, which 'max' counts as no progress


# -- optimizers against independent references -------------------------------------------
def _manual_mlp_sgd(W1, b1, W2, b2, x, y, lr, steps):
    """Plain-NumPy MLP (relu, softmax, mean cross-entropy) trained by SGD: the reference."""
    W1, b1, W2, b2 = (a.astype(np.float64).copy() for a in (W1, b1, W2, b2))
    for _ in range(steps):
        h = np.maximum(x @ W1 + b1, 0)
        z = h @ W2 + b2
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        dz = p.copy()
        dz[np.arange(len(y)), y] -= 1
        dz /= len(y)
        dW2, db2 = h.T @ dz, dz.sum(0)
        dh = dz @ W2.T * (h > 0)
        dW1, db1 = x.T @ dh, dh.sum(0)
        W1 -= lr * dW1
        b1 -= lr * db1
        W2 -= lr * dW2
        b2 -= lr * db2
    return [W1, b1, W2, b2]


def test_ten_sgd_steps_match_an_independent_reference(digits):
    (x, y), _ = digits
    x, y = x[:64].astype(np.float64), y[:64]
    model = nn.Sequential([L.Dense(32, activation="relu", input_shape=(64,), dtype="float64"),
                           L.Dense(10, activation="softmax", dtype="float64")])
    model.compile(optimizer=nn.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    start = model.get_weights()
    for _ in range(10):
        model.train_on_batch(x, y)
    expected = _manual_mlp_sgd(*start, x, y, 0.1, 10)
    for got, ref in zip(model.get_weights(), expected):
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-8)


def test_ten_sgd_steps_match_pytorch(digits):
    torch = pytest.importorskip("torch")
    (x, y), _ = digits
    x, y = x[:64].astype(np.float32), y[:64]
    nn.utils.set_random_seed(0)
    model = nn.Sequential([L.Dense(32, activation="relu", input_shape=(64,)),
                           L.Dense(10, activation="softmax")])
    model.compile(optimizer=nn.optimizers.SGD(0.1, momentum=0.9),
                  loss="sparse_categorical_crossentropy")
    W1, b1, W2, b2 = model.get_weights()
    tm = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    with torch.no_grad():
        tm[0].weight.copy_(torch.from_numpy(W1.T))
        tm[0].bias.copy_(torch.from_numpy(b1))
        tm[2].weight.copy_(torch.from_numpy(W2.T))
        tm[2].bias.copy_(torch.from_numpy(b2))
    opt = torch.optim.SGD(tm.parameters(), lr=0.1, momentum=0.9)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(10):
        model.train_on_batch(x, y)
        opt.zero_grad()
        torch.nn.functional.cross_entropy(tm(xt), yt).backward()
        opt.step()
    ours = model.get_weights()
    theirs = [tm[0].weight.detach().numpy().T, tm[0].bias.detach().numpy(),
              tm[2].weight.detach().numpy().T, tm[2].bias.detach().numpy()]
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_adam_first_step_is_lr_times_sign():
    w = nn.tensor.Tensor(np.array([1.0, -2.0, 3.0]), requires_grad=True)
    w.grad = np.array([0.5, -0.1, 2.0])
    nn.optimizers.Adam(0.01).apply_gradients([w])
    np.testing.assert_allclose(w.data, [0.99, -1.99, 2.99], atol=1e-6)


def test_schedules():
    cos = nn.optimizers.CosineDecay(0.0, 100, warmup_target=1e-3, warmup_steps=10)
    assert cos(0) == 0 and cos(5) == pytest.approx(5e-4) and cos(10) == pytest.approx(1e-3)
    assert cos(110) == pytest.approx(0.0, abs=1e-12)
    assert nn.optimizers.ExponentialDecay(1.0, 10, 0.5)(20) == pytest.approx(0.25)


def test_pruning_schedule_is_zhu_and_gupta():
    from wsekern.nn.pruning import cubic_sparsity
    for t in (0, 100, 250, 500, 700):
        expected = 0.9 + (0.0 - 0.9) * (1 - min(t, 500) / 500) ** 3
        assert cubic_sparsity(t, 0.0, 0.9, 0, 5, 100) == pytest.approx(expected)


def test_gradual_pruning_reaches_the_final_sparsity(digits):
    (x, y), _ = digits
    model = mlp()
    pruning = nn.callbacks.GradualPruning(0.9, begin_step=0, pruning_steps=4, frequency=5)
    model.fit(x[:672], y[:672], epochs=1, batch_size=32, verbose=0, callbacks=[pruning])  # 21 steps
    assert pruning.history[-1] == (20, pytest.approx(0.9))
    for layer in model.layers:
        assert np.mean(layer.get_weights()[0] == 0) == pytest.approx(0.9, abs=2e-3)


# -- bad input ---------------------------------------------------------------------------
def test_bad_input_gets_clear_errors(digits):
    (x, y), _ = digits
    model = mlp()
    with pytest.raises(ValueError, match=r"expects inputs of shape"):
        model.fit(x[:, :10], y, verbose=0)
    with pytest.raises(ValueError, match=r"labels must be in \[0, 10\)"):
        model.fit(x[:32], np.full(32, 12), verbose=0)
    bad = x[:32].copy()
    bad[3, 4] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        model.fit(bad, y[:32], verbose=0)
    with pytest.raises(ValueError, match="unknown loss"):
        model.compile(optimizer="adam", loss="hinge_of_doom")
    with pytest.raises(ValueError, match="unknown optimizer"):
        model.compile(optimizer="adamax_prime", loss="mse")
    with pytest.raises(ValueError, match="samples"):
        model.fit(x[:32], y[:31], verbose=0)
    with pytest.raises(TypeError, match="unexpected keyword"):
        L.Dense(3, unitz=4)
    with pytest.raises(ValueError, match="sparsity"):
        L.Dense(3, sparsity=1.5)


def test_model_that_cannot_fit_even_when_streaming():
    cfg = wk.WaferConfig.small(1, 1)
    with wk.WaferStrategy(cfg).scope():
        with pytest.raises(wk.SramOverflowError, match="weight streaming"):
            nn.Sequential([L.Dense(10, input_shape=(100_000,))])


# -- train_on_batch walks the layers once a step, and afresh every step --------------------
def test_train_on_batch_sees_what_changed_since_the_last_step():
    """The weights and losses are found once per train_on_batch step (not kept from one
    step to the next): freezing a layer, a new regulariser or a new sub-layer between
    steps counts from the next step; the kept walk is gone after each step, even one that
    raised."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 3)).astype(np.float32)
    y = rng.standard_normal((16, 2)).astype(np.float32)
    nn.utils.set_random_seed(0)
    model = nn.Sequential([L.Dense(4, input_shape=(3,)), L.Dense(2)])
    model.compile(optimizer=nn.optimizers.SGD(0.1), loss="mse")
    first, second = model.layers
    model.train_on_batch(x, y)
    assert model._fit_cache is None
    first.trainable = False
    before = [w.copy() for w in first.get_weights()], [w.copy() for w in second.get_weights()]
    model.train_on_batch(x, y)
    assert all(np.array_equal(a, b) for a, b in zip(before[0], first.get_weights()))
    assert not all(np.array_equal(a, b) for a, b in zip(before[1], second.get_weights()))
    first.trainable = True
    kept = [w.copy() for w in first.get_weights()]
    model.train_on_batch(x, y)
    assert not all(np.array_equal(a, b) for a, b in zip(kept, first.get_weights()))
    # a regulariser added between steps is in the next step's loss
    loss_now = model.test_on_batch(x, y, return_dict=True)["loss"]
    second.kernel.regularizer = lambda w: (w * w).sum() * 100.0
    with_reg = model.train_on_batch(x, y, return_dict=True)["loss"]
    assert with_reg > loss_now + 1.0
    # a step that raises leaves no walk behind
    model.train_step = lambda data: (_ for _ in ()).throw(RuntimeError("boom"))
    with pytest.raises(RuntimeError, match="boom"):
        model.train_on_batch(x, y)
    assert model._fit_cache is None


class _Scaled(L.Layer):
    """x * w with an L2-regularised w, and an added activity loss."""

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1],), initializer="ones",
                                 regularizer=nn.regularizers.L2(0.05))

    def call(self, x, training=False):
        self.add_loss((x * x).mean() * 0.01)
        return x * self.w


def test_train_on_batch_equals_the_step_written_out_with_its_walks():
    """train_on_batch (one walk a step) against the step written out by hand, where every
    use walks the layers again (``losses``, ``trainable_weights``): the same weights, bit
    for bit, with a regulariser, an added loss and a frozen layer."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((24, 6)).astype(np.float32)
    y = rng.integers(0, 3, 24)

    def model():
        nn.utils.set_random_seed(0)
        m = nn.Sequential([nn.Input(shape=(6,)), L.Dense(5, activation="relu"), _Scaled(),
                           L.Dense(4, activation="relu"), L.Dense(3, activation="softmax")])
        m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        m.layers[2].trainable = False
        return m

    stepped, by_hand = model(), model()
    for s in range(0, 24, 8):
        stepped.train_on_batch(x[s:s + 8], y[s:s + 8])
        xb, yb = x[s:s + 8], y[s:s + 8]
        pred = by_hand(xb, training=True)
        loss = by_hand.compute_loss(x=xb, y=yb, y_pred=pred)
        for w in by_hand.trainable_weights:
            w.grad = None
        loss.backward()
        by_hand.optimizer.apply_gradients(by_hand.trainable_weights)
    for a, b in zip(stepped.get_weights(), by_hand.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(stepped.get_weights()[0], model().get_weights()[0])
    np.testing.assert_array_equal(stepped.layers[2].get_weights()[0],
                                  model().layers[2].get_weights()[0])
