"""The drivers: :func:`synthesize` (the default flow), :func:`synthesize_target` (one target
of :data:`TARGETS`) and :func:`read_flow_reports`.

Each run builds its folder in a temporary sibling of the output folder, renders every step's
scripts there, runs the tools, parses their reports and renames the folder into place (or
removes it on failure, keeping the failing tool's logs beside it).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from hgq_rtl import guard, processes

from .base import (
    DEFAULT_TIMEOUT_S,
    REPORT_NAME,
    SynthError,
    ToolStep,
    _load_json,
    _lookup_tool,
    _read_report,
    check_clock_ns,
)
from .design import read_manifest
from .nextpnr import (
    NextpnrEcp5Step,
    parse_nextpnr_fmax,
    parse_nextpnr_log_lut4,
    parse_nextpnr_overfull,
    parse_nextpnr_utilization,
)
from .report import CellCounts, FlowReport, SynthReport, xilinx_memory
from .targets import TARGETS
from .yosys import (
    YosysXilinxHierarchyStep,
    YosysXilinxStep,
    parse_yosys_hierarchy,
    parse_yosys_xilinx_stat,
)


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


class _Beside:
    """A tool step run in a thread beside the caller's own steps: its seconds, or its error.

    The step's logs go to a hidden file of its own when it fails (``log``), so that a failure
    of the caller's step, whose logs go to the run's failed log, is never overwritten by the
    logs of the step it stops."""

    def __init__(self, run: Callable[[Path], float], log: Path) -> None:
        self.log = log
        self._seconds: float | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._target, args=(run,), daemon=True)
        self._thread.start()

    def _target(self, run: Callable[[Path], float]) -> None:
        try:
            self._seconds = run(self.log)
        except BaseException as error:  # handed to the caller by result()
            self._error = error

    def _join(self) -> None:
        while self._thread.is_alive():
            self._thread.join(0.2)  # short waits: Ctrl-C and SIGTERM stay deliverable

    def result(self, failed_log: Path) -> float:
        """Wait for the step; its error is raised with its logs moved to ``failed_log``."""
        self._join()
        if self._error is None:
            assert self._seconds is not None
            return self._seconds
        if self.log.is_file():
            os.replace(self.log, failed_log)
            if isinstance(self._error, SynthError):
                raise SynthError(str(self._error).replace(str(self.log), str(failed_log)))
        raise self._error

    def stop(self) -> None:
        """Kill the step's tool (every tool group of this process) and forget its logs."""
        processes.kill_all()
        self._join()
        self.log.unlink(missing_ok=True)


