"""One trial of a sweep, as Ray Tune runs it: the existing trainer in the trial's own folder.

A trial's folder ``DIR/trials/tNNN/`` holds

* ``training/``: the trainer's per-epoch atomic checkpoint (``checkpoint.pt``) and the kept
  points' states (``front/``), exactly as ``hgq-rtl train`` writes them;
* ``attempts.jsonl``: one line per start of the trial (process id, host, first epoch), so a
  restart after a dead worker is visible;
* ``done.json``: written when training finished (history, last result, the kept points
  frozen and measured), or
  ``stopped.json``: written by the driver when the scheduler stopped the trial (ASHA);
* ``front/epoch_NNNN/`` (the kept points frozen to IR folders), ``front.csv``, ``front.json``,
  ``front.png``: written by the trial when it finished, or after the sweep for a trial stopped
  early.

The trial resumes from ``training/checkpoint.pt`` whenever one exists: a trial restarted by
Tune after its worker died (``FailureConfig(max_failures)``), or by ``--resume`` after the
whole sweep was killed, repeats at most the epoch that was running. Each completed epoch is
reported to Tune (``epoch``, ``val_metric``, ``ebops``) with a Tune checkpoint that points at
the trainer's checkpoint (the trial id and epoch; the trainer's file is the one that resumes).
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

TRIALS_DIR = "trials"
TRAINING_DIR = "training"
ATTEMPTS_FILE = "attempts.jsonl"
DONE_FILE = "done.json"
STOPPED_FILE = "stopped.json"
POINTER_FILE = "trial_checkpoint.json"


def trial_folder(out_dir: Path, trial_id: str) -> Path:
    return Path(out_dir) / TRIALS_DIR / trial_id


def _append(path: Path, record: dict[str, Any]) -> None:
    with open(path, "a", encoding="utf-8") as file:
        file.write(json.dumps(record) + "\n")
        file.flush()
        os.fsync(file.fileno())


def read_attempts(folder: Path) -> list[dict[str, Any]]:
    path = Path(folder) / ATTEMPTS_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def ended_before(folder: Path) -> dict[str, Any] | None:
    """The last result of a trial that finished or was stopped early in an earlier run of the
    sweep, or ``None``."""
    for name in (DONE_FILE, STOPPED_FILE):
        path = Path(folder) / name
        if path.is_file():
            return json.loads(path.read_text())["last"]
    return None


def load_data(data: dict[str, Any]):
    from ..data import load_dataset

    return load_dataset(data["dataset"], path=data["path"], seed=data["seed"])


def run_trial(tune_config: dict[str, Any]) -> None:
    """The Tune trainable: train one trial (resuming its checkpoint if there is one), reporting
    every completed epoch."""
    from ray import tune

    from ..train.checkpoint import CHECKPOINT_FILE, atomic_write_text, load
    from ..train.loop import train
    from ..train.metrics import METRICS, resolve_task
    from .config import config_from_record

    trial = tune_config["trial"]
    folder = Path(trial["folder"])
    training = folder / TRAINING_DIR
    done = folder / DONE_FILE
    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    config = config_from_record(trial["config"])
    saved = training / CHECKPOINT_FILE
    resume = saved.is_file()
    first_epoch = int(load(saved)["epoch"]) + 1 if resume else 0
    last = ended_before(folder)
    if last is not None:  # ended in an earlier run of the sweep: report its last epoch again
        tune.report(last)
        return
    _append(
        folder / ATTEMPTS_FILE,
        {"pid": os.getpid(), "host": socket.gethostname(), "first_epoch": first_epoch},
    )
    dataset = load_data(trial["data"])
    task = resolve_task(config.task, str(dataset.task))
    metric_name = METRICS[task][0]

    reported = []

    def on_epoch(row: dict[str, Any]) -> None:
        reported.append(row["epoch"])
        metrics = {
            "epoch": row["epoch"] + 1,  # epochs completed: ASHA's time axis
            "val_metric": row[f"val_{metric_name}"],
            "ebops": row["ebops"],
            "kept": row["kept"],
            "train_seconds": time.perf_counter() - started,
        }
        with tempfile.TemporaryDirectory(prefix="hgq-rtl-trial-") as pointer:
            pointer_record = {"trial": trial["id"], "checkpoint": str(saved), "epoch": row["epoch"]}
            (Path(pointer) / POINTER_FILE).write_text(json.dumps(pointer_record) + "\n")
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(pointer))

    result = train(
        dataset.x_train,
        dataset.y_train,
        dataset.x_test,
        dataset.y_test,
        dataset.n_outputs,
        config,
        task=str(dataset.task),
        quiet=True,
        checkpoint_dir=training,
        resume=resume,
        on_epoch=on_epoch,
    )
    last = result.history[-1]
    final = {
        "epoch": last["epoch"] + 1,
        "val_metric": last[f"val_{metric_name}"],
        "ebops": last["ebops"],
        "kept": last["kept"],
        "train_seconds": time.perf_counter() - started,
    }
    if not reported:  # resumed after its last epoch: Tune needs one result of this attempt
        tune.report(final)
    points = freeze_trial(folder, trial["data"], trial["name"], dataset)
    record = {
        "trial": trial["id"],
        "history": result.history,
        "last": final,
        "points": points,
        "train_seconds": result.seconds,  # the trainer's own time (this attempt)
        "work_seconds": time.perf_counter() - started,  # everything this function did
    }
    atomic_write_text(done, json.dumps(record, indent=1) + "\n")


def freeze_trial(
    folder: Path, data: dict[str, Any], name: str, dataset=None
) -> list[dict[str, Any]]:
    """Freeze every kept point of a trial's last checkpoint (finished or stopped early) and
    measure it exactly: exact EBOPs from the IR, the integer reference's test metric. Writes
    the trial's ``front/`` IR folders and ``front.csv``/``.json``/``.png``; returns the rows."""
    from ..train.checkpoint import CHECKPOINT_FILE, load
    from ..train.metrics import METRICS
    from ..train.models import build_model
    from ..train.pareto import FRONT_DIR, FrontStore, ParetoKeeper, evaluate_front, write_front

    folder = Path(folder)
    training = folder / TRAINING_DIR
    state = load(training / CHECKPOINT_FILE)
    from .config import config_from_record

    config = config_from_record(state["config"])
    keeper = ParetoKeeper.from_state_dict(state["keeper"])
    task = state["data"]["task"]
    dataset = dataset if dataset is not None else load_data(data)
    store = FrontStore(training / FRONT_DIR)
    shape = tuple(state["data"]["input_shape"])
    n_outputs = int(state["data"]["n_outputs"])
    metadata = {
        "dataset": dataset.name,
        "n_classes": dataset.n_classes,
        "task": task,
        "n_outputs": n_outputs,
        "sweep_trial": folder.name,
    }
    front = evaluate_front(
        keeper.points,
        store.get,
        lambda: build_model(config, shape, n_outputs),
        dataset.x_train,
        dataset.x_test,
        dataset.y_test,
        task,
        name=name,
        metadata=metadata,
    )
    metric_name, higher_is_better = METRICS[task]
    write_front(folder, front, metric_name, higher_is_better)
    return [
        {
            "trial": folder.name,
            "epoch": row.epoch,
            "beta": row.beta,
            "val_metric": row.val_metric,
            "surrogate_ebops": row.surrogate_ebops,
            "exact_ebops": int(row.exact_ebops),
            "test_metric": float(row.reference_metric),
            "model": f"{TRIALS_DIR}/{folder.name}/{FRONT_DIR}/{row.folder_name()}",
        }
        for row, _ in front
    ]
