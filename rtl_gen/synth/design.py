"""What the synthesis stage needs to know of a generated design: its ``manifest.json``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from hgq_rtl.binding import check_design
from hgq_rtl.ir.files import ArrayFileError, read_json

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SAFE_FILE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*")


@dataclass(frozen=True)
class DesignInfo:
    """What the synthesis stage needs from a generated design's ``manifest.json``.

    Attributes
    ----------
    rtl_dir : Path
        The design folder.
    top : str
        Top module name.
    verilog : Path
        The Verilog file (absolute path inside ``rtl_dir``).
    clock : str
        Clock port name.
    """

    rtl_dir: Path
    top: str
    verilog: Path
    clock: str


def read_manifest(rtl_dir: Path) -> DesignInfo:
    """Read and check the ``manifest.json`` of a generated design.

    Parameters
    ----------
    rtl_dir : Path
        Folder holding ``manifest.json`` and the Verilog file it names.

    Returns
    -------
    DesignInfo
        Top module, Verilog file and clock name.

    Raises
    ------
    FileNotFoundError
        If the folder, the manifest or the Verilog file is missing.
    ValueError
        If the manifest is not JSON or lacks a valid ``top``/``verilog``/``clock``, or a file
        differs from the manifest's hashes (:func:`hgq_rtl.binding.check_design`).
    """
    rtl_dir = Path(rtl_dir)
    if not rtl_dir.is_dir():
        raise FileNotFoundError(f"RTL folder not found: {rtl_dir}")
    manifest_path = rtl_dir / "manifest.json"
    if not manifest_path.is_file():
        raise FileNotFoundError(f"manifest not found: {manifest_path}")
    try:  # bounded: deep nesting is refused, not a RecursionError
        manifest = read_json(manifest_path, "it")
    except ArrayFileError as err:
        raise ValueError(f"malformed manifest {manifest_path}: {err}") from None
    if not isinstance(manifest, dict):
        raise ValueError(f"malformed manifest {manifest_path}: expected a JSON object")

    top = manifest.get("top")
    if not isinstance(top, str) or not _IDENTIFIER.fullmatch(top):
        raise ValueError(
            f"malformed manifest {manifest_path}: 'top' must be a Verilog module name, got {top!r}"
        )
    verilog = manifest.get("verilog")
    if not isinstance(verilog, str) or not verilog:
        raise ValueError(
            f"malformed manifest {manifest_path}: 'verilog' must be a file name, got {verilog!r}"
        )
    clock = manifest.get("clock", "clk")
    if not isinstance(clock, str) or not clock:
        raise ValueError(
            f"malformed manifest {manifest_path}: 'clock' must be a port name, got {clock!r}"
        )
    verilog_path = rtl_dir / verilog
    if Path(verilog).is_absolute() or not _SAFE_FILE_NAME.fullmatch(verilog_path.name):
        raise ValueError(
            f"malformed manifest {manifest_path}: 'verilog' must be a plain file name "
            f"relative to the RTL folder, got {verilog!r}"
        )
    if not verilog_path.is_file():
        raise FileNotFoundError(f"Verilog file named in {manifest_path} not found: {verilog_path}")
    check_design(rtl_dir, manifest)  # synthesize only the Verilog the manifest describes
    return DesignInfo(rtl_dir=rtl_dir, top=top, verilog=verilog_path.resolve(), clock=clock)
