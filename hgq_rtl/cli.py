"""``hgq-rtl``: the command line.

Sub-commands: ``run`` (the whole flow), ``train``, ``rtl``, ``verify``, ``check``, ``synth``,
``report``. Bad input gives one line on stderr and exit code 2; a failed verification, or values
outside the calibrated ranges found by ``check``, exit 1.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import sys
import warnings
from pathlib import Path

from rtl_gen.synth.base import CLOCK_NS_RANGE

from . import __version__
from .commands import (  # noqa: F401  (_beta_steps, _rtl_options, _train_config: benchmarks)
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    _beta_steps,
    _rtl_options,
    _train_config,
    cmd_check,
    cmd_report,
    cmd_rtl,
    cmd_run,
    cmd_synth,
    cmd_train,
    cmd_verify,
)
from .interop.command import register as register_interop
from .ir.reference import CONV_EBOPS
from .sweep.command import register as register_sweep
from .train.config import ARCHITECTURES, CNN_DEFAULTS, GRANULARITIES
from .train.config import TRAIN_DEFAULTS as D

#: Bounds of the numeric options are checked when the command line is parsed (before any
#: work); clock periods within rtl_gen.synth's CLOCK_NS_RANGE.
#: Vectors of check 3: the fast harness streams 10^9 in minutes; more is a typo.
MAX_VECTORS = 10**9


def _int_in(low: int, high: int | None = None):
    """An argparse type: an integer within ``[low, high]`` (``high`` None: no upper bound)."""
    span = f"from {low} to {high:,}" if high is not None else f">= {low}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be an integer {span}, not {text!r}")
        return value

    return parse


def _float_in(low: float, high: float | None = None, *, above: bool = False):
    """An argparse type: a finite number ``>= low`` (``> low`` with ``above``), ``<= high``."""
    span = f"{'>' if above else '>='} {low:g}" + (f" and <= {high:g}" if high is not None else "")

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if (
            not math.isfinite(value)
            or value < low
            or (above and value == low)
            or (high is not None and value > high)
        ):
            raise argparse.ArgumentTypeError(f"must be a finite number {span}, not {text!r}")
        return value

    return parse


_positive_int = _int_in(1)
_clock_ns = _float_in(*CLOCK_NS_RANGE)


class _Parser(argparse.ArgumentParser):
    """Option errors as one line ``hgq-rtl: error: argument --x: ...`` and exit code 2."""

    def error(self, message: str):
        self.exit(EXIT_BAD_INPUT, f"hgq-rtl: error: {message.splitlines()[0]}\n")


def _add_train_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("training")
    g.add_argument(
        "--dataset",
        default="digits",
        help="digits (default), fashion_mnist, jets, muon_toy (regression) or npz",
    )
    g.add_argument(
        "--data-path",
        type=Path,
        help="local data: jets csv/npz/parquet, fashion_mnist IDX folder or file, npz (required)",
    )
    g.add_argument(
        "--arch",
        choices=ARCHITECTURES,
        default=D.arch,
        help="mlp (dense layers) or cnn (conv → ReLU → max-pool 2 per --channels entry, then "
        "the --hidden dense layers)",
    )
    g.add_argument(
        "--hidden",
        type=_positive_int,
        nargs="*",
        help=f"hidden dense layer sizes (none: give --hidden alone; default "
        f"{' '.join(map(str, D.hidden))}, with --arch cnn none)",
    )
    g.add_argument(
        "--channels",
        type=_positive_int,
        nargs="+",
        default=list(D.channels),
        help="cnn: output channels of each convolution (default 16 32)",
    )
    g.add_argument(
        "--kernel-size", type=_positive_int, default=D.kernel_size, help="cnn: kernel size"
    )
    g.add_argument(
        "--batch-norm",
        action="store_true",
        help="fuse a BatchNorm into every hidden dense and convolution layer",
    )
    g.add_argument(
        "--granularity",
        choices=GRANULARITIES,
        default=D.granularity,
        help="one learnable fractional-bit count per element (default), channel or tensor",
    )
    g.add_argument(
        "--epochs",
        type=_int_in(1, 1_000_000),
        help=f"default {D.epochs}, with --arch cnn {CNN_DEFAULTS['epochs']}",
    )
    g.add_argument(
        "--batch-size",
        type=_int_in(1, 10**8),
        help=f"default {D.batch_size}, with --arch cnn {CNN_DEFAULTS['batch_size']}",
    )
    rate = _float_in(0, above=True)
    g.add_argument("--lr", type=rate, default=D.learning_rate, help="Adam rate of the weights")
    g.add_argument("--bits-lr", type=rate, default=D.bits_learning_rate, help="rate of the bits")
    weight = _float_in(0)
    g.add_argument(
        "--beta",
        type=weight,
        help=f"EBOPs weight β in the loss (default {D.beta.start:g}, with --arch cnn "
        f"{CNN_DEFAULTS['beta'].start:g})",
    )
    g.add_argument("--beta-end", type=weight, help="log-ramp β to this value over the epochs")
    g.add_argument(
        "--beta-hold", type=_int_in(0), default=0, help="epochs at --beta before the ramp"
    )
    g.add_argument(
        "--beta-steps",
        metavar="EPOCH:VALUE,...",
        help="piecewise-constant β: from each EPOCH on, VALUE (before the first: --beta)",
    )
    g.add_argument("--gamma", type=weight, default=D.gamma, help="weight γ of the Σf term")
    g.add_argument("--init-bits", type=_int_in(1, 62), default=D.init_bits, help="bits per weight")
    g.add_argument("--device", default=D.device, help="auto (CUDA if present), cpu or cuda")
    g.add_argument(
        "--threads",
        type=_int_in(1, 4096),
        default=D.threads,
        help="CPU threads of torch (default 1: runs repeat bit for bit; more is faster for CNNs)",
    )
    g.add_argument(
        "--compile",
        action="store_true",
        help="compile the whole training step with torch.compile (several times faster for "
        "MLPs, a little for CNNs) after about a minute of compilation: pays off on long runs",
    )
    g.add_argument(
        "--task",
        choices=("classification", "regression"),
        help="what the network learns (default: the data set's task)",
    )
    g.add_argument(
        "--conv-ebops",
        choices=CONV_EBOPS,
        help="how the resource term counts a convolution: unrolled (a kernel per output "
        "position, --io parallel) or kernel (one shared kernel, --io stream); default "
        f"{D.conv_ebops}, with --arch cnn {CNN_DEFAULTS['conv_ebops']}",
    )


def _add_rtl_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("RTL generation")
    g.add_argument(
        "--adder-levels",
        type=_int_in(1, 64),
        metavar="K",
        help="register every K adder levels inside each layer and every layer's output, instead "
        "of the default: registers placed by a delay model (UltraScale+-like) across layer "
        "boundaries, only where --clock-ns needs them",
    )
    g.add_argument(
        "--pipeline-clock-ns",
        type=_clock_ns,
        metavar="NS",
        help="place the registers for this clock period instead of --clock-ns",
    )
    g.add_argument(
        "--latency",
        type=_int_in(1, 10_000),
        metavar="N",
        help="take exactly N cycles: the registers of the delay-model schedule at the shortest "
        "clock period that takes N cycles (with --pipeline-clock-ns: at that period, padded "
        "with output registers; an error if it needs more)",
    )
    g.add_argument(
        "--family",
        choices=("amd", "portable"),
        default="amd",
        help="target family: amd (default; three-input adders as AMD/Xilinx LUT6_2 + CARRY4 "
        "cells, registers placed by UltraScale+-like delays) or portable (two-input adders in "
        "plain Verilog, for ECP5, iCE40, ASIC flows; registers placed by delays fitted to "
        "nextpnr-ecp5)",
    )
    g.add_argument(
        "--writer",
        choices=("auto", "direct", "amaranth"),
        default="auto",
        help="Verilog writer: auto (default: the direct writer for chains of dense layers, the "
        "Amaranth writer for other models and streams, with a note), direct or amaranth",
    )
    g.add_argument(
        "--no-share",
        action="store_true",
        help="one shift-and-add tree per output, without shared subexpressions",
    )
    g.add_argument(
        "--ternary",
        action="store_true",
        help="sum each output with three-input adders (fewer adder levels and registers)",
    )
    g.add_argument(
        "--xilinx-cells",
        action="store_true",
        help="write the three-input adders as AMD/Xilinx LUT6_2 + CARRY4 cells, one LUT per bit "
        "(implies --ternary; the Verilog carries models of the two cells for simulators and "
        "other targets)",
    )
    g.add_argument("--no-input-register", action="store_true", help="do not register data_in first")
    g.add_argument(
        "--io",
        choices=("auto", "parallel", "stream"),
        default="auto",
        help="parallel: fully unrolled, one sample per clock; stream: one pixel per beat "
        "through line buffers and one shared kernel per convolution (AXI4-Stream ports); "
        "auto (default): stream for networks with convolutions or pooling that can stream",
    )
    g.add_argument(
        "--pixels-per-beat",
        type=int,
        default=1,
        metavar="P",
        help="streamed designs: P consecutive pixels of a row per input beat, each convolution "
        "evaluating P copies of its kernel (P must divide the input's width; default 1)",
    )


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="hgq-rtl", description="HGQ training to bit-exact pipelined Verilog.")
    p.add_argument("--version", action="version", version=f"hgq-rtl {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    common.add_argument("--seed", type=_int_in(0, 2**32 - 1), default=0)

    r = sub.add_parser("run", parents=[common], help="train → freeze → rtl → verify → synth")
    _add_train_options(r)
    _add_rtl_options(r)
    r.add_argument("--out", type=Path, default=Path("runs/digits"), help="output folder")
    r.add_argument(
        "--vectors",
        type=_int_in(1, MAX_VECTORS),
        help="vectors check 3 drives (default: 100,000 for a parallel design; every test "
        "sample for a streamed one)",
    )
    r.add_argument("--clock-ns", type=_clock_ns, default=5.0, help="target clock period (ns)")
    r.add_argument("--no-synth", action="store_true", help="skip synthesis")
    r.set_defaults(func=cmd_run)

    t = sub.add_parser("train", parents=[common], help="train and freeze to an IR folder")
    _add_train_options(t)
    t.add_argument(
        "--out",
        type=Path,
        required=True,
        help="IR folder to write; checkpoints, the Pareto front and figures go to OUT/training/",
    )
    t.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out after its last completed epoch (same options)",
    )
    t.set_defaults(func=cmd_train)

    g = sub.add_parser("rtl", parents=[common], help="generate Verilog from an IR folder")
    g.add_argument("model_dir", type=Path)
    g.add_argument("--out", type=Path, required=True, help="design folder to write")
    g.add_argument("--name", help="top module name (default: the model's name)")
    g.add_argument(
        "--clock-ns", type=_clock_ns, default=5.0, help="target clock period (ns, default 5)"
    )
    g.add_argument(
        "--debug-taps",
        action="store_true",
        help="bring every hidden layer's output out on a port, so verify names the first "
        "layer that differs",
    )
    _add_rtl_options(g)
    g.set_defaults(func=cmd_rtl)

    v = sub.add_parser("verify", parents=[common], help="bit-exact simulation against the IR")
    v.add_argument("rtl_dir", type=Path)
    v.add_argument("--vectors", type=_int_in(1, MAX_VECTORS), default=100_000)
    v.add_argument("--sim", choices=("verilator", "icarus"), default="verilator")
    v.add_argument(
        "--engine",
        choices=("cocotb", "fast"),
        default="cocotb",
        help="cocotb: the cocotb bench (random valid bubbles, debug taps, --waves); fast: a "
        "Verilator C++ harness streaming millions of vectors (Verilator only, no bubbles)",
    )
    v.add_argument(
        "--waves",
        type=Path,
        metavar="DIR",
        help="keep the build, logs and a waveform (Verilator: DIR/dump.vcd) in DIR",
    )
    v.add_argument("--dataset", help="also drive this data set's test samples")
    v.add_argument("--data-path", type=Path)
    v.add_argument(
        "--vectors-file",
        type=Path,
        metavar="FILE.npz",
        help="drive exactly these vectors: array 'inputs', integers (N, inputs) within the "
        "input formats (replaces --vectors and --dataset)",
    )
    v.set_defaults(func=cmd_verify)

    c = sub.add_parser(
        "check",
        parents=[common],
        help="count values outside the calibrated ranges (overflow guard)",
        description="Run the integer reference on real-valued data and count, for the input and "
        "every layer, the values outside the formats calibration fixed (before WRAP/SAT brings "
        "them back in). Prints a table and a JSON line.",
        epilog="exit status: 0 when nothing overflows, 1 when something does, "
        "2 on bad input (one line on stderr).",
    )
    c.add_argument("model_dir", type=Path)
    c.add_argument("--dataset", help="a data set of `train`: check its samples (see --split)")
    c.add_argument("--data-path", type=Path, help="local file of --dataset (jets: csv/npz)")
    c.add_argument(
        "--data", type=Path, help="your own real-valued rows: .npy, .npz (array x) or .csv"
    )
    c.add_argument("--split", choices=("train", "test", "all"), default="all")
    c.add_argument(
        "--worst", type=_int_in(0, 10**6), default=3, help="worst elements listed per layer"
    )
    c.set_defaults(func=cmd_check)

    from rtl_gen.synth import TARGETS

    targets = "; ".join(
        f"{name}: {t.description} [default part {t.default_part}]" for name, t in TARGETS.items()
    )
    s = sub.add_parser(
        "synth",
        parents=[common],
        help="synthesize: Yosys (xcup) + nextpnr-ecp5 by default, or one --tool",
        description="Synthesize a generated design out of context and print its figures as "
        "JSON (also in OUT/synth_report.json). Default: Yosys synth_xilinx -family xcup cell "
        f"counts and nextpnr-ecp5 Fmax. Tools: {targets}.",
    )
    s.add_argument("rtl_dir", type=Path)
    s.add_argument(
        "--out", type=Path, help="report folder (default RTL_DIR/synth, RTL_DIR/synth_TOOL)"
    )
    s.add_argument("--clock-ns", type=_clock_ns, default=5.0, help="target clock period (ns)")
    s.add_argument("--tool", choices=["default", *TARGETS], default="default")
    s.add_argument("--part", help="part, device or family of --tool (see the description)")
    s.add_argument("--no-nextpnr", action="store_true", help="Yosys cell counts only")
    s.add_argument(
        "--per-layer",
        action="store_true",
        help="count cells per layer (one hierarchical run; totals are its sums)",
    )
    s.set_defaults(func=cmd_synth)

    p_report = sub.add_parser(
        "report",
        parents=[common],
        help="write report.html (self-contained) and report.md of a run folder",
        description="Read RUN_DIR/report.json, model/ and synth/synth_report.json and write "
        "report.html (one file, images embedded, opens offline) and report.md (with figures/).",
    )
    p_report.add_argument("run_dir", type=Path, help="a folder written by hgq-rtl run")
    p_report.add_argument("--out", type=Path, help="where to write (default RUN_DIR)")
    p_report.set_defaults(func=cmd_report)
    register_interop(sub, common)
    register_sweep(sub, common)
    return p


def _terminate(signum: int, frame: object) -> None:
    # SIGTERM unwinds like Ctrl-C, so commands remove their temporary folders on the way out
    raise KeyboardInterrupt


def _forget_interrupted_exec() -> None:
    """CPython notes when code run from a source string (``exec("...")``, as dataclasses and
    Amaranth do) ends in a KeyboardInterrupt, even one caught later, and then ends a
    ``python -m`` process by SIGINT instead of its exit status. The next source string run
    clears that note; without this, ``python -m hgq_rtl.cli`` stopped by SIGTERM at such a
    moment would die by signal rather than exit with 130."""
    exec("pass")


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    # An interrupted `rtl` leaves Amaranth modules unelaborated; Amaranth's warning about them
    # at exit would bury the one-line message.
    warnings.filterwarnings("ignore", message=r".* created but never used")
    # warnings are held back and shown after the command: never before its one error line
    with warnings.catch_warnings(record=True) as held:
        try:
            code = args.func(args)
        except KeyboardInterrupt:
            # a second Ctrl-C or SIGTERM while exiting (atexit removes the temporary folder)
            # must not turn the exit status 130 into a death by signal
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            _forget_interrupted_exec()
            print("hgq-rtl: interrupted", file=sys.stderr)
            return 130
        except BrokenPipeError:  # stdout closed early (`| head -1`): end quietly, as on SIGPIPE
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 128 + signal.SIGPIPE
        except RecursionError:  # a safety net: files are read with a nesting limit
            print("hgq-rtl: error: an input nests too deeply to be read", file=sys.stderr)
            return EXIT_BAD_INPUT
        except MemoryError:
            print("hgq-rtl: error: out of memory", file=sys.stderr)
            return EXIT_FAILED
        except (ValueError, TypeError, OSError, ImportError) as error:  # OSError: paths, downloads
            message = str(error).splitlines()[0] if str(error) else type(error).__name__
            print(f"hgq-rtl: error: {message}", file=sys.stderr)
            return EXIT_BAD_INPUT
        except RuntimeError as error:
            # a missing simulator or synthesis tool is a set-up problem (2); a failed build or
            # run, 1
            message = str(error).splitlines()[0] if str(error) else type(error).__name__
            print(f"hgq-rtl: error: {message}", file=sys.stderr)
            return EXIT_BAD_INPUT if getattr(error, "missing_tool", False) else EXIT_FAILED
    for w in held:
        warnings.showwarning(w.message, w.category, w.filename, w.lineno, line=w.line)
    return code


if __name__ == "__main__":
    sys.exit(main())
