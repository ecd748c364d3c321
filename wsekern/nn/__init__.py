"""wsekern.nn: a thin Keras-like model builder over wsekern's zero-skipping kernels.

Code written for Keras 3 runs with ``keras`` replaced by ``wsekern.nn``.
"""
from . import (
           activations,
           backend,
           callbacks,
           constraints,
           initializers,
           layers,
           losses,
           metrics,
           models,
           ops,
           optimizers,
           pruning,
           random,
           registry,
           regularizers,
           saving,
           schedules,
           utils,
)
from .layers import Input
from .models import Model, Sequential, load_model
from .strategy import WaferStrategy
from .variables import Variable

# GradualPruning lives in pruning.py (it needs the layers); reachable as a callback too,
# set here so callbacks.py does not import pruning.py back.
callbacks.GradualPruning = pruning.GradualPruning
# Keras's layers.serialize/deserialize are saving's general ones; set here so that the layers
# package does not import saving back
layers.serialize = saving.serialize_keras_object
layers.deserialize = saving.deserialize_keras_object

__all__ = ["activations", "backend", "callbacks", "constraints", "initializers", "layers", "losses",
           "optimizers", "pruning",
           "utils", "models", "saving", "Input", "Model", "Sequential", "Variable", "load_model",
           "metrics", "ops", "random", "registry", "regularizers", "schedules", "WaferStrategy"]
