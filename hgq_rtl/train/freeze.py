"""Freezing a trained HGQ network into the integer IR, and check 1 (torch == reference).

The IR holds every tensor flattened to 1-D per sample (torch's C order of ``(C, H, W)``), so
lowering is mostly index bookkeeping:

* ``QLinear`` → a dense layer; a convolution → a dense layer whose sparse matrix holds each
  kernel once per output position (fully unrolled, as the hardware is); average pooling → a
  dense layer with weights ``2**-k`` (its window must hold a power of two of elements);
* max pooling → a max-pool node over index windows; ``QAdd``/``QConcat`` → add/concat nodes;
  a quantizer on formatted data → a requantization node; ``QLookup`` → a table per element;
* ``nn.Flatten`` and ``nn.Identity`` change nothing.

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
import torch.nn.functional as F
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
    MaxPoolLayer,
    QuantizeLayer,
)
from ..ir.model import IRModel
from .layers import (
    QActivation,
    QAdd,
    QConcat,
    QConv1d,
    QConv2d,
    QInput,
    QLinear,
    QLookup,
    _QConv,
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


def _dense_matrices(module: _QWeighted, data: _Data, at: str) -> tuple:
    """Integer weight, weight fractional bits, bias and its fractional bits as a dense layer
    over the flattened input (a convolution unrolled over its output positions)."""
    weight_q, bias_q = module.quantized()
    weight, weight_frac = _integers(weight_q, module.weight_quantizer.frac_bits, f"{at}.weight")
    channels = weight.shape[0]
    if bias_q is None:
        bias, bias_frac = np.zeros(channels, np.int64), np.zeros(channels, np.int64)
    else:
        bias, bias_frac = _integers(bias_q, module.bias_quantizer.frac_bits, f"{at}.bias")
    if isinstance(module, QLinear):
        return weight, weight_frac, bias, bias_frac
    rows, cols, taps, positions = _conv_indices(module, data.shape)
    size_in = math.prod(data.shape)
    dense = np.zeros((channels * positions, size_in), np.int64)
    dense_frac = np.zeros_like(dense)
    flat_weight = weight.reshape(channels, -1)
    flat_frac = weight_frac.reshape(channels, -1)
    dense[rows, cols] = flat_weight[rows // positions, taps]
    dense_frac[rows, cols] = flat_frac[rows // positions, taps]
    return dense, dense_frac, np.repeat(bias, positions), np.repeat(bias_frac, positions)


def _unfold_indices(shape: tuple[int, ...], kernel, dilation, padding, stride) -> np.ndarray:
    """For ``(C, H, W)`` (or ``(C, L)``) data: the 1-based flat input index under every kernel
    tap and output position, ``(C, taps, positions)``; 0 where the tap falls on padding."""
    channels, *spatial = shape
    one_d = len(spatial) == 1

    def two(value, fill: int = 1) -> tuple[int, ...]:  # 1-D data is 2-D data of height 1
        values = _tuple(value, len(spatial))
        return (fill, values[0]) if one_d else values

    index = torch.arange(1, math.prod(shape) + 1, dtype=torch.float64)
    index = index.reshape(1, channels, *([1] if one_d else []), *spatial)
    cols = F.unfold(
        index, two(kernel), dilation=two(dilation), padding=two(padding, 0), stride=two(stride)
    )[0]
    return cols.numpy().astype(np.int64).reshape(channels, -1, cols.shape[-1])


def _tuple(value, n: int) -> tuple[int, ...]:
    return tuple(value) if isinstance(value, tuple | list) else (value,) * n


def _conv_indices(module: _QConv, shape: tuple[int, ...]) -> tuple:
    """Rows, columns, kernel taps and the number of output positions of an unrolled conv."""
    groups = module.groups
    per_group = shape[0] // groups
    out_per_group = module.out_channels // groups
    rows, cols, taps = [], [], []
    positions = 0
    for group in range(groups):
        index = _unfold_indices(
            shape, module.kernel_size, module.dilation, module.padding, module.stride
        )[group * per_group : (group + 1) * per_group]
        positions = index.shape[-1]
        index = index.reshape(-1, positions)  # (taps of the group's kernel, positions)
        tap, position = np.nonzero(index)
        for out in range(group * out_per_group, (group + 1) * out_per_group):
            rows.append(out * positions + position)
            cols.append(index[tap, position] - 1)
            taps.append(tap)
    return np.concatenate(rows), np.concatenate(cols), np.concatenate(taps), positions


def _dense_layer(name, module, data, output, activation, round_mode, overflow, at) -> DenseLayer:
    weight, weight_frac, bias, bias_frac = _dense_matrices(module, data, at)
    return DenseLayer(
        name=name,
        weight=weight,
        weight_frac_bits=weight_frac,
        bias=bias,
        bias_frac_bits=bias_frac,
        output=output,
        activation=activation,
        round_mode=round_mode,
        overflow=overflow,
    )


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
        kind = "dense" if isinstance(weighted, QLinear) else "conv"
        layer = _dense_layer(low.name(kind), weighted, source, output, *options, at)
        return low.add(dataclasses.replace(layer, inputs=low.inputs(source)), data.shape)
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
    dilation = getattr(module, "dilation", 1)
    index = _unfold_indices(data.shape, module.kernel_size, dilation, module.padding, module.stride)
    channels, taps, positions = index.shape
    with torch.no_grad():
        probe = module(torch.zeros((1, *data.shape), dtype=torch.float64))
    shape = tuple(probe.shape[1:])
    windows = index.transpose(0, 2, 1).reshape(channels * positions, taps)  # (out, taps)
    if isinstance(module, nn.MaxPool1d | nn.MaxPool2d):
        return _max_pool(low, windows, fmt, data, shape)
    return _average_pool(low, module, windows, fmt, data, shape, at)


def _max_pool(low: _Lowering, windows, fmt: TensorFormat, data: _Data, shape) -> _Data:
    # a tap on padding repeats the window's first real element: the max is unchanged
    first = windows[np.arange(len(windows)), np.argmax(windows > 0, axis=1)]
    windows = np.where(windows > 0, windows, first[:, None]) - 1
    output = exact_maxpool_format(fmt, windows)
    layer = MaxPoolLayer(low.name("maxpool"), windows, output, inputs=low.inputs(data))
    return low.add(layer, shape)


def _average_pool(low, module, windows, fmt: TensorFormat, data: _Data, shape, at) -> _Data:
    kind = type(module).__name__
    taps = windows.shape[1]
    override = getattr(module, "divisor_override", None)
    divisor = override or taps
    padded = bool(np.any(windows == 0))
    if padded and not module.count_include_pad and not override:
        raise ValueError(f"{kind} at position {at}: count_include_pad=False is not supported")
    if divisor & (divisor - 1):
        raise ValueError(
            f"{kind} at position {at} divides by {divisor}: only powers of two are exact in "
            "hardware (a shift)"
        )
    size_in = math.prod(data.shape)
    rows = np.repeat(np.arange(len(windows)), taps)
    cols = windows.reshape(-1) - 1
    keep = cols >= 0
    weight = np.zeros((len(windows), size_in), np.int64)
    weight[rows[keep], cols[keep]] = 1
    shift = divisor.bit_length() - 1
    zeros = np.zeros(len(windows), np.int64)
    provisional = TensorFormat(zeros, zeros, zeros)
    layer = DenseLayer(
        low.name("avgpool"),
        weight,
        np.where(weight != 0, shift, 0),
        zeros,
        zeros,
        provisional,
        inputs=low.inputs(data),
    )
    frac = accumulator_frac_bits(layer, fmt)
    los, his = accumulator_range(layer, fmt)
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
    torch. Its metadata records the sample shape (``input_shape``).

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
    data = _Data("input", first.shape, _format(first.quantizer))
    with torch.no_grad():
        out = low.walk(modules[1:], data, "", start=1)
    if out.pending is not None:
        raise ValueError("the model ends on a weighted layer: add a QActivation after it")
    if not any(isinstance(layer, DenseLayer) for layer in low.layers):
        raise ValueError("the model has no QLinear or convolution layer")
    return IRModel(
        name=name,
        input=data.fmt,
        layers=tuple(low.layers),
        input_overflow=first.quantizer.overflow,
        metadata={"input_shape": list(first.shape), **dict(metadata or {})},
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
    """Widest dense accumulator of the model over all inputs of its formats (sign included)."""
    widest = 0
    for layer, fmt in zip(ir.layers, ir.input_formats(), strict=True):
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
