"""Pure-integer numpy reference of an :class:`IRModel`: the oracle for every tier."""

from __future__ import annotations

import numpy as np

from .dense import DenseLayer, accumulator_frac_bits
from .fixed import Activation, RoundMode, bit_span, overflow, shift_round
from .formats import TensorFormat, alignment_shifts
from .layers import AddLayer, ConcatLayer, LookupLayer, MaxPoolLayer, QuantizeLayer, quantize_shifts
from .model import MODEL_INPUT, IRModel, Layer, can_overflow


def quantize_input(ir: IRModel, x: np.ndarray) -> np.ndarray:
    """Real-valued inputs ``(n, ...)`` to the integers ``(n, features)`` the hardware receives.

    Each sample is flattened in C order (a ``(n, C, H, W)`` batch becomes ``(n, C*H*W)``),
    rounded to each element's fractional bits (ties up, as the torch input quantizer does in
    float64), and brought into the input format with the model's input overflow mode.
    """
    scaled = round_input(ir, x)
    return overflow(scaled, ir.input.signed, ir.input.width, ir.input_overflow)


def round_input(ir: IRModel, x: np.ndarray) -> np.ndarray:
    """Steps 1–2 of :func:`quantize_input`: real inputs rounded to each element's step, as
    ``int64`` clipped to ``[-2**62, 2**62]``, *before* the input overflow mode is applied."""
    x = np.asarray(x, np.float64)
    if x.ndim >= 2:
        x = x.reshape(x.shape[0], int(np.prod(x.shape[1:])))
    if x.ndim != 2 or x.shape[1] != ir.input.size:
        raise ValueError(f"inputs must have shape (n, {ir.input.size}), not {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("inputs contain NaN or inf")
    scaled = np.floor(np.ldexp(x, ir.input.frac_bits[None, :]) + 0.5)
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
    single format and array for the one-input kinds. Dense and quantize layers are rounded to
    the output's step and activated but *not yet* wrapped or saturated into ``layer.output``;
    the exact kinds (maxpool, add, concat, lookup) return their final output.
    """
    formats, inputs = _as_tuples(formats, inputs)
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


def run_named(ir: IRModel, x: np.ndarray) -> dict[str, np.ndarray]:
    """Every tensor of the model for integer inputs ``x`` of shape ``(n, inputs)``:
    ``{"input": x, layer name: its integer output, ...}`` in layer order."""
    values = {MODEL_INPUT: check_inputs(ir.input, x)}
    for layer in ir.layers:
        names = ir.inputs_of(layer)
        values[layer.name] = run_layer(
            layer, ir.input_formats_of(layer), tuple(values[name] for name in names)
        )
    return values


def run_all(ir: IRModel, x: np.ndarray) -> list[np.ndarray]:
    """Integer outputs of every layer, in layer order, for integer inputs ``x`` ``(n, inputs)``."""
    values = run_named(ir, x)
    return [values[layer.name] for layer in ir.layers]


#: Samples :func:`run` evaluates at once: bounds the memory of wide layers (an unrolled
#: convolution's accumulators are ``samples × outputs`` int64 arrays).
RUN_CHUNK = 2048


def run(ir: IRModel, x: np.ndarray) -> np.ndarray:
    """Integer outputs of the model (its last layer) for integer inputs ``x`` ``(n, inputs)``,
    evaluated :data:`RUN_CHUNK` samples at a time."""
    last = ir.layers[-1].name
    x = np.asarray(x)
    if len(x) <= RUN_CHUNK:
        return run_named(ir, x)[last]
    parts = [run_named(ir, x[k : k + RUN_CHUNK])[last] for k in range(0, len(x), RUN_CHUNK)]
    return np.concatenate(parts)


def predict(ir: IRModel, x_real: np.ndarray) -> np.ndarray:
    """Class index (arg-max of the real output values) for real-valued inputs."""
    out = run(ir, quantize_input(ir, x_real))
    return np.argmax(to_real(ir.output, out), axis=1)


def layer_ebops(layer: Layer, fmt: TensorFormat) -> int:
    """Exact EBOPs of one layer: for a dense layer the sum over products of
    bits(weight) * width(input); 0 for the other kinds (they multiply by no constant)."""
    if not isinstance(layer, DenseLayer):
        return 0
    return int((bit_span(layer.weight) * fmt.width[None, :]).sum())


def ebops(ir: IRModel) -> int:
    """Exact EBOPs of the model (sum over every constant multiplication: dense layers)."""
    return sum(
        layer_ebops(layer, fmt) for layer, fmt in zip(ir.layers, ir.input_formats(), strict=True)
    )


def random_inputs(fmt: TensorFormat, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` integer vectors drawn uniformly over each element's full range."""
    lo, hi = fmt.int_range()
    return rng.integers(lo, hi + 1, size=(n, fmt.size), dtype=np.int64, endpoint=False)


__all__ = [
    "RoundMode",
    "check_inputs",
    "dense_accumulate",
    "ebops",
    "layer_ebops",
    "pre_overflow",
    "predict",
    "quantize_input",
    "random_inputs",
    "round_input",
    "run",
    "run_all",
    "run_layer",
    "run_named",
    "to_real",
]
