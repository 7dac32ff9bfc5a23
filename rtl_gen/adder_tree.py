"""Shift-and-add plans for constant dot products, with exact range analysis.

Each output ``i`` of a dense layer is ``acc_i = sum_j w_ij * x_j * 2**s_ij + bias_i`` (all in units
of the accumulator's least significant bit). Every weight is written in canonical signed digits
(CSD), each non-zero digit becomes one shifted, possibly negated, copy of ``x_j``, and the copies
are summed in a balanced tree, level by level. Because every node is a known linear function of
the independent inputs, its exact range (and so its exact width) follows from the input ranges.

This module is pure Python: it describes the arithmetic; :mod:`rtl_gen.components` builds it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import count

from hgq_rtl.ir.fixed import bits_for_range

#: LUTs that a second subtracted operand adds to a three-input adder: its ``+1`` enters as the
#: carry chain's carry-in, which Yosys ``synth_xilinx`` maps with two inverter cells (on the
#: digits design, 91 such adders and 182 INV cells). A single subtraction costs none (its ``+1``
#: is the carry-save input of the lowest bit).
SECOND_SUBTRACTION_LUTS = 2


def csd(value: int) -> list[tuple[int, int]]:
    """Canonical signed-digit form of ``value``: ``[(position, +1 or -1), ...]``, LSB first.

    No two non-zero digits are adjacent, so the number of digits is minimal; ``0`` gives ``[]``.
    """
    digits = []
    position = 0
    while value != 0:
        if value & 1:
            digit = 2 - (value & 3)  # +1 when value % 4 == 1, -1 when value % 4 == 3
            value -= digit
            digits.append((position, digit))
        value >>= 1
        position += 1
    return digits


@dataclass(eq=False)
class Node:
    """A value in the tree: ``value = (-1 if negative else 1) * (expr << shift)``.

    ``coefficients`` and ``constant`` give ``value = sum_j c_j x_j + constant`` exactly;
    ``lo``/``hi`` bound ``expr`` (the integer the hardware signal holds).
    """

    kind: str  # "input", "const", "add", or "ref" (operands[0] used shifted and signed)
    shift: int
    negative: bool
    coefficients: dict[int, int]
    constant: int
    lo: int = 0
    hi: int = 0
    operands: tuple[Node, ...] = ()
    subtract: bool = False  # for "add": some operand is subtracted (see ``subtracted``)
    input_index: int = -1
    ident: int = field(default_factory=count().__next__)

    @property
    def signed(self) -> bool:
        return bits_for_range(self.lo, self.hi)[0]

    @property
    def width(self) -> int:
        return bits_for_range(self.lo, self.hi)[1]

    @property
    def subtracted(self) -> tuple[bool, ...]:
        """For an ``"add"``: whether each operand is subtracted. ``expr`` is the sum of the
        operands' signals, each shifted by its own ``shift - self.shift``, with the subtracted
        ones negated (an operand is subtracted when its sign differs from this node's)."""
        return tuple(op.negative != self.negative for op in self.operands)


class RangeModel:
    """Exact value ranges of linear functions of independent integer inputs."""

    def __init__(self, input_lo: list[int], input_hi: list[int]) -> None:
        self.input_lo = input_lo
        self.input_hi = input_hi

    def value_range(self, coefficients: dict[int, int], constant: int) -> tuple[int, int]:
        lo = hi = constant
        for j, c in coefficients.items():
            a, b = c * self.input_lo[j], c * self.input_hi[j]
            lo += min(a, b)
            hi += max(a, b)
        return lo, hi

    def finish(self, node: Node) -> Node:
        """Set ``node.lo``/``node.hi`` from its linear function."""
        lo, hi = self.value_range(node.coefficients, node.constant)
        if node.negative:
            lo, hi = -hi, -lo
        node.lo, node.hi = lo >> node.shift, hi >> node.shift
        return node

    def leaf(self, j: int, shift: int, digit: int) -> Node:
        return self.finish(Node("input", shift, digit < 0, {j: digit << shift}, 0, input_index=j))

    def ref(self, base: Node, shift: int, negative: bool) -> Node:
        """``±(base << shift)``: the same hardware signal as ``base``, used shifted and signed."""
        sign = -1 if negative else 1
        return self.finish(
            Node(
                "ref",
                base.shift + shift,
                base.negative != negative,
                {j: sign * (c << shift) for j, c in base.coefficients.items()},
                sign * (base.constant << shift),
                operands=(base,),
            )
        )

    def const(self, value: int) -> Node:
        magnitude = abs(value)
        shift = (magnitude & -magnitude).bit_length() - 1 if magnitude else 0
        return self.finish(Node("const", shift, value < 0, {}, value))

    def add(self, *operands: Node, choose_sign: bool = False) -> Node:
        """Sum of two or three nodes: ``a ± b (± c)``.

        The node is negative when all its operands are (their magnitudes are added), and, with
        ``choose_sign``, when two of three are and negating it costs fewer LUTs
        (:func:`negated_is_cheaper`); the operands whose sign differs from the node's are
        subtracted. Operands come added ones first, subtracted ones last.
        """
        if not 2 <= len(operands) <= 3:
            raise ValueError(f"an adder takes 2 or 3 operands, not {len(operands)}")
        coefficients: dict[int, int] = {}
        for op in operands:
            for j, c in op.coefficients.items():
                coefficients[j] = coefficients.get(j, 0) + c
        coefficients = {j: c for j, c in coefficients.items() if c}
        shift = min(op.shift for op in operands)
        negatives = sum(op.negative for op in operands)
        negative = negatives == len(operands) or (
            choose_sign and negatives == 2 and negated_is_cheaper(operands)
        )
        ordered = tuple(sorted(operands, key=lambda op: op.negative != negative))
        node = Node(
            "add",
            shift,
            negative,
            coefficients,
            sum(op.constant for op in operands),
            operands=ordered,
            subtract=ordered[-1].negative != negative,
        )
        return self.finish(node)


def negated_is_cheaper(operands: tuple[Node, ...]) -> bool:
    """For three operands of which two are negative: whether their sum costs fewer LUTs built
    negated (``-(a + b - c)``, the positive operand subtracted) than as it is (``c - a - b``).

    Two subtractions cost :data:`SECOND_SUBTRACTION_LUTS` more than one. And the bits of the
    lowest operand below the next one's shift pass through without a LUT only when that operand
    is added (:func:`rtl_gen.netlist_verilog.write_verilog`'s ternary adder): built as it is,
    they cost a LUT each when the lowest operand is negative; negated, when it is positive. The
    negated node's consumers subtract it, which their own choice weighs in turn.
    """
    lowest, second = sorted(operands, key=lambda op: op.shift)[:2]
    gap = second.shift - lowest.shift
    as_is = SECOND_SUBTRACTION_LUTS + (gap if lowest.negative else 0)
    negated = 0 if lowest.negative else gap
    return negated < as_is


@dataclass
class SumPlan:
    """The balanced tree summing one accumulator, as a list of levels of live nodes.

    ``levels[0]`` are the leaves; ``levels[k]`` the nodes after ``k`` adder levels (a node that
    had no partner is carried over unchanged). ``levels[-1]`` holds exactly one node, the root.
    """

    levels: list[list[Node]]

    @property
    def depth(self) -> int:
        return len(self.levels) - 1

    @property
    def root(self) -> Node:
        return self.levels[-1][0]

    def adders(self) -> list[Node]:
        """Every adder of the tree once (a node without a partner is carried to later levels)."""
        found = {
            n.ident: n for level in self.levels[1:] for n in level if n.kind == "add" and n.operands
        }
        return list(found.values())


def plan_sum(
    ranges: RangeModel,
    leaves: list[Node],
    depth_of: Callable[[Node], int] | None = None,
    *,
    arity: int = 2,
) -> SumPlan:
    """Sum ``leaves`` in a balanced tree of ``arity``-input adders (2 or 3), level by level.

    ``depth_of`` gives the adder level at which a leaf becomes available (shared
    subexpressions arrive later than inputs); a leaf joins the tree at its own level, so the
    sum is no deeper than it must be. Each level sorts its ready nodes by (shift, width) and
    groups neighbours, so operands with similar alignment meet and adders stay narrow.

    With ``arity=3`` (ternary adders), a level's last two nodes wait for the next level
    instead of taking a two-input adder of their own, unless they are all that is left, and the
    adders below the root choose their sign (:meth:`RangeModel.add`). A negative root costs a
    negation in the requantizer: a sum whose root comes out negative is planned again without
    the choice, so only a sum of negative terms has one.
    """
    if arity not in (2, 3):
        raise ValueError(f"arity must be 2 or 3, not {arity!r}")
    plan = _plan_levels(ranges, leaves, depth_of, arity, choose_signs=arity == 3)
    if plan.root.negative and arity == 3:
        plan = _plan_levels(ranges, leaves, depth_of, arity, choose_signs=False)
    return plan


def _plan_levels(
    ranges: RangeModel,
    leaves: list[Node],
    depth_of: Callable[[Node], int] | None,
    arity: int,
    choose_signs: bool,
) -> SumPlan:
    """:func:`plan_sum`'s levels, the adders below the root choosing their sign when
    ``choose_signs``."""
    depth_of = depth_of or (lambda node: 0)
    if not leaves:
        leaves = [ranges.const(0)]
    waiting = sorted(leaves, key=lambda n: (depth_of(n), n.ident))
    level = depth_of(waiting[0])
    ready = [n for n in waiting if depth_of(n) <= level]
    waiting = waiting[len(ready) :]
    levels = [ready + waiting]
    while len(ready) + len(waiting) > 1:
        if len(ready) >= 2:
            current = sorted(ready, key=lambda n: (n.shift, n.width, n.ident))
            groups = len(current) // arity
            choose = choose_signs and (bool(waiting) or len(current) > arity)  # not the root
            ready = [
                ranges.add(*current[k * arity : (k + 1) * arity], choose_sign=choose)
                for k in range(groups)
            ]
            rest = current[groups * arity :]
            if len(rest) == 2 and not ready and not waiting:
                ready, rest = [ranges.add(*rest)], []
            ready += rest
        level += 1
        joining = [n for n in waiting if depth_of(n) <= level]
        ready += joining
        waiting = waiting[len(joining) :]
        levels.append(ready + waiting)
    return SumPlan(levels)


def dot_product_leaves(
    ranges: RangeModel, weights: list[int], shifts: list[int], live: list[bool]
) -> list[Node]:
    """One leaf per non-zero CSD digit of each live weight: ``±x_j << (position + shift_j)``."""
    leaves = []
    for j, (weight, shift, alive) in enumerate(zip(weights, shifts, live, strict=True)):
        if not alive:
            continue
        for position, digit in csd(weight):
            leaves.append(ranges.leaf(j, position + shift, digit))
    return leaves
