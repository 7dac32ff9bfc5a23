"""QONNX import (issue 16): QONNX models with power-of-two scales to the IR, checked against
qonnx's ``execute_onnx``; our own exports come back as the same layers."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("hgq", reason="the interop extra (HGQ2) is not installed")
pytest.importorskip("qonnx", reason="the interop extra (qonnx) is not installed")

from hgq2_models import cnn_model, jet_mlp, sequence_model  # noqa: E402

from hgq_rtl.cli import main  # noqa: E402
from hgq_rtl.interop.hgq2 import convert  # noqa: E402
from hgq_rtl.interop.hgq2_check import random_vectors  # noqa: E402
from hgq_rtl.interop.hgq2_quant import InteropError  # noqa: E402
from hgq_rtl.interop.qonnx_export import to_qonnx  # noqa: E402
from hgq_rtl.interop.qonnx_import import check_against_qonnx, from_qonnx  # noqa: E402
from hgq_rtl.ir import ebops, load, run  # noqa: E402


def brevitas_like(rounding: str = "FLOOR", activation_op: str = "Relu"):
    """x (6) → Quant 8-bit signed, step 2^-4 → MatMul by Quant-ed (narrow, ROUND) weights →
    Add bias → Relu → Quant unsigned 6-bit, step 2^-3 (``rounding``) → Gemm (transB) → Quant."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    dom = "qonnx.custom_op.general"
    inits = {
        "w1": rng.normal(size=(6, 5)).astype(np.float32),
        "b1": (rng.integers(-8, 8, 5) / 16).astype(np.float32),
        "w2": rng.normal(size=(3, 5)).astype(np.float32),
        "b2": (rng.integers(-8, 8, 3) / 8).astype(np.float32),
        "s_in": np.float32(2**-4),
        "s_w": np.float32(2**-5),
        "s_h": np.float32(2**-3),
        "s_out": np.float32(2**-6),
        "zero": np.float32(0),
        "b8": np.float32(8),
        "b6": np.float32(6),
        "b16": np.float32(16),
    }
    nodes = [
        helper.make_node(
            "Quant",
            ["x", "s_in", "zero", "b8"],
            ["xq"],
            domain=dom,
            signed=1,
            narrow=0,
            rounding_mode="ROUND",
        ),
        helper.make_node(
            "Quant",
            ["w1", "s_w", "zero", "b6"],
            ["w1q"],
            domain=dom,
            signed=1,
            narrow=1,
            rounding_mode="ROUND",
        ),
        helper.make_node("MatMul", ["xq", "w1q"], ["h"]),
        helper.make_node("Add", ["h", "b1"], ["hb"]),
        helper.make_node(activation_op, ["hb"], ["hr"]),
        helper.make_node(
            "Quant",
            ["hr", "s_h", "zero", "b6"],
            ["hq"],
            domain=dom,
            signed=0,
            narrow=0,
            rounding_mode=rounding,
        ),
        helper.make_node(
            "Quant",
            ["w2", "s_w", "zero", "b6"],
            ["w2q"],
            domain=dom,
            signed=1,
            narrow=0,
            rounding_mode="ROUND",
        ),
        helper.make_node("Gemm", ["hq", "w2q", "b2"], ["y"], transB=1),
        helper.make_node(
            "Quant",
            ["y", "s_out", "zero", "b16"],
            ["yq"],
            domain=dom,
            signed=1,
            narrow=0,
            rounding_mode="FLOOR",
        ),
    ]
    graph = helper.make_graph(
        nodes,
        "brevitas_like",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 6])],
        [helper.make_tensor_value_info("yq", TensorProto.FLOAT, [1, 3])],
        initializer=[numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(dom, 1)]
    )
    model.ir_version = 8
    return model


def test_a_floor_model_imports_bit_exact(tmp_path):
    import onnx

    model = brevitas_like()
    ir = from_qonnx(model)
    assert [layer.kind for layer in ir.layers] == ["dense", "dense"]
    assert check_against_qonnx(ir, model, 5000) == 5000
    onnx.save(model, tmp_path / "m.onnx")
    assert (
        main(
            [
                "import",
                str(tmp_path / "m.onnx"),
                "--out",
                str(tmp_path / "ir"),
                "-q",
                "--vectors",
                "2000",
            ]
        )
        == 0
    )
    assert load(tmp_path / "ir").metadata["checked_vectors"] == 2000


def test_a_rounding_mode_the_ir_lacks_is_refused_where_it_rounds():
    with pytest.raises(InteropError, match=r"round mode RND_INF rounds element 0 \(only RND"):
        from_qonnx(brevitas_like(rounding="HALF_UP"))


def test_unsupported_node_is_one_line_and_exit_2(tmp_path, capsys):
    import onnx

    onnx.save(brevitas_like(activation_op="Sigmoid"), tmp_path / "m.onnx")
    assert main(["import", str(tmp_path / "m.onnx"), "--out", str(tmp_path / "ir"), "-q"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "hgq-rtl: error: node 'hr' (Sigmoid) is not supported"
    ]
    assert not (tmp_path / "ir").exists()


def test_an_altered_import_is_caught():
    model = brevitas_like()
    ir = from_qonnx(model)
    dense = ir.layers[0]
    weight = dense.weight.copy()
    weight[0, 0] += 1
    import dataclasses

    from hgq_rtl.ir import IRModel

    altered = IRModel(
        ir.name, None, (dataclasses.replace(dense, weight=weight), ir.layers[1]), inputs=ir.inputs
    )
    with pytest.raises(InteropError, match="differs from qonnx's execution"):
        check_against_qonnx(altered, model, 2000)


@pytest.mark.parametrize("build", [jet_mlp, cnn_model], ids=lambda f: f.__name__)
def test_our_export_comes_back_as_the_same_model(build):
    model, _ = build()
    ir = convert(model).ir
    exported = to_qonnx(ir)
    back = from_qonnx(exported)
    assert [layer.kind for layer in back.layers] == [layer.kind for layer in ir.layers]
    assert ebops(back) == ebops(ir)
    assert check_against_qonnx(back, exported, 5000) == 5000
    x = random_vectors(ir, 5000, seed=9)[ir.inputs[0].name]
    assert np.array_equal(run(back, x), run(ir, x))


def test_our_pooling_graph_export_comes_back_bit_exact():
    """Global max pooling written as Gather + ReduceMax, selections as Gather, masks of
    zero-width elements as Mul: all read back (as layers that compute the same, not always as
    few)."""
    ir = convert(sequence_model()[0]).ir
    exported = to_qonnx(ir)
    back = from_qonnx(exported)
    assert check_against_qonnx(back, exported, 3000) == 3000
    x = random_vectors(ir, 3000, seed=9)
    x = x if len(x) > 1 else x[ir.inputs[0].name]
    assert np.array_equal(run(back, x), run(ir, x))
