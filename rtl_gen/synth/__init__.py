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

Layout of the package (one module per tool, its parsers beside it):

* ``base``: errors, tool discovery, template rendering, the :class:`ToolStep` interface;
* ``design``: :class:`DesignInfo` and :func:`read_manifest` (the design's ``manifest.json``);
* ``report``: :class:`SynthReport`, :class:`FlowReport`, :class:`CellCounts`, :func:`count_cells`;
* ``yosys``: the Yosys steps and the ``stat -json`` parsers (flat and per module);
* ``nextpnr``: the nextpnr-ecp5/-ice40 steps, device lists, report and log parsers;
* ``vivado``: the Vivado step and its utilization/timing report parsers;
* ``targets``: :class:`Target` and :data:`TARGETS`, the one table of synthesis targets;
* ``flow``: :func:`synthesize`, :func:`synthesize_target` and :func:`read_flow_reports`;
* ``__main__``: ``python -m rtl_gen.synth RTL_DIR [OUT_DIR]``.

Examples
--------
>>> from rtl_gen.synth import synthesize
>>> report = synthesize(Path("runs/digits/rtl"))  # doctest: +SKIP
>>> report.lut, report.fmax_mhz  # doctest: +SKIP
"""

from __future__ import annotations

from .base import (
    CONSTRAINTS_DIR,
    SynthError,
    ToolStep,
    find_tool,
    last_error_line,
    render_template,
)

# public names of the former single module that are not in __all__ stay importable from here
from .base import DEFAULT_TIMEOUT_S as DEFAULT_TIMEOUT_S
from .base import REPORT_NAME as REPORT_NAME
from .base import ToolNotFoundError as ToolNotFoundError
from .design import DesignInfo, read_manifest
from .flow import CELL_KEYS as CELL_KEYS
from .flow import read_flow_reports, synthesize, synthesize_target
from .nextpnr import (
    ECP5_DEVICES,
    ICE40_DEVICES,
    NextpnrEcp5Step,
    NextpnrIce40Step,
    parse_nextpnr_fmax,
    parse_nextpnr_log_lut4,
    parse_nextpnr_utilization,
)
from .report import CELL_CLASSES, CellCounts, FlowReport, SynthReport, count_cells
from .targets import TARGETS, Target
from .vivado import (
    VivadoStep,
    VivadoTiming,
    VivadoUtilization,
    parse_vivado_timing_summary,
    parse_vivado_utilization,
)
from .yosys import (
    TOP_LEVEL,
    XILINX_FAMILIES,
    YosysEcp5Step,
    YosysIce40Step,
    YosysXilinxHierarchyStep,
    YosysXilinxStep,
    parse_yosys_hierarchy,
    parse_yosys_stat_cells,
    parse_yosys_xilinx_stat,
)

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
