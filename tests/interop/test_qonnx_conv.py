"""QONNX convolutions and pooling (issue 16): ``Conv``, ``MaxPool``, ``AveragePool`` and the
global poolings come in as the IR's own spatial layer kinds, equal to qonnx's ``execute_onnx``
element by element; our own CNN exports (``Conv``/``MaxPool``, not lowered) come back as the same
layer kinds; an altered import is caught; what the IR cannot express is one line naming the node.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

pytest.importorskip("qonnx", reason="the interop extra (qonnx) is not installed")

from hgq_rtl.cli import main  # noqa: E402
from hgq_rtl.interop.hgq2_quant import InteropError  # noqa: E402
from hgq_rtl.interop.qonnx_export import execute, to_qonnx  # noqa: E402
from hgq_rtl.interop.qonnx_import import check_against_qonnx, from_qonnx  # noqa: E402
from hgq_rtl.ir import Activation, IRModel, Overflow, RoundMode, load, run  # noqa: E402
from hgq_rtl.ir.random import random_cnn  # noqa: E402
from hgq_rtl.ir.reference import random_inputs  # noqa: E402

DOMAIN = "qonnx.custom_op.general"


class _Net:
    """A QONNX graph being written with ``onnx.helper``: named constants and nodes."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.nodes: list = []
        self.inits: dict[str, np.ndarray] = {"zero": np.float32(0)}
        self.count = 0

    def const(self, values) -> str:
        self.count += 1
        name = f"c{self.count}"
        self.inits[name] = np.asarray(values, np.float32)
        return name

    def node(self, op: str, inputs: list[str], **attrs) -> str:
        from onnx import helper

        self.count += 1
        out = f"{op.lower()}{self.count}"
        domain = DOMAIN if op == "Quant" else ""
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, domain=domain, **attrs))
        return out

    def quant(self, x: str, frac, bits: int, signed: int = 1, rounding: str = "FLOOR") -> str:
        """``Quant`` with scale ``2^-frac`` (a number or a per-channel array)."""
        scale = self.const(np.exp2(-np.asarray(frac, np.float64)))
        return self.node(
            "Quant",
            [x, scale, "zero", self.const(bits)],
            signed=signed,
            narrow=0,
            rounding_mode=rounding,
        )

    def weights(self, shape: tuple[int, ...], frac: int = 4, bits: int = 5) -> str:
        """Random float weights brought onto a grid by a (folded) ``Quant``, as Brevitas does."""
        w = self.const(self.rng.normal(size=shape) * 0.6)
        return self.quant(w, frac, bits, rounding="ROUND")

    def conv(
        self, x: str, filters: int, channels: int, kernel, groups: int = 1, add=None, **attrs
    ) -> str:
        """``Conv`` with a bias input; or, ``add`` given, followed by an ``Add`` of a constant:
        ``"channel"`` one bias per channel (shape ``(1, F, 1, ...)``), else of shape ``add``
        (one value per element)."""
        w = self.weights((filters, channels // groups, *kernel))
        bias = self.rng.integers(-8, 8, filters) / 8
        inputs = [x, w] if add else [x, w, self.const(bias)]
        y = self.node("Conv", inputs, kernel_shape=list(kernel), group=groups, **attrs)
        if add == "channel":
            y = self.node("Add", [y, self.const(bias.reshape(1, -1, *(1,) * len(kernel)))])
        elif add:
            y = self.node("Add", [self.const(self.rng.integers(-4, 4, add) / 4), y])
        return y

    def model(self, x_shape: tuple[int, ...], out: str, out_shape: tuple[int, ...]):
        from onnx import TensorProto, helper, numpy_helper

        graph = helper.make_graph(
            self.nodes,
            "qonnx_cnn",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, *x_shape])],
            [helper.make_tensor_value_info(out, TensorProto.FLOAT, [1, *out_shape])],
            initializer=[numpy_helper.from_array(v, k) for k, v in self.inits.items()],
        )
        model = helper.make_model(
            graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(DOMAIN, 1)]
        )
        model.ir_version = 8
        return model


