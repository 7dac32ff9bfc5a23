"""The Pareto front of one training run: which epochs to keep, and their frozen models.

Every epoch offers its point (validation metric, EBOPs) to a :class:`ParetoKeeper`. A point is
kept iff no kept point *covers* it — is at least as good in both the metric and EBOPs — and
the points the new one covers are removed. Ties therefore keep the earlier point: a new point
equal to a kept one adds nothing to the front and is dropped, and a point as good in one and
better in the other replaces the kept one.

After training, :func:`evaluate_front` freezes every kept model (calibrated on the training
data) for its exact EBOPs and integer-reference metric, and :func:`write_front` saves the front
as a table (``front.csv``, ``front.json``), a plot (``front.png``) and one IR folder per point.
"""

from __future__ import annotations

import csv
import io
import json
import math
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..ir.model import IRModel
from .metrics import METRICS, reference_metrics

FRONT_DIR = "front"
FRONT_CSV = "front.csv"
FRONT_JSON = "front.json"
FRONT_PNG = "front.png"


@dataclass(frozen=True)
class ParetoPoint:
    """One epoch's offer: its β, validation metric and (surrogate) EBOPs."""

    epoch: int
    beta: float
    metric: float
    ebops: float


class ParetoKeeper:
    """The non-dominated points seen so far, the metric maximized or minimized, EBOPs minimized.

    Parameters
    ----------
    higher_is_better
        ``True`` for a metric like accuracy, ``False`` for one like a resolution.
    points
        Points kept so far (from :meth:`state_dict` of an earlier keeper).
    """

    def __init__(self, higher_is_better: bool = True, points: tuple[ParetoPoint, ...] = ()):
        if not isinstance(higher_is_better, bool):
            raise TypeError(f"higher_is_better must be a bool, not {higher_is_better!r}")
        self.higher_is_better = higher_is_better
        self._points: list[ParetoPoint] = []
        for point in points:
            self.offer(point)

    @property
    def points(self) -> tuple[ParetoPoint, ...]:
        """The kept points, cheapest first."""
        return tuple(sorted(self._points, key=lambda p: (p.ebops, p.epoch)))

    def covers(self, a: ParetoPoint, b: ParetoPoint) -> bool:
        """Whether ``a`` is at least as good as ``b`` in both the metric and EBOPs."""
        metric_ok = a.metric >= b.metric if self.higher_is_better else a.metric <= b.metric
        return metric_ok and a.ebops <= b.ebops

    def offer(self, point: ParetoPoint) -> tuple[bool, list[ParetoPoint]]:
        """Offer ``point``; returns whether it is kept and the kept points it removed.

        Raises ``ValueError`` for a NaN or infinite metric or EBOPs.
        """
        if not (math.isfinite(point.metric) and math.isfinite(point.ebops)):
            raise ValueError(
                f"epoch {point.epoch}: metric and EBOPs must be finite, not "
                f"{point.metric} and {point.ebops}"
            )
        if any(self.covers(kept, point) for kept in self._points):
            return False, []
        removed = [kept for kept in self._points if self.covers(point, kept)]
        self._points = [kept for kept in self._points if kept not in removed] + [point]
        return True, removed

    def state_dict(self) -> dict[str, Any]:
        """Plain values (for a checkpoint); :meth:`from_state_dict` rebuilds the keeper."""
        return {
            "higher_is_better": self.higher_is_better,
            "points": [asdict(point) for point in self.points],
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> ParetoKeeper:
        points = tuple(
            ParetoPoint(int(p["epoch"]), float(p["beta"]), float(p["metric"]), float(p["ebops"]))
            for p in state["points"]
        )
        return cls(bool(state["higher_is_better"]), points)


class FrontStore:
    """The model states of the kept points: ``folder/epoch_0012.pt`` files, or memory.

    Files are written atomically (see :mod:`hgq_rtl.train.checkpoint`); the trainer writes a new
    point's file before the checkpoint that names it and deletes removed points' files after,
    so every checkpoint's points have their files.
    """

    def __init__(self, folder: str | Path | None = None) -> None:
        self.folder = None if folder is None else Path(folder)
        self._memory: dict[int, dict] = {}

    def path(self, epoch: int) -> Path:
        if self.folder is None:
            raise ValueError("this front store keeps its states in memory")
        return self.folder / f"epoch_{epoch:04d}.pt"

    def put(self, epoch: int, state: dict) -> None:
        if self.folder is None:
            self._memory[epoch] = state
            return
        from . import checkpoint

        checkpoint.save({"format": "model-state", "epoch": epoch, "model": state}, self.path(epoch))

    def get(self, epoch: int) -> dict:
        if self.folder is None:
            return self._memory[epoch]
        import torch

        path = self.path(epoch)
        if not path.is_file():
            raise ValueError(f"the model of kept epoch {epoch} is missing: {path}")
        return torch.load(path, map_location="cpu", weights_only=True)["model"]

    def drop(self, epoch: int) -> None:
        if self.folder is None:
            self._memory.pop(epoch, None)
        else:
            self.path(epoch).unlink(missing_ok=True)

    def prune(self, keep: set[int]) -> None:
        """Delete the states of epochs not in ``keep`` (left by a run killed mid-epoch)."""
        if self.folder is None:
            self._memory = {e: s for e, s in self._memory.items() if e in keep}
            return
        from . import checkpoint

        checkpoint.remove_temporaries(self.folder)
        for path in self.folder.glob("epoch_*.pt"):
            if _epoch_of(path.name.removesuffix(".pt")) not in keep:
                path.unlink()


def _epoch_of(name: str) -> int | None:
    digits = name.removeprefix("epoch_")
    return int(digits) if name.startswith("epoch_") and digits.isdigit() else None


@dataclass(frozen=True)
class FrontRow:
    """One kept point after freezing: training figures and exact ones side by side."""

    epoch: int
    beta: float
    val_metric: float
    surrogate_ebops: float
    exact_ebops: int
    reference_metric: float

    def folder_name(self) -> str:
        return f"epoch_{self.epoch:04d}"


def evaluate_front(
    points: tuple[ParetoPoint, ...],
    state_of: Callable[[int], dict],
    make_model: Callable[[], Any],
    x_calibration: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    task: str,
    *,
    name: str = "model",
    metadata: dict | None = None,
    quiet: bool = True,
    frozen: dict[int, IRModel] | None = None,
) -> list[tuple[FrontRow, IRModel]]:
    """Freeze every kept point and measure it exactly.

    ``make_model()`` builds an untrained network of the run's architecture, ``state_of(epoch)``
    gives a kept point's state dict. Each model is calibrated on ``x_calibration`` (the
    training data) and frozen; its exact EBOPs come from the IR and its metric from the integer
    reference on ``(x_val, y_val)``. ``frozen`` maps epochs to IRs already frozen from the same
    state on the same data (the final model, usually on the front), which are reused instead of
    calibrating again. A progress bar on stderr unless ``quiet``.
    """
    import sys

    from tqdm import tqdm

    from ..ir import reference
    from .freeze import freeze

    metric_name = METRICS[task][0]
    rows = []
    for point in tqdm(points, desc="front", disable=quiet, file=sys.stderr, unit="point"):
        point_metadata = {**(metadata or {}), "epoch": point.epoch, "beta": point.beta}
        if frozen and point.epoch in frozen:
            done = frozen[point.epoch]
            ir = replace(done, name=name, metadata={**done.metadata, **point_metadata})
        else:
            model = make_model()
            model.load_state_dict(state_of(point.epoch))
            ir = freeze(model, x_calibration, name=name, metadata=point_metadata)
        measured = reference_metrics(ir, x_val, y_val, task)[metric_name]
        row = FrontRow(
            point.epoch, point.beta, point.metric, point.ebops, reference.ebops(ir), measured
        )
        rows.append((row, ir))
    return rows


def front_records(rows: list[FrontRow], metric_name: str) -> list[dict[str, Any]]:
    """The front as table rows: epoch, beta, val_<metric>, surrogate_ebops, exact_ebops,
    reference_<metric>, model (the point's IR folder, relative to the table)."""
    return [
        {
            "epoch": row.epoch,
            "beta": row.beta,
            f"val_{metric_name}": row.val_metric,
            "surrogate_ebops": row.surrogate_ebops,
            "exact_ebops": row.exact_ebops,
            f"reference_{metric_name}": row.reference_metric,
            "model": f"{FRONT_DIR}/{row.folder_name()}",
        }
        for row in rows
    ]


def write_front(
    folder: str | Path,
    front: list[tuple[FrontRow, IRModel]],
    metric_name: str,
    higher_is_better: bool,
) -> dict[str, Path]:
    """Write ``folder/front/epoch_NNNN/`` (each point's IR), ``front.csv``, ``front.json`` and
    ``front.png``; IR folders of points no longer on the front are removed."""
    from ..ir import io as ir_io
    from . import checkpoint

    folder = Path(folder)
    irs = folder / FRONT_DIR
    names = {row.folder_name() for row, _ in front}
    for row, ir in front:
        ir_io.save(ir, irs / row.folder_name())
    if irs.is_dir():
        for stale in irs.iterdir():
            if stale.is_dir() and _epoch_of(stale.name) is not None and stale.name not in names:
                shutil.rmtree(stale)
    rows = sorted((row for row, _ in front), key=lambda r: (r.exact_ebops, r.epoch))
    records = front_records(rows, metric_name)
    table = io.StringIO()
    writer = csv.DictWriter(table, fieldnames=list(records[0]) if records else ["epoch"])
    writer.writeheader()
    writer.writerows(records)
    document = {"metric": metric_name, "higher_is_better": higher_is_better, "points": records}
    paths = {
        "csv": checkpoint.atomic_write_text(folder / FRONT_CSV, table.getvalue()),
        "json": checkpoint.atomic_write_text(
            folder / FRONT_JSON, json.dumps(document, indent=2) + "\n"
        ),
    }
    paths["png"] = plot_front(rows, metric_name, folder / FRONT_PNG)
    return paths


def plot_front(rows: list[FrontRow], metric_name: str, path: str | Path) -> Path:
    """The front: metric against EBOPs (log x), exact figures of the frozen models as a step
    line, training figures (validation metric, surrogate EBOPs) as open markers."""
    from . import plots

    figure = plots.new_figure(7, 4.2)
    ax = figure.add_subplot()
    if rows:
        exact = np.array([r.exact_ebops for r in rows], np.float64)
        measured = np.array([r.reference_metric for r in rows])
        order = np.argsort(exact, kind="stable")
        ax.step(exact[order], measured[order], where="post", color="#d62728", lw=1, alpha=0.6)
        ax.scatter(exact, measured, color="#d62728", s=30, zorder=3, label="frozen (exact)")
        ax.scatter(
            [r.surrogate_ebops for r in rows],
            [r.val_metric for r in rows],
            facecolors="none",
            edgecolors="#3b6ea5",
            s=30,
            label="training (surrogate EBOPs, validation)",
        )
        for row in rows:
            ax.annotate(
                str(row.epoch),
                (max(row.exact_ebops, 1), row.reference_metric),
                fontsize=7,
                xytext=(3, 3),
                textcoords="offset points",
            )
        if min(exact.min(), min(r.surrogate_ebops for r in rows)) > 0:
            ax.set_xscale("log")
        else:
            ax.set_xscale("symlog", linthresh=1)
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no kept point", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("EBOPs")
    ax.set_ylabel(metric_name)
    ax.set_title(f"Pareto front: {len(rows)} kept epoch{'s' if len(rows) != 1 else ''}")
    ax.grid(True, alpha=0.3)
    return plots.save_png(figure, path)
