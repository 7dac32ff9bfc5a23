"""The generator on graphs: a block per layer kind and the graph network around them.

Check 2 (Amaranth simulation == :func:`hgq_rtl.ir.reference.run`, integer equality) for each
kind alone and in graphs, on random vectors over every input's full range (its extremes
first); the blocks' latencies and figures; the direct writer's refusal; a broken component."""

from __future__ import annotations

import dataclasses
import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from amaranth.hdl import Mux
from ir_builders import fmt, select

from hgq_rtl.ir import reference
from hgq_rtl.ir.fixed import Activation, Overflow, RoundMode
from hgq_rtl.ir.formats import TensorFormat, concat_formats, exact_add_format
from hgq_rtl.ir.formats import exact_maxpool_format as maxpool_format
from hgq_rtl.ir.layers import AddLayer, ConcatLayer, LookupLayer, MaxPoolLayer, QuantizeLayer
from hgq_rtl.ir.model import IRModel, ModelInput
from hgq_rtl.ir.random import (
    random_cnn,
    random_dense,
    random_format,
    random_graph,
    random_lookup,
    random_two_inputs,
)
from rtl_gen.blocks import MaxPoolComponent, QuantizeComponent
from rtl_gen.emit import RtlOptions, VerilogWriter, build, emit, to_verilog
from rtl_gen.network import NetworkComponent
from rtl_gen.simulate import simulate, simulate_taps


def _inputs(ir: IRModel, n: int, seed: int) -> np.ndarray:
    x = reference.random_inputs(ir.input, n, np.random.default_rng(seed))
    lo, hi = ir.input.int_range()
    x[0], x[1] = lo, hi
    return x


def _check2(ir: IRModel, n: int = 150, seed: int = 0, **options) -> NetworkComponent:
    """Simulate ``ir``'s network on ``n`` vectors; assert every output equals the reference."""
    component = NetworkComponent(ir, **options)
    x = _inputs(ir, n, seed)
    got, want = simulate(component, x), reference.run(ir, x)
    bad = np.flatnonzero(np.any(got != want, axis=1))
    assert bad.size == 0, (
        f"{bad.size} mismatches, first {x[bad[0]]}: {got[bad[0]]} != {want[bad[0]]}"
    )
    return component


def _model(x: TensorFormat, *layers) -> IRModel:
    return IRModel("graph", x, layers)


def _zero_width(f: TensorFormat, elements: list[int]) -> TensorFormat:
    """``f`` with ``elements`` made zero-width (the constant 0)."""
    signed, int_bits = f.signed.copy(), f.int_bits.copy()
    signed[elements] = False
    int_bits[elements] = -f.frac_bits[elements]
    return TensorFormat(signed, int_bits, f.frac_bits)


# ------------------------------------------------------------------------------------ quantize


@pytest.mark.parametrize(
    ("round_mode", "overflow", "activation"),
    list(itertools.product(RoundMode, Overflow, Activation)),
)
def test_quantize_every_mode(round_mode, overflow, activation) -> None:
    """Finer and coarser outputs, either sign, zero-width inputs and outputs, every mode."""
    rng = np.random.default_rng(len(round_mode.value) + 7 * len(overflow.value))
    x = _zero_width(random_format(rng, 24), [0, 1])
    out = _zero_width(random_format(rng, 24, max_width=6), [1, 2])
    layer = QuantizeLayer("q", out, activation, round_mode, overflow)
    assert (x.width == 0).any() and (out.width == 0).any()
    assert (x.frac_bits > out.frac_bits).any() and (x.frac_bits < out.frac_bits).any()
    component = _check2(_model(x, layer), n=300)
    block = component.layers[0]
    stats = block.statistics()
    assert block.latency == int(any(stats.values()))
    if overflow is Overflow.SAT:
        assert stats["saturators"] > 0
    if round_mode is RoundMode.TRN:
        assert stats["rounding_adders"] == 0


