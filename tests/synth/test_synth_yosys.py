"""Yosys steps of the synthesis stage (rtl_gen/synth/yosys.py): rendering and stat parsers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from synth_helpers import commands, sample

from rtl_gen.synth import (
    TOP_LEVEL,
    YosysEcp5Step,
    YosysXilinxHierarchyStep,
    YosysXilinxStep,
    parse_yosys_hierarchy,
    parse_yosys_stat_cells,
    parse_yosys_xilinx_stat,
)


def test_render_yosys_xilinx(tmp_path: Path) -> None:
    (script,) = YosysXilinxStep("dense_top", "dense_top.v").render(tmp_path)
    assert script == tmp_path / "yosys_xilinx.ys"
    assert commands(script.read_text()) == [
        "read_verilog -D HGQ_RTL_VENDOR_CELLS dense_top.v",
        "synth_xilinx -family xcup -top dense_top -flatten -noiopad -noclkbuf",
        "tee -q -o yosys_xilinx_stat.json stat -json",
    ]
    assert YosysXilinxStep("dense_top", "dense_top.v").arguments(tmp_path) == [
        "-s",
        "yosys_xilinx.ys",
    ]


def test_render_yosys_ecp5(tmp_path: Path) -> None:
    (script,) = YosysEcp5Step("dense_top", "design.v").render(tmp_path)
    assert commands(script.read_text()) == [
        "read_verilog design.v",
        "synth_ecp5 -top dense_top -json dense_top_ecp5.json",
        "tee -q -o yosys_ecp5_stat.json stat -json",
    ]


def test_render_yosys_xilinx_families(tmp_path: Path) -> None:
    (script,) = YosysXilinxStep("top", "top.v", family="xc7").render(tmp_path)
    assert "synth_xilinx -family xc7 -top top -flatten -noiopad -noclkbuf" in commands(
        script.read_text()
    )
    (hier,) = YosysXilinxHierarchyStep("top", "top.v").render(tmp_path)
    assert commands(hier.read_text()) == [
        "read_verilog -D HGQ_RTL_VENDOR_CELLS top.v",
        "synth_xilinx -family xcup -top top -noiopad -noclkbuf",  # no -flatten
        "tee -q -o yosys_xilinx_hier_stat.json stat -json",
    ]
    with pytest.raises(ValueError, match="`family` must be one of xcup, xcu, xc7, not 'xc9'"):
        YosysXilinxStep("top", "top.v", family="xc9")


def test_parse_xilinx_stat_adder() -> None:
    counts = parse_yosys_xilinx_stat(sample("add8_yosys_xilinx_stat.json"))
    assert (counts.lut, counts.ff, counts.carry, counts.dsp) == (8, 25, 3, 0)
    assert counts.cells == {"CARRY4": 3, "FDRE": 25, "LUT2": 8}


def test_parse_xilinx_stat_multiplier() -> None:
    counts = parse_yosys_xilinx_stat(sample("mul18_yosys_xilinx_stat.json"))
    assert counts.dsp == 2
    assert counts.cells["DSP48E2"] == 2
    assert counts.ff == 72
    assert counts.carry == 5
    assert counts.lut == sum(n for c, n in counts.cells.items() if c.startswith("LUT"))


def test_parse_xilinx_stat_cell_classes() -> None:
    cells = {
        "LUT1": 1,
        "LUT6": 2,
        "LUT6_2": 100,  # one LUT6 site with two outputs (ternary adders)
        "INV": 1000,  # a LUT1 on the device
        "FDRE": 3,
        "FDSE": 4,
        "FDCE": 5,
        "FDPE": 6,
        "CARRY4": 7,
        "CARRY8": 8,
        "DSP48E1": 9,
        "DSP48E2": 10,
        "MUXF7": 11,
    }
    text = json.dumps({"design": {"num_cells_by_type": cells}})
    counts = parse_yosys_xilinx_stat(text)
    assert (counts.lut, counts.ff, counts.carry, counts.dsp) == (1103, 18, 15, 19)


def test_parse_xilinx_stat_refuses_a_half_mapped_netlist() -> None:
    cells = {"LUT2": 5, "$add": 2, "$scopeinfo": 1, "$paramod$1f3d\\top.ternary_adder": 3}
    text = json.dumps({"design": {"num_cells_by_type": cells}})
    with pytest.raises(ValueError, match=r"generic cells \(\$add\)"):
        parse_yosys_xilinx_stat(text)
    del cells["$add"]  # $scopeinfo is bookkeeping and $paramod a kept submodule, not logic
    assert parse_yosys_xilinx_stat(json.dumps({"design": {"num_cells_by_type": cells}})).lut == 5


def test_parse_yosys_stat_module_fallback() -> None:
    text = json.dumps({"modules": {"\\top": {"num_cells_by_type": {"LUT3": 2}}}})
    assert parse_yosys_stat_cells(text) == {"LUT3": 2}


@pytest.mark.parametrize("text", ["not json", "[]", "{}", '{"design": {}}'])
def test_parse_yosys_stat_rejects_garbage(text: str) -> None:
    with pytest.raises(ValueError, match="Yosys stat report"):
        parse_yosys_stat_cells(text)


def test_parse_yosys_hierarchy() -> None:
    layers = parse_yosys_hierarchy(sample("hier_yosys_xilinx_stat.json"), "top")
    assert list(layers) == ["l0", TOP_LEVEL]
    assert (layers["l0"].lut, layers["l0"].ff, layers["l0"].carry) == (8, 9, 3)
    assert (layers[TOP_LEVEL].lut, layers[TOP_LEVEL].ff) == (8, 18)  # 10 + 8 register bits
    with pytest.raises(ValueError, match="no module 'other'"):
        parse_yosys_hierarchy(sample("hier_yosys_xilinx_stat.json"), "other")


def test_parse_yosys_hierarchy_counts_instances() -> None:
    modules = {
        "\\t": {"num_cells_by_type": {"t.a": 2, "LUT3": 1}},
        "\\t.a": {"num_cells_by_type": {"t.a.b": 3, "FDRE": 1}},
        "\\t.a.b": {"num_cells_by_type": {"LUT6": 2}},
    }
    layers = parse_yosys_hierarchy(json.dumps({"modules": modules}), "t")
    assert (layers["a"].lut, layers["a"].ff) == (12, 2)  # 2 x (3 x 2 LUT6, 1 FDRE)
    assert layers[TOP_LEVEL].lut == 1


def test_xilinx_memory_counts_block_and_distributed_ram():
    from rtl_gen.synth.report import xilinx_memory

    cells = {"RAMB36E2": 2, "RAMB18E2": 3, "RAM64M8": 4, "RAM32M16": 1, "LUT6": 9, "FDRE": 5}
    assert xilinx_memory(cells) == (3.5, 5)
    assert xilinx_memory({"LUT6": 1}) == (0.0, 0)
