"""s15 audit: what a new user ran into (a SciPy user, a Keras user, the command line).
Each test failed on main b6a1048."""
import numpy as np
import pytest
import scipy.sparse as sps
from conftest import assert_refused_in_child

import wsekern


def test_sparse_conversion_with_huge_row_count_is_refused_before_scipy_allocates():
    # A COO/CSC/DIA/... with 2**40 empty rows stores nothing, but its CSR copy needs 2**40 + 1
    # row pointers (8 TiB): refused with the budget's message, not by numpy's allocation.
    code = """
import numpy as np, scipy.sparse as sps, wsekern
e = np.zeros(0, np.int64)
tall = sps.coo_array((np.zeros(0, np.float32), (e, e)), shape=(2**40, 5))
wide = sps.coo_array((np.zeros(0, np.float32), (e, e)), shape=(5, 2**40))
x = np.ones((5, 1), np.float32)
cases = [lambda: wsekern.spmm(tall, x), lambda: wsekern.spmm(tall.tocsc(), x),
         lambda: wsekern.spmm(wide, x, transpose=True), lambda: wsekern.pack(tall),
         lambda: wsekern.spmm_path(tall, x),
         lambda: wsekern.sddmm(np.ones((2**40, 0), np.float32), np.ones((5, 0), np.float32),
                               tall),
         lambda: wsekern.Wafer(wsekern.WaferConfig.small(4, 4)).spmm(tall, x)]
"""
    assert_refused_in_child(code, 7, errors=(MemoryError,), needles=("in CSR form",),
                            limit_gb=4)


def test_sparse_conversion_within_the_budget_still_equals_scipy():
    W = sps.random_array((300, 40), density=0.1, format="coo", dtype=np.float64,
                         random_state=0)
    X = np.random.default_rng(0).standard_normal((40, 3))
    for fmt in ("coo", "csc", "dia", "lil", "dok", "bsr"):
        np.testing.assert_allclose(wsekern.spmm(W.asformat(fmt), X), W @ X, rtol=1e-12)
    np.testing.assert_allclose(wsekern.spmm(W.tocsc(), np.ones((300, 2)), transpose=True),
                               W.T @ np.ones((300, 2)), rtol=1e-12)


@pytest.mark.parametrize("call", [lambda W: wsekern.pack(W, dtype=np.float16),
                                  lambda W: wsekern.pack(W, dtype=np.int32),
                                  lambda W: wsekern.pack(W).astype(np.int64),
                                  lambda W: wsekern.pack(W, dtype="no such type")])
def test_pack_dtype_refusal_says_what_was_asked(call):
    W = sps.random_array((4, 4), density=0.5, format="csr", dtype=np.float32, random_state=0)
    with pytest.raises(TypeError) as info:
        call(W)
    msg = str(info.value)
    assert msg.startswith("dtype must be float32 or float64") and "received" in msg
    assert "dtype.astype" not in msg and "must have dtype" not in msg


def test_pack_refuses_a_huge_broadcast_dense_weight_before_copying_it():
    code = """
import numpy as np, wsekern
cases = [lambda: wsekern.pack(np.broadcast_to(np.float32(1), (2**20, 2**20)))]
"""
    assert_refused_in_child(code, 1, errors=(MemoryError,), needles=("broadcast view",),
                            limit_gb=4)


@pytest.mark.parametrize("where", ["missing folder", "file as folder", "a folder"])
def test_atomic_write_refusal_names_the_path_asked_for(tmp_path, where):
    from wsekern import nn
    from wsekern._atomic import write_bytes
    (tmp_path / "file").write_text("x")
    target = {"missing folder": tmp_path / "nope" / "m.keras",
              "file as folder": tmp_path / "file" / "m.keras",
              "a folder": tmp_path}[where]
    model = nn.Sequential([nn.Input((3,)), nn.layers.Dense(2)])
    for write in (lambda: write_bytes(target, b"data"), lambda: model.save(target)):
        with pytest.raises(OSError) as info:
            write()
        msg = str(info.value)
        assert f"cannot write {str(target)!r}" in msg, msg
        assert ".tmp" not in msg and ".keras." not in msg      # not the temporary file's name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]     # nothing left behind


