"""Max pooling as a fixed-latency comparator tree (a compute block for :class:`StreamStage`).

The semantics are those of :class:`hgq_rtl.ir.MaxPoolLayer` (``hgq_rtl.ir.reference``): every
input is first aligned to its output's fractional bits by an exact left shift, a zero-width input
is the constant 0, and the output format holds the exact range of the maximum, so nothing is
rounded or clipped.
"""

from __future__ import annotations

import numpy as np
from amaranth.hdl import C, Module, Mux, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hgq_rtl.ir.formats import TensorFormat, alignment_shifts, exact_maxpool_format
from hgq_rtl.ir.layers import MaxPoolLayer

from ..components import BusLayout

#: Default comparator levels (compare and select) between two pipeline registers.
DEFAULT_LEVELS_PER_STAGE = 1


class MaxTree(wiring.Component):
    """For each group of ``group_size`` consecutive input elements, their maximum.

    With a window generator's output (elements ``(c, ky, kx)`` in C order) and
    ``group_size = kh * kw``, output ``c`` is the maximum over channel ``c`` of the window:
    max pooling.

    Parameters
    ----------
    group_size
        Inputs per output (>= 1); the input has ``outputs * group_size`` elements.
    input_format
        Formats of the input elements.
    output_format
        Formats of the outputs; by default the exact ones
        (:func:`hgq_rtl.ir.formats.exact_maxpool_format`). Must hold each maximum exactly and
        have no fewer fractional bits than its inputs (``ValueError`` otherwise).
    levels_per_stage
        Comparator levels between pipeline registers (default 1).
    name
        Prefix of signal names and name of the equivalent :attr:`layer`.

    Ports
    -----
    x : ``In(max(total input bits, 1))``
        The input elements packed LSB first (:class:`rtl_gen.components.BusLayout`).
    y : ``Out(max(total output bits, 1))``
        The outputs packed the same way; registered.

    Attributes
    ----------
    layer : MaxPoolLayer
        The equivalent IR layer: ``hgq_rtl.ir.reference.run_layer(tree.layer, input_format, x)``
        is the golden model.
    latency : int
        Registers from ``x`` to ``y``: ``(depth - 1) // levels_per_stage + 1`` for a tree of
        ``depth = ceil(log2(operands))`` levels (1 when there is nothing to compare). Registers are
        in the ``sync`` domain without reset.
    """

    def __init__(
        self,
        group_size: int,
        input_format: TensorFormat,
        output_format: TensorFormat | None = None,
        *,
        levels_per_stage: int = DEFAULT_LEVELS_PER_STAGE,
        name: str = "maxtree",
    ) -> None:
        if not isinstance(group_size, int) or group_size < 1:
            raise ValueError(f"group_size must be a positive integer, not {group_size!r}")
        if input_format.size % group_size:
            raise ValueError(
                f"the input's {input_format.size} elements must be a multiple of group_size "
                f"{group_size}"
            )
        if not isinstance(levels_per_stage, int) or levels_per_stage < 1:
            raise ValueError(
                f"levels_per_stage must be a positive integer, not {levels_per_stage!r}"
            )
        windows = np.arange(input_format.size).reshape(-1, group_size)
        if output_format is None:
            output_format = exact_maxpool_format(input_format, windows)
        self.layer = MaxPoolLayer(name, windows, output_format)
        self.layer.validate_inputs((input_format,))
        self.group_size = group_size
        self.input_format = input_format
        self.levels_per_stage = levels_per_stage
        self.input_layout = BusLayout.of(input_format)
        self.output_layout = BusLayout.of(output_format)
        self.shifts = alignment_shifts(output_format.frac_bits, input_format, windows)
        live = input_format.width[windows] > 0
        operands = live.sum(axis=1) + (~live).any(axis=1)  # every zero-width input: one 0
        self.depth = int(np.ceil(np.log2(operands.max()))) if operands.size else 0
        self.latency = (self.depth - 1) // levels_per_stage + 1 if self.depth else 1
        super().__init__(
            {"x": In(self.input_layout.port_width), "y": Out(self.output_layout.port_width)}
        )

    def elaborate(self, platform) -> Module:
        m = Module()
        prefix = self.layer.name
        inputs = self.input_layout.fields(self.x)
        lo, hi = self.input_format.int_range()
        # groups[i]: (value, lo, hi) of output i's remaining operands, aligned to its frac bits
        groups = []
        for i, window in enumerate(self.layer.windows):
            operands = []
            for j, element in enumerate(window.tolist()):
                if inputs[element] is None:
                    continue
                shift = int(self.shifts[i, j])
                operands.append(
                    (inputs[element] << shift, int(lo[element]) << shift, int(hi[element]) << shift)
                )
            if len(operands) < len(window):
                operands.append((C(0, 1), 0, 0))
            groups.append(operands)

        for level in range(1, self.depth + 1):
            groups = [
                self._max_level(m, ops, f"{prefix}_g{i}_l{level}") for i, ops in enumerate(groups)
            ]
            if level % self.levels_per_stage == 0 and level < self.depth:
                groups = [
                    [
                        self._register(m, op, f"{prefix}_g{i}_l{level}_r{k}")
                        for k, op in enumerate(ops)
                    ]
                    for i, ops in enumerate(groups)
                ]

        y = Signal(self.output_layout.port_width, name=f"{prefix}_y", reset_less=True)
        for i, ((value, _, _),) in enumerate(groups):
            width, lsb = self.output_layout.width[i], self.output_layout.lsb[i]
            if width:
                m.d.sync += y[lsb : lsb + width].eq(value)  # sign-extends
        m.d.comb += self.y.eq(y)
        return m

    @staticmethod
    def _max_level(m: Module, operands: list, name: str) -> list:
        """One comparator level: the maximum of each adjacent pair; an odd last one passes."""
        out = []
        for k in range(0, len(operands) - 1, 2):
            (a, a_lo, a_hi), (b, b_lo, b_hi) = operands[k], operands[k + 1]
            lo, hi = max(a_lo, b_lo), max(a_hi, b_hi)
            sig = Signal(range(lo, hi + 1), name=f"{name}_{k // 2}")
            m.d.comb += sig.eq(Mux(a > b, a, b))
            out.append((sig, lo, hi))
        if len(operands) % 2:
            out.append(operands[-1])
        return out

    @staticmethod
    def _register(m: Module, operand: tuple[Value, int, int], name: str) -> tuple:
        value, lo, hi = operand
        reg = Signal(range(lo, hi + 1), name=name, reset_less=True)
        m.d.sync += reg.eq(value)
        return reg, lo, hi
