"""A design's interface as its manifest describes it: which ports carry the model's vectors.

Three kinds of design (see ``docs/ir.md``, "RTL manifest"):

- *parallel, one input* (``"input"``): one vector per clock on ``data_in``/``valid_in``, one
  result per clock on ``data_out``/``valid_out``, a fixed latency;
- *parallel, several inputs* (``"inputs"``: a list of named buses sharing one valid port): the
  model's input vector is the concatenation of the inputs' elements, in the list's order;
- *stream* (``"io": "stream"``): each sample travels as beats on AXI4-Stream-like ports
  (:class:`~hgq_rtl_sim.stream.StreamLayout`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .bus import BusLayout
from .stream import StreamLayout

__all__ = [
    "IO_KINDS",
    "InputBuses",
    "check_vectors",
    "input_buses",
    "io_kind",
    "output_bus",
    "stream_layouts",
]

IO_KINDS = ("parallel", "stream")


def io_kind(manifest: Mapping[str, Any]) -> str:
    """``"parallel"`` (also when the manifest has no ``io``) or ``"stream"``."""
    kind = manifest.get("io", "parallel")
    if kind not in IO_KINDS:
        raise ValueError(f"io must be one of {IO_KINDS}, not {kind!r}")
    return kind


@dataclass(frozen=True)
class InputBuses:
    """The input ports of a parallel design, one :class:`BusLayout` each; the model's input
    vector is their elements one after the other, in order."""

    buses: tuple[BusLayout, ...]

    @property
    def valid(self) -> str:
        """The valid port all inputs share."""
        return self.buses[0].valid

    @property
    def n_elements(self) -> int:
        return sum(bus.n_elements for bus in self.buses)

    @property
    def n_words(self) -> int:
        """32-bit words per vector in :meth:`to_words` (each port's words, in order)."""
        return sum(bus.n_words for bus in self.buses)

    def split(self, values: np.ndarray) -> list[np.ndarray]:
        """Each input's columns of *values* ``(N, n_elements)``."""
        edges = np.cumsum([0, *(bus.n_elements for bus in self.buses)])
        return [values[:, a:b] for a, b in zip(edges[:-1], edges[1:], strict=True)]

    def check_range(self, values: np.ndarray) -> np.ndarray:
        """*values* as int64 after checking the shape and that every element fits its format."""
        if len(self.buses) == 1:
            return self.buses[0].check_range(values)
        values = np.asarray(values)
        if values.ndim != 2 or values.shape[1] != self.n_elements:
            raise ValueError(
                f"input values must have shape (N, {self.n_elements}) (the inputs "
                f"{', '.join(bus.name.split(' ', 1)[1] for bus in self.buses)} one after the "
                f"other), not {values.shape}"
            )
        parts = [
            bus.check_range(part) for bus, part in zip(self.buses, self.split(values), strict=True)
        ]
        return np.concatenate(parts, axis=1)

    def to_words(self, values: np.ndarray) -> np.ndarray:
        """``(N, n_words)`` 32-bit words: each port's :meth:`BusLayout.to_words`, in order."""
        if len(self.buses) == 1:
            return self.buses[0].to_words(values)
        matrix = self.check_range(values)
        parts = self.split(matrix)
        return np.concatenate(
            [b.to_words(p) for b, p in zip(self.buses, parts, strict=True)], axis=1
        )

    def pack(self, values: np.ndarray) -> list[list[int]]:
        """Per port, the N words of *values* as Python ints."""
        matrix = self.check_range(values)
        return [bus.pack(part) for bus, part in zip(self.buses, self.split(matrix), strict=True)]


def input_buses(manifest: Mapping[str, Any]) -> InputBuses:
    """The input ports of a parallel design (``input``, or each of ``inputs``), checked.

    Raises
    ------
    ValueError
        One line naming what is wrong: both or neither of ``input`` and ``inputs``, an input
        without a name, two inputs with the same name or port, valid ports that differ, or a
        malformed bus.
    """
    if ("input" in manifest) == ("inputs" in manifest):
        raise ValueError("the manifest must have exactly one of the fields 'input' and 'inputs'")
    if "input" in manifest:
        return InputBuses((BusLayout.from_manifest("input", manifest["input"]),))
    entries = manifest["inputs"]
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"inputs must be a non-empty list, not {entries!r}")
    buses, names = [], []
    for k, entry in enumerate(entries):
        name = entry.get("name") if isinstance(entry, Mapping) else None
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"inputs[{k}] name must be an identifier, not {name!r}")
        buses.append(BusLayout.from_manifest(f"input {name}", entry))
        names.append(name)
    for what, values in (("name", names), ("port", [bus.port for bus in buses])):
        repeated = sorted({v for v in values if values.count(v) > 1})
        if repeated:
            raise ValueError(f"inputs must have different {what}s, not {repeated[0]!r} twice")
    valids = sorted({bus.valid for bus in buses})
    if len(valids) != 1:
        raise ValueError(f"inputs must share one valid port, not {valids}")
    return InputBuses(tuple(buses))


def output_bus(manifest: Mapping[str, Any]) -> BusLayout:
    """The output port of a parallel design."""
    return BusLayout.from_manifest("output", manifest["output"])


def stream_layouts(manifest: Mapping[str, Any]) -> tuple[StreamLayout, StreamLayout]:
    """The input and output stream layouts of a stream design."""
    if "inputs" in manifest:
        raise ValueError("a stream design must have one input ('input'), not 'inputs'")
    return (
        StreamLayout.from_manifest("input", manifest.get("input")),
        StreamLayout.from_manifest("output", manifest.get("output")),
    )


def check_vectors(
    manifest: Mapping[str, Any], inputs: np.ndarray, expected: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """*inputs* and *expected* as int64 after checking their shapes and every value's format.

    Raises
    ------
    ValueError
        A shape that differs from the manifest's, different numbers of vectors or none, or a
        value outside its element's format (naming the element and the vector).
    """
    if io_kind(manifest) == "stream":
        in_layout, out_layout = stream_layouts(manifest)
        inputs, expected = in_layout.check_range(inputs), out_layout.check_range(expected)
    else:
        inputs = input_buses(manifest).check_range(inputs)
        expected = output_bus(manifest).check_range(expected)
    if inputs.shape[0] != expected.shape[0] or inputs.shape[0] == 0:
        raise ValueError(
            "inputs and expected must have the same number of vectors, at least 1, "
            f"not {inputs.shape[0]} and {expected.shape[0]}"
        )
    return inputs, expected
