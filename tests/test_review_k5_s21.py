"""Review of session 21's Keras work (review_k5): the Fourier ops' memory estimate."""
import numpy as np
import pytest

from wsekern.nn import ops


def _spy(monkeypatch):
    """The FFT itself replaced by a marker: the sizes below would allocate GiBs."""
    monkeypatch.setattr(ops, "_linear_complex", lambda *a, **k: "computed")


@pytest.mark.parametrize("dtype, n, refused", [
    # float32 rows give a complex64 spectrum of n // 2 + 1 values: 2**20 rows of 1022
    # samples are 4 GiB exactly (kept), of 1024 just above (refused); float64 twice that
    ("float32", 300, False), ("float32", 1022, False), ("float32", 1024, True),
    ("float64", 400, False), ("float64", 510, False), ("float64", 512, True)])
def test_rfft_estimate_is_the_spectrum_size(monkeypatch, dtype, n, refused):
    """The estimate was 16 bytes x rows x fft_length, 2x (float64) to 4x (float32) the
    output: rfft of 2**20 float32 rows of 300 (a 1.2 GiB spectrum, which Keras computes)
    was refused as ~4.7 GiB."""
    _spy(monkeypatch)
    x = np.broadcast_to(np.zeros((), dtype), (2 ** 20, n))
    if refused:
        with pytest.raises(ValueError, match=rf"rfft: fft_length=None \(the input's last "
                                             rf"axis, {n}\) asks for 1048576 x {n // 2 + 1} "
                                             r"output samples, ~4\.\d GiB"):
            ops.rfft(x)
    else:
        assert ops.rfft(x) == "computed"
        assert ops.rfft(x[:, :8], n) == "computed"          # padded to n: the same size


@pytest.mark.parametrize("dtype, n, refused", [
    ("float32", 300, False), ("float32", 1024, False), ("float32", 1026, True),
    ("float64", 512, False), ("float64", 514, True)])
def test_irfft_estimate_is_the_signal_size(monkeypatch, dtype, n, refused):
    """irfft's output is n real samples a row, at the input's precision (float32 stays
    float32): 2**20 rows of 1024 float32 samples are 4 GiB (kept); was refused from 256."""
    _spy(monkeypatch)
    z = np.broadcast_to(np.zeros((), dtype), (2 ** 20, 3))
    if refused:
        with pytest.raises(ValueError, match=rf"irfft: fft_length={n} asks for 1048576 x "
                                             rf"{n} output samples.*smaller fft_length"):
            ops.irfft((z, z), n)
    else:
        assert ops.irfft((z, z), n) == "computed"


def test_fourier_estimate_matches_what_numpy_returns():
    """The estimate's item sizes are those of the arrays the ops return."""
    for dt in ("float32", "float64"):
        re, im = ops.rfft(np.ones((3, 10), dt), 16)
        assert re.shape == (3, 9) and re.dtype == dt
        assert ops.irfft((re, im), 16).dtype == dt
        assert np.fft.rfft(np.ones(16, dt)).dtype.itemsize == \
            np.result_type(dt, np.complex64).itemsize
