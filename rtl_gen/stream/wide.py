"""Several pixels per beat: a window generator that takes ``P`` pixels of a row per beat and
gives up to ``Q`` windows per beat, and a block of ``Q`` copies of one compute block.

The *wide row layout* of a ``(C, H, W)`` map at ``P`` pixels per beat (shared by the reference,
the hardware and the manifest): each row is ``ceil(W / P)`` beats, slot ``j`` of the row's beat
``g`` carries column ``g * P + j`` (all ``C`` channels, pixel ``j`` in bits
``[j * pixel_width, (j + 1) * pixel_width)``), and the slots past the row's end
(``g * P + j >= W``) carry no pixel: their bits are ignored. A row never shares a beat with the
next one. At ``P = 1`` this is the one-pixel-per-beat raster order of
:class:`~rtl_gen.stream.window.WindowGenerator`.

:class:`WideWindowGenerator` walks every padded row of the image in ``steps_per_row`` steps of
``P`` columns (the row's ``ceil(W / P)`` input beats, then steps shifting in zero columns until
the row's last window is complete; the left zero padding needs no step: a row starts from a
cleared register window). Its output is the row layout above at ``Q = min(ceil(P / stride_w),
out_w)`` windows per beat, so a stage after it runs at ``Q`` pixels per beat: stride reduces the
rate, the handshake absorbs the rest (rows the vertical stride skips, zero-column steps).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from amaranth.hdl import C, Cat, Module, Mux, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .geometry import WindowGeometry
from .window import WindowGenerator, _lookup, check_beats, replay_walk

__all__ = [
    "Replicated",
    "WideWindowGenerator",
    "beat_elements",
    "row_beats",
    "wide_slots",
    "windows_per_beat",
]


def row_beats(width: int, pixels_per_beat: int) -> int:
    """Beats per row of ``width`` pixels at ``pixels_per_beat`` pixels per beat."""
    return -(-width // pixels_per_beat)


def wide_slots(width: int, pixels_per_beat: int) -> list[list[int]]:
    """Per beat of a row, the column each slot carries (``-1``: no pixel)."""
    p = pixels_per_beat
    return [
        [g * p + j if g * p + j < width else -1 for j in range(p)]
        for g in range(row_beats(width, p))
    ]


def windows_per_beat(geometry: WindowGeometry, pixels_per_beat: int) -> int:
    """Windows per output beat of a window generator at ``pixels_per_beat`` input pixels per
    beat: ``min(ceil(P / stride_w), out_w)`` (1 at ``P = 1``), the most windows a step of ``P``
    columns can complete."""
    stride, out_w = geometry.stride_2d[1], geometry.out_size_2d[1]
    return min(-(-pixels_per_beat // stride), out_w)


def beat_elements(channels: int, spatial: Sequence[int], pixels_per_beat: int) -> np.ndarray:
    """Per beat of a ``(channels, *spatial)`` map in the wide row layout, the flat index
    (torch's C order) of the element each slot ``j * channels + c`` carries, or -1:
    ``(beats per image, pixels_per_beat * channels)``. At 1 pixel per beat, row ``k`` is pixel
    ``k``'s channels."""
    width = spatial[-1]
    positions = int(np.prod(spatial))
    rows = []
    for y in range(positions // width):
        for beat in wide_slots(width, pixels_per_beat):
            rows.append(
                [
                    c * positions + y * width + col if col >= 0 else -1
                    for col in beat
                    for c in range(channels)
                ]
            )
    return np.array(rows, np.int64)


class WideWindowGenerator(wiring.Component):
    """Sliding windows over a stream of ``P`` pixels per beat, ``Q`` windows per output beat.

    Parameters
    ----------
    geometry
        The image and window shapes.
    element_widths
        Bits of each channel's element (as :class:`~rtl_gen.stream.window.WindowGenerator`).
    pixels_per_beat
        ``P`` >= 2: pixels per input beat in the wide row layout (see the module's notes).

    Ports
    -----
    i : ``In(stream.Signature(P * pixel_width))``
        ``ceil(W / P)`` beats per row, ``H`` rows per image; slot ``j`` in bits
        ``[j * pixel_width, (j + 1) * pixel_width)``.
    o : ``Out(stream.Signature(Q * window_bits))``, ``window_bits = max(window width, 1)``
        The windows in the wide row layout of the output map at :attr:`windows_per_beat` per
        beat: window of slot ``j`` in bits ``[j * window_bits, (j + 1) * window_bits)``, its
        elements in ``(c, ky, kx)`` order as a one-pixel generator packs them. Slots past the
        row's end carry don't-care bits.

    Timing
    ------
    One step per cycle when ``i`` is valid (or the step takes no input) and ``o`` can take a
    beat; ``o.valid`` is a register. :attr:`steps_per_row` steps per padded row, so
    ``padded_h * steps_per_row`` cycles per image at full throughput.

    Storage: ``extent_h - 1`` line buffers of ``ceil(W / P)`` words of ``P`` pixels, and
    :attr:`register_columns` pixel registers per tapped window row.
    """

    def __init__(
        self, geometry: WindowGeometry, element_widths: Sequence[int], pixels_per_beat: int
    ) -> None:
        if not isinstance(geometry, WindowGeometry):
            raise TypeError(f"geometry must be a WindowGeometry, not {type(geometry).__name__}")
        if type(pixels_per_beat) is not int or pixels_per_beat < 2:
            raise ValueError(f"pixels_per_beat must be an integer >= 2, not {pixels_per_beat!r}")
        widths = tuple(element_widths)
        if len(widths) != geometry.channels or not all(
            isinstance(w, int) and not isinstance(w, bool) and w >= 0 for w in widths
        ):
            raise ValueError(
                f"element_widths must be {geometry.channels} non-negative integers, not {widths!r}"
            )
        self.geometry = geometry
        self.element_widths = widths
        self.pixel_width = sum(widths)
        self.pixels_per_beat = p = pixels_per_beat
        width = geometry.in_size_2d[1]
        (_, pw), (_, ew), (_, sw) = geometry.padding_2d, geometry.extent_2d, geometry.stride_2d
        out_w = geometry.out_size_2d[1]
        #: Windows per output beat.
        self.windows_per_beat = q = windows_per_beat(geometry, p)
        #: Input beats per row.
        self.groups = row_beats(width, p)
        # Beat k of an output row holds output columns kQ .. kQ+Q-1; it leaves after the first
        # step whose last column e_s = (s + 1) * P + pw - 1 completes its last window, and after
        # the step of beat k - 1 (one beat per step: the first step also completes the windows
        # over the left padding, which may be more than Q).
        self.out_beats_per_row = row_beats(out_w, q)
        emit_steps: list[int] = []
        for k in range(self.out_beats_per_row):
            end = (k * q + q - 1) * sw + ew - 1
            earliest = max(0, -(-(end - pw + 1) // p) - 1)
            emit_steps.append(max(earliest, emit_steps[-1] + 1) if emit_steps else earliest)
        #: Steps per padded row: the input beats, then zero columns up to the last window.
        self.steps_per_row = max(self.groups, emit_steps[-1] + 1)
        last = [(s + 1) * p + pw - 1 for s in emit_steps]
        starts = [k * q * sw for k in range(self.out_beats_per_row)]
        #: Pixel registers per tapped row: column ``e_s - R + 1 + i`` in register ``i``.
        self.register_columns = r = max(p, *(e - a + 1 for e, a in zip(last, starts, strict=True)))
        #: Per step, the register index of the first window's first column (None: no beat).
        self.emit_offsets: list[int | None] = [None] * self.steps_per_row
        for s, e, a in zip(emit_steps, last, starts, strict=True):
            self.emit_offsets[s] = a - (e - r + 1)
        self.window_bits = max(sum(self.window_widths), 1)
        super().__init__(
            {
                "i": In(stream.Signature(max(p * self.pixel_width, 1))),
                "o": Out(stream.Signature(q * self.window_bits)),
            }
        )

    # The window's elements and widths: as the one-pixel generator (they need geometry and
    # element_widths only).
    window_widths = WindowGenerator.window_widths
    element_taps = WindowGenerator.element_taps

    def slot_taps(self, offset: int) -> list[list[tuple[int, int, int]]]:
        """Per output slot, ``(channel, row, register)`` of each window element when the beat's
        first window starts at register ``offset``."""
        sw = self.geometry.stride_2d[1]
        return [
            [(c, y, offset + j * sw + x) for c, y, x in self.element_taps()]
            for j in range(self.windows_per_beat)
        ]

    # -- timing --------------------------------------------------------------------------------
    @property
    def beats_in(self) -> int:
        """Input beats per image."""
        return self.geometry.in_size_2d[0] * self.groups

    def cycles_per_image(self, beats_in: int) -> int:
        """Cycles per image at full throughput: ``padded_h * steps_per_row``."""
        self._check_beats(beats_in)
        return self.geometry.padded_size_2d[0] * self.steps_per_row

    def _walk(self):
        """``(takes input, emits a beat)`` of every step of one image's walk, in order."""
        g = self.geometry
        pixel_rows = g.padded_is_pixel().any(axis=1)
        emit_rows = g.window_corners().any(axis=1)
        for row in range(g.padded_size_2d[0]):
            for s in range(self.steps_per_row):
                yield (
                    bool(pixel_rows[row]) and s < self.groups,
                    bool(emit_rows[row]) and self.emit_offsets[s] is not None,
                )

    def schedule(self, offers: Sequence[int]) -> list[int]:
        """Cycles at which one image's output beats leave, given the cycles from which its
        input beats are offered, when ``o`` is always ready (steps without input are taken
        just in time)."""
        self._check_beats(len(offers))
        return replay_walk(self._walk(), offers)

    def _check_beats(self, beats_in: int) -> None:
        check_beats(self, beats_in, f" at {self.pixels_per_beat} pixels per beat")

    # -- hardware ------------------------------------------------------------------------------
    def elaborate(self, platform) -> Module:
        m = Module()
        g = self.geometry
        p, r, steps, groups = (
            self.pixels_per_beat,
            self.register_columns,
            self.steps_per_row,
            self.groups,
        )
        padded_h, eh = g.padded_size_2d[0], g.extent_2d[0]
        pw = g.padding_2d[1]
        width = max(self.pixel_width, 1)
        word = p * width

        row = Signal(range(padded_h), name="row")
        s = Signal(range(steps), name="step_in_row")
        last_step = s == steps - 1
        next_s = Mux(last_step, 0, s + 1)
        is_pixel_row = _lookup(g.padded_is_pixel().any(axis=1), row)
        is_emit_row = _lookup(g.window_corners().any(axis=1), row)
        is_group = s < groups
        emit_mask = [offset is not None for offset in self.emit_offsets]
        is_emit_step = _lookup(np.array(emit_mask), s)

        can_step = ~self.o.valid | self.o.ready
        takes = is_pixel_row & is_group
        step = Signal(name="step")
        m.d.comb += [
            self.i.ready.eq(can_step & takes),
            step.eq(can_step & (self.i.valid | ~takes)),
        ]
        with m.If(step):
            m.d.sync += s.eq(next_s)
            with m.If(last_step):
                m.d.sync += row.eq(Mux(row == padded_h - 1, 0, row + 1))

        # The new columns: the beat's pixels (slots past the row's end cleared), else zeros.
        columns = self.geometry.in_size_2d[1]
        keep = [(groups - 1) * p + j < columns for j in range(p)]
        payload = self.i.payload
        if not all(keep):
            mask = C(sum(((1 << width) - 1) << (j * width) for j in range(p) if keep[j]), word)
            payload = Mux(s == groups - 1, payload & mask, payload)
        group = Signal(word, name="group")
        m.d.comb += group.eq(Mux(takes, payload, 0))

        # column[k]: the group of columns k rows above the current one.
        column = [group]
        here = Mux(is_group, s, 0)  # the line buffers' word of this step, of the next one
        ahead = Mux(next_s < groups, next_s, 0)
        for k in range(eh - 1):
            line = Memory(shape=unsigned(word), depth=groups, init=[])
            m.submodules[f"line_{k}"] = line
            write = line.write_port()
            read = line.read_port(transparent_for=(write,))
            m.d.comb += [
                read.addr.eq(Mux(step, ahead, here)),
                write.addr.eq(here),
                write.data.eq(column[-1]),
                write.en.eq(step & is_group),
            ]
            column.append(read.data)

        # Register windows of the tapped rows: r columns, the newest p on the right.
        window = {}
        for y in sorted({tap_row for _, tap_row, _ in self.element_taps()}):
            regs = [Signal(width, name=f"win_r{y}_c{x}", reset_less=True) for x in range(r)]
            source = Mux(is_group, column[eh - 1 - y], 0)
            with m.If(step):
                for x in range(r - p):
                    older = regs[x + p]
                    m.d.sync += regs[x].eq(Mux(s == 0, 0, older) if pw else older)
                for j in range(p):
                    m.d.sync += regs[r - p + j].eq(source[j * width : (j + 1) * width])
            window[y] = regs

        offsets = sorted({o for o in self.emit_offsets if o is not None})
        which = Signal(range(len(offsets)), name="emit_variant")
        with m.If(step):
            m.d.sync += self.o.valid.eq(is_emit_row & is_emit_step)
            if len(offsets) > 1:
                with m.Switch(s):
                    for k, offset in enumerate(self.emit_offsets):
                        if offset is not None:
                            with m.Case(k):
                                m.d.sync += which.eq(offsets.index(offset))
        with m.Elif(self.o.ready):
            m.d.sync += self.o.valid.eq(0)

        lsb = [sum(self.element_widths[:c]) for c in range(g.channels)]
        variants = []
        for offset in offsets:
            slots = []
            for taps in self.slot_taps(offset):
                fields = [
                    window[y][x][lsb[c] : lsb[c] + self.element_widths[c]]
                    for c, y, x in taps
                    if self.element_widths[c]
                ]
                # each slot zero-extended to window_bits (only a zero-width window differs)
                slots.append(Cat(*fields) if fields else C(0, self.window_bits))
            variants.append(Cat(*slots))
        if len(variants) == 1:
            m.d.comb += self.o.payload.eq(variants[0])
        else:
            with m.Switch(which):
                for k, variant in enumerate(variants):
                    with m.Case(k):
                        m.d.comb += self.o.payload.eq(variant)
        return m


class Replicated(wiring.Component):
    """``copies`` copies of a fixed-latency block side by side (``x`` and ``y`` concatenated).

    Parameters
    ----------
    blocks
        Equal blocks (the same ports widths and ``latency``), each with ports ``x``, ``y`` and an
        integer ``latency``, as :class:`~rtl_gen.stream.stage.StreamStage` takes.

    Ports
    -----
    x : ``In(copies * len(block.x))``
        Copy ``j``'s input in bits ``[j * len(block.x), (j + 1) * len(block.x))``.
    y : ``Out(copies * len(block.y))``
        Copy ``j``'s output likewise.
    """

    def __init__(self, blocks: Sequence[wiring.Component]) -> None:
        self.blocks = list(blocks)
        if not self.blocks:
            raise ValueError("blocks must hold at least one block")
        first = self.blocks[0]
        for block in self.blocks:
            if (len(block.x), len(block.y), block.latency) != (
                len(first.x),
                len(first.y),
                first.latency,
            ):
                raise ValueError("blocks must have the same port widths and latency")
        self.latency = first.latency
        self.in_bits, self.out_bits = len(first.x), len(first.y)
        n = len(self.blocks)
        super().__init__({"x": In(n * self.in_bits), "y": Out(n * self.out_bits)})

    def elaborate(self, platform) -> Module:
        m = Module()
        for j, block in enumerate(self.blocks):
            m.submodules[f"copy_{j}"] = block
            m.d.comb += block.x.eq(self.x[j * self.in_bits : (j + 1) * self.in_bits])
        m.d.comb += self.y.eq(Cat(*(block.y for block in self.blocks)))
        return m
