"""The ``manifest.json`` fields of a streaming design (``"io": "stream"``).

A sample is the model's input vector; it travels as ``beats`` beats of ``slots`` fields on
AXI4-Stream-named ports. ``beat_elements[b][s]`` is the model element carried by field ``s`` of
beat ``b`` (-1: unused). A slot's format may be wider than its element's: the value on the wire
is the element's integer shifted left by ``slot.frac_bits - element.frac_bits``. The bench
(:mod:`hgq_rtl_sim`) needs nothing else. ``pixels_per_beat`` states the input's pixels per beat
(its slots are that many pixels' channels, pixel-major; :mod:`rtl_gen.stream.wide`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hgq_rtl.ir.formats import TensorFormat

from ..components import BusLayout
from .network import StreamDesign

INPUT_PORTS = {
    "port": "s_axis_tdata",
    "valid": "s_axis_tvalid",
    "ready": "s_axis_tready",
    "last": "s_axis_tlast",
}
OUTPUT_PORTS = {
    "port": "m_axis_tdata",
    "valid": "m_axis_tvalid",
    "ready": "m_axis_tready",
    "last": "m_axis_tlast",
}


def _formats(fmt: TensorFormat) -> list[dict[str, Any]]:
    return [
        {
            "index": k,
            "width": int(fmt.width[k]),
            "signed": bool(fmt.signed[k]),
            "int_bits": int(fmt.int_bits[k]),
            "frac_bits": int(fmt.frac_bits[k]),
        }
        for k in range(fmt.size)
    ]


def _slots(fmt: TensorFormat) -> list[dict[str, Any]]:
    layout = BusLayout.of(fmt)
    return [
        {"lsb": layout.lsb[k], **{key: v for key, v in entry.items() if key != "index"}}
        for k, entry in enumerate(_formats(fmt))
    ]


def stream_bus(
    ports: dict[str, str], slots: TensorFormat, elements: TensorFormat, beats: np.ndarray
) -> dict[str, Any]:
    """One side of the design: its ports, a beat's layout, the model's element formats and
    which element each field of each beat carries."""
    return {
        **ports,
        "width": BusLayout.of(slots).port_width,
        "slots": _slots(slots),
        "elements": _formats(elements),
        "beats": int(beats.shape[0]),
        "beat_elements": np.asarray(beats, np.int64).tolist(),
    }


def stream_fields(design: StreamDesign, input_format: TensorFormat, output_format: TensorFormat):
    """The manifest fields that differ from a parallel design's."""
    return {
        "io": "stream",
        "latency_cycles": design.latency,
        "initiation_interval": design.initiation_interval,
        "pixels_per_beat": design.pixels_per_beat,
        "input": stream_bus(INPUT_PORTS, design.input_slots, input_format, design.input_beats),
        "output": stream_bus(OUTPUT_PORTS, design.output_slots, output_format, design.output_beats),
        "layers": list(design.layers),
    }
