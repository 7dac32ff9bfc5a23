"""How the fast harness (:mod:`hgq_rtl_sim.fast`) packs each kind of design's vectors and scores
its output records: :class:`ParallelScorer` (one record per vector, several input ports
concatenated) and :class:`StreamScorer` (beats; one record per output beat).

A scorer cuts a chunk of vectors into pieces and packs each into the words the harness reads
(:meth:`pieces`), gives the harness's command-line options (:meth:`options`), compares the
records of a piece's vectors (:meth:`score`) and, once the harness has finished, what only its
summary tells (:meth:`finish`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

import numpy as np

from .bus import BusLayout
from .interface import InputBuses
from .scoreboard import failure_record
from .stream import StreamLayout
from .stream_score import compare_samples, timing, timing_failure

__all__ = ["ParallelScorer", "Piece", "StreamScorer", "new_counts", "stream_piece_vectors"]

DRAIN_MARGIN_CYCLES = 16
#: Parallel designs: rows packed per step, so that the int64 rows stay in the CPU's cache.
PACK_ROWS = 2048
#: Stream designs: at most this many beats (in and out) per piece packed and scored at once.
STREAM_PIECE_BEATS = 1 << 16


class Piece(NamedTuple):
    """Vectors packed and scored together: their inputs and expected outputs (int64), the
    harness's input words, and what else the scorer compares with (or None)."""

    inputs: np.ndarray
    expected: np.ndarray
    words: np.ndarray
    extra: Any


