"""End to end: `hgq-rtl run`, check 3 on generated designs, and check 3 failing on a broken one."""

import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from broken import break_design

from hgq_rtl.binding import seal
from hgq_rtl.ir import reference
from hgq_rtl.ir.random import random_model
from rtl_gen.emit import RtlOptions, emit

CLI = [sys.executable, "-m", "hgq_rtl.cli"]
REPORT_KEYS = (
    "dataset test_accuracy ebops params latency_cycles lut ff carry dsp fmax_mhz vectors "
    "mismatches train_seconds rtl_seconds verify_seconds synth_seconds"
).split()


def hgq_rtl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=1200)


@pytest.mark.slow
def test_run_end_to_end(tmp_path: Path):
    out = tmp_path / "run"
    # a small, briefly trained model keeps place and route (nextpnr-ecp5) to about a minute
    result = hgq_rtl(
        "run", "--out", str(out), "--epochs", "6", "--hidden", "4", "--init-bits", "3",
        "--vectors", "5000", "-q",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "report.json").read_text())
    for key in REPORT_KEYS:
        assert report.get(key) is not None, f"report lacks {key}"
    assert report["dataset"] == "digits"
    assert report["test_accuracy"] > 0.2, "the integer model learned nothing (10 classes)"
    assert report["vectors"] == 5000 and report["mismatches"] == 0
    assert report["verification"]["passed"]
    assert report["check1"]["mismatches"] == 0
    assert report["lut"] > 0 and report["ff"] > 0 and report["fmax_mhz"] > 0
    assert report["ebops"] == sum(layer["ebops"] for layer in report["layers"])
    assert (out / "report.md").read_text().startswith("# hgq-rtl run on `digits`")
    manifest = json.loads((out / "rtl" / "manifest.json").read_text())
    assert manifest["latency_cycles"] == report["latency_cycles"]
    assert (out / "rtl" / manifest["verilog"]).is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temporary left behind"


@pytest.fixture(scope="module")
def random_design(tmp_path_factory) -> Path:
    rng = np.random.default_rng(11)
    ir = random_model(rng, (10, 8, 6, 4), name="fuzz_net")
    out = tmp_path_factory.mktemp("design") / "rtl"
    emit(ir, out, RtlOptions(adder_levels_per_stage=1))
    return out


@pytest.mark.slow
def test_check3_passes_on_a_generated_design(random_design: Path):
    result = hgq_rtl("verify", str(random_design), "--vectors", "20000", "-q")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASS" in result.stdout and "20000 vectors, 0 mismatches" in result.stdout


@pytest.mark.slow
def test_check3_fails_on_a_broken_design(random_design: Path, tmp_path: Path):
    broken = tmp_path / "broken"
    break_design(random_design, broken)
    result = hgq_rtl("verify", str(broken), "--vectors", "2000", "-q")
    assert result.returncode == 1
    assert "FAIL" in result.stdout
    assert re.search(r"first failure \(mismatch\) at vector \d+", result.stdout)
    assert "expected:" in result.stdout and "actual:" in result.stdout


def test_verify_refuses_a_design_edited_after_generation(random_design: Path, tmp_path: Path):
    edited = tmp_path / "edited"
    edited.mkdir()
    for name in ("manifest.json", "fuzz_net.v"):
        (edited / name).write_bytes((random_design / name).read_bytes())
    (edited / "model").symlink_to(random_design / "model")
    with (edited / "fuzz_net.v").open("a") as f:
        f.write("// edited\n")
    result = hgq_rtl("verify", str(edited), "--vectors", "10")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "hgq-rtl: error: manifest does not match fuzz_net.v: sha256 differs"
    ]


def test_verification_vectors_cover_data_and_full_ranges():
    from hgq_rtl.verification import verification_vectors

    rng = np.random.default_rng(2)
    ir = random_model(rng, (5, 3))
    data = rng.normal(size=(7, 5))
    vectors = verification_vectors(ir, 4000, data=data, seed=1)
    assert vectors.shape == (4000, 5)
    assert np.array_equal(vectors[:7], reference.quantize_input(ir, data))
    lo, hi = ir.input.int_range()
    assert np.all(vectors >= lo) and np.all(vectors <= hi)
    live = ir.input.width > 1
    assert np.all(vectors[:, live].min(axis=0) == lo[live])
    assert np.all(vectors[:, live].max(axis=0) == hi[live])


