"""review_k3 (session 19): what a fresh review of keras19's .keras reader and ops19's keras.ops
found. Each test failed on the code before its fix."""
import io
import os
import zipfile

import numpy as np
import pytest
from conftest import run_in_child

from wsekern import nn


# -- a Keras file whose model.weights.h5 points outside itself ----------------------------
def _keras_members(keras, path):
    keras.utils.set_random_seed(0)
    km = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    km.save(path)
    with zipfile.ZipFile(path) as z:
        return {n: z.read(n) for n in z.namelist()}


def _with_kernel(members, path, make):
    """The file with layers/dense's kernel (vars/0) replaced by ``make(vars_group)``."""
    h5py = pytest.importorskip("h5py")
    buf = io.BytesIO()
    with h5py.File(io.BytesIO(members["model.weights.h5"]), "r") as src, \
            h5py.File(buf, "w") as dst:
        for k in src:
            src.copy(src[k], dst, name=k)
        del dst["layers/dense/vars/0"]
        make(dst["layers/dense/vars"])
    with zipfile.ZipFile(path, "w") as z:
        for n, data in members.items():
            z.writestr(n, buf.getvalue() if n == "model.weights.h5" else data)


@pytest.mark.parametrize("case", ["external-file", "external-fifo", "external-link",
                                  "virtual", "soft-link"])
