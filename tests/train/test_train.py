"""Training: β schedules, tasks (classification, regression), checkpoints, resume, divergence."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import hgq_rtl.train.checkpoint as ckpt
import hgq_rtl.train.loop as train_module
from hgq_rtl.cli import _beta_steps
from hgq_rtl.train.config import BetaSchedule, TrainConfig
from hgq_rtl.train.freeze import check_frozen, freeze
from hgq_rtl.train.loop import TrainingDiverged, train
from hgq_rtl.train.pareto import FrontStore, ParetoKeeper, evaluate_front

# ------------------------------------------------------------------------------ schedules


def test_constant_beta():
    schedule = BetaSchedule(3e-6)
    assert [schedule(e, 10) for e in range(10)] == [3e-6] * 10


def test_log_ramp_with_hold():
    schedule = BetaSchedule(1e-6, 1e-4, hold_epochs=2)
    values = [schedule(e, 7) for e in range(7)]
    assert values[:3] == [1e-6] * 3
    assert values[-1] == pytest.approx(1e-4)
    assert values[4] == pytest.approx(1e-5)  # half-way in log
    assert all(b > a for a, b in zip(values[2:], values[3:], strict=False))


def test_piecewise_steps():
    schedule = BetaSchedule(1e-7, steps=[(2, 1e-5), (5, 0)])
    assert schedule.steps == ((2, 1e-5), (5, 0.0))  # normalized to a hashable tuple
    assert [schedule(e, 8) for e in range(8)] == [1e-7] * 2 + [1e-5] * 3 + [0.0] * 3


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"start": -1e-6}, "beta start must be a finite number >= 0"),
        ({"start": float("nan")}, "beta start must be a finite number >= 0"),
        ({"start": 0.0, "end": 1e-4}, "log-uniform"),
        ({"start": 1e-6, "end": float("inf")}, "beta end must be a finite"),
        ({"start": 1e-6, "hold_epochs": 3}, "needs a ramp"),
        ({"start": 1e-6, "end": 1e-5, "hold_epochs": -1}, "hold_epochs must be >= 0"),
        ({"start": 1e-6, "end": 1e-5, "steps": ((1, 1e-5),)}, "exclude each other"),
        ({"steps": ((3, 1e-5), (3, 1e-4))}, "increasing order"),
        ({"steps": ((-1, 1e-5),)}, "increasing order"),
        ({"steps": ((1.5, 1e-5),)}, "increasing order"),
        ({"steps": ((1, -2.0),)}, "beta at epoch 1 must be a finite number >= 0"),
        ({"steps": ((1,),)}, "(epoch, value) pairs"),
        ({"steps": ((1, "much"),)}, "(epoch, value) pairs"),
    ],
)
def test_bad_schedules(kwargs, fragment):
    with pytest.raises(ValueError, match=None) as error:
        BetaSchedule(**kwargs)
    assert fragment in str(error.value)


def test_schedule_must_fit_the_epochs():
    with pytest.raises(ValueError, match="never applies: the last epoch is 4"):
        TrainConfig(epochs=5, beta=BetaSchedule(1e-6, steps=((5, 1e-5),)))
    with pytest.raises(ValueError, match="ramp would never start"):
        TrainConfig(epochs=5, beta=BetaSchedule(1e-6, 1e-5, hold_epochs=5))
    with pytest.raises(TypeError, match="beta must be a BetaSchedule"):
        TrainConfig(beta=1e-6)
    with pytest.raises(ValueError, match="task must be one of"):
        TrainConfig(task="ranking")
    TrainConfig(epochs=6, beta=BetaSchedule(1e-6, steps=((5, 1e-5),)))  # the last epoch is fine


def test_beta_steps_option():
    assert _beta_steps(None) == ()
    assert _beta_steps("0:1e-6, 30:2e-5") == ((0, 1e-6), (30, 2e-5))
    for bad in ("", "5", "a:1", "3:x", "1:2:3", "1:1e-6;2:1e-5"):
        with pytest.raises(ValueError, match="--beta-steps must be EPOCH:VALUE pairs"):
            _beta_steps(bad)


# --------------------------------------------------------------------------------- data


def classification_data(n: int = 240, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, size=(n, 5)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0.3)
    return x[: n * 3 // 4], y[: n * 3 // 4], x[n * 3 // 4 :], y[n * 3 // 4 :]


def regression_data(n: int = 512, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, size=(n, 4)).astype(np.float32)
    y = np.stack([x[:, 0] - 0.5 * x[:, 1], 0.75 * x[:, 2] + 0.25], axis=1).astype(np.float32)
    return x[:384], y[:384], x[384:], y[384:]


SMALL = {"hidden": (8,), "batch_size": 32, "threads": 1, "device": "cpu"}


# --------------------------------------------------------------------------- regression


def test_regression_learns_and_reports_resolution():
    x_train, y_train, x_val, y_val = regression_data()
    schedule = BetaSchedule(1e-7, steps=((6, 1e-5),))
    config = TrainConfig(epochs=12, beta=schedule, learning_rate=1e-2, **SMALL)
    result = train(x_train, y_train, x_val, y_val, 2, config, task="regression", quiet=True)
    assert result.task == "regression"
    history = result.history
    assert [row["beta"] for row in history] == [schedule(e, 12) for e in range(12)]
    for row in history:
        assert row["val_resolution"] == pytest.approx(math.sqrt(row["val_mse"]))
        assert "val_accuracy" not in row
    baseline = float(np.sqrt(np.mean(y_val.astype(np.float64) ** 2)))  # predicting 0
    assert history[-1]["val_resolution"] < 0.35 * baseline
    assert history[-1]["val_resolution"] < history[0]["val_resolution"]
    # the front: lower resolution is better; every kept point is non-dominated in the history
    points = result.front
    assert points
    assert {p.epoch for p in points} <= {row["epoch"] for row in history if row["kept"]}
    for p in points:
        assert not any(
            r["val_resolution"] <= p.metric
            and r["ebops"] <= p.ebops
            and (r["val_resolution"], r["ebops"]) != (p.metric, p.ebops)
            for r in history
        )
    front = evaluate_front(
        points, result.front_state, result.make_model, x_train, x_val, y_val, "regression"
    )
    for row, ir in front:
        assert isinstance(row.exact_ebops, int) and row.exact_ebops > 0
        # the integer model's resolution is close to the float validation figure
        assert row.reference_metric == pytest.approx(row.val_metric, rel=0.25)
        assert ir.metadata["epoch"] == row.epoch
    ir = freeze(result.model, x_train)
    assert check_frozen(result.model, ir, x_val) == 0


def test_task_checks():
    x_train, y_train, x_val, y_val = regression_data(64)
    config = TrainConfig(epochs=1, task="classification", **SMALL)
    with pytest.raises(ValueError, match="config.task is 'classification' but the data set"):
        train(x_train, y_train, x_val, y_val, 2, config, task="regression", quiet=True)
    with pytest.raises(ValueError, match=r"y_train must be real targets of shape \(n, 3\)"):
        train(x_train, y_train, x_val, y_val, 3, TrainConfig(epochs=1, task="regression"))
    xc, yc, xv, yv = classification_data(40)
    with pytest.raises(ValueError, match="outside 0..1"):
        train(xc, yc, xv, yv, 2, TrainConfig(epochs=1), quiet=True)
    with pytest.raises(ValueError, match="x_val is empty"):
        train(xc, yc, xv[:0], yv[:0], 3, TrainConfig(epochs=1), quiet=True)


# -------------------------------------------------------------- checkpoints and resuming


def _same_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


#: Tests that need a CUDA device; CI has none, a developer's GPU machine runs them.
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=CUDA)])
def test_interrupted_run_resumes_to_the_same_result(tmp_path, monkeypatch, device):
    data = classification_data()
    config = TrainConfig(epochs=6, beta=BetaSchedule(1e-6, 1e-3), **{**SMALL, "device": device})
    whole = train(*data, 3, config, quiet=True, checkpoint_dir=tmp_path / "whole")

    real_save = ckpt.save
    saved = []

    def interrupted_save(state, path):  # a Ctrl-C while epoch 2's checkpoint is being written
        if path.name == ckpt.CHECKPOINT_FILE:
            if len(saved) == 2:
                raise KeyboardInterrupt
            saved.append(path)
        return real_save(state, path)

    monkeypatch.setattr(ckpt, "save", interrupted_save)
    folder = tmp_path / "cut"
    with pytest.raises(KeyboardInterrupt):
        train(*data, 3, config, quiet=True, checkpoint_dir=folder)
    monkeypatch.setattr(ckpt, "save", real_save)
    assert ckpt.load(folder / ckpt.CHECKPOINT_FILE)["epoch"] == 1
    assert not list(folder.glob(".*.tmp"))
    resumed = train(*data, 3, config, quiet=True, checkpoint_dir=folder, resume=True)

    assert [row["epoch"] for row in resumed.history] == list(range(6))
    assert resumed.history == whole.history
    assert resumed.front == whole.front
    assert _same_state(resumed.model.state_dict(), whole.model.state_dict())
    files = sorted(p.name for p in (folder / "front").iterdir())
    assert files == [f"epoch_{p.epoch:04d}.pt" for p in sorted(whole.front, key=lambda p: p.epoch)]
    for p in whole.front:
        assert _same_state(resumed.front_state(p.epoch), whole.front_state(p.epoch))
    state = ckpt.load(folder / ckpt.CHECKPOINT_FILE)
    assert ParetoKeeper.from_state_dict(state["keeper"]).points == whole.front
    # a finished run resumes to the same end without training again
    again = train(*data, 3, config, quiet=True, checkpoint_dir=folder, resume=True)
    assert again.history == whole.history


def test_resume_refuses_other_settings_and_data(tmp_path):
    data = classification_data()
    config = TrainConfig(epochs=2, **SMALL)
    folder = tmp_path / "run"
    with pytest.raises(ValueError, match="nothing to resume"):
        train(*data, 3, config, quiet=True, checkpoint_dir=folder, resume=True)
    train(*data, 3, config, quiet=True, checkpoint_dir=folder)
    with pytest.raises(ValueError, match="holds a training run already"):
        train(*data, 3, config, quiet=True, checkpoint_dir=folder)
    other = TrainConfig(epochs=3, **SMALL)
    with pytest.raises(ValueError, match=r"cannot resume .*config\.epochs: 2 → 3"):
        train(*data, 3, other, quiet=True, checkpoint_dir=folder, resume=True)
    x_train, y_train, x_val, y_val = data
    with pytest.raises(ValueError, match=r"data\.train"):
        train(
            x_train * 2,
            y_train,
            x_val,
            y_val,
            3,
            config,
            quiet=True,
            checkpoint_dir=folder,
            resume=True,
        )
    (folder / ckpt.CHECKPOINT_FILE).write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="is not readable"):
        train(*data, 3, config, quiet=True, checkpoint_dir=folder, resume=True)


def test_nan_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    data = classification_data()
    config = TrainConfig(epochs=5, **SMALL)
    batches = math.ceil(len(data[0]) / SMALL["batch_size"])
    calls = []
    real_ebops = train_module.ebops

    def poisoned(model):  # fine for epochs 0 and 1, NaN in the middle of epoch 2
        calls.append(1)
        value = real_ebops(model)
        return value * float("nan") if len(calls) > 2 * (batches + 1) + 2 else value

    monkeypatch.setattr(train_module, "ebops", poisoned)
    folder = tmp_path / "run"
    with pytest.raises(TrainingDiverged) as error:
        train(*data, 3, config, quiet=True, checkpoint_dir=folder)
    message = str(error.value)
    assert "the loss became nan in epoch 2" in message
    assert f"last good checkpoint (epoch 1) is kept in {folder}" in message
    assert isinstance(error.value, ValueError)  # the CLI prints it as one error line
    state = ckpt.load(folder / ckpt.CHECKPOINT_FILE)
    assert state["epoch"] == 1 and [row["epoch"] for row in state["history"]] == [0, 1]
    assert all(
        torch.all(torch.isfinite(t)) for t in state["model"].values() if t.is_floating_point()
    )
    monkeypatch.setattr(train_module, "ebops", real_ebops)
    resumed = train(*data, 3, config, quiet=True, checkpoint_dir=folder, resume=True)
    assert [row["epoch"] for row in resumed.history] == [0, 1, 2, 3, 4]


def test_huge_learning_rate_diverges_with_one_message():
    data = classification_data()
    config = TrainConfig(epochs=3, learning_rate=1e30, **SMALL)
    with pytest.raises(TrainingDiverged, match="training diverged: .*no epoch completed"):
        train(*data, 3, config, quiet=True)


def test_memory_front_store_matches_files(tmp_path):
    data = classification_data()
    config = TrainConfig(epochs=3, **SMALL)
    in_memory = train(*data, 3, config, quiet=True)
    assert isinstance(in_memory.store, FrontStore) and in_memory.store.folder is None
    on_disk = train(*data, 3, config, quiet=True, checkpoint_dir=tmp_path / "run")
    assert in_memory.front == on_disk.front and in_memory.history == on_disk.history
    for p in in_memory.front:
        assert _same_state(in_memory.front_state(p.epoch), on_disk.front_state(p.epoch))


# ------------------------------------------------------------------------ compiled steps


def test_compiled_steps_train_like_eager_ones():
    """``compile=True`` (the whole step through torch.compile) follows the eager run closely,
    and its model freezes exactly. Float kernels fused differently round differently, so the
    losses agree to a few per cent, not bit for bit."""
    from hgq_rtl.data import load_digits

    data = load_digits(seed=3)
    runs = {}
    for compiled in (False, True):
        config = TrainConfig(epochs=3, hidden=(16,), batch_size=64, seed=3, compile=compiled)
        runs[compiled] = train(
            data.x_train, data.y_train, data.x_test, data.y_test, 10, config, quiet=True
        )
    eager, fast = ([row["loss"] for row in runs[c].history] for c in (False, True))
    assert fast == pytest.approx(eager, rel=0.05)
    assert fast[-1] < 0.85 * fast[0]
    assert runs[True].history[-1]["val_accuracy"] > 0.6
    ir = freeze(runs[True].model, data.x_train)
    assert check_frozen(runs[True].model, ir, data.x_test) == 0


@CUDA
@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
def test_cuda_cnn_trains_and_freezes_exactly(compiled):
    """On a GPU: a small CNN with fused BatchNorm learns, and its model (handed back on the
    CPU) freezes with check 1 exact."""
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (768, 1, 12, 12)).astype(np.float32)
    x[:, 0, 3:9, 3:9] += np.where(rng.uniform(size=768) > 0.5, 0.6, 0.0)[:, None, None]
    y = (x[:, 0, 3:9, 3:9].mean(axis=(1, 2)) > 0.8).astype(np.int64)  # a bright centre
    config = TrainConfig(
        arch="cnn",
        channels=(4, 8),
        hidden=(8,),
        batch_norm=True,
        epochs=6,
        batch_size=64,
        device="cuda",
        compile=compiled,
    )
    result = train(x[:512], y[:512], x[512:], y[512:], 2, config, quiet=True)
    assert next(result.model.parameters()).device.type == "cpu"
    assert result.history[-1]["val_accuracy"] > 0.9
    ir = freeze(result.model, x[:512])
    assert check_frozen(result.model, ir, x) == 0


def test_front_reuses_the_final_models_ir_exactly():
    """The final model, already frozen, is not calibrated again for its front point: the IR
    reused is the one freezing its saved state gives, metadata included."""
    from hgq_rtl.ir.io import to_arrays

    x_train, y_train, x_val, y_val = classification_data()
    result = train(x_train, y_train, x_val, y_val, 3, TrainConfig(epochs=1, **SMALL), quiet=True)
    (point,) = result.front
    final = freeze(result.model, x_train, name="m", metadata={"run": 1})
    args = (result.front, result.front_state, result.make_model, x_train, x_val, y_val)
    options = {"task": "classification", "name": "m", "metadata": {"run": 1}}
    [(row, fresh)] = evaluate_front(*args, **options)
    [(reused_row, reused)] = evaluate_front(*args, **options, frozen={point.epoch: final})
    assert reused_row == row
    assert reused.metadata == fresh.metadata and reused.name == fresh.name
    fresh_arrays, reused_arrays = to_arrays(fresh), to_arrays(reused)
    assert fresh_arrays.keys() == reused_arrays.keys()
    assert all(np.array_equal(fresh_arrays[k], reused_arrays[k]) for k in fresh_arrays)
