"""initializers, regularizers, nn.random, registry and utils (pad_sequences, PyDataset,
normalize): Keras 3's behaviour against closed forms and NumPy."""
import numpy as np
import pytest
from test_nn_ops import check_grad

from wsekern import nn
from wsekern.nn import initializers as I
from wsekern.nn import regularizers as R
from wsekern.nn import utils
from wsekern.nn.tensor import Tensor


@pytest.mark.parametrize("cls,fan,scale,dist", [
    (I.GlorotUniform, "avg", 1.0, "uniform"), (I.GlorotNormal, "avg", 1.0, "normal"),
    (I.HeUniform, "in", 2.0, "uniform"), (I.HeNormal, "in", 2.0, "normal"),
    (I.LecunUniform, "in", 1.0, "uniform"), (I.LecunNormal, "in", 1.0, "normal"),
])
def test_variance_scaling_family_has_keras_variance(cls, fan, scale, dist):
    shape = (3, 3, 40, 60)                       # conv kernel: receptive field 9
    fan_in, fan_out = 9 * 40, 9 * 60
    var = scale / (fan_in if fan == "in" else (fan_in + fan_out) / 2)
    w = cls(seed=3)(shape)
    assert w.dtype == np.float32 and w.shape == shape
    assert w.var() == pytest.approx(var, rel=0.03)
    if dist == "uniform":
        assert np.abs(w).max() <= np.sqrt(3 * var) + 1e-7
    else:                                        # truncated at 2 sigma of the pre-scaled normal
        assert np.abs(w).max() <= 2 * np.sqrt(var) / 0.87962566103423978 + 1e-6
    np.testing.assert_array_equal(w, cls(seed=3)(shape))   # a seeded initializer repeats


def test_simple_initializers_and_strings():
    assert (I.Constant(2.5)((2, 2)) == 2.5).all() and (I.Zeros()((3,)) == 0).all()
    q = I.Orthogonal(seed=0)((6, 4))
    np.testing.assert_allclose(q.T @ q, np.eye(4), atol=1e-6)
    q = I.Orthogonal(gain=2.0, seed=0)((3, 5))
    np.testing.assert_allclose(q @ q.T, 4 * np.eye(3), atol=1e-5)
    np.testing.assert_array_equal(I.Identity(3.0)((2, 3)), 3 * np.eye(2, 3))
    t = I.TruncatedNormal(stddev=0.1, seed=1)((1000,))
    assert np.abs(t).max() <= 0.2
    for name in ("glorot_normal", "he_uniform", "lecun_normal", "orthogonal", "zeros"):
        assert isinstance(I.get(name), I.Initializer)
    back = I.deserialize(I.serialize(I.RandomUniform(-1, 2, seed=4)))
    np.testing.assert_array_equal(back((5,)), I.RandomUniform(-1, 2, seed=4)((5,)))
    with pytest.raises(ValueError, match="unknown initializer"):
        I.get("glorot_sideways")


def test_regularizers_value_and_gradient():
    w = np.random.default_rng(0).standard_normal((4, 3))
    assert float(R.L1(0.1)(Tensor(w)).data) == pytest.approx(0.1 * np.abs(w).sum())
    assert float(R.L2(0.2)(Tensor(w)).data) == pytest.approx(0.2 * (w ** 2).sum())
    both = R.L1L2(l1=0.1, l2=0.2)
    assert float(both(Tensor(w)).data) == pytest.approx(0.1 * np.abs(w).sum() +
                                                        0.2 * (w ** 2).sum())
    check_grad(both, w)
    o = R.OrthogonalRegularizer(factor=0.5)
    n = w / np.linalg.norm(w, axis=1, keepdims=True)
    g = n @ n.T
    assert float(o(Tensor(w)).data) == pytest.approx(
        0.5 * 0.5 * np.abs(g - np.diag(np.diag(g))).sum() / 6)
    check_grad(o, w)
    assert R.get("l2").get_config() == {"l2": 0.01}
    assert R.deserialize(R.serialize(both)).get_config() == both.get_config()
    with pytest.raises(ValueError, match="l1 must be"):
        R.L1(-1)


