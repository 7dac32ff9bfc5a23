"""The synthesis targets: :class:`Target` and the table :data:`TARGETS`.

A target names the steps it runs (built from a design, a part and a clock period) and how its
fixed-name reports are read back into :class:`FlowReport` fields.  This is the one place that
lists the targets; ``hgq-rtl synth --tool`` offers its keys.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .base import ToolStep, _read_report
from .design import DesignInfo
from .nextpnr import (
    NextpnrEcp5Step,
    NextpnrIce40Step,
    _NextpnrStep,
    parse_nextpnr_fmax,
    parse_nextpnr_log_lut4,
    parse_nextpnr_utilization,
)
from .report import count_cells, xilinx_memory
from .vivado import VivadoStep, parse_vivado_timing_summary, parse_vivado_utilization
from .yosys import (
    YosysEcp5Step,
    YosysIce40Step,
    YosysXilinxStep,
    parse_yosys_stat_cells,
    parse_yosys_xilinx_stat,
)


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
    bram, _ = xilinx_memory(cells)
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
