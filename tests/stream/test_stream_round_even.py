"""Round half to even (``RND_CONV``) in a stream design: the conv → pool → dense → dense chain
of :func:`stream_nets.conv_net` with every layer rounding half to even, through the fast
Verilator harness at full throughput and under backpressure."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from stream_nets import conv_net

from hgq_rtl.ir import reference
from hgq_rtl.ir.fixed import RoundMode
from hgq_rtl.ir.model import IRModel
from hgq_rtl_sim.fast import verify_fast
from rtl_gen.emit import RtlOptions, emit

SAMPLES = 2000


def with_round_mode(ir: IRModel, mode: RoundMode) -> IRModel:
    layers = tuple(
        dataclasses.replace(layer, round_mode=mode) if hasattr(layer, "round_mode") else layer
        for layer in ir.layers
    )
    return IRModel(ir.name, None, layers, inputs=ir.inputs)


def test_the_stream_model_hits_ties():
    ir = with_round_mode(conv_net(21, shape=(2, 6, 6)), RoundMode.RND_CONV)
    x = reference.random_inputs(ir.input, 500, np.random.default_rng(0))
    rnd = reference.run(with_round_mode(ir, RoundMode.RND), x)
    assert (reference.run(ir, x) != rnd).any(axis=1).mean() > 0.2


@pytest.mark.slow
def test_a_half_to_even_stream_design_is_bit_exact(tmp_path: Path):
    ir = with_round_mode(conv_net(21, shape=(2, 6, 6)), RoundMode.RND_CONV)
    emit(ir, tmp_path / "rtl", RtlOptions(io="stream"))
    x = reference.random_inputs(ir.input, SAMPLES, np.random.default_rng(1))
    y = reference.run(ir, x)
    options = dict(build_dir=tmp_path / "build", quiet=True, optimize=False)
    for result in (
        verify_fast(tmp_path / "rtl", x, y, **options),
        verify_fast(tmp_path / "rtl", x, y, backpressure_probability=0.5, seed=2, **options),
    ):
        assert result.passed, f"{result.summary()}\n{result.first_failure}"
        assert (result.vectors, result.mismatches) == (SAMPLES, 0)
    # the same design checked against round-half-up outputs fails
    wrong = reference.run(with_round_mode(ir, RoundMode.RND), x)
    result = verify_fast(tmp_path / "rtl", x, wrong, **options)
    assert not result.passed and result.mismatches > SAMPLES // 10