def cnn2d(
    conv: dict | None = None,
    pool: tuple[str, dict] = ("MaxPool", {"kernel_shape": [2, 2], "strides": [2, 2]}),
    relu_clip: bool = False,
    add=None,
):
    """x (2, 8, 8) → Quant (8 bits, step 2^-4) → Conv 3×3 (``conv`` attributes) → Relu → Quant
    per channel (unsigned 6 bits) (or Quant → a Max/Min clip) → pooling → Flatten → Gemm → Quant."""
    conv = {"pads": [1, 1, 1, 1]} if conv is None else conv
    net = _Net()
    x = net.quant("x", 4, 8)
    groups = conv.pop("group", 1)
    h = net.conv(x, 4, 2, (3, 3), groups=groups, add=add, **conv)
    if relu_clip:  # a clip into unsigned 6 bits at step 2^-3 after a wide rounding
        h = net.quant(h, 3, 12)
        h = net.node("Max", [h, net.const(0.0)])
        h = net.node("Min", [h, net.const(7.875)])
    else:
        h = net.node("Relu", [h])
        h = net.quant(h, np.array([3, 2, 3, 4]).reshape(1, 4, 1, 1), 6, signed=0)
    op, attrs = pool
    h = net.node(op, [h], **attrs)
    h = net.node("Flatten", [h], axis=1)
    features = _features(net, h)
    w = net.weights((3, features), frac=5, bits=6)
    y = net.node("Gemm", [h, w, net.const(np.array([0.25, -0.5, 0.0]))], transB=1)
    return net.model((2, 8, 8), net.quant(y, 6, 20), (3,))


def cnn1d():
    """x (3, 16) → Quant → Conv 1-D (dilation 2, groups 3, stride 3, asymmetric pads whose
    extra end is never read) → Relu → Quant → MaxPool 1-D (kernel 3, stride 2, pads 1) →
    Conv 1-D → GlobalAveragePool (4 positions) → Flatten → MatMul → Quant."""
    net = _Net(1)
    x = net.quant("x", 3, 7)
    h = net.conv(x, 6, 3, (3,), groups=3, dilations=[2], strides=[3], pads=[1, 2])
    h = net.quant(net.node("Relu", [h]), 3, 5, signed=0)
    h = net.node("MaxPool", [h], kernel_shape=[3], strides=[2], pads=[1, 1])
    h = net.quant(net.conv(h, 4, 6, (2,)), 2, 8)
    h = net.node("Flatten", [net.node("GlobalAveragePool", [h])])
    y = net.node("MatMul", [h, net.weights((4, 2))])
    return net.model((3, 16), net.quant(y, 8, 20), (2,))


def _features(net: _Net, name: str) -> int:
    """The features of tensor ``name`` of the graph so far (by qonnx's shape inference)."""
    from onnx import TensorProto, helper
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.infer_shapes import InferShapes

    model = net.model((2, 8, 8), name, ())
    del model.graph.output[:]
    model.graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
    shape = ModelWrapper(model).transform(InferShapes()).get_tensor_shape(name)
    return int(np.prod(shape[1:]))


CASES = {
    "pad1_maxpool": cnn2d,
    "stride2_asymmetric_pads": lambda: cnn2d({"pads": [1, 1, 0, 0], "strides": [2, 2]}),
    "dropped_outputs": lambda: cnn2d({"pads": [2, 2, 0, 0]}, ("MaxPool", {"kernel_shape": [2, 2]})),
    "dilation_groups_clip": lambda: cnn2d(
        {"dilations": [2, 1], "group": 2, "auto_pad": "VALID"},
        ("AveragePool", {"kernel_shape": [2, 2], "strides": [1, 1]}),
        relu_clip=True,
    ),
    "same_lower_global_max": lambda: cnn2d(
        {"auto_pad": "SAME_LOWER", "strides": [2, 2]}, ("GlobalMaxPool", {})
    ),
    "average_pool_padded": lambda: cnn2d(
        {}, ("AveragePool", {"kernel_shape": [2, 2], "pads": [1, 1, 1, 1], "count_include_pad": 1})
    ),
    "conv1d": cnn1d,
    "bias_as_add": lambda: cnn2d(add="channel"),
    "constant_add": lambda: cnn2d(add=(4, 8, 8)),
}


