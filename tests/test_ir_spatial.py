"""Spatial layer kinds (conv, maxpool_nd): their lowering against direct numpy loops, the
reference on them against the reference on their lowering, validation, and schema version 3
files (round trips and every class of malformed file)."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
from ir_builders import fmt

from hgq_rtl.ir import io, reference
from hgq_rtl.ir.formats import TensorFormat
from hgq_rtl.ir.io import IRFormatError, load, save
from hgq_rtl.ir.lowering import lower_spatial
from hgq_rtl.ir.model import IRModel
from hgq_rtl.ir.random import random_cnn, random_conv, random_format, random_maxpool_nd
from hgq_rtl.ir.spatial import ConvLayer

# ---------------------------------------------------------------------------- numpy loops


def _conv_loop(x, weight, bias, in_shape, stride, padding, dilation, groups) -> np.ndarray:
    """Real-valued convolution by its definition: one sum per output element, zero padding."""
    channels, *spatial = in_shape
    out_channels, per_group, *kernel = weight.shape
    x = x.reshape(in_shape)
    out = [
        (size + 2 * p - d * (k - 1) - 1) // s + 1
        for size, k, s, p, d in zip(spatial, kernel, stride, padding, dilation, strict=True)
    ]
    result = np.zeros((out_channels, *out))
    for f in range(out_channels):
        group = f // (out_channels // groups)
        for o in np.ndindex(*out):
            total = bias[f]
            for c in range(per_group):
                for k in np.ndindex(*kernel):
                    pos = [oi * s - p + ki * d for oi, s, p, ki, d in
                           zip(o, stride, padding, k, dilation, strict=True)]  # fmt: skip
                    if all(0 <= q < n for q, n in zip(pos, spatial, strict=True)):
                        total += weight[f, c, *k] * x[group * per_group + c, *pos]
            result[f, *o] = total
    return result.reshape(-1)


def _pool_loop(x, in_shape, kernel, stride, padding, dilation) -> np.ndarray:
    """Max pooling by its definition: padding never wins."""
    channels, *spatial = in_shape
    x = x.reshape(in_shape)
    out = [
        (size + 2 * p - d * (k - 1) - 1) // s + 1
        for size, k, s, p, d in zip(spatial, kernel, stride, padding, dilation, strict=True)
    ]
    result = np.zeros((channels, *out), np.int64)
    for c in range(channels):
        for o in np.ndindex(*out):
            values = []
            for k in np.ndindex(*kernel):
                pos = [oi * s - p + ki * d for oi, s, p, ki, d in
                       zip(o, stride, padding, k, dilation, strict=True)]  # fmt: skip
                if all(0 <= q < n for q, n in zip(pos, spatial, strict=True)):
                    values.append(x[c, *pos])
            result[c, *o] = max(values)
    return result.reshape(-1)


CONV_CASES = {
    "1d-stride-padding-dilation": dict(
        in_shape=(2, 11), out_channels=3, kernel=(3,), stride=(2,), padding=(2,), dilation=(2,)
    ),
    "2d-asymmetric": dict(
        in_shape=(2, 6, 7),
        out_channels=4,
        kernel=(2, 3),
        stride=(1, 2),
        padding=(1, 0),
        dilation=(2, 1),
    ),
    "2d-groups": dict(in_shape=(4, 5, 5), out_channels=6, kernel=(3, 3), padding=(1, 1), groups=2),
    "1d-depthwise": dict(in_shape=(3, 9), out_channels=3, kernel=(4,), padding=(3,), groups=3),
    "2d-depthwise-multiplier": dict(
        in_shape=(2, 4, 4), out_channels=4, kernel=(3, 3), stride=(2, 2), padding=(1, 1), groups=2
    ),
}


def _conv_case(rng, in_shape, out_channels, kernel, groups=1, **geometry) -> ConvLayer:
    dims = len(in_shape) - 1
    geometry = {
        k: geometry.get(k, (v,) * dims) for k, v in (("stride", 1), ("padding", 0), ("dilation", 1))
    }
    return random_conv(rng, "c", in_shape, out_channels, kernel, groups=groups, **geometry)


@pytest.mark.parametrize("case", CONV_CASES.values(), ids=CONV_CASES.keys())
def test_conv_to_dense_is_the_convolution(case) -> None:
    """The lowered matrix, read in reals, is the real-valued convolution of a numpy loop."""
    rng = np.random.default_rng(1)
    layer = _conv_case(rng, **case)
    dense = layer.to_dense()
    assert (dense.name, dense.output, dense.activation) == (
        layer.name,
        layer.output,
        layer.activation,
    )
    assert (dense.round_mode, dense.overflow) == (layer.round_mode, layer.overflow)
    w_real = np.ldexp(layer.weight.astype(float), -layer.weight_frac_bits)
    b_real = np.ldexp(layer.bias.astype(float), -layer.bias_frac_bits)
    dense_real = np.ldexp(dense.weight.astype(float), -dense.weight_frac_bits)
    dense_bias = np.ldexp(dense.bias.astype(float), -dense.bias_frac_bits)
    for _ in range(3):
        x = rng.integers(-8, 8, math.prod(layer.in_shape)) / 4.0
        expected = _conv_loop(
            x, w_real, b_real, layer.in_shape, layer.stride, layer.padding, layer.dilation,
            layer.groups,
        )  # fmt: skip
        np.testing.assert_array_equal(dense_real @ x + dense_bias, expected)
    assert layer.out_features == math.prod(layer.out_shape) == dense.out_features
    # padded taps add no term: each output has at most one tap per kernel weight
    assert (np.count_nonzero(dense.weight, axis=1) <= np.count_nonzero(layer.weight)).all()


@pytest.mark.parametrize("case", CONV_CASES.values(), ids=CONV_CASES.keys())
def test_conv_reference_is_the_exact_convolution(case) -> None:
    """With an output format fine and wide enough for nothing to round or overflow, the
    reference's integers are the real-valued convolution."""
    rng = np.random.default_rng(2)
    layer = _conv_case(rng, **case)
    n_in = math.prod(layer.in_shape)
    in_fmt = fmt([1] * n_in, [3] * n_in, [2] * n_in)
    weight_frac = np.full(layer.weight.shape, 3)
    n_out = layer.out_features
    output = fmt([1] * n_out, [20] * n_out, [5] * n_out)
    layer = dataclasses.replace(
        layer, weight_frac_bits=weight_frac, bias_frac_bits=np.full(layer.bias.shape, 5),
        output=output,
    )  # fmt: skip
    ir = IRModel("conv", in_fmt, (layer,))
    x = reference.random_inputs(in_fmt, 20, rng)
    out = reference.run(ir, x)
    w_real = np.ldexp(layer.weight.astype(float), -3)
    b_real = np.ldexp(layer.bias.astype(float), -5)
    for row_in, row_out in zip(x, out, strict=True):
        expected = _conv_loop(
            row_in / 4.0, w_real, b_real, layer.in_shape, layer.stride, layer.padding,
            layer.dilation, layer.groups,
        )  # fmt: skip
        relu = layer.activation.value == "relu"
        np.testing.assert_array_equal(row_out / 32.0, np.maximum(expected, 0) if relu else expected)


