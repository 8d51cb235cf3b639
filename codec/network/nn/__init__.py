"""Small building blocks shared by the encoder, decoder and discriminators."""
from codec.network.nn.activations import ACTIVATIONS, Snake, make_activation
from codec.network.nn.conv import Conv1d, ConvTranspose1d, fold_weight_norm

__all__ = ["ACTIVATIONS", "Snake", "make_activation", "Conv1d", "ConvTranspose1d",
           "fold_weight_norm"]