@pytest.mark.parametrize("argv", [
    ["simulate", "spmm", "--wafer", "small", "--plot", "{missing}/x.png"],
    ["simulate", "spmm", "--wafer", "small", "--plot", "{file}/x.png"],
    ["simulate", "spmm", "--wafer", "small", "--plot", "{folder}"],
    ["train", "mlp", "--wafer", "small", "--epochs", "1", "--plot", "{missing}/x.png"],
    ["demo", "--epochs", "1", "--plot", "{missing}/demo.png"],
    ["sweep", "{spec}", "--serial", "--out", "{file}/more/r.csv"],
    ["sweep", "{spec}", "--serial", "--plot", "{folder}"],
])
def test_cli_output_paths_are_checked_before_the_run(argv, tmp_path, capsys, monkeypatch):
    # the run is never started: an unwritable path is an argument error (exit 2), named
    from wsekern import cli
    (tmp_path / "file").write_text("x")
    spec = tmp_path / "spec.toml"
    spec.write_text('workload = "spmm"\n[space]\nm = [64]\nk = [64]\nn = [4]\n')
    names = {"missing": tmp_path / "nope", "file": tmp_path / "file", "folder": tmp_path,
             "spec": spec}
    argv = [a.format(**names) for a in argv]
    started = []
    for name in ("_cmd_simulate", "_cmd_train", "_cmd_demo", "_cmd_sweep"):
        monkeypatch.setattr(cli, name, lambda args: started.append(args))
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2 and not started
    err = capsys.readouterr().err
    assert "cannot write" in err and ("--plot" in err or "--out" in err), err


def test_bench_sparsity_out_of_range_is_an_argument_error(capsys):
    from wsekern import cli
    with pytest.raises(SystemExit) as info:
        cli.main(["bench", "spmm", "--size", "8", "8", "8", "--sparsity", "0.5", "2"])
    assert info.value.code == 2
    assert "--sparsity: must be a fraction in [0, 1]; received '2'" in capsys.readouterr().err


def _sequential(nn):
    nn.utils.set_random_seed(0)
    model = nn.Sequential([nn.Input(shape=(8,)), nn.layers.Dense(16, activation="relu"),
                           nn.layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def test_sequential_takes_a_one_array_list_or_tuple_as_keras_does():
    # predict([x]) returned shape (2, 32, 10) for 64 samples: each batch a "batch of one"
    from wsekern import nn
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 8)).astype(np.float32)
    y = rng.integers(0, 10, 64)
    model = _sequential(nn)
    want = model.predict(x, verbose=0)
    # predict runs batches of 32, a call the 64 at once: another batch size may take another
    # product route (another rounding), so each is held against its unwrapped twin
    whole = np.asarray(model(x).data)
    np.testing.assert_allclose(whole, want, rtol=1e-5, atol=1e-7)
    for wrapped in ([x], (x,)):
        np.testing.assert_array_equal(model.predict(wrapped, verbose=0), want)
        np.testing.assert_array_equal(np.asarray(model(wrapped).data), whole)
        assert model.evaluate(wrapped, y, verbose=0) == model.evaluate(x, y, verbose=0)
    plain = _sequential(nn).fit(x, y, epochs=2, batch_size=16, verbose=0).history
    listed = _sequential(nn).fit([x], y, epochs=2, batch_size=16, verbose=0,
                                 validation_data=([x], y)).history
    assert {k: listed[k] for k in plain} == plain


def test_sequential_refuses_a_dict_of_inputs_by_name():
    from wsekern import nn
    model = _sequential(nn)
    x = np.ones((4, 8), np.float32)
    for call in (lambda: model.fit({"a": x}, np.zeros(4, int), verbose=0),
                 lambda: model.predict({"a": x}, verbose=0), lambda: model({"a": x})):
        with pytest.raises(ValueError, match=r"takes one input array; received .* dict with "
                                             r"keys \['a'\]"):
            call()


