"""Pure-integer numpy reference of an :class:`IRModel`: the oracle for every tier.

Inputs: a model with one input takes one array (``(n, size)`` integers, or ``(n, ...)`` real
samples for :func:`quantize_input`); a model with several inputs takes a mapping from each
input's name to its array (every input, nothing else, all with the same ``n``), and the
functions that return inputs return such a mapping too. A single-input model also accepts a
mapping ``{name: array}`` (and then returns one).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from .dense import DenseLayer, accumulator_frac_bits
from .fixed import Activation, RoundMode, bit_span, overflow, shift_round
from .formats import TensorFormat, alignment_shifts
from .layers import AddLayer, ConcatLayer, LookupLayer, MaxPoolLayer, QuantizeLayer, quantize_shifts
from .lowering import lower_layer
from .model import IRModel, Layer, ModelInput, can_overflow

#: Integer or real inputs of a model: one array, or a mapping from input name to array.
Inputs = np.ndarray | Mapping[str, np.ndarray]


def by_input(
    ir: IRModel, x: Inputs, function: Callable[[ModelInput, np.ndarray, str], np.ndarray]
) -> np.ndarray | dict[str, np.ndarray]:
    """``function(model_input, array, what)`` on each input's array of ``x``, with ``what``
    naming the array in messages (``"inputs"``, or ``"inputs['a']"``); returns one array when
    ``x`` is one array (a single-input model), else a dict by input name.

    Raises ``ValueError`` when a model with several inputs gets one array, or when the mapping
    lacks an input or names one the model does not have.
    """
    if not isinstance(x, Mapping):
        if len(ir.inputs) != 1:
            raise ValueError(
                f"model {ir.name!r} has {len(ir.inputs)} inputs ({', '.join(ir.input_names)}): "
                f"pass a mapping from input name to array, not {type(x).__name__}"
            )
        return function(ir.inputs[0], x, "inputs")
    missing = [name for name in ir.input_names if name not in x]
    if missing:
        raise ValueError(f"inputs lack the model input {missing[0]!r} (model {ir.name!r})")
    unknown = [name for name in x if name not in ir.input_names]
    if unknown:
        raise ValueError(
            f"inputs name {unknown[0]!r}, which is not an input of model {ir.name!r} "
            f"({', '.join(ir.input_names)})"
        )
    return {i.name: function(i, x[i.name], f"inputs[{i.name!r}]") for i in ir.inputs}


def quantize_input(ir: IRModel, x: Inputs) -> np.ndarray | dict[str, np.ndarray]:
    """Real-valued inputs ``(n, ...)`` to the integers ``(n, features)`` the hardware receives
    (per input: one array or a mapping, see the module docstring).

    Each sample is flattened in C order (a ``(n, C, H, W)`` batch becomes ``(n, C*H*W)``),
    rounded to each element's fractional bits (ties up, as the torch input quantizer does in
    float64), and brought into the input's format with its overflow mode.
    """

    def quantize(model_input: ModelInput, values: np.ndarray, what: str) -> np.ndarray:
        fmt = model_input.format
        scaled = round_values(fmt, values, what)
        return overflow(scaled, fmt.signed, fmt.width, model_input.overflow)

    return by_input(ir, x, quantize)


def round_input(ir: IRModel, x: Inputs) -> np.ndarray | dict[str, np.ndarray]:
    """Steps 1–2 of :func:`quantize_input`: real inputs rounded to each element's step, as
    ``int64`` clipped to ``[-2**62, 2**62]``, *before* the input overflow mode is applied."""
    return by_input(ir, x, lambda i, values, what: round_values(i.format, values, what))


def round_values(fmt: TensorFormat, x: np.ndarray, what: str = "inputs") -> np.ndarray:
    """Steps 1–2 of :func:`quantize_input` for one input of format ``fmt``."""
    x = np.asarray(x, np.float64)
    if x.ndim >= 2:
        x = x.reshape(x.shape[0], int(np.prod(x.shape[1:])))
    if x.ndim != 2 or x.shape[1] != fmt.size:
        raise ValueError(f"{what} must have shape (n, {fmt.size}), not {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{what} contain NaN or inf")
    scaled = np.floor(np.ldexp(x, fmt.frac_bits[None, :]) + 0.5)
    limit = 2.0**62
    return np.clip(scaled, -limit, limit).astype(np.int64)


def to_real(fmt: TensorFormat, values: np.ndarray) -> np.ndarray:
    """Integers of ``fmt`` to their real values (exact in float64 up to 53 bits)."""
    return np.ldexp(np.asarray(values, np.float64), -fmt.frac_bits)


def check_inputs(fmt: TensorFormat, values: np.ndarray, what: str = "inputs") -> np.ndarray:
    """Validate that ``values`` are integers of shape ``(n, fmt.size)`` within their formats."""
    values = np.asarray(values)
    if values.ndim != 2 or values.shape[1] != fmt.size:
        raise ValueError(f"{what} must have shape (n, {fmt.size}), not {values.shape}")
    if not np.issubdtype(values.dtype, np.integer):
        raise ValueError(f"{what} must be integers, not {values.dtype}")
    values = values.astype(np.int64)
    lo, hi = fmt.int_range()
    bad = (values < lo) | (values > hi)
    if bad.any():
        n, j = np.argwhere(bad)[0]
        raise ValueError(
            f"{what}[{n}, {j}] = {values[n, j]} lies outside its format's range [{lo[j]}, {hi[j]}]"
        )
    return values


def dense_accumulate(layer: DenseLayer, fmt: TensorFormat, x: np.ndarray) -> tuple:
    """Accumulators of ``layer`` on integer inputs ``x`` and their fractional bits."""
    frac = accumulator_frac_bits(layer, fmt)
    live = (layer.weight != 0) & (fmt.width[None, :] > 0)
    shift = np.where(live, frac[:, None] - layer.weight_frac_bits - fmt.frac_bits[None, :], 0)
    coefficients = np.where(live, layer.weight << shift, 0)
    bias = np.where(layer.bias != 0, layer.bias << np.maximum(frac - layer.bias_frac_bits, 0), 0)
    return _matmul_exact(x, coefficients.T) + bias[None, :], frac


#: Largest magnitude below which every integer, and so every partial sum, is exact in float64
#: (2**53, with a margin for the rounding of the bound itself).
_FLOAT_EXACT = 2.0**52


def _matmul_exact(x: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """``x @ matrix`` on int64, exactly; through float64 (BLAS) when no partial sum can reach
    2**53, which numpy's integer product (no BLAS) is many times slower than."""
    x = np.asarray(x, np.int64)
    if x.shape[0] == 0 or matrix.size == 0:
        return x @ matrix
    x_max = np.abs(x).max(axis=0).astype(np.float64)
    bound = x_max @ np.abs(matrix).astype(np.float64)  # largest |partial sum| of each column
    if bound.max(initial=0.0) < _FLOAT_EXACT:
        return (x.astype(np.float64) @ matrix.astype(np.float64)).astype(np.int64)
    return x @ matrix


