"""Check 2: run a generated component in Amaranth's own simulator."""

from __future__ import annotations

import numpy as np
from amaranth.sim import Simulator

from .components import NetworkComponent


def simulate(component: NetworkComponent, inputs: np.ndarray) -> np.ndarray:
    """Stream ``inputs`` (integer rows) through ``component``, one per clock; return outputs.

    Valid is held high and the outputs are collected when ``valid_out`` is high, so both the
    data path and the valid pipeline are exercised. Pure Python: use for hundreds of vectors,
    the Verilator bench for millions.
    """
    words = component.input_layout.pack(np.asarray(inputs, np.int64))
    collected: list[int] = []

    async def bench(ctx) -> None:
        pending = len(words)
        cycle = 0
        while len(collected) < pending:
            if cycle < pending:
                ctx.set(component.data_in, words[cycle])
                ctx.set(component.valid_in, 1)
            else:
                ctx.set(component.valid_in, 0)
            await ctx.tick()
            if ctx.get(component.valid_out):
                collected.append(ctx.get(component.data_out))
            cycle += 1
            if cycle > pending + component.latency + 2:
                raise RuntimeError(
                    f"only {len(collected)} of {pending} outputs after {cycle} cycles"
                )

    sim = Simulator(component)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return component.output_layout.unpack(collected)
