"""review_k8's checks of session 24's keras24 branch, each against real Keras 3 on torch
where installed."""
import numpy as np
import pytest

from wsekern.nn import ops


@pytest.mark.parametrize("x", [3, 3.0, [1, 2], [0.5, 2.0], True, np.int64(3),
                               np.array([1, 2], np.int64), np.array([1, 2], np.int32)])
def test_i0_of_python_numbers_in_keras_dtype(keras, x):
    """Keras converts Python ints and lists to int32 (floats to float32) before i0, so
    i0(3) is float32; keras24's int64 -> float64 rule made it float64 (main gave float32)."""
    want = keras.ops.convert_to_numpy(keras.ops.i0(x))
    got = ops.i0(x)
    assert got.dtype == want.dtype, (x, got.dtype, want.dtype)
    np.testing.assert_allclose(got.data, want, rtol=1e-6)


def test_complex_logaddexp_is_right_where_torch_underflows():
    """Where the real parts differ by ~88 to ~103, torch's complex64 log1p of a subnormal
    gives NaN + NaN j (Keras on torch answers NaN); ours stays the true value (checked in
    complex128). Every other pair of a grid of infinities, NaNs and ties agrees with Keras
    (review_k8's probe_logaddexp)."""
    a = np.array([90 + 0.5j, 100 - 2.5j, -95 + 1j, 1 + 3j], np.complex64)
    b = np.array([0j, 1j, 2 - 1j, -99 + 0j], np.complex64)
    ref = np.log(np.exp((a - np.maximum(a.real, b.real)).astype(np.complex128))
                 + np.exp((b - np.maximum(a.real, b.real)).astype(np.complex128))) \
        + np.maximum(a.real, b.real)
    got = ops.logaddexp(a, b)
    assert got.dtype == np.complex64
    np.testing.assert_allclose(got.data, ref, rtol=1e-6)


def test_maximum_splits_the_gradient_at_ties_as_keras(keras):
    """Left for the lead: ops.maximum, and through it the hinge losses (1 - y * p == 0) and
    MAPE / MSLE (a target or prediction exactly 1e-7), differ from Keras at exact ties,
    in y_pred as before and now in y_true too (session 24's target gradients)."""
    import torch

    from wsekern.nn.tensor import Tensor, tsum
    a = np.array([1.0, 2.0, 3.0], np.float32)
    b = np.array([1.0, 1.0, 4.0], np.float32)
    t = torch.tensor(a, requires_grad=True)
    keras.ops.maximum(t, torch.tensor(b)).sum().backward()
    ours = Tensor(a.copy(), requires_grad=True)
    tsum(ops.maximum(ours, b)).backward()
    np.testing.assert_array_equal(ours.grad, t.grad.numpy())


def test_two_models_in_one_strategy_report_their_own_layers():
    """Left for the lead (not session 24's change): with two models built in one
    WaferStrategy scope, as keras.io's distillation builds a teacher and a student, B's
    wafer_report lists A's layers and B's fit adds no steps; A alone counts 2 steps for
    its 2 batches, with B built beside it 1."""
    import wsekern as wk
    from wsekern import nn
    s = wk.WaferStrategy(wk.WaferConfig.wse2())
    with s.scope():
        a = nn.Sequential([nn.Input((8,)), nn.layers.Dense(16, name="a_dense")])
        b = nn.Sequential([nn.Input((8,)), nn.layers.Dense(4, name="b_dense")])
    for m, n_out in ((a, 16), (b, 4)):
        m.compile(optimizer="sgd", loss="mse")
        m.fit(np.ones((8, 8)), np.ones((8, n_out)), batch_size=4, verbose=0)
    assert [row["layer"] for row in b.wafer_report().rows] == ["b_dense"]
    assert [row["layer"] for row in a.wafer_report().rows] == ["a_dense"]


def test_keras_io_torch_train_step_reads_value_grad():
    """Left for the lead (not session 24's change): keras.io's "Customizing what happens in
    fit() with PyTorch" collects ``[v.value.grad for v in trainable_weights]``; here
    ``.value`` is the ndarray, so that line raises AttributeError. With ``v.grad`` instead
    the guide's program trains as Keras's (review_k8's prog1)."""
    from wsekern import nn

    class CustomModel(nn.Model):
        def train_step(self, data):
            x, y = data
            self.zero_grad()
            loss = self.compute_loss(y=y, y_pred=self(x, training=True))
            loss.backward()
            weights = list(self.trainable_weights)
            self.optimizer.apply([v.value.grad for v in weights], weights)
            return {"loss": loss}

    inputs = nn.Input((3,))
    model = CustomModel(inputs, nn.layers.Dense(1)(inputs))
    model.compile(optimizer="sgd", loss="mse")
    model.fit(np.ones((4, 3), np.float32), np.ones((4, 1), np.float32), verbose=0)