def stream_piece_vectors(layouts: tuple[StreamLayout, StreamLayout]) -> int:
    """Samples per piece of a stream design: at most :data:`STREAM_PIECE_BEATS` beats in or out,
    and at least one sample. The caller counts the pieces from it, to start no more harnesses
    than there are pieces to share among them."""
    return max(1, STREAM_PIECE_BEATS // max(layouts[0].beats, layouts[1].beats))


def new_counts() -> dict[str, Any]:
    """The running counts of a run (samples, except ``outputs`` and ``extra``: records)."""
    return {
        "vectors": 0,
        "outputs": 0,
        "mismatches": 0,
        "latency_errors": 0,
        "missing": 0,
        "extra": 0,
        "first_failure": None,
    }


class ParallelScorer:
    """Parallel designs: vector k is driven on cycle k; its output must come on k + latency."""

    records_per_vector = 1

    def __init__(self, manifest: dict[str, Any], inputs: InputBuses, output: BusLayout) -> None:
        self.latency = int(manifest["latency_cycles"])
        self.inputs, self.output = inputs, output
        self.record_words = 2 + output.n_words

    def options(self) -> list[str]:
        return ["--drain", str(self.latency + DRAIN_MARGIN_CYCLES)]

    def pieces(self, inputs: np.ndarray, expected: np.ndarray) -> Iterator[Piece]:
        """The chunk, checked, as one piece; its ``extra`` is the expected outputs' packed
        words, which :meth:`score` compares with the output records."""
        words = _pack(self.inputs, inputs)  # checks every value's range
        expected_words = _pack(self.output, expected)
        _same_length(inputs, expected)
        yield Piece(np.asarray(inputs), np.asarray(expected, dtype=np.int64), words, expected_words)

    def score(
        self,
        counts: dict[str, Any],
        piece: Piece,
        records: np.ndarray,
        driven: int,
    ) -> None:
        """Compare the output *records* of the first ``len(records)`` vectors of a *piece*.

        *driven* is the number of vectors its harness was given before the piece, so the
        piece's vector k was driven on that harness's cycle ``driven + k``. The words are
        compared: the packing is one-to-one for values inside their formats, so equal words
        are equal elements.
        """
        inputs, expected, expected_words = piece.inputs, piece.expected, piece.extra
        n = records.shape[0]
        cycles = records[:, 0].astype(np.int64) | records[:, 1].astype(np.int64) << 32
        observed = cycles - (driven + np.arange(n, dtype=np.int64))
        late = observed != self.latency
        mismatch = (records[:, 2:] != expected_words[:n]).any(axis=1)
        counts["mismatches"] += int(mismatch.sum())
        counts["latency_errors"] += int(late.sum())
        bad = mismatch | late
        if counts["first_failure"] is None and bad.any():
            row = int(np.argmax(bad))
            actual = self.output.from_words(records[row : row + 1, 2:])[0]
            counts["first_failure"] = failure_record(
                "mismatch" if mismatch[row] else "latency",
                counts["vectors"] + row,
                inputs[row],
                expected[row],
                actual,
                np.flatnonzero(actual != expected[row]).tolist(),
                expected_latency=self.latency,
                observed_latency=int(observed[row]),
            )

    def finish(self, counts: dict[str, Any], summary: dict[str, Any]) -> None:
        """Nothing is left to check once the harness has finished."""


class StreamScorer:
    """Stream designs: beats in with ``tvalid`` always high, the output's ``tready`` low at
    random with *backpressure* (timing checked only without); see
    :mod:`hgq_rtl_sim.stream_score`.

    A scorer follows one harness's stream of samples: its timing checks run from each of that
    harness's samples to the next, so a run shared among several harnesses has one scorer per
    harness (each with its own *seed*). It counts into the run's one set of counts and names a
    failing sample by its index in the whole run.
    """

    def __init__(
        self,
        manifest: dict[str, Any],
        layouts: tuple[StreamLayout, StreamLayout],
        backpressure: float,
        seed: int,
    ) -> None:
        self.latency = int(manifest["latency_cycles"])
        self.interval = int(manifest["initiation_interval"])
        self.input, self.output = layouts
        self.backpressure, self.seed = backpressure, seed
        self.records_per_vector = self.output.beats
        self.record_words = 3 + self.output.n_words
        self.previous_last: int | None = None  # the last sample's last output beat's cycle
        # this harness's first sample: its last output beat's cycle, its index in the run and
        # its inputs, expected and actual outputs (its latency is checked in finish())
        self.first_last: int | None = None
        self.first_index = 0
        self.first: tuple[Any, Any, Any] | None = None

    def options(self) -> list[str]:
        beats = self.input.beats + self.output.beats
        stall = int((2 * (self.latency + self.interval + beats) + 1000) / (1 - self.backpressure))
        drain = self.latency + self.interval + DRAIN_MARGIN_CYCLES
        options = ["--drain", str(drain), "--stall", str(stall)]
        if self.backpressure:
            options += ["--backpressure", repr(self.backpressure), "--seed", str(self.seed)]
        return options

    def pieces(self, inputs: np.ndarray, expected: np.ndarray) -> Iterator[Piece]:
        """The chunk, checked, in pieces of at most :data:`STREAM_PIECE_BEATS` beats."""
        inputs = self.input.check_range(inputs)
        expected = self.output.check_range(expected)
        _same_length(inputs, expected)
        step = stream_piece_vectors((self.input, self.output))
        for start in range(0, inputs.shape[0], step):
            piece = inputs[start : start + step]
            yield Piece(piece, expected[start : start + step], self.input.to_words(piece), None)

    def score(
        self,
        counts: dict[str, Any],
        piece: Piece,
        records: np.ndarray,
        driven: int,
    ) -> None:
        """Compare the output beats *records* of the first ``len(records) / beats`` samples
        of a *piece*.

        *driven* is the number of samples this scorer's harness was given before the piece
        (its stream: the timing runs on from its previous sample, and its sample 0 is the
        one whose latency counts); ``counts["vectors"]``, the samples of the whole run before
        the piece, places the piece in the run for the failure record. With one harness the
        two are equal.
        """
        inputs, expected = piece.inputs, piece.expected
        n = records.shape[0] // self.output.beats
        offset = counts["vectors"]
        check = compare_samples(
            self.output,
            expected[:n],
            self.output.slots.from_words(records[:, 3:]),
            records[:, 2].astype(np.int64),
        )
        mismatch = check.mismatch
        counts["mismatches"] += int(mismatch.sum())
        late = np.zeros(n, dtype=bool)
        observed = wanted = np.zeros(n, dtype=np.int64)
        if not self.backpressure and n:
            beats = self.output.beats
            last = records[beats - 1 :: beats, :2].astype(np.int64)
            cycles = last[:, 0] | last[:, 1] << 32
            if driven == 0:
                self.first_last, self.first_index = int(cycles[0]), offset
                self.first = (inputs[0], expected[0], check.actual[0])
            before = self.first_last if driven == 0 else self.previous_last
            late, observed, wanted = timing(cycles, before, False, self.latency, self.interval)
            late[0] &= driven > 0  # the harness's sample 0: its latency is checked in finish()
            self.previous_last = int(cycles[-1])
            counts["latency_errors"] += int(late.sum())
        bad = mismatch | late
        if counts["first_failure"] is None and bad.any():
            row = int(np.argmax(bad))
            failure = check.failure(row, offset + row, inputs[row], expected[row])
            if failure is None:
                failure = timing_failure(
                    offset + row,
                    int(observed[row]),
                    int(wanted[row]),
                    inputs[row],
                    expected[row],
                    check.actual[row],
                )
            counts["first_failure"] = failure

    def finish(self, counts: dict[str, Any], summary: dict[str, Any]) -> None:
        """The latency of the harness's sample 0, from the cycle *summary* (that harness's)
        says it took the first input beat; a wrong one becomes the first failure unless an
        earlier sample of the run (or this one) already failed."""
        if self.first_last is None or summary.get("first_input_cycle", -1) < 0:
            return
        observed = self.first_last - int(summary["first_input_cycle"])
        if observed == self.latency:
            return
        counts["latency_errors"] += 1
        failure = counts["first_failure"]
        index = self.first_index
        if failure is None or (failure["index"] or 0) > index:
            counts["first_failure"] = timing_failure(
                index, observed, self.latency, *self.first, first=True
            )


def _pack(layout: InputBuses | BusLayout, values: np.ndarray) -> np.ndarray:
    """``layout.to_words(values)`` (which checks every value's range), :data:`PACK_ROWS` rows at
    a time; an error names the vector by its row in all of *values*."""
    values = np.asarray(values)
    if values.ndim != 2 or values.shape[0] <= PACK_ROWS:
        return layout.to_words(values)
    words = np.empty((values.shape[0], layout.n_words), dtype="<u4")
    try:
        for start in range(0, values.shape[0], PACK_ROWS):
            words[start : start + PACK_ROWS] = layout.to_words(values[start : start + PACK_ROWS])
    except ValueError:
        layout.check_range(values)  # raises naming the row in all of *values*
        raise
    return words


def _same_length(inputs: np.ndarray, expected: np.ndarray) -> None:
    if np.shape(inputs)[0] != np.shape(expected)[0]:
        raise ValueError(
            "a chunk's inputs and expected must have the same number of vectors, "
            f"not {np.shape(inputs)[0]} and {np.shape(expected)[0]}"
        )
