"""Overflow guard: count the values a data set pushes outside the calibrated formats.

Freezing fixes every activation's integer bits from the ranges the calibration data reached, so
no calibration sample overflows. New data may: a value beyond its element's range is wrapped
(``WRAP``, usually a wildly wrong result) or clipped (``SAT``) by the hardware, silently.
:func:`overflow_report` runs the integer reference (:mod:`hgq_rtl.ir.reference`) and counts, for
each input and for every layer that can overflow (dense, conv, quantize), the values that lie
outside the element's range *before* the overflow mode brings them back in: after rounding and the
activation, exactly what the hardware computes up to its wrap or clamp. ``hgq-rtl check`` prints
the result. The other layer kinds are exact by construction.

Numpy and the standard library only, like the rest of :mod:`hgq_rtl.ir`.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .files import ArrayFileError, npz_headers, read_npy, read_npz
from .fixed import Overflow, overflow
from .formats import TensorFormat
from .model import IRModel, ModelInput, can_overflow
from .reference import Inputs, by_input, pre_overflow, round_values

#: Rows handled per pass (bounds memory on large data sets).
CHUNK_ROWS = 1 << 16
#: File types :func:`load_rows` reads.
DATA_SUFFIXES = (".npy", ".npz", ".csv")


@dataclass(frozen=True)
class ElementOverflow:
    """One element that overflowed: how often, and the range its pre-overflow values reached.

    ``min_seen``/``max_seen`` are integers of the element's format (real value
    ``m * 2**-frac_bits``) over every sample, ``lo``/``hi`` the format's range.
    """

    index: int
    count: int
    min_seen: int
    max_seen: int
    lo: int
    hi: int
    frac_bits: int

    def to_dict(self) -> dict[str, int]:
        return {
            "index": self.index,
            "count": self.count,
            "min_seen": self.min_seen,
            "max_seen": self.max_seen,
            "lo": self.lo,
            "hi": self.hi,
            "frac_bits": self.frac_bits,
        }

    def describe(self) -> str:
        return (
            f"element {self.index}: {self.count} values, seen [{self.min_seen}, {self.max_seen}] "
            f"vs range [{self.lo}, {self.hi}]"
        )


@dataclass(frozen=True)
class LayerOverflow:
    """Out-of-range values of one tensor: a model input (``name == "input"`` for a model with
    one input) or a layer.

    ``values``: (sample, element) pairs outside the range; ``samples_affected``: samples with at
    least one; ``worst``: the elements with most of them (most first, then by index).
    """

    name: str
    mode: Overflow
    elements: int
    samples: int
    values: int
    samples_affected: int
    worst: tuple[ElementOverflow, ...]

    @property
    def overflowed(self) -> bool:
        return self.values > 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "mode": self.mode.value,
            "elements": self.elements,
            "samples": self.samples,
            "values": self.values,
            "samples_affected": self.samples_affected,
            "worst": [element.to_dict() for element in self.worst],
        }


class _Tally:
    """Running per-element counts, minima and maxima over chunks of samples."""

    def __init__(self, fmt: TensorFormat) -> None:
        self.fmt = fmt
        self.lo, self.hi = fmt.int_range()
        self.count = np.zeros(fmt.size, np.int64)
        self.min_seen = np.full(fmt.size, np.iinfo(np.int64).max)
        self.max_seen = np.full(fmt.size, np.iinfo(np.int64).min)
        self.samples = 0
        self.samples_affected = 0

    def add(self, values: np.ndarray) -> None:
        outside = (values < self.lo[None, :]) | (values > self.hi[None, :])
        self.count += outside.sum(axis=0)
        self.samples += values.shape[0]
        self.samples_affected += int(outside.any(axis=1).sum())
        if values.shape[0]:
            self.min_seen = np.minimum(self.min_seen, values.min(axis=0))
            self.max_seen = np.maximum(self.max_seen, values.max(axis=0))

    def result(self, name: str, mode: Overflow, worst: int) -> LayerOverflow:
        bad = np.flatnonzero(self.count)
        order = bad[np.lexsort((bad, -self.count[bad]))][:worst]
        return LayerOverflow(
            name=name,
            mode=mode,
            elements=self.fmt.size,
            samples=self.samples,
            values=int(self.count.sum()),
            samples_affected=self.samples_affected,
            worst=tuple(
                ElementOverflow(
                    index=int(k),
                    count=int(self.count[k]),
                    min_seen=int(self.min_seen[k]),
                    max_seen=int(self.max_seen[k]),
                    lo=int(self.lo[k]),
                    hi=int(self.hi[k]),
                    frac_bits=int(self.fmt.frac_bits[k]),
                )
                for k in order
            ),
        )


def overflow_report(ir: IRModel, x_int: Inputs, *, worst: int = 5) -> list[LayerOverflow]:
    """Count, per tensor, the values outside their calibrated formats on integer inputs.

    ``x_int`` holds integers ``(n, ir.input.size)`` (for a model with several inputs, a mapping
    from input name to such an array) at the input elements' fractional steps but *not yet*
    brought into the input format (what :func:`hgq_rtl.ir.reference.round_input` gives for
    real data); values outside the input range are counted, then wrapped or saturated with the
    input's overflow mode. Each dense, conv or quantize layer's values are counted after
    rounding and the activation, before its own ``WRAP``/``SAT``; the layer's true (overflowed)
    output feeds the layers that read it, as in the hardware. Returns one entry per model
    input, then one per dense, conv or quantize layer in layer order; the exact kinds (maxpool,
    maxpool_nd, add, concat, lookup) cannot overflow (their formats hold every result) and have
    no entry.
    """
    arrays = by_input(ir, x_int, _integer_rows)
    arrays = arrays if isinstance(arrays, dict) else {ir.inputs[0].name: arrays}
    counts = {name: len(array) for name, array in arrays.items()}
    if len(set(counts.values())) > 1:
        raise ValueError(f"inputs must have one number of samples, not {counts}")
    if worst < 0:
        raise ValueError(f"worst must be >= 0, not {worst}")
    tallies = {i.name: _Tally(i.format) for i in ir.inputs}
    tallies |= {layer.name: _Tally(layer.output) for layer in ir.layers if can_overflow(layer)}
    for start in range(0, max(max(counts.values()), 1), CHUNK_ROWS):
        values = {}
        for i in ir.inputs:
            x = arrays[i.name][start : start + CHUNK_ROWS]
            tallies[i.name].add(x)
            values[i.name] = overflow(x, i.format.signed, i.format.width, i.overflow)
        for layer in ir.layers:
            inputs = tuple(values[name] for name in ir.inputs_of(layer))
            out = pre_overflow(layer, ir.input_formats_of(layer), inputs)
            if can_overflow(layer):
                tallies[layer.name].add(out)
                out = overflow(out, layer.output.signed, layer.output.width, layer.overflow)
            values[layer.name] = out
    modes = {i.name: i.overflow for i in ir.inputs}
    modes |= {layer.name: layer.overflow for layer in ir.layers if can_overflow(layer)}
    return [tally.result(name, modes[name], worst) for name, tally in tallies.items()]


def _integer_rows(model_input: ModelInput, x_int: np.ndarray, what: str) -> np.ndarray:
    x_int = np.asarray(x_int)
    size = model_input.format.size
    if x_int.ndim != 2 or x_int.shape[1] != size:
        raise ValueError(f"{what} must have shape (n, {size}), not {x_int.shape}")
    if x_int.dtype != bool and not np.issubdtype(x_int.dtype, np.integer):
        raise ValueError(f"{what} must be integers, not {x_int.dtype}")
    if x_int.dtype == np.uint64 and x_int.size and int(x_int.max()) > np.iinfo(np.int64).max:
        raise ValueError(f"{what} must fit int64")
    return x_int.astype(np.int64)


def overflow_report_real(ir: IRModel, x_real: Inputs, *, worst: int = 5) -> list[LayerOverflow]:
    """:func:`overflow_report` on real-valued data ``(n, ...)`` (a mapping by input name for
    several inputs): each sample is flattened in C order to its input's size and rounded
    first."""

    def rounded(model_input: ModelInput, x: np.ndarray, what: str) -> np.ndarray:
        x = np.asarray(x)
        size = model_input.format.size
        if x.ndim >= 2 and int(np.prod(x.shape[1:])) != size:
            data = "the data" if what == "inputs" else f"the data of {what}"
            raise ValueError(
                f"{data} has {int(np.prod(x.shape[1:]))} features per row, "
                f"model {ir.name!r} expects {size}"
            )
        return round_values(model_input.format, x, what)

    return overflow_report(ir, by_input(ir, x_real, rounded), worst=worst)


def any_overflow(reports: list[LayerOverflow]) -> bool:
    """True when any tensor had a value outside its format."""
    return any(report.overflowed for report in reports)


def format_table(reports: list[LayerOverflow]) -> str:
    """A readable table: one line per tensor (name, values out of range, samples, mode, worst)."""
    rows = [("layer", "mode", "values out of range", "samples affected", "worst element")]
    for r in reports:
        cells = r.samples * r.elements
        share = f" ({100 * r.values / cells:.3g}%)" if r.values and cells else ""
        rows.append(
            (
                r.name,
                r.mode.value,
                f"{r.values} / {cells}{share}",
                f"{r.samples_affected} / {r.samples}",
                r.worst[0].describe() if r.worst else "-",
            )
        )
    widths = [max(len(row[k]) for row in rows) for k in range(len(rows[0]) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row[:-1], widths, strict=True)) + "  " + row[-1]
        for row in rows
    )


def report_json(reports: list[LayerOverflow]) -> str:
    """One JSON line: ``{"overflow": bool, "samples": n, "layers": [...]}``."""
    return json.dumps(
        {
            "overflow": any_overflow(reports),
            "samples": reports[0].samples if reports else 0,
            "layers": [r.to_dict() for r in reports],
        }
    )


def load_rows(path: str | Path) -> np.ndarray:
    """Real-valued rows ``(samples, features)`` as float64 from a ``.npy``, ``.npz`` or ``.csv``.

    An ``.npz`` must hold one array, or name it ``x``. A ``.csv`` holds comma-separated numbers,
    one sample per line, with an optional header line. Raises ``ValueError`` (one line) for
    anything else: not 2-D, not numeric, NaN or inf, no samples; ``FileNotFoundError`` if absent.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"data file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix not in DATA_SUFFIXES:
        raise ValueError(f"data file {path} must be one of {', '.join(DATA_SUFFIXES)}")
    if suffix == ".csv":
        rows = _read_csv(path)
    else:
        rows = _read_numpy(path, suffix)
    if rows.ndim != 2:
        raise ValueError(
            f"data file {path} must hold a 2-D array (samples, features), not {rows.shape}"
        )
    if rows.shape[0] == 0 or rows.shape[1] == 0:
        raise ValueError(f"data file {path} holds no samples (shape {rows.shape})")
    if rows.dtype != bool and not np.issubdtype(rows.dtype, np.number):
        raise ValueError(f"data file {path} must hold numbers, not {rows.dtype}")
    if np.issubdtype(rows.dtype, np.complexfloating):
        raise ValueError(f"data file {path} must hold real numbers, not {rows.dtype}")
    rows = rows.astype(np.float64)
    bad = ~np.isfinite(rows)
    if bad.any():
        n, j = np.argwhere(bad)[0]
        raise ValueError(f"data file {path} holds {rows[n, j]} at row {n}, column {j}")
    return rows


