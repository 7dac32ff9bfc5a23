"""Check 2: run a generated component in Amaranth's own simulator."""

from __future__ import annotations

import numpy as np
from amaranth.sim import Simulator

from .network import NetworkComponent


def simulate(component: NetworkComponent, inputs: np.ndarray) -> np.ndarray:
    """Stream ``inputs`` (integer rows; several model inputs: their elements one after the
    other) through ``component``, one per clock; return outputs.

    Valid is held high and the outputs are collected when ``valid_out`` is high, so both the
    data path and the valid pipeline are exercised. Pure Python: use for hundreds of vectors,
    the Verilator bench for millions.
    """
    return _run(component, inputs, taps=False)[0]


def simulate_taps(component: NetworkComponent, inputs: np.ndarray) -> dict[str, np.ndarray]:
    """Like :func:`simulate`, but also read every debug tap (``debug_taps=True``) at its own
    latency (:meth:`NetworkComponent.tap_latency`): ``{layer name: its outputs, ...}`` for every
    tapped layer and the last one (from ``data_out``)."""
    outputs, taps = _run(component, inputs, taps=True)
    return {**taps, component.ir.layers[-1].name: outputs}


def _run(
    component: NetworkComponent, inputs: np.ndarray, *, taps: bool
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    inputs = np.asarray(inputs, np.int64)
    ports, words, first = [], [], 0
    for port, layout in component.input_buses.values():  # each input's columns on its port
        ports.append(getattr(component, port))
        words.append(layout.pack(inputs[:, first : first + len(layout.width)]))
        first += len(layout.width)
    tapped = [
        (k, layer.layer.name, layer.output_layout)
        for k, layer in enumerate(component.tapped_layers() if taps else [])
    ]
    last_tap = max((component.tap_latency(k) for k, _, _ in tapped), default=0)
    collected: list[int] = []
    samples: dict[str, list[int]] = {name: [] for _, name, _ in tapped}

    async def bench(ctx) -> None:
        pending = len(inputs)
        cycle = 0
        while len(collected) < pending or cycle < pending + last_tap:
            if cycle < pending:
                for port, port_words in zip(ports, words, strict=True):
                    ctx.set(port, port_words[cycle])
                ctx.set(component.valid_in, 1)
            else:
                ctx.set(component.valid_in, 0)
            await ctx.tick()
            if ctx.get(component.valid_out):
                collected.append(ctx.get(component.data_out))
            for _, name, _ in tapped:
                samples[name].append(ctx.get(getattr(component, component.tap_port_of[name])))
            cycle += 1
            if cycle > pending + max(component.latency, last_tap) + 2:
                raise RuntimeError(
                    f"only {len(collected)} of {pending} outputs after {cycle} cycles"
                )

    sim = Simulator(component)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    tap_values = {}
    for k, name, layout in tapped:
        # after the clock edge of cycle c, a path of latency L shows vector c - max(L - 1, 0)
        first = max(component.tap_latency(k) - 1, 0)
        tap_values[name] = layout.unpack(samples[name][first : first + len(inputs)])
    return component.output_layout.unpack(collected), tap_values
