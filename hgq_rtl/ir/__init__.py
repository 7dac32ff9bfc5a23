"""The frozen integer model (IR): formats, layers, save/load and the pure-integer reference.

Imports only numpy and the standard library, so other tools can read and write it.
"""

from .dense import DenseLayer
from .fixed import Activation, FixedFormat, Overflow, RoundMode
from .formats import TensorFormat
from .io import IRFormatError, load, save
from .layers import AddLayer, ConcatLayer, LookupLayer, MaxPoolLayer, QuantizeLayer
from .model import IRModel
from .reference import ebops, predict, quantize_input, run, run_all, run_named

__all__ = [
    "Activation",
    "AddLayer",
    "ConcatLayer",
    "DenseLayer",
    "FixedFormat",
    "IRFormatError",
    "IRModel",
    "LookupLayer",
    "MaxPoolLayer",
    "Overflow",
    "QuantizeLayer",
    "RoundMode",
    "TensorFormat",
    "ebops",
    "load",
    "predict",
    "quantize_input",
    "run",
    "run_all",
    "run_named",
    "save",
]