POOL_CASES = {
    "1d-padding": dict(in_shape=(2, 9), kernel=(3,), stride=(2,), padding=(1,)),
    "2d-default-stride": dict(in_shape=(3, 4, 6), kernel=(2, 2), padding=(0, 0)),
    "2d-drawn": dict(in_shape=(2, 5, 5)),  # kernel and padding drawn by the generator
    "2d-padding-dilation": dict(
        in_shape=(2, 5, 6), kernel=(2, 3), stride=(2, 1), padding=(1, 1), dilation=(1, 2)
    ),
}


@pytest.mark.parametrize("case", POOL_CASES.values(), ids=POOL_CASES.keys())
def test_maxpool_nd_is_the_maximum_over_real_taps(case) -> None:
    rng = np.random.default_rng(3)
    n = math.prod(case["in_shape"])
    in_fmt = TensorFormat(np.ones(n, bool), np.full(n, 4), np.full(n, 1))
    layer = random_maxpool_nd(rng, "pool", in_fmt, **case)
    ir = IRModel("pool", in_fmt, (layer,))
    x = reference.random_inputs(in_fmt, 30, rng)
    x[:, 0] = -16  # the lowest value: padding (0 in a zero-padded pool) must not win
    out = reference.run(ir, x)
    assert layer.stride == case.get("stride", layer.kernel)
    geometry = (layer.kernel, layer.stride, layer.padding, layer.dilation)
    for row_in, row_out in zip(x, out, strict=True):
        np.testing.assert_array_equal(row_out, _pool_loop(row_in, case["in_shape"], *geometry))
    lowered = layer.to_windows()
    np.testing.assert_array_equal(lowered.windows, layer.windows)
    assert lowered.output == layer.output and lowered.name == layer.name


