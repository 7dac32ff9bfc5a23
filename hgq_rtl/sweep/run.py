"""Running a sweep: Ray (local or a cluster), Ray Tune over the trials, the global front, the
hardware of its points, the report.

Output folder ``DIR``:

* ``sweep.json``: the plan (data, budget, build, every trial's configuration); ``--resume``
  refuses a different one;
* ``trials/tNNN/``: each trial (see :mod:`.trial`);
* ``points/<trial>_eNNNN/``: each global-front point's ``rtl/``, ``synth/`` and ``build.json``;
* ``front.json``, ``front.csv``: the global front (with LUTs when synthesized);
* ``sweep_report.html``, ``sweep_report.md``, ``figures/``: the report (:mod:`.report`);
* ``ray/``: Ray Tune's own records (one experiment per run of the sweep).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .config import SweepPlan
from .front import POINTS_DIR, build_point, global_front, lut_front, point_name
from .trial import DONE_FILE, trial_folder

PLAN_FILE = "sweep.json"
FRONT_JSON = "front.json"
FRONT_CSV = "front.csv"
RAY_DIR = "ray"


def _say(text: str, quiet: bool) -> None:
    if not quiet:
        print(f"sweep: {text}", file=sys.stderr, flush=True)


def check_folder(plan: SweepPlan, out_dir: Path, resume: bool) -> None:
    """Refuse an ``out_dir`` that is not a sweep's (the write guard's checks), that holds a sweep
    already (without ``resume``), or none or another one (with it). Reads only."""
    from .. import guard
    from ..train.checkpoint import differences

    guard.check_destination(out_dir, "sweep", inputs=[plan.data_path])
    path = out_dir / PLAN_FILE
    if resume:
        if not path.is_file():
            raise ValueError(f"nothing to resume: {path} does not exist")
        saved = json.loads(path.read_text())
        changed = differences(saved, json.loads(json.dumps(plan.record())))
        if changed:
            raise ValueError(
                f"cannot resume {out_dir}: its sweep file had other settings ({changed[0]}"
                f"{' ...' if len(changed) > 1 else ''}); use the file it was started with"
            )
    elif path.exists():
        raise ValueError(
            f"{out_dir} holds a sweep already ({PLAN_FILE}): continue it with --resume or "
            "remove the folder"
        )


class RayCluster:
    """``with RayCluster(address, temp_root):`` connects to a running Ray cluster at
    ``address``, or (``None``) starts one in this process on this machine's cores, quiet, with
    its temporary folder under ``temp_root``; it is shut down on every way out."""

    def __init__(self, address: str | None, temp_root: Path | None = None) -> None:
        self.address = address
        self.temp_root = temp_root
        self.temp: Path | None = None

    def __enter__(self) -> RayCluster:
        import ray

        os.environ.setdefault("RAY_DEDUP_LOGS", "0")
        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
        # one pointer checkpoint per epoch is the design, not a bottleneck to warn about
        os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
        options: dict[str, Any] = {
            "logging_level": logging.ERROR,
            "log_to_driver": False,
            "configure_logging": True,
        }
        if self.address is None:
            # Ray's socket paths must stay short: a folder under TMPDIR, not under DIR
            self.temp = Path(tempfile.mkdtemp(prefix="hgq-ray-", dir=self.temp_root))
            options.update(
                num_cpus=os.cpu_count() or 1,
                include_dashboard=False,
                object_store_memory=256 * 1024**2,
                _temp_dir=str(self.temp),
            )
        else:
            options["address"] = self.address
        try:
            ray.init(**options)
        except BaseException:
            self._clean()
            raise
        return self

    def __exit__(self, *exc) -> None:
        import ray

        try:
            ray.shutdown()
        finally:
            self._clean()

    def _clean(self) -> None:
        if self.temp is not None:
            shutil.rmtree(self.temp, ignore_errors=True)

    @staticmethod
    def cpus() -> int:
        import ray

        return int(ray.cluster_resources().get("CPU", 1))


def trial_model_name(plan: SweepPlan, trial_id: str) -> str:
    """The IR name (and RTL top module) of a trial's points: ``<dataset>_<trial>``."""
    return f"{plan.dataset}_{trial_id}"


