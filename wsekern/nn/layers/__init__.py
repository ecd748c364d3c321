"""Layers with Keras's names, arguments and defaults."""
from .attention import (Embedding, MultiHeadAttention, TokenAndPositionEmbedding,
                        TransformerBlock)
from .base import Layer
from .conv import (AveragePool2D, AveragePooling2D, Conv2D, GlobalAveragePooling2D, MaxPool2D,
                   MaxPooling2D)
from .core import Activation, Dense, Dropout, Flatten, Reshape
from .input_layer import Input, InputLayer
from .merge import (Add, Average, Concatenate, Dot, Maximum, Minimum, Multiply, Subtract, add,
                    average, concatenate, dot, maximum, minimum, multiply, subtract)
from .normalization import BatchNormalization, LayerNormalization

__all__ = ["Layer", "Input", "InputLayer", "Dense", "Activation", "Dropout", "Flatten", "Reshape",
           "Conv2D", "MaxPooling2D", "MaxPool2D", "AveragePooling2D", "AveragePool2D",
           "GlobalAveragePooling2D", "BatchNormalization", "LayerNormalization", "Embedding",
           "TokenAndPositionEmbedding", "MultiHeadAttention", "TransformerBlock",
           "Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate", "Dot",
           "add", "subtract", "multiply", "average", "maximum", "minimum", "concatenate", "dot"]
