"""Session 21's small Keras items: saving in threads (file_layer_order), the Fourier ops'
memory estimate before work."""
import threading

import numpy as np
import pytest
from conftest import assert_refused_in_child

from wsekern import nn
from wsekern.nn import ops


def _branch():
    # Keras's order differs from the files' (inputs, then as the graph runs): the test
    # below checks that they differ, so the swap is visible
    L = nn.layers
    a = nn.Input((4,), name="a")
    x1 = L.Dense(4, name="x1")(a)
    x2 = L.Dense(4, name="x2")(x1)
    y1 = L.Dense(4, name="y1")(a)
    return nn.Model(a, L.Dense(2, name="out")(L.Concatenate(name="cat")([y1, x2])), name="m")


def test_two_threads_saving_one_model_leave_its_order_alone(tmp_path, monkeypatch):
    """file_layer_order switched the model's own layer list for the length of a save: a
    thread reading ``model.layers`` meanwhile saw the files' order, and two saves that
    overlapped left the model in the files' order for good (the second restored what the
    first had switched). The switch is now the saving thread's alone. The threads are
    held inside the save by events, so the overlap is certain, not left to timing."""
    import wsekern.nn.saving as saving
    from wsekern.nn.models.functional import file_layer_order

    m = _branch()
    rng = np.random.default_rng(0)
    m.set_weights([rng.normal(size=w.shape).astype(w.dtype) for w in m.get_weights()])
    keras_order = [layer.name for layer in m.layers]
    with file_layer_order(m):
        file_order = [layer.name for layer in m.layers]
    assert file_order != keras_order and [l.name for l in m.layers] == keras_order

    inside = {n: threading.Event() for n in "AB"}
    go = {n: threading.Event() for n in "AB"}
    real_spec = saving.model_spec

    def held_spec(model):
        name = threading.current_thread().name
        spec = real_spec(model)
        seen[name] = [layer.name for layer in model.layers]
        inside[name].set()
        assert go[name].wait(30)
        return spec

    seen, errors = {}, []
    monkeypatch.setattr(saving, "model_spec", held_spec)

    def save(name):
        try:
            m.save(tmp_path / f"{name}.wsekern")
        except BaseException as e:            # noqa: BLE001 - reported below
            errors.append(e)
    threads = {n: threading.Thread(target=save, args=(n,), name=n) for n in "AB"}
    threads["A"].start()
    assert inside["A"].wait(30)
    assert [layer.name for layer in m.layers] == keras_order     # not the saver's order
    threads["B"].start()
    assert inside["B"].wait(30)
    go["A"].set()
    threads["A"].join(30)
    assert [layer.name for layer in m.layers] == keras_order
    go["B"].set()
    threads["B"].join(30)
    assert not errors, errors
    assert seen == {"A": file_order, "B": file_order}     # each save saw the files' order
    assert [layer.name for layer in m.layers] == keras_order     # and left it alone
    x = rng.normal(size=(3, 4)).astype("float32")
    for n in "AB":
        back = nn.load_model(tmp_path / f"{n}.wsekern")
        np.testing.assert_array_equal(back.predict(x, verbose=0), m.predict(x, verbose=0))


def test_many_threads_saving_and_loading_models_at_once(tmp_path):
    """Not held: eight threads each save and reload their own model and one shared model,
    four times; every file loads back equal, and every model keeps Keras's order."""
    shared = _branch()
    order = [layer.name for layer in shared.layers]
    errors = []

    def work(i):
        try:
            own = _branch()
            rng = np.random.default_rng(i)
            own.set_weights([rng.normal(size=w.shape).astype(w.dtype)
                             for w in own.get_weights()])
            x = rng.normal(size=(2, 4)).astype("float32")
            for r in range(4):
                for model, tag in ((own, "own"), (shared, "shared")):
                    path = tmp_path / f"{tag}{i}_{r}.wsekern"
                    model.save(path)
                    back = nn.load_model(path)
                    np.testing.assert_array_equal(back.predict(x, verbose=0),
                                                  model.predict(x, verbose=0))
                    assert [layer.name for layer in model.layers] == order
        except BaseException as e:            # noqa: BLE001 - reported below
            errors.append(e)
    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors[:3]
    assert [layer.name for layer in shared.layers] == order
