"""The layer kinds other than dense, and the checks every layer kind shares.

Layer kinds (docs/ir.md); each is a frozen dataclass that checks its own fields on construction
and, in ``validate_inputs``, itself against the formats of its inputs:

* :class:`~hgq_rtl.ir.dense.DenseLayer` (in :mod:`hgq_rtl.ir.dense`, with its accumulator
  arithmetic) — a sum of constant-weighted inputs, rounded, activated and brought into the
  output format (wrap or saturate).
* :class:`QuantizeLayer` — the same rounding, activation and overflow applied to one input.
* :class:`MaxPoolLayer`, :class:`AddLayer`, :class:`ConcatLayer`, :class:`LookupLayer` — exact:
  their output formats hold every result, so they never round, wrap or saturate.

The spatial kinds (conv, maxpool_nd) are in :mod:`hgq_rtl.ir.spatial`; the registry of all
kinds (``LAYER_TYPES``) is in :mod:`hgq_rtl.ir.model`.

The IR imports only numpy and the standard library.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from .fixed import MAX_REFERENCE_BITS, Activation, Overflow, RoundMode
from .formats import (
    TensorFormat,
    _as_int_array,
    _shifted_ranges,
    alignment_shifts,
    concat_formats,
)

#: Most entries a :class:`LookupLayer` table may hold.
MAX_TABLE_ENTRIES = 1 << 24


@dataclass(frozen=True, eq=False)
class QuantizeLayer:
    """Requantization of one input: rounded from each input element's fractional bits to the
    output's (:func:`~hgq_rtl.ir.fixed.shift_round`), activated, then wrapped or saturated into
    ``output`` — the tail of a dense layer without the sum."""

    name: str
    output: TensorFormat
    activation: Activation = Activation.LINEAR
    round_mode: RoundMode = RoundMode.RND
    overflow: Overflow = Overflow.WRAP
    inputs: tuple[str, ...] = ()
    kind: str = field(default="quantize", init=False)

    def __post_init__(self) -> None:
        _check_name(self)
        _check_inputs(self, 0, 1)
        _check_output(self, None, "outputs")
        _check_modes(self)

    @property
    def out_features(self) -> int:
        return self.output.size

    def validate_inputs(self, formats: tuple[TensorFormat, ...]) -> None:
        """Check the layer against the formats of its inputs (``ValueError`` if it misfits)."""
        (fmt,) = formats
        _check_same_size(self, fmt, 0)
        shifts = quantize_shifts(self, fmt)
        if shifts.size and np.abs(shifts).max() > MAX_REFERENCE_BITS:
            i = int(np.abs(shifts).argmax())
            raise ValueError(
                f"{self.name} output {i} shifts by {int(shifts[i])} bits: "
                f"at most {MAX_REFERENCE_BITS} are supported"
            )
        lo, hi = fmt.int_range()
        for i in np.flatnonzero(shifts < 0):  # a finer output moves the value left
            bits = _bits_with_rounding(int(lo[i]), int(hi[i])) - int(shifts[i])
            if bits > MAX_REFERENCE_BITS:
                raise ValueError(
                    f"{self.name} output {i} needs {bits} bits before its overflow: "
                    f"the reference holds at most {MAX_REFERENCE_BITS} bits exactly"
                )


@dataclass(frozen=True, eq=False)
class MaxPoolLayer:
    """Maximum over windows of input elements: ``out[i] = max_j x[windows[i, j]]``, each input
    first aligned to ``output.frac_bits[i]`` by an exact left shift. The output format must hold
    the exact range of the maximum (validated), so nothing is rounded or clipped."""

    name: str
    windows: np.ndarray  # int64 (out, k): input element indices
    output: TensorFormat
    inputs: tuple[str, ...] = ()
    kind: str = field(default="maxpool", init=False)

    def __post_init__(self) -> None:
        _check_name(self)
        _check_inputs(self, 0, 1)
        object.__setattr__(self, "windows", _as_int_array(self.windows, f"{self.name}.windows"))
        if self.windows.ndim != 2 or self.windows.shape[1] < 1:
            raise ValueError(
                f"{self.name}.windows must be 2-D (outputs, window size >= 1), "
                f"not shape {self.windows.shape}"
            )
        if self.windows.size and self.windows.min() < 0:
            raise ValueError(f"{self.name}.windows holds a negative index {self.windows.min()}")
        _check_output(self, self.windows.shape[0], "windows")

    @property
    def out_features(self) -> int:
        return self.output.size

    def validate_inputs(self, formats: tuple[TensorFormat, ...]) -> None:
        """Check the layer against the formats of its inputs (``ValueError`` if it misfits)."""
        (fmt,) = formats
        if self.windows.size and self.windows.max() >= fmt.size:
            raise ValueError(
                f"{self.name}.windows refers to input element {int(self.windows.max())}, "
                f"the input has {fmt.size} elements"
            )
        lo, hi = _aligned_ranges(self, fmt, self.windows, "")
        _check_holds(self, lo.max(axis=1), hi.max(axis=1), "maximum")


@dataclass(frozen=True, eq=False)
class AddLayer:
    """Element-wise exact sum of two (or more) inputs of one size, each aligned to
    ``output.frac_bits`` by an exact left shift; the output format must hold the exact range
    of the sum (validated), so nothing is rounded or clipped."""

    name: str
    output: TensorFormat
    inputs: tuple[str, ...]
    kind: str = field(default="add", init=False)

    def __post_init__(self) -> None:
        _check_name(self)
        _check_inputs(self, 2, None)
        _check_output(self, None, "outputs")

    @property
    def out_features(self) -> int:
        return self.output.size

    def validate_inputs(self, formats: tuple[TensorFormat, ...]) -> None:
        """Check the layer against the formats of its inputs (``ValueError`` if it misfits)."""
        index = np.arange(self.output.size)[:, None]
        lo = hi = np.zeros(self.output.size, object)
        for k, fmt in enumerate(formats):
            _check_same_size(self, fmt, k)
            a, b = _aligned_ranges(self, fmt, index, f" {k} ({self.inputs[k]!r})")
            lo, hi = lo + a[:, 0], hi + b[:, 0]
        _check_holds(self, lo, hi, "sum")


@dataclass(frozen=True, eq=False)
class ConcatLayer:
    """The concatenation of its inputs, in order; ``output`` must equal the concatenation of the
    input formats (:func:`concat_formats`)."""

    name: str
    output: TensorFormat
    inputs: tuple[str, ...]
    kind: str = field(default="concat", init=False)

    def __post_init__(self) -> None:
        _check_name(self)
        _check_inputs(self, 1, None)
        _check_output(self, None, "outputs")

    @property
    def out_features(self) -> int:
        return self.output.size

    def validate_inputs(self, formats: tuple[TensorFormat, ...]) -> None:
        """Check the layer against the formats of its inputs (``ValueError`` if it misfits)."""
        joined = concat_formats(formats)
        if joined.size != self.output.size:
            raise ValueError(
                f"{self.name}.output has {self.output.size} elements, "
                f"its inputs have {joined.size} together"
            )
        same = (
            (joined.signed == self.output.signed)
            & (joined.int_bits == self.output.int_bits)
            & (joined.frac_bits == self.output.frac_bits)
        )
        if not same.all():
            k = int(np.flatnonzero(~same)[0])
            raise ValueError(
                f"{self.name}.output element {k} is {self.output.describe(k)}, "
                f"the concatenated inputs give {joined.describe(k)}"
            )


@dataclass(frozen=True, eq=False)
class LookupLayer:
    """An element-wise function by table: ``out[i] = table[offsets[i] + x[i] - input_low[i]]``.

    Element ``i``'s slice ``table[offsets[i] : offsets[i] + hi_i - lo_i + 1]`` covers its input
    format's whole integer range ``[lo_i, hi_i]`` (``input_low[i]`` must be ``lo_i``); elements
    may share slices. Every value of a slice must lie in the output element's range, so nothing
    is clipped. The table holds at most :data:`MAX_TABLE_ENTRIES` entries.
    """

    name: str
    input_low: np.ndarray  # int64 (n,)
    offsets: np.ndarray  # int64 (n,)
    table: np.ndarray  # int64 (entries,)
    output: TensorFormat
    inputs: tuple[str, ...] = ()
    kind: str = field(default="lookup", init=False)

    def __post_init__(self) -> None:
        _check_name(self)
        _check_inputs(self, 0, 1)
        entries = int(np.size(self.table))  # before any copy of an oversized table
        if entries > MAX_TABLE_ENTRIES:
            raise ValueError(
                f"{self.name}.table has {entries} entries: "
                f"at most {MAX_TABLE_ENTRIES} (2**24) are supported"
            )
        for attr in ("input_low", "offsets", "table"):
            value = _as_int_array(getattr(self, attr), f"{self.name}.{attr}")
            if value.ndim != 1:
                raise ValueError(f"{self.name}.{attr} must be 1-D, not shape {value.shape}")
            object.__setattr__(self, attr, value)
        if self.offsets.shape != self.input_low.shape:
            raise ValueError(
                f"{self.name}.offsets must have shape {self.input_low.shape}, "
                f"not {self.offsets.shape}"
            )
        if self.offsets.size and self.offsets.min() < 0:
            raise ValueError(f"{self.name}.offsets holds a negative offset {self.offsets.min()}")
        if self.offsets.size and self.offsets.max() >= entries:
            raise ValueError(
                f"{self.name}.offsets holds {self.offsets.max()}, "
                f"past the table's {entries} entries"
            )
        _check_output(self, self.input_low.shape[0], "input_low entries")

    @property
    def out_features(self) -> int:
        return self.output.size

    def validate_inputs(self, formats: tuple[TensorFormat, ...]) -> None:
        """Check the layer against the formats of its inputs (``ValueError`` if it misfits)."""
        (fmt,) = formats
        _check_same_size(self, fmt, 0)
        lo, hi = fmt.int_range()
        bad = np.flatnonzero(self.input_low != lo)
        if bad.size:
            i = int(bad[0])
            raise ValueError(
                f"{self.name}.input_low[{i}] is {int(self.input_low[i])}, "
                f"its input's lowest integer is {int(lo[i])}"
            )
        sizes = hi - lo + 1  # at most 2**62; offsets are below the table's size: no overflow
        ends = self.offsets + np.minimum(sizes, MAX_TABLE_ENTRIES + 1)
        bad = np.flatnonzero(ends > self.table.size)
        if bad.size:
            i = int(bad[0])
            raise ValueError(
                f"{self.name} element {i}: its input range [{int(lo[i])}, {int(hi[i])}] needs "
                f"{int(sizes[i])} table entries from offset {int(self.offsets[i])}, "
                f"the table has {self.table.size}"
            )
        low, high = _slice_extrema(self.table, self.offsets, ends)
        _check_holds(self, low, high, "table slice")


def quantize_shifts(layer: QuantizeLayer, fmt: TensorFormat) -> np.ndarray:
    """Right shifts ``frac(input) - frac(output)`` of a quantize layer (negative: left); 0 for a
    zero-width input element, whose value is the constant 0."""
    return np.where(fmt.width > 0, fmt.frac_bits - layer.output.frac_bits, 0)


# ------------------------------------------------------------------------------------ checks


class _Layer(Protocol):
    """What the checks below read of a layer: the fields every layer kind has."""

    name: str
    kind: str
    output: TensorFormat
    inputs: tuple[str, ...]


def _bits_with_rounding(lo: int, hi: int) -> int:
    """Two's complement bits of ``[lo, hi + 1]`` (+1: the rounding constant)."""
    return max((-lo).bit_length(), (hi + 1).bit_length()) + 1


