"""Every quantized layer freezes to the IR with check 1 exact: the float64 torch forward equals
the integer reference on every sample, including data far outside the calibration range."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hgq_rtl.ir import io, reference
from hgq_rtl.ir.dense import DenseLayer
from hgq_rtl.ir.fixed import Activation, bit_span
from hgq_rtl.ir.layers import LookupLayer
from hgq_rtl.ir.lowering import lower_spatial
from hgq_rtl.ir.spatial import ConvLayer, MaxPoolNdLayer
from hgq_rtl.train.config import TrainConfig
from hgq_rtl.train.cost import ebops
from hgq_rtl.train.freeze import check_frozen, freeze, torch_integers
from hgq_rtl.train.layers import (
    QActivation,
    QAdd,
    QConcat,
    QConv1d,
    QConv1dBN,
    QConv2d,
    QConv2dBN,
    QInput,
    QLinear,
    QLinearBN,
    QLookup,
)
from hgq_rtl.train.models import build_model
from hgq_rtl.train.quantizers import Granularity, clamp_frac_bits


def _fit(model: nn.Sequential, x: torch.Tensor, steps: int = 15, seed: int = 0) -> None:
    """A few HGQ steps on a random target, so weights, bits and BatchNorm statistics move."""
    torch.manual_seed(seed)
    model.train()
    out_size = model(x[:2]).reshape(2, -1).shape[1]
    target = torch.randn(len(x), out_size)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(steps):
        loss = F.mse_loss(model(x).reshape(len(x), -1), target) + 1e-7 * ebops(model)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        clamp_frac_bits(model)


def _check(model: nn.Sequential, shape: tuple[int, ...], *, steps: int = 15):
    """Train briefly, freeze, and require check 1 on calibration and on wild data."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(96, *shape)).astype(np.float32)
    _fit(model, torch.as_tensor(x), steps)
    ir = freeze(model, x)
    assert check_frozen(model, ir, x) == 0
    wild = rng.uniform(-6, 6, size=(200, *shape)).astype(np.float32)
    assert check_frozen(model, ir, wild) == 0
    return ir, x


def _conv1d_model() -> nn.Sequential:
    return nn.Sequential(
        QInput((2, 17)),
        QConv1d(2, 4, 3, stride=2, padding=1, dilation=2),
        QActivation((4, 8)),
        nn.MaxPool1d(2, padding=1),
        QConv1dBN(4, 4, 2, groups=2),
        QActivation((4, 4)),
        nn.AvgPool1d(2),
        nn.Flatten(),
        QLinear(8, 3),
        QActivation(3, Activation.LINEAR),
    )


def _conv2d_model() -> nn.Sequential:
    return nn.Sequential(
        QInput((2, 9, 9), granularity=Granularity.CHANNEL),
        QConv2d(2, 4, 3, padding=1, groups=2),
        QActivation((4, 9, 9)),
        nn.MaxPool2d(2),
        QConv2dBN(4, 6, (2, 3), stride=(1, 2), granularity=Granularity.TENSOR),
        QActivation((6, 3, 1)),
        nn.Flatten(),
        QLinearBN(18, 5),
        QActivation(5),
        QLinear(5, 2),
        QActivation(2, Activation.LINEAR),
    )


@pytest.mark.parametrize(
    ("build", "shape"),
    [(_conv1d_model, (2, 17)), (_conv2d_model, (2, 9, 9))],
    ids=["conv1d-pool-bn", "conv2d-groups-bn-granularity"],
)
def test_check1_convolutions(build, shape):
    model = build()
    ir, x = _check(model, shape)
    kinds = [layer.kind for layer in ir.layers]
    assert "maxpool_nd" in kinds and kinds.count("conv") >= 2
    assert ir.inputs[0].shape == shape
    # the unrolled model (what the parallel generator builds) is exact too
    lowered = lower_spatial(ir)
    assert {layer.kind for layer in lowered.layers} <= {"dense", "maxpool"}
    assert check_frozen(model, lowered, x) == 0
    assert reference.ebops(lowered) == reference.ebops(ir)


