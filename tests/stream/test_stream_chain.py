"""StreamChain end to end: convolution (window generator + dense kernel), max pooling (window
generator + comparator tree), collector and dense tail, against the integer reference, under
bubbles and backpressure; its latency and initiation interval measured at full throughput."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

import numpy as np
import pytest
from amaranth.back import verilog
from stream_bench import Ports, Trace, run_stream, select

from hgq_rtl.ir.dense import DenseLayer
from hgq_rtl.ir.formats import TensorFormat
from hgq_rtl.ir.random import random_dense, random_format
from hgq_rtl.ir.reference import random_inputs, run_layer
from rtl_gen.components import BusLayout, DenseComponent
from rtl_gen.stream import (
    Collector,
    MaxTree,
    StreamChain,
    StreamStage,
    WindowGenerator,
    WindowGeometry,
)


def wide_format(rng: np.random.Generator, size: int) -> TensorFormat:
    """Random formats of 4 to 8 bits, so that every value carries information."""
    signed = rng.random(size) < 0.5
    width = rng.integers(4, 9, size)
    frac_bits = rng.integers(-1, 5, size)
    return TensorFormat(signed, width - signed - frac_bits, frac_bits)


def taps_format(fmt: TensorFormat, generator: WindowGenerator) -> TensorFormat:
    """A channel format per window element (every element of a channel in one format)."""
    return select(fmt, [c for c, _, _ in generator.element_taps()])


@dataclass
class ConvNet:
    """conv 3x3 pad 1 (C=2 -> F=3) on 6x6, max pool 2x2 stride 2, collect 3x3x3, dense 27 -> 4."""

    chain: StreamChain
    pixel_format: TensorFormat
    conv_geometry: WindowGeometry
    conv: DenseLayer
    conv_format: TensorFormat
    pool_geometry: WindowGeometry
    pool: MaxTree
    pool_format: TensorFormat
    tail: DenseLayer
    tail_format: TensorFormat

    @classmethod
    def random(cls, seed: int) -> ConvNet:
        rng = np.random.default_rng(seed)
        pixel_format = wide_format(rng, 2)
        conv_geometry = WindowGeometry(2, (6, 6), 3, padding=1)
        conv_windows = WindowGenerator(conv_geometry, [int(w) for w in pixel_format.width])
        conv_format = taps_format(pixel_format, conv_windows)
        conv = replace(random_dense(rng, "conv", conv_format, 3), output=wide_format(rng, 3))
        pool_geometry = WindowGeometry(3, (6, 6), 2, stride=2)
        pool_windows = WindowGenerator(pool_geometry, [int(w) for w in conv.output.width])
        pool_format = taps_format(conv.output, pool_windows)
        pool = MaxTree(4, pool_format)
        collector = Collector(
            pool_geometry.out_positions, [int(w) for w in pool.layer.output.width]
        )
        tail_format = select(pool.layer.output, np.tile(np.arange(3), 9))
        tail = replace(random_dense(rng, "tail", tail_format, 4), output=wide_format(rng, 4))
        stages = [
            conv_windows,
            StreamStage(DenseComponent(conv, conv_format, adder_levels_per_stage=1)),
            pool_windows,
            StreamStage(pool),
            collector,
            StreamStage(DenseComponent(tail, tail_format)),
        ]
        return cls(
            StreamChain(stages),
            pixel_format,
            conv_geometry,
            conv,
            conv_format,
            pool_geometry,
            pool,
            pool_format,
            tail,
            tail_format,
        )

    def images(self, n: int, seed: int) -> list[np.ndarray]:
        rng = np.random.default_rng(seed)
        g = self.conv_geometry
        return [
            random_inputs(self.pixel_format, g.pixels, rng).T.reshape(2, 6, 6) for _ in range(n)
        ]

    def words(self, images: list[np.ndarray]) -> list[int]:
        layout = BusLayout.of(self.pixel_format)
        return [w for image in images for w in layout.pack(self.conv_geometry.beats(image))]

    def reference(self, image: np.ndarray) -> np.ndarray:
        """The tail's output for one image, layer by layer with the integer reference."""
        conv_out = run_layer(self.conv, self.conv_format, self.conv_geometry.windows(image))
        feature_map = conv_out.T.reshape(3, 6, 6)
        pooled = run_layer(
            self.pool.layer, self.pool_format, self.pool_geometry.windows(feature_map)
        )
        return run_layer(self.tail, self.tail_format, pooled.reshape(1, -1))[0]

    def run(self, images: list[np.ndarray], **bench) -> Trace:
        return run_stream(
            self.chain, self.words(images), len(images), ports=Ports.axis(self.chain), **bench
        )


