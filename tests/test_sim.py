"""hgq_rtl_sim: bus packing, scoreboard, and the cocotb bench on a hand-made pipelined design.

The design (``tiny_pipe``) has a 78-bit input bus and an 89-bit output bus, so both ports are wider
than 64 bits; it registers its results in stage 1 and carries them through ``stages - 1`` more
registers next to a reset valid shift register. A numpy reference gives the expected outputs.
The simulation tests really run Verilator (and Icarus when ``iverilog`` is installed).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from hgq_rtl_sim.bus import BusElement, BusLayout
from hgq_rtl_sim.manifest import load_manifest
from hgq_rtl_sim.result import SimulatorNotFoundError, VerifyResult
from hgq_rtl_sim.runner import verify
from hgq_rtl_sim.scoreboard import score

# (name, lsb, width, signed)
INPUTS = [("a", 0, 5, True), ("b", 5, 3, False), ("z", 8, 0, False), ("w", 8, 40, True),
          ("u", 48, 30, False)]  # fmt: skip
OUTPUTS = [("y0", 0, 7, True), ("y1", 7, 8, True), ("y2", 15, 0, False), ("y3", 15, 41, True),
           ("y4", 56, 33, False)]  # fmt: skip
IN_WIDTH, OUT_WIDTH = 78, 89
N_VECTORS = 2000


def _layout_entries(elements: list[tuple[str, int, int, bool]]) -> list[dict]:
    return [
        {"index": k, "lsb": lsb, "width": width, "signed": signed,
         "int_bits": width, "frac_bits": 0}
        for k, (_, lsb, width, signed) in enumerate(elements)
    ]  # fmt: skip


def tiny_pipe_verilog(stages: int = 2, bug: bool = False) -> str:
    """Verilog of the test design; *bug* adds 1 to y0 when a == 3."""
    y0 = "a + $signed({1'b0, b})"
    if bug:
        y0 += " + $signed({1'b0, a == 5'sd3})"
    lines = [
        "module tiny_pipe (",
        "    input  wire clk, input wire rst,",
        f"    input  wire valid_in, input wire [{IN_WIDTH - 1}:0] data_in,",
        f"    output wire valid_out, output wire [{OUT_WIDTH - 1}:0] data_out",
        ");",
        "    wire signed [4:0]  a = data_in[4:0];",
        "    wire        [2:0]  b = data_in[7:5];",
        "    wire signed [39:0] w = data_in[47:8];",
        "    wire        [29:0] u = data_in[77:48];",
        "    wire signed [6:0]  y0 = " + y0 + ";",
        "    wire signed [7:0]  y1 = a * 8'sd3;",
        "    wire signed [40:0] y3 = w + $signed({1'b0, u});",
        "    wire        [32:0] y4 = {u, b};",
    ]
    if stages == 0:  # combinational: latency 0
        lines += ["    assign valid_out = valid_in;", "    assign data_out = {y4, y3, y1, y0};"]
    else:
        lines += [
            f"    reg [{stages - 1}:0] valid;",
            *(f"    reg [{OUT_WIDTH - 1}:0] s{k};" for k in range(1, stages + 1)),
            "    always @(posedge clk) begin",
            "        s1 <= {y4, y3, y1, y0};",
            *(f"        s{k} <= s{k - 1};" for k in range(2, stages + 1)),
            "        if (rst) valid <= 0;",
            "        else valid <= "
            + (f"{{valid[{stages - 2}:0], valid_in}};" if stages > 1 else "valid_in;"),
            "    end",
            f"    assign valid_out = valid[{stages - 1}];",
            f"    assign data_out = s{stages};",
        ]
    lines.append("endmodule")
    return "\n".join(lines) + "\n"


def write_design(folder: Path, verilog: str, latency: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tiny_pipe.v").write_text(verilog)
    manifest = {
        "schema": "hgq-rtl-manifest",
        "schema_version": 1,
        "top": "tiny_pipe",
        "verilog": "tiny_pipe.v",
        "clock": "clk",
        "reset": "rst",
        "latency_cycles": latency,
        "input": {"port": "data_in", "valid": "valid_in", "width": IN_WIDTH,
                  "elements": _layout_entries(INPUTS)},
        "output": {"port": "data_out", "valid": "valid_out", "width": OUT_WIDTH,
                   "elements": _layout_entries(OUTPUTS)},
        "hashes": {"verilog_sha256": hashlib.sha256(verilog.encode()).hexdigest()},
    }  # fmt: skip
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return folder


def random_inputs(n: int, seed: int = 0) -> np.ndarray:
    """Uniform over each element's full range, with the extremes in the first rows."""
    rng = np.random.default_rng(seed)
    columns = []
    for _, _, width, signed in INPUTS:
        element = BusElement(0, 0, width, signed)
        column = rng.integers(element.min_value, element.max_value, size=n, endpoint=True)
        column[:2] = [element.min_value, element.max_value]
        columns.append(column)
    return np.stack(columns, axis=1).astype(np.int64)


