"""The keras.ops that session 20 added to wsekern.nn.ops (CTC, the Fourier transforms on
(real, imag) pairs, adaptive pooling, fold/unfold, rearrange, jvp) and its dtype fixes:
values and dtypes against keras.ops on the torch backend (skipped without Keras),
gradients against central finite differences in float64 (run everywhere, CI included) and
against torch autograd through keras.ops."""
import numpy as np
import pytest
from ops_grads import as_list, check_grad, our_grads, torch_grads
from test_nn_grad import numeric_grad

from wsekern.nn import ops
from wsekern.nn.tensor import Tensor

rng = np.random.default_rng(20)
LOGITS = rng.standard_normal((3, 6, 5)).astype(np.float32)      # (batch, time, classes)
LABELS = np.array([[1, 2, 2], [1, 1, 3], [4, 3, 3]], dtype=np.int32)
RE = rng.standard_normal((2, 3, 8)).astype(np.float32)
IM = rng.standard_normal((2, 3, 8)).astype(np.float32)
SIG = rng.standard_normal((2, 40)).astype(np.float32)
IMG = rng.standard_normal((2, 7, 9, 3)).astype(np.float32)
VOL = rng.standard_normal((1, 5, 6, 7, 2)).astype(np.float32)
NCHW = rng.standard_normal((2, 3, 7, 8)).astype(np.float32)
PHOTOS = rng.standard_normal((4, 6, 8, 3)).astype(np.float32)
BOOLS = np.array([[True, False, True], [True, True, False]])


class _Later:
    """An argument made by ops when the test runs (not at collection)."""
    def __init__(self, fn, *args, **kwargs):
        self.fn, self.args, self.kwargs = fn, args, kwargs

    def __call__(self):
        return self.fn(*self.args, **self.kwargs)


def _resolve(v):
    if isinstance(v, _Later):
        return v()
    if isinstance(v, tuple):
        return tuple(_resolve(x) for x in v)
    return v


def _stft_np(sl, ss, fl, window, center):
    re, im = ops.stft(SIG, sl, ss, fl, window, center)
    return re.data, im.data


def _spectrum(*args):
    """An stft of SIG (NumPy arrays, for istft's inputs)."""
    return _Later(_stft_np, *args)


def _unfolded(**kw):
    return _Later(lambda: ops.unfold(NCHW, **kw).data)


