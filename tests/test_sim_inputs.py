"""hgq_rtl_sim on parallel designs with several inputs (manifest ``"inputs"``): the model's input
vector is the inputs' elements one after the other, each input on its own port under one valid.

The design (``two_in``) has two 40-bit inputs, ``hits`` and ``tracks`` (each a signed 6-bit, an
unsigned 4-bit and a signed 30-bit element, so each port spans two 32-bit words), and answers
``(h0 - t0, h1 + 2 t1, h2 - 2 t2)`` one cycle later. Its broken twin reads each input from the
other's port. Both the cocotb bench and the fast harness run them.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from hgq_rtl_sim.bus import BusElement
from hgq_rtl_sim.fast import verify_fast
from hgq_rtl_sim.fast_build import render_harness
from hgq_rtl_sim.manifest import load_manifest
from hgq_rtl_sim.runner import verify

#: (lsb, width, signed) of each input's elements, and of the output's
IN_ELEMENTS = [(0, 6, True), (6, 4, False), (10, 30, True)]
OUT_ELEMENTS = [(0, 7, True), (7, 6, False), (13, 32, True)]
N_VECTORS = 3000


def _elements(spec: list[tuple[int, int, bool]]) -> list[dict]:
    return [
        {"index": k, "lsb": lsb, "width": width, "signed": signed,
         "int_bits": width - signed, "frac_bits": 0}
        for k, (lsb, width, signed) in enumerate(spec)
    ]  # fmt: skip


def two_in_verilog(swapped: bool = False) -> str:
    hits, tracks = (
        ("data_in_tracks", "data_in_hits") if swapped else ("data_in_hits", "data_in_tracks")
    )
    return f"""\
module two_in (
    input  wire clk, input wire rst, input wire valid_in,
    input  wire [39:0] data_in_hits, input wire [39:0] data_in_tracks,
    output reg valid_out, output reg [44:0] data_out
);
    wire signed [5:0]  h0 = {hits}[5:0];
    wire        [3:0]  h1 = {hits}[9:6];
    wire signed [29:0] h2 = {hits}[39:10];
    wire signed [5:0]  t0 = {tracks}[5:0];
    wire        [3:0]  t1 = {tracks}[9:6];
    wire signed [29:0] t2 = {tracks}[39:10];
    wire signed [6:0]  y0 = h0 - t0;
    wire        [5:0]  y1 = h1 + {{t1, 1'b0}};
    wire signed [31:0] y2 = h2 - 2 * t2;
    always @(posedge clk) begin
        data_out <= {{y2, y1, y0}};
        valid_out <= rst ? 1'b0 : valid_in;
    end
endmodule
"""  # fmt: skip


def two_in_manifest(verilog: str) -> dict:
    inputs = [
        {"name": name, "port": f"data_in_{name}", "valid": "valid_in", "width": 40,
         "elements": _elements(IN_ELEMENTS)}
        for name in ("hits", "tracks")
    ]  # fmt: skip
    return {
        "schema": "hgq-rtl-manifest",
        "schema_version": 1,
        "top": "two_in",
        "verilog": "two_in.v",
        "clock": "clk",
        "reset": "rst",
        "latency_cycles": 1,
        "initiation_interval": 1,
        "inputs": inputs,
        "output": {"port": "data_out", "valid": "valid_out", "width": 45,
                   "elements": _elements(OUT_ELEMENTS)},
        "hashes": {"verilog_sha256": hashlib.sha256(verilog.encode()).hexdigest()},
    }  # fmt: skip


def write_two_in(folder: Path, verilog: str, edit=None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "two_in.v").write_text(verilog)
    manifest = two_in_manifest(verilog)
    if edit is not None:
        edit(manifest)
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return folder


def random_vectors(n: int, seed: int = 0) -> np.ndarray:
    """The model's input vectors: hits' three elements, then tracks'; extremes first."""
    rng = np.random.default_rng(seed)
    columns = []
    for _, width, signed in IN_ELEMENTS * 2:
        element = BusElement(0, 0, width, signed)
        column = rng.integers(element.min_value, element.max_value, size=n, endpoint=True)
        column[:2] = [element.min_value, element.max_value]
        columns.append(column)
    return np.stack(columns, axis=1).astype(np.int64)


def two_in_reference(x: np.ndarray) -> np.ndarray:
    h0, h1, h2, t0, t1, t2 = x.T
    return np.stack([h0 - t0, h1 + 2 * t1, h2 - 2 * t2], axis=1)


@pytest.fixture(scope="module")
def vectors() -> tuple[np.ndarray, np.ndarray]:
    x = random_vectors(N_VECTORS)
    return x, two_in_reference(x)


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_two_in(tmp_path_factory.mktemp("two_in") / "rtl", two_in_verilog())


@pytest.fixture(scope="module")
def swapped(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_two_in(tmp_path_factory.mktemp("two_in_swapped") / "rtl", two_in_verilog(True))


def _first_swap_failure(x: np.ndarray, y: np.ndarray) -> int:
    """The first vector whose output changes when hits and tracks trade places."""
    return int(np.argmax((two_in_reference(x[:, [3, 4, 5, 0, 1, 2]]) != y).any(axis=1)))


# --------------------------------------------------------------------- manifest checks


def _edit(key: str, value):
    def edit(manifest: dict) -> None:
        if key == "input":
            manifest["input"] = manifest["inputs"][0]
        elif key.startswith("inputs."):
            manifest["inputs"][1][key.split(".", 1)[1]] = value
        else:
            manifest[key] = value

    return edit


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_edit("input", None), "exactly one of the fields 'input' and 'inputs'"),
        (_edit("inputs", []), "inputs must be a non-empty list, not \\[\\]"),
        (_edit("inputs.name", "hits"), "inputs must have different names, not 'hits' twice"),
        (_edit("inputs.name", "9x"), r"inputs\[1\] name must be an identifier, not '9x'"),
        (_edit("inputs.port", "data_in_hits"), "different ports, not 'data_in_hits' twice"),
        (_edit("inputs.valid", "valid_b"), r"inputs must share one valid port, not \['valid_b'"),
        (_edit("inputs.width", 41), "input tracks port is 41 bits wide but its elements hold 40"),
    ],
)
def test_inputs_manifest_errors_are_one_clear_line(tmp_path: Path, edit, message: str) -> None:
    design = write_two_in(tmp_path / "rtl", two_in_verilog(), edit)
    with pytest.raises(ValueError, match=message) as error:
        load_manifest(design)
    assert "\n" not in str(error.value)


