"""``hgq-rtl``: the command line.

Sub-commands: ``run`` (the whole flow), ``train``, ``rtl``, ``verify``, ``check``, ``synth``,
``report``. Bad input gives one line on stderr and exit code 2; a failed verification, or values
outside the calibrated ranges found by ``check``, exit 1.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import warnings
from pathlib import Path

from . import __version__
from .train.config import ARCHITECTURES, GRANULARITIES
from .train.config import TRAIN_DEFAULTS as D

EXIT_BAD_INPUT = 2
EXIT_FAILED = 1


def _train_config(args: argparse.Namespace):
    from .train.config import BetaSchedule, TrainConfig

    return TrainConfig(
        arch=args.arch,
        hidden=tuple(args.hidden),
        channels=tuple(args.channels),
        kernel_size=args.kernel_size,
        batch_norm=args.batch_norm,
        granularity=args.granularity,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        bits_learning_rate=args.bits_lr,
        beta=BetaSchedule(args.beta, args.beta_end, args.beta_hold, _beta_steps(args.beta_steps)),
        gamma=args.gamma,
        init_bits=args.init_bits,
        seed=args.seed,
        device=args.device,
        threads=args.threads,
        compile=args.compile,
        task=args.task,
    )


def _beta_steps(text: str | None) -> tuple[tuple[int, float], ...]:
    """``"0:1e-6,50:1e-5"`` → ``((0, 1e-6), (50, 1e-5))``."""
    if text is None:
        return ()
    steps = []
    for item in text.split(","):
        epoch, colon, value = item.strip().partition(":")
        try:
            if not colon:
                raise ValueError
            steps.append((int(epoch), float(value)))
        except ValueError:
            raise ValueError(
                f"--beta-steps must be EPOCH:VALUE pairs separated by commas (like "
                f"0:1e-6,50:1e-5), not {text!r}"
            ) from None
    return tuple(steps)


def _rtl_options(args: argparse.Namespace):
    from rtl_gen.emit import RtlOptions

    return RtlOptions(
        adder_levels_per_stage=args.adder_levels,
        register_inputs=not args.no_input_register,
        debug_taps=getattr(args, "debug_taps", False),
        share_subexpressions=not args.no_share,
        clock_ns=args.pipeline_clock_ns,
        ternary_adders=args.ternary or args.xilinx_cells,
        xilinx_primitives=args.xilinx_cells,
        writer="direct" if args.xilinx_cells else "amaranth",
        io=args.io,
    )


def _say_io(ir, options, quiet: bool) -> None:
    """With --io auto, say why a network with convolutions is built fully unrolled."""
    from rtl_gen.emit import resolve_io

    _, note = resolve_io(ir, options)
    if note and not quiet:
        print(f"hgq-rtl: note: generating fully unrolled (--io parallel): {note}", file=sys.stderr)


def cmd_run(args: argparse.Namespace) -> int:
    from .flow import RunOptions, run

    options = RunOptions(
        dataset=args.dataset,
        data_path=args.data_path,
        vectors=args.vectors,
        synth=not args.no_synth,
        clock_ns=args.clock_ns,
        seed=args.seed,
    )
    report = run(args.out, options, _train_config(args), _rtl_options(args), quiet=args.quiet)
    keys = ("test_accuracy", "ebops", "latency_cycles", "lut", "ff", "fmax_mhz", "mismatches")
    print(json.dumps({k: report[k] for k in keys}))
    print(f"report: {args.out / 'report.html'} and report.md", file=sys.stderr)
    return 0 if report["verification"]["passed"] else EXIT_FAILED


def cmd_train(args: argparse.Namespace) -> int:
    from .data import load_dataset
    from .flow import TRAINING_DIR, train_and_freeze
    from .ir import reference
    from .train.checkpoint import CHECKPOINT_FILE
    from .train.metrics import reference_metrics

    config = _train_config(args)
    dataset = load_dataset(args.dataset, path=args.data_path, seed=args.seed)
    try:
        ir, summary = train_and_freeze(
            dataset,
            config,
            name=f"{dataset.name}_{config.arch}",
            quiet=args.quiet,
            out_dir=args.out,
            resume=args.resume,
        )
    except KeyboardInterrupt:
        saved = args.out / TRAINING_DIR / CHECKPOINT_FILE
        if saved.exists():
            print(f"hgq-rtl: the last completed epoch is in {saved}", file=sys.stderr)
            print("hgq-rtl: continue with the same options and --resume", file=sys.stderr)
        raise
    metrics = reference_metrics(ir, dataset.x_test, dataset.y_test, summary["task"])
    result = {
        "task": summary["task"],
        **{f"test_{key}": value for key, value in metrics.items()},
        "ebops": reference.ebops(ir),
        "train_seconds": summary["train_seconds"],
        "check1_mismatches": summary["check1_mismatches"],
        "front_points": len(summary["front"]),
        "training": str(args.out / TRAINING_DIR),
    }
    print(json.dumps(result))
    return 0


def cmd_rtl(args: argparse.Namespace) -> int:
    from rtl_gen.emit import emit

    from .ir import io as ir_io

    ir = ir_io.load(args.model_dir)
    top = args.name or ir.name
    if not (top.isidentifier() and top.isascii()):
        # it names the module and the file <top>.v inside --out: nothing else is safe
        raise ValueError(
            f"top module name {top!r} must be an ASCII identifier ([A-Za-z_][A-Za-z0-9_]*)"
        )
    options = _rtl_options(args)
    _say_io(ir, options, args.quiet)
    manifest = emit(ir, args.out, options, name=args.name)
    print(
        json.dumps(
            {
                "verilog": str(args.out / manifest["verilog"]),
                "io": manifest.get("io", "parallel"),
                "latency_cycles": manifest["latency_cycles"],
                "initiation_interval": manifest["initiation_interval"],
                "generation_seconds": round(manifest["generation_seconds"], 3),
            }
        )
    )
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from .verification import verify_design

    data = None
    if args.vectors_file is not None and args.dataset is not None:
        raise ValueError("--vectors-file replaces the generated vectors: drop --dataset")
    if args.dataset is not None:
        from .data import load_dataset

        dataset = load_dataset(args.dataset, path=args.data_path, seed=args.seed)
        data = dataset.x_test
    result = verify_design(
        args.rtl_dir,
        args.vectors,
        data=data,
        simulator=args.sim,
        seed=args.seed,
        quiet=args.quiet,
        waves_dir=args.waves,
        vectors_file=args.vectors_file,
        engine=args.engine,
    )
    print(result.summary())
    if result.first_failure is not None:
        failure = result.first_failure
        print(f"first failure ({failure.get('kind')}) at vector {failure.get('index')}:")
        for key in ("inputs", "expected", "actual", "elements", "first_differing_layer"):
            if key in failure:
                print(f"  {key}: {failure[key]}")
        expected, actual = failure.get("expected"), failure.get("actual")
        if expected is not None and actual is not None:
            for element in failure.get("elements", [])[:8]:
                print(
                    f"  output element {element}: expected {expected[element]}, "
                    f"actual {actual[element]}"
                )
    return 0 if result.passed else EXIT_FAILED


def cmd_check(args: argparse.Namespace) -> int:
    import numpy as np

    from .ir import io as ir_io
    from .ir import overflow as guard

    if (args.dataset is None) == (args.data is None):
        raise ValueError("check needs exactly one of --dataset NAME or --data FILE")
    if args.data_path is not None and args.dataset is None:
        raise ValueError("--data-path goes with --dataset (use --data FILE for your own rows)")
    ir = ir_io.load(args.model_dir)
    if args.data is not None:
        x = guard.load_rows(args.data)
    else:
        from .data import load_dataset

        dataset = load_dataset(args.dataset, path=args.data_path, seed=args.seed)
        parts = {"train": [dataset.x_train], "test": [dataset.x_test]}
        x = np.concatenate(parts.get(args.split, parts["train"] + parts["test"]))
    reports = guard.overflow_report_real(ir, x, worst=args.worst)
    print(guard.format_table(reports))
    print(guard.report_json(reports))
    return EXIT_FAILED if guard.any_overflow(reports) else 0


def cmd_report(args: argparse.Namespace) -> int:
    from .report import write_report

    files = write_report(args.run_dir, out_dir=args.out)
    print(json.dumps({"html": str(files.html), "markdown": str(files.markdown)}))
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    from rtl_gen.synth import synthesize, synthesize_target

    if args.tool == "default":
        if args.part is not None:
            raise ValueError("--part goes with --tool (the default flow has fixed parts)")
        report = synthesize(
            args.rtl_dir,
            args.out,
            clock_ns=args.clock_ns,
            nextpnr=not args.no_nextpnr,
            quiet=args.quiet,
            per_layer=args.per_layer,
        )
    else:
        if args.no_nextpnr or args.per_layer:
            raise ValueError("--no-nextpnr and --per-layer go with the default flow, not --tool")
        report = synthesize_target(
            args.rtl_dir,
            args.tool,
            args.out,
            part=args.part,
            clock_ns=args.clock_ns,
            quiet=args.quiet,
        )
    print(json.dumps(report.to_dict()))
    return 0


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text}")
    return value


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
        default=list(D.hidden),
        help="hidden dense layer sizes (none: give --hidden alone)",
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
    g.add_argument("--epochs", type=_positive_int, default=D.epochs)
    g.add_argument("--batch-size", type=_positive_int, default=D.batch_size)
    g.add_argument("--lr", type=float, default=D.learning_rate, help="Adam rate of the weights")
    g.add_argument("--bits-lr", type=float, default=D.bits_learning_rate, help="rate of the bits")
    g.add_argument("--beta", type=float, default=D.beta.start, help="EBOPs weight β in the loss")
    g.add_argument("--beta-end", type=float, help="log-ramp β to this value over the epochs")
    g.add_argument("--beta-hold", type=int, default=0, help="epochs at --beta before the ramp")
    g.add_argument(
        "--beta-steps",
        metavar="EPOCH:VALUE,...",
        help="piecewise-constant β: from each EPOCH on, VALUE (before the first: --beta)",
    )
    g.add_argument("--gamma", type=float, default=D.gamma, help="weight γ of the Σf term")
    g.add_argument("--init-bits", type=_positive_int, default=D.init_bits, help="bits per weight")
    g.add_argument("--device", default=D.device, help="auto (CUDA if present), cpu or cuda")
    g.add_argument(
        "--threads",
        type=_positive_int,
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


def _add_rtl_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("RTL generation")
    g.add_argument(
        "--adder-levels",
        type=_positive_int,
        default=2,
        help="adder levels between pipeline registers (default 2)",
    )
    g.add_argument(
        "--pipeline-clock-ns",
        type=float,
        metavar="NS",
        help="place registers by a delay model (UltraScale+-like) to meet this clock period, "
        "instead of every --adder-levels levels",
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


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="hgq-rtl", description="HGQ training to bit-exact pipelined Verilog."
    )
    p.add_argument("--version", action="version", version=f"hgq-rtl {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    common.add_argument("--seed", type=int, default=0)

    r = sub.add_parser("run", parents=[common], help="train → freeze → rtl → verify → synth")
    _add_train_options(r)
    _add_rtl_options(r)
    r.add_argument("--out", type=Path, default=Path("runs/digits"), help="output folder")
    r.add_argument(
        "--vectors",
        type=_positive_int,
        help="vectors check 3 drives (default: 100,000 for a parallel design; every test "
        "sample for a streamed one)",
    )
    r.add_argument("--clock-ns", type=float, default=5.0, help="target clock period")
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
        "--debug-taps",
        action="store_true",
        help="bring every hidden layer's output out on a port, so verify names the first "
        "layer that differs",
    )
    _add_rtl_options(g)
    g.set_defaults(func=cmd_rtl)

    v = sub.add_parser("verify", parents=[common], help="bit-exact simulation against the IR")
    v.add_argument("rtl_dir", type=Path)
    v.add_argument("--vectors", type=_positive_int, default=100_000)
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
    c.add_argument("--worst", type=int, default=3, help="worst elements listed per layer")
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
    s.add_argument("--clock-ns", type=float, default=5.0)
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
    return p


def _terminate(signum: int, frame: object) -> None:
    # SIGTERM unwinds like Ctrl-C, so commands remove their temporary folders on the way out
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    # An interrupted `rtl` leaves Amaranth modules unelaborated; Amaranth's warning about them
    # at exit would bury the one-line message.
    warnings.filterwarnings("ignore", message=r".* created but never used")
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("hgq-rtl: interrupted", file=sys.stderr)
        return 130
    except (ValueError, TypeError, OSError, ImportError) as error:  # OSError: paths, downloads
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        print(f"hgq-rtl: error: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except RuntimeError as error:
        # a missing simulator or synthesis tool is a set-up problem (2); a failed build or run, 1
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        print(f"hgq-rtl: error: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT if getattr(error, "missing_tool", False) else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
