"""Several models built in one WaferStrategy scope (a teacher and a student, a GAN's two
halves, an encoder and the classifier built on it): each has its own placement, steps and
report, counted in closed form (steps = batches taken), and a model's figures are those it
has alone in the scope, bit for bit, whatever the other model does between its steps."""
import numpy as np
import pytest
from test_strategy_deferred import _figures
from test_strategy_lazy import _same

import wsekern as wk
from wsekern import nn
from wsekern.nn import layers as L
from wsekern.nn import placed

SAMPLES, BATCH = 45, 8              # six steps an epoch: five batches of 8 and one of 5


def _teacher():
    return nn.Sequential([nn.Input((12,)), L.Dense(24, activation="relu", sparsity=0.7,
                                                   name="t1"),
                          L.Dense(10, activation="softmax", name="t2")], name="teacher")


def _student():
    return nn.Sequential([nn.Input((12,)), L.Dense(16, activation="relu", name="s1"),
                          L.Dense(10, activation="softmax", name="s2")], name="student")


def _data(seed):
    rng = np.random.default_rng(seed)
    return (rng.random((SAMPLES, 12)) - 0.3).astype(np.float32), rng.integers(0, 10, SAMPLES)


def _rows(model):
    return [r["layer"] for r in model.wafer_report().rows]


def _strategy(mode=None, K=16):
    return wk.WaferStrategy(wk.WaferConfig.small(16, 16), mode=mode, defer_steps=K)


def _built(strategy, builds):
    nn.utils.set_random_seed(0)          # the first model's weights whatever comes after
    with strategy.scope():
        models = [build() for build in builds]
    for m in models:
        m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return models


def _train(model, how, seed, epoch):
    x, y = _data(seed + epoch)
    if how == "fit":
        model.fit(x, y, batch_size=BATCH, shuffle=False, verbose=0)
    else:
        for i in range(0, SAMPLES, BATCH):
            model.train_on_batch(x[i:i + BATCH], y[i:i + BATCH])


class _StudentBetween(nn.callbacks.Callback):
    """A student's step after each of the teacher's, inside the teacher's fit."""

    def __init__(self, student, epoch):
        super().__init__()
        self.student, self.data = student, _data(2 + epoch)

    def on_train_batch_end(self, batch, logs=None):
        x, y = self.data
        self.student.train_on_batch(x[batch * BATCH:(batch + 1) * BATCH],
                                    y[batch * BATCH:(batch + 1) * BATCH])


def _in_turn(teacher, student, how, epoch):
    """An epoch of each: one after the other (fit, train_on_batch), or step by step, the
    student's steps taken inside the teacher's fit ("between")."""
    if how == "between":
        x, y = _data(1 + epoch)
        teacher.fit(x, y, batch_size=BATCH, shuffle=False, verbose=0,
                    callbacks=[_StudentBetween(student, epoch)])
        return
    _train(teacher, how, 1, epoch)
    _train(student, how, 2, epoch)


@pytest.mark.parametrize("how,mode", [("fit", None), ("train_on_batch", None),
                                      ("between", None), ("between", "weight-streaming")])
def test_two_models_each_cost_their_own_steps_as_alone(how, mode):
    """Teacher and student trained in turn, two epochs each: each report lists its own
    layers, each counts its own steps; the teacher's figures (every placement's totals,
    reports, cycles per step, the report) are those of the teacher alone, bit for bit,
    with the queue deferred (16) as with each step costed when taken (1)."""
    got = []
    for K in (1, 16):
        alone = _strategy(mode, K)
        (teacher_alone,) = _built(alone, [_teacher])
        pair = _strategy(mode, K)
        teacher, student = _built(pair, [_teacher, _student])
        for epoch in range(2):
            _train(teacher_alone, "train_on_batch" if how == "train_on_batch" else "fit",
                   1, epoch)
            _in_turn(teacher, student, how, epoch)
        assert pair.models == [teacher, student]
        assert _rows(teacher) == ["t1", "t2"] and _rows(student) == ["s1", "s2"]
        own = {m: pair.model_placement(m) for m in (teacher, student)}
        assert [own[m].steps for m in (teacher, student)] == [12, 12]
        assert [own[m].samples for m in (teacher, student)] == [2 * SAMPLES] * 2
        assert pair.steps == 24 and pair.samples == 4 * SAMPLES
        assert pair.cost_seconds == own[teacher].cost_seconds + own[student].cost_seconds
        assert len(own[student].step_cycles) == 12
        want = _figures(alone, teacher_alone)
        _same(_figures(own[teacher], teacher), want)
        got.append(want)
    _same(got[1], got[0])


def test_the_strategys_per_model_readers_name_the_models_when_there_are_several():
    strategy = _strategy()
    (teacher,) = _built(strategy, [_teacher])
    assert strategy.mode == "layer-pipelined"
    assert [p.layer.name for p in strategy.placements] == ["t1", "t2"]
    with strategy.scope():
        student = _student()        # held: a model the program drops is let go
    for name in ("mode", "placements", "step_cycles", "edges", "batch"):
        with pytest.raises(ValueError, match=rf"strategy\.{name} is one model's.* 2 models "
                                             r"\('teacher', 'student'\).*wafer_report"):
            getattr(strategy, name)
    assert strategy.steps == 0 and strategy.samples == 0
    assert strategy.models == [teacher, student]


