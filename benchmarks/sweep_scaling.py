"""Scaling of ``hgq-rtl sweep`` on a local Ray cluster: the same 8-trial digits sweep with 1 and
with 2 trials at once, and Ray's overhead per trial. Prints one JSON document.

* ``wall_seconds``: the Tune part of the sweep (Ray Tune's ``fit``, all trials), per worker
  count, and ``total_seconds`` (Ray start, sweep, global front, report);
* ``speedup``: 1-worker wall time / 2-worker wall time (the target is ≥ 1/0.6);
* per trial: ``trial_seconds`` (Tune's trial start to its completion, seen by the driver),
  ``work_seconds`` (what the trial function itself did: load data, train, freeze its points),
  ``train_seconds`` (the trainer alone), and ``overhead_seconds`` = trial − work: Ray's part
  (scheduling, starting or reusing the worker, result and checkpoint handling); its mean
  fraction of the trial time is ``overhead_fraction`` (the target is ≤ 5 %).

The build of the front is off (``[build] rtl = false``): this measures the sweep, not Verilator.
``--epochs`` sets the trial length (longer trials make the fixed overhead a smaller share).
The 1-minute load average before and after each run is reported: on a shared machine the
figures are only as good as the machine is quiet. Before the timed runs an untimed one-trial,
one-epoch sweep warms the disk cache and Python's byte code (``--no-warmup`` skips it): without
it the first timed run pays for reading torch from a cold disk (17.7 s in the first trial's
trainer once, against ~2 s in every later one) and the comparison favours whichever runs second.
``overhead_share`` is Ray's part of all trial time together (sum of overheads / sum of trial
times), beside the mean of the per-trial fractions.

    python benchmarks/sweep_scaling.py [--epochs 40] [--workers 1 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

from hgq_rtl.sweep.config import parse_plan
from hgq_rtl.sweep.run import run_sweep


def plan(epochs: int, workers: int, space: dict | None = None):
    return parse_plan(
        {
            "data": {"dataset": "digits"},
            "train": {"epochs": epochs, "batch_size": 32, "hidden": [16]},
            "space": space
            or {
                "beta": [1e-6, 1e-5, 3e-5, 1e-4],
                "learning_rate": [3e-3, 1e-2],
            },
            "budget": {"workers": workers, "early_stopping": {"scheduler": "none"}},
            "build": {"rtl": False},
        }
    )


def measure(epochs: int, workers: int) -> dict:
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="sweep-scaling-") as folder:
        out = Path(folder) / "out"
        summary = run_sweep(plan(epochs, workers), out, quiet=True)
        trials = []
        for trial_id, times in sorted(summary["trial_times"].items()):
            done = json.loads((out / "trials" / trial_id / "done.json").read_text())
            trial_seconds = times["end"] - times["start"]
            trials.append(
                {
                    "trial": trial_id,
                    "trial_seconds": round(trial_seconds, 3),
                    "work_seconds": round(done["work_seconds"], 3),
                    "train_seconds": round(done["train_seconds"], 3),
                    "overhead_seconds": round(trial_seconds - done["work_seconds"], 3),
                }
            )
    fractions = [t["overhead_seconds"] / t["trial_seconds"] for t in trials]
    return {
        "workers": workers,
        "trials": len(trials),
        "epochs": epochs,
        "wall_seconds": round(summary["sweep_seconds"], 2),
        "total_seconds": round(summary["total_seconds"], 2),
        "mean_trial_seconds": round(statistics.mean(t["trial_seconds"] for t in trials), 3),
        "mean_train_seconds": round(statistics.mean(t["train_seconds"] for t in trials), 3),
        "mean_overhead_seconds": round(statistics.mean(t["overhead_seconds"] for t in trials), 3),
        "overhead_fraction": round(statistics.mean(fractions), 4),
        "overhead_share": round(
            sum(t["overhead_seconds"] for t in trials) / sum(t["trial_seconds"] for t in trials), 4
        ),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg()[0],
        "per_trial": trials,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--no-warmup", action="store_true", help="skip the untimed warm-up sweep")
    args = parser.parse_args()
    if not args.no_warmup:
        print("sweep_scaling: warm-up (1 trial, 1 epoch, untimed)...", file=sys.stderr, flush=True)
        with tempfile.TemporaryDirectory(prefix="sweep-warmup-") as folder:
            warm = plan(1, 1, space={"beta": [1e-5]})
            run_sweep(warm, Path(folder) / "out", quiet=True)
    runs = []
    for workers in args.workers:
        print(f"sweep_scaling: 8 trials, {workers} worker(s)...", file=sys.stderr, flush=True)
        runs.append(measure(args.epochs, workers))
    result = {"cpus": os.cpu_count(), "runs": runs}
    walls = {run["workers"]: run["wall_seconds"] for run in runs}
    if 1 in walls and 2 in walls:
        result["ratio_2_to_1"] = round(walls[2] / walls[1], 3)
        result["speedup"] = round(walls[1] / walls[2], 3)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
