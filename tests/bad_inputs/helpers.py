"""Shared helpers for CLI tests on bad input: run the CLI, check its one error line, and write
valid model and design folders by hand (docs/ir.md) that a case then breaks.

Everything is written from plain JSON and numpy so that a case can break any field; the only
library code used is the documented array hash (``hgq_rtl.ir.io.array_sha256``) and
``hgq_rtl.ir.io.save`` for the model copy inside a design.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from hgq_rtl.ir import io as ir_io

EXIT_BAD_INPUT = 2
ERROR_PREFIX = "hgq-rtl: error:"


def cli(
    *args: str | Path, cwd: Path, tmpdir: Path | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    """``python -m hgq_rtl.cli ARGS`` in ``cwd``; ``tmpdir`` becomes its ``TMPDIR``."""
    env = dict(os.environ)
    env.pop("AMARANTH_USE_YOSYS", None)
    if tmpdir is not None:
        env["TMPDIR"] = str(tmpdir)
    return subprocess.run(
        [sys.executable, "-m", "hgq_rtl.cli", *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_bad_input(result: subprocess.CompletedProcess, *fragments: str) -> str:
    """Exit code 2 and exactly one stderr line ``hgq-rtl: error: ...`` holding ``fragments``."""
    assert result.returncode == EXIT_BAD_INPUT, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert line.startswith(ERROR_PREFIX), line
    for fragment in fragments:
        assert fragment in line, (fragment, line)
    return line


def tree(folder: Path) -> list[str]:
    """Every path under ``folder`` (hidden ones included), relative, sorted."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def snapshot(folder: Path) -> dict[str, object]:
    """Every path under ``folder`` (hidden ones included) with what it is: a file's bytes, a
    link's target, ``"<folder>"``; comparing two snapshots compares the tree byte for byte."""
    found: dict[str, object] = {}
    for path in sorted(folder.rglob("*")):
        name = str(path.relative_to(folder))
        if path.is_symlink():
            found[name] = ("link", os.readlink(path))
        elif path.is_dir():
            found[name] = "<folder>"
        else:
            found[name] = path.read_bytes()
    return found


# --------------------------------------------------------------------------- models


def format_arrays(prefix: str, signed, int_bits, frac_bits) -> dict[str, np.ndarray]:
    return {
        f"{prefix}.signed": np.array(signed, np.int8),
        f"{prefix}.int_bits": np.array(int_bits, np.int64),
        f"{prefix}.frac_bits": np.array(frac_bits, np.int64),
    }


def layer_entry(name: str, n_in: int, n_out: int, **overrides: Any) -> dict[str, Any]:
    entry = {
        "name": name,
        "type": "dense",
        "in_features": n_in,
        "out_features": n_out,
        "activation": "relu",
        "round_mode": "RND",
        "overflow": "WRAP",
    }
    entry.update(overrides)
    return entry


def base_model() -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """A valid 3 -> 2 -> 2 model as (model.json document, weights.npz arrays).

    Input: signed 4-bit (frac 1), unsigned 3-bit (frac 0), signed 5-bit (frac 2), so real
    values within [-4, 3.5], [0, 7] and [-4, 3.75] are representable.
    """
    arrays = format_arrays("input", [1, 0, 1], [2, 3, 2], [1, 0, 2])
    arrays |= {
        "hidden.weight": np.array([[3, -5, 1], [0, 2, -1]], np.int64),
        "hidden.weight_frac_bits": np.array([[1, 2, 0], [0, 1, 1]], np.int64),
        "hidden.bias": np.array([3, 0], np.int64),
        "hidden.bias_frac_bits": np.array([1, 0], np.int64),
    }
    arrays |= format_arrays("hidden.output", [0, 0], [4, 4], [1, 1])
    arrays |= {
        "out.weight": np.array([[2, -1], [1, 1]], np.int64),
        "out.weight_frac_bits": np.array([[0, 1], [1, 0]], np.int64),
        "out.bias": np.array([0, 1], np.int64),
        "out.bias_frac_bits": np.array([0, 2], np.int64),
    }
    arrays |= format_arrays("out.output", [1, 1], [5, 5], [1, 1])
    document = {
        "schema": "hgq-rtl-ir",
        "schema_version": 1,
        "name": "bad_base",
        "input": {"size": 3, "overflow": "SAT"},
        "layers": [
            layer_entry("hidden", 3, 2),
            layer_entry("out", 2, 2, activation="linear", overflow="SAT"),
        ],
        "arrays": {},
        "metadata": {"source": "tests/bad_inputs"},
    }
    return document, arrays