def test_random_seeds_and_dropout():
    a = nn.random.normal((3,), seed=5)
    np.testing.assert_array_equal(a.data, nn.random.normal((3,), seed=5).data)
    gen = nn.random.SeedGenerator(7)
    first, second = nn.random.uniform((4,), seed=gen), nn.random.uniform((4,), seed=gen)
    assert not np.array_equal(first.data, second.data)
    gen2 = nn.random.SeedGenerator(7)
    np.testing.assert_array_equal(first.data, nn.random.uniform((4,), seed=gen2).data)
    x = Tensor(np.ones((2000,)), requires_grad=True)
    y = nn.random.dropout(x, 0.25, seed=1)
    kept = y.data != 0
    assert set(np.unique(y.data)) <= {0.0, 1 / 0.75} and abs(kept.mean() - 0.75) < 0.04
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, kept / 0.75)
    sp = nn.random.dropout(np.ones((2, 5, 3)), 0.5, noise_shape=(None, 1, 3), seed=2).data
    assert (sp == sp[:, :1, :]).all()             # one mask per (sample, channel)
    s = nn.random.shuffle(np.arange(10), seed=3).data
    assert sorted(s) == list(range(10))
    with pytest.raises(ValueError, match="rate"):
        nn.random.dropout(x, 1.0)


def test_registry_and_custom_object_scope():
    @nn.registry.register_keras_serializable(package="T", name="twice")
    def twice(x):
        return x * 2
    try:
        assert nn.registry.get_custom_objects()["T>twice"] is twice
        assert nn.activations.get("T>twice") is twice
        assert nn.registry.get_registered_name(twice) == "T>twice"
    finally:
        del nn.registry.get_custom_objects()["T>twice"]

    def thrice(x):
        return x * 3
    with nn.registry.custom_object_scope({"thrice": thrice}):
        assert nn.activations.get("thrice") is thrice
    with pytest.raises(ValueError):
        nn.activations.get("thrice")

    class NoConfig:
        pass
    with pytest.raises(ValueError, match="get_config"):
        nn.registry.register_keras_serializable()(NoConfig)


@pytest.mark.parametrize("padding,truncating,expect", [
    ("pre", "pre", [[0, 0, 1, 2], [3, 4, 5, 6], [8, 9, 10, 11]]),
    ("post", "post", [[1, 2, 0, 0], [3, 4, 5, 6], [7, 8, 9, 10]]),
    ("post", "pre", [[1, 2, 0, 0], [3, 4, 5, 6], [8, 9, 10, 11]]),
])
def test_pad_sequences_keras_semantics(padding, truncating, expect):
    seqs = [[1, 2], [3, 4, 5, 6], [7, 8, 9, 10, 11]]
    out = utils.pad_sequences(seqs, maxlen=4, padding=padding, truncating=truncating)
    np.testing.assert_array_equal(out, expect)
    assert out.dtype == np.int32


def test_pad_sequences_defaults_value_dtype_and_edges():
    out = utils.pad_sequences([[1], [2, 3], []], value=-1, dtype="float32")
    np.testing.assert_array_equal(out, [[-1, 1], [2, 3], [-1, -1]])
    assert out.dtype == np.float32
    assert utils.pad_sequences([]).shape == (0, 0)
    assert utils.pad_sequences([[1, 2]], maxlen=0).shape == (1, 0)
    vec = utils.pad_sequences([np.ones((2, 3)), np.ones((1, 3))], dtype="float32")
    assert vec.shape == (2, 2, 3) and (vec[1, 0] == 0).all()
    with pytest.raises(ValueError, match="padding and truncating"):
        utils.pad_sequences([[1]], padding="middle")
    with pytest.raises(ValueError, match="maxlen"):
        utils.pad_sequences([[1]], maxlen=-2)


def test_normalize_and_pydataset():
    x = np.array([[3.0, 4.0], [0.0, 0.0]])
    np.testing.assert_allclose(utils.normalize(x), [[0.6, 0.8], [0, 0]])

    class Batches(utils.PyDataset):
        def __init__(self, n, **kwargs):
            super().__init__(**kwargs)
            self.n, self.epochs = n, 0

        def __len__(self):
            return self.n

        def __getitem__(self, i):
            return np.full((2, 1), i), np.full((2,), i)

        def on_epoch_end(self):
            self.epochs += 1
    ds = Batches(3, workers=2)
    assert ds.num_batches == 3 and ds.workers == 2
    assert [int(b[1][0]) for b in ds] == [0, 1, 2]
