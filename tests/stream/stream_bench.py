"""A stream bench for Amaranth simulation: drives words in with random bubbles, takes words out
under random backpressure, checks the output's valid/payload stay put while stalled, and records
the cycle of every handshake."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from amaranth.hdl import Value
from amaranth.sim import Simulator

from hgq_rtl.ir.formats import TensorFormat


@dataclass(frozen=True)
class Ports:
    """The six handshake signals of a stream block (plus an optional output ``last``)."""

    in_payload: Value
    in_valid: Value
    in_ready: Value
    out_payload: Value
    out_valid: Value
    out_ready: Value
    out_last: Value | None = None

    @classmethod
    def of(cls, block) -> Ports:
        """The ``i``/``o`` stream ports of a stage."""
        i, o = block.i, block.o
        return cls(i.payload, i.valid, i.ready, o.payload, o.valid, o.ready)

    @classmethod
    def axis(cls, chain) -> Ports:
        """The AXI4-Stream-named ports of a :class:`StreamChain`."""
        return cls(
            chain.s_axis_tdata,
            chain.s_axis_tvalid,
            chain.s_axis_tready,
            chain.m_axis_tdata,
            chain.m_axis_tvalid,
            chain.m_axis_tready,
            chain.m_axis_tlast,
        )


@dataclass
class Trace:
    outputs: list[int] = field(default_factory=list)
    lasts: list[int] = field(default_factory=list)
    in_cycles: list[int] = field(default_factory=list)
    out_cycles: list[int] = field(default_factory=list)
    #: Output beats seen after the expected count while the bench kept ``ready`` high.
    extra: int = 0


def run_stream(
    dut,
    words: list[int],
    n_out: int,
    *,
    ports: Ports | None = None,
    seed: int = 0,
    bubble: float = 0.0,
    stall: float = 0.0,
    max_cycles: int | None = None,
    drain: int = 20,
) -> Trace:
    """Offer ``words`` (a beat is withheld with probability ``bubble``; once offered it stays
    until taken), take output beats (``ready`` low with probability ``stall``) until ``n_out``
    have come or ``max_cycles`` pass, then watch ``drain`` more cycles for surplus beats."""
    ports = ports or Ports.of(dut)
    rng = np.random.default_rng(seed)
    limit = max_cycles or 50 * (len(words) + n_out) + 200
    trace = Trace()

    async def bench(ctx) -> None:
        taken = 0
        offering = False
        held = None  # (payload) of an output beat left waiting last cycle
        cycle = 0
        after = 0
        while cycle < limit and after < drain:
            if not offering and taken < len(words):
                offering = rng.random() >= bubble
            ctx.set(ports.in_valid, offering)
            if offering:
                ctx.set(ports.in_payload, words[taken])
            done = len(trace.outputs) >= n_out
            ready = done or rng.random() >= stall
            ctx.set(ports.out_ready, ready)
            valid = ctx.get(ports.out_valid)
            payload = ctx.get(ports.out_payload)
            if held is not None:
                assert valid and payload == held, f"output changed while stalled at cycle {cycle}"
            if offering and ctx.get(ports.in_ready):
                trace.in_cycles.append(cycle)
                taken += 1
                offering = False
            held = None
            if valid and ready:
                if done:
                    trace.extra += 1
                else:
                    trace.outputs.append(payload)
                    trace.out_cycles.append(cycle)
                    if ports.out_last is not None:
                        trace.lasts.append(ctx.get(ports.out_last))
            elif valid:
                held = payload
            await ctx.tick()
            cycle += 1
            after += done

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return trace


def select(fmt: TensorFormat, index) -> TensorFormat:
    """The formats of ``fmt``'s elements ``index`` (e.g. a channel format per window element)."""
    index = np.asarray(index, np.int64)
    return TensorFormat(fmt.signed[index], fmt.int_bits[index], fmt.frac_bits[index])
