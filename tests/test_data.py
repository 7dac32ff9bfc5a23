"""Tests of hgq_rtl.data: Dataset, the IDX reader and every loader (no network)."""

from __future__ import annotations

import csv
import gzip
import importlib.util
import re
import struct
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import sklearn.datasets
from sklearn.utils import Bunch

import hgq_rtl.data
from hgq_rtl.data import (
    DATASETS,
    FASHION_MNIST_CLASSES,
    FASHION_MNIST_DIR,
    FASHION_MNIST_FILES,
    JET_CLASSES,
    JET_FEATURES,
    MUON_TOY_FEATURES,
    Dataset,
    Task,
    default_feature_names,
    load_dataset,
    load_digits,
    load_fashion_mnist,
    load_jets,
    load_muon_toy,
    load_npz,
    read_idx,
)

N_JETS = 200


def _raise_one_line(exc_type: type[Exception], match: str, call, *args, **kwargs) -> str:
    """Call ``call``, expect ``exc_type`` matching ``match``; return its single-line message."""
    with pytest.raises(exc_type, match=match) as info:
        call(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


def _assert_layout(ds: Dataset) -> None:
    for x in (ds.x_train, ds.x_test):
        assert x.dtype == np.float32 and x.flags.c_contiguous and x.ndim == 2
    for y in (ds.y_train, ds.y_test):
        assert y.dtype == np.int64 and y.flags.c_contiguous and y.ndim == 1
    assert len(ds.x_train) == len(ds.y_train) and len(ds.x_test) == len(ds.y_test)
    assert ds.n_features == ds.x_train.shape[1] == ds.x_test.shape[1] == len(ds.feature_names)
    assert len(ds.class_names) == ds.n_classes


# ---------------------------------------------------------------------------------- digits


def test_digits_shapes_and_range() -> None:
    ds = load_digits()
    _assert_layout(ds)
    assert ds.name == "digits"
    assert ds.x_train.shape == (1347, 64) and ds.x_test.shape == (450, 64)
    assert ds.n_classes == 10 and ds.class_names == tuple(str(i) for i in range(10))
    assert ds.feature_names[0] == "pixel_0_0"
    x = np.concatenate([ds.x_train, ds.x_test])
    assert x.min() == 0.0 and x.max() == 1.0
    np.testing.assert_array_equal(x * 16, np.round(x * 16))  # exact multiples of 1/16
    # stratified: every class is in the test split in proportion (178..183 per class overall)
    assert set(np.bincount(ds.y_test, minlength=10)) <= {43, 44, 45, 46}


def test_digits_split_is_deterministic_per_seed() -> None:
    a, b, c = load_digits(seed=3), load_digits(seed=3), load_digits(seed=4)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    assert not np.array_equal(a.x_train, c.x_train)
    # same samples overall, just split differently
    np.testing.assert_array_equal(
        np.sort(np.concatenate([a.y_train, a.y_test])),
        np.sort(np.concatenate([c.y_train, c.y_test])),
    )


def test_digits_test_fraction() -> None:
    ds = load_digits(test_fraction=0.5)
    assert len(ds.y_test) == 899 and len(ds.y_train) == 898


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"test_fraction": 0.0}, r"^`test_fraction` must be in \(0, 1\), not 0.0$"),
        ({"test_fraction": 1.5}, r"^`test_fraction` must be in \(0, 1\), not 1.5$"),
        ({"seed": -1}, r"^`seed` must be an integer in \[0, 2\*\*32\), not -1$"),
        ({"seed": 1.5}, r"^`seed` must be an integer"),
    ],
)
def test_split_arguments_are_checked(kwargs: dict, match: str) -> None:
    _raise_one_line(ValueError, match, load_digits, **kwargs)


# ------------------------------------------------------------------------------------ jets


