"""Direct Verilog writer: the design of a :class:`~rtl_gen.components.NetworkComponent` as text.

Amaranth's RTLIL back end costs a few milliseconds per adder, too slow for layers with tens of
thousands of adders. This writer walks the same plan (:class:`~rtl_gen.components.DensePlan`, the
same schedule, delay lines and requantizers as :meth:`DenseComponent.elaborate`) and writes plain
Verilog-2005 straight away: one module per layer named ``<top>.<layer>`` (ports ``clk``, ``rst``,
``x``, ``y``) and a top module with the ports of the Amaranth design (``clk``, ``rst``,
``data_in``, ``valid_in``, ``data_out``, ``valid_out``, ``tap_<layer>``), the same latency, and
the same reset behaviour: only the valid shift register is reset (synchronously, by ``rst``);
data registers start at 0 and are never reset.

Every value is a wire of exactly its planned width and signedness. Adders compute in two's
complement with every operand sign-extended (``$signed({1'b0, u})`` for unsigned ones); the planned
width holds the exact result, so truncating the sum to it is exact. Requantizers work at a width
that holds every intermediate value exactly.
"""

from __future__ import annotations

from hgq_rtl.ir.fixed import Activation, Overflow, bits_for_range

from .adder_tree import Node
from .components import DenseComponent, NetworkComponent

__all__ = ["write_verilog"]


def _width(lo: int, hi: int) -> tuple[bool, int]:
    """(signed, width >= 1) of a signal holding ``lo .. hi``, as the Amaranth writer declares."""
    is_signed, width = bits_for_range(lo, hi)
    return is_signed, max(width, 1)


def _declare(kind: str, name: str, lo: int, hi: int) -> str:
    is_signed, width = _width(lo, hi)
    return f"  {kind} {'signed ' if is_signed else ''}[{width - 1}:0] {name}"


def _signed_bits(value: int) -> int:
    """Bits of the narrowest two's complement number holding ``value``."""
    return (value if value >= 0 else -value - 1).bit_length() + 1


def _literal(value: int) -> str:
    """A signed Verilog literal of ``value``."""
    magnitude = f"{_signed_bits(abs(value))}'sd{abs(value)}"
    return f"(-{magnitude})" if value < 0 else magnitude


def _escaped(name: str) -> str:
    """A Verilog identifier for ``name`` (escaped when it is not a simple identifier)."""
    simple = name.replace("_", "a").isalnum() and not name[0].isdigit() and name.isascii()
    return name if simple else f"\\{name} "


class _LayerWriter:
    """The module of one layer, written as :meth:`DenseComponent.elaborate` builds it."""

    def __init__(self, layer: DenseComponent) -> None:
        self.layer = layer
        self.prefix = layer.layer.name
        self.lines: list[str] = []
        self.registers: list[str] = []
        self.own: dict[int, str] = {}
        self.delayed: dict[tuple[int, int], str] = {}
        self.fields: dict[int, str] = {}

    def signal(self, node: Node, stage: int) -> tuple[str, bool]:
        """The signal of ``node`` as seen in ``stage`` (through a delay line if needed), and
        whether it is signed."""
        while node.kind == "ref":
            node = node.operands[0]
        is_signed = _width(node.lo, node.hi)[0]
        if node.kind == "const":
            return _literal(node.hi), True
        home = self.layer.stage(node)
        if stage == home:
            if node.kind == "input":
                return self.field(node.input_index), is_signed
            return self.own[node.ident], is_signed
        key = (node.ident, stage)
        if key not in self.delayed:
            source, _ = self.signal(node, stage - 1)
            name = f"{self.prefix}_v{node.ident}_s{stage}"
            self.lines.append(_declare("reg", name, node.lo, node.hi) + " = 0;")
            self.registers.append(f"    {name} <= {source};")
            self.delayed[key] = name
        return self.delayed[key], is_signed

    def field(self, index: int) -> str:
        """Input element ``index`` as a wire of its own width and signedness."""
        if index not in self.fields:
            layout = self.layer.input_layout
            lsb, width = layout.lsb[index], layout.width[index]
            name = f"{self.prefix}_x{index}"
            kind = "wire signed" if layout.signed[index] else "wire"
            self.lines.append(f"  {kind} [{width - 1}:0] {name} = x[{lsb + width - 1}:{lsb}];")
            self.fields[index] = name
        return self.fields[index]

    def operand(self, node: Node, stage: int, shift: int) -> str:
        """``node``'s signal in ``stage``, sign-extended and shifted left by ``shift``."""
        name, is_signed = self.signal(node, stage)
        value = name if is_signed else f"$signed({{1'b0, {name}}})"
        return f"({value} <<< {shift})" if shift else value

    def write(self, top: str) -> str:
        layer, plan = self.layer, self.layer.plan
        for adder in sorted(plan.adders(), key=plan.node_depth):
            stage = layer.stage(adder)
            a, b = adder.operands
            lhs = self.operand(a, stage, a.shift - adder.shift)
            rhs = self.operand(b, stage, b.shift - adder.shift)
            name = f"{self.prefix}_a{adder.ident}_s{stage}"
            operator = "-" if adder.subtract else "+"
            self.lines.append(
                _declare("wire", name, adder.lo, adder.hi) + f" = {lhs} {operator} {rhs};"
            )
            self.own[adder.ident] = name
        outputs = layer.output_layout
        y = f"{self.prefix}_y"
        assigned = []
        for i, neuron in enumerate(plan.neurons):
            if outputs.width[i] == 0:
                continue
            root, is_signed = self.signal(neuron.tree.root, layer.final_stage)
            root = root if is_signed else f"$signed({{1'b0, {root}}})"
            q = self.requantizer(i, neuron.tree.root, neuron.rescale, root)
            lsb, width = outputs.lsb[i], outputs.width[i]
            assigned.append(f"    {y}[{lsb + width - 1}:{lsb}] <= {q}[{width - 1}:0];")
        head = [
            f"module {_escaped(f'{top}.{self.prefix}')}(clk, rst, x, y);",
            "  input clk;",
            "  input rst;",
            f"  input [{layer.input_layout.port_width - 1}:0] x;",
            f"  output [{outputs.port_width - 1}:0] y;",
        ]
        body = list(self.lines)
        if assigned:
            body.append(f"  reg [{outputs.port_width - 1}:0] {y} = 0;")
            body.append(f"  assign y = {y};")
        else:  # no output bits: the port is a constant
            body.append("  assign y = 1'b0;")
        registers = self.registers + assigned
        if registers:
            body += ["  always @(posedge clk) begin", *registers, "  end"]
        return "\n".join(head + body + ["endmodule", ""])

    def requantizer(self, i: int, node: Node, rescale: int, root: str) -> str:
        """Wires computing output ``i`` from the root's (signed) signal; returns the last one."""
        layer = self.layer.layer
        out_lo, out_hi = (int(v[i]) for v in layer.output.int_range())
        lo, hi = node.lo, node.hi
        values = [lo, hi, out_lo, out_hi, -lo, -hi]
        if node.negative:
            lo, hi = -hi, -lo
        # value = signal << node.shift; output = floor(value / 2**rescale)
        shift = node.shift - rescale
        if shift >= 0:
            shifted = (lo << shift, hi << shift)
        else:
            shifted = (lo >> -shift, hi >> -shift)
        values += list(shifted)
        work = max(max(_signed_bits(v) for v in values), self.layer.output_layout.width[i])
        prefix = f"{self.prefix}_q{i}"
        lines = [f"  wire signed [{work - 1}:0] {prefix}_r = {root};"]
        current = f"{prefix}_r"
        if node.negative:
            lines.append(f"  wire signed [{work - 1}:0] {prefix}_n = -{current};")
            current = f"{prefix}_n"
        if shift:
            operator = f"<<< {shift}" if shift > 0 else f">>> {-shift}"
            lines.append(f"  wire signed [{work - 1}:0] {prefix}_s = {current} {operator};")
            current = f"{prefix}_s"
        lo, hi = shifted
        if layer.activation is Activation.RELU and lo < 0:
            lines.append(
                f"  wire signed [{work - 1}:0] {prefix}_relu = "
                f"{current}[{work - 1}] ? {work}'sd0 : {current};"
            )
            current = f"{prefix}_relu"
            lo, hi = 0, max(hi, 0)
        if layer.overflow is Overflow.SAT and (lo < out_lo or hi > out_hi):
            lines.append(
                f"  wire signed [{work - 1}:0] {prefix}_sat = {current} > {_literal(out_hi)} ? "
                f"{_literal(out_hi)} : {current} < {_literal(out_lo)} ? {_literal(out_lo)} : "
                f"{current};"
            )
            current = f"{prefix}_sat"
        self.lines += lines
        return current


