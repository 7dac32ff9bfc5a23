"""What a verification gives back: :class:`VerifyResult`, and :class:`SimulatorNotFoundError`
for a simulator or build tool that is not installed. Both engines use them, the cocotb bench
(:func:`hgq_rtl_sim.runner.verify`) and the fast harness (:func:`hgq_rtl_sim.fast.verify_fast`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class SimulatorNotFoundError(RuntimeError):
    """The requested simulator's executables are not on PATH.

    ``missing_tool`` marks it as a set-up problem rather than a failed check: the command line
    exits 2 (bad input) on it, not 1.
    """

    missing_tool = True


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of :func:`hgq_rtl_sim.runner.verify` (and of :mod:`hgq_rtl_sim.fast`).

    Attributes
    ----------
    vectors:
        Number of vectors driven.
    mismatches:
        Vectors whose output differs from the reference in any element (or holds X/Z bits).
    first_failure:
        None when everything matched; else a dict with ``kind`` (``"mismatch"``, ``"unknown"``,
        ``"latency"``, ``"missing"``, ``"extra"`` or ``"unknown_valid"``; stream designs also
        ``"tlast"``, ``"interval"`` and ``"protocol"``), ``index`` (the vector or sample),
        ``inputs``, ``expected``, ``actual`` and ``elements`` (differing element indices).
    seconds:
        Wall time of the whole call (build + simulation).
    simulator:
        ``"verilator"`` or ``"icarus"`` (cocotb bench), ``"verilator-fast"`` (the C++ harness
        of :mod:`hgq_rtl_sim.fast`).
    latency_errors:
        Outputs that came out a different number of cycles after their input than the manifest's
        ``latency_cycles`` (stream designs, run at full throughput: samples whose last output
        beat came at the wrong time).
    missing, extra:
        Vectors with no output; outputs beyond the number of vectors (stream designs: samples
        without their whole output; surplus output beats).
    protocol_errors:
        Stream designs: times the output broke the handshake (``tvalid`` fell, or its data or
        ``tlast`` changed, before the beat was taken).
    build_seconds, sim_seconds:
        Time spent building (0 when an earlier build in *build_dir* was reused) and in the bench's
        drive loop.
    """

    vectors: int
    mismatches: int
    first_failure: dict[str, Any] | None
    seconds: float
    simulator: str
    latency_errors: int = 0
    missing: int = 0
    extra: int = 0
    protocol_errors: int = 0
    build_seconds: float = 0.0
    sim_seconds: float = 0.0

    @property
    def passed(self) -> bool:
        """True when every vector's output matched, on time, and nothing else came out."""
        return (
            self.first_failure is None
            and self.mismatches == 0
            and self.latency_errors == 0
            and self.missing == 0
            and self.extra == 0
            and self.protocol_errors == 0
        )

    def summary(self) -> str:
        """One line: verdict, counts and speed."""
        us = 1e6 * self.sim_seconds / max(1, self.vectors)
        counts = f"{self.vectors} vectors, {self.mismatches} mismatches"
        for name in ("latency_errors", "missing", "extra", "protocol_errors"):
            if getattr(self, name):
                counts += f", {getattr(self, name)} {name.replace('_', ' ')}"
        line = (
            f"{'PASS' if self.passed else 'FAIL'} ({self.simulator}): {counts} "
            f"[{self.seconds:.1f} s, {us:.1f} us/vector]"
        )
        if self.first_failure is not None:
            failure = self.first_failure
            line += f"; first failure: {failure['kind']} at vector {failure['index']}"
            if failure.get("elements"):
                line += f", elements {failure['elements']}"
            if failure.get("first_differing_layer"):
                line += f", first differing layer {failure['first_differing_layer']}"
        return line