L = np.array
VALUES = [
    # CTC: lengths full, short, zero; an impossible alignment (inf); another blank
    ("ctc_loss", (LABELS, LOGITS, L([2, 3, 1]), L([6, 6, 6])), {}),
    ("ctc_loss", (LABELS, LOGITS, L([2, 3, 0]), L([6, 2, 0])), {}),
    ("ctc_loss", (LABELS, LOGITS, L([3, 3, 1]), L([1, 3, 4])), {}),
    ("ctc_loss", (LABELS, LOGITS, L([0, 0, 0]), L([6, 6, 6])), {}),
    ("ctc_loss", (np.where(LABELS == 4, 0, LABELS), LOGITS, L([3, 2, 1]), L([6, 5, 4])),
     {"mask_index": 4}),
    ("ctc_loss", (LABELS, LOGITS.astype(np.float64), L([2, 3, 1]), L([6, 6, 6])), {}),
    ("ctc_loss", (LABELS, LOGITS.astype(np.float16), L([2, 3, 1]), L([6, 6, 6])), {}),
    ("ctc_loss", (LABELS.astype(np.float32), LOGITS, L([2, 3, 1]), L([6, 6, 6])), {}),
    ("ctc_decode", (LOGITS, L([6, 3, 0])), {}),
    ("ctc_decode", (LOGITS, L([6, 6, 6])), {"merge_repeated": False}),
    ("ctc_decode", (LOGITS, L([6, 4, 2])), {"mask_index": 4}),
    ("ctc_decode", (LOGITS.astype(np.float64), L([5, 6, 1])), {"mask_index": None}),
    ("ctc_decode", (LOGITS, L([6, 3, 1])), {"strategy": "beam_search", "beam_width": 3,
                                            "top_paths": 2}),
    ("ctc_decode", (LOGITS, L([6, 3, 1])), {"strategy": "beam_search", "beam_width": 5,
                                            "top_paths": 5, "mask_index": 4}),
    ("ctc_decode", (LOGITS, L([6, 6, 2])), {"strategy": "beam_search", "beam_width": 1}),
    ("ctc_decode", (LOGITS, L([6, 5, 4])), {"strategy": "beam_search", "beam_width": 10,
                                            "top_paths": 3, "mask_index": 2}),
    # Fourier transforms
    ("fft", ((RE, IM),), {}), ("fft2", ((RE, IM),), {}), ("ifft2", ((RE, IM),), {}),
    ("fft", ((RE.astype(np.float64), IM.astype(np.float64)),), {}),
    ("rfft", (RE,), {}), ("rfft", (RE, 5), {}), ("rfft", (RE, 12), {}),
    ("rfft", (RE.astype(np.float64), 7), {}),
    ("irfft", ((RE[..., :5], IM[..., :5]),), {}), ("irfft", ((RE[..., :5], IM[..., :5]), 5),
                                                   {}),
    ("irfft", ((RE[..., :5], IM[..., :5]), 12), {}), ("irfft", ((RE, IM), 4), {}),
    ("stft", (SIG, 8, 4, 8), {}), ("stft", (SIG, 8, 3, 16), {"window": "hamming"}),
    ("stft", (SIG, 6, 2, 8), {"window": None, "center": False}),
    ("stft", (SIG, 7, 3, 9), {"center": False}),
    ("stft", (SIG.astype(np.float64), 8, 4, 8), {"window": np.arange(8.0)}),
    ("istft", (_spectrum(8, 4, 8, "hann", True), 8, 4, 8), {}),
    ("istft", (_spectrum(8, 4, 8, "hann", True), 8, 4, 8), {"length": 30}),
    ("istft", (_spectrum(8, 2, 8, "hamming", True), 8, 2, 8), {"length": 45,
                                                               "window": "hamming"}),
    ("istft", (_spectrum(8, 3, 16, "hamming", True), 8, 3, 16), {"window": "hamming"}),
    ("istft", (_spectrum(6, 2, 8, None, False), 6, 2, 8), {"window": None, "center": False}),
    ("istft", (_spectrum(7, 3, 9, "hann", False), 7, 3, 9), {"center": False, "length": 30}),
    # adaptive pooling, fold / unfold
    ("adaptive_average_pool", (IMG[:, 0], 3), {}),
    ("adaptive_average_pool", (IMG, (3, 4)), {}),
    ("adaptive_average_pool", (IMG, (2, 12)), {"data_format": "channels_first"}),
    ("adaptive_average_pool", (VOL, (2, 3, 4)), {}),
    ("adaptive_max_pool", (IMG[:, 0], (5,)), {}),
    ("adaptive_max_pool", (IMG, (3, 4)), {}),
    ("adaptive_max_pool", (IMG, 1), {"data_format": "channels_first"}),
    ("adaptive_max_pool", (VOL, (2, 3, 9)), {"data_format": "channels_last"}),
    ("unfold", (NCHW, 2), {}), ("unfold", (NCHW, (3, 2)), {"stride": 2}),
    ("unfold", (NCHW, 3), {"padding": 1, "dilation": 2}),
    ("unfold", (NCHW, (2, 3)), {"dilation": (1, 2), "padding": (2, 0), "stride": (3, 1)}),
    ("fold", (_unfolded(kernel_size=2), (7, 8), 2), {}),
    ("fold", (_unfolded(kernel_size=3, padding=1, dilation=2), (7, 8), 3),
     {"padding": 1, "dilation": 2}),
    ("fold", (_unfolded(kernel_size=(2, 3), dilation=(1, 2), padding=(2, 0), stride=(3, 1)),
              (7, 8), (2, 3)), {"dilation": (1, 2), "padding": (2, 0), "stride": (3, 1)}),
    ("rearrange", (PHOTOS, "b h w c -> b c h w"), {}),
    ("rearrange", (PHOTOS, "b h w c -> (b h) w c"), {}),
    ("rearrange", (PHOTOS, "b h w c -> h (b w) c"), {}),
    ("rearrange", (PHOTOS, "b h w c -> b (c h w)"), {}),
    ("rearrange", (PHOTOS, "b (h1 h) (w1 w) c -> (b h1 w1) h w c"), {"h1": 2, "w1": 2}),
    ("rearrange", (PHOTOS, "b (h h1) (w w1) c -> b h w (c h1 w1)"), {"h1": 2, "w1": 4}),
    # review_k3's dtype differences
    ("cumprod", (BOOLS,), {}), ("cumprod", (BOOLS,), {"axis": 1}),
    ("nansum", (BOOLS,), {}), ("nansum", (np.array([1, 5, 2], np.int8),), {}),
    ("nanprod", (BOOLS,), {"axis": 0}), ("nanprod", (np.array([1, 5, 2], np.uint8),), {}),
    ("nancumsum", (BOOLS,), {}), ("nancumsum", (np.array([1, 5, 2], np.int8),), {}),
    ("nancumprod", (BOOLS,), {"axis": -1}),
    ("inner", (np.ones(3, np.float32), np.arange(3, dtype=np.int32)), {}),
    ("inner", (np.arange(6, dtype=np.int32).reshape(2, 3), np.ones((4, 3), np.float32)), {}),
    ("inner", (np.float32(2), np.arange(3, dtype=np.int32)), {}),
    ("hard_tanh", (np.array([-3, 0, 2], np.int32),), {}),
    ("hard_tanh", (np.array([-3, 0, 2], np.int64),), {}),
    ("argsort", (np.float32(3),), {}), ("argsort", (np.int32(3),), {}),
    ("sort", (np.float32(3),), {}), ("sort", (np.int32(3),), {}),
    ("diff", (BOOLS,), {}), ("diff", (BOOLS,), {"n": 2, "axis": 0}),
    ("diff", (np.array([True, False, False, True]),), {"axis": -1}),
]


