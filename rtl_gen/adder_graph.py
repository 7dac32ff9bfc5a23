"""Shared-subexpression adder graphs for constant matrices (multiple constant multiplication).

Every output of a dense layer is a sum of signed, shifted copies of its inputs (one per non-zero
CSD digit). Many outputs contain the same *pattern* ``x_a ± (x_b << d)`` at different overall
shifts; computing the pattern once and reusing it saves an adder per extra use. The greedy loop
below repeatedly takes the pattern that occurs most often across the layer (ties: the narrower
adder, then the shallower one, then the smaller pattern ``(a, b, d, opposite)``), builds it as a
new variable, and substitutes it wherever it occurs without overlap, until no pattern occurs
twice. Patterns may contain earlier patterns, so the result is a graph, not a forest; a depth
bound keeps its critical path short.

Exact widths survive sharing: every node is still a linear function of the independent inputs
(:class:`~rtl_gen.adder_tree.RangeModel`), so its range is exact.

With three-input adders in the output trees, :meth:`SharedAdderGraph.fill_spare_slots` then
takes back the patterns whose every use fits a tree's free adder input (they save no adder),
:meth:`SharedAdderGraph.fuse_single_uses` builds a pattern used only inside another into it
(a three-input shared adder), and :meth:`SharedAdderGraph.unshare_unprofitable` takes back the
patterns that cost more LUTs than their outputs' trees save with them.

The terms, the table of pattern counts and the search for the most frequent pattern are in
:class:`~rtl_gen.adder_patterns.PatternTable` (:mod:`rtl_gen.adder_patterns`, which also
explains how the counting stays fast); this module makes the choices and builds the graph.

The greedy choices are made one at a time, but their bookkeeping is batched. Each choice is
substituted in the outputs' term dictionaries at once; the table is brought up to date only
when a *round* ends: one pass retires the pairs of every removed term and one counts the pairs
of every new term (each output's terms sit in a padded row of slots, so these passes are
row-wise numpy). Within a round the table is stale, but its counts are upper bounds. A round
goes on while they still prove the next choice to be the one a fully updated table would give:
the best entry's count is recounted from the terms (a stale one is corrected and the search
repeated), so nothing else can outrank it, and no pattern of a variable built in this round can
outrank it either: such a pattern occurs at most as often as that variable was used, is one
level deeper, and is at least as wide as the variable's magnitude plus the smallest magnitude
of any variable. The plan is therefore exactly the one-at-a-time greedy's (same input, same
plan).

Bounded work. The counting grows with the pairs of terms within each output, quadratic in a
layer's width; above :data:`MAX_PATTERN_PAIRS` of them (a layer of about 5,000 dense inputs or
more) the layer is planned as plain adder trees instead, with a note on stderr, so that a wide
layer costs time in proportion to its terms, never the machine's memory.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from . import adder_tree
from .adder_patterns import PatternTable, Term
from .adder_tree import Node, RangeModel, adder_luts

_log = logging.getLogger(__name__)

#: Most pairs of terms within one output, summed over a layer's outputs, that the planner counts
#: (its work and memory grow with them: about 40 bytes a pair at the peak, measured on a
#: 784 -> 64 layer with 4.4e7 pairs, 1.8 GB). A wider layer (20,000 inputs: ~1e9 pairs) is
#: planned as plain adder trees instead, with a note on stderr.
MAX_PATTERN_PAIRS = 1 << 26
#: :meth:`SharedAdderGraph.unshare_unprofitable` weighs only the patterns whose outputs have at
#: most this many leaves together (each weighing plans those outputs' trees again): on the
#: digits model, patterns used twice in outputs of 10 to 33 leaves
MAX_UNSHARE_LEAVES = 64


def pattern_pairs(outputs: list[list[Term]]) -> int:
    """Pairs of terms within one output, summed over the outputs: the pattern occurrences the
    planner would count."""
    return sum(len(terms) * (len(terms) - 1) // 2 for terms in outputs)


class SharedAdderGraph(PatternTable):
    """Greedy common-subexpression elimination over the CSD terms of a layer's outputs.

    Parameters
    ----------
    ranges
        Range model of the layer's inputs (variables ``0 .. n_inputs-1`` are the inputs).
    outputs
        For each output, its terms (at most one term per variable and shift).
    inputs
        Leaf node of each input, as built by ``ranges.leaf(j, 0, 1)``.
    max_depth
        No shared pattern deeper than this (adder levels from the inputs); ``None``: unbounded.

    Attributes
    ----------
    variables
        Node of every variable: the inputs, then one per shared pattern.
    depth
        Adder levels of every variable.
    shared
        The shared patterns' adder nodes, in the order they were built.
    outputs
        Each output's remaining terms (kept terms in their order, then substituted ones).
    """

    def __init__(
        self,
        ranges: RangeModel,
        outputs: list[list[Term]],
        inputs: dict[int, Node],
        *,
        max_depth: int | None = None,
    ) -> None:
        self.ranges = ranges
        self.variables: dict[int, Node] = dict(inputs)
        self.depth: dict[int, int] = dict.fromkeys(inputs, 0)
        self.shared: list[Node] = []
        #: each shared variable's pattern ``(a, b, d, opposite)``: ``x_a ± (x_b << d)``
        self.patterns: dict[int, tuple[int, int, int, bool]] = {}
        #: the three-input shared adders (:meth:`fuse_single_uses`): each one's operands
        #: ``(variable, shift, negative)``
        self.fused: dict[int, list[tuple[int, int, bool]]] = {}
        #: why nothing was shared although sharing was asked for (None: the planner ran)
        self.skipped: str | None = None
        pairs = pattern_pairs(outputs)
        if pairs > MAX_PATTERN_PAIRS:  # degrade to plain adder trees before any allocation
            widest = max(len(terms) for terms in outputs)
            self.skipped = (
                f"a layer of {len(outputs)} outputs with up to {widest} CSD terms each has "
                f"{pairs:.3g} pairs of terms, more than the shared-adder planner's bound of "
                f"{MAX_PATTERN_PAIRS:.3g}: planned as plain adder trees (no shared "
                "subexpressions; more adders, same results)"
            )
            _log.warning("hgq-rtl: note: %s", self.skipped)
            self.outputs = [list(terms) for terms in outputs]
            return
        super().__init__(outputs, inputs, max_depth)
        self._run()
        self.outputs = [
            [Term(*self._decode_term(code), negative) for code, negative in codes.items()]
            for codes in self._terms
        ]

    def _run(self) -> None:
        while (index := self._best()) is not None:
            self._round(index)
            if self._pending.size > 64:  # rank the new candidates with the others
                merged = np.concatenate([self._candidates, self._pending])
                merged = merged[self._counts[merged] >= self._level]
                self._candidates = merged[self._rank(merged)]
                self._pending = self._pending[:0]

    def _round(self, index: int) -> None:
        """Substitute pattern ``index`` and the choices that provably follow it, then update
        the table once (see the module docstring)."""
        restore: dict[int, int] = {}  # table counts, before the round, of those changed in it
        removed: list[tuple[int, int]] = []  # (output, slot) of removed terms
        added: list[tuple[int, int, int, bool]] = []  # (output, slot, code, negative) of new ones
        # A pattern of a variable built in this round occurs at most as often as the variable is
        # used, is one level deeper, and is at least as wide as the variable plus the smallest
        # magnitude of any variable: per number of uses, the least (width, depth) so bounded
        smallest = self._min_magnitude
        most_uses = 0
        least: dict[int, tuple[int, int]] = {}
        while True:
            count, width = int(self._counts[index]), int(self._width[index])
            depth = int(self._key_depth[index])
            if most_uses > count or least.get(count, (width + 1, 0)) < (width, depth):
                break  # a new pattern may outrank it
            a, b, d, opposite = self._decode_one(int(self._keys[index]))
            matches, pairs = self._matches(a, b, d, opposite)
            if pairs != count:  # a stale count (only terms removed in this round make one)
                if not removed:
                    raise RuntimeError(f"pattern {index} counted {count} times, found {pairs}")
                restore.setdefault(index, count)
                self._counts[index] = pairs
            elif (uses := sum(len(m) for m in matches.values())) < 2:
                restore.pop(index, None)
                self._counts[index] = 0  # never again: counts only fall
            else:  # its count is exact, so it is the greedy's next choice
                restore.setdefault(index, count)
                self._counts[index] = 0  # every pair of it is used or overlaps a use
                variable = self._substitute(a, b, d, opposite, matches, removed, added)
                bound = ((self._magnitude[variable] + smallest).bit_length(), self.depth[variable])
                most_uses = max(most_uses, uses)
                least[uses] = min(least.get(uses, bound), bound)
                if self._magnitude[variable] < smallest:
                    break
            index = self._best(collect=False)
            if index is None:
                break
        for index, count in restore.items():
            self._counts[index] = count
        if removed:
            rows, slots = np.array(removed, np.int64).T
            self._remove_patterns(self._new_pair_keys(rows, slots))
            self._mark[rows, slots] = -1
        if added:
            rows, slots, codes, negative = np.array(added, np.int64).T
            self._fill(rows, slots, codes, negative)
            order = np.argsort(-codes, kind="stable")  # so the marked term is the later one
            self._add_patterns(self._new_pair_keys(rows[order], slots[order], latest=True))
        if 5 * max(map(len, self._slot), default=0) <= 4 * self._mark.shape[1] - 5:
            self._build_rows()

    def _matches(
        self, a: int, b: int, d: int, opposite: bool
    ) -> tuple[dict[int, list[tuple]], int]:
        """Non-overlapping occurrences ``(shift of x_a, shift of x_b, sign)`` per output, and
        the number of all occurrences (pairs of terms, overlapping or not)."""
        found: dict[int, list[tuple]] = {}
        pairs = 0
        by_var = self._by_var
        for output in self._holders.get(a, set()) & self._holders.get(b, set()):
            first, second = by_var[output][a], by_var[output][b]
            if a != b:  # an x_a term and an x_b term are each in one occurrence at most
                mine = [
                    (shift, shift + d, negative)
                    for shift, negative in first.items()
                    if (other := second.get(shift + d)) is not None
                    and (negative != other) == opposite
                ]
                if mine:
                    found[output] = mine
                    pairs += len(mine)
                continue
            used: set[int] = set()  # shifts already matched
            for shift, negative in first.items():
                partner = shift + d
                other = second.get(partner)
                if other is None or (negative != other) != opposite:
                    continue
                pairs += 1
                if shift in used or partner in used:
                    continue
                used.update((shift, partner))
                found.setdefault(output, []).append((shift, partner, negative))
        return found, pairs

    def _substitute(
        self,
        a: int,
        b: int,
        d: int,
        opposite: int,
        matches: dict[int, list[tuple]],
        removed: list[tuple[int, int]],
        added: list[tuple[int, int, int, bool]],
    ) -> int:
        """Build ``x_a ± x_b << d`` once and replace its ``matches`` in the term dictionaries;
        record the slots whose terms go and come. Returns the new variable."""
        ranges = self.ranges
        # x_a << max(-d, 0)  ±  x_b << max(d, 0); an occurrence at shift s uses it at min(s, s + d)
        node = ranges.add(
            ranges.ref(self.variables[a], max(-d, 0), False),
            ranges.ref(self.variables[b], max(d, 0), bool(opposite)),
        )
        variable = self._next
        self._next += 1
        self.variables[variable] = node
        self.patterns[variable] = (a, b, d, bool(opposite))
        self.depth[variable] = 1 + max(self.depth[a], self.depth[b])
        self._var_depth[variable] = self.depth[variable]
        self._set_magnitude(variable, node)
        self.shared.append(node)
        holders = self._holders.setdefault(variable, set())
        counted = self.max_depth is None or self.depth[variable] < self.max_depth
        n_shifts, low = self._n_shifts, self._min_shift
        for output, pairs in matches.items():
            codes, by_var, slot_of = self._terms[output], self._by_var[output], self._slot[output]
            for var, shifts in ((a, [p[0] for p in pairs]), (b, [p[1] for p in pairs])):
                mine = by_var[var]
                for shift in shifts:
                    code = var * n_shifts + shift - low
                    del codes[code], mine[shift]
                    removed.append((output, slot_of.pop(code)))
                if not mine:
                    del by_var[var]
                    self._holders[var].discard(output)
            new = by_var[variable] = {}
            for k, (s, u, negative) in enumerate(pairs):
                shift = u if d < 0 else s
                code = variable * n_shifts + shift - low
                codes[code] = new[shift] = negative
                if counted:
                    slot = removed[k - 2 * len(pairs)][1]  # the slot x_a << s had
                    slot_of[code] = slot
                    added.append((output, slot, code, negative))
            holders.add(output)
        return variable

    def fill_spare_slots(self, extra: list[int]) -> int:
        """Unshare the patterns whose every use can fill a spare slot of a three-input tree.

        A tree of three-input adders over ``n`` leaves takes ``ceil((n - 1) / 2)`` adders, so
        when ``n`` is even its last adder has a free input: one more leaf costs no adder. A
        shared pattern used once in each of some outputs with even ``n`` (and by no other
        pattern) can therefore be written back as its two operands there, which drops its own
        adder and adds none. Chosen widest pattern first (the most LUTs saved); each such
        output's ``n`` turns odd, so it takes no second one. ``extra``: leaves of each output
        beyond its terms (its constant). Returns the number of patterns unshared.

        The frequency-first greedy cannot see this: it takes every pattern that occurs twice.
        On the digits model (``hgq-rtl rtl`` defaults) 7 of its 231 patterns are taken back, 43
        fewer LUTs by the plan's count (Yosys synth_xilinx: 4,417 -> 4,400 LUTs).
        """
        leaves = [len(terms) + e for terms, e in zip(self.outputs, extra, strict=True)]
        in_patterns: dict[int, int] = {}
        for a, b, _, _ in self.patterns.values():
            for v in (a, b):
                in_patterns[v] = in_patterns.get(v, 0) + 1
        users: dict[int, list[int]] = {}
        for i, terms in enumerate(self.outputs):
            for t in terms:
                if t.variable in self.patterns:
                    users.setdefault(t.variable, []).append(i)
        order = sorted(self.patterns, key=lambda v: (-self.variables[v].width, v))
        dropped: set[int] = set()
        for v in order:
            outputs = users.get(v, [])
            if in_patterns.get(v) or len(set(outputs)) != len(outputs):
                continue
            if any(leaves[i] % 2 for i in outputs):
                continue
            a, b, d, opposite = self.patterns[v]
            rewritten = {}
            for i in outputs:
                terms = self.outputs[i]
                (use,) = [t for t in terms if t.variable == v]
                first = Term(a, use.shift + max(-d, 0), use.negative)
                second = Term(b, use.shift + max(d, 0), use.negative != opposite)
                taken = {(t.variable, t.shift) for t in terms}
                if (a, first.shift) in taken or (b, second.shift) in taken:
                    break  # two terms of one variable and shift: leave it shared
                rewritten[i] = [t for t in terms if t is not use] + [first, second]
            else:
                for i, terms in rewritten.items():
                    self.outputs[i] = terms
                    leaves[i] += 1
                for operand in (a, b):
                    in_patterns[operand] -= 1
                    if operand in self.patterns:
                        users.setdefault(operand, []).extend(outputs)
                dropped.add(v)
        if dropped:
            gone = {self.variables[v].ident for v in dropped}
            self.shared = [node for node in self.shared if node.ident not in gone]
            for v in dropped:
                del self.patterns[v]
        return len(dropped)

    def fuse_single_uses(self, extra: list[int]) -> int:
        """Build each pattern that is used inside only one other pattern as part of it: one
        three-input adder ``x_a ± (x_b << d) ± (x_c << e)`` where there were two two-input ones.

        A pattern ``P`` used once by exactly one pattern ``Q`` costs an adder of its own;
        written as its two operands in ``Q``, ``Q`` becomes a three-input adder (one LUT per bit
        with the ternary cells, as a two-input one), one adder level shallower, and ``P``'s
        adder is gone. Where ``P`` is also used by outputs, each such use is written back as
        its two operands, which costs no adder when the output's tree has a spare slot (an even
        number of leaves, as in :meth:`fill_spare_slots`): so ``P`` is fused only where every
        output using it does (once each). Of a ``Q`` with two such operands the wider is taken
        (the most LUTs saved). ``extra``: leaves of each output beyond its terms (its constant).
        For ternary plans, after :meth:`fill_spare_slots`. Returns the number of patterns fused.

        On the digits model (``hgq-rtl rtl`` defaults) 9 patterns are fused (Yosys
        synth_xilinx: 4,290 -> 4,273 LUTs).
        """
        leaves = [len(terms) + e for terms, e in zip(self.outputs, extra, strict=True)]
        users: dict[int, list[int]] = {}
        for i, terms in enumerate(self.outputs):
            for t in terms:
                users.setdefault(t.variable, []).append(i)
        parents: dict[int, list[int]] = {}
        for q, (a, b, _, _) in self.patterns.items():
            for v in (a, b):
                parents.setdefault(v, []).append(q)
        operands: dict[int, list[tuple[int, int, bool]]] = {
            v: self._pattern_operands(v) for v in self.patterns
        }
        fused: set[int] = set()
        for q in sorted(self.patterns):
            if len(operands[q]) != 2:
                continue
            single = [
                v
                for v, _, _ in operands[q]
                if v in self.patterns
                and v not in fused
                and len(operands[v]) == 2
                and parents[v] == [q]
                and self._can_write_back(v, users.get(v, []), leaves)
            ]
            if not single:
                continue
            p = max(single, key=lambda v: (self.variables[v].width, -v))
            (use,) = [(shift, negative) for v, shift, negative in operands[q] if v == p]
            operands[q] = [op for op in operands[q] if op[0] != p] + self._inside(p, *use)
            for i in users.get(p, []):
                terms = self.outputs[i]
                (term,) = [t for t in terms if t.variable == p]
                inner = [Term(*op) for op in self._inside(p, term.shift, term.negative)]
                self.outputs[i] = [t for t in terms if t is not term] + inner
                leaves[i] += 1
                for op in inner:
                    users.setdefault(op.variable, []).append(i)
            fused.add(p)
        if not fused:
            return 0
        rebuilt: set[int] = set()
        for v in sorted(self.patterns):
            ops = operands[v]
            if v in fused or (len(ops) == 2 and not any(u in rebuilt for u, _, _ in ops)):
                continue
            old = self.variables[v]
            refs = [self.ranges.ref(self.variables[u], s, n) for u, s, n in ops]
            node = self.ranges.add(*refs, choose_sign=True)
            if node.coefficients != old.coefficients or node.constant != old.constant:
                raise RuntimeError(f"pattern {v} changed its value")
            self.variables[v] = node
            self.depth[v] = 1 + max(self.depth[u] for u, _, _ in ops)
            rebuilt.add(v)
        for p in fused:
            del self.patterns[p], self.variables[p], self.depth[p]
        for v in list(self.patterns):
            if len(operands[v]) == 3:
                self.fused[v] = operands[v]
                del self.patterns[v]
        self.shared = [self.variables[v] for v in sorted({*self.patterns, *self.fused})]
        return len(fused)

    def _can_write_back(self, v: int, outputs: list[int], leaves: list[int]) -> bool:
        """Whether pattern ``v``'s uses in ``outputs`` can each be written back as its two
        operands at no adder's cost: once per output, each with a spare slot, and no output
        already holding a term of the same variable and shift."""
        if len(set(outputs)) != len(outputs) or any(leaves[i] % 2 for i in outputs):
            return False
        for i in outputs:
            terms = self.outputs[i]
            taken = {(t.variable, t.shift) for t in terms}
            (use,) = [t for t in terms if t.variable == v]
            inner = self._inside(v, use.shift, use.negative)
            if any((u, s) in taken for u, s, _ in inner) or inner[0][:2] == inner[1][:2]:
                return False
        return True

    def unshare_unprofitable(
        self, constants: list[int], depth_of: Callable[[Node], int] | None = None
    ) -> int:
        """Write back, as their two operands, the two-input patterns that cost more LUTs than
        they save: narrowest first, each pattern used by no other pattern whose adder's LUTs
        (:func:`~rtl_gen.adder_tree.adder_luts`) exceed what its outputs' ternary trees
        (:func:`~rtl_gen.adder_tree.plan_sum` over the terms and ``constants[i]``, leaves
        available at ``depth_of``) grow by without it (:func:`~rtl_gen.adder_tree.tree_luts`).
        For ternary plans, after :meth:`fuse_single_uses`. Returns the number of patterns
        unshared.

        Sharing saves a tree leaf per use; in a tree of three-input adders that is half an
        adder a leaf on average, so a pattern used twice saves about its own adder and may
        cost more than it saves (on the digits model, ``hgq-rtl rtl`` defaults: 10 of its
        patterns; Yosys synth_xilinx: 4,273 -> 4,244 LUTs).
        """
        ranges = self.ranges

        def tree_luts(i: int, terms: list[Term]) -> int:
            leaves = [ranges.ref(self.variables[t.variable], t.shift, t.negative) for t in terms]
            if constants[i]:
                leaves.append(ranges.const(constants[i]))
            return adder_tree.tree_luts(adder_tree.plan_sum(ranges, leaves, depth_of, arity=3))

        cost: dict[int, int] = {}
        users = self.pattern_users()
        dropped = 0
        for v in sorted(self.patterns, key=lambda v: (self.variables[v].width, v)):
            if users.get(v) or not (rewritten := self.written_back(v)):
                continue
            if sum(len(t) for t in rewritten.values()) > MAX_UNSHARE_LEAVES:
                continue  # the trees to plan again: bounded (a wide layer's patterns pay)
            for i in rewritten:
                if i not in cost:
                    cost[i] = tree_luts(i, self.outputs[i])
            after = {i: tree_luts(i, terms) for i, terms in rewritten.items()}
            if sum(after[i] - cost[i] for i in after) < adder_luts(self.variables[v]):
                cost.update(after)
                self.unshare(v, rewritten)
                dropped += 1
        return dropped

    def pattern_users(self) -> dict[int, int]:
        """How many patterns use each variable (as an operand)."""
        count: dict[int, int] = {}
        for ops in [*map(self._pattern_operands, self.patterns), *self.fused.values()]:
            for u, _, _ in ops:
                count[u] = count.get(u, 0) + 1
        return count

    def written_back(self, v: int) -> dict[int, list[Term]] | None:
        """The terms of every output using two-input pattern ``v`` with each use written back
        as its two operands, or ``None`` where an output would hold two terms of one variable
        and shift."""
        found: dict[int, list[Term]] = {}
        for i, terms in enumerate(self.outputs):
            uses = [t for t in terms if t.variable == v]
            if not uses:
                continue
            rest = [t for t in terms if t.variable != v]
            for use in uses:
                rest += [Term(*op) for op in self._inside(v, use.shift, use.negative)]
            if len({(t.variable, t.shift) for t in rest}) != len(rest):
                return None
            found[i] = rest
        return found

    def unshare(self, v: int, rewritten: dict[int, list[Term]]) -> None:
        """Drop two-input pattern ``v`` (used by no pattern), its outputs' terms becoming
        ``rewritten`` (:meth:`written_back`)."""
        gone = self.variables[v].ident
        for i, terms in rewritten.items():
            self.outputs[i] = terms
        self.shared = [node for node in self.shared if node.ident != gone]
        del self.patterns[v], self.variables[v], self.depth[v]

    def _inside(self, v: int, shift: int, negative: bool) -> list[tuple[int, int, bool]]:
        """The operands of ``±(pattern v << shift)`` as ``(variable, shift, negative)``."""
        return [(u, s + shift, n != negative) for u, s, n in self._pattern_operands(v)]

    def _pattern_operands(self, v: int) -> list[tuple[int, int, bool]]:
        """Pattern ``v``'s operands as ``(variable, shift, negative)``: ``x_a << max(-d, 0)``
        and ``±x_b << max(d, 0)``."""
        a, b, d, opposite = self.patterns[v]
        return [(a, max(-d, 0), False), (b, max(d, 0), opposite)]

    def leaves(self, index: int) -> list[Node]:
        """Output ``index``'s remaining terms as (shifted, signed) references to variables."""
        return [
            self.ranges.ref(self.variables[t.variable], t.shift, t.negative)
            for t in self.outputs[index]
        ]
