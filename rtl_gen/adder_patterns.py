"""The bookkeeping of the shared adder graph's greedy planner (:mod:`rtl_gen.adder_graph`).

:class:`PatternTable` holds every output's terms (:class:`Term`) and the table of the patterns
``x_a ± (x_b << d)`` that occur at least twice; :class:`~rtl_gen.adder_graph.SharedAdderGraph`
builds on it, making the greedy choices and substituting them.

Speed. Pattern occurrences (pairs of terms of one output) are counted with numpy on integer keys
that put the pattern's later variable first, so every pattern of a newly built variable sorts
after all earlier ones and the table of counts (only patterns that occur at least twice within
the depth bound) stays sorted by appending. An existing pattern's count can only fall: a new
pair always contains a new variable. Terms of variables at the depth bound take part in no
counted pattern and are left out of the counting. Each output's terms sit in a padded row of
slots, so the passes that count the pairs of new terms and retire those of removed ones are
row-wise numpy. Table lookups go through a dense index for the patterns of the first few hundred
variables, which carry most of the pairs, and a binary search for the rest; the most frequent
patterns are searched among candidates kept per count level and a pool of the frequent ones,
not the whole table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .adder_tree import Node


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
#: Entries of the dense key -> table index map (int32 each).
_DENSE_ENTRIES = 1 << 22
#: Pair keys computed per numpy pass (small temporaries stay in cache).
_CHUNK = 1 << 14
#: ``_mark`` of a filled slot that is not marked (an empty slot has -1)
_NO_MARK = np.iinfo(np.int32).max


def _tri(n):
    """``n * (n + 1) // 2``: the number of pairs ``a <= b`` of variables below ``n``."""
    return n * (n + 1) // 2