def test_frozen_layers_keep_the_torch_geometry(tmp_path):
    """Each conv and pooling module becomes one spatial layer with its own kernel, stride,
    padding, dilation and groups; average pooling a depthwise conv of weights 1 with log2(area)
    fractional bits. The frozen CNN survives a save/load round trip (schema version 3) with
    check 1 still exact."""
    model = _conv1d_model()
    ir, x = _check(model, (2, 17), steps=3)
    conv0, pool, conv1, avg, dense = ir.layers
    assert isinstance(conv0, ConvLayer) and isinstance(pool, MaxPoolNdLayer)
    assert (conv0.in_shape, conv0.kernel, conv0.stride, conv0.padding, conv0.dilation) == (
        (2, 17), (3,), (2,), (1,), (2,),
    )  # fmt: skip
    assert (pool.in_shape, pool.kernel, pool.stride, pool.padding) == ((4, 8), (2,), (2,), (1,))
    assert (conv1.groups, conv1.weight.shape, conv1.out_shape) == (2, (4, 2, 2), (4, 4))
    assert isinstance(avg, ConvLayer) and avg.groups == 4 and avg.out_shape == (4, 2)
    assert (avg.weight == 1).all() and (avg.weight_frac_bits == 1).all()
    assert not avg.bias.any() and isinstance(dense, DenseLayer)
    folder = io.save(ir, tmp_path / "cnn")
    assert io.schema_version(ir) == 3
    loaded = io.load(folder)
    assert [layer.kind for layer in loaded.layers] == [layer.kind for layer in ir.layers]
    assert check_frozen(model, loaded, x) == 0


def test_average_pooling_and_residual_and_concat():
    model = nn.Sequential(
        QInput((3, 8, 8)),
        nn.AvgPool2d(2),
        QAdd(
            nn.Identity(),
            nn.Sequential(QConv2d(3, 3, 3, padding=1), QActivation((3, 4, 4))),
        ),
        QActivation((3, 4, 4), Activation.RELU),
        QConcat(
            nn.Sequential(QConv2d(3, 2, 1), QActivation((2, 4, 4))),
            nn.AvgPool2d(1),
        ),
        nn.Flatten(),
        QLinear(80, 4),
        QActivation(4, Activation.LINEAR),
    )
    ir, _ = _check(model, (3, 8, 8))
    kinds = [layer.kind for layer in ir.layers]
    for kind in ("add", "concat", "quantize"):
        assert kind in kinds
    assert kinds.count("conv") == 4  # two convolutions, two average poolings


@pytest.mark.parametrize("function", ["tanh", "sigmoid", torch.sin])
def test_lookup_tables(function):
    model = nn.Sequential(
        QInput(6, init_frac_bits=3),
        QLinear(6, 5, init_bits=4),
        QLookup(5, function, init_frac_bits=4),
        QLookup(5, "tanh", init_frac_bits=3),
        QLinear(5, 2),
        QActivation(2, Activation.LINEAR),
    )
    ir, _ = _check(model, (6,))
    tables = [layer for layer in ir.layers if isinstance(layer, LookupLayer)]
    assert len(tables) == 2


def test_lookup_table_is_checked_entry_by_entry():
    """One altered table entry that the data reaches is seen by check 1."""
    model = nn.Sequential(
        QInput(4, init_frac_bits=2),
        QLinear(4, 3, init_bits=3),
        QLookup(3, "tanh", init_frac_bits=3),
    )
    ir, x = _check(model, (4,))
    index = next(k for k, layer in enumerate(ir.layers) if isinstance(layer, LookupLayer))
    layer = ir.layers[index]
    before = reference.run_all(ir, reference.quantize_input(ir, x))[index - 1]
    value = int(before[0, 0])
    entry = int(layer.offsets[0] + value - layer.input_low[0])
    table = layer.table.copy()
    lo, hi = layer.output.int_range()
    table[entry] = lo[0] if table[entry] != lo[0] else hi[0]
    broken = dataclasses.replace(
        ir, layers=(*ir.layers[:index], dataclasses.replace(layer, table=table))
    )
    assert check_frozen(model, broken, x) > 0


def test_wrong_conv_lowering_is_seen():
    """A convolution whose kernel taps sit one position off, and an unrolled convolution whose
    taps sit one input element off, break check 1."""
    model = _conv1d_model()
    ir, x = _check(model, (2, 17))
    layer = ir.layers[0]
    assert isinstance(layer, ConvLayer)
    shifted = dataclasses.replace(
        layer,
        weight=np.roll(layer.weight, 1, axis=-1),
        weight_frac_bits=np.roll(layer.weight_frac_bits, 1, axis=-1),
    )
    broken = dataclasses.replace(ir, layers=(shifted, *ir.layers[1:]))
    assert check_frozen(model, broken, x) > 0
    lowered = lower_spatial(ir)
    dense = lowered.layers[0]
    shifted = dataclasses.replace(
        dense,
        weight=np.roll(dense.weight, 1, axis=1),
        weight_frac_bits=np.roll(dense.weight_frac_bits, 1, axis=1),
    )
    broken = dataclasses.replace(lowered, layers=(shifted, *lowered.layers[1:]))
    assert check_frozen(model, broken, x) > 0


