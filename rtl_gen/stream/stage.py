"""A fixed-latency datapath as a stream stage with backpressure (a global stall).

The wrapped block's registers (all in the ``sync`` domain) advance only on cycles where the stage
can move, through :class:`amaranth.hdl.EnableInserter`; a valid bit per pipeline register travels
beside the data. No buffering: a full pipeline whose output is not taken stalls as a whole, and a
bubble moves through it like a beat (it is squeezed out only when the output is blocked).
"""

from __future__ import annotations

from collections.abc import Sequence

from amaranth.hdl import EnableInserter, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out


class StreamStage(wiring.Component):
    """Wrap a fixed-latency block (``x`` in, ``y`` out, ``latency`` cycles) as a stream stage.

    Parameters
    ----------
    block
        A :class:`amaranth.lib.wiring.Component` with an input port ``x``, an output port ``y``
        and an integer attribute ``latency`` >= 1: ``y`` shows the result for the ``x`` of
        ``latency`` clock edges earlier, using registers in the ``sync`` domain only (such as
        :class:`rtl_gen.components.DenseComponent` or :class:`rtl_gen.stream.pool.MaxTree`).
        Reset values of its registers do not matter: the valid bits cover them.
    name
        Submodule name of the block (default ``"block"``).

    Ports
    -----
    i : ``In(stream.Signature(len(block.x)))``
        The block's input, one vector per beat.
    o : ``Out(stream.Signature(len(block.y)))``
        The block's output for each input beat, in order.

    Timing
    ------
    Latency ``block.latency`` cycles from a beat's handshake on ``i`` to its first cycle valid on
    ``o``; one beat per cycle when ``o`` is always ready. ``i.ready = ~o.valid | o.ready``.
    """

    def __init__(self, block: wiring.Component, *, name: str = "block") -> None:
        latency = getattr(block, "latency", None)
        if not isinstance(latency, int) or isinstance(latency, bool) or latency < 1:
            raise ValueError(f"block.latency must be a positive integer, not {latency!r}")
        for port in ("x", "y"):
            if not hasattr(block, port):
                raise ValueError(
                    f"block must have ports x and y; {type(block).__name__} lacks {port}"
                )
        self.block = block
        self.block_name = name
        self.latency = latency
        super().__init__(
            {
                "i": In(stream.Signature(len(block.x))),
                "o": Out(stream.Signature(len(block.y))),
            }
        )

    def cycles_per_image(self, beats_in: int) -> int:
        """Cycles per image at full throughput: one per beat."""
        return beats_in

    def schedule(self, offers: Sequence[int]) -> list[int]:
        """Cycles at which the output beats leave, given the cycles from which the input beats
        are offered, when ``o`` is always ready."""
        out: list[int] = []
        for offer in offers:
            taken = offer if not out else max(offer, out[-1] - self.latency + 1)
            out.append(taken + self.latency)
        return out

    def elaborate(self, platform) -> Module:
        m = Module()
        advance = Signal(name="advance")
        m.d.comb += advance.eq(~self.o.valid | self.o.ready)
        m.submodules[self.block_name] = EnableInserter({"sync": advance})(self.block)
        valid = self.i.valid
        for k in range(self.latency):
            reg = Signal(name=f"valid_{k}")
            with m.If(advance):
                m.d.sync += reg.eq(valid)
            valid = reg
        m.d.comb += [
            self.block.x.eq(self.i.payload),
            self.o.payload.eq(self.block.y),
            self.o.valid.eq(valid),
            self.i.ready.eq(advance),
        ]
        return m
