"""The sections of the report, in order: what each one says, built from :class:`RunData`.

Summary, model, accuracy against EBOPs (the Pareto front), EBOPs per layer, bit widths,
resources per layer, latency and Fmax, verification, time per stage. Each section is a function
of a shared :class:`_Context` that returns a :class:`~.page.Section`; its figures are drawn only
when the context asks for figures.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from .data import RunData, history_points, pareto_mask
from .figures import (
    figure_ebops,
    figure_input_widths,
    figure_layer_bits,
    figure_pareto,
    figure_resources,
    figure_stages,
)
from .page import (
    NOT_MEASURED,
    NOT_RUN,
    FigureImage,
    Para,
    Section,
    Table,
    fmt,
    verdict_badge,
)


@dataclass
class _Context:
    """What several sections share, computed once."""

    data: RunData
    figures: bool

    def __post_init__(self) -> None:
        d = self.data
        self.report = d.report
        self.synthesis = d.synthesis
        self.verification = d.verification
        self.check1 = d.check1
        self.layer_bits = {layer.name: layer for layer in d.layers}
        self.latency = d.latency
        self.fmax = d.fmax
        self.latency_ns = d.latency_ns
        self.check3 = verdict_badge(d.check3_passed)
        self.check1_verdict = verdict_badge(d.check1_passed)

    def figure(self, name: str, alt: str, make) -> list[FigureImage]:
        """``[figure]`` (drawn by ``make()``), or ``[]`` when figures are off or there is none."""
        png = make() if self.figures else None
        return [FigureImage(name, alt, png)] if png is not None else []

    def fmax_text(self) -> str:
        if not self.synthesis:
            return NOT_RUN
        overfull = self.synthesis.get("ecp5_overfull")
        if self.fmax is None and isinstance(overfull, dict) and overfull:
            shown = ", ".join(
                f"{name} {used:,} of {available:,}" for name, (used, available) in overfull.items()
            )
            return f"not placed: too large for the LFE5U-85F ({shown})"
        return fmt(self.fmax, 1, "MHz") if self.fmax is not None else NOT_MEASURED

    def latency_ns_text(self) -> str:
        if self.latency_ns is None:
            return NOT_RUN if not self.synthesis else NOT_MEASURED
        return fmt(self.latency_ns, 1, "ns")


def _section_summary(c: _Context) -> Section:
    r = c.report
    resources = (
        " / ".join(fmt(c.synthesis.get(k)) for k in ("lut", "ff", "carry", "dsp"))
        if c.synthesis
        else NOT_RUN
    )
    rows = [
        ["data set", r["dataset"]],
        ["model", c.data.model_name or "not found"],
        ["test accuracy (integer model)", fmt(r.get("test_accuracy"), 4)],
        ["EBOPs (exact)", fmt(r.get("ebops"))],
        ["parameters", fmt(r.get("params"))],
        ["latency", f"{fmt(c.latency)} cycles (II = 1)"],
        ["LUT / FF / CARRY / DSP (Yosys xcup)", resources],
        ["Fmax (nextpnr-ecp5)", c.fmax_text()],
        ["latency at Fmax", c.latency_ns_text()],
        ["bit-exact sign-off (check 3)", c.check3],
        ["vectors / mismatches", f"{fmt(r.get('vectors'))} / {fmt(r.get('mismatches'))}"],
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
                fmt(entry.get("output_bits")),
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
        f"Input: {first} elements, {fmt(r.get('input_bits'))} bits. Dense layers in order; "
        "only non-zero weights cost logic (a zero weight generates nothing)."
    )
    return Section("model", "Model", [Para(text), Table(headers, rows)])


def _section_pareto(c: _Context) -> Section:
    section = Section("pareto", "Accuracy against EBOPs (Pareto front)")
    epochs, ebops, accuracy = history_points(c.report)
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
            [name, *[fmt((values or {}).get(k)) for k in keys]]
            for name, values in per_layer.items()
        ]
        section.blocks.append(Table(["layer", *[k.upper() for k in keys]], rows))
    else:
        why = "" if c.synthesis else " (synthesis not run)"
        section.blocks.append(Para(f"Per-layer resources: {NOT_MEASURED}{why}.", note=True))
    if c.synthesis:
        keys = ("lut", "ff", "carry", "dsp", "ecp5_lut4", "ecp5_ff")
        headers = ["whole design", "LUT", "FF", "CARRY", "DSP", "ECP5 LUT4", "ECP5 FF"]
        row = ["total", *[fmt(c.synthesis.get(k)) for k in keys]]
        section.blocks.append(Table(headers, [row]))
    else:
        section.blocks.append(Para(f"Synthesis: {NOT_RUN}.", note=True))
    return section


def _section_timing(c: _Context) -> Section:
    options = (c.data.manifest or {}).get("options") or {}
    summary = Table(
        ["quantity", "value"],
        [
            ["latency", f"{fmt(c.latency)} cycles"],
            ["initiation interval", "1 (one vector per clock)"],
            ["Fmax (nextpnr-ecp5, after routing)", c.fmax_text()],
            ["latency at Fmax", c.latency_ns_text()],
            ["adder levels per pipeline stage", fmt(options.get("adder_levels_per_stage"))],
            ["input register", fmt(options.get("register_inputs"))],
        ],
    )
    keys = ("latency_cycles", "adder_depth", "adders", "adder_bits")
    layers = Table(
        ["layer", "latency (cycles)", "adder depth", "adders", "adder bits"],
        [[e["name"], *[fmt(e.get(k)) for k in keys]] for e in c.report["layers"]],
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
                fmt(c.check1.get("samples")),
                fmt(c.check1.get("mismatches")),
                c.check1_verdict,
            ],
            [
                "check 3",
                f"Verilog ({simulator}) == integer reference, bit for bit",
                fmt(r.get("vectors")),
                fmt(r.get("mismatches")),
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
    if failure and not isinstance(failure, dict):  # a hand-edited report.json: shown as it is
        failure = {"kind": failure}
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


def build_sections(data: RunData, figures: bool) -> list[Section]:
    """The report's sections, in order; with their figures drawn when ``figures`` is true."""
    context = _Context(data, figures)
    return [make(context) for make in SECTIONS]
