"""A chain of stream stages with AXI4-Stream-named top-level ports, and its timing.

A *stage* is a :class:`amaranth.lib.wiring.Component` with stream ports ``i`` and ``o``
(``amaranth.lib.stream.Signature``) and two timing methods, as
:class:`~rtl_gen.stream.window.WindowGenerator`, :class:`~rtl_gen.stream.stage.StreamStage` and
:class:`~rtl_gen.stream.collect.Collector` have:

* ``cycles_per_image(beats_in)`` — the fewest cycles the stage needs per image when it gets
  ``beats_in`` beats per image;
* ``schedule(offers)`` — for one image, the cycles at which its output beats leave, given the
  cycles from which its input beats are offered, when its output is always ready
  (``len(schedule(offers))`` is the stage's beats per image at its output).

Timing of the chain at full throughput (``s_axis_tvalid`` and ``m_axis_tready`` always high):

* :meth:`StreamChain.initiation_interval` — the largest ``cycles_per_image`` of the stages;
* :meth:`StreamChain.latency_cycles` — cycles from an image's first input handshake to its last
  output handshake: the first stage's input beats all offered at cycle 0 (so its first handshake
  is at cycle 0), each stage's schedule offering the next stage's beats; the last output's cycle.

Both are exact when every stage but the first takes each beat in the cycle it is offered at full
throughput. That holds for :class:`StreamStage` and :class:`Collector`, and for a window generator
without padding (a :class:`~rtl_gen.stream.wide.WideWindowGenerator` also without steps of zero
columns); a padded window generator after a bursty upstream stage may stall it and so stretch
both numbers (measure such a chain in simulation).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out


class StreamChain(wiring.Component):
    """Stages connected output to input, with AXI4-Stream-named ports.

    Parameters
    ----------
    stages
        The stages, first to last; each stage's ``o`` payload must be as wide as the next one's
        ``i`` payload.
    beats_in
        Input beats per image; by default the first stage's ``beats_in`` (a window generator's
        pixels, a collector's beats), which a :class:`StreamStage` first needs to be given.

    Ports
    -----
    s_axis_tdata, s_axis_tvalid, s_axis_tready
        The first stage's input stream.
    s_axis_tlast
        Accepted and ignored: the chain counts beats, an image being ``beats_in`` beats.
    m_axis_tdata, m_axis_tvalid, m_axis_tready
        The last stage's output stream.
    m_axis_tlast
        High on the last output beat of each image (:attr:`beats_out` beats per image).

    Raises
    ------
    ValueError
        When there are no stages, when beats per image do not fit a stage (a window generator
        or collector after a stage giving another count), or when payload widths differ.
    """

    def __init__(self, stages: Sequence[wiring.Component], beats_in: int | None = None) -> None:
        self.stages = list(stages)
        if not self.stages:
            raise ValueError("stages must hold at least one stage")
        if beats_in is None:
            beats_in = getattr(self.stages[0], "beats_in", None)
        if not isinstance(beats_in, int) or beats_in < 1:
            raise ValueError(f"beats_in must be a positive integer, not {beats_in!r}")
        for k, (a, b) in enumerate(pairwise(self.stages)):
            if len(a.o.payload) != len(b.i.payload):
                raise ValueError(
                    f"stage {k} gives {len(a.o.payload)}-bit beats, stage {k + 1} takes "
                    f"{len(b.i.payload)}-bit beats"
                )
        self.beats_in = beats_in
        self._beats = [beats_in]  # beats per image entering each stage, then leaving the last
        offers = [0] * beats_in
        for stage in self.stages:
            offers = stage.schedule(offers)
            self._beats.append(len(offers))
        self._latency = offers[-1]
        super().__init__(
            {
                "s_axis_tdata": In(len(self.stages[0].i.payload)),
                "s_axis_tvalid": In(1),
                "s_axis_tready": Out(1),
                "s_axis_tlast": In(1),
                "m_axis_tdata": Out(len(self.stages[-1].o.payload)),
                "m_axis_tvalid": Out(1),
                "m_axis_tready": In(1),
                "m_axis_tlast": Out(1),
            }
        )

    @property
    def beats_out(self) -> int:
        """Output beats per image."""
        return self._beats[-1]

    def latency_cycles(self) -> int:
        """Cycles from an image's first input handshake to its last output handshake at full
        throughput (see the module's notes)."""
        return self._latency

    def initiation_interval(self) -> int:
        """Cycles per image at full throughput: the slowest stage's ``cycles_per_image``."""
        return max(
            stage.cycles_per_image(beats)
            for stage, beats in zip(self.stages, self._beats[:-1], strict=True)
        )

    def elaborate(self, platform) -> Module:
        m = Module()
        for k, stage in enumerate(self.stages):
            m.submodules[f"stage_{k}"] = stage
        for a, b in pairwise(self.stages):
            wiring.connect(m, a.o, b.i)
        first, last = self.stages[0].i, self.stages[-1].o
        m.d.comb += [
            first.payload.eq(self.s_axis_tdata),
            first.valid.eq(self.s_axis_tvalid),
            self.s_axis_tready.eq(first.ready),
            self.m_axis_tdata.eq(last.payload),
            self.m_axis_tvalid.eq(last.valid),
            last.ready.eq(self.m_axis_tready),
        ]
        beat = Signal(range(self.beats_out), name="out_beat")
        m.d.comb += self.m_axis_tlast.eq(beat == self.beats_out - 1)
        with m.If(self.m_axis_tvalid & self.m_axis_tready):
            m.d.sync += beat.eq(beat + 1)
            with m.If(self.m_axis_tlast):
                m.d.sync += beat.eq(0)
        return m
