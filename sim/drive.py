"""What the cocotb benches share (:mod:`hgq_rtl_sim.bench` for parallel designs,
:mod:`hgq_rtl_sim.stream_bench` for stream designs): the clock and reset, port checks, random
coins and the progress file. Runs inside the simulator.

Timing: inputs are driven on the falling clock edge, half a cycle away from the rising edge that
registers them, and outputs are sampled once the design has settled in that same time step
(``ReadOnly``), so every simulator shows the same values. A handshake or a valid output seen in
cycle ``c`` happens at the rising edge that ends cycle ``c``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge

CLOCK_PERIOD_NS = 10
RESET_CYCLES = 4
DRAIN_MARGIN_CYCLES = 16
PROGRESS_STEPS = 50


def port(dut: Any, name: str, width: int | None = None, what: str = "") -> Any:
    """The handle of the top-level port *name*, checked to be *width* bits wide if given."""
    try:
        handle = getattr(dut, name)
    except AttributeError:
        raise ValueError(f"the design has no port {name!r}, which the manifest names") from None
    if width is not None and len(handle) != width:
        raise ValueError(
            f"{what} port {name} must be {width} bits wide as the manifest says, not {len(handle)}"
        )
    return handle


async def start_and_reset(dut: Any, manifest: dict[str, Any], idle: Iterable[Any]) -> FallingEdge:
    """Start the clock, hold reset for a few cycles with the *idle* ports at 0, release it at a
    falling edge; returns the falling-edge trigger the drive loop awaits."""
    clk = port(dut, manifest["clock"])
    rst = port(dut, manifest["reset"])
    Clock(clk, CLOCK_PERIOD_NS, unit="ns").start(start_high=False)
    falling = FallingEdge(clk)
    for handle in idle:
        handle.value = 0
    rst.value = 1
    for _ in range(RESET_CYCLES):
        await falling
    rst.value = 0
    return falling


def reader(handle: Any) -> Any:
    """A fast reader of a signal's value as a binary string ('x'/'z' where unknown): the
    public ``.value`` builds a LogicArray on every read."""
    return handle._handle.get_signal_val_binstr


class Coins:
    """Independent biased coins, drawn in blocks from a seeded generator: :meth:`flip` is True
    with probability *p*."""

    def __init__(self, p: float, seed: int) -> None:
        self.p = p
        self.rng = np.random.default_rng(seed)
        self.block: list[bool] = []

    def flip(self) -> bool:
        if self.p == 0.0:
            return False
        if not self.block:
            self.block = (self.rng.random(4096) < self.p).tolist()
        return self.block.pop()


class Progress:
    """Rewrites the progress file with ``"<done> <total>"`` about every 2 % of *total*."""

    def __init__(self, path: Path | None, total: int) -> None:
        self.path, self.total = path, total
        self.step = max(1, total // PROGRESS_STEPS)
        self.next = self.step

    def update(self, done: int) -> None:
        if done >= self.next:
            self.next = done + self.step
            self.write(done)

    def write(self, done: int) -> None:
        if self.path is None:
            return
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(f"{done} {self.total}")
        os.replace(tmp, self.path)
