"""Check 3 on a graph: one design holding every layer kind (and a ROM-sized table), simulated by
cocotb + Verilator against the reference with every hidden layer's output on a debug tap, and
a deliberately broken variant of each new kind (comparator, alignment, table constant,
saturation bound) that the bench must catch and trace to its layer; a design with two inputs."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pytest
from broken import break_layer
from ir_builders import fmt

from hgq_rtl.ir import reference
from hgq_rtl.ir.fixed import Activation, Overflow, RoundMode
from hgq_rtl.ir.formats import concat_formats, exact_add_format, exact_maxpool_format
from hgq_rtl.ir.layers import AddLayer, ConcatLayer, MaxPoolLayer, QuantizeLayer
from hgq_rtl.ir.model import IRModel
from hgq_rtl.ir.random import random_dense, random_lookup, random_two_inputs
from hgq_rtl.verification import verify_design
from hgq_rtl_sim.runner import verify
from rtl_gen.emit import RtlOptions, emit
from rtl_gen.network import NetworkComponent
from rtl_gen.simulate import simulate_taps

VECTORS = 3000


def every_kind_model() -> IRModel:
    """input ─► fc ─► requant (RND, ReLU, SAT to [0, 15]) ─────────┬──► add ─► pool ─► narrow ─► lut
    input ─► fc2 ─┬──────────────────────────────────────────────┤      (3 inputs)
                  └─► trunc (TRN, WRAP) ──────────────────────────┘
    lut, requant, input ─► cat ─► out

    Branches of different latencies meet in ``add`` and ``cat``; ``lut`` has a 1024-entry ROM
    (element 0), a logic table (element 1) and a constant (element 2, zero-width input); the
    input has a zero-width element.
    """
    rng = np.random.default_rng(21)
    x = fmt([1, 0, 1, 0, 1, 0], [3, 2, 2, 4, 1, 0], [2, 3, 1, 0, 4, 0])
    wide = fmt([1] * 4, [5] * 4, [2] * 4)  # signed 8-bit, 2 fractional bits
    fc = dataclasses.replace(random_dense(rng, "fc", x, 4, overflow=Overflow.WRAP), output=wide)
    requant = QuantizeLayer(
        "requant", fmt([0] * 4, [3] * 4, [1] * 4), Activation.RELU, RoundMode.RND, Overflow.SAT
    )
    fc2 = dataclasses.replace(random_dense(rng, "fc2", x, 4), inputs=("input",))
    trunc = QuantizeLayer(
        "trunc",
        fmt([1, 1, 0, 1], [2, 1, 3, 0], [1, 2, 0, 3]),
        Activation.LINEAR,
        RoundMode.TRN,
        Overflow.WRAP,
        inputs=("fc2",),
    )
    add = AddLayer(
        "add",
        exact_add_format([requant.output, fc2.output, trunc.output]),
        ("requant", "fc2", "trunc"),
    )
    windows = np.array([[0, 1, 2], [1, 2, 3], [3, 0, 0]])
    pool = MaxPoolLayer("pool", windows, exact_maxpool_format(add.output, windows))
    # RND, WRAP: unsigned 10 bits (the ROM's address), signed 3 bits, and zero bits
    narrow = QuantizeLayer("narrow", fmt([0, 1, 0], [8, 0, -3], [2, 2, 3]))
    lut = random_lookup(rng, "lut", narrow.output, fmt([1, 0, 1], [3, 5, 2], [2, 0, 0]))
    cat = ConcatLayer(
        "cat", concat_formats([lut.output, requant.output, x]), ("lut", "requant", "input")
    )
    out = random_dense(rng, "out", cat.output, 3)
    layers = (fc, requant, fc2, trunc, add, pool, narrow, lut, cat, out)
    return IRModel("every_kind", x, layers)


OPTIONS = RtlOptions(debug_taps=True, adder_levels_per_stage=1)


@pytest.fixture(scope="module")
def design(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("every_kind") / "rtl"
    emit(every_kind_model(), folder, OPTIONS)
    return folder


@pytest.fixture(scope="module")
def vectors() -> tuple[np.ndarray, list[np.ndarray]]:
    """Inputs over each element's full range (its extremes first) and every layer's output."""
    ir = every_kind_model()
    x = reference.random_inputs(ir.input, VECTORS, np.random.default_rng(5))
    lo, hi = ir.input.int_range()
    x[0], x[1] = lo, hi
    outputs = reference.run_all(ir, x)
    narrow = outputs[[layer.name for layer in ir.layers].index("narrow")]
    assert set(narrow[:, 1].tolist()) == set(range(-4, 4)), "every entry of the logic table"
    assert len(set(narrow[:, 0].tolist())) > 200, "many entries of the ROM"
    return x, outputs


def test_the_design_covers_every_kind(design: Path) -> None:
    manifest = json.loads((design / "manifest.json").read_text())
    layers = {entry["name"]: entry for entry in manifest["layers"]}
    kinds = {entry["kind"] for entry in manifest["layers"]}
    assert kinds == {"dense", "quantize", "add", "maxpool", "lookup", "concat"}
    assert layers["lut"]["rom_tables"] == 1 and layers["lut"]["logic_tables"] == 1
    assert layers["lut"]["constant_elements"] == 1
    assert layers["requant"]["saturators"] == 4
    assert layers["add"]["adder_depth"] == 2  # three inputs: a tree
    assert layers["cat"]["latency_cycles"] == 0
    # the model input reaches cat through a delay line as long as the path through the layers
    delay = (
        manifest["latency_cycles"] - layers["out"]["latency_cycles"] - int(OPTIONS.register_inputs)
    )
    assert layers["cat"]["input_delay_cycles"] == [0, 6, delay]
    assert [tap["layer"] for tap in manifest["taps"]] == [e["name"] for e in manifest["layers"]][
        :-1
    ]


def test_check2_with_every_tap() -> None:
    """The same design in Amaranth's simulator: the output and every tap equal the reference."""
    ir = every_kind_model()
    x = reference.random_inputs(ir.input, 300, np.random.default_rng(6))
    got = simulate_taps(NetworkComponent(ir, debug_taps=True, adder_levels_per_stage=1), x)
    expected = reference.run_named(ir, x)
    for name, values in got.items():
        assert np.array_equal(values, expected[name]), name


