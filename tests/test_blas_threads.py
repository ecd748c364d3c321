"""Training, evaluation and prediction keep NumPy's BLAS off cores other processes keep
busy (wsekern._threads.blas_limited_to_idle_cpus): the threads a GEMM sees inside fit,
read through threadpoolctl, with the machine's load injected."""
import numpy as np
import pytest

from wsekern import _threads, nn
from wsekern.nn import layers as L

threadpoolctl = pytest.importorskip("threadpoolctl")


def _blas_threads():
    return min(lib["num_threads"] for lib in threadpoolctl.threadpool_info()
               if lib["user_api"] == "blas")


class SeenThreads(nn.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.seen = []

    def on_train_batch_begin(self, batch, logs=None):
        self.seen.append(_blas_threads())

    on_test_batch_begin = on_predict_batch_begin = on_train_batch_begin


@pytest.fixture
def machine(monkeypatch):
    """Two CPUs, no BLAS thread variable set, BLAS at 2 threads; the test sets the idle."""
    for var in _threads.BLAS_THREAD_VARIABLES:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv("WSEKERN_IGNORE_LOAD", raising=False)
    monkeypatch.setattr(_threads, "machine_threads", lambda: 2)
    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        if _blas_threads() < 2:
            pytest.skip("this BLAS runs one thread here")
        yield lambda idle: monkeypatch.setattr(_threads, "idle_cpus", lambda: idle)


def _model():
    rng = np.random.default_rng(0)
    x, y = rng.random((32, 8), dtype=np.float32), rng.integers(0, 3, 32)
    model = nn.Sequential([L.Dense(16, activation="relu", input_shape=(8,)),
                           L.Dense(3, activation="softmax")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    return model, x, y


def test_fit_evaluate_and_predict_take_only_the_idle_cores(machine):
    machine(1)
    model, x, y = _model()
    seen = SeenThreads()
    model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[seen])
    model.evaluate(x, y, batch_size=8, verbose=0, callbacks=[seen])
    model.predict(x, batch_size=8, verbose=0, callbacks=[seen])
    assert len(seen.seen) == 8 + 4 + 4 and set(seen.seen) == {1}
    assert _blas_threads() == 2                      # restored after each call


def test_an_idle_machine_keeps_both_threads(machine):
    machine(2)
    model, x, y = _model()
    seen = SeenThreads()
    model.fit(x, y, batch_size=8, verbose=0, callbacks=[seen])
    assert set(seen.seen) == {2}


def test_a_lower_limit_of_the_caller_is_never_raised(machine):
    machine(2)
    model, x, y = _model()
    seen = SeenThreads()
    with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
        model.fit(x, y, batch_size=8, verbose=0, callbacks=[seen])
    assert set(seen.seen) == {1}


def test_a_thread_count_set_in_the_environment_is_kept(machine, monkeypatch):
    machine(1)
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")
    model, x, y = _model()
    seen = SeenThreads()
    model.fit(x, y, batch_size=8, verbose=0, callbacks=[seen])
    assert set(seen.seen) == {2}
