"""Tensor formats: :class:`TensorFormat` (per-element fixed-point formats of a 1-D tensor) and
the arithmetic of formats — concatenation, the exact formats of a sum or a maximum, the shifts
that align inputs to an output's fractional bits, the smallest format of an integer range.

The IR imports only numpy and the standard library.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .fixed import MAX_REFERENCE_BITS, bits_for_range, int_range, widths


@dataclass(frozen=True, eq=False)
class TensorFormat:
    """Per-element fixed-point formats of a 1-D tensor of ``size`` elements."""

    signed: np.ndarray  # bool (n,)
    int_bits: np.ndarray  # int64 (n,)
    frac_bits: np.ndarray  # int64 (n,)

    def __post_init__(self) -> None:
        object.__setattr__(self, "signed", _as_int_array(self.signed, "signed").astype(bool))
        object.__setattr__(self, "int_bits", _as_int_array(self.int_bits, "int_bits"))
        object.__setattr__(self, "frac_bits", _as_int_array(self.frac_bits, "frac_bits"))
        shapes = {a.shape for a in (self.signed, self.int_bits, self.frac_bits)}
        if len(shapes) != 1 or self.signed.ndim != 1:
            raise ValueError(f"format arrays must be 1-D and of one length, not shapes {shapes}")
        bad = np.flatnonzero(self.width < 0)
        if bad.size:
            raise ValueError(f"element {bad[0]} has a negative width {self.width[bad[0]]}")
        if self.width.size and self.width.max() > MAX_REFERENCE_BITS:
            raise ValueError(
                f"element {int(self.width.argmax())} is {int(self.width.max())} bits wide: "
                f"at most {MAX_REFERENCE_BITS} are supported"
            )

    @property
    def size(self) -> int:
        return int(self.signed.shape[0])

    @property
    def width(self) -> np.ndarray:
        return widths(self.signed, self.int_bits, self.frac_bits)

    def int_range(self) -> tuple[np.ndarray, np.ndarray]:
        """Inclusive integer range ``(lo, hi)`` of every element."""
        return int_range(self.signed, self.width)

    def describe(self, k: int) -> str:
        """Element ``k``'s format as text, e.g. ``signed 2 int 1 frac``."""
        sign = "signed" if self.signed[k] else "unsigned"
        return f"{sign} {int(self.int_bits[k])} int {int(self.frac_bits[k])} frac"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TensorFormat):
            return NotImplemented
        return all(
            np.array_equal(a, b)
            for a, b in zip(
                (self.signed, self.int_bits, self.frac_bits),
                (other.signed, other.int_bits, other.frac_bits),
                strict=True,
            )
        )


def concat_formats(formats: tuple[TensorFormat, ...] | list[TensorFormat]) -> TensorFormat:
    """The formats of ``formats`` one after the other (a :class:`ConcatLayer`'s output)."""
    return TensorFormat(
        np.concatenate([f.signed for f in formats]),
        np.concatenate([f.int_bits for f in formats]),
        np.concatenate([f.frac_bits for f in formats]),
    )


def exact_add_format(formats: tuple[TensorFormat, ...] | list[TensorFormat]) -> TensorFormat:
    """The smallest formats holding the exact sum of ``formats`` (an :class:`AddLayer`'s
    output): the finest fractional bits of the non-zero-width inputs, the sum's range."""
    frac = _finest_frac(
        np.stack([f.frac_bits for f in formats], axis=1),
        np.stack([f.width for f in formats], axis=1),
    )
    index = np.arange(frac.size)[:, None]
    lo = hi = np.zeros(frac.size, object)
    for fmt in formats:
        a, b = _shifted_ranges(frac, fmt, index)
        lo, hi = lo + a[:, 0], hi + b[:, 0]
    return format_of_ranges(lo, hi, frac)


