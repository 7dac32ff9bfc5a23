"""Bad-input cases of the write guard, the manifest binding and option validation (issue 14):
destinations a command must not write (a folder that is not its output, an input or a folder
around or inside one, a file, a symbolic link, a folder another process is writing), designs
whose manifest does not match its model, Verilog or itself, and numeric options out of range.

Same format as :mod:`bad_inputs.cases` (made into its ``Case`` and appended to its
``CASES``): every case must exit 2 with one line ``hgq-rtl: error: ...`` before any work, and
leave the working folder exactly as it was, byte for byte (``tests/test_bad_inputs.py``).
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable
from pathlib import Path

from hgq_rtl import guard
from hgq_rtl.binding import seal

from .helpers import design, edit_json, model

#: ``(name, command, build, expect)``: the fields of :class:`bad_inputs.cases.Case`, which
#: ``cases.py`` makes of them (this module does not import it, so either can be imported first).
GUARD_CASES: list[tuple[str, str, Callable[[Path], list[str | Path]], tuple[str, ...]]] = []


def case(name: str, command: str, *expect: str):
    def register(build: Callable[[Path], list[str | Path]]):
        GUARD_CASES.append((name, command, build, expect))
        return build

    return register


FOREIGN = ("refusing to replace", "not empty", "not an hgq-rtl output")
IS_INPUT = ("is the input",)
CONTAINS_INPUT = ("contains the input", "would delete the input")
INSIDE_INPUT = ("lies inside the input",)
NOT_A_FOLDER = ("exists and is not a folder",)
SYMLINK = ("is a symbolic link",)
BUSY = ("is being written by another hgq-rtl command",)

# --------------------------------------------------------------------------- building blocks


def _foreign(folder: Path) -> Path:
    """A user's folder: files hgq-rtl never wrote."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "notes.txt").write_text("my notes: keep\n")
    (folder / "sub").mkdir(exist_ok=True)
    (folder / "sub" / "data.bin").write_bytes(bytes(range(256)))
    return folder


def _marked(folder: Path, command: str) -> Path:
    """An earlier output of ``hgq-rtl <command>``."""
    folder.mkdir(parents=True, exist_ok=True)
    guard.write_marker(folder, command)
    (folder / "result.txt").write_text(f"output of {command}\n")
    return folder


def _a_file(path: Path) -> Path:
    path.write_text("a file, not a folder\n")
    return path


def _link(path: Path, target: Path) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    path.symlink_to(target, target_is_directory=True)
    return path


def _data(work: Path) -> Path:
    """A data file for ``--dataset npz`` (never read: the destination is refused first)."""
    (work / "data").mkdir(exist_ok=True)
    path = work / "data" / "set.npz"
    path.write_bytes(b"never read")
    return path


_HELD: list[int] = []


