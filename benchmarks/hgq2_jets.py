"""HGQ2-trained models for ``benchmarks/vs_alkaid.py --hgq2`` / ``--hgq2-train``.

:func:`train_jet_models` trains the jet tagger's shape (16-64-32-32-5, ReLU, HGQ2's default
quantizers) on a jet-like synthetic task at several β and saves each as ``.keras``;
:func:`load_row` loads one such file and gives both tools their input: our IR through
``hgq_rtl.interop`` (checked bit-exact against HGQ2's forward, as ``hgq-rtl import`` does) and
alkaid's traced logic through its own Keras converter (``alkaid.converter.trace_model``), so
each tool reads the model the way a user of it would.

Needs the project's ``interop`` extra (HGQ2, Keras) and alkaid. Keras runs on the torch backend.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "torch")

#: The jet tagger's layer sizes (the HGQ paper's jet-tagging MLP).
JET_SIZES = (64, 32, 32, 5)


def jet_data(samples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """16 Gaussian features, 5 classes decided by a fixed linear rule with some mixing: a task
    with the jet data set's shape (the OpenML jets cannot be downloaded here)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(samples, 16)).astype("float32")
    mix = rng.normal(scale=0.3, size=(16, 5)).astype("float32")
    logits = x[:, :5] + 0.5 * x[:, 5:10] + x @ mix
    y = np.eye(5, dtype="float32")[np.argmax(logits, axis=1)]
    return x, y


def train_jet_models(
    betas: list[float], out: Path, *, epochs: int, seed: int = 0, say=print
) -> list[Path]:
    """Train one 16-64-32-32-5 HGQ2 model per β (constant β, EBOPs on), trace the integer bits
    of its WRAP quantizers on the training data, save ``out/jet_b<β>.keras``; the paths."""
    import keras
    from hgq.config import LayerConfigScope
    from hgq.layers import QDense
    from hgq.utils import trace_minmax

    x, y = jet_data(20_000, seed)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for beta in betas:
        start = time.perf_counter()
        keras.utils.set_random_seed(seed)
        with LayerConfigScope(beta0=float(beta), enable_ebops=True):
            inp = keras.Input((16,), name="jets")
            h = inp
            for k, width in enumerate(JET_SIZES):
                last = k == len(JET_SIZES) - 1
                h = QDense(width, activation=None if last else "relu", name=f"dense{k}")(h)
            model = keras.Model(inp, h, name="jet_mlp")
        model.compile(
            optimizer=keras.optimizers.Adam(3e-3),
            loss=keras.losses.CategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
        history = model.fit(x, y, epochs=epochs, batch_size=512, verbose=0)
        trace_minmax(model, x, verbose=0)
        path = out / f"jet_b{beta:g}.keras"
        model.save(path)
        accuracy = float(history.history["accuracy"][-1])
        say(f"trained {path.name}: accuracy {accuracy:.3f} in {time.perf_counter() - start:.1f} s")
        paths.append(path)
    return paths


@dataclass
class Hgq2Row:
    """One HGQ2 model as both tools read it."""

    name: str
    ir: Any  # our IRModel, checked bit-exact with HGQ2
    checked_vectors: int
    import_seconds: float  # ours: convert + check (Keras already loaded)
    alkaid_trace: Any  # a callable (hard_dc) -> alkaid CombLogic, timed by the caller


def load_row(path: Path, vectors: int, seed: int = 0) -> Hgq2Row:
    """Load ``path`` (.keras), import it into our IR and check it against HGQ2 on ``vectors``
    random vectors; alkaid's trace is left to the caller (it takes its delay constraint)."""
    from hgq_rtl.interop.hgq2 import convert, load_keras
    from hgq_rtl.interop.hgq2_check import check_against_keras, random_vectors

    model = load_keras(path)
    start = time.perf_counter()
    conversion = convert(model, path.stem.replace(".", "_").replace("-", "_"))
    checked = check_against_keras(conversion, model, random_vectors(conversion.ir, vectors, seed))
    seconds = time.perf_counter() - start

    def alkaid_trace(hard_dc: int) -> Any:
        from alkaid.converter import trace_model
        from alkaid.trace import trace

        inputs, outputs = trace_model(model, solver_options={"hard_dc": hard_dc})
        return trace(inputs, outputs, keep_dead_inputs=True)

    return Hgq2Row(path.stem, conversion.ir, checked, seconds, alkaid_trace)