def test_conv_ebops_is_one_kernel_per_output_position():
    """Exact EBOPs of an unpadded conv = Σ over output positions of one kernel application."""
    model = nn.Sequential(
        QInput((2, 6, 6)), QConv2d(2, 3, 3), QActivation((3, 4, 4), Activation.LINEAR)
    )
    ir, _ = _check(model, (2, 6, 6), steps=3)
    weight, _ = model[1].quantized()
    frac = torch.floor(model[1].weight_quantizer.frac_bits + 0.5)
    w_int = torch.ldexp(weight.detach().double(), frac.detach().double()).numpy().astype(np.int64)
    width = ir.input.width.reshape(2, 6, 6)
    expected = 0
    for y in range(4):
        for x in range(4):
            patch = width[:, y : y + 3, x : x + 3]
            expected += int((bit_span(w_int) * patch[None]).sum())
    assert reference.ebops(ir) == expected


def test_conv_kernel_ebops_is_the_widest_single_application():
    """With ``kernel_ebops`` (a stream's one shared kernel) the exact EBOPs are those of the
    widest kernel application, the frozen model says so in its metadata, and the surrogate
    counts the same way: the per-position total of the unrolled count's positions."""
    model = nn.Sequential(
        QInput((2, 6, 6)),
        QConv2d(2, 3, 3, kernel_ebops=True),
        QActivation((3, 4, 4), Activation.LINEAR),
    )
    ir, _ = _check(model, (2, 6, 6), steps=3)
    assert ir.metadata["ebops_conv"] == "kernel"
    weight, _ = model[1].quantized()
    frac = torch.floor(model[1].weight_quantizer.frac_bits + 0.5)
    w_int = torch.ldexp(weight.detach().double(), frac.detach().double()).numpy().astype(np.int64)
    width = ir.input.width.reshape(2, 6, 6)
    per_position = [
        int((bit_span(w_int) * width[None, :, y : y + 3, x : x + 3]).sum())
        for y in range(4)
        for x in range(4)
    ]
    assert reference.ebops(ir) == max(per_position)
    unrolled = dataclasses.replace(ir, metadata={**ir.metadata, "ebops_conv": "unrolled"})
    assert reference.ebops(unrolled) == sum(per_position)
    bits = model[0].bits()
    surrogate = model[1].ebops(bits)
    model[1].kernel_ebops = False
    every = F.conv2d(bits[None], model[1].weight_bits())[0].sum(dim=0)
    assert torch.equal(surrogate, every.amax())
    assert torch.equal(model[1].ebops(bits), every.sum())


def test_conv_ebops_mode_is_checked():
    model = nn.Sequential(
        QInput((2, 6, 6)),
        QConv2d(2, 3, 3, kernel_ebops=True),
        QActivation((3, 4, 4)),
        QConv2d(3, 2, 3),
        QActivation((2, 2, 2), Activation.LINEAR),
    )
    with pytest.raises(ValueError, match="count EBOPs differently"):
        freeze(model, torch.randn(16, 2, 6, 6))
    ir, _ = _check(
        nn.Sequential(QInput((2, 6, 6)), QConv2d(2, 3, 3), QActivation((3, 4, 4))), (2, 6, 6)
    )
    assert "ebops_conv" not in ir.metadata  # unrolled, as files of earlier versions
    wrong = dataclasses.replace(ir, metadata={**ir.metadata, "ebops_conv": "both"})
    with pytest.raises(ValueError, match="ebops_conv must be one of unrolled, kernel"):
        reference.ebops(wrong)
    with pytest.raises(ValueError, match="conv_ebops must be one of"):
        TrainConfig(arch="cnn", conv_ebops="per-pixel")


def test_fused_batch_norm_folds_running_statistics():
    layer = QLinearBN(4, 3, init_bits=12)
    x = torch.randn(64, 4) * 3 + 1
    layer.train()
    layer(x)
    assert not torch.allclose(layer.running_mean, torch.zeros(3))
    layer.eval()
    weight, bias = layer.folded()
    scale = layer.bn_weight / torch.sqrt(layer.running_var + layer.eps)
    assert torch.allclose(weight, layer.weight * scale[:, None])
    assert torch.allclose(bias, layer.bn_bias - layer.running_mean * scale)
    # the eval forward is the quantized folded layer
    expected = F.linear(x, *layer.quantized())
    assert torch.equal(layer(x), expected)


