"""Freezing a trained HGQ network into the integer IR, and check 1 (torch == reference).

The IR holds every tensor flattened to 1-D per sample (torch's C order of ``(C, H, W)``); the
spatial layers keep their shapes:

* ``QLinear`` → a dense layer; ``QConv1d``/``QConv2d`` (and their BatchNorm twins, folded) → a
  conv layer (kernel, stride, padding, dilation, groups); average pooling → a depthwise conv
  layer of weights 1 with ``log2(divisor)`` fractional bits (the divisor must be a power of
  two); ``nn.MaxPool1d``/``2d`` → a maxpool_nd layer;
* ``QAdd``/``QConcat`` → add/concat nodes; a quantizer on formatted data → a requantization
  node; ``QLookup`` → a table per element;
* ``nn.Flatten`` and ``nn.Identity`` change nothing.

A model with a conv or maxpool_nd layer gets its input's shape (``QInput.shape``); any other
model keeps a flat input, so that it is written as before (schema version 1 or 2).

Formats that are not learned (after pooling, adding) are computed exactly: such nodes never
round or overflow, which is what torch computes in float64.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..ir import reference
from ..ir.dense import DenseLayer, accumulator_frac_bits, accumulator_range
from ..ir.fixed import Activation, Overflow, RoundMode
from ..ir.formats import (
    TensorFormat,
    concat_formats,
    exact_add_format,
    exact_maxpool_format,
    format_of_ranges,
)
from ..ir.layers import (
    MAX_TABLE_ENTRIES,
    AddLayer,
    ConcatLayer,
    LookupLayer,
    QuantizeLayer,
)
from ..ir.lowering import lower_layer
from ..ir.model import MODEL_INPUT, IRModel, ModelInput
from ..ir.spatial import ConvLayer, MaxPoolNdLayer, pool_windows, window_indices
from .layers import (
    QActivation,
    QAdd,
    QConcat,
    QConv1d,
    QConv2d,
    QInput,
    QLinear,
    QLookup,
    _QWeighted,
)
from .quantizers import ActivationQuantizer

#: Widest accumulator for which the float64 torch forward is exact (check 1).
FLOAT64_EXACT_BITS = 53


def calibrate(model: nn.Module, x: np.ndarray | torch.Tensor, batch_size: int = 1024) -> None:
    """Fix every activation quantizer's sign and integer bits from ranges seen on ``x``.

    Runs the model in float64 (exactly what the integer reference computes) over ``x`` and
    records each element's min/max; afterwards eval-mode forwards apply the overflow modes.
    """
    quantizers = [m for m in model.modules() if isinstance(m, ActivationQuantizer)]
    dtype = next(model.parameters()).dtype
    was_training = model.training
    model.double().eval()
    try:
        for q in quantizers:
            q.reset_ranges()
            q.calibrated.fill_(False)
            q.observing = True
        data = torch.as_tensor(np.asarray(x), dtype=torch.float64)
        with torch.no_grad():
            for start in range(0, len(data), batch_size):
                try:
                    model(data[start : start + batch_size])
                except RuntimeError as error:
                    reason = str(error).strip().splitlines()[0]
                    raise ValueError(
                        f"the model cannot run on samples of shape {tuple(data.shape[1:])}: "
                        f"{reason}"
                    ) from error
        for q in quantizers:
            q.calibrate()
    finally:
        for q in quantizers:
            q.observing = False
        model.to(dtype)
        model.train(was_training)


def _format(quantizer: ActivationQuantizer) -> TensorFormat:
    return TensorFormat(
        quantizer.signed.cpu().numpy().reshape(-1),
        quantizer.int_bits.detach().cpu().double().numpy().reshape(-1),
        quantizer.element_frac_bits().cpu().double().numpy().reshape(-1),
    )


def _integers(values: torch.Tensor, frac_bits: torch.Tensor, what: str) -> tuple:
    values = values.detach().double().cpu()
    frac = torch.floor(frac_bits.detach().double().cpu() + 0.5).expand(values.shape)
    scaled = torch.ldexp(values, frac)
    if not torch.all(torch.isfinite(scaled)):
        raise ValueError(f"{what} contains NaN or inf")
    if scaled.numel() and scaled.abs().max() >= 2.0**40:
        raise ValueError(f"{what} has integers beyond 40 bits: reduce its fractional bits")
    return scaled.numpy().astype(np.int64), frac.numpy().astype(np.int64)


# --------------------------------------------------------------------------------------------
# the walk: data flowing through the modules, formatted or waiting for its quantizer


@dataclass(frozen=True)
class _Data:
    """What flows between modules during lowering."""

    node: str  # the IR node that produced it ("input" for the model input)
    shape: tuple[int, ...]  # one sample's torch shape
    fmt: TensorFormat | None  # None: an unquantized weighted sum, see ``pending``
    pending: tuple | None = None  # (weighted module, its input _Data)


class _Lowering:
    """Turns modules into IR layers, one converter per module type (see :data:`_CONVERTERS`)."""

    def __init__(self) -> None:
        self.layers: list = []
        self.counts: dict[str, int] = {}

    def name(self, kind: str) -> str:
        index = self.counts.get(kind, 0)
        self.counts[kind] = index + 1
        return f"{kind}_{index}"

    def inputs(self, *data: _Data) -> tuple[str, ...]:
        """The ``inputs`` of a layer reading ``data``: empty when that is the previous layer."""
        previous = self.layers[-1].name if self.layers else "input"
        names = tuple(d.node for d in data)
        return () if names == (previous,) else names

    def add(self, layer, shape: tuple[int, ...]) -> _Data:
        """Append ``layer`` and return its output, of one sample ``shape``."""
        self.layers.append(layer)
        return _Data(layer.name, shape, layer.output)

    def walk(self, modules: list[nn.Module], data: _Data, where: str, start: int = 0) -> _Data:
        for position, module in enumerate(modules, start):
            at = f"{where}{position}"
            if data.pending is not None and not isinstance(module, QActivation | QLookup):
                weighted = type(data.pending[0]).__name__
                raise ValueError(
                    f"{weighted} before position {at} must be followed by a QActivation or "
                    f"QLookup, not {type(module).__name__}"
                )
            data = self.convert(module, data, at)
        return data

    def convert(self, module: nn.Module, data: _Data, at: str) -> _Data:
        for types, converter in _CONVERTERS:
            if isinstance(module, types):
                return converter(self, module, data, at)
        supported = ", ".join(t.__name__ for types, _ in _CONVERTERS for t in _types(types))
        raise ValueError(
            f"unsupported layer {type(module).__name__} at position {at}: supported are {supported}"
        )


def _types(types) -> tuple:
    return types.__args__ if hasattr(types, "__args__") else (types,)


def _formatted(data: _Data, module: nn.Module, at: str) -> TensorFormat:
    if data.fmt is None:
        raise ValueError(
            f"{type(module).__name__} at position {at} needs quantized input: put a QInput, "
            "QActivation or QLookup before it"
        )
    return data.fmt


def _check_shape(module: nn.Module, shape: tuple[int, ...], data: _Data, at: str) -> None:
    if tuple(shape) != tuple(data.shape):
        raise ValueError(
            f"{type(module).__name__} at position {at} has shape {tuple(shape)}, "
            f"its input has shape {data.shape}"
        )


def _weighted(low: _Lowering, module: _QWeighted, data: _Data, at: str) -> _Data:
    _formatted(data, module, at)
    if isinstance(module, QLinear) and len(data.shape) != 1:
        raise ValueError(
            f"QLinear at position {at} needs flat input, not shape {data.shape}: put "
            "nn.Flatten() before it"
        )
    with torch.no_grad():
        probe = torch.zeros((1, *data.shape), dtype=module.weight.dtype)
        shape = tuple(module._product(probe, module.weight).shape[1:])
    return _Data(data.node, shape, None, pending=(module, data))


def _weighted_layer(
    name: str, module: _QWeighted, source: _Data, inputs: tuple[str, ...], *options, at: str
) -> DenseLayer | ConvLayer:
    """The dense (``QLinear``) or conv layer of ``module`` reading ``source``, with the output
    format and modes ``options`` (output, activation, round mode, overflow)."""
    weight_q, bias_q = module.quantized()
    weight, weight_frac = _integers(weight_q, module.weight_quantizer.frac_bits, f"{at}.weight")
    channels = weight.shape[0]
    if bias_q is None:
        bias, bias_frac = np.zeros(channels, np.int64), np.zeros(channels, np.int64)
    else:
        bias, bias_frac = _integers(bias_q, module.bias_quantizer.frac_bits, f"{at}.bias")
    if isinstance(module, QLinear):
        return DenseLayer(name, weight, weight_frac, bias, bias_frac, *options, inputs=inputs)
    output, activation, round_mode, overflow = options
    return ConvLayer(
        name,
        source.shape,
        weight,
        weight_frac,
        bias,
        bias_frac,
        output,
        stride=tuple(module.stride),
        padding=tuple(module.padding),
        dilation=tuple(module.dilation),
        groups=module.groups,
        activation=activation,
        round_mode=round_mode,
        overflow=overflow,
        inputs=inputs,
    )


def _tuple(value, n: int) -> tuple[int, ...]:
    return tuple(value) if isinstance(value, tuple | list) else (value,) * n


def _quantizer_node(
    low: _Lowering,
    data: _Data,
    quantizer: ActivationQuantizer,
    activation: Activation,
    module: nn.Module,
    at: str,
) -> _Data:
    """A quantizer on ``data``: the pending weighted layer's dense node, or a requantizer."""
    _check_shape(module, quantizer.shape, data, at)
    output = _format(quantizer)
    options = (activation, quantizer.round_mode, quantizer.overflow)
    if data.pending is not None:
        weighted, source = data.pending
        name = low.name("dense" if isinstance(weighted, QLinear) else "conv")
        inputs = low.inputs(source)
        layer = _weighted_layer(name, weighted, source, inputs, output, *options, at=at)
        return low.add(layer, data.shape)
    layer = QuantizeLayer(low.name("quantize"), output, *options, inputs=low.inputs(data))
    return low.add(layer, data.shape)


