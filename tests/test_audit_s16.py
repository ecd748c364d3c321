"""s16 audit: what a new user ran into (a Keras user, a SciPy user, an architecture
researcher). Each test failed on main 9513798 unless it says otherwise."""
import numpy as np
import pytest
from conftest import keras_twins

from wsekern import nn


def _twin_models(keras, build, x, y, loss, metrics, **fit):
    """The same model in Keras and in wsekern.nn, from Keras's initial weights; both
    evaluated and fitted for two epochs with plain SGD. Returns (keras logs, our logs)."""
    def run(K, model):
        model.compile(optimizer=K.optimizers.SGD(0.1), loss=loss(K) if callable(loss) else loss,
                      metrics=metrics)
        logs = model.evaluate(x, y, verbose=0, return_dict=True)
        history = model.fit(x, y, epochs=2, batch_size=len(x), shuffle=False, verbose=0,
                            **fit).history
        return logs, history

    return keras_twins(keras, build, run)


def _assert_same_logs(theirs, ours):
    (k_logs, k_hist), (w_logs, w_hist) = theirs, ours
    assert sorted(w_logs) == sorted(k_logs) and sorted(w_hist) == sorted(k_hist)
    for key in k_logs:
        np.testing.assert_allclose(w_logs[key], float(k_logs[key]), rtol=1e-4, atol=1e-6,
                                   err_msg=key)
    for key in k_hist:                  # val_* too
        np.testing.assert_allclose(w_hist[key], k_hist[key], rtol=1e-3, atol=1e-5,
                                   err_msg=key)


def _mlp(units, activation):
    return lambda K: K.Sequential([K.Input((10,)), K.layers.Dense(8, activation="relu"),
                                   K.layers.Dense(units, activation=activation)])


RNG = np.random.default_rng(0)
X = RNG.standard_normal((32, 10)).astype(np.float32)
LABELS = RNG.integers(0, 3, 32)
BINARY = (RNG.random((32, 1)) > 0.5).astype(np.float32)


# 'accuracy' was chosen by the compiled loss (CE -> the matching accuracy, anything else ->
# sparse categorical): an MSE or hinge model with one output column got argmax over that
# column (always 0), so its "accuracy" was the share of 0 labels; one-hot targets under a KL
# or MSE loss failed to broadcast. Keras 3 decides by the shapes.
@pytest.mark.parametrize("build,y,loss", [
    (_mlp(1, "sigmoid"), BINARY, "mse"),                          # silently wrong
    (_mlp(1, "tanh"), BINARY * 2 - 1, "hinge"),                   # silently wrong: 0
    (_mlp(3, "softmax"), np.eye(3)[LABELS], "kl_divergence"),     # crashed
    (_mlp(3, "softmax"), np.eye(3)[LABELS], "mse"),               # crashed
    (_mlp(3, "softmax"), LABELS, "sparse_categorical_crossentropy"),   # as before
    (_mlp(3, "softmax"), LABELS[:, None], "sparse_categorical_crossentropy"),
    (_mlp(1, "sigmoid"), BINARY, "binary_crossentropy"),
], ids=["mse-sigmoid", "hinge-tanh", "kld-onehot", "mse-onehot", "scce", "scce-column",
        "bce"])
def test_accuracy_follows_the_shapes_as_in_keras(build, y, loss, keras):
    theirs, ours = _twin_models(keras, build, X, y, loss, ["accuracy"])
    _assert_same_logs(theirs, ours)


def test_ignore_class_averages_over_the_labels_kept(keras):
    # the ignored labels' zeros were counted in the mean (1.208 where Keras gives 1.812)
    rng = np.random.default_rng(0)
    labels = np.array([0, 1, 2, 1, 0, 2])
    logits = rng.standard_normal((6, 3)).astype(np.float32)
    weights = np.array([1, 2, 3, 1, 1, 0.5], np.float32)
    for reduction in ("sum_over_batch_size", "sum", "none"):
        for sw in (None, weights):
            theirs = keras.losses.SparseCategoricalCrossentropy(
                from_logits=True, ignore_class=1, reduction=reduction)(labels, logits,
                                                                       sample_weight=sw)
            ours = nn.losses.SparseCategoricalCrossentropy(
                from_logits=True, ignore_class=1, reduction=reduction)(labels, logits,
                                                                       sample_weight=sw)
            np.testing.assert_allclose(ours.data, keras.ops.convert_to_numpy(theirs),
                                       rtol=1e-6)
    # in fit: the loss and the weights after two steps
    theirs, ours = _twin_models(
        keras, _mlp(3, None), X, LABELS,
        lambda K: K.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=1),
        ["accuracy"])
    _assert_same_logs(theirs, ours)