def reference(x: np.ndarray) -> np.ndarray:
    a, b, _, w, u = x.T
    zero = np.zeros_like(a)
    return np.stack([a + b, a * 3, zero, w + u, (u << 3) | b], axis=1)


@pytest.fixture(scope="module")
def vectors() -> tuple[np.ndarray, np.ndarray]:
    x = random_inputs(N_VECTORS)
    return x, reference(x)


@pytest.fixture(scope="module")
def good_design(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_design(tmp_path_factory.mktemp("good"), tiny_pipe_verilog(stages=2), latency=2)


@pytest.fixture(scope="module")
def good_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One build folder shared by the tests of the correct Verilog (the build is reused)."""
    return tmp_path_factory.mktemp("good_build")


# --------------------------------------------------------------------- bus packing (no simulator)


def _reference_pack(layout: BusLayout, row: np.ndarray) -> int:
    word = 0
    for element in layout.elements:
        word |= (int(row[element.index]) & ((1 << element.width) - 1)) << element.lsb
    return word


def test_pack_unpack_round_trip_wide_bus() -> None:
    rng = np.random.default_rng(3)
    # 64-bit signed and 63-bit unsigned extremes at unaligned offsets, a zero-width element,
    # and a 200-bit bus.
    spec = [(3, 64, True), (67, 63, False), (130, 0, True), (130, 7, True), (141, 1, False),
            (150, 50, True)]  # fmt: skip
    elements = tuple(BusElement(k, *e) for k, e in enumerate(spec))
    layout = BusLayout("input", "d", "v", 200, elements)
    values = np.zeros((500, len(elements)), dtype=np.int64)
    for element in elements:
        column = rng.integers(element.min_value, element.max_value, 500, endpoint=True)
        column[:2] = [element.min_value, element.max_value]
        values[:, element.index] = column
    words = layout.pack(values)
    assert words == [_reference_pack(layout, row) for row in values]
    assert max(words).bit_length() > 64
    assert np.array_equal(layout.unpack(words), values)
    # Signed elements come back negative from set high bits.
    assert layout.unpack([(1 << 66) | (0x7F << 130)])[0].tolist() == [-(1 << 63), 0, 0, -1, 0, 0]


def test_pack_rejects_values_outside_their_format() -> None:
    layout = BusLayout.from_manifest("input", {"port": "d", "valid": "v", "width": IN_WIDTH,
                                               "elements": _layout_entries(INPUTS)})  # fmt: skip
    x = random_inputs(10)
    x[7, 0] = 16  # a is signed 5-bit: [-16, 15]
    message = r"input element 0 must be signed 5-bit \[-16, 15\], not 16 \(vector 7\)"
    with pytest.raises(ValueError, match=message):
        layout.pack(x)
    x = random_inputs(10)
    x[2, 2] = 1  # z has width 0: only 0 fits
    with pytest.raises(ValueError, match=r"element 2 .* not 1 \(vector 2\)"):
        layout.pack(x)
    x = random_inputs(10)
    x[0, 1] = -1
    with pytest.raises(ValueError, match="element 1 must be unsigned 3-bit"):
        layout.pack(x)
    with pytest.raises(ValueError, match="must have shape"):
        layout.pack(x[:, :3])
    with pytest.raises(TypeError, match="integer array"):
        layout.pack(x.astype(float))
    with pytest.raises(ValueError, match="word must be a 78-bit unsigned integer"):
        layout.unpack([1 << 78])


def test_layout_rejects_overlap_and_overflow() -> None:
    with pytest.raises(ValueError, match="overlap"):
        BusLayout("input", "d", "v", 8, (BusElement(0, 0, 4, True), BusElement(1, 3, 4, True)))
    with pytest.raises(ValueError, match="inside the 8-bit port"):
        BusLayout("input", "d", "v", 8, (BusElement(0, 5, 4, True),))
    with pytest.raises(ValueError, match="at most 63 bits"):
        BusLayout("input", "d", "v", 80, (BusElement(0, 0, 64, False),))


# --------------------------------------------------------------------- scoreboard (no simulator)


def _output_layout() -> BusLayout:
    return BusLayout.from_manifest("output", {"port": "q", "valid": "v", "width": OUT_WIDTH,
                                              "elements": _layout_entries(OUTPUTS)})  # fmt: skip


def test_scoreboard_reports_missing_extra_unknown_and_late_outputs() -> None:
    layout = _output_layout()
    x = random_inputs(5)
    y = reference(x)
    bits: list[int | str] = layout.pack(y)
    cycles = list(range(5))
    late = [c + 2 for c in cycles]

    ok = score(layout, x, y, bits, cycles, late, latency=2)
    assert ok["first_failure"] is None and ok["mismatches"] == 0

    missing = score(layout, x, y, bits[:3], cycles, late[:3], latency=2)
    assert (missing["missing"], missing["first_failure"]["kind"]) == (2, "missing")
    assert missing["first_failure"]["index"] == 3

    extra = score(layout, x, y, bits + bits[:1], cycles, late + [9], latency=2)
    assert (extra["extra"], extra["first_failure"]["kind"]) == (1, "extra")

    unknown = bits.copy()
    unknown[1] = "x" + f"{bits[1]:0{OUT_WIDTH}b}"[1:]
    result = score(layout, x, y, unknown, cycles, late, latency=2)
    assert (result["mismatches"], result["first_failure"]["kind"]) == (1, "unknown")

    timing = score(layout, x, y, bits, cycles, [c + 2 + (c == 4) for c in cycles], latency=2)
    assert (timing["latency_errors"], timing["first_failure"]["index"]) == (1, 4)

    invalid = score(layout, x, y, bits, cycles, late, latency=2, unknown_valid_cycles=[0])
    assert invalid["first_failure"]["kind"] == "unknown_valid"


# --------------------------------------------------------------------- manifest checks


def test_manifest_hash_mismatch_raises(tmp_path: Path, vectors: tuple) -> None:
    design = write_design(tmp_path / "rtl", tiny_pipe_verilog(), latency=2)
    verilog = design / "tiny_pipe.v"
    verilog.write_text(verilog.read_text().replace("8'sd3", "8'sd5"))
    with pytest.raises(ValueError, match="manifest does not match tiny_pipe.v: sha256 differs"):
        verify(design, *vectors, quiet=True)
    with pytest.raises(ValueError, match="manifest does not match"):
        load_manifest(design)


def test_verify_checks_shapes_and_ranges(good_design: Path, vectors: tuple) -> None:
    x, y = vectors
    with pytest.raises(ValueError, match=r"must have shape \(N, 5\)"):
        verify(good_design, x[:, :4], y, quiet=True)
    with pytest.raises(ValueError, match="same number of vectors"):
        verify(good_design, x[:10], y[:11], quiet=True)
    bad = y.copy()
    bad[5, 1] = 200  # y1 is signed 8-bit
    with pytest.raises(ValueError, match=r"output element 1 must be signed 8-bit .* \(vector 5\)"):
        verify(good_design, x, bad, quiet=True)


def test_missing_simulator_gives_one_clear_line(
    good_design: Path, vectors: tuple, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr("sys.executable", str(tmp_path / "python"))
    message = r"^verilator not found: run \./scripts/bootstrap\.sh$"
    with pytest.raises(SimulatorNotFoundError, match=message):
        verify(good_design, *vectors, quiet=True)
    with pytest.raises(SimulatorNotFoundError, match="iverilog and vvp not found"):
        verify(good_design, *vectors, simulator="icarus", quiet=True)


# --------------------------------------------------------------------- simulation (Verilator)


def test_build_error_shows_the_log(tmp_path: Path, vectors: tuple) -> None:
    broken = tiny_pipe_verilog().replace("endmodule", "endmodul")
    design = write_design(tmp_path / "rtl", broken, latency=2)
    with pytest.raises(
        RuntimeError, match=r"(?s)verilator build of tiny_pipe failed.*tiny_pipe\.v"
    ):
        verify(design, *vectors, quiet=True)


def test_correct_design_passes(good_design: Path, good_build: Path, vectors: tuple) -> None:
    result = verify(good_design, *vectors, build_dir=good_build, seed=1, quiet=True)
    assert isinstance(result, VerifyResult)
    assert result.passed, result.summary()
    assert (result.vectors, result.mismatches, result.first_failure) == (N_VECTORS, 0, None)
    assert result.simulator == "verilator" and result.build_seconds > 0
    results = json.loads((good_build / "results.json").read_text())
    assert results["outputs"] == N_VECTORS
    assert results["cycles"] > N_VECTORS  # the random bubbles happened


def test_broken_design_is_caught(tmp_path: Path, vectors: tuple) -> None:
    x, y = vectors
    design = write_design(tmp_path / "rtl", tiny_pipe_verilog(stages=2, bug=True), latency=2)
    result = verify(design, x, y, quiet=True)
    hits = np.flatnonzero(x[:, 0] == 3)
    assert not result.passed
    assert result.mismatches == len(hits) > 0
    failure = result.first_failure
    assert (failure["kind"], failure["index"], failure["elements"]) == ("mismatch", hits[0], [0])
    assert failure["inputs"] == x[hits[0]].tolist()
    assert failure["expected"] == y[hits[0]].tolist()
    assert failure["actual"][0] == y[hits[0], 0] + 1


def test_latency_other_than_manifest_fails(
    tmp_path: Path, good_design: Path, good_build: Path, vectors: tuple
) -> None:
    # Same Verilog (2 stages, so the build is reused), but the manifest promises 3 cycles.
    manifest = json.loads((good_design / "manifest.json").read_text())
    manifest["latency_cycles"] = 3
    design = tmp_path / "rtl"
    design.mkdir()
    shutil.copy(good_design / "tiny_pipe.v", design)
    (design / "manifest.json").write_text(json.dumps(manifest))
    result = verify(design, *vectors, build_dir=good_build, quiet=True)
    assert not result.passed
    assert result.mismatches == 0 and result.latency_errors == N_VECTORS
    failure = result.first_failure
    assert (failure["kind"], failure["index"]) == ("latency", 0)
    assert (failure["expected_latency"], failure["observed_latency"]) == (3, 2)


def test_combinational_design_has_latency_zero(tmp_path: Path, vectors: tuple) -> None:
    x, y = vectors
    design = write_design(tmp_path / "rtl", tiny_pipe_verilog(stages=0), latency=0)
    build = tmp_path / "build"
    assert verify(design, x[:500], y[:500], build_dir=build, quiet=True).passed
    # The same Verilog promised as a 1-cycle pipeline: its outputs come a cycle early.
    manifest = json.loads((design / "manifest.json").read_text())
    (design / "manifest.json").write_text(json.dumps({**manifest, "latency_cycles": 1}))
    result = verify(design, x[:500], y[:500], build_dir=build, quiet=True)
    assert result.latency_errors == 500 and result.first_failure["observed_latency"] == 0


def test_build_is_reused_and_progress_shown_unless_quiet(
    good_design: Path, good_build: Path, vectors: tuple, capfd: pytest.CaptureFixture
) -> None:
    x, y = vectors[0][:200], vectors[1][:200]
    verify(good_design, x, y, build_dir=good_build, quiet=True)
    assert capfd.readouterr().err == ""
    result = verify(good_design, x, y, build_dir=good_build, bubble_probability=0.0)
    assert result.passed and result.build_seconds == 0
    err = capfd.readouterr().err
    assert "reusing the verilator build of tiny_pipe" in err
    assert "simulating 200 vectors" in err
    assert "PASS (verilator): 200 vectors, 0 mismatches" in err


# --------------------------------------------------------------------- simulation (Icarus)


@pytest.mark.skipif(shutil.which("iverilog") is None, reason="iverilog is not installed")
def test_icarus_agrees(tmp_path: Path, good_design: Path, vectors: tuple) -> None:
    x, y = vectors
    result = verify(good_design, x[:300], y[:300], simulator="icarus", quiet=True)
    assert result.passed, result.summary()
    bad = y[:300].copy()
    bad[17, 3] += 1
    result = verify(good_design, x[:300], bad, simulator="icarus", quiet=True)
    assert result.first_failure["index"] == 17 and result.first_failure["elements"] == [3]
