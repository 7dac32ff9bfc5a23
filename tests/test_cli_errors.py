"""The CLI on bad input: exit code 2, one line on stderr, and no output folder left behind.

The CLI runs in a subprocess (``python -m hgq_rtl.cli``) from a scratch working directory.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from bad_inputs.helpers import assert_bad_input, cli

from hgq_rtl.guard import MARKER, write_marker
from hgq_rtl.ir import DenseLayer, IRModel, Overflow, TensorFormat, run, save
from hgq_rtl.ir import io as ir_io


def _small_ir() -> IRModel:
    layer0 = DenseLayer(
        name="fc0",
        weight=np.array([[3, -5], [1, 2]]),
        weight_frac_bits=np.array([[1, 2], [0, 1]]),
        bias=np.array([3, 0]),
        bias_frac_bits=np.array([1, 0]),
        output=TensorFormat(np.array([True, False]), np.array([3, 3]), np.array([1, 1])),
    )
    layer1 = DenseLayer(
        name="fc1",
        weight=np.array([[2, -1]]),
        weight_frac_bits=np.array([[0, 1]]),
        bias=np.array([0]),
        bias_frac_bits=np.array([0]),
        output=TensorFormat(np.array([True]), np.array([4]), np.array([1])),
        overflow=Overflow.SAT,
    )
    return IRModel(
        "cli_small",
        TensorFormat(np.array([True, False]), np.array([2, 1]), np.array([1, 2])),
        (layer0, layer1),
    )


def _rewrite_arrays(folder: Path, **changes: np.ndarray) -> None:
    """Replace arrays in ``weights.npz`` and update their hashes so only the values matter."""
    with np.load(folder / "weights.npz") as npz:
        arrays = {key: npz[key] for key in npz.files}
    arrays.update(changes)
    np.savez(folder / "weights.npz", **arrays)
    document = json.loads((folder / "model.json").read_text())
    for key in changes:
        document["arrays"][key] = ir_io.array_sha256(arrays[key])
    (folder / "model.json").write_text(json.dumps(document, indent=2))


def _malformed_json(folder: Path) -> None:
    text = (folder / "model.json").read_text()
    (folder / "model.json").write_text(text[: len(text) // 2])


def _truncated_npz(folder: Path) -> None:
    data = (folder / "weights.npz").read_bytes()
    (folder / "weights.npz").write_bytes(data[: len(data) // 2])


def _edit_json(folder: Path, edit) -> None:
    document = json.loads((folder / "model.json").read_text())
    edit(document)
    (folder / "model.json").write_text(json.dumps(document, indent=2))


def _wrong_version(folder: Path) -> None:
    _edit_json(folder, lambda d: d.update(schema_version=4))


def _nan_weights(folder: Path) -> None:
    _rewrite_arrays(folder, **{"fc0.weight": np.array([[3.0, np.nan], [1.0, 2.0]])})


def _unknown_type(folder: Path) -> None:
    _edit_json(folder, lambda d: d["layers"][1].update(type="lstm"))


BREAKAGES = {
    "malformed-json": (_malformed_json, ("model.json", "not valid JSON")),
    "truncated-npz": (_truncated_npz, ("weights.npz", "NPZ")),
    "wrong-schema-version": (_wrong_version, ("schema_version 4",)),
    "nan-weights": (_nan_weights, ("fc0.weight", "NaN")),
    "unknown-layer-type": (_unknown_type, ("fc1", "lstm")),
}


def _entries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_rtl_missing_model_folder(tmp_path: Path) -> None:
    result = cli("rtl", tmp_path / "no_model", "--out", tmp_path / "design", cwd=tmp_path)
    assert_bad_input(result, "no_model", "does not exist")
    assert _entries(tmp_path) == []


@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
def test_rtl_on_malformed_ir(tmp_path: Path, breakage: str) -> None:
    break_it, words = BREAKAGES[breakage]
    work = tmp_path / "work"
    save(_small_ir(), work / "ir")
    break_it(work / "ir")
    result = cli("rtl", work / "ir", "--out", work / "design", cwd=tmp_path)
    assert_bad_input(result, *words)
    assert result.stdout == ""
    assert _entries(work) == ["ir"], "an output folder or a hidden temporary was left behind"


def test_rtl_on_malformed_ir_keeps_an_existing_design(tmp_path: Path) -> None:
    save(_small_ir(), tmp_path / "ir")
    _truncated_npz(tmp_path / "ir")
    (tmp_path / "design").mkdir()
    write_marker(tmp_path / "design", "rtl")  # an earlier design: replaceable, but kept on error
    (tmp_path / "design" / "keep.txt").write_text("previous design")
    result = cli("rtl", tmp_path / "ir", "--out", tmp_path / "design", cwd=tmp_path)
    assert_bad_input(result, "NPZ")
    assert _entries(tmp_path) == ["design", "ir"]
    assert _entries(tmp_path / "design") == [MARKER, "keep.txt"]
    assert (tmp_path / "design" / "keep.txt").read_text() == "previous design"


def test_verify_missing_design_folder(tmp_path: Path) -> None:
    result = cli("verify", tmp_path / "no_design", "--vectors", "10", cwd=tmp_path)
    assert_bad_input(result, "no_design", "manifest.json")
    assert _entries(tmp_path) == []


@pytest.mark.slow
def test_rtl_on_a_valid_ir(tmp_path: Path) -> None:
    ir = _small_ir()
    save(ir, tmp_path / "ir")
    out = tmp_path / "design"
    result = cli("rtl", tmp_path / "ir", "--out", out, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert _entries(tmp_path) == ["design", "ir"]
    assert _entries(out) == [MARKER, "cli_small.v", "manifest.json", "model"]
    assert _entries(out / "model") == ["model.json", "weights.npz"]

    summary = json.loads(result.stdout)
    assert Path(summary["verilog"]) == out / "cli_small.v"
    assert isinstance(summary["latency_cycles"], int) and summary["latency_cycles"] >= 1

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["schema"] == "hgq-rtl-manifest"
    assert manifest["top"] == "cli_small"
    assert manifest["verilog"] == "cli_small.v"
    assert manifest["model"] == "model"
    assert manifest["latency_cycles"] == summary["latency_cycles"]
    assert manifest["hashes"]["model_sha256"] == ir_io.model_sha256(out / "model")
    # Input widths 4 and 3, packed from bit 0; output 6 bits.
    assert [(e["lsb"], e["width"]) for e in manifest["input"]["elements"]] == [(0, 4), (4, 3)]
    assert manifest["input"]["width"] == 7
    assert manifest["output"]["width"] == 6
    assert "module cli_small" in (out / "cli_small.v").read_text()

    copy = ir_io.load(out / "model")
    x = np.array([[-8, 0], [7, 7], [3, 5]])
    np.testing.assert_array_equal(run(copy, x), run(ir, x))