def test_ignore_class_gradient_is_that_of_the_mean_over_the_labels_kept():
    # finite differences of the reduced loss (the mean over 4 kept labels of 6)
    rng = np.random.default_rng(1)
    labels = np.array([0, 1, 2, 1, 0, 2])
    z = rng.standard_normal((6, 3))
    loss = nn.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=1)
    t = nn.Variable(z.copy())
    value = loss(labels, t)
    value.backward()
    eps = 1e-6
    numeric = np.zeros_like(z)
    for i in np.ndindex(z.shape):
        up, down = z.copy(), z.copy()
        up[i] += eps
        down[i] -= eps
        numeric[i] = (float(loss(labels, up).data) - float(loss(labels, down).data)) / (2 * eps)
    np.testing.assert_allclose(t.grad, numeric, atol=1e-7)
    assert np.all(t.grad[[1, 3]] == 0)


def test_train_and_test_on_batch_return_what_keras_returns(keras):
    # they returned the logs dict whatever return_dict said: `loss, acc =
    # model.train_on_batch(x, y)` unpacked the key names, `float(model.train_on_batch(...))`
    # failed
    weights = {}
    results = []
    for K in (keras, nn):
        got = []
        for metrics in (["accuracy"], None):      # a fresh model each (Keras keeps a
            keras.utils.set_random_seed(0)        # recompiled model's old metrics)
            model = _mlp(3, "softmax")(K)
            key = metrics is None
            if key in weights:
                model.set_weights(weights[key])
            weights[key] = model.get_weights()
            model.compile(optimizer=K.optimizers.SGD(0.1),
                          loss="sparse_categorical_crossentropy", metrics=metrics)
            got.append(model.train_on_batch(X, LABELS))
            got.append(model.test_on_batch(X, LABELS))
            got.append(model.train_on_batch(X, LABELS, return_dict=True))
        results.append(got)
    theirs, ours = results
    for k, w in zip(theirs, ours):
        assert type(w) is type(k), (k, w)
        if isinstance(k, dict):
            assert sorted(w) == sorted(k)
            k, w = [k[n] for n in sorted(k)], [w[n] for n in sorted(k)]
        np.testing.assert_allclose(w, np.asarray(k, dtype=np.float64), rtol=1e-5)


def test_metric_names_given_as_class_names_are_logged_as_given(keras):
    # metrics=["AUC"] logged "auc" ("val_AUC" monitored by a callback never came); Keras's
    # aliases "MSE", "MAE", "bce", "log_cosh_error" were unknown
    names = ["AUC", "Precision", "RootMeanSquaredError", "MSE", "MAE", "MAPE", "MSLE", "bce",
             "BCE", "log_cosh_error"]
    ours = [nn.metrics.get(n).name for n in names]
    theirs = [keras.metrics.get(n) for n in names]
    assert ours == names
    # the same kind of metric as Keras's (a class, or the function a class wraps)
    kinds = {"MSE": "MeanSquaredError", "MAE": "MeanAbsoluteError",
             "MAPE": "MeanAbsolutePercentageError", "MSLE": "MeanSquaredLogarithmicError",
             "bce": "BinaryCrossentropy", "BCE": "BinaryCrossentropy",
             "log_cosh_error": "LogCoshError"}
    for n, t in zip(names, theirs):
        assert type(nn.metrics.get(n)).__name__ == kinds.get(n, getattr(t, "__name__", n))
    rng = np.random.default_rng(0)
    t = (rng.random((8, 2)) * 0.9 + 0.05).astype(np.float32)     # in (0, 1): BCE's range
    p = (rng.random((8, 2)) * 0.9 + 0.05).astype(np.float32)
    for n in kinds:
        m = nn.metrics.get(n)
        m.update_state(t, p)
        ref = getattr(keras.metrics, kinds[n])()
        ref.update_state(t, p)
        np.testing.assert_allclose(float(m.result()),
                                   float(keras.ops.convert_to_numpy(ref.result())), rtol=1e-5)


