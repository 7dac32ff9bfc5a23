"""The lookup block: a :class:`~hgq_rtl.ir.layers.LookupLayer` as tables, ROMs or constants.

Ports, latency and figures as every block's (:mod:`rtl_gen.blocks`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
from amaranth.hdl import C, Module, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hgq_rtl.ir.formats import TensorFormat
from hgq_rtl.ir.layers import LookupLayer

from .components import BusLayout
from .timing import DelayModel, combinational_timing

#: A lookup table of more than this many bits (entries × output bits) is a ROM (a
#: :class:`~amaranth.lib.memory.Memory` with a synchronous read port, which synthesis may map to
#: block RAM); a smaller one is logic (a case statement that synthesis maps to LUTs). 4096 bits
#: are 64 LUT6s' worth of table, a fifth of an 18 Kib block RAM: e.g. 512 entries of 8 bits
#: stay logic, 1024 entries of 8 bits become a ROM.
ROM_MIN_BITS = 4096


@dataclass(frozen=True)
class _Table:
    """One element's table: ``values[r]`` is the output bits for the input bits ``r``."""

    values: tuple[int, ...]
    rom: bool


class LookupComponent(wiring.Component):
    """A :class:`~hgq_rtl.ir.layers.LookupLayer`: per element a table over every integer of its
    input format, addressed by the input's raw bits (the table is stored in that order, so a
    signed input needs no offset). A slice holding one value is a constant, with no table; a
    table of more than ``rom_min_bits`` bits (entries × output bits, default
    :data:`ROM_MIN_BITS`) is a ROM with a synchronous read port, a smaller one a case statement
    whose result is registered (unless :meth:`schedule` says otherwise). :attr:`latency` is 1,
    or 0 when every element is a constant.
    """

    input_ports = ("x",)

    def __init__(
        self,
        layer: LookupLayer,
        input_format: TensorFormat,
        *,
        rom_min_bits: int = ROM_MIN_BITS,
        delay_model: DelayModel | None = None,
    ) -> None:
        self.layer = layer
        self.input_layout = BusLayout.of(input_format)
        self.output_layout = BusLayout.of(layer.output)
        lo, _ = input_format.int_range()
        #: per element: its table, or the constant output bits
        self.elements: list[_Table | int] = []
        for i in range(layer.output.size):
            width, out_width = self.input_layout.width[i], self.output_layout.width[i]
            raw = np.arange(1 << width, dtype=np.int64)
            if self.input_layout.signed[i] and width:
                raw = np.where(raw >> (width - 1) == 1, raw - (1 << width), raw)
            values = layer.table[int(layer.offsets[i]) + raw - int(lo[i])] & ((1 << out_width) - 1)
            if out_width == 0 or np.all(values == values[0]):
                self.elements.append(int(values[0]))
            else:
                rom = values.size * out_width > rom_min_bits
                self.elements.append(_Table(tuple(int(v) for v in values), rom))
        self.delay_model = delay_model or DelayModel()
        self.schedule(None)
        super().__init__(
            {"x": In(self.input_layout.port_width), "y": Out(self.output_layout.port_width)}
        )

    def schedule(
        self, clock_ns: float | None, *, start_ns: float = 0.0, register_output: bool = True
    ) -> None:
        """Registered output (:attr:`latency` 1 with any table). With ``register_output=False``
        and no ROM (a ROM's read port is a register), the tables are logic after the inputs:
        :attr:`input_registers` is 1 when the inputs, arriving ``start_ns`` after a register,
        must be registered to meet ``clock_ns``, and :attr:`output_ns` is the output's delay
        from the last register (a ROM's: one LUT level, for the read's clock-to-out)."""
        tables = [
            (e, w) for e, w in zip(self.elements, self.input_layout.width, strict=True)
            if isinstance(e, _Table)
        ]  # fmt: skip
        roms = any(table.rom for table, _ in tables)
        self.register_output = bool(tables) and (register_output or roms)
        self.latency = int(self.register_output)
        self.input_registers, self.output_ns = 0, 0.0
        if clock_ns is None:
            return
        if roms and not register_output:
            self.output_ns = self.delay_model.level_ns
        elif not self.register_output:
            delay = max((self.delay_model.table(w) for _, w in tables), default=0.0)
            self.input_registers, self.output_ns = combinational_timing(
                delay, clock_ns, start_ns, self.delay_model
            )

    def statistics(self) -> dict[str, int]:
        """Tables (ROM or logic), their entries and bits, and the constant elements."""
        tables = [e for e in self.elements if isinstance(e, _Table)]
        widths = [
            w for w, e in zip(self.output_layout.width, self.elements, strict=True)
            if isinstance(e, _Table)
        ]  # fmt: skip
        return {
            "tables": len(tables),
            "rom_tables": sum(t.rom for t in tables),
            "logic_tables": sum(not t.rom for t in tables),
            "table_entries": sum(len(t.values) for t in tables),
            "table_bits": sum(len(t.values) * w for t, w in zip(tables, widths, strict=True)),
            "rom_bits": sum(
                len(t.values) * w for t, w in zip(tables, widths, strict=True) if t.rom
            ),
            "constant_elements": sum(
                not isinstance(e, _Table) and w > 0
                for e, w in zip(self.elements, self.output_layout.width, strict=True)
            ),
        }

    def elaborate(self, platform) -> Module:
        m = Module()
        prefix = self.layer.name
        parts = []
        for i, element in enumerate(self.elements):
            width = self.output_layout.width[i]
            if not isinstance(element, _Table):
                parts.append(C(element, width))
                continue
            lsb = self.input_layout.lsb[i]
            address = self.x[lsb : lsb + self.input_layout.width[i]]
            if element.rom:
                rom = Memory(shape=unsigned(width), depth=len(element.values), init=element.values)
                m.submodules[f"{prefix}_rom{i}"] = rom
                port = rom.read_port(domain="sync")
                m.d.comb += port.addr.eq(address)
                parts.append(port.data)
                continue
            out = Signal(width, name=f"{prefix}_t{i}", reset_less=True)
            domain = "sync" if self.register_output else "comb"
            addresses: dict[int, list[int]] = {}
            for r, v in enumerate(element.values):
                addresses.setdefault(v, []).append(r)
            default = Counter(element.values).most_common(1)[0][0]
            with m.Switch(address):
                for v, raws in addresses.items():
                    if v != default:
                        with m.Case(*raws):
                            m.d[domain] += out.eq(v)
                with m.Default():
                    m.d[domain] += out.eq(default)
            parts.append(out)
        m.d.comb += self.y.eq(self.output_layout.drive(m, f"{prefix}_y", parts, registered=False))
        return m
