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

Speed. Pattern occurrences are counted with numpy on integer-encoded keys (the pattern's later
variable first, so every pattern of a newly built variable sorts after all earlier ones and the
table of counts stays sorted by appending). Only patterns that occur at least twice, within the
depth bound, are kept. After a substitution only the outputs it touched are recounted, and only
the pairs involving a removed or an added term change. An existing pattern's count can only fall
(a new pair always contains the new variable), so the most frequent pattern is found among the
few candidates that had the highest count when the candidates were last collected, plus the
patterns created since.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .adder_tree import Node, RangeModel


@dataclass(frozen=True)
class Term:
    """``±(variable << shift)`` in one output's sum."""

    variable: int
    shift: int
    negative: bool


#: (a, b, d, opposite signs): the value ``x_a ± x_b * 2**d`` (``d`` may be negative)
PatternKey = tuple[int, int, int, bool]

#: ``_POWERS[k] == 2**k``: ``searchsorted(_POWERS, x, "right")`` is ``x.bit_length()`` (x >= 0)
_POWERS = np.left_shift(np.int64(1), np.arange(63, dtype=np.int64))
#: Magnitudes below ``2**_SAFE_BITS`` are added in int64 without overflow.
_SAFE_BITS = 61


def _ragged_range(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """``concatenate([arange(s, s + n) for s, n in zip(starts, lengths)])``."""
    offsets = np.cumsum(lengths) - lengths
    return np.repeat(starts - offsets, lengths) + np.arange(int(lengths.sum()))


@dataclass
class _Terms:
    """The terms of several outputs, flattened: one segment per output, its last few flagged."""

    codes: np.ndarray
    negative: np.ndarray
    lengths: np.ndarray
    flagged_counts: np.ndarray

    @property
    def starts(self) -> np.ndarray:
        return np.cumsum(self.lengths) - self.lengths

    @property
    def flagged(self) -> np.ndarray:
        position = np.arange(self.codes.size) - np.repeat(self.starts, self.lengths)
        return position >= np.repeat(self.lengths - self.flagged_counts, self.lengths)

    def replace_flagged(self, codes: np.ndarray, negative: np.ndarray, counts: np.ndarray):
        """Each segment's unflagged terms, then its ``counts`` new terms (flagged)."""
        segments = np.arange(self.lengths.size)
        kept = ~self.flagged
        order = np.argsort(
            np.concatenate(
                [
                    2 * np.repeat(segments, self.lengths - self.flagged_counts),
                    2 * np.repeat(segments, counts) + 1,
                ]
            ),
            kind="stable",
        )
        return _Terms(
            np.concatenate([self.codes[kept], codes])[order],
            np.concatenate([self.negative[kept], negative])[order],
            self.lengths - self.flagged_counts + counts,
            counts,
        )


class SharedAdderGraph:
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
        self.max_depth = max_depth
        self._next = max(inputs, default=-1) + 1
        total_terms = sum(len(terms) for terms in outputs)
        shifts = [t.shift for terms in outputs for t in terms] or [0]
        self._min_shift = min(shifts)
        span = max(shifts) - self._min_shift
        # a substitution of m >= 2 occurrences removes 2m terms and adds m
        self._n_vars = self._next + total_terms // 2 + 1
        self._n_shifts = span + 1
        self._n_deltas = 2 * span + 1
        if self._n_vars**2 * self._n_deltas * 2 >= 2**62 or self._n_vars * (span + 1) >= 2**62:
            raise ValueError(f"a layer with {total_terms} terms is too large to share")
        # per variable (int64 mirrors for vectorized widths and depths)
        self._magnitude: dict[int, int] = {}
        self._mag = np.zeros(self._n_vars, np.int64)
        self._mag_bits = np.zeros(self._n_vars, np.int64)
        self._var_depth = np.zeros(self._n_vars, np.int64)
        for v, node in inputs.items():
            self._set_magnitude(v, node)
        # per output: term code -> negative, in order; and variable -> shift -> negative
        self._terms: list[dict[int, bool]] = []
        self._by_var: list[dict[int, dict[int, bool]]] = []
        self._holders: dict[int, set[int]] = {}
        for index, terms in enumerate(outputs):
            codes: dict[int, bool] = {}
            by_var: dict[int, dict[int, bool]] = {}
            for t in terms:
                codes[self._code(t.variable, t.shift)] = t.negative
                by_var.setdefault(t.variable, {})[t.shift] = t.negative
                self._holders.setdefault(t.variable, set()).add(index)
            if len(codes) != len(terms):
                raise ValueError(f"output {index} has two terms with the same variable and shift")
            self._terms.append(codes)
            self._by_var.append(by_var)
        # table of counted patterns: sorted keys, their counts and their tie-break ranks
        self._size = 0
        self._keys = np.zeros(0, np.int64)
        self._counts = np.zeros(0, np.int64)
        self._width = np.zeros(0, np.int64)
        self._key_depth = np.zeros(0, np.int64)
        # candidates for the most frequent pattern (see the module docstring)
        self._level = 0
        self._candidates = np.zeros(0, np.int64)
        self._pending: list[int] = []
        pair_keys = [self._pairs_within(codes) for codes in self._terms]
        self._add_patterns(np.concatenate(pair_keys) if pair_keys else np.zeros(0, np.int64))
        self._run()
        self.outputs = [
            [Term(*self._decode_term(code), negative) for code, negative in codes.items()]
            for codes in self._terms
        ]

    # ---------------------------------------------------------------------------- encoding

    def _code(self, variable: int, shift: int) -> int:
        return variable * self._n_shifts + shift - self._min_shift

    def _decode_term(self, code: int) -> tuple[int, int]:
        variable, shift = divmod(code, self._n_shifts)
        return variable, shift + self._min_shift

    def _pair_keys(self, code, negative, p: np.ndarray, q: np.ndarray) -> np.ndarray:
        """Integer keys of the patterns of the term pairs ``(p[k], q[k])`` (indices into ``code``
        and ``negative``; codes order terms like (variable, shift))."""
        variable, shift = np.divmod(code, self._n_shifts)
        # key = ((b * n_vars + a) * n_deltas + shift_b - shift_a + n_deltas // 2) * 2 + opposite
        high = (2 * self._n_deltas * self._n_vars) * variable + 2 * shift
        low = (2 * self._n_deltas) * variable - 2 * shift + 2 * (self._n_deltas // 2)
        keys = np.where(code[p] > code[q], high[p] + low[q], high[q] + low[p])
        return keys + (negative[p] != negative[q])

    def _pairs_within(self, codes: dict[int, bool]) -> np.ndarray:
        """Keys of all pairs of one output's terms."""
        code = np.fromiter(codes, np.int64, len(codes))
        negative = np.fromiter(codes.values(), bool, len(codes))
        p, q = np.triu_indices(code.size, 1)
        return self._pair_keys(code, negative, p, q)

    def _decode(self, keys: np.ndarray) -> tuple[np.ndarray, ...]:
        """(a, b, d, opposite) of integer pattern keys."""
        opposite = keys & 1
        rest = keys >> 1
        d = rest % self._n_deltas - self._n_deltas // 2
        rest = rest // self._n_deltas
        return rest % self._n_vars, rest // self._n_vars, d, opposite

    # ---------------------------------------------------------------------------- the table

    def _set_magnitude(self, variable: int, node: Node) -> None:
        """Largest magnitude of a variable's value (its linear function without constant)."""
        lo, hi = self.ranges.value_range(node.coefficients, 0)
        magnitude = max(-lo, hi)
        self._magnitude[variable] = magnitude
        self._mag_bits[variable] = magnitude.bit_length()
        self._mag[variable] = magnitude if magnitude.bit_length() <= _SAFE_BITS else 0

    def _widths(self, a: np.ndarray, b: np.ndarray, d: np.ndarray) -> np.ndarray:
        """Widths of the adders ``x_a << max(-d, 0) ± x_b << max(d, 0)``."""
        left, right = np.maximum(-d, 0), np.maximum(d, 0)
        safe = (self._mag_bits[a] + left <= _SAFE_BITS) & (self._mag_bits[b] + right <= _SAFE_BITS)
        span = np.where(safe, self._mag[a] << np.where(safe, left, 0), 0) + np.where(
            safe, self._mag[b] << np.where(safe, right, 0), 0
        )
        widths = np.searchsorted(_POWERS, span, side="right").astype(np.int64)
        for k in np.flatnonzero(~safe).tolist():
            ak, bk, dk = int(a[k]), int(b[k]), int(d[k])
            value = (self._magnitude[ak] << max(-dk, 0)) + (self._magnitude[bk] << max(dk, 0))
            widths[k] = value.bit_length()
        return widths

    def _add_patterns(self, pair_keys: np.ndarray) -> None:
        """Append the patterns of ``pair_keys`` that occur twice and respect the depth bound.

        Every key is larger than every key in the table (it contains a newer variable).
        """
        keys, counts = np.unique(pair_keys, return_counts=True)
        keep = counts >= 2
        keys, counts = keys[keep], counts[keep]
        a, b, d, _ = self._decode(keys)
        depth = 1 + np.maximum(self._var_depth[a], self._var_depth[b])
        if self.max_depth is not None:
            keep = depth <= self.max_depth
            keys, counts, a, b, d, depth = (v[keep] for v in (keys, counts, a, b, d, depth))
        start, end = self._size, self._size + keys.size
        if end > self._keys.size:
            capacity = max(end, 2 * self._keys.size)
            for name in ("_keys", "_counts", "_width", "_key_depth"):
                grown = np.zeros(capacity, np.int64)
                grown[:start] = getattr(self, name)[:start]
                setattr(self, name, grown)
        self._keys[start:end] = keys
        self._counts[start:end] = counts
        self._width[start:end] = self._widths(a, b, d)
        self._key_depth[start:end] = depth
        self._size = end
        if self._level:
            self._pending.extend((start + np.flatnonzero(counts >= self._level)).tolist())

    def _remove_patterns(self, pair_keys: np.ndarray) -> None:
        """Count one occurrence less of each pattern in ``pair_keys`` (those in the table)."""
        if not (pair_keys.size and self._size):
            return
        table = self._keys[: self._size]
        pair_keys = np.sort(pair_keys)  # sorted needles are found faster
        where = np.searchsorted(table, pair_keys)
        where[where == self._size] = 0
        np.subtract.at(self._counts, where[table[where] == pair_keys], 1)

    def _compact(self) -> None:
        """Drop the patterns that no longer occur twice (when they are most of the table)."""
        live = self._counts[: self._size] >= 2
        if 2 * int(live.sum()) > self._size:
            return
        for name in ("_keys", "_counts", "_width", "_key_depth"):
            column = getattr(self, name)[: self._size][live]
            setattr(self, name, column.copy())
        self._size = self._keys.size

    # ------------------------------------------------------------------------------ greedy

    def _rank(self, indices: np.ndarray) -> np.ndarray:
        """Tie-break order of table entries: width, depth, then the pattern (a, b, d, opp)."""
        a, b, d, opposite = self._decode(self._keys[indices])
        return np.lexsort((opposite, d, b, a, self._key_depth[indices], self._width[indices]))

    def _rank_key(self, index: int) -> tuple[int, ...]:
        a, b, d, opposite = (int(v) for v in self._decode(self._keys[index]))
        return (int(self._width[index]), int(self._key_depth[index]), a, b, d, opposite)

    def _best(self) -> int | None:
        """Table index of the most frequent pattern (ties by :meth:`_rank`), or ``None``."""
        while True:
            best, best_count = -1, 0
            if self._candidates.size:
                values = self._counts[self._candidates]
                k = int(values.argmax())  # the first of the highest: candidates are ranked
                best, best_count = int(self._candidates[k]), int(values[k])
                if best_count == self._level:  # those ranked before it fell below for good
                    self._candidates = self._candidates[k:]
            if self._pending:
                pending = np.array(self._pending, np.int64)
                values = self._counts[pending]
                top = pending[values == values.max()]
                if values.max() > best_count or (values.max() == best_count and best >= 0):
                    tied = np.concatenate([top, [best]]) if values.max() == best_count else top
                    best, best_count = int(tied[self._rank(tied)[0]]), int(values.max())
            if best_count >= max(self._level, 2):
                return best
            # every pattern counted at least `level` times was a candidate: collect anew
            self._compact()
            live = np.flatnonzero(self._counts[: self._size] >= 2)
            if not live.size:
                return None
            self._level = int(self._counts[live].max())
            top = live[self._counts[live] == self._level]
            self._candidates = top[self._rank(top)]
            self._pending = []

    def _run(self) -> None:
        while (index := self._best()) is not None:
            if not self._substitute(index):
                self._counts[index] = 0
            if len(self._pending) > 64:  # rank the new candidates with the others
                merged = np.concatenate([self._candidates, self._pending])
                merged = merged[self._counts[merged] >= self._level]
                self._candidates = merged[self._rank(merged)]
                self._pending = []

    def _matches(self, a: int, b: int, d: int, opposite: bool) -> dict[int, list[tuple]]:
        """Non-overlapping occurrences ``(shift of x_a, shift of x_b, sign)`` per output."""
        found: dict[int, list[tuple]] = {}
        for output in sorted(self._holders.get(a, set()) & self._holders.get(b, set())):
            first, second = self._by_var[output][a], self._by_var[output][b]
            used: set[int] = set()  # shifts of x_b (or of x_a when a == b) already matched
            for shift, negative in first.items():
                partner = shift + d
                other = second.get(partner)
                if other is None or (negative != other) != opposite:
                    continue
                if shift in used and a == b or partner in used:
                    continue
                used.update((shift, partner) if a == b else (partner,))
                found.setdefault(output, []).append((shift, partner, negative))
        return found

    def _substitute(self, index: int) -> bool:
        """Build pattern ``index`` once and replace its non-overlapping occurrences."""
        a, b, d, opposite = (int(v) for v in self._decode(self._keys[index]))
        matches = self._matches(a, b, d, bool(opposite))
        if sum(len(m) for m in matches.values()) < 2:
            return False
        ranges = self.ranges
        # x_a << max(-d, 0)  ±  x_b << max(d, 0); an occurrence at shift s uses it at min(s, s + d)
        node = ranges.add(
            ranges.ref(self.variables[a], max(-d, 0), False),
            ranges.ref(self.variables[b], max(d, 0), bool(opposite)),
        )
        variable = self._next
        self._next += 1
        self.variables[variable] = node
        self.depth[variable] = 1 + max(self.depth[a], self.depth[b])
        self._var_depth[variable] = self.depth[variable]
        self._set_magnitude(variable, node)
        self.shared.append(node)
        holders = self._holders.setdefault(variable, set())
        old_codes, old_negative, gone_counts = [], [], []
        new_codes, new_negative, new_counts = [], [], []
        for output, pairs in matches.items():
            codes = self._terms[output]
            by_var = self._by_var[output]
            gone = {self._code(a, s) for s, _, _ in pairs} | {self._code(b, u) for _, u, _ in pairs}
            for code in gone:  # the removed terms last, where _Terms flags them
                codes[code] = codes.pop(code)
            old_codes.append(np.fromiter(codes, np.int64, len(codes)))
            old_negative.append(np.fromiter(codes.values(), bool, len(codes)))
            gone_counts.append(len(gone))
            for code in gone:
                var, shift = self._decode_term(code)
                del codes[code]
                del by_var[var][shift]
                if not by_var[var]:
                    del by_var[var]
                    self._holders[var].discard(output)
            added = by_var.setdefault(variable, {})
            for s, u, negative in pairs:
                code = self._code(variable, min(s, u))
                codes[code] = added[min(s, u)] = negative
                new_codes.append(code)
                new_negative.append(negative)
            new_counts.append(len(pairs))
            holders.add(output)
        before = _Terms(
            np.concatenate(old_codes),
            np.concatenate(old_negative),
            np.array([c.size for c in old_codes], np.int64),
            np.array(gone_counts, np.int64),
        )
        after = before.replace_flagged(
            np.array(new_codes, np.int64), np.array(new_negative, bool), np.array(new_counts)
        )
        # every unordered pair was counted once: retire those with a removed term, count those
        # with a new one
        self._remove_patterns(self._flagged_pair_keys(before))
        self._add_patterns(self._flagged_pair_keys(after))
        return True

    def _flagged_pair_keys(self, terms: _Terms) -> np.ndarray:
        """Pattern keys of every pair of terms of one output with at least one flagged term."""
        first = np.flatnonzero(terms.flagged)
        segment = np.repeat(np.arange(terms.lengths.size), terms.flagged_counts)
        starts = terms.starts[segment]
        kept = (terms.lengths - terms.flagged_counts)[segment]
        later = starts + terms.lengths[segment] - first - 1
        # a flagged term with every unflagged term of its output, and with the flagged after it
        p = np.concatenate([np.repeat(first, kept), np.repeat(first, later)])
        q = np.concatenate([_ragged_range(starts, kept), _ragged_range(first + 1, later)])
        return self._pair_keys(terms.codes, terms.negative, p, q)

    def leaves(self, index: int) -> list[Node]:
        """Output ``index``'s remaining terms as (shifted, signed) references to variables."""
        return [
            self.ranges.ref(self.variables[t.variable], t.shift, t.negative)
            for t in self.outputs[index]
        ]
