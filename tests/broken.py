"""Deliberately wrong designs, for showing that a check fails on them."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from pathlib import Path

from hgq_rtl.binding import seal


def break_design(design: Path, target: Path) -> None:
    """Copy *design* to *target* with every subtraction of its Verilog turned into an addition
    (and the manifest's hashes updated to match, so only simulation can tell).

    Every one, not the first only: a single flip can be harmless, e.g. ``x - 4x`` and ``x + 4x``
    agree in the 3 low bits a node keeps.
    """
    text = _verilog(design)
    broken, count = re.subn(r"(assign \S+\s+= \S+\s+)- ", r"\1+ ", text)
    assert count >= 1, "no subtraction to break"
    _write(design, target, broken)


def break_layer(
    design: Path,
    target: Path,
    layer: str,
    pattern: str,
    replacement: str | Callable[[re.Match], str],
    count: int = 0,
) -> int:
    """Copy *design* to *target* with the regular expression *pattern* replaced by
    *replacement* (as ``re.subn`` takes them; *count* 0: every match) inside the Verilog module
    of *layer* only (the module ``<top>.<layer>`` the Amaranth writer emits), the manifest's
    sha256 updated to match. Returns the number of replacements (at least 1)."""
    text = _verilog(design)
    top = json.loads((design / "manifest.json").read_text())["top"]
    start = text.index(f"module \\{top}.{layer} ")
    end = text.index("endmodule", start)
    module, count = re.subn(pattern, replacement, text[start:end], count=count)
    assert count >= 1, f"{pattern!r} is not in the module of {layer}"
    _write(design, target, text[:start] + module + text[end:])
    return count


def _verilog(design: Path) -> str:
    manifest = json.loads((design / "manifest.json").read_text())
    return (design / manifest["verilog"]).read_text()


def _write(design: Path, target: Path, text: str) -> None:
    target.mkdir()
    manifest = json.loads((design / "manifest.json").read_text())
    (target / manifest["verilog"]).write_text(text)
    manifest["hashes"]["verilog_sha256"] = hashlib.sha256(text.encode()).hexdigest()
    seal(manifest)  # the manifest's own digest too: every hash matches, only simulation can tell
    (target / "manifest.json").write_text(json.dumps(manifest))
    (target / "model").symlink_to(design / "model")