def _jet_table(n: int = N_JETS, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random features and int labels; feature 0 is the row id, feature 1 the label."""
    rng = np.random.default_rng(seed)
    x = rng.normal(loc=5.0, scale=3.0, size=(n, len(JET_FEATURES)))
    y = rng.integers(0, len(JET_CLASSES), size=n)
    x[:, 0] = np.arange(n)
    x[:, 1] = y + 0.25 * rng.random(n)
    return x, y


def _write_csv(
    path: Path, x: np.ndarray, labels, header: list[str] | None = None, label_first: bool = False
) -> Path:
    header = list(JET_FEATURES[: x.shape[1]]) if header is None else header
    with path.open("w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["class", *header] if label_first else [*header, "class"])
        for row, label in zip(x, labels, strict=True):
            cells = [repr(float(v)) for v in row]
            writer.writerow([label, *cells] if label_first else [*cells, label])
    return path


def _raw_rows(ds: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Row ids of the train and test samples, from feature 0 (the id, standardized)."""
    ids = np.concatenate([ds.x_train[:, 0], ds.x_test[:, 0]])
    order = np.empty(len(ids), dtype=np.int64)
    order[np.argsort(ids, kind="stable")] = np.arange(len(ids))
    return order[: len(ds.x_train)], order[len(ds.x_train) :]


def _check_jets(ds: Dataset, x: np.ndarray, y: np.ndarray) -> None:
    """``ds`` is the standardized split of raw features ``x`` with int labels ``y``."""
    _assert_layout(ds)
    assert ds.name == "jets" and ds.n_classes == 5 and ds.class_names == JET_CLASSES
    assert ds.x_train.shape == (160, 16) and ds.x_test.shape == (40, 16)
    np.testing.assert_allclose(ds.x_train.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(ds.x_train.std(axis=0), 1.0, atol=1e-5)
    train, test = _raw_rows(ds)
    assert sorted([*train, *test]) == list(range(len(x)))
    np.testing.assert_array_equal(ds.y_train, y[train])
    np.testing.assert_array_equal(ds.y_test, y[test])
    mean, std = x[train].mean(axis=0), x[train].std(axis=0)  # training split only
    np.testing.assert_allclose(ds.x_train, (x[train] - mean) / std, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ds.x_test, (x[test] - mean) / std, rtol=1e-5, atol=1e-5)


def test_jets_csv_with_string_labels(tmp_path: Path) -> None:
    x, y = _jet_table()
    path = _write_csv(tmp_path / "jets.csv", x, [JET_CLASSES[i] for i in y])
    ds = load_jets(path, seed=1)
    _check_jets(ds, x, y)
    assert ds.feature_names == JET_FEATURES
    # labels g, q, w, z, t are 0..4: feature 1 (label + noise) orders the classes
    for k in range(4):
        assert ds.x_train[ds.y_train == k, 1].max() < ds.x_train[ds.y_train == k + 1, 1].min()


def test_jets_npz_with_int_labels(tmp_path: Path) -> None:
    x, y = _jet_table()
    np.savez(tmp_path / "jets.npz", x=x, y=y)
    ds = load_jets(tmp_path / "jets.npz", seed=1)
    _check_jets(ds, x, y)
    assert ds.feature_names == JET_FEATURES


def test_jets_csv_and_npz_agree(tmp_path: Path) -> None:
    x, y = _jet_table()
    np.savez(tmp_path / "jets.npz", x=x, y=y)
    labels = [JET_CLASSES[i].upper() if i % 2 else f" {JET_CLASSES[i]}" for i in y]
    from_csv = load_jets(_write_csv(tmp_path / "jets.csv", x, labels), seed=5)
    from_npz = load_jets(str(tmp_path / "jets.npz"), seed=5)
    for key in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(from_csv, key), getattr(from_npz, key))


def test_jets_csv_int_labels_any_column_order(tmp_path: Path) -> None:
    x, y = _jet_table()
    header = [f"f{i}" for i in range(16)]
    path = _write_csv(tmp_path / "jets.csv", x, [str(i) for i in y], header, label_first=True)
    ds = load_jets(path, seed=1)
    _check_jets(ds, x, y)
    assert ds.feature_names == tuple(header)


def test_jets_split_is_deterministic_per_seed(tmp_path: Path) -> None:
    x, y = _jet_table()
    np.savez(tmp_path / "jets.npz", x=x, y=y)
    a, b = load_jets(tmp_path / "jets.npz", seed=2), load_jets(tmp_path / "jets.npz", seed=2)
    c = load_jets(tmp_path / "jets.npz", seed=3)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    assert not np.array_equal(a.y_test, c.y_test)


def test_jets_constant_feature_becomes_zero(tmp_path: Path) -> None:
    x, y = _jet_table()
    x[:, 5] = 0.1
    np.savez(tmp_path / "jets.npz", x=x, y=y)
    ds = load_jets(tmp_path / "jets.npz")
    assert np.all(ds.x_train[:, 5] == 0.0) and np.all(ds.x_test[:, 5] == 0.0)


def test_jets_via_registry(tmp_path: Path) -> None:
    x, y = _jet_table()
    np.savez(tmp_path / "jets.npz", x=x, y=y)
    a = load_dataset("jets", path=tmp_path / "jets.npz", seed=7)
    b = load_jets(tmp_path / "jets.npz", seed=7)
    np.testing.assert_array_equal(a.x_test, b.x_test)
    assert set(DATASETS) == {"digits", "jets", "fashion_mnist", "muon_toy", "npz"}


# ---------------------------------------------------------------------------- jets: OpenML


def test_jets_from_openml(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    x, y = _jet_table()
    # What fetch_openml(..., as_frame=False) gives for this data set: float64 features and the
    # class names as an object array of str.
    target = np.array([JET_CLASSES[i] for i in y], dtype=object)
    calls = []

    def fake_fetch_openml(name, **kwargs):
        calls.append((name, kwargs))
        return Bunch(data=x.copy(), target=target, feature_names=list(JET_FEATURES))

    monkeypatch.setattr(sklearn.datasets, "fetch_openml", fake_fetch_openml)
    ds = load_jets(cache_dir=tmp_path, seed=1)
    _check_jets(ds, x, y)
    ((name, kwargs),) = calls
    assert name == "hls4ml_lhc_jets_hlf"
    assert kwargs["version"] == 1 and kwargs["as_frame"] is False
    assert kwargs["data_home"] == str(tmp_path)
    assert kwargs["parser"] in {"liac-arff", "pandas"}


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (
            urllib.error.URLError("[Errno -2] Name or\n service not known"),
            "<urlopen error [Errno -2] Name or service not known>",
        ),
        (TimeoutError("timed out"), "timed out"),
        (OSError(), "OSError"),
    ],
)
def test_jets_download_failure(
    monkeypatch: pytest.MonkeyPatch, error: OSError, reason: str
) -> None:
    def fake_fetch_openml(name, **kwargs):
        raise error

    monkeypatch.setattr(sklearn.datasets, "fetch_openml", fake_fetch_openml)
    _raise_one_line(
        ConnectionError,
        "^"
        + re.escape(
            f"could not download hls4ml_lhc_jets_hlf from OpenML ({reason}): "
            "pass a local file with --data-path"
        )
        + "$",
        load_dataset,
        "jets",
    )


