"""Shared patterns fused into three-input shared adders (``SharedAdderGraph.fuse_single_uses``):
exact values and widths, fewer adders and LUTs, and bit-exact in both writers (check 2 in
Amaranth, check 3 in Verilator on the direct writer's cells and plain Verilog), with the bench
failing on an altered fused adder."""

from __future__ import annotations

import hashlib
import json
import re

import numpy as np
import pytest
from test_adder_graph import _matrix_layer, _signal

from hgq_rtl.binding import seal
from hgq_rtl.ir import reference
from hgq_rtl.ir.random import random_model
from rtl_gen.adder_graph import SharedAdderGraph
from rtl_gen.adder_tree import Node, adder_luts
from rtl_gen.components import DensePlan
from rtl_gen.emit import RtlOptions, build, emit


def _plans(monkeypatch, layer, fmt) -> tuple[DensePlan, DensePlan]:
    """The ternary plan of ``layer`` built without the fusion and without, both without
    :meth:`SharedAdderGraph.unshare_unprofitable` (which runs after it)."""
    monkeypatch.setattr(SharedAdderGraph, "unshare_unprofitable", lambda self, *args: 0)
    fused = DensePlan(layer, fmt, ternary=True, max_shared_depth=2)
    monkeypatch.setattr(SharedAdderGraph, "fuse_single_uses", lambda self, extra: 0)
    return fused, DensePlan(layer, fmt, ternary=True, max_shared_depth=2)


def _three_input_shared(plan: DensePlan) -> list[Node]:
    return [a for a in plan.shared if len(a.operands) == 3]


def test_fused_patterns_drop_adders_and_luts_and_stay_exact(monkeypatch):
    """A pattern used only inside another is built as part of it: as many adders fewer as
    patterns fused, fewer LUTs by the plan's count, no deeper, and every adder's signal fits its
    width and every output sums to its row on random and extreme inputs."""
    rng = np.random.default_rng(11)
    layer, fmt = _matrix_layer(rng, 16, 14, 7)
    fused, plain = _plans(monkeypatch, layer, fmt)
    three = _three_input_shared(fused)
    assert three, "no pattern was fused: the test does not exercise the fusion"
    assert not _three_input_shared(plain)
    assert fused.adder_count() == plain.adder_count() - len(three)
    assert sum(map(adder_luts, fused.adders())) < sum(map(adder_luts, plain.adders()))
    assert fused.depth <= plain.depth
    lo, hi = fmt.int_range()
    vectors = [lo, hi] + list(rng.integers(lo, hi + 1, size=(200, lo.size)))
    for x in vectors:
        x = [int(v) for v in x]
        memo: dict[int, int] = {}
        for node in fused.adders():
            assert node.lo <= _signal(node, x, memo) <= node.hi, "a width is too narrow"
        got = []
        for neuron in fused.neurons:
            root = neuron.tree.root
            signal = _signal(root, x, memo)
            got.append((-signal if root.negative else signal) << root.shift)
        assert got == [int(v) for v in layer.weight @ np.array(x)]


def test_every_shared_adder_is_still_used():
    """After the fusion (and the unsharing after it) every shared adder left is used by a
    shared adder, a tree or as an output's root."""
    layer, fmt = _matrix_layer(np.random.default_rng(11), 16, 14, 7)
    plan = DensePlan(layer, fmt, ternary=True, max_shared_depth=2)
    inside = {
        op.operands[0].ident
        for adder in plan.shared
        for op in adder.operands
        if op.kind == "ref" and op.operands[0].kind == "add"
    }
    in_trees = {
        op.operands[0].ident
        for neuron in plan.neurons
        for adder in neuron.tree.adders()
        for op in adder.operands
        if op.kind == "ref" and op.operands[0].kind == "add"
    }
    roots = {n.tree.root.operands[0].ident for n in plan.neurons if n.tree.root.kind == "ref"}
    for adder in plan.shared:  # every shared adder is still used
        assert adder.ident in inside | in_trees | roots


def _fused_model():
    """A small random network whose ternary plan has fused (three-input) shared adders."""
    ir = random_model(np.random.default_rng(21), (16, 14, 6), name="fused_net", weight_bits=7)
    component = build(ir, RtlOptions(ternary_adders=True))
    assert any(_three_input_shared(layer.plan) for layer in component.layers), (
        "no fused pattern in the model: the tests do not exercise the fusion"
    )
    return ir, component