def exact_maxpool_format(input_format: TensorFormat, windows: np.ndarray) -> TensorFormat:
    """The smallest formats holding the exact maximum over each window (a
    :class:`MaxPoolLayer`'s output): the window's finest fractional bits, the maximum's range."""
    windows = np.asarray(windows, np.int64)
    frac = _finest_frac(input_format.frac_bits[windows], input_format.width[windows])
    lo, hi = _shifted_ranges(frac, input_format, windows)
    return format_of_ranges(lo.max(axis=1), hi.max(axis=1), frac)


def alignment_shifts(out_frac: np.ndarray, fmt: TensorFormat, index: np.ndarray) -> np.ndarray:
    """Left shifts ``out_frac[i] - frac(fmt[index[i, j]])`` that align input elements to the
    output's fractional bits (0 for zero-width inputs, which are the constant 0)."""
    index = np.asarray(index, np.int64)
    live = fmt.width[index] > 0
    return np.where(live, np.asarray(out_frac)[:, None] - fmt.frac_bits[index], 0)


def _shifted_ranges(
    out_frac: np.ndarray, fmt: TensorFormat, index: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    shift = alignment_shifts(out_frac, fmt, index).astype(object)
    lo, hi = fmt.int_range()
    return lo[index].astype(object) << shift, hi[index].astype(object) << shift


def _finest_frac(frac: np.ndarray, width: np.ndarray) -> np.ndarray:
    """Per row, the largest ``frac`` among entries of non-zero ``width`` (0 if there is none)."""
    lowest = np.iinfo(np.int64).min
    finest = np.where(width > 0, frac, lowest).max(axis=1)
    return np.where(finest == lowest, 0, finest)


def format_of_ranges(lo: np.ndarray, hi: np.ndarray, frac: np.ndarray) -> TensorFormat:
    """Smallest formats with fractional bits ``frac`` holding the integer ranges ``[lo, hi]``
    (:func:`~hgq_rtl.ir.fixed.bits_for_range` per element)."""
    pairs = [bits_for_range(a, b) for a, b in zip(lo.tolist(), hi.tolist(), strict=True)]
    signed = np.array([is_signed for is_signed, _ in pairs], bool)
    width = np.array([bits for _, bits in pairs], np.int64)
    return TensorFormat(signed, width - signed - frac, frac)


def _as_int_array(values: object, what: str) -> np.ndarray:
    """``values`` as int64, refusing anything that is not exactly an int64 integer: floats
    with a fraction, NaN or inf, and values outside the int64 range (an unsigned 64-bit
    ``2**64 - 1`` would otherwise wrap to ``-1``)."""
    array = np.asarray(values)
    if array.dtype == bool:
        return array.astype(np.int64)
    if not np.issubdtype(array.dtype, np.integer):
        if np.issubdtype(array.dtype, np.floating) and not np.all(np.isfinite(array)):
            raise ValueError(f"{what} contains NaN or inf")
        if np.issubdtype(array.dtype, np.floating) and np.array_equal(array, np.round(array)):
            _check_int64_range(array, what)
            return array.astype(np.int64)
        raise ValueError(f"{what} must hold integers, not {array.dtype}")
    if array.dtype.kind == "u" and array.dtype.itemsize >= 8:
        _check_int64_range(array, what)
    return array.astype(np.int64)


def _check_int64_range(array: np.ndarray, what: str) -> None:
    """Raise ValueError naming the first value of ``array`` outside the int64 range."""
    if array.dtype.kind == "f":  # 2**63 is the first float past int64's largest value
        outside = (array >= 2.0**63) | (array < -(2.0**63))
    else:
        outside = array > np.iinfo(np.int64).max
    if outside.any():
        index = tuple(int(i) for i in np.argwhere(outside)[0])
        value = array[index]
        shown = int(value) if array.dtype.kind == "u" else float(value)
        raise ValueError(
            f"{what} holds {shown} at {list(index)}, outside the 64-bit signed integer range"
        )