@pytest.mark.parametrize("seed", range(6))
def test_reference_on_spatial_layers_equals_it_on_their_lowering(seed: int) -> None:
    rng = np.random.default_rng(seed)
    in_shape = [(2, 6, 6), (3, 10), (4, 5, 4)][seed % 3]
    groups = in_shape[0] if seed % 2 else 1  # depthwise, two filters per channel
    ir = random_cnn(rng, in_shape, 2 * in_shape[0] if seed % 2 else 3, groups=groups)
    lowered = lower_spatial(ir)
    assert [layer.kind for layer in ir.layers] == ["conv", "quantize", "maxpool_nd", "dense"]
    assert [layer.kind for layer in lowered.layers] == ["dense", "quantize", "maxpool", "dense"]
    assert [layer.name for layer in lowered.layers] == [layer.name for layer in ir.layers]
    assert lowered.inputs == ir.inputs and lower_spatial(lowered) is lowered
    x = reference.random_inputs(ir, 300, rng)
    ours, theirs = reference.run_named(ir, x), reference.run_named(lowered, x)
    for name in ours:
        np.testing.assert_array_equal(ours[name], theirs[name])
    assert reference.ebops(ir) == reference.ebops(lowered) > 0


# ----------------------------------------------------------------------------- validation


def _conv(**changes) -> ConvLayer:
    fields = dict(
        name="c",
        in_shape=(2, 5, 5),
        weight=np.ones((4, 2, 3, 3), np.int64),
        weight_frac_bits=np.zeros((4, 2, 3, 3), np.int64),
        bias=np.zeros(4, np.int64),
        bias_frac_bits=np.zeros(4, np.int64),
        output=random_format(np.random.default_rng(0), 36),
    )
    return ConvLayer(**(fields | changes))


def test_conv_validation_messages() -> None:
    wide = random_format(np.random.default_rng(0), 100)
    cases = [
        (dict(in_shape=(2, 5, 5, 5)), r"c.in_shape must be \(channels, length\) or \(channels"),
        (dict(in_shape=(0, 5)), "c.in_shape must be"),
        (dict(weight=np.ones((4, 2, 3), np.int64)), r"c.weight must have shape \(out_channels"),
        (dict(weight=np.ones((4, 1, 3, 3), np.int64)), "c.weight has 1 input channels per group"),
        (dict(groups=3), r"c.groups \(3\) must divide both the input channels \(2\)"),
        (dict(groups=0), "c.groups must be a positive integer, not 0"),
        (dict(groups=True), "c.groups must be a positive integer, not True"),
        (dict(bias=np.zeros(3, np.int64)), r"c.bias must have shape \(4,\), not \(3,\)"),
        (dict(stride=(1, 0)), r"c.stride must be positive integers, one per spatial dim"),
        (dict(stride=(1,)), "c.stride must be positive integers"),
        (dict(padding=-1), "c.padding must be integers >= 0"),
        (dict(dilation=(3, 3)), "leaves output dimensions .* each must be at least 1"),
        (dict(output=wide), r"c.output has 100 elements, the layer has 36 outputs \(out_shape"),
        (dict(name="1c"), "layer name must be an identifier"),
    ]  # fmt: skip
    for changes, match in cases:
        with pytest.raises(ValueError, match=match):
            _conv(**changes)
    layer = _conv(padding=1, output=wide)
    assert layer.out_shape == (4, 5, 5) and layer.kernel == (3, 3) and layer.stride == (1, 1)


def test_conv_input_size_and_accumulators_are_checked() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(
        ValueError, match=r"c has in_shape \(2, 5, 5\) \(50 elements\), its input has 49"
    ):
        IRModel("m", random_format(rng, 49), (_conv(),))
    big = fmt([1] * 50, [40] * 50, [0] * 50)
    weight = np.full((4, 2, 3, 3), 1 << 20)
    with pytest.raises(ValueError, match="c output 0 needs a .*-bit accumulator"):
        IRModel("m", big, (_conv(weight=weight, output=fmt([1] * 36, [40] * 36, [0] * 36)),))


