"""Layers with Keras's names, arguments and defaults."""
from .attention import Embedding, MultiHeadAttention, TokenAndPositionEmbedding, TransformerBlock
from .base import Layer
from .conv import (
                        AveragePool2D,
                        AveragePooling2D,
                        Conv2D,
                        GlobalAveragePooling2D,
                        MaxPool2D,
                        MaxPooling2D,
)
from .conv_extra import Conv1D, Conv2DTranspose, DepthwiseConv2D, SeparableConv1D, SeparableConv2D
from .core import Activation, Dense, Dropout, Flatten, Reshape
from .input_layer import Input, InputLayer
from .merge import (
                        Add,
                        Average,
                        Concatenate,
                        Dot,
                        Maximum,
                        Minimum,
                        Multiply,
                        Subtract,
                        add,
                        average,
                        concatenate,
                        dot,
                        maximum,
                        minimum,
                        multiply,
                        subtract,
)
from .normalization import BatchNormalization, LayerNormalization
from .simple import (
                        ELU,
                        AveragePool1D,
                        AveragePooling1D,
                        Cropping1D,
                        Cropping2D,
                        GaussianDropout,
                        GaussianNoise,
                        GlobalAveragePooling1D,
                        GlobalAvgPool1D,
                        GlobalMaxPool1D,
                        GlobalMaxPool2D,
                        GlobalMaxPooling1D,
                        GlobalMaxPooling2D,
                        Identity,
                        Lambda,
                        LeakyReLU,
                        Masking,
                        MaxPool1D,
                        MaxPooling1D,
                        Permute,
                        PReLU,
                        ReLU,
                        RepeatVector,
                        Rescaling,
                        Softmax,
                        SpatialDropout1D,
                        SpatialDropout2D,
                        SpatialDropout3D,
                        TimeDistributed,
                        UpSampling1D,
                        UpSampling2D,
                        ZeroPadding1D,
                        ZeroPadding2D,
)

Convolution1D, Convolution2DTranspose, SeparableConvolution2D = (Conv1D, Conv2DTranspose,
                                                                 SeparableConv2D)
GlobalAvgPool2D = GlobalAveragePooling2D

__all__ = ["Layer", "Input", "InputLayer", "Dense", "Activation", "Dropout", "Flatten", "Reshape",
           "Conv2D", "MaxPooling2D", "MaxPool2D", "AveragePooling2D", "AveragePool2D",
           "GlobalAveragePooling2D", "BatchNormalization", "LayerNormalization", "Embedding",
           "TokenAndPositionEmbedding", "MultiHeadAttention", "TransformerBlock",
           "Conv1D", "Conv2DTranspose", "DepthwiseConv2D", "SeparableConv1D", "SeparableConv2D",
           "ELU", "AveragePooling1D", "AveragePool1D", "Cropping1D", "Cropping2D",
           "GaussianDropout", "GaussianNoise", "GlobalAveragePooling1D", "GlobalAvgPool1D",
           "GlobalAvgPool2D", "GlobalMaxPool1D", "GlobalMaxPool2D", "GlobalMaxPooling1D",
           "GlobalMaxPooling2D", "Identity", "Lambda", "Masking", "LeakyReLU", "MaxPool1D",
           "MaxPooling1D",
           "Permute", "PReLU", "ReLU", "RepeatVector", "Rescaling", "Softmax", "SpatialDropout1D",
           "SpatialDropout2D", "SpatialDropout3D", "TimeDistributed", "UpSampling1D",
           "UpSampling2D", "ZeroPadding1D", "ZeroPadding2D", "Convolution1D",
           "Convolution2DTranspose", "SeparableConvolution2D",
           "Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate", "Dot",
           "add", "subtract", "multiply", "average", "maximum", "minimum", "concatenate", "dot",
           "serialize", "deserialize"]        # set by wsekern.nn (saving.objects)
