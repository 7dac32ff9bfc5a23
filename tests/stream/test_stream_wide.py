"""Several pixels per beat (rtl_gen.stream.wide): the wide window generator's windows under
bubbles and backpressure equal WindowGeometry.windows in the wide row layout; whole networks at
2, 3 and 4 pixels per beat equal the integer reference (check 2) with the timing the design
states; broken wide designs (window columns swapped between the parallel copies) are caught; the
option's refusals are one clear line."""

from __future__ import annotations

import numpy as np
import pytest
from stream_bench import run_stream, select
from stream_nets import conv_net, stream_outputs

from hgq_rtl.ir import reference
from hgq_rtl.ir.random import random_format
from hgq_rtl.ir.reference import random_inputs
from rtl_gen.components import BusLayout
from rtl_gen.emit import RtlOptions, resolve_io
from rtl_gen.stream import WindowGeometry, network
from rtl_gen.stream.network import StreamError, build_stream, stream_problem
from rtl_gen.stream.wide import Replicated, WideWindowGenerator, beat_elements, wide_slots

#: (geometry, pixels per beat): widths that P divides and ones it does not (an inner stage),
#: stride, padding, dilation, 1-D, one-word line buffers, and P = 3 with stride 2 (beats whose
#: windows start at different registers).
CASES = [
    (WindowGeometry(1, (8,), 3), 2),
    (WindowGeometry(2, (12,), 3, padding=1), 4),
    (WindowGeometry(3, (9,), 2, stride=2, padding=1), 2),
    (WindowGeometry(2, (10,), 3, dilation=2, padding=2), 4),
    (WindowGeometry(2, (5, 6), 3, padding=1), 2),
    (WindowGeometry(2, (5, 7), 3, padding=1), 2),
    (WindowGeometry(1, (6, 8), 2, stride=2), 4),
    (WindowGeometry(3, (7, 9), 3, stride=2, padding=2, dilation=2), 3),
    (WindowGeometry(1, (6, 5), (3, 2), stride=(1, 2), padding=(0, 1), dilation=(2, 1)), 2),
    (WindowGeometry(2, (5, 4), (3, 1), padding=(1, 0)), 4),  # one-word line buffers
    (WindowGeometry(2, (6, 6), 2, stride=2, padding=1), 4),
    (WindowGeometry(1, (4, 4), 1), 4),
    # the first step completes three windows over the left padding: beats pushed a step later
    (WindowGeometry(1, (4,), 1, stride=2, padding=1, dilation=2), 2),
    (WindowGeometry(2, (4, 8), 3, stride=3, padding=2), 2),
]


def wide_beats(g: WindowGeometry, image: np.ndarray, p: int, rng) -> np.ndarray:
    """An image's pixels ``(beats, p, C)`` in the wide row layout; slots past a row's end hold
    random values (the generator must ignore them)."""
    h, w = g.in_size_2d
    pixels = image.reshape(g.channels, h, w).transpose(1, 2, 0)  # (h, w, C)
    rows = []
    for y in range(h):
        for beat in wide_slots(w, p):
            rows.append(
                [pixels[y, col] if col >= 0 else rng.integers(0, 2, g.channels) for col in beat]
            )
    return np.array(rows, np.int64)


def wide_window_mismatch(
    g: WindowGeometry, p: int, kind=WideWindowGenerator, seed: int = 0, images: int = 3
) -> str | None:
    """Stream random images through a ``kind`` generator at ``p`` pixels per beat with bubbles
    and backpressure; describe the first difference from ``g.windows`` (None if none)."""
    rng = np.random.default_rng(seed)
    fmt = random_format(rng, g.channels)
    fmt = type(fmt)(np.zeros(g.channels, bool), fmt.width, np.zeros(g.channels, np.int64))
    generator = kind(g, [int(w) for w in fmt.width], p)
    q, (oh, ow) = generator.windows_per_beat, g.out_size_2d
    batch = [
        random_inputs(fmt, g.pixels, rng).T.reshape(g.channels, *g.in_size) for _ in range(images)
    ]
    pixel = BusLayout.of(select(fmt, np.tile(np.arange(g.channels), p)))
    words = []
    for image in batch:
        words += pixel.pack(wide_beats(g, image, p, rng).reshape(-1, p * g.channels))
    beats = oh * len(wide_slots(ow, q))
    trace = run_stream(generator, words, beats * images, seed=seed, bubble=0.3, stall=0.4)
    if len(trace.outputs) != beats * images or trace.extra:
        return f"{len(trace.outputs) + trace.extra} beats, expected {beats * images}"
    if len(trace.in_cycles) != len(words):
        return f"{len(trace.in_cycles)} input beats taken, expected {len(words)}"
    window_fmt = select(fmt, [c for c, _, _ in generator.element_taps()])
    slots = BusLayout.of(window_fmt)
    columns = [col for _ in range(oh) for beat in wide_slots(ow, q) for col in beat]
    rows = [y for y in range(oh) for beat in wide_slots(ow, q) for _ in beat]
    for n, image in enumerate(batch):
        expected = g.windows(image).reshape(oh, ow, -1)
        for b in range(beats):
            word = trace.outputs[n * beats + b]
            for j in range(q):
                col, row = columns[b * q + j], rows[b * q + j]
                if col < 0:
                    continue
                field = (word >> (j * generator.window_bits)) & ((1 << generator.window_bits) - 1)
                got = slots.unpack([field])[0]
                if not np.array_equal(got, expected[row, col]):
                    return (
                        f"image {n} window ({row}, {col}) is {got}, expected {expected[row, col]}"
                    )
    return None


