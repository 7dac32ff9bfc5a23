"""Throughput of the fast harness (``hgq-rtl verify --engine fast``) on the default digits model.

Usage::

    .venv/bin/python benchmarks/fast_harness.py [--rtl runs/digits/rtl] [--vectors 10000000]

With ``--rtl`` it measures that design; without, it trains the default digits model first (the
CLI's defaults, as ``hgq-rtl run`` does; about a minute on two cores) and generates its RTL.
It then

* builds the harness (``build_seconds``; for a design with AMD/Xilinx ternary adder cells,
  ``adders`` says which body was simulated, ``behavioural`` once Yosys has proven it equal to
  the cells for every parameter set, or ``cells``, and how many sets the build proved in how
  many seconds (none when the user cache had them all); ``proof_seconds`` is a proof of all
  the sets again, without the cache; ``--cells`` simulates the cells, for comparison),
* computes the reference of ``--distinct`` random vectors (``reference_vectors_per_second``),
* streams ``--vectors`` vectors, those distinct ones over and over, through the harness and
  checks every output (``vectors_per_second``: packing, simulating and comparing, with
  ``workers`` harness processes side by side; ``harness_cpu_seconds``: the CPU time of those
  processes together, and ``simulation_vectors_per_second``, the vectors per second of that CPU
  time; ``python_cpu_seconds``: this process's CPU time meanwhile, its threads together),
* runs ``verify_design(..., engine="fast")`` end to end on ``--end-to-end`` vectors (generation
  and reference included, overlapped with the simulation; not with ``--cells``).

Prints one JSON object, with the load average before and after (the throughput figures depend on
what else the machine runs); exits 1 on any mismatch.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from hgq_rtl.ir import io as ir_io
from hgq_rtl.ir import reference
from hgq_rtl.verification import verify_design
from hgq_rtl_sim.cell_proof import AdderForm, choose_adder_form
from hgq_rtl_sim.fast import DEFAULT_CHUNK, MAX_WORKERS, verify_fast_stream
from hgq_rtl_sim.fast_build import build_harness


def train_default_digits(out: Path) -> Path:
    """Train and freeze the default digits model, generate its RTL into *out*; returns *out*."""
    from hgq_rtl.cli import _rtl_options, _train_config, parser
    from hgq_rtl.data import load_dataset
    from hgq_rtl.flow import train_and_freeze
    from rtl_gen.emit import emit

    defaults = parser().parse_args(["run", "--dataset", "digits"])
    dataset = load_dataset("digits", seed=defaults.seed)
    ir, _ = train_and_freeze(dataset, _train_config(defaults), name="digits_mlp", quiet=True)
    emit(ir, out, _rtl_options(defaults))
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rtl", type=Path, help="a design folder (default: train the digits model)")
    p.add_argument("--vectors", type=int, default=10_000_000)
    p.add_argument("--distinct", type=int, default=1 << 19, help="distinct random vectors")
    p.add_argument("--end-to-end", type=int, default=1_000_000, help="0: skip")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, help="harness processes (default: one per CPU)")
    p.add_argument("--cells", action="store_true", help="simulate the ternary adders' cells")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="hgq-rtl-bench-") as tmp:
        train_seconds = 0.0
        rtl = args.rtl
        if rtl is None:
            started = time.perf_counter()
            rtl = train_default_digits(Path(tmp) / "rtl")
            train_seconds = time.perf_counter() - started
        ir = ir_io.load(rtl / "model")
        manifest = json.loads((rtl / "manifest.json").read_text())

        started = time.perf_counter()
        inputs = reference.random_inputs(ir.input, args.distinct, np.random.default_rng(args.seed))
        generate_seconds = time.perf_counter() - started
        started = time.perf_counter()
        expected = reference.run(ir, inputs)
        reference_seconds = time.perf_counter() - started

        build = Path(tmp) / "build"
        built = build_harness(rtl, build / "fast_build", behavioural_adders=not args.cells)
        proof_seconds = None
        if built.adders.form is AdderForm.BEHAVIOURAL:
            verilog = rtl / manifest["verilog"]
            again = choose_adder_form(verilog, Path(tmp) / "proof", use_cache=False)
            proof_seconds = round(again.seconds, 2)

        def chunks():
            for start in range(0, args.vectors, DEFAULT_CHUNK):
                at = start % args.distinct
                stop = min(at + DEFAULT_CHUNK, args.distinct, at + args.vectors - start)
                yield inputs[at:stop], expected[at:stop]

        load_before = os.getloadavg()
        before = [
            resource.getrusage(who) for who in (resource.RUSAGE_CHILDREN, resource.RUSAGE_SELF)
        ]
        result = verify_fast_stream(
            rtl,
            chunks(),
            total=args.vectors,
            build_dir=build,
            workers=args.workers,
            behavioural_adders=not args.cells,
        )
        after = [
            resource.getrusage(who) for who in (resource.RUSAGE_CHILDREN, resource.RUSAGE_SELF)
        ]
        harness_cpu, python_cpu = (
            a.ru_utime - b.ru_utime + a.ru_stime - b.ru_stime
            for a, b in zip(after, before, strict=True)
        )
        workers = args.workers or min(MAX_WORKERS, len(os.sched_getaffinity(0)))
        load_after = os.getloadavg()

        end_to_end = None
        if args.end_to_end and not args.cells:  # verify_design simulates the proven body
            started = time.perf_counter()
            whole = verify_design(rtl, args.end_to_end, engine="fast", seed=args.seed)
            seconds = time.perf_counter() - started
            end_to_end = {
                "vectors": whole.vectors,
                "mismatches": whole.mismatches,
                "seconds": round(seconds, 2),
                "build_seconds": round(whole.build_seconds, 2),
                "vectors_per_second": round(whole.vectors / whole.sim_seconds),
            }
    report = {
        "benchmark": "fast_harness",
        "design": manifest["top"],
        "machine": {
            "python": platform.python_version(),
            "cpus": len(os.sched_getaffinity(0)),
            "load_average_before": round(load_before[0], 2),
            "load_average_after": round(load_after[0], 2),
        },
        "input_bits": sum(bus["width"] for bus in manifest.get("inputs", [manifest["input"]])),
        "output_bits": manifest["output"]["width"],
        "latency_cycles": manifest["latency_cycles"],
        "train_seconds": round(train_seconds, 1),
        "build_seconds": round(built.seconds, 2),
        "adders": built.adders.to_json(),
        "proof_seconds": proof_seconds,
        "vectors": result.vectors,
        "distinct_vectors": args.distinct,
        "mismatches": result.mismatches,
        "workers": workers,
        "seconds": round(result.sim_seconds, 2),
        "vectors_per_second": round(result.vectors / result.sim_seconds),
        "harness_cpu_seconds": round(harness_cpu, 2),
        "simulation_vectors_per_second": round(result.vectors / harness_cpu),
        "python_cpu_seconds": round(python_cpu, 2),
        "generate_vectors_per_second": round(args.distinct / generate_seconds),
        "reference_vectors_per_second": round(args.distinct / reference_seconds),
        "end_to_end": end_to_end,
    }
    print(json.dumps(report, indent=2))
    failed = result.mismatches or (end_to_end and end_to_end["mismatches"])
    return 1 if failed or not result.passed else 0


if __name__ == "__main__":
    sys.exit(main())