@pytest.mark.parametrize("seed", [0, 2])
def test_conv_pool_dense_chain_under_bubbles_and_backpressure(seed):
    net = ConvNet.random(seed)
    images = net.images(3, seed)
    trace = net.run(images, seed=seed, bubble=0.3, stall=0.4)
    assert trace.extra == 0 and len(trace.in_cycles) == 3 * 36
    got = BusLayout.of(net.tail.output).unpack(trace.outputs)
    np.testing.assert_array_equal(got, np.stack([net.reference(image) for image in images]))
    assert trace.lasts == [1, 1, 1]


def test_conv_pool_dense_chain_latency_and_interval_at_full_throughput():
    net = ConvNet.random(5)
    chain = net.chain
    images = net.images(4, 5)
    trace = net.run(images)
    got = BusLayout.of(net.tail.output).unpack(trace.outputs)
    np.testing.assert_array_equal(got, np.stack([net.reference(image) for image in images]))
    assert chain.initiation_interval() == 64  # the padded 8 x 8 image
    firsts = trace.in_cycles[::36]
    assert [b - a for a, b in zip(firsts, firsts[1:], strict=False)] == [64] * 3
    lasts = trace.out_cycles
    assert [b - a for a, b in zip(lasts, lasts[1:], strict=False)] == [64] * 3
    assert [out - first for first, out in zip(firsts, lasts, strict=True)] == [
        chain.latency_cycles()
    ] * 4
    stage_latency = sum(s.latency for s in chain.stages if isinstance(s, StreamStage))
    assert chain.latency_cycles() > stage_latency + 36  # the conv's rows, the collector's wait


@pytest.mark.parametrize(
    "geometry",
    [
        WindowGeometry(2, (5, 6), 3, padding=1),
        WindowGeometry(1, (7, 7), 3, stride=2, padding=2, dilation=2),
        WindowGeometry(1, (9,), 2, stride=2, padding=1),
    ],
    ids=str,
)
def test_window_and_collector_chain_timing(geometry):
    """A padded window generator first, a collector after it: measured == computed."""
    generator = WindowGenerator(geometry, [3] * geometry.channels)
    collector = Collector(geometry.out_positions, generator.window_widths)
    chain = StreamChain([generator, collector])
    images = 3
    words = list(range(images * geometry.pixels))
    trace = run_stream(chain, words, images, ports=Ports.axis(chain))
    firsts = trace.in_cycles[:: geometry.pixels]
    assert [b - a for a, b in zip(firsts, firsts[1:], strict=False)] == [
        chain.initiation_interval()
    ] * (images - 1)
    assert chain.initiation_interval() == geometry.padded_pixels
    latencies = [out - first for first, out in zip(firsts, trace.out_cycles, strict=True)]
    assert latencies == [chain.latency_cycles()] * images
    assert trace.lasts == [1] * images


def test_chain_tlast_marks_the_last_window_of_each_image():
    g = WindowGeometry(1, (4, 4), 2, stride=2)
    chain = StreamChain([WindowGenerator(g, [2])])
    trace = run_stream(chain, list(range(32)), 8, ports=Ports.axis(chain), stall=0.3, seed=1)
    assert trace.lasts == [0, 0, 0, 1, 0, 0, 0, 1]
    assert chain.beats_out == 4


def test_chain_validation():
    g = WindowGeometry(1, (4, 4), 2)
    with pytest.raises(ValueError, match="stages must hold at least one stage"):
        StreamChain([])
    with pytest.raises(ValueError, match="stage 0 gives 8-bit beats, stage 1 takes 4-bit beats"):
        StreamChain([WindowGenerator(g, [2]), Collector(9, [4])])
    with pytest.raises(ValueError, match="the collector takes 8 beats, not 9"):
        StreamChain([WindowGenerator(g, [2]), Collector(8, [2] * 4)])
    rng = np.random.default_rng(0)
    fmt = random_format(rng, 2)
    stage = StreamStage(DenseComponent(random_dense(rng, "d", fmt, 2), fmt))
    with pytest.raises(ValueError, match="beats_in must be a positive integer, not None"):
        StreamChain([stage])
    assert StreamChain([stage], beats_in=5).initiation_interval() == 5


def test_chain_converts_to_verilog_with_memory_line_buffers():
    net = ConvNet.random(1)
    text = verilog.convert(net.chain, name="conv_chain")
    assert "module conv_chain(" in text
    for port in ("s_axis_tdata", "s_axis_tready", "m_axis_tlast", "m_axis_tready"):
        assert re.search(rf"\b(input|output)\b[^;]*\b{port}\b", text), port
    # two line buffers of the conv (8 words) and one of the pool (6 words), kept as arrays
    memories = re.findall(r"reg \[\d+:0\] \S+ \[(\d+):0\];", text)
    assert sorted(memories) == ["5", "7", "7"], memories
