"""HGQ2 (Keras 3, JAX backend, jit) training throughput on the models of train_throughput.py.

Run by ``train_throughput.py --hgq2-python PYTHON`` in a separate environment that has ``hgq2``
and ``jax`` (hgq-rtl never imports HGQ2). Prints one JSON object: per model, samples per second
of ``model.fit`` and of a ``train_on_batch`` loop (after warm-up), and the faster of the two.
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("KERAS_BACKEND", "jax")


def build(name: str, beta: float, pool_iq: bool):
    import keras
    from hgq.config import LayerConfigScope
    from hgq.layers import QConv2D, QDense, QMaxPooling2D

    with LayerConfigScope(beta0=beta, enable_ebops=True):
        if name == "mlp":
            layers = [
                keras.Input((16,)),
                QDense(64, activation="relu"),
                QDense(32, activation="relu"),
                QDense(32, activation="relu"),
                QDense(5),
            ]
        else:
            layers = [
                keras.Input((28, 28, 1)),
                QConv2D(16, 3, activation="relu"),
                QMaxPooling2D(2, enable_iq=pool_iq),
                QConv2D(32, 3, activation="relu"),
                QMaxPooling2D(2, enable_iq=pool_iq),
                keras.layers.Flatten(),
                QDense(10),
            ]
        return keras.Sequential(layers)


def measure(name: str, batch: int, steps: int, warmup: int, repeats: int, pool_iq: bool) -> dict:
    import keras
    import numpy as np

    keras.utils.set_random_seed(0)
    model = build(name, 5e-6, pool_iq)
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=True,
    )
    shape = (16,) if name == "mlp" else (28, 28, 1)
    classes = 5 if name == "mlp" else 10
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch * steps, *shape), dtype=np.float32)
    y = rng.integers(0, classes, batch * steps)
    # train_on_batch loop
    xb, yb = x[:batch], y[:batch]
    for _ in range(warmup):
        model.train_on_batch(xb, yb)
    loop = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            model.train_on_batch(xb, yb)
        loop = max(loop, batch * steps / (time.perf_counter() - start))
    # model.fit over steps batches (first epoch compiles)
    model.fit(x, y, batch_size=batch, epochs=1, verbose=0, shuffle=False)
    fit = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        model.fit(x, y, batch_size=batch, epochs=1, verbose=0, shuffle=False)
        fit = max(fit, batch * steps / (time.perf_counter() - start))
    return {
        "fit_samples_per_s": round(fit),
        "train_on_batch_samples_per_s": round(loop),
        "samples_per_s": round(max(fit, loop)),
        "params": int(model.count_params()),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["mlp", "cnn"], choices=["mlp", "cnn"])
    p.add_argument("--batch", type=int, default=1024)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    import hgq
    import jax
    import keras

    out: dict = {
        "versions": {"hgq2": hgq.__version__, "keras": keras.__version__, "jax": jax.__version__},
        "backend": keras.backend.backend(),
        "devices": [str(d) for d in jax.devices()],
    }
    for name in args.models:
        out[name] = measure(name, args.batch, args.steps, args.warmup, args.repeats, True)
        if name == "cnn":
            out["cnn_without_pool_iq"] = measure(
                name, args.batch, args.steps, args.warmup, args.repeats, False
            )
    print(json.dumps(out))


if __name__ == "__main__":
    main()