def _read_numpy(path: Path, suffix: str) -> np.ndarray:
    """The rows of an ``.npy`` file, or of the array ``x`` (or the only array) of an ``.npz``;
    every header is checked before any data is read (:mod:`hgq_rtl.ir.files`)."""
    names: list[str] = []
    try:
        if suffix == ".npy":
            return read_npy(path)
        names = list(npz_headers(path))
        if "x" in names or len(names) == 1:
            name = "x" if "x" in names else names[0]
            return read_npz(path, [name])[name]
    except ArrayFileError as error:
        message = str(error).replace(str(path), "").strip(" :")
        raise ValueError(f"data file {path} is not a readable {suffix} file ({message})") from None
    raise ValueError(f"data file {path} holds arrays {names}: name one 'x' or store only one")


def _read_csv(path: Path) -> np.ndarray:
    try:
        with path.open(newline="") as f:
            lines = [
                (k, row) for k, row in enumerate(csv.reader(f), 1) if any(c.strip() for c in row)
            ]
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise ValueError(f"data file {path} is not a readable CSV file ({error})") from None
    if lines and not all(_is_number(cell) for cell in lines[0][1]):
        lines = lines[1:]  # a header
    if not lines:
        return np.zeros((0, 0))
    width = len(lines[0][1])
    values = []
    for k, row in lines:
        if len(row) != width:
            raise ValueError(f"data file {path} line {k} has {len(row)} values, not {width}")
        for cell in row:
            if not _is_number(cell):
                raise ValueError(f"data file {path} line {k}: {cell.strip()!r} is not a number")
        values.append([float(cell) for cell in row])
    return np.array(values, np.float64)


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True
