"""A pruned Conv2D's training step on channel planes (wsekern.conv_planes): the kernels
against a loop-free NumPy reference of the masked convolution, the layer against the
masked-GEMM path, finite differences and (where installed) PyTorch step for step; NaN,
dtypes, and hostile sizes in a child process."""
import textwrap

import numpy as np
import pytest
from conftest import assert_refused_in_child

from wsekern import conv_planes
from wsekern.nn import Input, Sequential, layers
from wsekern.nn.tensor import Tensor


def conv_reference(x, k, pads, dilation):
    """Channels-last cross-correlation by a sum over taps (NumPy, float64)."""
    (t, b), (l, r) = pads
    xp = np.pad(x.astype(np.float64), ((0, 0), (t, b), (l, r), (0, 0)))
    kh, kw, _, O = k.shape
    dh, dw = dilation
    OH, OW = xp.shape[1] - (kh - 1) * dh, xp.shape[2] - (kw - 1) * dw
    y = np.zeros((x.shape[0], OH, OW, O))
    for i in range(kh):
        for j in range(kw):
            y += xp[:, i * dh:i * dh + OH, j * dw:j * dw + OW] @ k[i, j].astype(np.float64)
    return y


def grads_reference(x, k, mask, pads, dilation, R):
    """(dx, dk) of sum(conv(x, k) * R) by the adjoint sums, dk masked."""
    (t, b), (l, r) = pads
    xp = np.pad(x.astype(np.float64), ((0, 0), (t, b), (l, r), (0, 0)))
    kh, kw = k.shape[:2]
    dh, dw = dilation
    OH, OW = R.shape[1:3]
    gxp, gk = np.zeros_like(xp), np.zeros(k.shape)
    for i in range(kh):
        for j in range(kw):
            win = xp[:, i * dh:i * dh + OH, j * dw:j * dw + OW]
            gk[i, j] = np.einsum("bhwc,bhwo->co", win, R)
            gxp[:, i * dh:i * dh + OH, j * dw:j * dw + OW] += R @ k[i, j].T.astype(np.float64)
    return gxp[:, t:t + x.shape[1], l:l + x.shape[2]], gk * mask


CASES = [   # (x shape, kernel (kh, kw, C, O), pads, dilation, density)
    ((2, 7, 9, 3), (3, 3, 3, 5), ((0, 0), (0, 0)), (1, 1), 0.3),
    ((3, 6, 6, 4), (3, 3, 4, 6), ((1, 1), (1, 1)), (1, 1), 0.5),
    ((2, 9, 8, 2), (3, 2, 2, 3), ((1, 2), (0, 1)), (2, 1), 0.4),
    ((1, 5, 5, 1), (3, 3, 1, 4), ((0, 0), (0, 0)), (1, 1), 0.2),    # one input channel
    ((2, 4, 5, 3), (1, 1, 3, 2), ((0, 0), (0, 0)), (1, 1), 1.0),    # 1x1, nothing pruned
    ((2, 3, 6, 2), (3, 3, 2, 3), ((0, 0), (0, 0)), (1, 1), 0.5),    # one output row
    ((2, 5, 5, 3), (3, 3, 3, 4), ((1, 1), (1, 1)), (1, 1), 0.0),    # everything pruned
    ((0, 5, 5, 3), (3, 3, 3, 4), ((1, 1), (1, 1)), (1, 1), 0.5),    # empty batch
]