# ---------------------------------------------------------------------------- jets: errors


def test_jets_wrong_feature_count(tmp_path: Path) -> None:
    x, y = _jet_table()
    np.savez(tmp_path / "jets.npz", x=x[:, :15], y=y)
    _raise_one_line(
        ValueError,
        re.escape(f"jets data needs 16 features, '{tmp_path / 'jets.npz'}' has 15"),
        load_jets,
        tmp_path / "jets.npz",
    )
    path = _write_csv(tmp_path / "jets.csv", x[:, :15], y)
    _raise_one_line(
        ValueError,
        re.escape(f"jets data needs 16 features, '{path}' has 15 columns besides 'class'"),
        load_jets,
        path,
    )


def test_jets_nan_and_inf(tmp_path: Path) -> None:
    x, y = _jet_table()
    x[7, 3] = np.nan
    path = _write_csv(tmp_path / "jets.csv", x, y)
    _raise_one_line(
        ValueError, r"hold NaN or inf \(nan in row 7, feature 'c1_b2_mmdt'\)$", load_jets, path
    )
    x[7, 3] = 1.0
    x[9, 0] = -np.inf
    np.savez(tmp_path / "jets.npz", x=x, y=y)
    _raise_one_line(
        ValueError,
        r"hold NaN or inf \(-inf in row 9, feature 'zlogz'\)$",
        load_jets,
        tmp_path / "jets.npz",
    )


def test_jets_bad_path(tmp_path: Path) -> None:
    _raise_one_line(
        ValueError,
        r"^`path` must be a \.csv, \.npz or \.parquet file, not 'x\.txt'$",
        load_jets,
        "x.txt",
    )
    _raise_one_line(
        FileNotFoundError, r"^no such file: '.*missing\.csv'$", load_jets, tmp_path / "missing.csv"
    )
    (tmp_path / "dir.npz").mkdir()
    _raise_one_line(FileNotFoundError, r"dir\.npz' is not a file$", load_jets, tmp_path / "dir.npz")


def test_jets_csv_errors(tmp_path: Path) -> None:
    x, y = _jet_table(n=10)
    path = tmp_path / "jets.csv"

    path.write_text("")
    _raise_one_line(ValueError, r"is empty: it needs a header row", load_jets, path)

    header = ",".join(JET_FEATURES)
    path.write_text(header + "\n" + ",".join(["1"] * 16) + "\n")
    _raise_one_line(
        ValueError, r"has no 'class' column with the jet labels \(columns: zlogz,", load_jets, path
    )

    _write_csv(path, x, ["g"] * 9 + ["b"])
    _raise_one_line(
        ValueError,
        r"unknown jet labels in '.*': 'b' \(expected g, q, w, z, t or 0-4\)$",
        load_jets,
        path,
    )

    _write_csv(path, x, ["7"] * 10)
    _raise_one_line(ValueError, r"unknown jet labels in '.*': '7'", load_jets, path)

    _write_csv(path, x, y)
    lines = path.read_text().splitlines()
    cells = lines[3].split(",")
    cells[2] = "abc"
    lines[3] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    _raise_one_line(
        ValueError, r"line 4, column 'c1_b1_mmdt': 'abc' is not a number$", load_jets, path
    )

    lines[3] = "1,2,3"
    path.write_text("\n".join(lines) + "\n")
    _raise_one_line(ValueError, r"line 4 has 3 fields, the header 17$", load_jets, path)

    path.write_text(",".join([*JET_FEATURES[:15], "zlogz", "class"]) + "\n")
    _raise_one_line(ValueError, r"has duplicate columns: zlogz$", load_jets, path)


