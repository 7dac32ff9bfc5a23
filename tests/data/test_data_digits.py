"""Tests of hgq_rtl.data.digits: scikit-learn's digits and the split arguments."""

from __future__ import annotations

import numpy as np
import pytest
from data_helpers import assert_layout, raise_one_line

from hgq_rtl.data import (
    load_digits,
)


def test_digits_shapes_and_range() -> None:
    ds = load_digits()
    assert_layout(ds)
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
    raise_one_line(ValueError, match, load_digits, **kwargs)
