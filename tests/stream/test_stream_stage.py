"""StreamStage, MaxTree and Collector in simulation against the integer reference and numpy."""

from __future__ import annotations

import numpy as np
import pytest
from stream_bench import run_stream, select

from hgq_rtl.ir.fixed import Overflow
from hgq_rtl.ir.formats import TensorFormat
from hgq_rtl.ir.random import random_dense, random_format
from hgq_rtl.ir.reference import random_inputs, run_layer
from rtl_gen.components import BusLayout, DenseComponent
from rtl_gen.stream import Collector, MaxTree, StreamStage, beat_order


def through_stage(block, fmt: TensorFormat, x: np.ndarray, out_format, seed: int, **bench):
    stage = StreamStage(block)
    trace = run_stream(stage, BusLayout.of(fmt).pack(x), len(x), seed=seed, **bench)
    assert trace.extra == 0 and len(trace.in_cycles) == len(x)
    return BusLayout.of(out_format).unpack(trace.outputs), trace


@pytest.mark.parametrize("seed", range(3))
def test_dense_stage_under_bubbles_and_backpressure(seed):
    rng = np.random.default_rng(seed)
    fmt = random_format(rng, 9)
    layer = random_dense(rng, "dense_0", fmt, 4)
    x = random_inputs(fmt, 60, rng)
    block = DenseComponent(layer, fmt, adder_levels_per_stage=1)
    assert block.latency >= 2  # a real pipeline, so stalls hit data in flight
    got, _ = through_stage(block, fmt, x, layer.output, seed, bubble=0.3, stall=0.4)
    np.testing.assert_array_equal(got, run_layer(layer, fmt, x))


def test_dense_stage_full_throughput_and_latency():
    rng = np.random.default_rng(7)
    fmt = random_format(rng, 6)
    layer = random_dense(rng, "dense_0", fmt, 3)
    x = random_inputs(fmt, 20, rng)
    block = DenseComponent(layer, fmt, adder_levels_per_stage=1)
    got, trace = through_stage(block, fmt, x, layer.output, 0)
    np.testing.assert_array_equal(got, run_layer(layer, fmt, x))
    assert trace.in_cycles == list(range(20))
    assert trace.out_cycles == [c + block.latency for c in range(20)]
    stage = StreamStage(block)
    assert stage.schedule([0, 0, 5]) == [block.latency, 1 + block.latency, 5 + block.latency]


def test_a_stage_with_a_short_valid_line_is_caught():
    """A block claiming one cycle less than it takes: the same check sees wrong vectors."""
    rng = np.random.default_rng(3)
    fmt = random_format(rng, 6)
    layer = random_dense(rng, "dense_0", fmt, 3)
    x = random_inputs(fmt, 30, rng)
    block = DenseComponent(layer, fmt, adder_levels_per_stage=1)
    block.latency -= 1
    got, _ = through_stage(block, fmt, x, layer.output, 3, bubble=0.3, stall=0.4)
    assert not np.array_equal(got, run_layer(layer, fmt, x))


def test_stage_refuses_a_block_without_latency_or_ports():
    rng = np.random.default_rng(0)
    fmt = random_format(rng, 3)
    block = DenseComponent(random_dense(rng, "d", fmt, 2), fmt)
    block.latency = 0
    with pytest.raises(ValueError, match="block.latency must be a positive integer, not 0"):
        StreamStage(block)
    with pytest.raises(ValueError, match="block.latency must be a positive integer, not None"):
        StreamStage(object())

    class Portless:
        latency = 1

    with pytest.raises(ValueError, match="block must have ports x and y; Portless lacks x"):
        StreamStage(Portless())


def numpy_max(fmt: TensorFormat, out: TensorFormat, group: int, x: np.ndarray) -> np.ndarray:
    """Each group's maximum, every input aligned to the output's step by a left shift."""
    live = fmt.width > 0
    shifts = np.repeat(out.frac_bits, group) - fmt.frac_bits
    aligned = np.where(live, x << np.where(live, shifts, 0), 0)
    return aligned.reshape(len(x), -1, group).max(axis=2)


