"""QONNX export (issue 16): imported HGQ2 models written as QONNX and executed by qonnx's
``execute_onnx`` equal the IR reference; an altered export is caught."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("hgq", reason="the interop extra (HGQ2) is not installed")
pytest.importorskip("qonnx", reason="the interop extra (qonnx) is not installed")

from hgq2_models import cnn_model, graph_model, jet_mlp  # noqa: E402

from hgq_rtl.cli import main  # noqa: E402
from hgq_rtl.interop.hgq2 import convert  # noqa: E402
from hgq_rtl.interop.hgq2_check import random_vectors  # noqa: E402
from hgq_rtl.interop.qonnx_export import execute, export_qonnx, to_qonnx  # noqa: E402
from hgq_rtl.ir import run, save  # noqa: E402


@pytest.fixture(scope="module", params=[jet_mlp, graph_model, cnn_model], ids=lambda f: f.__name__)
def imported(request):
    model, _ = request.param()
    return convert(model).ir


def test_export_executes_bit_exact(imported, tmp_path):
    import onnx

    assert export_qonnx(imported, tmp_path / "model.onnx", vectors=2000) == 2000
    written = onnx.load(tmp_path / "model.onnx")
    ops = {node.op_type for node in written.graph.node}
    assert "Quant" in ops and "MatMul" in ops
    # convolutions and max pooling are written as themselves, not lowered
    spatial = {layer.kind for layer in imported.layers} & {"conv", "maxpool_nd"}
    assert ("Conv" in ops, "MaxPool" in ops) == ("conv" in spatial, "maxpool_nd" in spatial)
    # the written file (batch 1) runs under qonnx too
    x = random_vectors(imported, 1, seed=2)
    assert np.array_equal(execute(written, imported, x), run(imported, _one(imported, x)))


def _one(ir, x):
    return x if len(x) > 1 else x[ir.inputs[0].name]


def test_an_altered_export_differs(imported):
    from onnx import numpy_helper

    x = random_vectors(imported, 500, seed=3)
    model = to_qonnx(imported, batch=500)
    assert np.array_equal(execute(model, imported, x), run(imported, _one(imported, x)))
    # one flipped rounding mode: FLOOR -> CEIL on the first Quant that rounds a layer's result
    matmul = next(k for k, n in enumerate(model.graph.node) if n.op_type in ("MatMul", "Conv"))
    quant = next(
        n
        for n in model.graph.node[matmul:]
        if n.op_type == "Quant" and n.input[0].startswith("round_half")
    )
    for attribute in quant.attribute:
        if attribute.name == "rounding_mode":
            attribute.s = b"CEIL"
    assert not np.array_equal(execute(model, imported, x), run(imported, _one(imported, x)))
    # one weight changed by a little
    model = to_qonnx(imported, batch=500)
    weight = next(t for t in model.graph.initializer if t.name.startswith("weight"))
    values = numpy_helper.to_array(weight).copy()
    values[np.unravel_index(np.argmax(np.abs(values)), values.shape)] *= 1.5
    weight.CopyFrom(numpy_helper.from_array(values, weight.name))
    assert not np.array_equal(execute(model, imported, x), run(imported, _one(imported, x)))


def test_export_qonnx_command(imported, tmp_path, capsys):
    save(imported, tmp_path / "ir")
    out = tmp_path / "m.onnx"
    assert main(["export-qonnx", str(tmp_path / "ir"), "--out", str(out), "--vectors", "300"]) == 0
    assert out.is_file()
    assert "300 vectors bit-exact" in capsys.readouterr().err
    assert main(["export-qonnx", str(tmp_path / "nothing"), "--out", str(out), "-q"]) == 2
    assert capsys.readouterr().err.startswith("hgq-rtl: error: ")
