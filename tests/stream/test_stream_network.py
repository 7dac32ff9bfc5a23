"""A convolutional IR as a stream (rtl_gen.stream.network): check 2 — the streamed network in
Amaranth simulation, under bubbles and backpressure, equals the integer reference exactly — plus
the refusals and a broken kernel that the check catches."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from stream_bench import Ports, run_stream

from hgq_rtl.ir import reference
from hgq_rtl.ir.dense import DenseLayer
from hgq_rtl.ir.fixed import Activation, Overflow, RoundMode
from hgq_rtl.ir.formats import TensorFormat, exact_maxpool_format
from hgq_rtl.ir.model import IRModel, ModelInput
from hgq_rtl.ir.spatial import ConvLayer, MaxPoolNdLayer
from rtl_gen.components import BusLayout
from rtl_gen.stream import network
from rtl_gen.stream.network import build_stream, stream_problem


def channel_format(rng, channels: int, positions: int, *, signed=None) -> TensorFormat:
    """One random format per channel, repeated over the positions."""
    s = rng.random(channels) < 0.5 if signed is None else np.full(channels, signed)
    i = rng.integers(1, 4, channels)
    f = rng.integers(1, 4, channels)
    return TensorFormat(*(np.repeat(a, positions) for a in (s, i, f)))


def conv_net(seed: int, *, padding=1, stride=1, dilation=1, groups=1, shape=(2, 7, 7)):
    rng = np.random.default_rng(seed)
    channels, spatial = shape[0], shape[1:]
    kernel = (3,) * len(spatial)
    filters = 4
    pixels = math.prod(spatial)
    weight = rng.integers(-3, 4, (filters, channels // groups, *kernel))
    out_spatial = tuple(
        (n + 2 * padding - dilation * (k - 1) - 1) // stride + 1
        for n, k in zip(spatial, kernel, strict=True)
    )
    conv = ConvLayer(
        name="conv",
        in_shape=shape,
        weight=weight,
        weight_frac_bits=rng.integers(0, 3, weight.shape),
        bias=rng.integers(-4, 5, filters),
        bias_frac_bits=rng.integers(0, 3, filters),
        output=channel_format(rng, filters, math.prod(out_spatial)),
        stride=(stride,) * len(spatial),
        padding=(padding,) * len(spatial),
        dilation=(dilation,) * len(spatial),
        groups=groups,
        activation=Activation.RELU,
        round_mode=RoundMode(rng.choice(list(RoundMode))),
        overflow=Overflow(rng.choice(list(Overflow))),
    )
    pool_kernel = (2,) * len(spatial)
    pooled = tuple(n // 2 for n in out_spatial)
    pooled_size = filters * math.prod(pooled)
    placeholder = TensorFormat(
        np.zeros(pooled_size, bool), np.zeros(pooled_size), np.zeros(pooled_size)
    )
    pool_probe = MaxPoolNdLayer(
        "pool", (filters, *out_spatial), pool_kernel, placeholder, stride=pool_kernel
    )
    pool = MaxPoolNdLayer(
        "pool",
        (filters, *out_spatial),
        pool_kernel,
        exact_maxpool_format(conv.output, pool_probe.windows),
        stride=pool_kernel,
    )
    features = filters * math.prod(pooled)
    dense1 = DenseLayer(
        "dense1",
        rng.integers(-3, 4, (5, features)),
        rng.integers(0, 3, (5, features)),
        rng.integers(-3, 4, 5),
        np.full(5, 2),
        TensorFormat(np.zeros(5, bool), np.full(5, 3), np.full(5, 2)),
        Activation.RELU,
    )
    dense2 = DenseLayer(
        "dense2",
        rng.integers(-3, 4, (3, 5)),
        rng.integers(0, 3, (3, 5)),
        np.zeros(3),
        np.zeros(3),
        TensorFormat(np.ones(3, bool), np.full(3, 5), np.full(3, 2)),
    )
    fmt = channel_format(rng, channels, pixels)
    return IRModel(
        "cnn",
        None,
        (conv, pool, dense1, dense2),
        inputs=(ModelInput("image", fmt, shape),),
    )


def stream_outputs(design, ir, x, *, seed=0, bubble=0.3, stall=0.3):
    """Run images ``x`` (model input integers) through the design; model output integers."""
    in_layout = BusLayout.of(design.input_slots)
    out_layout = BusLayout.of(design.output_slots)
    words = []
    for row in x:
        words += in_layout.pack(row[design.input_beats])
    beats = design.output_beats.shape[0]
    trace = run_stream(
        design.chain,
        words,
        beats * len(x),
        ports=Ports.axis(design.chain),
        seed=seed,
        bubble=bubble,
        stall=stall,
    )
    assert trace.extra == 0
    values = out_layout.unpack(trace.outputs)
    out = np.zeros((len(x), ir.output.size), np.int64)
    for n in range(len(x)):
        for b in range(beats):
            out[n, design.output_beats[b]] = values[n * beats + b]
    lasts = np.asarray(trace.lasts).reshape(len(x), beats)
    assert (lasts[:, -1] == 1).all() and (lasts[:, :-1] == 0).all()
    return out, trace


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
