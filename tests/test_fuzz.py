"""Fuzzed networks: random IR models → RTL → the fast Verilator harness == the reference.

Each example is a network drawn by :func:`strategies.model_specs` (1 to 4 layers, 1 to 32
elements wide, per-element formats with negative integer or fractional bits, signed and
unsigned, zero weights and zero-width elements, RND/TRN, WRAP/SAT, with and without ReLU) and
generator options drawn by :func:`strategies.rtl_options`. Its Verilog is simulated on random
vectors over every input's full range (each input's minimum and maximum first) and every output
integer compared with the reference. Hypothesis runs derandomized: CI draws the same networks
every time. ``benchmarks/fuzz.py`` runs many more.

Graphs of every layer kind (:func:`strategies.graph_specs`: dense, quantize, maxpool, add,
concat and lookup layers reading any earlier tensors, so branches of different latencies meet)
are fuzzed through check 2: Amaranth's simulation of the generated network == the reference.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import numpy as np
import pytest
from broken import break_design
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import (
    GRAPH_KINDS,
    GraphSpec,
    graph_from_spec,
    graph_specs,
    model_specs,
    rtl_options,
)

from hgq_rtl.ir import reference
from hgq_rtl.ir.fixed import Activation, Overflow, RoundMode
from hgq_rtl.ir.random import LayerSpec, ModelSpec, model_from_spec, random_spec
from hgq_rtl.verification import verify_design
from rtl_gen.emit import RtlOptions, build, emit
from rtl_gen.simulate import simulate

VECTORS_PER_MODEL = 3000
MODELS = 50
GRAPHS = 100
VECTORS_PER_GRAPH = 100


def check_network(spec: ModelSpec, options: RtlOptions, work: Path, *, broken: bool = False):
    """Generate the design of *spec* into *work*, optionally break it, and simulate it."""
    design = work / "rtl"
    emit(model_from_spec(spec), design, options)
    if broken:
        break_design(design, work / "broken")
        design = work / "broken"
    seed = spec.seed % 2**32
    return verify_design(
        design, VECTORS_PER_MODEL, engine="fast", optimize=False, seed=seed, quiet=True
    )


@pytest.mark.slow
@settings(
    max_examples=MODELS,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(spec=model_specs(), options=rtl_options())
def test_fuzzed_network_matches_the_reference(spec: ModelSpec, options: RtlOptions) -> None:
    with tempfile.TemporaryDirectory(prefix="hgq-rtl-fuzz-") as work:
        result = check_network(spec, options, Path(work))
    assert result.vectors == VECTORS_PER_MODEL
    assert result.passed, f"{result.summary()}\n{result.first_failure}"


@pytest.mark.slow
def test_the_fuzz_check_fails_on_a_wrong_design(tmp_path: Path) -> None:
    spec = ModelSpec(
        inputs=12,
        layers=(LayerSpec(8, max_width=10, zero_weights=0.0), LayerSpec(4, max_width=10)),
        zero_width=0.0,
        seed=7,
    )
    good = check_network(spec, RtlOptions(), tmp_path / "good")
    assert good.passed, good.summary()
    bad = check_network(spec, RtlOptions(), tmp_path / "bad", broken=True)
    assert not bad.passed and bad.mismatches > 0
    failure = bad.first_failure
    assert failure["kind"] == "mismatch" and failure["elements"]
    # the failure names a real vector: the reference gives its expected outputs, the design not
    ir = model_from_spec(spec)
    expected = reference.run(ir, np.array([failure["inputs"]]))[0].tolist()
    assert failure["expected"] == expected and failure["actual"] != expected


def test_the_generator_covers_every_feature() -> None:
    rng = np.random.default_rng(0)
    models = [model_from_spec(random_spec(rng)) for _ in range(100)]
    formats = [fmt for ir in models for fmt in (ir.input, *(layer.output for layer in ir.layers))]
    assert {len(ir.layers) for ir in models} == {1, 2, 3, 4}
    assert (
        max(max(layer.in_features, layer.out_features) for ir in models for layer in ir.layers)
        == 32
    )
    assert any((fmt.int_bits < 0).any() for fmt in formats), "negative integer bits"
    assert any((fmt.frac_bits < 0).any() for fmt in formats), "negative fractional bits"
    assert any((fmt.width == 0).any() for fmt in formats), "zero-width elements"
    assert any(fmt.signed.any() for fmt in formats) and any((~fmt.signed).any() for fmt in formats)
    layers = [layer for ir in models for layer in ir.layers]
    assert any((layer.weight == 0).any() for layer in layers), "zero weights"
    assert any((layer.weight_frac_bits < 0).any() for layer in layers)
    for attr, enum in (
        ("activation", Activation),
        ("round_mode", RoundMode),
        ("overflow", Overflow),
    ):
        assert {getattr(layer, attr) for layer in layers} == set(enum)


def test_a_spec_gives_one_model_and_is_validated() -> None:
    spec = random_spec(np.random.default_rng(1))
    first, second = model_from_spec(spec), model_from_spec(spec)
    for a, b in zip(first.layers, second.layers, strict=True):
        assert np.array_equal(a.weight, b.weight) and a.output == b.output
    with pytest.raises(ValueError, match=r"inputs must be an int in \[1, 32\], not 0"):
        ModelSpec(inputs=0, layers=(LayerSpec(3),))
    with pytest.raises(ValueError, match="layers must hold 1 to 4 LayerSpecs, not 5"):
        ModelSpec(inputs=3, layers=(LayerSpec(3),) * 5)
    with pytest.raises(ValueError, match=r"zero_weights must be a number in \[0, 1\], not 1.5"):
        LayerSpec(3, zero_weights=1.5)
    with pytest.raises(ValueError, match="overflow must be a Overflow, not 'SAT'"):
        LayerSpec(3, overflow="SAT")


@settings(
    max_examples=GRAPHS,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(spec=graph_specs(), options=rtl_options(), ternary=st.booleans())
def test_fuzzed_graph_matches_the_reference_in_simulation(
    spec: GraphSpec, options: RtlOptions, ternary: bool
) -> None:
    ir = graph_from_spec(spec)
    component = build(ir, dataclasses.replace(options, ternary_adders=ternary))
    rng = np.random.default_rng(spec.seed)
    x = reference.random_inputs(ir.input, VECTORS_PER_GRAPH, rng)
    lo, hi = ir.input.int_range()
    x[0], x[1] = lo, hi
    got, want = simulate(component, x), reference.run(ir, x)
    bad = np.flatnonzero(np.any(got != want, axis=1))
    assert bad.size == 0, f"vector {x[bad[0]].tolist()}: {got[bad[0]]} != {want[bad[0]]}"


def test_the_graph_strategy_covers_every_kind_and_branches() -> None:
    """Drawn graphs hold every kind, multi-input layers whose inputs arrive at different
    cycles, zero-width elements, and maxpool and lookup layers after dense ones."""
    kinds, features = set(), set()

    @settings(max_examples=4 * GRAPHS, derandomize=True, database=None, deadline=None)
    @given(spec=graph_specs())
    def collect(spec: GraphSpec) -> None:
        ir = graph_from_spec(spec)
        kinds.update(layer.kind for layer in ir.layers)
        component = build(ir)
        if any(len(set(d)) > 1 for d in component.input_delays.values()):
            features.add("unaligned branches")
        formats = [ir.input, *(layer.output for layer in ir.layers)]
        if any((f.width == 0).any() for f in formats):
            features.add("zero-width")
        for layer in ir.layers:
            source = ir.inputs_of(layer)[0]
            if layer.kind in ("lookup", "maxpool") and source != "input":
                features.add(f"{layer.kind} after {ir.layer(source).kind}")

    collect()
    assert kinds == set(GRAPH_KINDS)
    assert {"unaligned branches", "zero-width", "lookup after dense", "maxpool after dense"} <= (
        features
    )
