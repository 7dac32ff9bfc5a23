"""The end-to-end flow: train → freeze → RTL → bit-exact sign-off → synthesis → report.

Each stage is a function usable on its own (the CLI exposes them as sub-commands); :func:`run`
chains them and writes ``report.json``, ``report.html`` and ``report.md``.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import guard
from .data import Dataset, load_dataset
from .ir import io as ir_io
from .ir import reference
from .ir.model import IRModel
from .report import write_report
from .verification import verify_design

DEFAULT_VECTORS = 100_000


def _rss_mib() -> float:
    """Resident memory of this process in MiB (Linux ``/proc``; 0 where unavailable)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


@dataclass
class StageTimer:
    """Wall time and peak memory of each stage (for reports and benchmarks).

    ``peak_rss_mib`` is this process's peak resident memory during the stage, sampled every
    20 ms; ``children_peak_rss_mib`` the largest child process (simulator, synthesis tools) so
    far, as the kernel reports it.
    """

    seconds: dict[str, float] = field(default_factory=dict)
    peak_rss_mib: dict[str, float] = field(default_factory=dict)
    children_peak_rss_mib: dict[str, float] = field(default_factory=dict)

    def run(self, name: str, function: Callable[[], Any]) -> Any:
        peak = [_rss_mib()]
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.02):
                peak[0] = max(peak[0], _rss_mib())

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        start = time.perf_counter()
        try:
            return function()
        finally:
            self.seconds[name] = time.perf_counter() - start
            done.set()
            sampler.join()
            self.peak_rss_mib[name] = max(peak[0], _rss_mib())
            children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
            self.children_peak_rss_mib[name] = children


def say(message: str, quiet: bool) -> None:
    if not quiet:
        print(message, file=sys.stderr, flush=True)


#: Sub-folder of ``hgq-rtl train --out DIR`` holding checkpoints, the front and figures.
TRAINING_DIR = "training"
HISTORY_JSON = "history.json"


def check_pixels_per_beat(rtl_options, train_config, dataset: Dataset) -> None:
    """Refuse ``--pixels-per-beat`` before training where the design cannot take it: the
    network trained is not a CNN or ``--io parallel`` is asked for (both fully unrolled), or it
    does not divide the images' width (``rtl_gen.emit.resolve_io`` checks the trained model
    again)."""
    pixels = rtl_options.pixels_per_beat if rtl_options is not None else 1
    if pixels == 1:
        return
    if train_config.arch != "cnn" or rtl_options.io == "parallel":
        what = "with --io parallel the" if rtl_options.io == "parallel" else "the"
        raise ValueError(
            f"--pixels-per-beat {pixels} needs a streamed design: {what} {train_config.arch} "
            "network is generated fully unrolled (a CNN streams)"
        )
    width = dataset.x_train.shape[-1]
    if dataset.x_train.ndim < 3 or width % pixels:
        raise ValueError(
            f"--pixels-per-beat {pixels} must divide the width of the {dataset.name} samples "
            f"(shape {tuple(dataset.x_train.shape[1:])})"
        )


