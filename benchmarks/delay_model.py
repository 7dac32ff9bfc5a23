"""The register-placement delay model against nextpnr-ecp5's timing, and its ECP5 constants.

Usage::

    .venv/bin/python benchmarks/delay_model.py [--sizes 8 16 32] [--bits 4 8] [--levels 1 2 4]
        [--clock-ns 5 8] [--digits-rtl MODEL_DIR] [--target-ns 5] [--out DIR] [--measured FILE]

Designs: the random ``N x N`` matrices of ``benchmarks/vs_alkaid.py`` (signed ``bits``-bit
weights, signed 8-bit inputs), and optionally a trained model folder, each built with portable
two-input adders (the direct writer) and a register every ``K`` adder levels, so that the
register-to-register paths range from one adder to a whole layer; with ``--clock-ns``, also as
``--family portable`` builds them: registers placed at each period by the ECP5 delay model
(:data:`rtl_gen.timing.ECP5`), which checks the model where the generator uses it. Each design
is placed and routed by nextpnr-ecp5 (``rtl_gen.synth`` target ``nextpnr-ecp5``: Yosys
``synth_ecp5``, LFE5U-85F speed 6, out of context); its measured period is ``1000 / Fmax``.

The model's prediction for a design is its longest register-to-register path
(:meth:`rtl_gen.components.DenseComponent.critical_path`): ``levels * level_ns + bits * bit_ns +
register_ns`` along the path, LUT levels and carry-chain bits counted by the generator. The
benchmark reports the prediction of the AMD constants (:data:`rtl_gen.timing.AMD`,
UltraScale+-like guesses) and of the ECP5 ones (:data:`rtl_gen.timing.ECP5`, this benchmark's
earlier fit, which ``--family portable`` schedules with), and fits the three constants to the
measured periods (non-negative least squares, the critical path re-found with the fitted
constants until it settles); the fitted model's error is given in sample and leave-one-out
(each design predicted by the constants fitted on the others). Prints one JSON object per
design and a summary.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import nnls
from vs_alkaid import matrix_model  # beside this script

from hgq_rtl import guard
from hgq_rtl.ir import io as ir_io
from rtl_gen.components import DenseComponent
from rtl_gen.emit import RtlOptions, build, emit
from rtl_gen.synth import SynthError, synthesize_target
from rtl_gen.timing import AMD, ECP5, DelayModel

#: Rounds of fit → re-find the critical paths → fit.
FIT_ROUNDS = 5


def predicted_path(component: Any, model: DelayModel) -> tuple[float, int, int]:
    """The design's longest register-to-register path by ``model``: ``(ns, levels, bits)``."""
    paths = [b.critical_path(model) for b in component.layers if isinstance(b, DenseComponent)]
    return max(paths, key=lambda p: p[0])


def fit(designs: list[dict], start: DelayModel) -> DelayModel:
    """Non-negative least squares of the measured periods on (levels, bits, 1) along each
    design's critical path; the paths re-found with the new constants until they settle."""
    model = start
    for _ in range(FIT_ROUNDS):
        rows = [predicted_path(d["component"], model) for d in designs]
        a = np.array([[levels, bits, 1.0] for _, levels, bits in rows])
        b = np.array([d["measured_ns"] for d in designs])
        (level_ns, bit_ns, register_ns), _ = nnls(a, b)
        new = DelayModel(float(level_ns), float(bit_ns), float(register_ns), name="fitted")
        if new == model:
            break
        model = new
    return model


def _error(predicted_ns: float, measured_ns: float) -> float:
    """Relative error of the predicted Fmax against the measured one."""
    return round((measured_ns / predicted_ns) - 1.0, 4)


def _prediction(component: Any, model: DelayModel, measured_ns: float) -> dict:
    ns, path_levels, path_bits = predicted_path(component, model)
    return {
        "predicted_ns": round(ns, 3),
        "path_levels": path_levels,
        "path_bits": path_bits,
        "fmax_error": _error(ns, measured_ns),
    }


