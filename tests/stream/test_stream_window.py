"""WindowGenerator in simulation: every window of several images, under random input bubbles and
output backpressure, equals WindowGeometry.windows; broken generators fail the same check."""

from __future__ import annotations

import numpy as np
import pytest
from stream_bench import run_stream, select

import rtl_gen.stream.window as window_module
from hgq_rtl.ir.random import random_format
from hgq_rtl.ir.reference import random_inputs
from rtl_gen.components import BusLayout
from rtl_gen.stream import WindowGenerator, WindowGeometry

GEOMETRIES = [
    WindowGeometry(1, (7,), 3),
    WindowGeometry(3, (9,), 2, stride=2, padding=1),
    WindowGeometry(2, (8,), 3, dilation=2, padding=2),
    WindowGeometry(2, (4, 5), 1),
    WindowGeometry(2, (5, 6), 3, padding=1),
    WindowGeometry(1, (6, 7), 2, stride=2),
    WindowGeometry(3, (7, 7), 3, stride=2, padding=2, dilation=2),
    WindowGeometry(1, (6, 5), (3, 2), stride=(1, 2), padding=(0, 1), dilation=(2, 1)),
    WindowGeometry(2, (5, 1), (3, 1), padding=(1, 0)),  # one-word line buffers
    WindowGeometry(3, (4, 4), 2, padding=1, stride=2),
]


def window_mismatch(
    g: WindowGeometry, generator: WindowGenerator, seed: int, images: int = 3
) -> str | None:
    """Stream ``images`` random images through ``generator`` with bubbles and backpressure;
    describe the first difference from ``g.windows`` (or a wrong count), None if none."""
    rng = np.random.default_rng(seed)
    fmt = random_format(rng, g.channels)
    if generator.element_widths != tuple(int(w) for w in fmt.width):
        generator = type(generator)(g, [int(w) for w in fmt.width])
    batch = [
        random_inputs(fmt, g.pixels, rng).T.reshape(g.channels, *g.in_size) for _ in range(images)
    ]
    words = [w for image in batch for w in BusLayout.of(fmt).pack(g.beats(image))]
    expected = np.concatenate([g.windows(image) for image in batch])
    trace = run_stream(generator, words, len(expected), seed=seed, bubble=0.3, stall=0.4)
    window_format = select(fmt, [c for c, _, _ in generator.element_taps()])
    got = BusLayout.of(window_format).unpack(trace.outputs)
    if len(got) != len(expected) or trace.extra:
        return f"{len(got) + trace.extra} windows, expected {len(expected)}"
    bad = np.argwhere(got != expected)
    if bad.size:
        n, k = bad[0]
        return f"window {n} element {k} is {got[n, k]}, expected {expected[n, k]}"
    if len(trace.in_cycles) != len(words):
        return f"{len(trace.in_cycles)} input beats taken, expected {len(words)}"
    return None


@pytest.mark.parametrize("index", range(len(GEOMETRIES)))
def test_windows_under_bubbles_and_backpressure(index):
    g = GEOMETRIES[index]
    generator = WindowGenerator(g, [1] * g.channels)
    assert window_mismatch(g, generator, seed=index) is None


class SwappedTaps(WindowGenerator):
    """A generator emitting window elements 0 and 1 in each other's place."""

    def element_taps(self):
        taps = super().element_taps()
        taps[0], taps[1] = taps[1], taps[0]
        return taps


def test_swapped_elements_are_caught():
    g = WindowGeometry(2, (5, 6), 3, padding=1)
    assert window_mismatch(g, WindowGenerator(g, [1, 1]), seed=3) is None
    assert "window" in window_mismatch(g, SwappedTaps(g, [1, 1]), seed=3)


def test_line_buffers_without_read_transparency_are_caught(monkeypatch):
    """One-word line buffers are written and read at the same address in the same step; a read
    port that is not transparent to the write gives the row before the previous one."""

    class OpaqueMemory(window_module.Memory):
        def read_port(self, **options):
            options.pop("transparent_for", None)
            return super().read_port(**options)

    g = GEOMETRIES[8]
    monkeypatch.setattr(window_module, "Memory", OpaqueMemory)
    assert "window" in window_mismatch(g, WindowGenerator(g, [1, 1]), seed=8)


def test_widths_and_ports():
    g = WindowGeometry(3, (4, 4), 2)
    generator = WindowGenerator(g, [2, 0, 5])
    assert len(generator.i.payload) == 7
    assert generator.window_widths == (2, 2, 2, 2, 0, 0, 0, 0, 5, 5, 5, 5)
    assert len(generator.o.payload) == 28
    assert generator.element_taps()[:5] == [(0, 0, 0), (0, 0, 1), (0, 1, 0), (0, 1, 1), (1, 0, 0)]
    assert generator.cycles_per_image(16) == 16
    with pytest.raises(ValueError, match="takes 16 beats per image, not 15"):
        generator.cycles_per_image(15)


@pytest.mark.parametrize(
    ("widths", "error", "message"),
    [
        ([1, 2], ValueError, "element_widths must be 3 non-negative integers"),
        ([1, -1, 2], ValueError, "element_widths must be 3 non-negative integers"),
        ([1, 1.0, 2], ValueError, "element_widths must be 3 non-negative integers"),
    ],
)
def test_validation(widths, error, message):
    with pytest.raises(error, match=message):
        WindowGenerator(WindowGeometry(3, (4, 4), 2), widths)
    with pytest.raises(TypeError, match="geometry must be a WindowGeometry, not tuple"):
        WindowGenerator((3, (4, 4), 2), [1, 1, 1])
