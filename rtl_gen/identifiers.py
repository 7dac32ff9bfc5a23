"""Verilog identifiers for names that come from the model, in one place for both writers.

Layer and input names in the IR are Python identifiers: they may be Verilog or SystemVerilog
keywords (``module``, ``wire``, ``logic``), hold letters outside ASCII (``größe``), or equal a
port or a signal the writers make themselves (``clk``, ``data_in``, ``valid_0``). Verilog
accepts none of these as a plain identifier, and its escaped identifiers (``\\module ``) may hold
printable ASCII only; tools (cocotb handles, the C++ harness, synthesis constraints) also want
plain names. So every name taken from the model is turned into a *plain* ASCII identifier here:

* :func:`plain` maps a name to ``[A-Za-z_][A-Za-z0-9_]*`` that is no keyword: letters outside
  ASCII become ``u<hex code point>``, a keyword gets a trailing ``_``; a plain name that is no
  keyword is kept as it is.
* :class:`Namer` hands out names unique within one Verilog scope: the fixed names (ports, the
  writer's own signals) are reserved first, and a name already taken gets ``_2``, ``_3`` ...
* :func:`tap_ports` gives the debug-tap port of every tapped layer; the Amaranth component
  (:mod:`rtl_gen.network`), the direct writer (:mod:`rtl_gen.netlist_verilog`) and the
  manifest (:mod:`rtl_gen.emit`) all take the port names from it.
* :func:`input_ports` does the same for the data ports of a model with several inputs.
* :func:`check_module_name` refuses a top module name that is not a plain identifier.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

__all__ = [
    "KEYWORDS",
    "TOP_PORTS",
    "Namer",
    "check_module_name",
    "input_ports",
    "plain",
    "tap_ports",
]

#: Reserved words of Verilog-2005 (IEEE 1364) and SystemVerilog-2017 (IEEE 1800), which
#: Verilator and Yosys read Verilog files as.
KEYWORDS = frozenset(
    """
    accept_on alias always always_comb always_ff always_latch and assert assign assume
    automatic before begin bind bins binsof bit break buf bufif0 bufif1 byte case casex casez
    cell chandle checker class clocking cmos config const constraint context continue cover
    covergroup coverpoint cross deassign default defparam design disable dist do edge else end
    endcase endchecker endclass endclocking endconfig endfunction endgenerate endgroup
    endinterface endmodule endpackage endprimitive endprogram endproperty endsequence
    endspecify endtable endtask enum event eventually expect export extends extern final
    first_match for force foreach forever fork forkjoin function generate genvar global
    highz0 highz1 if iff ifnone ignore_bins illegal_bins implements implies import incdir
    include initial inout input inside instance int integer interconnect interface intersect
    join join_any join_none large let liblist library local localparam logic longint
    macromodule matches medium modport module nand negedge nettype new nexttime nmos nor
    noshowcancelled not notif0 notif1 null or output package packed parameter pmos posedge
    primitive priority program property protected pull0 pull1 pulldown pullup
    pulsestyle_ondetect pulsestyle_onevent pure rand randc randcase randsequence rcmos real
    realtime ref reg reject_on release repeat restrict return rnmos rpmos rtran rtranif0
    rtranif1 s_always s_eventually s_nexttime s_until s_until_with scalared sequence shortint
    shortreal showcancelled signed small soft solve specify specparam static string strong
    strong0 strong1 struct super supply0 supply1 sync_accept_on sync_reject_on table tagged
    task this throughout time timeprecision timeunit tran tranif0 tranif1 tri tri0 tri1
    triand trior trireg type typedef union unique unique0 unsigned until until_with untyped
    use uwire var vectored virtual void wait wait_order wand weak weak0 weak1 while wildcard
    wire with within wor xnor xor
    """.split()
)

#: The ports of every parallel design's top module (both writers).
TOP_PORTS = ("clk", "rst", "data_in", "valid_in", "data_out", "valid_out")

_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def plain(name: str) -> str:
    """``name`` as a plain ASCII Verilog identifier that is no keyword (see the module
    docstring); the same name always gives the same result."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"a Verilog name must be a non-empty string, not {name!r}")
    text = "".join(c if c.isascii() and (c.isalnum() or c == "_") else f"u{ord(c):x}" for c in name)
    if not _PLAIN.fullmatch(text):  # it starts with a digit
        text = f"_{text}"
    return f"{text}_" if text in KEYWORDS else text


class Namer:
    """Unique plain identifiers within one Verilog scope (a module).

    ``reserved``: names the scope already has (ports, fixed signals); they are kept as given.
    """

    def __init__(self, reserved: Iterable[str] = ()) -> None:
        self._taken: set[str] = set()
        for name in reserved:
            self.reserve(name)

    def reserve(self, name: str) -> str:
        """Take ``name`` exactly (a fixed name of the writer; reserving it again is harmless)."""
        self._taken.add(name)
        return name

    def unique(self, name: str) -> str:
        """:func:`plain` of ``name``, with ``_2``, ``_3`` ... appended while that is taken."""
        base = plain(name)
        candidate, k = base, 2
        while candidate in self._taken:
            candidate, k = f"{base}_{k}", k + 1
        self._taken.add(candidate)
        return candidate


def tap_ports(layer_names: Sequence[str], reserved: Iterable[str] = TOP_PORTS) -> list[str]:
    """The debug-tap port of each layer in ``layer_names`` (in order): ``tap_<name>`` made
    plain and unique among the top module's ports ``reserved``."""
    namer = Namer(reserved)
    return [namer.unique(f"tap_{name}") for name in layer_names]


def input_ports(input_names: Sequence[str]) -> list[str]:
    """The data port of each model input: ``data_in`` for one input, else ``data_in_<name>``
    made plain and unique among the top module's ports."""
    if len(input_names) == 1:
        return ["data_in"]
    namer = Namer(TOP_PORTS)
    return [namer.unique(f"data_in_{name}") for name in input_names]


def check_module_name(name: str, what: str = "top module name") -> str:
    """``name`` if it is a plain ASCII identifier and no keyword, else ValueError."""
    if not (isinstance(name, str) and _PLAIN.fullmatch(name)):
        raise ValueError(f"{what} {name!r} must be an ASCII identifier ([A-Za-z_][A-Za-z0-9_]*)")
    if name in KEYWORDS:
        raise ValueError(f"{what} {name!r} is a Verilog keyword: choose another name")
    return name