def _check_name(layer: _Layer) -> None:
    if not isinstance(layer.name, str) or not layer.name.isidentifier():
        raise ValueError(f"layer name must be an identifier, not {layer.name!r}")


def _check_inputs(layer: _Layer, least: int, most: int | None) -> None:
    inputs = layer.inputs
    if isinstance(inputs, str) or not isinstance(inputs, tuple | list):
        raise ValueError(f"{layer.name}.inputs must be a tuple of names, not {inputs!r}")
    if not all(isinstance(n, str) and n.isidentifier() for n in inputs):
        raise ValueError(f"{layer.name}.inputs must hold identifiers, not {list(inputs)!r}")
    object.__setattr__(layer, "inputs", tuple(inputs))
    if len(inputs) < least or (most is not None and len(inputs) > most):
        expected = f"{least} to {most}" if most is not None else f"at least {least}"
        raise ValueError(
            f"{layer.name}.inputs names {len(inputs)} tensors: a {layer.kind} layer takes "
            f"{expected}"
        )


def _check_output(layer: _Layer, size: int | None, what: str) -> None:
    if not isinstance(layer.output, TensorFormat):
        raise ValueError(
            f"{layer.name}.output must be a TensorFormat, not {type(layer.output).__name__}"
        )
    if size is not None and layer.output.size != size:
        raise ValueError(
            f"{layer.name}.output has {layer.output.size} elements, the layer has {size} {what}"
        )


