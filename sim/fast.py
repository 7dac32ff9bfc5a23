"""Fast sign-off: stream millions of vectors through a Verilator C++ harness, check in numpy.

>>> result = verify_fast(Path("runs/digits/rtl"), inputs, expected)  # doctest: +SKIP
>>> result.passed, result.vectors  # doctest: +SKIP
(True, 10000000)

:func:`verify_fast` has ``fast_harness.cpp`` built for the design's ports with Verilator
(:func:`hgq_rtl_sim.fast_build.build_harness`: once, the build is reused while the Verilog and
the build settings stay the same), then streams the input vectors packed as 32-bit words
through a pipe into the harness, one vector per clock with no bubbles (a stream design: its
beats back to back, the output held back at random if asked), and reads back every output with
the cycle it came out on. numpy compares every output element with the reference (integer
``==``) and checks each output's timing (:mod:`hgq_rtl_sim.fast_score`). The result is the
:class:`~hgq_rtl_sim.result.VerifyResult` the cocotb bench gives.

The cocotb bench (:func:`hgq_rtl_sim.runner.verify`) stays the reference bench: it drives random
valid bubbles, sees X/Z values, checks the output handshake of stream designs, compares debug
taps and records waveforms. This one is for volume.
"""

from __future__ import annotations

import json
import queue
import subprocess
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .config import check_probability
from .fast_build import build_harness
from .fast_score import ParallelScorer, StreamScorer, new_counts
from .interface import check_vectors, input_buses, io_kind, output_bus, stream_layouts
from .manifest import load_manifest
from .result import VerifyResult
from .scoreboard import failure_record
from .workspace import _environment, _Progress, _Say, _tail, _work_dir

__all__ = ["verify_fast", "verify_fast_stream", "SIMULATOR"]

SIMULATOR = "verilator-fast"
RESET_CYCLES = 4
DEFAULT_CHUNK = 1 << 16
_QUEUED_CHUNKS = 2  # packed chunks waiting for the pipe
_READ_BYTES = 1 << 20  # one read of the harness's output
_PIPE_BYTES = 1 << 20  # pipe buffers, each way
_QUEUED_READS = 64  # reads waiting to be scored
_RESULT_PREFIX = "HGQ_FAST_RESULT "


def verify_fast(
    rtl_dir: Path,
    inputs: np.ndarray,
    expected: np.ndarray,
    *,
    build_dir: Path | None = None,
    optimize: bool = True,
    quiet: bool = False,
    chunk: int = DEFAULT_CHUNK,
    backpressure_probability: float = 0.0,
    seed: int = 0,
) -> VerifyResult:
    """Simulate the design in *rtl_dir* on *inputs* with the C++ harness; compare with *expected*.

    A parallel design gets every vector on consecutive clocks (II = 1, no bubbles) after a
    reset, each input port its part of the vector (several inputs: the model's input vector is
    their elements one after the other, in the manifest's order); every output must equal the
    reference exactly and come out ``latency_cycles`` after its input, and exactly N outputs
    must come out. Debug taps, if the design has them, are not compared (use
    :func:`hgq_rtl_sim.runner.verify`).

    A stream design gets its samples' beats back to back (``tvalid`` high whenever a beat
    waits), its output taken with ``tready`` high or, with *backpressure_probability*, low at
    random; every sample's output beats must carry the reference, in order, with ``tlast`` on
    the last beat, and exactly N samples must come out. Without backpressure the timing is
    checked too (as :func:`hgq_rtl_sim.runner.verify` does at full throughput).

    Not thread-safe: it sets ``PATH`` and ``MAKEFLAGS`` in ``os.environ`` for the duration of
    the call.

    Parameters
    ----------
    rtl_dir:
        Folder with ``manifest.json`` and the Verilog it names.
    inputs, expected:
        Integer arrays ``(N, n_input_elements)`` and ``(N, n_output_elements)``, N >= 1; every
        value must fit its element's format.
    build_dir:
        Where to build (``fast_build/`` inside it; a build of the same Verilog and settings is
        reused) and keep the harness's log. Default: a temporary folder, removed afterwards.
    optimize:
        Compile the design's C++ for the fastest simulation (``-O1``), or for the fastest build
        (``-O0``: better for a few thousand vectors).
    quiet:
        No progress on stderr.
    chunk:
        Vectors packed and compared per step (bounds the memory of the step).
    backpressure_probability, seed:
        Stream designs: each cycle ``tready`` is low with this probability (0: always high),
        drawn by a generator seeded with *seed*. Parallel designs ignore both.

    Returns
    -------
    VerifyResult
        With ``simulator="verilator-fast"``; on failure ``first_failure`` names the kind
        (``"mismatch"``, ``"latency"``, ``"missing"`` or ``"extra"``; stream designs also
        ``"tlast"`` and ``"interval"``), the vector, its inputs, expected and actual outputs and
        the differing output elements.

    Raises
    ------
    ValueError
        Bad manifest (including a sha256 that differs), shapes, values outside their formats,
        or arguments.
    SimulatorNotFoundError
        Verilator, make or a C++ compiler is not installed.
    RuntimeError
        The build or the harness itself failed (the message ends with the log's tail).
    """
    if not isinstance(chunk, int) or isinstance(chunk, bool) or chunk < 1:
        raise ValueError(f"chunk must be a positive int, not {chunk!r}")
    manifest = load_manifest(Path(rtl_dir))
    inputs, expected = check_vectors(manifest, inputs, expected)
    n = inputs.shape[0]
    chunks = ((inputs[s : s + chunk], expected[s : s + chunk]) for s in range(0, n, chunk))
    return verify_fast_stream(
        rtl_dir,
        chunks,
        total=n,
        build_dir=build_dir,
        optimize=optimize,
        quiet=quiet,
        backpressure_probability=backpressure_probability,
        seed=seed,
    )


