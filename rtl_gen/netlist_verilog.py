"""Direct Verilog writer: the design of a :class:`~rtl_gen.network.NetworkComponent` as text.

By design it writes chains of dense layers only (the layers with thousands of adders it exists
for; convolutions count, as the dense layers they lower to): any other model is refused with one
``ValueError`` naming the first layer that is not a dense layer reading the previous one
(:func:`check_direct_writer`); the Amaranth writer (:func:`rtl_gen.emit.to_verilog`) writes
every layer kind.

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

With ``xilinx_primitives``, each three-input adder ``a + b ± c`` is an instance of one ternary
adder module per design (:func:`_ternary_adder_module`) built of AMD/Xilinx cells: one ``LUT6_2``
per result bit and a ``CARRY4`` per four bits, the classic ternary adder that costs one LUT per
bit where two chained adders cost two. Behavioural
models of the two cells follow the design inside ```ifndef HGQ_RTL_VENDOR_CELLS``, so simulators
and other synthesis targets read one self-contained file; the AMD/Xilinx synthesis scripts define
that macro and use the vendor's own cells. The ternary adder module also has a behavioural body
of the same function, selected by ```define HGQ_RTL_BEHAVIOURAL_ADDERS``
(:data:`BEHAVIOURAL_ADDERS_MACRO`): the fast simulation harness defines it once Yosys has proven
it equal to the cells for the design's parameters; synthesis and the cocotb bench see the cells.
"""

from __future__ import annotations

from hgq_rtl.ir.fixed import Activation, Overflow, RoundMode, bits_for_range, shift_folded
from hgq_rtl.ir.lowering import lower_spatial
from hgq_rtl.ir.model import IRModel

from .adder_tree import Node
from .components import DenseComponent
from .identifiers import TOP_PORTS, Namer, check_module_name, plain
from .network import NetworkComponent

__all__ = ["BEHAVIOURAL_ADDERS_MACRO", "VENDOR_CELLS_MACRO", "check_direct_writer", "write_verilog"]

#: Defined by the AMD/Xilinx synthesis scripts: the design's ``LUT6_2``/``CARRY4`` models are
#: then left out and the tool's own cells are used.
VENDOR_CELLS_MACRO = "HGQ_RTL_VENDOR_CELLS"
#: Defined by the fast simulation harness once the behavioural body of the ternary adder module
#: is proven equal to its cells for the design's parameters (see :func:`_ternary_adder_module`).
BEHAVIOURAL_ADDERS_MACRO = "HGQ_RTL_BEHAVIOURAL_ADDERS"

#: Behavioural models of the AMD/Xilinx cells used by :func:`_ternary_adder_module` (same ports,
#: the documented function; timing-free).
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