def test_masked_sequence_metrics_count_the_real_steps_only(keras):
    # the loss skipped the padded steps but the accuracy and MAE counted them
    tokens = RNG.integers(1, 20, (32, 6))
    tokens[:, 4:] = 0
    tokens[::3, 2:] = 0

    def classify(K):
        i = K.Input((6,), dtype="int32")
        e = K.layers.Embedding(20, 8, mask_zero=True)(i)
        return K.Model(i, K.layers.Dense(3, activation="softmax")(e))

    def regress(K):
        i = K.Input((6,), dtype="int32")
        e = K.layers.Embedding(20, 8, mask_zero=True)(i)
        return K.Model(i, K.layers.Dense(2)(e))

    theirs, ours = _twin_models(keras, classify, tokens, RNG.integers(0, 3, (32, 6)),
                                "sparse_categorical_crossentropy", ["accuracy"])
    _assert_same_logs(theirs, ours)
    theirs, ours = _twin_models(keras, regress, tokens,
                                RNG.standard_normal((32, 6, 2)).astype(np.float32), "mse",
                                ["mae", "mse"])
    _assert_same_logs(theirs, ours)


def test_masked_metrics_take_per_sample_weights_over_the_steps():
    # (Keras itself fails to broadcast (n,) weights against an (n, T) mask: checked by hand)
    from wsekern.nn.models import compile_utils as cu
    mask = np.array([[1, 1, 0], [1, 0, 0]], bool)
    w = cu.masked_weights(mask, np.array([2.0, 3.0]))
    np.testing.assert_array_equal(w, [[2, 2, 0], [3, 0, 0]])
    m = nn.metrics.MeanAbsoluteError()
    m.update_state(np.zeros((2, 3, 1)), np.array([[[1.], [2.], [100.]], [[4.], [100.], [9.]]]),
                   sample_weight=w)
    assert float(m.result()) == pytest.approx((2 * 1 + 2 * 2 + 3 * 4) / 7)


@pytest.mark.parametrize("shape,region", [((128, 128, 128), (8, 8)), ((64, 96, 32), (4, 6)),
                                          ((40, 40, 40), (5, 1)), ((16, 16, 16), (1, 4))])
def test_summa_counts_every_broadcast_once_per_link(shape, region):
    # SUMMA reported the wavelets of one row's and one column's broadcasts per step
    # (2,048 sent and 100,352 wavelet-hops on 8 x 8: 49 hops per wavelet on rows of 8 PEs),
    # and put (C-1)/C of a broadcast on each link. Reference: every step k, the PE in
    # column k mod C of each row broadcasts its A tile along the row (a chain from the root
    # both ways: each link once), the PE in row k mod R of each column its B tile.
    import math

    import wsekern
    M, K, N = shape
    R, C = region
    rng = np.random.default_rng(0)
    A = rng.random((M, K)).astype(np.float32)
    B = rng.random((K, N)).astype(np.float32)
    wafer = wsekern.Wafer(wsekern.WaferConfig.wse2())
    _, report = wafer.matmul(A, B, region=region, mapping="summa", compute=False)
    assert report.mapping == "summa"
    # (s18: a short last tile sends what it holds: 64x96 @ 96x32 on 4 x 6 has tiles 6
    # columns wide, the last column 2; each PE row and column here holds a tile)
    steps = max(R, C)
    vpw = wafer.config.values_per_dense_wavelet
    Mt, Nt = math.ceil(M / R), math.ceil(N / C)
    a_wav = [math.ceil(min(Mt, M - r * Mt) * math.ceil(K / steps) / vpw) for r in range(R)]
    b_wav = [math.ceil(math.ceil(K / steps) * min(Nt, N - c * Nt) / vpw) for c in range(C)]
    links = np.zeros((R, C, 4))            # N, E, S, W
    sent = 0
    for k in range(steps):
        s = k % C
        for r in range(R):
            sent += a_wav[r] if C > 1 else 0
            for c in range(C):
                if c >= s and c < C - 1:
                    links[r, c, 1] += a_wav[r]
                if c <= s and c > 0:
                    links[r, c, 3] += a_wav[r]
        t = k % R
        for c in range(C):
            sent += b_wav[c] if R > 1 else 0
            for r in range(R):
                if r >= t and r < R - 1:
                    links[r, c, 2] += b_wav[c]
                if r <= t and r > 0:
                    links[r, c, 0] += b_wav[c]
    r0, c0 = report.region[:2]
    np.testing.assert_array_equal(report.link_wavelets[r0:r0 + R, c0:c0 + C], links)
    assert report.wavelets_sent == sent
    assert report.wavelet_hops == links.sum() == steps * ((C - 1) * sum(a_wav)
                                                          + (R - 1) * sum(b_wav))


