"""Verify a generated design against reference vectors: build with cocotb's runner, simulate, score.

>>> result = verify(Path("runs/digits/rtl"), inputs, expected)  # doctest: +SKIP
>>> result.passed, result.mismatches  # doctest: +SKIP
(True, 0)

The design folder holds ``<top>.v`` and ``manifest.json`` (ports, element formats, latency and the
Verilog's sha256). The bench (:mod:`hgq_rtl_sim.bench`) runs in the simulator's own process; it
gets its settings from one JSON file named by the ``HGQ_RTL_BENCH`` environment variable.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from cocotb_tools.runner import get_runner

from .bus import BusLayout
from .config import CONFIG_VARIABLE, BenchConfig, check_probability
from .interface import check_vectors, io_kind
from .manifest import load_manifest
from .result import VerifyResult
from .workspace import (
    _build_failed,
    _environment,
    _own_processes,
    _read_json,
    _run_watching,
    _Say,
    _tail,
    _work_dir,
)

__all__ = ["verify", "SIMULATORS"]

SIMULATORS = ("verilator", "icarus")
TIMESCALE = ("1ns", "1ps")
BENCH_MODULE = "hgq_rtl_sim.bench"
# Generated Verilog (Amaranth) widens operands implicitly; other lint warnings stay visible in
# the build log but do not stop the build.
VERILATOR_ARGS = ("-Wno-fatal", "-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC")
_STAMP = "hgq_rtl_build.json"


def verify(
    rtl_dir: Path,
    inputs: np.ndarray,
    expected: np.ndarray,
    *,
    simulator: str = "verilator",
    build_dir: Path | None = None,
    seed: int = 0,
    bubble_probability: float = 0.05,
    backpressure_probability: float = 0.2,
    waves: bool = False,
    quiet: bool = False,
    expected_taps: Sequence[np.ndarray] | None = None,
) -> VerifyResult:
    """Simulate the design in *rtl_dir* on *inputs* and compare its outputs with *expected*.

    A parallel design gets one vector per clock (II = 1) with ``valid_in`` high, except for
    random bubbles; every output must equal the reference exactly and come out
    ``latency_cycles`` after its input; exactly N outputs must come out. A design with several
    inputs (manifest ``inputs``) takes the model's input vector as the concatenation of its
    inputs' elements, in the manifest's order, and gets each input on its port.

    A stream design (manifest ``"io": "stream"``) gets the samples back to back as beats with
    random bubbles, and its output is held back at random (``backpressure_probability``);
    every output beat must carry the reference's elements, in order, with ``tlast`` on each
    sample's last beat, and exactly N samples must come out. With both probabilities 0 its
    timing is checked too: sample 0's last output beat ``latency_cycles`` after its first input
    beat was taken, each later sample's ``initiation_interval`` cycles after the one before.
    Counts are in samples (``extra``: surplus output beats).

    Not thread-safe: it sets ``PATH`` and ``HGQ_RTL_BENCH`` in ``os.environ`` for the duration
    of the call.

    Parameters
    ----------
    rtl_dir:
        Folder with ``manifest.json`` and the Verilog it names.
    inputs, expected:
        Integer arrays ``(N, n_input_elements)`` and ``(N, n_output_elements)`` (the model's
        input and output vectors); every value must fit its element's format.
    simulator:
        ``"verilator"`` (fast) or ``"icarus"`` (needs ``iverilog`` on PATH).
    build_dir:
        Where to build and keep the logs, vectors and results (``sim_build/`` inside it; a build
        of the same Verilog is reused). Default: a temporary folder, removed afterwards.
    seed, bubble_probability:
        Random valid bubbles: each cycle is a bubble with this probability (0 for none).
    backpressure_probability:
        Stream designs: each cycle the output is held back (``tready`` low) with this
        probability (0 for none). Parallel designs have no backpressure.
    waves:
        Record a waveform (Verilator: ``<build_dir>/dump.vcd``; Icarus:
        ``<build_dir>/sim_build/<top>.fst``); *build_dir* must then be given.
    quiet:
        No progress on stderr.
    expected_taps:
        For a design generated with debug taps: the reference output of every tapped (hidden)
        layer, in manifest order. Each tap is then compared too, and a failure names the first
        layer whose output differs (``first_failure["first_differing_layer"]``).

    Raises
    ------
    ValueError
        Bad manifest (including a sha256 that differs), shapes, values outside their formats,
        or arguments.
    SimulatorNotFoundError
        The simulator is not installed.
    RuntimeError
        The build or the simulation itself failed (the message ends with the log's tail).
    """
    started = time.perf_counter()
    if simulator not in SIMULATORS:
        raise ValueError(f"simulator must be one of {SIMULATORS}, not {simulator!r}")
    check_probability("bubble_probability", bubble_probability)
    check_probability("backpressure_probability", backpressure_probability)
    if waves and build_dir is None:
        raise ValueError("waves=True needs a build_dir to keep the waveform in, not None")
    rtl_dir = Path(rtl_dir).resolve()
    manifest = load_manifest(rtl_dir)
    inputs, expected = check_vectors(manifest, inputs, expected)
    if expected_taps is not None and io_kind(manifest) == "stream":
        raise ValueError("expected_taps must be None for a stream design (it has no taps)")
    tap_arrays = _check_taps(manifest, expected_taps, inputs.shape[0])
    say = _Say(quiet)

    with _environment(simulator), _work_dir(build_dir) as work:
        runner = _own_processes(get_runner(simulator))
        runner.log.setLevel(logging.CRITICAL)  # its failure lines are replaced by ours
        sim_build = work / "sim_build"
        kept = rtl_dir if build_dir is None else None  # the work folder is removed afterwards
        build_seconds = _build(
            runner, rtl_dir, manifest, simulator, sim_build, work, waves, say, kept
        )

        config_path = work / "bench.json"
        config = BenchConfig(
            manifest=rtl_dir / "manifest.json",
            vectors=work / "vectors.npz",
            results=work / "results.json",
            progress=work / "progress.txt",
            seed=seed,
            bubble_probability=bubble_probability,
            backpressure_probability=backpressure_probability,
        )
        np.savez(config.vectors, inputs=inputs, expected=expected, **tap_arrays)
        for stale in (config.results, config.progress):
            stale.unlink(missing_ok=True)
        config.write(config_path)
        os.environ[CONFIG_VARIABLE] = str(config_path)  # cocotb's runner lets os.environ win

        top = manifest["top"]
        sim_log = work / "sim.log"
        say(f"simulating {inputs.shape[0]} vectors (log: {sim_log})")

        def run_test() -> None:
            runner.test(
                test_module=BENCH_MODULE,
                hdl_toplevel=top,
                hdl_toplevel_lang="verilog",
                build_dir=sim_build,
                test_dir=work,
                results_xml=str(work / "results.xml"),
                seed=seed,
                waves=waves,
                timescale=TIMESCALE,
                log_file=sim_log,
            )

        error = _run_watching(run_test, config.progress, inputs.shape[0], say)
        results = _read_json(config.results)
        if isinstance(results, dict) and "error" in results:
            raise RuntimeError(
                f"the bench failed on {top} with {simulator}: {results['error']}\n"
                f"{_tail(sim_log, 20)}"
            )
        if results is None:
            reason = f" ({error!r})" if error is not None else ""
            raise RuntimeError(
                f"{simulator} simulation of {top} wrote no results{reason}\n{_tail(sim_log)}"
            )

    result = VerifyResult(
        vectors=int(results["vectors"]),
        mismatches=int(results["mismatches"]),
        first_failure=results["first_failure"],
        seconds=time.perf_counter() - started,
        simulator=simulator,
        latency_errors=int(results["latency_errors"]),
        missing=int(results["missing"]),
        extra=int(results["extra"]),
        protocol_errors=int(results.get("protocol_errors", 0)),
        build_seconds=build_seconds,
        sim_seconds=float(results["sim_seconds"]),
    )
    say(result.summary())
    return result


def _build(
    runner: Any,
    rtl_dir: Path,
    manifest: dict[str, Any],
    simulator: str,
    sim_build: Path,
    work: Path,
    waves: bool,
    say: _Say,
    keep_log_beside: Path | None = None,
) -> float:
    """Build the simulation model unless *sim_build* holds one of the same Verilog and settings.

    Returns the seconds spent building (0 when reused). A failed build's log is kept beside
    *keep_log_beside* (see :func:`~hgq_rtl_sim.workspace._build_failed`)."""
    top = manifest["top"]
    stamp = {
        "verilog_sha256": manifest["hashes"]["verilog_sha256"],
        "simulator": simulator,
        "waves": waves,
        "python": sys.executable,  # Verilator's build folders remember absolute paths
        "args": list(VERILATOR_ARGS),
    }
    stamp_path = sim_build / _STAMP
    if _read_json(stamp_path) == stamp:
        say(f"reusing the {simulator} build of {top} in {sim_build}")
        return 0.0
    build_log = work / "build.log"
    say(f"building {top} with {simulator} (log: {build_log})")
    started = time.perf_counter()
    stamp_path.unlink(missing_ok=True)
    # the compiler's temporary files go inside the work folder, so an interrupted build leaves
    # none in the system's temporary folder (_environment restores TMPDIR afterwards)
    temporary = work / "tmp"
    temporary.mkdir(exist_ok=True)
    os.environ["TMPDIR"] = str(temporary)
    try:
        runner.build(
            sources=[rtl_dir / manifest["verilog"]],
            hdl_toplevel=top,
            build_dir=sim_build,
            build_args=list(VERILATOR_ARGS) if simulator == "verilator" else [],
            timescale=TIMESCALE,
            waves=waves,
            always=True,
            log_file=build_log,
        )
    except (Exception, SystemExit):
        raise _build_failed(f"{simulator} build of {top}", build_log, keep_log_beside) from None
    seconds = time.perf_counter() - started
    stamp_path.write_text(json.dumps(stamp))
    say(f"built in {seconds:.1f} s")
    return seconds


def _check_taps(
    manifest: dict[str, Any], expected_taps: Sequence[np.ndarray] | None, n_vectors: int
) -> dict[str, np.ndarray]:
    """The tap references as ``tap_<k>`` arrays for the vectors file (empty without taps)."""
    taps = manifest.get("taps") or []
    if expected_taps is None:
        return {}
    if len(expected_taps) != len(taps):
        raise ValueError(
            f"expected_taps must hold {len(taps)} arrays (the manifest's taps), "
            f"not {len(expected_taps)}"
        )
    arrays = {}
    for k, (tap, values) in enumerate(zip(taps, expected_taps, strict=True)):
        layout = BusLayout.from_manifest(f"tap {tap['layer']}", {**tap, "valid": ""})
        values = layout.check_range(values)
        if values.shape[0] != n_vectors:
            raise ValueError(
                f"expected_taps[{k}] has {values.shape[0]} vectors, the inputs {n_vectors}"
            )
        arrays[f"tap_{k}"] = values
    return arrays