Formats = TensorFormat | tuple[TensorFormat, ...] | list[TensorFormat]
Arrays = np.ndarray | tuple[np.ndarray, ...] | list[np.ndarray]


def pre_overflow(layer: Layer, formats: Formats, inputs: Arrays) -> np.ndarray:
    """One layer up to its overflow mode (what :mod:`hgq_rtl.ir.overflow` inspects).

    ``formats``/``inputs``: the layer's input format(s) and integer input(s) ``(n, size)``; a
    single format and array for the one-input kinds. Dense, conv and quantize layers are
    rounded to the output's step and activated but *not yet* wrapped or saturated into
    ``layer.output``; the exact kinds (maxpool, maxpool_nd, add, concat, lookup) return their
    final output.
    """
    formats, inputs = _as_tuples(formats, inputs)
    layer = lower_layer(layer)  # conv and maxpool_nd are defined by their lowering
    if isinstance(layer, DenseLayer):
        acc, frac = dense_accumulate(layer, formats[0], inputs[0])
        return _requantize(layer, acc, (frac - layer.output.frac_bits)[None, :])
    if isinstance(layer, QuantizeLayer):
        shift = quantize_shifts(layer, formats[0])[None, :]
        return _requantize(layer, np.asarray(inputs[0], np.int64), shift)
    if isinstance(layer, MaxPoolLayer):
        shift = alignment_shifts(layer.output.frac_bits, formats[0], layer.windows)
        x = np.asarray(inputs[0], np.int64)
        out = x[:, layer.windows[:, 0]] << shift[None, :, 0]
        for j in range(1, layer.windows.shape[1]):
            out = np.maximum(out, x[:, layer.windows[:, j]] << shift[None, :, j])
        return out
    if isinstance(layer, AddLayer):
        index = np.arange(layer.output.size)[:, None]
        out = np.zeros((np.shape(inputs[0])[0], layer.output.size), np.int64)
        for fmt, x in zip(formats, inputs, strict=True):
            shift = alignment_shifts(layer.output.frac_bits, fmt, index)[:, 0]
            out += np.asarray(x, np.int64) << shift[None, :]
        return out
    if isinstance(layer, ConcatLayer):
        return np.concatenate([np.asarray(x, np.int64) for x in inputs], axis=1)
    if isinstance(layer, LookupLayer):
        x = np.asarray(inputs[0], np.int64)
        return layer.table[layer.offsets[None, :] + x - layer.input_low[None, :]]
    raise ValueError(f"layer must be an IR layer, not {type(layer).__name__}")


