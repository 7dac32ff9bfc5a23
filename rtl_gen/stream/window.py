"""The window generator: line buffers and a register window turning a pixel stream into windows.

It knows shapes only (no arithmetic). Every cycle it can move one position of a raster walk over
the *padded* image: at a pixel of the image it consumes one input beat, at a position of the zero
padding it consumes nothing and uses an all-zero pixel. The pixel's column (the new pixel below
the same column of the ``extent_h - 1`` previous rows, read from the line buffers) shifts into the
register window; at the bottom-right corner of an output window (stride respected) the window is
emitted. After the last position of the padded image the walk restarts, so images follow one
another without a gap.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import pairwise

from amaranth.hdl import C, Cat, Module, Mux, Signal, Value, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .geometry import WindowGeometry


def _lookup(mask, index: Value) -> Value:
    """Bit ``index`` of a constant bool vector (element 0 in bit 0)."""
    bits = sum(1 << k for k, bit in enumerate(mask.tolist()) if bit)
    return C(bits, len(mask)).bit_select(index, 1)


def replay_walk(walk: Iterable[tuple[bool, bool]], offers: Sequence[int]) -> list[int]:
    """Cycles at which a window generator's output beats leave, from its walk over one image.

    ``walk`` gives ``(takes an input beat, emits an output beat)`` for every step in order;
    ``offers`` the cycle from which each input beat is offered. A step that takes input waits
    for its beat; a step without input follows the previous one at once (so the steps before the
    first input are walked just in time for it). An output leaves the cycle after its step, as
    the registered output does, when ``o`` is always ready.
    """
    steps = list(walk)
    first = next(k for k, (takes, _) in enumerate(steps) if takes)
    step = offers[0] - first - 1  # the cycle of the step before the walk's first
    taken = 0
    out = []
    for takes, emits in steps:
        step += 1
        if takes:
            step = max(step, offers[taken])
            taken += 1
        if emits:
            out.append(step + 1)
    return out


def check_beats(generator, beats_in: int, how: str = "") -> None:
    """Refuse a number of input beats per image that is not the generator's ``beats_in``;
    ``how`` describes the generator after its input size (e.g. its pixels per beat)."""
    if beats_in != generator.beats_in:
        raise ValueError(
            f"a window generator over {generator.geometry.in_size}{how} takes "
            f"{generator.beats_in} beats per image, not {beats_in}"
        )


class WindowGenerator(wiring.Component):
    """Sliding windows over a stream of pixels.

    Parameters
    ----------
    geometry
        The image and window shapes (:class:`~rtl_gen.stream.geometry.WindowGeometry`).
    element_widths
        Bits of each channel's element (``geometry.channels`` non-negative integers). Fields are
        raw bits: two's complement values stay two's complement, zero padding is all-zero bits.

    Ports
    -----
    i : ``In(stream.Signature(pixel_width))``
        One pixel per beat in raster order: channel ``c`` in bits ``[lsb_c, lsb_c + width_c)``,
        channels packed LSB first. ``geometry.pixels`` beats per image.
    o : ``Out(stream.Signature(window_width))``
        One window per beat in raster order of the output positions, elements in the order of
        :meth:`element_taps` (``(c, ky, kx)`` in C order) packed LSB first, element ``(c, ...)``
        ``element_widths[c]`` bits wide. ``geometry.out_positions`` beats per image.

    Both payloads are at least 1 bit wide (the extra bit is 0 when every element has width 0).

    Timing
    ------
    One padded position per cycle when ``i`` is valid (or the position is padding) and ``o`` can
    take a beat; ``o.valid`` is a register, so a window leaves one cycle after the step at its
    bottom-right corner. ``i.ready`` depends on ``o.ready`` (no skid buffer). At full throughput
    the generator takes :attr:`cycles_per_image` cycles (the padded pixel count) per image.

    Storage: ``extent_h - 1`` line buffers (:class:`amaranth.lib.memory.Memory`, ``PW`` words of
    ``pixel_width`` bits, synchronous transparent read: distributed or block RAM), and
    ``kh * extent_w`` pixel registers for the window rows that are tapped.
    """

    def __init__(self, geometry: WindowGeometry, element_widths: Sequence[int]) -> None:
        if not isinstance(geometry, WindowGeometry):
            raise TypeError(f"geometry must be a WindowGeometry, not {type(geometry).__name__}")
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
        #: Words per line buffer: the padded width.
        self.line_depth = geometry.padded_size_2d[1]
        super().__init__(
            {
                "i": In(stream.Signature(max(self.pixel_width, 1))),
                "o": Out(stream.Signature(max(sum(self.window_widths), 1))),
            }
        )

    @property
    def window_widths(self) -> tuple[int, ...]:
        """Bits of each window element, in output order."""
        return tuple(self.element_widths[c] for c, _, _ in self.element_taps())

    def element_taps(self) -> list[tuple[int, int, int]]:
        """``(channel, row, column)`` of each window element in output order: the row and column
        of the tap within the window's extent (``ky * dilation_h``, ``kx * dilation_w``)."""
        g = self.geometry
        (kh, kw), (dh, dw) = g.kernel_2d, g.dilation_2d
        return [
            (c, ky * dh, kx * dw) for c in range(g.channels) for ky in range(kh) for kx in range(kw)
        ]

    # -- timing (see rtl_gen.stream.top) -------------------------------------------------------
    @property
    def beats_in(self) -> int:
        """Input beats per image: the image's pixels."""
        return self.geometry.pixels

    def cycles_per_image(self, beats_in: int) -> int:
        """Cycles per image at full throughput: one per position of the padded image."""
        self._check_beats(beats_in)
        return self.geometry.padded_pixels

    def schedule(self, offers: Sequence[int]) -> list[int]:
        """Cycles at which one image's windows leave, given the cycles from which its pixels are
        offered, when ``o`` is always ready (the leading padding is walked just in time)."""
        self._check_beats(len(offers))
        g = self.geometry
        walk = zip(g.padded_is_pixel().ravel(), g.window_corners().ravel(), strict=True)
        return replay_walk(walk, offers)

    def _check_beats(self, beats_in: int) -> None:
        check_beats(self, beats_in)

    # -- hardware ------------------------------------------------------------------------------
    def elaborate(self, platform) -> Module:
        m = Module()
        g = self.geometry
        (padded_h, padded_w), (eh, ew) = g.padded_size_2d, g.extent_2d
        width = max(self.pixel_width, 1)

        row = Signal(range(padded_h), name="row")
        col = Signal(range(padded_w), name="col")
        last_col = col == padded_w - 1
        next_col = Mux(last_col, 0, col + 1)
        # Padding and window corners are rectangles of rows times columns: two small masks each.
        pixel_mask, corner_mask = g.padded_is_pixel(), g.window_corners()
        is_pixel = _lookup(pixel_mask.any(axis=1), row) & _lookup(pixel_mask.any(axis=0), col)
        is_corner = _lookup(corner_mask.any(axis=1), row) & _lookup(corner_mask.any(axis=0), col)

        # A step moves the walk one position; it needs a pixel (or padding) and room at o.
        can_step = ~self.o.valid | self.o.ready
        step = Signal(name="step")
        m.d.comb += [
            self.i.ready.eq(can_step & is_pixel),
            step.eq(can_step & (self.i.valid | ~is_pixel)),
        ]
        pixel = Signal(width, name="pixel")
        m.d.comb += pixel.eq(Mux(is_pixel, self.i.payload, 0))

        with m.If(step):
            m.d.sync += col.eq(next_col)
            with m.If(last_col):
                m.d.sync += row.eq(Mux(row == padded_h - 1, 0, row + 1))

        # column[j]: the pixel j rows above the current one, in the current column.
        column = [pixel]
        for k in range(eh - 1):
            line = Memory(shape=unsigned(width), depth=self.line_depth, init=[])
            m.submodules[f"line_{k}"] = line
            write = line.write_port()
            read = line.read_port(transparent_for=(write,))
            m.d.comb += [
                read.addr.eq(Mux(step, next_col, col)),  # the column of the next cycle
                write.addr.eq(col),
                write.data.eq(column[-1]),
                write.en.eq(step),
            ]
            column.append(read.data)

        # The register window: only rows holding taps; window[y][x], x = ew - 1 is the newest.
        window = {}
        for y in sorted({tap_row for _, tap_row, _ in self.element_taps()}):
            regs = [Signal(width, name=f"win_r{y}_c{x}", reset_less=True) for x in range(ew)]
            with m.If(step):
                m.d.sync += [a.eq(b) for a, b in pairwise(regs)]
                m.d.sync += regs[-1].eq(column[eh - 1 - y])
            window[y] = regs

        with m.If(step):
            m.d.sync += self.o.valid.eq(is_corner)
        with m.Elif(self.o.ready):
            m.d.sync += self.o.valid.eq(0)

        lsb = [sum(self.element_widths[:c]) for c in range(g.channels)]
        fields = [
            window[y][x][lsb[c] : lsb[c] + self.element_widths[c]]
            for c, y, x in self.element_taps()
            if self.element_widths[c]
        ]
        m.d.comb += self.o.payload.eq(Cat(*fields))
        return m
