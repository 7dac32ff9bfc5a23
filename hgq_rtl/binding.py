"""The manifest bound to its design: the digests that tie ``manifest.json`` to itself, to the
Verilog and to the model copy, and the one check that every reader of a design runs.

``hashes`` in ``manifest.json`` (docs/ir.md, "The RTL manifest"):

* ``verilog_sha256``: SHA-256 of the Verilog file's bytes;
* ``model_sha256``: SHA-256 of ``model/model.json``'s bytes (which hashes every array);
* ``manifest_sha256``: :func:`manifest_digest`, SHA-256 of the manifest's own canonical JSON
  without this one field, so that an edit of any other field (a port format, the latency, a
  layer's figures) is found.

:func:`check_design` is what ``verify`` (:mod:`hgq_rtl_sim.manifest`), ``synth``
(:mod:`rtl_gen.synth.design`) and ``report`` (:mod:`hgq_rtl.report.data`) call before they use
a design. Standard library only: every layer may import this module.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

MANIFEST_SCHEMA = "hgq-rtl-manifest"
MANIFEST_DIGEST = "manifest_sha256"


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def manifest_digest(document: dict[str, Any]) -> str:
    """SHA-256 of ``document`` as canonical JSON (keys sorted, no spaces, ASCII), without
    ``hashes.manifest_sha256``.

    Raises ``ValueError`` when the document holds values JSON cannot write exactly (NaN, inf).
    """
    copy = dict(document)
    hashes = copy.get("hashes")
    if isinstance(hashes, dict):
        copy["hashes"] = {k: v for k, v in hashes.items() if k != MANIFEST_DIGEST}
    text = json.dumps(copy, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


def seal(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` with ``hashes.manifest_sha256`` set (the other hashes must be in place)."""
    document["hashes"][MANIFEST_DIGEST] = manifest_digest(document)
    return document


def check_design(rtl_dir: str | Path, manifest: dict[str, Any]) -> None:
    """Refuse a design whose files do not match its manifest.

    Checks ``manifest_sha256`` when the manifest has it (``hgq-rtl rtl`` always writes it;
    hand-written manifests may leave it out), ``verilog_sha256`` (required of a manifest that
    declares the ``hgq-rtl-manifest`` schema), and ``model_sha256`` when the model copy is there.

    Raises
    ------
    FileNotFoundError
        If the Verilog file is missing.
    ValueError
        One line naming the file that differs from the manifest.
    """
    rtl_dir = Path(rtl_dir)
    path = rtl_dir / "manifest.json"
    hashes = manifest.get("hashes", {})
    if not isinstance(hashes, dict):
        raise ValueError(f"{path} hashes must be an object, not {hashes!r}")
    recorded = hashes.get(MANIFEST_DIGEST)
    if recorded is not None and recorded != manifest_digest(manifest):
        raise ValueError(
            f"{path} does not match its {MANIFEST_DIGEST}: it was edited after generation "
            "(regenerate the design with hgq-rtl rtl)"
        )
    verilog = rtl_dir / str(manifest.get("verilog"))
    if not verilog.is_file():
        raise FileNotFoundError(
            f"{path} names {manifest.get('verilog')}, which is not in {rtl_dir}"
        )
    recorded = hashes.get("verilog_sha256")
    if (recorded is not None or manifest.get("schema") == MANIFEST_SCHEMA) and (
        file_sha256(verilog) != recorded
    ):
        raise ValueError(f"manifest does not match {verilog.name}: sha256 differs")
    check_model(rtl_dir, manifest)


def model_json(rtl_dir: Path, manifest: dict[str, Any]) -> Path:
    """The ``model.json`` of the design's model copy (it may be missing)."""
    return Path(rtl_dir) / str(manifest.get("model", "model")) / "model.json"


def check_model(rtl_dir: Path, manifest: dict[str, Any], other: Path | None = None) -> None:
    """Refuse a model copy (or ``other``, a ``model.json`` said to be the same model) whose
    bytes differ from the manifest's ``model_sha256``; nothing to check without either."""
    recorded = manifest.get("hashes", {}).get("model_sha256")
    path = model_json(rtl_dir, manifest) if other is None else Path(other)
    if recorded is None or not path.is_file():
        return
    if file_sha256(path) != recorded:
        shown = path.relative_to(rtl_dir) if other is None else path
        raise ValueError(
            f"manifest does not match {shown}: sha256 differs "
            "(the model changed after the Verilog was generated)"
        )
