"""The whole network as one component: a block per layer, joined as the IR's graph says.

Ports (computed from the IR in ``__init__``):

* ``data_in``  — every input element packed LSB first at its :class:`BusLayout` offset (a model
  with several inputs has a port ``data_in_<name>`` for each, in the same way),
* ``valid_in`` — high when ``data_in`` carries a vector (one vector per clock, II = 1),
* ``data_out`` — every output element packed the same way,
* ``valid_out`` — ``valid_in`` delayed by :attr:`NetworkComponent.latency` cycles,
* ``tap_<layer>`` — with ``debug_taps``, each hidden layer's output bus.

Port names made of model names (``data_in_<name>``, ``tap_<layer>``) are plain Verilog
identifiers, unique among the ports (:mod:`rtl_gen.identifiers`): a name outside ASCII or a
Verilog keyword is spelled differently (the manifest gives every port's name).

Values are two's complement when their format is signed; zero-width elements have no bits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from amaranth.hdl import Module, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hgq_rtl.ir.formats import TensorFormat, concat_formats
from hgq_rtl.ir.lowering import lower_layer
from hgq_rtl.ir.model import IRModel, Layer

from .blocks import AddComponent, ConcatComponent, MaxPoolComponent, QuantizeComponent
from .components import DEFAULT_ADDER_LEVELS_PER_STAGE, BusLayout, DenseComponent
from .identifiers import TOP_PORTS, input_ports, tap_ports
from .lookup import ROM_MIN_BITS, LookupComponent
from .schedule import fit_latency, schedule_network
from .timing import AMD, DelayModel, check_pipelining


@dataclass(frozen=True)
class BlockOptions:
    """The generator options the blocks take (see :class:`NetworkComponent`)."""

    adder_levels_per_stage: int = DEFAULT_ADDER_LEVELS_PER_STAGE
    clock_ns: float | None = None
    share: bool = True
    ternary: bool = False
    rom_min_bits: int = ROM_MIN_BITS
    delay_model: DelayModel = AMD


Block = (
    DenseComponent
    | QuantizeComponent
    | MaxPoolComponent
    | AddComponent
    | ConcatComponent
    | LookupComponent
)

#: The block of each layer kind, from the layer, the formats of its inputs and the options.
#: (``conv`` and ``maxpool_nd`` layers are built as their lowering: ``dense`` and ``maxpool``.)
BLOCKS: dict[str, Callable[[Layer, tuple[TensorFormat, ...], BlockOptions], Block]] = {
    "dense": lambda layer, formats, o: DenseComponent(
        layer,
        formats[0],
        adder_levels_per_stage=o.adder_levels_per_stage,
        clock_ns=o.clock_ns,
        share=o.share,
        delay_model=o.delay_model,
        ternary=o.ternary,
    ),
    "quantize": lambda layer, formats, o: QuantizeComponent(
        layer, formats[0], delay_model=o.delay_model
    ),
    "maxpool": lambda layer, formats, o: MaxPoolComponent(
        layer,
        formats[0],
        adder_levels_per_stage=o.adder_levels_per_stage,
        clock_ns=o.clock_ns,
        delay_model=o.delay_model,
    ),
    "add": lambda layer, formats, o: AddComponent(
        layer,
        formats,
        adder_levels_per_stage=o.adder_levels_per_stage,
        clock_ns=o.clock_ns,
        delay_model=o.delay_model,
        ternary=o.ternary,
    ),
    "concat": lambda layer, formats, o: ConcatComponent(layer, formats),
    "lookup": lambda layer, formats, o: LookupComponent(
        layer, formats[0], rom_min_bits=o.rom_min_bits, delay_model=o.delay_model
    ),
}


def build_block(layer: Layer, formats: tuple[TensorFormat, ...], options: BlockOptions) -> Block:
    """The hardware block of ``layer`` reading tensors of ``formats`` (:data:`BLOCKS`)."""
    layer = lower_layer(layer)
    if layer.kind not in BLOCKS:
        raise ValueError(f"layer {layer.name!r} is a {layer.kind} layer, which has no RTL block")
    return BLOCKS[layer.kind](layer, formats, options)


class NetworkComponent(wiring.Component):
    """The whole network: an input register, a block per layer, a valid shift register.

    The layers are built in the IR's (topological) order. Every tensor has an *arrival*: the
    cycle, counted from ``data_in``, at which its bus holds the vector's value (the input's is 1
    with the input register, else 0; a layer's is the latest arrival among its inputs plus its
    block's latency). A layer reading several tensors reads each through a delay line (shared
    by the readers of a tensor), so all arrive in the same cycle. Where the registers go is
    :attr:`schedule` (:mod:`rtl_gen.schedule`): per layer (every layer's output registered), or
    with ``clock_ns`` or ``latency`` one delay-model schedule across layer boundaries.
    :attr:`latency` is the output layer's arrival plus :attr:`output_registers`; ``valid_out``
    is ``valid_in`` through that many registers. A network has at least one register, so that
    it has a clock: when the output would arrive in cycle 0 (no input register, wiring-only
    layers), ``data_out`` is registered (:attr:`register_output`); across layer boundaries it
    always is.

    Parameters
    ----------
    ir
        The frozen integer model: any graph of the layer kinds in :data:`BLOCKS`, on one input
        (port ``data_in``) or several (a port ``data_in_<name>`` each, all under ``valid_in``).
    adder_levels_per_stage
        Adder (or comparator) levels between pipeline registers inside each layer (default 2).
    register_inputs
        Register ``data_in`` before the first layer (default True; adds one cycle).
    debug_taps
        Also bring every hidden layer's output bus out on a port ``tap_<layer>`` (for
        debugging a mismatch layer by layer; :meth:`tap_latency` gives when each is valid).
    share
        Build recurring patterns ``x_a ± (x_b << d)`` once per dense layer (default True).
    clock_ns
        Place registers by a delay model for this clock period, across layer boundaries,
        instead of every ``adder_levels_per_stage`` levels in each layer.
    ternary
        Sum with three-input adders (:class:`~rtl_gen.components.DensePlan`).
    rom_min_bits
        Lookup tables of more bits than this are ROMs, smaller ones logic
        (:data:`~rtl_gen.lookup.ROM_MIN_BITS` by default).
    latency
        Take exactly this many cycles: the delay-model schedule at ``clock_ns`` or, without it,
        at the shortest period that takes no more (:func:`~rtl_gen.schedule.fit_latency`).
    delay_model
        The :class:`~rtl_gen.timing.DelayModel` of the schedule (default:
        :data:`~rtl_gen.timing.AMD`; :func:`rtl_gen.emit.build` takes the one of
        ``RtlOptions.family``).

    Raises
    ------
    ValueError
        When ``ir`` has a layer kind without a block, or ``latency`` is fewer cycles than the
        network needs (or than ``clock_ns`` needs).
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
        rom_min_bits: int = ROM_MIN_BITS,
        latency: int | None = None,
        delay_model: DelayModel | None = None,
    ) -> None:
        check_pipelining(adder_levels_per_stage, clock_ns)
        self.ir = ir
        self.register_inputs = register_inputs
        self.debug_taps = debug_taps
        self.adder_levels_per_stage = adder_levels_per_stage
        self.share = share
        self.ternary = ternary
        self.delay_model = delay_model or AMD
        options = BlockOptions(
            adder_levels_per_stage, clock_ns, share, ternary, rom_min_bits, self.delay_model
        )
        self.layers: list[Block] = [
            build_block(layer, ir.input_formats_of(layer), options) for layer in ir.layers
        ]
        #: per model input: its port and the layout of its bus
        self.input_buses = {
            model_input.name: (port, BusLayout.of(model_input.format))
            for model_input, port in zip(
                ir.inputs, input_ports([i.name for i in ir.inputs]), strict=True
            )
        }
        #: the latency asked for (None: as the schedule gives)
        self.latency_target = latency
        if latency is None:
            self.schedule = schedule_network(ir, self.layers, register_inputs, clock_ns)
        else:
            self.schedule = fit_latency(
                ir, self.layers, register_inputs, latency, clock_ns, self.delay_model
            )
        #: the period the registers were placed for (None: per layer)
        self.clock_ns = self.schedule.clock_ns
        #: cycle at which each tensor (the inputs, every layer's output) holds the vector's value
        self.arrival = self.schedule.arrival
        #: per layer, the delay-line length of each of its inputs
        self.input_delays = self.schedule.input_delays
        #: the model's input vector: the inputs' elements one after the other
        self.input_format = concat_formats([model_input.format for model_input in ir.inputs])
        self.input_layout = BusLayout.of(self.input_format)
        self.output_layout = BusLayout.of(ir.output)
        #: registers after the output layer (``data_out_reg``, then ``data_out_reg<k>``)
        self.output_registers = self.schedule.output_registers
        self.register_output = self.output_registers > 0
        self.latency = self.schedule.latency(ir)
        members = {
            **{port: In(layout.port_width) for port, layout in self.input_buses.values()},
            "valid_in": In(1),
            "data_out": Out(self.output_layout.port_width),
            "valid_out": Out(1),
        }
        #: the debug-tap port of each tapped layer, by layer name (rtl_gen.identifiers)
        tapped = [layer.layer.name for layer in self.tapped_layers()]
        reserved = [*TOP_PORTS, *(port for port, _ in self.input_buses.values())]
        self.tap_port_of = dict(zip(tapped, tap_ports(tapped, reserved), strict=True))
        for layer in self.tapped_layers():
            members[self.tap_port_of[layer.layer.name]] = Out(layer.output_layout.port_width)
        super().__init__(members)

    def tapped_layers(self) -> list[Block]:
        """The layers whose output has a debug port (all but the last, with ``debug_taps``)."""
        return self.layers[:-1] if self.debug_taps else []

    def tap_latency(self, index: int) -> int:
        """Cycles from ``data_in`` to the output of layer ``index``."""
        return self.arrival[self.ir.layers[index].name]

    def delay_line_bits(self) -> int:
        """Register bits of the delay lines that align the inputs of multi-input layers."""
        longest: dict[str, int] = {}
        for layer in self.ir.layers:
            for name, delay in zip(
                self.ir.inputs_of(layer), self.input_delays[layer.name], strict=True
            ):
                longest[name] = max(longest.get(name, 0), delay)
        widths = {name: layout.port_width for name, (_, layout) in self.input_buses.items()}
        widths.update({b.layer.name: b.output_layout.port_width for b in self.layers})
        return sum(widths[name] * delay for name, delay in longest.items())

    def register_bits(self) -> int:
        """Every data register bit: the input registers, the delay lines, the registers inside
        and at the output of each layer, and the output registers (the valid bits excluded)."""
        bits = self.delay_line_bits() + self.output_registers * self.output_layout.port_width
        if self.register_inputs:
            bits += sum(layout.port_width for _, layout in self.input_buses.values())
        for block in self.layers:
            bits += block.statistics().get("pipeline_register_bits", 0)
            if block.register_output:
                bits += block.output_layout.total_width
        return bits

    def elaborate(self, platform) -> Module:
        m = Module()
        buses: dict[str, Value] = {}
        for name, (port, layout) in self.input_buses.items():
            buses[name] = getattr(self, port)
            if self.register_inputs:
                registered = Signal(layout.port_width, name=f"{port}_reg", reset_less=True)
                m.d.sync += registered.eq(buses[name])
                buses[name] = registered
        delayed: dict[tuple[str, int], Value] = {}

        def source(name: str, delay: int) -> Value:
            """Tensor ``name`` ``delay`` cycles late (one shift register per tensor)."""
            if delay == 0:
                return buses[name]
            if (name, delay) not in delayed:
                reg = Signal(len(buses[name]), name=f"{name}_d{delay}", reset_less=True)
                m.d.sync += reg.eq(source(name, delay - 1))
                delayed[name, delay] = reg
            return delayed[name, delay]

        for layer, block in zip(self.ir.layers, self.layers, strict=True):
            m.submodules[layer.name] = block
            for port, name, delay in zip(
                block.input_ports,
                self.ir.inputs_of(layer),
                self.input_delays[layer.name],
                strict=True,
            ):
                m.d.comb += getattr(block, port).eq(source(name, delay))
            buses[layer.name] = block.y
        output = buses[self.ir.layers[-1].name]
        for k in range(self.output_registers):
            name = "data_out_reg" if k == 0 else f"data_out_reg{k}"
            registered = Signal(self.output_layout.port_width, name=name, reset_less=True)
            m.d.sync += registered.eq(output)
            output = registered
        m.d.comb += self.data_out.eq(output)
        for layer in self.tapped_layers():
            m.d.comb += getattr(self, self.tap_port_of[layer.layer.name]).eq(layer.y)
        valid = self.valid_in
        for stage in range(self.latency):
            reg = Signal(name=f"valid_{stage}")
            m.d.sync += reg.eq(valid)
            valid = reg
        m.d.comb += self.valid_out.eq(valid)
        return m