def verify_fast_stream(
    rtl_dir: Path,
    chunks: Iterable[tuple[np.ndarray, np.ndarray]],
    *,
    total: int | None = None,
    build_dir: Path | None = None,
    optimize: bool = True,
    quiet: bool = False,
    backpressure_probability: float = 0.0,
    seed: int = 0,
) -> VerifyResult:
    """:func:`verify_fast` on vectors that arrive in chunks ``(inputs, expected)``.

    The chunks are taken one at a time while the harness runs, so vectors can be generated
    (and their reference computed) as they go: memory holds a few chunks, not all the vectors,
    as long as the design puts out one output per input. *total* (if known) sizes the progress
    bar. Raises as :func:`verify_fast` does; a chunk with a bad shape or value raises
    ``ValueError`` once the vectors before it have been checked.
    """
    started = time.perf_counter()
    check_probability("backpressure_probability", backpressure_probability)
    rtl_dir = Path(rtl_dir).resolve()
    manifest = load_manifest(rtl_dir)
    if io_kind(manifest) == "stream":
        layouts = stream_layouts(manifest)
        scorer = StreamScorer(manifest, layouts, backpressure_probability, seed)
    else:
        scorer = ParallelScorer(manifest, input_buses(manifest), output_bus(manifest))
    say = _Say(quiet)
    with _environment("verilator"), _work_dir(build_dir) as work:
        build = build_harness(rtl_dir, work / "fast_build", optimize=optimize, quiet=quiet)
        log = work / "fast_harness.log"
        sim_started = time.perf_counter()
        stream = _Stream(build.executable, scorer, log)
        counts = stream.run(chunks, _Progress(total, say))
        sim_seconds = time.perf_counter() - sim_started
    result = VerifyResult(
        vectors=counts["vectors"],
        mismatches=counts["mismatches"],
        first_failure=counts["first_failure"],
        seconds=time.perf_counter() - started,
        simulator=SIMULATOR,
        latency_errors=counts["latency_errors"],
        missing=counts["missing"],
        extra=counts["extra"],
        build_seconds=build.seconds,
        sim_seconds=sim_seconds,
    )
    say(result.summary())
    return result


# ------------------------------------------------------------------------------------ stream


