"""Shared-subexpression adder graphs: exact values and widths, fewer adder bits, depth bound."""

import numpy as np
import pytest

from hgq_rtl.ir.dense import DenseLayer
from hgq_rtl.ir.fixed import RoundMode
from hgq_rtl.ir.formats import TensorFormat
from rtl_gen import adder_patterns
from rtl_gen.adder_graph import SharedAdderGraph
from rtl_gen.adder_patterns import Term, _tri
from rtl_gen.adder_tree import Node, RangeModel, csd
from rtl_gen.components import DensePlan


def _matrix_layer(rng: np.random.Generator, outputs: int, inputs: int, bits: int):
    weight = rng.integers(-(2 ** (bits - 1)), 2 ** (bits - 1), size=(outputs, inputs))
    fmt = TensorFormat(np.ones(inputs, bool), np.full(inputs, 5), np.zeros(inputs, int))
    wide = TensorFormat(np.ones(outputs, bool), np.full(outputs, 30), np.zeros(outputs, int))
    zeros = np.zeros(outputs, int)
    layer = DenseLayer(
        "d", weight, np.zeros_like(weight), zeros, zeros, wide, round_mode=RoundMode.TRN
    )
    return layer, fmt


def _signal(node: Node, x: list[int], memo: dict[int, int]) -> int:
    """The integer the hardware signal of ``node`` holds, computed as the writers build it: an
    adder of any arity aligns its operands' signals and adds or subtracts them."""
    if node.kind == "ref":
        return _signal(node.operands[0], x, memo)
    if node.kind == "input":
        return x[node.input_index]
    if node.kind == "const":
        return node.hi
    if node.ident not in memo:
        total = 0
        for op, subtracted in zip(node.operands, node.subtracted, strict=True):
            term = _signal(op, x, memo) << (op.shift - node.shift)
            total += -term if subtracted else term
        memo[node.ident] = total
    return memo[node.ident]


def _value(node: Node, x: list[int], memo: dict[int, int]) -> int:
    signal = _signal(node, x, memo)
    return (-signal if node.negative else signal) << node.shift


@pytest.mark.parametrize("seed", range(3))
def test_shared_plan_is_exact_and_within_its_widths(seed):
    rng = np.random.default_rng(seed)
    layer, fmt = _matrix_layer(rng, 7, 9, 6)
    plan = DensePlan(layer, fmt, share=True)
    assert plan.shared, "a 7x9 6-bit matrix has recurring patterns"
    lo, hi = fmt.int_range()
    vectors = [lo, hi] + list(rng.integers(lo, hi + 1, size=(200, lo.size)))
    for x in vectors:
        x = [int(v) for v in x]
        memo: dict[int, int] = {}
        for node in plan.adders():
            assert node.lo <= _signal(node, x, memo) <= node.hi, "a width is too narrow"
        got = [_value(n.tree.root, x, memo) for n in plan.neurons]
        assert got == [int(v) for v in layer.weight @ np.array(x)]


def test_sharing_needs_fewer_adders_and_adder_bits_than_the_trees():
    layer, fmt = _matrix_layer(np.random.default_rng(5), 16, 16, 8)
    shared = DensePlan(layer, fmt, share=True)
    trees = DensePlan(layer, fmt, share=False)
    assert shared.adder_count() < 0.8 * trees.adder_count()
    assert shared.adder_bits() < 0.85 * trees.adder_bits()


@pytest.mark.parametrize("max_depth", [1, 2, 3])
def test_depth_bound_is_respected(max_depth):
    rng = np.random.default_rng(11)
    weight = rng.integers(-64, 64, size=(10, 12))
    ranges = RangeModel([-128] * 12, [127] * 12)
    inputs = {j: ranges.leaf(j, 0, 1) for j in range(12)}
    outputs = [
        [Term(j, p, d < 0) for j, w in enumerate(row) for p, d in csd(int(w))] for row in weight
    ]
    graph = SharedAdderGraph(ranges, outputs, inputs, max_depth=max_depth)
    assert graph.shared
    assert max(graph.depth.values()) <= max_depth
    _assert_outputs_sum_to_rows(graph, weight)


