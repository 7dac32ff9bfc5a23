"""Packing integer element matrices into bus words and back, per a design manifest.

A bus is one Verilog port. Element ``k`` of the bus occupies bits ``[lsb, lsb + width)`` of the
port; its integer is two's complement when ``signed``. A ``width`` of 0 means the element is the
constant 0 and occupies no bits. Bus words are plain Python ints (non-negative, any width), so
buses wider than 64 bits work; the element matrices are ``int64``.

The work is vectorised with numpy, in chunks of rows to bound memory: each element is shifted
into (or out of) the one or two 64-bit lanes of the port it occupies. :meth:`BusLayout.to_words`
and :meth:`BusLayout.from_words` give the port as little-endian 32-bit words per vector (what the
fast C++ harness streams); :meth:`BusLayout.pack` and :meth:`BusLayout.unpack` as Python ints.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

__all__ = ["BusElement", "BusLayout"]

_CHUNK_ROWS = 1 << 15  # rows handled per numpy pass; bounds memory for very wide buses


@dataclass(frozen=True)
class BusElement:
    """One integer element of a bus: bits ``[lsb, lsb + width)``, two's complement if signed."""

    index: int
    lsb: int
    width: int
    signed: bool

    @property
    def min_value(self) -> int:
        """Smallest integer the element can hold (0 for a zero-width element)."""
        if self.signed and self.width > 0:
            return -(1 << (self.width - 1))
        return 0

    @property
    def max_value(self) -> int:
        """Largest integer the element can hold (0 for a zero-width element)."""
        if self.width == 0:
            return 0
        if self.signed:
            return (1 << (self.width - 1)) - 1
        return (1 << self.width) - 1

    def describe(self) -> str:
        """Human-readable format, e.g. ``signed 5-bit [-16, 15]``."""
        kind = "signed" if self.signed else "unsigned"
        return f"{kind} {self.width}-bit [{self.min_value}, {self.max_value}]"


