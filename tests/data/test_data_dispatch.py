"""Tests of hgq_rtl.data.registry: load_dataset's names, path rules and options."""

from __future__ import annotations

import numpy as np
from data_helpers import raise_one_line

from hgq_rtl.data import (
    load_dataset,
    load_digits,
)


def test_unknown_dataset_name() -> None:
    raise_one_line(
        ValueError,
        r"^unknown dataset 'foo': choose one of digits, jets, fashion_mnist, muon_toy, npz$",
        load_dataset,
        "foo",
    )


def test_registry_path_rules() -> None:
    raise_one_line(
        ValueError,
        r"^dataset 'npz' needs a data file: pass one with --data-path$",
        load_dataset,
        "npz",
    )
    raise_one_line(
        ValueError,
        r"^dataset 'digits' takes no data file, but got 'x\.csv'$",
        load_dataset,
        "digits",
        path="x.csv",
    )
    a, b = load_dataset("digits", seed=1), load_digits(seed=1)
    np.testing.assert_array_equal(a.x_train, b.x_train)


def test_registry_passes_options() -> None:
    assert len(load_dataset("digits", test_fraction=0.5).y_test) == 899
    raise_one_line(
        ValueError,
        r"^dataset 'digits' has no option 'train_samples' \(its options: test_fraction\)$",
        load_dataset,
        "digits",
        train_samples=5,
    )
    raise_one_line(
        ValueError,
        r"^dataset 'npz' has no option 'scale' \(its options: none\)$",
        load_dataset,
        "npz",
        path="x.npz",
        scale=2,
    )
