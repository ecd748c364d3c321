"""Keras's automatic names: one table for the process, by snake-case name, from which
layers, models, optimizers and unnamed variables are named alike (dense, dense_1, adam,
variable_1, ...), and which ``utils.clear_session`` empties."""
import re

NAME_COUNTS = {}


def auto_name(cls_name):
    """Keras's default name for an object of class ``cls_name`` (Conv2D -> conv2d,
    MaxPooling2D -> max_pooling2d, RMSprop -> rm_sprop), then _1, _2..."""
    snake = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", re.sub(r"\W+", "", cls_name))
    snake = re.sub("([a-z])([A-Z])", r"\1_\2", snake).lower()
    n = NAME_COUNTS.get(snake, 0)
    NAME_COUNTS[snake] = n + 1
    return snake if n == 0 else f"{snake}_{n}"
