"""Reading a generated design's ``manifest.json`` (:func:`load_manifest`): its schema, ports,
element formats and latency, checked against the Verilog (and the model) by their sha256.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hgq_rtl.binding import check_design
from hgq_rtl.ir.files import ArrayFileError, read_json

from .interface import input_buses, io_kind, output_bus, stream_layouts

MANIFEST_SCHEMA = "hgq-rtl-manifest"
MANIFEST_SCHEMA_VERSION = 1


def load_manifest(rtl_dir: Path) -> dict[str, Any]:
    """Read and validate ``rtl_dir/manifest.json``; checks that it is bound to its files (its own
    digest, the Verilog's and the model copy's sha256: :func:`hgq_rtl.binding.check_design`).

    Raises
    ------
    FileNotFoundError
        If the manifest or the Verilog file it names is missing.
    ValueError
        If the manifest's schema or fields are wrong, or a file differs from the manifest
        (``"manifest does not match <file>: sha256 differs"``).
    """
    rtl_dir = Path(rtl_dir)
    path = rtl_dir / "manifest.json"
    if not path.is_file():
        raise FileNotFoundError(f"{rtl_dir} must hold manifest.json; it does not")
    try:  # bounded: deep nesting is refused, not a RecursionError
        manifest = read_json(path, "it")
    except ArrayFileError as error:
        raise ValueError(f"{path} must be JSON: {error}") from None
    if not isinstance(manifest, dict) or manifest.get("schema") != MANIFEST_SCHEMA:
        schema = manifest.get("schema") if isinstance(manifest, dict) else manifest
        raise ValueError(f"{path} schema must be {MANIFEST_SCHEMA!r}, not {schema!r}")
    version = manifest.get("schema_version")
    if type(version) is not int or version != MANIFEST_SCHEMA_VERSION:  # JSON true is not 1
        raise ValueError(
            f"{path} schema_version must be {MANIFEST_SCHEMA_VERSION}, "
            f"not {manifest.get('schema_version')!r}"
        )
    for key in ("top", "verilog", "clock", "reset", "latency_cycles", "output"):
        if key not in manifest:
            raise ValueError(f"{path} must have the field {key!r}")
    latency = manifest["latency_cycles"]
    if not isinstance(latency, int) or isinstance(latency, bool) or latency < 0:
        raise ValueError(f"{path} latency_cycles must be a non-negative int, not {latency!r}")
    for key in ("top", "verilog", "clock", "reset"):
        if not isinstance(manifest[key], str) or not manifest[key]:
            raise ValueError(f"{path} {key} must be a non-empty string, not {manifest[key]!r}")
    if Path(manifest["verilog"]).name != manifest["verilog"]:
        raise ValueError(
            f"{path} verilog must name a file in {rtl_dir}, not {manifest['verilog']!r}"
        )
    try:
        _check_interface(manifest)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
    check_design(rtl_dir, manifest)  # the manifest's own digest, the Verilog, the model copy
    return manifest


def _check_interface(manifest: dict[str, Any]) -> None:
    """The ports of a parallel or stream design (see :mod:`hgq_rtl_sim.interface`)."""
    if io_kind(manifest) == "stream":
        interval = manifest.get("initiation_interval")
        if type(interval) is not int or interval < 1:
            raise ValueError(
                f"a stream design's initiation_interval must be an integer >= 1, not {interval!r}"
            )
        in_layout, out_layout = stream_layouts(manifest)
        pixels = manifest.get("pixels_per_beat", 1)  # absent in manifests before the option
        if type(pixels) is not int or pixels < 1:
            raise ValueError(f"pixels_per_beat must be an integer >= 1, not {pixels!r}")
        if in_layout.slots.n_elements % pixels:
            raise ValueError(
                f"the input's {in_layout.slots.n_elements} slots must be pixels_per_beat "
                f"({pixels}) pixels of equal channel count"
            )
        ports = [manifest["clock"], manifest["reset"]]
        for layout in (in_layout, out_layout):
            ports += [layout.port, layout.valid, layout.ready, layout.last]
        repeated = sorted({port for port in ports if ports.count(port) > 1})
        if repeated:
            raise ValueError(
                f"the stream ports and clock and reset must differ: {repeated[0]!r} twice"
            )
        return
    buses = [*input_buses(manifest).buses, output_bus(manifest)]
    for layout in buses:
        total = sum(element.width for element in layout.elements)
        if layout.width != max(total, 1):  # packed without gaps; a port is at least 1 bit
            raise ValueError(
                f"{layout.name} port is {layout.width} bits wide but its elements hold {total}"
            )