def test_jets_npz_errors(tmp_path: Path) -> None:
    x, y = _jet_table()
    np.savez(tmp_path / "jets.npz", x=x)
    _raise_one_line(
        ValueError, r"has no array 'y' \(it needs x, y\)$", load_jets, tmp_path / "jets.npz"
    )
    np.savez(tmp_path / "jets.npz", x=x, y=y[:-1])
    _raise_one_line(
        ValueError, r"has 200 feature rows but 199 labels$", load_jets, tmp_path / "jets.npz"
    )
    np.savez(tmp_path / "jets.npz", x=x, y=y + 0.5)
    _raise_one_line(ValueError, r"unknown jet labels in .*: 0\.5", load_jets, tmp_path / "jets.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip file")
    _raise_one_line(
        ValueError, r"^could not read '.*junk\.npz' as \.npz: ", load_jets, tmp_path / "junk.npz"
    )


def test_jets_parquet_needs_pandas(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    find_spec = importlib.util.find_spec

    def without_pandas(name, *args, **kwargs):
        return None if name in {"pandas", "pyarrow"} else find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", without_pandas)
    (tmp_path / "jets.parquet").write_bytes(b"PAR1")
    _raise_one_line(
        ImportError,
        r"^reading '.*jets\.parquet' needs pandas and pyarrow, which are not installed: "
        r"pip install pandas pyarrow, or convert the file to \.csv or \.npz$",
        load_jets,
        tmp_path / "jets.parquet",
    )


def test_jets_too_few_samples(tmp_path: Path) -> None:
    x, y = _jet_table(n=1)
    np.savez(tmp_path / "jets.npz", x=x, y=y)
    _raise_one_line(
        ValueError, r"has 1 samples, too few to split", load_jets, tmp_path / "jets.npz"
    )


def test_jets_rare_class_still_splits(tmp_path: Path) -> None:
    x, y = _jet_table(n=20)
    y[:] = 0
    y[0] = 4  # a single top jet: no stratified split possible
    np.savez(tmp_path / "jets.npz", x=x, y=y)
    ds = load_jets(tmp_path / "jets.npz")
    assert len(ds.y_train) == 16 and len(ds.y_test) == 4


# ------------------------------------------------------------------------------------- npz


def _user_arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    return {
        "x_train": np.asfortranarray(rng.normal(size=(30, 4))),
        "y_train": rng.integers(0, 3, size=30).astype(np.int32),
        "x_test": rng.normal(size=(10, 4)),
        "y_test": np.array([0, 1, 2, 3, 0, 1, 2, 3, 0, 1]),
    }


def test_npz_loads_data_as_given(tmp_path: Path) -> None:
    arrays = _user_arrays()
    np.savez(tmp_path / "mine.npz", **arrays)
    ds = load_npz(tmp_path / "mine.npz")
    _assert_layout(ds)
    assert ds.name == "npz" and ds.n_classes == 4
    assert ds.class_names == ("0", "1", "2", "3")
    assert ds.feature_names == ("x0", "x1", "x2", "x3")
    for key, value in arrays.items():  # no standardization
        np.testing.assert_array_equal(getattr(ds, key), value.astype(getattr(ds, key).dtype))
    via_registry = load_dataset("npz", path=str(tmp_path / "mine.npz"), seed=99)
    np.testing.assert_array_equal(via_registry.x_train, ds.x_train)


def test_npz_optional_names(tmp_path: Path) -> None:
    arrays = _user_arrays()
    names = {
        "feature_names": np.array(["a", "b", "c", "d"]),
        "class_names": np.array(list("pqrst")),
    }
    np.savez(tmp_path / "mine.npz", **arrays, **names)
    ds = load_npz(tmp_path / "mine.npz")
    assert ds.feature_names == ("a", "b", "c", "d")
    assert ds.n_classes == 5 and ds.class_names == tuple("pqrst")


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"y_test": None}, r"has no array 'y_test' \(it needs x_train, y_train, x_test, y_test\)$"),
        (
            {"x_train": np.zeros(30)},
            r"x_train in '.*' must have shape \(samples, features\) or \(samples, \*input_shape\), "
            r"not \(30,\)$",
        ),
        (
            {"y_train": np.zeros(30)},
            r"^y_train in '.*' is float64 holding only whole numbers: store class labels as "
            r"integers, or add task='regression' to the file$",
        ),
        (
            {"y_train": np.zeros((30, 2), dtype=int)},
            r"y_train in '.*' must be 1-D integer class labels, not int64 of shape \(30, 2\)$",
        ),
        ({"y_train": np.full(30, -1)}, r"y_train in '.*' holds the negative label -1$"),
        ({"y_test": np.zeros(9, dtype=int)}, r"y_test in '.*' has 9 labels but x_test 10 samples$"),
        ({"x_test": np.zeros((10, 3))}, r"has 4 features but x_test 3$"),
        ({"x_test": np.full((10, 4), np.nan)}, r"x_test in '.*' holds NaN or inf \(nan in row 0"),
        (
            {"class_names": np.array(["a", "b"])},
            r"class_names in '.*' has 2 names but the labels go up to 3$",
        ),
        ({"feature_names": np.array(["a"])}, r"feature_names in '.*' has 1 names for 4 features$"),
    ],
)
def test_npz_errors(tmp_path: Path, change: dict, match: str) -> None:
    arrays = _user_arrays() | change
    np.savez(tmp_path / "mine.npz", **{k: v for k, v in arrays.items() if v is not None})
    _raise_one_line(ValueError, match, load_npz, tmp_path / "mine.npz")


