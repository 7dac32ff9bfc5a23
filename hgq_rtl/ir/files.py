"""Reading user files with bounded work: JSON with a nesting limit, and ``.npy``/``.npz`` arrays
whose headers are checked before any memory is allocated for their data.

A hostile or damaged file must not take the machine's memory: every ``.npy`` header (a file's,
or each member of an ``.npz`` archive) is read on its own first, with
:func:`numpy.lib.format.read_array_header_1_0` / ``_2_0``; its dtype must be plain data (no
Python objects), its shape and dtype must account for exactly the bytes the file (or zip member)
holds, and the array must fit in half of the memory available now. Only then is the data read.
JSON documents deeper than :data:`MAX_JSON_DEPTH` are refused (Python's parser would otherwise
raise ``RecursionError``, and the code that walks a document recursively too).

Every refusal is a :class:`ArrayFileError` (a ``ValueError``) with one line naming the file.
"""

from __future__ import annotations

import json
import math
import os
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

__all__ = [
    "MAX_JSON_DEPTH",
    "ArrayFileError",
    "ArrayHeader",
    "available_memory",
    "check_allocation",
    "npz_headers",
    "read_json",
    "read_npy",
    "read_npz",
]

#: Deepest nesting of objects and lists accepted in a JSON file (hgq-rtl's own need fewer than 8).
MAX_JSON_DEPTH = 64
#: Largest ``.npy`` header accepted (numpy's own default limit).
_MAX_HEADER = 10_000
_GIB = 1 << 30


class ArrayFileError(ValueError):
    """A file that cannot be read within bounds: malformed, lying about its size, or too big."""


@dataclass(frozen=True)
class ArrayHeader:
    """What an ``.npy`` header claims, checked against the bytes that follow it."""

    shape: tuple[int, ...]
    dtype: np.dtype
    fortran_order: bool

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


# ------------------------------------------------------------------------------------ JSON


def read_json(path: Path, what: str | None = None) -> Any:
    """The JSON document in ``path``, nested at most :data:`MAX_JSON_DEPTH` deep.

    Raises ``ArrayFileError`` (one line, naming ``what`` or the path) for text that is not
    UTF-8 JSON or nests too deep; ``OSError`` from reading passes through.
    """
    what = what or str(path)
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ArrayFileError(f"{what} is not valid JSON ({_one_line(error)})") from None
    except RecursionError:
        raise ArrayFileError(
            f"{what} nests objects or lists more than {MAX_JSON_DEPTH} deep"
        ) from None
    if json_depth(document) > MAX_JSON_DEPTH:
        raise ArrayFileError(f"{what} nests objects or lists more than {MAX_JSON_DEPTH} deep")
    return document


def json_depth(document: Any) -> int:
    """Nesting depth of a parsed JSON value (a scalar is 0, ``[]`` is 1), without recursion."""
    deepest = 0
    todo = [(document, 1)]
    while todo:
        value, depth = todo.pop()
        if isinstance(value, dict):
            children = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        deepest = max(deepest, depth)
        if depth > MAX_JSON_DEPTH:  # deep enough to refuse: stop walking
            return depth
        todo.extend((child, depth + 1) for child in children)
    return deepest


# ------------------------------------------------------------------------------------ memory


