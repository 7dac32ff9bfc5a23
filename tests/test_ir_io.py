"""Tests of the IR on disk (hgq_rtl.ir.io), the integer reference and EBOPs, on hand-made models.

Expected integers are worked out by hand (see the comments), not by calling the reference.
The raw writer ``_write_raw`` follows docs/ir.md without using hgq_rtl's own writer, so these
tests also check that the documented format is enough to produce a loadable model.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from bad_inputs.helpers import format_arrays, layer_entry
from ir_builders import dense, fmt

from hgq_rtl.ir import (
    Activation,
    DenseLayer,
    IRFormatError,
    IRModel,
    Overflow,
    RoundMode,
    TensorFormat,
    ebops,
    load,
    quantize_input,
    run,
    run_all,
    save,
)
from hgq_rtl.ir import io as ir_io
from hgq_rtl.ir.dense import accumulator_frac_bits
from hgq_rtl.ir.reference import layer_ebops, random_inputs

# --------------------------------------------------------------------------- helpers


def one_layer(layer: DenseLayer, input_format: TensorFormat, **kwargs) -> IRModel:
    return IRModel("tiny", input_format, (layer,), **kwargs)


def doc_sha256(array: np.ndarray) -> str:
    """The per-array hash exactly as docs/ir.md describes it (independent of io.array_sha256)."""
    array = np.ascontiguousarray(array)
    header = f"{array.dtype.str}{tuple(int(n) for n in array.shape)}"  # e.g. "<i8(2, 3)"
    little = array.astype(array.dtype.newbyteorder("<"))
    return hashlib.sha256(header.encode("ascii") + little.tobytes()).hexdigest()


def _write_raw(folder: Path, document: dict, arrays: dict[str, np.ndarray]) -> Path:
    """Write an IR folder by hand (docs/ir.md), with hashes matching ``arrays``."""
    folder.mkdir(parents=True, exist_ok=True)
    document = dict(document)
    document["arrays"] = {key: doc_sha256(value) for key, value in arrays.items()}
    np.savez(folder / "weights.npz", **arrays)
    (folder / "model.json").write_text(json.dumps(document, indent=2))
    return folder


def _raw_valid() -> tuple[dict, dict[str, np.ndarray]]:
    """A valid 2 -> 2 -> 1 model as a (model.json document, weights.npz arrays) pair."""
    arrays = format_arrays("input", [1, 0], [2, 3], [1, 0])
    arrays |= {
        "l0.weight": np.array([[1, -2], [3, 0]], np.int64),
        "l0.weight_frac_bits": np.array([[1, 2], [0, 0]], np.int64),
        "l0.bias": np.array([1, -1], np.int64),
        "l0.bias_frac_bits": np.array([0, 1], np.int64),
    }
    arrays |= format_arrays("l0.output", [0, 0], [4, 4], [1, 1])
    arrays |= {
        "l1.weight": np.array([[5, -3]], np.int64),
        "l1.weight_frac_bits": np.array([[2, 2]], np.int64),
        "l1.bias": np.array([0], np.int64),
        "l1.bias_frac_bits": np.array([0], np.int64),
    }
    arrays |= format_arrays("l1.output", [1], [4], [2])
    document = {
        "schema": "hgq-rtl-ir",
        "schema_version": 1,
        "name": "raw_model",
        "input": {"size": 2, "overflow": "SAT"},
        "layers": [
            layer_entry("l0", 2, 2),
            layer_entry("l1", 2, 1, activation="linear", round_mode="TRN", overflow="SAT"),
        ],
        "arrays": {},
        "metadata": {"source": "hand-written"},
    }
    return document, arrays


def _load_error(folder: Path, match: str) -> str:
    """``load(folder)`` must raise IRFormatError matching ``match`` with a one-line message."""
    with pytest.raises(IRFormatError, match=match) as info:
        load(folder)
    message = str(info.value)
    assert message and "\n" not in message, message
    return message


def _two_layer_model() -> IRModel:
    layer0 = dense(
        "hidden",
        [[3, -5, 0], [12, 1, -7], [0, 0, 0]],
        [[1, 2, 0], [3, 0, 1], [0, 0, 0]],
        [3, 0, -2],
        [1, 4, 0],
        fmt([1, 0, 1], [3, 4, 2], [1, 0, -1]),
        activation=Activation.RELU,
        round_mode=RoundMode.RND,
        overflow=Overflow.WRAP,
    )
    layer1 = dense(
        "out",
        [[1, -2, 6], [-3, 0, 9]],
        [[0, 1, 2], [1, 0, 3]],
        [5, -1],
        [2, 0],
        fmt([1, 1], [5, 3], [2, -1]),
        round_mode=RoundMode.TRN,
        overflow=Overflow.SAT,
    )
    return IRModel(
        "two_layer",
        fmt([1, 0, 1], [2, 1, 0], [1, 2, 3]),
        (layer0, layer1),
        input_overflow=Overflow.WRAP,
        metadata={"note": "hand-made", "bits": [1, 2, 3]},
    )


# --------------------------------------------------------------------------- round trip


def test_save_load_round_trip(tmp_path: Path) -> None:
    ir = _two_layer_model()
    folder = save(ir, tmp_path / "ir")
    assert sorted(p.name for p in folder.iterdir()) == ["model.json", "weights.npz"]
    back = load(folder)

    assert back.name == ir.name
    assert back.input_overflow is ir.input_overflow
    assert back.metadata == ir.metadata
    assert back.input == ir.input
    for a, b in zip(ir.layers, back.layers, strict=True):
        assert (a.name, a.activation, a.round_mode, a.overflow) == (
            b.name,
            b.activation,
            b.round_mode,
            b.overflow,
        )
        assert a.output == b.output
    original, loaded = ir_io.to_arrays(ir), ir_io.to_arrays(back)
    assert original.keys() == loaded.keys()
    for key in original:
        assert original[key].dtype == loaded[key].dtype, key
        np.testing.assert_array_equal(original[key], loaded[key], err_msg=key)

    x = random_inputs(ir.input, 500, np.random.default_rng(0))
    for mine, theirs in zip(run_all(ir, x), run_all(back, x), strict=True):
        np.testing.assert_array_equal(mine, theirs)
    assert ebops(back) == ebops(ir)


def test_saved_hashes_follow_the_documented_rule(tmp_path: Path) -> None:
    folder = save(_two_layer_model(), tmp_path / "ir")
    document = json.loads((folder / "model.json").read_text())
    assert document["schema"] == "hgq-rtl-ir"
    assert document["schema_version"] == 1
    with np.load(folder / "weights.npz") as npz:
        assert sorted(npz.files) == sorted(document["arrays"])
        for key in npz.files:
            assert doc_sha256(npz[key]) == document["arrays"][key], key
            assert ir_io.array_sha256(npz[key]) == document["arrays"][key], key
    # The hash covers the dtype and the shape, not only the bytes.
    a = np.array([1, 2], np.int64)
    assert ir_io.array_sha256(a) != ir_io.array_sha256(a.astype(np.int32))
    assert ir_io.array_sha256(a.reshape(1, 2)) != ir_io.array_sha256(a)
    # Worked by hand: header "<i8(2,)" then 1 and 2 as little-endian int64.
    by_hand = b"<i8(2,)" + b"\x01" + b"\x00" * 7 + b"\x02" + b"\x00" * 7
    assert ir_io.array_sha256(a) == hashlib.sha256(by_hand).hexdigest()
    assert (
        ir_io.array_sha256(np.array([1, 0], np.int8))
        == hashlib.sha256(b"|i1(2,)\x01\x00").hexdigest()
    )
    # A big-endian array keeps ">i8" in the header but its bytes are hashed little-endian.
    big = b">i8(2,)" + b"\x01" + b"\x00" * 7 + b"\x02" + b"\x00" * 7
    assert ir_io.array_sha256(a.astype(">i8")) == hashlib.sha256(big).hexdigest()


def test_save_replaces_an_existing_folder_without_leftovers(tmp_path: Path) -> None:
    ir = _two_layer_model()
    save(ir, tmp_path / "ir")
    (tmp_path / "ir" / "stale.txt").write_text("old")
    save(ir, tmp_path / "ir")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ir"]
    assert sorted(p.name for p in (tmp_path / "ir").iterdir()) == ["model.json", "weights.npz"]


def test_a_hand_written_folder_loads(tmp_path: Path) -> None:
    document, arrays = _raw_valid()
    ir = load(_write_raw(tmp_path / "raw", document, arrays))
    assert ir.name == "raw_model"
    assert [layer.name for layer in ir.layers] == ["l0", "l1"]
    assert ir.layers[0].activation is Activation.RELU
    assert ir.layers[1].round_mode is RoundMode.TRN
    assert ir.metadata == {"source": "hand-written"}
    # x = [x0 (s, 2 int, 1 frac), x1 (u, 3 int, 0 frac)] = [3 -> 1.5, 5 -> 5.0]
    # l0 row 0: F = max(1+1, 2+0, bias 0) = 2: acc = 1*3<<0 + (-2)*5<<0 + 1<<2 = -3
    #   -> shift 2-1 = 1: RND floor(-1.5 + .5) = -1 -> relu 0
    # l0 row 1: F = max(0+1, bias 1) = 1 (weight 0 is dead): acc = 3*3 + (-1) = 8 -> shift 0: 8
    # l1: F = max(2+1, 2+1) = 3: acc = 5*0 + (-3)*8 = -24 -> shift 3-2 = 1: TRN floor(-12) = -12
    assert run(ir, np.array([[3, 5]])).tolist() == [[-12]]


# --------------------------------------------------------------------------- reference by hand


def test_rounding_rnd_and_trn_with_ties() -> None:
    # weight 1 with 1 (row 0) or 2 (row 1) fractional bits: y = x / 2 and y = x / 4.
    x = np.array([[5], [-5], [3], [-3], [4], [-4], [1], [-1], [6], [-6], [7], [-7]])
    expected = {
        # x/2:  2.5 -2.5 1.5 -1.5  2 -2  .5 -.5   3 -3  3.5 -3.5  (ties go to +inf)
        # x/4:  1.25 -1.25 .75 -.75 1 -1 .25 -.25 1.5 -1.5 1.75 -1.75
        RoundMode.RND: [
            [3, 1],
            [-2, -1],
            [2, 1],
            [-1, -1],
            [2, 1],
            [-2, -1],
            [1, 0],
            [0, 0],
            [3, 2],
            [-3, -1],
            [4, 2],
            [-3, -2],
        ],
        RoundMode.TRN: [
            [2, 1],
            [-3, -2],
            [1, 0],
            [-2, -1],
            [2, 1],
            [-2, -1],
            [0, 0],
            [-1, -1],
            [3, 1],
            [-3, -2],
            [3, 1],
            [-4, -2],
        ],
    }
    for mode, want in expected.items():
        layer = dense(
            "q",
            [[1], [1]],
            [[1], [2]],
            [0, 0],
            [0, 0],
            fmt([1, 1], [6, 6], [0, 0]),
            round_mode=mode,
        )
        ir = one_layer(layer, fmt([1], [7], [0]))
        assert run(ir, x).tolist() == want, mode


def test_relu_is_applied_after_rounding() -> None:
    # y = x / 2 then ReLU: -1 -> -0.5 rounds (RND) to 0, -3 -> -1.5 rounds to -1 -> 0.
    x = np.array([[-3], [-1], [0], [1], [3]])
    for activation, want in (
        (Activation.LINEAR, [-1, 0, 0, 1, 2]),
        (Activation.RELU, [0, 0, 0, 1, 2]),
    ):
        layer = dense("r", [[1]], [[1]], [0], [0], fmt([1], [4], [0]), activation=activation)
        assert run(one_layer(layer, fmt([1], [4], [0])), x).ravel().tolist() == want


def test_wrap_and_sat_on_signed_and_unsigned_outputs() -> None:
    # Two outputs equal to x: signed 3 bits [-4, 3] and unsigned 3 bits [0, 7].
    x = np.array([[5], [-5], [9], [-1], [3], [-9]])
    expected = {
        Overflow.WRAP: [[-3, 5], [3, 3], [1, 1], [-1, 7], [3, 3], [-1, 7]],
        Overflow.SAT: [[3, 5], [-4, 0], [3, 7], [-1, 0], [3, 3], [-4, 0]],
    }
    for mode, want in expected.items():
        layer = dense(
            "o", [[1], [1]], [[0], [0]], [0, 0], [0, 0], fmt([1, 0], [2, 3], [0, 0]), overflow=mode
        )
        assert run(one_layer(layer, fmt([1], [7], [0])), x).tolist() == want, mode


def test_relu_then_wrap_can_go_negative() -> None:
    # Overflow comes after the activation: 5 wraps to -3 in a signed 3-bit output.
    layer = dense("o", [[1]], [[0]], [0], [0], fmt([1], [2], [0]), activation=Activation.RELU)
    assert run(one_layer(layer, fmt([1], [7], [0])), np.array([[5], [-5]])).tolist() == [[-3], [0]]


def test_zero_width_input_zero_weight_and_negative_frac_bits() -> None:
    # Inputs: e0 signed 4 bits (frac 0); e1 zero width (frac 7: must not raise F);
    # e2 unsigned 3 bits with frac -2 (m in [0, 7], real 4 m).
    input_format = fmt([1, 0, 0], [3, -7, 5], [0, 7, -2])
    assert input_format.width.tolist() == [4, 0, 3]
    layer = dense(
        "z",
        # row 0: 3*e0 + 7*e1 (dead: zero width) + 0*e2 (dead: zero weight, fw 5 ignored)
        # row 1: 5*2^-1 * e2 + bias 1*2^3 (bias frac -3)
        [[3, 7, 0], [0, 0, 5]],
        [[0, 10, 5], [9, 0, 1]],
        [0, 1],  # a zero bias with frac 8 must not raise F either
        [8, -3],
        fmt([1, 1], [6, 8], [0, -2]),  # out1: step 4, 7 bits signed
    )
    # F_0 = 0 + 0 = 0. F_1 = max(1 + (-2), bias -3) = -1.
    assert accumulator_frac_bits(layer, input_format).tolist() == [0, -1]
    x = np.array([[-8, 0, 1], [7, 0, 3], [1, 0, 0], [-1, 0, 7]])
    # out0 = 3 x0. acc1 = 5 x2 + (1 << 2) in units of 2^1; out1 = acc1 / 2 in units of 4:
    # x2 = 1: 9/2 = 4.5 ; 3: 19/2 = 9.5 ; 0: 4/2 = 2 ; 7: 39/2 = 19.5
    ir = one_layer(layer, input_format)
    assert run(ir, x).tolist() == [[-24, 5], [21, 10], [3, 2], [-3, 20]]
    trn = one_layer(
        dense("z", layer.weight, layer.weight_frac_bits, layer.bias, layer.bias_frac_bits,
              layer.output, round_mode=RoundMode.TRN),
        input_format,
    )  # fmt: skip
    assert run(trn, x).tolist() == [[-24, 4], [21, 9], [3, 2], [-3, 19]]
    # The zero-width element only accepts 0.
    with pytest.raises(ValueError, match="outside"):
        run(ir, np.array([[0, 1, 0]]))


def test_output_without_terms_and_bias_only() -> None:
    # Row 0 has no live term and no bias: 0. Row 1 is the bias 3 * 2^-1 = 1.5 -> RND 2, TRN 1.
    for mode, want in ((RoundMode.RND, [[0, 2]]), (RoundMode.TRN, [[0, 1]])):
        layer = dense(
            "b",
            [[0], [0]],
            [[4], [4]],
            [0, 3],
            [0, 1],
            fmt([1, 1], [3, 3], [0, 0]),
            round_mode=mode,
        )
        ir = one_layer(layer, fmt([1], [3], [0]))
        assert run(ir, np.array([[5]])).tolist() == want


def test_output_finer_than_accumulator_is_refused_beyond_62_bits() -> None:
    # F = 0 but the output keeps 40 fractional bits: the accumulator moves left by 40 bits, so a
    # 31-bit input would need a 73-bit value, which int64 cannot hold: the IR refuses it.
    with pytest.raises(ValueError, match=r"needs a 73-bit accumulator"):
        one_layer(
            dense("s", [[1]], [[0]], [0], [0], fmt([1], [10], [40]), overflow=Overflow.SAT),
            fmt([0], [31], [0]),
        )
    # with a 15-bit input it fits, and SAT clips exactly
    layer = dense("s", [[1]], [[0]], [0], [0], fmt([1], [10], [40]), overflow=Overflow.SAT)
    ir = one_layer(layer, fmt([0], [15], [0]))
    x = np.array([[1], [2**9], [2**14]])
    assert run(ir, x).ravel().tolist() == [2**40, 2**49, 2**50 - 1]


def test_worked_example_of_the_docs() -> None:
    # docs/ir.md, "Worked example".
    layer = dense(
        "dense0", [[3, -5]], [[1, 2]], [3], [1], fmt([1], [2], [1]),
        round_mode=RoundMode.RND, overflow=Overflow.WRAP,
    )  # fmt: skip
    ir = IRModel("example", fmt([1, 0], [2, 1], [1, 2]), (layer,))
    x = np.array([[5, 3], [-8, 7], [7, 0], [-3, 1]])
    assert accumulator_frac_bits(layer, ir.input).tolist() == [4]
    assert run(ir, x).ravel().tolist() == [-7, 3, -2, -2]
    assert ebops(ir) == 17
    real = np.array([[1.3, -0.3], [1.25, 0.125], [-1.25, -0.125], [100.0, 100.0]])
    assert quantize_input(ir, real).tolist() == [[3, 0], [3, 1], [-2, 0], [7, 7]]


def test_quantize_input_wrap() -> None:
    # signed 3 bits, frac 1: 2.0 -> 4 wraps to -4; -2.5 -> -5 wraps to 3; 1.75 -> 3.5 -> 4 -> -4.
    ir = one_layer(
        dense("q", [[1]], [[0]], [0], [0], fmt([1], [4], [1])),
        fmt([1], [1], [1]),
        input_overflow=Overflow.WRAP,
    )
    assert quantize_input(ir, np.array([[2.0], [-2.5], [1.75], [0.5]])).ravel().tolist() == [
        -4,
        3,
        -4,
        1,
    ]


# --------------------------------------------------------------------------- EBOPs


def test_exact_ebops() -> None:
    # bit_span: 12 = 0b1100 -> 2, -1 -> 1, 0 -> 0, 5 = 0b101 -> 3, 3 -> 2, -8 -> 1, 7 -> 3, -6 -> 2
    input_format = fmt([1, 0, 0], [3, 0, 3], [0, 0, 0])  # widths 4, 0, 3
    layer0 = dense(
        "a", [[12, -1, 0], [5, 3, -8]], np.zeros((2, 3), int), [0, 0], [0, 0],
        fmt([1, 0], [4, 2], [0, 0]),  # widths 5, 2
    )  # fmt: skip
    layer1 = dense("b", [[7, -6]], [[0, 0]], [0], [0], fmt([1], [8], [0]))
    # layer a: 2*4 + 1*0 + 0*3 + 3*4 + 2*0 + 1*3 = 23 ; layer b: 3*5 + 2*2 = 19
    assert layer_ebops(layer0, input_format) == 23
    assert layer_ebops(layer1, layer0.output) == 19
    ir = IRModel("e", input_format, (layer0, layer1))
    assert ebops(ir) == 42


def test_ebops_ignore_weight_frac_bits_and_bias() -> None:
    # 12 with 2 fractional bits is 3.0: still 2 bits spanned in the integer 12; biases are free.
    input_format = fmt([0], [4], [0])
    a = dense("a", [[12]], [[2]], [100], [0], fmt([1], [10], [0]))
    b = dense("a", [[3]], [[0]], [0], [0], fmt([1], [10], [0]))
    assert layer_ebops(a, input_format) == layer_ebops(b, input_format) == 8


# --------------------------------------------------------------------------- load errors


def test_missing_folder(tmp_path: Path) -> None:
    _load_error(tmp_path / "nowhere", "does not exist")


def test_missing_model_json(tmp_path: Path) -> None:
    folder = save(_two_layer_model(), tmp_path / "ir")
    (folder / "model.json").unlink()
    _load_error(folder, r"model\.json is missing")


def test_missing_weights(tmp_path: Path) -> None:
    folder = save(_two_layer_model(), tmp_path / "ir")
    (folder / "weights.npz").unlink()
    _load_error(folder, r"weights\.npz is missing")


def test_malformed_json(tmp_path: Path) -> None:
    folder = save(_two_layer_model(), tmp_path / "ir")
    text = (folder / "model.json").read_text()
    (folder / "model.json").write_text(text[: len(text) // 2])
    _load_error(folder, "not valid JSON")


def test_truncated_npz(tmp_path: Path) -> None:
    folder = save(_two_layer_model(), tmp_path / "ir")
    data = (folder / "weights.npz").read_bytes()
    (folder / "weights.npz").write_bytes(data[: len(data) // 2])
    _load_error(folder, "not a readable NPZ")


def test_npy_instead_of_npz(tmp_path: Path) -> None:
    folder = save(_two_layer_model(), tmp_path / "ir")
    with open(folder / "weights.npz", "wb") as f:
        np.save(f, np.zeros(3))
    _load_error(folder, "NPZ")


@pytest.mark.parametrize("schema", ["hgq-rtl-manifest", None, "HGQ-RTL-IR"])
def test_wrong_schema(tmp_path: Path, schema) -> None:
    document, arrays = _raw_valid()
    document["schema"] = schema
    _load_error(_write_raw(tmp_path / "raw", document, arrays), "schema must be 'hgq-rtl-ir'")


@pytest.mark.parametrize("version", [4, 0, "1", "3", None, True])
def test_wrong_schema_version(tmp_path: Path, version) -> None:
    document, arrays = _raw_valid()
    document["schema_version"] = version
    _load_error(_write_raw(tmp_path / "raw", document, arrays), "schema_version")


def test_json_not_an_object(tmp_path: Path) -> None:
    folder = save(_two_layer_model(), tmp_path / "ir")
    (folder / "model.json").write_text("[1, 2, 3]")
    _load_error(folder, "not an hgq-rtl IR file")


def test_hash_mismatch(tmp_path: Path) -> None:
    folder = save(_two_layer_model(), tmp_path / "ir")
    with np.load(folder / "weights.npz") as npz:
        arrays = {key: npz[key] for key in npz.files}
    arrays["hidden.weight"] = arrays["hidden.weight"].copy()
    arrays["hidden.weight"][0, 0] += 1
    np.savez(folder / "weights.npz", **arrays)
    _load_error(folder, r"'hidden\.weight' does not match its sha256")


def test_array_listed_but_absent(tmp_path: Path) -> None:
    document, arrays = _raw_valid()
    folder = _write_raw(tmp_path / "raw", document, arrays)
    rest = {k: v for k, v in arrays.items() if k != "l1.bias"}
    np.savez(folder / "weights.npz", **rest)
    _load_error(folder, r"lacks the array 'l1\.bias'")


def test_array_present_but_not_listed(tmp_path: Path) -> None:
    document, arrays = _raw_valid()
    folder = _write_raw(tmp_path / "raw", document, arrays)
    listed = json.loads((folder / "model.json").read_text())
    del listed["arrays"]["l1.bias"]
    (folder / "model.json").write_text(json.dumps(listed))
    _load_error(folder, r"lists no array 'l1\.bias'")


def test_unknown_layer_type(tmp_path: Path) -> None:
    document, arrays = _raw_valid()
    document["layers"][1]["type"] = "conv2d"
    _load_error(_write_raw(tmp_path / "raw", document, arrays), "unknown type 'conv2d'")


def test_unknown_enum_value(tmp_path: Path) -> None:
    document, arrays = _raw_valid()
    document["layers"][0]["activation"] = "tanh"
    _load_error(_write_raw(tmp_path / "raw", document, arrays), "tanh")


def test_layer_entry_not_an_object(tmp_path: Path) -> None:
    document, arrays = _raw_valid()
    document["layers"][1] = "l1"
    _load_error(_write_raw(tmp_path / "raw", document, arrays), "layer")


def test_nan_weights(tmp_path: Path) -> None:
    document, arrays = _raw_valid()
    arrays["l0.weight"] = np.array([[1.0, np.nan], [3.0, 0.0]])
    _load_error(_write_raw(tmp_path / "raw", document, arrays), r"l0\.weight contains NaN")


def test_non_integer_weights(tmp_path: Path) -> None:
    document, arrays = _raw_valid()
    arrays["l0.weight"] = np.array([[1.0, 0.5], [3.0, 0.0]])
    _load_error(_write_raw(tmp_path / "raw", document, arrays), "must hold integers")


def test_integer_valued_float_weights_are_accepted(tmp_path: Path) -> None:
    document, arrays = _raw_valid()
    reference = run(load(_write_raw(tmp_path / "a", document, arrays)), np.array([[3, 5]]))
    arrays["l0.weight"] = arrays["l0.weight"].astype(np.float64)
    arrays["l1.weight"] = arrays["l1.weight"].astype(np.int16)
    ir = load(_write_raw(tmp_path / "b", document, arrays))
    assert run(ir, np.array([[3, 5]])).tolist() == reference.tolist()


def test_negative_width(tmp_path: Path) -> None:
    document, arrays = _raw_valid()
    arrays["l0.output.int_bits"] = np.array([4, -3], np.int64)  # unsigned, frac 1: width -2
    _load_error(_write_raw(tmp_path / "raw", document, arrays), "negative width -2")


def test_too_wide_element(tmp_path: Path) -> None:
    document, arrays = _raw_valid()
    arrays["input.int_bits"] = np.array([2, 63], np.int64)
    _load_error(_write_raw(tmp_path / "raw", document, arrays), "at most 62")


def test_duplicate_layer_names(tmp_path: Path) -> None:
    document, arrays = _raw_valid()
    # Two square layers with one name read the same arrays; the names must still be unique.
    document["layers"] = [layer_entry("l0", 2, 2), layer_entry("l0", 2, 2)]
    arrays = {k: v for k, v in arrays.items() if not k.startswith("l1.")}
    _load_error(_write_raw(tmp_path / "raw", document, arrays), "'l0' repeats")


def test_shape_mismatch_between_layers(tmp_path: Path) -> None:
    document, arrays = _raw_valid()
    arrays["l1.weight"] = np.array([[5, -3, 1]], np.int64)
    arrays["l1.weight_frac_bits"] = np.array([[2, 2, 2]], np.int64)
    document["layers"][1]["in_features"] = 3
    _load_error(_write_raw(tmp_path / "raw", document, arrays), "l1 expects 3 inputs")


def test_declared_features_disagree_with_arrays(tmp_path: Path) -> None:
    document, arrays = _raw_valid()
    document["layers"][0]["out_features"] = 3
    _load_error(_write_raw(tmp_path / "raw", document, arrays), "out_features=3")


def test_declared_input_size_disagrees(tmp_path: Path) -> None:
    document, arrays = _raw_valid()
    document["input"]["size"] = 5
    _load_error(_write_raw(tmp_path / "raw", document, arrays), "input declares size 5")


def test_inconsistent_array_shapes_in_a_layer(tmp_path: Path) -> None:
    document, arrays = _raw_valid()
    arrays["l0.bias"] = np.array([1, -1, 0], np.int64)
    _load_error(_write_raw(tmp_path / "raw", document, arrays), r"l0\.bias must have shape")


def test_accumulator_wider_than_62_bits(tmp_path: Path) -> None:
    # 41-bit signed input times the weight 2^30: |product| up to 2^70.
    document, arrays = _raw_valid()
    arrays["input.int_bits"] = np.array([40, 3], np.int64)
    arrays["input.frac_bits"] = np.array([0, 0], np.int64)
    arrays["l0.weight"] = np.array([[2**30, -2], [3, 0]], np.int64)
    _load_error(_write_raw(tmp_path / "raw", document, arrays), "-bit accumulator")


@pytest.mark.parametrize("weight, fits", [(2**30 - 1, True), (2**31, False)])
def test_accumulator_limit_at_62_bits(tmp_path: Path, weight: int, fits: bool) -> None:
    # Unsigned 31-bit input (max 2^31 - 1) times 2^30 - 1 stays below 2^61: 61 bits plus a
    # sign bit is 62, the limit. Times 2^31 it reaches 2^62: 64 bits, refused.
    document, arrays = _raw_valid()
    arrays["input.signed"] = np.array([0, 0], np.int8)
    arrays["input.int_bits"] = np.array([31, 3], np.int64)
    arrays["input.frac_bits"] = np.array([0, 0], np.int64)
    arrays["l0.weight"] = np.array([[weight, -2], [3, 0]], np.int64)
    arrays["l0.weight_frac_bits"] = np.array([[0, 0], [0, 0]], np.int64)
    arrays["l0.bias_frac_bits"] = np.array([0, 0], np.int64)
    # the output keeps the accumulator's step (a finer output would shift the sum further left)
    arrays["l0.output.int_bits"] = np.array([5, 5], np.int64)
    arrays["l0.output.frac_bits"] = np.array([0, 0], np.int64)
    folder = _write_raw(tmp_path / "raw", document, arrays)
    if fits:
        load(folder)
    else:
        _load_error(folder, "l0 output 0 needs a 6[34]-bit accumulator")


@pytest.mark.parametrize("scale", [1, 1 << 30])
def test_products_are_exact_on_both_paths(scale: int) -> None:
    """Small products go through float64 (BLAS), large ones stay in int64: both exact."""
    from hgq_rtl.ir.reference import _matmul_exact

    rng = np.random.default_rng(5)
    x = rng.integers(-(1 << 12), 1 << 12, size=(300, 40)) * scale + rng.integers(0, 7, (300, 40))
    matrix = rng.integers(-(1 << 10), 1 << 10, size=(40, 9))
    expected = [
        [sum(int(a) * int(b) for a, b in zip(row, col, strict=True)) for col in matrix.T]
        for row in x
    ]
    assert _matmul_exact(x, matrix).tolist() == expected


# --------------------------------------------------------------------------- graphs (version 2)


def _raw_graph() -> tuple[dict, dict[str, np.ndarray]]:
    """A valid version 2 graph, written by hand from docs/ir.md, using every non-dense kind.

    input: x0 signed 4 bits frac 1 [-8, 7], x1 unsigned 2 bits frac 0 [0, 3]
    q    = quantize(input) to the same formats (the identity)
    pool = maxpool(input, windows [[0, 1]]) at frac 1: max(x0, x1 << 1) in [0, 7]
    sum  = add(q, input): [2 x0, 2 x1] at fracs [1, 0]: [-16, 14], [0, 6]
    lut  = lookup(pool): table over [0, 7]
    cat  = concat(sum, lut)
    """
    arrays = format_arrays("input", [1, 0], [2, 2], [1, 0])
    arrays |= format_arrays("q.output", [1, 0], [2, 2], [1, 0])
    arrays["pool.windows"] = np.array([[0, 1]], np.int64)
    arrays |= format_arrays("pool.output", [0], [2], [1])
    arrays |= format_arrays("sum.output", [1, 0], [3, 3], [1, 0])
    arrays["lut.input_low"] = np.array([0], np.int64)
    arrays["lut.offsets"] = np.array([0], np.int64)
    arrays["lut.table"] = np.array([3, -1, 4, -1, 5, -8, 2, 6], np.int64)
    arrays |= format_arrays("lut.output", [1], [3], [0])
    arrays |= format_arrays("cat.output", [1, 0, 1], [3, 3, 3], [1, 0, 0])
    modes = {"activation": "linear", "round_mode": "RND", "overflow": "WRAP"}
    document = {
        "schema": "hgq-rtl-ir",
        "schema_version": 2,
        "name": "raw_graph",
        "input": {"size": 2, "overflow": "SAT"},
        "layers": [
            {"name": "q", "type": "quantize", "inputs": [], "out_features": 2, **modes},
            {"name": "pool", "type": "maxpool", "inputs": ["input"], "out_features": 1},
            {"name": "sum", "type": "add", "inputs": ["q", "input"], "out_features": 2},
            {"name": "lut", "type": "lookup", "inputs": ["pool"], "out_features": 1},
            {"name": "cat", "type": "concat", "inputs": ["sum", "lut"], "out_features": 3},
        ],
        "arrays": {},
        "metadata": {},
    }
    return document, arrays


def test_a_hand_written_graph_loads(tmp_path: Path) -> None:
    ir = load(_write_raw(tmp_path / "raw", *_raw_graph()))
    assert [(layer.kind, layer.inputs) for layer in ir.layers] == [
        ("quantize", ()),
        ("maxpool", ("input",)),
        ("add", ("q", "input")),
        ("lookup", ("pool",)),
        ("concat", ("sum", "lut")),
    ]
    # [-3, 2]: pool = max(-3, 4) = 4, sum = [-6, 4], lut = table[4] = 5
    # [7, 0]: pool = max(7, 0) = 7, sum = [14, 0], lut = table[7] = 6
    # [-8, 3]: pool = max(-8, 6) = 6, sum = [-16, 6], lut = table[6] = 2
    x = np.array([[-3, 2], [7, 0], [-8, 3]])
    assert run(ir, x).tolist() == [[-6, 4, 5], [14, 0, 6], [-16, 6, 2]]
    assert ebops(ir) == 0


def _graph_error(tmp_path: Path, match: str, edit_document=None, edit_arrays=None) -> str:
    document, arrays = _raw_graph()
    if edit_document is not None:
        edit_document(document)
    if edit_arrays is not None:
        edit_arrays(arrays)
    return _load_error(_write_raw(tmp_path / "raw", document, arrays), match)


def _layer(document: dict, name: str) -> dict:
    return next(entry for entry in document["layers"] if entry["name"] == name)


def test_malformed_graph_nodes(tmp_path: Path) -> None:
    low_entry = [3] * 7 + [-9]  # -9 is below the signed 4-bit output
    cases = [
        ("pool.windows refers to input element 2", None, {"pool.windows": [[0, 2]]}),
        (r"lut output 0: the table slice ranges over \[-9, 3\]", None, {"lut.table": low_entry}),
        ("lut element 0: its input range .* needs 8 table entries", None, {"lut.table": [0] * 7}),
        (r"lut.input_low\[0\] is 1", None, {"lut.input_low": [1]}),
        ("sum output 0: the sum ranges over", None, {"sum.output.int_bits": [2, 3]}),
        ("cat.output element 2 is signed 3 int 1 frac", None, {"cat.output.frac_bits": [1, 0, 1]}),
        (r"sum output 0 has 0 fractional bits, fewer than the 1 of input 0 \('q'\) element 0",
         None, {"sum.output.frac_bits": [0, 0]}),
        ("sum.inputs names 'nope', which is neither 'input' nor a layer",
         lambda d: _layer(d, "sum").update(inputs=["q", "nope"]), None),
        ("pool.inputs names 'lut', which comes after it",
         lambda d: _layer(d, "pool").update(inputs=["lut"]), None),
        ("'inputs' must be a list of names", lambda d: _layer(d, "sum").update(inputs="q"), None),
        ("sum.inputs names 1 tensors", lambda d: _layer(d, "sum").update(inputs=["q"]), None),
        ("lacks the key 'round_mode'", lambda d: _layer(d, "q").pop("round_mode"), None),
        ("declares out_features=3, arrays give 2",
         lambda d: _layer(d, "sum").update(out_features=3), None),
        ("declares out_features=None", lambda d: _layer(d, "cat").pop("out_features"), None),
        (r"lists no array 'lut\.table'", None, None),
        (r"unknown type 'conv2d' \(supported in version 2: dense, maxpool, add",
         lambda d: _layer(d, "pool").update(type="conv2d"), None),
        ("layer 'q' has type 'quantize', which needs schema_version 2",
         lambda d: d.update(schema_version=1), None),
    ]  # fmt: skip
    for match, edit_document, changes in cases:

        def edit_arrays(arrays, changes=changes, match=match):
            if "lists no array" in match:
                del arrays["lut.table"]
            for key, value in (changes or {}).items():
                arrays[key] = np.array(value, arrays[key].dtype)

        message = _graph_error(tmp_path, match, edit_document, edit_arrays)
        assert message.count("model.json") <= 1, message


def test_inputs_need_version_2(tmp_path: Path) -> None:
    document, arrays = _raw_valid()
    document["layers"][1]["inputs"] = ["l0"]
    _load_error(
        _write_raw(tmp_path / "raw", document, arrays),
        "layer 'l1' has 'inputs', which needs schema_version 2",
    )
    document["schema_version"] = 2
    ir = load(_write_raw(tmp_path / "raw2", document, arrays))
    assert ir.is_dense_chain() and ir.layers[1].inputs == ("l0",)
    assert run(ir, np.array([[3, 5]])).tolist() == [[-12]]  # as in test_a_hand_written_folder_loads
