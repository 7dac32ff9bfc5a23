"""hgq_rtl_sim on stream designs (``"io": "stream"``): beat packing, manifest checks, and the
cocotb bench on a hand-written AXI4-Stream design.

The design (``stream_sum``) takes a sample of C = 3 channels by H·W = 4 pixels, one pixel per
beat (three 8-bit slots in a 32-bit ``tdata``, the top byte unused), and answers with two beats
of 12-bit slots: the per-channel sums over the sample's beats (channels 0 and 1 on the first
beat, channel 2 on the second with the other slot unused and holding junk). Its output goes
through a two-entry FIFO, so ``s_axis_tready`` falls while the FIFO is full. The slots are wider
than the elements: input elements have 3 to 8 bits and fewer fractional bits than their 8-bit
slot (shifts 0 to 5; one element has zero width), and the output slots carry the sums with two
more fractional bits. Broken variants: one ignores ``m_axis_tready``, one puts ``tlast`` on the
wrong beat, one gets a value wrong; a manifest promises the wrong latency or interval.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from hgq_rtl_sim.manifest import load_manifest
from hgq_rtl_sim.runner import verify
from hgq_rtl_sim.stream import StreamLayout
from hgq_rtl_sim.stream_score import score_stream

#: The broken variants each need a build of their own: Icarus builds in a second, Verilator in
#: tens of seconds (the correct design runs on both).
QUICK_SIMULATOR = "icarus" if shutil.which("iverilog") else "verilator"
CHANNELS, PIXELS = 3, 4
LATENCY, INTERVAL = 5, 4
N_SAMPLES = 300
#: (signed, int_bits, frac_bits) of input element c * PIXELS + p, per channel (pixel 3 of
#: channel 0 has negative frac_bits; pixel 1 of channel 1 has zero width)
CHANNEL_FORMATS = [
    [(False, 2, 1), (False, 2, 1), (False, 2, 1), (False, 3, -1)],
    [(True, 1, 2), (False, 0, 0), (True, 1, 2), (True, 0, 3)],
    [(True, 3, 4), (True, 3, 4), (True, 2, 4), (False, 3, 4)],
]
IN_SLOT = (True, 3, 4)  # 8 bits
OUT_ELEMENT = (True, 5, 4)  # 10 bits: a sum of four 8-bit slots
OUT_SLOT = (True, 5, 6)  # 12 bits: two more fractional bits


def _format(signed: bool, int_bits: int, frac_bits: int) -> dict:
    width = int(signed) + int_bits + frac_bits
    return {"width": width, "signed": signed, "int_bits": int_bits, "frac_bits": frac_bits}


def input_formats() -> list[tuple[bool, int, int]]:
    return [f for channel in CHANNEL_FORMATS for f in channel]  # C order: c * PIXELS + p


def stream_manifest(verilog: str, latency: int = LATENCY, interval: int = INTERVAL) -> dict:
    return {
        "schema": "hgq-rtl-manifest",
        "schema_version": 1,
        "io": "stream",
        "top": "stream_sum",
        "verilog": "stream_sum.v",
        "clock": "clk",
        "reset": "rst",
        "latency_cycles": latency,
        "initiation_interval": interval,
        "input": {
            "port": "s_axis_tdata", "valid": "s_axis_tvalid", "ready": "s_axis_tready",
            "last": "s_axis_tlast", "width": 32,
            "slots": [{"lsb": 8 * c, **_format(*IN_SLOT)} for c in range(CHANNELS)],
            "elements": [{"index": k, **_format(*f)} for k, f in enumerate(input_formats())],
            "beats": PIXELS,
            "beat_elements": [[c * PIXELS + p for c in range(CHANNELS)] for p in range(PIXELS)],
        },
        "output": {
            "port": "m_axis_tdata", "valid": "m_axis_tvalid", "ready": "m_axis_tready",
            "last": "m_axis_tlast", "width": 32,
            "slots": [{"lsb": 0, **_format(*OUT_SLOT)}, {"lsb": 16, **_format(*OUT_SLOT)}],
            "elements": [{"index": c, **_format(*OUT_ELEMENT)} for c in range(CHANNELS)],
            "beats": 2,
            "beat_elements": [[0, 1], [2, -1]],
        },
        "hashes": {"verilog_sha256": hashlib.sha256(verilog.encode()).hexdigest()},
    }  # fmt: skip


def stream_sum_verilog(bug: str | None = None) -> str:
    """The design; *bug*: ``"ready"`` (takes output beats whether or not ``m_axis_tready`` is
    high), ``"tlast"`` (on the first output beat instead of the second) or ``"value"`` (channel
    1's sum one too high when it is a multiple of 8)."""
    out_fire = "m_axis_tvalid" if bug == "ready" else "m_axis_tvalid & m_axis_tready"
    last = "~ob" if bug == "tlast" else "ob"
    s1 = "s1 + {9'd0, s1[2:0] == 3'd0}" if bug == "value" else "s1"
    return f"""\
module stream_sum (
    input  wire clk, input wire rst,
    input  wire [31:0] s_axis_tdata, input wire s_axis_tvalid, output wire s_axis_tready,
    input  wire s_axis_tlast,
    output wire [31:0] m_axis_tdata, output wire m_axis_tvalid, input wire m_axis_tready,
    output wire m_axis_tlast
);
    wire signed [7:0] x0 = s_axis_tdata[7:0];
    wire signed [7:0] x1 = s_axis_tdata[15:8];
    wire signed [7:0] x2 = s_axis_tdata[23:16];
    reg signed [9:0] a0, a1, a2;  // running sums of the sample's beats so far
    reg [1:0] beat;
    reg [29:0] f0, f1;  // FIFO of finished sums, f0 its head
    reg [1:0] count;
    reg ob;  // which output beat of the head is offered
    wire in_fire = s_axis_tvalid & s_axis_tready;
    wire out_fire = {out_fire};
    wire push = in_fire & (beat == 2'd3);
    wire pop = out_fire & ob;
    wire signed [9:0] n0 = a0 + x0;
    wire signed [9:0] n1 = a1 + x1;
    wire signed [9:0] n2 = a2 + x2;
    wire [29:0] sums = {{n2, n1, n0}};
    wire [9:0] s0 = f0[9:0];
    wire [9:0] s1 = f0[19:10];
    wire [9:0] s2 = f0[29:20];
    wire [9:0] t1 = {s1};
    assign s_axis_tready = count != 2'd2;
    assign m_axis_tvalid = count != 2'd0;
    assign m_axis_tlast = {last};
    assign m_axis_tdata = ob ? {{4'd0, 12'hABC, 4'd0, s2, 2'b00}}
                             : {{4'd0, t1, 2'b00, 4'd0, s0, 2'b00}};
    always @(posedge clk) begin
        if (rst) begin
            a0 <= 0; a1 <= 0; a2 <= 0; beat <= 0; count <= 0; ob <= 0;
        end else begin
            if (in_fire) begin
                beat <= beat + 2'd1;
                a0 <= push ? 10'sd0 : n0;
                a1 <= push ? 10'sd0 : n1;
                a2 <= push ? 10'sd0 : n2;
            end
            if (out_fire) ob <= ~ob;
            if (push & ~pop) begin
                if (count == 2'd0) f0 <= sums; else f1 <= sums;
                count <= count + 2'd1;
            end else if (pop & ~push) begin
                f0 <= f1;
                count <= count - 2'd1;
            end else if (push & pop) begin
                if (count == 2'd1) f0 <= sums; else begin f0 <= f1; f1 <= sums; end
            end
        end
    end
endmodule
"""


def write_stream_design(folder: Path, verilog: str, **manifest_fields) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "stream_sum.v").write_text(verilog)
    manifest = stream_manifest(verilog, **manifest_fields)
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return folder


