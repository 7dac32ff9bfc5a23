"""HGQ2 import (issue 16): small HGQ2 models trained here, imported, and shown bit-exact with
HGQ2's own forward; altered imports are caught; the Verilog of one matches the reference."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

pytest.importorskip("hgq", reason="the interop extra (HGQ2) is not installed")

from hgq2_models import cnn_model, graph_model, jet_mlp, sequence_model  # noqa: E402

from hgq_rtl.cli import main  # noqa: E402
from hgq_rtl.interop.hgq2 import convert  # noqa: E402
from hgq_rtl.interop.hgq2_check import (  # noqa: E402
    check_against_keras,
    quantize_data,
    random_vectors,
)
from hgq_rtl.interop.hgq2_graph import fuse_requantization  # noqa: E402
from hgq_rtl.interop.hgq2_quant import InteropError  # noqa: E402
from hgq_rtl.ir import DenseLayer, IRModel, RoundMode, load, run  # noqa: E402


@pytest.fixture(scope="module")
def jet():
    return jet_mlp()


@pytest.fixture(scope="module")
def graph():
    return graph_model()


def test_jet_mlp_is_bit_exact_on_100k_vectors(jet, tmp_path):
    model, data = jet
    conversion = convert(model)
    kinds = [layer.kind for layer in conversion.ir.layers]
    assert kinds == ["dense"] * 4  # every requantization merged into its dense layer
    x = random_vectors(conversion.ir, 100_000, seed=3)
    assert check_against_keras(conversion, model, x) == 100_000
    # the same through the written file, and on the training data quantized by HGQ2
    assert (
        main(
            [
                "import",
                str(_save(model, tmp_path)),
                "--out",
                str(tmp_path / "ir"),
                "-q",
                "--vectors",
                "1000",
                "--data",
                str(_npy(tmp_path, data)),
            ]
        )
        == 0
    )
    ir = load(tmp_path / "ir")
    assert ir.metadata["checked_vectors"] == 1000 + len(data)
    assert np.array_equal(run(ir, x["input"]), run(conversion.ir, x["input"]))
    # --calibrate re-derives the WRAP integer bits from (here: wider) data, then checks again
    wide = _npy(tmp_path, data * 4)
    assert (
        main(
            [
                "import",
                str(tmp_path / "model.keras"),
                "--out",
                str(tmp_path / "cal"),
                "-q",
                "--vectors",
                "1000",
                "--calibrate",
                str(wide),
            ]
        )
        == 0
    )
    calibrated = load(tmp_path / "cal")
    assert calibrated.inputs[0].format.int_bits.sum() > ir.inputs[0].format.int_bits.sum()


def test_graph_model_is_bit_exact(graph):
    model, _ = graph
    conversion = convert(model)
    kinds = {layer.kind for layer in conversion.ir.layers}
    assert {"dense", "add", "lookup", "concat", "quantize"} <= kinds
    assert [i.name for i in conversion.ir.inputs] == ["a", "b"]
    x = random_vectors(conversion.ir, 20_000, seed=4)
    assert check_against_keras(conversion, model, x) == 20_000


@pytest.mark.parametrize("build", [cnn_model, sequence_model], ids=["cnn", "sequence"])
def test_convolutional_models_are_bit_exact(build):
    """Conv1D/2D (valid, even 'same'), max, average and global pooling, batch normalization,
    einsum dense (with fused batch norm): 10,000 vectors each (the CNN's HGQ2 forward is the
    slow part)."""
    model, data = build()
    conversion = convert(model)
    kinds = {layer.kind for layer in conversion.ir.layers}
    assert "conv" in kinds
    (model_input,) = conversion.ir.inputs
    assert model_input.shape == (data.shape[-1], *data.shape[1:-1])  # channels first in the IR
    x = random_vectors(conversion.ir, 10_000, seed=7)
    assert check_against_keras(conversion, model, x) == 10_000
    # real data, quantized by the input quantizer's arithmetic, through the IR's input order
    n = check_against_keras(
        conversion,
        model,
        quantize_data(conversion, {model_input.name: data}),
        {model_input.name: data},
    )
    assert n == len(data)


def _altered_weight(ir: IRModel) -> IRModel:
    """The first dense layer with one live weight changed by one LSB."""
    layers = list(ir.layers)
    k, dense = next((k, x) for k, x in enumerate(layers) if isinstance(x, DenseLayer))
    fmt = ir.input_formats_of(dense)[0]
    i, j = np.argwhere((dense.weight != 0) & (fmt.width[None, :] > 0))[0]
    weight = dense.weight.copy()
    weight[i, j] += 1
    layers[k] = dataclasses.replace(dense, weight=weight)
    return IRModel(ir.name, None, tuple(layers), metadata=ir.metadata, inputs=ir.inputs)


def test_an_altered_weight_is_caught_and_named(jet):
    model, _ = jet
    conversion = convert(model)
    raw = _altered_weight(conversion.raw)
    altered = dataclasses.replace(conversion, raw=raw, ir=fuse_requantization(raw))
    x = random_vectors(conversion.ir, 5000, seed=5)
    with pytest.raises(InteropError, match=r"differs from HGQ2 .* first at layer 'q_dense'"):
        check_against_keras(altered, model, x)


def test_a_flipped_rounding_mode_is_caught(jet):
    model, _ = jet
    conversion = convert(model)
    layers = list(conversion.ir.layers)
    layers[1] = dataclasses.replace(layers[1], round_mode=RoundMode.TRN)
    ir = dataclasses.replace(conversion.ir, layers=tuple(layers))
    ir = IRModel(ir.name, None, ir.layers, metadata=ir.metadata, inputs=ir.inputs)
    x = random_vectors(conversion.ir, 5000, seed=6)
    with pytest.raises(InteropError, match="differs from HGQ2"):
        check_against_keras(dataclasses.replace(conversion, ir=ir), model, x)


def test_unsupported_layer_is_one_line_and_exit_2(tmp_path, capsys):
    import keras
    from hgq.layers import QDense

    inp = keras.Input((8,))
    norm = keras.layers.LayerNormalization(name="norm")
    model = keras.Model(inp, norm(QDense(4)(inp)), name="unsupported")
    path = tmp_path / "unsupported.keras"
    model.save(path)
    assert main(["import", str(path), "--out", str(tmp_path / "ir"), "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["hgq-rtl: error: layer 'norm' (LayerNormalization) is not supported"]
    assert not (tmp_path / "ir").exists()


@pytest.mark.slow
def test_imported_mlp_verilog_matches_the_reference(jet, tmp_path):
    from hgq_rtl.verification import verify_design
    from rtl_gen.emit import emit

    model, _ = jet
    ir = convert(model).ir
    emit(ir, tmp_path / "rtl")
    manifest = json.loads((tmp_path / "rtl" / "manifest.json").read_text())
    assert manifest["latency_cycles"] >= 1
    result = verify_design(tmp_path / "rtl", 20_000, engine="fast", optimize=False, quiet=True)
    assert result.vectors == 20_000 and result.passed, result.summary()


def _save(model, tmp_path):
    path = tmp_path / "model.keras"
    model.save(path)
    return path


def _npy(tmp_path, data):
    path = tmp_path / "data.npy"
    np.save(path, data)
    return path


def test_a_round_mode_the_ir_lacks_is_refused_where_it_rounds():
    import keras
    from hgq.config import QuantizerConfig
    from hgq.layers import QDense

    conf = QuantizerConfig("kif", "datalane", round_mode="RND_INF", f0=2)
    inp = keras.Input((4,))
    h = QDense(3)(inp)
    model = keras.Model(inp, QDense(2, iq_conf=conf)(h), name="inf_round")
    with pytest.raises(InteropError, match=r"\(QDense\) input quantizer: round mode RND_INF"):
        convert(model)