@pytest.mark.parametrize("index", range(len(CASES)))
def test_wide_windows_under_bubbles_and_backpressure(index):
    g, p = CASES[index]
    assert wide_window_mismatch(g, p, seed=index) is None


class SwappedCopies(WideWindowGenerator):
    """A generator giving the first and the last parallel copy each other's window columns."""

    def slot_taps(self, offset):
        taps = super().slot_taps(offset)
        taps[0], taps[-1] = taps[-1], taps[0]
        return taps


class ShiftedColumn(WideWindowGenerator):
    """A generator whose second copy reads its last window column one register too far left."""

    def slot_taps(self, offset):
        taps = super().slot_taps(offset)
        taps[1] = [(c, y, x - 1 if x == max(t[2] for t in taps[1]) else x) for c, y, x in taps[1]]
        return taps


@pytest.mark.parametrize("kind", [SwappedCopies, ShiftedColumn])
def test_window_columns_mixed_between_copies_are_caught(kind):
    g = WindowGeometry(2, (5, 8), 3, padding=1)
    assert wide_window_mismatch(g, 4, seed=3) is None
    assert "window" in wide_window_mismatch(g, 4, kind, seed=3)


def test_shape_and_timing_figures():
    g = WindowGeometry(3, (6, 8), 3, padding=1)
    generator = WideWindowGenerator(g, [2, 0, 5], 4)
    assert len(generator.i.payload) == 4 * 7
    assert generator.windows_per_beat == 4 and generator.groups == 2
    # the row's two input beats, then one step of zero columns for the last window
    assert generator.steps_per_row == 3 and generator.cycles_per_image(12) == 8 * 3
    assert len(generator.o.payload) == 4 * 9 * 7
    assert WideWindowGenerator(WindowGeometry(1, (8,), 2, stride=2), [3], 4).windows_per_beat == 2
    assert WideWindowGenerator(WindowGeometry(1, (8,), 7), [3], 4).windows_per_beat == 2
    with pytest.raises(ValueError, match="takes 12 beats per image, not 48"):
        generator.cycles_per_image(48)
    with pytest.raises(ValueError, match="pixels_per_beat must be an integer >= 2, not 1"):
        WideWindowGenerator(g, [1, 1, 1], 1)
    assert wide_slots(5, 2) == [[0, 1], [2, 3], [4, -1]]
    assert beat_elements(2, (1, 3), 2).tolist() == [[0, 3, 1, 4], [2, 5, -1, -1]]
    assert beat_elements(2, (2, 2), 1).tolist() == [[0, 4], [1, 5], [2, 6], [3, 7]]


def test_replicated_blocks_must_match():
    from rtl_gen.stream.pool import MaxTree

    fmt = random_format(np.random.default_rng(0), 4)
    a, b = MaxTree(2, fmt), MaxTree(4, fmt)
    with pytest.raises(ValueError, match="same port widths and latency"):
        Replicated([a, b])
    with pytest.raises(ValueError, match="at least one block"):
        Replicated([])


# -- whole networks ------------------------------------------------------------------------------

NETWORKS = [
    ({"shape": (2, 8, 8)}, 2),
    ({"shape": (2, 8, 8)}, 4),
    ({"padding": 0, "shape": (2, 8, 8)}, 4),
    ({"stride": 2, "shape": (2, 12, 12)}, 4),
    ({"dilation": 2, "padding": 2, "shape": (2, 8, 8)}, 2),
    ({"groups": 2, "shape": (2, 6, 6)}, 2),
    ({"stride": 2, "shape": (1, 9, 9)}, 3),
    ({"shape": (2, 12)}, 2),
    ({"shape": (2, 12)}, 4),
    ({"stride": 2, "padding": 0, "shape": (1, 16)}, 4),
]