def _range(signed: bool, int_bits: int, frac_bits: int) -> tuple[int, int]:
    width = int(signed) + int_bits + frac_bits
    if width == 0:
        return 0, 0
    return (-(1 << (width - 1)), (1 << (width - 1)) - 1) if signed else (0, (1 << width) - 1)


def random_samples(n: int, seed: int = 0) -> np.ndarray:
    """Uniform over each element's range, the extremes in the first two samples."""
    rng = np.random.default_rng(seed)
    columns = []
    for fmt in input_formats():
        low, high = _range(*fmt)
        column = rng.integers(low, high, size=n, endpoint=True)
        column[:2] = [low, high]
        columns.append(column)
    return np.stack(columns, axis=1).astype(np.int64)


def stream_reference(x: np.ndarray) -> np.ndarray:
    """Per channel, the sum of its pixels in the slot's format (the output's frac_bits)."""
    shifts = np.array([IN_SLOT[2] - f[2] if _range(*f) != (0, 0) else 0 for f in input_formats()])
    return (x << shifts).reshape(-1, CHANNELS, PIXELS).sum(axis=2)


@pytest.fixture(scope="module")
def samples() -> tuple[np.ndarray, np.ndarray]:
    x = random_samples(N_SAMPLES)
    return x, stream_reference(x)


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The correct design and one build folder for it (the build is reused)."""
    folder = tmp_path_factory.mktemp("stream_good")
    return write_stream_design(folder / "rtl", stream_sum_verilog()), folder / "build"


def _layout(name: str = "output") -> StreamLayout:
    return StreamLayout.from_manifest(name, stream_manifest("")[name])


# --------------------------------------------------------------------- packing (no simulator)


def test_beats_carry_the_elements_shifted_into_their_slots(samples: tuple) -> None:
    x, y = samples
    layout = _layout("input")
    beats = layout.pack(x[:2])
    assert len(beats) == 2 * PIXELS and max(beats) < 1 << 24  # the top byte stays 0
    for k, beat in enumerate(beats):
        sample, pixel = divmod(k, PIXELS)
        for c in range(CHANNELS):
            fmt = input_formats()[c * PIXELS + pixel]
            shift = IN_SLOT[2] - fmt[2] if _range(*fmt) != (0, 0) else 0
            value = int(x[sample, c * PIXELS + pixel]) << shift
            assert (beat >> (8 * c)) & 0xFF == value & 0xFF
    values, dropped = layout.unpack(beats)
    assert np.array_equal(values, x[:2]) and not dropped.any()

    out = _layout("output")
    words = out.pack(y[:5])
    assert len(words) == 10
    assert [w >> 16 & 0xFFF for w in words[1::2]] == [0] * 5  # the unused slot is sent as 0
    values, dropped = out.unpack(words)
    assert np.array_equal(values, y[:5]) and not dropped.any()
    words[2] |= 1 << 16  # a low bit that the shift drops, in sample 1's element 1
    values, dropped = out.unpack(words)
    assert np.flatnonzero(dropped.any(axis=1)).tolist() == [1]
    assert dropped[1].tolist() == [False, True, False]


def test_stream_scoreboard_names_values_tlast_order_and_timing(samples: tuple) -> None:
    x, y = samples[0][:4], samples[1][:4]
    out = _layout()
    beats = out.pack(y)
    lasts = ["0", "1"] * 4
    cycles = [5, 6, 9, 10, 13, 14, 17, 18]  # latency 6 from cycle 0, then every 4 cycles

    def run(beats=beats, lasts=lasts, cycles=cycles, **options):
        timing = dict(latency=6, interval=4, check_timing=True, first_input_cycle=0)
        return score_stream(out, x, y, beats, lasts, cycles, **{**timing, **options})

    assert run()["first_failure"] is None
    failure = run(lasts=["0", "1", "1", "1", "0", "1", "0", "1"])["first_failure"]
    assert (failure["kind"], failure["index"], failure["beat"]) == ("tlast", 1, 0)
    swapped = beats[:2] + beats[4:6] + beats[2:4] + beats[6:]
    result = run(beats=swapped)
    assert result["mismatches"] == 2 and result["first_failure"]["index"] == 1
    result = run(beats=beats[:7], lasts=lasts[:7], cycles=cycles[:7])
    failure = result["first_failure"]
    assert (result["missing"], failure["kind"], failure["beats_received"]) == (1, "missing", 1)
    result = run(beats=[*beats, beats[0]], lasts=[*lasts, "1"], cycles=[*cycles, 20])
    assert (result["extra"], result["first_failure"]["kind"]) == (1, "extra")
    failure = run(first_input_cycle=1)["first_failure"]
    assert (failure["kind"], failure["expected_latency"], failure["observed_latency"]) == (
        "latency",
        6,
        5,
    )
    failure = run(cycles=[5, 6, 9, 10, 13, 15, 18, 19])["first_failure"]
    assert (failure["kind"], failure["index"], failure["observed_interval"]) == ("interval", 2, 5)
    assert run(cycles=[5, 6, 9, 10, 13, 15, 18, 19], check_timing=False)["first_failure"] is None
    error = {"cycle": 7, "beat": 2, "message": "the output dropped tvalid"}
    failure = run(protocol_errors=[error])["first_failure"]
    assert (failure["kind"], failure["index"], failure["cycle"]) == ("protocol", 1, 7)
    unknown = [*beats]
    unknown[3] = "x" * 32
    result = run(beats=unknown)
    assert (result["unknown_outputs"], result["first_failure"]["kind"]) == (1, "unknown")


# --------------------------------------------------------------------- manifest checks


def _broken_manifest(folder: Path, edit) -> Path:
    verilog = stream_sum_verilog()
    design = write_stream_design(folder, verilog)
    manifest = stream_manifest(verilog)
    edit(manifest)
    (design / "manifest.json").write_text(json.dumps(manifest))
    return design


def _set(path: str, value):
    """An edit setting ``manifest[a][b]...`` (keys split at dots; integers index lists)."""

    def edit(manifest: dict) -> None:
        *parents, key = [int(k) if k.isdigit() else k for k in path.split(".")]
        target = manifest
        for parent in parents:
            target = target[parent]
        if value is _DELETE:
            del target[key]
        else:
            target[key] = value

    return edit


_DELETE = object()


def _out_slots(*fmt) -> list[dict]:
    return [{"lsb": 0, **_format(*fmt)}, {"lsb": 16, **_format(*fmt)}]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_set("io", "burst"), r"io must be one of \('parallel', 'stream'\), not 'burst'"),
        (_set("initiation_interval", 0), "initiation_interval must be an integer >= 1, not 0"),
        (_set("pixels_per_beat", 0), "pixels_per_beat must be an integer >= 1, not 0"),
        (_set("pixels_per_beat", True), "pixels_per_beat must be an integer >= 1, not True"),
        (_set("pixels_per_beat", 2), r"input's 3 slots must be pixels_per_beat \(2\) pixels"),
        (_set("input.ready", _DELETE), r"input must have the field 'ready' \(a stream port\)"),
        (_set("output.last", "m_axis_tvalid"), "output port, valid, ready and last must differ"),
        (_set("output.last", "clk"), "the stream ports and clock and reset must differ: 'clk'"),
        (_set("input.width", 16), r"input slot 2 must lie inside the 16-bit port"),
        (_set("output.slots.1.lsb", 8), "output slot 1 must not overlap another slot"),
        (_set("input.slots.0.width", 9), "input slot 0 width must be signed .* = 8, not 9"),
        (_set("input.beats", 5), r"input beat_elements must list 5 beats \(input beats\), not 4"),
        (_set("output.beat_elements.1", [2]), r"beat_elements\[1\] must list 2 entries"),
        (_set("output.beat_elements.1", [2, 3]), r"beat_elements\[1\]\[1\] must be -1 or .* 0..2"),
        (
            _set("input.beat_elements.0", [0, 0, 8]),
            "carry every element exactly once: element 0 is carried 2 times",
        ),
        (
            _set("output.beat_elements.1", [-1, -1]),
            "carry every element exactly once: element 2 is carried 0 times",
        ),
        (_set("input.slots.1.frac_bits", 1), "slot 1 width must be"),
        (
            _set("output.slots", _out_slots(True, 8, 2)),
            r"beat 0 slot 0 \(element 0\): the slot's frac_bits must be at least .* shift\)",
        ),
        (
            _set("output.slots", _out_slots(True, 4, 4)),
            r"output beat 0 slot 0 \(element 0\): the slot \(signed 9-bit .* too narrow",
        ),
        (_set("inputs", []), "a stream design must have one input"),
    ],
)  # fmt: skip
def test_stream_manifest_errors_are_one_clear_line(tmp_path: Path, edit, message: str) -> None:
    design = _broken_manifest(tmp_path / "rtl", edit)
    with pytest.raises(ValueError, match=message) as error:
        load_manifest(design)
    assert "\n" not in str(error.value)


def test_verify_checks_sample_shapes_and_formats(good: tuple, samples: tuple) -> None:
    design, _ = good
    x, y = samples
    with pytest.raises(ValueError, match=r"input values must have shape \(N, 12\)"):
        verify(design, x[:, :11], y, quiet=True)
    bad = x.copy()
    bad[3, 0] = 8  # unsigned 3-bit
    with pytest.raises(ValueError, match=r"input element 0 must be unsigned 3-bit .* \(vector 3\)"):
        verify(design, bad, y, quiet=True)
    with pytest.raises(ValueError, match="backpressure_probability must be in"):
        verify(design, x, y, backpressure_probability=1.0, quiet=True)


# --------------------------------------------------------------------- simulation (Verilator)


def test_correct_stream_design_passes_under_bubbles_and_backpressure(
    good: tuple, samples: tuple
) -> None:
    design, build = good
    result = verify(
        design,
        *samples,
        build_dir=build,
        bubble_probability=0.3,
        backpressure_probability=0.4,
        seed=3,
        quiet=True,
    )
    assert result.passed, f"{result.summary()}\n{result.first_failure}"
    assert (result.vectors, result.mismatches, result.protocol_errors) == (N_SAMPLES, 0, 0)
    results = json.loads((build / "results.json").read_text())
    assert results["outputs"] == 2 * N_SAMPLES and results["input_beats"] == PIXELS * N_SAMPLES
    # bubbles, backpressure and the full FIFO stretched the run well past full throughput
    assert results["cycles"] > 1.3 * INTERVAL * N_SAMPLES


def test_correct_stream_design_passes_the_timing_check(good: tuple, samples: tuple) -> None:
    design, build = good
    result = verify(
        design, *samples, build_dir=build, bubble_probability=0, backpressure_probability=0,
        quiet=True,
    )  # fmt: skip
    assert result.passed, f"{result.summary()}\n{result.first_failure}"
    assert result.build_seconds == 0  # the build was reused
    results = json.loads((build / "results.json").read_text())
    assert results["cycles"] < INTERVAL * N_SAMPLES + LATENCY + 64


@pytest.mark.parametrize(
    ("fields", "kind", "detail"),
    [
        ({"latency": LATENCY + 1}, "latency", {"expected_latency": 6, "observed_latency": 5}),
        ({"interval": INTERVAL - 1}, "interval", {"expected_interval": 3, "observed_interval": 4}),
    ],
)
def test_wrong_timing_in_the_manifest_fails(
    tmp_path: Path, good: tuple, samples: tuple, fields: dict, kind: str, detail: dict
) -> None:
    design = write_stream_design(tmp_path / "rtl", stream_sum_verilog(), **fields)
    x, y = samples[0][:40], samples[1][:40]
    options = dict(build_dir=good[1], quiet=True)  # same Verilog: the build is reused
    result = verify(design, x, y, bubble_probability=0, backpressure_probability=0, **options)
    assert not result.passed and result.mismatches == 0
    failure = result.first_failure
    assert failure["kind"] == kind and failure["index"] == (0 if kind == "latency" else 1)
    assert {key: failure[key] for key in detail} == detail
    assert result.latency_errors == (1 if kind == "latency" else 39)
    # under random bubbles and backpressure the timing is not checked
    assert verify(design, x, y, **options).passed


def test_a_design_ignoring_tready_fails_under_backpressure(tmp_path: Path, samples: tuple) -> None:
    design = write_stream_design(tmp_path / "rtl", stream_sum_verilog(bug="ready"))
    x, y = samples[0][:100], samples[1][:100]
    options = dict(build_dir=tmp_path / "build", simulator=QUICK_SIMULATOR, quiet=True)
    result = verify(design, x, y, bubble_probability=0.1, **options)
    assert not result.passed
    assert result.protocol_errors > 0 and result.missing > 0
    assert result.first_failure["kind"] in ("mismatch", "protocol", "tlast")
    # without backpressure it cannot show
    full = verify(design, x, y, backpressure_probability=0, **options)
    assert full.passed, full.summary()


def test_wrong_tlast_fails(tmp_path: Path, samples: tuple) -> None:
    design = write_stream_design(tmp_path / "rtl", stream_sum_verilog(bug="tlast"))
    x, y = samples[0][:50], samples[1][:50]
    result = verify(design, x, y, simulator=QUICK_SIMULATOR, seed=2, quiet=True)
    assert not result.passed and result.mismatches == 50
    failure = result.first_failure
    assert (failure["kind"], failure["index"], failure["beat"]) == ("tlast", 0, 0)
    assert failure["actual"] == failure["expected"]
    assert "first failure: tlast at vector 0" in result.summary()


def test_a_wrong_value_is_named(tmp_path: Path, samples: tuple) -> None:
    x, y = samples
    design = write_stream_design(tmp_path / "rtl", stream_sum_verilog(bug="value"))
    result = verify(design, x, y, simulator=QUICK_SIMULATOR, seed=5, quiet=True)
    hits = np.flatnonzero(y[:, 1] % 8 == 0)
    assert not result.passed and result.mismatches == len(hits) > 0
    failure = result.first_failure
    assert (failure["kind"], failure["index"], failure["elements"]) == ("mismatch", hits[0], [1])
    assert failure["inputs"] == x[hits[0]].tolist()
    assert failure["expected"] == y[hits[0]].tolist()
    assert failure["actual"][1] == y[hits[0], 1] + 1


def test_a_stuck_design_is_reported_not_waited_for(tmp_path: Path, samples: tuple) -> None:
    stuck = stream_sum_verilog().replace(
        "assign s_axis_tready = count != 2'd2;", "assign s_axis_tready = 1'b0;"
    )
    design = write_stream_design(tmp_path / "rtl", stuck)
    build = tmp_path / "build"
    result = verify(design, *samples, simulator=QUICK_SIMULATOR, build_dir=build, quiet=True)
    assert not result.passed and result.missing == N_SAMPLES
    assert (result.first_failure["kind"], result.first_failure["index"]) == ("missing", 0)
    results = json.loads((build / "results.json").read_text())
    assert results["input_beats"] == 0 and results["stalled_at_cycle"] == 0


@pytest.mark.skipif(shutil.which("iverilog") is None, reason="iverilog is not installed")
def test_icarus_agrees(good: tuple, samples: tuple) -> None:
    design, _ = good
    x, y = samples[0][:80], samples[1][:80]
    result = verify(design, x, y, simulator="icarus", bubble_probability=0.2, quiet=True)
    assert result.passed, result.summary()
    full = dict(bubble_probability=0, backpressure_probability=0)
    assert verify(design, x, y, simulator="icarus", quiet=True, **full).passed
    bad = y.copy()
    bad[17, 2] += 1
    result = verify(design, x, bad, simulator="icarus", quiet=True, **full)
    assert (result.first_failure["index"], result.first_failure["elements"]) == (17, [2])