def test_binary_crossentropy_refuses_targets_outside_0_1():
    # class ids 0..9 given to a one-unit sigmoid model trained to a negative loss, silently
    from wsekern import nn
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 8)).astype(np.float32)
    model = nn.Sequential([nn.Input(shape=(8,)), nn.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy")
    for y in (rng.integers(0, 10, 32), np.full(32, -0.5), np.full(32, np.nan)):
        with pytest.raises(ValueError, match=r"binary_crossentropy targets must be in \[0, 1\]"):
            model.fit(x, y, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="received values from 0 to 9"):
        nn.losses.binary_crossentropy(np.arange(10.0), np.full(10, 0.5))
    # 0/1 labels and probabilities still train, soft labels too
    for y in ((x[:, 0] > 0).astype(int), rng.uniform(0, 1, 32)):
        loss = model.fit(x, y, epochs=1, verbose=0).history["loss"][0]
        assert np.isfinite(loss) and loss > 0


def test_non_integer_sparse_labels_are_named():
    from wsekern import nn
    with pytest.raises(ValueError, match=r"must be integers \(class ids\); received 1.5"):
        nn.losses.sparse_categorical_crossentropy(np.array([0.0, 1.5]), np.full((2, 3), 1 / 3))


def _transpose_reference(x, kernel, strides, padding):
    """Keras's Conv2DTranspose by scatter (float64): the full output, then TF's crop
    ('same') or zeros at the end to Keras's length n * s (+ max(k - s, 0) for 'valid')."""
    b, h, w, _ = x.shape
    kh, kw, f, _ = kernel.shape
    (sh, sw) = strides
    full = np.zeros((b, (h - 1) * sh + kh, (w - 1) * sw + kw, f))
    for i in range(h):
        for j in range(w):
            full[:, i * sh:i * sh + kh, j * sw:j * sw + kw] += np.einsum(
                "bc,uvfc->buvf", x[:, i, j], kernel)
    sizes, starts = [], []
    for n, k, s in zip((h, w), (kh, kw), strides):
        sizes.append(n * s if padding == "same" else n * s + max(k - s, 0))
        starts.append(max(k - s, 0) // 2 if padding == "same" else 0)
    out = np.zeros((b, sizes[0], sizes[1], f))
    part = full[:, starts[0]:starts[0] + sizes[0], starts[1]:starts[1] + sizes[1]]
    out[:, :part.shape[1], :part.shape[2]] = part
    return out


@pytest.mark.parametrize("padding", ["same", "valid"])
@pytest.mark.parametrize("ksize,strides", [((2, 2), (3, 3)), ((1, 1), (2, 2)),
                                           ((1, 4), (3, 2)), ((3, 2), (2, 2))])
def test_conv2d_transpose_with_a_kernel_shorter_than_its_stride_has_keras_length(
        padding, ksize, strides):
    # kernel 2, stride 3, 'same' on 5 x 4 gave 14 x 11 (Keras: 15 x 12), 'valid' likewise
    from test_nn_grad import check_layer

    from wsekern.nn import layers as L
    from wsekern.nn.tensor import Tensor
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 5, 4, 3))
    layer = L.Conv2DTranspose(2, ksize, strides=strides, padding=padding, dtype="float64")
    y = layer(Tensor(x)).data
    want = _transpose_reference(x, layer.kernel.data, strides, padding) + layer.bias.data
    assert y.shape == want.shape == layer.compute_output_shape(x.shape)
    np.testing.assert_allclose(y, want, atol=1e-12)
    check_layer(L.Conv2DTranspose(2, ksize, strides=strides, padding=padding, dtype="float64"),
                rng.standard_normal((1, 3, 2, 2)))


@pytest.mark.parametrize("padding", ["same", "valid"])
def test_conv2d_transpose_short_kernel_against_keras(padding, keras):
    from wsekern.nn import layers as L
    x = np.random.default_rng(1).standard_normal((2, 5, 4, 3)).astype(np.float32)
    theirs = keras.layers.Conv2DTranspose(2, (2, 1), strides=(3, 2), padding=padding)
    ref = keras.ops.convert_to_numpy(theirs(x))
    ours = L.Conv2DTranspose(2, (2, 1), strides=(3, 2), padding=padding)
    ours(x)
    ours.set_weights(theirs.get_weights())
    np.testing.assert_allclose(np.asarray(ours(x).data), ref, rtol=1e-5, atol=1e-6)


def test_confusion_metrics_take_one_weight_per_sample_of_a_multilabel_batch():
    # Precision/Recall/AUC on (n, labels) with sample_weight of shape (n,) raised numpy's
    # "operands could not be broadcast together with remapped shapes"
    from wsekern import nn
    rng = np.random.default_rng(0)
    t = (rng.uniform(size=(6, 3)) > 0.5).astype(np.float32)
    p = rng.uniform(size=(6, 3)).astype(np.float32)
    w = rng.uniform(size=6)
    above = p > 0.5
    W = np.broadcast_to(w[:, None], p.shape)
    want = {"Precision": (W * above * t).sum() / (W * above).sum(),
            "Recall": (W * above * t).sum() / (W * t).sum()}
    for name, value in want.items():
        for weights in (w, w[:, None], W):
            m = getattr(nn.metrics, name)()
            m.update_state(t, p, sample_weight=weights)
            np.testing.assert_allclose(float(m.result()), value, rtol=1e-6)
    m = nn.metrics.Precision()
    with pytest.raises(ValueError, match=r"sample_weight of shape \(4,\) does not broadcast"):
        m.update_state(t, p, sample_weight=np.ones(4))


@pytest.mark.parametrize("name,kwargs", [("Precision", {}), ("Recall", {}), ("AUC", {}),
                                         ("AUC", {"multi_label": True}),
                                         ("Recall", {"class_id": 1})])
@pytest.mark.parametrize("shapes", [((6, 3), (6,)), ((6, 3), (6, 1)), ((6, 3), (6, 3)),
                                    ((6, 1), (6,))])
def test_confusion_metric_weights_against_keras(name, kwargs, shapes, keras):
    # (Keras itself fails on class_id with a weight per entry, and on (n,) predictions
    # with (n, 1) weights: those are left out)
    from wsekern import nn
    shape, wshape = shapes
    if "class_id" in kwargs and (shape[-1] < 2 or wshape == shape):
        pytest.skip("Keras cannot: no class 1, or a weight per entry with class_id")
    rng = np.random.default_rng(1)
    t = (rng.uniform(size=shape) > 0.5).astype(np.float32)
    p = rng.uniform(size=shape).astype(np.float32)
    w = rng.uniform(size=wshape).astype(np.float32)
    theirs = getattr(keras.metrics, name)(**kwargs)
    theirs.update_state(t, p, sample_weight=w)
    ours = getattr(nn.metrics, name)(**kwargs)
    ours.update_state(t, p, sample_weight=w)
    np.testing.assert_allclose(float(ours.result()),
                               float(keras.ops.convert_to_numpy(theirs.result())), atol=1e-5)


def test_readme_names_the_keras_losses_it_lacks(keras):
    # the README said "all of Keras's loss names"; 14 of Keras's 44 were missing
    from wsekern import nn
    lacking = {"BinaryFocalCrossentropy", "CTC", "CategoricalFocalCrossentropy",
               "CategoricalGeneralizedCrossEntropy", "Circle", "Dice", "Tversky",
               "binary_focal_crossentropy", "categorical_focal_crossentropy",
               "categorical_generalized_cross_entropy", "circle", "ctc", "dice", "tversky"}
    theirs = {n for n in dir(keras.losses) if not n.startswith("_")} - {
        "Loss", "LossFunctionWrapper", "Reduction", "get", "serialize", "deserialize"}
    assert {n for n in theirs if not hasattr(nn.losses, n)} <= lacking
    import pathlib
    readme = pathlib.Path(__file__).parents[1].joinpath("README.md").read_text()
    assert "all of Keras's loss names" not in readme
    assert "but the focal, Dice, Tversky, CTC, Circle and generalized" in readme


def test_cli_sweep_says_why_points_failed(tmp_path, capsys):
    # the table left the reason column out: a failed point printed only "invalid"
    pytest.importorskip("pandas")
    from wsekern import cli
    spec = tmp_path / "spec.toml"
    spec.write_text('workload = "spmm"\nbase = "small"\n[space]\nm = [64]\nk = [64]\n'
                    'n = [4]\nnope = [1, 2]\n')
    assert cli.main(["sweep", str(spec), "--serial"]) == 0
    out = capsys.readouterr().out
    assert "2 points: 0 ok, 2 failed" in out
    assert "invalid (2 points): ValueError: 'nope' is neither a WaferConfig field" in out


def test_a_layer_weight_beyond_the_memory_budget_is_refused_before_it_is_drawn():
    # Dense(300_000) on 784 inputs: float64 draws + float32 weights, 2.8 GB, were allocated
    # (or numpy's bare "Unable to allocate") with no word on which layer or what to change
    code = """
from wsekern import nn
cases = [lambda: nn.Sequential([nn.Input((784,)), nn.layers.Dense(300_000)]),
         lambda: nn.Sequential([nn.Input((784,)), nn.layers.Dense(10**9, sparsity=0.99)]),
         lambda: nn.Sequential([nn.Input((5,), dtype="int64"), nn.layers.Embedding(10**10, 8)]),
         lambda: nn.Sequential([nn.Input((32, 32, 3)), nn.layers.Conv2D(10**6, 30)])]
"""
    assert_refused_in_child(code, 4, errors=(MemoryError,), needles=("the weight '",),
                            limit_gb=4)


def test_weights_within_the_budget_are_drawn_as_before():
    from wsekern import nn
    nn.utils.set_random_seed(3)
    layer = nn.layers.Dense(5)
    layer.build((None, 4))
    nn.utils.set_random_seed(3)
    want = nn.initializers.get("glorot_uniform")((4, 5), dtype=np.float32)
    np.testing.assert_array_equal(layer.kernel.data, want)


@pytest.mark.parametrize("region", [(0, 0), (3, 0), (1, 1, 0, 2)])
def test_an_empty_region_is_refused_as_empty(region):
    # "region (0, 0, 0, 0) does not lie within the 750x994 wafer" blamed the wafer's size
    wafer = wsekern.Wafer(wsekern.WaferConfig.small(4, 4))
    W = sps.random_array((8, 8), density=0.5, format="csr", dtype=np.float32, random_state=0)
    with pytest.raises(ValueError, match="must have at least one row and one column of PEs"):
        wafer.spmm(W, np.ones((8, 2), np.float32), region=region)


def test_cli_train_transformer_says_what_is_wrong_with_the_text(tmp_path, capsys):
    from wsekern import cli
    binary = tmp_path / "data.bin"
    binary.write_bytes(bytes(range(128, 256)) * 4)
    short = tmp_path / "short.txt"
    short.write_text("ab" * 60)
    quick = ["--layers", "1", "--d-model", "16", "--heads", "2", "--wafer", "none", "--quiet"]
    # 'utf-8' codec can't decode byte 0x80 in position 0 (no file named)
    assert cli.main(["train", "transformer", "--text", str(binary), *quick]) == 2
    assert f"{binary} is not UTF-8 text" in capsys.readouterr().err
    # "12 tokens cannot give windows of 64 + 1"
    assert cli.main(["train", "transformer", "--text", str(short), *quick]) == 2
    err = capsys.readouterr().err
    assert "validation part (its last 10%: 12 characters)" in err and "--context" in err
    # all windows are drawn up front: 1e6 steps x 1000 x 1000 asked numpy for 15 TB
    assert cli.main(["train", "transformer", "--steps", "1000000", "--batch-size", "1000",
                     "--context", "1000", *quick]) == 3
    assert "the windows of 1,000,000 steps" in capsys.readouterr().err


def test_a_byte_swapped_w_is_computed_with():
    # ">f8" (float64 read from a big-endian file) was refused (s15 audit: with a message
    # naming it byte-swapped; s15 review: SciPy computes with it, so W is converted as X is)
    W = sps.random_array((6, 5), density=0.5, format="csr", dtype=np.float64, random_state=0)
    X = np.ones((5, 2))
    swapped = W.copy()
    swapped.data = W.data.astype(">f8")          # (SciPy's astype refuses '>f8' itself)
    np.testing.assert_array_equal(wsekern.spmm(swapped, X), wsekern.spmm(W, X))
    dense = W.toarray().astype(np.float32)
    np.testing.assert_array_equal(wsekern.spmm(dense.astype(">f4"), X), wsekern.spmm(dense, X))
    packed, native = wsekern.pack(swapped), wsekern.pack(W)
    np.testing.assert_array_equal(packed.toarray(), native.toarray())
    assert packed.dtype == np.float64


def test_byte_swapped_dense_operands_are_converted():
    # a dense operand in '>f4'/'>f8' (a big-endian file's floats) is computed with, as NumPy
    # and SciPy do (it was refused): spmm's X, sparse_dense's A and B, Wafer.spmm's X
    from wsekern.wafer import Wafer, WaferConfig
    W = sps.random_array((6, 5), density=0.5, format="csr", dtype=np.float64, random_state=0)
    rng = np.random.default_rng(0)
    for dt in (">f4", ">f8"):
        X = rng.standard_normal((5, 3)).astype(dt)
        ref = W @ X                                   # SciPy takes it
        assert ref.dtype == np.float64
        got = wsekern.spmm(W, X)
        assert got.dtype == np.float64
        np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(wsekern.spmm(W, X[:, 0]), ref[:, 0], rtol=1e-12, atol=1e-12)
        A, B = rng.standard_normal((6, 4)).astype(dt), rng.standard_normal((5, 4)).astype(dt)
        got = wsekern.sddmm(A, B, W)
        ref = (A.astype(np.float64) @ B.astype(np.float64).T)[W.toarray() != 0]
        np.testing.assert_allclose(got.toarray()[W.toarray() != 0], ref, rtol=1e-6)
    Y, _ = Wafer(WaferConfig.small()).spmm(W, X)
    np.testing.assert_allclose(Y, W @ X.astype(np.float64), rtol=1e-6, atol=1e-6)
    with pytest.raises(MemoryError, match="broadcast"):    # the budget before the copy
        wsekern.spmm(W, np.broadcast_to(np.float64(1).astype(">f8"), (5, 2**40)))


def _small_model(nn):
    nn.utils.set_random_seed(0)
    model = nn.Sequential([nn.Input(shape=(8,)), nn.layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


@pytest.mark.parametrize("make", [
    lambda nn, p: nn.callbacks.EarlyStopping(),                          # val_loss, no val data
    lambda nn, p: nn.callbacks.EarlyStopping(monitor="val_acuracy"),     # a typo
    lambda nn, p: nn.callbacks.ReduceLROnPlateau(monitor="val_loss"),
    lambda nn, p: nn.callbacks.ModelCheckpoint(str(p / "m.keras"), save_best_only=True)])
def test_a_callback_watching_a_metric_that_never_comes_warns(make, tmp_path):
    # it silently did nothing: early stopping never stopped, no checkpoint was written
    from wsekern import nn
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((32, 8)).astype(np.float32), rng.integers(0, 3, 32)
    with pytest.warns(UserWarning, match=r"metric 'val_\w+', which is not available; "
                                         r"available metrics are: accuracy, .*loss"):
        _small_model(nn).fit(x, y, epochs=2, verbose=0, callbacks=[make(nn, tmp_path)])


def test_fit_takes_one_callback_not_in_a_list():
    # Keras takes callbacks=EarlyStopping(...); here: "'EarlyStopping' object is not iterable"
    from wsekern import nn
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((32, 8)).astype(np.float32), rng.integers(0, 3, 32)
    seen = []

    class Count(nn.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(epoch)
    model = _small_model(nn)
    model.fit(x, y, epochs=2, verbose=0, callbacks=Count())
    model.evaluate(x, y, verbose=0, callbacks=Count())
    model.predict(x, verbose=0, callbacks=Count())
    assert seen == [0, 1]


def test_a_compiled_loss_whose_target_is_missing_from_y_is_refused():
    # loss={"a": ..., "b": "mse"} with y={"a": ...}: "b" was left out of the loss in silence
    # (Keras: "y_true and y_pred have different structures")
    from wsekern import nn
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 6)).astype(np.float32)
    inp = nn.Input((6,), name="x")
    model = nn.Model(inp, {"a": nn.layers.Dense(3, activation="softmax", name="a")(inp),
                           "b": nn.layers.Dense(1, name="b")(inp)})
    model.compile("adam", loss={"a": "sparse_categorical_crossentropy", "b": "mse"})
    labels = rng.integers(0, 3, 40)
    for call in (lambda: model.fit(x, {"a": labels}, verbose=0),
                 lambda: model.evaluate(x, {"a": labels}, verbose=0)):
        with pytest.raises(ValueError, match=r"a loss for output 'b', but y has no target"):
            call()
    both = model.fit(x, {"a": labels, "b": np.zeros((40, 1))}, verbose=0).history
    assert set(both) == {"loss", "a_loss", "b_loss"}
    model.compile("adam", loss={"a": "sparse_categorical_crossentropy"})     # b left out
    # one output's loss alone: no 'a_loss' (Keras's CompileLoss tracks each output's loss
    # only when more than one has one; s18)
    assert set(model.fit(x, {"a": labels}, verbose=0).history) == {"loss"}


def test_a_huge_broadcast_x_is_refused_before_its_checks_copy_it():
    # predict(np.broadcast_to(1, (10**9, 8))): np.isfinite made a 7.45 GiB mask of it first
    code = """
import numpy as np
from wsekern import nn
model = nn.Sequential([nn.Input((8,)), nn.layers.Dense(4)])
model.compile("sgd", "mse")
x = np.broadcast_to(np.float32(1), (10**9, 8))
cases = [lambda: model.predict(x, verbose=0),
         lambda: model.fit(x, np.broadcast_to(np.float32(0), (10**9, 4)), verbose=0,
                           steps_per_epoch=1)]
"""
    assert_refused_in_child(code, 2, errors=(MemoryError,), needles=("a broadcast view",),
                            limit_gb=4)
    from wsekern import nn
    model = nn.Sequential([nn.Input((8,)), nn.layers.Dense(4)])
    small = np.broadcast_to(np.float32(1), (16, 8))           # a small one is still taken
    np.testing.assert_array_equal(model.predict(small, verbose=0),
                                  model.predict(np.ones((16, 8), np.float32), verbose=0))


@pytest.mark.parametrize("store", ["new/folders/r.csv", "new/folders/r.parquet"])
def test_cli_sweep_store_may_go_into_folders_it_makes(store, tmp_path, capsys):
    # the sweep's store makes its own folders: the early path check must not refuse that
    pytest.importorskip("pandas")
    if store.endswith(".parquet"):
        pytest.importorskip("pyarrow")
    from wsekern import cli
    spec = tmp_path / "spec.toml"
    spec.write_text('workload = "spmm"\nbase = "small"\n[space]\nm = [16]\nk = [16]\n'
                    'n = [2]\n')
    assert cli.main(["sweep", str(spec), "--serial", "--out", str(tmp_path / store)]) == 0
    assert (tmp_path / store).exists()


def test_byte_swapped_conv_and_pool_operands_are_converted():
    # conv2d, conv2d_backward and the pools take '>f4'/'>f8' as NumPy does (they were
    # refused): the same bits as the native call, which the conv tests hold against torch
    from test_conv import conv_reference
    rng = np.random.default_rng(1)
    for dt in (">f4", ">f8"):
        x = rng.standard_normal((2, 3, 7, 6)).astype(dt)
        w = (rng.standard_normal((4, 3, 3, 3)) * (rng.random((4, 3, 3, 3)) < 0.5)).astype(dt)
        xn, wn = x.astype(x.dtype.newbyteorder("=")), w.astype(w.dtype.newbyteorder("="))
        y = wsekern.conv2d(x, w, padding=1)
        assert y.dtype.isnative and np.array_equal(y, wsekern.conv2d(xn, wn, padding=1))
        np.testing.assert_allclose(y, conv_reference(xn, wn, None, 1, 1, 1, 1), rtol=1e-4,
                                   atol=1e-4)
        g = rng.standard_normal(y.shape).astype(dt)
        for a, b in zip(wsekern.conv2d_backward(g, x, w, padding=1),
                        wsekern.conv2d_backward(g.astype(y.dtype), xn, wn, padding=1)):
            assert np.array_equal(a, b)
        for pool, back in ((wsekern.max_pool2d, wsekern.max_pool2d_backward),
                           (wsekern.avg_pool2d, wsekern.avg_pool2d_backward)):
            p = pool(x, 2)
            assert np.array_equal(p, pool(xn, 2))
            gp = rng.standard_normal(p.shape).astype(dt)
            assert np.array_equal(back(gp, x, 2), back(gp.astype(p.dtype), xn, 2))
