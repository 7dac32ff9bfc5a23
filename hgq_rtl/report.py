"""One report of a run folder: ``report.html`` (self-contained) and ``report.md`` (+ ``figures/``).

:func:`write_report` reads what ``hgq-rtl run`` leaves in a folder — ``report.json``, the frozen
model (``model/``), ``synth/synth_report.json`` — and writes

* ``report.md``: Markdown tables, with the figures saved as ``figures/*.png`` beside it;
* ``report.html``: the same content in one file that opens offline: inline CSS, every figure a
  base64 PNG ``data:`` URI, no script and no external request.

Sections: summary, model (layers, shapes, parameters), accuracy against EBOPs over training (the
Pareto front), exact EBOPs per layer, bit widths (a heat map of every weight's bit span per
layer, every output element's width, the input widths), resources per layer, latency and Fmax,
verification (check 1 and check 3) and time per stage. Anything a run skipped reads "not run".

Figures are drawn with matplotlib's Agg canvas (no display, no pyplot state); the whole report
of the digits run takes about a second.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REPORT_JSON = "report.json"
REPORT_HTML = "report.html"
REPORT_MD = "report.md"
FIGURES_DIR = "figures"
NOT_RUN = "not run"
NOT_MEASURED = "not measured"

# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------


def pareto_mask(cost: Any, score: Any) -> np.ndarray:
    """Which points are non-dominated when ``cost`` is minimized and ``score`` maximized.

    Parameters
    ----------
    cost, score : array_like
        One value per point, 1-D and of one length.

    Returns
    -------
    numpy.ndarray of bool
        Point ``k`` is kept iff no other point has ``score >= score[k]`` and
        ``cost <= cost[k]`` with at least one of the two strict (equal points keep each other).

    Raises
    ------
    ValueError
        If the arrays are not 1-D of one length.
    """
    cost = np.asarray(cost, np.float64)
    score = np.asarray(score, np.float64)
    if cost.shape != score.shape or cost.ndim != 1:
        raise ValueError(
            f"cost and score must be 1-D of one length, not {cost.shape}, {score.shape}"
        )
    no_worse = (score[None, :] >= score[:, None]) & (cost[None, :] <= cost[:, None])
    better = (score[None, :] > score[:, None]) | (cost[None, :] < cost[:, None])
    return ~(no_worse & better).any(axis=1)


@dataclass
class LayerBits:
    """Bit-level view of one layer of the frozen model."""

    name: str
    weight_bits: np.ndarray  # (out, in) bit span of every integer weight; 0 = zero weight
    input_width: np.ndarray  # (in,) width of every input element
    output_width: np.ndarray  # (out,)
    bias_nonzero: int
    ebops: int

    @property
    def live_products(self) -> int:
        return int(((self.weight_bits > 0) & (self.input_width[None, :] > 0)).sum())


@dataclass
class RunData:
    """Everything a report is drawn from."""

    run_dir: Path
    report: dict[str, Any]
    model_name: str | None = None
    input_width: np.ndarray | None = None
    layers: list[LayerBits] = field(default_factory=list)
    model_note: str | None = None  # why the bit-level sections are missing
    per_layer_resources: dict[str, dict[str, Any]] | None = None
    synth_report: dict[str, Any] | None = None
    manifest: dict[str, Any] | None = None


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(
            f"{what} {path} is not valid JSON: {error.msg} (line {error.lineno})"
        ) from None


def load_run(run_dir: str | Path, report: dict[str, Any] | None = None) -> RunData:
    """Read a run folder: ``report.json``, ``model/``, ``rtl/manifest.json``, ``synth/``.

    Parameters
    ----------
    run_dir : str or Path
        A folder written by ``hgq-rtl run``.
    report : dict, optional
        The ``report.json`` document; read from ``run_dir`` when not given.

    Returns
    -------
    RunData
        Everything the report is drawn from; missing parts (no model, no synthesis) are None
        or empty and the report says "not run".

    Raises
    ------
    FileNotFoundError
        If the folder or its ``report.json`` is missing.
    ValueError
        If a file is not what ``hgq-rtl run`` writes, or the model folder does not load.
    """
    from .ir import io as ir_io
    from .ir import reference
    from .ir.fixed import bit_span
    from .ir.model import DenseLayer

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run folder {run_dir} does not exist")
    if report is None:
        path = run_dir / REPORT_JSON
        if not path.is_file():
            raise FileNotFoundError(f"{run_dir} has no {REPORT_JSON}: is it an hgq-rtl run folder?")
        report = _read_json(path, "report")
    if not isinstance(report, dict) or not {"dataset", "layers"} <= report.keys():
        raise ValueError(f"{run_dir / REPORT_JSON} is not an hgq-rtl run report")
    data = RunData(run_dir, report)

    for folder in (run_dir / "model", run_dir / "rtl" / "model"):
        if folder.is_dir():
            ir = ir_io.load(folder)
            data.model_name = ir.name
            data.input_width = np.asarray(ir.input.width)
            for layer, fmt in zip(ir.layers, ir.input_formats(), strict=True):
                if not isinstance(layer, DenseLayer):  # only dense layers have weights to show
                    continue
                data.layers.append(
                    LayerBits(
                        name=layer.name,
                        weight_bits=bit_span(layer.weight),
                        input_width=np.asarray(fmt.width),
                        output_width=np.asarray(layer.output.width),
                        bias_nonzero=int((layer.bias != 0).sum()),
                        ebops=reference.layer_ebops(layer, fmt),
                    )
                )
            break
    else:
        data.model_note = f"{run_dir} has no model/ folder: the bit widths are not shown"

    manifest = run_dir / "rtl" / "manifest.json"
    if manifest.is_file():
        data.manifest = _read_json(manifest, "manifest")
    synth_path = run_dir / "synth" / "synth_report.json"
    if synth_path.is_file():
        data.synth_report = _read_json(synth_path, "synthesis report")
    for source in (data.synth_report or {}, report.get("synthesis") or {}):
        per_layer = source.get("per_layer") if isinstance(source, dict) else None
        if isinstance(per_layer, dict) and per_layer:
            data.per_layer_resources = per_layer
            break
    return data


# --------------------------------------------------------------------------------------------
# Document model: sections of paragraphs, tables and figures, rendered to HTML and Markdown
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Badge:
    """A verdict in a table cell: PASS, FAIL or not run."""

    text: str
    kind: str  # "pass", "fail" or "none"


@dataclass
class FigureImage:
    name: str  # file stem under figures/
    alt: str
    png: bytes


@dataclass
class Table:
    headers: list[str]
    rows: list[list[Any]]


@dataclass
class Para:
    text: str
    note: bool = False


@dataclass
class Section:
    id: str
    title: str
    blocks: list[Any] = field(default_factory=list)


def _fmt(value: Any, digits: int = 2, unit: str = "") -> str:
    if value is None:
        return NOT_RUN
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        text = f"{value:.{digits}f}"
    else:
        text = str(value)
    return f"{text} {unit}".rstrip()


def _verdict(passed: bool | None) -> Badge:
    if passed is None:
        return Badge(NOT_RUN, "none")
    return Badge("PASS", "pass") if passed else Badge("FAIL", "fail")


# --------------------------------------------------------------------------------------------
# Figures (matplotlib, Agg canvas)
# --------------------------------------------------------------------------------------------

_DPI = 100
_FRONT = "#d62728"
_CLOUD = "#9aa7b4"
_BAR = "#3b6ea5"


def _new_figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=_DPI, metadata={"Software": None})
    return buffer.getvalue()


def _history_points(report: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    epochs, ebops, accuracy = [], [], []
    for k, row in enumerate(report.get("history") or []):
        if not isinstance(row, dict):
            continue
        e, a = row.get("ebops"), row.get("val_accuracy")
        if isinstance(e, int | float) and isinstance(a, int | float):
            if math.isfinite(e) and math.isfinite(a):
                epochs.append(int(row.get("epoch", k)))
                ebops.append(float(e))
                accuracy.append(float(a))
    return np.array(epochs, np.int64), np.array(ebops), np.array(accuracy)


def figure_pareto(report: dict) -> bytes | None:
    epochs, ebops, accuracy = _history_points(report)
    if len(epochs) < 2:
        return None
    front = pareto_mask(ebops, accuracy)
    figure = _new_figure(8, 4.2)
    ax = figure.add_subplot()
    ax.scatter(
        ebops[~front],
        accuracy[~front],
        c=epochs[~front],
        cmap="Greys",
        vmin=-len(epochs) // 2,
        vmax=epochs.max(),
        s=18,
        label="epoch (darker = later)",
        edgecolors="none",
    )
    order = np.argsort(ebops[front])
    ax.step(
        ebops[front][order], accuracy[front][order], where="post", color=_FRONT, lw=1, alpha=0.6
    )
    ax.scatter(
        ebops[front],
        accuracy[front],
        color=_FRONT,
        s=34,
        zorder=3,
        label=f"Pareto front ({int(front.sum())} of {len(epochs)} epochs)",
    )
    final = report.get("ebops"), report.get("test_accuracy")
    if all(isinstance(v, int | float) for v in final):
        ax.scatter(
            [final[0]],
            [final[1]],
            marker="*",
            s=160,
            color="#2ca02c",
            zorder=4,
            edgecolors="black",
            linewidths=0.5,
            label="frozen model (exact EBOPs, test accuracy)",
        )
    if ebops.max() > 10 * max(ebops.min(), 1):
        ax.set_xscale("log")
    ax.set_xlabel("EBOPs (training estimate)")
    ax.set_ylabel("validation accuracy")
    ax.set_title("Accuracy against EBOPs, one point per epoch")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return _png(figure)


def figure_ebops(names: list[str], ebops: list[int]) -> bytes:
    figure = _new_figure(8, 0.5 + 0.45 * len(names))
    ax = figure.add_subplot()
    y = np.arange(len(names))
    ax.barh(y, ebops, color=_BAR)
    ax.set_yticks(y, names)
    ax.invert_yaxis()
    total = max(sum(ebops), 1)
    for k, value in enumerate(ebops):
        ax.text(value, k, f" {value} ({100 * value / total:.0f}%)", va="center", fontsize=9)
    ax.set_xlim(0, max(max(ebops, default=0), 1) * 1.25)
    ax.set_xlabel("exact EBOPs")
    ax.set_title("EBOPs per layer")
    return _png(figure)


def _width_bars(ax, widths: np.ndarray, what: str) -> None:
    x = np.arange(len(widths))
    ax.bar(x, widths, width=0.85, color=_BAR)
    pruned = np.flatnonzero(widths == 0)
    if pruned.size:  # a 0-bit element is the constant 0: mark it, it has no bar
        ax.plot(pruned, np.zeros(pruned.size), "x", color=_FRONT, ms=5, clip_on=False)
    ax.set_xlim(-0.6, len(widths) - 0.4)
    ax.set_ylim(0, max(int(widths.max(initial=0)), 1) + 1)
    ax.set_ylabel("bits")
    ax.set_xlabel(f"{what} element")
    ax.yaxis.get_major_locator().set_params(integer=True)


def figure_input_widths(widths: np.ndarray) -> bytes:
    figure = _new_figure(8, 2.2)
    ax = figure.add_subplot()
    _width_bars(ax, widths, "input")
    zero = int((widths == 0).sum())
    ax.set_title(
        f"Input widths: {int(widths.sum())} bits over {len(widths)} elements"
        + (f" (× marks the {zero} elements of 0 bits)" if zero else "")
    )
    return _png(figure)


def figure_layer_bits(layer: LayerBits) -> bytes:
    from matplotlib import colormaps
    from matplotlib.ticker import MaxNLocator

    out_features, in_features = layer.weight_bits.shape
    heat_height = float(np.clip(7.2 * out_features / max(in_features, 1), 1.6, 6.0))
    figure = _new_figure(8, heat_height + 2.6)
    grid = figure.add_gridspec(2, 1, height_ratios=[heat_height, 1.6])
    ax = figure.add_subplot(grid[0])
    top = max(int(layer.weight_bits.max(initial=0)), 1)
    cmap = colormaps["viridis"].resampled(top).with_extremes(bad="#e3e3e3")
    bits = np.ma.masked_equal(layer.weight_bits, 0)
    image = ax.imshow(
        bits, cmap=cmap, vmin=0.5, vmax=top + 0.5, aspect="auto", interpolation="nearest"
    )
    colorbar = figure.colorbar(image, ax=ax, pad=0.01)
    colorbar.set_label("weight bits (grey: 0)")
    colorbar.locator = MaxNLocator(integer=True, nbins=8)
    colorbar.update_ticks()
    ax.set_xlabel("input j")
    ax.set_ylabel("output i")
    zero = int((layer.weight_bits == 0).sum())
    ax.set_title(
        f"{layer.name}: bits of every weight ({out_features}×{in_features}, "
        f"{zero} zero = {100 * zero / max(layer.weight_bits.size, 1):.0f}%)"
    )
    strip = figure.add_subplot(grid[1])
    _width_bars(strip, layer.output_width, "output")
    dead = int((layer.output_width == 0).sum())
    strip.set_title(
        f"{layer.name}: output widths ({int(layer.output_width.sum())} bits"
        + (f"; × marks the {dead} elements of 0 bits)" if dead else ")")
    )
    return _png(figure)


def figure_resources(per_layer: dict[str, dict[str, Any]], keys: list[str]) -> bytes:
    names = list(per_layer)
    figure = _new_figure(8, 3.2)
    ax = figure.add_subplot()
    x = np.arange(len(names))
    width = 0.8 / max(len(keys), 1)
    for k, key in enumerate(keys):
        values = [float(per_layer[n].get(key) or 0) for n in names]
        ax.bar(x + (k - (len(keys) - 1) / 2) * width, values, width, label=key.upper())
    ax.set_xticks(x, names)
    ax.set_ylabel("cells")
    ax.set_title("Resources per layer")
    ax.legend(fontsize=8)
    ax.grid(True, axis="y", alpha=0.3)
    return _png(figure)


def figure_stages(stages: dict[str, float]) -> bytes:
    names = list(stages)
    figure = _new_figure(8, 0.6 + 0.4 * len(names))
    ax = figure.add_subplot()
    y = np.arange(len(names))
    seconds = [float(stages[n]) for n in names]
    ax.barh(y, seconds, color=_BAR)
    ax.set_yticks(y, names)
    ax.invert_yaxis()
    for k, value in enumerate(seconds):
        ax.text(value, k, f" {value:.1f} s", va="center", fontsize=9)
    ax.set_xlim(0, max(max(seconds, default=0), 0.1) * 1.2)
    ax.set_xlabel("seconds")
    ax.set_title("Time per stage")
    return _png(figure)


# --------------------------------------------------------------------------------------------
# Sections
# --------------------------------------------------------------------------------------------


@dataclass
class _Context:
    """What several sections share, computed once."""

    data: RunData
    figures: bool

    def __post_init__(self) -> None:
        r = self.report = self.data.report
        # a synthesis run after the flow (hgq-rtl synth RUN/rtl --out RUN/synth) counts too
        self.synthesis = r.get("synthesis") or self.data.synth_report or {}
        self.verification = r.get("verification") or {}
        self.check1 = r.get("check1") or {}
        self.layer_bits = {layer.name: layer for layer in self.data.layers}
        self.latency = r.get("latency_cycles")
        self.fmax = self.synthesis.get("fmax_mhz")
        self.latency_ns = (
            1000 * self.latency / self.fmax if self.latency is not None and self.fmax else None
        )
        ran = r.get("vectors") is not None
        self.check3 = _verdict(self.verification.get("passed") if ran else None)
        mismatches = self.check1.get("mismatches")
        self.check1_verdict = _verdict(None if mismatches is None else mismatches == 0)

    def figure(self, name: str, alt: str, make) -> list[FigureImage]:
        """``[figure]`` (drawn by ``make()``), or ``[]`` when figures are off or there is none."""
        png = make() if self.figures else None
        return [FigureImage(name, alt, png)] if png is not None else []

    def fmax_text(self) -> str:
        if not self.synthesis:
            return NOT_RUN
        return _fmt(self.fmax, 1, "MHz") if self.fmax is not None else NOT_MEASURED

    def latency_ns_text(self) -> str:
        if self.latency_ns is None:
            return NOT_RUN if not self.synthesis else NOT_MEASURED
        return _fmt(self.latency_ns, 1, "ns")


def _section_summary(c: _Context) -> Section:
    r = c.report
    resources = (
        " / ".join(_fmt(c.synthesis.get(k)) for k in ("lut", "ff", "carry", "dsp"))
        if c.synthesis
        else NOT_RUN
    )
    rows = [
        ["data set", r["dataset"]],
        ["model", c.data.model_name or "not found"],
        ["test accuracy (integer model)", _fmt(r.get("test_accuracy"), 4)],
        ["EBOPs (exact)", _fmt(r.get("ebops"))],
        ["parameters", _fmt(r.get("params"))],
        ["latency", f"{_fmt(c.latency)} cycles (II = 1)"],
        ["LUT / FF / CARRY / DSP (Yosys xcup)", resources],
        ["Fmax (nextpnr-ecp5)", c.fmax_text()],
        ["latency at Fmax", c.latency_ns_text()],
        ["bit-exact sign-off (check 3)", c.check3],
        ["vectors / mismatches", f"{_fmt(r.get('vectors'))} / {_fmt(r.get('mismatches'))}"],
        ["check 1 (torch float64 == reference)", c.check1_verdict],
    ]
    return Section("summary", "Summary", [Table(["metric", "value"], rows)])


def _section_model(c: _Context) -> Section:
    r = c.report
    rows = []
    weights = nonzero = params = 0
    for entry in r["layers"]:
        n_in, n_out = int(entry["in_features"]), int(entry["out_features"])
        bits = c.layer_bits.get(entry["name"])
        live = int((bits.weight_bits > 0).sum()) if bits is not None else None
        weights += n_in * n_out
        params += n_in * n_out + n_out
        nonzero += live or 0
        rows.append(
            [
                entry["name"],
                f"{n_in} → {n_out}",
                entry.get("activation", ""),
                n_in * n_out,
                live if live is not None else "?",
                n_out,
                n_in * n_out + n_out,
                _fmt(entry.get("output_bits")),
            ]
        )
    rows.append(["total", "", "", weights, nonzero if c.data.layers else "?", "", params, ""])
    first = r["layers"][0]["in_features"] if r["layers"] else "?"
    headers = [
        "layer",
        "shape (in → out)",
        "activation",
        "weights",
        "non-zero weights",
        "biases",
        "parameters",
        "output bits",
    ]
    text = (
        f"Input: {first} elements, {_fmt(r.get('input_bits'))} bits. Dense layers in order; "
        "only non-zero weights cost logic (a zero weight generates nothing)."
    )
    return Section("model", "Model", [Para(text), Table(headers, rows)])


def _section_pareto(c: _Context) -> Section:
    section = Section("pareto", "Accuracy against EBOPs (Pareto front)")
    epochs, ebops, accuracy = _history_points(c.report)
    if len(epochs) < 2:
        plural = "s" if len(epochs) != 1 else ""
        section.blocks.append(
            Para(f"Training kept {len(epochs)} point{plural}: no front to draw.", note=True)
        )
        return section
    front = pareto_mask(ebops, accuracy)
    section.blocks.append(
        Para(
            f"Training recorded {len(epochs)} epochs; {int(front.sum())} are non-dominated (no "
            "other epoch has at least their validation accuracy at no more EBOPs). Training EBOPs "
            "are the differentiable estimate; the star is the frozen model's exact count and its "
            "integer test accuracy."
        )
    )
    section.blocks += c.figure(
        "pareto", "validation accuracy against EBOPs, per epoch", lambda: figure_pareto(c.report)
    )
    order = np.argsort(ebops[front], kind="stable")
    rows = [
        [int(e), f"{b:.0f}", f"{a:.4f}"]
        for e, b, a in zip(
            epochs[front][order], ebops[front][order], accuracy[front][order], strict=True
        )
    ]
    section.blocks.append(Table(["epoch", "EBOPs (training)", "validation accuracy"], rows))
    return section


def _section_ebops(c: _Context) -> Section:
    names = [entry["name"] for entry in c.report["layers"]]
    values = [int(entry.get("ebops") or 0) for entry in c.report["layers"]]
    section = Section("ebops", "EBOPs per layer")
    section.blocks.append(
        Para(
            "Exact EBOPs of the frozen model: Σ bit_span(w_ij) · width(x_j) over every constant "
            "multiplication, where a weight's bit span runs from its most to its least significant "
            "non-zero bit."
        )
    )
    section.blocks += c.figure("ebops", "EBOPs per layer", lambda: figure_ebops(names, values))
    total = max(sum(values), 1)
    rows = []
    for name, value in zip(names, values, strict=True):
        bits = c.layer_bits.get(name)
        live = bits.live_products if bits is not None else None
        rows.append(
            [
                name,
                value,
                f"{100 * value / total:.1f}%",
                live if live is not None else "?",
                f"{value / live:.2f}" if live else "–",
            ]
        )
    rows.append(["total", sum(values), "100%", "", ""])
    headers = ["layer", "EBOPs", "share", "live products", "EBOPs per product"]
    section.blocks.append(Table(headers, rows))
    return section


def _width_row(name: str, width: np.ndarray) -> list[Any]:
    return [
        name,
        int(width.sum()),
        int(width.min(initial=0)),
        int(width.max(initial=0)),
        int((width == 0).sum()),
    ]


def _section_bits(c: _Context) -> Section:
    section = Section("bit-widths", "Bit widths")
    if not c.data.layers:
        section.blocks.append(Para(c.data.model_note or "model not found", note=True))
        return section
    section.blocks.append(
        Para(
            "Every weight costs its bit span (grey: a zero weight, pruned); every activation "
            "element has its own width (0 bits: the element is the constant 0 and has no wire)."
        )
    )
    width = c.data.input_width
    section.blocks += c.figure("bits_input", "input widths", lambda: figure_input_widths(width))
    weight_rows = []
    width_rows = [_width_row("input", width)]
    for layer in c.data.layers:
        section.blocks += c.figure(
            f"bits_{layer.name}",
            f"{layer.name}: bits of every weight and width of every output",
            lambda layer=layer: figure_layer_bits(layer),
        )
        live = layer.weight_bits[layer.weight_bits > 0]
        zero = 1 - live.size / max(layer.weight_bits.size, 1)
        weight_rows.append(
            [
                layer.name,
                f"{100 * zero:.1f}%",
                int(live.min()) if live.size else "–",
                f"{live.mean():.2f}" if live.size else "–",
                int(live.max()) if live.size else "–",
                layer.bias_nonzero,
            ]
        )
        width_rows.append(_width_row(f"{layer.name} output", layer.output_width))
    weight_headers = [
        "layer",
        "zero weights",
        "min bits",
        "mean bits",
        "max bits",
        "non-zero biases",
    ]
    width_headers = ["tensor", "total bits", "min width", "max width", "0-bit elements"]
    section.blocks += [Table(weight_headers, weight_rows), Table(width_headers, width_rows)]
    return section


def _section_resources(c: _Context) -> Section:
    section = Section("resources", "Resources per layer")
    per_layer = c.data.per_layer_resources
    if per_layer:
        order = {"lut": 0, "ff": 1, "carry": 2, "dsp": 3}
        keys = sorted(
            {k for values in per_layer.values() if isinstance(values, dict) for k in values},
            key=lambda k: (order.get(k, 9), k),
        )
        section.blocks.append(
            Para(
                "Cells per layer from Yosys synth_xilinx -family xcup run without flattening "
                "(one module per layer); '(top level)' holds the input register and the valid "
                "pipeline. Unflattened, Yosys cannot optimise across layer ports, so the sum can "
                "exceed the whole-design count below a little."
            )
        )
        section.blocks += c.figure(
            "resources", "resources per layer", lambda: figure_resources(per_layer, keys)
        )
        rows = [
            [name, *[_fmt((values or {}).get(k)) for k in keys]]
            for name, values in per_layer.items()
        ]
        section.blocks.append(Table(["layer", *[k.upper() for k in keys]], rows))
    else:
        why = "" if c.synthesis else " (synthesis not run)"
        section.blocks.append(Para(f"Per-layer resources: {NOT_MEASURED}{why}.", note=True))
    if c.synthesis:
        keys = ("lut", "ff", "carry", "dsp", "ecp5_lut4", "ecp5_ff")
        headers = ["whole design", "LUT", "FF", "CARRY", "DSP", "ECP5 LUT4", "ECP5 FF"]
        row = ["total", *[_fmt(c.synthesis.get(k)) for k in keys]]
        section.blocks.append(Table(headers, [row]))
    else:
        section.blocks.append(Para(f"Synthesis: {NOT_RUN}.", note=True))
    return section


def _section_timing(c: _Context) -> Section:
    options = (c.data.manifest or {}).get("options") or {}
    summary = Table(
        ["quantity", "value"],
        [
            ["latency", f"{_fmt(c.latency)} cycles"],
            ["initiation interval", "1 (one vector per clock)"],
            ["Fmax (nextpnr-ecp5, after routing)", c.fmax_text()],
            ["latency at Fmax", c.latency_ns_text()],
            ["adder levels per pipeline stage", _fmt(options.get("adder_levels_per_stage"))],
            ["input register", _fmt(options.get("register_inputs"))],
        ],
    )
    keys = ("latency_cycles", "adder_depth", "adders", "adder_bits")
    layers = Table(
        ["layer", "latency (cycles)", "adder depth", "adders", "adder bits"],
        [[e["name"], *[_fmt(e.get(k)) for k in keys]] for e in c.report["layers"]],
    )
    return Section("timing", "Latency and Fmax", [summary, layers])


def _section_verification(c: _Context) -> Section:
    r, v = c.report, c.verification
    simulator = v.get("simulator") or "simulator"
    table = Table(
        ["check", "what", "samples / vectors", "mismatches", "result"],
        [
            [
                "check 1",
                "torch float64 forward == integer reference",
                _fmt(c.check1.get("samples")),
                _fmt(c.check1.get("mismatches")),
                c.check1_verdict,
            ],
            [
                "check 3",
                f"Verilog ({simulator}) == integer reference, bit for bit",
                _fmt(r.get("vectors")),
                _fmt(r.get("mismatches")),
                c.check3,
            ],
        ],
    )
    section = Section("verification", "Verification", [table])
    if r.get("vectors") is None:
        section.blocks.append(Para(f"Check 3 (simulation): {NOT_RUN}.", note=True))
        return section
    counts = [
        f"{key.replace('_', ' ')}: {v[key]}"
        for key in ("latency_errors", "missing", "extra")
        if v.get(key) is not None
    ]
    if counts:
        section.blocks.append(Para("Check 3 also counted " + ", ".join(counts) + "."))
    failure = v.get("first_failure")
    if failure:
        shown = {k: failure.get(k) for k in ("kind", "index", "elements", "expected", "actual")}
        text = json.dumps(shown, default=str)
        section.blocks.append(Para(f"First failure: {text[:600]}", note=True))
    return section


def _section_stages(c: _Context) -> Section:
    section = Section("stages", "Time per stage")
    stages = {
        k: float(v)
        for k, v in (c.report.get("stage_seconds") or {}).items()
        if isinstance(v, int | float)
    }
    if not stages:
        section.blocks.append(Para(f"Stage times: {NOT_RUN}.", note=True))
        return section
    section.blocks += c.figure("stages", "seconds per stage", lambda: figure_stages(stages))
    rows = [[k, f"{v:.1f}"] for k, v in stages.items()]
    rows.append(["total", f"{sum(stages.values()):.1f}"])
    section.blocks.append(Table(["stage", "seconds"], rows))
    return section


SECTIONS = (
    _section_summary,
    _section_model,
    _section_pareto,
    _section_ebops,
    _section_bits,
    _section_resources,
    _section_timing,
    _section_verification,
    _section_stages,
)


def _sections(data: RunData, figures: bool) -> list[Section]:
    context = _Context(data, figures)
    return [make(context) for make in SECTIONS]


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------

_CSS = """
:root { --fg: #1f2328; --muted: #59636e; --line: #d1d9e0; --bg: #f6f8fa; --accent: #3b6ea5; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--fg); background: #fff;
  font: 15px/1.5 -apple-system, "Segoe UI", "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1040px; margin: 0 auto; padding: 24px 28px 48px; }
header { display: flex; align-items: center; gap: 16px; border-bottom: 2px solid var(--line);
  padding-bottom: 12px; }
h1 { font-size: 26px; margin: 0; flex: 1; }
h2 { font-size: 20px; margin: 32px 0 10px; padding-bottom: 4px;
  border-bottom: 1px solid var(--line); }
nav { margin: 12px 0 4px; font-size: 14px; }
nav a { color: var(--accent); text-decoration: none; margin-right: 14px; white-space: nowrap; }
code { font: 13px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; background: var(--bg);
  padding: 1px 5px; border-radius: 4px; }
table { border-collapse: collapse; margin: 10px 0 14px; font-size: 14px; }
th, td { border: 1px solid var(--line); padding: 4px 10px; text-align: left; vertical-align: top; }
th { background: var(--bg); font-weight: 600; }
tbody tr:nth-child(even) td { background: #fbfcfd; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 10px 0 16px; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 4px; }
figcaption { color: var(--muted); font-size: 13px; }
p.note { color: var(--muted); font-style: italic; }
.badge { display: inline-block; padding: 1px 9px; border-radius: 10px; font-weight: 700;
  font-size: 13px; letter-spacing: .03em; }
.badge.pass { background: #dafbe1; color: #116329; border: 1px solid #4ac26b; }
.badge.fail { background: #ffebe9; color: #a40e26; border: 1px solid #ff8182; }
.badge.none { background: var(--bg); color: var(--muted); border: 1px solid var(--line); }
header .badge { font-size: 16px; padding: 3px 14px; }
footer { margin-top: 36px; color: var(--muted); font-size: 12px; }
"""


def _cell_html(value: Any) -> str:
    if isinstance(value, Badge):
        return f'<td><span class="badge {value.kind}">{html.escape(value.text)}</span></td>'
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f'<td class="num">{html.escape(str(value))}</td>'
    return f"<td>{html.escape(str(value))}</td>"


def _cell_md(value: Any) -> str:
    if isinstance(value, Badge):
        return f"**{value.text}**" if value.kind != "none" else value.text
    return str(value).replace("|", "\\|").replace("\n", " ")


def render_html(data: RunData, sections: list[Section]) -> str:
    r = data.report
    verdict = _Context(data, figures=False).check3
    title = f"hgq-rtl run on {r['dataset']}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        "<main>",
        "<header>",
        f"<h1>hgq-rtl run on <code>{html.escape(str(r['dataset']))}</code>"
        + (f" · <code>{html.escape(data.model_name)}</code>" if data.model_name else "")
        + "</h1>",
        f'<span class="badge {verdict.kind}" title="bit-exact sign-off">'
        f"sign-off: {html.escape(verdict.text)}</span>",
        "</header>",
        "<nav>"
        + "".join(f'<a href="#{s.id}">{html.escape(s.title)}</a>' for s in sections)
        + "</nav>",
    ]
    for section in sections:
        parts.append(f'<section id="{section.id}">')
        parts.append(f"<h2>{html.escape(section.title)}</h2>")
        for block in section.blocks:
            if isinstance(block, Para):
                cls = ' class="note"' if block.note else ""
                parts.append(f"<p{cls}>{html.escape(block.text)}</p>")
            elif isinstance(block, Table):
                head = "".join(f"<th>{html.escape(h)}</th>" for h in block.headers)
                body = "".join(
                    "<tr>" + "".join(_cell_html(v) for v in row) + "</tr>" for row in block.rows
                )
                parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
            elif isinstance(block, FigureImage):
                uri = "data:image/png;base64," + base64.b64encode(block.png).decode("ascii")
                parts.append(
                    f'<figure><img alt="{html.escape(block.alt)}" src="{uri}">'
                    f"<figcaption>{html.escape(block.alt)}</figcaption></figure>"
                )
        parts.append("</section>")
    parts += [
        "<footer>Written by <code>hgq-rtl report</code> from report.json, model/ and "
        "synth/synth_report.json of this run folder. Self-contained: no external "
        "resources.</footer>",
        "</main>",
        "</body>",
        "</html>",
    ]
    return "\n".join(parts) + "\n"


def render_markdown(data: RunData, sections: list[Section], figure_dir: str = FIGURES_DIR) -> str:
    lines = [f"# hgq-rtl run on `{data.report['dataset']}`", ""]
    for section in sections:
        lines += [f"## {section.title}", ""]
        for block in section.blocks:
            if isinstance(block, Para):
                lines += [f"*{block.text}*" if block.note else block.text, ""]
            elif isinstance(block, Table):
                lines.append("| " + " | ".join(_cell_md(h) for h in block.headers) + " |")
                lines.append("|" + "---|" * len(block.headers))
                lines += ["| " + " | ".join(_cell_md(v) for v in row) + " |" for row in block.rows]
                lines.append("")
            elif isinstance(block, FigureImage):
                lines += [f"![{block.alt}]({figure_dir}/{block.name}.png)", ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def report_markdown(report: dict) -> str:
    """Return the Markdown report of a ``report.json`` document alone (tables, no figures).

    Parameters
    ----------
    report : dict
        The ``report.json`` document.

    Returns
    -------
    str
        Markdown text.
    """
    data = RunData(Path("."), report, model_note="the model is not part of report.json")
    return render_markdown(data, _sections(data, figures=False))


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReportFiles:
    """Paths written by :func:`write_report`: ``report.html``, ``report.md``, the figures."""

    html: Path
    markdown: Path
    figures: list[Path]


def _write_text(path: Path, text: str) -> None:
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.chmod(name, 0o644)
        os.replace(name, path)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise


def write_report(
    run_dir: str | Path, report: dict[str, Any] | None = None, *, out_dir: str | Path | None = None
) -> ReportFiles:
    """Write ``report.html``, ``report.md`` and ``figures/`` for the run in ``run_dir``.

    Each file is written beside its destination and renamed into place (``figures/`` is
    replaced whole), so readers never see half a report.

    Parameters
    ----------
    run_dir : str or Path
        A folder written by ``hgq-rtl run``.
    report : dict, optional
        The ``report.json`` document; read from ``run_dir`` when not given.
    out_dir : str or Path, optional
        Where to write; defaults to ``run_dir``.

    Returns
    -------
    ReportFiles
        Paths of the HTML, the Markdown and the figures.

    Raises
    ------
    FileNotFoundError, ValueError
        As :func:`load_run`.
    """
    from .ir.io import replace_folder

    data = load_run(run_dir, report)
    out = Path(out_dir) if out_dir is not None else data.run_dir
    out.mkdir(parents=True, exist_ok=True)
    sections = _sections(data, figures=True)
    images = [b for s in sections for b in s.blocks if isinstance(b, FigureImage)]

    tmp = Path(tempfile.mkdtemp(prefix=f".{FIGURES_DIR}.", dir=out))
    try:
        for image in images:
            (tmp / f"{image.name}.png").write_bytes(image.png)
        tmp.chmod(0o755)
        replace_folder(tmp, out / FIGURES_DIR)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _write_text(out / REPORT_MD, render_markdown(data, sections))
    _write_text(out / REPORT_HTML, render_html(data, sections))
    return ReportFiles(
        out / REPORT_HTML,
        out / REPORT_MD,
        [out / FIGURES_DIR / f"{image.name}.png" for image in images],
    )


__all__ = [
    "REPORT_HTML",
    "REPORT_MD",
    "ReportFiles",
    "load_run",
    "pareto_mask",
    "report_markdown",
    "write_report",
]
