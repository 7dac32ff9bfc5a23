"""The Vivado step (non-project batch TCL) and its utilization and timing report parsers."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .base import ToolStep, _check_frequency, render_template


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
