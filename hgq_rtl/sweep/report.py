"""The sweep's report: ``sweep_report.md`` (figures in ``figures/``) and ``sweep_report.html``
(one file, figures embedded), built from the page model of :mod:`hgq_rtl.report.page`.

Figures: the global front on EBOPs (every trial's kept points behind it), the front on LUTs
(when synthesized), and each trial's validation curve over the epochs. The table lists every
front point with its trial's searched values and links to its model, design and trial folders.
"""

from __future__ import annotations

import html
import io
import json
from pathlib import Path
from typing import Any

from ..report.page import (
    CSS,
    FigureImage,
    Links,
    Para,
    Section,
    Table,
    fmt,
    sections_html,
    sections_markdown,
)
from ..train.checkpoint import atomic_write, atomic_write_text
from .config import SweepPlan
from .trial import DONE_FILE, TRAINING_DIR, trial_folder

REPORT_HTML = "sweep_report.html"
REPORT_MD = "sweep_report.md"
FIGURES_DIR = "figures"


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
    return buffer.getvalue()


def _front_figure(summary: dict[str, Any], axis: str) -> bytes:
    from ..train.plots import new_figure

    metric = summary["metric"]
    figure = new_figure(7, 4.2)
    ax = figure.add_subplot()
    if axis == "exact_ebops":
        everything = summary["all_points"]
        ax.scatter(
            [r["exact_ebops"] for r in everything],
            [r["test_metric"] for r in everything],
            s=14,
            color="#9aa5b1",
            label="kept points of all trials",
        )
    front = [r for r in summary["front"] if r.get(axis) is not None]
    front.sort(key=lambda r: r[axis])
    xs = [r[axis] for r in front]
    ys = [r["test_metric"] for r in front]
    ax.step(xs, ys, where="post", color="#d62728", lw=1, alpha=0.6)
    ax.scatter(xs, ys, color="#d62728", s=30, zorder=3, label="global front")
    for row in front:
        ax.annotate(
            row["point"],
            (row[axis], row["test_metric"]),
            fontsize=7,
            xytext=(3, 3),
            textcoords="offset points",
        )
    if xs and min(xs) > 0:
        ax.set_xscale("log")
    ax.set_xlabel("exact EBOPs" if axis == "exact_ebops" else "LUTs (Yosys synth_xilinx)")
    ax.set_ylabel(f"test {metric} (integer model)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return _png(figure)


def _curves_figure(out_dir: Path, plan: SweepPlan, metric: str) -> bytes:
    from ..train.checkpoint import load
    from ..train.plots import new_figure

    figure = new_figure(7, 4.2)
    ax = figure.add_subplot()
    for trial in plan.trials:
        folder = trial_folder(out_dir, trial.id)
        done = folder / DONE_FILE
        if done.is_file():
            history = json.loads(done.read_text())["history"]
        else:
            saved = folder / TRAINING_DIR / "checkpoint.pt"
            history = load(saved)["history"] if saved.is_file() else []
        if history:
            ax.plot(
                [row["epoch"] for row in history],
                [row[f"val_{metric}"] for row in history],
                marker=".",
                lw=1,
                label=trial.id,
            )
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"validation {metric}")
    ax.grid(True, alpha=0.3)
    if len(plan.trials) <= 12:
        ax.legend(fontsize=7, ncol=2)
    return _png(figure)


def _params(plan: SweepPlan) -> dict[str, str]:
    def text(value: Any) -> str:
        if hasattr(value, "start"):  # a BetaSchedule
            ramp = f"→{value.end:g}" if value.end is not None else ""
            hold = f" after {value.hold_epochs}" if value.hold_epochs else ""
            steps = "".join(f", {e}:{v:g}" for e, v in value.steps)
            return f"{value.start:g}{ramp}{hold}{steps}"
        return f"{value:.3g}" if isinstance(value, float) else str(value)

    return {
        t.id: ", ".join(f"{key}={text(value)}" for key, value in t.params.items()) or "-"
        for t in plan.trials
    }


