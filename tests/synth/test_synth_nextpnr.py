"""nextpnr steps of the synthesis stage (rtl_gen/synth/nextpnr.py): rendering and parsers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from synth_helpers import commands, sample

from rtl_gen.synth import (
    NextpnrEcp5Step,
    NextpnrIce40Step,
    YosysIce40Step,
    count_cells,
    parse_nextpnr_fmax,
    parse_nextpnr_log_lut4,
    parse_nextpnr_utilization,
    parse_yosys_stat_cells,
)


def test_render_nextpnr_arguments(tmp_path: Path) -> None:
    step = NextpnrEcp5Step("dense_top", "dense_top.v", 1000.0 / 3.0)
    args_file, lpf = step.render(tmp_path)
    assert (args_file.name, lpf.name) == ("nextpnr_ecp5.args", "nextpnr_ecp5.lpf")
    args = step.arguments(tmp_path)
    assert args[:2] == ["--json", "dense_top_ecp5.json"]
    for flag in ("--out-of-context", "--85k", "--timing-allow-fail", "--quiet"):
        assert flag in args
    assert args[args.index("--package") + 1] == "CABGA381"
    assert args[args.index("--freq") + 1] == "333.333"
    assert args[args.index("--report") + 1] == "nextpnr_report.json"
    assert args[args.index("--log") + 1] == "nextpnr_ecp5.log"
    # every path is relative: YoWASP tools only see their working directory
    assert not any(a.startswith("/") for a in args)


def test_render_rejects_bad_frequency() -> None:
    with pytest.raises(ValueError, match="positive"):
        NextpnrEcp5Step("top", "top.v", 0.0)


def test_render_ecp5_lpf_and_device(tmp_path: Path) -> None:
    step = NextpnrEcp5Step("t", "t.v", 125.0, clock="sys_clk", device="25k", package="CABGA256")
    args_file, lpf = step.render(tmp_path)
    assert lpf.name == "nextpnr_ecp5.lpf"
    assert commands(lpf.read_text()) == ['FREQUENCY PORT "sys_clk" 125 MHZ;']
    args = step.arguments(tmp_path)
    assert "--25k" in args and "--85k" not in args
    assert args[args.index("--package") + 1] == "CABGA256"
    assert args[args.index("--lpf") + 1] == "nextpnr_ecp5.lpf"
    with pytest.raises(ValueError, match="nextpnr-ecp5 device must be one of"):
        NextpnrEcp5Step("t", "t.v", 100.0, device="99k")
    with pytest.raises(ValueError, match="speed grade"):
        NextpnrEcp5Step("t", "t.v", 100.0, speed=5)


def test_render_ice40(tmp_path: Path) -> None:
    (script,) = YosysIce40Step("t", "t.v").render(tmp_path)
    assert commands(script.read_text()) == [
        "read_verilog t.v",
        "synth_ice40 -top t -json t_ice40.json",
        "tee -q -o yosys_ice40_stat.json stat -json",
    ]
    step = NextpnrIce40Step("t", "t.v", 200.0, device="up5k", package="sg48")
    args_file, pcf = step.render(tmp_path)
    assert commands(pcf.read_text()) == ["set_frequency clk 200"]
    args = step.arguments(tmp_path)
    assert args[:2] == ["--json", "t_ice40.json"]
    assert "--up5k" in args and "--timing-allow-fail" in args
    assert args[args.index("--pcf") + 1] == "nextpnr_ice40.pcf"
    assert args[args.index("--report") + 1] == "nextpnr_ice40_report.json"
    assert not any(a.startswith("/") for a in args)
    with pytest.raises(ValueError, match="nextpnr-ice40 package must be"):
        NextpnrIce40Step("t", "t.v", 200.0, package="ct 256")


def test_parse_nextpnr_report_adder() -> None:
    text = sample("add8_nextpnr_report.json")
    assert parse_nextpnr_fmax(text, "clk") == pytest.approx(359.32, abs=0.01)
    used = parse_nextpnr_utilization(text)
    assert used["TRELLIS_FF"] == 25
    assert used["TRELLIS_COMB"] == 16
    assert used["MULT18X18D"] == 0


def test_parse_nextpnr_report_multiplier() -> None:
    text = sample("mul18_nextpnr_report.json")
    assert parse_nextpnr_fmax(text) == pytest.approx(144.01, abs=0.01)
    assert parse_nextpnr_utilization(text)["MULT18X18D"] == 1


def test_parse_nextpnr_fmax_without_clock() -> None:
    assert parse_nextpnr_fmax(sample("comb_nextpnr_report.json"), "clk") is None


def test_parse_nextpnr_fmax_clock_choice() -> None:
    one = json.dumps({"fmax": {"$glbnet$clk": {"achieved": 99.5, "constraint": 100}}})
    assert parse_nextpnr_fmax(one, "clk") == 99.5
    two = json.dumps(
        {
            "fmax": {
                "clk_a": {"achieved": 10.0, "constraint": 100},
                "clk_b": {"achieved": 20.0, "constraint": 100},
            }
        }
    )
    assert parse_nextpnr_fmax(two, "clk_b") == 20.0
    with pytest.raises(ValueError, match="no clock 'clk'"):
        parse_nextpnr_fmax(two, "clk")
    with pytest.raises(ValueError, match="'fmax'"):
        parse_nextpnr_fmax("{}")


def test_parse_nextpnr_log_lut4() -> None:
    assert parse_nextpnr_log_lut4(sample("add8_nextpnr_ecp5.log")) == 10
    with pytest.raises(ValueError, match="Total LUT4s"):
        parse_nextpnr_log_lut4("Info: nothing here\n")


def test_parse_ice40_outputs() -> None:
    counts = count_cells(parse_yosys_stat_cells(sample("add8_yosys_ice40_stat.json")), "ice40")
    assert (counts.lut, counts.ff, counts.carry, counts.dsp) == (8, 25, 8, 0)
    report = sample("add8_nextpnr_ice40_report.json")
    # iCE40 names the clock net after its global buffer: clk$SB_IO_IN_$glb_clk
    assert parse_nextpnr_fmax(report, "clk") == pytest.approx(244.20, abs=0.01)
    assert parse_nextpnr_utilization(report)["ICESTORM_LC"] == 28
    with pytest.raises(ValueError, match="`family` must be one of"):
        count_cells({}, "gowin")
