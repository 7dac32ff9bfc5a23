"""``hgq-rtl train`` killed with SIGKILL mid-run, resumed with ``--resume``: the same result as
an uninterrupted run with the same seed. And the command's errors on bad schedules, a changed
configuration and a diverging run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from bad_inputs.helpers import assert_bad_input, cli

from hgq_rtl.ir import io as ir_io
from hgq_rtl.ir.reference import ebops as reference_ebops
from hgq_rtl.train import checkpoint as ckpt

EPOCHS = 30
COMMON = ["--hidden", "6", "--batch-size", "16", "--seed", "5", "--device", "cpu", "-q"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _npz(path: Path, task: str) -> Path:
    """A small data set (``hgq-rtl --dataset npz``): 3 classes, or 2 real targets."""
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, size=(320, 5)).astype(np.float32)
    if task == "classification":
        y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0.3)
    else:
        y = np.stack([x[:, 0] - 0.5 * x[:, 1], 0.75 * x[:, 2] + 0.1], axis=1).astype(np.float32)
    np.savez(path, x_train=x[:240], y_train=y[:240], x_test=x[240:], y_test=y[240:])
    return path


@pytest.fixture
def classes(tmp_path) -> list[str]:
    """``train`` options of a small classification run with a stepped β."""
    data = _npz(tmp_path / "classes.npz", "classification")
    steps = "8:1e-5,16:1e-4,24:1e-3"
    options = ["--dataset", "npz", "--data-path", str(data), "--epochs", str(EPOCHS)]
    return ["train", *options, "--beta", "1e-6", "--beta-steps", steps, *COMMON]


def _start(options: list[str], out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "hgq_rtl.cli", *options, "--out", str(out), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(process: subprocess.Popen) -> dict:
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr
    return json.loads(stdout)


def test_sigkill_then_resume_equals_an_uninterrupted_run(tmp_path, classes):
    killed, whole = tmp_path / "killed", tmp_path / "whole"
    saved = killed / "training" / ckpt.CHECKPOINT_FILE
    process = _start(classes, killed)
    deadline = time.monotonic() + 240
    while not saved.exists():
        assert process.poll() is None, process.communicate()[1]
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.communicate()
    assert process.returncode == -signal.SIGKILL
    cut = ckpt.load(saved)["epoch"]
    assert cut < EPOCHS - 1, "the run finished before it was killed: make it longer"
    assert not (killed / "model.json").exists()  # no IR until the run is finished

    resumed, reference = _start(classes, killed, "--resume"), _start(classes, whole)
    resumed_result, whole_result = _finish(resumed), _finish(reference)

    for key in ("test_accuracy", "ebops", "front_points", "check1_mismatches"):
        assert resumed_result[key] == whole_result[key], key
    history = json.loads((killed / "training" / "history.json").read_text())
    assert [row["epoch"] for row in history] == list(range(EPOCHS))
    assert history == json.loads((whole / "training" / "history.json").read_text())
    state, expected = ckpt.load(saved), ckpt.load(whole / "training" / ckpt.CHECKPOINT_FILE)
    assert state["keeper"] == expected["keeper"] and state["keeper"]["points"]
    assert all(torch.equal(state["model"][k], expected["model"][k]) for k in expected["model"])
    # the same final IR, the same front (table and IR folders)
    assert ir_io.model_sha256(killed) == ir_io.model_sha256(whole)
    front = json.loads((killed / "training" / "front.json").read_text())
    assert front == json.loads((whole / "training" / "front.json").read_text())
    kept = sorted(p["epoch"] for p in state["keeper"]["points"])
    assert sorted(p["epoch"] for p in front["points"]) == kept
    for row in front["points"]:
        ir = ir_io.load(killed / "training" / row["model"])
        assert ir_io.model_sha256(killed / "training" / row["model"]) == ir_io.model_sha256(
            whole / "training" / row["model"]
        )
        assert ir.metadata["epoch"] == row["epoch"]
    assert ir_io.load(killed).metadata["task"] == "classification"
    assert len(front["points"]) >= 2, "a front of one point tests little: change the schedule"
    for name in ("front.png", "bits_histogram.png", "bits_heatmap.png"):
        assert (killed / "training" / name).read_bytes()[:8] == PNG_SIGNATURE


@pytest.mark.parametrize(
    ("options", "fragments"),
    [
        (["--beta-steps", "5"], ["--beta-steps must be EPOCH:VALUE pairs"]),
        (["--beta-steps", f"{EPOCHS}:1e-3"], ["never applies"]),
        (["--beta-hold", "3"], ["needs a ramp"]),
        (["--resume"], ["nothing to resume"]),
    ],
)
def test_bad_train_options(tmp_path, classes, options, fragments):
    result = cli(*classes, "--out", "m", *options, cwd=tmp_path)
    assert_bad_input(result, *fragments)
    assert not (tmp_path / "m" / "model.json").exists()


def test_regression_run_refuses_a_second_start_and_other_options(tmp_path):
    data = _npz(tmp_path / "targets.npz", "regression")
    train = ["train", "--dataset", "npz", "--data-path", str(data), "--out", "m", *COMMON]
    first = cli(*train, "--epochs", "3", "--beta-steps", "1:1e-5", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    result = json.loads(first.stdout)
    assert result["task"] == "regression" and "test_accuracy" not in result
    assert result["test_resolution"] == pytest.approx(result["test_mse"] ** 0.5)
    assert ir_io.load(tmp_path / "m").metadata["task"] == "regression"
    front = json.loads((tmp_path / "m" / "training" / "front.json").read_text())
    assert front["metric"] == "resolution" and front["higher_is_better"] is False
    assert {"val_resolution", "reference_resolution"} <= set(front["points"][0])
    again = cli(*train, "--epochs", "3", "--beta-steps", "1:1e-5", cwd=tmp_path)
    assert_bad_input(again, "holds a training run already", "--resume")
    other = cli(*train, "--epochs", "4", "--resume", cwd=tmp_path)
    assert_bad_input(other, "cannot resume", "config.epochs: 3 → 4", "config.beta.steps")
    assert ir_io.load(tmp_path / "m").metadata["task"] == "regression"  # left as it was


def test_a_diverging_run_is_one_error_line(tmp_path, classes):
    result = cli(*classes, "--out", "nan", "--lr", "1e30", cwd=tmp_path)
    assert_bad_input(result, "training diverged", "no epoch completed")
    assert not (tmp_path / "nan" / "model.json").exists()


def test_digits_beta_ramp_gives_a_front(tmp_path):
    """One log-ramp run on digits keeps ≥ 5 Pareto points spanning ≥ 4× in exact EBOPs, each
    with its IR, and writes the front and bit-width figures."""
    out = tmp_path / "ramp"
    options = ["--dataset", "digits", "--epochs", "60", "--beta", "1e-6", "--beta-end", "1e-3"]
    done = cli("train", *options, "--out", out, "-q", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    front = json.loads((out / "training" / "front.json").read_text())["points"]
    exact = [point["exact_ebops"] for point in front]
    assert len(front) >= 5, front
    assert max(exact) >= 4 * min(exact), exact
    # a front: cheaper points are less accurate, and every point's IR loads and scores as listed
    accuracy = [point["val_accuracy"] for point in front]
    assert exact == sorted(exact) and accuracy == sorted(accuracy)
    for point in front:
        ir = ir_io.load(out / "training" / point["model"])
        assert reference_ebops(ir) == point["exact_ebops"]
    for name in ("front.png", "bits_histogram.png", "bits_heatmap.png"):
        assert (out / "training" / name).read_bytes().startswith(PNG_SIGNATURE)
