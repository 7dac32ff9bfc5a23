"""HGQ2 fixed-point quantizers as IR formats, and exact constants as integers.

An HGQ2 fixed-point quantizer (``FixedPointQuantizerKIF`` or ``...KBI``, inside the layer
``hgq.quantizer.Quantizer``) stores per element (or per channel, or per tensor, broadcast to the
tensor's shape) a sign flag ``k``, integer bits ``i`` and fractional bits ``f`` (``f = b - i``
for KBI), rounded to integers when read. At inference it computes, element by element
(``quantizers.fixed_point``): for ``SAT``/``SAT_SYM`` clip to the range, then round
``x · 2^f`` with the round mode and divide back; for ``WRAP`` round, then wrap into
``k + i + f`` bits; an element with ``k + i + f <= 0`` is 0. That is the IR's format
``(signed=k, int_bits=i, frac_bits=f)`` with the IR's ``quantize`` arithmetic, for the round
modes ``RND`` (round half up), ``TRN`` (floor) and ``RND_CONV`` (``keras.ops.round``: ties to
even) and the overflow modes ``WRAP`` and ``SAT``.
``SAT_SYM`` differs from ``SAT`` only at the lowest value of a signed element, and the other
round modes only on values that are rounded at all; :mod:`hgq_rtl.interop.hgq2` accepts them
where it can show the difference never arises.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Round modes that the IR computes directly (names of :class:`~hgq_rtl.ir.RoundMode`); ``S_``
#: (stochastic) modes round like their base mode at inference.
DIRECT_ROUND = {
    "RND": "RND",
    "TRN": "TRN",
    "RND_CONV": "RND_CONV",
    "S_RND": "RND",
    "S_TRN": "TRN",
    "S_RND_CONV": "RND_CONV",
}
#: Round modes that differ from the direct ones only on values that need rounding.
OTHER_ROUND = {"TRN_ZERO", "RND_ZERO", "RND_MIN_INF", "RND_INF"}
OVERFLOWS = {"WRAP", "SAT", "SAT_SYM"}


class InteropError(ValueError):
    """A model that cannot be brought into the IR exactly (one line naming the layer)."""


@dataclass(frozen=True)
class Quant:
    """One quantizer applied to one tensor: formats per element, flattened in C order of the
    tensor's Keras shape (batch excluded), and the quantizer's modes."""

    signed: np.ndarray  # int64 (n,), 0 or 1
    int_bits: np.ndarray  # int64 (n,)
    frac_bits: np.ndarray  # int64 (n,)
    round_mode: str
    overflow: str
    where: str  # what applies it, for messages: "layer 'q_dense' (QDense) input quantizer"

    @property
    def width(self) -> np.ndarray:
        return self.signed + self.int_bits + self.frac_bits

    def key(self) -> tuple:
        return (
            self.signed.tobytes(),
            self.int_bits.tobytes(),
            self.frac_bits.tobytes(),
            DIRECT_ROUND.get(self.round_mode, self.round_mode),
            self.overflow,
        )


def _numpy(value) -> np.ndarray:
    from keras import ops

    return np.asarray(ops.convert_to_numpy(value), np.float64)


def read_quantizer(quantizer, shape: tuple[int, ...], where: str) -> Quant | None:
    """The :class:`Quant` of HGQ2 ``Quantizer`` layer ``quantizer`` applied to a tensor of Keras
    shape ``shape`` (no batch dimension), or ``None`` for a pass-through (dummy) quantizer.
    Float quantizers, scalers, affine maps and unknown modes raise :class:`InteropError`."""
    from hgq.quantizer.internal import DummyQuantizer, FixedPointQuantizerBase

    inner = getattr(quantizer, "quantizer", quantizer)
    if isinstance(inner, DummyQuantizer):
        return None
    if not isinstance(inner, FixedPointQuantizerBase):
        raise InteropError(f"{where}: {type(inner).__name__} is not a fixed-point quantizer")
    config = getattr(quantizer, "config", None)
    for attr in ("scaler", "affine"):
        if getattr(config, attr, None) is not None:
            raise InteropError(f"{where}: quantizers with a {attr} are not supported")
    round_mode, overflow = inner.round_mode.upper(), inner.overflow_mode.upper()
    if round_mode not in DIRECT_ROUND and round_mode not in OTHER_ROUND:
        raise InteropError(f"{where}: round mode {round_mode} is not supported")
    if overflow not in OVERFLOWS:
        raise InteropError(f"{where}: overflow mode {overflow} is not supported")
    k, i, f = (_numpy(v) for v in inner.kif)
    full = (1, *shape)
    k, i, f = (np.broadcast_to(v, full).reshape(-1) for v in (k, i, f))
    if not all(np.array_equal(v, np.round(v)) for v in (k, i, f)):
        raise InteropError(f"{where}: bit counts are not integers")
    k, i, f = (np.round(v).astype(np.int64) for v in (k, i, f))
    if not np.all((k == 0) | (k == 1)):
        raise InteropError(f"{where}: the sign flag k must be 0 or 1")
    # k + i + f <= 0: the element is the constant 0 (a zero-width format)
    dead = k + i + f <= 0
    k = np.where(dead, 0, k)
    i = np.where(dead, -f, i)
    return Quant(k, i, f, round_mode, overflow, where)


def exact_fixed(values: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    """``(m, f)`` with ``values == m · 2^-f`` exactly, ``m`` odd or 0 (``f = 0`` for 0): the
    fewest fractional bits of each float64 value."""
    values = np.asarray(values, np.float64)
    if not np.all(np.isfinite(values)):
        raise InteropError(f"{what} holds NaN or inf")
    mantissa, exponent = np.frexp(values)  # values = mantissa · 2^exponent, |mantissa| in [.5, 1)
    m = (mantissa * 2.0**53).astype(np.int64)
    f = 53 - exponent.astype(np.int64)
    zero = m == 0
    m, f = np.where(zero, 0, m), np.where(zero, 0, f)
    tz = _trailing_zeros(m)
    m, f = m >> tz, f - tz
    if np.any(np.abs(m) >= 1 << 53):
        raise InteropError(f"{what} is not exact")
    return m, f


def _trailing_zeros(m: np.ndarray) -> np.ndarray:
    low = np.abs(m) & -np.abs(m)  # lowest set bit (0 for 0)
    tz = np.zeros(m.shape, np.int64)
    nz = low > 0
    tz[nz] = np.round(np.log2(low[nz].astype(np.float64))).astype(np.int64)
    return tz


def quantize_numpy(quant: Quant, x: np.ndarray) -> np.ndarray:
    """HGQ2's forward of ``quant`` on real values ``x`` of shape ``(n, size)``, as integers of
    ``quant``'s formats (round half up, floor or half to even, then wrap or clip; zero-width
    elements 0).
    Other round modes are refused (used for model inputs only)."""
    mode = DIRECT_ROUND.get(quant.round_mode)
    if mode is None:
        raise InteropError(
            f"{quant.where}: real input data with round mode {quant.round_mode} is not supported"
        )
    scaled = np.asarray(x, np.float64) * np.exp2(quant.frac_bits.astype(np.float64))
    rounders = {"RND": lambda v: np.floor(v + 0.5), "TRN": np.floor, "RND_CONV": np.round}
    m = rounders[mode](scaled)
    width = quant.width
    signed = quant.signed.astype(bool)
    lo = np.where(signed, -(2.0 ** (width - 1)), 0.0)
    hi = np.where(signed, 2.0 ** (width - 1) - 1, 2.0**width - 1)
    if quant.overflow == "WRAP":
        m = np.mod(m - lo, 2.0**width) + lo
    else:
        if quant.overflow == "SAT_SYM":
            lo = np.where(signed, lo + 1, lo)
        m = np.clip(m, lo, hi)
    return np.where(width > 0, m, 0).astype(np.int64)
