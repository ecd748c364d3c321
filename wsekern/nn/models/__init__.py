"""Models: ``Model`` (functional and subclassed), ``Sequential``, ``load_model``,
``clone_model`` and ``model_from_json``."""
from ..saving import load_model, save_model
from .cloning import clone_model, model_from_json
from .functional import Functional
from .gpt import GPT, GPTConfig
from .model import Model
from .sequential import Sequential

__all__ = ["Model", "Functional", "Sequential", "load_model", "save_model", "GPT", "GPTConfig",
           "clone_model", "model_from_json"]
