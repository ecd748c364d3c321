"""keras.io's "Knowledge Distillation" (examples/vision/knowledge_distillation.py, Keras 3
version; session 24), written once as a function of its ``keras`` module and run with
``import keras`` and with ``from wsekern import nn as keras``: a ``keras.Model`` subclass
(``Distiller``) with its own ``compile`` (extra arguments), ``compute_loss`` (a student
loss plus KLDivergence between temperature-softened softmaxes of a teacher and the student)
and ``call``; teacher and student Sequentials of Conv2D(strides 2, same) / LeakyReLU
(negative_slope) / MaxPooling2D(strides 1, same) / Flatten / Dense; ``clone_model``;
SparseCategoricalCrossentropy(from_logits) and SparseCategoricalAccuracy; fit and evaluate
of all three models. MNIST is replaced by small seeded uint8 images of the same kind, 12x12
instead of 28x28, 96 training and 32 test images, batch 16, 2 epochs a fit, and the
teacher's 256/512 filters cut to 32/64. Ours starts from Keras's initial weights."""
import numpy as np
from conftest import keras_twins

from wsekern import nn

RTOL, ATOL = 1e-4, 1e-5


def _close(a, b, what, rtol=RTOL, atol=ATOL):
    np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(b, np.float64),
                               rtol=rtol, atol=atol, err_msg=what)


def _mnist_like(n, seed, size=12):
    """uint8 images (0..255) of a bar whose row (labels 0-4) or column (5-9) is the
    label's, over uniform noise; uint8 labels, as keras.datasets.mnist gives."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, n).astype(np.uint8)
    img = rng.uniform(0, 0.4, (n, size, size))
    for i, k in enumerate(y):
        at = 1 + 2 * (int(k) % 5)
        if k < 5:
            img[i, at, 2:size - 2] = 1.0
        else:
            img[i, 2:size - 2, at] = 1.0
    return (img * 255).astype(np.uint8), y


def _program(keras, shuffle, epochs=2, filters=(32, 64)):
    """The example from its classes to its last evaluate; ``keras`` is its only tie to a
    library. Returns the three models and ``run()``, which trains and evaluates them."""
    from types import SimpleNamespace
    layers, ops = keras.layers, keras.ops

    class Distiller(keras.Model):
        def __init__(self, student, teacher):
            super().__init__()
            self.teacher = teacher
            self.student = student

        def compile(
            self,
            optimizer,
            metrics,
            student_loss_fn,
            distillation_loss_fn,
            alpha=0.1,
            temperature=3,
        ):
            """Configure the distiller."""
            super().compile(optimizer=optimizer, metrics=metrics)
            self.student_loss_fn = student_loss_fn
            self.distillation_loss_fn = distillation_loss_fn
            self.alpha = alpha
            self.temperature = temperature

        def compute_loss(
            self, x=None, y=None, y_pred=None, sample_weight=None, allow_empty=False
        ):
            teacher_pred = self.teacher(x, training=False)
            student_loss = self.student_loss_fn(y, y_pred)

            distillation_loss = self.distillation_loss_fn(
                ops.softmax(teacher_pred / self.temperature, axis=1),
                ops.softmax(y_pred / self.temperature, axis=1),
            ) * (self.temperature**2)

            loss = self.alpha * student_loss + (1 - self.alpha) * distillation_loss
            return loss

        def call(self, x):
            return self.student(x)

    # Create the teacher
    teacher = keras.Sequential(
        [
            keras.Input(shape=(12, 12, 1)),
            layers.Conv2D(filters[0], (3, 3), strides=(2, 2), padding="same"),
            layers.LeakyReLU(negative_slope=0.2),
            layers.MaxPooling2D(pool_size=(2, 2), strides=(1, 1), padding="same"),
            layers.Conv2D(filters[1], (3, 3), strides=(2, 2), padding="same"),
            layers.Flatten(),
            layers.Dense(10),
        ],
        name="teacher",
    )

    # Create the student
    student = keras.Sequential(
        [
            keras.Input(shape=(12, 12, 1)),
            layers.Conv2D(16, (3, 3), strides=(2, 2), padding="same"),
            layers.LeakyReLU(negative_slope=0.2),
            layers.MaxPooling2D(pool_size=(2, 2), strides=(1, 1), padding="same"),
            layers.Conv2D(32, (3, 3), strides=(2, 2), padding="same"),
            layers.Flatten(),
            layers.Dense(10),
        ],
        name="student",
    )

    # Clone student for later comparison
    student_scratch = keras.models.clone_model(student)

    # Prepare the dataset
    batch_size = 16
    (x_train, y_train), (x_test, y_test) = _mnist_like(96, 0), _mnist_like(32, 1)

    # Normalize data
    x_train = x_train.astype("float32") / 255.0
    x_train = np.reshape(x_train, (-1, 12, 12, 1))

    x_test = x_test.astype("float32") / 255.0
    x_test = np.reshape(x_test, (-1, 12, 12, 1))

    def run():
        out = {}
        # Train teacher as usual
        teacher.compile(
            optimizer=keras.optimizers.Adam(),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=[keras.metrics.SparseCategoricalAccuracy()],
        )

        # Train and evaluate teacher on data.
        out["teacher_fit"] = teacher.fit(x_train, y_train, epochs=epochs,
                                         batch_size=batch_size, shuffle=shuffle,
                                         verbose=0).history
        out["teacher_eval"] = teacher.evaluate(x_test, y_test, verbose=0)
        out["teacher_weights"] = [np.array(w, copy=True) for w in teacher.weights]

        # Initialize and compile distiller
        distiller = Distiller(student=student, teacher=teacher)
        distiller.compile(
            optimizer=keras.optimizers.Adam(),
            metrics=[keras.metrics.SparseCategoricalAccuracy()],
            student_loss_fn=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            distillation_loss_fn=keras.losses.KLDivergence(),
            alpha=0.1,
            temperature=10,
        )

        # Distill teacher to student
        out["distill_fit"] = distiller.fit(x_train, y_train, epochs=epochs,
                                           batch_size=batch_size, shuffle=shuffle,
                                           verbose=0).history

        # Evaluate student on test dataset
        out["distill_eval"] = distiller.evaluate(x_test, y_test, verbose=0)
        out["distiller_weights"] = [np.array(w, copy=True) for w in distiller.weights]
        out["distiller_trainable"] = len(distiller.trainable_weights)

        # Train student as doen usually
        student_scratch.compile(
            optimizer=keras.optimizers.Adam(),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=[keras.metrics.SparseCategoricalAccuracy()],
        )

        # Train and evaluate student trained from scratch.
        out["scratch_fit"] = student_scratch.fit(x_train, y_train, epochs=epochs,
                                                 batch_size=batch_size, shuffle=shuffle,
                                                 verbose=0).history
        out["scratch_eval"] = student_scratch.evaluate(x_test, y_test, verbose=0)
        out["student_pred"] = np.asarray(student.predict(x_test, verbose=0))
        return out

    return SimpleNamespace(teacher=teacher, student=student, scratch=student_scratch, run=run)


def _all_weights(p):
    return p.teacher.get_weights() + p.student.get_weights() + p.scratch.get_weights()


def _set_all_weights(p, weights):
    for m in (p.teacher, p.student, p.scratch):
        n = len(m.get_weights())
        m.set_weights(weights[:n])
        weights = weights[n:]


def test_distillation_example_runs_verbatim():
    """As the example has it but for the sizes (shuffle=True), no Keras needed: it trains,
    the metrics are the example's."""
    nn.utils.set_random_seed(0)
    p = _program(nn, shuffle=True)
    out = p.run()
    assert set(out["teacher_fit"]) == {"loss", "sparse_categorical_accuracy"}
    assert set(out["distill_fit"]) == {"loss", "sparse_categorical_accuracy"}
    assert len(out["teacher_eval"]) == len(out["distill_eval"]) == 2
    assert out["teacher_fit"]["loss"][-1] < out["teacher_fit"]["loss"][0]
    assert out["student_pred"].shape == (32, 10)