def test_a_quantizer_that_only_drops_bits_is_wiring() -> None:
    """TRN, WRAP, linear onto fewer bits: a slice, no register; RND adds the +1/2 adder."""
    x = fmt([1, 0, 1], [3, 4, 2], [3, 2, 0])
    out = fmt([1, 0, 1], [1, 2, 2], [1, 1, -1])
    trn = QuantizeLayer("q", out, Activation.LINEAR, RoundMode.TRN, Overflow.WRAP)
    assert QuantizeComponent(trn, x).latency == 0
    # a network with no register at all would have no clock: its output is registered
    component = _check2(_model(x, trn), register_inputs=False)
    assert component.register_output and component.latency == 1
    assert not _check2(_model(x, trn)).register_output
    rnd = dataclasses.replace(trn, round_mode=RoundMode.RND)
    assert QuantizeComponent(rnd, x).statistics() == {
        "rounding_adders": 3,
        "relu_muxes": 0,
        "saturators": 0,
    }
    _check2(_model(x, rnd))
    # ReLU only where the value can be negative, SAT only where it can leave the range
    relu = QuantizeLayer(
        "q", fmt([0] * 3, [4] * 3, [3] * 3), Activation.RELU, overflow=Overflow.SAT
    )
    assert QuantizeComponent(relu, x).statistics() == {
        "rounding_adders": 0,
        "relu_muxes": 2,
        "saturators": 0,
    }
    _check2(_model(x, relu))


# ------------------------------------------------------------------------------------ maxpool


@pytest.mark.parametrize("levels", [1, 2, 3])
def test_maxpool_windows_of_every_size(levels: int) -> None:
    rng = np.random.default_rng(levels)
    x = random_format(rng, 12)
    windows = rng.integers(0, 12, (9, 7))  # repeated indices, zero-width elements
    windows[0] = 3  # a window of one element, repeated
    pool = MaxPoolLayer("pool", windows, maxpool_format(x, windows))
    component = _check2(_model(x, pool), n=300, adder_levels_per_stage=levels)
    block = component.layers[0]
    assert block.depth >= 2 and block.latency == (block.depth - 1) // levels + 1


def test_maxpool_finer_and_wider_output_and_the_delay_model() -> None:
    """An output format with more fractional and integer bits than needed: exact shifts."""
    rng = np.random.default_rng(3)
    x = random_format(rng, 10)
    windows = rng.integers(0, 10, (6, 4))
    exact = maxpool_format(x, windows)
    wider = TensorFormat(exact.signed | True, exact.int_bits + 2, exact.frac_bits + 3)
    pool = MaxPoolLayer("pool", windows, wider)
    _check2(_model(x, pool), n=300)
    fast = _check2(_model(x, pool), clock_ns=1.0).layers[0]
    slow = _check2(_model(x, pool), clock_ns=50.0)
    # across layer boundaries the pool's output is not registered: the network's output is
    assert slow.layers[0].latency == 0 and slow.latency == 2
    assert fast.latency >= 1 and fast.boundaries


def test_maxpool_drops_operands_that_cannot_win() -> None:
    """A zero-width input (0) or a signed 1-bit one ([-1, 0]) never beats an unsigned one."""
    x = fmt([0, 0, 1, 1], [3, -2, 0, 2], [0, 2, 0, 0])  # element 1 is zero-width
    windows = np.array([[0, 1], [0, 2], [2, 3], [1, 1]])
    pool = MaxPoolLayer("pool", windows, maxpool_format(x, windows))
    block = MaxPoolComponent(pool, x)
    assert block.statistics()["comparators"] == 1  # only [2, 3] compares
    _check2(_model(x, pool))
    trivial = MaxPoolLayer("pool", windows[[0, 1, 3]], maxpool_format(x, windows[[0, 1, 3]]))
    assert MaxPoolComponent(trivial, x).latency == 0


# ------------------------------------------------------------------------------------ add


@pytest.mark.parametrize("terms", [2, 3, 5])
def test_add_aligns_and_sums(terms: int) -> None:
    """Inputs of different fractional bits (exact left shifts), zero-width elements, the same
    tensor twice, an adder tree for more than two; branches of different latencies."""
    rng = np.random.default_rng(terms)
    x = random_format(rng, 6)
    layers = [random_dense(rng, f"d{k}", x, 6) for k in range(terms - 1)]
    layers = [dataclasses.replace(layer, inputs=("input",)) for layer in layers]
    sources = [layer.name for layer in layers] + ["input"]
    if terms == 5:
        sources[1] = sources[0]  # d0 twice
    formats = [x if s == "input" else layers[int(s[1:])].output for s in sources]
    add = AddLayer("add", exact_add_format(formats), tuple(sources))
    component = _check2(_model(x, *layers, add), n=300)
    block = component.layers[-1]
    assert block.input_ports == tuple(f"x{k}" for k in range(terms))
    live = np.sum([f.width > 0 for f in formats], axis=0)  # operands of each output
    assert block.plan.depth == max(int(np.ceil(np.log2(n))) for n in live if n)
    delays = component.input_delays["add"]
    assert delays[-1] == max(layer.latency for layer in component.layers[:-1])
    _check2(_model(x, *layers, add), ternary=True, clock_ns=2.0, register_inputs=False)