def test_validation_split_weighs_the_held_out_samples(keras):
    # val_loss ignored the sample weights of the held-out samples (1.249 for Keras's 0.512)
    sw = np.random.default_rng(3).random(32).astype(np.float32)
    theirs, ours = _twin_models(keras, _mlp(3, "softmax"), X, LABELS,
                                "sparse_categorical_crossentropy", ["accuracy"],
                                sample_weight=sw, validation_split=0.25)
    _assert_same_logs(theirs, ours)


def test_a_weighted_metric_named_as_an_unweighted_one_keeps_both(keras):
    # metrics=["accuracy"], weighted_metrics=["accuracy"] logged one "accuracy": the
    # weighted value, the unweighted one lost
    sw = np.random.default_rng(4).random(32).astype(np.float32)
    logs, weights = [], None
    for K in (keras, nn):
        keras.utils.set_random_seed(0)
        model = _mlp(3, "softmax")(K)
        if K is nn:
            model.set_weights(weights)
        else:
            weights = model.get_weights()
        model.compile(optimizer=K.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy",
                      metrics=["accuracy", "accuracy"],
                      weighted_metrics=["accuracy", "accuracy"])
        logs.append(model.evaluate(X, LABELS, sample_weight=sw, verbose=0, return_dict=True))
    theirs, ours = logs
    assert sorted(ours) == sorted(theirs)
    for key in theirs:
        np.testing.assert_allclose(ours[key], float(theirs[key]), rtol=1e-5, err_msg=key)
    assert ours["accuracy"] != ours["weighted_accuracy"]


def test_calibrate_help_prints_usage_without_fitting(capsys):
    # `python -m wsekern.wafer.calibrate --help` ran both fits (~seconds) and printed them;
    # an unknown option was ignored
    from wsekern.wafer import calibrate
    with pytest.raises(SystemExit) as info:
        calibrate.main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "usage: python -m wsekern.wafer.calibrate" in out and "fit on" not in out
    with pytest.raises(SystemExit) as info:
        calibrate.main(["--bogus"])
    assert info.value.code == 2 and "unrecognized arguments: --bogus" in capsys.readouterr().err


def _two_outputs(K):
    a = K.Input((10,), name="a")
    b = K.Input((4,), name="b")
    h = K.layers.concatenate([K.layers.Dense(5, activation="tanh", name="d1")(a), b])
    return K.Model([a, b], [K.layers.Dense(3, activation="softmax", name="o1")(h),
                            K.layers.Dense(1, name="o2")(h)])


@pytest.mark.parametrize("build,compiled", [
    (_two_outputs, dict(loss=["sparse_categorical_crossentropy", "mse"],
                        metrics=[["accuracy"], ["mae"]], weighted_metrics=[["accuracy"], []])),
    (_two_outputs, dict(loss={"o1": "sparse_categorical_crossentropy", "o2": "mse"},
                        metrics={"o2": ["mae", "mse"]})),
    (_mlp(3, "softmax"), dict(loss="sparse_categorical_crossentropy",
                              metrics=["sparse_categorical_crossentropy", "accuracy"])),
], ids=["two-lists", "two-dicts", "one"])
def test_evaluate_lists_its_values_in_keras_order(build, compiled, keras):
    # a two-output model's list was loss, o1_loss, o1_accuracy, o2_loss, ...; Keras gives
    # loss, o1_loss, o2_loss, then the prefixed metrics sorted
    rng = np.random.default_rng(5)
    two = build is _two_outputs
    x = [X[:8], rng.random((8, 4)).astype(np.float32)] if two else X[:8]
    y = [LABELS[:8], rng.random((8, 1)).astype(np.float32)] if two else LABELS[:8]
    sw = rng.random(8)
    got, weights = [], None
    for K in (keras, nn):
        keras.utils.set_random_seed(0)
        model = build(K)
        if K is nn:
            model.set_weights(weights)
        else:
            weights = model.get_weights()
        model.compile(optimizer="sgd", **compiled)
        got.append([model.evaluate(x, y, sample_weight=sw, verbose=0),
                    model.test_on_batch(x, y, sample_weight=sw)])
    theirs, ours = got
    for k, w in zip(theirs, ours):
        assert len(w) == len(k)
        np.testing.assert_allclose(w, np.asarray(k, dtype=np.float64), rtol=1e-5)