def _activation(low: _Lowering, module: QActivation, data: _Data, at: str) -> _Data:
    if data.pending is None:
        _formatted(data, module, at)
    return _quantizer_node(low, data, module.quantizer, module.activation, module, at)


def _lookup(low: _Lowering, module: QLookup, data: _Data, at: str) -> _Data:
    if data.pending is None:
        _formatted(data, module, at)
    data = _quantizer_node(low, data, module.input_quantizer, Activation.LINEAR, module, at)
    name = low.name("lookup")
    input_low, offsets, table = _tables(module, data.fmt, name)
    output = _format(module.quantizer)
    layer = LookupLayer(name, input_low, offsets, table, output, inputs=low.inputs(data))
    return low.add(layer, data.shape)


def _tables(module: QLookup, fmt: TensorFormat, name: str) -> tuple:
    """Each element's table over every integer of its input format, computed by the module's
    own float64 function and output quantizer."""
    lo, hi = fmt.int_range()
    sizes = hi - lo + 1
    if int(sizes.sum()) > MAX_TABLE_ENTRIES:
        raise ValueError(
            f"{name}: its tables would hold {int(sizes.sum())} entries (inputs up to "
            f"{int(fmt.width.max())} bits): at most {MAX_TABLE_ENTRIES}; give its input fewer bits"
        )
    quantizer = copy.deepcopy(module.quantizer).double().eval()
    frac = quantizer.element_frac_bits().reshape(-1)
    rows = max(1, MAX_TABLE_ENTRIES // len(sizes))  # table rows evaluated at once
    chunks = []
    for start in range(0, int(sizes.max()), rows):
        steps = np.arange(start, min(start + rows, int(sizes.max())))[:, None]
        grid = np.minimum(lo[None, :] + steps, hi[None, :])
        real = torch.as_tensor(np.ldexp(grid.astype(np.float64), -fmt.frac_bits[None, :]))
        with torch.no_grad():
            out = quantizer(module.function(real.reshape(len(steps), *module.shape)))
            scaled = torch.ldexp(out.reshape(len(steps), -1), frac[None, :])
        if not torch.all(torch.isfinite(scaled)):
            raise ValueError(f"{name}: the function gives NaN or inf on its input range")
        chunks.append(scaled.numpy().astype(np.int64))
    scaled = np.concatenate(chunks)
    table = np.concatenate([scaled[: sizes[i], i] for i in range(len(sizes))])
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    return lo, offsets, table


def _pool(low: _Lowering, module: nn.Module, data: _Data, at: str) -> _Data:
    fmt = _formatted(data, module, at)
    kind = type(module).__name__
    if module.ceil_mode:
        raise ValueError(f"{kind} at position {at}: ceil_mode is not supported")
    spatial = len(data.shape) - 1
    if spatial != (2 if isinstance(module, nn.MaxPool2d | nn.AvgPool2d) else 1):
        raise ValueError(f"{kind} at position {at} cannot pool data of shape {data.shape}")
    kernel = _tuple(module.kernel_size, spatial)
    stride = _tuple(module.stride, spatial)
    padding = _tuple(module.padding, spatial)
    dilation = _tuple(getattr(module, "dilation", 1), spatial)
    with torch.no_grad():
        probe = module(torch.zeros((1, *data.shape), dtype=torch.float64))
    shape = tuple(probe.shape[1:])
    inputs = low.inputs(data)
    if isinstance(module, nn.MaxPool1d | nn.MaxPool2d):
        windows = pool_windows(data.shape, kernel, stride, padding, dilation)
        output = exact_maxpool_format(fmt, windows)
        name = low.name("maxpool")
        layer = MaxPoolNdLayer(name, data.shape, kernel, output, stride, padding, dilation, inputs)
        return low.add(layer, shape)
    padded = bool(np.any(window_indices(data.shape[1:], kernel, stride, padding, dilation) < 0))
    override = getattr(module, "divisor_override", None)
    divisor = override or math.prod(kernel)
    if padded and not module.count_include_pad and not override:
        raise ValueError(f"{kind} at position {at}: count_include_pad=False is not supported")
    if divisor & (divisor - 1):
        raise ValueError(
            f"{kind} at position {at} divides by {divisor}: only powers of two are exact in "
            "hardware (a shift)"
        )
    # a depthwise convolution: weight 1 with log2(divisor) fractional bits, no bias
    channels = data.shape[0]
    weight = np.ones((channels, 1, *kernel), np.int64)
    zeros = np.zeros(channels, np.int64)
    outputs = np.zeros(math.prod(shape), np.int64)
    layer = ConvLayer(
        low.name("avgpool"),
        data.shape,
        weight,
        np.full_like(weight, divisor.bit_length() - 1),
        zeros,
        zeros,
        TensorFormat(outputs, outputs, outputs),  # provisional: the exact format follows
        stride,
        padding,
        groups=channels,
        inputs=inputs,
    )
    dense = layer.to_dense()
    frac = accumulator_frac_bits(dense, fmt)
    los, his = accumulator_range(dense, fmt)
    layer = dataclasses.replace(layer, output=format_of_ranges(np.array(los), np.array(his), frac))
    return low.add(layer, shape)


def _flatten(low: _Lowering, module: nn.Flatten, data: _Data, at: str) -> _Data:
    if module.start_dim != 1 or module.end_dim != -1:
        raise ValueError(f"nn.Flatten at position {at} must flatten dims 1..-1 (the default)")
    return _Data(data.node, (math.prod(data.shape),), data.fmt, data.pending)


def _identity(low: _Lowering, module: nn.Identity, data: _Data, at: str) -> _Data:
    return data


def _sequential(low: _Lowering, module: nn.Sequential, data: _Data, at: str) -> _Data:
    out = low.walk(list(module), data, f"{at}.")
    if out.pending is not None:
        raise ValueError(f"the block at position {at} ends on a weighted layer: quantize it")
    return out


def _branches(low: _Lowering, module: QAdd | QConcat, data: _Data, at: str) -> _Data:
    outs = []
    for k, branch in enumerate(module.branches):
        out = low.walk([branch], data, f"{at}.{k}.")
        if out.pending is not None or out.fmt is None:
            raise ValueError(f"branch {k} of {type(module).__name__} at {at} must end quantized")
        outs.append(out)
    if isinstance(module, QConcat):
        if len({o.shape[1:] for o in outs}) != 1:
            raise ValueError(f"QConcat at {at}: branch shapes {[o.shape for o in outs]} differ")
        shape = (sum(o.shape[0] for o in outs), *outs[0].shape[1:])
        output = concat_formats([o.fmt for o in outs])
        layer = ConcatLayer(low.name("concat"), output, inputs=low.inputs(*outs))
        return low.add(layer, shape)
    if len({o.shape for o in outs}) != 1:
        raise ValueError(f"QAdd at {at}: branch shapes {[o.shape for o in outs]} differ")
    output = exact_add_format([o.fmt for o in outs])
    layer = AddLayer(low.name("add"), output, inputs=tuple(o.node for o in outs))
    return low.add(layer, outs[0].shape)


#: Which torch module becomes which IR node(s): the one table of supported layers.
_CONVERTERS: tuple[tuple[type, Callable[..., _Data]], ...] = (
    (QLinear | QConv1d | QConv2d, _weighted),
    (QActivation, _activation),
    (QLookup, _lookup),
    (nn.MaxPool1d | nn.MaxPool2d | nn.AvgPool1d | nn.AvgPool2d, _pool),
    (nn.Flatten, _flatten),
    (QAdd | QConcat, _branches),
    (nn.Sequential, _sequential),
    (nn.Identity, _identity),
)


def _check_finite(model: nn.Module) -> None:
    for name, tensor in list(model.named_parameters()) + list(model.named_buffers()):
        if tensor.is_floating_point() and name.split(".")[-1] not in ("low", "high"):
            if not torch.all(torch.isfinite(tensor)):
                raise ValueError(f"parameter {name} contains NaN or inf")


def freeze(
    model: nn.Sequential,
    calibration_data: np.ndarray | torch.Tensor,
    *,
    name: str = "model",
    metadata: dict | None = None,
) -> IRModel:
    """Calibrate ``model`` on ``calibration_data`` and return its frozen integer model.

    The model must be an ``nn.Sequential`` that starts with ``QInput``; the layers it may hold
    are listed in the module docstring. Calibration happens in place (eval forwards of
    ``model`` then apply overflow exactly like the hardware); the returned IR is independent of
    torch. Its metadata records the sample shape (``input_shape``) and, where the convolutions
    counted one kernel application each (``kernel_ebops``), ``ebops_conv = "kernel"``.

    Raises
    ------
    ValueError
        For an unsupported layer or order, NaN/inf parameters, empty calibration data, or
        widths the reference cannot hold exactly.
    """
    if not isinstance(model, nn.Sequential):
        raise TypeError(f"model must be an nn.Sequential, not {type(model).__name__}")
    modules = list(model)
    if not modules or not isinstance(modules[0], QInput):
        raise ValueError("the model must start with a QInput layer")
    if len(calibration_data) == 0:
        raise ValueError("calibration_data is empty")
    _check_finite(model)
    calibrate(model, calibration_data)
    low = _Lowering()
    first = modules[0]
    data = _Data(MODEL_INPUT, first.shape, _format(first.quantizer))
    with torch.no_grad():
        out = low.walk(modules[1:], data, "", start=1)
    if out.pending is not None:
        raise ValueError("the model ends on a weighted layer: add a QActivation after it")
    if not any(isinstance(layer, DenseLayer | ConvLayer) for layer in low.layers):
        raise ValueError("the model has no QLinear or convolution layer")
    spatial = any(isinstance(layer, ConvLayer | MaxPoolNdLayer) for layer in low.layers)
    shape = first.shape if spatial else None
    counted = {"kernel" if m.kernel_ebops else "unrolled" for m in model.modules()
               if hasattr(m, "kernel_ebops")}  # fmt: skip
    if len(counted) > 1:
        raise ValueError("the convolutions count EBOPs differently (kernel_ebops): use one way")
    return IRModel(
        name=name,
        input=None,
        layers=tuple(low.layers),
        metadata={
            "input_shape": list(first.shape),
            **({"ebops_conv": "kernel"} if counted == {"kernel"} else {}),
            **dict(metadata or {}),
        },
        inputs=(ModelInput(MODEL_INPUT, data.fmt, shape, first.quantizer.overflow),),
    )


def torch_integers(model: nn.Sequential, x: np.ndarray | torch.Tensor, ir: IRModel) -> np.ndarray:
    """The calibrated model's eval forward in float64, as the integers of ``ir``'s output."""
    exact = copy.deepcopy(model).double().eval()
    data = torch.as_tensor(np.asarray(x), dtype=torch.float64)
    with torch.no_grad():
        out = torch.cat([exact(data[k : k + 1024]) for k in range(0, len(data), 1024)])
        out = out.reshape(len(data), -1)
        scaled = torch.ldexp(out, torch.as_tensor(ir.output.frac_bits)[None, :])
    if not torch.equal(scaled, torch.round(scaled)):
        raise AssertionError("torch outputs are not on their fixed-point grid")
    return scaled.numpy().astype(np.int64)


def check_frozen(model: nn.Sequential, ir: IRModel, x: np.ndarray) -> int:
    """Check 1: number of samples where the torch forward (float64) differs from the reference.

    Raises ``ValueError`` when an accumulator is too wide for float64 to be exact.
    """
    widest = max_accumulator_bits(ir)
    if widest > FLOAT64_EXACT_BITS:
        raise ValueError(
            f"an accumulator needs {widest} bits: float64 is exact only up to {FLOAT64_EXACT_BITS}"
        )
    expected = reference.run(ir, reference.quantize_input(ir, x))
    actual = torch_integers(model, x, ir)
    return int(np.any(expected != actual, axis=1).sum())


def max_accumulator_bits(ir: IRModel) -> int:
    """Widest dense or conv accumulator of the model over all inputs of its formats (sign
    included)."""
    widest = 0
    for layer, fmt in zip(ir.layers, ir.input_formats(), strict=True):
        layer = lower_layer(layer)
        if not isinstance(layer, DenseLayer):
            continue
        los, his = accumulator_range(layer, fmt)
        for lo, hi in zip(los, his, strict=True):
            widest = max(widest, max((-lo).bit_length(), hi.bit_length()) + 1)
    return widest


__all__ = [
    "FLOAT64_EXACT_BITS",
    "RoundMode",
    "Overflow",
    "calibrate",
    "check_frozen",
    "freeze",
    "max_accumulator_bits",
    "torch_integers",
]
