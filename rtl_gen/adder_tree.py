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
from itertools import count, product

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

    def add(self, *operands: Node, choose_sign: bool = False, negative: bool | None = None) -> Node:
        """Sum of two or three nodes: ``a ± b (± c)``.

        The node is negative when all its operands are (their magnitudes are added), and, with
        ``choose_sign``, when two of three are and negating it costs fewer LUTs
        (:func:`negated_is_cheaper`); the operands whose sign differs from the node's are
        subtracted. Operands come added ones first, subtracted ones last. ``negative`` sets the
        sign instead (at least one operand must keep its own: not all subtracted).
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
        if negative is None:
            negative = negatives == len(operands) or (
                choose_sign and negatives == 2 and negated_is_cheaper(operands)
            )
        elif negatives == (0 if negative else len(operands)):
            raise ValueError("an adder cannot subtract all its operands")
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


#: Orders in which :func:`plan_sum` sorts a level's ready nodes before grouping neighbours, for
#: three-input adders: by shift (the default: operands of similar alignment meet), by top bit, by
#: the middle of the bits, by shift with the widest first, by top bit then width, and from the
#: top down. Which order plans the cheapest tree differs from output to output and no single
#: order is best: on the digits model (``hgq-rtl rtl`` defaults) the cheapest of the six per
#: output plans 79 fewer LUTs than the first alone (4,570 -> 4,491 by :func:`tree_luts`'s count,
#: before :func:`best_signs`).
TERNARY_ORDERS: tuple[Callable[[Node], tuple[int, ...]], ...] = (
    lambda n: (n.shift, n.width, n.ident),
    lambda n: (n.shift + n.width, n.shift, n.ident),
    lambda n: (2 * n.shift + n.width, n.ident),
    lambda n: (n.shift, -n.width, n.ident),
    lambda n: (n.shift + n.width, n.width, n.ident),
    lambda n: (-n.shift, -n.width, n.ident),
)
#: Above this many leaves an output's tree is planned in the first order only, so that planning a
#: wide layer takes no longer than before (a 64 x 64 matrix of 8-bit weights: ~64 leaves an output
#: after sharing, 0.6 s either way); the digits model's outputs have 10 to 33.
MAX_LEAVES_FOR_ORDERS = 48


def adder_luts(adder: Node) -> int:
    """LUTs of one adder by the plan's count: one per output bit, less the low bits of its lowest
    operand that pass through below the next operand (only when that operand is added), plus
    :data:`SECOND_SUBTRACTION_LUTS` for a second subtracted operand."""
    shifts = sorted(op.shift - adder.shift for op in adder.operands)
    lowest = min(adder.operands, key=lambda op: op.shift)
    subtracted = adder.subtracted
    passed = 0 if subtracted[adder.operands.index(lowest)] else min(shifts[1], adder.width - 1)
    extra = SECOND_SUBTRACTION_LUTS if sum(subtracted) == 2 else 0
    return adder.width - passed + extra


def tree_luts(plan: SumPlan) -> int:
    """LUTs of a tree's adders by the plan's count (:func:`adder_luts`)."""
    return sum(adder_luts(adder) for adder in plan.adders())


def _luts(width: int, shifts: list[int], subtracted: list[bool]) -> int:
    """:func:`adder_luts` of an adder of ``width`` bits whose operands sit ``shifts`` above it."""
    order = sorted(range(len(shifts)), key=lambda k: shifts[k])
    passed = 0 if subtracted[order[0]] else min(shifts[order[1]], width - 1)
    return width - passed + (SECOND_SUBTRACTION_LUTS if sum(subtracted) == 2 else 0)


def best_signs(ranges: RangeModel, plan: SumPlan) -> SumPlan:
    """``plan`` with the sign of every adder below the root chosen for the fewest LUTs of the
    whole tree (the root keeps its sign).

    An adder's sign is free: its consumer adds or subtracts it. :meth:`RangeModel.add` chooses
    it for the adder alone, which can leave its consumer two subtracted operands (two LUTs more)
    or a subtracted lowest operand (its pass-through bits lost); choosing bottom-up for both
    signs of each adder, the cheapest subtree under each (at most eight sign combinations of
    its operands), and then top-down from the root's sign, finds the tree's cheapest signs.
    """
    tree = {adder.ident for adder in plan.adders()}
    # per adder and sign: (LUTs of its subtree, the signs of its operands)
    memo: dict[int, dict[bool, tuple[int, tuple[bool, ...]]]] = {}

    def options(node: Node) -> dict[bool, tuple[int, tuple[bool, ...]]]:
        if node.ident in memo:
            return memo[node.ident]
        choices = []
        for op in node.operands:
            if op.ident in tree:
                below = options(op)
                signs = [sign for sign in (op.negative, not op.negative) if sign in below]
                choices.append([(sign, below[sign][0]) for sign in signs])
            else:
                choices.append([(op.negative, 0)])
        shifts = [op.shift - node.shift for op in node.operands]
        found: dict[bool, tuple[int, tuple[bool, ...]]] = {}
        for negative in (node.negative, not node.negative):
            lo, hi = (node.lo, node.hi) if negative == node.negative else (-node.hi, -node.lo)
            width = bits_for_range(lo, hi)[1]
            for combination in product(*choices):
                signs = tuple(sign for sign, _ in combination)
                subtracted = [sign != negative for sign in signs]
                if all(subtracted):
                    continue
                cost = _luts(width, shifts, subtracted) + sum(c for _, c in combination)
                if negative not in found or cost < found[negative][0]:
                    found[negative] = (cost, signs)
        memo[node.ident] = found
        return found

    rebuilt: dict[int, Node] = {}

    def build(node: Node, negative: bool) -> Node:
        signs = options(node)[negative][1]
        operands = [
            build(op, sign) if op.ident in tree else op
            for op, sign in zip(node.operands, signs, strict=True)
        ]
        if negative == node.negative and all(
            new is old for new, old in zip(operands, node.operands, strict=True)
        ):
            new = node
        else:
            new = ranges.add(*operands, negative=negative)
        rebuilt[node.ident] = new
        return new

    root = plan.root
    if root.ident not in tree:
        return plan
    build(root, root.negative)
    return SumPlan([[rebuilt.get(n.ident, n) for n in level] for level in plan.levels])


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
    the choice, so only a sum of negative terms has one. Then :func:`best_signs` chooses the
    adders' signs for the whole tree. And the tree is planned so in each of
    :data:`TERNARY_ORDERS` (up to :data:`MAX_LEAVES_FOR_ORDERS` leaves): the one with the fewest
    LUTs (:func:`tree_luts`) that is no deeper than the first is kept.
    """
    if arity not in (2, 3):
        raise ValueError(f"arity must be 2 or 3, not {arity!r}")
    if arity == 2:
        return _plan_levels(ranges, leaves, depth_of, arity, False, TERNARY_ORDERS[0])
    orders = TERNARY_ORDERS if len(leaves) <= MAX_LEAVES_FOR_ORDERS else TERNARY_ORDERS[:1]
    best: SumPlan | None = None
    best_cost = 0
    for order in orders:
        plan = _plan_levels(ranges, leaves, depth_of, arity, True, order)
        if plan.root.negative:
            plan = _plan_levels(ranges, leaves, depth_of, arity, False, order)
        plan = best_signs(ranges, plan)
        if best is not None and plan.depth > best.depth:
            continue
        cost = tree_luts(plan)
        if best is None or cost < best_cost:
            best, best_cost = plan, cost
    assert best is not None
    return best


def _plan_levels(
    ranges: RangeModel,
    leaves: list[Node],
    depth_of: Callable[[Node], int] | None,
    arity: int,
    choose_signs: bool,
    order: Callable[[Node], tuple[int, ...]],
) -> SumPlan:
    """:func:`plan_sum`'s levels, the adders below the root choosing their sign when
    ``choose_signs``, each level's ready nodes sorted by ``order`` before grouping."""
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
            current = sorted(ready, key=order)
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
