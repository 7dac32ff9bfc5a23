"""The child processes and temporary files of one command, and their end with it.

Every tool hgq-rtl starts (make, the compiler, Verilator's simulation, Yosys, nextpnr, the fast
harness) is started by :func:`run` or :func:`start`:

* in a process group (session) of its own, so that one ``killpg`` ends it with everything it
  started in turn (make's compilers), and a Ctrl-C on the terminal reaches only hgq-rtl, which
  then ends the groups itself;
* with ``PR_SET_PDEATHSIG`` (Linux): the kernel kills the child if hgq-rtl dies first (the
  signal fires when the starting *thread* ends, so it is set only when that is the main thread
  or a thread that waits for the child);
* registered with a small watchdog process (:func:`_watch`, started on first use in a session
  of its own) that holds the read end of a pipe from hgq-rtl. When hgq-rtl ends in any way,
  ``kill -9`` included, the pipe closes; the watchdog then kills every group still registered
  and removes the command's temporary folder.

Temporary files live in one folder per command, :func:`scratch_dir` (``$TMPDIR/hgq-rtl-<pid>-*``,
any ``TMPDIR``, spaces included); :func:`temp_dir` makes folders inside it. :func:`cleanup`
(registered with :mod:`atexit`, so it runs on a normal exit, an error and after Ctrl-C or
SIGTERM, which the CLI turns into ``KeyboardInterrupt``) kills the groups and removes the folder;
the watchdog does the same after ``kill -9``.

Imports only the standard library.
"""

from __future__ import annotations

import atexit
import ctypes
import ctypes.util
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "cleanup",
    "finish",
    "kill_all",
    "make_safe",
    "run",
    "scratch_dir",
    "start",
    "temp_dir",
]

_PR_SET_PDEATHSIG = 1
_lock = threading.RLock()
_groups: set[int] = set()
_scratch: Path | None = None
_watchdog: subprocess.Popen | None = None
_owner = os.getpid()  # a forked copy of this process must not clean up after its parent


def _load_prctl() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.prctl
    except (OSError, AttributeError):
        return None


_prctl = _load_prctl()  # resolved here: the child between fork and exec only calls it


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGKILL it when the thread that started it dies."""
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


# ------------------------------------------------------------------------------------ folders


def scratch_dir() -> Path:
    """This command's temporary folder (created on first use, removed at exit)."""
    global _scratch
    with _lock:
        _adopt()
        if _scratch is None or not _scratch.is_dir():
            _scratch = Path(tempfile.mkdtemp(prefix=f"hgq-rtl-{os.getpid()}-")).resolve()
            _tell(f"folder {_scratch}")
        return _scratch


def remove_if_killed(folder: Path) -> None:
    """Have the watchdog remove ``folder`` if this process dies without removing it itself
    (``kill -9``): the write guard's hidden sibling of an output folder. The watchdog removes
    it when this process ends in any way; a folder already gone is skipped."""
    with _lock:
        _adopt()
        _tell(f"folder {Path(folder).resolve()}")


def remove_lock_if_killed(path: Path) -> None:
    """Have the watchdog remove the write guard's lock file ``path`` once this process has
    ended, the way a holder releases it (:func:`_release_lock`): only if it can take the lock
    itself, so a lock another command holds by then is left alone."""
    with _lock:
        _adopt()
        _tell(f"lock {Path(path).resolve()}")


#: How long the watchdog waits for a lock file to be free before leaving it to its holder.
LOCK_WAIT_S = 3.0


def forget_lock(path: Path) -> None:
    """The lock file ``path`` was released normally: the watchdog leaves it alone (so a normal
    exit never touches a lock another command holds by then)."""
    with _lock:
        _tell(f"unlock {Path(path).resolve()}")


