"""The Vivado step (rtl_gen/synth/vivado.py): rendering, report parsers, the target without
Vivado and with a stand-in for it."""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import pytest
from synth_helpers import SAMPLES, commands, fake_tool, leftovers, sample, write_design

from rtl_gen import synth
from rtl_gen.synth import (
    SynthError,
    VivadoStep,
    parse_vivado_timing_summary,
    parse_vivado_utilization,
    read_flow_reports,
    synthesize_target,
)


def test_render_vivado(tmp_path: Path) -> None:
    step = VivadoStep("dense_top", "dense_top.v", "xcvu13p-flga2577-2-e", 4.0, input_delay_ns=0.5)
    tcl, xdc = step.render(tmp_path)
    assert (tcl.name, xdc.name) == ("vivado.tcl", "vivado.xdc")
    assert commands(tcl.read_text()) == [
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
    constraints = commands(xdc.read_text())
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


def test_parse_vivado_utilization_ultrascale_plus() -> None:
    used = parse_vivado_utilization(sample("vivado_xcvu13p_utilization.rpt"))
    assert (used.lut, used.ff, used.carry, used.dsp, used.bram) == (11874, 13561, 1437, 3, 0.5)
    assert used.rows["LUT as Shift Register"] == 72
    assert used.rows["URAM"] == 0


def test_parse_vivado_utilization_7series() -> None:
    used = parse_vivado_utilization(sample("vivado_xc7a100t_utilization.rpt"))
    assert (used.lut, used.ff, used.carry, used.dsp, used.bram) == (8, 25, 3, 0, 0.0)


def test_parse_vivado_utilization_rejects_other_text() -> None:
    with pytest.raises(ValueError, match="no 'CLB LUTs or Slice LUTs' row"):
        parse_vivado_utilization(sample("vivado_timing_summary_met.rpt"))


def test_parse_vivado_timing_met() -> None:
    timing = parse_vivado_timing_summary(sample("vivado_timing_summary_met.rpt"), "clk")
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
    timing = parse_vivado_timing_summary(sample("vivado_timing_summary_failed.rpt"))
    assert (timing.period_ns, timing.wns_ns, timing.met) == (2.5, -0.734, False)
    assert timing.achieved_period_ns == pytest.approx(3.234)
    assert timing.fmax_mhz == pytest.approx(309.21, abs=0.01)


def test_parse_vivado_timing_unconstrained_and_clock_choice() -> None:
    text = sample("vivado_timing_summary_met.rpt")
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


def test_vivado_scripts_only(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def no_vivado(name: str) -> Path:
        raise SynthError(f"{name} not found")

    monkeypatch.setattr(synth, "find_tool", no_vivado)
    rtl = write_design(tmp_path / "rtl")
    report = synthesize_target(rtl, "vivado", part="xcvu9p-flga2104-2-i", clock_ns=3.0, quiet=True)
    out = rtl / "synth_vivado"
    assert not report.ran and report.lut is None and report.fmax_mhz is None
    assert report.command == (
        f"cd {out} && vivado -mode batch -nojournal -log vivado.log -source vivado.tcl"
    )
    assert sorted(p.name for p in out.iterdir()) == [
        ".hgq-rtl",  # the guard's marker: the folder is hgq-rtl's to replace
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
    assert leftovers(rtl) == ["synth_vivado"]

    # the user runs Vivado there later; the reports are then read from the folder
    shutil.copy(SAMPLES / "vivado_xc7a100t_utilization.rpt", out / "vivado_utilization.rpt")
    shutil.copy(SAMPLES / "vivado_timing_summary_met.rpt", out / "vivado_timing_summary.rpt")
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
        f"shutil.copy({str(SAMPLES / 'vivado_xcvu13p_utilization.rpt')!r}, "
        "'vivado_utilization.rpt')\n"
        f"shutil.copy({str(SAMPLES / 'vivado_timing_summary_failed.rpt')!r}, "
        "'vivado_timing_summary.rpt')\n"
        "print('INFO: [Common 17-206] Exiting Vivado')"
    )
    fake = fake_tool(tmp_path / "bin", body)
    monkeypatch.setattr(synth, "find_tool", lambda name: fake)
    rtl = write_design(tmp_path / "rtl")
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


def test_cli_synth_vivado_without_vivado(tmp_path: Path) -> None:
    import subprocess

    rtl = write_design(tmp_path / "rtl")
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
