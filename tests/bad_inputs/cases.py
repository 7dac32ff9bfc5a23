"""The bad-input corpus: every case must make the CLI print ONE line ``hgq-rtl: error: ...``
holding the expected fragments, exit with code 2, and leave the working folder as it was (no
output folder, no hidden temporary sibling) and ``TMPDIR`` empty.

Each :class:`Case` names the sub-command, a builder that writes the bad input under ``work``
(starting from the valid base model and design of :mod:`bad_inputs.helpers`) and returns the
arguments that follow the sub-command, and the fragments the error line must contain.

Cases that ``tests/test_cli_errors.py`` already runs through ``hgq-rtl rtl`` (malformed JSON,
truncated NPZ, wrong schema version, NaN weights, unknown layer type) run here through
``check`` and ``verify`` instead; the load-level checks of ``tests/test_ir_io.py`` are exercised
here end to end, through the command line.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .helpers import design, edit_json, layer_entry, model, truncate


@dataclass(frozen=True)
class Case:
    name: str
    command: str  # the sub-command: rtl, check or verify
    build: Callable[[Path], list[str | Path]]  # writes the inputs, returns the arguments
    expect: tuple[str, ...]  # fragments of the error line


CASES: list[Case] = []


def case(name: str, command: str, *expect: str):
    def register(build: Callable[[Path], list[str | Path]]):
        CASES.append(Case(name, command, build, expect))
        return build

    return register


def _rtl(model_dir: Path, work: Path) -> list[str | Path]:
    return [model_dir, "--out", work / "out"]


def _check_rows(work: Path, model_dir: Path, rows: np.ndarray) -> list[str | Path]:
    np.save(work / "rows.npy", rows)
    return [model_dir, "--data", work / "rows.npy"]


def _good_rows() -> np.ndarray:
    return np.array([[1.0, 2.0, -0.5], [0.5, 7.0, 3.75]])


# =========================================================================== model (rtl)


@case("model-not-an-ir-schema", "rtl", "schema must be 'hgq-rtl-ir'")
def _(work):
    return _rtl(model(work, lambda d: d.update(schema="hgq-rtl-manifest")), work)


@case("model-schema-version-as-string", "rtl", "schema_version '1'")
def _(work):
    return _rtl(model(work, lambda d: d.update(schema_version="1")), work)


@case("model-schema-version-true", "rtl", "schema_version True")
def _(work):
    return _rtl(model(work, lambda d: d.update(schema_version=True)), work)


@case("model-json-not-an-object", "rtl", "not an hgq-rtl IR file")
def _(work):
    folder = model(work)
    (folder / "model.json").write_text('["hgq-rtl-ir", 1]')
    return _rtl(folder, work)


@case("model-missing-key-layers", "rtl", "lacks the key 'layers'")
def _(work):
    return _rtl(model(work, lambda d: d.pop("layers")), work)


@case("model-layer-missing-activation", "rtl", "lacks the key 'activation'")
def _(work):
    return _rtl(model(work, lambda d: d["layers"][0].pop("activation")), work)


@case("model-empty-no-layers", "rtl", "at least one layer")
def _(work):
    def empty(arrays):
        for key in [k for k in arrays if not k.startswith("input.")]:
            del arrays[key]

    return _rtl(model(work, lambda d: d.update(layers=[]), empty), work)


@case("model-layers-not-a-list", "rtl", "'layers' must be a list")
def _(work):
    return _rtl(model(work, lambda d: d.update(layers={"hidden": {}})), work)


@case("model-input-not-an-object", "rtl", "'input' must be an object")
def _(work):
    return _rtl(model(work, lambda d: d.update(input=[3, "SAT"])), work)


@case("model-metadata-not-an-object", "rtl", "'metadata' must be an object")
def _(work):
    return _rtl(model(work, lambda d: d.update(metadata="trained yesterday")), work)


@case("model-in-features-as-string", "rtl", "declares in_features='3'")
def _(work):
    return _rtl(model(work, lambda d: d["layers"][0].update(in_features="3")), work)


@case("model-input-size-as-float", "rtl", "input declares size 3.0")
def _(work):
    return _rtl(model(work, lambda d: d["input"].update(size=3.0)), work)


@case("model-mismatched-out-features", "rtl", "declares out_features=5, arrays give 2")
def _(work):
    return _rtl(model(work, lambda d: d["layers"][0].update(out_features=5)), work)


@case("model-shape-mismatch-between-layers", "rtl", "out expects 3 inputs, it receives 2")
def _(work):
    def widen(arrays):
        arrays["out.weight"] = np.array([[2, -1, 1], [1, 1, 0]], np.int64)
        arrays["out.weight_frac_bits"] = np.zeros((2, 3), np.int64)

    return _rtl(model(work, lambda d: d["layers"][1].update(in_features=3), widen), work)


@case("model-bias-shape-mismatch", "rtl", "hidden.bias must have shape (2,)")
def _(work):
    return _rtl(model(work, edit_arrays=lambda a: a.update({"hidden.bias": np.zeros(3)})), work)


@case("model-weight-3d", "rtl", "hidden.weight must be 2-D")
def _(work):
    weight = np.ones((2, 3, 1), np.int64)
    return _rtl(model(work, edit_arrays=lambda a: a.update({"hidden.weight": weight})), work)


@case("model-unknown-activation", "rtl", "'tanh'")
def _(work):
    return _rtl(model(work, lambda d: d["layers"][0].update(activation="tanh")), work)


@case("model-unknown-input-overflow", "rtl", "'CLAMP'")
def _(work):
    return _rtl(model(work, lambda d: d["input"].update(overflow="CLAMP")), work)


@case("model-duplicate-layer-names", "rtl", "'hidden' repeats")
def _(work):
    def square(arrays):  # hidden becomes 3 -> 3 so that it can follow itself
        arrays["input.signed"] = np.array([0, 0, 0], np.int8)
        arrays["hidden.weight"] = np.eye(3, dtype=np.int64)
        arrays["hidden.weight_frac_bits"] = np.zeros((3, 3), np.int64)
        arrays["hidden.bias"] = np.zeros(3, np.int64)
        arrays["hidden.bias_frac_bits"] = np.zeros(3, np.int64)
        arrays.update(
            {
                "hidden.output.signed": np.zeros(3, np.int8),
                "hidden.output.int_bits": np.full(3, 6, np.int64),
                "hidden.output.frac_bits": np.full(3, 2, np.int64),
            }
        )
        for key in [k for k in arrays if k.startswith("out.")]:
            del arrays[key]

    def twice(document):
        document["layers"] = [layer_entry("hidden", 3, 3), layer_entry("hidden", 3, 3)]

    return _rtl(model(work, twice, square), work)


@case("model-layer-name-not-an-identifier", "rtl", "identifier")
def _(work):
    def rename(arrays):
        for key in [k for k in arrays if k.startswith("out.")]:
            arrays["out-put." + key[len("out.") :]] = arrays.pop(key)

    return _rtl(model(work, lambda d: d["layers"][1].update(name="out-put"), rename), work)


@case("model-name-not-an-identifier", "rtl", "model name must be an identifier")
def _(work):
    return _rtl(model(work, lambda d: d.update(name="my model")), work)


@case("model-negative-width", "rtl", "negative width -2")
def _(work):
    bits = np.array([4, -3], np.int64)  # unsigned, frac 1: width -2
    return _rtl(model(work, edit_arrays=lambda a: a.update({"hidden.output.int_bits": bits})), work)


@case("model-element-wider-than-62-bits", "rtl", "63 bits wide", "at most 62")
def _(work):
    bits = np.array([2, 63, 2], np.int64)
    return _rtl(model(work, edit_arrays=lambda a: a.update({"input.int_bits": bits})), work)


@case("model-accumulator-past-62-bits", "rtl", "hidden output 0 needs a", "-bit accumulator")
def _(work):
    def huge(arrays):  # 2^40 times a 31-bit input: a 72-bit product
        arrays["input.int_bits"] = np.array([2, 31, 2], np.int64)
        arrays["hidden.weight"] = np.array([[3, 2**40, 1], [0, 2, -1]], np.int64)

    return _rtl(model(work, edit_arrays=huge), work)


@case("model-huge-shift", "rtl", "shifts by", "at most 62")
def _(work):
    def fine(arrays):  # a 6-bit output with 100 fractional bits: the sum moves 98 bits left
        arrays["out.output.int_bits"] = np.array([-95, 5], np.int64)
        arrays["out.output.frac_bits"] = np.array([100, 1], np.int64)

    return _rtl(model(work, edit_arrays=fine), work)


@case("model-inf-bias", "rtl", "out.bias contains NaN or inf")
def _(work):
    bias = np.array([0.0, np.inf])
    return _rtl(model(work, edit_arrays=lambda a: a.update({"out.bias": bias})), work)


@case("model-non-integer-weights", "rtl", "hidden.weight must hold integers")
def _(work):
    weight = np.array([[3.0, -5.0, 0.5], [0.0, 2.0, -1.0]])
    return _rtl(model(work, edit_arrays=lambda a: a.update({"hidden.weight": weight})), work)


@case("model-string-array", "rtl", "must hold integers")
def _(work):
    weight = np.array([["3", "-5", "1"], ["0", "2", "-1"]])
    return _rtl(model(work, edit_arrays=lambda a: a.update({"hidden.weight": weight})), work)


@case("model-object-array-pickle", "rtl", "not a readable NPZ file")
def _(work):
    weight = np.array([[3, -5, 1], [0, 2, None]], dtype=object)
    folder = model(work)
    arrays = dict(np.load(folder / "weights.npz"))
    arrays["hidden.weight"] = weight
    np.savez(folder / "weights.npz", **arrays)  # pickled: refused before any hash is checked
    return _rtl(folder, work)


@case("model-array-hash-mismatch", "rtl", "'out.bias' does not match its sha256")
def _(work):
    folder = model(work)
    edit_json(folder / "model.json", lambda d: d["arrays"].update({"out.bias": "0" * 64}))
    return _rtl(folder, work)


@case("model-listed-array-absent", "rtl", "lacks the array 'out.bias'")
def _(work):
    folder = model(work)
    arrays = dict(np.load(folder / "weights.npz"))
    del arrays["out.bias"]
    np.savez(folder / "weights.npz", **arrays)
    return _rtl(folder, work)


@case("model-needed-array-not-listed", "rtl", "lists no array 'out.weight'")
def _(work):
    folder = model(work)
    edit_json(folder / "model.json", lambda d: d["arrays"].pop("out.weight"))
    return _rtl(folder, work)


@case("model-weights-missing", "rtl", "weights.npz is missing")
def _(work):
    folder = model(work)
    (folder / "weights.npz").unlink()
    return _rtl(folder, work)


@case("rtl-top-name-escapes-the-design-folder", "rtl", "'../evil'", "ASCII identifier")
def _(work):
    return [*_rtl(model(work), work), "--name", "../evil"]


@case("rtl-top-name-with-a-space", "rtl", "'a b'", "ASCII identifier")
def _(work):
    return [*_rtl(model(work), work), "--name", "a b"]


@case("rtl-out-below-a-file", "rtl", "File exists")
def _(work):
    (work / "a_file").write_text("not a folder")
    return [model(work), "--out", work / "a_file" / "design"]


# =========================================================================== check


@case("check-truncated-npz", "check", "weights.npz", "not a readable NPZ file")
def _(work):
    folder = model(work)
    truncate(folder / "weights.npz")
    return _check_rows(work, folder, _good_rows())


@case("check-wrong-schema-version", "check", "schema_version 4")
def _(work):
    return _check_rows(work, model(work, lambda d: d.update(schema_version=4)), _good_rows())


@case("check-malformed-json", "check", "model.json", "not valid JSON")
def _(work):
    folder = model(work)
    truncate(folder / "model.json")
    return _check_rows(work, folder, _good_rows())


@case("check-nan-weights", "check", "hidden.weight contains NaN")
def _(work):
    weight = np.array([[3.0, np.nan, 1.0], [0.0, 2.0, -1.0]])
    folder = model(work, edit_arrays=lambda a: a.update({"hidden.weight": weight}))
    return _check_rows(work, folder, _good_rows())


@case("check-unknown-layer-type", "check", "'out'", "unknown type 'conv2d'")
def _(work):
    folder = model(work, lambda d: d["layers"][1].update(type="conv2d"))
    return _check_rows(work, folder, _good_rows())


@case("check-missing-model-folder", "check", "no_model", "does not exist")
def _(work):
    np.save(work / "rows.npy", _good_rows())
    return [work / "no_model", "--data", work / "rows.npy"]


@case("check-data-wrong-feature-count", "check", "2 features per row", "expects 3")
def _(work):
    return _check_rows(work, model(work), np.zeros((4, 2)))


@case("check-dataset-wrong-feature-count", "check", "64 features per row", "expects 3")
def _(work):
    return [model(work), "--dataset", "digits"]


@case("check-data-with-nan", "check", "nan at row 1, column 2")
def _(work):
    rows = _good_rows()
    rows[1, 2] = np.nan
    return _check_rows(work, model(work), rows)


@case("check-data-one-dimensional", "check", "2-D")
def _(work):
    return _check_rows(work, model(work), np.zeros(3))


@case("check-data-strings", "check", "must hold numbers")
def _(work):
    return _check_rows(work, model(work), np.array([["a", "b", "c"]]))


@case("check-data-missing-file", "check", "no_rows.npy", "does not exist")
def _(work):
    return [model(work), "--data", work / "no_rows.npy"]


@case("check-data-unsupported-suffix", "check", "must be one of .npy, .npz, .csv")
def _(work):
    (work / "rows.txt").write_text("1 2 3\n")
    return [model(work), "--data", work / "rows.txt"]


@case("check-data-truncated-npy", "check", "is not a readable .npy file")
def _(work):
    args = _check_rows(work, model(work), np.zeros((100, 3)))
    truncate(work / "rows.npy")
    return args


@case("check-data-npz-without-x", "check", "holds arrays", "name one 'x'")
def _(work):
    np.savez(work / "rows.npz", a=np.zeros((2, 3)), b=np.zeros((2, 3)))
    return [model(work), "--data", work / "rows.npz"]


@case("check-data-csv-not-a-number", "check", "line 3", "'abc' is not a number")
def _(work):
    (work / "rows.csv").write_text("f0,f1,f2\n1,2,3\n1,abc,3\n")
    return [model(work), "--data", work / "rows.csv"]


@case("check-data-csv-ragged", "check", "line 2 has 2 values, not 3")
def _(work):
    (work / "rows.csv").write_text("1,2,3\n1,2\n")
    return [model(work), "--data", work / "rows.csv"]


@case("check-data-csv-header-only", "check", "holds no samples")
def _(work):
    (work / "rows.csv").write_text("f0,f1,f2\n")
    return [model(work), "--data", work / "rows.csv"]


@case("check-data-and-dataset", "check", "exactly one of --dataset NAME or --data FILE")
def _(work):
    return [*_check_rows(work, model(work), _good_rows()), "--dataset", "digits"]


@case("check-no-data", "check", "exactly one of --dataset NAME or --data FILE")
def _(work):
    return [model(work)]


@case("check-unknown-dataset", "check", "unknown dataset 'mnist'")
def _(work):
    return [model(work), "--dataset", "mnist"]


# =========================================================================== verify


def _verify(folder: Path, *extra: str | Path) -> list[str | Path]:
    return [folder, "--vectors", "10", *extra]


@case("verify-manifest-not-matching-the-verilog", "verify", "bad_base.v: sha256 differs")
def _(work):
    folder = design(work)
    with (folder / "bad_base.v").open("a") as f:
        f.write("// edited after generation\n")
    return _verify(folder)


@case("verify-model-changed-after-generation", "verify", "model/model.json: sha256 differs")
def _(work):
    folder = design(work)
    bias = np.array([1, 1], np.int64)
    model(folder, edit_arrays=lambda a: a.update({"out.bias": bias}))  # rewrites folder/model
    return _verify(folder)


@case("verify-manifest-unknown-schema", "verify", "schema must be 'hgq-rtl-manifest'")
def _(work):
    return _verify(design(work, lambda m: m.update(schema="hgq-rtl-ir")))


@case("verify-manifest-schema-version-2", "verify", "schema_version must be 1, not 2")
def _(work):
    return _verify(design(work, lambda m: m.update(schema_version=2)))


@case("verify-manifest-not-json", "verify", "manifest.json must be JSON")
def _(work):
    folder = design(work)
    truncate(folder / "manifest.json")
    return _verify(folder)


@case("verify-manifest-missing-latency", "verify", "must have the field 'latency_cycles'")
def _(work):
    return _verify(design(work, lambda m: m.pop("latency_cycles")))


@case("verify-manifest-negative-latency", "verify", "latency_cycles must be a non-negative int")
def _(work):
    return _verify(design(work, lambda m: m.update(latency_cycles=-1)))


@case("verify-manifest-widths-do-not-sum", "verify", "input port is 16 bits", "elements hold 12")
def _(work):
    return _verify(design(work, lambda m: m["input"].update(width=16)))


@case("verify-manifest-overlapping-elements", "verify", "input element 1 must not overlap")
def _(work):
    return _verify(design(work, lambda m: m["input"]["elements"][1].update(lsb=2)))


@case("verify-manifest-element-outside-port", "verify", "must lie inside the 14-bit port")
def _(work):
    return _verify(design(work, lambda m: m["output"]["elements"][1].update(lsb=10)))


@case("verify-manifest-elements-wrong-type", "verify", "manifest output bus is malformed")
def _(work):
    return _verify(design(work, lambda m: m["output"].update(elements=[7, 7])))


@case("verify-manifest-verilog-outside-folder", "verify", "verilog must name a file in")
def _(work):
    return _verify(design(work, lambda m: m.update(verilog="../bad_base.v")))


@case("verify-manifest-verilog-missing", "verify", "names gone.v, which is not in")
def _(work):
    return _verify(design(work, lambda m: m.update(verilog="gone.v")))


@case("verify-manifest-top-not-a-string", "verify", "top must be a non-empty string, not 7")
def _(work):
    return _verify(design(work, lambda m: m.update(top=7)))


@case("verify-manifest-hashes-not-an-object", "verify", "hashes must be an object")
def _(work):
    return _verify(design(work, lambda m: m.update(hashes=["0" * 64])))


@case("verify-rtl-dir-without-model", "verify", "has no model/ folder")
def _(work):
    import shutil

    folder = design(work)
    shutil.rmtree(folder / "model")
    return _verify(folder)


@case("verify-truncated-npz-in-the-design", "verify", "weights.npz", "not a readable NPZ")
def _(work):
    folder = design(work)
    truncate(folder / "model" / "weights.npz")  # model.json (hashed by the manifest) unchanged
    return _verify(folder)


@case("verify-missing-design-manifest", "verify", "must hold manifest.json")
def _(work):
    folder = design(work)
    (folder / "manifest.json").unlink()
    return _verify(folder)


def _vectors(work: Path, **arrays: np.ndarray) -> Path:
    np.savez(work / "vectors.npz", **arrays)
    return work / "vectors.npz"


@case("verify-vectors-file-wrong-length", "verify", "'inputs' must have shape (N >= 1, 3)")
def _(work):
    inputs = np.zeros((5, 4), np.int64)
    return _verify(design(work), "--vectors-file", _vectors(work, inputs=inputs))


@case("verify-vectors-file-no-vectors", "verify", "not (0, 3)")
def _(work):
    inputs = np.zeros((0, 3), np.int64)
    return _verify(design(work), "--vectors-file", _vectors(work, inputs=inputs))


@case("verify-vectors-file-out-of-range", "verify", "inputs[1, 1] = 8", "[0, 7]")
def _(work):
    inputs = np.array([[0, 7, 0], [0, 8, 0]], np.int64)  # element 1 is unsigned 3-bit
    return _verify(design(work), "--vectors-file", _vectors(work, inputs=inputs))


@case("verify-vectors-file-floats", "verify", "'inputs' must be integers, not float64")
def _(work):
    inputs = np.array([[0.5, 1.0, 0.0]])
    return _verify(design(work), "--vectors-file", _vectors(work, inputs=inputs))


@case("verify-vectors-file-without-inputs", "verify", "lacks the array 'inputs'")
def _(work):
    vectors = np.zeros((2, 3), np.int64)
    return _verify(design(work), "--vectors-file", _vectors(work, vectors=vectors))


@case("verify-vectors-file-not-an-npz", "verify", "vectors file", "is not usable")
def _(work):
    (work / "vectors.npz").write_bytes(b"PK\x03\x04 this is not a zip archive")
    return _verify(design(work), "--vectors-file", work / "vectors.npz")


@case("verify-vectors-file-missing", "verify", "no_vectors.npz does not exist")
def _(work):
    return _verify(design(work), "--vectors-file", work / "no_vectors.npz")


@case("verify-vectors-file-with-dataset", "verify", "drop --dataset")
def _(work):
    inputs = np.zeros((2, 3), np.int64)
    vectors = _vectors(work, inputs=inputs)
    return _verify(design(work), "--vectors-file", vectors, "--dataset", "digits")


@case("verify-dataset-wrong-feature-count", "verify", "inputs must have shape (n, 3)")
def _(work):
    return _verify(design(work), "--dataset", "digits")


from .cases_guard import GUARD_CASES  # noqa: E402  (write guard, manifest binding, options)

CASES.extend(Case(*fields) for fields in GUARD_CASES)
from .cases_bounds import BOUNDS_CASES  # noqa: E402  (bounded reads, integers, names)

CASES.extend(BOUNDS_CASES)


def by_name() -> dict[str, Case]:
    names = [c.name for c in CASES]
    assert len(names) == len(set(names)), "case names must be unique"
    return {c.name: c for c in CASES}
