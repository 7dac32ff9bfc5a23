"""The write guard: the one way every command writes its output folder.

A folder written by hgq-rtl holds a marker file, :data:`MARKER`, naming the command that wrote
it. Before anything is written, :func:`check_destination` refuses

* a destination that is a symbolic link or an existing file;
* a destination equal to one of the command's inputs, containing one (replacing it would
  delete the input) or lying inside one (``inputs``; ``hosts`` may hold the destination);
* a non-empty folder without the marker (not an hgq-rtl output: the user's files), or with the
  marker of another command (another kind of output).

While a command writes, the destination is locked (:func:`locked`): ``fcntl.flock`` on a hidden
lock file beside it, which the kernel releases when the process dies, so a crash leaves no
false lock; a second writer gets :class:`DestinationBusy` at once. :func:`replacing` builds the
new content in a hidden sibling and swaps it in with one atomic exchange of names
(``renameat2(RENAME_EXCHANGE)`` on Linux; elsewhere two renames with SIGINT and SIGTERM held
back): until then the old content stays as it was, and on any failure or interrupt the sibling
is removed and the old content is left untouched. :func:`updating` is for the few outputs that
are worked on in place (a training run that can be resumed, a kept simulation build): the same
checks and lock, no swap.

The sibling and the lock file of a process killed with SIGKILL are removed by its watchdog
(:func:`hgq_rtl.processes.remove_if_killed`, :func:`~hgq_rtl.processes.remove_lock_if_killed`;
the lock file only if the watchdog can take the lock itself); leftovers the watchdog could not
remove (an old content being removed, a watchdog killed too) are removed by the next command
writing the same destination, under its lock; an old content caught between the two renames of
the fallback swap is put back in place first.

Standard library and :mod:`hgq_rtl.processes` only: every layer may import this module
(docs/architecture.md).
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import re
import shutil
import signal
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from . import processes

#: The marker file of every output folder (JSON: ``{"written_by": "hgq-rtl", "command": c}``).
MARKER = ".hgq-rtl"
_WRITTEN_BY = "hgq-rtl"
#: Suffixes of the hidden siblings of a destination ``D``: ``.D.<id>.hgq-rtl-tmp`` (new
#: content being built, or old content being removed) and ``.D.hgq-rtl-lock``.
_TMP_SUFFIX = ".hgq-rtl-tmp"
_OLD_SUFFIX = ".hgq-rtl-old"  # the old content between the two renames of the fallback swap
_LOCK_SUFFIX = ".hgq-rtl-lock"


class DestinationError(ValueError):
    """A destination the command must not write (one line, naming it and what to do)."""


class DestinationBusy(DestinationError):
    """Another process is writing the destination."""


def _resolved(path: Path) -> Path:
    return Path(os.path.abspath(path)).resolve()


def marker_command(folder: Path) -> str | None:
    """The command named by ``folder``'s marker, or ``None`` (no marker, or not ours)."""
    try:
        document = json.loads((Path(folder) / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if isinstance(document, dict) and document.get("written_by") == _WRITTEN_BY:
        command = document.get("command")
        return command if isinstance(command, str) else None
    return None


def write_marker(folder: Path, command: str) -> None:
    """Mark ``folder`` as the output of ``hgq-rtl <command>``."""
    text = json.dumps({"written_by": _WRITTEN_BY, "command": command}) + "\n"
    (Path(folder) / MARKER).write_text(text, encoding="utf-8")


def check_destination(
    destination: str | Path,
    command: str,
    *,
    inputs: Sequence[str | Path | None] = (),
    hosts: Sequence[str | Path | None] = (),
) -> Path:
    """Refuse a destination that ``hgq-rtl <command>`` must not write (see the module's
    docstring); returns it as a :class:`~pathlib.Path`. Reads only: nothing is created.

    ``inputs``: files or folders the command reads; the destination must neither be, contain,
    nor lie inside any of them. ``hosts``: inputs the destination may lie inside (the default
    ``RTL_DIR/synth`` of ``synth``), but neither be nor contain. ``None`` entries are skipped.

    Raises
    ------
    DestinationError
        One line naming the destination, the reason and how to proceed.
    """
    destination = Path(destination)
    if destination.is_symlink():
        raise DestinationError(
            f"output folder {destination} is a symbolic link: give the path of a real folder"
        )
    if destination.exists() and not destination.is_dir():
        raise DestinationError(
            f"output folder {destination} exists and is not a folder: give another path"
        )
    target = _resolved(destination)
    for source, inside_ok in [(p, False) for p in inputs] + [(p, True) for p in hosts]:
        if source is None:
            continue
        source_path = _resolved(Path(source))
        if target == source_path:
            raise DestinationError(
                f"output folder {destination} is the input {source}: give another folder"
            )
        if target in source_path.parents:
            raise DestinationError(
                f"output folder {destination} contains the input {source}: replacing it would "
                "delete the input; give another folder"
            )
        if not inside_ok and source_path in target.parents:
            raise DestinationError(
                f"output folder {destination} lies inside the input {source}: give a folder "
                "outside it"
            )
    if destination.is_dir():
        owner = marker_command(destination)
        if owner is None and _has_content(destination):
            raise DestinationError(
                f"refusing to replace {destination}: it is not empty and holds no {MARKER} "
                "marker (it is not an hgq-rtl output); give a new or empty folder, or remove it"
            )
        if owner is not None and owner != command:
            raise DestinationError(
                f"refusing to replace {destination}: it holds the output of `hgq-rtl {owner}`, "
                f"not of `hgq-rtl {command}`; give another folder"
            )
    return destination


def _has_content(folder: Path) -> bool:
    try:
        return any(True for _ in folder.iterdir())
    except OSError as error:
        raise DestinationError(f"cannot read output folder {folder}: {error.strerror}") from None


# --------------------------------------------------------------------------- the lock

#: Locks this process holds: lock-file path → [descriptor, depth] (a nested guard of the same
#: destination, e.g. ``run`` calling ``emit``, reuses the lock).
_HELD: dict[str, list[int]] = {}
#: Hidden siblings this process is filling (:func:`replacing`): no other process knows their
#: names, so writing inside one needs no lock of its own.
_STAGING: set[Path] = set()


def lock_path(destination: str | Path) -> Path:
    """The lock file of ``destination``: ``.<name>.hgq-rtl-lock`` beside it (outside the
    folder, so that it stays in place while the folder is swapped)."""
    absolute = Path(os.path.abspath(destination))
    return absolute.parent / f".{absolute.name}{_LOCK_SUFFIX}"


@contextmanager
def locked(destination: str | Path) -> Iterator[None]:
    """Hold the write lock of ``destination`` (its parent folder must exist).

    Raises
    ------
    DestinationBusy
        When another process holds it.
    """
    if Path(os.path.abspath(destination)) in _STAGING:
        yield
        return
    path = lock_path(Path(destination))
    key = str(path)
    if key in _HELD:
        _HELD[key][1] += 1
        try:
            yield
        finally:
            _HELD[key][1] -= 1
        return
    descriptor = _acquire(path, Path(destination))
    processes.remove_lock_if_killed(path)  # after kill -9, the watchdog releases it the same way
    _HELD[key] = [descriptor, 1]
    try:
        yield
    finally:
        del _HELD[key]
        # removed while still held: a waiting process then finds another file (or none) at
        # the path and takes a fresh lock, never one on this removed file
        path.unlink(missing_ok=True)
        os.close(descriptor)
        processes.forget_lock(path)  # released: nothing for the watchdog to do


def _acquire(path: Path, destination: Path) -> int:
    import fcntl

    while True:
        try:
            descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as error:
            raise DestinationError(
                f"cannot lock output folder {destination}: {error.strerror} ({path})"
            ) from None
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            os.close(descriptor)
            if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise DestinationBusy(
                    f"output folder {destination} is being written by another hgq-rtl command: "
                    "wait for it to finish, or give another folder"
                ) from None
            raise
        opened = os.fstat(descriptor)
        try:
            current = os.stat(path)
        except FileNotFoundError:
            current = None
        if current is not None and (current.st_dev, current.st_ino) == (
            opened.st_dev,
            opened.st_ino,
        ):
            return descriptor
        os.close(descriptor)  # the holder removed the file meanwhile: lock the new one


def _remove_leftovers(destination: Path) -> None:
    """Siblings of ``destination`` left by a writer killed with SIGKILL (call under the lock):
    exactly ``.NAME.<12 hex digits>.hgq-rtl-tmp``, never another destination's."""
    absolute = Path(os.path.abspath(destination))
    name = re.escape(absolute.name)
    new = re.compile(rf"\.{name}\.[0-9a-f]{{12}}{re.escape(_TMP_SUFFIX)}")
    old = re.compile(rf"\.{name}\.[0-9a-f]{{12}}{re.escape(_OLD_SUFFIX)}")
    for leftover in sorted(absolute.parent.iterdir()):
        if old.fullmatch(leftover.name) and not absolute.exists():
            leftover.rename(absolute)  # killed between the two renames of _swap: put it back
        elif new.fullmatch(leftover.name) or old.fullmatch(leftover.name):
            shutil.rmtree(leftover, ignore_errors=True)


# --------------------------------------------------------------------------- writing


def _make_parents(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents; returns those created, deepest first."""
    created = []
    current = Path(os.path.abspath(folder))
    while not current.exists():
        created.append(current)
        current = current.parent
    folder.mkdir(parents=True, exist_ok=True)
    return created


def _remove_created(created: list[Path]) -> None:
    for folder in created:
        try:
            folder.rmdir()
        except OSError:
            return


def _sibling(destination: Path, suffix: str = _TMP_SUFFIX) -> Path:
    absolute = Path(os.path.abspath(destination))
    return absolute.parent / f".{absolute.name}.{uuid.uuid4().hex[:12]}{suffix}"


@contextmanager
def replacing(
    destination: str | Path,
    command: str,
    *,
    inputs: Sequence[str | Path | None] = (),
    hosts: Sequence[str | Path | None] = (),
) -> Iterator[Path]:
    """Write ``destination`` whole or not at all: yields an empty hidden sibling to fill.

    On a normal exit the sibling gets the marker and takes the destination's place; the old
    content (if any) is removed after the exchange. On an exception (an interrupt included) the
    sibling is removed and the destination stays exactly as it was. See
    :func:`check_destination` for what is refused; it is checked again under the lock.
    """
    destination = check_destination(destination, command, inputs=inputs, hosts=hosts)
    created = _make_parents(destination.parent)
    try:
        with locked(destination):
            check_destination(destination, command, inputs=inputs, hosts=hosts)
            _remove_leftovers(destination)
            staging = _sibling(destination)
            staging.mkdir()
            processes.remove_if_killed(staging)  # even after kill -9 (the watchdog does)
            _STAGING.add(staging)
            try:
                yield staging
                write_marker(staging, command)
                _swap(staging, destination)
            finally:
                _STAGING.discard(staging)
                shutil.rmtree(staging, ignore_errors=True)  # the new one, or the old content
    except BaseException:
        _remove_created(created)
        raise


@contextmanager
def updating(
    destination: str | Path,
    command: str,
    *,
    inputs: Sequence[str | Path | None] = (),
    hosts: Sequence[str | Path | None] = (),
) -> Iterator[Path]:
    """Work in ``destination`` itself (created and marked if new), under its lock.

    For outputs that are continued rather than replaced: a training run (``--resume``), a kept
    simulation build (``verify --waves``). The same refusals as :func:`replacing`. A folder
    this call created is removed again if the block fails before writing anything into it.
    """
    destination = check_destination(destination, command, inputs=inputs, hosts=hosts)
    created = _make_parents(destination.parent)
    try:
        with locked(destination):
            check_destination(destination, command, inputs=inputs, hosts=hosts)
            _remove_leftovers(destination)
            new = not destination.exists()
            destination.mkdir(exist_ok=True)
            try:
                write_marker(destination, command)
                yield destination
            except BaseException:
                if new and [p.name for p in destination.iterdir()] == [MARKER]:
                    shutil.rmtree(destination, ignore_errors=True)
                raise
    except BaseException:
        _remove_created(created)
        raise


def same_path(a: str | Path, b: str | Path) -> bool:
    """Whether ``a`` and ``b`` name the same place (after resolving links)."""
    return _resolved(Path(a)) == _resolved(Path(b))


def replace_folder(new: str | Path, destination: str | Path) -> None:
    """Move the finished folder ``new`` to ``destination``, replacing an existing folder there
    in one exchange of names (:func:`replacing` calls it; for sub-folders of a folder being
    written, such as a report's ``figures/``). The old content is removed afterwards."""
    new, destination = Path(new), Path(destination)
    _swap(new, destination)
    shutil.rmtree(new, ignore_errors=True)


_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def _exchange(a: Path, b: Path) -> bool:
    """Swap the names ``a`` and ``b`` atomically (Linux ``renameat2``); False if unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    result = renameat2(
        _AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), ctypes.c_uint(_RENAME_EXCHANGE)
    )
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def _swap(staging: Path, destination: Path) -> None:
    """Put ``staging`` at ``destination``; the old content (if any) ends up at ``staging``."""
    if not destination.exists():
        staging.rename(destination)
        return
    if _exchange(staging, destination):
        return
    blocked = {signal.SIGINT, signal.SIGTERM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
    try:
        old = _sibling(destination, _OLD_SUFFIX)
        destination.rename(old)
        try:
            staging.rename(destination)
        except OSError:
            old.rename(destination)
            raise
        old.rename(staging)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
