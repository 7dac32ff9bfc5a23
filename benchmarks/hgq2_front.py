"""HGQ2's side of ``benchmarks/front_vs_hgq2.py``: train one HGQ2 model along a β schedule and
save it after every epoch.

Run by ``front_vs_hgq2.py`` in the interpreter given by its ``--hgq2-python`` (default: the
project's, where the ``interop`` extra installed HGQ2 on Keras' torch backend; an environment
with JAX works too). It imports nothing from hgq-rtl. Reads the data from an ``.npz``
(``x_train``, ``y_train``, ``x_test``, ``y_test``), writes ``epoch_NNNN.keras`` into ``--out``
and prints one JSON object: the wall time, the backend, and per epoch β, HGQ2's own EBOPs count
and the test accuracy of the float proxy.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np


def build(arch: str, hidden: list[int], channels: list[int], shape: tuple, classes: int):
    import keras
    from hgq.config import LayerConfigScope
    from hgq.layers import QConv2D, QDense, QMaxPooling2D

    with LayerConfigScope(beta0=0.0, enable_ebops=True):
        inp = keras.Input(shape, name="x")
        h = inp
        if arch == "cnn":
            for c in channels:
                h = QConv2D(c, 3, activation="relu")(h)
                h = QMaxPooling2D(2)(h)
            h = keras.layers.Flatten()(h)
        for width in hidden:
            h = QDense(width, activation="relu")(h)
        out = QDense(classes)(h)
    return keras.Model(inp, out, name=f"hgq2_{arch}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--arch", choices=["mlp", "cnn"], default="mlp")
    p.add_argument("--hidden", type=int, nargs="*", default=[])
    p.add_argument("--channels", type=int, nargs="*", default=[])
    p.add_argument("--betas", required=True, help="JSON list: beta of each epoch")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    import keras
    from hgq.utils.sugar import BetaScheduler, FreeEBOPs

    data = np.load(args.data)
    x_train, x_test = data["x_train"], data["x_test"]
    classes = int(max(data["y_train"].max(), data["y_test"].max())) + 1
    y_train = np.eye(classes, dtype="float32")[data["y_train"]]
    y_test = np.eye(classes, dtype="float32")[data["y_test"]]
    betas = [float(b) for b in json.loads(args.betas)]
    keras.utils.set_random_seed(args.seed)
    model = build(args.arch, args.hidden, args.channels, x_train.shape[1:], classes)
    model.compile(
        optimizer=keras.optimizers.Adam(args.lr),
        loss=keras.losses.CategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    args.out.mkdir(parents=True, exist_ok=True)

    class Save(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            self.model.save(args.out / f"epoch_{epoch:04d}.keras")

    start = time.perf_counter()
    history = model.fit(
        x_train,
        y_train,
        validation_data=(x_test, y_test),
        epochs=len(betas),
        batch_size=args.batch_size,
        callbacks=[BetaScheduler(lambda epoch: betas[epoch]), FreeEBOPs(), Save()],
        verbose=0,
    )
    seconds = time.perf_counter() - start
    logs = history.history
    print(
        json.dumps(
            {
                "backend": keras.backend.backend(),
                "train_seconds": round(seconds, 1),
                "epochs": [
                    {
                        "epoch": e,
                        "beta": betas[e],
                        "hgq2_ebops": int(logs["ebops"][e]),
                        "proxy_test_accuracy": float(logs["val_accuracy"][e]),
                    }
                    for e in range(len(betas))
                ],
            }
        )
    )


if __name__ == "__main__":
    os.environ.setdefault("KERAS_BACKEND", "torch")
    main()
