"""Models built in two threads at once: each variable's Keras path names the layers of
its own thread's build (the stack of layers being built is per thread), and a training
step in one thread hands its layers to its own model's placement."""
import threading

from wsekern import nn


class _Meeting(nn.layers.Layer):
    """A layer whose build waits until the other thread's is running too."""

    def __init__(self, barrier, **kwargs):
        super().__init__(**kwargs)
        self.barrier = barrier

    def build(self, input_shape):
        self.barrier.wait(timeout=20)
        self.w = self.add_weight(shape=(input_shape[-1], 2), name="w")
        self.barrier.wait(timeout=20)

    def call(self, x):
        return nn.ops.matmul(x, self.w)


def _in_two_threads(work, errors):
    """``work("a")`` and ``work("b")`` in two threads at once; each records its errors."""
    threads = [threading.Thread(target=work, args=(t,)) for t in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors


def test_variable_paths_are_built_per_thread():
    barrier = threading.Barrier(2)
    paths, errors = {}, []

    def build(tag):
        try:
            model = nn.Sequential([_Meeting(barrier, name=f"meet_{tag}")], name=f"seq_{tag}")
            model.build((None, 3))
            paths[tag] = [v.path for v in model.weights]
        except BaseException as e:          # noqa: BLE001 - reported below
            errors.append(e)

    _in_two_threads(build, errors)
    assert paths == {"a": ["seq_a/meet_a/w"], "b": ["seq_b/meet_b/w"]}


def test_a_step_in_another_thread_uses_its_own_model_placement():
    from wsekern.nn import placed
    barrier = threading.Barrier(2)
    seen, errors = {}, []

    def hold(tag):
        try:
            def inside():
                barrier.wait(timeout=20)            # both threads inside stepping at once
                seen[tag] = placed._STEPPING.stack[-1]
                barrier.wait(timeout=20)
            placed.stepping(tag, inside)
        except BaseException as e:          # noqa: BLE001 - reported below
            errors.append(e)

    _in_two_threads(hold, errors)
    assert seen == {"a": "a", "b": "b"}
    assert placed._STEPPING.stack == []