def run_sweep(
    plan: SweepPlan,
    out_dir: Path,
    *,
    address: str | None = None,
    resume: bool = False,
    quiet: bool = False,
) -> dict[str, Any]:
    """Run the sweep ``plan`` into ``out_dir``; returns the summary (also ``front.json``).

    Raises ``ValueError`` for a folder that holds another sweep (or none, with ``resume``) and
    for data that does not load, all before Ray starts.
    """
    from ..train.metrics import resolve_task
    from .trial import load_data

    out_dir = Path(out_dir).resolve()
    data = {
        "dataset": plan.dataset,
        "path": None if plan.data_path is None else str(plan.data_path.resolve()),
        "seed": plan.data_seed,
    }
    dataset = load_data(data)  # a missing or bad data file is refused before Ray starts
    task = resolve_task(plan.trials[0].config.task, str(dataset.task))
    check_folder(plan, out_dir, resume)
    from .. import guard
    from ..train.checkpoint import atomic_write_text

    with guard.updating(out_dir, "sweep", inputs=[plan.data_path]):  # marked and locked
        if not resume:
            atomic_write_text(out_dir / PLAN_FILE, json.dumps(plan.record(), indent=1) + "\n")
        return _run(plan, out_dir, data, dataset.name, task, address, quiet)


def _run(plan, out_dir, data, dataset_name, task, address, quiet) -> dict[str, Any]:
    from ..train.metrics import METRICS

    metric, higher_is_better = METRICS[task]
    _say(f"{len(plan.trials)} trials on {dataset_name} ({task}, metric {metric})", quiet)
    start = time.perf_counter()
    with RayCluster(address):
        _say(
            f"Ray: {RayCluster.cpus()} CPUs" + (f" at {address}" if address else " (local)"), quiet
        )
        progress = _tune(plan, out_dir, data, metric, higher_is_better, quiet)
        sweep_seconds = time.perf_counter() - start
        rows = _freeze_all(plan, out_dir, data, quiet)
        front = global_front(rows, higher_is_better)
        _say(f"global front: {len(front)} of {len(rows)} kept points", quiet)
        for row in front:
            row["point"] = point_name(row)
        if plan.build.rtl:
            _build_all(front, out_dir, asdict(plan.build), data, quiet)
    on_lut_front = lut_front(front, higher_is_better)
    for row in front:
        row["lut_front"] = row["point"] in on_lut_front if row.get("lut") is not None else None
    summary = {
        "dataset": dataset_name,
        "task": task,
        "metric": metric,
        "higher_is_better": higher_is_better,
        "trials": len(plan.trials),
        "kept_points": len(rows),
        "sweep_seconds": sweep_seconds,
        "total_seconds": time.perf_counter() - start,
        "trial_times": progress.times,
        "front": front,
        "all_points": rows,
    }
    _write_front(out_dir, summary)
    from .report import write_sweep_report

    write_sweep_report(out_dir, summary, plan)
    _say(f"report: {out_dir / 'sweep_report.html'} and sweep_report.md", quiet)
    return summary


