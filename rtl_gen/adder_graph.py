"""Shared-subexpression adder graphs for constant matrices (multiple constant multiplication).

Every output of a dense layer is a sum of signed, shifted copies of its inputs (one per non-zero
CSD digit). Many outputs contain the same *pattern* ``x_a ± (x_b << d)`` at different overall
shifts; computing the pattern once and reusing it saves an adder per extra use. The greedy loop
below repeatedly takes the pattern that occurs most often across the layer (ties: the narrower
adder, then the shallower one), builds it as a new variable, and substitutes it wherever it
occurs without overlap, until no pattern occurs twice. Patterns may contain earlier patterns, so
the result is a graph, not a forest; a depth bound keeps its critical path short.

Exact widths survive sharing: every node is still a linear function of the independent inputs
(:class:`~rtl_gen.adder_tree.RangeModel`), so its range is exact.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from dataclasses import dataclass

from .adder_tree import Node, RangeModel


@dataclass(frozen=True)
class Term:
    """``±(variable << shift)`` in one output's sum."""

    variable: int
    shift: int
    negative: bool


#: (a, b, d, opposite signs): the value ``x_a ± x_b * 2**d`` (``d`` may be negative)
PatternKey = tuple[int, int, int, bool]


def _pattern(t: Term, u: Term) -> tuple[PatternKey, Term, Term]:
    """The canonical pattern of two terms, with the terms ordered as in the pattern."""
    if (u.variable, u.shift) < (t.variable, t.shift):
        t, u = u, t
    return (t.variable, u.variable, u.shift - t.shift, t.negative != u.negative), t, u


class SharedAdderGraph:
    """Greedy common-subexpression elimination over the CSD terms of a layer's outputs.

    Parameters
    ----------
    ranges
        Range model of the layer's inputs (variables ``0 .. n_inputs-1`` are the inputs).
    outputs
        For each output, its terms.
    inputs
        Leaf node of each input, as built by ``ranges.leaf(j, 0, 1)``.
    max_depth
        No shared pattern deeper than this (adder levels from the inputs); ``None``: unbounded.
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
        self._magnitude = {v: self._largest(node) for v, node in inputs.items()}
        self.depth: dict[int, int] = dict.fromkeys(inputs, 0)
        self.outputs = [list(terms) for terms in outputs]
        self.shared: list[Node] = []
        self.max_depth = max_depth
        self._next = max(inputs, default=-1) + 1
        self._counts: dict[PatternKey, int] = defaultdict(int)
        self._heap: list[tuple[int, int, int, PatternKey]] = []
        for terms in self.outputs:
            for p, t in enumerate(terms):
                for u in terms[p + 1 :]:
                    self._counts[_pattern(t, u)[0]] += 1
        for key, count in self._counts.items():
            if count >= 2:
                self._push(key, count)
        self._run()

    def _largest(self, node: Node) -> int:
        """Largest magnitude of a variable's value (its linear function without constant)."""
        lo, hi = self.ranges.value_range(node.coefficients, 0)
        return max(-lo, hi)

    def _cost(self, key: PatternKey) -> tuple[int, int]:
        """(width, depth) of the adder a pattern would need."""
        a, b, d, _ = key
        span = (self._magnitude[a] << max(-d, 0)) + (self._magnitude[b] << max(d, 0))
        return span.bit_length(), 1 + max(self.depth[a], self.depth[b])

    def _push(self, key: PatternKey, count: int) -> None:
        width, depth = self._cost(key)
        if self.max_depth is None or depth <= self.max_depth:
            heapq.heappush(self._heap, (-count, width, depth, key))

    def _bump(self, key: PatternKey, delta: int) -> None:
        count = self._counts[key] + delta
        self._counts[key] = count
        if delta > 0 and count >= 2:  # a lower count is re-queued lazily by _best
            self._push(key, count)

    def _best(self) -> PatternKey | None:
        while self._heap:
            negative_count, _, _, key = heapq.heappop(self._heap)
            count = self._counts.get(key, 0)
            if count == -negative_count:
                return key
            if 2 <= count < -negative_count:  # the count fell since this entry was queued
                self._push(key, count)
        return None

    def _run(self) -> None:
        while (key := self._best()) is not None:
            if not self._substitute(key):
                self._counts[key] = 0

    def _substitute(self, key: PatternKey) -> bool:
        """Build pattern ``key`` once and replace its non-overlapping occurrences."""
        matches = []
        for index, terms in enumerate(self.outputs):
            used: set[int] = set()
            by_position = {(t.variable, t.shift): k for k, t in enumerate(terms)}
            for k, t in enumerate(terms):
                if k in used or t.variable != key[0]:
                    continue
                partner = by_position.get((key[1], t.shift + key[2]))
                if partner is None or partner in used or partner == k:
                    continue
                u = terms[partner]
                if (t.negative != u.negative) != key[3]:
                    continue
                used.update((k, partner))
                matches.append((index, k, partner))
        if len(matches) < 2:
            return False
        a, b, d, opposite = key
        ranges = self.ranges
        # x_a << max(-d, 0)  ±  x_b << max(d, 0); an occurrence at shift s uses it at min(s, s + d)
        node = ranges.add(
            ranges.ref(self.variables[a], max(-d, 0), False),
            ranges.ref(self.variables[b], max(d, 0), opposite),
        )
        variable = self._next
        self._next += 1
        self.variables[variable] = node
        self._magnitude[variable] = self._largest(node)
        self.depth[variable] = 1 + max(self.depth[a], self.depth[b])
        self.shared.append(node)
        by_output: dict[int, list[tuple[int, int]]] = defaultdict(list)
        for index, k, partner in matches:
            by_output[index].append((k, partner))
        for index, pairs in by_output.items():
            terms = self.outputs[index]
            removed = {k for pair in pairs for k in pair}
            gone = [terms[k] for k in sorted(removed)]
            kept = [t for k, t in enumerate(terms) if k not in removed]
            added = [
                Term(variable, min(terms[k].shift, terms[k].shift + d), terms[k].negative)
                for k, _ in pairs
            ]
            # every unordered pair was counted once: retire those with a removed term ...
            for p, t in enumerate(gone):
                for u in gone[p + 1 :] + kept:
                    self._bump(_pattern(t, u)[0], -1)
            # ... and count those with a new one
            for p, t in enumerate(added):
                for u in added[p + 1 :] + kept:
                    self._bump(_pattern(t, u)[0], 1)
            self.outputs[index] = kept + added
        return True

    def leaves(self, index: int) -> list[Node]:
        """Output ``index``'s remaining terms as (shifted, signed) references to variables."""
        return [
            self.ranges.ref(self.variables[t.variable], t.shift, t.negative)
            for t in self.outputs[index]
        ]
