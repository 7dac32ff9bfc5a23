"""The global Pareto front of a sweep and the hardware of its points.

Every trial's kept points, frozen and measured exactly (:func:`.trial.freeze_trial`), are
offered to one :class:`~hgq_rtl.train.pareto.ParetoKeeper` over (integer model's test metric,
exact EBOPs), in the order (trial, epoch), so ties keep the earlier trial's point whatever order
the trials finished in. :func:`build_point` then generates, verifies (check 3, as ``hgq-rtl
run`` does) and optionally synthesizes one point in ``DIR/points/<trial>_eNNNN/``; the sweep
runs it as one Ray task per point. :func:`lut_front` is the front over (test metric, LUTs).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from ..train.pareto import ParetoKeeper, ParetoPoint

POINTS_DIR = "points"
BUILD_FILE = "build.json"


def global_front(rows: list[dict[str, Any]], higher_is_better: bool) -> list[dict[str, Any]]:
    """The rows (dicts with ``trial``, ``epoch``, ``test_metric``, ``exact_ebops``) that no
    other row covers, cheapest first."""
    ordered = sorted(rows, key=lambda r: (r["trial"], r["epoch"]))
    keeper = ParetoKeeper(higher_is_better)
    for index, row in enumerate(ordered):
        keeper.offer(ParetoPoint(index, row["beta"], row["test_metric"], row["exact_ebops"]))
    kept = [ordered[point.epoch] for point in keeper.points]
    return sorted(kept, key=lambda r: (r["exact_ebops"], r["trial"], r["epoch"]))


def lut_front(rows: list[dict[str, Any]], higher_is_better: bool) -> set[str]:
    """Names of the points (``point`` key) on the front of test metric against LUTs, among the
    rows that were synthesized."""
    measured = sorted(
        (r for r in rows if r.get("lut") is not None), key=lambda r: (r["trial"], r["epoch"])
    )
    keeper = ParetoKeeper(higher_is_better)
    for index, row in enumerate(measured):
        keeper.offer(ParetoPoint(index, row["beta"], row["test_metric"], row["lut"]))
    return {measured[point.epoch]["point"] for point in keeper.points}


def point_name(row: dict[str, Any]) -> str:
    return f"{row['trial']}_e{row['epoch']:04d}"


def _model_hash(ir_dir: Path) -> str:
    return hashlib.sha256((ir_dir / "model.json").read_bytes()).hexdigest()


def build_point(
    out_dir: Path, row: dict[str, Any], build: dict[str, Any], data: dict[str, Any]
) -> dict[str, Any]:
    """Generate the RTL of one front point, verify it bit for bit against the integer
    reference on the data set's samples (then random vectors), and synthesize it when
    ``build["synth"]``; the figures go to ``points/<name>/build.json`` and are returned.

    A point built before with the same model and options is not built again (``--resume``).
    """
    from ..flow import RunOptions, _check3
    from ..ir import io as ir_io
    from ..train.checkpoint import atomic_write_text
    from .trial import load_data

    out_dir = Path(out_dir)
    name = point_name(row)
    folder = out_dir / POINTS_DIR / name
    ir_dir = out_dir / row["model"]
    key = {"model_sha256": _model_hash(ir_dir), "build": build}
    record_path = folder / BUILD_FILE
    if record_path.is_file():
        record = json.loads(record_path.read_text())
        if record.get("key") == key:
            return record["figures"]
    import numpy as np

    from rtl_gen.emit import emit

    ir = ir_io.load(ir_dir)
    dataset = load_data(data)
    manifest = emit(ir, folder / "rtl")
    stream = manifest.get("io") == "stream"
    samples = np.concatenate([dataset.x_test, dataset.x_train])
    options = RunOptions(vectors=build["vectors"], seed=0)
    result = _check3(folder / "rtl", dataset, samples, options, stream, True)
    figures: dict[str, Any] = {
        "point": name,
        "io": manifest.get("io", "parallel"),
        "latency_cycles": manifest["latency_cycles"],
        "vectors": result.vectors,
        "mismatches": result.mismatches,
        "verified": bool(result.passed),
        "lut": None,
        "ff": None,
        "fmax_mhz": None,
    }
    if build["synth"]:
        from rtl_gen.synth import synthesize

        report = synthesize(
            folder / "rtl",
            folder / "synth",
            clock_ns=build["clock_ns"],
            nextpnr=build["nextpnr"],
            quiet=True,
            failed_log=folder / "synth.failed.log",
        ).to_dict()
        figures.update(lut=report.get("lut"), ff=report.get("ff"), fmax_mhz=report.get("fmax_mhz"))
    atomic_write_text(record_path, json.dumps({"key": key, "figures": figures}, indent=1) + "\n")
    return figures
