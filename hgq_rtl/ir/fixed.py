"""Fixed-point formats and the integer arithmetic every tier of hgq-rtl agrees on.

A value in format ``(signed, int_bits, frac_bits)`` is stored as the integer
``m = x * 2**frac_bits``.
``int_bits`` excludes the sign bit and ``frac_bits`` may be negative, so

* ``width = signed + int_bits + frac_bits`` (a width of 0 means the element is the constant 0),
* the integer range is ``[-signed * 2**(width-1), 2**(width - signed) - 1]``.

Everything here is pure numpy on ``int64`` and is the oracle for the torch model, the Amaranth
simulation and the Verilog.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np

#: Widest integer the numpy reference holds exactly (``int64`` minus a guard bit).
MAX_REFERENCE_BITS = 62


class RoundMode(Enum):
    """How low bits are dropped when a value moves to fewer fractional bits."""

    #: Round to nearest, ties towards +inf: ``floor(y + 1/2)``.
    RND = "RND"
    #: Truncate towards -inf: ``floor(y)``.
    TRN = "TRN"
    #: Round to nearest, ties to even (convergent rounding, numpy's ``round``): ``floor(y + 1/2)``,
    #: less 1 where ``y + 1/2`` is an odd integer.
    RND_CONV = "RND_CONV"


class Overflow(Enum):
    """What happens to a value outside its format's range."""

    #: Keep the low ``width`` bits (two's complement wrap-around); free in hardware.
    WRAP = "WRAP"
    #: Clip to the nearest representable value.
    SAT = "SAT"


class Activation(Enum):
    """Element-wise function applied before the output quantizer of a layer."""

    LINEAR = "linear"
    RELU = "relu"


@dataclass(frozen=True)
class FixedFormat:
    """One fixed-point format: sign bit, integer bits (without sign) and fractional bits."""

    signed: bool
    int_bits: int
    frac_bits: int

    def __post_init__(self) -> None:
        if self.width < 0:
            raise ValueError(f"fixed-point width must be >= 0, not {self.width} ({self})")

    @property
    def width(self) -> int:
        return int(self.signed) + self.int_bits + self.frac_bits

    @property
    def min_int(self) -> int:
        return -(1 << (self.width - 1)) if self.signed and self.width > 0 else 0

    @property
    def max_int(self) -> int:
        if self.width == 0:
            return 0
        return (1 << (self.width - int(self.signed))) - 1


def widths(signed: np.ndarray, int_bits: np.ndarray, frac_bits: np.ndarray) -> np.ndarray:
    """Element-wise bit width ``signed + int_bits + frac_bits`` as ``int64``."""
    return np.asarray(signed, np.int64) + np.asarray(int_bits, np.int64) + np.asarray(frac_bits)