def _torch(a):
    """NumPy leaves as torch tensors of the same dtype (keras.ops on torch reads a float64
    ndarray as float32, and its fold/unfold take no ndarray)."""
    import torch
    if isinstance(a, (tuple, list)):
        return type(a)(_torch(v) for v in a)
    return torch.tensor(a) if isinstance(a, (np.ndarray, np.generic)) else a


def _ids(cases):
    return [f"{c[0]}-{i}" for i, c in enumerate(cases)]


@pytest.mark.parametrize("name,args,kwargs", VALUES, ids=_ids(VALUES))
def test_value_and_dtype_match_keras(keras, name, args, kwargs):
    args = _resolve(args)
    want = as_list(getattr(keras.ops, name)(*_torch(args), **kwargs))
    got = as_list(getattr(ops, name)(*args, **kwargs))
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert isinstance(g, Tensor)
        w = keras.ops.convert_to_numpy(w)
        assert g.dtype == w.dtype, (name, g.dtype, w.dtype)
        assert g.shape == w.shape, (name, g.shape, w.shape)
        if w.dtype.kind in "biu":
            np.testing.assert_array_equal(g.data, w)
        else:
            np.testing.assert_allclose(g.data, w, rtol=2e-5, atol=2e-5)


def test_jvp_matches_keras(keras):
    import torch
    a, b, ta, tb = (rng.standard_normal(3).astype(np.float32) for _ in range(4))

    def f(K):
        return lambda x, y: (K.sin(x) * y, {"s": K.sum(x * x)})
    kout = keras.ops.jvp(f(keras.ops), tuple(torch.tensor(v) for v in (a, b)),
                         tuple(torch.tensor(v) for v in (ta, tb)))
    out = ops.jvp(f(ops), (a, b), (ta, tb))
    for k_part, w_part in zip(kout, out):
        np.testing.assert_allclose(w_part[0].data, k_part[0].numpy(), rtol=1e-6)
        np.testing.assert_allclose(w_part[1]["s"].data, k_part[1]["s"].numpy(), rtol=1e-6)
    y, t, aux = ops.jvp(lambda x: (ops.exp(x), ops.cos(x)), (a,), (ta,), has_aux=True)
    kt = keras.ops.jvp(lambda x: (keras.ops.exp(x), keras.ops.cos(x)), (torch.tensor(a),),
                       (torch.tensor(ta),), has_aux=True)
    for ours, theirs in zip((y, t, aux), kt):
        np.testing.assert_allclose(ours.data, theirs.detach().numpy(), rtol=1e-6)


