"""``keras.backend``'s session functions and constants that a Keras 3 program calls whatever
its backend: ``clear_session``, ``get_uid`` (the counters automatic names take), ``floatx``,
``epsilon`` and ``image_data_format``. ``backend()`` itself is not given: wsekern.nn is
none of Keras's backends, and a program that branches on it would take a wrong branch."""
from .naming import get_uid
from .utils import clear_session


def floatx():
    """The default float type: float32, as Keras's unless ``set_floatx`` was called."""
    return "float32"


def epsilon():
    """The fuzz factor of the losses and metrics (Keras's default, 1e-7)."""
    return 1e-7


def image_data_format():
    """Images are (batch, height, width, channels), as Keras's default."""
    return "channels_last"


__all__ = ["clear_session", "get_uid", "floatx", "epsilon", "image_data_format"]
