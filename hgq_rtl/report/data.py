"""What the report says: a run folder read into :class:`RunData`, and the numbers derived from it.

:func:`load_run` reads ``report.json``, the frozen model (``model/``, for the bit-level view of
every dense layer), ``rtl/manifest.json`` and ``synth/synth_report.json``. :class:`RunData` also
derives what several parts of the page share (the synthesis results, latency at Fmax, the
verdicts of checks 1 and 3); :func:`history_points` and :func:`pareto_mask` give the training
history and its Pareto front. No matplotlib and no HTML here; the IR is imported only when a
model folder is read.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REPORT_JSON = "report.json"
REPORT_HTML = "report.html"
REPORT_MD = "report.md"
FIGURES_DIR = "figures"


def pareto_mask(cost: Any, score: Any) -> np.ndarray:
    """Which points are non-dominated when ``cost`` is minimized and ``score`` maximized.

    Parameters
    ----------
    cost, score : array_like
        One value per point, 1-D and of one length.

    Returns
    -------
    numpy.ndarray of bool
        Point ``k`` is kept iff no other point has ``score >= score[k]`` and
        ``cost <= cost[k]`` with at least one of the two strict (equal points keep each other).

    Raises
    ------
    ValueError
        If the arrays are not 1-D of one length.
    """
    cost = np.asarray(cost, np.float64)
    score = np.asarray(score, np.float64)
    if cost.shape != score.shape or cost.ndim != 1:
        raise ValueError(
            f"cost and score must be 1-D of one length, not {cost.shape}, {score.shape}"
        )
    no_worse = (score[None, :] >= score[:, None]) & (cost[None, :] <= cost[:, None])
    better = (score[None, :] > score[:, None]) | (cost[None, :] < cost[:, None])
    return ~(no_worse & better).any(axis=1)


@dataclass
class LayerBits:
    """Bit-level view of one layer of the frozen model."""

    name: str
    weight_bits: np.ndarray  # (out, in) bit span of every integer weight; 0 = zero weight
    input_width: np.ndarray  # (in,) width of every input element
    output_width: np.ndarray  # (out,)
    bias_nonzero: int
    ebops: int
    #: Products with a non-zero weight and a non-zero-width input (of the unrolled layer, for a
    #: convolution, whose ``weight_bits`` are its kernel's)
    live_products: int


@dataclass
class RunData:
    """Everything a report is drawn from."""

    run_dir: Path
    report: dict[str, Any]
    model_name: str | None = None
    input_width: np.ndarray | None = None
    layers: list[LayerBits] = field(default_factory=list)
    model_note: str | None = None  # why the bit-level sections are missing
    per_layer_resources: dict[str, dict[str, Any]] | None = None
    synth_report: dict[str, Any] | None = None
    manifest: dict[str, Any] | None = None

    # derived numbers (properties: load_run fills the fields after construction)

    @property
    def synthesis(self) -> dict[str, Any]:
        """The synthesis results, ``{}`` when synthesis did not run.

        A synthesis run after the flow (``hgq-rtl synth RUN/rtl --out RUN/synth``) counts too.
        """
        return self.report.get("synthesis") or self.synth_report or {}

    @property
    def verification(self) -> dict[str, Any]:
        return self.report.get("verification") or {}

    @property
    def check1(self) -> dict[str, Any]:
        return self.report.get("check1") or {}

    @property
    def latency(self) -> Any:
        """Latency in clock cycles (None when unknown)."""
        return self.report.get("latency_cycles")

    @property
    def fmax(self) -> Any:
        """Fmax in MHz (None when synthesis did not run or did not measure it)."""
        return self.synthesis.get("fmax_mhz")

    @property
    def latency_ns(self) -> float | None:
        """Latency at Fmax in nanoseconds (None without both)."""
        latency, fmax = self.latency, self.fmax
        return 1000 * latency / fmax if latency is not None and fmax else None

    @property
    def check3_passed(self) -> bool | None:
        """Bit-exact sign-off (check 3): None when the simulation did not run."""
        ran = self.report.get("vectors") is not None
        return self.verification.get("passed") if ran else None

    @property
    def check1_passed(self) -> bool | None:
        """Torch float64 == integer reference (check 1): None when it did not run."""
        mismatches = self.check1.get("mismatches")
        return None if mismatches is None else mismatches == 0


def _read_json(path: Path, what: str) -> Any:
    """The JSON document of *path*, nested at most :data:`~hgq_rtl.ir.files.MAX_JSON_DEPTH`
    deep (ValueError, one line naming ``what`` and the file, otherwise)."""
    from ..ir.files import read_json

    return read_json(path, f"{what} {path}")


_NUMBER = (int, float)
#: The report's fields the page reads, and what each must be (None is allowed: not run).
_FIELDS: dict[str, tuple[type, ...]] = {
    "dataset": (str,),
    "layers": (list,),
    "history": (list,),
    "io": (str,),
    "check1": (dict,),
    "synthesis": (dict,),
    "verification": (dict,),
    "stage_seconds": (dict,),
    **dict.fromkeys(
        ("test_accuracy", "ebops", "params", "latency_cycles", "fmax_mhz", "vectors")
        + ("mismatches", "input_bits", "initiation_interval", "bram"),
        _NUMBER,
    ),
}
#: Fields inside the sub-objects the page computes with (numbers; ``passed`` a verdict).
_NESTED: dict[str, dict[str, tuple[type, ...]]] = {
    "layers": dict.fromkeys(("in_features", "out_features", "ebops"), _NUMBER),
    "check1": dict.fromkeys(("samples", "mismatches"), _NUMBER),
    "verification": {"passed": (bool,)},
    "synthesis": dict.fromkeys(("lut", "ff", "carry", "dsp", "fmax_mhz"), _NUMBER),
}
_KIND = {str: "a string", list: "a list", dict: "an object", bool: "true or false"}


def _kind(types: tuple[type, ...]) -> str:
    return "a number" if types == _NUMBER else _KIND[types[0]]


def _check_value(path: Path, where: str, value: Any, types: tuple[type, ...]) -> None:
    wrong_bool = isinstance(value, bool) and bool not in types
    if value is not None and (wrong_bool or not isinstance(value, types)):
        raise ValueError(f"{path}: {where} must be {_kind(types)}, not {json.dumps(value)[:60]}")


def check_report(report: dict[str, Any], path: Path) -> None:
    """Refuse a ``report.json`` whose fields the page reads have the wrong type (one line
    naming the field), instead of drawing a wrong page or failing half way."""
    for key, types in _FIELDS.items():
        _check_value(path, key, report.get(key), types)
    for entry_index, entry in enumerate(report.get("layers") or []):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise ValueError(f"{path}: layers[{entry_index}] must be an object with a name")
    for key, fields in _NESTED.items():
        parts = report.get(key) or []
        for index, part in enumerate(parts if isinstance(parts, list) else [parts]):
            where = f"{key}[{index}]" if isinstance(parts, list) else key
            for name, types in fields.items():
                _check_value(path, f"{where}.{name}", part.get(name), types)
    for name, value in (report.get("stage_seconds") or {}).items():
        _check_value(path, f"stage_seconds.{name}", value, _NUMBER)


def load_run(run_dir: str | Path, report: dict[str, Any] | None = None) -> RunData:
    """Read a run folder: ``report.json``, ``model/``, ``rtl/manifest.json``, ``synth/``.

    Parameters
    ----------
    run_dir : str or Path
        A folder written by ``hgq-rtl run``.
    report : dict, optional
        The ``report.json`` document; read from ``run_dir`` when not given.

    Returns
    -------
    RunData
        Everything the report is drawn from; missing parts (no model, no synthesis) are None
        or empty and the report says "not run".

    Raises
    ------
    FileNotFoundError
        If the folder or its ``report.json`` is missing.
    ValueError
        If a file is not what ``hgq-rtl run`` writes, the model folder does not load, or a
        file differs from the design's manifest (:func:`hgq_rtl.binding.check_design`; the
        run's ``model/`` must be the model the design was generated from).
    """
    from ..binding import check_design, check_model
    from ..ir import io as ir_io
    from ..ir import reference
    from ..ir.dense import DenseLayer
    from ..ir.fixed import bit_span
    from ..ir.spatial import ConvLayer

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run folder {run_dir} does not exist")
    if report is None:
        path = run_dir / REPORT_JSON
        if not path.is_file():
            raise FileNotFoundError(f"{run_dir} has no {REPORT_JSON}: is it an hgq-rtl run folder?")
        report = _read_json(path, "report")
    if not isinstance(report, dict) or not {"dataset", "layers"} <= report.keys():
        raise ValueError(f"{run_dir / REPORT_JSON} is not an hgq-rtl run report")
    check_report(report, run_dir / REPORT_JSON)
    data = RunData(run_dir, report)

    for folder in (run_dir / "model", run_dir / "rtl" / "model"):
        if folder.is_dir():
            ir = ir_io.load(folder)
            data.model_name = ir.name
            data.input_width = np.concatenate([np.asarray(i.format.width) for i in ir.inputs])
            for layer, fmt in zip(ir.layers, ir.input_formats(), strict=True):
                if not isinstance(layer, DenseLayer | ConvLayer):  # the layers with weights
                    continue
                # a convolution shows its kernel (filters × taps), not the unrolled matrix
                weight = layer.weight.reshape(layer.weight.shape[0], -1)
                unrolled = layer.to_dense() if isinstance(layer, ConvLayer) else layer
                rows, cols = np.nonzero(unrolled.weight)
                live = int((np.asarray(fmt.width)[cols] > 0).sum())
                data.layers.append(
                    LayerBits(
                        name=layer.name,
                        weight_bits=bit_span(weight),
                        input_width=np.asarray(fmt.width),
                        output_width=np.asarray(layer.output.width),
                        bias_nonzero=int((layer.bias != 0).sum()),
                        ebops=reference.layer_ebops(layer, fmt, reference.conv_ebops(ir)),
                        live_products=live,
                    )
                )
            break
    else:
        data.model_note = f"{run_dir} has no model/ folder: the bit widths are not shown"

    manifest = run_dir / "rtl" / "manifest.json"
    if manifest.is_file():
        data.manifest = _read_json(manifest, "manifest")
        if not isinstance(data.manifest, dict):
            raise ValueError(f"{manifest} is not an hgq-rtl manifest (not a JSON object)")
        # report only what the design is: the manifest bound to its Verilog and model
        check_design(run_dir / "rtl", data.manifest)
        check_model(run_dir / "rtl", data.manifest, other=run_dir / "model" / "model.json")
    synth_path = run_dir / "synth" / "synth_report.json"
    if synth_path.is_file():
        data.synth_report = _read_json(synth_path, "synthesis report")
    for source in (data.synth_report or {}, report.get("synthesis") or {}):
        per_layer = source.get("per_layer") if isinstance(source, dict) else None
        if isinstance(per_layer, dict) and per_layer:
            data.per_layer_resources = per_layer
            break
    return data


def history_points(report: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The training history's finite points: epochs, EBOPs (training estimate), val accuracy."""
    epochs, ebops, accuracy = [], [], []
    for k, row in enumerate(report.get("history") or []):
        if not isinstance(row, dict):
            continue
        e, a = row.get("ebops"), row.get("val_accuracy")
        if isinstance(e, int | float) and isinstance(a, int | float):
            if math.isfinite(e) and math.isfinite(a):
                epochs.append(int(row.get("epoch", k)))
                ebops.append(float(e))
                accuracy.append(float(a))
    return np.array(epochs, np.int64), np.array(ebops), np.array(accuracy)