@pytest.mark.parametrize("case", CASES)
def test_a_qonnx_cnn_imports_bit_exact(case):
    model = CASES[case]()
    ir = from_qonnx(model)
    kinds = [layer.kind for layer in ir.layers]
    assert "conv" in kinds and "dense" in kinds  # spatial kinds, not lowered to dense
    assert ir.inputs[0].shape == tuple(
        d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim[1:]
    )
    assert check_against_qonnx(ir, model, 3000) == 3000
    # integer equality of the outputs scaled by their LSB, on vectors of our own drawing
    x = random_inputs(ir, 500, np.random.default_rng(5))
    got = execute(_batch(model, 500), ir, {ir.inputs[0].name: x}, ["x"])
    assert np.array_equal(got, run(ir, x))


def _batch(model, vectors: int):
    from hgq_rtl.interop.qonnx_import import _with_batch

    return _with_batch(model, vectors)


def test_layer_kinds_of_the_import():
    for model in (cnn2d(), cnn2d(add="channel")):  # a bias added after Conv is folded in
        kinds = [layer.kind for layer in from_qonnx(model).layers]
        assert kinds == ["conv", "maxpool_nd", "dense"]
    kinds = [layer.kind for layer in from_qonnx(cnn1d()).layers]
    assert kinds == ["conv", "maxpool_nd", "conv", "dense", "dense"]


def _replace_layer(ir: IRModel, k: int, **changes) -> IRModel:
    layers = list(ir.layers)
    layers[k] = dataclasses.replace(layers[k], **changes)
    return IRModel(ir.name, None, tuple(layers), metadata=ir.metadata, inputs=ir.inputs)


