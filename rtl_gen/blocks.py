"""Hardware blocks of the layer kinds other than dense: quantize, maxpool, add, concat (and
lookup, in :mod:`rtl_gen.lookup`).

Each block is a :class:`~amaranth.lib.wiring.Component` built from one IR layer and the formats
of its inputs, with the semantics of :mod:`hgq_rtl.ir.reference` exactly:

* ports ``x`` (one input) or ``x0, x1, ...`` (:attr:`input_ports`, in the order of the layer's
  ``inputs``) and ``y``, flat buses laid out by :meth:`BusLayout.of` of each format;
* :attr:`latency`, the registers from the inputs to ``y``: 0 when the block is wiring only,
  else its output is registered (the ``sync`` domain, without reset: only the network's valid
  pipeline is reset);
* every signal exactly as wide as the range its formats give;
* :meth:`statistics`, the block's figures for the manifest.

:class:`AddComponent` is a :class:`~rtl_gen.components.DenseComponent` whose plan sums the
aligned inputs (weight 1, no requantization), so it shares the dense layer's adder trees,
pipelining, delay model and ternary adders.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from amaranth.hdl import C, Cat, Module, Mux, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hgq_rtl.ir.fixed import Activation, Overflow, RoundMode, bits_for_range
from hgq_rtl.ir.formats import TensorFormat, alignment_shifts, concat_formats
from hgq_rtl.ir.layers import (
    AddLayer,
    ConcatLayer,
    MaxPoolLayer,
    QuantizeLayer,
    quantize_shifts,
)

from .adder_patterns import Term
from .components import (
    DEFAULT_ADDER_LEVELS_PER_STAGE,
    BusLayout,
    DenseComponent,
    DensePlan,
    RequantizeSteps,
    range_shape,
)
from .timing import DelayModel, check_pipelining, combinational_timing, level_boundaries


class QuantizeComponent(wiring.Component):
    """A :class:`~hgq_rtl.ir.layers.QuantizeLayer`: each element rounded, activated and wrapped
    or saturated into its output format by the dense layer's requantizer
    (:class:`~rtl_gen.components.RequantizeSteps`): ``RND`` is a ``+1/2`` constant added only
    where bits are dropped, the shift a bit slice (``RND_CONV``: the same, its LSB cleared on a
    tie), ReLU a mux only where the value can be negative, ``SAT`` a clamp only where the value
    can leave the output range, ``WRAP`` the slice. :attr:`latency` is 1, or 0 when every
    element is a slice (no adder, no mux).
    """

    input_ports = ("x",)

    def __init__(
        self,
        layer: QuantizeLayer,
        input_format: TensorFormat,
        *,
        delay_model: DelayModel | None = None,
    ) -> None:
        self.layer = layer
        self.input_layout = BusLayout.of(input_format)
        self.output_layout = BusLayout.of(layer.output)
        shifts = quantize_shifts(layer, input_format)
        self.input_range = lo, hi = input_format.int_range()
        out_lo, out_hi = layer.output.int_range()
        #: per element: (rounding constant, steps), or None for the constant 0
        self.elements: list[tuple[int, RequantizeSteps] | None] = []
        for i in range(layer.output.size):
            if self.input_layout.width[i] == 0 or self.output_layout.width[i] == 0:
                self.elements.append(None)
                continue
            shift = int(shifts[i])
            rounds = layer.round_mode is not RoundMode.TRN and shift > 0
            half = 1 << (shift - 1) if rounds else 0
            steps = RequantizeSteps.of(
                int(lo[i]) + half,
                int(hi[i]) + half,
                -shift,
                layer.activation,
                layer.overflow,
                int(out_lo[i]),
                int(out_hi[i]),
                even=rounds and layer.round_mode is RoundMode.RND_CONV,
            )
            self.elements.append((half, steps))
        self.delay_model = delay_model or DelayModel()
        self.schedule(None)
        super().__init__(
            {"x": In(self.input_layout.port_width), "y": Out(self.output_layout.port_width)}
        )

    def logic_ns(self) -> float:
        """Delay of the slowest element: its rounding adder, tie test and ReLU and SAT muxes."""
        model, delays = self.delay_model, [0.0]
        for element in self.elements:
            if element is not None:
                half, steps = element
                adder = model.adder(bits_for_range(steps.lo, steps.hi)[1] + 1) if half else 0.0
                levels = max(steps.relu + steps.saturate, steps.even)  # as DenseComponent
                delays.append(adder + model.level_ns * levels)
        return max(delays)

    def schedule(
        self, clock_ns: float | None, *, start_ns: float = 0.0, register_output: bool = True
    ) -> None:
        """Registered output (:attr:`latency` 1, or 0 when every element is a slice), or with
        ``register_output=False`` none: then :attr:`input_registers` is 1 when the inputs,
        arriving ``start_ns`` after a register, must be registered to meet ``clock_ns``, and
        :attr:`output_ns` is the output's delay from the last register."""
        logic = any(self.statistics().values())
        self.register_output = register_output and logic
        self.latency = int(self.register_output)
        self.input_registers, self.output_ns = combinational_timing(
            self.logic_ns() if logic else 0.0, clock_ns, start_ns, self.delay_model
        )
        if self.register_output:
            self.input_registers, self.output_ns = 0, 0.0

    def statistics(self) -> dict[str, int]:
        """Rounding adders, ReLU muxes and saturating clamps."""
        live = [e for e in self.elements if e is not None]
        return {
            "rounding_adders": sum(bool(half) for half, _ in live),
            "relu_muxes": sum(steps.relu for _, steps in live),
            "saturators": sum(steps.saturate for _, steps in live),
        }

    def elaborate(self, platform) -> Module:
        m = Module()
        fields = self.input_layout.fields(self.x)
        parts = []
        for i, element in enumerate(self.elements):
            width = self.output_layout.width[i]
            if element is None:
                parts.append(C(0, width))
                continue
            half, steps = element
            value = fields[i]
            if half:  # round to nearest: +1/2 of the output's step, then the slice floors
                lo, hi = (int(bound[i]) + half for bound in self.input_range)
                rounded = Signal(range_shape(lo, hi), name=f"{self.layer.name}_r{i}")
                m.d.comb += rounded.eq(value + half)
                value = rounded
            parts.append(steps.build(m, f"{self.layer.name}_q{i}", value, width))
        y = self.output_layout.drive(
            m, f"{self.layer.name}_y", parts, registered=self.register_output
        )
        m.d.comb += self.y.eq(y)
        return m