def _ternary_adder_module(top: str) -> str:
    """The ternary adder module of the design ``top``: its AMD/Xilinx cells (one ``LUT6_2`` per
    bit and a ``CARRY4`` per four bits), or, where :data:`BEHAVIOURAL_ADDERS_MACRO` is defined,
    a behavioural body of the same function.

    The behavioural body exists for simulation speed: Verilator evaluates the cells bit by bit,
    ten times slower on the digits design than a plain ``+``. It computes what the cells compute
    when ``INIT`` is one of :func:`ternary_init`'s: bits below ``START`` are ``a``'s; bits
    ``[START, W)`` are the sum, modulo ``2**(W - START)``, of the three operands' slices, those
    ``INIT`` inverts inverted, plus ``CARRY_SAVE_IN`` and ``CARRY_IN`` (the cells: each bit's
    majority (``O5``) is a carry-save bit worth twice the bit, its XOR the sum bit, and the
    carry chain adds the two words and ``CARRY_IN``). The inverted operands are read off
    ``INIT`` itself (the only input pattern whose majority and its three neighbours' are all 0
    is the inversion pattern), so the instances, and synthesis, stay as they are. For any other
    ``INIT`` (an altered design) the two bodies differ: that is why the fast harness
    (:mod:`hgq_rtl_sim.cell_proof`) defines the macro only after Yosys has proven both bodies
    equal, for all inputs, for every parameter set the design instantiates. Synthesis and the
    cocotb bench leave the macro undefined and see the cells.
    """
    return f"""// y = a + b + c (mod 2**W), a subtracted operand given inverted: one LUT6_2 per bit
// of [START, W) computes the majority of the three bits (O5, the carry-save bit) and their XOR with
// the carry-save bit of the bit below (O6, the carry chain's propagate signal); the carry-save
// bits are the chain's generate inputs. Bits below START are a's. Subtracted operands are
// inverted by INIT (see rtl_gen.netlist_verilog.ternary_init); their +1s enter as CARRY_SAVE_IN
// and CARRY_IN. Kept as its own module in synthesis: Yosys 0.70's ABC9 stops half way when it
// maps logic around LUT6_2 cells in the same module. With the macro {BEHAVIOURAL_ADDERS_MACRO}
// defined (the fast simulation harness, once Yosys has proven it equal to the cells for this
// design's parameters), a behavioural body of the same function replaces the cells.
(* keep_hierarchy *)
module {_escaped(f"{top}.ternary_adder")}(a, b, c, y);
  parameter W = 2;
  parameter START = 0;
  parameter [63:0] INIT = 64'h0;
  parameter CARRY_SAVE_IN = 0;
  parameter CARRY_IN = 0;
  localparam N = W - START;
  input [W-1:0] a, b, c;
  output [W-1:0] y;
  genvar j;
`ifdef {BEHAVIOURAL_ADDERS_MACRO}
  // the operands INIT inverts: the one pattern whose majority (INIT[7:0]: I3 = I4 = 0) is 0
  // together with its three neighbours'
  function [2:0] inverted_operands(input [63:0] init);
    integer x;
    begin
      inverted_operands = 3'b000;
      for (x = 0; x < 8; x = x + 1)
        if (!init[x] && !init[x ^ 1] && !init[x ^ 2] && !init[x ^ 4])
          inverted_operands = x[2:0];
    end
  endfunction
  localparam [2:0] INVERTED = inverted_operands(INIT);
  assign y[W-1:START] = (a[W-1:START] ^ {{N{{INVERTED[0]}}}})
    + (b[W-1:START] ^ {{N{{INVERTED[1]}}}}) + (c[W-1:START] ^ {{N{{INVERTED[2]}}}})
    + CARRY_SAVE_IN[0] + CARRY_IN[0];
`else
  localparam BLOCKS = (N + 3) / 4;
  wire [4*BLOCKS-1:0] p, m, o, co;
  wire [4*BLOCKS:0] generate_bits = {{m, CARRY_SAVE_IN[0]}};
  generate
    for (j = 0; j < 4 * BLOCKS; j = j + 1) begin : bits
      if (j < N) begin : lut
        LUT6_2 #(.INIT(INIT)) lut(.O6(p[j]), .O5(m[j]), .I0(a[START + j]), .I1(b[START + j]),
          .I2(c[START + j]), .I3(generate_bits[j]), .I4(1'b0), .I5(1'b1));
      end else begin : pad
        assign p[j] = 1'b0;
        assign m[j] = 1'b0;
      end
    end
    for (j = 0; j < BLOCKS; j = j + 1) begin : chain
      if (j == 0) begin : first
        CARRY4 carry(.CO(co[3:0]), .O(o[3:0]), .CI(1'b0), .CYINIT(CARRY_IN[0]),
          .DI(generate_bits[3:0]), .S(p[3:0]));
      end else begin : next
        CARRY4 carry(.CO(co[4*j+3:4*j]), .O(o[4*j+3:4*j]), .CI(co[4*j-1]), .CYINIT(1'b0),
          .DI(generate_bits[4*j+3:4*j]), .S(p[4*j+3:4*j]));
      end
    end
  endgenerate
  assign y[W-1:START] = o[N-1:0];
`endif
  generate
    if (START > 0) begin : low
      assign y[START-1:0] = a[START-1:0];
    end
  endgenerate
endmodule
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

    def __init__(self, layer: DenseComponent, primitives: bool = False, prefix: str = "") -> None:
        self.layer = layer
        self.primitives = primitives
        self.used_cells = False
        # a plain identifier (rtl_gen.identifiers): the module's suffix and its signals' prefix
        self.prefix = prefix or plain(layer.layer.name)
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
                self.ternary_adder(adder, stage, name, top)
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
            assigned.append(f"{y}[{lsb + width - 1}:{lsb}] <= {q}[{width - 1}:0];")
        head = [
            f"module {_escaped(f'{top}.{self.prefix}')}(clk, rst, x, y);",
            "  input clk;",
            "  input rst;",
            f"  input [{layer.input_layout.port_width - 1}:0] x;",
            f"  output [{outputs.port_width - 1}:0] y;",
        ]
        body = list(self.lines)
        if assigned and layer.register_output:
            body.append(f"  reg [{outputs.port_width - 1}:0] {y} = 0;")
            body.append(f"  assign y = {y};")
            assigned = [f"    {line}" for line in assigned]
        elif assigned:  # not registered: the next layer's registers are placed across it
            body.append(f"  wire [{outputs.port_width - 1}:0] {y};")
            body += [f"  assign {line.replace(' <= ', ' = ')}" for line in assigned]
            body.append(f"  assign y = {y};")
            assigned = []
        else:  # no output bits: the port is a constant
            body.append("  assign y = 1'b0;")
        registers = self.registers + assigned
        if registers:
            body += ["  always @(posedge clk) begin", *registers, "  end"]
        return "\n".join(head + body + ["endmodule", ""])

    def operand_vector(self, node: Node, stage: int, shift: int, width: int) -> str:
        """``node``'s signal shifted left by ``shift`` and sign-extended (zero-extended when
        unsigned) to ``width`` bits, as a Verilog expression."""
        base = node
        while base.kind == "ref":
            base = base.operands[0]
        if base.kind == "const":  # its bits are known
            return f"{width}'d{(base.hi << shift) % (1 << width)}"
        name, is_signed = self.signal(node, stage)
        if base.kind == "input" and stage == self.layer.stage(base):
            own = self.layer.input_layout.width[base.input_index]
        else:
            own = _width(base.lo, base.hi)[1]
        parts = []
        extension = width - shift - own
        if extension > 0:
            sign = f"{name}[{own - 1}]" if is_signed else "1'b0"
            parts.append(f"{{{extension}{{{sign}}}}}")
        # a part-select, never the bare (maybe signed) name: an unsigned vector either way
        parts.append(f"{name}[{min(own, width - shift) - 1}:0]")
        if shift:
            parts.append(f"{shift}'d0")
        return f"{{{', '.join(parts)}}}"

    def ternary_adder(self, adder: Node, stage: int, name: str, top: str) -> None:
        """``a + b ± c`` as an instance of the ternary adder module (:func:`_ternary_adder_module`).

        Below the second-lowest operand's shift only the lowest operand has bits: when it is
        added, they pass through (operand ``a`` of the module) and need no LUT.
        """
        self.used_cells = True
        _, width = _width(adder.lo, adder.hi)
        shifts = [op.shift - adder.shift for op in adder.operands]
        order = sorted(range(3), key=lambda k: (shifts[k], k))
        start = 0
        if not adder.subtracted[order[0]] and shifts[order[1]] > 0:
            start = min(shifts[order[1]], width - 1)
        subtracted = tuple(adder.subtracted[k] for k in order)
        operands = [self.operand_vector(adder.operands[k], stage, shifts[k], width) for k in order]
        subtractions = sum(subtracted)
        # plain unsigned wires on the ports (Yosys 0.70 asserts on a port connection that it
        # simplifies to a signed signal)
        for port, vector in zip("abc", operands, strict=True):
            self.lines.append(f"  wire [{width - 1}:0] {name}_{port} = {vector};")
        self.lines.append(f"  wire [{width - 1}:0] {name}_y;")
        self.lines.append(
            f"  {_escaped(f'{top}.ternary_adder')} #(.W({width}), .START({start}), "
            f".INIT(64'h{ternary_init(subtracted):016x}), "
            f".CARRY_SAVE_IN({int(subtractions >= 1)}), .CARRY_IN({int(subtractions == 2)})) "
            f"{name}_t(.a({name}_a), .b({name}_b), .c({name}_c), .y({name}_y));"
        )
        self.lines.append(_declare("wire", name, adder.lo, adder.hi) + f" = {name}_y;")

    def requantizer(self, i: int, node: Node, rescale: int, root: str) -> str:
        """Wires computing output ``i`` from the root's (signed) signal; returns the last one."""
        layer = self.layer.layer
        out_lo, out_hi = (int(v[i]) for v in layer.output.int_range())
        lo, hi = node.lo, node.hi
        values = [lo, hi, out_lo, out_hi, -lo, -hi]
        if node.negative:
            lo, hi = -hi, -lo
        # value = signal << node.shift; output = floor(value / 2**rescale), RND_CONV's ties to even
        shift = node.shift - rescale
        even = layer.round_mode is RoundMode.RND_CONV and rescale > 0
        shifted = tuple(shift_folded(v, shift, even) for v in (lo, hi))
        values += list(shifted)
        work = max(max(_signed_bits(v) for v in values), self.layer.output_layout.width[i])
        work = max(work, 2) if even else work
        prefix = f"{self.prefix}_q{i}"
        lines = [f"  wire signed [{work - 1}:0] {prefix}_r = {root};"]
        current = f"{prefix}_r"
        if node.negative:
            lines.append(f"  wire signed [{work - 1}:0] {prefix}_n = -{current};")
            current = f"{prefix}_n"
        unshifted = current
        if shift:
            operator = f"<<< {shift}" if shift > 0 else f">>> {-shift}"
            lines.append(f"  wire signed [{work - 1}:0] {prefix}_s = {current} {operator};")
            current = f"{prefix}_s"
        if even:  # a tie (no dropped bit set) clears the LSB
            kept = f"(|{unshifted}[{min(-shift, work) - 1}:0])" if shift < 0 else "1'b0"
            lines.append(
                f"  wire signed [{work - 1}:0] {prefix}_e = "
                f"{{{current}[{work - 1}:1], {current}[0] & {kept}}};"
            )
            current = f"{prefix}_e"
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


