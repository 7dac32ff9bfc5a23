"""The fast harness (hgq_rtl_sim.fast) on stream designs: the hand-written ``stream_sum`` of
tests/test_sim_stream.py streamed with ``tvalid`` always high, its output taken with ``tready``
always high (timing checked) or low at random (a seeded generator in the harness).

The correct design passes both ways; a wrong value is named (sample, element, expected and
actual); a design that ignores ``m_axis_tready`` loses beats under backpressure; a wrong latency
or interval in the manifest is caught; a design that never takes its input stops the harness
instead of hanging it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_sim_stream import (
    INTERVAL,
    LATENCY,
    random_samples,
    stream_reference,
    stream_sum_verilog,
    write_stream_design,
)

from hgq_rtl_sim.fast import verify_fast, verify_fast_stream
from hgq_rtl_sim.fast_build import render_harness

pytestmark = pytest.mark.slow

N_SAMPLES = 50_000


@pytest.fixture(scope="module")
def samples() -> tuple[np.ndarray, np.ndarray]:
    x = random_samples(N_SAMPLES, seed=7)
    return x, stream_reference(x)


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The correct design and one build folder for it (the build is reused)."""
    folder = tmp_path_factory.mktemp("fast_stream")
    return write_stream_design(folder / "rtl", stream_sum_verilog()), folder / "build"


def test_the_harness_is_rendered_for_the_stream_ports(good: tuple) -> None:
    manifest = json.loads((good[0] / "manifest.json").read_text())
    source = render_harness(manifest)
    assert "#define HGQ_STREAM 1" in source and "@" not in source
    assert "put_port<32>(top->s_axis_tdata, words + 0);" in source
    assert "top->m_axis_tready = ready;" in source and "BEATS_OUT = 2;" in source


def test_passes_at_full_throughput_and_under_backpressure(good: tuple, samples: tuple) -> None:
    design, build = good
    x, y = samples
    # one harness, whose log's summary counts every sample (several: tests/test_fast_stream_workers)
    options = dict(build_dir=build, quiet=True, optimize=False, workers=1)
    result = verify_fast(design, x, y, **options)
    assert result.passed, f"{result.summary()}\n{result.first_failure}"
    assert (result.vectors, result.mismatches, result.latency_errors) == (N_SAMPLES, 0, 0)
    log = (build / "fast_harness.log").read_text()
    summary = json.loads(log.split("HGQ_FAST_RESULT ")[-1])
    # full throughput: one sample every INTERVAL cycles
    assert summary["cycles"] < INTERVAL * N_SAMPLES + LATENCY + 64
    assert summary["beats"] == 4 * N_SAMPLES and summary["outputs"] == 2 * N_SAMPLES

    result = verify_fast(design, x, y, backpressure_probability=0.6, seed=1, chunk=7000, **options)
    assert result.passed, f"{result.summary()}\n{result.first_failure}"
    assert result.build_seconds == 0 and result.vectors == N_SAMPLES
    summary = json.loads((build / "fast_harness.log").read_text().split("HGQ_FAST_RESULT ")[-1])
    # two output beats per sample at 40 % of the cycles: the output sets the pace
    assert summary["cycles"] > 4.5 * N_SAMPLES


@pytest.mark.parametrize(
    ("fields", "kind", "errors", "detail"),
    [
        ({"latency": LATENCY - 1}, "latency", 1, {"expected_latency": 4, "observed_latency": 5}),
        ({"interval": INTERVAL + 2}, "interval", 999, {"observed_interval": INTERVAL}),
    ],
)
def test_wrong_timing_in_the_manifest_is_caught(
    tmp_path: Path, good: tuple, samples: tuple, fields: dict, kind: str, errors: int, detail
) -> None:
    design = write_stream_design(tmp_path / "rtl", stream_sum_verilog(), **fields)
    x, y = samples[0][:1000], samples[1][:1000]
    result = verify_fast(design, x, y, build_dir=good[1], quiet=True, optimize=False)
    assert not result.passed and result.mismatches == 0 and result.latency_errors == errors
    failure = result.first_failure
    assert failure["kind"] == kind and failure["index"] == (0 if kind == "latency" else 1)
    assert {key: failure[key] for key in detail} == detail
    # with backpressure the timing is not checked
    options = dict(build_dir=good[1], quiet=True, optimize=False, backpressure_probability=0.1)
    assert verify_fast(design, x, y, **options).passed


def test_a_wrong_value_is_named(tmp_path: Path, samples: tuple) -> None:
    x, y = samples
    design = write_stream_design(tmp_path / "rtl", stream_sum_verilog(bug="value"))
    result = verify_fast(design, x, y, quiet=True, optimize=False, chunk=20_000)
    hits = np.flatnonzero(y[:, 1] % 8 == 0)
    assert not result.passed and result.mismatches == len(hits) > 0
    assert (result.missing, result.extra, result.latency_errors) == (0, 0, 0)
    failure = result.first_failure
    assert (failure["kind"], failure["index"], failure["elements"]) == ("mismatch", hits[0], [1])
    assert failure["inputs"] == x[hits[0]].tolist()
    assert failure["actual"][1] == failure["expected"][1] + 1


def test_ignoring_tready_and_a_stuck_design_fail(tmp_path: Path, samples: tuple) -> None:
    x, y = samples[0][:5000], samples[1][:5000]
    design = write_stream_design(tmp_path / "ready", stream_sum_verilog(bug="ready"))
    build = tmp_path / "build_ready"
    options = dict(build_dir=build, quiet=True, optimize=False)
    assert verify_fast(design, x, y, **options).passed  # full throughput hides it
    result = verify_fast(design, x, y, backpressure_probability=0.2, seed=3, **options)
    assert not result.passed and result.missing > 0 and result.mismatches > 0

    stuck = stream_sum_verilog().replace(
        "assign s_axis_tready = count != 2'd2;", "assign s_axis_tready = 1'b0;"
    )
    design = write_stream_design(tmp_path / "stuck", stuck)
    chunks = [(x[:2000], y[:2000]), (x[2000:], y[2000:])]
    result = verify_fast_stream(design, chunks, quiet=True, optimize=False)
    assert not result.passed and result.missing == 5000 and result.vectors == 5000
    failure = result.first_failure
    assert (failure["kind"], failure["index"]) == ("missing", 0)
    assert failure["stalled_at_cycle"] > 0
