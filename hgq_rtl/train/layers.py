"""Quantized torch layers: drop-in modules with keyword-only quantizer options.

A network is an ``nn.Sequential`` that starts with :class:`QInput`. Data has a fixed-point
format wherever a quantizer set it: after :class:`QInput`, :class:`QActivation` and
:class:`QLookup`, and after the layers that keep formats exact (pooling, ``nn.Flatten``,
:class:`QAdd`, :class:`QConcat`). Every weighted layer (:class:`QLinear`, :class:`QConv1d`,
:class:`QConv2d` and their fused-BatchNorm twins) reads formatted data and hands an unformatted
sum to the next quantizer, so it is followed by a :class:`QActivation` or a :class:`QLookup`.

Every quantizer takes ``granularity`` (:class:`~hgq_rtl.train.quantizers.Granularity`): one
learnable fractional-bit count per element (default), per channel or per tensor.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..ir.fixed import Activation, Overflow, RoundMode
from .quantizers import ActivationQuantizer, Granularity, WeightQuantizer

Shape = int | tuple[int, ...]


def _shape(shape: Shape, what: str) -> tuple[int, ...]:
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    if not shape or any(not isinstance(d, int) or isinstance(d, bool) or d < 1 for d in shape):
        raise ValueError(f"{what} must be a positive integer or a tuple of them, not {shape!r}")
    return shape


class QInput(nn.Module):
    """Quantizes the network's input, one format per element.

    Parameters
    ----------
    shape
        Shape of one sample: ``features`` for an MLP, ``(channels, length)`` or
        ``(channels, height, width)`` for a convolutional network.
    init_frac_bits
        Initial fractional bits of every element (learned afterwards).
    round_mode, overflow
        How the host rounds real inputs, and what happens to values outside the calibrated
        range (saturation by default).
    granularity
        One fractional-bit count per element, channel or tensor.
    channel_ranges
        Sign and integer bits per channel instead of per element (for streaming designs; see
        :class:`~hgq_rtl.train.quantizers.ActivationQuantizer`).
    """

    def __init__(
        self,
        shape: Shape,
        *,
        init_frac_bits: float = 6.0,
        round_mode: RoundMode = RoundMode.RND,
        overflow: Overflow = Overflow.SAT,
        granularity: Granularity = Granularity.ELEMENT,
        channel_ranges: bool = False,
    ) -> None:
        super().__init__()
        self.shape = _shape(shape, "QInput shape")
        self.features = math.prod(self.shape)
        self.quantizer = ActivationQuantizer(
            self.shape,
            init_frac_bits=init_frac_bits,
            round_mode=round_mode,
            overflow=overflow,
            granularity=granularity,
            channel_ranges=channel_ranges,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.quantizer(x)

    def bits(self) -> torch.Tensor:
        return self.quantizer.bits()


class QActivation(nn.Module):
    """An element-wise activation followed by a quantizer that sets each output's format.

    Parameters
    ----------
    shape
        Shape of one sample of the data it quantizes (``features`` after a dense layer,
        ``(channels, height, width)`` after a 2-D convolution).
    activation
        ``Activation.RELU`` or ``Activation.LINEAR`` (identity).
    init_frac_bits, round_mode, overflow, granularity, channel_ranges
        Quantizer options: initial fractional bits, rounding, what happens outside the
        calibrated range in hardware (wrap-around by default: it costs nothing), how finely
        fractional bits are learned, and sign and integer bits per channel instead of per
        element (for streaming designs).
    """

    def __init__(
        self,
        shape: Shape,
        activation: Activation = Activation.RELU,
        *,
        init_frac_bits: float = 6.0,
        round_mode: RoundMode = RoundMode.RND,
        overflow: Overflow = Overflow.WRAP,
        granularity: Granularity = Granularity.ELEMENT,
        channel_ranges: bool = False,
    ) -> None:
        super().__init__()
        self.shape = _shape(shape, "QActivation shape")
        self.features = math.prod(self.shape)
        if not isinstance(activation, Activation):
            raise TypeError(f"activation must be an Activation, not {activation!r}")
        self.activation = activation
        self.quantizer = ActivationQuantizer(
            self.shape,
            init_frac_bits=init_frac_bits,
            round_mode=round_mode,
            overflow=overflow,
            granularity=granularity,
            channel_ranges=channel_ranges,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.activation is Activation.RELU:
            x = torch.relu(x)
        return self.quantizer(x)

    def bits(self) -> torch.Tensor:
        return self.quantizer.bits()


#: Element-wise functions :class:`QLookup` knows by name.
LOOKUP_FUNCTIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
}


class QLookup(nn.Module):
    """A quantized element-wise function computed in hardware by a lookup table.

    The input is quantized (learnable bits, range from observation), the function applied, and
    the result quantized with its own learnable bits. Frozen, each element becomes a table over
    every integer its input format can hold, so the hardware answers exactly what the model
    computes.

    Parameters
    ----------
    shape
        Shape of one sample of the data.
    function
        ``"tanh"``, ``"sigmoid"`` or any element-wise callable on tensors (it must act on each
        element alone: the table of one element is computed from its own input only).
    init_frac_bits, round_mode, granularity
        Options of both quantizers. ``input_overflow`` defaults to wrap-around like
        :class:`QActivation`; ``output_overflow`` to saturation, which a table gets for free.
    """

    def __init__(
        self,
        shape: Shape,
        function: str | Callable[[torch.Tensor], torch.Tensor],
        *,
        init_frac_bits: float = 6.0,
        round_mode: RoundMode = RoundMode.RND,
        input_overflow: Overflow = Overflow.WRAP,
        output_overflow: Overflow = Overflow.SAT,
        granularity: Granularity = Granularity.ELEMENT,
    ) -> None:
        super().__init__()
        self.shape = _shape(shape, "QLookup shape")
        self.features = math.prod(self.shape)
        if isinstance(function, str):
            if function not in LOOKUP_FUNCTIONS:
                raise ValueError(
                    f"function must be one of {', '.join(LOOKUP_FUNCTIONS)} or a callable, "
                    f"not {function!r}"
                )
            self.function_name, function = function, LOOKUP_FUNCTIONS[function]
        elif callable(function):
            self.function_name = getattr(function, "__name__", type(function).__name__)
        else:
            raise TypeError(f"function must be a name or a callable, not {function!r}")
        self.function = function
        options: dict[str, Any] = {
            "init_frac_bits": init_frac_bits,
            "round_mode": round_mode,
            "granularity": granularity,
        }
        self.input_quantizer = ActivationQuantizer(self.shape, overflow=input_overflow, **options)
        self.quantizer = ActivationQuantizer(self.shape, overflow=output_overflow, **options)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.quantizer(self.function(self.input_quantizer(x)))

    def bits(self) -> torch.Tensor:
        return self.quantizer.bits()


#: The weight bits a training forward computed, per layer, for that step's EBOPs (kept outside
#: the modules so that copying or saving a model never carries an autograd graph along).
_FRESH_BITS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class _QWeighted:
    """What :class:`QLinear` and the convolutions share: quantized (folded) weight and bias.

    Subclasses call :meth:`_init_quantizers` after ``nn.Linear``/``nn.ConvNd`` created the
    parameters, and implement ``_product(x, weight)`` (the layer's linear map without bias).
    """

    weight: nn.Parameter
    bias: nn.Parameter | None

    def _init_quantizers(
        self, init_bits: int, bias_frac_bits: float, granularity: Granularity, has_bias: bool
    ) -> None:
        self.weight_quantizer = WeightQuantizer(
            self.weight, init_bits=init_bits, granularity=granularity
        )
        self.bias_quantizer = None
        if has_bias:
            # the bias shares the output channel's count at channel granularity: one per output
            bias_granularity = (
                Granularity.TENSOR if granularity is Granularity.TENSOR else Granularity.ELEMENT
            )
            channels = self.weight.shape[0]
            self.bias_quantizer = WeightQuantizer(
                torch.ones(channels), init_bits=init_bits, granularity=bias_granularity
            )
            with torch.no_grad():
                self.bias_quantizer.frac_bits.fill_(bias_frac_bits)

    def _has_bias(self, bias: bool) -> bool:
        return bias

    def folded(self, x: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The real weight and bias before quantization (a fused BatchNorm folds into them)."""
        return self.weight, self.bias

    def quantized(self, x: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Quantized weight and bias: what the hardware multiplies by and adds.

        A training forward (gradients on, not traced by ``torch.compile``) computes the weights'
        bits with them and keeps them for the next :meth:`weight_bits` (the EBOPs of the same
        step), as long as neither the weight nor its fractional bits change in between.
        """
        weight, bias = self.folded(x)
        if (
            weight is self.weight
            and self.training
            and torch.is_grad_enabled()
            and not torch.compiler.is_compiling()
        ):
            weight_q, bits = self.weight_quantizer.forward_with_bits(weight)
            _FRESH_BITS[self] = (bits, self._bits_key())
        else:
            weight_q = self.weight_quantizer(weight)
        bias_q = None if bias is None else self.bias_quantizer(bias)
        return weight_q, bias_q

    def _bits_key(self) -> tuple[int, ...]:
        frac_bits = self.weight_quantizer.frac_bits
        return (id(self.weight), self.weight._version, id(frac_bits), frac_bits._version)

    def quantized_weight(self) -> torch.Tensor:
        return self.quantized()[0]

    def quantized_bias(self) -> torch.Tensor | None:
        return self.quantized()[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight, bias = self.quantized(x)
        out = self._product(x, weight.to(x.dtype))
        if bias is not None:
            out = out + bias.to(x.dtype).reshape(-1, *([1] * (out.dim() - 2)))
        return out

    def weight_bits(self) -> torch.Tensor:
        """Differentiable bits of every weight (see :meth:`WeightQuantizer.bits`).

        Uses (once) the bits the last training forward computed when the weight and its
        fractional bits are unchanged since; computes them otherwise.
        """
        if not torch.compiler.is_compiling():
            fresh = _FRESH_BITS.pop(self, None)
            if fresh is not None and fresh[1] == self._bits_key():
                return fresh[0]
        return self.weight_quantizer.forward_with_bits(self.folded()[0])[1]


class QLinear(_QWeighted, nn.Linear):
    """``nn.Linear`` with a learnable fixed-point format for every weight and bias.

    Same constructor as :class:`torch.nn.Linear`, plus keyword-only quantizer options:
    ``init_bits`` (significant bits each weight starts with), ``bias_frac_bits`` (initial
    fractional bits of the bias) and ``granularity``. Weights and bias round to nearest (RND).
    Its input must be flat: put ``nn.Flatten()`` after a convolution.
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
        granularity: Granularity = Granularity.ELEMENT,
    ) -> None:
        _check_positive("in_features", in_features)
        _check_positive("out_features", out_features)
        nn.Linear.__init__(self, in_features, out_features, bias, device, dtype)
        self._init_quantizers(init_bits, bias_frac_bits, granularity, self._has_bias(bias))

    def _product(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return F.linear(x, weight)

    def ebops(self, input_bits: torch.Tensor) -> torch.Tensor:
        """Differentiable EBOPs: ``sum_ij bits(x_j) * bits(w_ij)``."""
        return (self.weight_bits() * input_bits[None, :]).sum()


class _QConv(_QWeighted):
    """Shared by :class:`QConv1d` and :class:`QConv2d`: ``nn.ConvNd``'s constructor (zero
    padding only; any stride, dilation and groups) plus the quantizer options."""

    _torch_conv: type[nn.Module]

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, ...],
        stride: int | tuple[int, ...] = 1,
        padding: int | tuple[int, ...] = 0,
        dilation: int | tuple[int, ...] = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
        *,
        init_bits: int = 8,
        bias_frac_bits: float = 8.0,
        granularity: Granularity = Granularity.ELEMENT,
        kernel_ebops: bool = False,
    ) -> None:
        self._torch_conv.__init__(
            self, in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
            bias, padding_mode, device, dtype,
        )  # fmt: skip
        #: count one kernel application (a stream's one shared kernel) instead of every
        #: output position (a fully unrolled layer): ``ebops_conv`` of the frozen model
        self.kernel_ebops = bool(kernel_ebops)
        if self.padding_mode != "zeros":
            raise ValueError(f"padding_mode must be 'zeros', not {self.padding_mode!r}")
        if isinstance(self.padding, str):
            raise ValueError(f"padding must be integers, not {self.padding!r}")
        self._init_quantizers(init_bits, bias_frac_bits, granularity, self._has_bias(bias))

    def _product(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, weight, None)

    def ebops(self, input_bits: torch.Tensor) -> torch.Tensor:
        """Differentiable EBOPs: every kernel application's ``sum bits(x) * bits(w)``, summed
        over all output positions (zero padding costs nothing); with ``kernel_ebops`` the
        widest single application instead (with one format per input channel and no padding,
        every application costs the same)."""
        bits = self._conv_forward(input_bits[None], self.weight_bits(), None)
        if self.kernel_ebops:
            return bits[0].sum(dim=0).amax()
        return bits.sum()


