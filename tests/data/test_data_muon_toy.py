"""Tests of hgq_rtl.data.muon_toy: the synthetic muon-track regression set."""

from __future__ import annotations

import numpy as np
from data_helpers import raise_one_line

from hgq_rtl.data import (
    MUON_TOY_FEATURES,
    Task,
    load_dataset,
    load_muon_toy,
)


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
        raise_one_line(
            ValueError,
            rf"^`n_samples` must be an integer >= 2, not {bad!r}$",
            load_muon_toy,
            n_samples=bad,
        )
    raise_one_line(
        ValueError, r"^dataset 'muon_toy' takes no data file", load_dataset, "muon_toy", path="x"
    )
