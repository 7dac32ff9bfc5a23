"""Training checkpoints: atomic files, and the checks that make ``--resume`` safe.

A checkpoint is one ``torch.save`` file holding everything the next epoch depends on (see
:func:`hgq_rtl.train.train`). Every file here is written to a temporary file in its own folder,
flushed to disk (``fsync``) and renamed over its destination (``os.replace``), so a process
killed at any moment, even by SIGKILL, leaves either the old file or the new one, never a mix.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

from .config import TrainConfig

#: File name of the last completed epoch's checkpoint inside a training folder.
CHECKPOINT_FILE = "checkpoint.pt"
FORMAT = "hgq-rtl-checkpoint"
FORMAT_VERSION = 1
_TMP_SUFFIX = ".tmp"


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None]) -> Path:
    """Write ``path`` whole or not at all: ``write(file)`` fills a temporary sibling, which is
    fsynced and renamed onto ``path`` (the folder is fsynced too)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=_TMP_SUFFIX, dir=path.parent)
    try:
        os.fchmod(handle, 0o666 & ~_umask())  # mkstemp makes 0600; give what open() would
        with os.fdopen(handle, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except OSError as error:  # a full disk, a read-only folder: one line naming the file
        Path(tmp).unlink(missing_ok=True)
        reason = error.strerror or str(error)
        raise OSError(error.errno, f"cannot write {path}: {reason}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)
    return path


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | Path, text: str) -> Path:
    """:func:`atomic_write` of UTF-8 text."""
    return atomic_write(path, lambda file: file.write(text.encode()))


def _fsync_folder(folder: Path) -> None:
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:  # a platform without directory descriptors
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def remove_temporaries(folder: str | Path) -> None:
    """Delete what an interrupted :func:`atomic_write` left in ``folder``."""
    for leftover in Path(folder).glob(f".*{_TMP_SUFFIX}"):
        leftover.unlink(missing_ok=True)


def save(state: dict[str, Any], path: str | Path) -> Path:
    """Write a checkpoint (a dict of tensors, numbers, strings, lists and dicts) atomically."""
    buffer = io.BytesIO()  # serialized first: a full disk is then an OSError of the write,
    torch.save(state, buffer)  # not a torch RuntimeError in the middle of its zip writer
    return atomic_write(path, lambda file: file.write(buffer.getbuffer()))


def load(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save`, on the CPU, without unpickling code.

    Raises ``ValueError`` (one line) for a file that is not such a checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # truncated, not a torch file, or foreign pickles
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ValueError(f"checkpoint {path} is not readable: {message}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"{path} is not an hgq-rtl training checkpoint")
    if state.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{path} has checkpoint version {state.get('format_version')!r}; "
            f"this hgq-rtl reads version {FORMAT_VERSION}"
        )
    return state


def config_record(config: TrainConfig) -> dict[str, Any]:
    """``config`` as plain JSON values (tuples become lists), as stored in a checkpoint."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def differences(saved: dict[str, Any], now: dict[str, Any], prefix: str = "") -> list[str]:
    """``"key: saved → now"`` for every entry in which two records differ (nested keys dotted)."""
    changed = []
    for key in sorted(set(saved) | set(now)):
        old, new = saved.get(key), now.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            changed += differences(old, new, f"{prefix}{key}.")
        elif old != new:
            changed.append(f"{prefix}{key}: {old!r} → {new!r}")
    return changed


def fingerprint(*arrays: np.ndarray) -> str:
    """sha256 over the dtypes, shapes and bytes of ``arrays`` (identifies a data set's split)."""
    digest = hashlib.sha256()
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape};".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()