def test_npz_bad_path(tmp_path: Path) -> None:
    _raise_one_line(ValueError, r"^`path` must be a \.npz file, not 'x\.csv'$", load_npz, "x.csv")
    _raise_one_line(FileNotFoundError, r"^no such file: ", load_npz, tmp_path / "x.npz")
    np.save(tmp_path / "single.npy", np.zeros(3))
    (tmp_path / "single.npy").rename(tmp_path / "single.npz")
    _raise_one_line(
        ValueError, r"holds a single array, not the named arrays", load_npz, tmp_path / "single.npz"
    )
    np.savez(
        tmp_path / "objects.npz", **_user_arrays(), class_names=np.array(["a", 1], dtype=object)
    )
    _raise_one_line(
        ValueError,
        r"^could not read '.*objects\.npz' as \.npz: ",
        load_npz,
        tmp_path / "objects.npz",
    )


# -------------------------------------------------------------------------------- registry


def test_unknown_dataset_name() -> None:
    _raise_one_line(
        ValueError,
        r"^unknown dataset 'foo': choose one of digits, jets, fashion_mnist, muon_toy, npz$",
        load_dataset,
        "foo",
    )


def test_registry_path_rules() -> None:
    _raise_one_line(
        ValueError,
        r"^dataset 'npz' needs a data file: pass one with --data-path$",
        load_dataset,
        "npz",
    )
    _raise_one_line(
        ValueError,
        r"^dataset 'digits' takes no data file, but got 'x\.csv'$",
        load_dataset,
        "digits",
        path="x.csv",
    )
    a, b = load_dataset("digits", seed=1), load_digits(seed=1)
    np.testing.assert_array_equal(a.x_train, b.x_train)


def test_dataset_checks_its_parts() -> None:
    x, y = np.zeros((4, 2)), np.zeros(4, dtype=int)
    kwargs = dict(name="t", n_classes=1, feature_names=("a", "b"), class_names=("c",))
    ds = Dataset(x_train=x, y_train=y, x_test=x, y_test=y, **kwargs)
    assert repr(ds) == "Dataset(name='t', train=(4, 2), test=(4, 2), n_classes=1)"
    with pytest.raises(ValueError, match=r"^x_test has 4 samples but y_test 3$"):
        Dataset(x_train=x, y_train=y, x_test=x, y_test=y[:3], **kwargs)
    with pytest.raises(ValueError, match=r"^y_train holds label 1, outside \[0, 1\)"):
        Dataset(x_train=x, y_train=y + 1, x_test=x, y_test=y, **kwargs)
    with pytest.raises(ValueError, match=r"^y_train must be a 1-D integer array"):
        Dataset(x_train=x, y_train=y + 0.0, x_test=x, y_test=y, **kwargs)


def test_registry_passes_options() -> None:
    assert len(load_dataset("digits", test_fraction=0.5).y_test) == 899
    _raise_one_line(
        ValueError,
        r"^dataset 'digits' has no option 'train_samples' \(its options: test_fraction\)$",
        load_dataset,
        "digits",
        train_samples=5,
    )
    _raise_one_line(
        ValueError,
        r"^dataset 'npz' has no option 'scale' \(its options: none\)$",
        load_dataset,
        "npz",
        path="x.npz",
        scale=2,
    )


# ------------------------------------------------------------------- Dataset: shapes, tasks


def _images(n: int, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, *shape))


def test_dataset_image_samples() -> None:
    y = np.arange(5) % 3
    ds = Dataset("img", _images(5, (2, 3, 4)), y, _images(3, (2, 3, 4), 1), y[:3])
    assert ds.input_shape == (2, 3, 4) and ds.n_features == 24
    assert ds.x_train.shape == (5, 2, 3, 4) and ds.x_train.dtype == np.float32
    assert ds.x_train.flags.c_contiguous
    assert ds.feature_names[:5] == ("c0_y0_x0", "c0_y0_x1", "c0_y0_x2", "c0_y0_x3", "c0_y1_x0")
    assert ds.feature_names[-1] == "c1_y2_x3" and len(set(ds.feature_names)) == 24
    # n_classes and class names from the labels when not given
    assert ds.task is Task.CLASSIFICATION and ds.n_classes == 3 == ds.n_outputs
    assert ds.class_names == ("0", "1", "2")
    assert repr(ds) == "Dataset(name='img', train=(5, 2, 3, 4), test=(3, 2, 3, 4), n_classes=3)"


