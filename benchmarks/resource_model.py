"""LUTs per EBOP: fit Yosys xcup LUT counts to exact EBOPs over designs of several sizes.

Usage::

    .venv/bin/python benchmarks/resource_model.py [--sizes 8x8 16x8 16x16x8 ...] \
        [--run-dir runs/digits] [--png docs/resource_model.png]

For each design (random integer MLPs of the given layer sizes, made with
:func:`hgq_rtl.ir.random.random_model`, plus the model of every ``--run-dir``), it computes the
exact EBOPs of the IR, generates the RTL and counts LUTs with Yosys ``synth_xilinx -family xcup``
(out of context, no place and route); a run folder that ``hgq-rtl run`` synthesized already gives
its stored counts (the same Yosys flow). It then fits ``LUT ≈ ratio · EBOPs`` by least squares
through the origin, prints one JSON object (every design, the ratio, R², the spread of the
per-design ratios) and draws the points and the line into a PNG.

Read the ratio as "LUTs per EBOP before synthesis": ``ratio · EBOPs`` estimates a design's
LUTs without running Yosys. It counts LUT1..LUT6 only (no FFs or CARRY cells).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from hgq_rtl.ir import io as ir_io
from hgq_rtl.ir import reference
from hgq_rtl.ir.random import random_model
from rtl_gen.emit import emit
from rtl_gen.synth import synthesize

DEFAULT_SIZES = ("8x4", "12x8", "16x8x4", "16x16x8", "24x16x8")


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(n) for n in text.split("x"))
    except ValueError:
        sizes = ()
    if len(sizes) < 2 or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"sizes must look like 16x8x4, not {text!r}")
    return sizes


def measure(ir, work: Path) -> dict:
    """Exact EBOPs and Yosys xcup cell counts of one model."""
    emit(ir, work / ir.name)
    start = time.perf_counter()
    synth = synthesize(work / ir.name, work / f"{ir.name}_synth", nextpnr=False, quiet=True)
    return {
        "design": ir.name,
        "sizes": [ir.input.size, *(layer.out_features for layer in ir.layers)],
        "ebops": int(reference.ebops(ir)),
        "lut": synth.lut,
        "ff": synth.ff,
        "carry": synth.carry,
        "seconds": round(time.perf_counter() - start, 1),
    }


def measured_run(run_dir: Path) -> dict | None:
    """EBOPs and Yosys xcup counts that ``hgq-rtl run`` already stored in ``run_dir``."""
    path = run_dir / "synth" / "synth_report.json"
    if not path.is_file():
        return None
    synth = json.loads(path.read_text())
    ir = ir_io.load(run_dir / "model")
    return {
        "design": ir.name,
        "sizes": [ir.input.size, *(layer.out_features for layer in ir.layers)],
        "ebops": int(reference.ebops(ir)),
        "lut": synth["lut"],
        "ff": synth["ff"],
        "carry": synth["carry"],
        "seconds": synth["yosys_seconds"],
    }


def fit(ebops: np.ndarray, lut: np.ndarray) -> dict:
    """Least squares ``lut ≈ ratio · ebops`` through the origin, with R² about the mean."""
    ratio = float(ebops @ lut / (ebops @ ebops))
    residual = lut - ratio * ebops
    total = float(((lut - lut.mean()) ** 2).sum())
    per_design = lut / ebops
    return {
        "lut_per_ebop": round(ratio, 4),
        "r2": round(1 - float(residual @ residual) / total, 4) if total else None,
        "per_design_min": round(float(per_design.min()), 4),
        "per_design_max": round(float(per_design.max()), 4),
        "designs": int(len(ebops)),
    }


def plot(rows: list[dict], result: dict, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.4, 4.4), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    ebops = np.array([r["ebops"] for r in rows], float)
    lut = np.array([r["lut"] for r in rows], float)
    ax.scatter(ebops, lut, color="#3b6ea5", zorder=3)
    for row in rows:
        ax.annotate(row["design"], (row["ebops"], row["lut"]), fontsize=7, xytext=(4, -3),
                    textcoords="offset points")  # fmt: skip
    line = np.array([0, ebops.max() * 1.05])
    if ebops.max() > 20 * ebops.min():  # sizes over decades: log axes show every point
        ax.set_xscale("log")
        ax.set_yscale("log")
        line = np.geomspace(ebops.min() / 1.5, ebops.max() * 1.5, 50)
    ax.plot(line, result["lut_per_ebop"] * line, color="#d62728",
            label=f"LUT = {result['lut_per_ebop']:.3f} · EBOPs (R² = {result['r2']})")  # fmt: skip
    ax.set_xlabel("exact EBOPs (IR)")
    ax.set_ylabel("LUTs (Yosys synth_xilinx -family xcup)")
    ax.set_title("Resource model: LUTs against EBOPs")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", metadata={"Software": None})


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=_sizes, nargs="+", default=[_sizes(s) for s in DEFAULT_SIZES])
    p.add_argument("--run-dir", type=Path, nargs="*", default=[], help="add these runs' models")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--png", type=Path, default=Path("resource_model.png"))
    args = p.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    models = [
        random_model(rng, sizes, name=f"mlp_{'x'.join(map(str, sizes))}") for sizes in args.sizes
    ]
    rows = []
    for run in args.run_dir:  # synthesized by `hgq-rtl run` already, or synthesized here
        row = measured_run(run)
        if row is None:
            models.append(ir_io.load(run / "model"))
        else:
            rows.append(row)
    with tempfile.TemporaryDirectory() as tmp:
        for ir in models:
            rows.append(measure(ir, Path(tmp)))
            print(f"resource_model: {rows[-1]}", file=sys.stderr, flush=True)
    rows = [r for r in rows if r["ebops"] > 0]
    ebops = np.array([r["ebops"] for r in rows], float)
    lut = np.array([r["lut"] for r in rows], float)
    result = fit(ebops, lut)
    plot(rows, result, args.png)
    print(json.dumps({"benchmark": "resource_model", **result, "png": str(args.png), "rows": rows}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
