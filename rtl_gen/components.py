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

from hgq_rtl.ir.dense import DenseLayer, accumulator_frac_bits
from hgq_rtl.ir.fixed import Activation, Overflow, RoundMode, bits_for_range
from hgq_rtl.ir.formats import TensorFormat
from hgq_rtl.ir.model import IRModel

from .adder_graph import SharedAdderGraph
from .adder_patterns import Term
from .adder_tree import Node, RangeModel, SumPlan, csd, plan_sum

#: Default number of adder levels between two pipeline registers.
DEFAULT_ADDER_LEVELS_PER_STAGE = 2
#: Shared patterns are at most this many adder levels deep: on the digits model, deeper sharing
#: saves under 1 % more adders but adds levels to every output's critical path.
DEFAULT_MAX_SHARED_DEPTH = 3


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
    """Pure-integer plan of a dense layer: exact widths, optionally shared subexpressions.

    Each output sums its CSD terms in a balanced tree. With ``share`` (the default), patterns
    ``x_a ± (x_b << d)`` that recur across the layer are first built once
    (:class:`~rtl_gen.adder_graph.SharedAdderGraph`) and the trees sum references to them.
    With ``ternary``, the output trees are built of three-input adders (``a + b ± c``, one LUT
    per bit on AMD/Xilinx parts with the direct writer's primitives); shared patterns stay
    two-input.

    Rounding to nearest is folded into the bias (``RND(y) = TRN(y + 1/2)``), so the requantizer
    is a bit slice, a ReLU mux where the value can be negative, and a clamp only for SAT where
    the value can leave the output range.
    """

    def __init__(
        self,
        layer: DenseLayer,
        input_format: TensorFormat,
        *,
        share: bool = True,
        max_shared_depth: int | None = DEFAULT_MAX_SHARED_DEPTH,
        ternary: bool = False,
    ) -> None:
        self.layer = layer
        self.ternary = ternary
        self.input_format = input_format
        self._depth: dict[int, int] = {}
        lo, hi = input_format.int_range()
        self.ranges = RangeModel([int(v) for v in lo], [int(v) for v in hi])
        frac = accumulator_frac_bits(layer, input_format)
        live_inputs = input_format.width > 0
        terms = []
        for i in range(layer.out_features):
            shifts = frac[i] - layer.weight_frac_bits[i] - input_format.frac_bits
            live = (layer.weight[i] != 0) & live_inputs
            terms.append(
                [
                    Term(int(j), position + int(shifts[j]), digit < 0)
                    for j in np.flatnonzero(live)
                    for position, digit in csd(int(layer.weight[i, j]))
                ]
            )
        inputs = {int(j): self.ranges.leaf(int(j), 0, 1) for j in np.flatnonzero(live_inputs)}
        if share:
            graph = SharedAdderGraph(self.ranges, terms, inputs, max_depth=max_shared_depth)
            self.shared = graph.shared
            leaves_of = graph.leaves
        else:
            self.shared = []

            def leaves_of(i: int) -> list[Node]:
                return [self.ranges.ref(inputs[t.variable], t.shift, t.negative) for t in terms[i]]

        self.neurons = []
        for i in range(layer.out_features):
            leaves = leaves_of(i)
            rescale = int(frac[i] - layer.output.frac_bits[i])
            constant = 0
            if layer.bias[i] != 0:
                constant = int(layer.bias[i]) << int(frac[i] - layer.bias_frac_bits[i])
            if layer.round_mode is RoundMode.RND and rescale > 0:
                constant += 1 << (rescale - 1)
            if constant:
                leaves.append(self.ranges.const(constant))
            tree = plan_sum(self.ranges, leaves, self.node_depth, arity=3 if ternary else 2)
            self.neurons.append(NeuronPlan(tree, rescale))

    def node_depth(self, node: Node) -> int:
        """Adder levels between the inputs and ``node``."""
        if node.ident not in self._depth:
            if node.kind == "ref":
                depth = self.node_depth(node.operands[0])
            elif node.kind == "add":
                depth = 1 + max(self.node_depth(op) for op in node.operands)
            else:
                depth = 0
            self._depth[node.ident] = depth
        return self._depth[node.ident]

    @property
    def depth(self) -> int:
        """Adder levels of the deepest output."""
        return max(self.node_depth(n.tree.root) for n in self.neurons)

    def adders(self) -> list[Node]:
        """Every adder of the layer: shared patterns first, then the output trees."""
        return list(self.shared) + [a for n in self.neurons for a in n.tree.adders()]

    def adder_count(self) -> int:
        return len(self.adders())

    def adder_bits(self) -> int:
        """Sum of adder output widths: a first-order LUT estimate."""
        return sum(a.width for a in self.adders())