def _assert_outputs_sum_to_rows(graph: SharedAdderGraph, weight) -> None:
    """Every output's remaining terms, expanded through the shared variables, sum to its row."""
    for row, terms in zip(weight, graph.outputs, strict=True):
        total: dict[int, int] = {}
        for t in terms:
            for j, c in graph.variables[t.variable].coefficients.items():
                total[j] = total.get(j, 0) + (-c if t.negative else c) * (1 << t.shift)
        assert {j: c for j, c in total.items() if c} == {j: int(w) for j, w in enumerate(row) if w}


def _greedy_by_recounting(ranges, outputs, inputs, max_depth):
    """The greedy CSE the graph implements, recounting every pattern from scratch each step."""
    variables, depth = dict(inputs), dict.fromkeys(inputs, 0)
    outputs = [list(terms) for terms in outputs]
    chosen, dead = [], set()

    def magnitude(v):
        lo, hi = ranges.value_range(variables[v].coefficients, 0)
        return max(-lo, hi)

    def rank(key, counts):
        a, b, d, _ = key
        width = ((magnitude(a) << max(-d, 0)) + (magnitude(b) << max(d, 0))).bit_length()
        return (-counts[key], width, 1 + max(depth[a], depth[b]), key)

    while True:
        counts: dict[tuple, int] = {}
        for terms in outputs:
            for p, t in enumerate(terms):
                for u in terms[p + 1 :]:
                    t1, u1 = sorted((t, u), key=lambda x: (x.variable, x.shift))
                    key = (
                        t1.variable,
                        u1.variable,
                        u1.shift - t1.shift,
                        t1.negative != u1.negative,
                    )
                    counts[key] = counts.get(key, 0) + 1

        live = [
            k
            for k, c in counts.items()
            if c >= 2 and k not in dead and 1 + max(depth[k[0]], depth[k[1]]) <= max_depth
        ]
        if not live:
            return chosen, outputs
        a, b, d, opposite = key = min(live, key=lambda k: rank(k, counts))
        matches = []
        for index, terms in enumerate(outputs):
            where = {(t.variable, t.shift): k for k, t in enumerate(terms)}
            used: set[int] = set()
            for k, t in enumerate(terms):
                partner = where.get((b, t.shift + d))
                if t.variable != a or k in used or partner is None or partner in used:
                    continue
                if (t.negative != terms[partner].negative) == opposite:
                    used.update((k, partner))
                    matches.append((index, k, partner))
        if len(matches) < 2:
            dead.add(key)
            continue
        v = len(variables)
        variables[v] = ranges.add(
            ranges.ref(variables[a], max(-d, 0), False),
            ranges.ref(variables[b], max(d, 0), opposite),
        )
        depth[v] = 1 + max(depth[a], depth[b])
        chosen.append(variables[v])
        for index in sorted({m[0] for m in matches}):
            pairs = [(k, p) for i, k, p in matches if i == index]
            gone = {k for pair in pairs for k in pair}
            terms = outputs[index]
            outputs[index] = [t for k, t in enumerate(terms) if k not in gone] + [
                Term(v, min(terms[k].shift, terms[k].shift + d), terms[k].negative)
                for k, _ in pairs
            ]


def _random_terms(seed: int, outputs: int = 9, inputs: int = 8, bits: int = 8):
    rng = np.random.default_rng(seed)
    weight = rng.integers(-(2 ** (bits - 1)), 2 ** (bits - 1), size=(outputs, inputs))
    shifts = rng.integers(0, 3, size=weight.shape)
    ranges = RangeModel([-128] * inputs, [127] * inputs)
    leaves = {j: ranges.leaf(j, 0, 1) for j in range(inputs)}
    terms = [
        [Term(j, p + int(shifts[i, j]), d < 0) for j, w in enumerate(row) for p, d in csd(int(w))]
        for i, row in enumerate(weight)
    ]
    return weight << shifts, ranges, terms, leaves


def _describe(node):
    return node.coefficients, node.lo, node.hi, node.shift, node.subtract


@pytest.mark.parametrize(("seed", "max_depth"), [(0, 2), (1, 3), (2, 9), (3, 1), (4, 4)])
def test_graph_makes_the_same_choices_as_recounting_greedy(seed, max_depth):
    """The batched rounds, incremental counts, candidate levels and tie-breaks choose exactly
    what recounting every pattern after every single choice would."""
    _, ranges, outputs, inputs = _random_terms(seed)
    graph = SharedAdderGraph(ranges, outputs, inputs, max_depth=max_depth)
    shared, remaining = _greedy_by_recounting(ranges, outputs, inputs, max_depth)
    assert len(shared) > 5
    assert [_describe(n) for n in graph.shared] == [_describe(n) for n in shared]
    assert graph.outputs == remaining


