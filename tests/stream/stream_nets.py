"""Convolutional IRs with one format per channel (streamable), and running images through a
stream design in Amaranth simulation: shared by the stream network tests and the fuzz."""

from __future__ import annotations

import math

import numpy as np
from stream_bench import Ports, run_stream

from hgq_rtl.ir.dense import DenseLayer
from hgq_rtl.ir.fixed import Activation, Overflow, RoundMode
from hgq_rtl.ir.formats import TensorFormat, exact_maxpool_format
from hgq_rtl.ir.model import IRModel, ModelInput
from hgq_rtl.ir.spatial import ConvLayer, MaxPoolNdLayer
from rtl_gen.components import BusLayout


def channel_format(rng, channels: int, positions: int, *, signed=None) -> TensorFormat:
    """One random format per channel, repeated over the positions."""
    s = rng.random(channels) < 0.5 if signed is None else np.full(channels, signed)
    i = rng.integers(1, 4, channels)
    f = rng.integers(1, 4, channels)
    return TensorFormat(*(np.repeat(a, positions) for a in (s, i, f)))


def conv_net(
    seed: int,
    *,
    padding=1,
    stride=1,
    dilation=1,
    groups=1,
    shape=(2, 7, 7),
    kernel_size=3,
    filters=4,
):
    """conv (ReLU, random modes) → 2×2 max pooling → dense → dense, one format per channel."""
    rng = np.random.default_rng(seed)
    channels, spatial = shape[0], shape[1:]
    kernel = (kernel_size,) * len(spatial)
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
        words += in_layout.pack(np.where(design.input_beats >= 0, row[design.input_beats], 0))
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
            used = design.output_beats[b] >= 0  # -1: a slot that carries no element
            out[n, design.output_beats[b][used]] = values[n * beats + b][used]
    lasts = np.asarray(trace.lasts).reshape(len(x), beats)
    assert (lasts[:, -1] == 1).all() and (lasts[:, :-1] == 0).all()
    return out, trace
