"""Bad-input cases of bounded work, exact integers and names (issue 14, parts 3, 5 and 6).

Same format as :mod:`bad_inputs.cases` (``BOUNDS_CASES``, appended to its ``CASES``): every
case must end with exit code 2, one line ``hgq-rtl: error: ...`` holding the fragments,
nothing on stdout, the working folder as the case left it and ``TMPDIR`` empty. The classes:

* sizes read from a file are checked before memory is allocated for them: ``.npy`` headers (in
  ``weights.npz``, data files, vectors files, data sets) that claim huge or negative shapes,
  object dtypes, unknown versions, oversized headers; IDX headers; labels (class counts);
  JSON nesting depth;
* integers outside int64 (``uint64``, huge whole floats) refused, never wrapped;
* names that are no plain Verilog identifier for a top module;
* ``--device`` this machine cannot run.
"""

from __future__ import annotations

import gzip
import json
import struct
import zipfile
from pathlib import Path

import numpy as np

from .cases import Case, _check_rows, _good_rows, _rtl, _verify
from .files import npy_bytes, replace_member
from .helpers import design, model

BOUNDS_CASES: list[Case] = []

_DEEP = 100_000  # Python's JSON parser recurses: far past its limit


def case(name: str, command: str, *expect: str):
    def register(build):
        BOUNDS_CASES.append(Case(name, command, build, expect))
        return build

    return register


# --------------------------------------------------------------------------- file makers


def _int64(values) -> bytes:
    return np.asarray(values, "<i8").tobytes()


def _weights(folder: Path) -> Path:
    return folder / "weights.npz"


def _npz(path: Path, **members: bytes) -> Path:
    """An ``.npz`` of raw members (``name`` -> ``name.npy``)."""
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name if "." in name else f"{name}.npy", data)
    return path


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


def _nest_json(path: Path, key: str, depth: int) -> None:
    """Put a list nested ``depth`` deep under ``key`` of the JSON object in ``path``."""
    document = json.loads(path.read_text())
    document[key] = "__DEEP__"
    path.write_text(json.dumps(document).replace('"__DEEP__"', _deep(depth)))


# =========================================================================== integers


def _array_case(name, command, key, values, *expect):
    @case(name, command, *expect)
    def _(work):
        folder = model(work, edit_arrays=lambda a: a.update({key: values}))
        return _rtl(folder, work) if command == "rtl" else _check_rows(work, folder, _good_rows())


_U64_MAX = np.iinfo(np.uint64).max
_array_case(
    "bounds-uint64-weight-would-wrap-to-minus-1",
    "rtl",
    "hidden.weight",
    np.array([[3, _U64_MAX, 1], [0, 2, 1]], np.uint64),
    "hidden.weight holds 18446744073709551615",
    "outside the 64-bit signed integer range",
)
_array_case(
    "bounds-uint64-bias-just-past-int64",
    "rtl",
    "out.bias",
    np.array([2**63, 0], np.uint64),
    "out.bias holds 9223372036854775808",
)
_array_case(
    "bounds-uint64-input-int-bits",
    "check",
    "input.int_bits",
    np.array([2, 3, 2**64 - 2], np.uint64),
    "int_bits holds 18446744073709551614",
)
_array_case(
    "bounds-uint64-output-frac-bits",
    "check",
    "hidden.output.frac_bits",
    np.array([1, 2**63 + 5], np.uint64),
    "frac_bits holds 9223372036854775813",
)
_array_case(
    "bounds-uint64-signed-flags",
    "rtl",
    "input.signed",
    np.array([1, 0, _U64_MAX], np.uint64),
    "signed holds 18446744073709551615",
)
_array_case(
    "bounds-uint64-weight-frac-bits",
    "rtl",
    "out.weight_frac_bits",
    np.array([[0, _U64_MAX], [1, 0]], np.uint64),
    "out.weight_frac_bits holds",
)
_array_case(
    "bounds-float-weight-1e30",
    "rtl",
    "hidden.weight",
    np.array([[3.0, 1e30, 1.0], [0.0, 2.0, -1.0]]),
    "hidden.weight holds 1e+30",
    "outside the 64-bit signed integer range",
)
_array_case(
    "bounds-float-bias-exactly-2-to-the-63",
    "check",
    "hidden.bias",
    np.array([2.0**63, 0.0]),
    "hidden.bias holds 9.223372036854776e+18",
)
_array_case(
    "bounds-float-bias-below-int64",
    "rtl",
    "out.bias",
    np.array([0.0, -1e19]),
    "out.bias holds -1e+19",
)
_array_case(
    "bounds-float32-weight-frac-bits-huge",
    "check",
    "hidden.weight_frac_bits",
    np.array([[1, 2, 0], [0, 1, 3e38]], np.float32),
    "hidden.weight_frac_bits holds",
)


