"""Keras 3's global state per thread (``keras.src.backend.common.global_state``), as
wsekern.nn keeps it: the automatic-name counters, the global generator and the custom-object
scope are one a thread, a new thread starts empty (its generator from Python's ``random``),
and ``clear_session`` in any thread drops every thread's. Each observation is made by the
same program on real Keras 3 (torch backend) and on wsekern.nn, and must agree; the values
Keras gives are also written out, so that the test says what is expected without Keras."""
import threading

import numpy as np
import pytest

from wsekern import nn


def _in_thread(work):
    """``work()`` in a new thread; its result (an exception is raised here)."""
    out = {}

    def run():
        try:
            out["value"] = work()
        except BaseException as e:          # noqa: BLE001 - raised in the caller
            out["error"] = e
    t = threading.Thread(target=run)
    t.start()
    t.join(60)
    if "error" in out:
        raise out["error"]
    return out["value"]


def _in_two_threads_at_once(work):
    """``work(barrier)`` in two threads at once; their results in thread order."""
    barrier = threading.Barrier(2)
    out, errors = [None, None], []

    def run(i):
        try:
            out[i] = work(barrier)
        except BaseException as e:          # noqa: BLE001 - reported below
            errors.append(e)
            barrier.abort()
    threads = [threading.Thread(target=run, args=(i,)) for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    return out


def _names(K):
    """Auto names: per thread, a new thread from zero, clear_session for every thread."""
    K.utils.clear_session(free_memory=False)
    L = K.layers
    seen = {"main": L.Dense(2).name,
            "thread": _in_thread(lambda: [L.Dense(2).name, L.Dense(2).name,
                                          K.optimizers.Adam().name]),
            "main_after": [L.Dense(2).name, K.optimizers.Adam().name]}

    def interleaved(barrier):
        names = []
        for _ in range(3):
            barrier.wait(timeout=20)             # the two threads alternate their layers
            names.append(L.Dense(2).name)
        return names
    seen["two_at_once"] = _in_two_threads_at_once(interleaved)
    seen["main_still"] = L.Dense(2).name
    _in_thread(lambda: K.utils.clear_session(free_memory=False))
    seen["main_after_clear_elsewhere"] = L.Dense(2).name
    return seen


KERAS_NAMES = {"main": "dense", "thread": ["dense", "dense_1", "adam"],
               "main_after": ["dense_1", "adam"],
               "two_at_once": [["dense", "dense_1", "dense_2"]] * 2,
               "main_still": "dense_2", "main_after_clear_elsewhere": "dense"}


class _Foo:
    pass


class _Bar:
    pass


def _lookups(K):
    """custom_object_scope: this thread's only, not in get_custom_objects(), an inner scope
    replacing an outer one, dropped by clear_session until the scope exits."""
    K.utils.clear_session(free_memory=False)
    find = K.saving.get_registered_object
    seen = {}
    with K.saving.custom_object_scope({"Foo": _Foo}):
        seen["here"] = find("Foo")
        seen["other_thread"] = _in_thread(lambda: find("Foo"))
        seen["in_get_custom_objects"] = "Foo" in K.saving.get_custom_objects()

        def scoped(barrier):                 # the other thread's scope, open meanwhile
            with K.saving.custom_object_scope({"Bar": _Bar}):
                barrier.wait(timeout=20)
                got = (find("Foo"), find("Bar"))
                barrier.wait(timeout=20)
            return got
        seen["two_at_once"] = _in_two_threads_at_once(scoped)
        seen["after_threads"] = (find("Foo"), find("Bar"))
        with K.saving.custom_object_scope({"Bar": _Bar}):
            seen["nested"] = (find("Foo"), find("Bar"))
        seen["after_nested"] = (find("Foo"), find("Bar"))
        K.utils.clear_session(free_memory=False)
        seen["after_clear_session"] = find("Foo")
    seen["after_exit"] = find("Foo")
    return seen


KERAS_LOOKUPS = {"here": _Foo, "other_thread": None, "in_get_custom_objects": False,
                 "two_at_once": [(None, _Bar)] * 2, "after_threads": (_Foo, None),
                 "nested": (None, _Bar), "after_nested": (_Foo, None),
                 "after_clear_session": None, "after_exit": None}


def _draws(K, k):
    return [float(np.asarray(K.ops.convert_to_numpy(K.random.uniform((1,))))[0])
            for _ in range(k)]


def _seeds(K):
    """The global generator: draws in another thread (or its set_random_seed) never move
    this thread's; a new thread's generator comes from Python's random (so it repeats
    after a set_random_seed, and equals the seeding thread's); clear_session starts a new
    one; weights are drawn alike in a thread and in the one that seeded."""
    K.utils.clear_session(free_memory=False)
    seen = {}
    K.utils.set_random_seed(1)
    alone = _draws(K, 2)
    K.utils.set_random_seed(1)
    mixed = _draws(K, 1)
    _in_thread(lambda: _draws(K, 5))
    mixed += _draws(K, 1)
    seen["others_draws_leave_mine"] = mixed == alone
    K.utils.set_random_seed(1)
    reseeded = _draws(K, 1)
    _in_thread(lambda: K.utils.set_random_seed(5))
    reseeded += _draws(K, 1)
    seen["others_seed_leaves_mine"] = reseeded == alone
    K.utils.set_random_seed(1)
    first = _in_thread(lambda: _draws(K, 2))
    K.utils.set_random_seed(1)
    second = _in_thread(lambda: _draws(K, 2))
    seen["new_thread_repeats"] = first == second
    seen["new_thread_as_seeder"] = first == alone
    K.utils.set_random_seed(1)
    cleared = _draws(K, 1)
    K.utils.clear_session(free_memory=False)
    cleared += _draws(K, 1)
    seen["clear_session_restarts"] = cleared != alone

    def kernel():
        layer = K.layers.Dense(3)
        layer.build((None, 4))
        return np.asarray(K.ops.convert_to_numpy(layer.kernel))
    K.utils.set_random_seed(7)
    here = kernel()
    K.utils.set_random_seed(7)
    seen["weights_in_a_thread_as_here"] = bool(np.array_equal(_in_thread(kernel), here))
    return seen


KERAS_SEEDS = {"others_draws_leave_mine": True, "others_seed_leaves_mine": True,
               "new_thread_repeats": True, "new_thread_as_seeder": True,
               "clear_session_restarts": True, "weights_in_a_thread_as_here": True}


@pytest.mark.parametrize("program, expected", [(_names, KERAS_NAMES),
                                               (_lookups, KERAS_LOOKUPS),
                                               (_seeds, KERAS_SEEDS)],
                         ids=["names", "custom_objects", "seeds"])
def test_global_state_per_thread_as_keras(program, expected, keras):
    theirs = program(keras)
    ours = program(nn)
    nn.utils.clear_session(free_memory=False)
    assert theirs == expected, "Keras itself changed: update the written-out values"
    assert ours == theirs


def test_a_registered_object_stays_visible_to_every_thread():
    """get_custom_objects() is the process's (as Keras's GLOBAL_CUSTOM_OBJECTS); only the
    scope is per thread."""
    @nn.saving.register_keras_serializable(package="S27")
    def tripled(x):
        return x * 3
    try:
        assert _in_thread(lambda: nn.saving.get_registered_object("S27>tripled")) is tripled
        assert _in_thread(lambda: nn.activations.get("tripled")) is tripled   # short name
    finally:
        del nn.saving.get_custom_objects()["S27>tripled"]


def test_a_short_name_lookup_skips_keys_without_a_package():
    """An entry put straight into get_custom_objects() under a bare key does not break the
    short-name search of registered ones (it raised IndexError)."""
    objects = nn.saving.get_custom_objects()
    objects["bare_key"] = _Foo
    try:
        assert nn.saving.get_registered_object("no_such_name") is None
        assert nn.saving.get_registered_object("bare_key") is _Foo
    finally:
        del objects["bare_key"]


def test_load_model_inside_a_users_scope_sees_both(tmp_path):
    """nn's own loaders add the file's custom_objects to the scope already open rather than
    replacing it (a user's scope still holds inside load_model)."""
    @nn.saving.register_keras_serializable(package="S27")
    class Scaled(nn.layers.Layer):
        def __init__(self, factor=2.0, **kwargs):
            super().__init__(**kwargs)
            self.factor = factor

        def call(self, x):
            return x * self.factor

        def get_config(self):
            return {**super().get_config(), "factor": self.factor}
    def s27_act(x):
        return x * 0.5
    try:
        with nn.saving.custom_object_scope({"s27_act": s27_act}):
            inputs = nn.Input((3,))
            out = nn.layers.Dense(2, activation="s27_act")(Scaled(3.0)(inputs))
            model = nn.Model(inputs, out)
            path = tmp_path / "m.keras"
            with pytest.warns(UserWarning, match="own format"):
                model.save(path)
            loaded = nn.models.load_model(path, custom_objects={"Scaled": Scaled})
        x = np.arange(6, dtype=np.float32).reshape(2, 3)
        np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    finally:
        nn.saving.get_custom_objects().pop("S27>Scaled", None)


def test_get_uid_counts_with_the_automatic_names(keras):
    """keras.backend.get_uid shares the counters the automatic names take, per thread."""
    def program(K):
        K.backend.clear_session(free_memory=False)
        first = K.layers.Dense(1).name
        uid = K.backend.get_uid("dense")
        return (first, uid, K.layers.Dense(1).name, _in_thread(lambda: K.backend.get_uid("dense")),
                K.backend.get_uid("x"), K.backend.floatx(), K.backend.epsilon(),
                K.backend.image_data_format())
    theirs = program(keras)
    assert theirs == ("dense", 2, "dense_2", 1, 1, "float32", 1e-7, "channels_last")
    assert program(nn) == theirs


def test_custom_object_scope_takes_keras_arguments():
    """Keras's signature: one dict, by position or as ``custom_objects=``, or None."""
    for scope in (nn.saving.custom_object_scope({"Foo": _Foo}),
                  nn.saving.custom_object_scope(custom_objects={"Foo": _Foo}),
                  nn.saving.CustomObjectScope({"Foo": _Foo})):
        with scope:
            assert nn.saving.get_registered_object("Foo") is _Foo
        assert nn.saving.get_registered_object("Foo") is None
    with nn.saving.custom_object_scope(None):
        assert nn.saving.get_registered_object("Foo") is None
    with pytest.raises(TypeError, match="custom_object_scope takes dicts; received list"):
        nn.saving.custom_object_scope([("Foo", _Foo)])


def test_keras_utils_names_of_the_registry(keras):
    """keras.utils and keras.saving both give the scope and the registry (Keras 3)."""
    for name in ("custom_object_scope", "CustomObjectScope", "get_custom_objects",
                 "register_keras_serializable"):
        for module in ("utils", "saving"):
            assert hasattr(getattr(keras, module), name), (module, name)
            assert hasattr(getattr(nn, module), name), (module, name)
