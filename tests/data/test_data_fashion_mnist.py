"""Tests of hgq_rtl.data.fashion_mnist: the IDX reader and Fashion-MNIST."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
from data_helpers import raise_one_line

import hgq_rtl.data.fashion_mnist
from hgq_rtl.data import (
    FASHION_MNIST_CLASSES,
    FASHION_MNIST_DIR,
    FASHION_MNIST_FILES,
    Task,
    load_dataset,
    load_fashion_mnist,
    read_idx,
)

# ------------------------------------------------------------------------------------- IDX


IDX_CODES = [
    (0x08, np.uint8, [0, 1, 127, 255]),
    (0x09, np.int8, [-128, -1, 0, 127]),
    (0x0B, np.int16, [-32768, -2, 258, 32767]),
    (0x0C, np.int32, [-(2**31), -3, 65536 + 2, 2**31 - 1]),
    (0x0D, np.float32, [-1.5, 0.0, 3.25, 1e30]),
    (0x0E, np.float64, [-1e-300, 0.1, np.pi, 2.0**60]),
]


def _idx_bytes(values: np.ndarray, code: int) -> bytes:
    """An IDX file written by hand: magic, type code, rank, big-endian sizes and elements."""
    header = bytes([0, 0, code, values.ndim]) + struct.pack(f">{values.ndim}I", *values.shape)
    return header + values.astype(values.dtype.newbyteorder(">")).tobytes()


def _write_idx(path: Path, values: np.ndarray, code: int, gz: bool = False) -> Path:
    data = _idx_bytes(values, code)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
@pytest.mark.parametrize(("code", "dtype", "values"), IDX_CODES, ids=lambda v: str(v))
def test_read_idx_types(tmp_path: Path, code: int, dtype: type, values: list, gz: bool) -> None:
    array = np.resize(np.array(values, dtype=dtype), (2, 3, 4))
    array[1, 2, 3] = dtype(values[1])  # not a plain repetition
    out = read_idx(_write_idx(tmp_path / "a.idx", array, code, gz))
    assert out.dtype == np.dtype(dtype) and out.dtype.isnative
    assert out.shape == (2, 3, 4) and out.flags.writeable
    np.testing.assert_array_equal(out, array)


def test_read_idx_gzip_by_content_not_name(tmp_path: Path) -> None:
    labels = np.arange(10, dtype=np.uint8)
    _write_idx(tmp_path / "labels", labels, 0x08, gz=True)  # gzipped, no .gz suffix
    _write_idx(tmp_path / "labels.gz", labels[::-1], 0x08)  # raw, with a .gz suffix
    np.testing.assert_array_equal(read_idx(tmp_path / "labels"), labels)
    np.testing.assert_array_equal(read_idx(str(tmp_path / "labels.gz")), labels[::-1])


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", r"is not an IDX file: it starts with bytes \[\], not \[00 00 <type> <dimensions>\]$"),
        (
            b"\x01\x02\x08\x01\0\0\0\x01\x05",
            r"is not an IDX file: it starts with bytes \[01 02 08 01\]",
        ),
        (
            b"\0\0\x0a\x01\0\0\0\x01\x05",
            r"is not an IDX file: unknown element type code 0x0A \(expected",
        ),
        (b"\0\0\x08\x00", r"is not an IDX file: its header declares 0 dimensions$"),
        (
            b"\0\0\x08\x03\0\0\0\x02\0\0",
            r"is truncated: its header declares 3 dimensions, which need 16 header bytes, but the "
            r"file holds 10$",
        ),
    ],
)
def test_read_idx_garbled(tmp_path: Path, data: bytes, match: str) -> None:
    (tmp_path / "bad").write_bytes(data)
    raise_one_line(ValueError, "^'.*bad' " + match, read_idx, tmp_path / "bad")


def test_read_idx_truncated_and_trailing(tmp_path: Path) -> None:
    full = _idx_bytes(np.zeros((3, 4), dtype=np.int16), 0x0B)
    (tmp_path / "short").write_bytes(full[:-1])
    raise_one_line(
        ValueError,
        r"^'.*short' is truncated: its header declares 3×4 int16 values \(24 bytes\), but only "
        r"23 bytes follow$",
        read_idx,
        tmp_path / "short",
    )
    (tmp_path / "long").write_bytes(full + b"\0\0")
    raise_one_line(
        ValueError,
        r"^'.*long' is malformed: 2 bytes follow its 3×4 int16 values$",
        read_idx,
        tmp_path / "long",
    )
    packed = gzip.compress(full)
    (tmp_path / "cut.gz").write_bytes(packed[: len(packed) // 2])
    raise_one_line(
        ValueError, r"^could not decompress '.*cut\.gz' \(gzip\): ", read_idx, tmp_path / "cut.gz"
    )
    raise_one_line(FileNotFoundError, r"^no such file: '.*nope'$", read_idx, tmp_path / "nope")
    raise_one_line(FileNotFoundError, r"' is not a file$", read_idx, tmp_path)


# --------------------------------------------------------------------------- Fashion-MNIST


def _fake_fashion(folder: Path, n_train: int = 30, n_test: int = 10, **replace) -> dict:
    """Four small IDX files like Debian's (train gzipped, test raw, one with the dotted name)."""
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(5)
    arrays = {
        "x_train": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "y_train": (np.arange(n_train) % 10).astype(np.uint8)[rng.permutation(n_train)],
        "x_test": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "y_test": (np.arange(n_test) % 10).astype(np.uint8),
    } | replace
    arrays["x_train"][0, 0, 0], arrays["x_train"][0, 0, 1] = 0, 255
    names = {
        "x_train": "train-images-idx3-ubyte.gz",
        "y_train": "train-labels-idx1-ubyte.gz",
        "x_test": "t10k-images-idx3-ubyte",
        "y_test": "t10k-labels.idx1-ubyte",
    }
    codes = {np.dtype(np.uint8): 0x08, np.dtype(np.int32): 0x0C}
    for key, name in names.items():
        _write_idx(folder / name, arrays[key], codes[arrays[key].dtype], name.endswith(".gz"))
    return arrays