class _Stream:
    """One run of the harness, in four threads so that packing, simulating and scoring overlap:
    a producer packs each chunk's inputs, a writer feeds them to the harness's stdin, a reader
    collects its stdout, and the calling thread scores the output records chunk by chunk (the
    *scorer* knows the kind of design: :mod:`hgq_rtl_sim.fast_score`)."""

    def __init__(self, executable: Path, scorer: ParallelScorer | StreamScorer, log: Path) -> None:
        self.executable = executable
        self.scorer = scorer
        self.log = log
        # chunks waiting to be scored (None: no more); packed inputs waiting for the pipe
        self.to_score: queue.Queue[tuple[np.ndarray, np.ndarray] | None] = queue.Queue()
        self.to_write: queue.Queue[np.ndarray | None] = queue.Queue(maxsize=_QUEUED_CHUNKS)
        self.outputs: queue.Queue[bytes] = queue.Queue(maxsize=_QUEUED_READS)  # b"": the end
        self.errors: list[BaseException] = []
        self.stop = threading.Event()  # set when the caller gives up (Ctrl-C)

    def run(
        self, chunks: Iterable[tuple[np.ndarray, np.ndarray]], progress: _Progress
    ) -> dict[str, Any]:
        command = [str(self.executable), *self.scorer.options()]
        command += ["--reset-cycles", str(RESET_CYCLES)]
        with self.log.open("wb") as log:
            process = subprocess.Popen(
                command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, bufsize=0
            )
            for pipe in (process.stdin, process.stdout):
                _widen_pipe(pipe.fileno())
            threads = [
                threading.Thread(target=target, args=args, name=f"hgq-rtl-fast-{name}")
                for name, target, args in (
                    ("produce", self._produce, (iter(chunks),)),
                    ("write", self._write, (process.stdin,)),
                    ("read", self._read, (process.stdout,)),
                )
            ]
            for thread in threads:
                thread.daemon = True
                thread.start()
            try:
                counts = self._score_all(progress)
            except BaseException:  # Ctrl-C: stop the harness and the threads
                self.stop.set()
                process.kill()
                raise
            finally:
                progress.close()
                returncode = process.wait()
                for thread in threads:
                    thread.join()
        if self.errors:
            raise self.errors[0]
        if counts["vectors"] == 0:
            raise ValueError("chunks must hold at least 1 vector, not none")
        summary = _harness_summary(self.log)
        if returncode != 0 or summary is None:
            raise RuntimeError(
                f"the fast harness failed (exit status {returncode})\n{_tail(self.log, 20)}"
            )
        if summary.get("stalled"):  # a stuck stream design: what came out is scored
            if counts["first_failure"] is not None:
                counts["first_failure"]["stalled_at_cycle"] = summary["cycles"]
        elif summary["vectors"] != counts["vectors"] or summary["outputs"] != counts["outputs"]:
            raise RuntimeError(
                f"the fast harness drove {summary['vectors']} vectors and saw "
                f"{summary['outputs']} outputs; {counts['vectors']} and {counts['outputs']} "
                "were streamed"
            )
        self.scorer.finish(counts, summary)
        return counts

    def _produce(self, chunks: Iterator[tuple[np.ndarray, np.ndarray]]) -> None:
        try:
            for inputs, expected in chunks:
                for piece_inputs, piece_expected, words in self.scorer.pieces(inputs, expected):
                    if self.stop.is_set():
                        return
                    self.to_score.put((piece_inputs, piece_expected))
                    self._put(self.to_write, words)
        except BaseException as error:  # raised by run() once the harness has stopped
            self.errors.append(error)
        finally:
            self.to_score.put(None)
            self._put(self.to_write, None)

    def _write(self, stdin: Any) -> None:
        try:
            while (words := self._get(self.to_write)) is not None:
                view = memoryview(words).cast("B")
                while view:  # a raw pipe may take part of a write
                    view = view[stdin.write(view) :]
        except OSError:  # the harness died or stopped early: its summary and log tell why
            while self._get(self.to_write) is not None:
                pass  # let the producer finish
        finally:
            try:
                stdin.close()
            except OSError:
                pass

    def _read(self, stdout: Any) -> None:
        try:
            while block := stdout.read(_READ_BYTES):
                self._put(self.outputs, block)
        finally:
            self._put(self.outputs, b"")

    def _get(self, where: queue.Queue) -> Any:
        """The next item of a queue, or None once the caller gave up."""
        while not self.stop.is_set():
            try:
                return where.get(timeout=0.1)
            except queue.Empty:
                continue
        return None

    def _put(self, where: queue.Queue, item: Any) -> None:
        """Put *item* in a bounded queue unless the caller gave up meanwhile."""
        while not self.stop.is_set():
            try:
                where.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _score_all(self, progress: _Progress) -> dict[str, Any]:
        record_words = self.scorer.record_words
        record_bytes = 4 * record_words
        per_vector = self.scorer.records_per_vector
        counts = new_counts()
        buffer = bytearray()
        ended = False
        while (item := self.to_score.get()) is not None:
            inputs, expected = item
            need = expected.shape[0] * per_vector * record_bytes
            while len(buffer) < need and not ended:
                block = self.outputs.get()
                ended = not block
                buffer += block
            records = min(len(buffer), need) // record_bytes
            got = records // per_vector  # vectors with all their records
            view = np.frombuffer(buffer, dtype="<u4", count=got * per_vector * record_words)
            self.scorer.score(counts, inputs, expected, view.reshape(-1, record_words))
            del view  # releases the buffer, which can then shrink
            del buffer[: records * record_bytes]
            if got < expected.shape[0] and counts["first_failure"] is None:
                counts["first_failure"] = failure_record(
                    "missing",
                    counts["vectors"] + got,
                    inputs[got],
                    expected[got],
                    None,
                    list(range(expected.shape[1])),
                )
            counts["vectors"] += expected.shape[0]
            counts["outputs"] += records
            counts["missing"] += expected.shape[0] - got
            progress.update(counts["vectors"])
        while not ended:
            block = self.outputs.get()
            ended = not block
            buffer += block
        extra = len(buffer) // record_bytes
        if extra:
            counts["outputs"] += extra
            counts["extra"] = extra
            if counts["first_failure"] is None:
                first = np.frombuffer(buffer, dtype="<u4", count=record_words)
                cycle = int(first[0]) | int(first[1]) << 32
                counts["first_failure"] = failure_record(
                    "extra", counts["vectors"], None, None, None, [], cycle=cycle
                )
        return counts


def _widen_pipe(fd: int) -> None:
    """Give a pipe a larger buffer (Linux), so the harness and Python trade fewer, larger
    blocks; elsewhere, or above the system's limit, the pipe stays as it is."""
    try:
        import fcntl

        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, _PIPE_BYTES)
    except (ImportError, AttributeError, OSError):
        pass


def _harness_summary(log: Path) -> dict[str, int] | None:
    """The harness's closing ``HGQ_FAST_RESULT`` line, or None if it wrote none."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        if line.startswith(_RESULT_PREFIX):
            try:
                return json.loads(line[len(_RESULT_PREFIX) :])
            except ValueError:
                return None
    return None