def measure(
    name: str, ir, options: RtlOptions, args: argparse.Namespace, work: Path, earlier: dict | None
) -> dict:
    """Build one design, place and route it (or take ``earlier``, a row of an earlier run, for
    its measured figures) and predict its period with the AMD and the ECP5 constants."""
    start = time.perf_counter()
    manifest = emit(ir, work / "rtl", options, name="dut")
    component = build(ir, options)
    if earlier is None:
        try:
            report = synthesize_target(
                work / "rtl", "nextpnr-ecp5", work / "ecp5", clock_ns=args.target_ns, quiet=True
            )
        except SynthError as error:
            return {"design": name, "error": str(error)}
        if not report.fmax_mhz:
            return {"design": name, "error": "nextpnr reported no Fmax"}
        measured = {"lut4": report.lut, "ff": report.ff, "fmax_mhz": round(report.fmax_mhz, 1)}
    else:
        measured = {key: earlier[key] for key in ("lut4", "ff", "fmax_mhz")}
    measured_ns = 1000.0 / measured["fmax_mhz"]
    placed = {"clock_ns": options.clock_ns, "family": options.family}
    if options.clock_ns is None:
        placed = {"levels_per_stage": options.adder_levels_per_stage}
    return {
        "design": name,
        **placed,
        "latency_cycles": manifest["latency_cycles"],
        **measured,
        "measured_ns": round(measured_ns, 3),
        "default_model": _prediction(component, AMD, measured_ns),
        "ecp5_model": _prediction(component, ECP5, measured_ns),
        "seconds": round(time.perf_counter() - start, 1),
        "component": component,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="*", default=[8, 16, 32])
    p.add_argument("--bits", type=int, nargs="*", default=[4, 8])
    p.add_argument("--levels", type=int, nargs="*", default=[1, 2, 4])
    p.add_argument(
        "--clock-ns", type=float, nargs="*", default=[],
        help="also build each design as --family portable --clock-ns NS (the ECP5 delay model)",
    )  # fmt: skip
    p.add_argument("--digits-rtl", type=Path, help="a model folder (IR) to add")
    p.add_argument("--target-ns", type=float, default=5.0, help="nextpnr's clock target")
    p.add_argument("--out", type=Path, help="keep every design here (default: temporary)")
    p.add_argument(
        "--measured", type=Path,
        help="the JSON lines of an earlier run: refit on its measured Fmax, no place and route",
    )  # fmt: skip
    args = p.parse_args(argv)
    earlier: dict[str, dict] = {}
    if args.measured is not None:
        for line in args.measured.read_text().splitlines():
            row = json.loads(line) if line.startswith("{") else {}
            if "fmax_mhz" in row:
                earlier[row["design"]] = row

    workloads = [
        (f"{n}x{n}_w{bits}", matrix_model(n, bits, 1000 * n + bits))
        for n in args.sizes
        for bits in args.bits
    ]
    if args.digits_rtl is not None:
        try:
            workloads.append(("digits", ir_io.load(args.digits_rtl)))
        except (OSError, ValueError) as error:
            print(f"delay_model: error: {error}", file=sys.stderr)
            return 2
    if args.out is not None:
        try:
            guard.check_destination(args.out, "benchmark")
        except guard.DestinationError as error:
            print(f"delay_model: error: {error}", file=sys.stderr)
            return 2

    designs = []
    with tempfile.TemporaryDirectory(prefix="delay_model.") as tmp:
        root = args.out if args.out is not None else Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        variants = [
            (f"k{levels}", RtlOptions(adder_levels_per_stage=levels, writer="direct"))
            for levels in args.levels
        ] + [
            (f"c{clock:g}", RtlOptions(clock_ns=clock, writer="direct", family="portable"))
            for clock in args.clock_ns
        ]
        for name, ir in workloads:
            for suffix, options in variants:
                label = f"{name}_{suffix}"
                if args.measured is not None and label not in earlier:
                    continue  # not measured in that run
                with guard.replacing(root / label, "benchmark") as work:
                    row = measure(label, ir, options, args, work, earlier.get(label))
                if "error" in row:
                    print(json.dumps(row), flush=True)
                    continue
                designs.append(row)
                print(json.dumps({k: v for k, v in row.items() if k != "component"}), flush=True)

    if len(designs) < 4:
        print(json.dumps({"summary": "delay_model", "error": "fewer than 4 designs measured"}))
        return 1
    fitted = fit(designs, AMD)
    rows = []
    for k, d in enumerate(designs):
        others = designs[:k] + designs[k + 1 :]
        held_out = fit(others, fitted)
        ns = predicted_path(d["component"], fitted)[0]
        ns_out = predicted_path(d["component"], held_out)[0]
        rows.append(
            {
                "design": d["design"],
                "measured_ns": d["measured_ns"],
                "fitted_predicted_ns": round(ns, 3),
                "fitted_fmax_error": _error(ns, d["measured_ns"]),
                "leave_one_out_fmax_error": _error(ns_out, d["measured_ns"]),
            }
        )
        print(json.dumps(rows[-1]), flush=True)

    def worst(errors: list[float]) -> float:
        return round(max(abs(e) for e in errors), 4)

    summary = {
        "summary": "delay_model",
        "designs": len(designs),
        "nextpnr_target_ns": args.target_ns,
        "default_constants": AMD.describe(),
        "default_max_fmax_error": worst([d["default_model"]["fmax_error"] for d in designs]),
        "ecp5_constants": ECP5.describe(),
        "ecp5_max_fmax_error": worst([d["ecp5_model"]["fmax_error"] for d in designs]),
        "ecp5_within_15_percent": int(
            sum(abs(d["ecp5_model"]["fmax_error"]) <= 0.15 for d in designs)
        ),
        "fitted_ecp5_constants": {
            k: round(v, 4) for k, v in fitted.describe().items() if k != "name"
        },
        "fitted_max_fmax_error": worst([r["fitted_fmax_error"] for r in rows]),
        "leave_one_out_max_fmax_error": worst([r["leave_one_out_fmax_error"] for r in rows]),
        "within_15_percent": int(sum(abs(r["leave_one_out_fmax_error"]) <= 0.15 for r in rows)),
    }
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