@dataclass(eq=False)
class _MaxNode:
    """An operand of a comparator tree: an aligned input element (``element >= 0``), the
    constant 0 (``element == -1``, no operands), or the maximum of two ``operands``."""

    lo: int
    hi: int
    element: int = -1
    shift: int = 0
    operands: tuple[_MaxNode, ...] = ()

    @property
    def width(self) -> int:
        return bits_for_range(self.lo, self.hi)[1]


class MaxPoolComponent(wiring.Component):
    """A :class:`~hgq_rtl.ir.layers.MaxPoolLayer`: per output a tree of comparators (each
    ``Mux(a > b, a, b)``) over its window, every input aligned to the output's fractional bits by
    an exact left shift.

    Before the tree, repeated indices count once, every zero-width input is one constant 0, and
    an operand that can never exceed another (``hi <= other.lo``) is dropped, so a window whose
    maximum is known from the ranges costs nothing. The operands are sorted by input element and
    paired neighbour by neighbour, and a comparator of the same pair is built once for all the
    windows that hold it (overlapping windows). The trees advance level by level: a register
    after every ``adder_levels_per_stage`` comparator levels, or, with ``clock_ns``, wherever the
    :class:`~rtl_gen.timing.DelayModel` says the period would be exceeded; the output is
    registered. :attr:`latency` is 0 when no output needs a comparator.
    """

    input_ports = ("x",)

    def __init__(
        self,
        layer: MaxPoolLayer,
        input_format: TensorFormat,
        *,
        adder_levels_per_stage: int = DEFAULT_ADDER_LEVELS_PER_STAGE,
        clock_ns: float | None = None,
        delay_model: DelayModel | None = None,
    ) -> None:
        check_pipelining(adder_levels_per_stage, clock_ns)
        self.layer = layer
        self.input_layout = BusLayout.of(input_format)
        self.output_layout = BusLayout.of(layer.output)
        shifts = alignment_shifts(layer.output.frac_bits, input_format, layer.windows)
        lo, hi = input_format.int_range()
        zero = _MaxNode(0, 0)
        leaves: dict[tuple[int, int], _MaxNode] = {}  # (element, shift) -> its aligned value
        pairs: dict[tuple[int, int], _MaxNode] = {}  # (id(a), id(b)) -> max(a, b)

        def maximum(a: _MaxNode, b: _MaxNode) -> _MaxNode:
            if (id(a), id(b)) not in pairs:
                pairs[id(a), id(b)] = _MaxNode(max(a.lo, b.lo), max(a.hi, b.hi), operands=(a, b))
            return pairs[id(a), id(b)]

        #: per output, its tree as levels of nodes: levels[0] the operands, levels[-1] the root
        self.trees: list[list[list[_MaxNode]]] = []
        for i, window in enumerate(layer.windows.tolist()):
            level = []
            for j, element in enumerate(window):
                if self.input_layout.width[element] == 0:
                    node = zero
                else:
                    s = int(shifts[i, j])
                    key = (element, s)
                    if key not in leaves:
                        leaves[key] = _MaxNode(int(lo[element]) << s, int(hi[element]) << s, *key)
                    node = leaves[key]
                if node not in level:
                    level.append(node)
            if self.output_layout.width[i] == 0:
                level = [zero]  # the maximum is 0
            while True:  # drop an operand that never exceeds another one
                dominated = [b for b in level if any(a is not b and a.lo >= b.hi for a in level)]
                if not dominated:
                    break
                level.remove(dominated[0])
            level.sort(key=lambda node: node.element)
            levels = [level]
            while len(level) > 1:
                paired = [maximum(a, b) for a, b in zip(level[0::2], level[1::2], strict=False)]
                level = paired + level[len(paired) * 2 :]
                levels.append(level)
            self.trees.append(levels)
        self.depth = max((len(levels) - 1 for levels in self.trees), default=0)
        self.adder_levels_per_stage = adder_levels_per_stage
        self.delay_model = delay_model or DelayModel()
        self.level_delays = [
            max(
                (self.delay_model.comparator(self._compare_width(n)) for n in self._comparators(k)),
                default=0.0,
            )
            for k in range(1, self.depth + 1)
        ]
        self.schedule(clock_ns)
        super().__init__(
            {"x": In(self.input_layout.port_width), "y": Out(self.output_layout.port_width)}
        )

    def schedule(
        self, clock_ns: float | None, *, start_ns: float = 0.0, register_output: bool = True
    ) -> None:
        """Place the registers between comparator levels (:func:`~rtl_gen.timing.level_boundaries`)
        and register the output (:attr:`latency`: the boundaries + 1, or 0 without comparators).
        With ``register_output=False`` the output is not registered, the inputs arrive
        ``start_ns`` after a register, :attr:`input_registers` is 1 when they must be registered
        before the first level, and :attr:`output_ns` is the output's delay from the last
        register."""
        check_pipelining(self.adder_levels_per_stage, clock_ns)
        start = 0.0 if register_output else start_ns
        boundaries, elapsed = level_boundaries(
            self.level_delays, self.adder_levels_per_stage, clock_ns, self.delay_model, start
        )
        self.input_registers = int(0 in boundaries)
        self.boundaries = [k for k in boundaries if k > 0]
        self.register_output = register_output and self.depth > 0
        self.latency = len(self.boundaries) + int(self.register_output)
        self.output_ns = 0.0 if self.register_output else elapsed
        if clock_ns is None and not register_output:
            self.output_ns = 0.0

    def _level(self, i: int, k: int) -> list[_MaxNode]:
        """Output ``i``'s nodes after ``k`` comparator levels."""
        levels = self.trees[i]
        return levels[min(k, len(levels) - 1)]

    def _comparators(self, k: int) -> list[_MaxNode]:
        """The comparators of level ``k`` (1 to :attr:`depth`), each once."""
        found = {
            id(n): n
            for levels in self.trees
            if k < len(levels)
            for n in levels[k]
            if n.operands and n not in levels[k - 1]
        }
        return list(found.values())

    def _registered(self, k: int) -> list[_MaxNode]:
        """The values registered after level ``k`` (a boundary), each once: every value of every
        tree at that level but the constants."""
        found = {id(n): n for i in range(len(self.trees)) for n in self._level(i, k) if n.hi > n.lo}
        return list(found.values())

    @staticmethod
    def _compare_width(node: _MaxNode) -> int:
        a, b = node.operands
        return bits_for_range(min(a.lo, b.lo), max(a.hi, b.hi))[1]

    def statistics(self) -> dict[str, int]:
        """Comparator levels and count, the sum of their result widths, and the bits of the
        registers between levels (output register excluded)."""
        comparators = [n for k in range(1, self.depth + 1) for n in self._comparators(k)]
        registered = [n for k in self.boundaries for n in self._registered(k)]
        return {
            "comparator_depth": self.depth,
            "comparators": len(comparators),
            "comparator_bits": sum(n.width for n in comparators),
            "pipeline_register_bits": sum(n.width for n in registered),
        }

    def elaborate(self, platform) -> Module:
        m = Module()
        prefix = self.layer.name
        fields = self.input_layout.fields(self.x)
        current: dict[int, Value] = {}  # id of a node -> its value in the present stage

        def value(node: _MaxNode) -> Value:
            if id(node) not in current:
                if node.element < 0:
                    return C(node.lo, range_shape(node.lo, node.hi))
                current[id(node)] = fields[node.element] << node.shift
            return current[id(node)]

        for k in range(1, self.depth + 1):
            for n, node in enumerate(self._comparators(k)):
                a, b = (value(op) for op in node.operands)
                sig = Signal(range_shape(node.lo, node.hi), name=f"{prefix}_l{k}_m{n}")
                m.d.comb += sig.eq(Mux(a > b, a, b))
                current[id(node)] = sig
            if k in self.boundaries:
                for n, node in enumerate(self._registered(k)):
                    shape = range_shape(node.lo, node.hi)
                    reg = Signal(shape, name=f"{prefix}_l{k}_r{n}", reset_less=True)
                    m.d.sync += reg.eq(value(node))
                    current[id(node)] = reg
        roots = [value(levels[-1][0]) for levels in self.trees]
        y = self.output_layout.drive(m, f"{prefix}_y", roots, registered=self.register_output)
        m.d.comb += self.y.eq(y)
        return m


