"""Models: ``Model`` (functional and subclassed), ``Sequential``, and ``load_model``."""
from .functional import Functional
from .model import Model
from .sequential import Sequential
from ..saving import load_model, save_model

from .gpt import GPT, GPTConfig

__all__ = ["Model", "Functional", "Sequential", "load_model", "save_model", "GPT", "GPTConfig"]