# -- gradients ------------------------------------------------------------------------------
SMALL = rng.standard_normal((2, 4, 3))
CTC_GRADS = [
    (LABELS, L([2, 3, 1]), L([6, 4, 5]), 0, LOGITS),
    (L([[1, 1, 2], [3, 0, 0]]), L([3, 1]), L([5, 6]), 4, LOGITS[:2]),       # repeats, blank 4
    (LABELS[:2], L([0, 2]), L([4, 6]), 0, LOGITS[:2]),                       # no labels
]


@pytest.mark.parametrize("case", CTC_GRADS, ids=["lengths", "repeats blank 4", "empty"])
def test_ctc_gradient_against_finite_differences(case):
    # ctc_loss rounds its loss to float32 (Keras's dtype) but differentiates a float64
    # input in float64: compare its gradient with differences of the float64 loss
    labels, tlen, olen, blank, x = case
    x = x.astype(np.float64)
    R = np.random.default_rng(5).standard_normal(len(x))

    def loss64():
        return float((ops._ctc_nll(ops.log_softmax(Tensor(x)), labels, tlen, olen,
                                   blank).data * R).sum())
    t = Tensor(x.copy(), requires_grad=True)
    loss = ops.ctc_loss(labels, t, tlen, olen, mask_index=blank)
    assert loss.dtype == np.float32
    ops.sum(ops.multiply(loss, R.astype(np.float32))).backward()
    assert t.grad.dtype == np.float64
    np.testing.assert_allclose(t.grad, numeric_grad(loss64, x), rtol=1e-6, atol=1e-7)


GRADS = [
    ("fft", lambda a, b: ops.fft((a, b)), RE[0], IM[0]),
    ("fft2", lambda a, b: ops.fft2((a, b)), RE[:, :, :5], IM[:, :, :5]),
    ("ifft2", lambda a, b: ops.ifft2((a, b)), RE[:, :, :5], IM[:, :, :5]),
    ("rfft", lambda a: ops.rfft(a), RE[0]),
    ("rfft short", lambda a: ops.rfft(a, 5), RE[0]),
    ("rfft long odd", lambda a: ops.rfft(a, 11), RE[0]),
    ("irfft", lambda a, b: ops.irfft((a, b)), RE[0, :, :5], IM[0, :, :5]),
    ("irfft odd", lambda a, b: ops.irfft((a, b), 7), RE[0, :, :5], IM[0, :, :5]),
    ("irfft short", lambda a, b: ops.irfft((a, b), 4), RE[0], IM[0]),
    ("irfft long", lambda a, b: ops.irfft((a, b), 14), RE[0, :, :5], IM[0, :, :5]),
    ("stft", lambda s: ops.stft(s, 8, 3, 10), SIG[:, :20]),
    ("stft window", lambda s, w: ops.stft(s, 6, 4, 8, window=w, center=False),
     SIG[:, :20], np.hanning(6)),
    ("istft torch path", lambda a, b: ops.istft((a, b), 8, 4, 8, length=21),
     _spectrum(8, 4, 8, "hann", True)),
    ("istft keras path", lambda a, b: ops.istft((a, b), 6, 2, 8, center=False),
     _spectrum(6, 2, 8, "hann", False)),
    ("istft window", lambda a, b, w: ops.istft((a, b), 8, 4, 8, window=w),
     _spectrum(8, 4, 8, "hann", True), np.hanning(8) + 0.5),
    ("adaptive_average_pool", lambda x: ops.adaptive_average_pool(x, (3, 5)), IMG[:1]),
    ("adaptive_average_pool 1d", lambda x: ops.adaptive_average_pool(
        x, 3, "channels_first"), SMALL),
    ("adaptive_max_pool", lambda x: ops.adaptive_max_pool(x, (4, 2)), IMG[:1]),
    ("adaptive_max_pool 3d", lambda x: ops.adaptive_max_pool(x, (2, 4, 3)), VOL[..., :1]),
    ("unfold", lambda x: ops.unfold(x, (2, 3), dilation=(2, 1), padding=1, stride=2),
     NCHW[:1]),
    ("fold", lambda x: ops.fold(x, (7, 8), 3, padding=1, stride=2),
     rng.standard_normal((1, 18, 16))),
    ("rearrange", lambda x: ops.rearrange(x, "b h (w w1) c -> w b (h w1) c", w1=3), IMG[:1]),
    ("rearrange ellipsis", lambda x: ops.rearrange(x, "b ... c -> c ... b"), IMG[:2, :2]),
]


