"""Fuzz the generator: random networks → RTL → the fast Verilator harness == the reference.

Usage::

    .venv/bin/python benchmarks/fuzz.py [--models 50] [--vectors-per-model 200000] [--seed 0]

Draws ``--models`` networks with :func:`hgq_rtl.ir.random.random_spec` (1 to 4 layers, 1 to 32
elements wide, every format feature and mode) and random generator options, generates each one's
Verilog, simulates it with the fast harness on random vectors over every input's full range and
compares every output integer with the reference. Prints one JSON object: models, vectors,
mismatches (with the failing models' specs), seconds, vectors per second (vectors / seconds, all
stages included), build seconds (total), and the time spent per stage. Exits 1 on any mismatch.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from hgq_rtl.ir.random import model_from_spec, random_spec
from hgq_rtl.verification import verify_design
from rtl_gen.emit import RtlOptions, emit


def random_options(rng: np.random.Generator) -> RtlOptions:
    """Generator options as tests/strategies.py draws them."""
    return RtlOptions(
        adder_levels_per_stage=int(rng.integers(1, 4)),
        register_inputs=bool(rng.random() < 0.5),
        share_subexpressions=bool(rng.random() < 0.5),
        clock_ns=[None, 2.0, 4.0][int(rng.integers(0, 3))],
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", type=int, default=50)
    p.add_argument("--vectors-per-model", type=int, default=200_000)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    rng = np.random.default_rng(args.seed)
    totals = {"vectors": 0, "mismatches": 0, "build_seconds": 0.0}
    stages = {"generate": 0.0, "simulate": 0.0}
    failures = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="hgq-rtl-fuzz-") as tmp:
        for k in range(args.models):
            spec, options = random_spec(rng), random_options(rng)
            design = Path(tmp) / f"model_{k}"
            t0 = time.perf_counter()
            emit(model_from_spec(spec, name=f"fuzz_{k}"), design, options)
            t1 = time.perf_counter()
            result = verify_design(
                design, args.vectors_per_model, engine="fast", seed=k, quiet=True
            )
            stages["generate"] += t1 - t0
            stages["simulate"] += time.perf_counter() - t1
            totals["vectors"] += result.vectors
            totals["mismatches"] += result.mismatches
            totals["build_seconds"] += result.build_seconds
            print(f"model {k}: {result.summary()}", file=sys.stderr, flush=True)
            if not result.passed:
                failures.append(
                    {
                        "model": k,
                        "spec": _jsonable(asdict(spec)),
                        "options": _jsonable(asdict(options)),
                        "summary": result.summary(),
                        "first_failure": result.first_failure,
                    }
                )
    seconds = time.perf_counter() - started
    report = {
        "benchmark": "fuzz",
        "machine": {"python": platform.python_version(), "cpus": _cpus()},
        "seed": args.seed,
        "models": args.models,
        "vectors": totals["vectors"],
        "mismatches": totals["mismatches"],
        "failed_models": len(failures),
        "seconds": round(seconds, 2),
        "vectors_per_second": round(totals["vectors"] / seconds),
        "build_seconds": round(totals["build_seconds"], 2),
        "stage_seconds": {name: round(value, 2) for name, value in stages.items()},
        "failures": failures,
    }
    print(json.dumps(report, indent=2))
    return 1 if failures else 0


def _jsonable(value):
    """Enums as their values, recursively (dataclasses.asdict keeps them)."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return getattr(value, "value", value)


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


if __name__ == "__main__":
    sys.exit(main())
