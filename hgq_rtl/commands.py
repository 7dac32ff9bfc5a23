"""The bodies of the ``hgq-rtl`` sub-commands (:mod:`hgq_rtl.cli` holds the parser and
``main``): each takes the parsed arguments and returns the exit status.

Every command that writes a folder goes through the write guard (:mod:`hgq_rtl.guard`): the
destination is checked before any work starts (a non-empty folder that is not this command's
output, a destination inside or equal to an input, a file or a symbolic link are refused), and
it is written whole under a lock, or left as it was.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys

from . import guard

EXIT_BAD_INPUT = 2
EXIT_FAILED = 1


def _train_config(args: argparse.Namespace):
    from .train.config import CNN_DEFAULTS, TRAIN_DEFAULTS, BetaSchedule, TrainConfig

    def given(name: str, option: str):
        """The option's value, else the architecture's default."""
        value = getattr(args, option)
        if value is not None:
            return value
        defaults = CNN_DEFAULTS if args.arch == "cnn" else {}
        default = defaults.get(name, getattr(TRAIN_DEFAULTS, name))
        return default.start if name == "beta" else default  # --beta is the schedule's start

    return TrainConfig(
        arch=args.arch,
        hidden=tuple(given("hidden", "hidden")),
        channels=tuple(args.channels),
        kernel_size=args.kernel_size,
        batch_norm=args.batch_norm,
        granularity=args.granularity,
        epochs=given("epochs", "epochs"),
        batch_size=given("batch_size", "batch_size"),
        learning_rate=args.lr,
        bits_learning_rate=args.bits_lr,
        beta=BetaSchedule(
            given("beta", "beta"), args.beta_end, args.beta_hold, _beta_steps(args.beta_steps)
        ),
        gamma=args.gamma,
        init_bits=args.init_bits,
        seed=args.seed,
        device=args.device,
        threads=args.threads,
        compile=args.compile,
        task=args.task,
        conv_ebops=given("conv_ebops", "conv_ebops"),
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
    from rtl_gen.components import DEFAULT_ADDER_LEVELS_PER_STAGE
    from rtl_gen.emit import RtlOptions

    # the default: registers placed by the delay model at the target clock across layer
    # boundaries; the family's adders, written by the direct writer where it takes the model
    levels = args.adder_levels is not None and args.pipeline_clock_ns is None
    clock_ns = args.pipeline_clock_ns
    if clock_ns is None and not levels and args.latency is None:
        clock_ns = args.clock_ns
    cells = args.xilinx_cells or (args.family == "amd" and args.writer != "amaranth")
    direct = args.xilinx_cells or args.writer != "amaranth"
    return RtlOptions(
        adder_levels_per_stage=args.adder_levels or DEFAULT_ADDER_LEVELS_PER_STAGE,
        register_inputs=not args.no_input_register,
        debug_taps=getattr(args, "debug_taps", False),
        share_subexpressions=not args.no_share,
        clock_ns=clock_ns,
        ternary_adders=args.ternary or cells,
        xilinx_primitives=cells,
        writer="direct" if direct else "amaranth",
        writer_fallback=args.writer == "auto" and not args.xilinx_cells,
        io=args.io,
        pixels_per_beat=args.pixels_per_beat,
        latency=args.latency,
        family=args.family,  # its delay model places the registers
    )


def _say_io(ir, options, quiet: bool) -> None:
    """With --io auto, say why a network with convolutions is built fully unrolled; with
    --writer auto, why a model is written by the Amaranth writer."""
    from rtl_gen.emit import resolve_io, resolve_writer

    options, writer_note = resolve_writer(ir, options)
    _, note = resolve_io(ir, options)
    if writer_note and not quiet:
        print(f"hgq-rtl: note: {writer_note}", file=sys.stderr)
    if note and not quiet:
        print(f"hgq-rtl: note: generating fully unrolled (--io parallel): {note}", file=sys.stderr)


def cmd_run(args: argparse.Namespace) -> int:
    from .flow import RunOptions, run

    guard.check_destination(args.out, "run", inputs=[args.data_path])

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
    # the folder is worked in place (checkpoints for --resume) under the guard's lock: a second
    # `train` into it is refused, and a folder that is not a training run's is never touched
    with guard.updating(args.out, "train", inputs=[args.data_path]):
        return _train(args)


def _train(args: argparse.Namespace) -> int:
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

    guard.check_destination(args.out, "rtl", inputs=[args.model_dir])
    # locked from the start (where its parent exists; emit locks it too): a second writer is
    # refused at once, not after this one's generation
    early = guard.locked(args.out) if args.out.parent.is_dir() else contextlib.nullcontext()
    with early:
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
    if args.waves is not None:
        if args.engine == "fast":
            raise ValueError("--waves goes with --engine cocotb (the fast harness records none)")
        guard.check_destination(args.waves, "verify", inputs=[args.rtl_dir])
    if args.dataset is not None:
        from .data import load_dataset

        dataset = load_dataset(args.dataset, path=args.data_path, seed=args.seed)
        data = dataset.x_test

    def verify(waves_dir=None):
        return verify_design(
            args.rtl_dir,
            args.vectors,
            data=data,
            simulator=args.sim,
            seed=args.seed,
            quiet=args.quiet,
            waves_dir=waves_dir,
            vectors_file=args.vectors_file,
            engine=args.engine,
        )

    if args.waves is None:
        result = verify()
    else:  # a kept build folder, reused by the next run: worked in place under the lock
        with guard.updating(args.waves, "verify", inputs=[args.rtl_dir]) as waves_dir:
            result = verify(waves_dir)
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
