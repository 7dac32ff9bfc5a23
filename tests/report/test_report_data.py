"""Tests of what the report says (hgq_rtl/report/data.py): reading a run folder, derived numbers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from report_runs import run_folder

from hgq_rtl import report as rep


def test_pareto_mask() -> None:
    cost = [10, 20, 30, 15, 20]
    score = [0.5, 0.8, 0.9, 0.4, 0.8]
    # (15, 0.4) is dominated by (10, 0.5); the two equal points (20, 0.8) keep each other
    assert rep.pareto_mask(cost, score).tolist() == [True, True, True, False, True]
    with pytest.raises(ValueError, match="must be 1-D of one length"):
        rep.pareto_mask([1, 2], [1])


def test_load_run(tmp_path: Path) -> None:
    run = tmp_path / "run"
    document = run_folder(run)
    data = rep.load_run(run)
    assert data.report == document and data.model_name == "tiny_mlp" and data.model_note is None
    assert [layer.name for layer in data.layers] == [e["name"] for e in document["layers"]]
    for layer, entry in zip(data.layers, document["layers"], strict=True):
        assert layer.weight_bits.shape == (entry["out_features"], entry["in_features"])
        assert layer.ebops == entry["ebops"]
    assert data.input_width.sum() == document["input_bits"]
    assert data.per_layer_resources == document["synthesis"]["per_layer"]
    # 5 cycles at 250 MHz; checks 1 and 3 passed
    assert (data.latency, data.fmax, data.latency_ns) == (5, 250.0, 20.0)
    assert (data.check1_passed, data.check3_passed) == (True, True)
    epochs, ebops, accuracy = rep.history_points(document)
    assert epochs.tolist() == list(range(12)) and ebops.shape == accuracy.shape == (12,)


def test_load_partial_and_failed_runs(tmp_path: Path) -> None:
    run_folder(tmp_path / "partial", epochs=1, model=False, synth=False, passed=None)
    data = rep.load_run(tmp_path / "partial")
    assert data.layers == [] and "has no model/ folder" in data.model_note
    assert data.synthesis == {} and data.per_layer_resources is None
    assert (data.fmax, data.latency_ns, data.check3_passed) == (None, None, None)

    run_folder(tmp_path / "failed", epochs=1, model=False, passed=False)
    assert rep.load_run(tmp_path / "failed").check3_passed is False


def test_bad_run_folders(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        rep.write_report(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="has no report.json"):
        rep.write_report(tmp_path / "empty")
    (tmp_path / "empty" / "report.json").write_text("{broken")
    with pytest.raises(ValueError, match="is not valid JSON"):
        rep.write_report(tmp_path / "empty")
    (tmp_path / "empty" / "report.json").write_text('{"dataset": "x"}')
    with pytest.raises(ValueError, match="is not an hgq-rtl run report"):
        rep.write_report(tmp_path / "empty")
    assert sorted(p.name for p in (tmp_path / "empty").iterdir()) == ["report.json"]


def test_import_is_light() -> None:
    """Importing the report imports neither torch nor matplotlib nor the IR (they load when
    used)."""
    code = (
        "import sys; sys.modules['torch'] = None; import hgq_rtl.report; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'matplotlib' "
        "or m.startswith('hgq_rtl.ir')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
