"""The fast harness (hgq_rtl_sim.fast) sharing a stream design's samples among several harness
processes: each gets its pieces in turn as one stream of its own, reset once and timed on its
own (its first sample's latency, then the interval from sample to sample), with its own
backpressure seed.

Two harnesses must give what one gives: the same vectors and no mismatch on a correct design,
at full throughput and under backpressure; the same mismatches and the same first failure (the
run's earliest failing sample, named by its index in the run) on a broken one, also when it
lies in the second harness's share; a wrong latency or interval in the manifest, once per
harness; a stuck design, every sample missing. The pieces are made small here (a few hundred
samples) so that they go round the harnesses several times.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from broken import break_design
from test_sim_stream import (
    INTERVAL,
    LATENCY,
    random_samples,
    stream_reference,
    stream_sum_verilog,
    write_stream_design,
)

from hgq_rtl.ir import reference
from hgq_rtl_sim import fast, fast_score
from hgq_rtl_sim.fast import verify_fast, verify_fast_stream
from rtl_gen.emit import RtlOptions, emit

# the stream network tests' CNN builder (tests/stream is on the path only for its own tests)
sys.path.insert(0, str(Path(__file__).resolve().parent / "stream"))

from stream_nets import conv_net  # noqa: E402

pytestmark = pytest.mark.slow

N_SAMPLES = 20_000
PIECE = 1000  # stream_sum samples per piece (4 input beats each)
OPTIONS = dict(quiet=True, optimize=False)


@pytest.fixture(autouse=True)
def small_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pieces of :data:`PIECE` stream_sum samples, and two harnesses by default on any machine."""
    monkeypatch.setattr(fast_score, "STREAM_PIECE_BEATS", 4 * PIECE)
    monkeypatch.setattr(fast, "_default_workers", lambda: 2)