# =========================================================================== weights.npz headers


def _member_case(name, command, member, data, *expect):
    @case(name, command, *expect)
    def _(work):
        folder = model(work)
        replace_member(_weights(folder), member, data)
        return _rtl(folder, work) if command == "rtl" else _check_rows(work, folder, _good_rows())


_member_case(
    "bounds-weights-header-claims-1e12-rows",
    "rtl",
    "hidden.weight.npy",
    npy_bytes("<i8", (10**12, 3), _int64([[3, -5, 1], [0, 2, -1]])),
    "'hidden.weight' claims shape (1000000000000, 3)",
    "holds 48 bytes",
)
_member_case(
    "bounds-weights-header-claims-2-to-the-62",
    "check",
    "out.bias.npy",
    npy_bytes("<i8", (2**62,), _int64([0, 1])),
    "'out.bias' claims shape (4611686018427387904,)",
)
_member_case(
    "bounds-weights-header-claims-a-petabyte-square",
    "rtl",
    "hidden.bias.npy",
    npy_bytes("<i8", (2**25, 2**25), _int64([3, 0])),
    "claims shape (33554432, 33554432)",
)
_member_case(
    "bounds-weights-data-truncated",
    "rtl",
    "hidden.weight.npy",
    npy_bytes("<i8", (2, 3), _int64([3, -5, 1])),
    "claims shape (2, 3) of int64 (48 bytes) but holds 24 bytes",
)
_member_case(
    "bounds-weights-data-trailing",
    "check",
    "hidden.weight.npy",
    npy_bytes("<i8", (2, 3), _int64([3, -5, 1, 0, 2, -1, 9])),
    "holds 56 bytes of data",
)
_member_case(
    "bounds-weights-negative-shape",
    "rtl",
    "out.weight.npy",
    npy_bytes("<i8", (-2, 2), _int64([2, -1, 1, 1])),
    "declares the negative shape (-2, 2)",
)
_member_case(
    "bounds-weights-object-dtype-header",
    "rtl",
    "out.bias.npy",
    npy_bytes("|O", (2,), b"not a pickle"),
    "not a readable NPZ file",
    "Python objects",
)
_member_case(
    "bounds-weights-npy-version-3",
    "check",
    "out.bias.npy",
    npy_bytes("<i8", (2,), _int64([0, 1]), version=(3, 0)),
    "not a readable NPZ file",
    "version 3.0",
)
_member_case(
    "bounds-weights-header-too-long",
    "rtl",
    "hidden.bias.npy",
    npy_bytes("<i8", (2,), _int64([3, 0]), pad=20_000),
    "not a readable NPZ file",
    "max_header_size",
)
_member_case(
    "bounds-weights-member-not-npy-data",
    "rtl",
    "out.weight.npy",
    b"this is no array",
    "not a readable NPZ file",
)
_member_case(
    "bounds-weights-member-not-an-npy-file",
    "check",
    "notes.txt",
    b"written by hand",
    "not a readable NPZ file",
    "'notes.txt'",
)