def test_default_feature_names() -> None:
    assert default_feature_names((3,)) == ("x0", "x1", "x2")
    assert default_feature_names((2, 2)) == ("c0_t0", "c0_t1", "c1_t0", "c1_t1")
    assert default_feature_names((1, 1, 2)) == ("c0_y0_x0", "c0_y0_x1")
    assert default_feature_names((1, 2, 1, 2))[-1] == "x0_1_0_1"
    ds = Dataset("seq", _images(4, (3, 5)), np.zeros(4, int), _images(2, (3, 5)), np.zeros(2, int))
    assert ds.input_shape == (3, 5) and ds.feature_names[-1] == "c2_t4"


def test_dataset_sample_shape_errors() -> None:
    y = np.zeros(4, dtype=int)
    with pytest.raises(
        ValueError, match=r"^x_train has samples of shape \(2, 3\) but x_test \(3, 2\)$"
    ):
        Dataset("t", _images(4, (2, 3)), y, _images(4, (3, 2)), y)
    with pytest.raises(ValueError, match=r"^x_train has 6 features but x_test 5$"):
        Dataset("t", _images(4, (6,)), y, _images(4, (5,)), y)
    with pytest.raises(
        ValueError,
        match=r"^x_train must be a numeric array of shape \(samples, \*input_shape\), not "
        r"float64 of shape \(4,\)$",
    ):
        Dataset("t", np.zeros(4), y, np.zeros(4), y)
    with pytest.raises(ValueError, match=r"^x_test must be a numeric array .* not <U1 of shape"):
        Dataset("t", np.zeros((4, 1)), y, np.full((4, 1), "a"), y)
    x = _images(4, (2, 3))
    x[2, 1, 0] = np.inf
    with pytest.raises(
        ValueError, match=r"^x_train must hold finite numbers, not inf at \(2, 1, 0\)$"
    ):
        Dataset("t", x, y, _images(4, (2, 3)), y)
    with pytest.raises(ValueError, match=r"^5 feature names for 6 features$"):
        Dataset("t", _images(4, (6,)), y, _images(4, (6,)), y, feature_names=tuple("abcde"))
    with pytest.raises(ValueError, match=r"^n_classes must be a positive integer .*, not 0$"):
        Dataset("t", _images(4, (6,)), y, _images(4, (6,)), y, n_classes=0)


def test_dataset_regression_targets() -> None:
    x = _images(6, (4,))
    ds = Dataset("r", x, np.linspace(-1, 1, 6), x[:2], np.array([1, 2]), task="regression")
    assert ds.task is Task.REGRESSION and ds.task == "regression"
    assert ds.y_train.shape == (6, 1) and ds.y_test.shape == (2, 1)
    assert ds.y_train.dtype == np.float32 and ds.y_train.flags.c_contiguous
    np.testing.assert_array_equal(ds.y_train[:, 0], np.linspace(-1, 1, 6).astype(np.float32))
    np.testing.assert_array_equal(ds.y_test, [[1.0], [2.0]])
    assert ds.n_classes == 0 and ds.class_names == () and ds.n_outputs == 1
    assert ds.feature_names == ("x0", "x1", "x2", "x3")
    assert (
        repr(ds) == "Dataset(name='r', train=(6, 4), test=(2, 4), task='regression', n_outputs=1)"
    )
    two = Dataset("r", x, np.ones((6, 2)), x[:2], np.ones((2, 2)), task=Task.REGRESSION)
    assert two.n_outputs == 2 and two.y_train.shape == (6, 2)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"task": "ranking"}, r"^task must be 'classification' or 'regression', not 'ranking'$"),
        ({"n_classes": 2}, r"^n_classes must be 0 for regression, not 2$"),
        ({"class_names": ("a",)}, r"^class_names must be empty for regression, not \('a',\)$"),
        (
            {"y_train": np.ones((6, 1, 1))},
            r"^y_train must be numeric regression targets of shape \(samples,\) or "
            r"\(samples, outputs\), not float64 of shape \(6, 1, 1\)$",
        ),
        ({"y_test": np.ones((2, 2))}, r"^y_train has 1 target columns but y_test 2$"),
        (
            {"y_test": np.array([1.0, np.nan])},
            r"^y_test must hold finite numbers, not nan at \(1, 0\)$",
        ),
        ({"y_test": np.ones(3)}, r"^x_test has 2 samples but y_test 3$"),
    ],
)
def test_dataset_regression_errors(change: dict, match: str) -> None:
    x = _images(6, (4,))
    kwargs = dict(name="r", x_train=x, y_train=np.ones(6), x_test=x[:2], y_test=np.ones(2))
    kwargs["task"] = "regression"
    with pytest.raises(ValueError, match=match) as info:
        Dataset(**(kwargs | change))
    assert "\n" not in str(info.value)


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
    _raise_one_line(ValueError, "^'.*bad' " + match, read_idx, tmp_path / "bad")


