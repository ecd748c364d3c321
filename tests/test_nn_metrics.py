"""wsekern.nn.metrics against scikit-learn, closed forms, and Keras where installed."""
import numpy as np
import pytest
from test_nn_ops import keras_or_none

from wsekern.nn import metrics as M
from wsekern.nn import ops

# the [test] extra installs scikit-learn; a bare environment (the aarch64 chroot) skips
skm = pytest.importorskip("sklearn.metrics")

rng = np.random.default_rng(0)
N, C = 64, 5
LOGITS = rng.standard_normal((N, C))
PROBS = np.exp(LOGITS) / np.exp(LOGITS).sum(-1, keepdims=True)
LABELS = rng.integers(0, C, N)
ONEHOT = np.eye(C)[LABELS]
YB = rng.integers(0, 2, N).astype(np.float32)
PB = np.clip(YB * 0.3 + rng.uniform(0, 0.7, N), 0, 1)
SW = rng.uniform(0, 2, N)


def stream(metric, *arrays, sample_weight=None, batches=(20, 30, 64)):
    """Feed in uneven batches, as fit() does; the result must not depend on the split."""
    lo = 0
    for hi in batches:
        sw = None if sample_weight is None else sample_weight[lo:hi]
        metric.update_state(*[a[lo:hi] for a in arrays], sample_weight=sw)
        lo = hi
    return float(metric.result())


def test_accuracies_against_sklearn_with_weights():
    pred = PROBS.argmax(-1)
    for sw in (None, SW):
        expect = skm.accuracy_score(LABELS, pred, sample_weight=sw)
        assert stream(M.SparseCategoricalAccuracy(), LABELS, PROBS, sample_weight=sw) == \
            pytest.approx(expect)
        assert stream(M.SparseCategoricalAccuracy(), LABELS[:, None], PROBS,
                      sample_weight=sw) == pytest.approx(expect)
        assert stream(M.CategoricalAccuracy(), ONEHOT, PROBS, sample_weight=sw) == \
            pytest.approx(expect)
        assert stream(M.Accuracy(), LABELS, pred, sample_weight=sw) == pytest.approx(expect)
        assert stream(M.BinaryAccuracy(), YB, PB, sample_weight=sw) == pytest.approx(
            skm.accuracy_score(YB, PB > 0.5, sample_weight=sw))
    assert stream(M.BinaryAccuracy(threshold=0.8), YB, PB) == pytest.approx(
        np.mean(YB == (PB > 0.8)))


@pytest.mark.parametrize("k", [1, 2, 3])
def test_top_k_against_sklearn(k):
    expect = skm.top_k_accuracy_score(LABELS, PROBS, k=k, labels=range(C))
    assert stream(M.SparseTopKCategoricalAccuracy(k=k), LABELS, PROBS) == pytest.approx(expect)
    assert stream(M.TopKCategoricalAccuracy(k=k), ONEHOT, PROBS) == pytest.approx(expect)


def test_regression_metrics_against_sklearn():
    yt, yp = rng.standard_normal((N, 3)), rng.standard_normal((N, 3))
    assert stream(M.MeanSquaredError(), yt, yp) == pytest.approx(skm.mean_squared_error(yt, yp))
    assert stream(M.MeanAbsoluteError(), yt, yp) == pytest.approx(
        skm.mean_absolute_error(yt, yp))
    assert stream(M.RootMeanSquaredError(), yt, yp) == pytest.approx(
        np.sqrt(skm.mean_squared_error(yt, yp)))
    per = ((yt - yp) ** 2).mean(-1)
    assert stream(M.MeanSquaredError(), yt, yp, sample_weight=SW) == pytest.approx(
        (per * SW).sum() / SW.sum())
    yt_pos = np.abs(yt) + 0.5
    assert stream(M.MeanAbsolutePercentageError(), yt_pos, yp) == pytest.approx(
        100 * skm.mean_absolute_percentage_error(yt_pos, yp))


