"""The write guard (:mod:`hgq_rtl.guard`): every command either succeeds or leaves its
destination exactly as it was, byte for byte, also when it fails midway, is interrupted with
SIGTERM, or is killed with SIGKILL; the lock stops a second writer and dies with its holder.

The bad-input corpus (``tests/bad_inputs/cases_guard.py``) holds the one-line refusals of every
command; here are the guard's own behaviours and a property test over destinations.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from bad_inputs.helpers import snapshot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hgq_rtl import guard
from hgq_rtl.cli import main
from hgq_rtl.ir import io as ir_io
from hgq_rtl.ir.random import random_model


def _siblings(parent: Path, name: str) -> list[str]:
    """Hidden siblings the guard makes for destination ``name`` (temporaries, lock file)."""
    return sorted(p.name for p in parent.iterdir() if p.name.startswith(f".{name}."))


def _old_content(folder: Path, command: str = "rtl") -> dict:
    folder.mkdir(parents=True)
    guard.write_marker(folder, command)
    (folder / "old.v").write_text("module old; endmodule\n")
    (folder / "sub").mkdir()
    (folder / "sub" / "data.bin").write_bytes(bytes(range(200)))
    return snapshot(folder)


# --------------------------------------------------------------------------- replacing


def test_replacing_swaps_the_new_content_in_whole(tmp_path: Path) -> None:
    destination = tmp_path / "design"
    _old_content(destination)
    with guard.replacing(destination, "rtl") as staging:
        assert staging.parent == tmp_path and staging.name.startswith(".design.")
        assert snapshot(destination)["old.v"] == b"module old; endmodule\n"  # old still there
        (staging / "new.v").write_text("module new; endmodule\n")
    assert sorted(snapshot(destination)) == [guard.MARKER, "new.v"]
    assert guard.marker_command(destination) == "rtl"
    assert _siblings(tmp_path, "design") == []


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "two-renames"])
def test_swap_with_and_without_an_atomic_exchange(tmp_path, monkeypatch, exchange) -> None:
    if not exchange:
        monkeypatch.setattr(guard, "_exchange", lambda a, b: False)
    destination = tmp_path / "out"
    _old_content(destination, "synth")
    with guard.replacing(destination, "synth") as staging:
        (staging / "synth_report.json").write_text("{}")
    assert sorted(snapshot(destination)) == [guard.MARKER, "synth_report.json"]
    assert _siblings(tmp_path, "out") == []


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    files=st.dictionaries(
        st.text("abcxyz_", min_size=1, max_size=6), st.binary(max_size=64), max_size=5
    ),
    written=st.integers(0, 4),
    error=st.sampled_from([ValueError, KeyboardInterrupt, OSError]),
    fresh=st.booleans(),
)
def test_a_failure_midway_leaves_the_destination_as_it_was(
    tmp_path_factory, files, written, error, fresh
) -> None:
    """Whatever the old content and however far the new one got, an exception (an interrupt
    included) leaves the destination's bytes, and its parent, as they were."""
    parent = tmp_path_factory.mktemp("parent")
    destination = parent / "nested" / "out" if fresh else parent / "out"
    if not fresh:
        destination.mkdir()
        guard.write_marker(destination, "report")
        for name, data in files.items():
            (destination / name).write_bytes(data)
    before = snapshot(parent)
    with pytest.raises(error), guard.replacing(destination, "report") as staging:
        for k in range(written):
            (staging / f"part{k}").write_bytes(b"new" * k)
        raise error("stopped midway")
    assert snapshot(parent) == before  # no new folder, no temporary, no lock file


def test_an_old_content_caught_between_two_renames_is_put_back(tmp_path: Path) -> None:
    """``kill -9`` between the two renames of the fallback swap leaves the old content in a
    hidden sibling and no destination: the next writer puts it back before anything else."""
    destination = tmp_path / "out"
    before = _old_content(destination, "run")
    destination.rename(tmp_path / ".out.0123456789ab.hgq-rtl-old")
    (tmp_path / ".out.ba9876543210.hgq-rtl-tmp").mkdir()  # the new content, half written
    (tmp_path / ".out.b.0123456789ab.hgq-rtl-tmp").mkdir()  # another destination's: kept
    with pytest.raises(RuntimeError), guard.replacing(destination, "run"):
        raise RuntimeError("the next writer fails")
    assert snapshot(destination) == before
    assert _siblings(tmp_path, "out") == [".out.b.0123456789ab.hgq-rtl-tmp"]


