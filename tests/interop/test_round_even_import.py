"""Round half to even across the interop (issue 16): QONNX ``Quant`` nodes with ``ROUND`` /
``HALF_EVEN`` (Brevitas' default) and HGQ2 quantizers with ``RND_CONV`` / ``S_RND_CONV`` import
as ``RoundMode.RND_CONV``, bit-exact against qonnx's execution and HGQ2's forward; the QONNX
export writes ``ROUND`` for it; the checks catch round-half-up in their place."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

pytest.importorskip("hgq", reason="the interop extra (HGQ2) is not installed")
pytest.importorskip("qonnx", reason="the interop extra (qonnx) is not installed")

from test_qonnx_import import brevitas_like  # noqa: E402

from hgq_rtl.interop.hgq2 import convert  # noqa: E402
from hgq_rtl.interop.hgq2_check import check_against_keras, random_vectors  # noqa: E402
from hgq_rtl.interop.hgq2_quant import InteropError  # noqa: E402
from hgq_rtl.interop.qonnx_export import export_qonnx, to_qonnx  # noqa: E402
from hgq_rtl.interop.qonnx_import import check_against_qonnx, from_qonnx  # noqa: E402
from hgq_rtl.ir import IRModel, RoundMode, run  # noqa: E402
from hgq_rtl.ir.formats import TensorFormat  # noqa: E402
from hgq_rtl.ir.random import random_dense  # noqa: E402


def _replaced(ir: IRModel, mode: RoundMode) -> IRModel:
    """``ir`` with every RND_CONV layer rounding with ``mode`` instead."""
    layers = tuple(
        dataclasses.replace(layer, round_mode=mode)
        if getattr(layer, "round_mode", None) is RoundMode.RND_CONV
        else layer
        for layer in ir.layers
    )
    return IRModel(ir.name, None, layers, metadata=ir.metadata, inputs=ir.inputs)


@pytest.mark.parametrize("rounding", ["ROUND", "HALF_EVEN", "half_even"])
def test_a_brevitas_round_model_imports_bit_exact(rounding):
    model = brevitas_like(rounding=rounding)
    ir = from_qonnx(model)
    assert [layer.kind for layer in ir.layers] == ["dense", "dense"]
    assert ir.layers[0].round_mode is RoundMode.RND_CONV
    assert check_against_qonnx(ir, model, 5000) == 5000
    with pytest.raises(InteropError, match="differs from qonnx's execution"):
        check_against_qonnx(_replaced(ir, RoundMode.RND), model, 5000)


def _small_even_model() -> IRModel:
    """Two RND_CONV dense layers narrow enough for float32 (QONNX computes in float32) that drop
    several bits each, so ties are common."""
    rng = np.random.default_rng(7)
    input_format = fmt = TensorFormat(
        rng.random(6) < 0.5, rng.integers(1, 3, 6), rng.integers(1, 4, 6)
    )
    layers = []
    for k, (size, frac) in enumerate(((5, 1), (3, 0))):
        layer = random_dense(rng, f"dense_{k}", fmt, size, round_mode=RoundMode.RND_CONV)
        layer = dataclasses.replace(
            layer,
            weight_frac_bits=rng.integers(0, 3, layer.weight.shape),
            bias_frac_bits=rng.integers(0, 3, size),
            output=TensorFormat(np.ones(size, bool), np.full(size, 6), np.full(size, frac)),
        )
        layers.append(layer)
        fmt = layer.output
    return IRModel("even_mlp", input_format, tuple(layers))


def test_export_writes_round_and_comes_back_as_round_half_to_even(tmp_path):
    import onnx

    ir = _small_even_model()
    x = random_vectors(ir, 3000, seed=1)["input"]
    assert (run(ir, x) != run(_replaced(ir, RoundMode.RND), x)).any(axis=1).mean() > 0.3
    assert export_qonnx(ir, tmp_path / "m.onnx", vectors=3000) == 3000
    written = onnx.load(tmp_path / "m.onnx")
    modes = {
        attr.s.decode()
        for node in written.graph.node
        if node.op_type == "Quant"
        for attr in node.attribute
        if attr.name == "rounding_mode"
    }
    assert "ROUND" in modes
    back = from_qonnx(to_qonnx(ir))
    assert [layer.round_mode for layer in back.layers] == [RoundMode.RND_CONV] * 2
    assert np.array_equal(run(back, x), run(ir, x))
    with pytest.raises(InteropError, match="differs from qonnx's execution"):
        check_against_qonnx(_replaced(back, RoundMode.RND), to_qonnx(ir), 3000)


@pytest.mark.parametrize("mode", ["RND_CONV", "S_RND_CONV"])
def test_an_hgq2_round_half_to_even_model_imports_bit_exact(mode):
    import keras
    from hgq.config import QuantizerConfig
    from hgq.layers import QDense

    keras.utils.set_random_seed(3)
    conf = QuantizerConfig("kif", "datalane", round_mode=mode, f0=2)
    inp = keras.Input((6,))
    h = QDense(8, activation="relu")(inp)
    h = QDense(5, iq_conf=conf)(h)
    model = keras.Model(inp, QDense(3, iq_conf=conf)(h), name="even_round")
    conversion = convert(model)
    modes = [getattr(layer, "round_mode", None) for layer in conversion.ir.layers]
    assert RoundMode.RND_CONV in modes
    x = random_vectors(conversion.ir, 20_000, seed=4)
    assert check_against_keras(conversion, model, x) == 20_000
    wrong = dataclasses.replace(conversion, ir=_replaced(conversion.ir, RoundMode.RND))
    with pytest.raises(InteropError, match="differs from HGQ2"):
        check_against_keras(wrong, model, x)
