"""The resource terms of the HGQ loss: differentiable EBOPs of a network and the γ term Σf.

EBOPs are counted by a walk over the network that carries the bit widths of the data along: a
quantizer sets them, pooling, flattening, adds and concatenations transform them exactly, and
every weighted layer charges ``Σ bits(x)·bits(w)`` for the data that reaches it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .layers import QActivation, QAdd, QConcat, QConv1d, QConv2d, QInput, QLinear, QLookup


def _is_pool(module: nn.Module) -> bool:
    return isinstance(module, nn.MaxPool1d | nn.MaxPool2d | nn.AvgPool1d | nn.AvgPool2d)


def _pool_bits(module: nn.Module, bits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Bits after a pooling layer, and its EBOPs (average pooling adds, like weights of 1)."""
    two_d = isinstance(module, nn.MaxPool2d | nn.AvgPool2d)
    size = module.kernel_size
    area = math.prod(size) if isinstance(size, tuple) else size ** (2 if two_d else 1)
    pooled = (F.max_pool2d if two_d else F.max_pool1d)(
        bits[None], module.kernel_size, module.stride, module.padding
    )[0]
    if isinstance(module, nn.MaxPool1d | nn.MaxPool2d):
        return pooled, torch.zeros(())
    total = (F.avg_pool2d if two_d else F.avg_pool1d)(
        bits[None], module.kernel_size, module.stride, module.padding
    )[0]
    return pooled + math.log2(area), total.sum() * area


def _walk_ebops(modules: list[nn.Module], bits: torch.Tensor | None) -> tuple:
    """``(bits after the modules, their EBOPs)``; ``bits`` is ``None`` on unformatted data."""
    total = torch.zeros(())
    for module in modules:
        if isinstance(module, QInput | QActivation | QLookup):
            bits = module.bits()
        elif isinstance(module, QLinear | QConv1d | QConv2d):
            if bits is None:
                raise ValueError(
                    f"{type(module).__name__} needs formatted input: put a QInput, QActivation "
                    "or QLookup before it"
                )
            total = total + module.ebops(bits)
            bits = None
        elif isinstance(module, nn.Sequential):
            bits, cost = _walk_ebops(list(module), bits)
            total = total + cost
        elif isinstance(module, QAdd | QConcat):
            outs = []
            for branch in module.branches:
                out, cost = _walk_ebops([branch], bits)
                total = total + cost
                outs.append(out)
            if any(out is None for out in outs):
                bits = None
            elif isinstance(module, QAdd):
                bits = torch.stack(outs).amax(dim=0) + math.log2(len(outs))
            else:
                bits = torch.cat(outs, dim=0)
        elif bits is not None and _is_pool(module):
            bits, cost = _pool_bits(module, bits)
            total = total + cost
        elif bits is not None and isinstance(module, nn.Flatten):
            bits = bits.reshape(-1)
        elif not isinstance(module, nn.Identity):
            bits = None
    return bits, total


def ebops(model: nn.Sequential) -> torch.Tensor:
    """Differentiable EBOPs of an HGQ network: every weighted layer's ``Σ bits(x)·bits(w)``
    with the bits of the data that reaches it (see :func:`hgq_rtl.ir.reference.ebops` for the
    exact count of the frozen model)."""
    return _walk_ebops(list(model), None)[1]


def frac_bits_sum(model: nn.Module) -> torch.Tensor:
    """Sum of every quantizer's (rounded) fractional bits: the γ term of the loss."""
    params = [m.frac_bits for m in model.modules() if hasattr(m, "frac_bits")]
    return sum((p.sum() for p in params), torch.zeros(()))