def test_vectors_are_the_inputs_one_after_the_other(good: Path, vectors: tuple) -> None:
    x, y = vectors
    with pytest.raises(ValueError, match=r"shape \(N, 6\) \(the inputs hits, tracks one after"):
        verify(good, x[:, :3], y, quiet=True)
    bad = x.copy()
    bad[4, 3] = 32  # tracks' element 0 is signed 6-bit
    message = r"input tracks element 0 must be signed 6-bit \[-32, 31\], not 32 \(vector 4\)"
    with pytest.raises(ValueError, match=message):
        verify(good, bad, y, quiet=True)
    source = render_harness(json.loads((good / "manifest.json").read_text()))
    assert "put_port<40>(top->data_in_hits, words + 0);" in source
    assert "put_port<40>(top->data_in_tracks, words + 2);" in source


# --------------------------------------------------------------------- simulation (Verilator)


def test_two_inputs_pass_and_swapped_ports_fail_in_the_bench(
    good: Path, swapped: Path, vectors: tuple
) -> None:
    x, y = vectors
    result = verify(good, x, y, seed=4, quiet=True)
    assert result.passed, f"{result.summary()}\n{result.first_failure}"
    assert result.vectors == N_VECTORS
    # the broken twin on the simulator that builds quicker (Icarus, where installed)
    quick = "icarus" if shutil.which("iverilog") else "verilator"
    result = verify(swapped, x, y, simulator=quick, seed=4, quiet=True)
    assert not result.passed and result.latency_errors == 0
    failure = result.first_failure
    assert (failure["kind"], failure["index"]) == ("mismatch", _first_swap_failure(x, y))
    assert failure["inputs"] == x[failure["index"]].tolist()


@pytest.mark.slow
def test_two_inputs_pass_and_swapped_ports_fail_in_the_fast_harness(
    good: Path, swapped: Path, vectors: tuple
) -> None:
    x = random_vectors(100_000, seed=1)
    y = two_in_reference(x)
    result = verify_fast(good, x, y, quiet=True, optimize=False, chunk=30_000)
    assert result.passed, f"{result.summary()}\n{result.first_failure}"
    result = verify_fast(swapped, x, y, quiet=True, optimize=False)
    assert not result.passed and result.latency_errors == 0
    assert result.mismatches == int((two_in_reference(x[:, [3, 4, 5, 0, 1, 2]]) != y).any(1).sum())
    assert result.first_failure["index"] == _first_swap_failure(x, y)
