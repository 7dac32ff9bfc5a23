"""Where a network's registers go: per layer, or one delay-model schedule across layer boundaries.

Two schedules place the registers of a :class:`~rtl_gen.network.NetworkComponent`:

* **per layer** (no clock period): every block keeps its own schedule (a register every
  ``adder_levels_per_stage`` levels) and registers its output, so each layer costs at least one
  cycle;
* **across layer boundaries** (a clock period): one greedy as-soon-as-possible pass of the
  :class:`~rtl_gen.timing.DelayModel` over the whole network, in the IR's topological order.
  Each block is scheduled with its inputs arriving ``start_ns`` after the last register
  (the latest of its inputs) and leaves its output unregistered; a register goes only where the
  next operation would pass the period: inside a block (a dense layer registers the values,
  input elements included, that its later adder levels read), or before a block whose first
  operation does not fit (the network registers its inputs, :attr:`input_registers`). The
  network's output is registered once, so a design meets the period at its ports.

:func:`fit_latency` turns a cycle count into such a schedule: the one at the given clock, or at
the shortest period (by the model) that takes no more cycles; a schedule with fewer cycles than
asked for is padded with output registers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from hgq_rtl.ir.model import IRModel

from .timing import AMD, DelayModel

#: A clock period long enough for any network's logic: the schedule with the fewest cycles.
UNBOUNDED_NS = 1e9
#: Where :func:`fit_latency` starts its search for the shortest period.
SEARCH_NS = 1e3


@dataclass
class NetworkSchedule:
    """The registers of a network, as cycles counted from ``data_in``.

    ``arrival[t]``: the cycle in which tensor ``t`` (an input, a layer's output) holds the
    vector's value, ``arrival_ns[t]`` its delay from the last register (0 per layer).
    ``input_delays[layer]``: the registers (a shared delay line per tensor) each of the layer's
    inputs passes before the layer. ``output_registers``: registers after the output layer.
    ``clock_ns``: the period the registers were placed for (None: per layer).
    """

    clock_ns: float | None
    register_inputs: bool
    arrival: dict[str, int] = field(default_factory=dict)
    arrival_ns: dict[str, float] = field(default_factory=dict)
    input_delays: dict[str, tuple[int, ...]] = field(default_factory=dict)
    output_registers: int = 0

    def latency(self, ir: IRModel) -> int:
        return self.arrival[ir.layers[-1].name] + self.output_registers


def schedule_network(
    ir: IRModel, blocks: Sequence[Any], register_inputs: bool, clock_ns: float | None
) -> NetworkSchedule:
    """Schedule every block of ``ir`` (``blocks`` in the order of ``ir.layers``; their
    :meth:`schedule` is called) per layer (``clock_ns`` None) or across layer boundaries."""
    result = NetworkSchedule(clock_ns, register_inputs)
    for model_input in ir.inputs:
        result.arrival[model_input.name] = int(register_inputs)
        result.arrival_ns[model_input.name] = 0.0
    for layer, block in zip(ir.layers, blocks, strict=True):
        sources = ir.inputs_of(layer)
        start = max(result.arrival[name] for name in sources)
        if clock_ns is None:
            block.schedule(None)
            start_ns = 0.0
        else:
            start_ns = max(result.arrival_ns[s] for s in sources if result.arrival[s] == start)
            block.schedule(clock_ns, start_ns=start_ns, register_output=False)
            if block.input_registers:
                start += 1
                block.schedule(clock_ns, start_ns=0.0, register_output=False)
        result.input_delays[layer.name] = tuple(start - result.arrival[name] for name in sources)
        result.arrival[layer.name] = start + block.latency
        result.arrival_ns[layer.name] = block.output_ns
    last = result.arrival[ir.layers[-1].name]
    # a network has at least one register (a clock); across layer boundaries, the output is
    # registered so that the period holds at the ports
    result.output_registers = int(clock_ns is not None or last == 0)
    return result


def fit_latency(
    ir: IRModel,
    blocks: Sequence[Any],
    register_inputs: bool,
    latency: int,
    clock_ns: float | None = None,
    model: DelayModel | None = None,
) -> NetworkSchedule:
    """The schedule across layer boundaries that takes exactly ``latency`` cycles.

    With ``clock_ns``: the schedule at that period (the fewest registers that meet it), padded
    with output registers up to ``latency``. Without: the schedule at the shortest period, to
    0.1 %, that takes at most ``latency`` cycles (its :attr:`NetworkSchedule.clock_ns`), padded
    likewise (``model``: the blocks' delay model). Raises ``ValueError`` when ``latency`` is
    fewer cycles than the network needs.
    """
    if not isinstance(latency, int) or isinstance(latency, bool) or latency < 1:
        raise ValueError(f"latency must be a positive integer, not {latency!r}")
    model = model or AMD

    def at(period: float) -> NetworkSchedule:
        return schedule_network(ir, blocks, register_inputs, period)

    fewest = at(UNBOUNDED_NS).latency(ir)
    if latency < fewest:
        registered = "with" if register_inputs else "without"
        raise ValueError(
            f"latency must be at least {fewest} cycles for this network ({registered} the input "
            f"register, and the output register), not {latency}"
        )
    if clock_ns is not None:
        result = at(clock_ns)
        if result.latency(ir) > latency:
            raise ValueError(
                f"latency {latency} cannot meet clock_ns {clock_ns:g} by the delay model: the "
                f"schedule at that period takes {result.latency(ir)} cycles; allow more cycles "
                "or a longer clock period"
            )
    else:
        # latency(hi) <= latency: bisect for the shortest such period; at periods up to the
        # register's own delay nothing but single operations fits, and every such period gives
        # the same schedule
        lo, hi = model.register_ns, SEARCH_NS
        if at(SEARCH_NS).latency(ir) > latency:
            hi = UNBOUNDED_NS
        if at(lo).latency(ir) <= latency:
            hi = lo
        while hi - lo > 1e-3 * hi:
            middle = (lo + hi) / 2
            if at(middle).latency(ir) <= latency:
                hi = middle
            else:
                lo = middle
        result = at(hi)
    result.output_registers += latency - result.latency(ir)
    return result


def register_stages(component: Any) -> list[dict[str, Any]]:
    """The manifest's ``register_stages``: per cycle ``k`` (1 to the latency), the places whose
    registers load in it (``data_in``, a layer's internal or output registers, a delay line
    ``<tensor>_d<n>``, ``data_out``). A value that arrives in cycle ``k`` passed ``k``
    registers from ``data_in``."""
    ir, schedule = component.ir, component.schedule
    stages: dict[int, list[str]] = {k: [] for k in range(1, component.latency + 1)}
    if schedule.register_inputs:
        stages[1] += [port for port, _ in component.input_buses.values()]
    lines: dict[str, int] = {}
    for layer, block in zip(ir.layers, component.layers, strict=True):
        sources = ir.inputs_of(layer)
        for name, delay in zip(sources, schedule.input_delays[layer.name], strict=True):
            lines[name] = max(lines.get(name, 0), delay)
        start = schedule.arrival[layer.name] - block.latency
        for k in range(start + 1, start + block.latency + 1):
            stages[k].append(layer.name)
    for name, delay in lines.items():
        for k in range(1, delay + 1):
            stages[schedule.arrival[name] + k].append(f"{name}_d{k}")
    last = schedule.arrival[ir.layers[-1].name]
    for k in range(last + 1, last + schedule.output_registers + 1):
        stages[k].append("data_out")
    return [{"cycle": k, "registers": names} for k, names in stages.items()]