def synthesize(
    rtl_dir: Path,
    out_dir: Path | None = None,
    *,
    clock_ns: float = 5.0,
    nextpnr: bool = True,
    quiet: bool = False,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    per_layer: bool = False,
    failed_log: Path | None = None,
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
    per_layer : bool, optional
        Run ``synth_xilinx`` without ``-flatten`` instead, and fill ``per_layer`` of the report;
        the totals are then the sums over the layers and the top level (on the digits model
        within 1 % of a flattened run: layer boundaries are registers, so little optimization
        crosses them), at the cost of one Yosys run instead of two.
    failed_log : Path, optional
        Where a failing tool's logs are kept; defaults to ``<out_dir>.failed.log`` beside
        ``out_dir`` (a caller that builds ``out_dir`` inside a temporary folder of its own
        points this outside it, so the log outlives the failure).

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
    clock_ns = check_clock_ns(clock_ns)
    if not (isinstance(timeout_s, int | float) and timeout_s > 0):
        raise ValueError(f"timeout_s must be a positive number of seconds, got {timeout_s!r}")
    design = read_manifest(rtl_dir)
    out_dir = Path(out_dir) if out_dir is not None else rtl_dir / "synth"
    guard.check_destination(out_dir, "synth", hosts=[rtl_dir])

    yosys_exe = _lookup_tool(YosysXilinxStep.tool)
    nextpnr_exe = _lookup_tool(NextpnrEcp5Step.tool) if nextpnr else None

    # the targets yosys-xilinx and nextpnr-ecp5 of the table, at their default parts
    xilinx_flow, ecp5_flow = TARGETS["yosys-xilinx"], TARGETS["nextpnr-ecp5"]
    verilog_name = design.verilog.name
    (xilinx,) = xilinx_flow.steps(design, xilinx_flow.default_part, clock_ns)
    ecp5, pnr = ecp5_flow.steps(design, ecp5_flow.default_part, clock_ns)
    hierarchy = YosysXilinxHierarchyStep(design.top, verilog_name, xilinx_flow.default_part)

    if failed_log is None:
        failed_log = out_dir.parent / f"{out_dir.name}.failed.log"
    failed_log = Path(failed_log)
    with guard.replacing(out_dir, "synth", hosts=[rtl_dir]) as work:
        failed_log.unlink(missing_ok=True)  # a stale one would blame the wrong run
        shutil.copyfile(design.verilog, work / verilog_name)
        # per layer: one run that keeps the hierarchy gives both the layers and the totals
        steps: list[ToolStep] = [hierarchy if per_layer else xilinx]
        steps += [ecp5, pnr] if nextpnr else []
        for step in steps:
            step.render(work)

        def run(step: ToolStep, exe: Path, log: Path = failed_log, quiet: bool = quiet) -> float:
            return _run_step(
                step, work, tool_path=exe, timeout_s=timeout_s, failed_log=log, quiet=quiet
            )

        xilinx_step = hierarchy if per_layer else xilinx
        beside: _Beside | None = None
        if nextpnr_exe is not None and (os.cpu_count() or 1) > 1:
            # the Xilinx and the ECP5 flows are independent (Yosys runs on one core): side by
            # side, the slower one sets the time
            _progress(quiet, f"synth: {xilinx_step.label} ({xilinx_step.top}) ... started")
            beside = _Beside(
                lambda log: run(xilinx_step, yosys_exe, log, quiet=True),
                failed_log.parent / f".{failed_log.name}.{os.getpid()}.xilinx",
            )
        try:
            ecp5_lut4: int | None = None
            ecp5_ff: int | None = None
            fmax_mhz: float | None = None
            nextpnr_seconds: float | None = None
            ecp5_overfull: dict[str, list[int]] | None = None
            if nextpnr_exe is not None:
                nextpnr_seconds = run(ecp5, yosys_exe)
                try:
                    nextpnr_seconds += run(pnr, nextpnr_exe)
                except SynthError:
                    overfull = _overfull(work / pnr.log_name)
                    if not overfull:
                        raise
                    # the design is larger than the device: no Fmax, the rest stands
                    failed_log.unlink(missing_ok=True)
                    ecp5_overfull = {name: list(counts) for name, counts in overfull.items()}
                    shown = ", ".join(f"{k} {u:,} of {a:,}" for k, (u, a) in overfull.items())
                    _progress(quiet, f"synth: too large for the LFE5U-85F ({shown}): no Fmax")
                else:
                    report_path = work / pnr.report_name
                    used = _read_report(report_path, parse_nextpnr_utilization)
                    fmax_mhz = _read_report(
                        report_path, lambda t: parse_nextpnr_fmax(t, design.clock)
                    )
                    ecp5_lut4 = _read_report(work / pnr.log_name, parse_nextpnr_log_lut4)
                    ecp5_ff = used.get("TRELLIS_FF", 0)
            if beside is not None:
                yosys_seconds = beside.result(failed_log)
                label = f"{xilinx_step.label} ({xilinx_step.top})"
                _progress(quiet, f"synth: {label} ... {yosys_seconds:.1f} s")
        except BaseException:  # a failure or an interrupt: the other tool stops too
            if beside is not None:
                beside.stop()
            raise
        if beside is None:
            yosys_seconds = run(xilinx_step, yosys_exe)

        layers: dict[str, dict[str, int]] | None = None
        if per_layer:
            modules = _read_report(
                work / hierarchy.stat_name, lambda t: parse_yosys_hierarchy(t, design.top)
            )
            layers = {
                name: {"lut": c.lut, "ff": c.ff, "carry": c.carry, "dsp": c.dsp}
                for name, c in modules.items()
            }
            counts = CellCounts(
                **{key: sum(layer[key] for layer in layers.values()) for key in CELL_KEYS},
                cells=_sum_cells(c.cells for c in modules.values()),
            )
        else:
            counts = _read_report(work / xilinx.stat_name, parse_yosys_xilinx_stat)

        bram, lutram = xilinx_memory(counts.cells)

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
            per_layer=layers,
            bram=bram,
            lutram=lutram,
            ecp5_overfull=ecp5_overfull,
        )
        (work / REPORT_NAME).write_text(
            json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8"
        )
    return report


CELL_KEYS = ("lut", "ff", "carry", "dsp")


