"""Shared helpers of the synthesis tests: a tiny design, stored tool outputs, stand-in tools."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from rtl_gen.synth import SynthError, find_tool

#: Stored tool outputs (see ``samples/README.md``).
SAMPLES = Path(__file__).parent / "samples"

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


def sample(name: str) -> str:
    """Text of a stored tool output."""
    return (SAMPLES / name).read_text(encoding="utf-8")


def write_design(folder: Path, manifest: dict | str | None = None) -> Path:
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


def leftovers(parent: Path) -> list[str]:
    """Names in ``parent`` other than the design's own files."""
    return sorted(p.name for p in parent.iterdir() if p.name not in {"add8.v", "manifest.json"})


def commands(text: str) -> list[str]:
    """The non-comment, non-empty lines of a rendered script, stripped."""
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]


def require(*tools: str) -> None:
    """Skip the test unless every tool is installed."""
    for tool in tools:
        try:
            find_tool(tool)
        except SynthError as err:
            print(f"skipping: {err}")
            pytest.skip(str(err))


def fake_tool(folder: Path, body: str) -> Path:
    """Write an executable Python script standing in for a tool."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "fake-tool"
    path.write_text(f"#!{sys.executable}\nimport sys, time\n{body}\n", encoding="utf-8")
    path.chmod(0o755)
    return path
