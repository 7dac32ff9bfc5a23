"""Scoring a stream design's output beats against the reference, bit for bit (pure numpy).

Used by the cocotb stream bench (:func:`score_stream`, the whole run at once) and by the fast
harness (:func:`compare_samples` and :func:`timing`, chunk by chunk). A sample is scored once all
its output beats have come: its elements (integer ``==``, and the bits a slot's shift drops must
be zero), ``tlast`` on each of its beats (high on the last beat of the sample only) and, when the
stream ran at full throughput, its timing:

* sample 0's last output beat must come ``latency_cycles`` after its first input beat was taken;
* every later sample's last output beat ``initiation_interval`` cycles after the one before.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .scoreboard import failure_record
from .stream import StreamLayout

__all__ = ["SampleCheck", "compare_samples", "score_stream", "timing"]


@dataclass(frozen=True)
class SampleCheck:
    """What is wrong with each of ``n`` consecutive samples (all arrays have ``n`` rows).

    ``actual`` ``(n, n_elements)``; ``differs`` ``(n, n_elements)``: the element differs from
    the reference (or its slot's dropped bits are not zero); ``unknown`` ``(n,)``: a beat held
    X/Z bits; ``wrong_last`` ``(n, beats)``: ``tlast`` wrong on that beat.
    """

    actual: np.ndarray
    differs: np.ndarray
    unknown: np.ndarray
    wrong_last: np.ndarray

    @property
    def mismatch(self) -> np.ndarray:
        """Samples whose output differs in a value, an X/Z bit or a ``tlast``."""
        return self.differs.any(axis=1) | self.unknown | self.wrong_last.any(axis=1)

    def failure(
        self, row: int, index: int, inputs: np.ndarray, expected: np.ndarray
    ) -> dict[str, Any] | None:
        """The failure record of sample *row* (the run's sample *index*), or None if it is
        right: ``"unknown"``, ``"mismatch"`` (with the differing ``elements``) or ``"tlast"``
        (with the first wrong ``beat``)."""
        elements = np.flatnonzero(self.differs[row]).tolist()
        args = (index, inputs, expected, self.actual[row])
        if self.unknown[row]:
            return failure_record("unknown", *args, elements)
        if elements:
            return failure_record("mismatch", *args, elements)
        if self.wrong_last[row].any():
            beat = int(np.argmax(self.wrong_last[row]))
            last = beat == self.wrong_last.shape[1] - 1
            return failure_record(
                "tlast", *args, [], beat=beat, expected_last=int(last), observed_last=int(not last)
            )
        return None


def compare_samples(
    layout: StreamLayout,
    expected: np.ndarray,
    slots: np.ndarray,
    lasts: np.ndarray,
    unknown_beats: np.ndarray | None = None,
) -> SampleCheck:
    """Check ``n = len(expected)`` samples given their output beats.

    Parameters
    ----------
    slots:
        ``(n * beats, n_slots)`` int64: each beat's slot values.
    lasts:
        ``(n * beats,)`` int: ``tlast`` on each beat (1, 0, or -1 for X/Z).
    unknown_beats:
        ``(n * beats,)`` bool: beats whose data held X/Z bits (None: none).
    """
    n, beats = expected.shape[0], layout.beats
    actual, dropped = layout.from_slots(slots)
    pattern = np.zeros(beats, dtype=np.int64)
    pattern[-1] = 1
    unknown = np.zeros(n, dtype=bool)
    if unknown_beats is not None:
        unknown = unknown_beats.reshape(n, beats).any(axis=1)
    return SampleCheck(
        actual=actual,
        differs=(actual != expected) | dropped,
        unknown=unknown,
        wrong_last=np.asarray(lasts, dtype=np.int64).reshape(n, beats) != pattern,
    )


def timing(
    last_cycles: np.ndarray, before: int, first: bool, latency: int, interval: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The timing of consecutive samples at full throughput.

    *last_cycles*: each sample's last output beat's cycle; *before*: the first input beat's
    cycle when *first* (the samples start with sample 0), else the previous sample's last
    output beat's cycle. Returns ``(late, observed, wanted)``: per sample whether its timing is
    wrong, the cycles observed and the cycles wanted (latency for sample 0, else the interval).
    """
    cycles = np.asarray(last_cycles, dtype=np.int64)
    observed = np.diff(cycles, prepend=np.int64(before))
    wanted = np.full(cycles.shape, interval, dtype=np.int64)
    if first and cycles.size:
        wanted[0] = latency
    return observed != wanted, observed, wanted


def timing_failure(
    index: int,
    observed: int,
    wanted: int,
    inputs: np.ndarray,
    expected: np.ndarray,
    actual,
    *,
    first: bool | None = None,
) -> dict[str, Any]:
    """The failure record of a sample whose output came at the wrong time: its latency when it
    is the first sample of its stream (``first``; by default sample 0 is), else its interval
    from the sample before."""
    if (index == 0) if first is None else first:
        extra = {"expected_latency": wanted, "observed_latency": observed}
        return failure_record("latency", index, inputs, expected, actual, [], **extra)
    extra = {"expected_interval": wanted, "observed_interval": observed}
    return failure_record("interval", index, inputs, expected, actual, [], **extra)


def score_stream(
    layout: StreamLayout,
    inputs: np.ndarray,
    expected: np.ndarray,
    beats: Sequence[int | str],
    lasts: Sequence[str],
    beat_cycles: Sequence[int],
    *,
    first_input_cycle: int | None,
    latency: int,
    interval: int,
    check_timing: bool,
    protocol_errors: Sequence[dict[str, Any]] = (),
    unknown_valid_cycles: Sequence[int] = (),
) -> dict[str, Any]:
    """Score a whole run of the cocotb stream bench.

    Parameters
    ----------
    beats, lasts, beat_cycles:
        Every output beat taken (valid and ready high), in order: its data (an int, or the
        simulator's binary string when it held X/Z bits), its ``tlast`` (``"1"``, ``"0"`` or
        X/Z text) and its cycle.
    first_input_cycle:
        The cycle sample 0's first input beat was taken (None: never).
    check_timing:
        Whether the run was at full throughput (no bubbles, no backpressure): then the timing
        is checked.
    protocol_errors:
        ``{"cycle", "beat", "message"}`` for each time the output broke the handshake rules
        (``tvalid`` fell, or data or ``tlast`` changed, before the beat was taken).

    Returns
    -------
    dict
        As :func:`hgq_rtl_sim.scoreboard.score` (counts in samples, except ``outputs`` and
        ``extra``: beats), with ``protocol_errors``; failure kinds ``"unknown"``,
        ``"mismatch"``, ``"protocol"``, ``"tlast"``, ``"latency"``, ``"interval"``,
        ``"missing"``, ``"extra"``, ``"unknown_valid"``.
    """
    n_samples, per_sample = int(expected.shape[0]), layout.beats
    n_beats = len(beats)
    done = min(n_samples, n_beats // per_sample)
    taken = beats[: done * per_sample]
    unknown_beats = np.array([isinstance(b, str) for b in taken], dtype=bool)
    slots = layout.slots.unpack([0 if isinstance(b, str) else b for b in taken])
    last_values = np.array([{"1": 1, "0": 0}.get(t, -1) for t in lasts[: done * per_sample]])
    check = compare_samples(layout, expected[:done], slots, last_values, unknown_beats)
    mismatch = check.mismatch

    protocol = np.zeros(done, dtype=bool)
    first_protocol: dict[int, dict[str, Any]] = {}
    for error in protocol_errors:
        sample = error["beat"] // per_sample
        if sample < done:
            protocol[sample] = True
            first_protocol.setdefault(sample, error)

    late = np.zeros(done, dtype=bool)
    observed = wanted = late
    if check_timing and done and first_input_cycle is not None:
        last_cycles = np.asarray(beat_cycles[per_sample - 1 : done * per_sample : per_sample])
        late, observed, wanted = timing(last_cycles, first_input_cycle, True, latency, interval)

    results: dict[str, Any] = {
        "vectors": n_samples,
        "outputs": n_beats,
        "mismatches": int(mismatch.sum()),
        "unknown_outputs": int(check.unknown.sum()),
        "latency_errors": int(late.sum()),
        "protocol_errors": len(protocol_errors),
        "missing": n_samples - done,
        "extra": max(0, n_beats - n_samples * per_sample),
        "unknown_valid": len(unknown_valid_cycles),
        "first_failure": None,
    }
    bad = mismatch | protocol | late
    if bad.any():
        k = int(np.argmax(bad))
        failure = check.failure(k, k, inputs[k], expected[k])
        if failure is None or (failure["kind"] == "tlast" and protocol[k]):
            if protocol[k]:
                error = first_protocol[k]
                failure = failure_record(
                    "protocol", k, inputs[k], expected[k], check.actual[k], [], **error
                )
            else:
                failure = timing_failure(
                    k, int(observed[k]), int(wanted[k]), inputs[k], expected[k], check.actual[k]
                )
        results["first_failure"] = failure
    elif done < n_samples:
        received = n_beats - done * per_sample
        results["first_failure"] = failure_record(
            "missing",
            done,
            inputs[done],
            expected[done],
            None,
            list(range(layout.n_elements)),
            beats_received=received,
            beats_expected=per_sample,
        )
    elif n_beats > n_samples * per_sample:
        cycle = int(beat_cycles[n_samples * per_sample])
        results["first_failure"] = failure_record(
            "extra", n_samples, None, None, None, [], cycle=cycle
        )
    elif protocol_errors:
        results["first_failure"] = failure_record(
            "protocol", None, None, None, None, [], **protocol_errors[0]
        )
    elif unknown_valid_cycles:
        results["first_failure"] = failure_record(
            "unknown_valid", None, None, None, None, [], cycle=unknown_valid_cycles[0]
        )
    return results