class QConv1d(_QConv, nn.Conv1d):
    """``nn.Conv1d`` with a learnable fixed-point format for every weight and bias.

    Same constructor as :class:`torch.nn.Conv1d` (zero padding only), plus keyword-only
    ``init_bits``, ``bias_frac_bits`` and ``granularity`` as in :class:`QLinear`, and
    ``kernel_ebops`` (count the EBOPs of one kernel application, as a stream builds it).
    """

    _torch_conv = nn.Conv1d


class QConv2d(_QConv, nn.Conv2d):
    """``nn.Conv2d`` with a learnable fixed-point format for every weight and bias.

    Same constructor as :class:`torch.nn.Conv2d` (zero padding only), plus keyword-only
    ``init_bits``, ``bias_frac_bits`` and ``granularity`` as in :class:`QLinear`, and
    ``kernel_ebops`` (count the EBOPs of one kernel application, as a stream builds it).
    """

    _torch_conv = nn.Conv2d


class _FusedBatchNorm:
    """A BatchNorm after the layer's linear map, folded into its weight and bias.

    Training: the mean and variance of the *unquantized* product over the batch (and spatial
    positions) normalize it, the running statistics follow them like ``nn.BatchNorm`` does, and
    the folded weight and bias are what gets quantized, so the quantized values are the deployed
    ones. Inference: the running statistics fold in. The fused layer always has a bias.
    """

    def _init_batch_norm(self, channels: int, eps: float, momentum: float) -> None:
        if not eps > 0:
            raise ValueError(f"eps must be > 0, not {eps}")
        if not 0 < momentum <= 1:
            raise ValueError(f"momentum must be in (0, 1], not {momentum}")
        self.eps = eps
        self.momentum = momentum
        self.bn_weight = nn.Parameter(torch.ones(channels))
        self.bn_bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))

    def _has_bias(self, bias: bool) -> bool:
        return True

    def folded(self, x: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if x is not None and self.training:
            product = self._product(x, self.weight.to(x.dtype))
            axes = [0] + list(range(2, product.dim()))
            mean = product.mean(dim=axes)
            var = product.var(dim=axes, unbiased=False)
            with torch.no_grad():
                count = product.numel() // product.shape[1]
                unbiased = var * count / max(count - 1, 1)
                self.running_mean.lerp_(mean.detach().to(self.running_mean.dtype), self.momentum)
                self.running_var.lerp_(unbiased.detach().to(self.running_var.dtype), self.momentum)
        else:
            mean, var = self.running_mean, self.running_var
        scale = self.bn_weight / torch.sqrt(var + self.eps)
        weight = self.weight * scale.reshape(-1, *([1] * (self.weight.dim() - 1)))
        bias = self.bn_bias - mean * scale
        if self.bias is not None:
            bias = bias + self.bias * scale
        return weight, bias


class QLinearBN(_FusedBatchNorm, QLinear):
    """:class:`QLinear` followed by a BatchNorm1d, fused (see :class:`_FusedBatchNorm`).

    Extra keyword-only options ``eps`` and ``momentum`` as in ``nn.BatchNorm1d``.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = False,
        *,
        eps: float = 1e-5,
        momentum: float = 0.1,
        **options: Any,
    ) -> None:
        QLinear.__init__(self, in_features, out_features, bias, **options)
        self._init_batch_norm(out_features, eps, momentum)


class _QConvBN(_FusedBatchNorm):
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, ...],
        *args: Any,
        eps: float = 1e-5,
        momentum: float = 0.1,
        **options: Any,
    ) -> None:
        options.setdefault("bias", False)
        _QConv.__init__(self, in_channels, out_channels, kernel_size, *args, **options)
        self._init_batch_norm(out_channels, eps, momentum)


class QConv1dBN(_QConvBN, QConv1d):
    """:class:`QConv1d` followed by a BatchNorm1d, fused (see :class:`_FusedBatchNorm`).

    Extra keyword-only options ``eps`` and ``momentum`` as in ``nn.BatchNorm1d``.
    """


class QConv2dBN(_QConvBN, QConv2d):
    """:class:`QConv2d` followed by a BatchNorm2d, fused (see :class:`_FusedBatchNorm`).

    Extra keyword-only options ``eps`` and ``momentum`` as in ``nn.BatchNorm2d``.
    """


class QAdd(nn.Module):
    """Element-wise sum of branches applied to the same input (e.g. a residual connection).

    ``QAdd(nn.Identity(), nn.Sequential(QLinear(8, 8), QActivation(8)))`` computes
    ``x + f(x)``. Each branch must end on formatted data (a quantizer, pooling, flatten or the
    identity); the sum is exact: it gets as many bits as it needs.
    """

    def __init__(self, *branches: nn.Module) -> None:
        super().__init__()
        if len(branches) < 2:
            raise ValueError(f"QAdd needs at least 2 branches, not {len(branches)}")
        self.branches = nn.ModuleList(branches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = [branch(x) for branch in self.branches]
        total = outputs[0]
        for out in outputs[1:]:
            if out.shape != total.shape:
                raise ValueError(f"QAdd branches give shapes {total.shape} and {out.shape}")
            total = total + out
        return total


class QConcat(nn.Module):
    """Concatenation of branches applied to the same input, along the channel axis (1).

    Each branch must end on formatted data; formats are kept as they are.
    """

    def __init__(self, *branches: nn.Module) -> None:
        super().__init__()
        if len(branches) < 2:
            raise ValueError(f"QConcat needs at least 2 branches, not {len(branches)}")
        self.branches = nn.ModuleList(branches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(x) for branch in self.branches], dim=1)


def quantized_mlp(
    features: int,
    hidden: tuple[int, ...],
    outputs: int,
    *,
    init_bits: int = 8,
    init_frac_bits: float = 6.0,
    granularity: Granularity = Granularity.ELEMENT,
    batch_norm: bool = False,
) -> nn.Sequential:
    """``QInput → (QLinear → QActivation(ReLU))* → QLinear → QActivation(linear)``.

    ``batch_norm`` fuses a BatchNorm into every hidden layer (:class:`QLinearBN`).
    """
    q = {"init_frac_bits": init_frac_bits, "granularity": granularity}
    w = {"init_bits": init_bits, "granularity": granularity}
    layers: list[nn.Module] = [QInput(features, **q)]
    sizes = (features, *hidden)
    hidden_layer = QLinearBN if batch_norm else QLinear
    for size_in, size_out in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [hidden_layer(size_in, size_out, **w), QActivation(size_out, **q)]
    layers += [
        QLinear(sizes[-1], outputs, **w),
        QActivation(outputs, Activation.LINEAR, **q),
    ]
    return nn.Sequential(*layers)


def reset_ranges(model: nn.Module) -> None:
    """Forget every activation quantizer's observed range."""
    for module in model.modules():
        if isinstance(module, ActivationQuantizer):
            module.reset_ranges()


def _check_positive(name: str, value: int) -> None:
    if not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, not {value!r}")