def test_distillation_example_as_keras(keras):
    """shuffle=False (the libraries shuffle with different generators): every epoch's loss
    and accuracy of the three fits, the three evaluations, the student's predictions and
    every weight (the teacher's too: Keras trains it inside the distiller, its weights being
    among the distiller's trainable ones) equal Keras's."""
    def build(K):
        class Holder:                       # keras_twins builds one model a library
            pass
        h = Holder()
        h.p = _program(K, shuffle=False)
        h.get_weights = lambda: _all_weights(h.p)
        h.set_weights = lambda w: _set_all_weights(h.p, w)
        return h

    def run(K, h):
        return h.p.run()

    theirs, ours = keras_twins(keras, build, run)
    for key in ("teacher_fit", "distill_fit", "scratch_fit"):
        assert sorted(ours[key]) == sorted(theirs[key]), key
        for metric in theirs[key]:
            _close(ours[key][metric], theirs[key][metric], f"{key} {metric}")
    for key in ("teacher_eval", "distill_eval", "scratch_eval", "student_pred"):
        _close(ours[key], theirs[key], key)
    assert ours["distiller_trainable"] == theirs["distiller_trainable"]
    moved = [np.abs(a - b).max() for a, b in zip(ours["teacher_weights"],
                                                 ours["distiller_weights"])]
    assert min(moved) > 1e-4, "the distiller left the teacher as it was (Keras trains it)"
    for key in ("teacher_weights", "distiller_weights"):
        assert len(ours[key]) == len(theirs[key]), key
        for i, (a, b) in enumerate(zip(ours[key], theirs[key])):
            _close(a, b, f"{key} {i} {b.shape}", rtol=1e-3, atol=1e-4)
