"""The collector: gathers a feature map, streamed one pixel per beat, into one vector.

``n_beats`` beats of a stream become one beat holding all of them, the first beat in the lowest
bits. For a ``(C, H, W)`` map streamed in raster order (all channels of a pixel per beat) this is
the map flattened in ``(H, W, C)`` order; :func:`beat_order` gives the permutation to torch's
``(C, H, W)`` flatten, so a dense layer after the collector takes its weight columns in that
order.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out


def beat_order(channels: int, spatial_size: Sequence[int]) -> np.ndarray:
    """Where each element of the collected vector sits in torch's C-order flatten.

    The collector's element ``k = pixel * channels + c`` (pixels in raster order) is element
    ``c * prod(spatial_size) + pixel`` of ``tensor.reshape(-1)`` for a ``(channels, *spatial_size)``
    tensor, so ``collected = flat[beat_order(...)]`` and a dense layer written for the torch
    flatten reads the collector with ``weight[:, beat_order(...)]``.
    """
    pixels = int(np.prod(spatial_size))
    if channels < 1 or pixels < 1:
        raise ValueError(
            f"channels and spatial_size must be positive, not {channels!r}, {spatial_size!r}"
        )
    return np.arange(channels * pixels).reshape(channels, pixels).T.reshape(-1)


class Collector(wiring.Component):
    """Concatenate ``n_beats`` beats of a stream into one beat.

    Parameters
    ----------
    n_beats
        Beats per output (>= 1).
    beat_widths
        Bits of each element of an input beat, packed LSB first (as the upstream block packs
        them). The output's elements are :attr:`element_widths`: these, ``n_beats`` times.
    keep
        Optional, one bool per collected element (``n_beats * len(beat_widths)``): the output
        holds the elements marked True only, in order (to drop the slots of a wide stream that
        carry no pixel, :mod:`rtl_gen.stream.wide`). By default every element is kept.

    Ports
    -----
    i : ``In(stream.Signature(max(sum(beat_widths), 1)))``
        The beats.
    o : ``Out(stream.Signature(max(sum(element_widths), 1)))``
        Beat ``b`` of a group in bits ``[b * B, (b + 1) * B)``, ``B = sum(beat_widths)``: element
        ``e`` of beat ``b`` is output element ``b * len(beat_widths) + e`` (numbered before the
        elements that ``keep`` drops are left out).

    Timing
    ------
    A shift register: the output is valid from the cycle after the group's last beat is taken;
    ``i.ready = ~o.valid | o.ready``, so at full throughput one beat per cycle and no gap
    between groups (the first beat of the next group shifts in as the output is taken).
    """

    def __init__(
        self, n_beats: int, beat_widths: Sequence[int], keep: Sequence[bool] | None = None
    ) -> None:
        if not isinstance(n_beats, int) or n_beats < 1:
            raise ValueError(f"n_beats must be a positive integer, not {n_beats!r}")
        widths = tuple(beat_widths)
        if not all(isinstance(w, int) and not isinstance(w, bool) and w >= 0 for w in widths):
            raise ValueError(f"beat_widths must be non-negative integers, not {widths!r}")
        self.n_beats = n_beats
        self.beat_widths = widths
        self.beat_width = sum(widths)
        self.keep = None if keep is None else tuple(bool(k) for k in keep)
        if self.keep is not None and len(self.keep) != n_beats * len(widths):
            raise ValueError(
                f"keep must have one entry per collected element ({n_beats * len(widths)}), "
                f"not {len(self.keep)}"
            )
        super().__init__(
            {
                "i": In(stream.Signature(max(self.beat_width, 1))),
                "o": Out(stream.Signature(max(sum(self.element_widths), 1))),
            }
        )

    @property
    def element_widths(self) -> tuple[int, ...]:
        """Bits of each output element, in output order."""
        widths = self.beat_widths * self.n_beats
        if self.keep is None:
            return widths
        return tuple(w for w, k in zip(widths, self.keep, strict=True) if k)

    @property
    def beats_in(self) -> int:
        """Input beats per output."""
        return self.n_beats

    def cycles_per_image(self, beats_in: int) -> int:
        """Cycles per image at full throughput: one per beat."""
        self._check_beats(beats_in)
        return beats_in

    def schedule(self, offers: Sequence[int]) -> list[int]:
        """The cycle the output leaves, given the cycles from which the beats are offered, when
        ``o`` is always ready."""
        self._check_beats(len(offers))
        taken = offers[0]
        for offer in offers[1:]:
            taken = max(offer, taken + 1)
        return [taken + 1]

    def _check_beats(self, beats_in: int) -> None:
        if beats_in != self.n_beats:
            raise ValueError(f"the collector takes {self.n_beats} beats, not {beats_in}")

    def elaborate(self, platform) -> Module:
        m = Module()
        width = self.beat_width
        data = Signal(max(self.n_beats * width, 1), name="collected", reset_less=True)
        count = Signal(range(self.n_beats), name="count")
        kept = data
        if self.keep is not None:
            lsb, fields = 0, []
            for w, k in zip(self.beat_widths * self.n_beats, self.keep, strict=True):
                if k and w:
                    fields.append(data[lsb : lsb + w])
                lsb += w
            kept = Cat(*fields) if fields else 0
        m.d.comb += [
            self.i.ready.eq(~self.o.valid | self.o.ready),
            self.o.payload.eq(kept),
        ]
        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(self.i.valid & self.i.ready):
            if width:
                m.d.sync += data.eq(Cat(data[width:], self.i.payload[:width]))
            with m.If(count == self.n_beats - 1):
                m.d.sync += [count.eq(0), self.o.valid.eq(1)]
            with m.Else():
                m.d.sync += count.eq(count + 1)
        return m
