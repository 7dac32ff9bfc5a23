"""How the fast harness (:mod:`hgq_rtl_sim.fast`) packs each kind of design's vectors and scores
its output records: :class:`ParallelScorer` (one record per vector, several input ports
concatenated) and :class:`StreamScorer` (beats; one record per output beat).

A scorer turns a chunk of vectors into the words the harness reads (:meth:`encode`), gives the
harness's command-line options (:meth:`options`), compares the records of a chunk's vectors
(:meth:`score`) and, once the harness has finished, what only its summary tells
(:meth:`finish`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from .bus import BusLayout
from .interface import InputBuses
from .scoreboard import failure_record
from .stream import StreamLayout
from .stream_score import compare_samples, timing, timing_failure

__all__ = ["ParallelScorer", "StreamScorer", "new_counts"]

DRAIN_MARGIN_CYCLES = 16
#: Stream designs: at most this many beats (in and out) per piece packed and scored at once.
STREAM_PIECE_BEATS = 1 << 16


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

    def pieces(self, inputs: np.ndarray, expected: np.ndarray) -> Iterator[tuple[Any, Any]]:
        """The chunk, checked, in pieces to pack and score one at a time (here: whole)."""
        words = self.inputs.to_words(inputs)  # checks every value's range
        expected = self.output.check_range(expected)
        _same_length(inputs, expected)
        yield np.asarray(inputs), expected, words

    def score(
        self,
        counts: dict[str, Any],
        inputs: np.ndarray,
        expected: np.ndarray,
        records: np.ndarray,
    ) -> None:
        """Compare the output *records* of the first ``len(records)`` vectors of a chunk."""
        n = records.shape[0]
        offset = counts["vectors"]  # the chunk's first vector
        cycles = records[:, 0].astype(np.int64) | records[:, 1].astype(np.int64) << 32
        observed = cycles - (offset + np.arange(n, dtype=np.int64))
        late = observed != self.latency
        actual = self.output.from_words(records[:, 2:])
        differs = actual != expected[:n]
        mismatch = differs.any(axis=1)
        counts["mismatches"] += int(mismatch.sum())
        counts["latency_errors"] += int(late.sum())
        bad = mismatch | late
        if counts["first_failure"] is None and bad.any():
            row = int(np.argmax(bad))
            counts["first_failure"] = failure_record(
                "mismatch" if mismatch[row] else "latency",
                offset + row,
                inputs[row],
                expected[row],
                actual[row],
                np.flatnonzero(differs[row]).tolist(),
                expected_latency=self.latency,
                observed_latency=int(observed[row]),
            )

    def finish(self, counts: dict[str, Any], summary: dict[str, Any]) -> None:
        """Nothing is left to check once the harness has finished."""


class StreamScorer:
    """Stream designs: beats in with ``tvalid`` always high, the output's ``tready`` low at
    random with *backpressure* (timing checked only without); see
    :mod:`hgq_rtl_sim.stream_score`."""

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
        self.first_last: int | None = None  # sample 0's last output beat's cycle
        self.first: tuple[Any, Any, Any] | None = None  # sample 0's inputs, expected, actual

    def options(self) -> list[str]:
        beats = self.input.beats + self.output.beats
        stall = int((2 * (self.latency + self.interval + beats) + 1000) / (1 - self.backpressure))
        drain = self.latency + self.interval + DRAIN_MARGIN_CYCLES
        options = ["--drain", str(drain), "--stall", str(stall)]
        if self.backpressure:
            options += ["--backpressure", repr(self.backpressure), "--seed", str(self.seed)]
        return options

    def pieces(self, inputs: np.ndarray, expected: np.ndarray) -> Iterator[tuple[Any, Any, Any]]:
        """The chunk, checked, in pieces of at most :data:`STREAM_PIECE_BEATS` beats."""
        inputs = self.input.check_range(inputs)
        expected = self.output.check_range(expected)
        _same_length(inputs, expected)
        step = max(1, STREAM_PIECE_BEATS // max(self.input.beats, self.output.beats))
        for start in range(0, inputs.shape[0], step):
            piece = inputs[start : start + step]
            yield piece, expected[start : start + step], self.input.to_words(piece)

    def score(
        self,
        counts: dict[str, Any],
        inputs: np.ndarray,
        expected: np.ndarray,
        records: np.ndarray,
    ) -> None:
        """Compare the output beats *records* of the first ``len(records) / beats`` samples."""
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
            if offset == 0:
                self.first_last = int(cycles[0])
                self.first = (inputs[0], expected[0], check.actual[0])
            before = self.first_last if offset == 0 else self.previous_last
            late, observed, wanted = timing(cycles, before, False, self.latency, self.interval)
            late[0] &= offset > 0  # sample 0's latency is checked in finish()
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
        """Sample 0's latency, from the cycle the harness took the first input beat."""
        if self.first_last is None or summary.get("first_input_cycle", -1) < 0:
            return
        observed = self.first_last - int(summary["first_input_cycle"])
        if observed == self.latency:
            return
        counts["latency_errors"] += 1
        failure = counts["first_failure"]
        if failure is None or (failure["index"] or 0) > 0:
            counts["first_failure"] = timing_failure(0, observed, self.latency, *self.first)


def _same_length(inputs: np.ndarray, expected: np.ndarray) -> None:
    if np.shape(inputs)[0] != np.shape(expected)[0]:
        raise ValueError(
            "a chunk's inputs and expected must have the same number of vectors, "
            f"not {np.shape(inputs)[0]} and {np.shape(expected)[0]}"
        )
