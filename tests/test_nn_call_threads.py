"""Layers called in two threads at once: each call sees its own thread's training flag,
whether ``training`` was given, and its own outermost call (a shared layer's losses of one
forward), never the other thread's (the call context is per thread, as the build stack)."""
import threading

import numpy as np
from test_nn_build_threads import _in_two_threads

from wsekern import nn
from wsekern.nn.tensor import Tensor


class _Seen(nn.layers.Layer):
    """Records the training flag and ``training_given`` its (bare) call inherits."""

    def __init__(self, seen, **kwargs):
        super().__init__(**kwargs)
        self.seen = seen

    def call(self, x, training=False):
        from wsekern.nn.layers.base import training_given
        self.seen.append((bool(training), training_given()))
        return x


class _Meeting(nn.layers.Layer):
    """Calls ``inner`` (without ``training``) after both threads are inside a call."""

    def __init__(self, barrier, inner, **kwargs):
        super().__init__(**kwargs)
        self.barrier, self.inner = barrier, inner

    def call(self, x, training=False):
        self.barrier.wait(timeout=20)           # both threads inside their outer call
        out = self.inner(x)
        self.barrier.wait(timeout=20)
        return out


def test_a_call_inherits_its_own_threads_training_flag():
    barrier = threading.Barrier(2)
    seen = {"a": [], "b": []}
    errors = []

    def call(tag):
        try:
            outer = _Meeting(barrier, _Seen(seen[tag]))
            x = Tensor(np.ones((1, 2), np.float32))
            if tag == "a":
                outer(x, training=True)             # fit's step
            else:
                outer(x)                            # a bare model(x)
        except BaseException as e:          # noqa: BLE001 - reported below
            errors.append(e)

    _in_two_threads(call, errors)
    assert seen == {"a": [(True, True)], "b": [(False, False)]}


def test_dropout_in_a_bare_call_stays_off_while_another_thread_trains():
    """MultiHeadAttention reads the inherited flag itself (its own __call__)."""
    barrier = threading.Barrier(2)
    out, errors = {}, []
    nn.utils.set_random_seed(3)
    mha = nn.layers.MultiHeadAttention(num_heads=1, key_dim=2, dropout=0.9)
    drop = nn.layers.Dropout(0.9)
    x = Tensor(np.ones((1, 3, 2), np.float32))
    mha(x, x)                                   # built before the threads
    alone = (mha(x, x).data.copy(), drop(x).data.copy())

    class _Both(nn.layers.Layer):
        def call(self, x, training=False):
            return mha(x, x), drop(x)

    def call(tag):
        try:
            outer = _Meeting(barrier, _Both())
            got = outer(x, training=True) if tag == "a" else outer(x)
            out[tag] = (got[0].data, got[1].data)
        except BaseException as e:          # noqa: BLE001 - reported below
            errors.append(e)

    _in_two_threads(call, errors)
    np.testing.assert_array_equal(out["b"][0], alone[0])
    np.testing.assert_array_equal(out["b"][1], alone[1])


def test_a_layers_losses_are_its_last_outer_calls_while_another_thread_calls():
    """Keras: a layer's losses are those of the latest outermost call (both calls of a
    layer shared in one forward); an outer call in another thread neither clears them
    nor keeps them past this thread's next outer call."""
    barrier = threading.Barrier(2)
    errors, counts = [], {}
    regularized = nn.layers.Dense(2, activity_regularizer=nn.regularizers.L2(0.1))
    shared = nn.layers.Dense(2, activity_regularizer=nn.regularizers.L2(0.1))
    x = Tensor(np.ones((1, 2), np.float32))
    regularized(x), shared(x)

    class _Twice(nn.layers.Layer):
        """Calls ``shared`` twice in one forward, the other thread's calls between."""

        def call(self, x):
            y = shared(x)
            barrier.wait(timeout=20)
            barrier.wait(timeout=20)
            return shared(y)

    def call(tag):
        try:
            if tag == "a":
                _Twice()(x)
                counts[tag] = len(shared.losses)
            else:
                barrier.wait(timeout=20)            # inside a's outer call
                regularized(x)                      # two outermost calls of this thread
                regularized(x)
                counts[tag] = len(regularized.losses)
                barrier.wait(timeout=20)
        except BaseException as e:          # noqa: BLE001 - reported below
            errors.append(e)

    _in_two_threads(call, errors)
    assert counts == {"a": 2, "b": 1}


def test_a_model_built_in_another_thread_is_not_placed_by_this_threads_scope():
    """A strategy's scope is per thread (Keras's distribution scope, tf.distribute's)."""
    import wsekern as wk
    barrier = threading.Barrier(2)
    strategies, errors = {}, []
    strategy = wk.WaferStrategy(wk.WaferConfig.small(16, 16))

    def build(tag):
        try:
            if tag == "a":
                with strategy.scope():
                    barrier.wait(timeout=20)        # b builds inside a's scope
                    barrier.wait(timeout=20)
            else:
                barrier.wait(timeout=20)
                model = nn.Sequential([nn.Input((3,)), nn.layers.Dense(2)])
                strategies[tag] = model.strategy
                barrier.wait(timeout=20)
        except BaseException as e:          # noqa: BLE001 - reported below
            errors.append(e)

    _in_two_threads(build, errors)
    assert strategies == {"b": None}
    assert strategy.models == []
