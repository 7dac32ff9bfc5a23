"""Training throughput (samples per second, CPU) of hgq-rtl against HGQ2, quiet and under load
(prints JSON).

Usage::

    .venv/bin/python benchmarks/train_throughput.py [--models mlp cnn] [--steps 50]
        [--cnn-steps 5] [--warmup 5] [--repeats 3] [--threads 1] [--no-compile] [--no-burner]
        [--spin-demo] [--hgq2-python /tmp/hgq2venv/bin/python] [--out FILE]

Models, on random data: ``mlp`` is the jet tagger 16-64-32-32-5 at batch 1024; ``cnn`` is a
Fashion-MNIST network (1×28×28 → conv 3×3 16 → ReLU → max pool 2 → conv 3×3 32 → ReLU → max
pool 2 → flatten → dense 10) at batch 1024. One training step is what ``hgq_rtl.train`` does
per batch: forward, loss = task + β·EBOPs + γ·Σf, backward, Adam step, clamp of the
fractional bits.

Every measurement runs in a fresh worker process (this script with ``--worker``), so each
starts torch with the environment it would get from the command line (OpenMP threads that
wait passively, see :mod:`hgq_rtl.train.threads`), and each runs twice: on the machine as it
is (``quiet``) and while a *burner* — a process this script starts and stops, spinning on one
core — competes for the CPUs (``burner``). Per model and condition the JSON holds:

- ``ours_default``: the trainer's step without flags (:func:`hgq_rtl.train.loop.eager_step`,
  ``--threads`` threads, default the trainer's 1);
- ``ours_compiled``: the whole step as one ``torch.compile``\\ d function
  (:func:`~hgq_rtl.train.loop.compiled_step`, ``--compile``), with its first step's seconds
  (inductor's caches persist across runs, so a second run compiles faster);
- with ``--spin-demo``, ``ours_2threads_passive`` and ``ours_2threads_spinning``: the default
  step with 2 threads whose OpenMP waits sleep (what the trainer sets up), and with
  ``OMP_WAIT_POLICY=ACTIVE`` (torch's own behaviour: they spin);
- with ``--hgq2-python``, ``hgq2_jax``: HGQ2 on Keras 3 / JAX with ``jit_compile``, run by
  ``hgq2_throughput.py`` in that interpreter (hgq-rtl never depends on HGQ2), and the ratios
  ``ours ÷ HGQ2``.

Each figure is the best of ``--repeats`` timed runs of ``--steps`` steps after ``--warmup``;
``load_1min`` is the machine's load average when the condition started. Shared machines are
noisy: compare figures of the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import hgq_rtl.train  # noqa: F401  (before torch: OpenMP threads that wait passively)

# isort: split
import torch
import torch.nn.functional as F

from hgq_rtl.train.config import TrainConfig
from hgq_rtl.train.loop import compiled_step, eager_step, make_optimizer
from hgq_rtl.train.models import build_model

BATCH = 1024
MODELS = {
    # name: (config, input shape, outputs)
    "mlp": (TrainConfig(arch="mlp", hidden=(64, 32, 32)), (16,), 5),
    "cnn": (TrainConfig(arch="cnn", channels=(16, 32), kernel_size=3, hidden=()), (1, 28, 28), 10),
}
BETA = 5e-6
KINDS = ("default", "compiled")


# --- one measurement (in a worker process) ----------------------------------------------


def _timed(run, steps: int, warmup: int, repeats: int) -> float:
    """Best samples per second of ``run()`` per step."""
    for _ in range(warmup):
        run()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            run()
        best = min(best, time.perf_counter() - start)
    return BATCH * steps / best


def measure(name: str, kind: str, steps: int, warmup: int, repeats: int) -> dict:
    """Samples per second of the trainer's ``kind`` step on model ``name``."""
    config, shape, outputs = MODELS[name]
    torch.manual_seed(0)
    model = build_model(config, shape, outputs)
    model.train()
    optimizer = make_optimizer(model, config)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn((BATCH, *shape), generator=generator)
    y = torch.randint(0, outputs, (BATCH,), generator=generator)
    total = torch.zeros(())
    if kind == "compiled":
        step = compiled_step(model, optimizer, F.cross_entropy, config.gamma)
        beta = torch.tensor(BETA)

        def run():
            total.add_(step(x, y, beta))  # accumulate the task loss without a sync

    else:
        step = eager_step(model, optimizer, F.cross_entropy, config.gamma)

        def run():
            total.add_(step(x, y, BETA)[1])

    start = time.perf_counter()
    run()
    first = time.perf_counter() - start
    rate = _timed(run, steps, warmup, repeats)
    if not torch.isfinite(total):
        raise FloatingPointError(f"the {kind} step's loss became {float(total)}")
    return {
        "samples_per_s": round(rate),
        "ms_per_step": round(BATCH / rate * 1e3, 3),
        "first_step_s": round(first, 2),
        "threads": torch.get_num_threads(),
    }


