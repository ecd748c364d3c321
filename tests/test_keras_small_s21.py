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


def test_fourier_ops_refuse_absurd_lengths_before_allocating():
    """rfft/irfft with fft_length 10**12 and istft with length 10**12 ended in NumPy's
    MemoryError (after the attempt); now a ValueError names the argument and the size, in
    a child under a 3 GiB address-space cap."""
    assert_refused_in_child("""
        import numpy as np
        from wsekern.nn import ops
        x = np.ones((2, 8), np.float32)
        spec = (np.ones((3, 5), np.float32),) * 2
        cases = [lambda: ops.rfft(x, 10 ** 12),
                 lambda: ops.irfft((x, x), 10 ** 12),
                 lambda: ops.istft(spec, 8, 4, 8, length=10 ** 12),
                 lambda: ops.istft(spec, 8, 4, 10 ** 11),
                 lambda: ops.rfft(np.ones((2 ** 20, 8), np.float32), 2 ** 12)]
        """, 5, needles=("fft_length=", "length="), limit_gb=3)


def test_fourier_ops_budget_message_and_sizes_below_it():
    with pytest.raises(ValueError, match=r"rfft: fft_length=1000000000000 asks for 2 x "
                                         r"500000000001 output samples, ~\d+\.\d GiB"):
        ops.rfft(np.ones((2, 8), np.float32), 10 ** 12)
    with pytest.raises(ValueError, match=r"istft: length=.* use a smaller length"):
        ops.istft((np.ones((3, 5), np.float32),) * 2, 8, 4, 8, length=10 ** 12)
    re, im = ops.rfft(np.arange(8.0), 2 ** 16)           # 1 MiB: computed, as NumPy's
    np.testing.assert_allclose(re.data + 1j * im.data, np.fft.rfft(np.arange(8.0), 2 ** 16))
    y = ops.istft(ops.stft(np.ones((2, 64)), 8, 4, 8), 8, 4, 8, length=64)
    assert y.shape == (2, 64)