def sweep_sections(out_dir: Path, summary: dict[str, Any], plan: SweepPlan) -> list[Section]:
    metric = summary["metric"]
    params = _params(plan)
    built = any(r.get("vectors") is not None for r in summary["front"])
    synthesized = any(r.get("lut") is not None for r in summary["front"])
    overview = Section(
        "summary",
        "Summary",
        [
            Table(
                ["trials", "kept points", "front points", "sweep time", "total time"],
                [
                    [
                        summary["trials"],
                        summary["kept_points"],
                        len(summary["front"]),
                        fmt(summary["sweep_seconds"], 1, "s"),
                        fmt(summary["total_seconds"], 1, "s"),
                    ]
                ],
            )
        ],
    )
    rows = []
    for r in summary["front"]:
        folder = r.get("folder")
        rows.append(
            [
                r["point"],
                r["trial"],
                params[r["trial"]],
                r["epoch"],
                r["exact_ebops"],
                round(r["test_metric"], 4),
                r.get("lut") if synthesized else "not run",
                r.get("ff") if synthesized else "not run",
                r.get("mismatches") if built else "not run",
                Links((r["model"], f"{folder}/rtl") if folder else (r["model"],)),
                Links((f"trials/{r['trial']}",)),
            ]
        )
    table = Section(
        "front",
        "Global front",
        [
            Para(
                f"Every trial's kept epochs were frozen; a point is on the global front when no "
                f"other point has both fewer exact EBOPs and a test {metric} as good. Folders "
                "are relative to this report."
            ),
            Table(
                [
                    "point",
                    "trial",
                    "searched values",
                    "epoch",
                    "EBOPs",
                    f"test {metric}",
                    "LUT",
                    "FF",
                    "mismatches",
                    "model · design",
                    "trial folder",
                ],
                rows,
            ),
            FigureImage(
                "front_ebops",
                f"test {metric} against exact EBOPs",
                _front_figure(summary, "exact_ebops"),
            ),
        ],
    )
    if synthesized:
        table.blocks.append(
            FigureImage("front_luts", f"test {metric} against LUTs", _front_figure(summary, "lut"))
        )
    else:
        table.blocks.append(Para("Synthesis was not run: no LUT axis.", note=True))
    curves = Section(
        "trials",
        "Trials",
        [
            FigureImage(
                "trial_curves",
                f"validation {metric} per epoch, each trial",
                _curves_figure(out_dir, plan, metric),
            )
        ],
    )
    return [overview, table, curves]


def _html(title: str, sections: list[Section]) -> str:
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body><main>",
        f"<header><h1>{html.escape(title)}</h1></header>",
        *sections_html(sections),
        "</main></body></html>",
    ]
    return "\n".join(parts) + "\n"


def _markdown(title: str, sections: list[Section]) -> str:
    lines = [f"# {title}", "", *sections_markdown(sections)]
    return "\n".join(lines).rstrip("\n") + "\n"


def write_sweep_report(out_dir: Path, summary: dict[str, Any], plan: SweepPlan) -> Path:
    """Write ``sweep_report.html``, ``sweep_report.md`` and ``figures/*.png`` into ``out_dir``
    (each file atomically); returns the HTML's path."""
    out_dir = Path(out_dir)
    sections = sweep_sections(out_dir, summary, plan)
    title = f"hgq-rtl sweep on {summary['dataset']}: {summary['trials']} trials"
    for section in sections:
        for block in section.blocks:
            if isinstance(block, FigureImage):
                png = block.png
                atomic_write(
                    out_dir / FIGURES_DIR / f"{block.name}.png", lambda f, png=png: f.write(png)
                )
    atomic_write_text(out_dir / REPORT_MD, _markdown(title, sections))
    return atomic_write_text(out_dir / REPORT_HTML, _html(title, sections))
