"""Hypothesis fuzz of convolutional networks in both I/O modes: drawn conv shapes (1-D and 2-D,
kernel, stride, zero padding, dilation, groups, channels) with max pooling and a dense tail, and
the stream's pixels per beat (1 to 4, a divisor of the width); check 2 — the streamed design
under random bubbles and backpressure, and the fully unrolled design — equals the integer
reference exactly."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from stream_nets import conv_net, stream_outputs

from hgq_rtl.ir import reference
from rtl_gen.emit import RtlOptions, build, resolve_io
from rtl_gen.simulate import simulate
from rtl_gen.stream.network import build_stream

#: Networks per CI run (each simulated twice: as a stream and fully unrolled).
NETWORKS = 50


@st.composite
def conv_shapes(draw) -> dict:
    """The conv_net options of one network and the stream's pixels per beat (``"pixels"``):
    geometry drawn, then kept only when the convolution leaves at least 2×2 (or 2) positions for
    the pooling."""
    dims = draw(st.sampled_from((1, 2)))
    kernel = draw(st.integers(1, 3))
    dilation = draw(st.integers(1, 2))
    padding = draw(st.integers(0, kernel // 2 + dilation - 1))
    stride = draw(st.integers(1, 2))
    groups = draw(st.sampled_from((1, 2)))
    channels = groups * draw(st.integers(1, 2))
    size = draw(st.integers(4, 8 if dims == 2 else 12))
    extent = dilation * (kernel - 1) + 1
    assume(size + 2 * padding >= extent)
    assume((size + 2 * padding - extent) // stride + 1 >= 2)
    pixels = draw(st.sampled_from([p for p in (1, 2, 3, 4) if size % p == 0]))
    return {
        "pixels": pixels,
        "shape": (channels, *(size,) * dims),
        "kernel_size": kernel,
        "padding": padding,
        "stride": stride,
        "dilation": dilation,
        "groups": groups,
        "filters": groups * draw(st.integers(1, 2)),
    }


@settings(
    max_examples=NETWORKS,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(shape=conv_shapes(), seed=st.integers(0, 2**16))
def test_fuzzed_cnn_in_both_modes_matches_the_reference(shape: dict, seed: int) -> None:
    shape = dict(shape)
    pixels = shape.pop("pixels")
    ir = conv_net(seed, **shape)
    assert resolve_io(ir, RtlOptions())[0] == "stream"  # the default for such a network
    x = reference.random_inputs(ir.input, 3, np.random.default_rng(seed))
    expected = reference.run(ir, x)
    design = build_stream(ir, pixels_per_beat=pixels)
    streamed, _ = stream_outputs(design, ir, x, seed=seed, bubble=0.3, stall=0.3)
    assert np.array_equal(streamed, expected)
    unrolled = simulate(build(ir, RtlOptions(io="parallel")), x)
    assert np.array_equal(unrolled, expected)