def test_sparse_table_and_small_chunks_make_the_same_choices(monkeypatch):
    """Patterns past the dense key range are found by binary search; pair keys are computed in
    chunks: with a tiny dense range and tiny chunks the plan is the recounting greedy's still."""
    monkeypatch.setattr(adder_patterns, "_DENSE_ENTRIES", 200)
    monkeypatch.setattr(adder_patterns, "_CHUNK", 7)
    _, ranges, outputs, inputs = _random_terms(5, outputs=12, inputs=10)
    graph = SharedAdderGraph(ranges, outputs, inputs, max_depth=3)
    assert graph._dense < _tri(10) * graph._stride, "inputs' patterns must reach the sparse part"
    shared, remaining = _greedy_by_recounting(ranges, outputs, inputs, 3)
    assert [_describe(n) for n in graph.shared] == [_describe(n) for n in shared]
    assert graph.outputs == remaining


def _disjoint_uses(terms: list[Term]) -> dict[tuple, int]:
    """Per pattern ``(a, b, d, opposite)``, the most disjoint pairs of ``terms`` that are uses of
    it (taken by increasing shift: uses of one pattern overlap only in chains ``s, s + d, ..``)."""
    pairs: dict[tuple, list[tuple[Term, Term]]] = {}
    ordered = sorted(terms, key=lambda t: (t.variable, t.shift))
    for k, t in enumerate(ordered):
        for u in ordered[k + 1 :]:
            key = (t.variable, u.variable, u.shift - t.shift, t.negative != u.negative)
            pairs.setdefault(key, []).append((t, u))
    uses = {}
    for key, found in pairs.items():
        used: set[Term] = set()
        for t, u in sorted(found, key=lambda p: p[0].shift):
            if t not in used and u not in used:
                used.update((t, u))
        uses[key] = len(used) // 2
    return uses


@pytest.mark.parametrize(("seed", "max_depth"), [(6, 3), (7, None)])
def test_graph_invariants_on_a_larger_matrix(seed, max_depth):
    """Exact sums, the depth bound, fewer adders than without sharing, and nothing left to
    share: no pattern within the depth bound has two disjoint uses."""
    weight, ranges, outputs, inputs = _random_terms(seed, outputs=40, inputs=24)
    graph = SharedAdderGraph(ranges, outputs, inputs, max_depth=max_depth)
    assert len(graph.shared) > 100
    if max_depth is not None:
        assert max(graph.depth.values()) <= max_depth
    _assert_outputs_sum_to_rows(graph, weight)
    unshared = sum(max(len(terms) - 1, 0) for terms in outputs)
    shared = len(graph.shared) + sum(max(len(terms) - 1, 0) for terms in graph.outputs)
    assert shared < unshared
    uses: dict[tuple, int] = {}
    for terms in graph.outputs:
        for key, n in _disjoint_uses(terms).items():
            uses[key] = uses.get(key, 0) + n
    for (a, b, d, opposite), n in uses.items():
        if max_depth is None or 1 + max(graph.depth[a], graph.depth[b]) <= max_depth:
            assert n < 2, f"pattern {(a, b, d, opposite)} is left with {n} disjoint uses"


def test_rounds_batch_several_choices():
    """The table is updated once per round, and a round takes several choices."""
    rounds = []

    class Counting(SharedAdderGraph):
        def _round(self, index):
            rounds.append(len(self.shared))
            super()._round(index)

    _, ranges, outputs, inputs = _random_terms(8, outputs=32, inputs=32)
    graph = Counting(ranges, outputs, inputs, max_depth=3)
    assert len(rounds) < len(graph.shared) / 2


def _sum_value(node: Node, x: list[int]) -> int:
    """The value of an adder of any arity from its operands' values, the way the hardware
    builds it: the operands' signals aligned and added or subtracted, the result negated when
    the node is negative."""
    signal = 0
    for op, subtracted in zip(node.operands, node.subtracted, strict=True):
        sign = -1 if op.negative else 1
        own = sign * sum(c * x[j] for j, c in op.coefficients.items()) >> op.shift
        term = own << (op.shift - node.shift)
        signal += -term if subtracted else term
    return (-signal if node.negative else signal) << node.shift


