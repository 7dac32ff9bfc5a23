"""Small constructors of IR formats and layers shared by the IR tests."""

from __future__ import annotations

import numpy as np

from hgq_rtl.ir.model import DenseLayer, TensorFormat


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
