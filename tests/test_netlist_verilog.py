"""The direct Verilog writer: same ports and latency as Amaranth's, and bit-exact in Verilator."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest

from hgq_rtl.binding import seal
from hgq_rtl.ir import reference
from hgq_rtl.ir.fixed import Activation, Overflow, RoundMode
from hgq_rtl.ir.model import IRModel
from hgq_rtl.ir.random import random_dense, random_format, random_model
from hgq_rtl_sim.runner import verify
from rtl_gen.emit import RtlOptions, VerilogWriter, build, emit, to_verilog
from rtl_gen.netlist_verilog import write_verilog


def _top_ports(text: str, top: str) -> dict[str, tuple[str, int]]:
    """Direction and width of every port of module ``top`` in Verilog ``text``."""
    start = re.search(rf"^module \\?{re.escape(top)}\s*\(", text, re.M).start()
    module = text[start : text.index("endmodule", start)]
    ports = {}
    for direction, msb, name in re.findall(
        r"^\s*(input|output)\s+(?:\[(\d+):0\]\s+)?(\w+);", module, re.M
    ):
        ports[name] = (direction, int(msb or 0) + 1)
    return ports


def _model(seed: int, sizes=(10, 8, 5)) -> IRModel:
    return random_model(np.random.default_rng(seed), sizes)


@pytest.mark.parametrize(
    "options",
    [
        RtlOptions(),
        RtlOptions(debug_taps=True, adder_levels_per_stage=1, register_inputs=False),
        RtlOptions(share_subexpressions=False, clock_ns=1.5, debug_taps=True),
        RtlOptions(ternary_adders=True, clock_ns=2.0),
    ],
)
def test_ports_and_latency_match_the_amaranth_writer(options, tmp_path):
    ir = _model(1, (9, 7, 6, 3))
    amaranth = emit(ir, tmp_path / "amaranth", options)
    direct = emit(ir, tmp_path / "direct", RtlOptions(**{**options.__dict__, "writer": "direct"}))
    assert amaranth["options"]["writer"] == "amaranth" and direct["options"]["writer"] == "direct"
    for key in ("latency_cycles", "input", "output", "taps", "layers"):
        assert direct[key] == amaranth[key], key
    text = (tmp_path / "direct" / f"{ir.name}.v").read_text()
    amaranth_text = (tmp_path / "amaranth" / f"{ir.name}.v").read_text()
    assert _top_ports(text, ir.name) == _top_ports(amaranth_text, ir.name)
    # the valid shift register is as long as the latency, reset by rst
    assert len(re.findall(r"valid_\d+ <= rst \? 1'b0 :", text)) == direct["latency_cycles"]
    # every planned adder is written once, in the module of its layer
    component = build(ir, options)
    for layer in component.layers:
        module = text[text.index(f"module \\{ir.name}.{layer.layer.name} ") :]
        module = module[: module.index("endmodule")]
        assert (
            len(re.findall(r"^\s*wire .*_a\d+_s\d+ = ", module, re.M)) == layer.plan.adder_count()
        )
    assert direct["hashes"]["verilog_sha256"] == hashlib.sha256(text.encode()).hexdigest()


def test_writer_option_is_checked_and_both_writers_are_reachable():
    ir = _model(2, (4, 3))
    component = build(ir)
    assert to_verilog(component, "top", VerilogWriter.DIRECT) == write_verilog(component, "top")
    assert "Amaranth" in to_verilog(component, "top")
    assert RtlOptions(writer="direct").writer is VerilogWriter.DIRECT
    with pytest.raises(ValueError, match="writer must be one of"):
        RtlOptions(writer="vivado")
    with pytest.raises(ValueError, match="xilinx_primitives needs ternary_adders"):
        RtlOptions(writer="direct", xilinx_primitives=True)
    with pytest.raises(ValueError, match="needs the direct writer"):
        RtlOptions(ternary_adders=True, xilinx_primitives=True)


def _verify(ir: IRModel, rtl: Path, n: int = 400, seed: int = 0, taps: bool = False):
    x = reference.random_inputs(ir.input, n, np.random.default_rng(seed))
    outputs = reference.run_all(ir, x)
    return verify(
        rtl, x, outputs[-1], quiet=True, expected_taps=outputs[:-1] if taps else None, seed=seed
    )


def _modes_model(seed: int) -> IRModel:
    """Four layers that between them use every rounding, overflow and activation mode."""
    rng = np.random.default_rng(seed)
    input_format = fmt = random_format(rng, 11)
    modes = [
        (RoundMode.RND, Overflow.SAT, Activation.RELU),
        (RoundMode.TRN, Overflow.WRAP, Activation.RELU),
        (RoundMode.RND, Overflow.WRAP, Activation.LINEAR),
        (RoundMode.TRN, Overflow.SAT, Activation.LINEAR),
    ]
    layers = []
    for k, ((round_mode, overflow, activation), size) in enumerate(
        zip(modes, (9, 8, 7, 4), strict=True)
    ):
        layer = random_dense(
            rng, f"dense_{k}", fmt, size, round_mode=round_mode, overflow=overflow,
            activation=activation, weight_bits=7,
        )  # fmt: skip
        layers.append(layer)
        fmt = layer.output
    return IRModel("modes_net", input_format, tuple(layers))


@pytest.mark.parametrize(
    ("ir", "options"),
    [
        (_model(400, (12, 10, 8, 4)), RtlOptions(debug_taps=True)),
        (
            _model(401, (12, 10, 8, 4)),
            RtlOptions(share_subexpressions=False, adder_levels_per_stage=1, register_inputs=False),
        ),
        (_modes_model(402), RtlOptions(clock_ns=2.0, debug_taps=True)),
        (_model(403, (12, 10, 8, 4)), RtlOptions(ternary_adders=True, debug_taps=True)),
        (
            _model(404, (8, 6, 3)),
            RtlOptions(
                writer="direct",
                ternary_adders=True,
                xilinx_primitives=True,
                share_subexpressions=False,
            ),
        ),
        (
            _modes_model(405),
            RtlOptions(
                writer="direct",
                ternary_adders=True,
                xilinx_primitives=True,
                clock_ns=2.0,
                debug_taps=True,
            ),
        ),
    ],
    ids=[
        "shared-taps",
        "trees-1-level",
        "all-modes-clock",
        "ternary-taps",
        "xilinx-cells-trees",
        "xilinx-cells-all-modes",
    ],
)
def test_direct_writer_is_bit_exact_in_verilator(ir, options, tmp_path):
    options = RtlOptions(**{**options.__dict__, "writer": VerilogWriter.DIRECT})
    emit(ir, tmp_path / "rtl", options)
    result = _verify(ir, tmp_path / "rtl", taps=options.debug_taps)
    assert result.vectors == 400
    assert result.mismatches == 0


def test_bench_fails_on_an_altered_direct_netlist(tmp_path):
    ir = _model(7, (10, 8, 4))
    rtl = tmp_path / "rtl"
    emit(ir, rtl, RtlOptions(writer="direct"))
    verilog = rtl / f"{ir.name}.v"
    text = verilog.read_text()
    adders = re.findall(r"^\s*wire .*_a\d+_s\d+ = .* \+ .*;$", text, re.M)
    assert adders, "no adder to alter"
    line = adders[len(adders) // 2]
    altered = line[::-1].replace(" + ", " - ", 1)[::-1]  # the adder's own (last) plus
    verilog.write_text(text.replace(line, altered, 1))
    manifest_path = rtl / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["hashes"]["verilog_sha256"] = hashlib.sha256(verilog.read_bytes()).hexdigest()
    seal(manifest)  # the manifest's own digest: only simulation can tell
    manifest_path.write_text(json.dumps(manifest))
    assert _verify(ir, rtl).mismatches > 0


def test_bench_fails_on_an_altered_ternary_adder_cell(tmp_path):
    """Check 3 catches a wrong LUT function in the AMD/Xilinx cells of a ternary adder."""
    ir = _model(8, (8, 5))
    rtl = tmp_path / "rtl"
    emit(ir, rtl, RtlOptions(writer="direct", ternary_adders=True, xilinx_primitives=True))
    assert _verify(ir, rtl, n=200).mismatches == 0
    verilog = rtl / f"{ir.name}.v"
    text = verilog.read_text()
    instance = r"^\s*\\\S+\.ternary_adder\s+#\(.*\.INIT\(64'h[0-9a-f]{16}\).*$"
    adders = re.findall(instance, text, re.M)
    assert adders, "no ternary adder written as cells"
    line = adders[len(adders) // 2]
    init = re.search(r"\.INIT\(64'h([0-9a-f]{16})\)", line).group(1)
    # this adder's propagate outputs (O6) inverted: its sums change whenever its inputs do
    wrong = int(init, 16) ^ 0xFFFFFFFF00000000
    text = text.replace(line, line.replace(f"64'h{init}", f"64'h{wrong:016x}"), 1)
    verilog.write_text(text)
    manifest_path = rtl / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["hashes"]["verilog_sha256"] = hashlib.sha256(verilog.read_bytes()).hexdigest()
    seal(manifest)  # the manifest's own digest: only simulation can tell
    manifest_path.write_text(json.dumps(manifest))
    assert _verify(ir, rtl, n=200).mismatches > 0


def test_cli_writes_xilinx_cells_by_default_and_portable_on_request(tmp_path):
    """No flags: AMD/Xilinx cells by the direct writer, registers placed for 5 ns across layer
    boundaries; --family portable: two-input adders; --writer amaranth, --adder-levels: the
    former defaults."""
    from bad_inputs.helpers import cli

    from hgq_rtl.ir import save

    ir = _model(9, (8, 4))
    save(ir, tmp_path / "ir")
    runs = {
        "default": [],
        "cells": ["--xilinx-cells"],
        "portable": ["--family", "portable"],
        "former": ["--writer", "amaranth", "--family", "portable", "--adder-levels", "2"],
    }
    options = {}
    for name, flags in runs.items():
        result = cli("rtl", tmp_path / "ir", "--out", tmp_path / name, *flags, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        manifest = json.loads((tmp_path / name / "manifest.json").read_text())
        keys = ("writer", "ternary_adders", "xilinx_primitives", "clock_ns")
        options[name] = tuple(manifest["options"][k] for k in keys)
        cells = "LUT6_2 #(" in (tmp_path / name / f"{ir.name}.v").read_text()
        assert cells == options[name][2]
    assert options["default"] == options["cells"] == ("direct", True, True, 5.0)
    assert options["portable"] == ("direct", False, False, 5.0)
    assert options["former"] == ("amaranth", False, False, None)


def test_ternary_plan_is_exact_in_amaranth_and_needs_fewer_adders():
    """Check 2 on three-input adder trees; they need fewer adders and levels than pairs."""
    from rtl_gen.simulate import simulate

    ir = _modes_model(406)
    x = reference.random_inputs(ir.input, 150, np.random.default_rng(3))
    ternary = build(ir, RtlOptions(ternary_adders=True))
    binary = build(ir, RtlOptions())
    assert np.array_equal(simulate(ternary, x), reference.run(ir, x))
    for three, two in zip(ternary.layers, binary.layers, strict=True):
        arity = {len(a.operands) for a in three.plan.adders()}
        assert 3 in arity and arity <= {2, 3}
        assert three.plan.adder_count() < two.plan.adder_count()
        assert three.plan.depth <= two.plan.depth
        # a negative root costs a negation: only outputs whose every term is negative have one
        for neuron in three.plan.neurons:
            if neuron.tree.root.negative:
                assert all(c < 0 for c in neuron.tree.root.coefficients.values())