def train_and_freeze(
    dataset: Dataset,
    config,
    *,
    name: str,
    quiet: bool = False,
    out_dir: Path | None = None,
    resume: bool = False,
) -> tuple[IRModel, dict[str, Any]]:
    """Train on ``dataset``, freeze on its training split, run check 1 on its test split, and
    freeze and measure every kept Pareto point (``summary["front"]``).

    With ``out_dir`` the run is checkpointed in ``out_dir/training/`` every epoch (``resume``
    continues it), the front, the figures and ``history.json`` are written there, and the final
    model is installed last as ``out_dir/model.json`` + ``weights.npz`` (see
    :func:`install_model`): an interrupted run leaves a resumable checkpoint, and the model
    of an earlier run in ``out_dir`` (if any) stays until the new one replaces it. The caller
    holds the write guard of ``out_dir`` (``hgq-rtl train``: :func:`hgq_rtl.guard.updating`).
    """
    from .train import plots
    from .train.checkpoint import atomic_write_text
    from .train.freeze import check_frozen, freeze
    from .train.loop import train
    from .train.metrics import METRICS
    from .train.pareto import evaluate_front, front_records, write_front

    n_outputs = dataset.n_outputs
    training_dir = None
    if out_dir is not None:
        out_dir = Path(out_dir)
        training_dir = out_dir / TRAINING_DIR
    result = train(
        dataset.x_train,
        dataset.y_train,
        dataset.x_test,
        dataset.y_test,
        n_outputs,
        config,
        task=str(dataset.task),
        quiet=quiet,
        checkpoint_dir=training_dir,
        resume=resume,
    )
    metric_name, higher_is_better = METRICS[result.task]
    metadata = {
        "dataset": dataset.name,
        "n_classes": dataset.n_classes,
        "task": result.task,
        "n_outputs": n_outputs,
    }
    ir = freeze(result.model, dataset.x_train, name=name, metadata=metadata)
    check1 = check_frozen(result.model, ir, dataset.x_test)
    if check1:
        raise RuntimeError(
            f"check 1 failed: torch and the integer reference differ on {check1} samples"
        )
    front = evaluate_front(
        result.front,
        result.front_state,
        result.make_model,
        dataset.x_train,
        dataset.x_test,
        dataset.y_test,
        result.task,
        name=name,
        metadata=metadata,
        quiet=quiet,
        frozen={result.history[-1]["epoch"]: ir},  # the final model, frozen just above
    )
    params = sum(
        p.numel() for n, p in result.model.named_parameters() if not n.endswith("frac_bits")
    )
    summary = {
        "train_seconds": result.seconds,
        "history": result.history,
        "params": int(params),
        "check1_mismatches": check1,
        "check1_samples": len(dataset.x_test),
        "task": result.task,
        "metric": metric_name,
        "front": front_records([row for row, _ in front], metric_name),
    }
    if training_dir is not None:
        write_front(training_dir, front, metric_name, higher_is_better)
        plots.plot_bits_histogram(ir, training_dir / plots.BITS_HISTOGRAM_PNG)
        plots.plot_bits_heatmap(ir, training_dir / plots.BITS_HEATMAP_PNG)
        history = json.dumps(result.history, indent=1) + "\n"
        atomic_write_text(training_dir / HISTORY_JSON, history)
        install_model(ir, out_dir)
    return ir, summary


def install_model(ir: IRModel, folder: Path) -> Path:
    """Write ``ir`` as ``folder/model.json`` + ``weights.npz``, keeping the rest of ``folder``.

    ``model.json`` (which hashes the arrays) is removed first and put in place last, each file
    by a rename: at every moment ``folder`` holds a complete IR or none.
    """
    folder = Path(folder)
    staging = ir_io.save(ir, folder / ".model.staging")
    (folder / ir_io.MODEL_FILE).unlink(missing_ok=True)
    os.replace(staging / ir_io.WEIGHTS_FILE, folder / ir_io.WEIGHTS_FILE)
    os.replace(staging / ir_io.MODEL_FILE, folder / ir_io.MODEL_FILE)
    shutil.rmtree(staging)
    return folder


def evaluate(ir: IRModel, dataset: Dataset) -> float:
    """The integer model's test metric (what the hardware computes): accuracy for
    classification, resolution (RMS error) for regression."""
    from .train.metrics import METRICS, reference_metrics, resolve_task

    task = resolve_task(ir.metadata.get("task"), str(dataset.task))
    return reference_metrics(ir, dataset.x_test, dataset.y_test, task)[METRICS[task][0]]


#: Samples of a streamed design that ``hgq-rtl run`` also drives with random backpressure
#: (besides every test sample at full throughput, where latency and II are checked).
STREAM_BACKPRESSURE_SAMPLES = 500
#: How often the fast harness holds ``m_axis_tready`` low in that run.
STREAM_BACKPRESSURE = 0.3