def test_two_negative_operands_of_three_are_negated_where_that_costs_fewer_luts():
    """``a - b - c`` costs two carry-in LUTs more than ``-(b + c - a)``, and the lowest
    operand's bits below the next one's pass through only when it is added: asked to choose its
    sign, the sum is negated where that is cheaper (else never), and its value stays exact."""
    ranges = RangeModel([-8, -8, -8], [7, 7, 7])
    x = ranges.leaf

    def three(low: tuple[int, int], *others: tuple[int, int], choose: bool = True) -> Node:
        leaves = [x(0, low[0], low[1])] + [x(j + 1, s, d) for j, (s, d) in enumerate(others)]
        return ranges.add(*leaves, choose_sign=choose)

    narrow = three((0, 1), (1, -1), (1, -1))  # lowest added, gap 1: negated costs 1 LUT, not 2
    assert narrow.negative and sum(narrow.subtracted) == 1
    wide = three((0, 1), (3, -1), (3, -1))  # gap 3: three bits lost, two LUTs saved: kept
    assert not wide.negative and sum(wide.subtracted) == 2
    low_negative = three((0, -1), (2, 1), (2, -1))  # negated, the lowest operand is added
    assert low_negative.negative and not low_negative.subtracted[0]
    unchosen = three((0, 1), (1, -1), (1, -1), choose=False)
    assert not unchosen.negative and sum(unchosen.subtracted) == 2
    rng = np.random.default_rng(0)
    for node in (narrow, wide, low_negative, unchosen):
        expected = dict(node.coefficients)
        for v in rng.integers(-8, 8, size=(50, 3)).tolist():
            value = _sum_value(node, v)
            assert value == sum(c * v[j] for j, c in expected.items())
            signal = (-value if node.negative else value) >> node.shift
            assert node.lo <= signal <= node.hi  # the signal fits the node's width


def _without_later_passes(monkeypatch) -> None:
    """Leave out the passes that run after the tree planning choices these tests compare
    (:meth:`SharedAdderGraph.fuse_single_uses`, :meth:`SharedAdderGraph.unshare_unprofitable`,
    tested in ``tests/test_fused_patterns.py``): they would make the compared plans share
    different patterns."""
    monkeypatch.setattr(SharedAdderGraph, "fuse_single_uses", lambda self, extra: 0)
    monkeypatch.setattr(SharedAdderGraph, "unshare_unprofitable", lambda self, *args: 0)


def test_ternary_plans_need_fewer_luts_with_the_sign_choice(monkeypatch):
    """On random layers, choosing the sign of two-negative sums lowers the plan's LUT count
    (a LUT per adder bit above the pass-through ones, two per second subtraction), choosing
    the signs for the whole tree (:func:`~rtl_gen.adder_tree.best_signs`) lowers it further, the
    double subtractions fall, only sums of negative terms have a negative root (a negation in
    the requantizer), and the design stays bit-exact in Amaranth."""
    from hgq_rtl.ir import reference
    from hgq_rtl.ir.random import random_model
    from rtl_gen import adder_tree
    from rtl_gen.emit import RtlOptions, build
    from rtl_gen.simulate import simulate

    def luts(plan: DensePlan) -> tuple[int, int]:
        total = doubles = 0
        for adder in plan.adders():
            shifts = sorted(op.shift - adder.shift for op in adder.operands)
            lowest = min(adder.operands, key=lambda op: op.shift)
            low = adder.subtracted[adder.operands.index(lowest)]
            total += adder.width - (0 if low else min(shifts[1], adder.width - 1))
            if sum(adder.subtracted) == 2:
                doubles += 1
                total += adder_tree.SECOND_SUBTRACTION_LUTS
        return total, doubles

    _without_later_passes(monkeypatch)
    ir = random_model(np.random.default_rng(5), (24, 16, 8), name="m")
    options = RtlOptions(ternary_adders=True)
    chosen = build(ir, options)
    with monkeypatch.context() as patch:  # the adders' own choice only (no whole-tree choice)
        patch.setattr(adder_tree, "best_signs", lambda ranges, plan: plan)
        local = build(ir, options)
    monkeypatch.setattr(adder_tree, "best_signs", lambda ranges, plan: plan)
    monkeypatch.setattr(adder_tree, "negated_is_cheaper", lambda operands: False)
    plain = build(ir, options)
    whole = [luts(layer.plan)[0] for layer in chosen.layers]
    own = [luts(layer.plan)[0] for layer in local.layers]
    assert all(a <= b for a, b in zip(whole, own, strict=True)) and sum(whole) < sum(own)
    for with_choice, without in zip(chosen.layers, plain.layers, strict=True):
        (cost, doubles), (plain_cost, plain_doubles) = luts(with_choice.plan), luts(without.plan)
        assert cost < plain_cost and doubles < plain_doubles
    negated = [
        a for b in chosen.layers for a in b.plan.adders() if a.negative and len(a.operands) == 3
    ]
    assert negated, "no sum was negated: the test does not exercise the choice"
    for neuron in (n for b in chosen.layers for n in b.plan.neurons):
        if neuron.tree.root.negative:
            assert all(c < 0 for c in neuron.tree.root.coefficients.values())
    x = reference.random_inputs(ir.input, 300, np.random.default_rng(1))
    assert np.array_equal(simulate(chosen, x), reference.run(ir, x))


