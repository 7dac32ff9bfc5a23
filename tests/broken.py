"""Deliberately wrong designs, for showing that a check fails on them."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path


def break_design(design: Path, target: Path) -> None:
    """Copy *design* to *target* with every subtraction of its Verilog turned into an addition
    (and the manifest's sha256 updated to match, so only simulation can tell).

    Every one, not the first only: a single flip can be harmless, e.g. ``x - 4x`` and ``x + 4x``
    agree in the 3 low bits a node keeps.
    """
    target.mkdir()
    manifest = json.loads((design / "manifest.json").read_text())
    text = (design / manifest["verilog"]).read_text()
    broken, count = re.subn(r"(assign \S+\s+= \S+\s+)- ", r"\1+ ", text)
    assert count >= 1, "no subtraction to break"
    (target / manifest["verilog"]).write_text(broken)
    manifest["hashes"]["verilog_sha256"] = hashlib.sha256(broken.encode()).hexdigest()
    (target / "manifest.json").write_text(json.dumps(manifest))
    (target / "model").symlink_to(design / "model")