def _requantize(layer: DenseLayer | QuantizeLayer, values: np.ndarray, shift) -> np.ndarray:
    out = shift_round(values, shift, layer.round_mode)
    if layer.activation is Activation.RELU:
        out = np.maximum(out, 0)
    return out


def _as_tuples(formats: Formats, inputs: Arrays) -> tuple[tuple, tuple]:
    if isinstance(formats, TensorFormat):
        return (formats,), (inputs,)
    return tuple(formats), tuple(inputs)


def run_layer(layer: Layer, formats: Formats, inputs: Arrays) -> np.ndarray:
    """One layer on integer inputs of the given format(s); returns integers of
    ``layer.output`` (a single format and array for the one-input kinds, else sequences)."""
    out = pre_overflow(layer, formats, inputs)
    if can_overflow(layer):
        return overflow(out, layer.output.signed, layer.output.width, layer.overflow)
    return out


def run_named(ir: IRModel, x: Inputs) -> dict[str, np.ndarray]:
    """Every tensor of the model for integer inputs ``x`` (``(n, size)``; a mapping by input
    name for several inputs): ``{input name: its integers, ..., layer name: its integer
    output, ...}``, the inputs first, then the layers in order."""
    checked = by_input(ir, x, lambda i, values, what: check_inputs(i.format, values, what))
    values = checked if isinstance(checked, dict) else {ir.inputs[0].name: checked}
    counts = {name: len(array) for name, array in values.items()}
    if len(set(counts.values())) > 1:
        raise ValueError(f"inputs must have one number of samples, not {counts}")
    for layer in ir.layers:
        names = ir.inputs_of(layer)
        values[layer.name] = run_layer(
            layer, ir.input_formats_of(layer), tuple(values[name] for name in names)
        )
    return values


def run_all(ir: IRModel, x: Inputs) -> list[np.ndarray]:
    """Integer outputs of every layer, in layer order, for integer inputs ``x`` ``(n, inputs)``
    (a mapping by input name for several inputs)."""
    values = run_named(ir, x)
    return [values[layer.name] for layer in ir.layers]


#: Samples :func:`run` evaluates at once: bounds the memory of wide layers (an unrolled
#: convolution's accumulators are ``samples × outputs`` int64 arrays).
RUN_CHUNK = 2048


def run(ir: IRModel, x: Inputs) -> np.ndarray:
    """Integer outputs of the model (its last layer) for integer inputs ``x`` ``(n, inputs)``
    (a mapping by input name for several inputs), evaluated :data:`RUN_CHUNK` samples at a
    time."""
    last = ir.layers[-1].name
    arrays = by_input(ir, x, lambda model_input, values, what: np.asarray(values))
    n = len(arrays) if not isinstance(arrays, dict) else max(map(len, arrays.values()))
    if n <= RUN_CHUNK:
        return run_named(ir, arrays)[last]
    parts = [run_named(ir, _rows(arrays, k))[last] for k in range(0, n, RUN_CHUNK)]
    return np.concatenate(parts)