@case("bounds-weights-unlisted-huge-header-is-never-read", "rtl", "lists no array 'out.bias'")
def _(work):
    """An unlisted member claiming 2**40 rows costs nothing (never opened); the case fails on
    a listed array missing from model.json, read from the same archive."""
    folder = model(work)
    replace_member(_weights(folder), "junk.npy", npy_bytes("<f8", (2**40,)))
    document = json.loads((folder / "model.json").read_text())
    del document["arrays"]["out.bias"]
    (folder / "model.json").write_text(json.dumps(document))
    return _rtl(folder, work)


# =========================================================================== JSON nesting


@case("bounds-model-json-nested-100000-deep", "rtl", "model.json", "more than 64 deep")
def _(work):
    folder = model(work)
    _nest_json(folder / "model.json", "metadata", _DEEP)
    return _rtl(folder, work)


@case("bounds-model-json-nested-65-deep", "check", "model.json", "more than 64 deep")
def _(work):
    folder = model(work)
    _nest_json(folder / "model.json", "metadata", 65)
    return _check_rows(work, folder, _good_rows())


@case("bounds-model-json-nested-in-a-layer", "rtl", "more than 64 deep")
def _(work):
    folder = model(work)
    path = folder / "model.json"
    text = path.read_text().replace('"activation": "relu"', f'"activation": {_deep(_DEEP)}', 1)
    path.write_text(text)
    return _rtl(folder, work)


@case("bounds-model-json-not-utf8", "rtl", "model.json is not valid JSON")
def _(work):
    folder = model(work)
    (folder / "model.json").write_bytes(b'{"schema": "hgq-rtl-ir\xff\xfe"}')
    return _rtl(folder, work)


@case("bounds-manifest-nested-100000-deep", "verify", "manifest.json must be JSON", "64 deep")
def _(work):
    folder = design(work)
    _nest_json(folder / "manifest.json", "layers", _DEEP)
    return _verify(folder)


@case("bounds-manifest-nested-70-deep", "verify", "manifest.json must be JSON", "64 deep")
def _(work):
    folder = design(work)
    _nest_json(folder / "manifest.json", "options", 70)
    return _verify(folder)


@case("bounds-manifest-not-utf8", "verify", "manifest.json must be JSON")
def _(work):
    folder = design(work)
    (folder / "manifest.json").write_bytes(b"\xff\xfe{}")
    return _verify(folder)


@case("bounds-synth-manifest-nested-deep", "synth", "malformed manifest", "64 deep")
def _(work):
    folder = design(work)
    _nest_json(folder / "manifest.json", "layers", _DEEP)
    return [folder, "--out", work / "synth", "--no-nextpnr"]


@case("bounds-synth-manifest-not-utf8", "synth", "malformed manifest", "not valid JSON")
def _(work):
    folder = design(work)
    (folder / "manifest.json").write_bytes(b"\xff\xfe{}")
    return [folder, "--out", work / "synth", "--no-nextpnr"]


def _run_folder(work: Path) -> Path:
    run = work / "run"
    run.mkdir()
    (run / "report.json").write_text(json.dumps({"dataset": "digits", "layers": []}))
    return run


@case("bounds-report-json-nested-deep", "report", "report", "report.json", "64 deep")
def _(work):
    run = _run_folder(work)
    _nest_json(run / "report.json", "history", _DEEP)
    return [run]


@case("bounds-report-json-nested-65-deep", "report", "report.json", "64 deep")
def _(work):
    run = _run_folder(work)
    _nest_json(run / "report.json", "synthesis", 65)
    return [run]


@case("bounds-report-json-not-utf8", "report", "report.json is not valid JSON")
def _(work):
    run = _run_folder(work)
    (run / "report.json").write_bytes(b'{"dataset": "\xff"}')
    return [run]


# =========================================================================== --data files


def _data(work: Path, name: str, data: bytes) -> list[str | Path]:
    (work / name).write_bytes(data)
    return [model(work), "--data", work / name]


@case("bounds-data-npy-claims-1e12-rows", "check", "claims shape (1000000000000, 3)")
def _(work):
    return _data(work, "rows.npy", npy_bytes("<f8", (10**12, 3), np.zeros(6).tobytes()))