def available_memory() -> int:
    """Bytes of memory available now (Linux ``MemAvailable``; else free physical pages)."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return 8 * _GIB


def check_allocation(nbytes: int, what: str) -> None:
    """Refuse (``ArrayFileError``) ``nbytes`` for ``what`` when it exceeds half of the memory
    available now."""
    limit = available_memory() // 2
    if nbytes > limit:
        raise ArrayFileError(
            f"{what} needs {nbytes / _GIB:.3g} GiB, more than half of the "
            f"{2 * limit / _GIB:.3g} GiB of memory available"
        )


# ------------------------------------------------------------------------------------ .npy


def _read_header(stream: IO[bytes], what: str) -> ArrayHeader:
    try:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            header = np.lib.format.read_array_header_1_0(stream, max_header_size=_MAX_HEADER)
        elif version == (2, 0):
            header = np.lib.format.read_array_header_2_0(stream, max_header_size=_MAX_HEADER)
        else:
            raise ValueError(f"uses .npy format version {version[0]}.{version[1]}, not 1.0 or 2.0")
    except (ValueError, EOFError, OSError, zlib.error, zipfile.BadZipFile) as error:
        raise ArrayFileError(f"{what} has no readable .npy header ({_one_line(error)})") from None
    shape, fortran_order, dtype = header
    if dtype.hasobject:
        raise ArrayFileError(f"{what} holds Python objects (a pickle), which are never read")
    if any(n < 0 for n in shape):
        raise ArrayFileError(f"{what} declares the negative shape {shape}")
    return ArrayHeader(tuple(int(n) for n in shape), dtype, bool(fortran_order))


def _check_size(header: ArrayHeader, data_bytes: int, what: str) -> None:
    """The header must account for exactly the ``data_bytes`` after it, and fit in memory."""
    if header.nbytes != data_bytes:
        raise ArrayFileError(
            f"{what} claims shape {header.shape} of {header.dtype} ({header.nbytes} bytes) but "
            f"holds {data_bytes} bytes of data"
        )
    check_allocation(header.nbytes, f"{what} (shape {header.shape}, {header.dtype})")


def _read_data(stream: IO[bytes], header: ArrayHeader, what: str) -> np.ndarray:
    """The data after a checked header (``stream`` is positioned on it)."""
    flat = np.empty(math.prod(header.shape), dtype=header.dtype)
    view, filled = memoryview(flat.view(np.uint8)), 0
    try:
        while filled < header.nbytes:
            got = stream.readinto(view[filled:])
            if not got:
                break
            filled += got
    except (OSError, EOFError, zlib.error, zipfile.BadZipFile) as error:
        raise ArrayFileError(f"{what} is not readable ({_one_line(error)})") from None
    if filled != header.nbytes:
        raise ArrayFileError(f"{what} is truncated: {filled} of {header.nbytes} bytes")
    order = "F" if header.fortran_order else "C"
    return flat.reshape(header.shape, order=order)


def read_npy(path: Path, what: str | None = None) -> np.ndarray:
    """The array of an ``.npy`` file, its header checked first (see the module docstring)."""
    what = what or str(path)
    path = Path(path)
    with path.open("rb") as stream:
        header = _read_header(stream, what)
        _check_size(header, path.stat().st_size - stream.tell(), what)
        return _read_data(stream, header, what)


# ------------------------------------------------------------------------------------ .npz


def _open_zip(path: Path, what: str) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError) as error:
        raise ArrayFileError(f"{what} is not a readable NPZ file ({_one_line(error)})") from None


def _members(archive: zipfile.ZipFile, what: str) -> dict[str, zipfile.ZipInfo]:
    """Array name -> zip member (``name.npy``, as :func:`numpy.savez` writes)."""
    members: dict[str, zipfile.ZipInfo] = {}
    for info in archive.infolist():
        if info.is_dir():
            continue
        if not info.filename.endswith(".npy"):
            raise ArrayFileError(
                f"{what} is not a readable NPZ file (it holds {info.filename!r}, not an .npy array)"
            )
        name = info.filename[: -len(".npy")]
        if name in members:
            raise ArrayFileError(f"{what} holds the array {name!r} twice")
        members[name] = info
    return members


def npz_headers(path: Path, what: str | None = None) -> dict[str, ArrayHeader]:
    """Every array's header in an ``.npz`` file (shape and dtype), each checked against the
    bytes its zip member holds; no array data is read."""
    what = what or str(path)
    with _open_zip(Path(path), what) as archive:
        return {
            name: _member_header(archive, info, f"{what} array {name!r}")[0]
            for name, info in _members(archive, what).items()
        }


def _member_header(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, what: str
) -> tuple[ArrayHeader, int]:
    try:
        with archive.open(info) as stream:
            header = _read_header(stream, what)
            offset = stream.tell()
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError) as error:
        raise ArrayFileError(f"{what} is not readable ({_one_line(error)})") from None
    _check_size(header, info.file_size - offset, what)
    return header, offset


def read_npz(
    path: Path, names: Iterable[str] | None = None, what: str | None = None
) -> dict[str, np.ndarray]:
    """The arrays ``names`` (default: all) of an ``.npz`` file; names it lacks are left out.

    All the requested headers are checked (see the module docstring), and their sum against
    the memory available, before any data is read.
    """
    what = what or str(path)
    with _open_zip(Path(path), what) as archive:
        members = _members(archive, what)
        wanted = list(members) if names is None else [n for n in names if n in members]
        headers = {n: _member_header(archive, members[n], f"{what} array {n!r}") for n in wanted}
        check_allocation(sum(h.nbytes for h, _ in headers.values()), f"the arrays of {what}")
        arrays = {}
        for name, (header, offset) in headers.items():
            try:
                with archive.open(members[name]) as stream:
                    stream.read(offset)
                    arrays[name] = _read_data(stream, header, f"{what} array {name!r}")
            except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as error:
                raise ArrayFileError(
                    f"{what} array {name!r} is not readable ({_one_line(error)})"
                ) from None
        return arrays


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__