def _check_modes(layer: _Layer) -> None:
    for attr, enum in (
        ("activation", Activation),
        ("round_mode", RoundMode),
        ("overflow", Overflow),
    ):
        if not isinstance(getattr(layer, attr), enum):
            raise ValueError(
                f"{layer.name}.{attr} must be a {enum.__name__}, not {getattr(layer, attr)!r}"
            )


def _check_same_size(layer: _Layer, fmt: TensorFormat, k: int) -> None:
    if fmt.size != layer.output.size:
        source = f"input {k} ({layer.inputs[k]!r})" if layer.inputs else "its input"
        raise ValueError(
            f"{layer.name} has {layer.output.size} outputs, {source} has {fmt.size} elements"
        )


def _aligned_ranges(
    layer: MaxPoolLayer | AddLayer, fmt: TensorFormat, index: np.ndarray, which: str
) -> tuple[np.ndarray, np.ndarray]:
    """Exact ranges (object arrays of Python ints, shape of ``index``) of the input elements
    ``fmt[index]`` aligned to the layer's output fractional bits; refuses a right shift."""
    shift = alignment_shifts(layer.output.frac_bits, fmt, index)
    if shift.size and shift.min() < 0:
        i, j = (int(v) for v in np.argwhere(shift < 0)[0])
        element = int(np.asarray(index)[i, j])
        raise ValueError(
            f"{layer.name} output {i} has {int(layer.output.frac_bits[i])} fractional bits, "
            f"fewer than the {int(fmt.frac_bits[element])} of input{which} element {element}: "
            "it would have to round"
        )
    if shift.size and shift.max() > MAX_REFERENCE_BITS:
        i, j = (int(v) for v in np.argwhere(shift == shift.max())[0])
        raise ValueError(
            f"{layer.name} output {i} shifts input{which} element {int(np.asarray(index)[i, j])} "
            f"by {int(shift[i, j])} bits: at most {MAX_REFERENCE_BITS} are supported"
        )
    return _shifted_ranges(layer.output.frac_bits, fmt, index)


