"""A convolutional IR as a stream (rtl_gen.stream.network): check 2 — the streamed network in
Amaranth simulation, under bubbles and backpressure, equals the integer reference exactly — plus
the refusals and a broken kernel that the check catches."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from stream_nets import conv_net, stream_outputs

from hgq_rtl.ir import reference
from hgq_rtl.ir.dense import DenseLayer
from hgq_rtl.ir.formats import TensorFormat
from hgq_rtl.ir.model import IRModel
from rtl_gen.stream import network
from rtl_gen.stream.network import build_stream, stream_problem


@pytest.mark.parametrize(
    "geometry",
    [
        {},
        {"padding": 0},
        {"stride": 2, "shape": (2, 9, 9)},
        {"dilation": 2, "padding": 2},
        {"groups": 2},
        {"shape": (2, 12)},
    ],
    ids=["pad1", "pad0", "stride2", "dilation2", "groups2", "1d"],
)
def test_streamed_cnn_equals_the_reference(geometry):
    ir = conv_net(3, **geometry)
    design = build_stream(ir)
    rng = np.random.default_rng(1)
    x = reference.random_inputs(ir.input, 3, rng)
    out, _ = stream_outputs(design, ir, x)
    assert np.array_equal(out, reference.run(ir, x))


def test_latency_and_interval_are_what_the_design_says():
    ir = conv_net(5, padding=0)
    design = build_stream(ir)
    x = reference.random_inputs(ir.input, 3, np.random.default_rng(2))
    out, trace = stream_outputs(design, ir, x, bubble=0.0, stall=0.0)
    assert np.array_equal(out, reference.run(ir, x))
    pixels = design.input_beats.shape[0]
    firsts = trace.in_cycles[::pixels]
    assert trace.out_cycles[0] - firsts[0] == design.latency
    assert np.diff(trace.out_cycles).tolist() == [design.initiation_interval] * 2


def test_a_broken_kernel_is_caught(monkeypatch):
    """Check 2 is not vacuous: the kernel's first tap negated in every filter, in the generated
    datapath only."""
    ir = conv_net(7)
    original = network.kernel_layer

    def broken(layer, output):
        dense = original(layer, output)
        weight = dense.weight.copy()
        weight[:, 0] = -weight[:, 0] - 1
        return DenseLayer(
            dense.name,
            weight,
            dense.weight_frac_bits,
            dense.bias,
            dense.bias_frac_bits,
            dense.output,
            dense.activation,
            dense.round_mode,
            dense.overflow,
        )

    monkeypatch.setattr(network, "kernel_layer", broken)
    design = build_stream(ir)
    x = reference.random_inputs(ir.input, 4, np.random.default_rng(0))
    out, _ = stream_outputs(design, ir, x)
    assert not np.array_equal(out, reference.run(ir, x))


def test_refusals_name_the_reason():
    ir = conv_net(3)
    conv = ir.layers[0]
    mixed = TensorFormat(
        conv.output.signed,
        conv.output.int_bits - (np.arange(conv.output.size) == 5),
        conv.output.frac_bits,
    )
    bad = replace(ir, layers=(replace(conv, output=mixed), *ir.layers[1:]))
    assert "one format per channel" in stream_problem(bad)
    assert "conv's output" in stream_problem(bad)
    features = ir.layers[2].in_features
    flat = IRModel(
        "mlp",
        TensorFormat(np.zeros(features, bool), np.ones(features), np.zeros(features)),
        ir.layers[2:],
    )
    assert "shape" in stream_problem(flat)
    assert stream_problem(ir) is None


def test_io_auto_streams_a_cnn_unless_an_unrolled_option_is_asked_for():
    from rtl_gen.emit import RtlOptions, resolve_io

    ir = conv_net(3)
    assert resolve_io(ir, RtlOptions()) == ("stream", None)
    io, note = resolve_io(ir, RtlOptions(debug_taps=True))
    assert io == "parallel" and "debug taps" in note
    with pytest.raises(ValueError, match="Amaranth writer without debug taps"):
        resolve_io(ir, RtlOptions(io="stream", debug_taps=True))
    assert resolve_io(ir, RtlOptions(io="parallel")) == ("parallel", None)