def _ternary_plans(monkeypatch, layer, fmt, **undo) -> tuple[DensePlan, DensePlan]:
    """The ternary plan of ``layer`` as built, and as built with ``undo``'s attributes of
    :mod:`rtl_gen.adder_tree` / :class:`SharedAdderGraph` patched (``name=value``)."""
    from rtl_gen import adder_tree

    built = DensePlan(layer, fmt, ternary=True, max_shared_depth=2)
    for name, value in undo.items():
        owner = SharedAdderGraph if name == "fill_spare_slots" else adder_tree
        monkeypatch.setattr(owner, name, value)
    return built, DensePlan(layer, fmt, ternary=True, max_shared_depth=2)


def _plan_luts(plan: DensePlan) -> int:
    from rtl_gen.adder_tree import adder_luts

    return sum(adder_luts(adder) for adder in plan.adders())


def test_spare_slots_take_back_patterns_without_adding_adders(monkeypatch):
    """A ternary tree of an even number of leaves has a free adder input: the patterns whose
    every use lands in one are written back as their operands, which drops their adders and adds
    none to the trees (a tree of ``n`` leaves takes ``ceil((n - 1) / 2)`` adders either way),
    and every output still sums to its row."""
    _without_later_passes(monkeypatch)
    layer, fmt = _matrix_layer(np.random.default_rng(3), 12, 10, 6)
    filled, shared = _ternary_plans(monkeypatch, layer, fmt, fill_spare_slots=lambda s, e: 0)
    dropped = len(shared.shared) - len(filled.shared)
    assert dropped > 0, "no pattern was taken back: the test does not exercise the filling"
    assert filled.adder_count() == shared.adder_count() - dropped
    assert _plan_luts(filled) < _plan_luts(shared)
    for row, neuron in zip(layer.weight, filled.neurons, strict=True):
        root = neuron.tree.root
        assert root.coefficients == {j: int(w) for j, w in enumerate(row) if w}


def test_ternary_trees_take_the_cheapest_order_no_deeper_than_the_first(monkeypatch):
    """Each output's tree is planned in every order of ``TERNARY_ORDERS`` and the cheapest kept
    (no deeper than the first order's): no tree costs more LUTs or levels than the first order
    alone plans, the layer costs fewer, and every output still sums to its row."""
    from rtl_gen import adder_tree

    layer, fmt = _matrix_layer(np.random.default_rng(4), 16, 12, 6)
    first = adder_tree.TERNARY_ORDERS[:1]
    best, single = _ternary_plans(monkeypatch, layer, fmt, TERNARY_ORDERS=first)
    costs = [
        (adder_tree.tree_luts(a.tree), b_cost, a.tree.depth, b.tree.depth)
        for a, b in zip(best.neurons, single.neurons, strict=True)
        for b_cost in [adder_tree.tree_luts(b.tree)]
    ]
    assert all(ours <= theirs and deep <= shallow for ours, theirs, deep, shallow in costs)
    assert sum(c[0] for c in costs) < sum(c[1] for c in costs)
    for row, neuron in zip(layer.weight, best.neurons, strict=True):
        assert neuron.tree.root.coefficients == {j: int(w) for j, w in enumerate(row) if w}
