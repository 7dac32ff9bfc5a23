"""A streaming port's layout (:class:`StreamLayout`): a model vector sent as beats, and back.

A stream design (manifest ``"io": "stream"``) takes each sample, the model's input vector, as
``beats`` beats on an AXI4-Stream-like port and answers with the output's beats. One beat holds
``slots``, each a fixed-point container at bits ``[lsb, lsb + width)`` of the data port (the same
layout on every beat); ``beat_elements[b][s]`` names the model element that slot ``s`` carries on
beat ``b`` (``-1``: the slot is unused on that beat, sent as 0 and ignored when received). Every
model element is carried exactly once.

A slot's format may be wider than its element's: the slot carries the element's integer shifted
left by ``slot.frac_bits - element.frac_bits`` (never negative) and sign-extended to the slot.
Received, the element is the slot's integer shifted right by that amount; the bits dropped must
be zero.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from .bus import BusElement, BusLayout

__all__ = ["StreamLayout", "FORMAT_KEYS"]

#: The keys of a fixed-point format in a manifest (a slot's or an element's).
FORMAT_KEYS = ("width", "signed", "int_bits", "frac_bits")
#: The handshake ports of a stream bus, besides the data ``port``.
HANDSHAKE_KEYS = ("valid", "ready", "last")


def _integer(value: Any, what: str, low: int | None = None) -> int:
    """*value* if it is a JSON integer (not a bool) of at least *low*; else ValueError."""
    if type(value) is not int or (low is not None and value < low):
        expectation = "an integer" if low is None else f"an integer >= {low}"
        raise ValueError(f"{what} must be {expectation}, not {value!r}")
    return value


def _format(entry: Any, what: str) -> tuple[int, bool, int, int]:
    """``(width, signed, int_bits, frac_bits)`` of a manifest format entry, checked."""
    if not isinstance(entry, Mapping):
        raise ValueError(f"{what} must be an object, not {entry!r}")
    missing = [key for key in FORMAT_KEYS if key not in entry]
    if missing:
        raise ValueError(f"{what} must have the field {missing[0]!r}")
    width = _integer(entry["width"], f"{what} width", 0)
    signed = entry["signed"]
    if not isinstance(signed, bool):
        raise ValueError(f"{what} signed must be true or false, not {signed!r}")
    int_bits = _integer(entry["int_bits"], f"{what} int_bits")
    frac_bits = _integer(entry["frac_bits"], f"{what} frac_bits")
    if width != int(signed) + int_bits + frac_bits:
        raise ValueError(
            f"{what} width must be signed + int_bits + frac_bits = "
            f"{int(signed) + int_bits + frac_bits}, not {width}"
        )
    return width, signed, int_bits, frac_bits


@dataclass(frozen=True, eq=False)
class StreamLayout:
    """How a stream bus carries a model vector: see the module's notes.

    Attributes
    ----------
    name:
        ``"input"`` or ``"output"`` (error messages).
    port, valid, ready, last:
        The data, valid, ready and last ports' names.
    slots:
        One beat's layout as a bus (the data port), slot ``s`` its element ``s``.
    slot_frac_bits:
        Each slot's fractional bits.
    elements:
        The model vector's element formats as a bus (for range checks; the ``lsb`` are
        meaningless).
    element_frac_bits:
        Each model element's fractional bits.
    beat_elements:
        ``(beats, n_slots)`` int64: the element each slot carries on each beat, or -1.
    """

    name: str
    port: str
    valid: str
    ready: str
    last: str
    slots: BusLayout
    slot_frac_bits: np.ndarray
    elements: BusLayout
    element_frac_bits: np.ndarray
    beat_elements: np.ndarray

    @classmethod
    def from_manifest(cls, name: str, bus: Any) -> StreamLayout:
        """Build and check the layout of a manifest's stream ``input`` or ``output`` entry.

        Raises
        ------
        ValueError
            One line naming the first field that is wrong.
        """
        if not isinstance(bus, Mapping):
            raise ValueError(f"{name} must be an object, not {bus!r}")
        for key in ("port", *HANDSHAKE_KEYS, "width", "slots", "elements", "beats"):
            if key not in bus:
                raise ValueError(f"{name} must have the field {key!r} (a stream port)")
        if "beat_elements" not in bus:
            raise ValueError(f"{name} must have the field 'beat_elements'")
        ports = [bus[key] for key in ("port", *HANDSHAKE_KEYS)]
        for key, port in zip(("port", *HANDSHAKE_KEYS), ports, strict=True):
            if not isinstance(port, str) or not port:
                raise ValueError(f"{name} {key} must be a non-empty port name, not {port!r}")
        if len(set(ports)) != len(ports):
            raise ValueError(f"{name} port, valid, ready and last must differ, not {ports}")
        width = _integer(bus["width"], f"{name} width", 1)

        if not isinstance(bus["slots"], list) or not bus["slots"]:
            raise ValueError(f"{name} slots must be a non-empty list, not {bus['slots']!r}")
        slot_elements, slot_formats = [], []
        for k, entry in enumerate(bus["slots"]):
            what = f"{name} slot {k}"
            slot_formats.append(_format(entry, what))
            if entry.get("index", k) != k:
                raise ValueError(f"{what} index must be {k} (its position), not {entry['index']!r}")
            lsb = _integer(entry.get("lsb"), f"{what} lsb", 0)
            slot_elements.append(BusElement(k, lsb, slot_formats[-1][0], slot_formats[-1][1]))
        slots = BusLayout(name, bus["port"], bus["valid"], width, tuple(slot_elements), "slot")

        entries = bus["elements"]
        if not isinstance(entries, list) or not entries:
            raise ValueError(f"{name} elements must be a non-empty list, not {entries!r}")
        element_formats, packed, lsb = [], [], 0
        for k, entry in enumerate(sorted(entries, key=lambda e: _index_key(e, name))):
            what = f"{name} element {k}"
            if entry.get("index") != k:
                raise ValueError(
                    f"{name} elements must be numbered 0..{len(entries) - 1}, "
                    f"not {entry.get('index')!r} at position {k}"
                )
            element_formats.append(_format(entry, what))
            packed.append(BusElement(k, lsb, element_formats[-1][0], element_formats[-1][1]))
            lsb += element_formats[-1][0]
        elements = BusLayout(name, bus["port"], bus["valid"], max(lsb, 1), tuple(packed))

        beats = _integer(bus["beats"], f"{name} beats", 1)
        beat_elements = _beat_elements(bus["beat_elements"], name, beats, len(slot_elements))
        _check_coverage(beat_elements, name, len(packed))
        layout = cls(
            name=name,
            port=bus["port"],
            valid=bus["valid"],
            ready=bus["ready"],
            last=bus["last"],
            slots=slots,
            slot_frac_bits=np.array([f[3] for f in slot_formats], dtype=np.int64),
            elements=elements,
            element_frac_bits=np.array([f[3] for f in element_formats], dtype=np.int64),
            beat_elements=beat_elements,
        )
        layout._check_containers()
        return layout

    # ------------------------------------------------------------------ shape

    @property
    def beats(self) -> int:
        """Beats per sample."""
        return int(self.beat_elements.shape[0])

    @property
    def n_elements(self) -> int:
        """Elements of the model vector."""
        return self.elements.n_elements

    @property
    def n_words(self) -> int:
        """32-bit words per beat in :meth:`to_words`."""
        return self.slots.n_words

    def check_range(self, values: np.ndarray) -> np.ndarray:
        """*values* ``(N, n_elements)`` as int64 after checking every element fits its format."""
        return self.elements.check_range(values)

    @cached_property
    def _carried(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Flat positions ``b * n_slots + s`` of the used slots, their elements and shifts."""
        flat = self.beat_elements.ravel()
        positions = np.flatnonzero(flat >= 0)
        elements = flat[positions]
        slot = positions % self.slots.n_elements
        shifts = self.slot_frac_bits[slot] - self.element_frac_bits[elements]
        widths = np.array([e.width for e in self.elements.elements], dtype=np.int64)
        shifts[widths[elements] == 0] = 0  # a zero-width element is 0 whatever its format
        return positions, elements, shifts

    def _check_containers(self) -> None:
        """Every used slot holds its element's whole range, shifted by a non-negative amount."""
        positions, elements, shifts = self._carried
        n_slots = self.slots.n_elements
        for position, element, shift in zip(
            positions.tolist(), elements.tolist(), shifts.tolist(), strict=True
        ):
            beat, slot = divmod(position, n_slots)
            carried = self.elements.elements[element]
            container = self.slots.elements[slot]
            where = f"{self.name} beat {beat} slot {slot} (element {element})"
            if shift < 0:
                raise ValueError(
                    f"{where}: the slot's frac_bits must be at least the element's "
                    f"({self.element_frac_bits[element]}), not {self.slot_frac_bits[slot]} "
                    "(a negative shift)"
                )
            low, high = carried.min_value << shift, carried.max_value << shift
            if carried.width and (low < container.min_value or high > container.max_value):
                raise ValueError(
                    f"{where}: the slot ({container.describe()}) must hold the element "
                    f"({carried.describe()}) shifted left by {shift}, "
                    f"[{low}, {high}]; it is too narrow"
                )

    # ------------------------------------------------------------------ packing

    def to_words(self, values: np.ndarray) -> np.ndarray:
        """The beats of samples ``(N, n_elements)``: ``(N * beats, n_words)`` 32-bit words,
        sample after sample (see :meth:`BusLayout.to_words`)."""
        matrix = self.check_range(values)
        positions, elements, shifts = self._carried
        n = matrix.shape[0]
        slots = np.zeros((n, self.beat_elements.size), dtype=np.int64)
        slots[:, positions] = matrix[:, elements] << shifts
        return self.slots.to_words(slots.reshape(n * self.beats, self.slots.n_elements))

    def pack(self, values: np.ndarray) -> list[int]:
        """The beats of samples ``(N, n_elements)`` as ``N * beats`` Python ints."""
        words = self.to_words(values)
        step = 4 * self.n_words
        raw = words.tobytes()
        return [int.from_bytes(raw[i : i + step], "little") for i in range(0, len(raw), step)]

    def from_slots(self, slots: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Samples from received slot values ``(N * beats, n_slots)`` int64.

        Returns ``(values, dropped)``: the elements ``(N, n_elements)`` and, per sample and
        element, whether the bits the shift drops were not all zero ``(N, n_elements)`` bool.
        """
        positions, elements, shifts = self._carried
        n = slots.shape[0] // self.beats
        carried = slots[: n * self.beats].reshape(n, self.beat_elements.size)[:, positions]
        values = np.zeros((n, self.n_elements), dtype=np.int64)
        dropped = np.zeros((n, self.n_elements), dtype=bool)
        values[:, elements] = carried >> shifts
        dropped[:, elements] = (carried & ((np.int64(1) << shifts) - 1)) != 0
        return values, dropped

    def from_words(self, words: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`from_slots` of beats given as ``(N * beats, n_words)`` 32-bit words."""
        return self.from_slots(self.slots.from_words(words))

    def unpack(self, beats: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`from_slots` of beats given as Python ints."""
        return self.from_slots(self.slots.unpack(beats))


def _index_key(entry: Any, name: str) -> int:
    if not isinstance(entry, Mapping) or type(entry.get("index")) is not int:
        raise ValueError(f"{name} element must be an object with an integer index")
    return entry["index"]


def _beat_elements(value: Any, name: str, beats: int, n_slots: int) -> np.ndarray:
    """The checked ``beat_elements`` as an int64 array ``(beats, n_slots)``."""
    what = f"{name} beat_elements"
    if not isinstance(value, list) or len(value) != beats:
        count = len(value) if isinstance(value, list) else value
        raise ValueError(f"{what} must list {beats} beats ({name} beats), not {count!r}")
    for beat, row in enumerate(value):
        if not isinstance(row, list) or len(row) != n_slots:
            count = len(row) if isinstance(row, list) else row
            raise ValueError(
                f"{what}[{beat}] must list {n_slots} entries (one per slot), not {count!r}"
            )
        for entry in row:
            if type(entry) is not int:
                raise ValueError(f"{what}[{beat}] entries must be integers, not {entry!r}")
    return np.array(value, dtype=np.int64).reshape(beats, n_slots)


def _check_coverage(beat_elements: np.ndarray, name: str, n_elements: int) -> None:
    """Every element ``0 .. n_elements - 1`` appears exactly once; other entries are -1."""
    flat = beat_elements.ravel()
    bad = (flat < -1) | (flat >= n_elements)
    if bad.any():
        beat, slot = divmod(int(np.argmax(bad)), beat_elements.shape[1])
        raise ValueError(
            f"{name} beat_elements[{beat}][{slot}] must be -1 or an element index "
            f"0..{n_elements - 1}, not {int(flat[bad][0])}"
        )
    counts = np.bincount(flat[flat >= 0], minlength=n_elements)
    wrong = np.flatnonzero(counts != 1)
    if wrong.size:
        element = int(wrong[0])
        raise ValueError(
            f"{name} beat_elements must carry every element exactly once: element "
            f"{element} is carried {int(counts[element])} times"
        )