def int_range(signed: np.ndarray, width: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inclusive integer range ``(lo, hi)`` of each element; zero width gives ``(0, 0)``."""
    signed = np.asarray(signed, bool)
    width = np.asarray(width, np.int64)
    magnitude_bits = np.maximum(width - signed, 0)
    hi = np.where(width > 0, (np.int64(1) << magnitude_bits) - 1, 0)
    lo = np.where(signed & (width > 0), -(np.int64(1) << np.maximum(width - 1, 0)), 0)
    return lo.astype(np.int64), hi.astype(np.int64)


def shift_round(values: np.ndarray, shift: np.ndarray, round_mode: RoundMode) -> np.ndarray:
    """Move integers from ``F`` to ``F - shift`` fractional bits (``shift`` may be <= 0).

    ``shift > 0`` drops bits with ``round_mode``; ``shift <= 0`` appends zeros exactly.
    ``RND_CONV`` is ``RND``'s ``(v + 2^(shift-1)) >> shift`` with bit 0 cleared where the
    dropped bits of ``v + 2^(shift-1)`` are all 0 (a tie, whose ``RND`` result is then odd).
    """
    values = np.asarray(values, np.int64)
    shift = _per_element(shift, values.shape, "shift")
    right = np.maximum(shift, 0)
    if round_mode is RoundMode.TRN:
        return (values >> right) << np.maximum(-shift, 0)
    if round_mode not in (RoundMode.RND, RoundMode.RND_CONV):
        raise ValueError(f"round_mode must be a RoundMode, not {round_mode!r}")
    values = values + np.where(right > 0, np.int64(1) << np.maximum(right - 1, 0), 0)
    out = values >> right
    if round_mode is RoundMode.RND_CONV:
        tie = (right > 0) & ((values & ((np.int64(1) << right) - 1)) == 0)
        out = out & np.where(tie, np.int64(-2), np.int64(-1))
    return out << np.maximum(-shift, 0)


def round_int(value: int, shift: int, round_mode: RoundMode) -> int:
    """:func:`shift_round` of one Python integer, exact at any size (for range bounds: every
    round mode is monotonic, so the rounded bounds of a range bound its rounded values)."""
    value, shift = int(value), int(shift)
    if shift <= 0:
        return value << -shift
    if round_mode is RoundMode.TRN:
        return value >> shift
    if round_mode not in (RoundMode.RND, RoundMode.RND_CONV):
        raise ValueError(f"round_mode must be a RoundMode, not {round_mode!r}")
    value += 1 << (shift - 1)
    out = value >> shift
    if round_mode is RoundMode.RND_CONV and value & ((1 << shift) - 1) == 0:
        out &= ~1
    return out


def shift_folded(value: int, shift: int, even: bool) -> int:
    """The requantizers' integer shift of one ``value`` whose rounding constant (``+1/2`` of the
    output step for ``RND``/``RND_CONV``) is already added: ``value << shift`` (a flooring right
    shift when ``shift < 0``), and with ``even`` (``RND_CONV``) bit 0 then cleared where the
    dropped bits are all 0 (a tie; every value when none are dropped). Monotonic, so it maps a
    range's bounds to its results' bounds."""
    q = value << shift if shift >= 0 else value >> -shift
    if even and (shift >= 0 or value & ((1 << -shift) - 1) == 0):
        q &= ~1
    return q


def _per_element(parameter, shape: tuple[int, ...], name: str, dtype=np.int64) -> np.ndarray:
    """``parameter`` as an array that broadcasts to ``shape`` (left unbroadcast, so per-column
    parameters cost one small array, not one the size of the data)."""
    parameter = np.asarray(parameter, dtype)
    if np.broadcast_shapes(parameter.shape, shape) != shape:
        raise ValueError(f"{name} of shape {parameter.shape} does not broadcast to {shape}")
    return parameter


def overflow(
    values: np.ndarray, signed: np.ndarray, width: np.ndarray, mode: Overflow
) -> np.ndarray:
    """Bring integers into ``(signed, width)`` by wrapping or saturating, element-wise."""
    values = np.asarray(values, np.int64)
    signed = _per_element(signed, values.shape, "signed", bool)
    width = _per_element(width, values.shape, "width")
    lo, hi = int_range(signed, width)
    if mode is Overflow.SAT:
        return np.clip(values, lo, hi)
    if mode is not Overflow.WRAP:
        raise ValueError(f"overflow must be an Overflow, not {mode!r}")
    span = np.int64(1) << width
    wrapped = (values - lo) & (span - 1)
    return np.where(width > 0, wrapped + lo, 0)


def bit_span(values: np.ndarray) -> np.ndarray:
    """Bits between the most and least significant non-zero bits of ``|values|`` (0 for 0).

    This is the EBOPs cost of a constant operand: ``12 = 0b1100`` spans 2 bits.
    """
    magnitude = np.abs(np.asarray(values, np.int64))
    out = np.zeros(magnitude.shape, np.int64)
    nonzero = magnitude > 0
    m = magnitude[nonzero]
    lsb = m & -m
    out[nonzero] = _bit_length(m) - _bit_length(lsb) + 1
    return out


def _bit_length(values: np.ndarray) -> np.ndarray:
    """``int.bit_length`` element-wise for non-negative ``int64``."""
    values = np.asarray(values, np.int64)
    out = np.zeros(values.shape, np.int64)
    v = values.copy()
    for step in (32, 16, 8, 4, 2, 1):
        big = v >= (np.int64(1) << step)
        out[big] += step
        v[big] >>= step
    return out + (v > 0)


def bits_for_range(lo: int, hi: int) -> tuple[bool, int]:
    """Smallest two's complement (or unsigned, when ``lo >= 0``) width holding ``[lo, hi]``."""
    if lo > hi:
        raise ValueError(f"empty range [{lo}, {hi}]")
    if lo >= 0:
        return False, hi.bit_length()
    return True, max((-lo - 1).bit_length(), hi.bit_length()) + 1