def _check_holds(layer: _Layer, lo: np.ndarray, hi: np.ndarray, what: str) -> None:
    """Refuse an output element whose format does not hold the exact range ``[lo, hi]``."""
    out_lo, out_hi = layer.output.int_range()
    bad = np.flatnonzero((lo < out_lo) | (hi > out_hi))
    if bad.size:
        i = int(bad[0])
        raise ValueError(
            f"{layer.name} output {i}: the {what} ranges over [{lo[i]}, {hi[i]}], its format "
            f"({layer.output.describe(i)}) holds only [{int(out_lo[i])}, {int(out_hi[i])}]"
        )


def _slice_extrema(
    table: np.ndarray, starts: np.ndarray, ends: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Minimum and maximum of every non-empty ``table[starts[i]:ends[i]]``.

    Slices may overlap arbitrarily: the table is cut into the segments between all slice ends,
    and each slice's extrema come from a sparse table over those segments, so the cost is
    ``O(len(table) + n log n)`` however the slices overlap.
    """
    if starts.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    cuts = np.unique(np.concatenate([starts, ends]))
    segment_starts = cuts[:-1]  # segment k: table[cuts[k]:cuts[k + 1]], never empty
    first = np.searchsorted(cuts, starts)
    stop = np.searchsorted(cuts, ends)  # slice i covers segments first[i] .. stop[i] - 1
    # floor(log2(length)), exact for lengths below 2**53
    level = np.frexp((stop - first).astype(np.float64))[1] - 1
    extrema = []
    for reduce in (np.minimum, np.maximum):
        # levels[p][k]: extremum of segments k .. k + 2**p - 1 (edge-padded to one length)
        levels = [reduce.reduceat(table[: cuts[-1]], segment_starts)]
        while (1 << len(levels)) <= levels[0].size:
            step = 1 << (len(levels) - 1)
            prev = levels[-1]
            levels.append(np.concatenate([reduce(prev[:-step], prev[step:]), prev[-step:]]))
        stacked = np.stack(levels)
        extrema.append(reduce(stacked[level, first], stacked[level, stop - (1 << level)]))
    return extrema[0], extrema[1]