def test_weights_kept_outside_the_h5_file_are_refused(keras, tmp_path, case):
    """Before: external raw storage read a local file into the kernel, a FIFO there hung
    the load, a virtual dataset whose source is missing loaded as zeros, links were
    followed."""
    h5py = pytest.importorskip("h5py")
    members = _keras_members(keras, tmp_path / "good.keras")
    local = tmp_path / "local.bin"
    np.arange(8, dtype="<f4").tofile(local)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["k"] = np.full((4, 2), 7.0, "f4")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)

    def virtual(g):
        layout = h5py.VirtualLayout((4, 2), "f4")
        layout[:] = h5py.VirtualSource(str(tmp_path / "gone.h5"), "k", shape=(4, 2))
        g.create_virtual_dataset("0", layout)
    make = {"external-file": lambda g: g.create_dataset("0", (4, 2), "f4",
                                                        external=[(str(local), 0, 32)]),
            "external-fifo": lambda g: g.create_dataset("0", (4, 2), "f4",
                                                        external=[(str(fifo), 0, 32)]),
            "external-link": lambda g: g.__setitem__("0", h5py.ExternalLink(str(other), "k")),
            "soft-link": lambda g: g.__setitem__("0", h5py.SoftLink("/layers/dense/vars/1")),
            "virtual": virtual}[case]
    path = tmp_path / f"{case}.keras"
    _with_kernel(members, path, make)
    proc = run_in_child(f"""
        from wsekern import nn
        try:
            m = nn.load_model({str(path)!r})
        except ValueError as e:
            print("ValueError ::", e)
        else:
            print("LOADED", m.layers[-1].get_weights()[0].ravel().tolist())
        """, limit_gb=3, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "ValueError ::" in proc.stdout, proc.stdout[-2000:]
    assert ("outside model.weights.h5" in proc.stdout
            or "Link (Keras writes none)" in proc.stdout), proc.stdout[-2000:]


def test_a_keras_file_without_links_or_external_data_still_loads(keras, tmp_path):
    members = _keras_members(keras, tmp_path / "good.keras")
    x = np.random.default_rng(0).normal(size=(3, 4)).astype("float32")
    km = keras.models.load_model(tmp_path / "good.keras")
    model = nn.load_model(tmp_path / "good.keras")
    np.testing.assert_allclose(model.predict(x, verbose=0), km.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-6)
    assert "model.weights.h5" in members


# -- keras.ops -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["hard_shrink", "soft_shrink"])
def test_shrink_keeps_nan_as_keras_on_torch(keras, name):
    """Before: a NaN came out 0 (the comparison with the threshold is False for NaN)."""
    x = np.array([np.nan, 2.0, -2.0, 0.1, -0.7], "float32")
    want = keras.ops.convert_to_numpy(getattr(keras.ops, name)(x))
    got = getattr(nn.ops, name)(x).numpy()
    assert got.dtype == want.dtype
    np.testing.assert_allclose(got, want, rtol=1e-6, equal_nan=True)
    assert np.isnan(got[0])


@pytest.mark.parametrize("name", ["max", "min", "amax", "ptp", "nanmax", "nanmin"])
def test_an_extremum_over_a_non_empty_axis_of_an_empty_tensor_is_empty(keras, name):
    """(0, 4) reduced over its last axis is (0,) in NumPy and Keras; before, refused as
    "an empty tensor has no identity". Over the empty axis it is still refused."""
    e = np.zeros((0, 4), "float32")
    want = getattr(np, name)(e, axis=-1)
    for kd in (False, True):
        got = getattr(nn.ops, name)(e, axis=-1, keepdims=kd).numpy()
        assert got.shape == getattr(np, name)(e, axis=-1, keepdims=kd).shape
        assert got.dtype == want.dtype
    with pytest.raises(ValueError, match="no identity"):
        getattr(nn.ops, name)(e, axis=0)


def _grad_of_custom(o, grad_fn_kind, x, to_grad):
    @o.custom_gradient
    def scaled(t):
        def d(g):
            return g * (1 - o.tanh(t) ** 2) * 3.0
        fns = {"docs-example": lambda *a, upstream=None: d(a[0] if upstream is None else upstream),
               "input-then-upstream": lambda x_, upstream=None: d(upstream * x_ / t),
               "keyword-only": lambda *a, upstream: d(upstream),
               "positional": lambda upstream: d(upstream)}
        return o.tanh(t), fns[grad_fn_kind]
    return to_grad(scaled, x)


@pytest.mark.parametrize("kind", ["docs-example", "input-then-upstream", "keyword-only",
                                  "positional"])
def test_custom_gradient_calls_grad_fn_as_keras_on_torch(keras, kind):
    """Keras on torch calls grad_fn(*inputs, upstream=g). Before, ours called grad_fn(g), so
    a grad_fn written for that call (upstream keyword-only, or after the inputs) failed with
    an unrelated TypeError (None * a tensor); Keras's docs example works either way."""
    import torch

    from wsekern.nn.tensor import Tensor
    x0 = np.array([0.3, -1.0, 2.0], "float32")
    r = np.array([1.0, 2.0, 3.0], "float32")

    def ours(fn, x):
        t = Tensor(x.copy(), requires_grad=True)
        nn.ops.sum(fn(t) * r).backward()
        return np.asarray(t.grad)

    def theirs(fn, x):
        t = torch.tensor(x, requires_grad=True)
        (fn(t) * torch.tensor(r)).sum().backward()
        return t.grad.numpy()
    want = r * (1 - np.tanh(x0) ** 2) * 3.0
    if kind != "positional":         # Keras on torch passes upstream by keyword only
        np.testing.assert_allclose(_grad_of_custom(keras.ops, kind, x0, theirs), want,
                                   rtol=1e-5)
    np.testing.assert_allclose(_grad_of_custom(nn.ops, kind, x0, ours), want, rtol=1e-5)


# -- a zip whose headers do not match its bytes -------------------------------------------
def _patched_zip(members, name, patch):
    """The zip of ``members`` with ``patch(data, central_offset, local_offset)`` applied to
    member ``name``'s headers."""
    import struct
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for n, d in members.items():
            z.writestr(n, d)
    data = bytearray(buf.getvalue())
    i = 0
    while (i := data.find(b"PK\x01\x02", i)) >= 0:
        nlen = struct.unpack_from("<H", data, i + 28)[0]
        if data[i + 46:i + 46 + nlen].decode() == name:
            patch(data, i, struct.unpack_from("<I", data, i + 42)[0])
        i += 4
    return bytes(data)


def _declare_size(n):
    import struct
    return lambda data, c, _: struct.pack_into("<I", data, c + 24, n)


def _method(m):
    import struct

    def patch(data, c, loc):
        struct.pack_into("<H", data, c + 10, m)
        struct.pack_into("<H", data, loc + 8, m)
    return patch


def _encrypted(data, c, loc):
    import struct
    for at in (c + 8, loc + 6):
        struct.pack_into("<H", data, at, struct.unpack_from("<H", data, at)[0] | 1)


@pytest.mark.parametrize("case", ["keras-weights-size", "keras-config-size", "ours-config-size",
                                  "ours-array-size", "unknown-method", "encrypted"])
def test_a_zip_whose_headers_lie_gets_a_value_error(keras, tmp_path, case):
    """Before: zipfile.BadZipFile (a CRC check), NotImplementedError (compression method)
    or RuntimeError (password) escaped load_model instead of its ValueError."""
    if case.startswith("keras"):
        members = _keras_members(keras, tmp_path / "good.keras")
    else:
        m = nn.Sequential([nn.Input((4,)), nn.layers.Dense(2)])
        m.save(tmp_path / "good.wsekern")
        with zipfile.ZipFile(tmp_path / "good.wsekern") as z:
            members = {n: z.read(n) for n in z.namelist()}
    array = next((n for n in members if n.endswith(".npy")), None)
    name, patch = {"keras-weights-size": ("model.weights.h5", _declare_size(100)),
                   "keras-config-size": ("config.json", _declare_size(10)),
                   "ours-config-size": ("config.json", _declare_size(10)),
                   "ours-array-size": (array, _declare_size(8)),
                   "unknown-method": ("config.json", _method(77)),
                   "encrypted": ("config.json", _encrypted)}[case]
    path = tmp_path / "bad.keras"
    path.write_bytes(_patched_zip(members, name, patch))
    proc = run_in_child(f"""
        from wsekern import nn
        try:
            nn.load_model({str(path)!r})
        except ValueError as e:
            print("ValueError ::", e)
        else:
            print("LOADED")
        """, limit_gb=3, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "ValueError ::" in proc.stdout and repr(name) in proc.stdout, proc.stdout[-2000:]


def test_a_mixed_precision_keras_file_is_refused_by_its_policy(keras, tmp_path):
    """Before: "TypeError: data type 'mixed_float16' not understood" from NumPy."""
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        km = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4),
                               keras.layers.Dense(2, dtype="float32")])
    finally:
        keras.mixed_precision.set_global_policy("float32")
    km.save(tmp_path / "k.keras")
    with pytest.raises(ValueError, match="mixed precision policy 'mixed_float16'"):
        nn.load_model(tmp_path / "k.keras")