def write_model(
    folder: Path, document: dict[str, Any], arrays: dict[str, np.ndarray], *, rehash: bool = True
) -> Path:
    """Write ``model.json`` + ``weights.npz``; with ``rehash`` every array is listed with its
    hash, so that only the values (not the hashes) make a case bad."""
    folder.mkdir(parents=True, exist_ok=True)
    document = json.loads(json.dumps(document))
    if rehash:
        document["arrays"] = {key: ir_io.array_sha256(value) for key, value in arrays.items()}
    np.savez(folder / "weights.npz", **arrays)
    (folder / "model.json").write_text(json.dumps(document, indent=2))
    return folder


def model(
    work: Path,
    edit_document: Callable[[dict], Any] | None = None,
    edit_arrays: Callable[[dict], Any] | None = None,
    name: str = "model",
) -> Path:
    """``work/name``: the base model, after ``edit_document``/``edit_arrays`` changed it."""
    document, arrays = base_model()
    if edit_arrays is not None:
        edit_arrays(arrays)
    if edit_document is not None:
        edit_document(document)
    return write_model(work / name, document, arrays)


# --------------------------------------------------------------------------- designs

#: Port widths of the base model: inputs 4 + 3 + 5, outputs 7 + 7.
BASE_INPUT_WIDTHS = (4, 3, 5)
BASE_OUTPUT_WIDTHS = (7, 7)


def _elements(signed, int_bits, frac_bits) -> list[dict[str, Any]]:
    out, lsb = [], 0
    for k, (s, i, f) in enumerate(zip(signed, int_bits, frac_bits, strict=True)):
        width = int(s) + int(i) + int(f)
        out.append(
            {
                "index": k,
                "lsb": lsb,
                "width": width,
                "signed": bool(s),
                "int_bits": int(i),
                "frac_bits": int(f),
            }
        )
        lsb += width
    return out


def stub_verilog(top: str, in_width: int, out_width: int) -> str:
    """A module with the design's ports (never simulated: every case fails before that)."""
    return (
        f"module {top} (\n"
        "    input wire clk, input wire rst,\n"
        f"    input wire valid_in, input wire [{in_width - 1}:0] data_in,\n"
        f"    output wire valid_out, output wire [{out_width - 1}:0] data_out\n"
        ");\n"
        "    assign valid_out = valid_in;\n"
        f"    assign data_out = {out_width}'d0;\n"
        "endmodule\n"
    )


def design(
    work: Path,
    edit_manifest: Callable[[dict], Any] | None = None,
    *,
    verilog: str | None = None,
    name: str = "design",
) -> Path:
    """``work/name``: a design folder of the base model as ``hgq-rtl rtl`` lays it out
    (docs/ir.md, "The RTL manifest"), with a stub Verilog; ``edit_manifest`` may break it."""
    folder = work / name
    model_dir = model(folder, name="model")
    document, arrays = base_model()
    top = document["name"]
    in_width, out_width = sum(BASE_INPUT_WIDTHS), sum(BASE_OUTPUT_WIDTHS)
    text = stub_verilog(top, in_width, out_width) if verilog is None else verilog
    (folder / f"{top}.v").write_text(text)
    manifest = {
        "schema": "hgq-rtl-manifest",
        "schema_version": 1,
        "top": top,
        "verilog": f"{top}.v",
        "clock": "clk",
        "reset": "rst",
        "latency_cycles": 3,
        "initiation_interval": 1,
        "input": {
            "port": "data_in",
            "valid": "valid_in",
            "width": in_width,
            "elements": _elements(*(arrays[f"input.{k}"] for k in _FORMAT)),
        },
        "output": {
            "port": "data_out",
            "valid": "valid_out",
            "width": out_width,
            "elements": _elements(*(arrays[f"out.output.{k}"] for k in _FORMAT)),
        },
        "layers": [],
        "options": {"adder_levels_per_stage": 2, "register_inputs": True},
        "model": "model",
        "hashes": {
            "verilog_sha256": hashlib.sha256(text.encode()).hexdigest(),
            "model_sha256": ir_io.model_sha256(model_dir),
        },
    }
    if edit_manifest is not None:
        edit_manifest(manifest)
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return folder


_FORMAT = ("signed", "int_bits", "frac_bits")


# --------------------------------------------------------------------------- small file edits


def edit_json(path: Path, edit: Callable[[Any], Any]) -> None:
    document = json.loads(path.read_text())
    edit(document)
    path.write_text(json.dumps(document, indent=2))


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