def check_direct_writer(ir: IRModel) -> None:
    """Refuse (``ValueError``) a model the direct writer does not write: anything but a chain
    of dense layers (or convolutions, lowered to dense layers) on one input."""
    problem = lower_spatial(ir).dense_chain_problem()
    if problem is not None:
        raise ValueError(
            f"the direct Verilog writer (writer='direct', --xilinx-cells) writes chains of dense "
            f"layers only, by design: {problem}; use the Amaranth writer (writer='amaranth', "
            "the default) for this model"
        )


def write_verilog(
    component: NetworkComponent, name: str, *, xilinx_primitives: bool = False
) -> str:
    """Verilog-2005 text of ``component`` with top module ``name``.

    The ports, their widths, the latency and the reset behaviour are those of the Amaranth
    writer's (:func:`rtl_gen.emit.to_verilog`); so are the arithmetic and the registers, both
    taken from the component's plan and schedule. ``xilinx_primitives``: write three-input
    adders as AMD/Xilinx cells (see the module docstring). Refuses any model but a chain of
    dense layers (:func:`check_direct_writer`).
    """
    check_direct_writer(component.ir)
    check_module_name(name)
    # names from the model become plain identifiers unique in the top module, apart from its
    # ports and the writer's own signals (rtl_gen.identifiers)
    ports = list(TOP_PORTS)
    tapped = component.tapped_layers()
    taps = [component.tap_port_of[layer.layer.name] for layer in tapped]
    registers = ["data_in_reg"] + [
        "data_out_reg" if k == 0 else f"data_out_reg{k}" for k in range(component.output_registers)
    ]
    namer = Namer([*ports, *taps, *registers, *(f"valid_{s}" for s in range(component.latency))])
    modules = []
    buses = []
    cells = False
    for layer in component.layers:
        instance = namer.unique(layer.layer.name)
        writer = _LayerWriter(layer, xilinx_primitives, prefix=instance)
        modules.append(writer.write(name))
        cells = cells or writer.used_cells
        buses.append((layer, instance, namer.unique(f"{layer.layer.name}_y")))
    inputs, outputs = component.input_layout, component.output_layout
    wire_of = {id(layer): wire for layer, _, wire in buses}
    lines = [
        f"module {_escaped(name)}({', '.join(ports + taps)});",
        "  input clk;",
        "  input rst;",
        f"  input [{inputs.port_width - 1}:0] data_in;",
        "  input valid_in;",
        f"  output [{outputs.port_width - 1}:0] data_out;",
        "  output valid_out;",
    ]
    for layer, tap in zip(tapped, taps, strict=True):
        lines.append(f"  output [{layer.output_layout.port_width - 1}:0] {tap};")
    always = []
    bus = "data_in"
    if component.register_inputs:
        lines.append(f"  reg [{inputs.port_width - 1}:0] data_in_reg = 0;")
        always.append("    data_in_reg <= data_in;")
        bus = "data_in_reg"
    for layer, instance, wire in buses:
        width = layer.output_layout.port_width
        lines.append(f"  wire [{width - 1}:0] {wire};")
        lines.append(
            f"  {_escaped(f'{name}.{instance}')} {instance}"
            f"(.clk(clk), .rst(rst), .x({bus}), .y({wire}));"
        )
        bus = wire
    for k in range(component.output_registers):
        register = "data_out_reg" if k == 0 else f"data_out_reg{k}"
        lines.append(f"  reg [{outputs.port_width - 1}:0] {register} = 0;")
        always.append(f"    {register} <= {bus};")
        bus = register
    lines.append(f"  assign data_out = {bus};")
    for layer, tap in zip(tapped, taps, strict=True):
        lines.append(f"  assign {tap} = {wire_of[id(layer)]};")
    valid = "valid_in"
    for stage in range(component.latency):
        lines.append(f"  reg valid_{stage} = 1'b0;")
        always.append(f"    valid_{stage} <= rst ? 1'b0 : {valid};")
        valid = f"valid_{stage}"
    lines.append(f"  assign valid_out = {valid};")
    lines += ["  always @(posedge clk) begin", *always, "  end", "endmodule", ""]
    header = "// Generated by hgq-rtl (direct writer, rtl_gen/netlist_verilog.py)\n"
    cell_text = _ternary_adder_module(name) + _CELL_MODELS if cells else ""
    return header + "\n".join(modules + lines) + cell_text
