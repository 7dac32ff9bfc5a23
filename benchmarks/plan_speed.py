"""Planning time and quality of shared-subexpression dense plans on random matrices.

Usage: ``python benchmarks/plan_speed.py [n:b ...]`` (default: the rows below). Prints planning
time, adder count, adder bits and a LUT estimate that tracks Yosys synth_xilinx within ~3 %.
"""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from vs_alkaid import matrix_model  # noqa: E402

from rtl_gen.components import DensePlan  # noqa: E402

ROWS = [(8, 4), (8, 8), (16, 4), (16, 8), (32, 8), (64, 8), (128, 4), (128, 8)]


def lut_estimate(plan: DensePlan) -> int:
    """Adder widths less the low bits an operand's shift passes through."""
    lut = 0
    for a in plan.adders():
        x, y = a.operands
        d = max(x.shift, y.shift) - a.shift
        if a.subtract and x.shift > y.shift:
            d = 0
        lut += max(a.width - d, 1)
    return lut


def main(argv: list[str]) -> None:
    rows = [tuple(int(v) for v in arg.split(":")) for arg in argv] or ROWS
    for n, b in rows:
        ir = matrix_model(n, b, 1000 * n + b)
        t = time.perf_counter()
        plan = DensePlan(ir.layers[0], ir.input)
        t = time.perf_counter() - t
        print(
            f"{n:4d} {b:2d} {t:7.2f} s {plan.adder_count():6d} adders "
            f"{plan.adder_bits():7d} bits {lut_estimate(plan):7d} lut-estimate",
            flush=True,
        )


if __name__ == "__main__":
    main(sys.argv[1:])
