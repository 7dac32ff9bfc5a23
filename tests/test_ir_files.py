"""Bounded reading of user files (hgq_rtl.ir.files) and exact int64 conversion of IR arrays."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from bad_inputs.files import npy_bytes, replace_member
from bad_inputs.helpers import model

from hgq_rtl.ir import files
from hgq_rtl.ir import io as ir_io
from hgq_rtl.ir.files import ArrayFileError, json_depth, npz_headers, read_json, read_npy, read_npz
from hgq_rtl.ir.formats import _as_int_array

ARRAYS = {
    "ints": np.arange(12, dtype=np.int64).reshape(3, 4),
    "fortran": np.asfortranarray(np.arange(6, dtype=np.int32).reshape(2, 3)),
    "big_endian": np.arange(5, dtype=">i8"),
    "floats": np.linspace(-1, 1, 7),
    "empty": np.zeros((0, 3)),
    "flags": np.array([True, False]),
    "text": np.array(["a", "bcd"]),
    "scalar": np.array(3.5),
}


def test_npz_arrays_read_as_numpy_reads_them(tmp_path: Path) -> None:
    np.savez(tmp_path / "a.npz", **ARRAYS)
    np.savez_compressed(tmp_path / "c.npz", **ARRAYS)
    for name in ("a.npz", "c.npz"):
        arrays = read_npz(tmp_path / name)
        assert arrays.keys() == ARRAYS.keys()
        for key, value in ARRAYS.items():
            assert arrays[key].dtype == value.dtype and arrays[key].shape == value.shape
            assert np.array_equal(arrays[key], value)
        headers = npz_headers(tmp_path / name)
        assert headers["fortran"].fortran_order and headers["ints"].shape == (3, 4)
    assert read_npz(tmp_path / "a.npz", ["ints", "absent"]).keys() == {"ints"}


def test_npy_read_as_numpy_reads_it(tmp_path: Path) -> None:
    for key, value in ARRAYS.items():
        np.save(tmp_path / f"{key}.npy", value)
        read = read_npy(tmp_path / f"{key}.npy")
        assert read.dtype == value.dtype and np.array_equal(read, value)


def test_an_array_larger_than_half_the_free_memory_is_refused(tmp_path, monkeypatch) -> None:
    np.save(tmp_path / "a.npy", np.zeros(1000))
    monkeypatch.setattr(files, "available_memory", lambda: 10_000)
    with pytest.raises(ArrayFileError, match=r"needs .* GiB, more than half of the"):
        read_npy(tmp_path / "a.npy")
    np.savez(tmp_path / "a.npz", a=np.zeros(400), b=np.zeros(400))
    read_npz(tmp_path / "a.npz", ["a"])  # 3200 bytes alone fit
    with pytest.raises(ArrayFileError, match="the arrays of"):
        read_npz(tmp_path / "a.npz")  # 6400 together do not


def test_a_header_claiming_more_than_the_file_holds_is_refused_unread(tmp_path) -> None:
    (tmp_path / "a.npy").write_bytes(npy_bytes("<f8", (2**50,), np.zeros(2).tobytes()))
    with pytest.raises(ArrayFileError, match=r"claims shape \(1125899906842624,\)"):
        read_npy(tmp_path / "a.npy")


def test_json_depth_limit(tmp_path: Path) -> None:
    assert json_depth(5) == 0 and json_depth([]) == 1 and json_depth({"a": [{}]}) == 3
    ok, deep = tmp_path / "ok.json", tmp_path / "deep.json"
    ok.write_text("[" * files.MAX_JSON_DEPTH + "]" * files.MAX_JSON_DEPTH)
    deep.write_text("[" * (files.MAX_JSON_DEPTH + 1) + "]" * (files.MAX_JSON_DEPTH + 1))
    assert json_depth(read_json(ok)) == files.MAX_JSON_DEPTH
    with pytest.raises(ArrayFileError, match="more than 64 deep"):
        read_json(deep)
    (tmp_path / "huge.json").write_text('{"a": ' + "[" * 10**6 + "]" * 10**6 + "}")
    with pytest.raises(ArrayFileError, match="more than 64 deep"):
        read_json(tmp_path / "huge.json")


def test_unlisted_arrays_are_never_read(tmp_path: Path) -> None:
    folder = model(tmp_path)
    replace_member(folder / "weights.npz", "junk.npy", npy_bytes("|O", (2**60,)))
    assert ir_io.load(folder).layers[0].name == "hidden"


# --------------------------------------------------------------------------- int64, exactly


@pytest.mark.parametrize(
    "values",
    [
        np.array([0, 5, 2**63 - 1], np.uint64),
        np.array([-(2**62), 7], np.int64),
        np.array([1.0, -(2.0**62)]),
        np.array([3, 200], np.uint8),
    ],
)
def test_values_inside_int64_convert_exactly(values: np.ndarray) -> None:
    converted = _as_int_array(values, "a")
    assert converted.dtype == np.int64
    assert [int(v) for v in converted] == [int(v) for v in values]


@pytest.mark.parametrize(
    ("values", "shown"),
    [
        (np.array([1, 2**63], np.uint64), "9223372036854775808 at [1]"),
        (np.array([[0, 0], [0, 2**64 - 1]], np.uint64), "18446744073709551615 at [1, 1]"),
        (np.array([2.0**63]), "9.223372036854776e+18 at [0]"),
        (np.array([0.0, -1e300]), "-1e+300 at [1]"),
    ],
)
def test_values_outside_int64_are_refused(values: np.ndarray, shown: str) -> None:
    with pytest.raises(ValueError) as raised:
        _as_int_array(values, "a")
    assert str(raised.value) == f"a holds {shown}, outside the 64-bit signed integer range"


def test_a_saved_model_with_uint64_weights_in_range_loads_exactly(tmp_path: Path) -> None:
    weight = np.array([[3, 5, 1], [0, 2, 1]], np.uint64)
    folder = model(tmp_path, edit_arrays=lambda a: a.update({"hidden.weight": weight}))
    loaded = ir_io.load(folder).layers[0].weight
    assert loaded.dtype == np.int64 and loaded.tolist() == weight.tolist()
    assert json.loads((folder / "model.json").read_text())["arrays"]["hidden.weight"]
