"""Amaranth components built from the IR: pipelined, fully unrolled dense layers and networks.

Ports (computed from the IR in ``__init__``):

* ``data_in``  — every input element packed LSB first at its :class:`BusLayout` offset,
* ``valid_in`` — high when ``data_in`` carries a vector (one vector per clock, II = 1),
* ``data_out`` — every output element packed the same way,
* ``valid_out`` — ``valid_in`` delayed by :attr:`NetworkComponent.latency` cycles.

Values are two's complement when their format is signed; zero-width elements have no bits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from amaranth.hdl import C, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hgq_rtl.ir.fixed import Activation, Overflow, RoundMode, bits_for_range
from hgq_rtl.ir.model import DenseLayer, IRModel, TensorFormat, accumulator_frac_bits

from .adder_tree import Node, RangeModel, SumPlan, dot_product_leaves, plan_sum

#: Default number of adder levels between two pipeline registers.
DEFAULT_ADDER_LEVELS_PER_STAGE = 2


@dataclass(frozen=True)
class BusLayout:
    """Where each element of a tensor lies in a flat bus: bits ``[lsb, lsb + width)``."""

    lsb: tuple[int, ...]
    width: tuple[int, ...]
    signed: tuple[bool, ...]

    @classmethod
    def of(cls, fmt: TensorFormat) -> BusLayout:
        widths = [int(w) for w in fmt.width]
        lsb = np.concatenate([[0], np.cumsum(widths)[:-1]]).astype(int) if widths else []
        return cls(tuple(int(v) for v in lsb), tuple(widths), tuple(bool(s) for s in fmt.signed))

    @property
    def total_width(self) -> int:
        return sum(self.width)

    @property
    def port_width(self) -> int:
        """Width of the port carrying the bus (at least 1 bit, so Verilog has a port)."""
        return max(self.total_width, 1)

    def pack(self, values: np.ndarray) -> list[int]:
        """Integer rows ``(n, elements)`` to bus integers (two's complement fields)."""
        words = [0] * len(values)
        for k, (lsb, width) in enumerate(zip(self.lsb, self.width, strict=True)):
            if width == 0:
                continue
            mask = (1 << width) - 1
            for n, v in enumerate(values[:, k].tolist()):
                words[n] |= (v & mask) << lsb
        return words

    def unpack(self, words: list[int]) -> np.ndarray:
        """Bus integers to integer rows ``(n, elements)`` (sign-extending signed fields)."""
        out = np.zeros((len(words), len(self.width)), np.int64)
        for k, (lsb, width, is_signed) in enumerate(
            zip(self.lsb, self.width, self.signed, strict=True)
        ):
            if width == 0:
                continue
            mask = (1 << width) - 1
            for n, word in enumerate(words):
                v = (word >> lsb) & mask
                out[n, k] = v - (1 << width) if is_signed and v >> (width - 1) else v
        return out

    def fields(self, bus: Value) -> list[Value | None]:
        """Each element of ``bus`` with its signedness; ``None`` for zero-width elements."""
        out = []
        for lsb, width, is_signed in zip(self.lsb, self.width, self.signed, strict=True):
            if width == 0:
                out.append(None)
                continue
            field = bus[lsb : lsb + width]
            out.append(field.as_signed() if is_signed else field.as_unsigned())
        return out


def _shape(lo: int, hi: int):
    is_signed, width = bits_for_range(lo, hi)
    return signed(max(width, 1)) if is_signed else unsigned(max(width, 1))


@dataclass
class NeuronPlan:
    """The arithmetic of one output element: its sum tree and its requantization."""

    tree: SumPlan
    rescale: int  # acc >> rescale gives the output integer (negative: shift left)


class DensePlan:
    """Pure-integer plan of a dense layer: one :class:`SumPlan` per output, exact widths.

    Rounding to nearest is folded into the bias (``RND(y) = TRN(y + 1/2)``), so the requantizer
    is a bit slice, a ReLU mux where the value can be negative, and a clamp only for SAT where
    the value can leave the output range.
    """

    def __init__(self, layer: DenseLayer, input_format: TensorFormat) -> None:
        self.layer = layer
        self.input_format = input_format
        lo, hi = input_format.int_range()
        self.ranges = RangeModel([int(v) for v in lo], [int(v) for v in hi])
        frac = accumulator_frac_bits(layer, input_format)
        live_inputs = input_format.width > 0
        self.neurons = []
        for i in range(layer.out_features):
            shifts = frac[i] - layer.weight_frac_bits[i] - input_format.frac_bits
            live = (layer.weight[i] != 0) & live_inputs
            leaves = dot_product_leaves(
                self.ranges,
                [int(w) for w in layer.weight[i]],
                [int(s) if ok else 0 for s, ok in zip(shifts, live, strict=True)],
                [bool(v) for v in live],
            )
            rescale = int(frac[i] - layer.output.frac_bits[i])
            constant = 0
            if layer.bias[i] != 0:
                constant = int(layer.bias[i]) << int(frac[i] - layer.bias_frac_bits[i])
            if layer.round_mode is RoundMode.RND and rescale > 0:
                constant += 1 << (rescale - 1)
            if constant:
                leaves.append(self.ranges.const(constant))
            self.neurons.append(NeuronPlan(plan_sum(self.ranges, leaves), rescale))

    @property
    def depth(self) -> int:
        """Adder levels of the deepest output."""
        return max(n.tree.depth for n in self.neurons)

    def adder_count(self) -> int:
        return sum(len(n.tree.adders()) for n in self.neurons)

    def adder_bits(self) -> int:
        """Sum of adder output widths: a first-order LUT estimate."""
        return sum(a.width for n in self.neurons for a in n.tree.adders())


class DenseComponent(wiring.Component):
    """A fully unrolled, pipelined dense layer with constant weights.

    Ports: ``x`` (input bus, :class:`BusLayout` of the input format) and ``y`` (output bus).
    A pipeline register follows every ``adder_levels_per_stage`` adder levels; the requantized
    output is registered. :attr:`latency` is the number of registers from ``x`` to ``y``.
    """

    def __init__(
        self,
        layer: DenseLayer,
        input_format: TensorFormat,
        *,
        adder_levels_per_stage: int = DEFAULT_ADDER_LEVELS_PER_STAGE,
    ) -> None:
        if not isinstance(adder_levels_per_stage, int) or adder_levels_per_stage < 1:
            raise ValueError(
                f"adder_levels_per_stage must be a positive integer, not {adder_levels_per_stage!r}"
            )
        self.layer = layer
        self.plan = DensePlan(layer, input_format)
        self.adder_levels_per_stage = adder_levels_per_stage
        self.input_layout = BusLayout.of(input_format)
        self.output_layout = BusLayout.of(layer.output)
        depth = self.plan.depth
        self.latency = max(1, -(-depth // adder_levels_per_stage))
        super().__init__(
            {"x": In(self.input_layout.port_width), "y": Out(self.output_layout.port_width)}
        )

    def _register_after(self, level: int) -> bool:
        return level % self.adder_levels_per_stage == 0 and level < self.plan.depth

    def elaborate(self, platform) -> Module:
        m = Module()
        prefix = self.layer.name
        inputs = self.input_layout.fields(self.x)
        signals: dict[int, Value] = {}

        def value(node: Node) -> Value:
            if node.ident in signals:
                return signals[node.ident]
            if node.kind == "input":
                return inputs[node.input_index]
            if node.kind == "const":
                return C(node.hi, _shape(node.lo, node.hi))
            raise AssertionError("an adder is built before it is used")

        for level in range(1, self.plan.depth + 1):
            for i, neuron in enumerate(self.plan.neurons):
                if level > neuron.tree.depth:
                    continue
                for node in neuron.tree.levels[level]:
                    if node.kind != "add" or node.ident in signals:
                        continue
                    a, b = node.operands
                    lhs = value(a) << (a.shift - node.shift)
                    rhs = value(b) << (b.shift - node.shift)
                    sig = Signal(
                        _shape(node.lo, node.hi), name=f"{prefix}_o{i}_l{level}_{node.ident}"
                    )
                    m.d.comb += sig.eq(lhs - rhs if node.subtract else lhs + rhs)
                    signals[node.ident] = sig
            if self._register_after(level):
                for i, neuron in enumerate(self.plan.neurons):
                    current = neuron.tree.levels[min(level, neuron.tree.depth)]
                    for node in current:
                        if node.kind == "const":
                            continue
                        reg = Signal(
                            _shape(node.lo, node.hi),
                            name=f"{prefix}_o{i}_r{level}_{node.ident}",
                            reset_less=True,
                        )
                        m.d.sync += reg.eq(value(node))
                        signals[node.ident] = reg

        out_bits = []
        for i, neuron in enumerate(self.plan.neurons):
            width = self.output_layout.width[i]
            if width == 0:
                continue
            out_bits.append((i, self._requantize(m, i, neuron, value(neuron.tree.root))))
        y = Signal(self.output_layout.port_width, name=f"{prefix}_y", reset_less=True)
        for i, bits in out_bits:
            lsb, width = self.output_layout.lsb[i], self.output_layout.width[i]
            m.d.sync += y[lsb : lsb + width].eq(bits)
        m.d.comb += self.y.eq(y)
        return m

    def _requantize(self, m: Module, i: int, neuron: NeuronPlan, root: Value) -> Value:
        """Output integer ``i`` (its low ``width`` bits) from the accumulator's root node."""
        layer = self.layer
        node = neuron.tree.root
        lo, hi = node.lo, node.hi
        if node.negative:
            root, lo, hi = -root, -hi, -lo
        # value = root << node.shift; output = floor(value / 2**rescale)
        shift = node.shift - neuron.rescale
        if shift >= 0:
            q, lo, hi = root << shift, lo << shift, hi << shift
        else:
            q, lo, hi = root >> -shift, lo >> -shift, hi >> -shift
        if layer.activation is Activation.RELU and lo < 0:
            q, lo, hi = Mux(q < 0, 0, q), 0, max(hi, 0)
        out_lo, out_hi = (int(v[i]) for v in layer.output.int_range())
        if layer.overflow is Overflow.SAT and (lo < out_lo or hi > out_hi):
            q = Mux(q > out_hi, out_hi, Mux(q < out_lo, out_lo, q))
        sig = Signal(_shape(min(lo, out_lo), max(hi, out_hi)), name=f"{layer.name}_q{i}")
        m.d.comb += sig.eq(q)
        return sig[: self.output_layout.width[i]]


class NetworkComponent(wiring.Component):
    """The whole network: an input register, the layers in a pipeline, a valid shift register.

    Parameters
    ----------
    ir
        The frozen integer model.
    adder_levels_per_stage
        Adder levels between pipeline registers inside each layer (default 2).
    register_inputs
        Register ``data_in`` before the first layer (default True; adds one cycle).
    debug_taps
        Also bring every hidden layer's output bus out on a port ``tap_<layer>`` (for
        debugging a mismatch layer by layer; :meth:`tap_latency` gives when each is valid).
    """

    def __init__(
        self,
        ir: IRModel,
        *,
        adder_levels_per_stage: int = DEFAULT_ADDER_LEVELS_PER_STAGE,
        register_inputs: bool = True,
        debug_taps: bool = False,
    ) -> None:
        self.ir = ir
        self.register_inputs = register_inputs
        self.debug_taps = debug_taps
        self.layers = [
            DenseComponent(layer, fmt, adder_levels_per_stage=adder_levels_per_stage)
            for layer, fmt in zip(ir.layers, ir.input_formats(), strict=True)
        ]
        self.input_layout = BusLayout.of(ir.input)
        self.output_layout = BusLayout.of(ir.output)
        self.latency = int(register_inputs) + sum(layer.latency for layer in self.layers)
        members = {
            "data_in": In(self.input_layout.port_width),
            "valid_in": In(1),
            "data_out": Out(self.output_layout.port_width),
            "valid_out": Out(1),
        }
        for layer in self.tapped_layers():
            members[f"tap_{layer.layer.name}"] = Out(layer.output_layout.port_width)
        super().__init__(members)

    def tapped_layers(self) -> list[DenseComponent]:
        """The layers whose output has a debug port (all but the last, with ``debug_taps``)."""
        return self.layers[:-1] if self.debug_taps else []

    def tap_latency(self, index: int) -> int:
        """Cycles from ``data_in`` to the output of layer ``index``."""
        return int(self.register_inputs) + sum(layer.latency for layer in self.layers[: index + 1])

    def elaborate(self, platform) -> Module:
        m = Module()
        bus = self.data_in
        if self.register_inputs:
            registered = Signal(self.input_layout.port_width, name="data_in_reg", reset_less=True)
            m.d.sync += registered.eq(self.data_in)
            bus = registered
        for layer in self.layers:
            m.submodules[layer.layer.name] = layer
            m.d.comb += layer.x.eq(bus)
            bus = layer.y
        m.d.comb += self.data_out.eq(bus)
        for layer in self.tapped_layers():
            m.d.comb += getattr(self, f"tap_{layer.layer.name}").eq(layer.y)
        valid = self.valid_in
        for stage in range(self.latency):
            reg = Signal(name=f"valid_{stage}")
            m.d.sync += reg.eq(valid)
            valid = reg
        m.d.comb += self.valid_out.eq(valid)
        return m
