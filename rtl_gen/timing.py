"""Where pipeline registers go: a first-order delay model and the schedules built on it.

A dense layer's adders (:class:`~rtl_gen.components.DensePlan`) are staged node by node, either
every ``levels_per_stage`` adder levels (:func:`schedule_levels`) or wherever the
:class:`DelayModel` says a clock period would be exceeded (:func:`schedule_delay`). Trees that
advance level by level (the comparators of max pooling) are cut between levels
(:func:`level_boundaries`), logic of one step (a quantizer, a table) by
:func:`combinational_timing`. The delay schedules take the inputs' delay from the last register
(``start_ns``), so :mod:`rtl_gen.schedule` can chain them across layer boundaries.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from .adder_tree import Node


class Plan(Protocol):
    """What the schedules read of a plan: its adders and each node's adder depth."""

    def adders(self) -> list[Node]: ...

    def node_depth(self, node: Node) -> int: ...


@dataclass(frozen=True)
class DelayModel:
    """A first-order timing model for placing pipeline registers (defaults: :data:`AMD`).

    An adder of ``w`` output bits takes ``level_ns + bit_ns * w`` (a LUT level plus its carry
    chain), a three-input adder one LUT level more (each bit's LUT reads the carry-save bit of
    the bit below); a requantizer with a ReLU or SAT mux takes ``level_ns``; every register
    costs ``register_ns`` (clock-to-out + setup) of the period. ``name`` says where the
    constants came from (recorded in the manifest); it takes no part in comparisons, so a
    refitted model equal in its constants is the same model.
    """

    level_ns: float = 0.45
    bit_ns: float = 0.015
    register_ns: float = 0.35
    name: str = field(default="custom", compare=False)

    def describe(self) -> dict[str, str | float]:
        """The manifest's ``delay_model``: the model's name and its three constants."""
        return {
            "name": self.name,
            "level_ns": self.level_ns,
            "bit_ns": self.bit_ns,
            "register_ns": self.register_ns,
        }

    def adder(self, width: int, operands: int = 2) -> float:
        return self.level_ns * (operands - 1) + self.bit_ns * width

    def comparator(self, width: int) -> float:
        """A comparison of ``width``-bit operands (a subtraction's carry chain) and its mux."""
        return self.adder(width) + self.level_ns

    def table(self, address_bits: int) -> float:
        """A look-up table of ``address_bits`` address bits built of 6-input LUTs: one LUT level,
        and a level of 4:1 multiplexing for every two address bits past six."""
        return self.level_ns * (1 + max(0, -(-(address_bits - 6) // 2)))

    def budget(self, clock_ns: float) -> float:
        """The logic delay a register-to-register path may have at ``clock_ns``."""
        return clock_ns - self.register_ns


#: AMD/Xilinx UltraScale+: first-order guesses (a LUT6 level ~0.45 ns with its routing, a
#: CARRY8 bit ~15 ps, clock-to-out + setup ~0.35 ns), not fitted: no Vivado timing is available
#: here. The model of ``--family amd`` (the three-input adders as LUT6_2 + CARRY4 cells).
AMD = DelayModel(0.45, 0.015, 0.35, name="amd-ultrascale-plus-guess")

#: Lattice ECP5 (LFE5U-85F, speed 6): fitted by ``benchmarks/delay_model.py`` (non-negative least
#: squares) to nextpnr-ecp5's Fmax on 20 designs (8x8 and 16x16 matrices of 4- and 8-bit
#: weights, a register every 1, 2, 3, 4 or 6 adder levels, two-input adders in portable
#: Verilog): predicted Fmax within 11 % of nextpnr's on every design, 13.7 % at worst
#: leave-one-out. ``--measured FILE`` refits it. The model of ``--family portable``.
ECP5 = DelayModel(1.871, 0.0723, 1.045, name="ecp5-nextpnr-fitted")

#: The delay model of each target family (``RtlOptions.family``, ``hgq-rtl --family``).
FAMILY_DELAY_MODELS: dict[str, DelayModel] = {"amd": AMD, "portable": ECP5}


def family_delay_model(family: str) -> DelayModel:
    """The delay model that places registers for ``family`` (:data:`FAMILY_DELAY_MODELS`)."""
    if family not in FAMILY_DELAY_MODELS:
        choices = ", ".join(repr(f) for f in FAMILY_DELAY_MODELS)
        raise ValueError(f"family must be one of {choices}, not {family!r}")
    return FAMILY_DELAY_MODELS[family]


def check_pipelining(adder_levels_per_stage: object, clock_ns: object) -> None:
    """Refuse pipelining options that are not a positive level count and period."""
    if not isinstance(adder_levels_per_stage, int) or adder_levels_per_stage < 1:
        raise ValueError(
            f"adder_levels_per_stage must be a positive integer, not {adder_levels_per_stage!r}"
        )
    if clock_ns is not None and not clock_ns > 0:
        raise ValueError(f"clock_ns must be > 0, not {clock_ns!r}")


def schedule_levels(plan: Plan, levels_per_stage: int) -> dict[int, tuple[int, float]]:
    """Stage of every adder: a register after every ``levels_per_stage`` adder levels."""
    return {a.ident: ((plan.node_depth(a) - 1) // levels_per_stage, 0.0) for a in plan.adders()}


def schedule_delay(
    plan: Plan, clock_ns: float, model: DelayModel, start_ns: float = 0.0
) -> dict[int, tuple[int, float]]:
    """Stage and arrival time of every adder, registering where the period would be exceeded.

    The inputs arrive ``start_ns`` after the last register (0: registered; more when the layer
    before is not registered at its output). Adders are visited in order of depth; each starts
    in the latest stage of its operands and moves to the next stage (its operands registered)
    when its arrival time would pass ``clock_ns``. Greedy as-soon-as-possible, so values travel
    as far as the period allows.
    """
    budget = model.budget(clock_ns)
    timing: dict[int, tuple[int, float]] = {}

    def at(node: Node) -> tuple[int, float]:
        while node.kind == "ref":
            node = node.operands[0]
        if node.kind == "input":
            return 0, start_ns
        return timing.get(node.ident, (0, 0.0))

    for adder in sorted(plan.adders(), key=plan.node_depth):
        operands = [at(op) for op in adder.operands]
        stage = max(s for s, _ in operands)
        start = max((t for s, t in operands if s == stage), default=0.0)
        delay = model.adder(adder.width, len(adder.operands))
        finish = start + delay
        if finish > budget and start > 0:
            stage, finish = stage + 1, delay
        timing[adder.ident] = (stage, finish)
    return timing


def combinational_timing(
    delay: float, clock_ns: float | None, start_ns: float, model: DelayModel
) -> tuple[int, float]:
    """``(input registers, output delay)`` of logic taking ``delay`` ns on inputs arriving
    ``start_ns`` after a register: the inputs are registered first (1) when the two together
    would pass ``clock_ns`` (never in the level schedule, ``clock_ns`` None)."""
    if clock_ns is None:
        return 0, 0.0
    if start_ns > 0 and start_ns + delay > model.budget(clock_ns):
        return 1, delay
    return 0, start_ns + delay


def level_boundaries(
    level_delays: Sequence[float],
    levels_per_stage: int,
    clock_ns: float | None = None,
    model: DelayModel | None = None,
    start_ns: float = 0.0,
) -> tuple[list[int], float]:
    """The levels ``k`` of a level-by-level tree after which every value is registered, and the
    delay from the last register to the tree's result.

    Every ``levels_per_stage`` levels (``k`` from 1 to ``depth - 1``), or, with ``clock_ns``,
    greedily where the next level (its slowest operation, ``level_delays[k]`` ns) would pass
    the period, the operands arriving ``start_ns`` after a register (with ``start_ns > 0``,
    ``k = 0`` registers the operands themselves)."""
    depth = len(level_delays)
    if clock_ns is None:
        return list(range(levels_per_stage, depth, levels_per_stage)), 0.0
    budget = (model or AMD).budget(clock_ns)
    boundaries, elapsed = [], start_ns
    for level, delay in enumerate(level_delays):
        if elapsed > 0 and elapsed + delay > budget:
            boundaries.append(level)
            elapsed = 0.0
        elapsed += delay
    return boundaries, elapsed