@pytest.mark.parametrize(
    ("granularity", "weight_shape", "data_shape"),
    [
        (Granularity.ELEMENT, (4, 2, 3, 3), (4, 5, 5)),
        (Granularity.CHANNEL, (4, 1, 1, 1), (4, 1, 1)),
        (Granularity.TENSOR, (1, 1, 1, 1), (1, 1, 1)),
    ],
)
def test_granularity_shapes(granularity, weight_shape, data_shape):
    conv = QConv2d(2, 4, 3, granularity=granularity)
    act = QActivation((4, 5, 5), granularity=granularity)
    assert conv.weight_quantizer.frac_bits.shape == weight_shape
    assert act.quantizer.frac_bits.shape == data_shape
    # formats are per element whatever the granularity
    assert act.quantizer.element_frac_bits().shape == (4, 5, 5)


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (
            nn.Sequential(QInput((1, 4, 4)), QConv2d(1, 2, 3), nn.MaxPool2d(2)),
            "QConv2d before position 2 must be followed by a QActivation or QLookup",
        ),
        (
            nn.Sequential(QInput((1, 4, 4)), QLinear(4, 2), QActivation((1, 4, 2))),
            r"QLinear at position 1 needs flat input",
        ),
        (
            nn.Sequential(QInput((1, 4, 4)), QLinear(16, 2), QActivation(2)),
            r"the model cannot run on samples of shape \(1, 4, 4\): mat1 and mat2",
        ),
        (
            nn.Sequential(QInput((1, 6, 6)), nn.AvgPool2d(3), nn.Flatten()),
            "divides by 9: only powers of two",
        ),
        (nn.Sequential(QInput(4), QLinear(4, 3), nn.Tanh()), "must be followed by a QActivation"),
        (nn.Sequential(QInput(4), nn.Tanh()), "unsupported layer Tanh at position 1"),
        (
            nn.Sequential(QInput(4), QLinear(4, 3), QActivation((1, 3))),
            r"QActivation at position 2 has shape \(1, 3\), its input has shape \(3,\)",
        ),
        (nn.Sequential(QInput(4), QLinear(4, 3)), "ends on a weighted layer"),
    ],
)
def test_unsupported_structures_get_one_clear_message(model, message):
    x = np.zeros((4, *model[0].shape), np.float32)
    with pytest.raises(ValueError, match=message):
        freeze(model, x)


def test_lookup_over_too_wide_an_input_is_refused():
    model = nn.Sequential(QInput(2, init_frac_bits=20), QLookup(2, "tanh", init_frac_bits=20))
    x = np.random.default_rng(0).normal(size=(32, 2)).astype(np.float32) * 100
    with pytest.raises(ValueError, match="tables would hold"):
        freeze(model, x)


def test_built_cnn_freezes_exactly():
    config = TrainConfig(arch="cnn", channels=(3, 4), hidden=(6,), batch_norm=True)
    model = build_model(config, (1, 12, 12), 4)
    ir, x = _check(model, (1, 12, 12), steps=5)
    assert ir.metadata["input_shape"] == [1, 12, 12]
    out = torch_integers(model, x, ir)
    assert out.shape == (len(x), 4)


def test_readme_example_freezes_exactly():
    """The network of the README's layer example (pooling, BatchNorm, a table, a residual)."""
    model = nn.Sequential(
        QInput((1, 28, 28)),
        QConv2d(1, 8, 3),
        QActivation((8, 26, 26)),
        nn.MaxPool2d(2),
        QConv2d(8, 16, 3, granularity=Granularity.CHANNEL),
        QActivation((16, 11, 11)),
        nn.AvgPool2d(2),
        nn.Flatten(),
        QLinearBN(400, 32),
        QLookup(32, "tanh"),
        QAdd(nn.Identity(), nn.Sequential(QLinear(32, 32), QActivation(32))),
        QLinear(32, 10),
        QActivation(10, Activation.LINEAR),
    )
    ir, _ = _check(model, (1, 28, 28), steps=3)
    assert [layer.kind for layer in ir.layers] == [
        "conv", "maxpool_nd", "conv", "conv", "dense", "lookup", "dense", "add", "dense",
    ]  # fmt: skip