@pytest.mark.parametrize("case", GRADS, ids=[g[0] for g in GRADS])
def test_gradient_against_finite_differences(case):
    _, fn, *arrays = case
    arrays = _flat_arrays(arrays)
    check_grad(fn, *arrays)


def _flat_arrays(arrays):
    """The arrays of a case, a lazy (real, imag) pair made and spread out."""
    out = []
    for a in arrays:
        a = _resolve(a)
        out.extend(a if isinstance(a, tuple) else [a])
    return out


TORCH_GRADS = [
    ("ctc_loss", lambda K, x: K.ctc_loss(LABELS, x, L([2, 3, 1]), L([6, 4, 5])), LOGITS),
    ("ctc_loss blank 4", lambda K, x: K.ctc_loss(
        L([[1, 1, 2], [3, 0, 0]]), x, L([3, 1]), L([5, 6]), mask_index=4), LOGITS[:2]),
    ("fft", lambda K, a, b: K.fft((a, b)), RE, IM),
    ("fft2/ifft2", lambda K, a, b: K.ifft2(K.fft2((a * 2, b))), RE, IM),
    ("rfft", lambda K, a: K.rfft(a, 11), RE),
    ("irfft", lambda K, a, b: K.irfft((a, b), 9), RE[..., :5], IM[..., :5]),
    ("stft", lambda K, s: K.stft(s, 8, 3, 16, "hamming"), SIG),
    ("istft", lambda K, a, b: K.istft((a, b), 8, 4, 8), _spectrum(8, 4, 8, "hann", True)),
    ("istft keras path", lambda K, a, b: K.istft((a, b), 6, 2, 8, center=False),
     _spectrum(6, 2, 8, "hann", False)),
    ("adaptive pools", lambda K, x: (K.adaptive_average_pool(x, (3, 4)),
                                     K.adaptive_max_pool(x, (4, 3))), IMG),
    ("unfold/fold", lambda K, x: K.fold(K.unfold(x, 3, 2, 1, 2), (7, 8), 3, 2, 1, 2), NCHW),
]


@pytest.mark.parametrize("case", TORCH_GRADS, ids=[c[0] for c in TORCH_GRADS])
def test_gradient_against_torch_autograd(keras, case):
    _, fn, *arrays = case
    arrays = _flat_arrays(arrays)
    for got, want in zip(our_grads(fn, arrays), torch_grads(keras, fn, arrays)):
        # torch's float64 CTC gradient is ~4e-7 off finite differences (ours: 1e-9)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=2e-6)


def test_adaptive_max_pool_ties_as_torch(keras):
    import torch
    x = np.random.default_rng(3).integers(0, 3, (1, 5, 5, 2)).astype(np.float64)
    xt = torch.tensor(x, requires_grad=True)
    keras.ops.sum(keras.ops.adaptive_max_pool(xt, (2, 3))).backward()
    ours = Tensor(x.copy(), requires_grad=True)
    ops.sum(ops.adaptive_max_pool(ours, (2, 3))).backward()
    np.testing.assert_array_equal(ours.grad, xt.grad.numpy())