class AddPlan(DensePlan):
    """The plan of an :class:`~hgq_rtl.ir.layers.AddLayer` as a dense plan: output ``i`` sums
    element ``i`` of every input, each shifted left to the output's fractional bits (the
    variables number the concatenated inputs), with no constant and no rescale."""

    def __init__(
        self, layer: AddLayer, input_formats: tuple[TensorFormat, ...], *, ternary: bool = False
    ) -> None:
        self.layer = layer
        size = layer.output.size
        terms: list[list[Term]] = [[] for _ in range(size)]
        index = np.arange(size)[:, None]
        for t, fmt in enumerate(input_formats):
            shifts = alignment_shifts(layer.output.frac_bits, fmt, index)[:, 0]
            for i in np.flatnonzero(fmt.width > 0):
                terms[i].append(Term(t * size + int(i), int(shifts[i]), False))
        zeros = [0] * size
        self._build(
            concat_formats(input_formats),
            terms,
            zeros,
            zeros,
            share=False,
            max_shared_depth=None,
            ternary=ternary,
        )


class AddComponent(DenseComponent):
    """An :class:`~hgq_rtl.ir.layers.AddLayer`: per output an adder tree over the aligned inputs
    (:class:`AddPlan`), pipelined as a dense layer's (``adder_levels_per_stage``, ``clock_ns``,
    ``ternary``); the exact sum is registered (:attr:`latency` >= 1). Ports ``x0, x1, ...``."""

    def __init__(
        self,
        layer: AddLayer,
        input_formats: tuple[TensorFormat, ...],
        *,
        adder_levels_per_stage: int = DEFAULT_ADDER_LEVELS_PER_STAGE,
        clock_ns: float | None = None,
        delay_model: DelayModel | None = None,
        ternary: bool = False,
    ) -> None:
        self.input_formats = tuple(input_formats)
        self.input_layouts = tuple(BusLayout.of(fmt) for fmt in self.input_formats)
        self.input_ports = tuple(f"x{t}" for t in range(len(self.input_formats)))
        super().__init__(
            layer,
            concat_formats(self.input_formats),
            adder_levels_per_stage=adder_levels_per_stage,
            clock_ns=clock_ns,
            share=False,
            delay_model=delay_model,
            ternary=ternary,
        )

    @property
    def activation(self) -> Activation:
        return Activation.LINEAR

    @property
    def overflow(self) -> Overflow:
        return Overflow.WRAP  # the exact sum fits: the requantizer is a slice

    def _make_plan(self, input_format: TensorFormat) -> DensePlan:
        return AddPlan(self.layer, self.input_formats, ternary=self.ternary)

    def _ports(self) -> dict[str, wiring.Member]:
        ports = {
            port: In(layout.port_width)
            for port, layout in zip(self.input_ports, self.input_layouts, strict=True)
        }
        return {**ports, "y": Out(self.output_layout.port_width)}

    def _input_fields(self) -> list[Value | None]:
        return [
            field
            for port, layout in zip(self.input_ports, self.input_layouts, strict=True)
            for field in layout.fields(getattr(self, port))
        ]


