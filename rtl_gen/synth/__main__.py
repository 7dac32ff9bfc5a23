"""Command line: ``python -m rtl_gen.synth RTL_DIR [OUT_DIR] [--clock-ns NS] [--no-nextpnr]``."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

from rtl_gen import synth

from .base import SynthError
from .flow import synthesize


def _main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m rtl_gen.synth RTL_DIR [OUT_DIR] [--clock-ns NS]``."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m rtl_gen.synth", description=synth.__doc__.splitlines()[0]
    )
    parser.add_argument("rtl_dir", type=Path)
    parser.add_argument("out_dir", type=Path, nargs="?")
    parser.add_argument("--clock-ns", type=float, default=5.0)
    parser.add_argument("--no-nextpnr", action="store_true")
    args = parser.parse_args(argv)
    try:
        report = synthesize(
            args.rtl_dir, args.out_dir, clock_ns=args.clock_ns, nextpnr=not args.no_nextpnr
        )
    except (SynthError, ValueError, FileNotFoundError) as err:
        print(f"synth: error: {err}", file=sys.stderr)
        return 1
    print(json.dumps(report.to_dict(), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
