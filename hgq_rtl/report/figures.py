"""The report's figures: matplotlib on the Agg canvas (no display, no pyplot state), PNG bytes.

Each ``figure_*`` function draws one figure from the data of :mod:`.data` and returns its PNG
(saved without a timestamp or software tag, so a figure is the same bytes for the same run).
matplotlib is imported only when a figure is drawn.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from .data import LayerBits, history_points, pareto_mask

_DPI = 100
_FRONT = "#d62728"
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


def figure_pareto(report: dict) -> bytes | None:
    epochs, ebops, accuracy = history_points(report)
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
