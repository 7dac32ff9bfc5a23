"""Verilog emission: ``<name>.v`` + ``manifest.json`` (+ a copy of the IR) written atomically.

The manifest is what every later tool reads (docs/ir.md, "The RTL manifest"): ports, per-element
formats and bit slices, latency, and hashes tying the Verilog to the model it came from.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from amaranth.back import verilog

from hgq_rtl import guard
from hgq_rtl.binding import seal
from hgq_rtl.ir import io as ir_io
from hgq_rtl.ir.formats import TensorFormat
from hgq_rtl.ir.model import IRModel

from .components import DEFAULT_ADDER_LEVELS_PER_STAGE, BusLayout
from .identifiers import check_module_name
from .netlist_verilog import check_direct_writer, write_verilog
from .network import NetworkComponent
from .schedule import register_stages
from .timing import family_delay_model

MANIFEST_SCHEMA = "hgq-rtl-manifest"
MANIFEST_VERSION = 1
MANIFEST_FILE = "manifest.json"
#: The IR the design was generated from is copied here, so a design folder is self-contained.
MODEL_SUBDIR = "model"


class VerilogWriter(StrEnum):
    """How the Verilog text is produced from the component.

    ``AMARANTH``: Amaranth's back end (RTLIL, then its builtin Yosys), a few milliseconds per
    adder. ``DIRECT``: :func:`rtl_gen.netlist_verilog.write_verilog`, the same design written
    straight from the plan, for layers with thousands of adders.
    """

    AMARANTH = "amaranth"
    DIRECT = "direct"


#: How samples enter the design (:attr:`RtlOptions.io`).
IO_MODES = ("auto", "parallel", "stream")


@dataclass(frozen=True)
class RtlOptions:
    """Generator options.

    ``adder_levels_per_stage``: adder levels between pipeline registers (fewer: higher Fmax,
    more latency and registers). ``register_inputs``: register ``data_in`` first.
    ``debug_taps``: add a port ``tap_<layer>`` with each hidden layer's output (listed in the
    manifest under ``taps``), so a mismatch can be traced to the first layer that differs.
    ``share_subexpressions``: build patterns that recur across a layer's outputs once (an adder
    graph) instead of one independent shift-and-add tree per output.
    ``clock_ns``: place pipeline registers by a delay model for this period (see
    :class:`~rtl_gen.timing.DelayModel`) instead of every ``adder_levels_per_stage`` levels.
    ``writer``: :class:`VerilogWriter` (or its value, ``"amaranth"`` or ``"direct"``).
    ``ternary_adders``: sum each output's terms with three-input adders (fewer adder levels;
    with ``xilinx_primitives``, one LUT per bit where two chained adders take two).
    ``xilinx_primitives``: the direct writer writes three-input adders as AMD/Xilinx
    ``LUT6_2``/``CARRY4`` cells (with behavioural models for simulators and other targets; see
    :mod:`rtl_gen.netlist_verilog`). Needs ``writer="direct"`` and ``ternary_adders``. The
    direct writer takes chains of dense layers only (by design); other models need the Amaranth
    writer.
    ``io``: ``"parallel"`` (fully unrolled, one vector per clock), ``"stream"`` (pixels one
    beat at a time through line buffers and one shared kernel per convolution:
    :mod:`rtl_gen.stream.network`) or ``"auto"`` (the default: ``"stream"`` for a model with
    convolutions or pooling that can be streamed, else ``"parallel"``; :func:`resolve_io`).
    ``latency``: take exactly this many cycles (fully unrolled designs): the registers of the
    delay-model schedule at ``clock_ns``, or without it at the shortest period that takes no
    more cycles (:func:`rtl_gen.schedule.fit_latency`); with ``clock_ns`` or ``latency``,
    registers are placed across layer boundaries (:mod:`rtl_gen.schedule`).
    ``writer_fallback``: with ``writer="direct"``, a model the direct writer does not take
    (anything but a chain of dense layers, or a model that is streamed) is written by the
    Amaranth writer instead, without the AMD/Xilinx cells (:func:`resolve_writer`).
    ``pixels_per_beat``: pixels of a row per input beat of a stream (default 1; it must divide
    the input's width, and needs a streamed design): each convolution then evaluates several
    copies of its kernel per beat (:mod:`rtl_gen.stream.wide`).
    ``family``: the target family whose delay model places the registers with ``clock_ns`` or
    ``latency`` (:data:`rtl_gen.timing.FAMILY_DELAY_MODELS`): ``"amd"`` (the default,
    UltraScale+-like constants) or ``"portable"`` (constants fitted to nextpnr-ecp5). It
    chooses the timing only; the adders and cells are the options above.
    """

    adder_levels_per_stage: int = DEFAULT_ADDER_LEVELS_PER_STAGE
    register_inputs: bool = True
    debug_taps: bool = False
    share_subexpressions: bool = True
    clock_ns: float | None = None
    writer: VerilogWriter = VerilogWriter.AMARANTH
    ternary_adders: bool = False
    xilinx_primitives: bool = False
    io: str = "auto"
    pixels_per_beat: int = 1
    latency: int | None = None
    writer_fallback: bool = False
    family: str = "amd"

    def __post_init__(self) -> None:
        family_delay_model(self.family)  # refuses an unknown family
        if self.latency is not None and (type(self.latency) is not int or self.latency < 1):
            raise ValueError(f"latency must be a positive integer, not {self.latency!r}")
        if self.io not in IO_MODES:
            raise ValueError(f"io must be one of {', '.join(IO_MODES)}, not {self.io!r}")
        if type(self.pixels_per_beat) is not int or self.pixels_per_beat < 1:
            raise ValueError(
                f"pixels_per_beat must be an integer >= 1, not {self.pixels_per_beat!r}"
            )
        try:
            object.__setattr__(self, "writer", VerilogWriter(self.writer))
        except ValueError:
            choices = ", ".join(repr(w.value) for w in VerilogWriter)
            raise ValueError(f"writer must be one of {choices}, not {self.writer!r}") from None
        if self.xilinx_primitives and not self.ternary_adders:
            raise ValueError("xilinx_primitives needs ternary_adders (they are its only cells)")
        if self.xilinx_primitives and self.writer is not VerilogWriter.DIRECT:
            raise ValueError("xilinx_primitives needs the direct writer (writer='direct')")


def resolve_writer(ir: IRModel, options: RtlOptions) -> tuple[RtlOptions, str | None]:
    """``(options, note)``: with ``options.writer_fallback``, the Amaranth writer (without
    AMD/Xilinx cells) in place of the direct one where the direct writer does not take ``ir``,
    and a note saying why; else ``options`` as they are and ``None``."""
    if not options.writer_fallback or options.writer is not VerilogWriter.DIRECT:
        return options, None
    amaranth = replace(
        options, writer=VerilogWriter.AMARANTH, xilinx_primitives=False, writer_fallback=False
    )
    if resolve_io(ir, amaranth)[0] == "stream":
        return amaranth, "written by the Amaranth writer: the design is streamed"
    try:
        check_direct_writer(ir)
    except ValueError:
        return amaranth, "written by the Amaranth writer: the model is not a chain of dense layers"
    return options, None


def resolve_io(ir: IRModel, options: RtlOptions) -> tuple[str, str | None]:
    """``(io, note)``: the I/O mode ``options.io`` means for ``ir``, and with ``"auto"`` why a
    model with convolutions or pooling is built fully unrolled (else ``None``).

    Raises ``ValueError`` (the reason) when ``"stream"`` is asked for a model that cannot be
    streamed, or together with options a stream does not take.
    """
    from hgq_rtl.ir.lowering import has_spatial_layers

    from .stream.network import stream_problem

    wide = options.pixels_per_beat != 1

    def parallel(note: str | None, why: str | None = None) -> tuple[str, str | None]:
        if wide:
            why = why or note
            raise ValueError(
                f"pixels_per_beat (--pixels-per-beat) {options.pixels_per_beat} needs a streamed "
                f"design, and {ir.name} is generated fully unrolled ({why})"
            )
        return "parallel", note

    if options.io == "parallel":
        return parallel(None, "--io parallel")
    if options.io == "auto" and not has_spatial_layers(ir):
        return parallel(None, "it has no convolution or pooling")
    unrolled_only = (
        options.writer is VerilogWriter.DIRECT or options.debug_taps or options.latency is not None
    )
    if options.io == "auto" and unrolled_only:
        return parallel(
            "the direct writer (--xilinx-cells), debug taps and --latency are fully unrolled"
        )
    problem = stream_problem(ir, options.pixels_per_beat)
    if options.io == "auto" and not (wide and problem):
        return ("parallel", problem) if problem else ("stream", None)
    if problem:
        raise ValueError(problem)
    if unrolled_only:
        raise ValueError(
            "io='stream' is written by the Amaranth writer without debug taps or a latency: "
            "drop --xilinx-cells/--debug-taps/--latency, or use --io parallel"
        )
    return "stream", None


def build(ir: IRModel, options: RtlOptions | None = None) -> NetworkComponent:
    """The Amaranth component of ``ir`` (not yet converted)."""
    options = options or RtlOptions()
    return NetworkComponent(
        ir,
        adder_levels_per_stage=options.adder_levels_per_stage,
        register_inputs=options.register_inputs,
        debug_taps=options.debug_taps,
        share=options.share_subexpressions,
        clock_ns=options.clock_ns,
        ternary=options.ternary_adders,
        latency=options.latency,
        delay_model=family_delay_model(options.family),
    )


def to_verilog(
    component: NetworkComponent,
    name: str,
    writer: VerilogWriter = VerilogWriter.AMARANTH,
    *,
    xilinx_primitives: bool = False,
) -> str:
    """Verilog text of ``component`` with top module ``name``.

    ``writer``: Amaranth's builtin Yosys (the default) or the direct writer, which can write
    three-input adders as AMD/Xilinx cells (``xilinx_primitives``).
    """
    if VerilogWriter(writer) is VerilogWriter.DIRECT:
        return write_verilog(component, name, xilinx_primitives=xilinx_primitives)
    if xilinx_primitives:
        raise ValueError("xilinx_primitives needs the direct writer")
    os.environ.setdefault("AMARANTH_USE_YOSYS", "builtin")
    return verilog.convert(component, name=name, emit_src=False)


def _elements(fmt: TensorFormat, layout: BusLayout) -> list[dict[str, Any]]:
    return [
        {
            "index": k,
            "lsb": layout.lsb[k],
            "width": layout.width[k],
            "signed": layout.signed[k],
            "int_bits": int(fmt.int_bits[k]),
            "frac_bits": int(fmt.frac_bits[k]),
        }
        for k in range(fmt.size)
    ]


def _inputs(component: NetworkComponent) -> dict[str, Any]:
    """The manifest's ``input`` port, or for a model with several inputs its ``inputs`` (one
    named port each, in the model's order, all under ``valid_in``)."""
    buses = [
        {
            "name": model_input.name,
            "port": port,
            "valid": "valid_in",
            "width": layout.port_width,
            "elements": _elements(model_input.format, layout),
        }
        for model_input, (port, layout) in zip(
            component.ir.inputs, component.input_buses.values(), strict=True
        )
    ]
    if len(buses) == 1:
        return {"input": {key: value for key, value in buses[0].items() if key != "name"}}
    return {"inputs": buses}


def _layers(component: NetworkComponent) -> list[dict[str, Any]]:
    """The manifest's ``layers``: per layer its latency and its block's figures. Entries of a
    graph (any model but a chain of dense layers) also say the layer's ``kind``, the tensors it
    reads (``inputs``) and the delay line of each (``input_delay_cycles``); a dense chain's are
    as they were before graphs."""
    ir = component.ir
    graph = ir.dense_chain_problem() is not None
    entries = []
    for layer, block in zip(ir.layers, component.layers, strict=True):
        entry: dict[str, Any] = {"name": layer.name}
        if graph:
            entry["kind"] = layer.kind
            entry["inputs"] = list(ir.inputs_of(layer))
            entry["input_delay_cycles"] = list(component.input_delays[layer.name])
        entry["latency_cycles"] = block.latency
        entry.update(block.statistics())
        entries.append(entry)
    return entries


def manifest(
    component: NetworkComponent,
    name: str,
    verilog_text: str,
    model_hash: str,
    writer: VerilogWriter = VerilogWriter.AMARANTH,
    *,
    xilinx_primitives: bool = False,
) -> dict[str, Any]:
    """The ``manifest.json`` document of a generated design (``writer``: who wrote the text)."""
    ir = component.ir
    return {
        **_design_fields(name),
        "latency_cycles": component.latency,
        "initiation_interval": 1,
        "register_stages": register_stages(component),
        **_inputs(component),
        "output": {
            "port": "data_out",
            "valid": "valid_out",
            "width": component.output_layout.port_width,
            "elements": _elements(ir.output, component.output_layout),
        },
        "taps": [
            {
                "layer": layer.layer.name,
                "port": component.tap_port_of[layer.layer.name],
                "width": layer.output_layout.port_width,
                "latency_cycles": component.tap_latency(k),
                "elements": _elements(layer.layer.output, layer.output_layout),
            }
            for k, layer in enumerate(component.tapped_layers())
        ],
        "layers": _layers(component),
        "options": {
            "adder_levels_per_stage": component.adder_levels_per_stage,
            "register_inputs": component.register_inputs,
            "debug_taps": component.debug_taps,
            "share_subexpressions": component.share,
            "clock_ns": component.clock_ns,
            "latency": component.latency_target,
            "writer": VerilogWriter(writer).value,
            "ternary_adders": component.ternary,
            "xilinx_primitives": xilinx_primitives,
            "delay_model": (
                component.delay_model.describe() if component.clock_ns is not None else None
            ),
        },
        "model": MODEL_SUBDIR,
        "hashes": {
            "verilog_sha256": hashlib.sha256(verilog_text.encode()).hexdigest(),
            "model_sha256": model_hash,
        },
    }


def emit(
    ir: IRModel, out_dir: str | Path, options: RtlOptions | None = None, *, name: str | None = None
) -> dict[str, Any]:
    """Generate the design of ``ir`` into ``out_dir`` (replaced whole, or left untouched on error).

    Writes ``<name>.v``, ``manifest.json`` and ``model/`` (the IR) through the write guard
    (:func:`hgq_rtl.guard.replacing`: a non-empty ``out_dir`` that is not an ``rtl`` output is
    refused before the build). Returns the manifest, with ``generation_seconds`` added.
    """
    start = time.perf_counter()
    name = check_module_name(name or ir.name)  # names the module and the file: plain, no keyword
    out_dir = guard.check_destination(out_dir, "rtl")
    options, _ = resolve_writer(ir, options or RtlOptions())
    io, _ = resolve_io(ir, options)
    if io == "stream":
        design, text = _build_stream(ir, name, options)
    else:
        if options.writer is VerilogWriter.DIRECT:
            check_direct_writer(ir)  # before the (long) build
        component = build(ir, options)
        text = to_verilog(
            component, name, options.writer, xilinx_primitives=options.xilinx_primitives
        )
    with guard.replacing(out_dir, "rtl") as tmp:  # written whole, or left as it was
        ir_io.save(ir, tmp / MODEL_SUBDIR)
        model_hash = ir_io.model_sha256(tmp / MODEL_SUBDIR)
        if io == "stream":
            document = _stream_manifest(design, ir, name, text, model_hash, options)
        else:
            document = manifest(
                component,
                name,
                text,
                model_hash,
                options.writer,
                xilinx_primitives=options.xilinx_primitives,
            )
        seal(document)  # hashes.manifest_sha256: the manifest bound to itself
        (tmp / f"{name}.v").write_text(text)
        (tmp / MANIFEST_FILE).write_text(json.dumps(document, indent=2) + "\n")
    document["generation_seconds"] = time.perf_counter() - start
    return document


def _build_stream(ir: IRModel, name: str, options: RtlOptions):
    from .stream.network import DenseOptions, build_stream

    design = build_stream(
        ir,
        DenseOptions(
            adder_levels_per_stage=options.adder_levels_per_stage,
            clock_ns=options.clock_ns,
            share=options.share_subexpressions,
            ternary=options.ternary_adders,
            delay_model=family_delay_model(options.family),
        ),
        pixels_per_beat=options.pixels_per_beat,
    )
    os.environ.setdefault("AMARANTH_USE_YOSYS", "builtin")
    return design, verilog.convert(design.chain, name=name, emit_src=False)


def _design_fields(name: str) -> dict[str, Any]:
    """The manifest's first fields, the same for every design: schema, top module, files."""
    return {
        "schema": MANIFEST_SCHEMA,
        "schema_version": MANIFEST_VERSION,
        "top": name,
        "verilog": f"{name}.v",
        "clock": "clk",
        "reset": "rst",
    }


def _stream_manifest(design, ir: IRModel, name: str, text: str, model_hash: str, options):
    """The manifest of a streaming design (fields of :mod:`rtl_gen.stream.manifest`)."""
    from .stream.manifest import stream_fields

    return {
        **_design_fields(name),
        **stream_fields(design, ir.input, ir.output),
        "options": {
            "io": "stream",
            "adder_levels_per_stage": options.adder_levels_per_stage,
            "share_subexpressions": options.share_subexpressions,
            "clock_ns": options.clock_ns,
            "writer": VerilogWriter.AMARANTH.value,
            "ternary_adders": options.ternary_adders,
            "pixels_per_beat": options.pixels_per_beat,
            "delay_model": (
                family_delay_model(options.family).describe()
                if options.clock_ns is not None
                else None
            ),
        },
        "model": MODEL_SUBDIR,
        "hashes": {
            "verilog_sha256": hashlib.sha256(text.encode()).hexdigest(),
            "model_sha256": model_hash,
        },
    }