def _operands(shape, kshape, density, dtype, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    mask = rng.random(kshape) < density
    k = (rng.standard_normal(kshape) * mask).astype(dtype)
    return x, k, mask


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, kshape, pads, dilation, density", CASES)
def test_kernels_match_the_masked_convolution(shape, kshape, pads, dilation, density, dtype):
    x, k, mask = _operands(shape, kshape, density, dtype)
    g = conv_planes.PlaneGeometry.of(shape, kshape, pads, dilation)
    pat = conv_planes.PlanePattern(mask, g)
    X = conv_planes.to_planes(x, g)
    bias = np.linspace(-1, 1, kshape[3]).astype(dtype)
    y = conv_planes.forward(X, k.ravel()[pat.flat_o], pat, bias, relu=False)
    ref = conv_reference(x, k, pads, dilation) + bias
    assert y.dtype == dtype and y.shape == ref.shape
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(y, ref, **tol)
    yr = conv_planes.forward(X, k.ravel()[pat.flat_o], pat, None, relu=True)
    np.testing.assert_allclose(yr, np.maximum(ref - bias, 0), **tol)

    R = np.random.default_rng(1).standard_normal(ref.shape).astype(dtype)
    G, db = conv_planes.grad_planes(R, y, False, g)
    assert db.dtype == dtype
    np.testing.assert_allclose(db, R.sum(axis=(0, 1, 2)), **tol)
    gk = np.zeros(kshape, dtype)
    gk.ravel()[pat.flat_o] = conv_planes.grad_weight(X, G, pat)
    gx = conv_planes.grad_input(G, k.ravel()[pat.flat_c], pat)
    rgx, rgk = grads_reference(x, k, mask, pads, dilation, R)
    assert gx.dtype == gk.dtype == dtype and gx.shape == x.shape
    np.testing.assert_allclose(gx, rgx, **tol)
    np.testing.assert_allclose(gk, rgk, **tol)


def test_relu_gradient_uses_the_output():
    """grad_planes with relu passes the gradient only where the ReLU's output is > 0."""
    x, k, mask = _operands((2, 6, 6, 3), (3, 3, 3, 4), 0.5, np.float64)
    g = conv_planes.PlaneGeometry.of(x.shape, k.shape, ((0, 0), (0, 0)), (1, 1))
    pat = conv_planes.PlanePattern(mask, g)
    X = conv_planes.to_planes(x, g)
    y = conv_planes.forward(X, k.ravel()[pat.flat_o], pat, None, relu=True)
    R = np.random.default_rng(2).standard_normal(y.shape)
    G, db = conv_planes.grad_planes(R, y, True, g)
    G0, db0 = conv_planes.grad_planes(R * (y > 0), y, False, g)
    np.testing.assert_array_equal(G, G0)
    np.testing.assert_allclose(db, db0, rtol=1e-12)
    assert (y == 0).any() and (y > 0).any()


def _pruned_layer(sparsity=0.7, padding="same", dilation=1, dtype="float64", seed=0):
    layer = layers.Conv2D(5, 3, padding=padding, dilation_rate=dilation, activation="relu",
                          sparsity=sparsity, dtype=dtype)
    x = np.random.default_rng(seed).standard_normal((3, 8, 7, 4)).astype(dtype)
    layer(Tensor(x))
    layer.bias.data[...] = np.linspace(-0.2, 0.2, 5)
    return layer, x


def _step(layer, x, R, planes, monkeypatch):
    """(y, dx, dkernel, dbias) of sum(layer(x) * R), the planes path forced on or off."""
    monkeypatch.setattr(conv_planes, "planes_pay", lambda *a, **k: planes)
    calls = []
    real = conv_planes.forward
    monkeypatch.setattr(conv_planes, "forward", lambda *a, **k: calls.append(1) or real(*a, **k))
    layer.kernel.grad = layer.bias.grad = None
    xt = Tensor(x, requires_grad=True)
    y = layer(xt)
    (y * Tensor(R)).sum().backward()
    return calls, (y.data, xt.grad, layer.kernel.grad, layer.bias.grad)


@pytest.mark.parametrize("padding, dilation", [("same", 1), ("valid", 1), ("valid", 2)])
def test_layer_planes_equal_the_masked_gemm(padding, dilation, monkeypatch):
    """The same output and gradients through the planes as through im2col + GEMM on the
    masked kernel; the pruned weights get no gradient."""
    layer, x = _pruned_layer(padding=padding, dilation=dilation)
    R = np.random.default_rng(5).standard_normal(layer(Tensor(x)).shape)
    used, test = _step(layer, x, R, True, monkeypatch)
    unused, ref = _step(layer, x, R, False, monkeypatch)
    assert used and not unused                # each path was the one taken
    for a, b in zip(test, ref):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    assert not test[2][~layer.weight_mask].any()


def test_layer_finite_differences(monkeypatch):
    """The planes path's gradients against central differences (float64, no ReLU kink)."""
    monkeypatch.setattr(conv_planes, "planes_pay", lambda *a, **k: True)
    layer = layers.Conv2D(3, 3, padding="same", sparsity=0.6, dtype="float64")
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 5, 6, 2))
    layer(Tensor(x))
    R = rng.standard_normal((2, 5, 6, 3))
    f = lambda xx: float((layer(Tensor(xx)).data * R).sum())            # noqa: E731
    xt = Tensor(x, requires_grad=True)
    layer.kernel.grad = None
    (layer(xt) * Tensor(R)).sum().backward()
    num = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[idx] = 1e-6
        num[idx] = (f(x + e) - f(x - e)) / 2e-6
    np.testing.assert_allclose(xt.grad, num, rtol=1e-6, atol=1e-7)
    k = layer.kernel.data
    kept = np.argwhere(layer.weight_mask)
    for idx in map(tuple, kept[:: max(1, len(kept) // 12)]):
        old = k[idx]
        k[idx] = old + 1e-6
        up = f(x)
        k[idx] = old - 1e-6
        down = f(x)
        k[idx] = old
        np.testing.assert_allclose(layer.kernel.grad[idx], (up - down) / 2e-6, rtol=1e-6,
                                   atol=1e-7)


@pytest.mark.parametrize("where", ["x", "grad"])
def test_nonfinite_takes_the_dense_answer(where, monkeypatch):
    """NaN/inf in x (or in the output gradient) give what the masked GEMM gives: a pruned
    weight's 0 * inf is NaN there, so the planes path must not skip it."""
    layer, x = _pruned_layer()
    x = x.copy()
    y = layer(Tensor(x)).data
    R = np.random.default_rng(6).standard_normal(y.shape)
    if where == "x":
        x[0, 2, 3, 1] = np.nan
        x[1, 0, 0, 0] = np.inf
    else:      # where the ReLU is on (where it is off the gradient is 0, as in torch)
        on = np.argwhere(y > 0)
        R[tuple(on[0])] = np.nan
        R[tuple(on[-1])] = -np.inf
    _, test = _step(layer, x, R, True, monkeypatch)
    _, ref = _step(layer, x, R, False, monkeypatch)
    for a, b in zip(test, ref):
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    assert any(np.isnan(a).any() for a in test)


def test_training_keeps_float32_and_the_pruned_zeros(monkeypatch):
    """Adam steps through the planes: float32 stays float32 everywhere, the pruned weights
    stay exactly zero, and the loss falls."""
    monkeypatch.setattr(conv_planes, "planes_pay", lambda *a, **k: True)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 10, 10, 1)).astype(np.float32)
    y = (x[:, :5].sum(axis=(1, 2, 3)) > 0).astype(np.int64)
    model = Sequential([Input(shape=(10, 10, 1)),
                        layers.Conv2D(8, 3, activation="relu", sparsity=0.8),
                        layers.Conv2D(8, 3, activation="relu", sparsity=0.9),
                        layers.Flatten(), layers.Dense(2, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    hist = model.fit(x, y, batch_size=8, epochs=6, verbose=0)
    assert hist.history["loss"][-1] < hist.history["loss"][0]
    for layer in model.layers[:2]:
        assert layer.kernel.data.dtype == np.float32
        assert not layer.kernel.data[~layer.weight_mask].any()
    assert model.predict(x[:3], verbose=0).dtype == np.float32


def test_changed_mask_rebuilds_the_pattern(monkeypatch):
    """A mask changed in place (a pruning schedule) is seen on the next call."""
    monkeypatch.setattr(conv_planes, "planes_pay", lambda *a, **k: True)
    layer, x = _pruned_layer(sparsity=0.5)
    layer(Tensor(x))
    layer.weight_mask[...] = False
    layer.weight_mask[1, 1] = True
    layer.kernel.data *= layer.weight_mask
    y = layer(Tensor(x)).data
    ref = np.maximum(conv_reference(x, layer.kernel.data, ((1, 1), (1, 1)), (1, 1))
                     + layer.bias.data, 0)
    np.testing.assert_allclose(y, ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("optimizer, atol", [("sgd", 1e-8), ("adam", 1e-8)])
def test_matches_torch_step_for_step_when_installed(optimizer, atol, monkeypatch):
    """A pruned convnet trained through the planes and the same net in PyTorch (masked
    weights, masked gradients) agree after every step, SGD and Adam."""
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(conv_planes, "planes_pay", lambda *a, **k: True)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((16, 9, 9, 2))
    y = rng.integers(0, 3, 16)
    model = Sequential([Input(shape=(9, 9, 2)),
                        layers.Conv2D(6, 3, activation="relu", sparsity=0.7, dtype="float64"),
                        layers.Conv2D(4, 3, padding="same", activation="relu", sparsity=0.8,
                                      dtype="float64"),
                        layers.Flatten(dtype="float64"),
                        layers.Dense(3, activation="softmax", dtype="float64")])
    from wsekern.nn import optimizers
    # epsilon tiny: Keras and torch place it differently, which shows for tiny gradients
    model.compile(optimizer=optimizers.SGD(0.1) if optimizer == "sgd"
                  else optimizers.Adam(1e-3, epsilon=1e-14),
                  loss="sparse_categorical_crossentropy")
    c1, c2, _, d = model.layers
    t = lambda a: torch.from_numpy(np.array(a))        # copies, not the layers' memory  # noqa: E731
    w1 = t(c1.kernel.data.transpose(3, 2, 0, 1)).requires_grad_()
    w2 = t(c2.kernel.data.transpose(3, 2, 0, 1)).requires_grad_()
    b1, b2 = t(c1.bias.data).requires_grad_(), t(c2.bias.data).requires_grad_()
    wd, bd = t(d.kernel.data).requires_grad_(), t(d.bias.data).requires_grad_()
    m1, m2 = (t(c.weight_mask.transpose(3, 2, 0, 1)) for c in (c1, c2))
    params = [w1, b1, w2, b2, wd, bd]
    opt = (torch.optim.SGD(params, lr=0.1) if optimizer == "sgd"
           else torch.optim.Adam(params, lr=1e-3, eps=1e-14))
    F = torch.nn.functional
    for s in range(0, 16, 4):
        model.train_on_batch(x[s:s + 4], y[s:s + 4])
        opt.zero_grad()
        h = F.relu(F.conv2d(t(x[s:s + 4].transpose(0, 3, 1, 2)), w1, b1))
        h = F.relu(F.conv2d(h, w2, b2, padding=1))
        out = h.permute(0, 2, 3, 1).reshape(4, -1) @ wd + bd
        F.cross_entropy(out, t(y[s:s + 4])).backward()
        w1.grad *= m1
        w2.grad *= m2
        opt.step()
        for ours, theirs in ((c1.kernel.data.transpose(3, 2, 0, 1), w1),
                             (c2.kernel.data.transpose(3, 2, 0, 1), w2), (c2.bias.data, b2),
                             (d.kernel.data, wd)):
            np.testing.assert_allclose(ours, theirs.detach(), rtol=0, atol=atol)


def test_cost_choice_prefers_planes_only_when_sparse():
    """planes_pay follows the kept fraction: the keras.io convnet's second layer takes the
    planes at 10% kept and the GEMMs dense."""
    g = conv_planes.PlaneGeometry.of((128, 13, 13, 32), (3, 3, 32, 64), ((0, 0), (0, 0)),
                                     (1, 1))
    K = 3 * 3 * 32 * 64
    assert conv_planes.planes_pay((128, 13, 13, 32), g, K // 10)
    assert not conv_planes.planes_pay((128, 13, 13, 32), g, K)


def test_hostile_sizes_in_a_child_process():
    """Planes whose int32 offsets would overflow, and kernels that do not fit, are refused
    with a clear exception (and the layer falls back to the GEMMs); never a crash."""
    code = textwrap.dedent("""
        import numpy as np
        from wsekern import conv_planes
        big = conv_planes.PlaneGeometry.of((1, 40000, 40000, 4), (3, 3, 4, 4),
                                           ((0, 0), (0, 0)), (1, 1))
        assert not conv_planes.planes_pay((1, 40000, 40000, 4), big, 3)
        cases = [
            lambda: conv_planes.PlanePattern(np.ones((3, 3, 4, 4), bool), big),
            lambda: conv_planes.PlaneGeometry.of((1, 4, 4, 1), (5, 5, 1, 2),
                                                 ((0, 0), (0, 0)), (1, 1)),
            lambda: conv_planes.PlaneGeometry.of((1, 4, 4, 2), (3, 3, 1, 2),
                                                 ((0, 0), (0, 0)), (1, 1)),
            lambda: conv_planes.PlaneGeometry.of((1, 9, 9, 1), (3, 3, 1, 2),
                                                 ((0, 0), (0, 0)), (5, 5)),
        ]
    """)
    assert_refused_in_child(code, 4, (ValueError, MemoryError), ())


def test_public_functions_refuse_operands_that_do_not_match_the_geometry():
    """The plane loops run unchecked: a wrong-shaped X, grad or x, too few values or a
    short bias segfaulted or read heap garbage (review). Each is now refused, naming what
    was received - in a child process, so a crash fails this test."""
    code = textwrap.dedent("""
        import numpy as np
        from wsekern import conv_planes as cp
        g = cp.PlaneGeometry.of((2, 6, 6, 4), (3, 3, 4, 4), ((1, 1), (1, 1)), (1, 1))
        pat = cp.PlanePattern(np.ones((3, 3, 4, 4), bool), g)
        x = np.ones((2, 6, 6, 4))
        X = cp.to_planes(x, g)
        vals = np.ones(pat.nnz)
        y = cp.forward(X, vals, pat)
        G, _ = cp.grad_planes(np.ones_like(y), y, False, g)
        g2 = cp.PlaneGeometry.of((2, 30, 30, 4), (3, 3, 4, 4), ((1, 1), (1, 1)), (1, 1))
        cases = [
            lambda: cp.to_planes(np.ones((2, 300, 300, 4)), g),
            lambda: cp.to_planes(x.astype(np.float16), g),
            lambda: cp.forward(cp.to_planes(np.ones((2, 30, 30, 4)), g2), vals, pat),
            lambda: cp.forward(X, np.ones(1), pat),
            lambda: cp.forward(X, vals.astype(np.float32), pat),
            lambda: cp.forward(X, vals, pat, bias=np.array([1.0])),
            lambda: cp.grad_planes(np.ones((2, 30, 30, 4)), np.ones((2, 30, 30, 4)), False, g),
            lambda: cp.grad_planes(np.ones_like(y), y[:1], False, g),
            lambda: cp.grad_weight(X, G[:1], pat),
            lambda: cp.grad_weight(X[:, :2], G, pat),
            lambda: cp.grad_input(G, np.ones(3), pat),
            lambda: cp.grad_input(G[:, :, :5], vals, pat),
        ]
    """)
    assert_refused_in_child(code, 12, (ValueError, TypeError), ("received",))


def test_set_weights_keeps_the_pattern_so_every_path_agrees(monkeypatch):
    """set_weights with a dense kernel left the pruned positions nonzero: the planes path
    skipped them and the GEMMs used them (outputs 29 apart on one image)."""
    layer, x = _pruned_layer()
    dense = np.random.default_rng(8).standard_normal(layer.kernel.shape)
    layer.set_weights([dense, layer.bias.data.copy()])
    assert not layer.kernel.data[~layer.weight_mask].any()
    np.testing.assert_array_equal(layer.kernel.data[layer.weight_mask],
                                  dense[layer.weight_mask])
    R = np.ones(layer(Tensor(x)).shape)
    _, test = _step(layer, x, R, True, monkeypatch)
    _, ref = _step(layer, x, R, False, monkeypatch)
    np.testing.assert_allclose(test[0], ref[0], rtol=1e-10, atol=1e-12)


def test_a_nonfinite_kept_weight_takes_the_dense_answer(monkeypatch):
    """An inf kept weight met the zero padding of the gradient's planes (0 * inf = NaN on
    border pixels no output reaches through that tap); the GEMMs give finite values."""
    layer, x = _pruned_layer(padding="valid")
    k = layer.kernel.data
    k[tuple(np.argwhere(layer.weight_mask)[0])] = np.inf
    R = np.random.default_rng(9).standard_normal(layer(Tensor(x)).shape)
    _, test = _step(layer, x, R, True, monkeypatch)
    _, ref = _step(layer, x, R, False, monkeypatch)
    for a, b in zip(test, ref):
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
