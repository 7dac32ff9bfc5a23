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
takes back the patterns whose every use fits a tree's free adder input (they save no adder).

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

import numpy as np

from .adder_patterns import PatternTable, Term
from .adder_tree import Node, RangeModel

_log = logging.getLogger(__name__)

#: Most pairs of terms within one output, summed over a layer's outputs, that the planner counts
#: (its work and memory grow with them: about 40 bytes a pair at the peak, measured on a
#: 784 -> 64 layer with 4.4e7 pairs, 1.8 GB). A wider layer (20,000 inputs: ~1e9 pairs) is
#: planned as plain adder trees instead, with a note on stderr.
MAX_PATTERN_PAIRS = 1 << 26


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

    def leaves(self, index: int) -> list[Node]:
        """Output ``index``'s remaining terms as (shifted, signed) references to variables."""
        return [
            self.ranges.ref(self.variables[t.variable], t.shift, t.negative)
            for t in self.outputs[index]
        ]