@dataclass(frozen=True)
class BusLayout:
    """Where each element of a bus lives in its port.

    Parameters
    ----------
    name:
        What the bus is called in error messages (``"input"``, ``"output"``).
    port:
        The data port's name in the Verilog top level.
    valid:
        The valid port's name that accompanies the data port.
    width:
        Port width in bits.
    elements:
        The elements, in index order ``0 .. n-1``.
    item:
        What an element is called in error messages (``"slot"`` for a stream port's slots).
    """

    name: str
    port: str
    valid: str
    width: int
    elements: tuple[BusElement, ...]
    item: str = "element"

    def __post_init__(self) -> None:
        if not isinstance(self.width, int) or self.width < 0:
            raise ValueError(
                f"{self.name} bus width must be a non-negative int, not {self.width!r}"
            )
        occupied = np.zeros(self.width, dtype=bool)
        for position, element in enumerate(self.elements):
            where = f"{self.name} {self.item} {position}"
            if element.index != position:
                raise ValueError(
                    f"{self.name} {self.item}s must be numbered 0..{len(self.elements) - 1} "
                    f"in order, not {element.index} at position {position}"
                )
            if element.width < 0 or element.lsb < 0:
                raise ValueError(
                    f"{where} must have non-negative lsb and width, "
                    f"not lsb={element.lsb} width={element.width}"
                )
            # The element matrices are int64: the element's whole range must fit.
            limit = 64 if element.signed else 63
            if element.width > limit:
                raise ValueError(
                    f"{where} must be at most {limit} bits wide to fit int64, not {element.width}"
                )
            if element.lsb + element.width > self.width:
                raise ValueError(
                    f"{where} must lie inside the {self.width}-bit port, "
                    f"not at bits [{element.lsb}, {element.lsb + element.width})"
                )
            span = occupied[element.lsb : element.lsb + element.width]
            if span.any():
                raise ValueError(f"{where} must not overlap another {self.item}")
            span[:] = True

    @classmethod
    def from_manifest(cls, name: str, bus: Mapping[str, Any]) -> BusLayout:
        """Build a layout from a manifest's ``input`` or ``output`` entry."""
        try:
            elements = tuple(
                BusElement(
                    index=int(e["index"]),
                    lsb=int(e["lsb"]),
                    width=int(e["width"]),
                    signed=bool(e["signed"]),
                )
                for e in sorted(bus["elements"], key=lambda e: int(e["index"]))
            )
            return cls(
                name=name,
                port=str(bus["port"]),
                valid=str(bus["valid"]),
                width=int(bus["width"]),
                elements=elements,
            )
        except (KeyError, TypeError) as error:
            raise ValueError(f"manifest {name} bus is malformed: {error!r}") from error

    @property
    def n_elements(self) -> int:
        return len(self.elements)

    # ------------------------------------------------------------------ checks

    def _as_matrix(self, values: np.ndarray) -> np.ndarray:
        values = np.asarray(values)
        if values.dtype.kind not in "iu" or values.dtype == np.uint64:
            raise TypeError(
                f"{self.name} values must be an int64-compatible integer array, not {values.dtype}"
            )
        if values.ndim != 2 or values.shape[1] != self.n_elements:
            raise ValueError(
                f"{self.name} values must have shape (N, {self.n_elements}), not {values.shape}"
            )
        return values.astype(np.int64, copy=False)

    def check_range(self, values: np.ndarray) -> np.ndarray:
        """Return *values* as int64 after checking every element fits its format.

        Raises
        ------
        ValueError
            Naming the first element, vector and value outside the element's integer range.
        """
        matrix = self._as_matrix(values)
        low, high = self._limits
        bad = (matrix < low) | (matrix > high)
        if bad.any():
            element = self.elements[int(np.argmax(bad.any(axis=0)))]
            row = int(np.argmax(bad[:, element.index]))
            raise ValueError(
                f"{self.name} element {element.index} must be {element.describe()}, "
                f"not {int(matrix[row, element.index])} (vector {row})"
            )
        return matrix

    @cached_property
    def _limits(self) -> tuple[np.ndarray, np.ndarray]:
        """Each element's smallest and largest integer, in index order."""
        low = np.array([e.min_value for e in self.elements], dtype=np.int64)
        high = np.array([e.max_value for e in self.elements], dtype=np.int64)
        return low, high

    # ------------------------------------------------------------------ packing

    @property
    def n_words(self) -> int:
        """32-bit words per vector in :meth:`to_words` (at least 1)."""
        return max(1, (self.width + 31) // 32)

    def to_words(self, values: np.ndarray) -> np.ndarray:
        """Pack an int64 matrix ``(N, n_elements)`` into little-endian 32-bit words.

        Returns a ``(N, n_words)`` array of ``<u4``: word ``w`` holds port bits
        ``[32 w, 32 w + 32)``, the layout of a Verilator ``VlWide`` port (and of a narrower port
        in the first one or two words).

        Raises
        ------
        ValueError
            If a value lies outside its element's integer range.
        """
        matrix = self.check_range(values)
        out = np.empty((matrix.shape[0], self.n_words), dtype="<u4")
        for start in range(0, matrix.shape[0], _CHUNK_ROWS):
            stop = start + _CHUNK_ROWS
            out[start:stop] = self._words_chunk(matrix[start:stop])
        return out

    @cached_property
    def _plan(self) -> _LanePlan:
        return _LanePlan.of(self)

    def _words_chunk(self, matrix: np.ndarray) -> np.ndarray:
        plan = self._plan
        columns = matrix if plan.order is None else matrix[:, plan.order]
        bits = columns.view(np.uint64) & plan.masks
        # the high bits of the elements that cross into the next lane, before the shift
        high = [bits[:, k] >> np.uint64(64 - int(plan.shifts[k])) for k in plan.straddling]
        np.left_shift(bits, plan.shifts, out=bits)
        lanes = np.empty((matrix.shape[0], plan.n_lanes), dtype="<u8")
        for lane, (start, stop) in enumerate(plan.spans):
            # disjoint bit fields: their sum is their OR (einsum: the fastest row sum)
            lanes[:, lane] = np.einsum("ij->i", bits[:, start:stop]) if stop > start else 0
        for k, part in zip(plan.straddling, high, strict=True):
            lanes[:, plan.lanes[k] + 1] |= part
        return lanes.view("<u4")[:, : self.n_words]

    def from_words(self, words: np.ndarray) -> np.ndarray:
        """Unpack ``(N, n_words)`` 32-bit words (see :meth:`to_words`) into an int64 matrix.

        Signed elements sign-extend.

        Raises
        ------
        ValueError
            If *words* has the wrong shape or type, or sets bits beyond the port's width.
        """
        words = np.asarray(words)
        if words.dtype.kind != "u" or words.dtype.itemsize != 4:
            raise TypeError(f"{self.name} words must be 32-bit unsigned, not {words.dtype}")
        if words.ndim != 2 or words.shape[1] != self.n_words:
            raise ValueError(
                f"{self.name} words must have shape (N, {self.n_words}), not {words.shape}"
            )
        spare = 32 * self.n_words - self.width
        if spare:
            high = words[:, -1] >> np.uint32(32 - spare)
            if high.any():
                row = int(np.argmax(high != 0))
                raise ValueError(
                    f"{self.name} word must be a {self.width}-bit unsigned integer, "
                    f"not one with bit {self.width + int(high[row]).bit_length() - 1} set "
                    f"(vector {row})"
                )
        out = np.zeros((words.shape[0], self.n_elements), dtype=np.int64)
        for start in range(0, words.shape[0], _CHUNK_ROWS):
            chunk = words[start : start + _CHUNK_ROWS]
            out[start : start + chunk.shape[0]] = self._elements_chunk(chunk)
        return out

    def _elements_chunk(self, words: np.ndarray) -> np.ndarray:
        plan = self._plan
        padded = np.zeros((words.shape[0], 2 * plan.n_lanes), dtype="<u4")
        padded[:, : self.n_words] = words
        lanes = padded.view("<u8").astype(np.uint64, copy=False)
        bits = lanes[:, plan.lanes] >> plan.shifts
        for k in plan.straddling:
            bits[:, k] |= lanes[:, plan.lanes[k] + 1] << np.uint64(64 - int(plan.shifts[k]))
        bits &= plan.masks
        # two's complement: flip the sign bit and subtract its weight (0 for unsigned elements)
        values = (bits ^ plan.signs).view(np.int64) - plan.signs.view(np.int64)
        if plan.order is None:
            return values
        out = np.empty_like(values)
        out[:, plan.order] = values
        return out

    def pack(self, values: np.ndarray) -> list[int]:
        """Pack an int64 matrix ``(N, n_elements)`` into N bus words (non-negative Python ints).

        Raises
        ------
        ValueError
            If a value lies outside its element's integer range.
        """
        words = self.to_words(values)
        raw = words.tobytes()
        step = 4 * self.n_words
        from_bytes = int.from_bytes
        return [from_bytes(raw[i : i + step], "little") for i in range(0, len(raw), step)]

    def unpack(self, words: Sequence[int]) -> np.ndarray:
        """Unpack bus words into an int64 matrix ``(N, n_elements)``; signed elements sign-extend.

        Raises
        ------
        ValueError
            If a word is negative or wider than the bus.
        """
        out = np.zeros((len(words), self.n_elements), dtype=np.int64)
        step = 4 * self.n_words
        for start in range(0, len(words), _CHUNK_ROWS):
            chunk = words[start : start + _CHUNK_ROWS]
            if chunk and (min(chunk) < 0 or max(chunk) >> self.width):
                row = next(r for r, w in enumerate(chunk) if w < 0 or w >> self.width)
                raise ValueError(
                    f"{self.name} word must be a {self.width}-bit unsigned integer, "
                    f"not {chunk[row]} (vector {start + row})"
                )
            raw = b"".join(int(w).to_bytes(step, "little") for w in chunk)
            matrix = np.frombuffer(raw, dtype="<u4").reshape(len(chunk), self.n_words)
            out[start : start + len(chunk)] = self._elements_chunk(matrix)
        return out


@dataclass(frozen=True, eq=False)
class _LanePlan:
    """Where each element sits in the port's 64-bit lanes, as arrays for whole-matrix numpy.

    Elements are taken in order of their ``lsb`` (``order``: that permutation of the element
    indices, or None when it is the identity), so each lane's elements form one span.
    """

    order: np.ndarray | None
    masks: np.ndarray  # uint64, (1 << width) - 1 per element
    shifts: np.ndarray  # uint64, lsb % 64
    lanes: np.ndarray  # intp, lsb // 64
    signs: np.ndarray  # uint64, 1 << (width - 1) for a signed element, else 0
    spans: tuple[tuple[int, int], ...]  # per lane: [start, stop) in the sorted order
    straddling: tuple[int, ...]  # positions (sorted order) of elements crossing into the next lane
    n_lanes: int

    @classmethod
    def of(cls, layout: BusLayout) -> _LanePlan:
        elements = sorted(layout.elements, key=lambda e: (e.lsb, e.index))
        order = np.array([e.index for e in elements], dtype=np.intp)
        n_lanes = (layout.n_words + 1) // 2
        lanes = np.array([e.lsb // 64 for e in elements], dtype=np.intp)
        shifts = [e.lsb % 64 for e in elements]
        return cls(
            order=None if np.array_equal(order, np.arange(len(order))) else order,
            masks=np.array([(1 << e.width) - 1 for e in elements], dtype=np.uint64),
            shifts=np.array(shifts, dtype=np.uint64),
            lanes=np.minimum(lanes, n_lanes - 1),  # a zero-width element may sit at the end
            signs=np.array(
                [1 << (e.width - 1) if e.signed and e.width else 0 for e in elements],
                dtype=np.uint64,
            ),
            spans=tuple(
                (int(np.searchsorted(lanes, lane)), int(np.searchsorted(lanes, lane, "right")))
                for lane in range(n_lanes)
            ),
            straddling=tuple(
                k for k, e in enumerate(elements) if e.width and shifts[k] + e.width > 64
            ),
            n_lanes=n_lanes,
        )
