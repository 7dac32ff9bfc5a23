"""Array files that lie: ``.npy`` headers written by hand and ``.npz`` members replaced, for the
bad-input cases of bounded reading (:mod:`bad_inputs.cases_bounds`) and its unit tests."""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path


def npy_bytes(
    descr: str,
    shape: tuple[int, ...],
    data: bytes = b"",
    *,
    version: tuple[int, int] = (1, 0),
    fortran: bool = False,
    pad: int = 0,
) -> bytes:
    """An ``.npy`` file whose header says anything (numpy's writer would refuse a lie)."""
    text = f"{{'descr': {descr!r}, 'fortran_order': {fortran!r}, 'shape': {tuple(shape)!r}, }}"
    text += " " * pad
    prefix = 10 if version[0] == 1 else 12
    text += " " * ((64 - (prefix + len(text) + 1) % 64) % 64) + "\n"
    size = struct.pack("<H" if version[0] == 1 else "<I", len(text))
    return b"\x93NUMPY" + bytes(version) + size + text.encode("latin1") + data


def replace_member(archive: Path, name: str, data: bytes) -> None:
    """Rewrite the ``.npz`` ``archive`` with member ``name`` (a file name) holding ``data``."""
    with zipfile.ZipFile(archive) as old:
        members = {info.filename: old.read(info) for info in old.infolist()}
    members[name] = data
    with zipfile.ZipFile(archive, "w") as new:
        for filename, content in members.items():
            new.writestr(filename, content)
