"""Tests of hgq_rtl.data.jets: .csv, .npz and .parquet files and OpenML (no network)."""

from __future__ import annotations

import csv
import importlib.util
import re
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import sklearn.datasets
from data_helpers import assert_layout, raise_one_line
from sklearn.utils import Bunch

from hgq_rtl.data import (
    DATASETS,
    JET_CLASSES,
    JET_FEATURES,
    Dataset,
    load_dataset,
    load_jets,
)

N_JETS = 200


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
    assert_layout(ds)
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
    raise_one_line(
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
    raise_one_line(
        ValueError,
        re.escape(f"jets data needs 16 features, '{tmp_path / 'jets.npz'}' has 15"),
        load_jets,
        tmp_path / "jets.npz",
    )
    path = _write_csv(tmp_path / "jets.csv", x[:, :15], y)
    raise_one_line(
        ValueError,
        re.escape(f"jets data needs 16 features, '{path}' has 15 columns besides 'class'"),
        load_jets,
        path,
    )


def test_jets_nan_and_inf(tmp_path: Path) -> None:
    x, y = _jet_table()
    x[7, 3] = np.nan
    path = _write_csv(tmp_path / "jets.csv", x, y)
    raise_one_line(
        ValueError, r"hold NaN or inf \(nan in row 7, feature 'c1_b2_mmdt'\)$", load_jets, path
    )
    x[7, 3] = 1.0
    x[9, 0] = -np.inf
    np.savez(tmp_path / "jets.npz", x=x, y=y)
    raise_one_line(
        ValueError,
        r"hold NaN or inf \(-inf in row 9, feature 'zlogz'\)$",
        load_jets,
        tmp_path / "jets.npz",
    )


def test_jets_bad_path(tmp_path: Path) -> None:
    raise_one_line(
        ValueError,
        r"^`path` must be a \.csv, \.npz or \.parquet file, not 'x\.txt'$",
        load_jets,
        "x.txt",
    )
    raise_one_line(
        FileNotFoundError, r"^no such file: '.*missing\.csv'$", load_jets, tmp_path / "missing.csv"
    )
    (tmp_path / "dir.npz").mkdir()
    raise_one_line(FileNotFoundError, r"dir\.npz' is not a file$", load_jets, tmp_path / "dir.npz")


def test_jets_csv_errors(tmp_path: Path) -> None:
    x, y = _jet_table(n=10)
    path = tmp_path / "jets.csv"

    path.write_text("")
    raise_one_line(ValueError, r"is empty: it needs a header row", load_jets, path)

    header = ",".join(JET_FEATURES)
    path.write_text(header + "\n" + ",".join(["1"] * 16) + "\n")
    raise_one_line(
        ValueError, r"has no 'class' column with the jet labels \(columns: zlogz,", load_jets, path
    )

    _write_csv(path, x, ["g"] * 9 + ["b"])
    raise_one_line(
        ValueError,
        r"unknown jet labels in '.*': 'b' \(expected g, q, w, z, t or 0-4\)$",
        load_jets,
        path,
    )

    _write_csv(path, x, ["7"] * 10)
    raise_one_line(ValueError, r"unknown jet labels in '.*': '7'", load_jets, path)

    _write_csv(path, x, y)
    lines = path.read_text().splitlines()
    cells = lines[3].split(",")
    cells[2] = "abc"
    lines[3] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    raise_one_line(
        ValueError, r"line 4, column 'c1_b1_mmdt': 'abc' is not a number$", load_jets, path
    )

    lines[3] = "1,2,3"
    path.write_text("\n".join(lines) + "\n")
    raise_one_line(ValueError, r"line 4 has 3 fields, the header 17$", load_jets, path)

    path.write_text(",".join([*JET_FEATURES[:15], "zlogz", "class"]) + "\n")
    raise_one_line(ValueError, r"has duplicate columns: zlogz$", load_jets, path)


def test_jets_npz_errors(tmp_path: Path) -> None:
    x, y = _jet_table()
    np.savez(tmp_path / "jets.npz", x=x)
    raise_one_line(
        ValueError, r"has no array 'y' \(it needs x, y\)$", load_jets, tmp_path / "jets.npz"
    )
    np.savez(tmp_path / "jets.npz", x=x, y=y[:-1])
    raise_one_line(
        ValueError, r"has 200 feature rows but 199 labels$", load_jets, tmp_path / "jets.npz"
    )
    np.savez(tmp_path / "jets.npz", x=x, y=y + 0.5)
    raise_one_line(ValueError, r"unknown jet labels in .*: 0\.5", load_jets, tmp_path / "jets.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip file")
    raise_one_line(
        ValueError, r"^could not read '.*junk\.npz' as \.npz: ", load_jets, tmp_path / "junk.npz"
    )


def test_jets_parquet_needs_pandas(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    find_spec = importlib.util.find_spec

    def without_pandas(name, *args, **kwargs):
        return None if name in {"pandas", "pyarrow"} else find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", without_pandas)
    (tmp_path / "jets.parquet").write_bytes(b"PAR1")
    raise_one_line(
        ImportError,
        r"^reading '.*jets\.parquet' needs pandas and pyarrow, which are not installed: "
        r"pip install pandas pyarrow, or convert the file to \.csv or \.npz$",
        load_jets,
        tmp_path / "jets.parquet",
    )


def test_jets_too_few_samples(tmp_path: Path) -> None:
    x, y = _jet_table(n=1)
    np.savez(tmp_path / "jets.npz", x=x, y=y)
    raise_one_line(ValueError, r"has 1 samples, too few to split", load_jets, tmp_path / "jets.npz")


def test_jets_rare_class_still_splits(tmp_path: Path) -> None:
    x, y = _jet_table(n=20)
    y[:] = 0
    y[0] = 4  # a single top jet: no stratified split possible
    np.savez(tmp_path / "jets.npz", x=x, y=y)
    ds = load_jets(tmp_path / "jets.npz")
    assert len(ds.y_train) == 16 and len(ds.y_test) == 4
