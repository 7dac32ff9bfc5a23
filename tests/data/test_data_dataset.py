"""Tests of hgq_rtl.data.dataset: Dataset's checks, sample shapes and tasks."""

from __future__ import annotations

import numpy as np
import pytest

from hgq_rtl.data import (
    Dataset,
    Task,
    default_feature_names,
)


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
