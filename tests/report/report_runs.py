"""Run folders as ``hgq-rtl run`` leaves them for the report tests; helpers to read a report."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import numpy as np

from hgq_rtl.ir import io as ir_io
from hgq_rtl.ir import reference
from hgq_rtl.ir.random import random_model

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run_folder(
    folder: Path,
    *,
    epochs: int = 12,
    model: bool = True,
    synth: bool = True,
    passed: bool | None = True,
) -> dict:
    """Write a run folder as ``hgq-rtl run`` leaves it (model/, synth/, report.json)."""
    ir = random_model(np.random.default_rng(3), (6, 5, 3), name="tiny_mlp")
    folder.mkdir(parents=True)
    if model:
        ir_io.save(ir, folder / "model")
    layers = [
        {
            "name": layer.name,
            "in_features": layer.in_features,
            "out_features": layer.out_features,
            "activation": layer.activation.value,
            "ebops": reference.layer_ebops(layer, fmt),
            "output_bits": int(layer.output.width.sum()),
            "latency_cycles": 2,
            "adder_depth": 3,
            "adders": 10 + k,
            "adder_bits": 80 + k,
        }
        for k, (layer, fmt) in enumerate(zip(ir.layers, ir.input_formats(), strict=True))
    ]
    synthesis = {}
    if synth:
        per_layer = {
            "dense_0": {"lut": 41, "ff": 30, "carry": 6, "dsp": 0},
            "dense_1": {"lut": 23, "ff": 12, "carry": 3, "dsp": 0},
            "(top level)": {"lut": 0, "ff": 19, "carry": 0, "dsp": 0},
        }
        synthesis = {
            "lut": 64,
            "ff": 61,
            "carry": 9,
            "dsp": 0,
            "ecp5_lut4": 120,
            "ecp5_ff": 61,
            "fmax_mhz": 250.0,
            "yosys_seconds": 1.0,
            "nextpnr_seconds": 2.0,
            "per_layer": per_layer,
        }
        (folder / "synth").mkdir()
        (folder / "synth" / "synth_report.json").write_text(json.dumps(synthesis))
    rng = np.random.default_rng(0)
    history = [
        {
            "epoch": e,
            "beta": 1e-5,
            "loss": 1.0 / (e + 1),
            "ebops": float(5000 - 300 * e + rng.integers(-400, 400)),
            "val_accuracy": float(0.5 + 0.03 * e - rng.random() * 0.1),
        }
        for e in range(epochs)
    ]
    document = {
        "dataset": "digits",
        "test_accuracy": 0.9321,
        "ebops": reference.ebops(ir),
        "params": 53,
        "latency_cycles": 5,
        "fmax_mhz": synthesis.get("fmax_mhz"),
        "vectors": None if passed is None else 2000,
        "mismatches": None if passed is None else (0 if passed else 7),
        "check1": {"samples": 450, "mismatches": 0},
        "layers": layers,
        "input_bits": int(ir.input.width.sum()),
        "synthesis": synthesis,
        "verification": None
        if passed is None
        else {
            "passed": passed,
            "simulator": "verilator",
            "latency_errors": 0,
            "missing": 0,
            "extra": 0,
            "first_failure": None if passed else {"kind": "mismatch", "index": 17},
        },
        "stage_seconds": {"data": 0.1, "train": 12.0, "rtl": 3.0, "verify": 9.0},
        "history": history,
    }
    (folder / "report.json").write_text(json.dumps(document))
    return document


def images(html_text: str) -> list[bytes]:
    """The PNG bytes of every image of a report.html (all must be embedded)."""
    sources = re.findall(r'<img [^>]*src="([^"]+)"', html_text)
    prefix = "data:image/png;base64,"
    assert all(src.startswith(prefix) for src in sources), "every image must be embedded"
    return [base64.b64decode(src[len(prefix) :], validate=True) for src in sources]


def table_rows(html_text: str, section: str) -> list[list[str]]:
    """The cells of every table row of one section of a report.html."""
    body = html_text.split(f'<section id="{section}">', 1)[1].split("</section>", 1)[0]
    rows = re.findall(r"<tr>(.*?)</tr>", body)
    return [re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row) for row in rows]