def test_an_altered_import_is_caught():
    model = cnn2d({"pads": [1, 1, 1, 1], "strides": [2, 2]})
    ir = from_qonnx(model)
    conv = ir.layers[0]
    assert conv.kind == "conv" and conv.stride == (2, 2)
    weight = conv.weight.copy()
    weight[1, 0, 2, 1] += 1
    for altered in (
        _replace_layer(ir, 0, weight=weight),
        _replace_layer(ir, 0, weight=conv.weight[:, :, ::-1, ::-1].copy()),  # a convolution
        _replace_layer(ir, 0, bias=conv.bias + (np.arange(4) == 3)),
    ):
        with pytest.raises(InteropError, match="differs from qonnx's execution"):
            check_against_qonnx(altered, model, 2000)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda: cnn2d({"pads": [0, 0, 1, 1], "strides": [1, 1]}),
            r"node 'conv\d+' \(Conv\): pads \[0, 0, 1, 1\] \(ceil_mode=0\) with kernel \(3, 3\) "
            r"and strides \(1, 1\) are not supported: the IR pads both ends alike",
        ),
        (
            lambda: cnn2d({}, ("AveragePool", {"kernel_shape": [3, 3]})),
            r"node 'averagepool\d+' \(AveragePool\): a window of 9 elements is not a power of two",
        ),
        (
            lambda: cnn2d({}, ("AveragePool", {"kernel_shape": [2, 2], "pads": [1, 1, 1, 1]})),
            r"node 'averagepool\d+' \(AveragePool\): padding with count_include_pad=0",
        ),
        (
            lambda: cnn2d(
                {}, ("MaxPool", {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1})
            ),
            r"node 'maxpool\d+' \(MaxPool\): pads \[0, 0, 0, 0\] \(ceil_mode=1\)",
        ),
        (
            lambda: cnn2d({}, ("LpPool", {"kernel_shape": [2, 2]})),
            r"^node 'lppool\d+' \(LpPool\) is not supported$",
        ),
    ],
)
def test_what_the_ir_cannot_express_is_refused_in_one_line(build, message, tmp_path, capsys):
    import onnx

    model = build()
    with pytest.raises(InteropError, match=message):
        from_qonnx(model)
    onnx.save(model, tmp_path / "m.onnx")
    assert main(["import", str(tmp_path / "m.onnx"), "--out", str(tmp_path / "ir"), "-q"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("hgq-rtl: error: node '")
    assert not (tmp_path / "ir").exists()


def _our_cnn(seed: int, in_shape: tuple[int, ...], groups: int = 1) -> IRModel:
    """A random IR CNN whose accumulators fit float32, with modes the import reads back as
    one layer each (round half up, SAT)."""
    rng = np.random.default_rng(seed)
    ir = random_cnn(rng, in_shape, channels=4, groups=groups, name=f"cnn_{seed}")
    layers = []
    for layer in ir.layers:
        if layer.kind == "conv":
            layer = dataclasses.replace(
                layer,
                weight=np.clip(layer.weight, -7, 7),
                weight_frac_bits=np.clip(layer.weight_frac_bits, 0, 3),
                bias_frac_bits=np.clip(layer.bias_frac_bits, 0, 3),
                round_mode=RoundMode.RND,
                overflow=Overflow.WRAP,
                activation=Activation.RELU,
            )
        elif layer.kind == "dense":
            layer = dataclasses.replace(
                layer,
                weight=np.clip(layer.weight, -7, 7),
                weight_frac_bits=np.clip(layer.weight_frac_bits, 0, 3),
            )
        elif layer.kind == "quantize":
            layer = dataclasses.replace(layer, round_mode=RoundMode.RND, overflow=Overflow.SAT)
        layers.append(layer)
    return dataclasses.replace(ir, layers=tuple(layers))


@pytest.mark.parametrize(
    ("seed", "in_shape", "groups"), [(0, (2, 6, 6), 1), (2, (2, 9), 2), (4, (2, 5, 7), 2)]
)
def test_our_cnn_export_comes_back(seed, in_shape, groups):
    ir = _our_cnn(seed, in_shape, groups)
    exported = to_qonnx(ir)
    ops = [node.op_type for node in exported.graph.node]
    assert "Conv" in ops and "MaxPool" in ops and "Gather" not in ops  # not lowered
    back = from_qonnx(exported)
    kinds = [layer.kind for layer in back.layers]
    assert kinds.count("conv") == 1 and kinds.count("maxpool_nd") == 1
    assert back.inputs[0].shape == in_shape
    assert check_against_qonnx(back, exported, 2000) == 2000
    x = random_inputs(ir, 2000, np.random.default_rng(seed))
    assert np.array_equal(run(back, x), run(ir, x))


def test_a_wide_conv_accumulator_is_refused_by_the_export():
    ir = _our_cnn(0, (2, 6, 6))
    conv = ir.layers[0]
    wide = _replace_layer(ir, 0, weight=conv.weight * (1 << 20))
    with pytest.raises(InteropError, match=r"layer 'conv_0' .*QONNX export computes in float32"):
        to_qonnx(wide)


@pytest.mark.slow
def test_an_imported_cnn_through_rtl_and_the_fast_check(tmp_path):
    import shutil

    import onnx

    if shutil.which("verilator") is None:
        pytest.skip("Verilator is not installed (the fast check needs it)")
    onnx.save(cnn1d(), tmp_path / "m.onnx")
    ir_dir, rtl_dir = tmp_path / "ir", tmp_path / "rtl"
    assert main(["import", str(tmp_path / "m.onnx"), "--out", str(ir_dir), "-q"]) == 0
    assert "conv" in [layer.kind for layer in load(ir_dir).layers]
    assert main(["rtl", str(ir_dir), "--out", str(rtl_dir), "-q"]) == 0
    assert main(["verify", str(rtl_dir), "--engine", "fast", "--vectors", "3000", "-q"]) == 0