def test_linspace_logspace_geomspace_carry_a_gradient_to_start_and_stop():
    """Before: np.linspace detached a Tensor start/stop, so no gradient reached them."""
    from test_ops_keras_s19 import check_grad

    from wsekern.nn.tensor import Tensor
    ops, se = nn.ops, np.array([0.3, 2.0])
    check_grad(lambda a: ops.linspace(a[0], a[1], 5, dtype="float64"), se)
    check_grad(lambda a: ops.linspace(a[0], a[1], 4, endpoint=False, dtype="float64"), se)
    check_grad(lambda a: ops.logspace(a[0], a[1], 4, base=2.0, dtype="float64"), se)
    check_grad(lambda a: ops.geomspace(a[0] + 2, a[1] + 5, 4, dtype="float64"), se)
    check_grad(lambda a: ops.geomspace(-a[0] - 2, -a[1] - 5, 4, dtype="float64"), se)
    check_grad(lambda a, b: ops.linspace(a, b, 3, axis=1, dtype="float64"), se,
               np.array([1.0, -1.0]))
    a, b = np.array([0.3, 2.0], "float32"), np.array([1.0, -1.0], "float32")
    for kw in ({}, {"endpoint": False}, {"axis": 1}):        # values as NumPy's
        got = ops.linspace(Tensor(a, requires_grad=True), b, 4, **kw).numpy()
        np.testing.assert_allclose(got, np.linspace(a, b, 4, **kw), rtol=1e-6)
        assert got.dtype == np.float32
    np.testing.assert_allclose(ops.geomspace(Tensor(np.float32(1.0), requires_grad=True),
                                             100.0, 3).numpy(), [1, 10, 100], rtol=1e-5)
