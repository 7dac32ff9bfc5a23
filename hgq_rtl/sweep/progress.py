"""Progress of a sweep: one line per event on stderr (a trial started, an epoch reported, a
trial finished, was stopped early, failed or was restarted), with the trials done, the best
validation metric so far and the size of the running front (over the reported validation
metric and surrogate EBOPs). A Ray Tune callback; it also records trials that Tune stopped (early,
or at the last epoch under ASHA) in their folders, so ``--resume`` does not train them on."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ray.tune import Callback

from ..train.pareto import ParetoKeeper, ParetoPoint
from .trial import DONE_FILE, STOPPED_FILE


class SweepProgress(Callback):
    """Prints sweep events (unless ``quiet``) and writes ``stopped.json`` for early stops.

    ``epochs`` maps trial ids to their configured epochs; ``skipped`` counts the trials that
    ended before this run of the sweep (``--resume``).
    """

    def __init__(
        self, epochs: dict[str, int], metric: str, higher_is_better: bool, quiet: bool
    ) -> None:
        self.epochs = epochs
        self.metric = metric
        self.higher_is_better = higher_is_better
        self.quiet = quiet
        self.ended: set[str] = set()
        self.best: tuple[float, str] | None = None
        self.keeper = ParetoKeeper(higher_is_better)
        self.times: dict[str, dict[str, float]] = {}
        self._offers = 0

    def say(self, text: str) -> None:
        if not self.quiet:
            print(f"sweep: {text}", file=sys.stderr, flush=True)

    def status(self) -> str:
        best = "none yet" if self.best is None else f"{self.best[0]:.4f} ({self.best[1]})"
        return (
            f"[{len(self.ended)}/{len(self.epochs)} trials done, best {self.metric} {best}, "
            f"front {len(self.keeper.points)} points]"
        )

    @staticmethod
    def _id(trial) -> str:
        return trial.config["trial"]["id"]

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        import time

        self.times.setdefault(self._id(trial), {})["start"] = time.time()
        self.say(f"{self._id(trial)} started {self.status()}")

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        trial_id = self._id(trial)
        value = float(result["val_metric"])
        better = self.best is None or (
            value > self.best[0] if self.higher_is_better else value < self.best[0]
        )
        if better:
            self.best = (value, trial_id)
        self._offers += 1
        self.keeper.offer(ParetoPoint(self._offers, 0.0, value, float(result["ebops"])))
        self.times.setdefault(trial_id, {})["train_seconds"] = float(result["train_seconds"])
        self.say(
            f"{trial_id} epoch {result['epoch']}/{self.epochs[trial_id]}: {self.metric} "
            f"{value:.4f}, {result['ebops']:.0f} EBOPs {self.status()}"
        )

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        import time

        trial_id = self._id(trial)
        self.ended.add(trial_id)
        self.times.setdefault(trial_id, {})["end"] = time.time()
        last = trial.last_result or {}
        epoch = int(last.get("epoch", 0))
        folder = Path(trial.config["trial"]["folder"])
        if not (folder / DONE_FILE).exists():
            # Tune stopped the function at its last report (ASHA stops every trial that
            # reaches max_t, and the weak ones earlier), before it wrote done.json
            from ..train.checkpoint import atomic_write_text

            record = {"trial": trial_id, "last": {k: last.get(k) for k in _RESULT_KEYS}}
            atomic_write_text(folder / STOPPED_FILE, json.dumps(record) + "\n")
        if epoch < self.epochs[trial_id]:
            self.say(f"{trial_id} stopped early after epoch {epoch} (ASHA) {self.status()}")
        else:
            self.say(f"{trial_id} finished {self.status()}")

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self.ended.add(self._id(trial))
        self.say(f"{self._id(trial)} failed for good (see its Ray log) {self.status()}")

    def on_trial_recover(self, iteration, trials, trial, **info) -> None:
        self.say(f"{self._id(trial)} lost its worker: restarting from its last checkpoint")


_RESULT_KEYS = ("epoch", "val_metric", "ebops", "kept", "train_seconds")