def test_read_idx_truncated_and_trailing(tmp_path: Path) -> None:
    full = _idx_bytes(np.zeros((3, 4), dtype=np.int16), 0x0B)
    (tmp_path / "short").write_bytes(full[:-1])
    _raise_one_line(
        ValueError,
        r"^'.*short' is truncated: its header declares 3×4 int16 values \(24 bytes\), but only "
        r"23 bytes follow$",
        read_idx,
        tmp_path / "short",
    )
    (tmp_path / "long").write_bytes(full + b"\0\0")
    _raise_one_line(
        ValueError,
        r"^'.*long' is malformed: 2 bytes follow its 3×4 int16 values$",
        read_idx,
        tmp_path / "long",
    )
    packed = gzip.compress(full)
    (tmp_path / "cut.gz").write_bytes(packed[: len(packed) // 2])
    _raise_one_line(
        ValueError, r"^could not decompress '.*cut\.gz' \(gzip\): ", read_idx, tmp_path / "cut.gz"
    )
    _raise_one_line(FileNotFoundError, r"^no such file: '.*nope'$", read_idx, tmp_path / "nope")
    _raise_one_line(FileNotFoundError, r"' is not a file$", read_idx, tmp_path)


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
    _raise_one_line(
        ValueError, r"^`seed` must be an integer", load_fashion_mnist, tmp_path / "fm", seed=-1
    )
    np.testing.assert_array_equal(full.x_train[:, 0] * 256, raw["x_train"])
    for bad in (0, 31, 2.5, True):
        _raise_one_line(
            ValueError,
            rf"^`train_samples` must be an integer in \[1, 30\], not {bad!r}$",
            load_fashion_mnist,
            tmp_path / "fm",
            train_samples=bad,
        )


def test_fashion_mnist_missing_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hgq_rtl.data, "FASHION_MNIST_DIR", tmp_path / "absent")
    message = _raise_one_line(
        FileNotFoundError, r"^Fashion-MNIST not found: ", load_dataset, "fashion_mnist"
    )
    assert message == (
        "Fashion-MNIST not found: no train-images-idx3-ubyte.gz or train-images-idx3-ubyte in "
        f"'{tmp_path / 'absent'}' (apt-get install dataset-fashion-mnist, or pass the folder of "
        "the IDX files with --data-path)"
    )
    _fake_fashion(tmp_path / "fm")
    (tmp_path / "fm" / "t10k-images-idx3-ubyte").unlink()
    _raise_one_line(
        FileNotFoundError,
        r"no t10k-images-idx3-ubyte\.gz or t10k-images-idx3-ubyte in '.*fm' \(apt-get install",
        load_fashion_mnist,
        tmp_path / "fm",
    )
    (tmp_path / "other.npz").write_bytes(b"")
    _raise_one_line(
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
    _raise_one_line(ValueError, match, load_fashion_mnist, tmp_path / "fm")


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


# -------------------------------------------------------------------------- npz regression


def test_npz_regression_by_values(tmp_path: Path) -> None:
    arrays = _user_arrays() | {"y_train": np.linspace(-2, 2, 30), "y_test": np.arange(10) * 1.0}
    np.savez(tmp_path / "reg.npz", **arrays)
    ds = load_npz(tmp_path / "reg.npz")
    assert ds.task is Task.REGRESSION and ds.n_classes == 0 and ds.class_names == ()
    assert ds.y_train.shape == (30, 1) and ds.y_train.dtype == np.float32 and ds.n_outputs == 1
    np.testing.assert_array_equal(ds.y_test[:, 0], np.arange(10))


def test_npz_regression_by_task_key(tmp_path: Path) -> None:
    arrays = _user_arrays()  # integer targets: classification without the key
    np.savez(tmp_path / "reg.npz", **arrays, task="regression")
    ds = load_npz(tmp_path / "reg.npz")
    assert ds.task is Task.REGRESSION and ds.n_outputs == 1
    np.testing.assert_array_equal(ds.y_train[:, 0], arrays["y_train"])
    two = arrays | {"y_train": np.ones((30, 2)), "y_test": np.zeros((10, 2))}
    np.savez(tmp_path / "two.npz", **two, task=np.array(b" Regression"))
    assert load_npz(tmp_path / "two.npz").n_outputs == 2
    np.savez(tmp_path / "cls.npz", **arrays, task="classification")
    assert load_npz(tmp_path / "cls.npz").task is Task.CLASSIFICATION


def test_npz_images(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    arrays = {
        "x_train": rng.random((8, 1, 4, 4)),
        "y_train": rng.random(8),
        "x_test": rng.random((3, 1, 4, 4)),
        "y_test": rng.random(3),
    }
    np.savez(tmp_path / "img.npz", **arrays)
    ds = load_npz(tmp_path / "img.npz")
    assert ds.input_shape == (1, 4, 4) and ds.task is Task.REGRESSION
    assert ds.feature_names[-1] == "c0_y3_x3"
    np.testing.assert_array_equal(ds.x_test, arrays["x_test"].astype(np.float32))
    np.savez(tmp_path / "bad.npz", **arrays | {"x_test": rng.random((3, 1, 2, 8))})
    _raise_one_line(
        ValueError,
        r"x_train in '.*' has samples of shape \(1, 4, 4\) but x_test \(1, 2, 8\)$",
        load_npz,
        tmp_path / "bad.npz",
    )
    arrays["x_test"][2, 0, 1, 3] = np.nan
    np.savez(tmp_path / "nan.npz", **arrays)
    _raise_one_line(
        ValueError,
        r"x_test in '.*' holds NaN or inf \(nan in row 2, position \(0, 1, 3\)\)$",
        load_npz,
        tmp_path / "nan.npz",
    )


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (
            {"task": "ranking"},
            r"task in '.*' must be the string 'classification' or 'regression', not 'ranking'$",
        ),
        (
            {"task": np.array([1, 2])},
            r"task in '.*' must be the string .*, not int64 of shape \(2,\)$",
        ),
        ({"class_names": np.array(["a"])}, r"class_names in '.*' is for classification, but the"),
        ({"y_test": np.full(10, np.inf)}, r"y_test in '.*' holds NaN or inf \(inf in row 0\)$"),
        (
            {"y_test": np.ones((10, 2))},
            r"y_train and y_test in '.*' have different numbers of target columns$",
        ),
        (
            {"y_test": np.ones((10, 1, 1))},
            r"y_test in '.*' must be numeric regression targets of shape \(samples,\) or",
        ),
        (
            {"task": "classification"},
            r"y_train in '.*' must be 1-D integer class labels, not float64 of shape \(30,\)$",
        ),
    ],
)
def test_npz_regression_errors(tmp_path: Path, change: dict, match: str) -> None:
    arrays = _user_arrays() | {"y_train": np.linspace(0, 1, 30), "y_test": np.ones(10)} | change
    np.savez(tmp_path / "reg.npz", **arrays)
    _raise_one_line(ValueError, match, load_npz, tmp_path / "reg.npz")


# -------------------------------------------------------------------------------- muon toy


def test_muon_toy() -> None:
    ds = load_muon_toy()
    assert ds.name == "muon_toy" and ds.task is Task.REGRESSION and ds.n_outputs == 1
    assert ds.x_train.shape == (6000, 16) and ds.x_test.shape == (2000, 16)
    assert ds.y_train.shape == (6000, 1) and ds.feature_names == MUON_TOY_FEATURES
    x = np.concatenate([ds.x_train, ds.x_test]).astype(np.float64)
    angle = np.concatenate([ds.y_train, ds.y_test])[:, 0].astype(np.float64)
    position, hit = x[:, :8], x[:, 8:]
    assert set(np.unique(hit)) == {0.0, 1.0} and 0.05 < 1 - hit.mean() < 0.15
    assert np.all(position[hit == 0] == 0.0)
    np.testing.assert_array_equal(position * 64, np.round(position * 64))  # 6 fractional bits
    assert np.all(np.abs(angle) < 0.5) and angle.std() > 0.25
    # the target is the angle of the hits: a line through a track's hits recovers it
    z = np.linspace(0, 1, 8)
    full = hit.all(axis=1)
    slope = np.polyfit(z, position[full].T, 1)[0]
    assert np.sqrt(np.mean((np.arctan(slope) - angle[full]) ** 2)) < 0.02
    # a linear model of the features cannot: the lost hits make it non-linear
    design = np.c_[x, np.ones(len(x))]
    linear = design @ np.linalg.lstsq(design, angle, rcond=None)[0]
    assert np.sqrt(np.mean((linear - angle) ** 2)) > 0.05


def test_muon_toy_is_deterministic_per_seed() -> None:
    a, b = load_muon_toy(seed=4, n_samples=100), load_dataset("muon_toy", seed=4, n_samples=100)
    c = load_muon_toy(seed=5, n_samples=100, test_fraction=0.5)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    assert a.x_test.shape == (25, 16) and c.x_test.shape == (50, 16)
    assert not np.array_equal(a.y_train[:50], c.y_train)
    assert load_muon_toy(n_samples=2).x_test.shape == (1, 16)
    for bad in (1, 2.0, True):
        _raise_one_line(
            ValueError,
            rf"^`n_samples` must be an integer >= 2, not {bad!r}$",
            load_muon_toy,
            n_samples=bad,
        )
    _raise_one_line(
        ValueError, r"^dataset 'muon_toy' takes no data file", load_dataset, "muon_toy", path="x"
    )
