"""Models: ``Model`` (functional and subclassed), ``Sequential``, and ``load_model``."""
from ..saving import load_model, save_model
from .functional import Functional
from .gpt import GPT, GPTConfig
from .model import Model
from .sequential import Sequential

__all__ = ["Model", "Functional", "Sequential", "load_model", "save_model", "GPT", "GPTConfig"]