def test_maxpool_nd_validation_messages() -> None:
    rng = np.random.default_rng(0)
    in_fmt = random_format(rng, 2 * 16)
    pool = random_maxpool_nd(rng, "p", in_fmt, (2, 4, 4), 2, padding=0)
    assert pool.stride == (2, 2) and pool.out_shape == (2, 2, 2) and pool.windows.shape == (8, 4)
    cases = [
        (dict(kernel=(0, 2)), "p.kernel must be positive integers"),
        (dict(padding=(2, 0)), "output position 0 of every channel pools only padding"),
        (dict(in_shape=(2, 16)), r"p.kernel must be .* one per spatial dimension \(1\)"),
        (dict(stride=(1, 1)), r"p.output has 8 elements, the layer has 18 outputs"),
    ]  # fmt: skip
    for changes, match in cases:
        with pytest.raises(ValueError, match=match):
            dataclasses.replace(pool, **changes)
    narrow = TensorFormat(pool.output.signed, pool.output.int_bits - 1, pool.output.frac_bits)
    with pytest.raises(ValueError, match="p output .*: the maximum ranges over"):
        IRModel("m", in_fmt, (dataclasses.replace(pool, output=narrow),))
    with pytest.raises(
        ValueError, match=r"p has in_shape \(2, 4, 4\) \(32 elements\), its input has 31"
    ):
        IRModel("m", random_format(rng, 31), (pool,))


def test_the_dense_chain_check_names_spatial_layers() -> None:
    ir = random_cnn(np.random.default_rng(0))
    assert ir.dense_chain_problem() == (
        "layer 'conv_0' is a conv layer (hgq_rtl.ir.lowering.lower_spatial unrolls it)"
    )


# ------------------------------------------------------------------------------ files


def test_version_3_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    ir = random_cnn(rng, (2, 5, 5), 3, groups=1)
    folder = save(ir, tmp_path / "cnn")
    document = json.loads((folder / "model.json").read_text())
    assert document["schema_version"] == 3 and "input" not in document
    assert document["inputs"] == [
        {"name": "input", "size": 50, "shape": [2, 5, 5], "overflow": "SAT"}
    ]
    conv = document["layers"][0]
    assert {k: conv[k] for k in ("type", "in_shape", "out_shape", "kernel", "groups")} == {
        "type": "conv", "in_shape": [2, 5, 5], "out_shape": [3, 5, 5], "kernel": [3, 3],
        "groups": 1,
    }  # fmt: skip
    assert (conv["stride"], conv["padding"], conv["dilation"]) == ([1, 1], [1, 1], [1, 1])
    pool = document["layers"][2]
    assert pool["type"] == "maxpool_nd" and pool["out_shape"] == [3, 3, 3]
    loaded = load(folder)
    assert loaded.inputs[0].shape == (2, 5, 5)
    for ours, theirs in zip(ir.layers, loaded.layers, strict=True):
        assert type(ours) is type(theirs) and ours.output == theirs.output
    x = reference.random_inputs(ir, 100, rng)
    np.testing.assert_array_equal(reference.run(ir, x), reference.run(loaded, x))
    again = save(loaded, tmp_path / "again")
    for name in ("model.json", "weights.npz"):
        assert (folder / name).read_bytes() == (again / name).read_bytes()


def _edited(tmp_path: Path, edit_document=None, edit_arrays=None) -> Path:
    """A saved random CNN (version 3), its model.json and arrays edited, hashes redone."""
    ir = random_cnn(np.random.default_rng(5), (2, 5, 5), 2)
    folder = save(ir, tmp_path / "base")
    document = json.loads((folder / "model.json").read_text())
    with np.load(folder / "weights.npz") as npz:
        arrays = {key: npz[key] for key in npz.files}
    if edit_document:
        edit_document(document)
    if edit_arrays:
        edit_arrays(arrays)
    document["arrays"] = {key: io.array_sha256(value) for key, value in arrays.items()}
    out = tmp_path / "edited"
    out.mkdir(exist_ok=True)
    np.savez(out / "weights.npz", **arrays)
    (out / "model.json").write_text(json.dumps(document))
    return out


def _entry(document: dict, kind: str) -> dict:
    return next(entry for entry in document["layers"] if entry["type"] == kind)


def _as_version_2(document: dict) -> None:
    """Version 2 spelling of the input; the layers stay as they are."""
    (model_input,) = document.pop("inputs")
    document["input"] = {"size": model_input["size"], "overflow": model_input["overflow"]}
    document["schema_version"] = 2


def _set(kind: str, **values):
    return lambda document: _entry(document, kind).update(values)


