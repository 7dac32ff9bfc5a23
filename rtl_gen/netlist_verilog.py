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

With ``xilinx_primitives``, each three-input adder ``a + b ± c`` is written as AMD/Xilinx cells
(see :func:`ternary_adder`): one ``LUT6_2`` per result bit and a ``CARRY4`` per four bits, the
classic ternary adder that costs one LUT per bit where two chained adders cost two. Behavioural
models of the two cells follow the design inside ```ifndef HGQ_RTL_VENDOR_CELLS``, so simulators
and other synthesis targets read one self-contained file; the AMD/Xilinx synthesis scripts define
that macro and use the vendor's own cells.
"""

from __future__ import annotations

from hgq_rtl.ir.fixed import Activation, Overflow, bits_for_range

from .adder_tree import Node
from .components import DenseComponent, NetworkComponent

__all__ = ["VENDOR_CELLS_MACRO", "write_verilog"]

#: Defined by the AMD/Xilinx synthesis scripts: the design's ``LUT6_2``/``CARRY4`` models are
#: then left out and the tool's own cells are used.
VENDOR_CELLS_MACRO = "HGQ_RTL_VENDOR_CELLS"

#: Behavioural models of the AMD/Xilinx cells used by :func:`ternary_adder` (same ports, the
#: documented function; timing-free).
_CELL_MODELS = f"""`ifndef {VENDOR_CELLS_MACRO}
// Behavioural models of the AMD/Xilinx cells used above, for simulation and non-AMD targets.
module LUT6_2(O6, O5, I0, I1, I2, I3, I4, I5);
  parameter [63:0] INIT = 64'h0;
  output O6;
  output O5;
  input I0, I1, I2, I3, I4, I5;
  wire [5:0] index = {{I5, I4, I3, I2, I1, I0}};
  assign O6 = INIT[index];
  assign O5 = INIT[{{1'b0, index[4:0]}}];
endmodule
module CARRY4(CO, O, CI, CYINIT, DI, S);
  output [3:0] CO;
  output [3:0] O;
  input CI, CYINIT;
  input [3:0] DI, S;
  wire [4:0] carry;
  assign carry[0] = CI | CYINIT;
  assign carry[1] = S[0] ? carry[0] : DI[0];
  assign carry[2] = S[1] ? carry[1] : DI[1];
  assign carry[3] = S[2] ? carry[2] : DI[2];
  assign carry[4] = S[3] ? carry[3] : DI[3];
  assign CO = carry[4:1];
  assign O = S ^ carry[3:0];
endmodule
`endif
"""


def ternary_init(subtracted: tuple[bool, bool, bool]) -> int:
    """``INIT`` of the ``LUT6_2`` of one bit of ``a + b ± c`` (``I5`` tied high).

    Inputs: ``I0..I2`` the three operand bits (``subtracted`` ones inverted inside the LUT),
    ``I3`` the carry-save bit of the bit below, ``I4`` unused. ``O5`` (low 32 bits) is the
    majority of the three (this bit's carry-save bit), ``O6`` (high 32 bits) the XOR of all
    four: the carry chain's propagate signal.
    """
    init = 0
    for k in range(32):
        bits = [((k >> n) & 1) ^ int(flip) for n, flip in enumerate(subtracted)]
        carry_save = int(sum(bits) >= 2)
        propagate = (bits[0] ^ bits[1] ^ bits[2]) ^ ((k >> 3) & 1)
        init |= carry_save << k
        init |= propagate << (32 + k)
    return init


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

    def __init__(self, layer: DenseComponent, primitives: bool = False) -> None:
        self.layer = layer
        self.primitives = primitives
        self.used_cells = False
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
            name = f"{self.prefix}_a{adder.ident}_s{stage}"
            if self.primitives and len(adder.operands) == 3:
                self.ternary_adder(adder, stage, name)
            else:
                terms = [
                    ("- " if subtracted else "+ ") + self.operand(op, stage, op.shift - adder.shift)
                    for op, subtracted in zip(adder.operands, adder.subtracted, strict=True)
                ]
                expression = " ".join(terms)[2:]  # the first operand is never subtracted
                self.lines.append(_declare("wire", name, adder.lo, adder.hi) + f" = {expression};")
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

    def operand_bits(self, node: Node, stage: int, shift: int, width: int) -> list[str]:
        """Bits ``0 .. width-1`` of ``node``'s signal shifted left by ``shift``, sign-extended
        (zero-extended when unsigned), as Verilog bit expressions."""
        base = node
        while base.kind == "ref":
            base = base.operands[0]
        if base.kind == "const":  # its bits are known
            return [f"1'b{(base.hi << shift >> j) & 1}" for j in range(width)]
        name, is_signed = self.signal(node, stage)
        if base.kind == "input" and stage == self.layer.stage(base):
            own = self.layer.input_layout.width[base.input_index]
        else:
            own = _width(base.lo, base.hi)[1]
        bits = []
        for j in range(width):
            k = j - shift
            if k < 0:
                bits.append("1'b0")
            elif k < own:
                bits.append(f"{name}[{k}]")
            else:
                bits.append(f"{name}[{own - 1}]" if is_signed else "1'b0")
        return bits

    def ternary_adder(self, adder: Node, stage: int, name: str) -> None:
        """``a + b ± c`` as one ``LUT6_2`` per bit and a ``CARRY4`` per four bits.

        ``a + b + c = s + 2 m`` bit by bit (``s`` the XOR, ``m`` the majority: a carry-save
        step); each bit's LUT computes its ``m`` (``O5``) and ``s_j ^ m_{j-1}`` (``O6``), which
        drives the carry chain as the propagate signal of ``s + 2 m``, with ``m_{j-1}`` as the
        chain's generate input. Subtracted operands (one or two) are inverted inside the LUTs;
        their ``+1`` each enters as the carry-save bit below the first bit and as the chain's
        carry-in. Below the second-lowest operand's shift only the lowest operand has bits:
        they pass through (when it is added) and need no LUT.
        """
        self.used_cells = True
        _, width = _width(adder.lo, adder.hi)
        shifts = [op.shift - adder.shift for op in adder.operands]
        columns = [
            self.operand_bits(op, stage, shift, width)
            for op, shift in zip(adder.operands, shifts, strict=True)
        ]
        lowest = min(range(3), key=lambda k: shifts[k])
        others = [shifts[k] for k in range(3) if k != lowest]
        start = 0
        if not adder.subtracted[lowest]:
            start = min(min(others), width - 1)
        init = ternary_init(adder.subtracted)
        # -c = ~c + 1: one subtraction sets the carry-save input below the first bit, a second
        # the chain's carry-in (both count one unit of the first bit; a carry-in would make
        # the first sum bit an inverted LUT output, which synthesis may spend a LUT on)
        subtractions = sum(adder.subtracted)
        sums, carry_save = [], ["1'b1" if subtractions >= 1 else "1'b0"]
        for j in range(start, width):
            o6, o5 = f"{name}_p{j}", f"{name}_m{j}"
            self.lines.append(f"  wire {o6}, {o5};")
            self.lines.append(
                f"  LUT6_2 #(.INIT(64'h{init:016x})) {name}_l{j}(.O6({o6}), .O5({o5}), "
                f".I0({columns[0][j]}), .I1({columns[1][j]}), .I2({columns[2][j]}), "
                f".I3({carry_save[-1]}), .I4(1'b0), .I5(1'b1));"
            )
            sums.append(o6)
            carry_save.append(o5)
        chain = width - start
        blocks = (chain + 3) // 4
        carry_in = "1'b1" if subtractions == 2 else "1'b0"
        zero = "1'b0"
        self.lines.append(f"  wire [{4 * blocks - 1}:0] {name}_o, {name}_co;")
        for b in range(blocks):
            select = [sums[4 * b + i] if 4 * b + i < chain else "1'b0" for i in range(4)]
            generate = [carry_save[4 * b + i] if 4 * b + i < chain else "1'b0" for i in range(4)]
            ci, cyinit = (f"{name}_co[{4 * b - 1}]", zero) if b else (zero, carry_in)
            self.lines.append(
                f"  CARRY4 {name}_c{b}(.CO({name}_co[{4 * b + 3}:{4 * b}]), "
                f".O({name}_o[{4 * b + 3}:{4 * b}]), .CI({ci}), "
                f".CYINIT({cyinit}), "
                f".DI({{{', '.join(reversed(generate))}}}), .S({{{', '.join(reversed(select))}}}));"
            )
        low = ", ".join(reversed(columns[lowest][:start]))
        value = f"{name}_o[{chain - 1}:0]" + (f", {low}" if start else "")
        self.lines.append(_declare("wire", name, adder.lo, adder.hi) + f" = {{{value}}};")

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


def write_verilog(
    component: NetworkComponent, name: str, *, xilinx_primitives: bool = False
) -> str:
    """Verilog-2005 text of ``component`` with top module ``name``.

    The ports, their widths, the latency and the reset behaviour are those of the Amaranth
    writer's (:func:`rtl_gen.emit.to_verilog`); so are the arithmetic and the registers, both
    taken from the component's plan and schedule. ``xilinx_primitives``: write three-input
    adders as AMD/Xilinx cells (see the module docstring).
    """
    modules = []
    buses = []
    cells = False
    for layer in component.layers:
        writer = _LayerWriter(layer, xilinx_primitives)
        modules.append(writer.write(name))
        cells = cells or writer.used_cells
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
    return header + "\n".join(modules + lines) + (_CELL_MODELS if cells else "")