def test_jvp_is_exact_against_finite_differences():
    x = rng.standard_normal((3, 2))
    t = rng.standard_normal((3, 2))
    w = Tensor(rng.standard_normal((2, 2)), requires_grad=True)
    w.grad = np.full((2, 2), 7.0)                  # a gradient held before: kept

    def f(a):
        return ops.tanh(ops.matmul(a, w))
    y, ty = ops.jvp(f, (x,), (t,))
    h = 1e-6
    fd = (f(Tensor(x + h * t)).data - f(Tensor(x - h * t)).data) / (2 * h)
    np.testing.assert_allclose(ty.data, fd, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(y.data, f(Tensor(x)).data)
    assert not y.requires_grad and not ty.requires_grad
    np.testing.assert_array_equal(w.grad, 7.0)
    # an output that does not depend on the input, and an integer one: zero tangents
    _, (tc, ti) = ops.jvp(lambda a: (ops.ones((2,)), ops.argmax(a)), (x,), (t,))
    assert not tc.data.any() and not ti.data.any()


# -- CTC details ---------------------------------------------------------------------------
def _brute_ctc(logp, labels, blank):
    """-log sum over every frame labelling that collapses to ``labels`` (tiny cases)."""
    import itertools
    Tm, C = logp.shape
    total = -np.inf
    for path in itertools.product(range(C), repeat=Tm):
        out, prev = [], None
        for c in path:
            if c != prev and c != blank:
                out.append(c)
            prev = c
        if out == list(labels):
            total = np.logaddexp(total, sum(logp[t, c] for t, c in enumerate(path)))
    return -total


@pytest.mark.parametrize("labels,frames,blank", [
    ([1, 2], 4, 0), ([1, 1], 3, 0), ([1, 1], 4, 2), ([], 3, 0), ([2], 1, 0), ([1, 1], 2, 0),
])
def test_ctc_loss_against_brute_force(labels, frames, blank):
    x = rng.standard_normal((1, frames, 3))
    logp = x[0] - np.log(np.exp(x[0]).sum(-1, keepdims=True))
    want = _brute_ctc(logp, labels, blank)
    tgt = np.array([labels + [0] * (2 - len(labels))])
    got = ops.ctc_loss(tgt, x, [len(labels)], [frames], mask_index=blank).data[0]
    exact = ops._ctc_nll(ops.log_softmax(Tensor(x)), tgt, np.array([len(labels)]),
                         np.array([frames]), blank).data[0]         # float64 inside
    if np.isinf(want):
        assert got == exact == np.inf
    else:
        np.testing.assert_allclose(exact, want, rtol=1e-12)
        np.testing.assert_allclose(got, want, rtol=1e-7)            # rounded to float32


def test_ctc_impossible_alignment_gives_inf_without_nan_gradient():
    # labels 3 long with a repeat need 4 frames; Keras gives inf and NaN gradients there
    x = Tensor(LOGITS[:2].astype(np.float64), requires_grad=True)
    loss = ops.ctc_loss(L([[1, 1, 2], [1, 2, 3]]), x, L([3, 3]), L([3, 6]))
    assert loss.data[0] == np.inf and np.isfinite(loss.data[1])
    ops.sum(loss).backward()
    assert np.isfinite(x.grad).all()
    assert not x.grad[0].any() and x.grad[1].any()


def test_ctc_edge_cases():
    # no frames and no labels: loss 0; empty batch; frames beyond output_length unused
    loss = ops.ctc_loss(LABELS, LOGITS, L([0, 1, 0]), L([0, 0, 6]))
    assert loss.data[0] == 0 and loss.data[1] == np.inf
    assert ops.ctc_loss(LABELS[:0], LOGITS[:0], L([]), L([])).shape == (0,)
    no_frames = ops.ctc_loss(LABELS[:2], LOGITS[:2, :0], L([0, 1]), L([0, 0])).data
    np.testing.assert_array_equal(no_frames, [0.0, np.inf])
    cut = ops.ctc_loss(LABELS, LOGITS, L([2, 2, 1]), L([4, 4, 4])).data
    changed = LOGITS.copy()
    changed[:, 4:] = 100.0
    np.testing.assert_array_equal(cut, ops.ctc_loss(LABELS, changed, L([2, 2, 1]),
                                                    L([4, 4, 4])).data)
    paths, scores = ops.ctc_decode(LOGITS[:0], L([]))
    assert paths.shape == (1, 0, 6) and scores.shape == (0, 1)


# -- FFT identities (NumPy's, no Keras) -------------------------------------------------------
def test_fft_values_against_numpy():
    z = RE.astype(np.float64) + 1j * IM
    for fn, ref in ((ops.fft, np.fft.fft(z)), (ops.fft2, np.fft.fft2(z)),
                    (ops.ifft2, np.fft.ifft2(z))):
        re, im = fn((RE.astype(np.float64), IM.astype(np.float64)))
        np.testing.assert_allclose(re.data + 1j * im.data, ref, atol=1e-12)
    back = ops.irfft(ops.rfft(SIG.astype(np.float64)), 40)
    np.testing.assert_allclose(back.data, SIG, atol=1e-6)
    s = ops.stft(SIG.astype(np.float64), 8, 2, 8)
    np.testing.assert_allclose(ops.istft(s, 8, 2, 8, length=40).data, SIG, atol=1e-6)
    re, im = ops.fft((RE[:0], IM[:0]))              # empty batch
    assert re.shape == (0, 3, 8) and im.dtype == np.float32


def test_rearrange_against_numpy():
    x = rng.standard_normal((2, 3, 4, 6))
    np.testing.assert_array_equal(ops.rearrange(x, "a ... d -> d ... a").data,
                                  np.moveaxis(x, (0, 3), (3, 0)))
    np.testing.assert_array_equal(ops.rearrange(x, "... (d e) -> ... e d", e=2).data,
                                  x.reshape(2, 3, 4, 3, 2).swapaxes(-1, -2))
    np.testing.assert_array_equal(ops.rearrange(x, "a b c d -> (a b) (c d)").data,
                                  x.reshape(6, 24))
    np.testing.assert_array_equal(ops.rearrange(x[:0], "a b c d -> a (d c) b").shape, (0, 24, 3))


# -- bad input ----------------------------------------------------------------------------------
@pytest.mark.parametrize("call,error,words", [
    (lambda: ops.ctc_loss(L([[1, 0]]), LOGITS[:1], [2], [6]), ValueError, "mask_index=0"),
    (lambda: ops.ctc_loss(L([[1, 5]]), LOGITS[:1], [2], [6]), ValueError, "target[0, 1] = 5"),
    (lambda: ops.ctc_loss(L([[1, 2]]), LOGITS[:1], [3], [6]), ValueError, "[0, 2]"),
    (lambda: ops.ctc_loss(L([[1, 2]]), LOGITS[:1], [2], [7]), ValueError, "output_length"),
    (lambda: ops.ctc_loss(L([[1, 2]]), LOGITS[:1], [2, 2], [6]), ValueError, "one length"),
    (lambda: ops.ctc_loss(L([1, 2]), LOGITS[:1], [2], [6]), ValueError, "max_label_length"),
    (lambda: ops.ctc_loss(L([[1, 2]]), LOGITS[0], [2], [6]), ValueError, "(batch, time"),
    (lambda: ops.ctc_loss(L([[1.5, 2]]), LOGITS[:1], [2], [6]), TypeError, "integers"),
    (lambda: ops.ctc_decode(LOGITS, [6, 6, 6], strategy="best"), ValueError, "'greedy'"),
    (lambda: ops.ctc_decode(LOGITS, [6, 6, 6], strategy="beam_search", beam_width=2,
                            top_paths=3), ValueError, "top_paths"),
    (lambda: ops.ctc_decode(LOGITS, [6, 9, 6]), ValueError, "sequence_lengths"),
    (lambda: ops.fft(RE), ValueError, "tuple of two"),
    (lambda: ops.fft((RE[0, 0, 0], IM[0, 0, 0])), ValueError, "rank >= 1"),
    (lambda: ops.irfft((RE[..., :1], IM[..., :1])), ValueError, "default"),
    (lambda: ops.fft((RE, IM[0])), ValueError, "same shape"),
    (lambda: ops.fft((RE.astype(np.int32), IM)), ValueError, "floating"),
    (lambda: ops.rfft(RE, 0), ValueError, "fft_length"),
    (lambda: ops.stft(SIG.astype(np.int32), 8, 4, 8), TypeError, "float32"),
    (lambda: ops.stft(SIG, 8, 4, 6), ValueError, "fft_length"),
    (lambda: ops.stft(SIG, 8, 4, 8, window="kaiser"), ValueError, '"hann"'),
    (lambda: ops.stft(SIG, 8, 4, 8, window=np.ones(5)), ValueError, "[sequence_length]"),
    (lambda: ops.stft(SIG[:, :4], 8, 4, 8), ValueError, "reflects"),
    (lambda: ops.stft(SIG, 8, 0, 8), ValueError, "sequence_stride"),
    (lambda: ops.istft(_stft_np(8, 4, 8, "hann", True), 8, 9, 8, center=False), ValueError,
     "sequence_stride"),
    (lambda: ops.adaptive_average_pool(IMG, (2, 0)), ValueError, "output_size"),
    (lambda: ops.adaptive_max_pool(IMG[0, 0], 2), ValueError, "rank 3, 4 or 5"),
    (lambda: ops.adaptive_max_pool(IMG, 2, data_format="nhwc"), ValueError, "data_format"),
    (lambda: ops.adaptive_max_pool(IMG[:, :0], 2), ValueError, "non-empty"),
    (lambda: ops.unfold(NCHW[0], 2), ValueError, "4-D"),
    (lambda: ops.unfold(NCHW, 9), ValueError, "does not fit"),
    (lambda: ops.unfold(NCHW, 2, stride=0), ValueError, "stride"),
    (lambda: ops.fold(rng.standard_normal((1, 12, 5)), (7, 8), 2), ValueError, "blocks"),
    (lambda: ops.rearrange(PHOTOS, "b h w -> b w h"), ValueError, "rank 4"),
    (lambda: ops.rearrange(PHOTOS, "b h w c -> b h w"), ValueError, "one side only"),
    (lambda: ops.rearrange(PHOTOS, "b (h h1) w c -> b h w c h1"), ValueError, "infer"),
    (lambda: ops.rearrange(PHOTOS, "b (h h1) w c -> b h w c h1", h1=4), ValueError,
     "cannot be split"),
    (lambda: ops.rearrange(PHOTOS, "b h w c"), ValueError, "->"),
    (lambda: ops.rearrange(PHOTOS, "b (h w c -> b h w c"), ValueError, "unbalanced"),
    (lambda: ops.rearrange(PHOTOS, "b h h c -> b h c"), ValueError, "repeated"),
    (lambda: ops.jvp(ops.sin, (A1,), (A1, A1)), ValueError, "same structure"),
    (lambda: ops.jvp(ops.sin, (A1,), (A1[:1],)), ValueError, "shape"),
])
def test_bad_input_gets_a_clear_error(call, error, words):
    with pytest.raises(error) as info:
        call()
    assert words in str(info.value)


A1 = np.ones(3)


def test_hostile_input_in_a_child():
    from conftest import run_in_child
    res = run_in_child("""
        import numpy as np
        from wsekern.nn import ops
        x = np.zeros((1, 2, 4, 4), np.float32)
        calls = (lambda: ops.unfold(x, 2, dilation=10 ** 9),
                 lambda: ops.fold(np.zeros((1, 4, 1), np.float32), (2, 2), 2, padding=-1),
                 lambda: ops.ctc_loss([[1]], np.zeros((1, 2, 3)), [1], [-1]),
                 lambda: ops.adaptive_average_pool(np.zeros((1, 3, 1)), 10 ** 12),
                 lambda: ops.rearrange(np.zeros((2, 3)), "(a b) c -> a b c", a=0))
        for call in calls:
            try:
                print("ok", call().shape)
            except (ValueError, TypeError, MemoryError) as e:
                print("error", type(e).__name__)
        """, limit_gb=4)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.split("\n")
    assert lines[:3] == ["error ValueError"] * 3 and lines[4] == "error ValueError", res.stdout
