"""Tests of hgq_rtl.data.npz: a user's own .npz, classification and regression."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from data_helpers import assert_layout, raise_one_line

from hgq_rtl.data import (
    Task,
    load_dataset,
    load_npz,
)


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
    assert_layout(ds)
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
    raise_one_line(ValueError, match, load_npz, tmp_path / "mine.npz")


def test_npz_bad_path(tmp_path: Path) -> None:
    raise_one_line(ValueError, r"^`path` must be a \.npz file, not 'x\.csv'$", load_npz, "x.csv")
    raise_one_line(FileNotFoundError, r"^no such file: ", load_npz, tmp_path / "x.npz")
    np.save(tmp_path / "single.npy", np.zeros(3))
    (tmp_path / "single.npy").rename(tmp_path / "single.npz")
    raise_one_line(
        ValueError, r"holds a single array, not the named arrays", load_npz, tmp_path / "single.npz"
    )
    np.savez(
        tmp_path / "objects.npz", **_user_arrays(), class_names=np.array(["a", 1], dtype=object)
    )
    raise_one_line(
        ValueError,
        r"^could not read '.*objects\.npz' as \.npz: ",
        load_npz,
        tmp_path / "objects.npz",
    )


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
    raise_one_line(
        ValueError,
        r"x_train in '.*' has samples of shape \(1, 4, 4\) but x_test \(1, 2, 8\)$",
        load_npz,
        tmp_path / "bad.npz",
    )
    arrays["x_test"][2, 0, 1, 3] = np.nan
    np.savez(tmp_path / "nan.npz", **arrays)
    raise_one_line(
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
    raise_one_line(ValueError, match, load_npz, tmp_path / "reg.npz")