def test_fused_patterns_are_exact_in_amaranth():
    """Check 2 on a network with three-input shared adders."""
    from rtl_gen.simulate import simulate

    ir, component = _fused_model()
    x = reference.random_inputs(ir.input, 300, np.random.default_rng(2))
    assert np.array_equal(simulate(component, x), reference.run(ir, x))


def _verify(ir, rtl, n: int = 300):
    from hgq_rtl_sim.runner import verify

    x = reference.random_inputs(ir.input, n, np.random.default_rng(0))
    return verify(rtl, x, reference.run(ir, x), quiet=True, seed=0)


def _reseal(rtl, verilog) -> None:
    manifest_path = rtl / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["hashes"]["verilog_sha256"] = hashlib.sha256(verilog.read_bytes()).hexdigest()
    seal(manifest)  # the manifest's own digest: only simulation can tell
    manifest_path.write_text(json.dumps(manifest))


@pytest.mark.parametrize("cells", [True, False], ids=["xilinx-cells", "plain-verilog"])
def test_fused_patterns_are_exact_in_verilator_and_an_altered_one_fails(
    cells, tmp_path, monkeypatch
):
    """Check 3 on the direct writer's three-input shared adders (AMD/Xilinx cells, or plain
    Verilog), and the bench failing when one of them is altered (its cell's propagate outputs
    inverted, or its subtraction turned into an addition)."""
    from rtl_gen import emit as emit_module

    ir, _ = _fused_model()
    built = []
    real_build = emit_module.build
    monkeypatch.setattr(
        emit_module, "build", lambda *args: built.append(real_build(*args)) or built[-1]
    )
    rtl = tmp_path / "rtl"
    options = RtlOptions(writer="direct", ternary_adders=True, xilinx_primitives=cells)
    emit(ir, rtl, options)
    assert _verify(ir, rtl).mismatches == 0
    verilog = rtl / f"{ir.name}.v"
    text = verilog.read_text()
    (component,) = built
    fused = [a for layer in component.layers for a in _three_input_shared(layer.plan)]
    names = re.compile("|".join(rf"_a{adder.ident}_s\d+(?![0-9])" for adder in fused))
    if cells:  # the instance of a fused adder's cells
        lines = [ln for ln in text.splitlines() if ".INIT(64'h" in ln and names.search(ln)]
        assert lines, "no fused adder written as cells"
        line = lines[0]
        init = re.search(r"\.INIT\(64'h([0-9a-f]{16})\)", line).group(1)
        # its propagate outputs (O6) inverted: its sums change whenever its inputs do
        wrong = int(init, 16) ^ 0xFFFFFFFF00000000
        altered = line.replace(f"64'h{init}", f"64'h{wrong:016x}")
    else:  # the expression of a fused adder: its last subtraction an addition or vice versa
        lines = [
            ln
            for ln in text.splitlines()
            if names.search(ln.split("=")[0]) and ln.count(" + ") + ln.count(" - ") == 2
        ]
        assert lines, "no fused adder written as plain Verilog"
        line = lines[0]
        head, last = line.rsplit(" + " if line.rfind(" + ") > line.rfind(" - ") else " - ", 1)
        swapped = " - " if line.rfind(" + ") > line.rfind(" - ") else " + "
        altered = head + swapped + last
    verilog.write_text(text.replace(line, altered, 1))
    _reseal(rtl, verilog)
    assert _verify(ir, rtl).mismatches > 0


def test_unprofitable_patterns_are_unshared_and_the_plan_stays_exact(monkeypatch):
    """A pattern whose adder costs more LUTs than its outputs' trees save with it is written
    back as its operands: fewer LUTs by the plan's count (shared adders and trees together),
    and every output still sums to its row."""
    layer, fmt = _matrix_layer(np.random.default_rng(1), 8, 8, 8)
    unshared = DensePlan(layer, fmt, ternary=True, max_shared_depth=2)
    monkeypatch.setattr(SharedAdderGraph, "unshare_unprofitable", lambda self, *args: 0)
    kept = DensePlan(layer, fmt, ternary=True, max_shared_depth=2)
    assert len(unshared.shared) < len(kept.shared), "nothing unshared: the test does not test"
    assert sum(map(adder_luts, unshared.adders())) < sum(map(adder_luts, kept.adders()))
    for row, neuron in zip(layer.weight, unshared.neurons, strict=True):
        assert neuron.tree.root.coefficients == {j: int(w) for j, w in enumerate(row) if w}