def _hold_lock(destination: Path) -> None:
    """Hold the write lock of ``destination`` in this (the test's) process, as a running
    command would; the previous case's lock is let go first."""
    while _HELD:
        os.close(_HELD.pop())
    destination.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(guard.lock_path(destination), os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    _HELD.append(descriptor)


def _sealed(work: Path, edit: Callable[[dict], object] | None = None, name: str = "design") -> Path:
    """The base design with ``hashes.manifest_sha256`` (as ``hgq-rtl rtl`` writes it); then
    ``edit`` changes the manifest after sealing (an edit made after generation)."""
    folder = design(work, name=name)
    edit_json(folder / "manifest.json", seal)
    if edit is not None:
        edit_json(folder / "manifest.json", edit)
    return folder


def _resealed(work: Path, edit: Callable[[dict], object]) -> Path:
    """The base design with ``edit`` applied and the digest computed again: the manifest is
    consistent with itself, so only the comparison with the model can find the edit."""
    folder = design(work, edit_manifest=edit)
    edit_json(folder / "manifest.json", seal)
    return folder


def _run(work: Path, *, rtl: bool = False) -> Path:
    """A run folder ``report`` accepts: ``report.json`` (and with ``rtl`` a design in rtl/)."""
    run = work / "run"
    run.mkdir()
    report = {"dataset": "digits", "layers": [], "test_accuracy": 0.5, "ebops": 10}
    (run / "report.json").write_text(json.dumps(report))
    if rtl:
        _sealed(run, name="rtl")
    return run


def _rtl(work: Path, out: Path) -> list[str | Path]:
    return [model(work), "--out", out]


def _train(work: Path, out: Path, data: Path | None = None) -> list[str | Path]:
    data = data if data is not None else _data(work)
    return ["--dataset", "npz", "--data-path", data, "--out", out, "--device", "cpu", "-q"]


def _run_args(work: Path, out: Path, data: Path | None = None) -> list[str | Path]:
    return [*_train(work, out, data), "--no-synth"]


def _synth(work: Path, out: Path) -> list[str | Path]:
    return [_sealed(work), "--out", out, "--no-nextpnr", "-q"]


def _waves(work: Path, waves: Path) -> list[str | Path]:
    return [_sealed(work), "--vectors", "10", "--waves", waves]


# =========================================================================== data lost

# ----------------------------------------------------------- a folder that is not ours


@case("guard-rtl-into-a-users-folder", "rtl", *FOREIGN)
def _(work):
    return _rtl(work, _foreign(work / "mine"))


@case("guard-run-into-a-users-folder", "run", *FOREIGN)
def _(work):
    return _run_args(work, _foreign(work / "mine"))


@case("guard-train-into-a-users-folder", "train", *FOREIGN)
def _(work):
    return _train(work, _foreign(work / "mine"))


@case("guard-train-into-a-hand-written-model-folder", "train", *FOREIGN)
def _(work):
    return _train(work, model(work, name="precious_model"))


@case("guard-synth-into-a-users-folder", "synth", *FOREIGN)
def _(work):
    return _synth(work, _foreign(work / "mine"))


@case("guard-report-into-a-users-folder", "report", *FOREIGN)
def _(work):
    return [_run(work), "--out", _foreign(work / "mine")]


@case("guard-verify-waves-into-a-users-folder", "verify", *FOREIGN)
def _(work):
    return _waves(work, _foreign(work / "mine"))


@case("guard-rtl-into-a-folder-with-only-hidden-files", "rtl", *FOREIGN)
def _(work):
    (work / "mine").mkdir()
    (work / "mine" / ".config").write_text("hidden but mine\n")
    return _rtl(work, work / "mine")


@case("guard-rtl-marker-not-json", "rtl", *FOREIGN)
def _(work):
    folder = _foreign(work / "mine")
    (folder / guard.MARKER).write_text("not the tool's marker")
    return _rtl(work, folder)


@case("guard-rtl-marker-of-another-tool", "rtl", *FOREIGN)
def _(work):
    folder = _foreign(work / "mine")
    (folder / guard.MARKER).write_text(json.dumps({"written_by": "other", "command": "rtl"}))
    return _rtl(work, folder)


# ----------------------------------------------------------- another command's output


@case("guard-rtl-over-a-training-run", "rtl", "holds the output of `hgq-rtl train`")
def _(work):
    return _rtl(work, _marked(work / "trained", "train"))


@case("guard-synth-over-a-design", "synth", "holds the output of `hgq-rtl rtl`")
def _(work):
    return _synth(work, _marked(work / "other_design", "rtl"))


@case("guard-run-over-a-design", "run", "holds the output of `hgq-rtl rtl`")
def _(work):
    return _run_args(work, _marked(work / "other_design", "rtl"))


@case("guard-train-over-a-run", "train", "holds the output of `hgq-rtl run`")
def _(work):
    return _train(work, _marked(work / "a_run", "run"))


@case("guard-report-over-a-synthesis", "report", "holds the output of `hgq-rtl synth`")
def _(work):
    return [_run(work), "--out", _marked(work / "synthesis", "synth")]


@case("guard-verify-waves-over-a-design", "verify", "holds the output of `hgq-rtl rtl`")
def _(work):
    return _waves(work, _marked(work / "other_design", "rtl"))


# ----------------------------------------------------------- the input itself


@case("guard-rtl-out-is-the-model-folder", "rtl", *IS_INPUT)
def _(work):
    folder = model(work)
    return [folder, "--out", folder]


@case("guard-rtl-out-is-the-model-folder-spelled-differently", "rtl", *IS_INPUT)
def _(work):
    model(work)
    return [Path("model"), "--out", Path("model/../model/.")]


@case("guard-synth-out-is-the-design", "synth", *IS_INPUT)
def _(work):
    folder = _sealed(work)
    return [folder, "--out", folder, "--no-nextpnr"]


@case("guard-verify-waves-is-the-design", "verify", *IS_INPUT)
def _(work):
    folder = _sealed(work)
    return [folder, "--vectors", "10", "--waves", folder]


@case("guard-train-out-is-the-data-folder", "train", *IS_INPUT)
def _(work):
    _data(work)
    return ["--dataset", "fashion_mnist", "--data-path", work / "data", "--out", work / "data"]


@case("guard-run-out-is-the-data-folder", "run", *IS_INPUT)
def _(work):
    _data(work)
    return ["--dataset", "fashion_mnist", "--data-path", work / "data", "--out", work / "data"]


@case("guard-report-out-is-the-runs-own-design", "report", *FOREIGN)
def _(work):
    run = _run(work, rtl=True)
    return [run, "--out", run / "rtl"]


# ----------------------------------------------------------- a folder around the input


@case("guard-rtl-out-contains-the-model", "rtl", *CONTAINS_INPUT)
def _(work):
    return [model(work, name="models/m1"), "--out", work / "models"]


@case("guard-synth-out-contains-the-design", "synth", *CONTAINS_INPUT)
def _(work):
    (work / "project").mkdir()
    return [_sealed(work / "project"), "--out", work / "project", "--no-nextpnr"]


@case("guard-train-out-contains-the-data", "train", *CONTAINS_INPUT)
def _(work):
    return _train(work, work / "data")


@case("guard-run-out-contains-the-data", "run", *CONTAINS_INPUT)
def _(work):
    return _run_args(work, work / "data")


@case("guard-verify-waves-contain-the-design", "verify", *CONTAINS_INPUT)
def _(work):
    (work / "project").mkdir()
    return [_sealed(work / "project"), "--vectors", "10", "--waves", work / "project"]


@case("guard-report-out-contains-the-run", "report", *CONTAINS_INPUT)
def _(work):
    _run(work)
    return [work / "run", "--out", work]


# ----------------------------------------------------------- a folder inside the input


@case("guard-rtl-out-inside-the-model", "rtl", *INSIDE_INPUT)
def _(work):
    folder = model(work)
    return [folder, "--out", folder / "design"]


@case("guard-train-out-inside-the-data-folder", "train", *INSIDE_INPUT)
def _(work):
    _data(work)
    data = work / "data"
    return ["--dataset", "fashion_mnist", "--data-path", data, "--out", data / "model"]


@case("guard-run-out-inside-the-data-folder", "run", *INSIDE_INPUT)
def _(work):
    _data(work)
    data = work / "data"
    return ["--dataset", "fashion_mnist", "--data-path", data, "--out", data / "run"]


@case("guard-verify-waves-inside-the-design", "verify", *INSIDE_INPUT)
def _(work):
    return _waves(work, work / "design" / "waves")


# ----------------------------------------------------------- a file or a link


@case("guard-rtl-out-is-a-file", "rtl", *NOT_A_FOLDER)
def _(work):
    return _rtl(work, _a_file(work / "design.v"))


@case("guard-run-out-is-a-file", "run", *NOT_A_FOLDER)
def _(work):
    return _run_args(work, _a_file(work / "run.txt"))


@case("guard-train-out-is-a-file", "train", *NOT_A_FOLDER)
def _(work):
    return _train(work, _a_file(work / "model.txt"))


@case("guard-synth-out-is-a-file", "synth", *NOT_A_FOLDER)
def _(work):
    return _synth(work, _a_file(work / "synth.txt"))


@case("guard-report-out-is-a-file", "report", *NOT_A_FOLDER)
def _(work):
    return [_run(work), "--out", _a_file(work / "report.txt")]


@case("guard-verify-waves-is-a-file", "verify", *NOT_A_FOLDER)
def _(work):
    return _waves(work, _a_file(work / "waves.txt"))


@case("guard-rtl-out-is-a-link-to-an-empty-folder", "rtl", *SYMLINK)
def _(work):
    return _rtl(work, _link(work / "design", work / "elsewhere"))


@case("guard-rtl-out-is-a-link-to-an-earlier-design", "rtl", *SYMLINK)
def _(work):
    _marked(work / "earlier", "rtl")
    (work / "design").symlink_to(work / "earlier", target_is_directory=True)
    return _rtl(work, work / "design")


@case("guard-rtl-out-is-a-dangling-link", "rtl", *SYMLINK)
def _(work):
    (work / "design").symlink_to(work / "nowhere", target_is_directory=True)
    return _rtl(work, work / "design")


@case("guard-run-out-is-a-link", "run", *SYMLINK)
def _(work):
    return _run_args(work, _link(work / "run", work / "elsewhere"))


@case("guard-train-out-is-a-link", "train", *SYMLINK)
def _(work):
    return _train(work, _link(work / "model", work / "elsewhere"))


@case("guard-synth-out-is-a-link", "synth", *SYMLINK)
def _(work):
    return _synth(work, _link(work / "synth", work / "elsewhere"))


@case("guard-report-out-is-a-link", "report", *SYMLINK)
def _(work):
    return [_run(work), "--out", _link(work / "report", work / "elsewhere")]


@case("guard-verify-waves-is-a-link", "verify", *SYMLINK)
def _(work):
    return _waves(work, _link(work / "waves", work / "elsewhere"))


# ----------------------------------------------------------- another writer at work


@case("guard-rtl-while-another-writes", "rtl", *BUSY)
def _(work):
    _hold_lock(work / "design")
    return _rtl(work, work / "design")


@case("guard-rtl-while-another-writes-an-earlier-design", "rtl", *BUSY)
def _(work):
    _marked(work / "design", "rtl")
    _hold_lock(work / "design")
    return _rtl(work, work / "design")


@case("guard-train-while-another-trains", "train", *BUSY)
def _(work):
    _hold_lock(work / "model")
    return _train(work, work / "model")


@case("guard-run-while-another-runs", "run", *BUSY)
def _(work):
    _hold_lock(work / "run")
    return _run_args(work, work / "run")


@case("guard-synth-while-another-synthesizes", "synth", *BUSY)
def _(work):
    _hold_lock(work / "synth")
    return _synth(work, work / "synth")


@case("guard-report-in-place-while-the-run-is-written", "report", *BUSY)
def _(work):
    run = _run(work)
    _hold_lock(run)
    return [run]


@case("guard-report-out-while-another-writes", "report", *BUSY)
def _(work):
    run = _run(work)
    _hold_lock(work / "report")
    return [run, "--out", work / "report"]


@case("guard-verify-waves-while-another-writes", "verify", *BUSY)
def _(work):
    _hold_lock(work / "waves")
    return _waves(work, work / "waves")


# =========================================================================== silently wrong

# ----------------------------------------------------------- the manifest edited


def _latency(d: dict) -> None:
    d["latency_cycles"] = 4


@case("bind-verify-manifest-edited-after-generation", "verify", "manifest_sha256", "edited")
def _(work):
    return [_sealed(work, _latency), "--vectors", "10"]


@case("bind-synth-manifest-edited-after-generation", "synth", "manifest_sha256", "edited")
def _(work):
    return [_sealed(work, _latency), "--no-nextpnr"]


@case("bind-report-manifest-edited-after-generation", "report", "manifest_sha256", "edited")
def _(work):
    run = _run(work, rtl=True)
    edit_json(run / "rtl" / "manifest.json", lambda d: d["layers"].append({"name": "x"}))
    return [run]


@case("bind-verify-manifest-digest-forged", "verify", "manifest_sha256")
def _(work):
    return [_sealed(work, lambda d: d["hashes"].update(manifest_sha256="0" * 64)), "--vectors", "1"]


@case("bind-synth-verilog-edited-after-generation", "synth", "bad_base.v: sha256 differs")
def _(work):
    folder = _sealed(work)
    with open(folder / "bad_base.v", "a") as stream:
        stream.write("// edited\n")
    return [folder, "--no-nextpnr"]


@case("bind-synth-verilog-hash-removed", "synth", "bad_base.v: sha256 differs")
def _(work):
    return [design(work, lambda d: d["hashes"].pop("verilog_sha256")), "--no-nextpnr"]


@case("bind-synth-model-changed-after-generation", "synth", "model/model.json: sha256 differs")
def _(work):
    folder = _sealed(work)
    edit_json(folder / "model" / "model.json", lambda d: d.update(name="other"))
    return [folder, "--no-nextpnr"]


@case("bind-report-verilog-edited", "report", "bad_base.v: sha256 differs")
def _(work):
    run = _run(work, rtl=True)
    with open(run / "rtl" / "bad_base.v", "a") as stream:
        stream.write("// edited\n")
    return [run]


@case("bind-report-run-model-is-another-model", "report", "model/model.json: sha256 differs")
def _(work):
    run = _run(work, rtl=True)
    model(run, lambda d: d.update(name="another"), name="model")
    return [run]


# ----------------------------------------------------------- formats that contradict the model


def _output_element(**changes) -> Callable[[dict], None]:
    return lambda d: d["output"]["elements"][0].update(changes)


def _input_element(k: int, **changes) -> Callable[[dict], None]:
    return lambda d: d["input"]["elements"][k].update(changes)


@case("bind-verify-output-int-bits-moved-to-frac", "verify", "output element 0", "contradicts")
def _(work):
    return [_resealed(work, _output_element(int_bits=4, frac_bits=2)), "--vectors", "10"]


@case("bind-verify-output-sign-flipped", "verify", "output element 0", "signed False")
def _(work):
    return [_resealed(work, _output_element(signed=False, int_bits=6)), "--vectors", "10"]


@case("bind-verify-input-frac-bits-changed", "verify", "input element 2", "contradicts")
def _(work):
    return [_resealed(work, _input_element(2, int_bits=1, frac_bits=3)), "--vectors", "10"]


@case("bind-verify-input-unsigned-made-signed", "verify", "input element 1", "contradicts")
def _(work):
    return [_resealed(work, _input_element(1, signed=True, int_bits=2)), "--vectors", "10"]


@case("bind-verify-formats-edited-without-a-digest", "verify", "output element 1", "contradicts")
def _(work):
    edit = lambda d: d["output"]["elements"][1].update(int_bits=3, frac_bits=3)  # noqa: E731
    return [design(work, edit_manifest=edit), "--vectors", "10"]


@case("bind-verify-taps-a-layer-the-model-lacks", "verify", "taps layer 'ghost'")
def _(work):
    tap = {"layer": "ghost", "port": "tap_ghost", "width": 1, "latency_cycles": 1}
    tap["elements"] = [
        {"index": 0, "lsb": 0, "width": 1, "signed": False, "int_bits": 1, "frac_bits": 0}
    ]
    return [_resealed(work, lambda d: d.update(taps=[tap])), "--vectors", "10"]


# =========================================================================== options, before work


@case("option-run-clock-ns-zero", "run", "argument --clock-ns", "'0'")
def _(work):
    return [*_run_args(work, work / "run"), "--clock-ns", "0"]


@case("option-run-clock-ns-absurdly-long", "run", "argument --clock-ns", "'1e9'")
def _(work):
    return [*_run_args(work, work / "run"), "--clock-ns", "1e9"]


@case("option-synth-clock-ns-negative", "synth", "argument --clock-ns", "'-5'")
def _(work):
    return [_sealed(work), "--clock-ns=-5"]


@case("option-synth-clock-ns-nan", "synth", "argument --clock-ns", "'nan'")
def _(work):
    return [_sealed(work), "--clock-ns", "nan"]


@case("option-synth-clock-ns-tiny", "synth", "argument --clock-ns", "'1e-6'")
def _(work):
    return [_sealed(work), "--clock-ns", "1e-6"]


@case("option-rtl-pipeline-clock-ns-inf", "rtl", "argument --pipeline-clock-ns", "'inf'")
def _(work):
    return [*_rtl(work, work / "design"), "--pipeline-clock-ns", "inf"]


@case("option-rtl-adder-levels-zero", "rtl", "argument --adder-levels", "'0'")
def _(work):
    return [*_rtl(work, work / "design"), "--adder-levels", "0"]


@case("option-verify-vectors-zero", "verify", "argument --vectors", "'0'")
def _(work):
    return [_sealed(work), "--vectors", "0"]


@case("option-verify-vectors-a-trillion", "verify", "argument --vectors", "1,000,000,000")
def _(work):
    return [_sealed(work), "--vectors", "1000000000000"]


@case("option-run-vectors-a-trillion", "run", "argument --vectors", "'1000000000000'")
def _(work):
    return [*_run_args(work, work / "run"), "--vectors", "1000000000000"]


@case("option-verify-vectors-beyond-the-cocotb-memory", "verify", "--engine fast", "bytes")
def _(work):
    return [_sealed(work), "--vectors", "1000000000"]


@case("option-train-epochs-zero", "train", "argument --epochs", "'0'")
def _(work):
    return [*_train(work, work / "model"), "--epochs", "0"]


@case("option-train-learning-rate-nan", "train", "argument --lr", "'nan'")
def _(work):
    return [*_train(work, work / "model"), "--lr", "nan"]


@case("option-train-learning-rate-zero", "train", "argument --lr", "'0'")
def _(work):
    return [*_train(work, work / "model"), "--lr", "0"]


@case("option-train-beta-negative", "train", "argument --beta", "'-1'")
def _(work):
    return [*_train(work, work / "model"), "--beta=-1"]


@case("option-run-gamma-inf", "run", "argument --gamma", "'inf'")
def _(work):
    return [*_run_args(work, work / "run"), "--gamma", "inf"]


@case("option-train-seed-negative", "train", "argument --seed", "'-3'")
def _(work):
    return [*_train(work, work / "model"), "--seed=-3"]


@case("option-train-threads-zero", "train", "argument --threads", "'0'")
def _(work):
    return [*_train(work, work / "model"), "--threads", "0"]


@case("option-train-init-bits-too-many", "train", "argument --init-bits", "'100'")
def _(work):
    return [*_train(work, work / "model"), "--init-bits", "100"]


@case("option-check-worst-negative", "check", "argument --worst", "'-1'")
def _(work):
    return [model(work), "--dataset", "digits", "--worst=-1"]
