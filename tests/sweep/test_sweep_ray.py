"""Sweeps on a local Ray cluster of this machine's cores, through ``hgq-rtl sweep`` in a
subprocess: an undisturbed sweep (its global front checked against the frozen models, every
front point verified bit for bit), a sweep whose trial worker is killed in the middle of a trial
(SIGKILL by pid), and a sweep killed whole and resumed. The trainer is deterministic per seed
(one torch thread), so all three must end with the same front.

Small on purpose: three tiny digits MLPs of three epochs each.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hgq_rtl.ir import io as ir_io
from hgq_rtl.ir import reference
from hgq_rtl.train.metrics import reference_metrics

pytestmark = pytest.mark.slow

SWEEP = """
[data]
dataset = "digits"

[train]
epochs = 3
batch_size = 8
hidden = [8]
learning_rate = 0.01

[space]
beta = [1e-6, 3e-5, 1e-4]

[budget]
workers = 2
max_failures = 2
[budget.early_stopping]
scheduler = "none"

[build]
rtl = {rtl}
synth = false
vectors = 300
"""
TIMEOUT = 1500  # a loaded 2-core machine builds Verilator and Yosys slowly


def _write(folder: Path, rtl: bool) -> Path:
    path = folder / f"sweep_{'rtl' if rtl else 'train'}.toml"
    path.write_text(SWEEP.format(rtl=str(rtl).lower()))
    return path


def _command(sweep: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "hgq_rtl.cli", "sweep", str(sweep), "--out", str(out), *extra]


def _run(sweep: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    result = subprocess.run(
        _command(sweep, out, *extra), capture_output=True, text=True, timeout=TIMEOUT
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def _front(out: Path) -> list[tuple]:
    front = json.loads((out / "front.json").read_text())["front"]
    return [(r["trial"], r["epoch"], r["exact_ebops"], r["test_metric"]) for r in front]


def _histories(out: Path) -> dict[str, list]:
    return {
        folder.name: json.loads((folder / "done.json").read_text())["history"]
        for folder in sorted((out / "trials").iterdir())
    }


def _attempts(out: Path, trial: str) -> list[dict]:
    path = out / "trials" / trial / "attempts.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def _epoch_of_checkpoint(folder: Path) -> int | None:
    import torch

    path = folder / "training" / "checkpoint.pt"
    if not path.is_file():
        return None
    try:
        return int(torch.load(path, map_location="cpu", weights_only=True)["epoch"])
    except Exception:  # replaced while read
        return None


@pytest.fixture(scope="module")
def undisturbed(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("sweep")
    out = folder / "out"
    result = _run(_write(folder, rtl=False), out)
    assert "trials done" in result.stderr  # progress lines
    return out


def test_sweep_front_is_the_front_of_all_frozen_points(undisturbed):
    out = undisturbed
    summary = json.loads((out / "front.json").read_text())
    rows, front = summary["all_points"], summary["front"]
    assert summary["trials"] == 3 and {r["trial"] for r in rows} == {"t000", "t001", "t002"}

    # every kept point measured exactly: its IR's EBOPs and the integer model's test accuracy
    from hgq_rtl.data import load_dataset

    digits = load_dataset("digits")
    for row in rows:
        ir = ir_io.load(out / row["model"])
        assert reference.ebops(ir) == row["exact_ebops"]
        measured = reference_metrics(ir, digits.x_test, digits.y_test, "classification")
        assert measured["accuracy"] == row["test_metric"]

    # the front by brute force: no other point at least as good in both and better in one
    def dominated(a):
        return any(
            b is not a
            and b["test_metric"] >= a["test_metric"]
            and b["exact_ebops"] <= a["exact_ebops"]
            and (b["test_metric"], b["exact_ebops"]) != (a["test_metric"], a["exact_ebops"])
            for b in rows
        )

    expected = {(r["trial"], r["epoch"]) for r in rows if not dominated(r)}
    assert {(r["trial"], r["epoch"]) for r in front} == expected
    assert [r["exact_ebops"] for r in front] == sorted(r["exact_ebops"] for r in front)

    # the report links exist
    page = (out / "sweep_report.md").read_text()
    for row in front:
        assert f"[{row['model']}]({row['model']})" in page
    for name in ("front_ebops", "trial_curves"):
        assert (out / "figures" / f"{name}.png").stat().st_size > 1000
    assert "<img" in (out / "sweep_report.html").read_text()


def test_killed_worker_loses_at_most_the_running_epoch(undisturbed, tmp_path):
    out = tmp_path / "out"
    process = subprocess.Popen(
        _command(_write(tmp_path, rtl=False), out, "-q"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    killed = None
    deadline = time.monotonic() + TIMEOUT
    try:
        while killed is None and process.poll() is None and time.monotonic() < deadline:
            for folder in sorted((out / "trials").glob("t*")):
                epoch = _epoch_of_checkpoint(folder)
                attempts = folder / "attempts.jsonl"
                if epoch is None or (folder / "done.json").exists() or not attempts.exists():
                    continue
                if epoch < 2:  # the trial is in epoch 1 or 2 of 0..2
                    pid = json.loads(attempts.read_text().splitlines()[0])["pid"]
                    os.kill(pid, signal.SIGKILL)
                    killed = (folder.name, epoch)
                    break
            time.sleep(0.02)
        stdout, stderr = process.communicate(timeout=TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
    assert killed is not None, "the sweep ended before a trial could be killed mid-way"
    assert process.returncode == 0, stderr[-3000:]
    trial, epoch = killed
    attempts = _attempts(out, trial)
    assert len(attempts) == 2, attempts
    # the restart continued after the last checkpoint: no completed epoch was trained again
    assert attempts[1]["first_epoch"] >= epoch + 1
    assert attempts[1]["pid"] != attempts[0]["pid"]
    # and the run is the undisturbed one, bit for bit
    assert _histories(out) == _histories(undisturbed)
    assert _front(out) == _front(undisturbed)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_killed_sweep_resumes_to_the_same_front(undisturbed, tmp_path):
    sweep = _write(tmp_path, rtl=False)
    out = tmp_path / "out"
    process = subprocess.Popen(
        _command(sweep, out, "-q"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: the driver, Ray's head processes
    )
    running: dict[str, int] = {}
    deadline = time.monotonic() + TIMEOUT
    try:
        while not running and process.poll() is None and time.monotonic() < deadline:
            trials = sorted((out / "trials").glob("t*"))
            done = [f for f in trials if (f / "done.json").exists()]
            epochs = {f.name: _epoch_of_checkpoint(f) for f in trials if f not in done}
            midway = {name: e for name, e in epochs.items() if e is not None and e < 2}
            if done and midway:
                os.killpg(process.pid, signal.SIGKILL)
                running = midway
            time.sleep(0.02)
    finally:
        if process.poll() is None and not running:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=60)
    assert running, "the sweep ended before it could be killed mid-way"
    # Ray's workers (their own process groups) end with the cluster: none trains on
    workers = {a["pid"] for f in (out / "trials").glob("t*") for a in _attempts(out, f.name)}
    deadline = time.monotonic() + 120
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(pid) for pid in workers), "trial workers outlived the killed sweep"
    finished = {f.name for f in (out / "trials").glob("t*") if (f / "done.json").exists()}
    at_kill = {name: _epoch_of_checkpoint(out / "trials" / name) for name in running}
    assert not (out / "front.json").exists()

    result = _run(sweep, out, "--resume")
    assert "finished" in result.stderr
    for trial in finished:  # finished trials are not trained again
        assert len(_attempts(out, trial)) == 1
    for trial, epoch in at_kill.items():  # the interrupted ones continue after their checkpoint
        attempts = _attempts(out, trial)
        assert len(attempts) == 2 and attempts[1]["first_epoch"] == epoch + 1, attempts
        assert epoch >= running[trial]
    assert _front(out) == _front(undisturbed)
    assert _histories(out) == _histories(undisturbed)
    # a second --resume of a complete sweep trains nothing and gives the same front
    counts = {t: len(_attempts(out, t)) for t in ("t000", "t001", "t002")}
    _run(sweep, out, "--resume", "-q")
    assert {t: len(_attempts(out, t)) for t in counts} == counts
    assert _front(out) == _front(undisturbed)


def test_front_points_are_built_verified_and_synthesized(tmp_path):
    # one trial of one epoch: a front of one point, through RTL, check 3 and Yosys
    sweep = tmp_path / "build.toml"
    text = SWEEP.format(rtl="true").replace("[1e-6, 3e-5, 1e-4]", "[1e-4]")
    sweep.write_text(
        text.replace("epochs = 3", "epochs = 1").replace(
            "synth = false", "synth = true\nnextpnr = false"
        )
    )
    out = tmp_path / "out"
    result = _run(sweep, out)
    summary = json.loads((out / "front.json").read_text())
    assert len(summary["front"]) >= 1
    for row in summary["front"]:
        build = json.loads((out / "points" / row["point"] / "build.json").read_text())
        assert build["figures"]["mismatches"] == 0 and build["figures"]["vectors"] == 300
        assert build["figures"]["lut"] > 0 and row["lut"] == build["figures"]["lut"]
        assert (out / "points" / row["point"] / "rtl" / "manifest.json").is_file()
        assert (out / "points" / row["point"] / "synth").is_dir()
    assert "RTL verified on 300 vectors, 0 mismatches" in result.stderr
    assert (out / "figures" / "front_luts.png").is_file()