# --- orchestration ----------------------------------------------------------------------


@contextmanager
def burner(active: bool):
    """A process spinning on one core while the block runs (nothing when not ``active``)."""
    if not active:
        yield
        return
    process = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        yield
    finally:
        process.kill()
        process.wait()


def _worker(args, name: str, kind: str, threads: int, env: dict | None = None) -> dict:
    command = [sys.executable, __file__, "--worker", name, kind, "--threads", str(threads)]
    command += ["--steps", str(args.steps if name == "mlp" else args.cnn_steps)]
    command += ["--warmup", str(args.warmup), "--repeats", str(args.repeats)]
    done = subprocess.run(
        command, capture_output=True, text=True, env={**os.environ, **(env or {})}, check=False
    )
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        return {"error": lines[-1][:500] if lines else f"exit {done.returncode}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _hgq2(args, name: str) -> dict:
    script = Path(__file__).with_name("hgq2_throughput.py")
    steps = args.steps if name == "mlp" else args.cnn_steps
    command = [args.hgq2_python, str(script), "--models", name, "--batch", str(BATCH)]
    command += ["--steps", str(steps), "--warmup", str(args.warmup)]
    command += ["--repeats", str(args.repeats)]
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        return {"error": lines[-1][:500] if lines else f"exit {done.returncode}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _condition(args, name: str, loaded: bool) -> dict:
    row: dict = {"load_1min": round(os.getloadavg()[0], 2)}
    with burner(loaded):
        row["ours_default"] = _worker(args, name, "default", args.threads)
        if not args.no_compile:
            row["ours_compiled"] = _worker(args, name, "compiled", args.threads)
        if args.spin_demo:
            passive = {"OMP_WAIT_POLICY": "PASSIVE", "KMP_BLOCKTIME": "0"}
            active = {"OMP_WAIT_POLICY": "ACTIVE", "KMP_BLOCKTIME": "200"}
            row["ours_2threads_passive"] = _worker(args, name, "default", 2, passive)
            row["ours_2threads_spinning"] = _worker(args, name, "default", 2, active)
        if args.hgq2_python:
            hgq2 = _hgq2(args, name)
            row["hgq2_versions"] = hgq2.get("versions")
            candidates = [hgq2[k] for k in (name, f"{name}_without_pool_iq") if k in hgq2]
            if not candidates:
                row["hgq2_jax"] = {"error": hgq2.get("error", "not measured")}
            else:
                row["hgq2_jax"] = max(candidates, key=lambda r: r["samples_per_s"])
                theirs = row["hgq2_jax"]["samples_per_s"]
                for kind in KINDS:
                    ours = row.get(f"ours_{kind}", {}).get("samples_per_s")
                    row[f"ratio_{kind}_vs_hgq2"] = round(ours / theirs, 2) if ours else None
    return row


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", choices=sorted(MODELS), default=["mlp", "cnn"])
    p.add_argument("--steps", type=int, default=50, help="timed steps per repeat (MLP)")
    p.add_argument("--cnn-steps", type=int, default=5, help="timed steps per repeat (CNN)")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=TrainConfig().threads)
    p.add_argument("--no-compile", action="store_true", help="skip the compiled step")
    p.add_argument("--no-burner", action="store_true", help="measure on the machine as it is only")
    p.add_argument(
        "--spin-demo",
        action="store_true",
        help="also measure 2 threads that spin while waiting (torch's default policy)",
    )
    p.add_argument("--hgq2-python", help="interpreter with hgq2 and jax installed")
    p.add_argument("--out", type=Path, help="also write the JSON to this file")
    p.add_argument("--worker", nargs=2, metavar=("MODEL", "KIND"), help=argparse.SUPPRESS)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.worker:
        name, kind = args.worker
        steps = args.steps if name == "mlp" else args.cnn_steps
        print(json.dumps(measure(name, kind, steps, args.warmup, args.repeats)))
        return 0
    out: dict = {
        "batch": BATCH,
        "threads": args.threads,
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
    }
    conditions = ("quiet",) if args.no_burner else ("quiet", "burner")
    for name in args.models:
        out[name] = {}
        for condition in conditions:
            print(f"measuring {name}, {condition} ...", file=sys.stderr, flush=True)
            out[name][condition] = _condition(args, name, condition == "burner")
            print(json.dumps({name: {condition: out[name][condition]}}), file=sys.stderr)
    text = json.dumps(out, indent=1)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