@pytest.mark.parametrize("sw", [None, SW], ids=["unweighted", "weighted"])
def test_precision_recall_against_sklearn(sw):
    assert stream(M.Precision(), YB, PB, sample_weight=sw) == pytest.approx(
        skm.precision_score(YB, PB > 0.5, sample_weight=sw))
    assert stream(M.Recall(), YB, PB, sample_weight=sw) == pytest.approx(
        skm.recall_score(YB, PB > 0.5, sample_weight=sw))
    p = M.Precision(thresholds=[0.3, 0.7])
    got = p(YB, PB).data
    np.testing.assert_allclose(got, [skm.precision_score(YB, PB > t) for t in (0.3, 0.7)])


def test_precision_class_id_and_top_k():
    got = float(M.Precision(class_id=2)(ONEHOT, PROBS).data)
    assert got == pytest.approx(skm.precision_score(ONEHOT[:, 2], PROBS[:, 2] > 0.5,
                                                    zero_division=0))
    top1 = float(M.Precision(top_k=1)(ONEHOT, PROBS).data)
    assert top1 == pytest.approx(np.mean(PROBS.argmax(-1) == LABELS))


def test_auc_roc_close_to_exact_and_pr():
    yt = rng.integers(0, 2, 2000)
    ys = np.clip(yt * 0.25 + rng.uniform(0, 0.75, 2000), 0, 1)
    exact = skm.roc_auc_score(yt, ys)
    got = float(M.AUC()(yt, ys).data)
    assert got == pytest.approx(exact, abs=2e-3)    # 200 thresholds: a discretised curve
    fine = float(M.AUC(num_thresholds=5000)(yt, ys).data)
    assert fine == pytest.approx(exact, abs=2e-4)
    pr = float(M.AUC(curve="PR", num_thresholds=2000)(yt, ys).data)
    assert pr == pytest.approx(skm.average_precision_score(yt, ys), abs=1e-2)
    assert float(M.AUC(from_logits=True)(yt, np.log(ys + 1e-9) - np.log1p(-ys + 1e-9))
                 .data) == pytest.approx(got, abs=2e-3)


def test_auc_multi_label_is_the_mean_over_labels():
    yt = rng.integers(0, 2, (500, 3))
    ys = np.clip(yt * 0.3 + rng.uniform(0, 0.7, (500, 3)), 0, 1)
    got = float(M.AUC(multi_label=True, num_thresholds=4000)(yt, ys).data)
    assert got == pytest.approx(np.mean([skm.roc_auc_score(yt[:, j], ys[:, j])
                                         for j in range(3)]), abs=1e-3)


def test_auc_on_non_probabilities_warns_and_computes_keras_value():
    # Keras 3 takes logits given to AUC() (a from_logits loss beside it): its evenly spaced
    # thresholds clip the predictions to [0, 1] first (was a ValueError here, s21). Ties
    # count a half: 3 and 1.5 both clip to 1 -> (1 + 0.5 + 1 + 0) / 4.
    y, logits = np.array([0, 1, 1, 0]), np.array([-2.0, 3.0, 0.5, 1.5])
    with pytest.warns(UserWarning, match=r"outside \[0, 1\].*from_logits=True"):
        got = float(M.AUC(num_thresholds=2001)(y, logits).data)
    assert got == pytest.approx(0.625)
    assert got == pytest.approx(float(M.AUC(num_thresholds=2001)(y, np.clip(logits, 0, 1))
                                      .data))


def test_mean_sum_reset_and_call():
    m = M.Mean()
    m.update_state([1.0, 2.0, 3.0])
    m.update_state([[10.0, 20.0]], sample_weight=[2.0])
    assert float(m.result()) == pytest.approx((6 + 2 * 15) / 5)
    m.reset_state()
    assert float(m.result()) == 0.0 and float(m(np.array([4.0]))) == 4.0
    s = M.Sum()
    s.update_state([1.0, 2.0], sample_weight=[1.0, 3.0])
    assert float(s.result()) == 7.0


