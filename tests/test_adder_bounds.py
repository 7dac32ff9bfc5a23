"""The shared-adder planner on layers too wide to count their patterns (rtl_gen.adder_graph):
it plans plain adder trees instead, says so on stderr, and stays within a few hundred MB."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from hgq_rtl.ir.random import random_model
from rtl_gen import adder_graph
from rtl_gen.adder_graph import MAX_PATTERN_PAIRS, SharedAdderGraph, pattern_pairs
from rtl_gen.components import DensePlan


def test_pattern_pairs_counts_pairs_within_each_output() -> None:
    assert pattern_pairs([[0] * 4, [0] * 3, []]) == 6 + 3


def test_above_the_bound_nothing_is_shared_and_the_plan_is_the_plain_one(monkeypatch) -> None:
    ir = random_model(np.random.default_rng(3), (12, 4))
    layer, fmt = ir.layers[0], ir.input
    shared = DensePlan(layer, fmt, share=True)
    plain = DensePlan(layer, fmt, share=False)
    assert shared.shared, "this layer shares patterns below the bound"
    monkeypatch.setattr(adder_graph, "MAX_PATTERN_PAIRS", 3)
    degraded = DensePlan(layer, fmt, share=True)
    assert degraded.shared == []
    assert degraded.adder_count() == plain.adder_count()
    assert degraded.depth == plain.depth


def test_the_note_names_the_bound(monkeypatch, caplog) -> None:
    monkeypatch.setattr(adder_graph, "MAX_PATTERN_PAIRS", 0)
    from rtl_gen.adder_patterns import Term
    from rtl_gen.adder_tree import RangeModel

    ranges = RangeModel([0, 0], [3, 3])
    inputs = {j: ranges.leaf(j, 0, 1) for j in range(2)}
    terms = [[Term(0, 0, False), Term(1, 0, False)]] * 2
    graph = SharedAdderGraph(ranges, terms, inputs)
    assert graph.shared == [] and graph.outputs == terms
    assert "plain adder trees" in graph.skipped
    assert "hgq-rtl: note:" in caplog.text


@pytest.mark.slow
def test_a_20000_input_layer_is_planned_within_bounded_memory() -> None:
    """In a child process limited to 2 GiB of address space (the planner's counting would need
    tens of GB on this layer)."""
    script = textwrap.dedent(
        """
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
        import numpy as np
        from hgq_rtl.ir.random import random_model
        from rtl_gen.components import DensePlan
        ir = random_model(np.random.default_rng(0), (20000, 2))
        plan = DensePlan(ir.layers[0], ir.input, share=True)
        print("adders", plan.adder_count(), "shared", len(plan.shared))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "shared 0" in done.stdout
    assert "hgq-rtl: note:" in done.stderr and f"{MAX_PATTERN_PAIRS:.3g}" in done.stderr