def _release_lock(path: Path) -> None:
    """Remove the lock file ``path`` if nobody holds it: take the lock (never waiting), check
    that the path still names the file locked, unlink it while holding the lock (a waiting
    writer then finds the path gone and locks a new file, as after a normal release)."""
    import fcntl

    try:
        descriptor = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return  # gone: released normally
    try:
        # the dead command's own descriptor may close a moment after the pipe that woke the
        # watchdog: a lock still held after LOCK_WAIT_S is another writer's
        deadline = time.monotonic() + LOCK_WAIT_S
        while True:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                if time.monotonic() > deadline:
                    return
                time.sleep(0.05)
        opened, current = os.fstat(descriptor), os.stat(path)
        if (opened.st_dev, opened.st_ino) == (current.st_dev, current.st_ino):
            os.unlink(path)
    except OSError:
        pass  # replaced or removed meanwhile: theirs
    finally:
        os.close(descriptor)


def temp_dir(prefix: str, *, for_make: bool = False) -> Path:
    """A new folder inside :func:`scratch_dir` (removed with it).

    ``for_make``: GNU make (Verilator's builds) cannot build in a folder whose path holds a
    space or one of ``:#$%*?;=\\'"``; when :func:`scratch_dir` does (a ``TMPDIR`` with a space),
    the folder is made in a second command folder under the first system temporary folder
    without them (``/tmp``, ``/var/tmp``, ``/usr/tmp``), removed the same way.
    """
    root = scratch_dir()
    if for_make and not make_safe(root):
        root = _make_safe_scratch(root)
    return Path(tempfile.mkdtemp(prefix=prefix, dir=root))


def make_safe(path: Path) -> bool:
    """Whether GNU make can build in ``path`` (no whitespace, none of ``:#$%*?;=\\'"``)."""
    return not any(c.isspace() or c in _MAKE_UNSAFE for c in str(path))


_MAKE_UNSAFE = frozenset(":#$%*?;=\\'\"")
_extra: list[Path] = []  # command folders besides _scratch (see temp_dir)


def _make_safe_scratch(unsafe: Path) -> Path:
    with _lock:
        for folder in _extra:
            if folder.is_dir():
                return folder
        for candidate in ("/tmp", "/var/tmp", "/usr/tmp"):
            if make_safe(Path(candidate)) and os.access(candidate, os.W_OK | os.X_OK):
                folder = Path(tempfile.mkdtemp(prefix=f"hgq-rtl-{os.getpid()}-", dir=candidate))
                _extra.append(folder)
                _tell(f"folder {folder}")
                return folder
    raise ValueError(
        f"the temporary folder {unsafe} has a character GNU make cannot build in (a space or "
        "one of :#$%*?;=\\'\") and no system temporary folder is usable: set TMPDIR to a "
        "folder without them"
    )


# ------------------------------------------------------------------------------------ children


def start(argv: Sequence[str | os.PathLike], **popen: Any) -> subprocess.Popen:
    """:class:`subprocess.Popen` in a new session, killed with this command (see the module
    docstring); ``popen`` are Popen's keyword arguments (``cwd``, ``env``, ``stdin`` ...).
    Without ``env``, the child gets this process's environment. Its ``TMPDIR`` is
    :func:`scratch_dir` unless ``env`` sets another one."""
    return _start(argv, threading.current_thread() is threading.main_thread(), popen)


def _start(argv: Sequence[str | os.PathLike], death_signal: bool, popen: dict) -> subprocess.Popen:
    """``death_signal``: set PR_SET_PDEATHSIG, which fires when the *thread* that starts the
    child ends: only for the main thread, or a thread that waits for the child (:func:`run`)."""
    with _lock:
        _adopt()
        environment = os.environ if popen.get("env") is None else popen["env"]
        if environment.get("TMPDIR") == os.environ.get("TMPDIR"):  # not chosen by the caller
            # the tool's own temporary files (YoWASP's, the compiler's) go where they are
            # removed with the command, even when the tool is killed
            popen = {**popen, "env": {**environment, "TMPDIR": str(scratch_dir())}}
        process = subprocess.Popen(
            [str(a) for a in argv],
            start_new_session=True,
            preexec_fn=_die_with_parent if death_signal else None,
            **popen,
        )
        _groups.add(process.pid)
        _tell(f"group {process.pid}")
    return process


def finish(process: subprocess.Popen) -> None:
    """Kill what is left of ``process``'s group (its own children may outlive it) and forget
    the group."""
    _kill_group(process.pid)
    with _lock:
        if process.pid in _groups:
            _groups.discard(process.pid)
            _tell(f"done {process.pid}")