def test_add_with_a_finer_output_than_needed() -> None:
    x = fmt([1, 0, 1], [2, 3, 0], [1, 0, 3])
    exact = exact_add_format([x, x])
    add = AddLayer(
        "add",
        TensorFormat(exact.signed, exact.int_bits + 1, exact.frac_bits + 2),
        ("input", "input"),
    )
    _check2(_model(x, add))


# ------------------------------------------------------------------------------------ concat


def test_concat_is_wiring_in_the_order_of_its_inputs() -> None:
    rng = np.random.default_rng(4)
    x = random_format(rng, 5)
    empty = TensorFormat(np.zeros(2, bool), np.array([-1, 0]), np.array([1, 0]))  # no bits
    d0 = random_dense(rng, "d0", x, 3)
    nothing = dataclasses.replace(
        random_dense(rng, "nothing", x, 2), output=empty, inputs=("input",)
    )
    cat = ConcatLayer(
        "cat", concat_formats([x, d0.output, empty, x]), ("input", "d0", "nothing", "input")
    )
    component = _check2(_model(x, d0, nothing, cat), n=200)
    assert component.layers[-1].latency == 0
    arrival = component.arrival
    assert component.input_delays["cat"] == tuple(
        arrival["cat"] - arrival[name] for name in ("input", "d0", "nothing", "input")
    )
    assert arrival["cat"] == max(arrival["d0"], arrival["nothing"])


# ------------------------------------------------------------------------------------ lookup


@pytest.mark.parametrize("rom_min_bits", [4096, 0])
def test_lookup_tables_as_logic_or_rom(rom_min_bits: int) -> None:
    """Signed and unsigned inputs, shared slices, a slice of one value, zero-width inputs and
    an output of no bits; with ``rom_min_bits`` 0 every table is a ROM."""
    rng = np.random.default_rng(8)
    # widths 4, 3, 3, 0, 0, 2, 2 (elements 5 and 6 alike: random_lookup may share their slice)
    x = fmt([1, 0, 1, 0, 0, 1, 1], [2, 3, 0, 1, 0, 1, 1], [1, 0, 2, -1, 0, 0, 0])
    out = fmt([1, 0, 1, 1, 0, 0, 1], [3, 4, 2, 1, 4, -2, 2], [1, 0, 2, 2, 0, 2, 1])  # 5: no bits
    lut = random_lookup(rng, "lut", x, out)
    table = lut.table.copy()
    table[lut.offsets[2] : lut.offsets[2] + 8] = table[lut.offsets[2]]  # element 2: one value
    lut = LookupLayer("lut", lut.input_low, lut.offsets, table, out)
    ir = _model(x, lut)
    component = _check2(ir, n=300, rom_min_bits=rom_min_bits)
    stats = component.layers[0].statistics()
    assert stats["constant_elements"] == 3  # 2 (one value), 3 and 4 (zero-width inputs)
    assert stats["tables"] == 3 and stats["table_entries"] == 16 + 8 + 4
    assert stats["rom_tables"] == (3 if rom_min_bits == 0 else 0)
    assert component.layers[0].latency == 1


def test_lookup_after_dense_and_a_rom_in_verilog(tmp_path: Path) -> None:
    rng = np.random.default_rng(12)
    x = random_format(rng, 4)
    d0 = dataclasses.replace(random_dense(rng, "d0", x, 2), output=fmt([0, 1], [9, 3], [1, 0]))
    lut = random_lookup(rng, "lut", d0.output, fmt([1, 0], [3, 6], [2, 0]))
    ir = _model(x, d0, lut)
    _check2(ir, n=300)
    manifest = emit(ir, tmp_path / "rtl")
    stats = manifest["layers"][1]
    assert (stats["kind"], stats["rom_tables"], stats["logic_tables"]) == ("lookup", 1, 1)
    assert stats["rom_bits"] == 1024 * 6 and stats["table_entries"] == 1024 + 16
    text = (tmp_path / "rtl" / "graph.v").read_text()
    assert "reg [5:0] lut_rom0 [1023:0];" in text  # a memory synthesis may map to block RAM


