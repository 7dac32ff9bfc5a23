"""The front comparison of benchmarks/front_vs_hgq2.py: Pareto filtering, hypervolume and the
accuracy at matched EBOPs, on fronts small enough to work out by hand."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from front_vs_hgq2 import best_at, hypervolume, pareto  # noqa: E402


def test_pareto_keeps_points_no_other_beats() -> None:
    points = [(10, 0.5), (20, 0.4), (20, 0.7), (5, 0.3), (30, 0.7), (40, 0.9)]
    assert pareto(points) == [(5, 0.3), (10, 0.5), (20, 0.7), (40, 0.9)]


def test_hypervolume_is_the_dominated_area() -> None:
    front = [(0, 0.5), (50, 1.0)]
    # [0, 50) at 0.5 above a floor of 0, [50, 100) at 1.0: 25 + 50 of 100
    assert hypervolume(front, 100, 0.0) == pytest.approx(0.75)
    # a floor of 0.5: only [50, 100) counts, over a box of 100 x 0.5
    assert hypervolume(front, 100, 0.5) == pytest.approx(0.5)
    # a better front dominates more
    assert hypervolume([(0, 0.6), (50, 1.0)], 100, 0.0) > hypervolume(front, 100, 0.0)


def test_best_at_matched_ebops() -> None:
    front = [(10, 0.5), (20, 0.7)]
    assert best_at(front, 9) is None
    assert best_at(front, 10) == 0.5
    assert best_at(front, 25) == 0.7