def test_updating_removes_a_folder_it_made_when_nothing_was_written(tmp_path: Path) -> None:
    with pytest.raises(ValueError), guard.updating(tmp_path / "a" / "run", "train"):
        raise ValueError("bad data")
    assert list(tmp_path.iterdir()) == []
    _old_content(tmp_path / "run", "train")
    before = snapshot(tmp_path)
    with pytest.raises(ValueError), guard.updating(tmp_path / "run", "train"):
        raise ValueError("bad data")
    assert snapshot(tmp_path) == before


def test_a_host_may_hold_the_destination_but_an_input_may_not(tmp_path: Path) -> None:
    rtl = tmp_path / "rtl"
    rtl.mkdir()
    (rtl / "top.v").write_text("")
    guard.check_destination(rtl / "synth", "synth", hosts=[rtl])  # RTL_DIR/synth, the default
    with pytest.raises(guard.DestinationError, match="lies inside the input"):
        guard.check_destination(rtl / "synth", "synth", inputs=[rtl])
    with pytest.raises(guard.DestinationError, match="is the input"):
        guard.check_destination(rtl, "synth", hosts=[rtl])


# --------------------------------------------------------------------------- the lock

_HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from hgq_rtl import guard

    destination = Path(sys.argv[1])
    with guard.replacing(destination, "rtl") as staging:
        (staging / "half.v").write_text("module half")
        print("writing", flush=True)
        time.sleep(600)
    """
)


def _start_holder(destination: Path) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(destination)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout.readline() == "writing\n", process.stderr.read()
    return process


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM], ids=["kill-9", "sigterm"])
def test_a_second_writer_is_refused_and_the_lock_dies_with_its_holder(tmp_path, how) -> None:
    destination = tmp_path / "design"
    before = _old_content(destination)
    holder = _start_holder(destination)
    try:
        with pytest.raises(guard.DestinationBusy, match="being written by another"):
            with guard.replacing(destination, "rtl"):
                pass
        holder.send_signal(how)
        holder.wait(timeout=30)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    assert snapshot(destination) == before  # the old content survived the killed writer
    # no false lock: the next writer gets in, and clears what the killed one left
    with guard.replacing(destination, "rtl") as staging:
        (staging / "new.v").write_text("module new; endmodule\n")
    assert sorted(snapshot(destination)) == [guard.MARKER, "new.v"]
    assert _siblings(tmp_path, "design") == []


def test_the_cli_refuses_a_second_writer_in_one_line(tmp_path: Path) -> None:
    from bad_inputs.helpers import assert_bad_input, cli, model

    destination = tmp_path / "design"
    before = _old_content(destination)
    holder = _start_holder(destination)
    try:
        result = cli("rtl", model(tmp_path), "--out", destination, cwd=tmp_path)
    finally:
        holder.kill()
        holder.wait()
    assert_bad_input(result, "being written by another hgq-rtl command")
    assert snapshot(destination) == before


# --------------------------------------------------------------------------- every command

#: Destinations a command may meet: the states of ``_prepare``.
STATES = ("absent", "empty", "foreign", "same", "other", "file", "link")


def _prepare(destination: Path, state: str, command: str) -> None:
    if state == "empty":
        destination.mkdir()
    elif state in ("foreign", "same", "other"):
        destination.mkdir()
        (destination / "notes.txt").write_text(f"{state} content\n")
        if state != "foreign":
            guard.write_marker(destination, command if state == "same" else "verify")
    elif state == "file":
        destination.write_text("a file\n")
    elif state == "link":
        (destination.parent / "target").mkdir()
        destination.symlink_to(destination.parent / "target", target_is_directory=True)


def _main(*argv: str | Path) -> int:
    sink = io.StringIO()
    previous = signal.getsignal(signal.SIGTERM)
    try:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            return main([str(a) for a in argv])
    finally:
        signal.signal(signal.SIGTERM, previous)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    """A tiny model, a run folder with a report.json, and a small data set."""
    from report.report_runs import run_folder

    base = tmp_path_factory.mktemp("inputs")
    ir_io.save(random_model(np.random.default_rng(2), (3, 2), name="tiny"), base / "model")
    run_folder(base / "run", epochs=2, synth=False)
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(48, 3)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    np.savez(base / "data.npz", x_train=x[:32], y_train=y[:32], x_test=x[32:], y_test=y[32:])
    return {"model": base / "model", "run": base / "run", "data": base / "data.npz"}


def _argv(command: str, inputs: dict[str, Path], out: Path) -> list[str | Path]:
    if command == "rtl":
        return ["rtl", inputs["model"], "--out", out, "-q"]
    if command == "report":
        return ["report", inputs["run"], "--out", out]
    train = ["--dataset", "npz", "--data-path", inputs["data"], "--epochs", "1", "-q"]
    return ["train", *train, "--hidden", "2", "--device", "cpu", "--out", out]


@pytest.mark.slow
@settings(max_examples=24, deadline=None, suppress_health_check=list(HealthCheck))
@given(command=st.sampled_from(["rtl", "report", "train"]), state=st.sampled_from(STATES))
def test_every_command_succeeds_or_leaves_the_destination_as_it_was(
    tmp_path_factory, inputs, command, state
) -> None:
    parent = tmp_path_factory.mktemp("work")
    destination = parent / "out"
    _prepare(destination, state, command)
    before = snapshot(parent)
    status = _main(*_argv(command, inputs, destination))
    if status == 0:
        assert state in ("absent", "empty", "same"), f"{command} wrote over a {state} folder"
        assert guard.marker_command(destination) == command
        assert "notes.txt" not in snapshot(destination) or command == "train"
        assert _siblings(parent, "out") == [], "a temporary or a lock file was left behind"
    else:
        assert status == 2
        assert snapshot(parent) == before, f"{command} changed a {state} destination"


# --------------------------------------------------------------------------- interrupted


def _start_run(out: Path, cwd: Path) -> subprocess.Popen:
    options = ["--epochs", "3", "--hidden", "8", "--device", "cpu", "--no-synth", "-q"]
    return subprocess.Popen(
        [sys.executable, "-m", "hgq_rtl.cli", "run", *options, "--out", str(out)],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


@pytest.mark.slow
@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "kill-9"])
def test_an_interrupted_run_keeps_the_earlier_run(tmp_path: Path, how) -> None:
    """``hgq-rtl run`` over an earlier run, stopped while its new folder is being filled: the
    earlier run stays byte for byte; after SIGTERM nothing else is left, after SIGKILL the
    command's watchdog removes its hidden folder and lock file (and the next writer would)."""
    out = tmp_path / "digits"
    before = _old_content(out, "run")
    process = _start_run(out, tmp_path)
    try:
        deadline = time.monotonic() + 300
        # midway: the new model and design are written in the hidden folder, check 3 runs
        while not list(tmp_path.glob(".digits.*.hgq-rtl-tmp/rtl/manifest.json")):
            assert process.poll() is None, process.stderr.read()
            assert time.monotonic() < deadline, "the run did not get to write its design"
            time.sleep(0.05)
        assert snapshot(out) == before  # the earlier run is still in place meanwhile
        os.kill(process.pid, how)
        returncode = process.wait(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert snapshot(out) == before
    if how == signal.SIGTERM:
        assert returncode == 130, process.stderr.read()
        assert _siblings(tmp_path, "digits") == []
    else:  # the killed command's watchdog removes its hidden folder and its lock file
        deadline = time.monotonic() + 30
        while _siblings(tmp_path, "digits") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _siblings(tmp_path, "digits") == []
    with pytest.raises(RuntimeError), guard.replacing(out, "run"):
        raise RuntimeError("the next writer fails, after clearing the leftovers")
    assert snapshot(out) == before
    assert _siblings(tmp_path, "digits") == []
