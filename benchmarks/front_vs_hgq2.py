"""Our accuracy-versus-EBOPs front against HGQ2's, same data, architecture and β schedule.

Usage::

    .venv/bin/python benchmarks/front_vs_hgq2.py [--datasets digits fashion_mlp] [--epochs N]
        [--beta-start 1e-7] [--beta-end 1e-4] [--hgq2-python PYTHON] [--every K] [--out DIR]

For each data set both tools train the same MLP (digits: 64-32-10; Fashion-MNIST: 784-64-32-10),
with the same batch size, learning rate, epochs and per-epoch β (a log-uniform ramp from
``--beta-start`` to ``--beta-end``; the two tools weigh EBOPs in the loss by the same β but
count their surrogate EBOPs each its own way, so equal β is equal intent, not equal pressure).

* Ours: ``hgq_rtl.flow.train_and_freeze`` (what ``hgq-rtl train`` runs): its kept Pareto points
  frozen to integer models, each measured exactly (EBOPs of the IR, accuracy of the integer
  reference on the test split).
* HGQ2 0.2 (``benchmarks/hgq2_front.py``, in ``--hgq2-python``; default this interpreter, where
  the ``interop`` extra runs HGQ2 on Keras' torch backend): the model saved after every epoch;
  every ``--every``-th epoch is traced (``trace_minmax`` on the training data, as HGQ2's users do
  before conversion), imported into our IR by ``hgq_rtl.interop`` (checked bit-exact against
  HGQ2's forward) and measured with the same yardstick as ours.

Both fronts (lowest EBOPs for their accuracy) are compared by the hypervolume they dominate over
``[0, E] x [chance, 1]`` (``E`` the largest EBOPs of either front; normalized to 1) and by the
accuracy at matched EBOPs (at each of HGQ2's front points, ours with no more EBOPs). Prints one
JSON object per data set and writes ``front_<dataset>.png`` with both fronts into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

DATASETS = {
    # name: (data set, hidden layers, batch size)
    "digits": ("digits", (64, 32), 64),
    "fashion_mlp": ("fashion_mnist", (64, 32), 256),
}
HERE = Path(__file__).resolve().parent
os.environ.setdefault("KERAS_BACKEND", "torch")  # HGQ2 models are read here on torch


def pareto(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points no other point beats (fewer or equal EBOPs and higher accuracy), by EBOPs."""
    front: list[tuple[float, float]] = []
    for ebops, accuracy in sorted(points, key=lambda p: (p[0], -p[1])):
        if not front or accuracy > front[-1][1]:
            front.append((ebops, accuracy))
    return front


def best_at(front: list[tuple[float, float]], ebops: float) -> float | None:
    """The best accuracy of ``front`` with at most ``ebops``."""
    within = [a for e, a in front if e <= ebops]
    return max(within) if within else None


def hypervolume(front: list[tuple[float, float]], e_max: float, floor: float) -> float:
    """Area dominated by ``front`` in ``[0, e_max] x [floor, 1]``, normalized to 1."""
    area = 0.0
    for k, (ebops, accuracy) in enumerate(front):
        if ebops >= e_max:
            break
        right = front[k + 1][0] if k + 1 < len(front) else e_max
        area += (min(right, e_max) - ebops) * max(accuracy - floor, 0.0)
    return area / (e_max * (1.0 - floor))


def ours(dataset, hidden, batch, betas, args) -> dict[str, Any]:
    from hgq_rtl.flow import train_and_freeze
    from hgq_rtl.train.config import BetaSchedule, TrainConfig

    config = TrainConfig(
        hidden=hidden,
        epochs=len(betas),
        batch_size=batch,
        beta=BetaSchedule(args.beta_start, args.beta_end),
        seed=args.seed,
        device="cpu",
    )
    start = time.perf_counter()
    _, summary = train_and_freeze(dataset, config, name="ours", quiet=True)
    points = [(float(r["exact_ebops"]), float(r["reference_accuracy"])) for r in summary["front"]]
    return {"seconds": round(time.perf_counter() - start, 1), "points": points}