# ------------------------------------------------------------------------------------ graphs


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize(
    "options",
    [
        {},
        {"adder_levels_per_stage": 1, "register_inputs": False},
        {"clock_ns": 1.5, "ternary": True, "share": False},
    ],
)
def test_random_graphs(seed: int, options: dict) -> None:
    _check2(random_graph(np.random.default_rng(seed)), seed=seed, **options)


def test_branches_of_different_latencies_meet() -> None:
    """A deep branch and a wire-only branch joined by add and by concat: the short one waits in
    a delay line shared by its readers; the network's latency is the output's arrival."""
    rng = np.random.default_rng(2)
    x = random_format(rng, 5)
    deep = random_dense(rng, "deep", x, 5)
    deeper = random_dense(rng, "deeper", deep.output, 5)
    windows = np.array([[0, 1], [2, 3], [4, 0], [1, 2], [3, 4]])
    pool = MaxPoolLayer("pool", windows, maxpool_format(deeper.output, windows))
    add = AddLayer("add", exact_add_format([pool.output, x]), ("pool", "input"))
    cat = ConcatLayer("cat", concat_formats([x, add.output]), ("input", "add"))
    ir = _model(x, deep, deeper, pool, add, cat)
    component = _check2(ir, n=200, adder_levels_per_stage=1)
    arrival = component.arrival
    assert component.input_delays["add"] == (0, arrival["pool"] - arrival["input"])
    assert component.input_delays["cat"] == (arrival["add"] - arrival["input"], 0)
    assert component.latency == arrival["cat"] == arrival["add"]
    # one shift register for the input, read at two depths
    assert component.delay_line_bits() == component.input_layout.port_width * (
        arrival["add"] - arrival["input"]
    )


def test_debug_taps_on_a_graph() -> None:
    ir = random_graph(np.random.default_rng(9))
    component = NetworkComponent(ir, debug_taps=True, register_inputs=False)
    x = _inputs(ir, 100, 2)
    got, want = simulate_taps(component, x), reference.run_named(ir, x)
    assert list(got) == [layer.name for layer in ir.layers]
    for name in got:
        assert np.array_equal(got[name], want[name]), name
    assert [component.tap_latency(k) for k in range(len(ir.layers) - 1)] == [
        component.arrival[layer.name] for layer in ir.layers[:-1]
    ]


def test_a_broken_component_fails_check2(monkeypatch: pytest.MonkeyPatch) -> None:
    """The maxpool block with its comparators' mux swapped (the minimum) fails check 2."""
    rng = np.random.default_rng(5)
    x = random_format(rng, 8, max_width=6)
    windows = rng.integers(0, 8, (4, 3))
    ir = _model(x, MaxPoolLayer("pool", windows, maxpool_format(x, windows)))
    xs = _inputs(ir, 200, 3)
    assert np.array_equal(simulate(NetworkComponent(ir), xs), reference.run(ir, xs))
    monkeypatch.setattr("rtl_gen.blocks.Mux", lambda select, a, b: Mux(select, b, a))
    assert np.any(simulate(NetworkComponent(ir), xs) != reference.run(ir, xs))


# ------------------------------------------------------------------------------------ manifest


def test_manifest_of_a_graph(tmp_path: Path) -> None:
    ir = random_graph(np.random.default_rng(1))
    manifest = emit(ir, tmp_path / "rtl", RtlOptions(debug_taps=True))
    entries = {entry["name"]: entry for entry in manifest["layers"]}
    assert [e["kind"] for e in manifest["layers"]] == [layer.kind for layer in ir.layers]
    assert entries["add_0"]["inputs"] == ["quantize_0", "dense_1"]
    assert set(entries["maxpool_0"]) >= {"comparators", "comparator_depth", "comparator_bits"}
    assert set(entries["lookup_0"]) >= {"tables", "table_entries", "table_bits", "rom_tables"}
    assert entries["concat_0"]["latency_cycles"] == 0
    assert [t["layer"] for t in manifest["taps"]] == [layer.name for layer in ir.layers[:-1]]
    on_disk = json.loads((tmp_path / "rtl" / "manifest.json").read_text())
    assert on_disk["layers"] == manifest["layers"]
    # a dense chain's entries stay as they were: no kind, inputs or delays
    chain = emit(IRModel("chain", ir.input, (ir.layers[0],)), tmp_path / "chain")
    assert set(chain["layers"][0]) == {
        "name",
        "latency_cycles",
        "adder_depth",
        "adders",
        "adder_bits",
        "shared_adders",
        "pipeline_register_bits",
    }