def _tune(plan, out_dir, data, metric, higher_is_better, quiet):
    from ray import tune

    from .progress import SweepProgress
    from .trial import run_trial

    records = plan.record()["trials"]
    trials = [
        {
            "id": t.id,
            "folder": str(trial_folder(out_dir, t.id)),
            "config": records[i]["config"],
            "data": data,
            "name": trial_model_name(plan, t.id),
        }
        for i, t in enumerate(plan.trials)
    ]
    epochs = {t.id: t.config.epochs for t in plan.trials}
    progress = SweepProgress(epochs, metric, higher_is_better, quiet)
    budget = plan.budget
    scheduler = None
    if budget.scheduler == "asha":
        from ray.tune.schedulers import ASHAScheduler

        scheduler = ASHAScheduler(
            time_attr="epoch",
            max_t=max(epochs.values()),
            grace_period=budget.grace_period,
            reduction_factor=budget.reduction_factor,
        )
    storage = out_dir / RAY_DIR
    run = len(list(storage.glob("run-*"))) if storage.is_dir() else 0
    tuner = tune.Tuner(
        tune.with_resources(run_trial, {"cpu": budget.cpus_per_trial}),
        param_space={"trial": tune.grid_search(trials)},
        tune_config=tune.TuneConfig(
            metric="val_metric",
            mode="max" if higher_is_better else "min",
            scheduler=scheduler,
            max_concurrent_trials=budget.workers,
            reuse_actors=True,  # a finished trial's worker (torch imported) takes the next
            trial_name_creator=lambda trial: trial.config["trial"]["id"],
            trial_dirname_creator=lambda trial: trial.config["trial"]["id"],
        ),
        run_config=tune.RunConfig(
            name=f"run-{run}",
            storage_path=str(storage),
            failure_config=tune.FailureConfig(max_failures=budget.max_failures),
            callbacks=[progress],
            verbose=0,
        ),
    )
    try:
        results = tuner.fit()
    except tune.TuneError as error:  # Tune's own failure (not a trial's): one line
        lines = [line for line in str(error).splitlines() if line.strip()]
        raise RuntimeError(f"Ray Tune failed: {lines[-1] if lines else 'unknown error'}") from None
    from .trial import ended_before

    unfinished = [t.id for t in plan.trials if ended_before(trial_folder(out_dir, t.id)) is None]
    if unfinished and not any(r.error is not None for r in results):
        # Tune returns normally when Ctrl-C stopped it: the sweep is interrupted, not done
        _say(f"interrupted with {len(unfinished)} trials unfinished: continue with --resume", quiet)
        raise KeyboardInterrupt
    failed = [r for r in results if r.error is not None]
    if failed:
        first = str(failed[0].error).strip().splitlines()
        raise RuntimeError(
            f"{len(failed)} of {len(plan.trials)} trials failed after "
            f"{budget.max_failures} restarts; first: {first[-1] if first else 'unknown error'}"
        )
    return progress


def _freeze_all(plan, out_dir, data, quiet) -> list[dict[str, Any]]:
    """Every trial's kept points, frozen and measured: by the trial itself when it finished,
    else (stopped by the scheduler) by one Ray task per trial here."""
    import ray

    from .trial import freeze_trial

    task = ray.remote(num_cpus=1)(freeze_trial)
    rows: list[dict[str, Any]] = []
    pending = {}
    for t in plan.trials:
        folder = trial_folder(out_dir, t.id)
        done = folder / DONE_FILE
        if done.is_file():  # the trial froze its points itself
            rows += json.loads(done.read_text())["points"]
        else:  # stopped by the scheduler before it could freeze its points
            pending[task.remote(folder, data, trial_model_name(plan, t.id))] = t.id
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        trial_rows = ray.get(done[0])
        _say(f"{pending.pop(done[0])} frozen: {len(trial_rows)} kept points", quiet)
        rows += trial_rows
    return sorted(rows, key=lambda r: (r["trial"], r["epoch"]))


def _build_all(front, out_dir, build, data, quiet) -> None:
    """RTL, check 3 and synthesis of every front point, one Ray task per point."""
    import ray

    task = ray.remote(num_cpus=1)(build_point)
    by_name = {row["point"]: row for row in front}
    pending = {task.remote(out_dir, row, build, data): row["point"] for row in front}
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        name = pending.pop(done[0])
        figures = ray.get(done[0])
        by_name[name].update(figures)
        lut = "" if figures["lut"] is None else f", {figures['lut']} LUT"
        _say(
            f"{name}: RTL verified on {figures['vectors']} vectors, {figures['mismatches']} "
            f"mismatches{lut} ({len(front) - len(pending)}/{len(front)})",
            quiet,
        )
    for row in front:
        row["folder"] = f"{POINTS_DIR}/{row['point']}"


def _write_front(out_dir: Path, summary: dict[str, Any]) -> None:
    from ..train.checkpoint import atomic_write_text

    atomic_write_text(out_dir / FRONT_JSON, json.dumps(summary, indent=1) + "\n")
    columns = ["point", "trial", "epoch", "beta", "exact_ebops", "test_metric", "val_metric"]
    columns += ["lut", "ff", "fmax_mhz", "mismatches", "vectors", "lut_front", "model", "folder"]
    table = io.StringIO()
    writer = csv.DictWriter(table, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(summary["front"])
    atomic_write_text(out_dir / FRONT_CSV, table.getvalue())