def test_fashion_mnist_from_a_folder(tmp_path: Path) -> None:
    raw = _fake_fashion(tmp_path / "fm")
    ds = load_fashion_mnist(tmp_path / "fm")
    assert ds.name == "fashion_mnist" and ds.task is Task.CLASSIFICATION
    assert ds.x_train.shape == (30, 1, 28, 28) and ds.x_test.shape == (10, 1, 28, 28)
    assert ds.input_shape == (1, 28, 28) and ds.n_features == 784
    assert ds.x_train.dtype == np.float32 and ds.x_train.flags.c_contiguous
    assert ds.n_classes == 10 and ds.class_names == FASHION_MNIST_CLASSES
    assert ds.class_names[0] == "T-shirt/top" and ds.class_names[9] == "Ankle boot"
    assert ds.feature_names[0] == "c0_y0_x0" and ds.feature_names[29] == "c0_y1_x1"
    # pixel / 256, exact, in file order
    np.testing.assert_array_equal(ds.x_train[:, 0] * 256, raw["x_train"])
    np.testing.assert_array_equal(ds.x_test[:, 0] * 256, raw["x_test"])
    assert ds.x_train.min() == 0.0 and ds.x_train.max() == 255 / 256
    np.testing.assert_array_equal(ds.y_train, raw["y_train"])
    np.testing.assert_array_equal(ds.y_test, raw["y_test"])
    # one of the files as the path, and through the registry
    for path in (tmp_path / "fm" / "t10k-images-idx3-ubyte", str(tmp_path / "fm")):
        again = load_dataset("fashion_mnist", path=path, seed=3)
        np.testing.assert_array_equal(again.x_train, ds.x_train)


def test_fashion_mnist_subsets(tmp_path: Path) -> None:
    raw = _fake_fashion(tmp_path / "fm")
    a = load_fashion_mnist(tmp_path / "fm", seed=1, train_samples=10, test_samples=5)
    b = load_dataset(
        "fashion_mnist", path=tmp_path / "fm", seed=1, train_samples=10, test_samples=5
    )
    c = load_fashion_mnist(tmp_path / "fm", seed=2, train_samples=10)
    assert a.x_train.shape == (10, 1, 28, 28) and a.x_test.shape == (5, 1, 28, 28)
    assert sorted(a.y_train) == list(range(10))  # stratified: one image per class
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    assert not np.array_equal(a.x_train, c.x_train)
    assert c.x_test.shape == (10, 1, 28, 28)
    # every drawn image is a training image with its own label
    rows = {
        bytes(image): label for image, label in zip(raw["x_train"], raw["y_train"], strict=True)
    }
    for image, label in zip(a.x_train, a.y_train, strict=True):
        assert rows[bytes((image[0] * 256).astype(np.uint8))] == label
    full = load_fashion_mnist(tmp_path / "fm", train_samples=30)
    raise_one_line(
        ValueError, r"^`seed` must be an integer", load_fashion_mnist, tmp_path / "fm", seed=-1
    )
    np.testing.assert_array_equal(full.x_train[:, 0] * 256, raw["x_train"])
    for bad in (0, 31, 2.5, True):
        raise_one_line(
            ValueError,
            rf"^`train_samples` must be an integer in \[1, 30\], not {bad!r}$",
            load_fashion_mnist,
            tmp_path / "fm",
            train_samples=bad,
        )


