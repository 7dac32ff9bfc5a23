"""Training figures as PNG files: the Pareto front and every layer's weight bits.

Drawn with matplotlib's Agg canvas (no display, no pyplot state) and written atomically. A
weight's bits are its bit span (most to least significant non-zero bit; 0 for a pruned weight),
what it costs in EBOPs and in the shift-and-add hardware.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from ..ir.fixed import bit_span
from ..ir.model import IRModel
from .checkpoint import atomic_write

BITS_HISTOGRAM_PNG = "bits_histogram.png"
BITS_HEATMAP_PNG = "bits_heatmap.png"
_DPI = 100


def new_figure(width: float, height: float):
    """An empty matplotlib figure on an Agg canvas (no display, no pyplot state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save_png(figure, path: str | Path) -> Path:
    """Write ``figure`` as a PNG to ``path`` atomically (no software tag: same bytes each run)."""
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


def plot_bits_histogram(ir: IRModel, path: str | Path) -> Path:
    """How many weights of each layer have 0, 1, 2, ... bits (bars side by side per layer)."""
    layers = layer_weight_bits(ir)
    figure = new_figure(7, 3.6)
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
    return save_png(figure, path)


def plot_bits_heatmap(ir: IRModel, path: str | Path) -> Path:
    """One heat map per layer of every weight's bits (rows: outputs, columns: inputs)."""
    layers = layer_weight_bits(ir)
    figure = new_figure(7, 0.6 + 2.4 * max(len(layers), 1))
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
    return save_png(figure, path)
