"""Time and peak memory of each stage of ``hgq-rtl run`` (prints JSON).

Usage::

    .venv/bin/python benchmarks/flow_stages.py [--dataset digits] [--vectors 100000] [--out DIR]

Runs the same flow as ``hgq-rtl run`` with the CLI's defaults and prints one JSON object: per
stage (data, train, rtl, verify, synth) the wall seconds, this process's peak RSS and the largest
child process's peak RSS (simulator, Yosys, nextpnr), plus the report's headline figures.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

from hgq_rtl.cli import _rtl_options, _train_config, parser
from hgq_rtl.flow import RunOptions, StageTimer, run


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="digits")
    p.add_argument("--vectors", type=int, default=100_000)
    p.add_argument("--out", type=Path, help="keep the run folder here (default: temporary)")
    args = p.parse_args()
    # the CLI's own defaults, so the benchmark measures exactly what `hgq-rtl run` does
    defaults = parser().parse_args(["run", "--dataset", args.dataset])
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp) / "run"
        timer = StageTimer()
        start = time.perf_counter()
        report = run(
            out,
            RunOptions(dataset=args.dataset, vectors=args.vectors),
            _train_config(defaults),
            _rtl_options(defaults),
            quiet=True,
            timer=timer,
        )
        total = time.perf_counter() - start
    stages = {
        name: {
            "seconds": round(seconds, 3),
            "peak_rss_mib": round(timer.peak_rss_mib[name], 1),
            "children_peak_rss_mib": round(timer.children_peak_rss_mib[name], 1),
        }
        for name, seconds in timer.seconds.items()
    }
    keys = ("test_accuracy", "ebops", "latency_cycles", "lut", "ff", "carry", "dsp", "fmax_mhz")
    result = {
        "benchmark": "flow_stages",
        "dataset": args.dataset,
        "machine": {
            "python": platform.python_version(),
            "cpus": _cpus(),
            "arch": platform.machine(),
        },
        "total_seconds": round(total, 3),
        "stages": stages,
        "vectors": report["vectors"],
        "mismatches": report["mismatches"],
        **{k: report[k] for k in keys},
    }
    print(json.dumps(result, indent=2))
    return 0 if report["mismatches"] == 0 else 1


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


if __name__ == "__main__":
    sys.exit(main())