@dataclass(frozen=True)
class DelayModel:
    """A first-order timing model for placing pipeline registers (defaults: UltraScale+-like).

    An adder of ``w`` output bits takes ``level_ns + bit_ns * w`` (a LUT level plus its carry
    chain), a three-input adder one LUT level more (each bit's LUT reads the carry-save bit of
    the bit below); a requantizer with a ReLU or SAT mux takes ``level_ns``; every register
    costs ``register_ns`` (clock-to-out + setup) of the period.
    """

    level_ns: float = 0.45
    bit_ns: float = 0.015
    register_ns: float = 0.35

    def adder(self, width: int, operands: int = 2) -> float:
        return self.level_ns * (operands - 1) + self.bit_ns * width


def _schedule_levels(plan: DensePlan, levels_per_stage: int) -> dict[int, tuple[int, float]]:
    """Stage of every adder: a register after every ``levels_per_stage`` adder levels."""
    return {a.ident: ((plan.node_depth(a) - 1) // levels_per_stage, 0.0) for a in plan.adders()}


def _schedule_delay(
    plan: DensePlan, clock_ns: float, model: DelayModel
) -> dict[int, tuple[int, float]]:
    """Stage and arrival time of every adder, registering where the period would be exceeded.

    Adders are visited in order of depth; each starts in the latest stage of its operands and
    moves to the next stage (its operands registered) when its arrival time would pass
    ``clock_ns``. Greedy as-soon-as-possible, so values travel as far as the period allows.
    """
    budget = clock_ns - model.register_ns
    timing: dict[int, tuple[int, float]] = {}

    def at(node: Node) -> tuple[int, float]:
        while node.kind == "ref":
            node = node.operands[0]
        return timing.get(node.ident, (0, 0.0))

    for adder in sorted(plan.adders(), key=plan.node_depth):
        operands = [at(op) for op in adder.operands]
        stage = max(s for s, _ in operands)
        start = max((t for s, t in operands if s == stage), default=0.0)
        delay = model.adder(adder.width, len(adder.operands))
        finish = start + delay
        if finish > budget and start > 0:
            stage, finish = stage + 1, delay
        timing[adder.ident] = (stage, finish)
    return timing


class DenseComponent(wiring.Component):
    """A fully unrolled, pipelined dense layer with constant weights.

    Ports: ``x`` (input bus, :class:`BusLayout` of the input format) and ``y`` (output bus).
    Pipelining: a register after every ``adder_levels_per_stage`` adder levels, or, with
    ``clock_ns``, wherever the :class:`DelayModel` says the period would be exceeded. A value
    used in a later stage than its own passes through a delay line; the requantized output is
    registered. :attr:`latency` is the number of registers from ``x`` to ``y``.
    """

    def __init__(
        self,
        layer: DenseLayer,
        input_format: TensorFormat,
        *,
        adder_levels_per_stage: int = DEFAULT_ADDER_LEVELS_PER_STAGE,
        clock_ns: float | None = None,
        share: bool = True,
        delay_model: DelayModel | None = None,
        ternary: bool = False,
    ) -> None:
        if not isinstance(adder_levels_per_stage, int) or adder_levels_per_stage < 1:
            raise ValueError(
                f"adder_levels_per_stage must be a positive integer, not {adder_levels_per_stage!r}"
            )
        if clock_ns is not None and not clock_ns > 0:
            raise ValueError(f"clock_ns must be > 0, not {clock_ns!r}")
        self.layer = layer
        self.share = share
        self.ternary = ternary
        self.plan = DensePlan(layer, input_format, share=share, ternary=ternary)
        self.adder_levels_per_stage = adder_levels_per_stage
        self.clock_ns = clock_ns
        self.delay_model = delay_model or DelayModel()
        self.input_layout = BusLayout.of(input_format)
        self.output_layout = BusLayout.of(layer.output)
        if clock_ns is None:
            self.timing = _schedule_levels(self.plan, adder_levels_per_stage)
        else:
            self.timing = _schedule_delay(self.plan, clock_ns, self.delay_model)
        self.final_stage = self._final_stage()
        self.latency = self.final_stage + 1
        super().__init__(
            {"x": In(self.input_layout.port_width), "y": Out(self.output_layout.port_width)}
        )

    def stage(self, node: Node) -> int:
        while node.kind == "ref":
            node = node.operands[0]
        return self.timing.get(node.ident, (0, 0.0))[0]

    def _final_stage(self) -> int:
        """The stage the requantizers run in (after every root is available)."""
        final = 0
        for neuron in self.plan.neurons:
            root = neuron.tree.root
            stage = self.stage(root)
            if self.clock_ns is not None:
                node = root
                while node.kind == "ref":
                    node = node.operands[0]
                arrival = self.timing.get(node.ident, (0, 0.0))[1]
                budget = self.clock_ns - self.delay_model.register_ns
                if arrival > 0 and arrival + self.delay_model.level_ns > budget:
                    stage += 1
            final = max(final, stage)
        return final

    def register_bits(self) -> int:
        """Pipeline and delay-line register bits inside the layer (output register excluded)."""
        bits = 0
        for node, lines in self._delay_lines().items():
            bits += node.width * lines
        return bits

    def _delay_lines(self) -> dict[Node, int]:
        """How many registers each value needs to reach the latest stage that reads it."""
        latest: dict[int, int] = {}
        nodes: dict[int, Node] = {}

        def use(node: Node, stage: int) -> None:
            while node.kind == "ref":
                node = node.operands[0]
            if node.kind == "const":
                return
            nodes[node.ident] = node
            latest[node.ident] = max(latest.get(node.ident, 0), stage)

        for adder in self.plan.adders():
            for op in adder.operands:
                use(op, self.stage(adder))
        for neuron in self.plan.neurons:
            use(neuron.tree.root, self.final_stage)
        return {
            nodes[k]: latest[k] - self.stage(nodes[k])
            for k in latest
            if latest[k] > self.stage(nodes[k])
        }

    def elaborate(self, platform) -> Module:
        m = Module()
        prefix = self.layer.name
        inputs = self.input_layout.fields(self.x)
        own: dict[int, Value] = {}
        delayed: dict[tuple[int, int], Value] = {}

        def at(node: Node, stage: int) -> Value:
            """``node``'s signal as seen in ``stage`` (through a delay line if needed)."""
            while node.kind == "ref":
                node = node.operands[0]
            if node.kind == "const":
                return C(node.hi, _shape(node.lo, node.hi))
            home = self.stage(node)
            if stage == home:
                return inputs[node.input_index] if node.kind == "input" else own[node.ident]
            key = (node.ident, stage)
            if key not in delayed:
                reg = Signal(
                    _shape(node.lo, node.hi),
                    name=f"{prefix}_v{node.ident}_s{stage}",
                    reset_less=True,
                )
                m.d.sync += reg.eq(at(node, stage - 1))
                delayed[key] = reg
            return delayed[key]

        for adder in sorted(self.plan.adders(), key=self.plan.node_depth):
            stage = self.stage(adder)
            total = None
            for op, subtracted in zip(adder.operands, adder.subtracted, strict=True):
                term = at(op, stage) << (op.shift - adder.shift)
                if total is None:  # the first operand is never subtracted
                    total = term
                else:
                    total = total - term if subtracted else total + term
            sig = Signal(_shape(adder.lo, adder.hi), name=f"{prefix}_a{adder.ident}_s{stage}")
            m.d.comb += sig.eq(total)
            own[adder.ident] = sig

        y = Signal(self.output_layout.port_width, name=f"{prefix}_y", reset_less=True)
        for i, neuron in enumerate(self.plan.neurons):
            width = self.output_layout.width[i]
            if width == 0:
                continue
            lsb = self.output_layout.lsb[i]
            root = at(neuron.tree.root, self.final_stage)
            m.d.sync += y[lsb : lsb + width].eq(self._requantize(m, i, neuron, root))
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
    share
        Build recurring patterns ``x_a ± (x_b << d)`` once per layer (default True).
    clock_ns
        Place registers by a delay model for this clock period instead of every
        ``adder_levels_per_stage`` levels.
    ternary
        Sum each output's terms with three-input adders (:class:`DensePlan`).

    Raises
    ------
    ValueError
        When ``ir`` is not a chain of dense layers (:meth:`IRModel.is_dense_chain`): the
        generator has no max pooling, addition, concatenation, lookup or requantizer blocks.
    """

    def __init__(
        self,
        ir: IRModel,
        *,
        adder_levels_per_stage: int = DEFAULT_ADDER_LEVELS_PER_STAGE,
        register_inputs: bool = True,
        debug_taps: bool = False,
        share: bool = True,
        clock_ns: float | None = None,
        ternary: bool = False,
    ) -> None:
        problem = ir.dense_chain_problem()
        if problem is not None:
            raise ValueError(
                "RTL generation supports chains of dense layers (convolutions and average "
                f"pooling freeze to dense layers); {problem}"
            )
        self.ir = ir
        self.register_inputs = register_inputs
        self.debug_taps = debug_taps
        self.layers = [
            DenseComponent(
                layer,
                fmt,
                adder_levels_per_stage=adder_levels_per_stage,
                clock_ns=clock_ns,
                share=share,
                ternary=ternary,
            )
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
