"""The command line on the bad-input corpus (tests/bad_inputs/cases.py).

Every case: exit code 2, exactly one stderr line ``hgq-rtl: error: ...`` with the expected
fragments, nothing on stdout, the working folder exactly as the case left it (no output folder,
no hidden temporary sibling) and nothing left in ``TMPDIR``. The untouched base model and
design pass the same checks, so each case fails for its own reason.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from bad_inputs.cases import CASES, by_name
from bad_inputs.helpers import assert_bad_input, cli, design, model, snapshot, tree

from hgq_rtl.ir import io as ir_io
from hgq_rtl.verification import load_vectors_file
from hgq_rtl_sim.manifest import load_manifest

CASE_NAMES = sorted(by_name())


def test_the_corpus_is_large_and_covers_every_command() -> None:
    assert len(CASES) >= 25
    commands = {"rtl", "check", "verify", "run", "train", "synth", "report"}
    assert {c.command for c in CASES} >= commands
    assert all(c.expect for c in CASES)


@pytest.mark.parametrize("name", CASE_NAMES)
def test_bad_input(tmp_path: Path, name: str) -> None:
    case = by_name()[name]
    work, tmpdir = tmp_path / "work", tmp_path / "tmp"
    work.mkdir()
    tmpdir.mkdir()
    args = case.build(work)
    before = snapshot(work)
    result = cli(case.command, *args, cwd=work, tmpdir=tmpdir)
    assert_bad_input(result, *case.expect)
    assert result.stdout == ""
    assert snapshot(work) == before, "the folder changed: a file, an output or a temporary"
    assert tree(tmpdir) == [], "a temporary folder was left in TMPDIR"


def test_the_base_model_and_design_are_valid(tmp_path: Path) -> None:
    folder = design(tmp_path)
    manifest = load_manifest(folder)
    ir = ir_io.load(folder / manifest["model"])
    assert ir.input.width.tolist() == [4, 3, 5]
    assert [e["width"] for e in manifest["output"]["elements"]] == ir.output.width.tolist()
    np.savez(tmp_path / "vectors.npz", inputs=np.array([[-8, 7, 15], [7, 0, -16]]))
    assert load_vectors_file(tmp_path / "vectors.npz", ir).tolist() == [[-8, 7, 15], [7, 0, -16]]


def test_check_accepts_the_base_model_on_in_range_rows(tmp_path: Path) -> None:
    folder = model(tmp_path)
    (tmp_path / "rows.csv").write_text("f0,f1,f2\n1.0,2,-0.5\n0.5,7,3.75\n")
    result = cli("check", folder, "--data", tmp_path / "rows.csv", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.splitlines()[-1])
    assert summary["overflow"] is False
    assert summary["samples"] == 2