def test_fashion_mnist_missing_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hgq_rtl.data.fashion_mnist, "FASHION_MNIST_DIR", tmp_path / "absent")
    message = raise_one_line(
        FileNotFoundError, r"^Fashion-MNIST not found: ", load_dataset, "fashion_mnist"
    )
    assert message == (
        "Fashion-MNIST not found: no train-images-idx3-ubyte.gz or train-images-idx3-ubyte in "
        f"'{tmp_path / 'absent'}' (apt-get install dataset-fashion-mnist, or pass the folder of "
        "the IDX files with --data-path)"
    )
    _fake_fashion(tmp_path / "fm")
    (tmp_path / "fm" / "t10k-images-idx3-ubyte").unlink()
    raise_one_line(
        FileNotFoundError,
        r"no t10k-images-idx3-ubyte\.gz or t10k-images-idx3-ubyte in '.*fm' \(apt-get install",
        load_fashion_mnist,
        tmp_path / "fm",
    )
    (tmp_path / "other.npz").write_bytes(b"")
    raise_one_line(
        ValueError,
        r"^`path` must be a folder holding the Fashion-MNIST IDX files, or one of them, not",
        load_fashion_mnist,
        tmp_path / "other.npz",
    )


@pytest.mark.parametrize(
    ("replace", "match"),
    [
        (
            {"y_train": np.full(30, 10, dtype=np.uint8)},
            r"labels-idx1-ubyte' holds label 10, outside 0\.\.9$",
        ),
        (
            {"y_test": np.zeros(9, dtype=np.uint8)},
            r"^Fashion-MNIST test split has 10 images but 9 labels$",
        ),
        (
            {"y_train": np.zeros(30, dtype=np.int32)},
            r"labels-idx1-ubyte' must hold unsigned-byte labels of shape \(n,\), not int32",
        ),
        (
            {"x_test": np.zeros((10, 784), dtype=np.uint8)},
            r"images-idx3-ubyte' must hold unsigned-byte images of shape \(n, height, width\), "
            r"not uint8 of shape \(10, 784\)$",
        ),
        (
            {"x_test": np.zeros((10, 14, 14), dtype=np.uint8)},
            r"^Fashion-MNIST training images are \(28, 28\) but test images \(14, 14\)$",
        ),
    ],
)
def test_fashion_mnist_bad_files(tmp_path: Path, replace: dict, match: str) -> None:
    _fake_fashion(tmp_path / "fm", **replace)
    raise_one_line(ValueError, match, load_fashion_mnist, tmp_path / "fm")


def test_fashion_mnist_debian_files() -> None:
    if not (FASHION_MNIST_DIR / f"{FASHION_MNIST_FILES['x_train']}.gz").is_file():
        pytest.skip(f"{FASHION_MNIST_DIR} is absent: apt-get install dataset-fashion-mnist")
    ds = load_dataset("fashion_mnist")
    assert ds.x_train.shape == (60000, 1, 28, 28) and ds.x_test.shape == (10000, 1, 28, 28)
    assert list(np.bincount(ds.y_train)) == [6000] * 10
    assert list(np.bincount(ds.y_test)) == [1000] * 10
    # the official files' first labels: ankle boot, T-shirt/top, T-shirt/top, dress ...
    assert list(ds.y_train[:6]) == [9, 0, 0, 3, 0, 2] and list(ds.y_test[:5]) == [9, 2, 1, 1, 6]
    for x in (ds.x_train, ds.x_test):
        assert x.min() == 0.0 and x.max() == 255 / 256
        pixels = x * 256
        assert np.array_equal(pixels, np.round(pixels))
    assert 0.27 < ds.x_train.mean() < 0.30  # mean pixel of Fashion-MNIST is 72.94 / 255