@case("bounds-data-npy-claims-huge-2d", "check", "claims shape (4294967296, 4294967296)")
def _(work):
    return _data(work, "rows.npy", npy_bytes("<f8", (2**32, 2**32)))


@case("bounds-data-npy-object-dtype", "check", "is not a readable .npy file", "Python objects")
def _(work):
    return _data(work, "rows.npy", npy_bytes("|O", (2, 3), b"\x80\x04N."))


@case("bounds-data-npy-negative-shape", "check", "negative shape (2, -3)")
def _(work):
    return _data(work, "rows.npy", npy_bytes("<f8", (2, -3)))


@case("bounds-data-npy-version-3", "check", "is not a readable .npy file", "version 3.0")
def _(work):
    return _data(work, "rows.npy", npy_bytes("<f8", (1, 3), np.zeros(3).tobytes(), version=(3, 0)))


@case("bounds-data-npy-header-too-long", "check", "is not a readable .npy file")
def _(work):
    return _data(work, "rows.npy", npy_bytes("<f8", (1, 3), np.zeros(3).tobytes(), pad=50_000))


@case("bounds-data-npy-fortran-truncated", "check", "claims shape (4, 3)", "holds 40 bytes")
def _(work):
    return _data(work, "rows.npy", npy_bytes("<f8", (4, 3), np.zeros(5).tobytes(), fortran=True))


@case("bounds-data-npz-x-claims-huge", "check", "array 'x' claims shape (1099511627776, 3)")
def _(work):
    _npz(work / "rows.npz", x=npy_bytes("<f8", (2**40, 3), np.zeros(3).tobytes()))
    return [model(work), "--data", work / "rows.npz"]


@case("bounds-data-npz-only-array-object", "check", "is not a readable .npz file", "objects")
def _(work):
    _npz(work / "rows.npz", rows=npy_bytes("|O", (1, 3), b"\x80\x04N."))
    return [model(work), "--data", work / "rows.npz"]


@case("bounds-data-npz-member-not-npy", "check", "is not a readable .npz file", "'x.csv'")
def _(work):
    _npz(work / "rows.npz", **{"x.csv": b"1,2,3\n"})
    return [model(work), "--data", work / "rows.npz"]


# =========================================================================== data sets


def _dataset(work: Path, **arrays: np.ndarray | bytes) -> Path:
    """An ``.npz`` data set: a valid 3-feature split, then ``arrays`` over it (bytes: a raw
    member)."""
    rng = np.random.default_rng(0)
    members: dict[str, np.ndarray | bytes] = {
        "x_train": rng.normal(size=(8, 3)),
        "y_train": np.arange(8) % 2,
        "x_test": rng.normal(size=(4, 3)),
        "y_test": np.arange(4) % 2,
    }
    members.update(arrays)
    path = work / "set.npz"
    with zipfile.ZipFile(path, "w") as archive:
        for name, value in members.items():
            if isinstance(value, np.ndarray):
                with archive.open(f"{name}.npy", "w") as member:
                    np.lib.format.write_array(member, value, allow_pickle=False)
            else:
                archive.writestr(f"{name}.npy", value)
    return path


def _check_dataset(work: Path, path: Path) -> list[str | Path]:
    return [model(work), "--dataset", "npz", "--data-path", path]


def _train_dataset(work: Path, path: Path) -> list[str | Path]:
    return ["--dataset", "npz", "--data-path", path, "--epochs", "1", "--out", work / "out"]


@case("bounds-dataset-label-1e9", "check", "holds the label 1000000000", "at most 65536")
def _(work):
    labels = np.array([0, 1, 0, 1, 0, 1, 0, 10**9])
    return _check_dataset(work, _dataset(work, y_train=labels))


@case("bounds-dataset-label-uint64-max", "check", "holds the label 18446744073709551615")
def _(work):
    labels = np.array([0, 1, 0, _U64_MAX], np.uint64)
    return _check_dataset(work, _dataset(work, y_test=labels))


@case("bounds-dataset-label-65536", "train", "holds the label 65536", "[0, 65536)")
def _(work):
    labels = np.array([0, 1, 0, 1, 0, 1, 0, 65536])
    return _train_dataset(work, _dataset(work, y_train=labels))