@pytest.fixture(scope="module")
def samples() -> tuple[np.ndarray, np.ndarray]:
    x = random_samples(N_SAMPLES, seed=11)
    return x, stream_reference(x)


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The correct design and one build folder for it (the build is reused)."""
    folder = tmp_path_factory.mktemp("fast_stream_workers")
    return write_stream_design(folder / "rtl", stream_sum_verilog()), folder / "build"


def summaries(build: Path, workers: int) -> list[dict]:
    """The closing summary of each harness's log, the first harness's first."""
    logs = [build / "fast_harness.log"]
    logs += [build / f"fast_harness.{index}.log" for index in range(1, workers)]
    return [json.loads(log.read_text().split("HGQ_FAST_RESULT ")[-1]) for log in logs]


def same(one, two) -> None:
    """*two* (several harnesses) found what *one* (one harness) found."""
    assert (two.vectors, two.mismatches, two.missing, two.extra) == (
        one.vectors, one.mismatches, one.missing, one.extra,
    )  # fmt: skip
    assert two.first_failure == one.first_failure


def test_two_harnesses_pass_with_a_stream_each(good: tuple, samples: tuple) -> None:
    design, build = good
    x, y = samples
    one = verify_fast(design, x, y, build_dir=build, workers=1, **OPTIONS)
    two = verify_fast(design, x, y, build_dir=build, **OPTIONS)  # the default: 2 here
    for result in (one, two):
        assert result.passed, f"{result.summary()}\n{result.first_failure}"
        assert (result.vectors, result.mismatches, result.latency_errors) == (N_SAMPLES, 0, 0)
    # the pieces went round: each harness drove half the samples, back to back at full
    # throughput (one sample every INTERVAL cycles of its own), its outputs all taken
    shares = summaries(build, 2)
    assert [s["vectors"] for s in shares] == [N_SAMPLES // 2] * 2
    for share in shares:
        assert not share["stalled"] and share["outputs"] == 2 * share["vectors"]
        assert share["cycles"] < INTERVAL * share["vectors"] + LATENCY + 64

    # under backpressure, each harness with a tready pattern of its own
    pressed = dict(backpressure_probability=0.5, seed=4, chunk=7000)  # pieces cut by chunks too
    one = verify_fast(design, x, y, build_dir=build, workers=1, **pressed, **OPTIONS)
    two = verify_fast(design, x, y, build_dir=build, workers=2, **pressed, **OPTIONS)
    assert one.passed and two.passed and one.vectors == two.vectors == N_SAMPLES
    shares = summaries(build, 2)
    assert sum(s["vectors"] for s in shares) == N_SAMPLES and shares[0]["cycles"] > 0
    # output-bound: two output beats per sample at half the cycles (4 per sample): about as
    # many cycles as samples times 4, unless both harnesses drew the same pattern
    assert shares[0]["cycles"] != shares[1]["cycles"]
    assert all(s["cycles"] > 3.5 * s["vectors"] for s in shares)


def test_the_seeds_differ_per_harness_and_the_first_keeps_the_seed() -> None:
    seeds = [fast._worker_seed(7, index) for index in range(4)]
    assert seeds[0] == 7 and len(set(seeds)) == 4
    assert all(0 <= s < 1 << 64 for s in seeds)
    assert fast._worker_seed(8, 1) not in seeds  # a neighbouring seed: other patterns


def test_a_wrong_value_in_the_second_harness_share_is_named(tmp_path: Path, samples: tuple) -> None:
    x, y = samples
    # the bug hits samples whose channel-1 sum is a multiple of 8: none in the first piece
    # (harness 0), so the first failure lies in harness 1's piece
    hit = y[:, 1] % 8 == 0
    order = np.concatenate([np.flatnonzero(~hit)[:PIECE], np.flatnonzero(hit)[:1]])
    order = np.concatenate([order, np.setdiff1d(np.arange(N_SAMPLES), order)])
    x, y, hit = x[order], y[order], hit[order]
    first = int(np.argmax(hit))
    assert PIECE <= first < 2 * PIECE
    design = write_stream_design(tmp_path / "rtl", stream_sum_verilog(bug="value"))
    build = tmp_path / "build"
    one = verify_fast(design, x, y, build_dir=build, workers=1, **OPTIONS)
    two = verify_fast(design, x, y, build_dir=build, workers=2, **OPTIONS)
    assert not two.passed and two.mismatches == int(hit.sum()) and two.latency_errors == 0
    failure = two.first_failure
    assert (failure["kind"], failure["index"], failure["elements"]) == ("mismatch", first, [1])
    assert failure["inputs"] == x[first].tolist()
    same(one, two)


@pytest.mark.parametrize(
    ("fields", "kind", "index", "detail"),
    [
        ({"latency": LATENCY - 1}, "latency", 0, {"expected_latency": 4, "observed_latency": 5}),
        ({"interval": INTERVAL + 2}, "interval", 1, {"observed_interval": INTERVAL}),
    ],
)
def test_wrong_timing_in_the_manifest_is_caught_in_each_harness(
    tmp_path: Path, good: tuple, samples: tuple, fields: dict, kind: str, index: int, detail
) -> None:
    design = write_stream_design(tmp_path / "rtl", stream_sum_verilog(), **fields)
    x, y = samples[0][:3000], samples[1][:3000]  # 3 pieces: harness 0 gets two
    one = verify_fast(design, x, y, build_dir=good[1], workers=1, **OPTIONS)
    two = verify_fast(design, x, y, build_dir=good[1], workers=2, **OPTIONS)
    for result in (one, two):
        assert not result.passed and result.mismatches == 0
        failure = result.first_failure
        assert (failure["kind"], failure["index"]) == (kind, index)
        assert {key: failure[key] for key in detail} == detail
    assert one.first_failure == two.first_failure
    # a harness's first sample is timed by its latency, every later one by the interval
    if kind == "latency":
        assert (one.latency_errors, two.latency_errors) == (1, 2)
    else:
        assert (one.latency_errors, two.latency_errors) == (2999, 2998)


def test_a_stuck_design_stops_every_harness(tmp_path: Path, samples: tuple) -> None:
    x, y = samples[0][:5000], samples[1][:5000]
    stuck = stream_sum_verilog().replace(
        "assign s_axis_tready = count != 2'd2;", "assign s_axis_tready = 1'b0;"
    )
    design = write_stream_design(tmp_path / "stuck", stuck)
    chunks = [(x[:2000], y[:2000]), (x[2000:], y[2000:])]
    result = verify_fast_stream(design, chunks, build_dir=tmp_path / "build", **OPTIONS)
    assert not result.passed and result.missing == 5000 and result.vectors == 5000
    failure = result.first_failure
    assert (failure["kind"], failure["index"]) == ("missing", 0)
    assert failure["stalled_at_cycle"] > 0
    assert all(s["stalled"] for s in summaries(tmp_path / "build", 2))


# ----------------------------------------------------------------------- a generated CNN

IMAGES = 1200
IMAGE_PIECE = 100  # images per piece: 12 pieces


@pytest.fixture(scope="module")
def cnn(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray, np.ndarray]:
    """A small conv → pool → dense → dense stream design, its images and their reference."""
    ir = conv_net(21, shape=(2, 7, 7))
    folder = tmp_path_factory.mktemp("fast_stream_workers_cnn")
    emit(ir, folder / "rtl", RtlOptions(io="stream"))
    x = reference.random_inputs(ir.input, IMAGES, np.random.default_rng(5))
    return folder / "rtl", x, reference.run(ir, x)


def test_a_cnn_in_two_harnesses_matches_one(
    tmp_path: Path, cnn: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    design, x, y = cnn
    beats = json.loads((design / "manifest.json").read_text())["input"]["beats"]
    monkeypatch.setattr(fast_score, "STREAM_PIECE_BEATS", beats * IMAGE_PIECE)
    build = tmp_path / "build"
    for pressure in (0.0, 0.3):
        options = dict(build_dir=build, backpressure_probability=pressure, seed=9, **OPTIONS)
        one = verify_fast(design, x, y, workers=1, **options)
        two = verify_fast(design, x, y, workers=2, **options)
        for result in (one, two):
            assert result.passed, f"{result.summary()}\n{result.first_failure}"
            assert (result.vectors, result.mismatches, result.latency_errors) == (IMAGES, 0, 0)
        assert [s["vectors"] for s in summaries(build, 2)] == [IMAGES // 2] * 2

    broken = tmp_path / "broken"
    break_design(design, broken)
    build = tmp_path / "build_broken"
    one = verify_fast(broken, x, y, build_dir=build, workers=1, **OPTIONS)
    two = verify_fast(broken, x, y, build_dir=build, workers=2, **OPTIONS)
    assert not one.passed and one.mismatches > 0 and one.first_failure["kind"] == "mismatch"
    same(one, two)
