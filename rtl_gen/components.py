"""Amaranth components built from the IR: pipelined, fully unrolled dense layers.

:class:`BusLayout` says where each element of a tensor lies in a flat bus (elements packed LSB
first; two's complement when signed; zero-width elements have no bits). :class:`DensePlan` is
the pure-integer plan of a dense layer (adder trees, shared patterns, exact ranges),
:class:`DenseComponent` its pipelined hardware, :class:`RequantizeSteps` the requantizer shared
with the quantize block. The other layer kinds are in :mod:`rtl_gen.blocks`, the network of
them in :mod:`rtl_gen.network`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from amaranth.hdl import C, Cat, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hgq_rtl.ir.dense import DenseLayer, accumulator_frac_bits
from hgq_rtl.ir.fixed import Activation, Overflow, RoundMode, bits_for_range, shift_folded
from hgq_rtl.ir.formats import TensorFormat

from .adder_graph import SharedAdderGraph
from .adder_patterns import Term
from .adder_tree import Node, RangeModel, SumPlan, csd, plan_sum
from .timing import AMD, DelayModel, check_pipelining, schedule_delay, schedule_levels

#: Default number of adder levels between two pipeline registers.
DEFAULT_ADDER_LEVELS_PER_STAGE = 2
#: Shared patterns are at most this many adder levels deep: on the digits model, deeper sharing
#: saves under 1 % more adders but adds levels to every output's critical path.
DEFAULT_MAX_SHARED_DEPTH = 3
#: The bound with three-input adders: a shared pattern is a two-input adder whose terms the output
#: trees' three-input adders would otherwise absorb, so deep patterns pay less. On the digits model
#: (``hgq-rtl rtl`` defaults: --family amd, 5 ns) depth 2 plans 25 fewer LUTs and 51 fewer register
#: bits than depth 3 (by the plan's count: a LUT per adder bit, two per second subtraction).
DEFAULT_TERNARY_MAX_SHARED_DEPTH = 2


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

    def drive(self, m: Module, name: str, parts: list[Value], *, registered: bool) -> Signal:
        """A bus signal ``name`` with element ``k`` set to ``parts[k]`` (sign- or zero-extended
        or cut to its width: each part's range must fit its element's format), through a
        register (``sync``, without reset) when ``registered``."""
        bus = Signal(self.port_width, name=name, reset_less=True)
        domain = m.d.sync if registered else m.d.comb
        for lsb, width, part in zip(self.lsb, self.width, parts, strict=True):
            if width:
                domain += bus[lsb : lsb + width].eq(part)
        return bus

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


def range_shape(lo: int, hi: int):
    """The Amaranth shape of a signal holding exactly ``lo .. hi`` (at least 1 bit)."""
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
    two-input, and those whose every use fits a tree's free adder input are taken back
    (:meth:`~rtl_gen.adder_graph.SharedAdderGraph.fill_spare_slots`); a pattern used only
    inside another is built into it, one three-input shared adder
    (:meth:`~rtl_gen.adder_graph.SharedAdderGraph.fuse_single_uses`), and the patterns that
    cost more LUTs than they save are written back
    (:meth:`~rtl_gen.adder_graph.SharedAdderGraph.unshare_unprofitable`).

    Rounding to nearest is folded into the bias (``RND(y) = TRN(y + 1/2)``), so the requantizer
    is a bit slice (its LSB cleared on a tie for ``RND_CONV``), a ReLU mux where the value can
    be negative, and a clamp only for SAT where the value can leave the output range.
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
        rescales = [int(frac[i] - layer.output.frac_bits[i]) for i in range(layer.out_features)]
        constants = []
        for i, rescale in enumerate(rescales):
            constant = 0
            if layer.bias[i] != 0:
                constant = int(layer.bias[i]) << int(frac[i] - layer.bias_frac_bits[i])
            if layer.round_mode is not RoundMode.TRN and rescale > 0:
                constant += 1 << (rescale - 1)
            constants.append(constant)
        self._build(
            input_format,
            terms,
            constants,
            rescales,
            share=share,
            max_shared_depth=max_shared_depth,
            ternary=ternary,
        )

    def _build(
        self,
        input_format: TensorFormat,
        terms: list[list[Term]],
        constants: list[int],
        rescales: list[int],
        *,
        share: bool,
        max_shared_depth: int | None,
        ternary: bool,
    ) -> None:
        """Plan output ``i`` as the sum of ``terms[i]`` and ``constants[i]``, to be shifted right
        by ``rescales[i]`` (left when negative); variable ``j`` of a term is input element ``j``."""
        self.ternary = ternary
        self.input_format = input_format
        self._depth: dict[int, int] = {}
        lo, hi = input_format.int_range()
        self.ranges = RangeModel([int(v) for v in lo], [int(v) for v in hi])
        live_inputs = input_format.width > 0
        inputs = {int(j): self.ranges.leaf(int(j), 0, 1) for j in np.flatnonzero(live_inputs)}
        if share:
            graph = SharedAdderGraph(self.ranges, terms, inputs, max_depth=max_shared_depth)
            if ternary:
                extra = [int(constant != 0) for constant in constants]
                graph.fill_spare_slots(extra)
                graph.fuse_single_uses(extra)
                graph.unshare_unprofitable(constants, self.node_depth)
            self.shared = graph.shared
            leaves_of = graph.leaves
        else:
            self.shared = []

            def leaves_of(i: int) -> list[Node]:
                return [self.ranges.ref(inputs[t.variable], t.shift, t.negative) for t in terms[i]]

        self.neurons = []
        for i, (constant, rescale) in enumerate(zip(constants, rescales, strict=True)):
            leaves = leaves_of(i)
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


class DenseComponent(wiring.Component):
    """A fully unrolled, pipelined dense layer with constant weights.

    Ports: ``x`` (input bus, :class:`BusLayout` of the input format) and ``y`` (output bus).
    Pipelining: a register after every ``adder_levels_per_stage`` adder levels, or, with
    ``clock_ns``, wherever the :class:`DelayModel` says the period would be exceeded. A value
    used in a later stage than its own passes through a delay line; the requantized output is
    registered (unless :meth:`schedule` says otherwise). :attr:`latency` is the number of
    registers from ``x`` to ``y``; :attr:`input_registers` is always 0 (the layer registers the
    input elements it needs itself, see :meth:`schedule`).
    """

    input_registers = 0

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
        check_pipelining(adder_levels_per_stage, clock_ns)
        self.layer = layer
        self.share = share
        self.ternary = ternary
        self.plan = self._make_plan(input_format)
        self.adder_levels_per_stage = adder_levels_per_stage
        self.delay_model = delay_model or AMD
        self.input_layout = BusLayout.of(input_format)
        self.output_layout = BusLayout.of(layer.output)
        self.schedule(clock_ns)
        super().__init__(self._ports())

    def schedule(
        self, clock_ns: float | None, *, start_ns: float = 0.0, register_output: bool = True
    ) -> None:
        """Place the layer's registers (again): every ``adder_levels_per_stage`` levels, or,
        with ``clock_ns``, by the delay model for inputs arriving ``start_ns`` after the last
        register. ``register_output=False`` leaves the requantized output unregistered (for a
        network that places registers across layer boundaries), so :attr:`latency` counts the
        registers inside the layer only and :attr:`output_ns` is the output's delay from the
        last of them. The constructor schedules with the defaults."""
        check_pipelining(self.adder_levels_per_stage, clock_ns)
        self.clock_ns = clock_ns
        self.start_ns = start_ns if clock_ns is not None else 0.0
        if clock_ns is None:
            self.timing = schedule_levels(self.plan, self.adder_levels_per_stage)
        else:
            self.timing = schedule_delay(self.plan, clock_ns, self.delay_model, self.start_ns)
        self.final_stage, output_ns = self._final_stage()
        self.register_output = register_output
        self.latency = self.final_stage + int(register_output)
        self.output_ns = 0.0 if register_output else output_ns

    #: The component's input ports, in the order of the layer's inputs.
    input_ports: tuple[str, ...] = ("x",)

    def _make_plan(self, input_format: TensorFormat) -> DensePlan:
        depth = DEFAULT_TERNARY_MAX_SHARED_DEPTH if self.ternary else DEFAULT_MAX_SHARED_DEPTH
        return DensePlan(
            self.layer,
            input_format,
            share=self.share,
            ternary=self.ternary,
            max_shared_depth=depth,
        )

    def _ports(self) -> dict[str, wiring.Member]:
        return {"x": In(self.input_layout.port_width), "y": Out(self.output_layout.port_width)}

    def _input_fields(self) -> list[Value | None]:
        """Every input element (``None`` for zero-width ones), as the plan numbers them."""
        return self.input_layout.fields(self.x)

    @property
    def activation(self) -> Activation:
        return self.layer.activation

    @property
    def overflow(self) -> Overflow:
        return self.layer.overflow

    def statistics(self) -> dict[str, int]:
        """The layer's figures for the manifest: adder levels, adders, pipeline registers."""
        return {
            "adder_depth": self.plan.depth,
            "adders": self.plan.adder_count(),
            "adder_bits": self.plan.adder_bits(),
            "shared_adders": len(self.plan.shared),
            "pipeline_register_bits": self.register_bits(),
        }

    def stage(self, node: Node) -> int:
        while node.kind == "ref":
            node = node.operands[0]
        return self.timing.get(node.ident, (0, 0.0))[0]

    def _arrival(self, node: Node) -> tuple[int, float]:
        """``(stage, ns)``: where ``node``'s value is made and its delay from the stage's
        register (``ns`` is 0 in the level schedule)."""
        while node.kind == "ref":
            node = node.operands[0]
        if node.kind == "input":
            return 0, self.start_ns
        return self.timing.get(node.ident, (0, 0.0))

    def _requantizer_path(self, i: int) -> tuple[int, int]:
        """``(LUT levels, carry-chain bits)`` of output ``i``'s requantizer: a negation's carry
        chain where the root is negative, a mux level each for a ReLU and a SAT clamp (a shift
        is wiring; ``RND_CONV``'s tie test runs beside the mux selects and ends in bit 0's mux
        LUT: a level only where there is no mux)."""
        neuron = self.plan.neurons[i]
        steps = self._steps(i, neuron)
        node = neuron.tree.root
        levels, bits = (1, node.width) if node.negative else (0, 0)
        return levels + max(steps.relu + steps.saturate, steps.even), bits

    def requantizer_ns(self, i: int) -> float:
        """Delay of output ``i``'s requantizer (:meth:`_requantizer_path` in the delay model)."""
        levels, bits = self._requantizer_path(i)
        return levels * self.delay_model.level_ns + bits * self.delay_model.bit_ns

    def critical_path(self, model: DelayModel | None = None) -> tuple[float, int, int]:
        """The longest register-to-register path inside the layer by ``model`` (default: the
        layer's own), through the registers the layer has (either schedule): ``(ns, levels,
        bits)`` with ``ns = start + levels * level_ns + bits * bit_ns + register_ns``, the LUT
        levels and carry-chain bits along it (``start``: ``start_ns`` where the path begins at
        unregistered inputs). For comparing the model with measured timing and fitting its
        constants (``benchmarks/delay_model.py``)."""
        model = model or self.delay_model
        zero = (0.0, 0, 0)
        paths: dict[int, tuple[float, int, int]] = {}

        def at(node: Node, stage: int) -> tuple[float, int, int]:
            while node.kind == "ref":
                node = node.operands[0]
            if node.kind == "input":
                return (self.start_ns, 0, 0) if stage == 0 else zero
            if node.kind != "add" or self.stage(node) != stage:
                return zero  # a constant, or a value registered before this stage
            return paths.get(node.ident, zero)

        def plus(path: tuple[float, int, int], levels: int, bits: int) -> tuple[float, int, int]:
            ns = path[0] + levels * model.level_ns + bits * model.bit_ns
            return ns, path[1] + levels, path[2] + bits

        for adder in sorted(self.plan.adders(), key=self.plan.node_depth):
            stage = self.stage(adder)
            start = max((at(op, stage) for op in adder.operands), key=lambda p: p[0])
            paths[adder.ident] = plus(start, len(adder.operands) - 1, adder.width)
        ends = list(paths.values())
        for i, neuron in enumerate(self.plan.neurons):
            if self.output_layout.width[i]:
                start = at(neuron.tree.root, self.final_stage)
                ends.append(plus(start, *self._requantizer_path(i)))
        ns, levels, bits = max(ends, key=lambda p: p[0], default=zero)
        return ns + model.register_ns, levels, bits

    def _final_stage(self) -> tuple[int, float]:
        """The stage the requantizers run in (after every root is available), and the delay of
        the slowest requantized output from that stage's register."""
        if self.clock_ns is None:
            return max((self.stage(n.tree.root) for n in self.plan.neurons), default=0), 0.0
        budget = self.delay_model.budget(self.clock_ns)
        finish = []
        for i, neuron in enumerate(self.plan.neurons):
            stage, arrival = self._arrival(neuron.tree.root)
            delay = self.requantizer_ns(i) if self.output_layout.width[i] else 0.0
            if arrival > 0 and arrival + delay > budget:
                stage, arrival = stage + 1, 0.0
            finish.append((stage, arrival + delay, delay))
        final = max((stage for stage, _, _ in finish), default=0)
        output_ns = max(
            (ns if stage == final else delay for stage, ns, delay in finish), default=0.0
        )
        return final, output_ns

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
        inputs = self._input_fields()
        own: dict[int, Value] = {}
        delayed: dict[tuple[int, int], Value] = {}

        def at(node: Node, stage: int) -> Value:
            """``node``'s signal as seen in ``stage`` (through a delay line if needed)."""
            while node.kind == "ref":
                node = node.operands[0]
            if node.kind == "const":
                return C(node.hi, range_shape(node.lo, node.hi))
            home = self.stage(node)
            if stage == home:
                return inputs[node.input_index] if node.kind == "input" else own[node.ident]
            key = (node.ident, stage)
            if key not in delayed:
                reg = Signal(
                    range_shape(node.lo, node.hi),
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
            sig = Signal(range_shape(adder.lo, adder.hi), name=f"{prefix}_a{adder.ident}_s{stage}")
            m.d.comb += sig.eq(total)
            own[adder.ident] = sig

        y = Signal(self.output_layout.port_width, name=f"{prefix}_y", reset_less=True)
        for i, neuron in enumerate(self.plan.neurons):
            width = self.output_layout.width[i]
            if width == 0:
                continue
            lsb = self.output_layout.lsb[i]
            root = at(neuron.tree.root, self.final_stage)
            domain = "sync" if self.register_output else "comb"
            m.d[domain] += y[lsb : lsb + width].eq(self._requantize(m, i, neuron, root))
        m.d.comb += self.y.eq(y)
        return m

    def _steps(self, i: int, neuron: NeuronPlan) -> RequantizeSteps:
        node = neuron.tree.root
        lo, hi = (-node.hi, -node.lo) if node.negative else (node.lo, node.hi)
        out_lo, out_hi = (int(v[i]) for v in self.layer.output.int_range())
        # value = root << node.shift; output = floor(value / 2**rescale) (+1/2 in the tree)
        rounding = getattr(self.layer, "round_mode", None)  # add layers never round
        even = rounding is RoundMode.RND_CONV and neuron.rescale > 0
        shift = node.shift - neuron.rescale
        return RequantizeSteps.of(
            lo, hi, shift, self.activation, self.overflow, out_lo, out_hi, even=even
        )

    def _requantize(self, m: Module, i: int, neuron: NeuronPlan, root: Value) -> Value:
        """Output integer ``i`` (its low ``width`` bits) from the accumulator's root node."""
        if neuron.tree.root.negative:
            root = -root
        name = f"{self.layer.name}_q{i}"
        return self._steps(i, neuron).build(m, name, root, self.output_layout.width[i])


@dataclass(frozen=True)
class RequantizeSteps:
    """The tail of a dense layer (and all of a quantize layer) on a value in ``[lo, hi]``:
    ``value << shift`` (a flooring right shift when ``shift < 0``: a bit slice), a ReLU mux only
    where the shifted value can be negative, a SAT clamp only where it can leave
    ``[out_lo, out_hi]``; WRAP keeps the low bits. Rounding to nearest is not a step: it is a
    ``+1/2`` constant folded into the value beforehand; ``even`` (``RND_CONV``) then clears the
    kept LSB on a tie, an OR of the dropped bits and one AND (:func:`.fixed.shift_folded`)."""

    shift: int
    relu: bool
    saturate: bool
    lo: int  # range after the shift and the ReLU
    hi: int
    out_lo: int
    out_hi: int
    even: bool = False

    @classmethod
    def of(
        cls,
        lo: int,
        hi: int,
        shift: int,
        activation: Activation,
        overflow: Overflow,
        out_lo: int,
        out_hi: int,
        *,
        even: bool = False,
    ) -> RequantizeSteps:
        lo, hi = (shift_folded(v, shift, even) for v in (lo, hi))
        relu = activation is Activation.RELU and lo < 0
        if relu:
            lo, hi = 0, max(hi, 0)
        saturate = overflow is Overflow.SAT and (lo < out_lo or hi > out_hi)
        return cls(shift, relu, saturate, lo, hi, out_lo, out_hi, even)

    def build(self, m: Module, name: str, value: Value, width: int) -> Value:
        """The low ``width`` bits of the result for ``value``, through a signal ``name``."""
        shift = self.shift
        q = value << shift if shift >= 0 else value >> -shift
        if self.even and len(q):  # LSB & (any dropped bit set); none dropped: every value ties
            kept = value[:-shift].any() if shift < 0 else C(0, 1)
            bits = Cat(q[0] & kept, q[1:])
            q = bits.as_signed() if q.shape().signed else bits
        if self.relu:
            q = Mux(q < 0, 0, q)
        out_lo, out_hi = self.out_lo, self.out_hi
        if self.saturate:
            q = Mux(q > out_hi, out_hi, Mux(q < out_lo, out_lo, q))
        sig = Signal(range_shape(min(self.lo, out_lo), max(self.hi, out_hi)), name=name)
        m.d.comb += sig.eq(q)
        return sig[:width]
