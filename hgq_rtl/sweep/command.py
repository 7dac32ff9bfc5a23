"""``hgq-rtl sweep SWEEP.toml --out DIR [--address ADDRESS] [--resume]``: the sub-command.

The sweep file is read and checked (every trial's configuration built, the data loaded) before
Ray starts; a bad one gives one line naming the key and exit code 2 (through
:func:`hgq_rtl.cli.main`). Ray is imported only when a sweep runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def cmd_sweep(args: argparse.Namespace) -> int:
    from .config import load_plan
    from .run import run_sweep

    plan = load_plan(args.sweep_file)
    summary = run_sweep(plan, args.out, address=args.address, resume=args.resume, quiet=args.quiet)
    front = summary["front"]
    failed = [row["point"] for row in front if row.get("mismatches")]
    print(
        json.dumps(
            {
                "trials": summary["trials"],
                "kept_points": summary["kept_points"],
                "front_points": len(front),
                "front": [
                    {k: row.get(k) for k in ("point", "exact_ebops", "test_metric", "lut")}
                    for row in front
                ],
                "mismatches": sum(row.get("mismatches") or 0 for row in front),
                "sweep_seconds": round(summary["sweep_seconds"], 2),
            }
        )
    )
    if failed:
        print(f"hgq-rtl: error: check 3 failed for {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def register(sub, common: argparse.ArgumentParser) -> None:
    """Add the ``sweep`` sub-command to the CLI's sub-parsers."""
    # not ``parents=[common]``: its --seed means nothing here (seeds are in the sweep file)
    del common
    s = sub.add_parser(
        "sweep",
        help="train many configurations on Ray, keep one global Pareto front, build its points",
        description="Run the trials of SWEEP.toml with Ray Tune (ASHA early stopping, restarts "
        "of trials whose worker died), freeze every trial's kept epochs, keep the global Pareto "
        "front (exact EBOPs against the integer model's test metric), then generate, verify and "
        "synthesize every front point as parallel Ray tasks. See examples/sweep_digits.toml.",
    )
    s.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    s.add_argument("sweep_file", type=Path, metavar="SWEEP.toml")
    s.add_argument("--out", type=Path, required=True, help="sweep folder to write")
    s.add_argument(
        "--address",
        help="join a running Ray cluster (like 10.0.0.1:6379 or auto); default: start Ray "
        "here on this machine's cores",
    )
    s.add_argument(
        "--resume",
        action="store_true",
        help="continue the sweep in --out: finished trials are skipped, the others continue "
        "from their last epoch",
    )
    s.set_defaults(func=cmd_sweep)
