"""Report types and cell classes.

:class:`SynthReport` (the default flow), :class:`FlowReport` (one target of ``TARGETS``),
:class:`CellCounts` and :func:`count_cells`, which sorts a netlist's cells into LUTs,
flip-flops, carry cells and DSPs by the patterns of :data:`CELL_CLASSES`.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SynthReport:
    """Resource and timing figures of one design.

    Attributes
    ----------
    lut : int
        LUT1..LUT6, LUT6_2 and INV cells after Yosys ``synth_xilinx -family xcup`` (out of
        context).
    ff : int
        Flip-flops (FDRE, FDSE, FDCE, FDPE and other ``FD*`` cells) of the same run.
    carry : int
        Carry-chain cells (CARRY4/CARRY8) of the same run.
    dsp : int
        DSP cells (DSP48E1/DSP48E2 and friends) of the same run.
    ecp5_lut4 : int or None
        LUT4s of the ECP5 netlist as nextpnr counts them ("Total LUT4s": logic, carry and RAM
        LUTs); None when the ECP5 flow was skipped.
    ecp5_ff : int or None
        TRELLIS_FF cells used after nextpnr packing; None when skipped.
    fmax_mhz : float or None
        Achieved Fmax of the design clock after routing, in MHz; None when skipped or when the
        design has no clocked path.
    yosys_seconds : float
        Wall time of the Yosys ``synth_xilinx`` run.
    nextpnr_seconds : float or None
        Wall time of the ECP5 flow (Yosys ``synth_ecp5`` plus nextpnr-ecp5); None when skipped.
    bram : float
        Block RAM of the same run in RAMB36 tiles (a RAMB18 counts half): line buffers and
        large tables that Yosys mapped to block RAM.
    lutram : int
        Distributed-RAM cells (``RAM32M``, ``RAM64M``, ``RAM64X1D``, ...) of the same run: LUTs
        used as memory, not counted in ``lut``.
    ecp5_overfull : dict or None
        When the design needs more of a resource than the LFE5U-85F has, so that nextpnr
        cannot place it: each such resource's ``[used, available]`` (``ecp5_lut4``,
        ``ecp5_ff`` and ``fmax_mhz`` are then None); None otherwise.
    per_layer : dict or None
        With ``synthesize(..., per_layer=True)``: each layer's (first-level submodule's) LUT,
        FF, CARRY and DSP counts from a ``synth_xilinx`` run that keeps the hierarchy, plus
        :data:`TOP_LEVEL` for the top module's own cells; None otherwise.  The totals are then
        their sums; without flattening, Yosys optimises less across layer boundaries, so they
        can differ slightly from a flattened run (digits model: LUT 5505 vs 5562, FF 3867 vs
        3854).
    """

    lut: int
    ff: int
    carry: int
    dsp: int
    ecp5_lut4: int | None
    ecp5_ff: int | None
    fmax_mhz: float | None
    yosys_seconds: float
    nextpnr_seconds: float | None
    per_layer: dict[str, dict[str, int]] | None = None
    bram: float = 0.0
    lutram: int = 0
    ecp5_overfull: dict[str, list[int]] | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the report as a JSON-serialisable dictionary.

        Returns
        -------
        dict
            One key per field, in declaration order.
        """
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class CellCounts:
    """Cell counts of a Yosys netlist (``synth_xilinx``, ``synth_ice40``, ...), by class.

    Attributes
    ----------
    lut, ff, carry, dsp : int
        LUTs, flip-flops, carry-chain cells and DSP blocks (see :data:`CELL_CLASSES` for the
        cell names of each family).
    cells : dict of str to int
        Every cell type and its count, as Yosys ``stat`` lists them.
    """

    lut: int
    ff: int
    carry: int
    dsp: int
    cells: dict[str, int]


#: Cell-name patterns (full match) of each class, per Yosys technology library:
#: (LUT, flip-flop, carry, DSP).
CELL_CLASSES: dict[str, tuple[re.Pattern[str], ...]] = {
    "xilinx": tuple(
        map(re.compile, (r"LUT[1-6](_2)?|INV", r"FD[A-Z0-9_]*", r"CARRY[0-9]+", r"DSP[A-Z0-9_]*"))
    ),
    "ecp5": tuple(map(re.compile, (r"LUT4", r"TRELLIS_FF", r"CCU2C", r"MULT18X18D"))),
    "ice40": tuple(map(re.compile, (r"SB_LUT4", r"SB_DFF[A-Z]*", r"SB_CARRY", r"SB_MAC16"))),
}


