"""The frozen integer model (IR): formats, layers, save/load and the pure-integer reference.

Imports only numpy and the standard library, so other tools can read and write it.
"""

from .dense import DenseLayer
from .fixed import Activation, FixedFormat, Overflow, RoundMode
from .formats import TensorFormat
from .io import IRFormatError, load, save
from .layers import AddLayer, ConcatLayer, LookupLayer, MaxPoolLayer, QuantizeLayer
from .lowering import lower_spatial
from .model import MODEL_INPUT, IRModel, ModelInput
from .reference import ebops, predict, quantize_input, run, run_all, run_named
from .spatial import ConvLayer, MaxPoolNdLayer

__all__ = [
    "MODEL_INPUT",
    "Activation",
    "AddLayer",
    "ConcatLayer",
    "ConvLayer",
    "DenseLayer",
    "FixedFormat",
    "IRFormatError",
    "IRModel",
    "LookupLayer",
    "MaxPoolLayer",
    "MaxPoolNdLayer",
    "ModelInput",
    "Overflow",
    "QuantizeLayer",
    "RoundMode",
    "TensorFormat",
    "ebops",
    "load",
    "lower_spatial",
    "predict",
    "quantize_input",
    "run",
    "run_all",
    "run_named",
    "save",
]
