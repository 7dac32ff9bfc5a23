"""Scoreboard: compare what a pipeline put out with the reference, bit for bit.

Pure numpy, no simulator: the bench collects the output words and the cycle of every input and
output, and :func:`score` turns them into the results dictionary the runner reads. Integer
equality only, never a tolerance.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .bus import BusLayout

__all__ = ["failure_record", "first_differing_layer", "score", "score_taps"]


def failure_record(
    kind: str,
    index: int | None,
    inputs: np.ndarray | None,
    expected: np.ndarray | None,
    actual: np.ndarray | None,
    elements: list[int],
    **extra: Any,
) -> dict[str, Any]:
    """A ``first_failure`` record: the failure's *kind*, the vector (sample) *index*, its inputs,
    expected and actual outputs (None where unknown), the differing output elements, and any
    *extra* fields (cycles, latencies, ...)."""
    record: dict[str, Any] = {
        "kind": kind,
        "index": index,
        "inputs": None if inputs is None else inputs.tolist(),
        "expected": None if expected is None else expected.tolist(),
        "actual": None if actual is None else actual.tolist(),
        "elements": elements,
    }
    record.update(extra)
    return record


def score(
    layout: BusLayout,
    inputs: np.ndarray,
    expected: np.ndarray,
    outputs: Sequence[int | str],
    input_cycles: Sequence[int],
    output_cycles: Sequence[int],
    latency: int,
    unknown_valid_cycles: Sequence[int] = (),
) -> dict[str, Any]:
    """Compare collected outputs with *expected*, in order, and check their timing.

    Parameters
    ----------
    layout:
        The output bus layout.
    inputs, expected:
        The vectors that were driven and their reference outputs, ``(N, n_in)`` and
        ``(N, n_out)`` int64.
    outputs:
        The output word on every cycle that ``valid_out`` was high, in order: an int, or the
        simulator's binary string when it held X/Z bits.
    input_cycles, output_cycles:
        The cycle each input was sampled / each output was seen (same clock count).
    latency:
        The manifest's latency: output ``k`` must come exactly ``latency`` cycles after input ``k``.
    unknown_valid_cycles:
        Cycles on which the valid output held X/Z (each is a failure).

    Returns
    -------
    dict
        ``vectors``, ``outputs``, ``mismatches`` (vectors whose output differs in any element or
        holds X/Z bits), ``unknown_outputs`` (outputs with X/Z bits), ``latency_errors``,
        ``missing`` (vectors without an output), ``extra`` (outputs beyond the N expected),
        ``unknown_valid`` (cycles with X/Z on the valid output) and
        ``first_failure`` (None, or a dict with ``kind``, ``index``, ``inputs``, ``expected``,
        ``actual`` and ``elements``, the differing element indices).
    """
    n_vectors = int(expected.shape[0])
    n_outputs = len(outputs)
    n_common = min(n_vectors, n_outputs)

    unknown = np.array([isinstance(w, str) for w in outputs[:n_common]], dtype=bool)
    actual = layout.unpack([0 if isinstance(w, str) else w for w in outputs])
    differs = actual[:n_common] != expected[:n_common]
    mismatch = differs.any(axis=1) | unknown
    observed_latency = np.asarray(output_cycles[:n_common], dtype=np.int64) - np.asarray(
        input_cycles[:n_common], dtype=np.int64
    )
    late = observed_latency != latency

    results: dict[str, Any] = {
        "vectors": n_vectors,
        "outputs": n_outputs,
        "mismatches": int(mismatch.sum()),
        "unknown_outputs": int(unknown.sum()),
        "latency_errors": int(late.sum()),
        "missing": max(0, n_vectors - n_outputs),
        "extra": max(0, n_outputs - n_vectors),
        "unknown_valid": len(unknown_valid_cycles),
        "first_failure": None,
    }

    def failure(kind: str, index: int | None, **extra: Any) -> dict[str, Any]:
        known = index is not None
        return failure_record(
            kind,
            index,
            inputs[index] if known and index < n_vectors else None,
            expected[index] if known and index < n_vectors else None,
            actual[index] if known and index < n_outputs else None,
            **{"elements": [], **extra},
        )

    bad = mismatch | late
    if bad.any():
        index = int(np.argmax(bad))
        timing = {"expected_latency": latency, "observed_latency": int(observed_latency[index])}
        if unknown[index]:
            results["first_failure"] = failure(
                "unknown", index, elements=list(range(layout.n_elements)), bits=outputs[index]
            )
        elif mismatch[index]:
            elements = np.flatnonzero(differs[index]).tolist()
            results["first_failure"] = failure("mismatch", index, elements=elements, **timing)
        else:
            results["first_failure"] = failure("latency", index, **timing)
    elif n_outputs < n_vectors:
        results["first_failure"] = failure(
            "missing", n_outputs, elements=list(range(layout.n_elements))
        )
    elif n_outputs > n_vectors:
        results["first_failure"] = failure("extra", n_vectors, cycle=int(output_cycles[n_vectors]))
    elif unknown_valid_cycles:
        results["first_failure"] = failure("unknown_valid", None, cycle=unknown_valid_cycles[0])
    return results


def score_taps(
    taps: Sequence[tuple[dict[str, Any], np.ndarray]],
    words: Sequence[Sequence[str]],
    input_cycles: Sequence[int],
) -> list[dict[str, Any]]:
    """Compare every hidden layer's output bus (debug taps) with its reference.

    ``taps`` pairs each manifest ``taps`` entry with the reference outputs of that layer
    ``(N, n_elements)``; ``words`` holds each tap port's value on every cycle (binary strings).
    Vector ``k``'s value is read ``latency_cycles`` after its input cycle.

    Returns one dict per tap: ``layer``, ``mismatches`` and ``failing`` (indices of the vectors
    whose tap differs, at most the first 1000).
    """
    cycles = np.asarray(input_cycles, dtype=np.int64)
    report = []
    for (tap, expected), seen in zip(taps, words, strict=True):
        layout = BusLayout.from_manifest(f"tap {tap['layer']}", {**tap, "valid": ""})
        at = cycles + int(tap["latency_cycles"])
        texts = [seen[c] if c < len(seen) else "x" for c in at.tolist()]
        unknown = np.array(["x" in t.lower() or "z" in t.lower() for t in texts], dtype=bool)
        actual = layout.unpack(
            [0 if bad else int(t, 2) for t, bad in zip(texts, unknown, strict=True)]
        )
        n = min(len(actual), len(expected))
        differs = np.any(actual[:n] != expected[:n], axis=1) | unknown[:n]
        failing = np.flatnonzero(differs)
        report.append(
            {
                "layer": tap["layer"],
                "mismatches": int(failing.size),
                "failing": failing[:1000].tolist(),
            }
        )
    return report


def first_differing_layer(
    tap_report: Sequence[dict[str, Any]], index: int, manifest: dict[str, Any]
) -> str:
    """The first layer whose output differs for vector ``index`` (the last layer if no tap does)."""
    for tap in tap_report:
        if index in tap["failing"]:
            return tap["layer"]
    layers = manifest.get("layers") or [{"name": "output"}]
    return str(layers[-1]["name"])
