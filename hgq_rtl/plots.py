"""Training figures as PNG files: the Pareto front and every layer's weight bits.

Drawn with matplotlib's Agg canvas (no display, no pyplot state) and written atomically. A
weight's bits are its bit span (most to least significant non-zero bit; 0 for a pruned weight),
what it costs in EBOPs and in the shift-and-add hardware.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .checkpoint import atomic_write
from .ir.fixed import bit_span
from .ir.model import IRModel

if TYPE_CHECKING:
    from .pareto import FrontRow

BITS_HISTOGRAM_PNG = "bits_histogram.png"
BITS_HEATMAP_PNG = "bits_heatmap.png"
_DPI = 100


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save(figure, path: str | Path) -> Path:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=_DPI, metadata={"Software": None})
    return atomic_write(path, lambda file: file.write(buffer.getvalue()))


def layer_weight_bits(ir: IRModel) -> list[tuple[str, np.ndarray]]:
    """``(layer name, bits)`` of every layer with weights, bits shaped ``(outputs, -1)``
    (a convolution's kernel is flattened per output channel)."""
    layers = []
    for layer in ir.layers:
        weight = getattr(layer, "weight", None)
        if weight is not None and np.size(weight):
            bits = bit_span(weight)
            layers.append((layer.name, bits.reshape(bits.shape[0], -1)))
    return layers


def plot_front(rows: list[FrontRow], metric_name: str, path: str | Path) -> Path:
    """The front: metric against EBOPs (log x), exact figures of the frozen models as a step
    line, training figures (validation metric, surrogate EBOPs) as open markers."""
    figure = _figure(7, 4.2)
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
    return _save(figure, path)


def plot_bits_histogram(ir: IRModel, path: str | Path) -> Path:
    """How many weights of each layer have 0, 1, 2, ... bits (bars side by side per layer)."""
    layers = layer_weight_bits(ir)
    figure = _figure(7, 3.6)
    ax = figure.add_subplot()
    top = max((int(bits.max(initial=0)) for _, bits in layers), default=0)
    edges = np.arange(top + 1)
    width = 0.8 / max(len(layers), 1)
    for k, (name, bits) in enumerate(layers):
        counts = np.bincount(bits.ravel(), minlength=top + 1)
        ax.bar(edges + (k - (len(layers) - 1) / 2) * width, counts, width=width, label=name)
    ax.set_xticks(edges)
    ax.set_xlabel("weight bits (0 = pruned)")
    ax.set_ylabel("weights")
    ax.set_title(f"{ir.name}: weight bits per layer")
    if layers:
        ax.legend(fontsize=8)
    return _save(figure, path)


def plot_bits_heatmap(ir: IRModel, path: str | Path) -> Path:
    """One heat map per layer of every weight's bits (rows: outputs, columns: inputs)."""
    layers = layer_weight_bits(ir)
    figure = _figure(7, 0.6 + 2.4 * max(len(layers), 1))
    top = max((int(bits.max(initial=0)) for _, bits in layers), default=0)
    for k, (name, bits) in enumerate(layers):
        ax = figure.add_subplot(len(layers), 1, k + 1)
        image = ax.imshow(
            bits, cmap="viridis", vmin=0, vmax=max(top, 1), aspect="auto", interpolation="nearest"
        )
        ax.set_title(f"{name}: {bits.shape[0]}×{bits.shape[1]}, {int(bits.sum())} bits")
        ax.set_ylabel("output")
        ax.set_xlabel("input")
        figure.colorbar(image, ax=ax, label="bits")
    return _save(figure, path)