@case("bounds-dataset-label-1e9-train", "train", "holds the label 1000000000")
def _(work):
    labels = np.array([0, 1, 0, 10**9], np.int32)
    return _train_dataset(work, _dataset(work, y_test=labels))


@case("bounds-dataset-x-claims-huge", "check", "'x_train' claims shape (68719476736, 3)")
def _(work):
    raw = npy_bytes("<f8", (2**36, 3), np.zeros(24).tobytes())
    return _check_dataset(work, _dataset(work, x_train=raw))


@case("bounds-dataset-x-claims-huge-train", "train", "'x_test' claims shape (1000000000, 3)")
def _(work):
    raw = npy_bytes("<f8", (10**9, 3), np.zeros(12).tobytes())
    return _train_dataset(work, _dataset(work, x_test=raw))


@case("bounds-dataset-labels-object", "train", "'y_train' holds Python objects")
def _(work):
    return _train_dataset(work, _dataset(work, y_train=npy_bytes("|O", (8,), b"\x80\x04N.")))


@case("bounds-dataset-truncated-member", "check", "'y_test' claims shape (4,)", "holds 16")
def _(work):
    raw = npy_bytes("<i8", (4,), _int64([0, 1]))
    return _check_dataset(work, _dataset(work, y_test=raw))


@case("bounds-dataset-not-a-zip", "train", "could not read", "as .npz")
def _(work):
    (work / "set.npz").write_bytes(b"PK\x03\x04 no zip")
    return _train_dataset(work, work / "set.npz")


@case("bounds-dataset-unread-member-not-npy", "check", "could not read", "'README'")
def _(work):
    path = _dataset(work)
    replace_member(path, "README", b"hand-made")
    return _check_dataset(work, path)


@case("bounds-jets-npz-x-claims-huge", "check", "'x' claims shape (4294967296, 16)")
def _(work):
    _npz(
        work / "jets.npz",
        x=npy_bytes("<f8", (2**32, 16), np.zeros(16).tobytes()),
        y=npy_bytes("<U1", (1,), "g".encode("utf-32-le")),
    )
    return [model(work), "--dataset", "jets", "--data-path", work / "jets.npz"]


def _idx(shape: tuple[int, ...], code: int = 0x08, data: bytes = b"") -> bytes:
    return bytes([0, 0, code, len(shape)]) + struct.pack(f">{len(shape)}I", *shape) + data


def _fashion(work: Path, images: bytes, *, gz: bool) -> list[str | Path]:
    folder = work / "fashion"
    folder.mkdir()
    files = {
        "train-images-idx3-ubyte": images,
        "train-labels-idx1-ubyte": _idx((1,), data=b"\x00"),
        "t10k-images-idx3-ubyte": _idx((1, 28, 28), data=bytes(784)),
        "t10k-labels-idx1-ubyte": _idx((1,), data=b"\x00"),
    }
    for name, data in files.items():
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)
    return [model(work), "--dataset", "fashion_mnist", "--data-path", folder]


@case("bounds-idx-header-claims-huge", "check", "train-images-idx3-ubyte", "GiB")
def _(work):
    return _fashion(work, _idx((2**32 - 1, 2**16, 2**16), data=bytes(784)), gz=False)


@case("bounds-idx-gzip-header-claims-huge", "check", "train-images-idx3-ubyte", "GiB")
def _(work):
    return _fashion(work, _idx((2**32 - 1, 28, 28), code=0x0E, data=bytes(784)), gz=True)


# =========================================================================== vectors files


def _vectors_raw(work: Path, data: bytes) -> list[str | Path]:
    path = _npz(work / "vectors.npz", inputs=data)
    return _verify(design(work), "--vectors-file", path)


@case("bounds-vectors-uint64", "verify", "'inputs' must be integers, not uint64")
def _(work):
    path = work / "vectors.npz"
    np.savez(path, inputs=np.array([[0, 7, 0], [1, 2, 3]], np.uint64))
    return _verify(design(work), "--vectors-file", path)