# ------------------------------------------------------------------------------------ refusals


def test_the_direct_writer_refuses_other_kinds(tmp_path: Path) -> None:
    ir = random_graph(np.random.default_rng(0))
    message = (
        r"^the direct Verilog writer \(writer='direct', --xilinx-cells\) writes chains of dense "
        r"layers only, by design: layer 'quantize_0' is a quantize layer; use the Amaranth writer"
    )
    with pytest.raises(ValueError, match=message):
        to_verilog(build(ir), "g", VerilogWriter.DIRECT)
    options = RtlOptions(writer="direct")
    with pytest.raises(ValueError, match=message):
        emit(ir, tmp_path / "rtl", options)
    assert not (tmp_path / "rtl").exists()
    # dense layers that do not form a chain
    f = random_format(np.random.default_rng(1), 3)
    two = IRModel("two", f, (select("d0", f, [0, 1]), select("d1", f, [2], inputs=("input",))))
    with pytest.raises(ValueError, match="layer 'd1' reads 'input', not the previous 'd0'"):
        to_verilog(build(two), "two", VerilogWriter.DIRECT)
    _check2(two)  # the Amaranth writer's network takes it


def test_convolutions_and_nd_pooling_are_built_as_their_lowering(tmp_path: Path) -> None:
    ir = random_cnn(np.random.default_rng(4), (2, 5, 5), 2)
    assert [layer.kind for layer in ir.layers] == ["conv", "quantize", "maxpool_nd", "dense"]
    _check2(ir, n=100)
    manifest = emit(ir, tmp_path / "rtl")
    entries = manifest["layers"]
    assert [e["kind"] for e in entries] == ["conv", "quantize", "maxpool_nd", "dense"]
    assert entries[0]["adders"] > 0 and entries[2]["comparators"] > 0
    with pytest.raises(ValueError, match="layer 'quantize_0' is a quantize layer"):
        emit(ir, tmp_path / "direct", RtlOptions(writer="direct"))
    # a convolution and dense layers: a chain of dense layers once lowered
    chain = IRModel(
        "cnn",
        None,
        (ir.layers[0], random_dense(np.random.default_rng(1), "fc", ir.layers[0].output, 3)),
        inputs=ir.inputs,
    )
    direct = emit(chain, tmp_path / "chain", RtlOptions(writer="direct"))
    assert direct["layers"] == emit(chain, tmp_path / "chain_amaranth")["layers"]


def test_several_model_inputs(tmp_path: Path) -> None:
    """A port ``data_in_<name>`` per model input under one ``valid_in``; the manifest lists
    them as ``inputs``; an input read late waits in its delay line."""
    a, b = fmt([1, 0, 1], [2, 3, 0], [1, 0, 3]), fmt([0, 1, 1], [2, 1, 2], [2, 2, 0])
    d = dataclasses.replace(random_dense(np.random.default_rng(6), "d", a, 3), inputs=("a",))
    add = AddLayer("add", exact_add_format([d.output, b]), ("d", "b"))
    ir = IRModel("two_inputs", None, (d, add), inputs=(ModelInput("a", a), ModelInput("b", b)))
    for model in (ir, random_two_inputs(np.random.default_rng(3))):
        component = NetworkComponent(model, adder_levels_per_stage=1)
        x = reference.random_inputs(component.input_format, 200, np.random.default_rng(1))
        sizes = np.cumsum([i.format.size for i in model.inputs])[:-1]
        by_name = dict(zip(model.input_names, np.split(x, sizes, axis=1), strict=True))
        assert np.array_equal(simulate(component, x), reference.run(model, by_name))
    component = NetworkComponent(ir)
    assert component.input_delays["add"] == (0, component.layers[0].latency)
    manifest = emit(ir, tmp_path / "rtl")
    assert "input" not in manifest
    assert [(i["name"], i["port"], i["valid"], i["width"]) for i in manifest["inputs"]] == [
        ("a", "data_in_a", "valid_in", int(a.width.sum())),
        ("b", "data_in_b", "valid_in", int(b.width.sum())),
    ]
