"""Check 3 for several pixels per beat: generated Verilog of wide stream designs through the fast
harness (hgq_rtl_sim.fast), which drives the beats from the manifest's slots and
``beat_elements``, at full throughput (latency and interval checked) and under random output
backpressure; a design whose parallel kernel copies get each other's window columns fails."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from stream_nets import conv_net
from test_stream_wide import SwappedCopies

from hgq_rtl.ir import reference
from hgq_rtl.ir.model import IRModel
from hgq_rtl_sim.fast import verify_fast
from hgq_rtl_sim.manifest import load_manifest
from rtl_gen.emit import RtlOptions, emit
from rtl_gen.stream import network

pytestmark = pytest.mark.slow

SAMPLES = 3000


def conv_pool_only(seed: int, **geometry) -> IRModel:
    """conv → pool of :func:`conv_net`: the output is a map, sent in the wide row layout."""
    full = conv_net(seed, **geometry)
    return IRModel(full.name, None, full.layers[:2], inputs=full.inputs)


def check(ir: IRModel, pixels: int, folder: Path) -> list:
    """Emit ``ir`` at ``pixels`` per beat and run it through the harness at full throughput
    and under backpressure; the two results."""
    manifest = emit(ir, folder / "rtl", RtlOptions(io="stream", pixels_per_beat=pixels))
    assert (
        manifest["pixels_per_beat"] == pixels and manifest["options"]["pixels_per_beat"] == pixels
    )
    assert load_manifest(folder / "rtl")["input"]["beats"] == ir.input.size // (
        pixels * ir.inputs[0].shape[0]
    )
    x = reference.random_inputs(ir.input, SAMPLES, np.random.default_rng(pixels))
    y = reference.run(ir, x)
    options = dict(build_dir=folder / "build", quiet=True, optimize=False)
    return [
        verify_fast(folder / "rtl", x, y, **options),
        verify_fast(folder / "rtl", x, y, backpressure_probability=0.5, seed=2, **options),
    ]


@pytest.mark.parametrize(
    ("ir", "pixels"),
    [
        (conv_net(11, shape=(2, 8, 8)), 2),
        (conv_pool_only(12, shape=(2, 10, 8), padding=0), 4),  # empty output slots
        (conv_net(13, shape=(2, 16), stride=2), 4),
    ],
    ids=["2d-p2", "map-out-p4", "1d-stride2-p4"],
)
def test_wide_designs_pass_the_fast_harness(tmp_path: Path, ir: IRModel, pixels: int) -> None:
    for result in check(ir, pixels, tmp_path):
        assert result.passed, f"{result.summary()}\n{result.first_failure}"
        assert (result.vectors, result.mismatches, result.latency_errors) == (SAMPLES, 0, 0)


def test_swapped_copies_fail_the_fast_harness(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(network, "WideWindowGenerator", SwappedCopies)
    for result in check(conv_pool_only(12, shape=(2, 10, 8), padding=0), 4, tmp_path):
        assert not result.passed and result.mismatches > SAMPLES // 2
        assert result.first_failure["kind"] == "mismatch"