def test_a_sequential_inside_a_functional_model_is_placed_once_with_it():
    """The encoder (a Sequential built in the scope) used as a layer of the classifier:
    one model, each layer placed once. Trained on its own later, the encoder is placed on
    its own then, and each model's steps stay its own."""
    strategy = _strategy()
    with strategy.scope():
        encoder = nn.Sequential([nn.Input((12,)), L.Dense(16, activation="relu", name="e1")],
                                name="encoder")
        inputs = nn.Input((12,))
        outputs = L.Dense(10, activation="softmax", name="head")(encoder(inputs))
        classifier = nn.Model(inputs, outputs, name="classifier")
    assert strategy.models == [classifier]
    assert [p.layer.name for p in strategy.placements] == ["e1", "head"]
    classifier.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    encoder.compile(optimizer="sgd", loss="mse")
    x, y = _data(3)
    classifier.fit(x, y, batch_size=BATCH, verbose=0)
    assert strategy.steps == 6 and _rows(classifier) == ["e1", "head"]
    e1 = classifier.get_layer("encoder").get_layer("e1")
    assert placed.placement_of(e1) is strategy.placements[0]
    assert _rows(encoder) == ["e1"]      # its placement alone, read without training it
    assert strategy.models == [classifier]
    assert placed.placement_of(e1) is strategy.placements[0]     # left as it was
    encoder.fit(x, np.ones((SAMPLES, 16), np.float32), batch_size=16, verbose=0)
    assert strategy.models == [classifier, encoder]
    own = {m: strategy.model_placement(m) for m in (classifier, encoder)}
    assert own[encoder].steps == 3 and own[encoder].samples == SAMPLES
    assert _rows(encoder) == ["e1"]
    classifier.fit(x, y, batch_size=BATCH, verbose=0)
    assert own[classifier].steps == 12 and own[encoder].steps == 3
    # every step costed each layer of its model, on that model's placement of it
    assert [p.costed_steps for p in own[classifier].placements] == [12, 12]
    assert [p.costed_steps for p in own[encoder].placements] == [3]
    assert own[classifier].model is classifier and own[encoder].model is encoder


def test_a_clone_sharing_the_layers_costs_its_own_steps():
    """clone_model(clone_function=lambda l: l) shares every layer with the original: a
    step of either is costed on that model's placement alone."""
    strategy = _strategy(K=1)
    with strategy.scope():
        nn.utils.set_random_seed(0)
        original = _teacher()
        fresh = nn.models.clone_model(original)
        shared = nn.models.clone_model(original, clone_function=lambda layer: layer)
    assert strategy.models == [original, fresh, shared]
    for m in strategy.models:
        m.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    x, y = _data(4)
    shared.fit(x, y, batch_size=BATCH, verbose=0)
    original.fit(x[:16], y[:16], batch_size=BATCH, verbose=0)
    steps = [strategy.model_placement(m).steps for m in strategy.models]
    assert steps == [2, 0, 6]
    assert [[p.costed_steps for p in strategy.model_placement(m).placements]
            for m in strategy.models] == [[2, 2], [0, 0], [6, 6]]
    assert all(_rows(m) == ["t1", "t2"] for m in strategy.models)


def test_a_distiller_costs_the_student_it_trains_and_leaves_the_teachers_steps():
    """keras.io's distillation: the teacher trained, then a Distiller holding the student
    and the teacher; the distiller's steps are its own, the teacher's stay as they were."""
    class Distiller(nn.Model):
        def __init__(self, student, teacher):
            super().__init__()
            self.student, self.teacher = student, teacher

        def call(self, x, training=False):
            return self.student(x, training=training)

        def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None,
                         training=True):
            soft = self.teacher(x, training=False)
            return (nn.losses.sparse_categorical_crossentropy(y, y_pred).mean()
                    + nn.losses.kl_divergence(soft, y_pred).mean())

    strategy = _strategy()
    teacher, student = _built(strategy, [_teacher, _student])
    x, y = _data(5)
    teacher.fit(x, y, batch_size=BATCH, verbose=0)
    with strategy.scope():
        distiller = Distiller(student, teacher)
    distiller.compile(optimizer="adam")
    distiller.fit(x, y, batch_size=BATCH, epochs=2, verbose=0)
    assert strategy.models == [teacher, distiller]      # the student is the distiller's
    own = {m: strategy.model_placement(m) for m in (teacher, distiller)}
    assert own[teacher].steps == 6 and own[distiller].steps == 12
    rows = {r["layer"]: r for r in distiller.wafer_report().rows}
    assert {"s1", "s2"} <= set(rows) and rows["s1"]["cycles_per_step"] > 0


def test_a_model_loaded_in_the_scope_is_placed_on_its_own(tmp_path):
    strategy = _strategy()
    (teacher,) = _built(strategy, [_teacher])
    path = tmp_path / "teacher.keras"
    teacher.save(path)
    with strategy.scope():
        loaded = nn.models.load_model(path)
    assert strategy.models == [teacher, loaded]
    x, y = _data(6)
    loaded.fit(x, y, batch_size=BATCH, verbose=0)
    assert [strategy.model_placement(m).steps for m in (teacher, loaded)] == [0, 6]
    assert _rows(loaded) == ["t1", "t2"]