MALFORMED = [
    ("in_shape", _set("conv", in_shape=[2, 25]), None,
     r"conv_0.weight must have shape \(out_channels, in_channels // groups, \*kernel\) with 1"),
    ("in_shape-zero", _set("conv", in_shape=[0, 5, 10]), None, "conv_0.in_shape must be"),
    ("in_shape-type", _set("conv", in_shape="2x5x5"), None,
     "layer 'conv_0': 'in_shape' must be a list of integers, not '2x5x5'"),
    ("unknown-kind", _set("conv", type="conv3d"), None,
     r"unknown type 'conv3d' \(supported in version 3: .*conv, maxpool_nd\)"),
    ("kernel-weight", _set("conv", kernel=[2, 3]), None,
     r"layer 'conv_0' declares kernel=\[2, 3\], its arrays and shapes give \[3, 3\]"),
    ("kernel-array", None,
     lambda a: a.update({"conv_0.weight": a["conv_0.weight"][..., :2],
                         "conv_0.weight_frac_bits": a["conv_0.weight_frac_bits"][..., :2]}),
     r"conv_0.output has 50 elements, the layer has 60 outputs \(out_shape \(2, 5, 6\)\)"),
    ("out_shape", _set("maxpool_nd", out_shape=[2, 2, 2]), None,
     r"layer 'maxpool_0' declares out_shape=\[2, 2, 2\]"),
    ("stride", _set("conv", stride=2), None, "'stride' must be a list of integers, not 2"),
    ("stride-zero", _set("maxpool_nd", stride=[0, 2]), None, "maxpool_0.stride must be positive"),
    ("groups-bool", _set("conv", groups=True), None, "'groups' must be an integer, not True"),
    ("groups", _set("conv", groups=3), None, r"conv_0.groups \(3\) must divide"),
    ("missing-key", lambda d: _entry(d, "conv").pop("padding"), None, "lacks the key 'padding'"),
    ("conv-in-v2", _as_version_2, None,
     r"'conv_0' has type 'conv', which needs schema_version 3 \(version 2 has neither conv"),
    ("maxpool_nd-in-v2", lambda d: (_as_version_2(d), d["layers"].pop(0)),
     None, "'maxpool_0' has type 'maxpool_nd', which needs schema_version 3"),
    ("bias", None, lambda a: a.update({"conv_0.bias": np.zeros(3, np.int64)}),
     r"conv_0.bias must have shape \(2,\)"),
    ("out-size", _set("conv", in_shape=[2, 5, 4]), None,
     r"conv_0.output has 50 elements, the layer has 40 outputs"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("edit_document", "edit_arrays", "match"),
    [case[1:] for case in MALFORMED],
    ids=[case[0] for case in MALFORMED],
)
def test_malformed_version_3_files(tmp_path: Path, edit_document, edit_arrays, match) -> None:
    with pytest.raises(IRFormatError, match=match) as info:
        load(_edited(tmp_path, edit_document, edit_arrays))
    assert "\n" not in str(info.value)


def test_a_hand_written_version_3_file_loads(tmp_path: Path) -> None:
    """The convolution example of docs/ir.md, written without hgq-rtl."""
    arrays = {
        "image.signed": np.zeros(8, np.int8),
        "image.int_bits": np.full(8, 3),
        "image.frac_bits": np.zeros(8, np.int64),
        "conv.weight": np.array([[[1, -1]], [[2, 0]]]),  # (F=2, C=1, kernel 2)
        "conv.weight_frac_bits": np.zeros((2, 1, 2), np.int64),
        "conv.bias": np.array([0, 1]),
        "conv.bias_frac_bits": np.zeros(2, np.int64),
        "conv.output.signed": np.ones(8, np.int8),
        "conv.output.int_bits": np.full(8, 5),
        "conv.output.frac_bits": np.zeros(8, np.int64),
    }
    document = {
        "schema": "hgq-rtl-ir",
        "schema_version": 3,
        "name": "conv_example",
        "inputs": [{"name": "image", "size": 8, "shape": [1, 8], "overflow": "SAT"}],
        "layers": [
            {
                "name": "conv",
                "type": "conv",
                "inputs": ["image"],
                "in_shape": [1, 8],
                "out_shape": [2, 4],
                "kernel": [2],
                "stride": [2],
                "padding": [0],
                "dilation": [1],
                "groups": 1,
                "out_features": 8,
                "activation": "linear",
                "round_mode": "RND",
                "overflow": "WRAP",
            },
        ],  # fmt: skip
        "arrays": {key: io.array_sha256(value) for key, value in arrays.items()},
        "metadata": {},
    }
    folder = tmp_path / "hand"
    folder.mkdir()
    np.savez(folder / "weights.npz", **arrays)
    (folder / "model.json").write_text(json.dumps(document))
    ir = load(folder)
    assert ir.input_names == ("image",) and ir.inputs[0].shape == (1, 8)
    x = np.array([[0, 1, 2, 3, 4, 5, 6, 7]])
    # channel 0: x[2o] - x[2o+1]; channel 1: 2 x[2o] + 1
    assert reference.run(ir, x).tolist() == [[-1, -1, -1, -1, 1, 5, 9, 13]]
    assert ir.model_input("image").overflow.value == "SAT"
