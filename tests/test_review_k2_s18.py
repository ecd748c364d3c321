"""s18 review_k2: fresh eyes on keras18's and audit18's merges, each case against real
Keras 3 (torch backend). Each test failed on main 6fe7db0 unless it says otherwise."""
import numpy as np
import pytest

from wsekern import nn


def _mha_weights(K, keras, **kw):
    keras.utils.set_random_seed(0)
    inputs = K.Input((5, 16))
    mha = K.layers.MultiHeadAttention(num_heads=4, key_dim=8, value_dim=6, **kw)
    K.Model(inputs, mha(inputs, inputs))
    return mha.get_weights()


# Keras's initializer objects are stateless: Keras's MultiHeadAttention clones one per
# projection (an unseeded one draws anew each time) and EinsumDense gives a VarianceScaling
# the fans of its input and output axes. Ours called the one object four times in Keras's
# 3-D shape: the query and key kernels were equal and a fan_out/fan_avg draw had half
# Keras's std (0.125 where Keras draws 0.249 with VarianceScaling(2, "fan_out")).
@pytest.mark.parametrize("make", [
    lambda k: dict(kernel_initializer=k.initializers.VarianceScaling(
        2.0, "fan_out", "truncated_normal")),
    lambda k: dict(kernel_initializer=k.initializers.VarianceScaling(1.0, "fan_avg", "uniform")),
    lambda k: dict(kernel_initializer=k.initializers.GlorotNormal(),
                   bias_initializer=k.initializers.RandomNormal(stddev=0.5)),
], ids=["fan_out", "fan_avg", "glorot-object+random-bias"])
def test_mha_keras_initializer_objects_draw_as_keras(keras, make):
    theirs = _mha_weights(keras, keras, **make(keras))
    ours = _mha_weights(nn, keras, **make(keras))
    assert [w.shape for w in ours] == [w.shape for w in theirs]
    for a, b in zip(theirs, ours):
        # the same statistics as Keras's draw (its fans), whatever the random stream
        assert np.std(b) == pytest.approx(np.std(a), rel=0.15, abs=1e-6)
    # each projection draws its own values, as Keras's clones do
    assert not np.allclose(ours[0], ours[2])
    if "bias_initializer" in make(keras):
        assert not np.allclose(ours[1], ours[3])
    # with the same seeds, the very values Keras draws
    for a, b in zip(theirs, ours):
        np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-7)