def _overfull(log: Path) -> dict[str, tuple[int, int]]:
    """The resources a failed nextpnr run found short on the device (empty: another failure)."""
    try:
        return parse_nextpnr_overfull(log.read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return {}


def _sum_cells(tables: Iterable[dict[str, int]]) -> dict[str, int]:
    """Cell counts of several netlists added up, by cell type."""
    total: dict[str, int] = {}
    for table in tables:
        for cell, count in table.items():
            total[cell] = total.get(cell, 0) + count
    return total


def synthesize_target(
    rtl_dir: Path,
    target: str,
    out_dir: Path | None = None,
    *,
    part: str | None = None,
    clock_ns: float = 5.0,
    quiet: bool = False,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> FlowReport:
    """Run one synthesis target of :data:`TARGETS` on a generated design.

    The scripts are rendered from ``constraints/`` into a temporary sibling of ``out_dir``,
    the tools run there, their fixed-name reports are parsed, and the folder (with
    ``synth_report.json``) is renamed to ``out_dir`` at the end, replacing an earlier result.
    For an optional target (Vivado) whose tool is not installed, the folder holds the scripts
    and a report with ``ran`` False whose ``command`` says how to run them.

    Parameters
    ----------
    rtl_dir : Path
        Design folder with ``manifest.json`` and the Verilog file.
    target : str
        A key of :data:`TARGETS`.
    out_dir : Path, optional
        Output folder; defaults to ``rtl_dir / f"synth_{target}"``.
    part : str, optional
        Part, device or family (see each target's description); its default otherwise.
    clock_ns : float, optional
        Target clock period in ns.
    quiet : bool, optional
        Print no progress lines to stderr.
    timeout_s : float, optional
        Wall-clock limit of each tool run, in seconds.

    Returns
    -------
    FlowReport
        The figures, also written to ``out_dir / "synth_report.json"``.

    Raises
    ------
    FileNotFoundError
        If ``rtl_dir``, its manifest or the Verilog file is missing.
    ValueError
        If ``target``, ``part``, ``clock_ns`` or ``timeout_s`` is invalid or ``out_dir``
        cannot be replaced safely.
    SynthError
        If a required tool is missing, fails or times out, or a report cannot be read.
    """
    if target not in TARGETS:
        raise ValueError(f"`target` must be one of {', '.join(TARGETS)}, not {target!r}")
    clock_ns = check_clock_ns(clock_ns, "`clock_ns`")
    if not (isinstance(timeout_s, int | float) and timeout_s > 0):
        raise ValueError(f"`timeout_s` must be a positive number of seconds, not {timeout_s!r}")
    flow = TARGETS[target]
    part = flow.default_part if part is None else part
    rtl_dir = Path(rtl_dir)
    design = read_manifest(rtl_dir)
    steps = flow.steps(design, part, float(clock_ns))
    out_dir = Path(out_dir) if out_dir is not None else rtl_dir / f"synth_{target}"
    guard.check_destination(out_dir, "synth", hosts=[rtl_dir])

    tools: dict[str, Path | None] = {}
    for step in steps:
        try:
            tools[step.tool] = _lookup_tool(step.tool)
        except SynthError:
            if not flow.optional:
                raise
            tools[step.tool] = None

    failed_log = out_dir.parent / f"{out_dir.name}.failed.log"
    base = {
        "target": target,
        "part": part,
        "top": design.top,
        "clock": design.clock,
        "clock_ns": float(clock_ns),
    }
    with guard.replacing(out_dir, "synth", hosts=[rtl_dir]) as work:
        failed_log.unlink(missing_ok=True)
        shutil.copyfile(design.verilog, work / design.verilog.name)
        for step in steps:
            step.render(work)
        missing = [step for step in steps if tools[step.tool] is None]
        if missing:
            commands = " && ".join(shlex.join([step.tool, *step.arguments(work)]) for step in steps)
            command = f"cd {shlex.quote(str(out_dir))} && {commands}"
            report = FlowReport(**base, ran=False, command=command)
            _progress(
                quiet,
                f"synth: {missing[0].tool} not found: scripts written to {out_dir}; run them "
                f"with: {command}",
            )
        else:
            seconds = 0.0
            for step in steps:
                seconds += _run_step(
                    step,
                    work,
                    tool_path=tools[step.tool],
                    timeout_s=timeout_s,
                    failed_log=failed_log,
                    quiet=quiet,
                )
            fields = flow.read(work, design.clock)
            report = FlowReport(**base, ran=True, seconds=round(seconds, 3), **fields)
        (work / REPORT_NAME).write_text(
            json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8"
        )
    return report


def read_flow_reports(out_dir: Path) -> FlowReport:
    """Parse the reports of a target folder again, e.g. after running Vivado there by hand.

    Parameters
    ----------
    out_dir : Path
        A folder written by :func:`synthesize_target` (its ``synth_report.json`` names the
        target, part and clock) in which the tool has since written its reports.

    Returns
    -------
    FlowReport
        The figures, with ``ran`` True (``seconds`` None: the run was not timed).

    Raises
    ------
    FileNotFoundError
        If ``out_dir`` holds no ``synth_report.json``.
    ValueError
        If that file is not a target report.
    SynthError
        If a tool report is missing or unreadable.
    """
    path = Path(out_dir) / REPORT_NAME
    if not path.is_file():
        raise FileNotFoundError(f"no {REPORT_NAME} in {out_dir}: run synthesize_target first")
    saved = _load_json(path.read_text(encoding="utf-8"), str(path))
    keys = ("target", "part", "top", "clock", "clock_ns")
    if not isinstance(saved, dict) or saved.get("target") not in TARGETS:
        raise ValueError(f"`{path}` must be a synthesis target report, not another file")
    fields = TARGETS[saved["target"]].read(Path(out_dir), saved["clock"])
    return FlowReport(**{k: saved[k] for k in keys}, ran=True, **fields)
