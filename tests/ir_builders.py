"""Small constructors of IR formats and layers shared by the IR tests."""

from __future__ import annotations

import numpy as np

from hgq_rtl.ir.dense import DenseLayer
from hgq_rtl.ir.formats import TensorFormat


def fmt(signed, int_bits, frac_bits) -> TensorFormat:
    return TensorFormat(np.array(signed, bool), np.array(int_bits), np.array(frac_bits))


def dense(name, weight, weight_frac_bits, bias, bias_frac_bits, output, **kwargs) -> DenseLayer:
    return DenseLayer(
        name=name,
        weight=np.array(weight),
        weight_frac_bits=np.array(weight_frac_bits),
        bias=np.array(bias),
        bias_frac_bits=np.array(bias_frac_bits),
        output=output,
        **kwargs,
    )


def select(name, input_format: TensorFormat, indices, **kwargs) -> DenseLayer:
    """A dense layer copying input elements ``indices`` exactly (weight 1, same formats)."""
    indices = np.asarray(indices)
    weight = np.zeros((indices.size, input_format.size), np.int64)
    weight[np.arange(indices.size), indices] = 1
    output = TensorFormat(
        input_format.signed[indices],
        input_format.int_bits[indices],
        input_format.frac_bits[indices],
    )
    zeros = np.zeros(indices.size, np.int64)
    return DenseLayer(name, weight, np.zeros_like(weight), zeros, zeros, output, **kwargs)