def count_cells(cells: Mapping[str, int], family: str) -> CellCounts:
    """Sort a netlist's cells into LUTs, flip-flops, carry cells and DSPs.

    Parameters
    ----------
    cells : mapping of str to int
        Cell type to count (e.g. from :func:`parse_yosys_stat_cells`).
    family : str
        A key of :data:`CELL_CLASSES`: ``"xilinx"``, ``"ecp5"`` or ``"ice40"``.

    Returns
    -------
    CellCounts
        The four totals and the cells themselves.

    Raises
    ------
    ValueError
        If ``family`` is not a key of :data:`CELL_CLASSES`, or a generic Yosys (``$``) cell is
        left: the synthesis run did not finish.
    """
    if family not in CELL_CLASSES:
        raise ValueError(f"`family` must be one of {sorted(CELL_CLASSES)}, not {family!r}")

    def total(pattern: re.Pattern[str]) -> int:
        return sum(n for name, n in cells.items() if pattern.fullmatch(name))

    # kept submodules ($paramod...) are counted through their own cells
    unmapped = sorted(
        name
        for name in cells
        if name.startswith("$") and name != "$scopeinfo" and not name.startswith("$paramod")
    )
    if unmapped:
        raise ValueError(
            f"the netlist still has generic cells ({', '.join(unmapped[:4])}): synthesis did not "
            "finish mapping to the target's cells"
        )
    lut, ff, carry, dsp = (total(pattern) for pattern in CELL_CLASSES[family])
    return CellCounts(lut=lut, ff=ff, carry=carry, dsp=dsp, cells=dict(cells))


#: Xilinx memory cells: block RAM tiles, and LUTs used as distributed RAM.
_RAMB36 = re.compile(r"RAMB36[A-Z0-9_]*")
_RAMB18 = re.compile(r"RAMB18[A-Z0-9_]*")
_LUTRAM = re.compile(
    r"RAM(32M|64M|32X1[SD]|64X1[SD]|128X1[SD]|256X1[SD]|512X1S|S32|D32|S64E|D64E)[A-Z0-9_]*"
)


def xilinx_memory(cells: Mapping[str, int]) -> tuple[float, int]:
    """``(block RAM in RAMB36 tiles, distributed-RAM cells)`` of a Xilinx netlist's cells; a
    RAMB18 counts half a tile."""

    def total(pattern: re.Pattern[str]) -> int:
        return sum(n for name, n in cells.items() if pattern.fullmatch(name))

    return total(_RAMB36) + 0.5 * total(_RAMB18), total(_LUTRAM)


@dataclass(frozen=True)
class FlowReport:
    """Figures of one synthesis target run by :func:`synthesize_target`.

    Attributes
    ----------
    target : str
        Key of :data:`TARGETS`.
    part : str
        Part, device or family the run used (target-specific spelling, see :data:`TARGETS`).
    top, clock : str
        Top module and clock port.
    clock_ns : float
        Target clock period.
    ran : bool
        False when the tool was not installed and only the scripts were written (Vivado).
    lut, ff, carry, dsp : int or None
        LUTs, flip-flops, carry cells and DSP blocks (None when not run).
    bram : float or None
        Block RAM used (Vivado tiles, ECP5 DP16KD, iCE40 RAM40, Xilinx RAMB36 + RAMB18 / 2).
    fmax_mhz : float or None
        Achieved clock frequency after routing; None for synthesis-only targets, when not run,
        or for a design without clocked paths.
    wns_ns : float or None
        Worst negative slack at ``clock_ns`` (Vivado); None elsewhere.
    achieved_period_ns : float or None
        Shortest period met: ``clock_ns - wns_ns`` (Vivado) or ``1000 / fmax_mhz``.
    utilization : dict of str to float
        Everything the tool counted (cell types, or resource rows of its report).
    seconds : float or None
        Wall time of the tools.
    command : str or None
        With ``ran`` False: how to run the scripts by hand.
    """

    target: str
    part: str
    top: str
    clock: str
    clock_ns: float
    ran: bool
    lut: int | None = None
    ff: int | None = None
    carry: int | None = None
    dsp: int | None = None
    bram: float | None = None
    fmax_mhz: float | None = None
    wns_ns: float | None = None
    achieved_period_ns: float | None = None
    utilization: dict[str, float] = dataclasses.field(default_factory=dict)
    seconds: float | None = None
    command: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the report as a JSON-serialisable dictionary (one key per field).

        Returns
        -------
        dict
        """
        return dataclasses.asdict(self)