def run(
    argv: Sequence[str | os.PathLike],
    *,
    timeout: float | None = None,
    input: bytes | None = None,
    **popen: Any,
) -> subprocess.CompletedProcess:
    """Like :func:`subprocess.run` (no ``check``; ``capture_output`` and ``input`` work) with the
    child started by :func:`start`; on
    a timeout, an exception or Ctrl-C its whole group is killed before this returns or raises.

    Raises ``subprocess.TimeoutExpired`` after ``timeout`` seconds.
    """
    if input is not None:
        popen["stdin"] = subprocess.PIPE
    if popen.pop("capture_output", False):
        popen["stdout"] = popen["stderr"] = subprocess.PIPE
    process = _start(argv, True, popen)  # this thread waits for it: the death signal is safe
    try:
        out, err = process.communicate(input, timeout=timeout)
    except BaseException:
        _kill_group(process.pid)
        process.wait()
        raise
    finally:
        finish(process)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def kill_all() -> None:
    """SIGKILL every group started by :func:`start` that is still registered."""
    with _lock:
        groups = sorted(_groups)
    for pgid in groups:
        _kill_group(pgid)


def cleanup() -> None:
    """Kill every child group and remove :func:`scratch_dir` (at exit; safe to call twice)."""
    global _scratch
    if os.getpid() != _owner:
        return
    kill_all()
    with _lock:
        folders = [f for f in (_scratch, *_extra) if f is not None]
        _scratch = None
        _extra.clear()
    for folder in folders:
        for _ in range(5):  # a dying child may still create a file while it is removed
            shutil.rmtree(folder, ignore_errors=True)
            if not folder.exists():
                break
            time.sleep(0.05)
    _close_watchdog()


# ------------------------------------------------------------------------------------ watchdog


def _adopt() -> None:
    """Start the watchdog and register :func:`cleanup` at exit, once per process."""
    global _watchdog, _owner
    if os.getpid() != _owner:  # a fork: its own registrations, not its parent's
        _owner, _watchdog = os.getpid(), None
        _groups.clear()
    if _watchdog is not None:
        return
    atexit.register(cleanup)
    try:
        _watchdog = subprocess.Popen(
            [sys.executable, "-m", __name__],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            cwd="/",
        )
    except OSError:  # no watchdog: SIGTERM and Ctrl-C are still handled by cleanup()
        _watchdog = None


def _tell(line: str) -> None:
    if _watchdog is None or _watchdog.stdin is None:
        return
    try:
        _watchdog.stdin.write(f"{line}\n".encode(errors="surrogateescape"))
        _watchdog.stdin.flush()
    except (OSError, ValueError):
        pass


def _close_watchdog() -> None:
    global _watchdog
    watchdog, _watchdog = _watchdog, None
    if watchdog is None:
        return
    try:
        watchdog.stdin.close()  # EOF: it cleans up what is left and ends
        watchdog.wait(timeout=5)
    except (OSError, ValueError, subprocess.TimeoutExpired):
        pass


def _watch() -> None:
    """The watchdog: read registrations until hgq-rtl closes the pipe (or dies), then kill the
    groups and remove the folders still registered."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    groups: set[int] = set()
    folders: list[Path] = []
    locks: list[Path] = []
    for raw in sys.stdin.buffer:
        kind, _, value = raw.rstrip(b"\n").decode(errors="surrogateescape").partition(" ")
        if kind == "group":
            groups.add(int(value))
        elif kind == "done":
            groups.discard(int(value))
        elif kind == "folder":
            folders.append(Path(value))
        elif kind == "lock":
            locks.append(Path(value))
        elif kind == "unlock":
            locks = [lock for lock in locks if lock != Path(value)]
    for pgid in groups:
        _kill_group(pgid)
    for path in locks:
        _release_lock(path)
    for folder in folders:
        for _ in range(20):
            shutil.rmtree(folder, ignore_errors=True)
            if not folder.exists():
                break
            time.sleep(0.1)


if __name__ == "__main__":
    _watch()
