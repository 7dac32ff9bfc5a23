"""Quantized torch layers: drop-in modules with keyword-only quantizer options.

A network is an ``nn.Sequential`` of :class:`QInput`, then pairs of :class:`QLinear` and
:class:`QActivation`. Every quantized value has its own format: the input quantizer and each
activation quantizer fix the per-element format of the data, the weight and bias quantizers
that of each constant.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .ir.fixed import Activation, Overflow, RoundMode
from .quantizers import ActivationQuantizer, WeightQuantizer


class QInput(nn.Module):
    """Quantizes the network's input, one format per feature.

    Parameters
    ----------
    features
        Number of input features.
    init_frac_bits
        Initial fractional bits of every feature (learned afterwards).
    round_mode, overflow
        How the host rounds real inputs, and what happens to values outside the calibrated
        range (saturation by default).
    """

    def __init__(
        self,
        features: int,
        *,
        init_frac_bits: float = 6.0,
        round_mode: RoundMode = RoundMode.RND,
        overflow: Overflow = Overflow.SAT,
    ) -> None:
        super().__init__()
        _check_positive("features", features)
        self.features = features
        self.quantizer = ActivationQuantizer(
            features, init_frac_bits=init_frac_bits, round_mode=round_mode, overflow=overflow
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.quantizer(x)

    def bits(self) -> torch.Tensor:
        return self.quantizer.bits()


class QLinear(nn.Linear):
    """``nn.Linear`` with a learnable fixed-point format for every weight and bias.

    Same constructor as :class:`torch.nn.Linear`, plus keyword-only quantizer options:
    ``init_bits`` (significant bits each weight starts with) and ``bias_frac_bits`` (initial
    fractional bits of the bias). Weights and bias round to nearest (RND).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
        *,
        init_bits: int = 8,
        bias_frac_bits: float = 8.0,
    ) -> None:
        _check_positive("in_features", in_features)
        _check_positive("out_features", out_features)
        super().__init__(in_features, out_features, bias=bias, device=device, dtype=dtype)
        self.weight_quantizer = WeightQuantizer(self.weight, init_bits=init_bits)
        self.bias_quantizer = None
        if bias:
            self.bias_quantizer = WeightQuantizer(self.bias, init_bits=init_bits)
            with torch.no_grad():
                self.bias_quantizer.frac_bits.fill_(bias_frac_bits)

    def quantized_weight(self) -> torch.Tensor:
        return self.weight_quantizer(self.weight)

    def quantized_bias(self) -> torch.Tensor | None:
        return None if self.bias is None else self.bias_quantizer(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.quantized_weight().to(x.dtype)
        bias = self.quantized_bias()
        return F.linear(x, weight, None if bias is None else bias.to(x.dtype))

    def ebops(self, input_bits: torch.Tensor) -> torch.Tensor:
        """Differentiable EBOPs: ``sum_ij bits(x_j) * bits(w_ij)``."""
        weight_bits = self.weight_quantizer.bits(self.quantized_weight())
        return (weight_bits * input_bits[None, :]).sum()


class QActivation(nn.Module):
    """An element-wise activation followed by a quantizer that sets each output's format.

    Parameters
    ----------
    features
        Number of elements (the preceding layer's outputs).
    activation
        ``Activation.RELU`` or ``Activation.LINEAR`` (identity).
    init_frac_bits, round_mode, overflow
        Quantizer options: initial fractional bits, rounding, and what happens outside the
        calibrated range in hardware (wrap-around by default: it costs nothing).
    """

    def __init__(
        self,
        features: int,
        activation: Activation = Activation.RELU,
        *,
        init_frac_bits: float = 6.0,
        round_mode: RoundMode = RoundMode.RND,
        overflow: Overflow = Overflow.WRAP,
    ) -> None:
        super().__init__()
        _check_positive("features", features)
        if not isinstance(activation, Activation):
            raise TypeError(f"activation must be an Activation, not {activation!r}")
        self.features = features
        self.activation = activation
        self.quantizer = ActivationQuantizer(
            features, init_frac_bits=init_frac_bits, round_mode=round_mode, overflow=overflow
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.activation is Activation.RELU:
            x = torch.relu(x)
        return self.quantizer(x)

    def bits(self) -> torch.Tensor:
        return self.quantizer.bits()


def quantized_mlp(
    features: int,
    hidden: tuple[int, ...],
    outputs: int,
    *,
    init_bits: int = 8,
    init_frac_bits: float = 6.0,
) -> nn.Sequential:
    """``QInput → (QLinear → QActivation(ReLU))* → QLinear → QActivation(linear)``."""
    layers: list[nn.Module] = [QInput(features, init_frac_bits=init_frac_bits)]
    sizes = (features, *hidden)
    for size_in, size_out in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [
            QLinear(size_in, size_out, init_bits=init_bits),
            QActivation(size_out, Activation.RELU, init_frac_bits=init_frac_bits),
        ]
    layers += [
        QLinear(sizes[-1], outputs, init_bits=init_bits),
        QActivation(outputs, Activation.LINEAR, init_frac_bits=init_frac_bits),
    ]
    return nn.Sequential(*layers)


def ebops(model: nn.Sequential) -> torch.Tensor:
    """Differentiable EBOPs of a sequential HGQ network (each QLinear with its input's bits)."""
    total = torch.zeros(())
    input_bits = None
    for module in model:
        if isinstance(module, QInput | QActivation):
            input_bits = module.bits()
        elif isinstance(module, QLinear):
            if input_bits is None:
                raise ValueError("a QLinear needs a QInput or QActivation before it")
            total = total + module.ebops(input_bits)
    return total


def frac_bits_sum(model: nn.Module) -> torch.Tensor:
    """Sum of every quantizer's (rounded) fractional bits: the γ term of the loss."""
    params = [m.frac_bits for m in model.modules() if hasattr(m, "frac_bits")]
    return sum((p.sum() for p in params), torch.zeros(()))


def reset_ranges(model: nn.Module) -> None:
    """Forget every activation quantizer's observed range."""
    for module in model.modules():
        if isinstance(module, ActivationQuantizer):
            module.reset_ranges()


def _check_positive(name: str, value: int) -> None:
    if not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, not {value!r}")
