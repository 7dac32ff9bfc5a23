"""Training throughput (samples per second, CPU) of hgq-rtl against HGQ2 (prints JSON).

Usage::

    .venv/bin/python benchmarks/train_throughput.py [--models mlp cnn] [--steps 50]
        [--warmup 10] [--repeats 3] [--threads 2] [--hgq2-python /tmp/hgq2venv/bin/python]

Models, on random data: ``mlp`` is the jet tagger 16-64-32-32-5 at batch 1024; ``cnn`` is a
Fashion-MNIST network (1×28×28 → conv 3×3 16 → ReLU → max pool 2 → conv 3×3 32 → ReLU → max
pool 2 → flatten → dense 10) at batch 1024. One training step is what ``hgq_rtl.train`` does
per batch: forward, loss = task + β·EBOPs + γ·Σf, backward, Adam step, clamp of the
fractional bits.

For each model the JSON holds ``ours_eager`` (that step, eager, as ``train.py`` runs it, with
a per-phase time breakdown), ``ours_compiled`` (the whole step — forward, backward, Adam and
clamp — as one ``torch.compile``d function; see :func:`compiled_step`), and with
``--hgq2-python`` ``hgq2_jax`` (HGQ2 on Keras 3 / JAX with ``jit_compile``, run by
``hgq2_throughput.py`` in that interpreter, so hgq-rtl never depends on HGQ2) and the ratio.
Each figure is the best of ``--repeats`` timed runs of ``--steps`` steps after ``--warmup``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from hgq_rtl.train.config import TrainConfig
from hgq_rtl.train.cost import ebops, frac_bits_sum
from hgq_rtl.train.loop import compiled_step, parameter_groups
from hgq_rtl.train.models import build_model
from hgq_rtl.train.quantizers import clamp_frac_bits

BATCH = 1024
MODELS = {
    # name: (config, input shape, outputs)
    "mlp": (TrainConfig(arch="mlp", hidden=(64, 32, 32)), (16,), 5),
    "cnn": (TrainConfig(arch="cnn", channels=(16, 32), kernel_size=3, hidden=()), (1, 28, 28), 10),
}
BETA, GAMMA = 5e-6, 2e-6


def eager_step(model: nn.Module, optimizer: torch.optim.Optimizer, config: TrainConfig):
    """One step exactly as ``hgq_rtl.train`` runs it; also returns seconds per phase."""

    def step(x: torch.Tensor, y: torch.Tensor, phases: dict[str, float]) -> float:
        t0 = time.perf_counter()
        task = F.cross_entropy(model(x), y)
        t1 = time.perf_counter()
        loss = task + BETA * ebops(model) + config.gamma * frac_bits_sum(model)
        t2 = time.perf_counter()
        if not torch.isfinite(loss):
            raise FloatingPointError(f"the loss became {loss.item()}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        t3 = time.perf_counter()
        optimizer.step()
        t4 = time.perf_counter()
        clamp_frac_bits(model)
        value = task.item()
        t5 = time.perf_counter()
        for name, seconds in (
            ("forward", t1 - t0),
            ("ebops_and_frac_sum", t2 - t1),
            ("backward", t3 - t2),
            ("adam", t4 - t3),
            ("clamp_and_item", t5 - t4),
        ):
            phases[name] = phases.get(name, 0.0) + seconds
        return value

    return step


# --- measurement -------------------------------------------------------------------------


def _data(name: str):
    _, shape, outputs = MODELS[name]
    generator = torch.Generator().manual_seed(0)
    x = torch.randn((BATCH, *shape), generator=generator)
    y = torch.randint(0, outputs, (BATCH,), generator=generator)
    return x, y


def _setup(name: str):
    config, shape, outputs = MODELS[name]
    torch.manual_seed(0)
    model = build_model(config, shape, outputs)
    model.train()
    optimizer = torch.optim.Adam(parameter_groups(model, config))
    return model, optimizer, config


def _timed(run, steps: int, warmup: int, repeats: int) -> tuple[float, float]:
    """(best samples per second, seconds of the warm-up) of ``run()`` per step."""
    start = time.perf_counter()
    for _ in range(warmup):
        run()
    warm = time.perf_counter() - start
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            run()
        best = min(best, time.perf_counter() - start)
    return BATCH * steps / best, warm


def measure_eager(name: str, steps: int, warmup: int, repeats: int) -> dict:
    model, optimizer, config = _setup(name)
    x, y = _data(name)
    step = eager_step(model, optimizer, config)
    phases: dict[str, float] = {}
    rate, _ = _timed(lambda: step(x, y, phases), steps, warmup, repeats)
    total = sum(phases.values())
    return {
        "samples_per_s": round(rate),
        "ms_per_step": round(BATCH / rate * 1e3, 3),
        "share_of_step": {k: round(v / total, 3) for k, v in phases.items()},
    }


def measure_compiled(name: str, steps: int, warmup: int, repeats: int) -> dict:
    model, optimizer, config = _setup(name)
    x, y = _data(name)
    beta = torch.tensor(BETA)
    step = compiled_step(model, optimizer, F.cross_entropy, config.gamma)
    total = torch.zeros(())

    def run():
        total.add_(step(x, y, beta))  # accumulate the task loss without a sync

    start = time.perf_counter()
    run()
    first = time.perf_counter() - start
    rate, _ = _timed(run, steps, warmup, repeats)
    if not torch.isfinite(total):
        raise FloatingPointError(f"the compiled step's loss became {float(total)}")
    return {
        "samples_per_s": round(rate),
        "ms_per_step": round(BATCH / rate * 1e3, 3),
        "first_step_s": round(first, 1),
    }


def measure_hgq2(python: str, models: list[str], steps: int, warmup: int, repeats: int) -> dict:
    script = Path(__file__).with_name("hgq2_throughput.py")
    command = [python, str(script), "--models", *models, "--batch", str(BATCH)]
    command += ["--steps", str(steps), "--warmup", str(warmup), "--repeats", str(repeats)]
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1:] or [f"exit {done.returncode}"]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", choices=sorted(MODELS), default=["mlp", "cnn"])
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-compile", action="store_true", help="measure the eager step only")
    p.add_argument("--hgq2-python", help="interpreter with hgq2 and jax installed")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    out: dict = {
        "batch": BATCH,
        "threads": args.threads,
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    for name in args.models:
        row = {"ours_eager": measure_eager(name, args.steps, args.warmup, args.repeats)}
        if not args.no_compile:
            try:
                row["ours_compiled"] = measure_compiled(name, args.steps, args.warmup, args.repeats)
            except Exception as error:  # report why compilation failed, keep the rest
                row["ours_compiled"] = {"error": f"{type(error).__name__}: {error}"[:500]}
        out[name] = row
    if args.hgq2_python:
        hgq2 = measure_hgq2(args.hgq2_python, args.models, args.steps, args.warmup, args.repeats)
        out["hgq2_versions"] = hgq2.get("versions")
        for name in args.models:
            if name not in hgq2:
                out[name]["hgq2_jax"] = {"error": hgq2.get("error", "not measured")}
                continue
            out[name]["hgq2_jax"] = hgq2[name]
            if name == "cnn" and "cnn_without_pool_iq" in hgq2:
                out[name]["hgq2_jax_without_pool_iq"] = hgq2["cnn_without_pool_iq"]
            theirs = max(
                hgq2[key]["samples_per_s"]
                for key in (name, f"{name}_without_pool_iq")
                if key in hgq2
            )
            ours = out[name].get("ours_compiled", {}).get("samples_per_s")
            out[name]["ratio_compiled_vs_hgq2"] = round(ours / theirs, 2) if ours else None
            out[name]["ratio_eager_vs_hgq2"] = round(
                out[name]["ours_eager"]["samples_per_s"] / theirs, 2
            )
    json.dump(out, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