def test_get_names_aliases_and_functions():
    for name, cls in [("accuracy", M.Accuracy), ("acc", M.Accuracy), ("mae", M.MeanAbsoluteError),
                      ("mse", M.MeanSquaredError), ("auc", M.AUC),
                      ("sparse_categorical_accuracy", M.SparseCategoricalAccuracy),
                      ("AUC", M.AUC), ("precision", M.Precision)]:
        m = M.get(name)
        assert isinstance(m, cls)
    assert M.get("acc").name == "acc"       # Keras logs the name as written
    assert M.get(M.Recall).name == "recall"

    def tiny(y_true, y_pred):
        return ops.abs(y_true - y_pred)
    w = M.get(tiny)
    assert isinstance(w, M.MeanMetricWrapper) and w.name == "tiny"
    assert float(w(np.array([1.0, 3.0]), np.array([0.0, 0.0]))) == 2.0
    with pytest.raises(ValueError, match="unknown metric 'acuracy'"):
        M.get("acuracy")


def test_custom_subclass_from_the_keras_guide():
    # keras.io "Training & evaluation with built-in methods", verbatim but for imports
    class CategoricalTruePositives(M.Metric):
        def __init__(self, name="categorical_true_positives", **kwargs):
            super().__init__(name=name, **kwargs)
            self.true_positives = self.add_variable(shape=(), name="ctp", initializer="zeros")

        def update_state(self, y_true, y_pred, sample_weight=None):
            y_pred = ops.reshape(ops.argmax(y_pred, axis=1), (-1, 1))
            values = ops.cast(y_true, "int32") == ops.cast(y_pred, "int32")
            values = ops.cast(values, "float32")
            if sample_weight is not None:
                sample_weight = ops.cast(sample_weight, "float32")
                values = ops.multiply(values, sample_weight)
            self.true_positives.assign_add(ops.sum(values))

        def result(self):
            return self.true_positives

        def reset_state(self):
            self.true_positives.assign(0)
    m = CategoricalTruePositives()
    m.update_state(LABELS[:, None], PROBS)
    assert float(m.result()) == float(np.sum(PROBS.argmax(-1) == LABELS))
    m.reset_state()
    assert float(m.result()) == 0.0


def test_config_round_trip():
    for m in (M.AUC(num_thresholds=50, curve="PR"), M.Precision(thresholds=0.3),
              M.SparseTopKCategoricalAccuracy(k=3, name="top3"), M.BinaryAccuracy(threshold=0.7)):
        back = M.deserialize(M.serialize(m))
        assert type(back) is type(m) and back.get_config() == m.get_config()


keras = keras_or_none()


@pytest.mark.skipif(keras is None, reason="keras with the torch backend is not installed")
@pytest.mark.parametrize("name,yt,yp", [
    ("AUC", YB, PB), ("Precision", YB, PB), ("Recall", YB, PB),
    ("SparseCategoricalAccuracy", LABELS, PROBS), ("CategoricalAccuracy", ONEHOT, PROBS),
    ("SparseTopKCategoricalAccuracy", LABELS, PROBS), ("BinaryAccuracy", YB, PB),
    ("RootMeanSquaredError", PROBS, ONEHOT), ("MeanAbsoluteError", PROBS, ONEHOT),
])
def test_against_keras(name, yt, yp):
    ours, theirs = getattr(M, name)(), getattr(keras.metrics, name)()
    for lo, hi in ((0, 20), (20, 64)):
        ours.update_state(yt[lo:hi], yp[lo:hi], sample_weight=SW[lo:hi])
        theirs.update_state(yt[lo:hi].astype(np.float32), yp[lo:hi].astype(np.float32),
                            sample_weight=SW[lo:hi].astype(np.float32))
    assert float(ours.result()) == pytest.approx(
        float(keras.ops.convert_to_numpy(theirs.result())), rel=1e-5, abs=1e-6)