@pytest.mark.slow
def test_check3_every_kind_with_taps(design: Path, vectors: tuple, tmp_path: Path) -> None:
    x, outputs = vectors
    result = verify(design, x, outputs[-1], expected_taps=outputs[:-1], seed=3, quiet=True)
    assert result.passed, f"{result.summary()}\n{result.first_failure}"
    assert result.vectors == VECTORS and result.mismatches == 0


def _odd(match: re.Match) -> str:
    """A case branch's constant with its lowest bit set (it was even): a different value."""
    return f"{match.group(1)}{int(match.group(2), 16) + 1:x};"


@pytest.mark.slow
def test_check3_several_inputs(tmp_path: Path) -> None:
    """A model with two inputs: a port each under one valid, through ``hgq-rtl verify``'s path."""
    ir = random_two_inputs(np.random.default_rng(3))
    manifest = emit(ir, tmp_path / "rtl")
    assert [bus["port"] for bus in manifest["inputs"]] == ["data_in_x0", "data_in_x1"]
    result = verify_design(tmp_path / "rtl", 2000, seed=1, quiet=True)
    assert result.passed and result.vectors == 2000, result.summary()


#: (layer, pattern, replacement, count) in the Verilog of that layer's module (``re.subn``; count
#: 0: every match): each breaks one kind.
BREAKS = {
    # max -> min: every comparator selects the smaller operand
    "maxpool comparator": ("pool", r"(assign \S+\s+= [^;?]*?) > ", r"\1 < ", 0),
    # each aligned operand {x[..], k'h0} (a left shift) becomes {k'h0, x[..]}: not shifted
    "add alignment": ("add", r"\{ (x\d\[\d+:\d+\]), (\d+'h0) \}", r"{ \2, \1 }", 0),
    # one constant of the logic table (a case branch) changes
    "table constant": ("lut", r"(\\\$\d+\s+= \d+'h[0-9a-f]*)([02468ace]);", _odd, 1),
    # the SAT clamp to 15 gives 14
    "saturation bound": ("requant", r"(\? \d+'h0*)f :", r"\1e :", 0),
}


@pytest.mark.slow
@pytest.mark.parametrize("what", list(BREAKS))
def test_check3_catches_a_broken_block(what: str, design: Path, vectors: tuple, tmp_path: Path):
    layer, pattern, replacement, count = BREAKS[what]
    break_layer(design, tmp_path / "broken", layer, pattern, replacement, count)
    x, outputs = vectors
    result = verify(tmp_path / "broken", x, outputs[-1], expected_taps=outputs[:-1], quiet=True)
    assert not result.passed and result.mismatches > 0, what
    assert result.first_failure["first_differing_layer"] == layer