@pytest.mark.slow
def test_debug_taps_name_the_first_differing_layer(tmp_path: Path):
    rng = np.random.default_rng(11)
    ir = random_model(rng, (10, 8, 6, 4), name="tap_net")
    design = tmp_path / "rtl"
    manifest = emit(ir, design, RtlOptions(debug_taps=True))
    assert [tap["layer"] for tap in manifest["taps"]] == ["dense_0", "dense_1"]
    waves = tmp_path / "waves"
    good = hgq_rtl("verify", str(design), "--vectors", "3000", "-q", "--waves", str(waves))
    assert good.returncode == 0, good.stdout + good.stderr
    assert (waves / "dump.vcd").stat().st_size > 0
    # break the first layer only (every subtraction: one alone can be harmless, see
    # tests/broken.py): its tap and every later output differ
    text = (design / "tap_net.v").read_text()
    start = text.index("module \\tap_net.dense_0")
    end = text.index("endmodule", start)
    body, count = re.subn(r"(assign \S+\s+= \S+\s+)- ", r"\1+ ", text[start:end])
    assert count >= 1
    broken = text[:start] + body + text[end:]
    (design / "tap_net.v").write_text(broken)
    document = json.loads((design / "manifest.json").read_text())
    document["hashes"]["verilog_sha256"] = hashlib.sha256(broken.encode()).hexdigest()
    seal(document)  # the manifest's own digest: only simulation can tell
    (design / "manifest.json").write_text(json.dumps(document))
    bad = hgq_rtl("verify", str(design), "--vectors", "3000", "-q")
    assert bad.returncode == 1
    assert "first differing layer dense_0" in bad.stdout
    assert "first_differing_layer: dense_0" in bad.stdout


@pytest.mark.slow
@pytest.mark.skipif(
    shutil.which("iverilog") is None, reason="Icarus Verilog (iverilog) is not installed"
)
def test_check3_on_icarus_agrees(random_design: Path):
    result = hgq_rtl("verify", str(random_design), "--vectors", "3000", "--sim", "icarus", "-q")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASS (icarus): 3000 vectors, 0 mismatches" in result.stdout


@pytest.mark.slow
def test_run_keeps_the_log_of_a_failing_synthesis_tool(tmp_path: Path, monkeypatch):
    """The run folder is built in a temporary sibling; a failing tool's log must outlive it."""
    from hgq_rtl.flow import RunOptions, run
    from hgq_rtl.train.config import TrainConfig
    from rtl_gen import synth

    fake = tmp_path / "bin" / "fake-yosys"
    fake.parent.mkdir()
    fake.write_text(
        f"#!{sys.executable}\nimport sys\nprint('x.v:1: ERROR: broken on purpose')\nsys.exit(3)\n"
    )
    fake.chmod(0o755)
    monkeypatch.setattr(synth, "find_tool", lambda name: fake)
    out = tmp_path / "runs" / "digits"
    with pytest.raises(synth.SynthError) as info:
        run(out, RunOptions(vectors=200), TrainConfig(hidden=(2,), epochs=1), quiet=True)
    kept = out.parent / "digits.synth.failed.log"
    assert str(kept) in str(info.value) and "ERROR: broken on purpose" in str(info.value)
    assert "ERROR: broken on purpose" in kept.read_text()
    assert sorted(p.name for p in out.parent.iterdir()) == [kept.name], "partial run left behind"


@pytest.mark.slow
def test_run_a_cnn_as_a_stream(tmp_path: Path):
    """`hgq-rtl run --arch cnn`: train → IR with conv/maxpool_nd → stream RTL (the default for
    convolutions) → every test image through the fast harness (latency and II held to the
    manifest), and again under random backpressure."""
    rng = np.random.default_rng(0)
    x = rng.random((240, 1, 8, 8)).astype(np.float32)
    y = (x[:, 0, :4].mean(axis=(1, 2)) > x[:, 0, 4:].mean(axis=(1, 2))).astype(np.int64)
    data = tmp_path / "images.npz"
    np.savez(data, x_train=x[:200], y_train=y[:200], x_test=x[200:], y_test=y[200:])
    out = tmp_path / "run"
    result = hgq_rtl(
        "run", "--dataset", "npz", "--data-path", str(data), "--arch", "cnn",
        "--channels", "3", "--hidden", "--epochs", "2", "--no-synth", "--out", str(out), "-q",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "report.json").read_text())
    manifest = json.loads((out / "rtl" / "manifest.json").read_text())
    assert report["io"] == manifest["io"] == "stream"
    assert manifest["input"]["beats"] == 64 and manifest["initiation_interval"] == 64
    assert report["initiation_interval"] == 64
    assert [layer["kind"] for layer in report["layers"]] == ["conv", "maxpool_nd", "dense"]
    # 40 test images and the two extremes, at full throughput and under backpressure
    assert report["vectors"] == 2 * 42 and report["mismatches"] == 0
    assert report["verification"]["passed"]
