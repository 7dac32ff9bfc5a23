"""Small HGQ2 models trained inside the tests (seconds on random data) for tests/interop.

Each builder is cached: the test modules share one trained model per builder and arguments
(the tests only read them).
"""

from __future__ import annotations

import functools
import os

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "torch")


def _fit(model, inputs, outputs, epochs: int) -> None:
    model.compile(optimizer="adam", loss="mse")
    model.fit(inputs, outputs, epochs=epochs, batch_size=256, verbose=0)


@functools.cache
def jet_mlp(seed: int = 0, epochs: int = 2):
    """The jet tagger's shape, 16-64-32-32-5 with ReLU, HGQ2's default quantizers (KIF
    datalane RND/WRAP per element, KBI weights RND/SAT_SYM per weight), trained on a
    jet-like synthetic task; the WRAP integer bits are then traced on the data."""
    import keras
    from hgq.layers import QDense
    from hgq.utils import trace_minmax

    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(4096, 16)).astype("float32")
    y = np.eye(5, dtype="float32")[np.argmax(x[:, :5] + 0.3 * x[:, 5:10], axis=1)]
    inp = keras.Input((16,), name="jets")
    h = QDense(64, activation="relu")(inp)
    h = QDense(32, activation="relu")(h)
    h = QDense(32, activation="relu")(h)
    out = QDense(5)(h)
    model = keras.Model(inp, out, name="jet_mlp")
    _fit(model, x, y, epochs)
    trace_minmax(model, x, verbose=0)
    return model, x


@functools.cache
def graph_model(seed: int = 1, epochs: int = 1):
    """Two inputs and every other supported kind: KBI and KIF datalane quantizers, per element,
    per channel and per tensor, WRAP/SAT/SAT_SYM, RND/TRN; QAdd, QUnaryFunctionLUT (tanh),
    Keras ReLU, Reshape, Flatten, Concatenate, an output quantizer."""
    import keras
    from hgq.config import QuantizerConfig
    from hgq.layers import QAdd, QDense, QUnaryFunctionLUT

    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(2048, 6)).astype("float32")
    b = rng.normal(size=(2048, 2, 4)).astype("float32")
    y = rng.normal(size=(2048, 10)).astype("float32")
    per_tensor_sat_trn = QuantizerConfig(
        "kif", "datalane", overflow_mode="SAT", round_mode="TRN", heterogeneous_axis=(), f0=3
    )
    kbi_sat = QuantizerConfig("kbi", "datalane", overflow_mode="SAT", b0=6, i0=2)
    per_channel = QuantizerConfig(
        "kif", "datalane", overflow_mode="SAT_SYM", homogeneous_axis=(0, 1), i0=3, f0=4, k0=False
    )
    in_a = keras.Input((6,), name="a")
    in_b = keras.Input((2, 4), name="b")
    ha = QDense(8, activation="relu", iq_conf=per_tensor_sat_trn)(in_a)
    hb = QDense(4, iq_conf=kbi_sat)(in_b)  # (2, 4): one dense per row
    hb = keras.layers.ReLU()(hb)
    hb = keras.layers.Flatten()(hb)
    s = QAdd(iq_confs=[kbi_sat, QuantizerConfig("kif", "datalane")])([ha, hb])
    t = QUnaryFunctionLUT("tanh", enable_oq=True)(s)
    t = keras.layers.Reshape((2, 4))(t)
    t = QDense(3, iq_conf=per_channel, enable_oq=True)(t)
    out = keras.layers.Concatenate()([keras.layers.Flatten()(t), s])
    out = QDense(10)(out)
    model = keras.Model([in_a, in_b], out, name="graph")
    _fit(model, [a, b], y, epochs)
    return model, {"a": a, "b": b}


@functools.cache
def cnn_model(seed: int = 2, epochs: int = 1):
    """QConv2D (ReLU) → QMaxPooling2D → QConv2D (even 'same' padding) → QAveragePooling2D →
    Flatten → QDense, on 8×8×2 images."""
    import keras
    from hgq.layers import QAveragePooling2D, QConv2D, QDense, QMaxPooling2D

    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(512, 8, 8, 2)).astype("float32")
    y = rng.normal(size=(512, 3)).astype("float32")
    inp = keras.Input((8, 8, 2), name="image")
    h = QConv2D(4, 3, activation="relu")(inp)
    h = QMaxPooling2D(2)(h)
    h = QConv2D(4, 3, padding="same")(h)
    h = QAveragePooling2D(2, strides=1)(h)
    out = QDense(3)(keras.layers.Flatten()(h))
    model = keras.Model(inp, out, name="cnn")
    _fit(model, x, y, epochs)
    return model, x


@functools.cache
def sequence_model(seed: int = 3, epochs: int = 1):
    """QConv1D (ReLU) → QBatchNormalization → QEinsumDense over channels → global max and
    global average pooling (QAdd of the two) → QEinsumDenseBatchnorm, on 16×3 sequences."""
    import keras
    from hgq.layers import (
        QAdd,
        QBatchNormalization,
        QConv1D,
        QEinsumDense,
        QEinsumDenseBatchnorm,
        QGlobalAveragePooling1D,
        QGlobalMaxPooling1D,
    )

    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(512, 16, 3)).astype("float32")
    y = rng.normal(size=(512, 2)).astype("float32")
    inp = keras.Input((16, 3), name="sequence")
    h = QConv1D(4, 3, padding="same", activation="relu")(inp)
    h = QBatchNormalization()(h)
    h = QEinsumDense("btc,cd->btd", output_shape=(16, 4), bias_axes="d")(h)
    s = QAdd()([QGlobalMaxPooling1D()(h), QGlobalAveragePooling1D()(h)])
    out = QEinsumDenseBatchnorm("bc,cd->bd", output_shape=(2,), bias_axes="d")(s)
    model = keras.Model(inp, out, name="sequence")
    _fit(model, x, y, epochs)
    return model, x