@case("bounds-vectors-header-claims-huge", "verify", "'inputs' claims shape (1000000000000, 3)")
def _(work):
    return _vectors_raw(work, npy_bytes("<i8", (10**12, 3), _int64([0, 1, 2])))


@case("bounds-vectors-object-dtype", "verify", "vectors file", "Python objects")
def _(work):
    return _vectors_raw(work, npy_bytes("|O", (1, 3), b"\x80\x04N."))


@case("bounds-vectors-negative-shape", "verify", "vectors file", "negative shape (-1, 3)")
def _(work):
    return _vectors_raw(work, npy_bytes("<i8", (-1, 3)))


@case("bounds-vectors-truncated", "verify", "vectors file", "holds 16 bytes")
def _(work):
    return _vectors_raw(work, npy_bytes("<i8", (2, 3), _int64([0, 1])))


# =========================================================================== names and devices


@case("bounds-rtl-name-verilog-keyword", "rtl", "'module' is a Verilog keyword")
def _(work):
    return [*_rtl(model(work), work), "--name", "module"]


@case("bounds-rtl-name-systemverilog-keyword", "rtl", "'logic' is a Verilog keyword")
def _(work):
    return [*_rtl(model(work), work), "--name", "logic"]


@case("bounds-rtl-model-name-keyword", "rtl", "'always' is a Verilog keyword")
def _(work):
    return _rtl(model(work, lambda d: d.update(name="always")), work)


@case("bounds-rtl-name-non-ascii", "rtl", "'größe'", "ASCII identifier")
def _(work):
    return [*_rtl(model(work), work), "--name", "größe"]


@case("bounds-train-device-cuda-99", "train", "--device cuda:99")
def _(work):
    return ["--dataset", "digits", "--epochs", "1", "--device", "cuda:99", "--out", work / "out"]


@case("bounds-train-device-unknown", "train", "--device must be auto, cpu, cuda or cuda:N")
def _(work):
    return ["--dataset", "digits", "--epochs", "1", "--device", "tpu", "--out", work / "out"]


# ---------------------------------------------------------- run: refused before training


@case(
    "bounds-run-pixels-per-beat-on-an-mlp",
    "run",
    "--pixels-per-beat 2 needs a streamed design",
    "mlp network is generated fully unrolled",
)
def _run_wide_mlp(work: Path) -> list[str | Path]:
    return ["--dataset", "digits", "--pixels-per-beat", "2", "--out", work / "run"]


@case(
    "bounds-run-pixels-per-beat-not-dividing-the-width",
    "run",
    "--pixels-per-beat 3 must divide the width of the digits samples",
)
def _run_wide_cnn(work: Path) -> list[str | Path]:
    return ["--dataset", "digits", "--arch", "cnn", "--pixels-per-beat", "3", "--out", work / "run"]


# ------------------------------------------------------------- report: fields of the wrong type

_WRONG_FIELDS = {
    "test-accuracy-a-string": ({"test_accuracy": "abc"}, "test_accuracy must be a number"),
    "verification-a-string": ({"verification": "x"}, "verification must be an object"),
    "layers-a-string": ({"layers": "no"}, "layers must be a list"),
    "layer-without-a-name": ({"layers": [{"ebops": 3}]}, "layers[0] must be an object with a name"),
    "layer-ebops-a-string": ({"layers": [{"name": "d", "ebops": "x"}]}, "layers[0].ebops"),
    "passed-a-string": ({"verification": {"passed": "yes"}}, "verification.passed must be true"),
    "ebops-true": ({"ebops": True}, "ebops must be a number, not true"),
}


def _wrong_field(fields: dict):
    def build(work: Path) -> list[str | Path]:
        run = _run_folder(work)
        report = json.loads((run / "report.json").read_text())
        (run / "report.json").write_text(json.dumps({**report, **fields}))
        return [run]

    return build


for _name, (_fields, _message) in _WRONG_FIELDS.items():
    case(f"bounds-report-json-{_name}", "report", "report.json", _message)(_wrong_field(_fields))