def write_verilog(component: NetworkComponent, name: str) -> str:
    """Verilog-2005 text of ``component`` with top module ``name``.

    The ports, their widths, the latency and the reset behaviour are those of the Amaranth
    writer's (:func:`rtl_gen.emit.to_verilog`); so are the arithmetic and the registers, both
    taken from the component's plan and schedule.
    """
    modules = []
    buses = []
    for layer in component.layers:
        modules.append(_LayerWriter(layer).write(name))
        buses.append((layer, f"{layer.layer.name}_y"))
    inputs, outputs = component.input_layout, component.output_layout
    ports = ["clk", "rst", "data_in", "valid_in", "data_out", "valid_out"]
    taps = [f"tap_{layer.layer.name}" for layer in component.tapped_layers()]
    lines = [
        f"module {_escaped(name)}({', '.join(ports + taps)});",
        "  input clk;",
        "  input rst;",
        f"  input [{inputs.port_width - 1}:0] data_in;",
        "  input valid_in;",
        f"  output [{outputs.port_width - 1}:0] data_out;",
        "  output valid_out;",
    ]
    for layer, tap in zip(component.tapped_layers(), taps, strict=True):
        lines.append(f"  output [{layer.output_layout.port_width - 1}:0] {tap};")
    always = []
    bus = "data_in"
    if component.register_inputs:
        lines.append(f"  reg [{inputs.port_width - 1}:0] data_in_reg = 0;")
        always.append("    data_in_reg <= data_in;")
        bus = "data_in_reg"
    for layer, wire in buses:
        width = layer.output_layout.port_width
        lines.append(f"  wire [{width - 1}:0] {wire};")
        lines.append(
            f"  {_escaped(f'{name}.{layer.layer.name}')} {layer.layer.name}"
            f"(.clk(clk), .rst(rst), .x({bus}), .y({wire}));"
        )
        bus = wire
    lines.append(f"  assign data_out = {bus};")
    for layer, tap in zip(component.tapped_layers(), taps, strict=True):
        lines.append(f"  assign {tap} = {layer.layer.name}_y;")
    valid = "valid_in"
    for stage in range(component.latency):
        lines.append(f"  reg valid_{stage} = 1'b0;")
        always.append(f"    valid_{stage} <= rst ? 1'b0 : {valid};")
        valid = f"valid_{stage}"
    lines.append(f"  assign valid_out = {valid};")
    lines += ["  always @(posedge clk) begin", *always, "  end", "endmodule", ""]
    header = "// Generated by hgq-rtl (direct writer, rtl_gen/netlist_verilog.py)\n"
    return header + "\n".join(modules + lines)
