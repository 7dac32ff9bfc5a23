"""Named model inputs: several inputs with shapes through the model, the reference, the
overflow guard and the files; single-input models and older files keep working."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from ir_builders import fmt, select

from hgq_rtl.ir import io, reference
from hgq_rtl.ir.fixed import Overflow
from hgq_rtl.ir.io import IRFormatError, load, save
from hgq_rtl.ir.layers import ConcatLayer
from hgq_rtl.ir.model import MODEL_INPUT, IRModel, ModelInput
from hgq_rtl.ir.overflow import overflow_report, overflow_report_real
from hgq_rtl.ir.random import random_format, random_model, random_two_inputs

A = fmt([1, 0, 1], [2, 3, 1], [1, 0, 2])  # signed 4 bits, unsigned 3, signed 4
B = fmt([0, 1], [1, 2], [1, 0])  # unsigned 2 bits, signed 3


def _two_input_model() -> IRModel:
    """a (3 elements, shape (3, 1), WRAP) and b (2 elements): select each, concatenate."""
    inputs = (ModelInput("a", A, (3, 1), Overflow.WRAP), ModelInput("b", B))
    layers = (
        select("pick_a", A, [2, 0]),  # empty inputs: the first model input
        select("pick_b", B, [1], inputs=("b",)),
        ConcatLayer("both", fmt([1, 1, 1], [1, 2, 2], [2, 1, 0]), inputs=("pick_a", "pick_b")),
    )
    return IRModel("two_inputs", None, layers, inputs=inputs)


# ---------------------------------------------------------------------------- the model


def test_model_inputs_and_their_defaults() -> None:
    ir = _two_input_model()
    assert ir.input_names == ("a", "b") and ir.input is None and ir.input_overflow is None
    assert ir.inputs_of("pick_a") == ("a",) and ir.format_of("b") == B
    assert ir.model_input("a").shape == (3, 1) and ir.model_input("b").shape == (2,)
    assert ir.dense_chain_problem() == "the model has 2 inputs (a, b)"
    single = IRModel("one", A, (select("s", A, [0]),), Overflow.WRAP)
    assert single.inputs == (ModelInput("input", A, (3,), Overflow.WRAP),)
    assert MODEL_INPUT == "input" and single.is_dense_chain()
    # given as inputs, a single input still fills input and input_overflow
    shaped = IRModel("one", None, single.layers, inputs=(ModelInput("input", A, (1, 3)),))
    assert shaped.input == A and shaped.input_overflow is Overflow.SAT
    assert dataclasses.replace(shaped, name="again").inputs[0].shape == (1, 3)


def test_model_input_validation() -> None:
    cases = [
        (lambda: ModelInput("1a", A), "input name must be an identifier, not '1a'"),
        (lambda: ModelInput("a", A, (2, 2)), r"input 'a': shape \(2, 2\) must hold its 3 elements"),
        (lambda: ModelInput("a", A, (3, 0)), r"shape \(3, 0\) must hold"),
        (lambda: ModelInput("a", A, (3.0,)), "shape must be a tuple of positive integers"),
        (lambda: ModelInput("a", A, (True, 3)), "shape must be a tuple of positive integers"),
        (lambda: ModelInput("a", A, 3), "shape must be a tuple of positive integers, not 3"),
        (lambda: ModelInput("a", A, None, "SAT"), "overflow must be an Overflow"),
        (lambda: ModelInput("a", [1, 2]), "input 'a': format must be a TensorFormat, not list"),
    ]
    for build, match in cases:
        with pytest.raises(ValueError, match=match):
            build()


def test_model_validation_with_several_inputs() -> None:
    ir = _two_input_model()
    a, b = ir.inputs
    layers = ir.layers
    cases = [
        (dict(inputs=(a, ModelInput("a", B))), "input names must be unique, 'a' repeats"),
        (dict(input=A), "a model with 2 inputs takes neither input nor input_overflow"),
        (dict(input_overflow=Overflow.SAT), "takes neither input nor input_overflow"),
        (dict(inputs=(a,), input=B), "input and inputs\\[0\\].format disagree"),
        (dict(inputs=(a,), input_overflow=Overflow.SAT), "input_overflow and inputs\\[0\\]"),
        (dict(inputs=a), "inputs must be a tuple of ModelInputs"),
        (dict(inputs=(a, A)), r"inputs\[1\] must be a ModelInput, not TensorFormat"),
        (dict(inputs=(a, ModelInput("pick_b", B))), "no layer may be named 'pick_b'"),
        (
            dict(layers=(*layers[:1], dataclasses.replace(layers[1], inputs=("c",)), layers[2])),
            r"pick_b.inputs names 'c', which is neither a model input \('a', 'b'\) nor a layer",
        ),
        (dict(inputs=(ModelInput("b", B), a)), "pick_a expects 3 inputs, it receives 2"),
    ]
    fields = dict(name="m", input=None, layers=layers, inputs=ir.inputs)
    for changes, match in cases:
        with pytest.raises(ValueError, match=match):
            IRModel(**(fields | changes))
    with pytest.raises(ValueError, match="no layer may be named 'input'"):
        IRModel("m", A, (select("input", A, [0]),))


# ------------------------------------------------------------------------- the reference


def test_reference_with_several_inputs() -> None:
    ir = _two_input_model()
    x = {"a": np.array([[-8, 7, 3], [1, 0, -2]]), "b": np.array([[3, -4], [0, 3]])}
    expected = [[3, -8, -4], [-2, 1, 3]]  # a[2], a[0], b[1]
    assert reference.run(ir, x).tolist() == expected
    named = reference.run_named(ir, x)
    assert list(named) == ["a", "b", "pick_a", "pick_b", "both"]
    assert named["pick_b"].tolist() == [[-4], [3]]
    assert [out.tolist() for out in reference.run_all(ir, x)][-1] == expected
    # chunked evaluation gives the same as one pass
    rng = np.random.default_rng(0)
    many = reference.random_inputs(ir, reference.RUN_CHUNK + 5, rng)
    assert set(many) == {"a", "b"} and many["a"].shape == (reference.RUN_CHUNK + 5, 3)
    np.testing.assert_array_equal(reference.run(ir, many), reference.run_named(ir, many)["both"])


def test_quantize_input_per_input() -> None:
    """Each input is flattened from its own sample shape, rounded to its own steps and brought
    into range with its own overflow mode (a: WRAP, b: SAT)."""
    ir = _two_input_model()
    real = {"a": np.array([[[4.5], [1.0], [0.25]]]), "b": np.array([[5.0, -9.0]])}
    q = reference.quantize_input(ir, real)
    assert q["a"].tolist() == [[-7, 1, 1]]  # 9 wraps to -7 in signed 4 bits
    assert q["b"].tolist() == [[3, -4]]  # 10 and -9 saturate
    assert reference.round_input(ir, real)["b"].tolist() == [[10, -9]]
    assert reference.predict(ir, real).tolist() == [0]
    # a single-input model takes one array, or a mapping by its name
    single = random_model(np.random.default_rng(1), (3, 2))
    x = np.array([[0.5, -1.0, 2.0]])
    np.testing.assert_array_equal(
        reference.quantize_input(single, {"input": x})["input"], reference.quantize_input(single, x)
    )
    assert reference.random_inputs(single, 4, np.random.default_rng(2)).shape == (4, 3)


def test_reference_input_errors() -> None:
    ir = _two_input_model()
    good = {"a": np.zeros((2, 3), np.int64), "b": np.zeros((2, 2), np.int64)}
    cases = [
        (np.zeros((2, 5), np.int64), r"model 'two_inputs' has 2 inputs \(a, b\): pass a mapping"),
        ({"a": good["a"]}, "inputs lack the model input 'b'"),
        (good | {"c": good["a"]}, r"inputs name 'c', which is not an input of model 'two_inputs'"),
        (good | {"b": np.zeros((2, 3), np.int64)}, r"inputs\['b'\] must have shape \(n, 2\)"),
        (good | {"b": np.zeros((3, 2), np.int64)}, "inputs must have one number of samples"),
        (good | {"a": np.array([[0, 8, 0], [0, 0, 0]])}, r"inputs\['a'\]\[0, 1\] = 8 lies outside"),
    ]
    for x, match in cases:
        with pytest.raises(ValueError, match=match):
            reference.run(ir, x)
    with pytest.raises(ValueError, match=r"inputs\['a'\] contain NaN or inf"):
        reference.quantize_input(ir, good | {"a": np.full((2, 3), np.nan)})
    single = random_model(np.random.default_rng(1), (3, 2))
    with pytest.raises(ValueError, match=r"^inputs must have shape \(n, 3\), not \(2, 4\)$"):
        reference.run(single, np.zeros((2, 4), np.int64))


def test_overflow_report_covers_every_input() -> None:
    ir = _two_input_model()
    x = {"a": np.array([[9, 0, 0], [0, 0, 0]]), "b": np.array([[0, 0], [4, -5]])}
    reports = overflow_report(ir, x)
    assert [(r.name, r.mode, r.values) for r in reports] == [
        ("a", Overflow.WRAP, 1),
        ("b", Overflow.SAT, 2),
        ("pick_a", Overflow.WRAP, 0),
        ("pick_b", Overflow.WRAP, 0),
    ]
    real = {"a": np.zeros((1, 3, 1)), "b": np.array([[2.0, 0.0]])}
    assert [r.values for r in overflow_report_real(ir, real)] == [0, 1, 0, 0]
    with pytest.raises(ValueError, match=r"the data of inputs\['b'\] has 3 features per row"):
        overflow_report_real(ir, real | {"b": np.zeros((1, 3))})


# ------------------------------------------------------------------------------ files


def test_several_inputs_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    for k, ir in enumerate([_two_input_model(), random_two_inputs(rng, ((2, 2), (3,), (1, 2)))]):
        folder = save(ir, tmp_path / f"m{k}")
        document = json.loads((folder / "model.json").read_text())
        assert document["schema_version"] == 3 and "input" not in document
        assert [i["name"] for i in document["inputs"]] == list(ir.input_names)
        with np.load(folder / "weights.npz") as npz:
            assert {f"{name}.signed" for name in ir.input_names} <= set(npz.files)
        loaded = load(folder)
        assert loaded.inputs == ir.inputs
        x = reference.random_inputs(ir, 50, rng)
        np.testing.assert_array_equal(reference.run(ir, x), reference.run(loaded, x))
    assert document["inputs"][0] == {"name": "x0", "size": 4, "shape": [2, 2], "overflow": "SAT"}


def test_versions_written() -> None:
    """Version 3 only for what needs it: a shaped or renamed single input, several inputs."""
    rng = np.random.default_rng(4)
    chain = random_model(rng, (4, 3, 2))
    assert io.schema_version(chain) == 1
    f = chain.input
    shaped = IRModel("s", None, chain.layers, inputs=(ModelInput("input", f, (2, 2)),))
    flat = IRModel("s", None, chain.layers, inputs=(ModelInput("input", f, (4,)),))
    renamed = IRModel("s", None, chain.layers, inputs=(ModelInput("pixels", f),))
    assert [io.schema_version(m) for m in (shaped, flat, renamed)] == [3, 1, 3]


def _v1_folder(tmp_path: Path, edit=None) -> Path:
    ir = random_model(np.random.default_rng(5), (3, 2))
    folder = save(ir, tmp_path / "v1")
    document = json.loads((folder / "model.json").read_text())
    if edit is not None:
        edit(document)
    (folder / "model.json").write_text(json.dumps(document))
    return folder


def test_older_files_have_one_flat_input_named_input(tmp_path: Path) -> None:
    ir = load(_v1_folder(tmp_path))
    (only,) = ir.inputs
    assert (only.name, only.shape, only.overflow) == ("input", (3,), Overflow.SAT)
    # a version 3 file may still spell its single input the old way
    ir = load(_v1_folder(tmp_path, lambda d: d.update(schema_version=3)))
    assert ir.input_names == ("input",)


def _inputs_v3(document: dict, *entries: dict) -> None:
    document["schema_version"] = 3
    document["inputs"] = [{"name": "input", "size": 3} | entry for entry in entries]
    del document["input"]


MALFORMED_INPUTS = [
    ("inputs-in-v2", lambda d: d.update(schema_version=2, inputs=[]),
     "model.json has 'inputs', which needs schema_version 3"),
    ("shape-in-v1", lambda d: d["input"].update(shape=[3]),
     "'input' has 'shape', which needs schema_version 3"),
    ("both", lambda d: d.update(schema_version=3, inputs=[{"name": "input", "size": 3}]),
     "model.json has both 'input' and 'inputs'"),
    ("empty", lambda d: (_inputs_v3(d), d.update(inputs=[])),
     "'inputs' must be a non-empty list of objects"),
    ("duplicate", lambda d: _inputs_v3(d, {}, {}), "input names must be unique, 'input' repeats"),
    ("shape-product", lambda d: _inputs_v3(d, {"shape": [2, 2]}),
     r"input 'input': shape \(2, 2\) must hold its 3 elements"),
    ("shape-type", lambda d: _inputs_v3(d, {"shape": "3"}),
     "input 'input': 'shape' must be a list of integers, not '3'"),
    ("name", lambda d: _inputs_v3(d, {"name": "in put"}),
     r"inputs\[0\] name must be an identifier, not 'in put'"),
    ("size", lambda d: _inputs_v3(d, {"size": 4}), "input 'input' declares size 4, arrays give 3"),
    ("overflow", lambda d: _inputs_v3(d, {"overflow": "CLIP"}), "'CLIP' is not a valid Overflow"),
    ("unknown-name", lambda d: _inputs_v3(d, {"name": "x"}), r"lists no array 'x\.signed'"),
    ("not-an-object", lambda d: _inputs_v3(d, {}) or d["inputs"].append(3),
     r"inputs\[1\] must be an object"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("edit", "match"), [case[1:] for case in MALFORMED_INPUTS], ids=[c[0] for c in MALFORMED_INPUTS]
)
def test_malformed_inputs(tmp_path: Path, edit, match: str) -> None:
    with pytest.raises(IRFormatError, match=match) as info:
        load(_v1_folder(tmp_path, edit))
    assert "\n" not in str(info.value)


def test_a_format_per_input_in_weights(tmp_path: Path) -> None:
    """Each input's format arrays are named after it; a layer reading a misnamed input fails."""
    ir = _two_input_model()
    arrays = io.to_arrays(ir)
    assert list(arrays)[:6] == [
        "a.signed", "a.int_bits", "a.frac_bits", "b.signed", "b.int_bits", "b.frac_bits",
    ]  # fmt: skip
    folder = save(ir, tmp_path / "m")
    document = json.loads((folder / "model.json").read_text())
    document["layers"][1]["inputs"] = ["bb"]
    (folder / "model.json").write_text(json.dumps(document))
    with pytest.raises(IRFormatError, match="pick_b.inputs names 'bb', which is neither"):
        load(folder)


def test_random_inputs_helper_on_formats_is_unchanged() -> None:
    f = random_format(np.random.default_rng(6), 4)
    a = reference.random_inputs(f, 5, np.random.default_rng(7))
    b = reference.random_inputs(
        IRModel("m", f, (select("s", f, [0]),)), 5, np.random.default_rng(7)
    )
    np.testing.assert_array_equal(a, b)