@dataclass(frozen=True)
class RunOptions:
    """What ``hgq-rtl run`` does besides training. ``vectors``: how many input vectors check 3
    drives (``None``: 100,000 for a parallel design; for a streamed one every test sample and
    the two extremes, since each sample takes hundreds of cycles)."""

    dataset: str = "digits"
    data_path: Path | None = None
    vectors: int | None = None
    synth: bool = True
    clock_ns: float = 5.0
    seed: int = 0

    def __post_init__(self) -> None:
        from rtl_gen.synth.base import check_clock_ns

        check_clock_ns(self.clock_ns)  # before training, not after it
        if self.vectors is not None and (type(self.vectors) is not int or self.vectors < 1):
            raise ValueError(f"vectors must be a positive integer or None, not {self.vectors!r}")


def run(
    out_dir: Path,
    options: RunOptions,
    train_config,
    rtl_options=None,
    *,
    quiet: bool = False,
    timer: StageTimer | None = None,
) -> dict:
    """The main job. Writes ``out_dir`` whole (model/, rtl/, synth/, report.json, report.html,
    report.md, figures/).

    ``out_dir`` is written through the write guard (:func:`hgq_rtl.guard.replacing`): it is
    refused before any work if it is not empty and not a ``run`` output, or is (or holds, or
    lies in) the data; it is built in a hidden sibling and swapped in at the end, so a failure
    or an interrupt leaves the earlier content as it was and no partial folder behind. When a
    synthesis tool fails, its log is kept beside the destination as
    ``<out_dir>.synth.failed.log`` (the error message names it).
    """
    from rtl_gen.emit import emit

    out_dir = Path(out_dir)
    timer = timer or StageTimer()
    inputs = [options.data_path]
    with guard.replacing(out_dir, "run", inputs=inputs) as tmp:  # whole, or left as it was
        dataset = timer.run(
            "data", lambda: load_dataset(options.dataset, path=options.data_path, seed=options.seed)
        )
        check_pixels_per_beat(rtl_options, train_config, dataset)
        say(
            f"data: {dataset.name}, {len(dataset.x_train)} train / {len(dataset.x_test)} test",
            quiet,
        )
        ir, summary = timer.run(
            "train",
            lambda: train_and_freeze(
                dataset, train_config, name=f"{dataset.name}_{train_config.arch}", quiet=quiet
            ),
        )
        accuracy = evaluate(ir, dataset)
        ebops = reference.ebops(ir)
        say(f"freeze: test accuracy {accuracy:.4f}, EBOPs {ebops}, check 1 passed", quiet)
        ir_io.save(ir, tmp / "model")
        manifest = timer.run("rtl", lambda: emit(ir, tmp / "rtl", rtl_options))
        stream = manifest.get("io") == "stream"
        say(
            f"rtl: {manifest['verilog']} ({manifest.get('io', 'parallel')}), latency "
            f"{manifest['latency_cycles']} cycles, II {manifest['initiation_interval']} "
            f"({timer.seconds['rtl']:.1f} s)",
            quiet,
        )
        data = np.concatenate([dataset.x_test, dataset.x_train])
        result = timer.run(
            "verify", lambda: _check3(tmp / "rtl", dataset, data, options, stream, quiet)
        )
        say(f"verify: {result.vectors} vectors, {result.mismatches} mismatches", quiet)
        synth = None
        if options.synth:
            from rtl_gen.synth import synthesize

            synth = timer.run(
                "synth",
                lambda: synthesize(
                    tmp / "rtl",
                    tmp / "synth",
                    clock_ns=options.clock_ns,
                    quiet=quiet,
                    per_layer=True,
                    # beside out_dir: tmp, and a log inside it, is removed on failure
                    failed_log=out_dir.parent / f"{out_dir.name}.synth.failed.log",
                ),
            )
        report = build_report(dataset, ir, summary, manifest, result, synth, timer, accuracy, ebops)
        (tmp / "report.json").write_text(json.dumps(report, indent=2) + "\n")
        write_report(tmp, report)  # report.html, report.md, figures/
    return report