class PatternTable:
    """Every output's terms and the counts of their patterns, for the greedy planner.

    Variables ``0 ..`` are the inputs (``inputs``), then one per shared pattern (numbered from
    ``_next`` on; :meth:`_set_magnitude` records each new one). ``max_depth``: no counted
    pattern deeper than this (adder levels from the inputs); ``None``: unbounded.
    """

    def __init__(
        self, outputs: list[list[Term]], inputs: dict[int, Node], max_depth: int | None
    ) -> None:
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
        # key = (tri(b + 1) + a) * stride + 2 * (d + n_deltas // 2) + opposite, a <= b
        self._stride = 2 * self._n_deltas
        if _tri(self._n_vars + 1) * self._stride >= 2**62:
            raise ValueError(f"a layer with {total_terms} terms is too large to share")
        # keys below _dense (later variable below some bound) map to table indices directly
        bound = self._n_vars
        if _tri(bound + 1) * self._stride > _DENSE_ENTRIES:
            bound = int(np.sqrt(2 * _DENSE_ENTRIES / self._stride))
            while _tri(bound + 1) * self._stride > _DENSE_ENTRIES:
                bound -= 1
        self._dense = _tri(bound + 1) * self._stride
        self._index_of = np.full(self._dense, -1, np.int32)
        # per variable (int64 mirrors for vectorized widths and depths)
        self._magnitude: dict[int, int] = {}
        self._min_magnitude = 1 << 64
        self._mag = np.zeros(self._n_vars, np.int64)
        self._mag_bits = np.zeros(self._n_vars, np.int64)
        self._var_depth = np.zeros(self._n_vars, np.int64)
        for v, node in inputs.items():
            self._set_magnitude(v, node)
        # per output: term code -> negative, in order; variable -> shift -> negative; and the
        # slot of each term in the output's row of the numpy mirrors below
        self._terms: list[dict[int, bool]] = []
        self._by_var: list[dict[int, dict[int, bool]]] = []
        self._slot: list[dict[int, int]] = []
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
        self._build_rows()
        # table of counted patterns: sorted keys, their counts and their tie-break ranks
        self._size = 0
        self._keys = np.zeros(0, np.int64)
        self._counts = np.zeros(0, np.int64)
        self._width = np.zeros(0, np.int64)
        self._key_depth = np.zeros(0, np.int64)
        # candidates for the most frequent pattern (see _best)
        self._level = 0
        self._candidates = np.zeros(0, np.int64)
        self._pending = np.zeros(0, np.int64)
        # a superset of the patterns counted at least `_floor` times (see _best)
        self._floor = 0
        self._pool = np.zeros(0, np.int64)
        self._pool_new: list[int] = []
        self._add_patterns(self._initial_pairs())

    # ---------------------------------------------------------------------------- encoding

    def _code(self, variable: int, shift: int) -> int:
        return variable * self._n_shifts + shift - self._min_shift

    def _decode_term(self, code: int) -> tuple[int, int]:
        variable, shift = divmod(code, self._n_shifts)
        return variable, shift + self._min_shift

    def _decode(self, keys: np.ndarray) -> tuple[np.ndarray, ...]:
        """(a, b, d, opposite) of integer pattern keys."""
        opposite = keys & 1
        rest = keys >> 1
        d = rest % self._n_deltas - self._n_deltas // 2
        t = rest // self._n_deltas  # tri(c) + a with c = b + 1 and 0 <= a < c
        c = ((np.sqrt(8.0 * t + 1) - 1) / 2).astype(np.int64)
        c -= _tri(c) > t
        c += _tri(c + 1) <= t
        return t - _tri(c), c - 1, d, opposite

    def _decode_one(self, key: int) -> PatternKey:
        opposite = key & 1
        t, d = divmod(key >> 1, self._n_deltas)
        c = (math.isqrt(8 * t + 1) - 1) // 2
        return t - _tri(c), c - 1, d - self._n_deltas // 2, bool(opposite)

    # ------------------------------------------------------------------------- term rows

    def _build_rows(self) -> None:
        """Numpy mirrors of every output's terms, one padded row per output (slot = position).

        A term of variable ``v`` at shift ``s`` (less the smallest shift) has ``hi = tri(v + 1)
        * stride + 2 * s`` and ``lo = v * stride - 2 * s + 2 * (n_deltas // 2)``: the key of a
        pair is ``hi`` of its later term plus ``lo`` of its earlier one plus ``opposite``, and
        also the larger of the two sums ``hi + lo`` (``hi - lo`` grows with ``(v, s)``).
        ``_hl[p]`` holds ``(hi, lo)`` plus ``negative != p``, the pair's ``opposite`` when the
        other term's ``negative`` is ``p``; ``_mark`` is -1 in empty slots.

        Terms of variables at the depth bound are left out: no pattern with them is counted.
        """
        rows, codes, negative = [], [], []
        for row, terms in enumerate(self._terms):
            rows.append(np.full(len(terms), row))
            codes.append(np.fromiter(terms, np.int64, len(terms)))
            negative.append(np.fromiter(terms.values(), bool, len(terms)))
        rows, codes, negative = (
            np.concatenate(v + [np.zeros(0, np.int64)]) for v in (rows, codes, negative)
        )
        if self.max_depth is not None:
            keep = self._var_depth[codes // self._n_shifts] < self.max_depth
            rows, codes, negative = rows[keep], codes[keep], negative[keep]
        lengths = np.bincount(rows, minlength=len(self._terms))
        slots = np.arange(rows.size) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        width = max(int(lengths.max(initial=0)), 1)
        self._hl = np.zeros((2, 2, len(self._terms), width), np.int64)
        self._mark = np.full((len(self._terms), width), -1, np.int32)
        self._negative = np.zeros((len(self._terms), width), np.int64)
        ends = np.cumsum(lengths).tolist()
        codes_list = codes.tolist()
        self._slot = [
            dict(zip(codes_list[end - n : end], range(n), strict=True))
            for end, n in zip(ends, lengths.tolist(), strict=True)
        ]
        self._fill(rows, slots, codes, negative)

    def _fill(self, rows, slots, codes, negative) -> None:
        """Put the terms ``(codes[k], negative[k])`` in slot ``slots[k]`` of row ``rows[k]``."""
        variable, shift = np.divmod(codes, self._n_shifts)
        hi = _tri(variable + 1) * self._stride + 2 * shift
        lo = variable * self._stride - 2 * shift + 2 * (self._n_deltas // 2)
        for p in (0, 1):
            self._hl[p, 0, rows, slots] = hi + (negative != p)
            self._hl[p, 1, rows, slots] = lo + (negative != p)
        self._negative[rows, slots] = negative
        self._mark[rows, slots] = _NO_MARK

    def _pair_keys(self, rows: np.ndarray, slots: np.ndarray, latest: bool) -> np.ndarray:
        """Keys of the pairs of each term ``(rows[k], slots[k])`` with the terms of its row whose
        ``_mark`` is above ``k`` (the marked terms must be numbered ``0 ..`` in that order);
        ``latest``: the marked term is the later one of each such pair."""
        if not rows.size:
            return np.zeros(0, np.int64)
        step = max(1, _CHUNK // self._mark.shape[1])
        found = []
        for start in range(0, rows.size, step):
            r, s = rows[start : start + step], slots[start : start + step]
            negative = self._negative[r, s]
            hi = self._hl[0, 0, r, s] - negative  # the term's own hi and lo, without the bit
            lo = self._hl[0, 1, r, s] - negative
            keys = self._hl[negative, 1, r]
            keys += hi[:, None]
            if not latest:
                other = self._hl[negative, 0, r]
                other += lo[:, None]
                np.maximum(keys, other, out=keys)
            found.append(keys[self._mark[r] > np.arange(start, start + r.size)[:, None]])
        return np.concatenate(found)

    def _new_pair_keys(self, rows: np.ndarray, slots: np.ndarray, latest=False) -> np.ndarray:
        """Keys of every pair of terms of one output with at least one of the given terms."""
        self._mark[rows, slots] = np.arange(rows.size)
        keys = self._pair_keys(rows, slots, latest)
        self._mark[rows, slots] = _NO_MARK
        return keys

    # ---------------------------------------------------------------------------- the table

    def _set_magnitude(self, variable: int, node: Node) -> None:
        """Largest magnitude of a variable's value (its linear function without constant).

        That is ``max(-lo, hi) << shift`` of its node: every coefficient of a node is a multiple
        of ``2**shift``, so its range is, and ``lo``/``hi`` are exact.
        """
        magnitude = max(-node.lo, node.hi) << node.shift
        self._magnitude[variable] = magnitude
        self._min_magnitude = min(self._min_magnitude, magnitude)
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

    def _initial_pairs(self) -> np.ndarray:
        """Keys of all pairs of terms of one output, from rows sorted by term code: the pairs
        ``k`` positions apart are the later terms' ``hi`` plus the earlier ones' ``lo``."""
        lengths = np.array([len(terms) for terms in self._terms] + [0])
        c2 = np.full((lengths.size, max(lengths.max(), 1)), np.iinfo(np.int64).max)
        for row, terms in enumerate(self._terms):
            c2[row, : len(terms)] = np.fromiter(terms, np.int64, len(terms)) * 2
            c2[row, : len(terms)] += np.fromiter(terms.values(), bool, len(terms))
        c2.sort(axis=1)
        c2[c2 == np.iinfo(np.int64).max] = 0
        variable, shift = np.divmod(c2 >> 1, self._n_shifts)
        hi = _tri(variable + 1) * self._stride + 2 * shift
        lo = variable * self._stride - 2 * shift + 2 * (self._n_deltas // 2)
        negative = (c2 & 1).astype(np.int8)
        found = []
        for k in range(1, c2.shape[1]):
            keys = hi[:, k:] + lo[:, :-k]
            keys += negative[:, k:] ^ negative[:, :-k]
            found.append(keys[np.arange(c2.shape[1] - k) < (lengths - k)[:, None]])
        return np.concatenate(found) if found else np.zeros(0, np.int64)

    def _add_patterns(self, pair_keys: np.ndarray) -> None:
        """Count the pairs ``pair_keys`` and append their patterns (see :meth:`_append`)."""
        if not pair_keys.size:
            return
        low, high = int(pair_keys.min()), int(pair_keys.max())
        if high - low < 4 * pair_keys.size:
            counts = np.bincount(pair_keys - low)
            keys = np.flatnonzero(counts >= 2)
            counts = counts[keys]
            keys += low
        else:
            keys, counts = np.unique(pair_keys, return_counts=True)
            keep = counts >= 2
            keys, counts = keys[keep], counts[keep]
        self._append(keys, counts)

    def _append(self, keys: np.ndarray, counts: np.ndarray) -> None:
        """Append the patterns ``keys`` (sorted, each counted at least twice) that respect the
        depth bound. Every key is larger than every key in the table (a newer variable)."""
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
        dense = int(np.searchsorted(keys, self._dense))
        self._index_of[keys[:dense]] = np.arange(start, start + dense, dtype=np.int32)
        if self._floor:
            self._pool_new.extend((start + np.flatnonzero(counts >= self._floor)).tolist())
        if self._level:
            new = start + np.flatnonzero(counts >= self._level)
            if new.size:
                pending = np.concatenate([self._pending, new])
                self._pending = pending[self._rank(pending)]

    def _remove_patterns(self, pair_keys: np.ndarray) -> None:
        """Count one occurrence less of each pattern in ``pair_keys`` (those in the table)."""
        if not (pair_keys.size and self._size):
            return
        dense = pair_keys < self._dense
        where = self._index_of[pair_keys[dense]]
        np.subtract.at(self._counts, where[where >= 0], 1)
        sparse = pair_keys[~dense]
        if sparse.size:
            table = self._keys[: self._size]
            first = int(np.searchsorted(table, self._dense))
            sparse, times = np.unique(sparse, return_counts=True)
            where = first + np.searchsorted(table[first:], sparse)
            where[where == self._size] = 0
            hit = table[where] == sparse
            self._counts[where[hit]] -= times[hit]

    def _compact(self) -> None:
        """Drop the patterns that no longer occur twice (when they are most of the table)."""
        live = self._counts[: self._size] >= 2
        if 2 * int(live.sum()) > self._size:
            return
        dense = int(np.searchsorted(self._keys[: self._size], self._dense))
        self._index_of[self._keys[:dense]] = -1
        for name in ("_keys", "_counts", "_width", "_key_depth"):
            column = getattr(self, name)[: self._size][live]
            setattr(self, name, column.copy())
        self._size = self._keys.size
        dense = int(np.searchsorted(self._keys, self._dense))
        self._index_of[self._keys[:dense]] = np.arange(dense, dtype=np.int32)

    # ----------------------------------------------------------- the most frequent pattern

    def _rank(self, indices: np.ndarray) -> np.ndarray:
        """Tie-break order of table entries: width, depth, then the pattern (a, b, d, opp)."""
        a, b, d, opposite = self._decode(self._keys[indices])
        return np.lexsort((opposite, d, b, a, self._key_depth[indices], self._width[indices]))

    def _rank_key(self, index: int) -> tuple[int, ...]:
        a, b, d, opposite = self._decode_one(int(self._keys[index]))
        return (int(self._width[index]), int(self._key_depth[index]), a, b, d, opposite)

    def _best(self, collect: bool = True) -> int | None:
        """Table index of the most frequent pattern (ties by :meth:`_rank`), or ``None``.

        The candidates are the patterns that had the highest count (the *level*) when they were
        last collected, in rank order, plus the patterns appended since (*pending*, ranked too).
        No count exceeds the level (a new pattern occurs at most as often as the pattern that
        made its variable) and counts only fall, so when no candidate is left at the level, none
        outside was either: the level is collected anew, from the pool of patterns counted at
        least ``floor`` times while the level stays above it, else from the whole table (not
        while ``collect`` is false: ``None`` then).
        """
        while True:
            best = -1
            candidates, counts, level = self._candidates, self._counts, self._level
            for start in range(min(4, candidates.size)):  # usually one of the first
                if counts[candidates[start]] == level:
                    best = int(candidates[start])
                    break
            else:
                start, step = min(4, candidates.size), 16
                while start < candidates.size:  # the first still at the level
                    at_level = counts[candidates[start : start + step]] == level
                    if at_level.any():
                        start += int(at_level.argmax())
                        best = int(candidates[start])
                        break
                    start, step = start + step, 2 * step
            self._candidates = candidates[start:]  # those before it fell below for good
            if self._pending.size:  # ranked too: its first at the level
                at_level = counts[self._pending] == level
                if at_level.any():
                    first = int(self._pending[at_level.argmax()])
                    best = first if best < 0 else min(first, best, key=self._rank_key)
            if best >= 0 and self._level >= 2:
                return best
            if not collect:
                return None
            # every pattern counted at least `level` times was a candidate: collect anew, from
            # the pool of those counted at least `floor` times if the level stays above it
            pool = np.concatenate([self._pool, self._pool_new]).astype(np.int64)
            self._pool_new = []
            counts = self._counts[pool]
            self._pool = pool[counts >= self._floor]
            if not self._pool.size:  # from the whole table, with a new pool
                self._compact()
                live = np.flatnonzero(self._counts[: self._size] >= 2)
                if not live.size:
                    return None
                tail = np.cumsum(np.bincount(self._counts[live])[::-1])[::-1]
                self._floor = max(
                    2, int(np.flatnonzero(tail >= min(live.size, max(4096, live.size // 16)))[-1])
                )
                self._pool = live[self._counts[live] >= self._floor]
            counts = self._counts[self._pool]
            self._level = int(counts.max())
            top = self._pool[counts == self._level]
            self._candidates = top[self._rank(top)]
            self._pending = self._pending[:0]