class ConcatComponent(wiring.Component):
    """A :class:`~hgq_rtl.ir.layers.ConcatLayer`: the input buses side by side (wiring only,
    :attr:`latency` 0). Ports ``x0, x1, ...``."""

    latency = 0
    input_registers = 0
    register_output = False
    output_ns = 0.0

    def __init__(self, layer: ConcatLayer, input_formats: tuple[TensorFormat, ...]) -> None:
        self.layer = layer
        self.input_layouts = tuple(BusLayout.of(fmt) for fmt in input_formats)
        self.input_ports = tuple(f"x{t}" for t in range(len(input_formats)))
        self.output_layout = BusLayout.of(layer.output)
        ports = {
            port: In(layout.port_width)
            for port, layout in zip(self.input_ports, self.input_layouts, strict=True)
        }
        super().__init__({**ports, "y": Out(self.output_layout.port_width)})

    def statistics(self) -> dict[str, int]:
        return {}

    def schedule(
        self, clock_ns: float | None, *, start_ns: float = 0.0, register_output: bool = True
    ) -> None:
        """Wiring: the output arrives with the inputs (:attr:`output_ns` is ``start_ns``)."""
        self.output_ns = start_ns if clock_ns is not None else 0.0

    def elaborate(self, platform) -> Module:
        m = Module()
        parts = [
            getattr(self, port)[: layout.total_width]
            for port, layout in zip(self.input_ports, self.input_layouts, strict=True)
        ]
        m.d.comb += self.y.eq(Cat(*parts))
        return m