def _check3(rtl_dir: Path, dataset: Dataset, data, options: RunOptions, stream: bool, quiet):
    """Check 3 of ``hgq-rtl run``. A parallel design: ``options.vectors`` (100,000) vectors
    through the cocotb bench. A streamed design: every test sample (and the extremes) through
    the fast harness at full throughput, which also holds it to its latency and II, then
    :data:`STREAM_BACKPRESSURE_SAMPLES` of them again under random backpressure (same build);
    the result adds both up. (The cocotb bench, with input bubbles too, is ``hgq-rtl verify``;
    its Verilator build of a CNN takes minutes.)"""
    if not stream:
        vectors = options.vectors or DEFAULT_VECTORS
        return verify_design(rtl_dir, vectors, data=data, seed=options.seed, quiet=quiet)
    vectors = options.vectors or len(dataset.x_test) + 2
    with tempfile.TemporaryDirectory(prefix="hgq-rtl-fast-") as build:  # one harness build
        fast = verify_design(
            rtl_dir,
            vectors,
            data=data,
            seed=options.seed,
            quiet=quiet,
            engine="fast",
            build_dir=Path(build),
        )
        bench = verify_design(
            rtl_dir,
            min(STREAM_BACKPRESSURE_SAMPLES, vectors),
            data=data,
            seed=options.seed,
            quiet=quiet,
            engine="fast",
            backpressure=STREAM_BACKPRESSURE,
            build_dir=Path(build),
        )
    from dataclasses import replace

    counts = ("vectors", "mismatches", "latency_errors", "missing", "extra", "protocol_errors")
    return replace(
        fast,
        **{name: getattr(fast, name) + getattr(bench, name) for name in counts},
        first_failure=fast.first_failure or bench.first_failure,
        seconds=fast.seconds + bench.seconds,
        simulator=f"{fast.simulator} + {bench.simulator}",
    )


def build_report(dataset, ir, summary, manifest, result, synth, timer, accuracy, ebops) -> dict:
    synth_fields = synth.to_dict() if synth is not None else {}
    return {
        "dataset": dataset.name,
        "test_accuracy": accuracy,
        "ebops": ebops,
        "ebops_conv": reference.conv_ebops(ir),  # how convolutions were counted
        "params": summary["params"],
        "io": manifest.get("io", "parallel"),
        "latency_cycles": manifest["latency_cycles"],
        "initiation_interval": manifest["initiation_interval"],
        "lut": synth_fields.get("lut"),
        "ff": synth_fields.get("ff"),
        "carry": synth_fields.get("carry"),
        "dsp": synth_fields.get("dsp"),
        "bram": synth_fields.get("bram"),
        "fmax_mhz": synth_fields.get("fmax_mhz"),
        "vectors": result.vectors if result is not None else None,  # None: check 3 not run
        "mismatches": result.mismatches if result is not None else None,
        "train_seconds": summary["train_seconds"],
        "rtl_seconds": timer.seconds.get("rtl"),
        "verify_seconds": timer.seconds.get("verify"),
        "synth_seconds": timer.seconds.get("synth"),
        "check1": {
            "samples": summary["check1_samples"],
            "mismatches": summary["check1_mismatches"],
        },
        "layers": [
            {
                "name": layer.name,
                "kind": layer.kind,
                "in_features": sum(f.size for f in ir.input_formats_of(layer)),
                "out_features": layer.output.size,
                "activation": getattr(layer, "activation", None) and layer.activation.value,
                "ebops": reference.layer_ebops(layer, fmt, reference.conv_ebops(ir)),
                "output_bits": int(layer.output.width.sum()),
                **{k: v for k, v in entry.items() if k != "name"},
            }
            for layer, fmt, entry in zip(
                ir.layers, ir.input_formats(), manifest["layers"], strict=True
            )
        ],
        "input_bits": sum(int(i.format.width.sum()) for i in ir.inputs),
        "synthesis": synth_fields,
        "verification": None
        if result is None
        else {
            "passed": result.passed,
            "simulator": result.simulator,
            "latency_errors": result.latency_errors,
            "missing": result.missing,
            "extra": result.extra,
            "first_failure": result.first_failure,
        },
        "stage_seconds": timer.seconds,
        "history": summary["history"],
    }


def options_dict(options: RunOptions) -> dict:
    return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(options).items()}
