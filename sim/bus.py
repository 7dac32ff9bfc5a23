"""Packing integer element matrices into bus words and back, per a design manifest.

A bus is one Verilog port. Element ``k`` of the bus occupies bits ``[lsb, lsb + width)`` of the
port; its integer is two's complement when ``signed``. A ``width`` of 0 means the element is the
constant 0 and occupies no bits. Bus words are plain Python ints (non-negative, any width), so
buses wider than 64 bits work; the element matrices are ``int64``.

The work is vectorised with numpy: rows are turned into little-endian byte strings and each
element is read or written as one 64-bit window of bytes, in chunks of rows to bound memory.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["BusElement", "BusLayout"]

_CHUNK_ROWS = 1 << 15  # rows handled per numpy pass; bounds memory for very wide buses
_PAD = 16  # bytes of zero padding after a row, so every element's 2 x 64-bit window fits


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
    """

    name: str
    port: str
    valid: str
    width: int
    elements: tuple[BusElement, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.width, int) or self.width < 0:
            raise ValueError(
                f"{self.name} bus width must be a non-negative int, not {self.width!r}"
            )
        occupied = np.zeros(self.width, dtype=bool)
        for position, element in enumerate(self.elements):
            where = f"{self.name} element {position}"
            if element.index != position:
                raise ValueError(
                    f"{self.name} elements must be numbered 0..{len(self.elements) - 1} in order, "
                    f"not {element.index} at position {position}"
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
                raise ValueError(f"{where} must not overlap another element")
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

    @property
    def n_bytes(self) -> int:
        return (self.width + 7) // 8

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
        for element in self.elements:
            column = matrix[:, element.index]
            bad = (column < element.min_value) | (column > element.max_value)
            if bad.any():
                row = int(np.argmax(bad))
                raise ValueError(
                    f"{self.name} element {element.index} must be {element.describe()}, "
                    f"not {int(column[row])} (vector {row})"
                )
        return matrix

    # ------------------------------------------------------------------ packing

    def pack(self, values: np.ndarray) -> list[int]:
        """Pack an int64 matrix ``(N, n_elements)`` into N bus words (non-negative Python ints).

        Raises
        ------
        ValueError
            If a value lies outside its element's integer range.
        """
        matrix = self.check_range(values)
        words: list[int] = []
        for start in range(0, matrix.shape[0], _CHUNK_ROWS):
            words.extend(self._pack_chunk(matrix[start : start + _CHUNK_ROWS]))
        return words

    def _pack_chunk(self, matrix: np.ndarray) -> list[int]:
        rows = matrix.shape[0]
        n_bytes = self.n_bytes
        buffer = np.zeros((rows, n_bytes + _PAD), dtype=np.uint8)
        for element in self.elements:
            if element.width == 0:
                continue
            bits = matrix[:, element.index].view(np.uint64) & _mask(element.width)
            first, shift = divmod(element.lsb, 8)
            low = bits << np.uint64(shift)
            buffer[:, first : first + 8] |= _to_bytes(low)
            if shift and element.width + shift > 64:
                high = bits >> np.uint64(64 - shift)
                buffer[:, first + 8 : first + 16] |= _to_bytes(high)
        raw = buffer[:, :n_bytes].tobytes()
        from_bytes = int.from_bytes
        return [
            from_bytes(raw[i : i + n_bytes], "little") for i in range(0, rows * n_bytes, n_bytes)
        ]

    def unpack(self, words: Sequence[int]) -> np.ndarray:
        """Unpack bus words into an int64 matrix ``(N, n_elements)``; signed elements sign-extend.

        Raises
        ------
        ValueError
            If a word is negative or wider than the bus.
        """
        out = np.zeros((len(words), self.n_elements), dtype=np.int64)
        for start in range(0, len(words), _CHUNK_ROWS):
            chunk = words[start : start + _CHUNK_ROWS]
            out[start : start + len(chunk)] = self._unpack_chunk(chunk, start)
        return out

    def _unpack_chunk(self, words: Sequence[int], offset: int) -> np.ndarray:
        rows = len(words)
        n_bytes = self.n_bytes
        if rows and (min(words) < 0 or max(words) >> self.width):
            row = next(r for r, w in enumerate(words) if w < 0 or w >> self.width)
            raise ValueError(
                f"{self.name} word must be a {self.width}-bit unsigned integer, "
                f"not {words[row]} (vector {offset + row})"
            )
        raw = b"".join(int(w).to_bytes(n_bytes, "little") for w in words)
        buffer = np.zeros((rows, n_bytes + _PAD), dtype=np.uint8)
        buffer[:, :n_bytes] = np.frombuffer(raw, dtype=np.uint8).reshape(rows, n_bytes)
        out = np.zeros((rows, self.n_elements), dtype=np.int64)
        for element in self.elements:
            if element.width == 0:
                continue
            first, shift = divmod(element.lsb, 8)
            bits = _from_bytes(buffer[:, first : first + 8]) >> np.uint64(shift)
            if shift and element.width + shift > 64:
                bits |= _from_bytes(buffer[:, first + 8 : first + 16]) << np.uint64(64 - shift)
            bits &= _mask(element.width)
            if element.signed and element.width < 64:
                sign = np.uint64(1 << (element.width - 1))
                column = (bits ^ sign).view(np.int64) - np.int64(1 << (element.width - 1))
            else:
                column = bits.view(np.int64)
            out[:, element.index] = column
        return out


def _mask(width: int) -> np.uint64:
    return np.uint64((1 << width) - 1)


def _to_bytes(column: np.ndarray) -> np.ndarray:
    """uint64 column (N,) -> little-endian bytes (N, 8)."""
    return column.astype("<u8").view(np.uint8).reshape(-1, 8)


def _from_bytes(block: np.ndarray) -> np.ndarray:
    """Little-endian bytes (N, 8) -> uint64 column (N,)."""
    return np.ascontiguousarray(block).view("<u8").reshape(-1).astype(np.uint64)