def hgq2(dataset, hidden, batch, betas, args, work: Path) -> dict[str, Any]:
    from hgq.utils import trace_minmax

    from hgq_rtl.interop.hgq2 import convert, load_keras
    from hgq_rtl.interop.hgq2_check import check_against_keras, random_vectors
    from hgq_rtl.ir import reference
    from hgq_rtl.train.metrics import reference_metrics

    data = work / "data.npz"
    np.savez(
        data,
        x_train=dataset.x_train,
        y_train=dataset.y_train,
        x_test=dataset.x_test,
        y_test=dataset.y_test,
    )
    command = [
        str(args.hgq2_python or sys.executable),
        str(HERE / "hgq2_front.py"),
        "--data", str(data),
        "--out", str(work / "models"),
        "--hidden", *map(str, hidden),
        "--betas", json.dumps(betas),
        "--batch-size", str(batch),
        "--seed", str(args.seed),
    ]  # fmt: skip
    start = time.perf_counter()
    run = subprocess.run(command, capture_output=True, text=True, check=False)
    if run.returncode != 0:
        raise RuntimeError(f"HGQ2 training failed: {run.stderr.strip().splitlines()[-1:]}")
    trained = json.loads(run.stdout.strip().splitlines()[-1])
    seconds = time.perf_counter() - start
    points, checked = [], 0
    x_train = dataset.x_train.astype("float32")
    for epoch in range(0, len(betas), args.every):
        model = load_keras(work / "models" / f"epoch_{epoch:04d}.keras")
        trace_minmax(model, x_train, verbose=0)
        conversion = convert(model, f"hgq2_e{epoch}")
        checked += check_against_keras(conversion, model, random_vectors(conversion.ir, 1000, 0))
        accuracy = reference_metrics(
            conversion.ir, dataset.x_test, dataset.y_test, "classification"
        )
        points.append((float(reference.ebops(conversion.ir)), float(accuracy["accuracy"])))
    return {
        "seconds": round(seconds, 1),
        "backend": trained["backend"],
        "epochs_measured": len(points),
        "vectors_bit_exact_with_hgq2": checked,
        "points": points,
    }


def compare(name: str, ours_run: dict, hgq2_run: dict, classes: int, out: Path | None) -> dict:
    mine, theirs = pareto(ours_run["points"]), pareto(hgq2_run["points"])
    e_max = max(p[0] for p in mine + theirs)
    floor = 1.0 / classes
    matched = []
    for ebops, accuracy in theirs:
        own = best_at(mine, ebops)
        matched.append(
            {
                "ebops": ebops,
                "hgq2": round(accuracy, 4),
                "ours": None if own is None else round(own, 4),
            }
        )
    deficits = [m["hgq2"] - m["ours"] for m in matched if m["ours"] is not None]
    row = {
        "dataset": name,
        "ours": {"front": mine, "hypervolume": round(hypervolume(mine, e_max, floor), 4),
                 "train_seconds": ours_run["seconds"]},
        "hgq2": {"front": theirs, "hypervolume": round(hypervolume(theirs, e_max, floor), 4),
                 **{k: v for k, v in hgq2_run.items() if k != "points"}},
        "matched_ebops": matched,
        "max_accuracy_deficit_points": round(100 * max(deficits, default=0.0), 2),
        "hgq2_points_below_our_smallest": sum(m["ours"] is None for m in matched),
    }  # fmt: skip
    if out is not None:
        _plot(name, mine, theirs, out / f"front_{name}.png")
    return row


def _plot(name: str, mine, theirs, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 4))
    for front, label in ((mine, "hgq-rtl"), (theirs, "HGQ2")):
        axes.step(
            [p[0] for p in front], [p[1] for p in front], where="post", marker="o", label=label
        )
    axes.set_xscale("log")
    axes.set_xlabel("EBOPs of the integer model")
    axes.set_ylabel("test accuracy of the integer model")
    axes.set_title(name)
    axes.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", nargs="+", choices=sorted(DATASETS), default=["digits"])
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--beta-start", type=float, default=1e-7)
    p.add_argument("--beta-end", type=float, default=1e-4)
    p.add_argument("--hgq2-python", type=Path, help="HGQ2's interpreter (default: this one)")
    p.add_argument("--every", type=int, default=1, help="measure every K-th HGQ2 epoch")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, help="where the figures go")
    args = p.parse_args(argv)
    try:
        import hgq  # noqa: F401  (the interop extra: the import of HGQ2 models)
    except ImportError:
        print(
            "front_vs_hgq2: error: HGQ2 is not installed (pip install -e .[interop])",
            file=sys.stderr,
        )
        return 2

    from hgq_rtl.data import load_dataset
    from hgq_rtl.train.config import BetaSchedule

    schedule = BetaSchedule(args.beta_start, args.beta_end)
    betas = [schedule(epoch, args.epochs) for epoch in range(args.epochs)]
    for name in args.datasets:
        source, hidden, batch = DATASETS[name]
        dataset = load_dataset(source, seed=args.seed)
        if dataset.x_train.ndim > 2:  # an MLP on images: both tools get the flattened pixels
            flat = {k: getattr(dataset, k) for k in ("x_train", "x_test")}
            dataset = replace(dataset, **{k: v.reshape(len(v), -1) for k, v in flat.items()})
        with tempfile.TemporaryDirectory(prefix="front_vs_hgq2.") as tmp:
            theirs = hgq2(dataset, hidden, batch, betas, args, Path(tmp))
        mine = ours(dataset, hidden, batch, betas, args)
        print(json.dumps(compare(name, mine, theirs, dataset.n_outputs, args.out)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
