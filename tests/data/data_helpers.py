"""Checks shared by the tests of hgq_rtl.data (tests/data/test_data_*.py)."""

from __future__ import annotations

import numpy as np
import pytest

from hgq_rtl.data import Dataset


def raise_one_line(exc_type: type[Exception], match: str, call, *args, **kwargs) -> str:
    """Call ``call``, expect ``exc_type`` matching ``match``; return its single-line message."""
    with pytest.raises(exc_type, match=match) as info:
        call(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


def assert_layout(ds: Dataset) -> None:
    for x in (ds.x_train, ds.x_test):
        assert x.dtype == np.float32 and x.flags.c_contiguous and x.ndim == 2
    for y in (ds.y_train, ds.y_test):
        assert y.dtype == np.int64 and y.flags.c_contiguous and y.ndim == 1
    assert len(ds.x_train) == len(ds.y_train) and len(ds.x_test) == len(ds.y_test)
    assert ds.n_features == ds.x_train.shape[1] == ds.x_test.shape[1] == len(ds.feature_names)
    assert len(ds.class_names) == ds.n_classes