@pytest.mark.parametrize(
    ("geometry", "pixels"),
    NETWORKS,
    ids=[f"{g['shape']}-p{p}-{k}" for k, (g, p) in enumerate(NETWORKS)],
)
def test_wide_network_equals_the_reference(geometry, pixels):
    ir = conv_net(3, **geometry)
    design = build_stream(ir, pixels_per_beat=pixels)
    assert design.input_beats.shape == (ir.input.size // (pixels * geometry["shape"][0]),
                                        pixels * geometry["shape"][0])  # fmt: skip
    x = reference.random_inputs(ir.input, 3, np.random.default_rng(1))
    expected = reference.run(ir, x)
    out, _ = stream_outputs(design, ir, x, seed=pixels)
    assert np.array_equal(out, expected)
    out, trace = stream_outputs(design, ir, x, bubble=0.0, stall=0.0)
    assert np.array_equal(out, expected)
    assert trace.out_cycles[0] - trace.in_cycles[0] == design.latency
    assert np.diff(trace.out_cycles).tolist() == [design.initiation_interval] * 2


def test_a_map_output_carries_empty_slots():
    """A network ending with a map (no dense tail) sends it in the wide row layout."""
    full = conv_net(4, shape=(2, 8, 8))
    ir = type(full)(full.name, None, full.layers[:1], inputs=full.inputs)
    design = build_stream(ir, pixels_per_beat=4)  # 8 wide: 4 per beat; no empty slot
    assert design.output_beats.shape == (16, 16)
    ir5 = conv_net(4, shape=(2, 10, 8), padding=0)
    ir5 = type(ir5)(ir5.name, None, ir5.layers[:2], inputs=ir5.inputs)
    design = build_stream(ir5, pixels_per_beat=4)  # conv 8x6 at 4, pool 4x3 at 2: 2 beats a row
    assert design.output_beats.shape == (8, 2 * 4) and (design.output_beats == -1).sum() == 4 * 4
    x = reference.random_inputs(ir5.input, 3, np.random.default_rng(5))
    out, _ = stream_outputs(design, ir5, x, seed=5)
    assert np.array_equal(out, reference.run(ir5, x))


def test_ii_is_about_the_pixels_over_p():
    """Without padding, H·W/P cycles per image, and one step more per row when a row's last
    beat of windows (14 columns at 4 or 8 a beat) cannot leave before the row's input ends."""
    ir = conv_net(6, padding=0, shape=(2, 8, 16))
    for p, steps in ((1, 16), (2, 8), (4, 5), (8, 3)):
        assert build_stream(ir, pixels_per_beat=p).initiation_interval == 8 * steps


def test_a_swapped_copy_fails_the_network_check(monkeypatch):
    """Columns 0 and 3 of each beat swapped in the convolution (2×2 pooling would hide a swap
    of columns 0 and 1)."""
    ir = conv_net(7, shape=(2, 8, 8))
    x = reference.random_inputs(ir.input, 4, np.random.default_rng(0))
    expected = reference.run(ir, x)
    out, _ = stream_outputs(build_stream(ir, pixels_per_beat=4), ir, x)
    assert np.array_equal(out, expected)
    monkeypatch.setattr(network, "WideWindowGenerator", SwappedCopies)
    out, _ = stream_outputs(build_stream(ir, pixels_per_beat=4), ir, x)
    assert not np.array_equal(out, expected)


def test_pixels_per_beat_refusals_are_one_line():
    ir = conv_net(3, shape=(2, 7, 7))
    message = "pixels_per_beat (--pixels-per-beat) must divide the input's width 7"
    assert message in stream_problem(ir, 2)
    with pytest.raises(StreamError, match=r"must divide the input's width 7 \(a beat"):
        build_stream(ir, pixels_per_beat=2)
    assert stream_problem(ir, 7) is None
    with pytest.raises(ValueError, match="pixels_per_beat must be an integer >= 1, not 0"):
        RtlOptions(pixels_per_beat=0)
    with pytest.raises(ValueError, match="pixels_per_beat must be an integer >= 1, not 2.0"):
        RtlOptions(pixels_per_beat=2.0)
    with pytest.raises(ValueError, match="must divide the input's width 7"):
        resolve_io(ir, RtlOptions(pixels_per_beat=2))  # auto does not fall back to parallel
    with pytest.raises(ValueError, match=r"needs a streamed design.*\(--io parallel\)"):
        resolve_io(ir, RtlOptions(io="parallel", pixels_per_beat=7))
    assert resolve_io(ir, RtlOptions(pixels_per_beat=7)) == ("stream", None)
    assert resolve_io(ir, RtlOptions(io="parallel")) == ("parallel", None)


def test_the_cli_refuses_a_pixel_count_in_one_line(tmp_path, capsys):
    from hgq_rtl.cli import main
    from hgq_rtl.ir import io as ir_io

    ir_io.save(conv_net(3, shape=(2, 7, 7)), tmp_path / "model")
    out = tmp_path / "rtl"
    for option, message in (
        ("2", "pixels_per_beat (--pixels-per-beat) must divide the input's width 7"),
        ("0", "pixels_per_beat must be an integer >= 1, not 0"),
    ):
        argv = ["rtl", str(tmp_path / "model"), "--out", str(out), "-q", "--pixels-per-beat"]
        assert main([*argv, option]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"hgq-rtl: error: {message}") and "\n" not in err
        assert not out.exists()