@pytest.mark.parametrize(("group", "levels"), [(1, 1), (2, 1), (4, 1), (9, 2), (5, 3)])
def test_max_tree_against_numpy(group, levels):
    rng = np.random.default_rng(group)
    fmt = random_format(rng, 3 * group)
    tree = MaxTree(group, fmt, levels_per_stage=levels)
    x = random_inputs(fmt, 50, rng)
    expected = numpy_max(fmt, tree.layer.output, group, x)
    np.testing.assert_array_equal(expected, run_layer(tree.layer, fmt, x))
    got, _ = through_stage(tree, fmt, x, tree.layer.output, group, bubble=0.2, stall=0.3)
    np.testing.assert_array_equal(got, expected)
    got, trace = through_stage(tree, fmt, x, tree.layer.output, group)
    np.testing.assert_array_equal(got, expected)
    assert trace.out_cycles == [c + tree.latency for c in trace.in_cycles]
    assert tree.latency == (max(tree.depth, 1) - 1) // levels + 1


def test_max_tree_with_a_wider_output_format():
    fmt = TensorFormat([True, False, True, True], [2, 3, 1, 0], [1, 0, 2, 3])
    out = TensorFormat([True, True], [4, 2], [3, 4])
    tree = MaxTree(2, fmt, out)
    x = random_inputs(fmt, 40, np.random.default_rng(1))
    got, _ = through_stage(tree, fmt, x, out, 1, bubble=0.2, stall=0.2)
    np.testing.assert_array_equal(got, numpy_max(fmt, out, 2, x))


def test_max_tree_validation():
    fmt = TensorFormat([True] * 4, [2] * 4, [2] * 4)
    with pytest.raises(ValueError, match="group_size must be a positive integer"):
        MaxTree(0, fmt)
    with pytest.raises(ValueError, match="must be a multiple of group_size 3"):
        MaxTree(3, fmt)
    with pytest.raises(ValueError, match="levels_per_stage must be a positive integer"):
        MaxTree(2, fmt, levels_per_stage=0)
    with pytest.raises(ValueError, match="it would have to round"):
        MaxTree(2, fmt, TensorFormat([True] * 2, [3] * 2, [1] * 2))


def test_collector_against_numpy():
    rng = np.random.default_rng(4)
    fmt = random_format(rng, 3)
    n_beats, images = 5, 4
    collector = Collector(n_beats, [int(w) for w in fmt.width])
    beats = random_inputs(fmt, n_beats * images, rng)
    trace = run_stream(collector, BusLayout.of(fmt).pack(beats), images, bubble=0.3, stall=0.5)
    assert trace.extra == 0
    out_format = select(fmt, np.tile(np.arange(3), n_beats))
    assert collector.element_widths == tuple(int(w) for w in out_format.width)
    got = BusLayout.of(out_format).unpack(trace.outputs)
    np.testing.assert_array_equal(got, beats.reshape(images, n_beats * 3))


def test_collector_full_throughput_has_no_gap():
    collector = Collector(3, [4])
    trace = run_stream(collector, list(range(12)), 4)
    assert trace.in_cycles == list(range(12))
    assert trace.out_cycles == [3, 6, 9, 12]
    assert trace.outputs[0] == 0 | 1 << 4 | 2 << 8
    assert collector.schedule([0, 1, 2]) == [3]


def test_beat_order_maps_the_collected_vector_to_the_torch_flatten():
    channels, size = 3, (2, 4)
    feature_map = np.arange(24).reshape(channels, *size)  # (C, H, W)
    collected = feature_map.reshape(channels, -1).T.reshape(-1)  # beats (H, W), C per beat
    order = beat_order(channels, size)
    np.testing.assert_array_equal(collected, feature_map.reshape(-1)[order])
    weight = np.arange(2 * 24).reshape(2, 24)  # a dense layer after torch's flatten
    np.testing.assert_array_equal(weight[:, order] @ collected, weight @ feature_map.reshape(-1))


def test_collector_validation():
    with pytest.raises(ValueError, match="n_beats must be a positive integer"):
        Collector(0, [1])
    with pytest.raises(ValueError, match="beat_widths must be non-negative integers"):
        Collector(2, [1, -2])
    with pytest.raises(ValueError, match="the collector takes 2 beats, not 3"):
        Collector(2, [1]).schedule([0, 1, 2])
    with pytest.raises(ValueError, match="channels and spatial_size must be positive"):
        beat_order(0, (2, 2))


def test_dense_stage_overflow_modes_pass_through():
    """A saturating ReLU layer: the stage only moves data, the requantizer is the block's."""
    rng = np.random.default_rng(11)
    fmt = random_format(rng, 5)
    layer = random_dense(rng, "dense_0", fmt, 3, overflow=Overflow.SAT)
    x = random_inputs(fmt, 30, rng)
    got, _ = through_stage(DenseComponent(layer, fmt), fmt, x, layer.output, 2, stall=0.5)
    np.testing.assert_array_equal(got, run_layer(layer, fmt, x))