def _rows(arrays: np.ndarray | dict[str, np.ndarray], start: int):
    if isinstance(arrays, dict):
        return {name: array[start : start + RUN_CHUNK] for name, array in arrays.items()}
    return arrays[start : start + RUN_CHUNK]


def predict(ir: IRModel, x_real: np.ndarray) -> np.ndarray:
    """Class index (arg-max of the real output values) for real-valued inputs."""
    out = run(ir, quantize_input(ir, x_real))
    return np.argmax(to_real(ir.output, out), axis=1)


#: How a convolution's EBOPs are counted (``IRModel.metadata["ebops_conv"]``, default
#: ``"unrolled"``). HGQ counts one kernel application times the parallel instances of the
#: kernel: ``"unrolled"`` builds one per output position (``rtl --io parallel``), ``"kernel"``
#: one for all positions, the shared datapath of a stream (``--io stream``, one pixel per beat).
CONV_EBOPS = ("unrolled", "kernel")


def conv_ebops(ir: IRModel) -> str:
    """How ``ir``'s convolutions are counted: its ``metadata["ebops_conv"]``, checked."""
    mode = ir.metadata.get("ebops_conv", "unrolled")
    if mode not in CONV_EBOPS:
        raise ValueError(
            f"metadata ebops_conv must be one of {', '.join(CONV_EBOPS)}, not {mode!r}"
        )
    return mode


def layer_ebops(layer: Layer, fmt: TensorFormat, conv: str = "unrolled") -> int:
    """Exact EBOPs of one layer: for a dense layer the sum over products of
    bits(weight) * width(input); for a conv layer that of its dense lowering (``conv=
    "unrolled"``) or of its widest single kernel application, one output position
    (``"kernel"``); 0 for the other kinds (they multiply by no constant)."""
    if conv not in CONV_EBOPS:
        raise ValueError(f"conv must be one of {', '.join(CONV_EBOPS)}, not {conv!r}")
    lowered = lower_layer(layer)
    if not isinstance(lowered, DenseLayer):
        return 0
    if conv == "kernel" and lowered is not layer:
        # rows of the lowering: (output channel, *output position) in C order
        per_row = (bit_span(lowered.weight) * fmt.width[None, :]).sum(axis=1)
        return int(per_row.reshape(layer.weight.shape[0], -1).sum(axis=0).max())
    return int((bit_span(lowered.weight) * fmt.width[None, :]).sum())


def ebops(ir: IRModel) -> int:
    """Exact EBOPs of the model (sum over every constant multiplication: dense and conv
    layers; convolutions as :func:`conv_ebops` says)."""
    conv = conv_ebops(ir)
    return sum(
        layer_ebops(layer, fmt, conv)
        for layer, fmt in zip(ir.layers, ir.input_formats(), strict=True)
    )


def random_inputs(
    fmt: TensorFormat | IRModel, n: int, rng: np.random.Generator
) -> np.ndarray | dict[str, np.ndarray]:
    """``n`` integer vectors drawn uniformly over each element's full range of ``fmt``; for a
    model, over each of its inputs in order: one array for a single input, else a dict by
    input name."""
    if isinstance(fmt, IRModel):
        arrays = {i.name: random_inputs(i.format, n, rng) for i in fmt.inputs}
        return arrays if len(arrays) > 1 else arrays[fmt.inputs[0].name]
    lo, hi = fmt.int_range()
    return rng.integers(lo, hi + 1, size=(n, fmt.size), dtype=np.int64, endpoint=False)


__all__ = [
    "RoundMode",
    "by_input",
    "check_inputs",
    "dense_accumulate",
    "CONV_EBOPS",
    "conv_ebops",
    "ebops",
    "layer_ebops",
    "pre_overflow",
    "predict",
    "quantize_input",
    "random_inputs",
    "round_input",
    "round_values",
    "run",
    "run_all",
    "run_layer",
    "run_named",
    "to_real",
]
