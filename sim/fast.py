"""Fast sign-off: stream millions of vectors through a Verilator C++ harness, check in numpy.

>>> result = verify_fast(Path("runs/digits/rtl"), inputs, expected)  # doctest: +SKIP
>>> result.passed, result.vectors  # doctest: +SKIP
(True, 10000000)

:func:`verify_fast` has ``fast_harness.cpp`` built for the design's ports with Verilator
(:func:`hgq_rtl_sim.fast_build.build_harness`: once, the build is reused while the Verilog and
the build settings stay the same), then streams the input vectors packed as 32-bit words
through a pipe into the harness, one vector per clock with no bubbles (a stream design: its
beats back to back, the output held back at random if asked), and reads back every output with
the cycle it came out on. The vectors are shared out, a piece at a time, among several harness
processes that simulate side by side (one per CPU, at most :data:`MAX_WORKERS`); a stream
design's samples are independent, so each harness gets its pieces as one stream of its own,
timed on its own. numpy compares every output element with the reference (integer
``==``) and checks each output's timing (:mod:`hgq_rtl_sim.fast_score`). The result is the
:class:`~hgq_rtl_sim.result.VerifyResult` the cocotb bench gives.

A design written with AMD/Xilinx ternary adder cells (``--family amd``) simulates their
``LUT6_2``/``CARRY4`` models bit by bit, about ten times slower than plain ``+``; the harness
simulates the adder module's behavioural body instead once Yosys has proven it equal to the
cells for every parameter set the design instantiates (:mod:`hgq_rtl_sim.cell_proof`), and the
cells, with a one-line note, otherwise.

The cocotb bench (:func:`hgq_rtl_sim.runner.verify`) stays the reference bench: it drives random
valid bubbles, sees X/Z values, checks the output handshake of stream designs, compares debug
taps and records waveforms. This one is for volume.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from hgq_rtl import processes

from .config import check_probability
from .fast_build import build_harness
from .fast_score import ParallelScorer, Piece, StreamScorer, new_counts, stream_piece_vectors
from .interface import check_vectors, input_buses, io_kind, output_bus, stream_layouts
from .manifest import load_manifest
from .result import VerifyResult
from .scoreboard import failure_record
from .workspace import _environment, _Progress, _Say, _tail, _work_dir

__all__ = ["verify_fast", "verify_fast_stream", "SIMULATOR", "MAX_WORKERS"]

SIMULATOR = "verilator-fast"
RESET_CYCLES = 4
DEFAULT_CHUNK = 1 << 16
#: The most harness processes a design's vectors are shared among by default.
MAX_WORKERS = 4
_QUEUED_CHUNKS = 1  # packed pieces waiting for each harness's pipe
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
    workers: int | None = None,
    behavioural_adders: bool = True,
) -> VerifyResult:
    """Simulate the design in *rtl_dir* on *inputs* with the C++ harness; compare with *expected*.

    A parallel design gets every vector on consecutive clocks (II = 1, no bubbles) after a
    reset, each input port its part of the vector (several inputs: the model's input vector is
    their elements one after the other, in the manifest's order); every output must equal the
    reference exactly and come out ``latency_cycles`` after its input, and exactly N outputs
    must come out. Debug taps, if the design has them, are not compared (use
    :func:`hgq_rtl_sim.runner.verify`). The vectors are simulated in pieces of at most *chunk*
    vectors, shared out in turn among up to *workers* harness processes that run side by side:
    each process resets the design once and then gets its pieces back to back, so its k-th
    vector must come out on its cycle k + ``latency_cycles``.

    A stream design gets its samples' beats back to back (``tvalid`` high whenever a beat
    waits), its output taken with ``tready`` high or, with *backpressure_probability*, low at
    random; every sample's output beats must carry the reference, in order, with ``tlast`` on
    the last beat, and exactly N samples must come out. Without backpressure the timing is
    checked too (as :func:`hgq_rtl_sim.runner.verify` does at full throughput). Its samples go
    in pieces of at most 65,536 beats (and *chunk* samples) to the *workers* harnesses in turn;
    each harness's pieces make one stream, reset once, whose timing is checked from sample to
    sample as if it were the whole run: its first sample's latency, then the interval between
    its consecutive samples (so a wrong latency counts once per harness).

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
        drawn by a generator seeded with *seed* (the first harness; each other one's seed is
        derived from *seed* and its index). Parallel designs ignore both.
    workers:
        Harness processes that simulate side by side (default: one per CPU this process may
        use, at most :data:`MAX_WORKERS`, and no more than there are pieces).
    behavioural_adders:
        AMD/Xilinx ternary adder cells (``--family amd``): simulate their behavioural body
        where Yosys has proven it equal to the cells for every parameter set the design uses
        (the default; ``adder_proof.json`` in the build folder records the form), or always the
        cells (``False``).

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
    if workers is None:  # no more harnesses than pieces
        workers = min(_default_workers(), _piece_count(manifest, n, chunk))
    return verify_fast_stream(
        rtl_dir,
        chunks,
        total=n,
        build_dir=build_dir,
        optimize=optimize,
        quiet=quiet,
        backpressure_probability=backpressure_probability,
        seed=seed,
        workers=workers,
        behavioural_adders=behavioural_adders,
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
    workers: int | None = None,
    behavioural_adders: bool = True,
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
    if workers is not None and (
        not isinstance(workers, int) or isinstance(workers, bool) or workers < 1
    ):
        raise ValueError(f"workers must be a positive int or None, not {workers!r}")
    rtl_dir = Path(rtl_dir).resolve()
    manifest = load_manifest(rtl_dir)
    workers = workers or _default_workers()
    scorers: list[ParallelScorer] | list[StreamScorer]
    if io_kind(manifest) == "stream":  # its timing checks run across a harness's samples
        layouts = stream_layouts(manifest)
        scorers = [
            StreamScorer(manifest, layouts, backpressure_probability, _worker_seed(seed, index))
            for index in range(workers)
        ]
    else:  # one vector's check needs nothing from the one before: the scorer keeps no state
        scorers = [ParallelScorer(manifest, input_buses(manifest), output_bus(manifest))]
        scorers *= workers
    say = _Say(quiet)
    with _environment("verilator"), _work_dir(build_dir) as work:
        kept = rtl_dir if build_dir is None else None  # the work folder is removed afterwards
        build = build_harness(
            rtl_dir,
            work / "fast_build",
            optimize=optimize,
            quiet=quiet,
            keep_log_beside=kept,
            behavioural_adders=behavioural_adders,
        )
        log = work / "fast_harness.log"
        sim_started = time.perf_counter()
        stream = _Stream(build.executable, scorers, log)
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


class _Harness:
    """One harness process: a writer thread feeds it packed pieces, a reader thread collects
    its output records; the scoring thread takes them from :attr:`outputs` in order and scores
    them with the harness's own :attr:`scorer` (a stream design's keeps this harness's
    timing)."""

    def __init__(
        self,
        scorer: ParallelScorer | StreamScorer,
        command: list[str],
        log: Path,
        stop: threading.Event,
    ) -> None:
        self.scorer = scorer
        self.log = log
        self.stop = stop
        self.to_write: queue.Queue[np.ndarray | None] = queue.Queue(maxsize=_QUEUED_CHUNKS)
        self.outputs: queue.Queue[bytes] = queue.Queue(maxsize=_QUEUED_READS)  # b"": the end
        self.buffer = bytearray()  # output bytes read but not yet scored
        self.ended = False  # the reader has put its b""
        self.driven = 0  # vectors of the pieces scored so far (this harness's vector index)
        self.records = 0  # output records scored so far, extra ones included
        self.errors: list[BaseException] = []
        with log.open("wb") as stderr:
            self.process = processes.start(  # its own process group, killed with the command
                command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, bufsize=0
            )
        for pipe in (self.process.stdin, self.process.stdout):
            _widen_pipe(pipe.fileno())
        name = f"hgq-rtl-fast-{log.stem}"
        self.threads = [
            threading.Thread(target=self._write, name=f"{name}-write", daemon=True),
            threading.Thread(target=self._read, name=f"{name}-read", daemon=True),
        ]
        for thread in self.threads:
            thread.start()

    def close(self) -> int:
        """Wait for the process and the threads; returns the exit status."""
        returncode = self.process.wait()
        processes.finish(self.process)
        for thread in self.threads:
            thread.join()
        return returncode

    def take(self, nbytes: int) -> None:
        """Wait until the buffer holds *nbytes* or the output has ended."""
        while len(self.buffer) < nbytes and not self.ended:
            block = self.outputs.get()
            self.ended = not block
            self.buffer += block

    def _write(self) -> None:
        stdin = self.process.stdin
        try:
            while (words := self.get(self.to_write)) is not None:
                view = memoryview(words).cast("B")
                while view:  # a raw pipe may take part of a write
                    view = view[stdin.write(view) :]
        except OSError:  # the harness died or stopped early: its summary and log tell why
            while self.get(self.to_write) is not None:
                pass  # let the producer finish
        finally:
            try:
                stdin.close()
            except OSError:
                pass

    def _read(self) -> None:
        try:
            while block := self.process.stdout.read(_READ_BYTES):
                self.put(self.outputs, block)
        finally:
            self.put(self.outputs, b"")

    def get(self, where: queue.Queue) -> Any:
        """The next item of a queue, or None once the caller gave up."""
        while not self.stop.is_set():
            try:
                return where.get(timeout=0.1)
            except queue.Empty:
                continue
        return None

    def put(self, where: queue.Queue, item: Any) -> None:
        """Put *item* in a bounded queue unless the caller gave up meanwhile."""
        while not self.stop.is_set():
            try:
                where.put(item, timeout=0.1)
                return
            except queue.Full:
                continue


class _Stream:
    """One run: a producer thread packs each chunk's pieces and hands them to the harness
    processes in turn, one per scorer of *scorers*, and the calling thread scores every piece's
    output records in the order of the pieces, so the first failure found is the earliest in
    the run (a scorer knows the kind of design: :mod:`hgq_rtl_sim.fast_score`). Each process
    has its own cycle count (its k-th vector is driven on its cycle k) and its own scorer."""

    def __init__(
        self,
        executable: Path,
        scorers: list[ParallelScorer] | list[StreamScorer],
        log: Path,
    ) -> None:
        self.executable = executable
        self.scorers = scorers
        self.log = log
        self.workers = len(scorers)
        self.harnesses: list[_Harness] = []
        self.failed_in: _Harness | None = None  # the harness of counts["first_failure"]
        # pieces waiting to be scored, with their harness (None: no more)
        self.to_score: queue.Queue[tuple[_Harness, Piece] | None] = queue.Queue()
        self.errors: list[BaseException] = []
        self.stop = threading.Event()  # set when the caller gives up (Ctrl-C)

    def run(
        self, chunks: Iterable[tuple[np.ndarray, np.ndarray]], progress: _Progress
    ) -> dict[str, Any]:
        # started here, not in the producer thread: a fork while another thread of this
        # process is inside OpenBLAS (the reference's matrix products) can hang OpenBLAS
        for index, scorer in enumerate(self.scorers):
            log = self.log if index == 0 else self.log.with_suffix(f".{index}.log")
            command = [str(self.executable), *scorer.options()]
            command += ["--reset-cycles", str(RESET_CYCLES)]
            self.harnesses.append(_Harness(scorer, command, log, self.stop))
        producer = threading.Thread(
            target=self._produce, args=(iter(chunks),), name="hgq-rtl-fast-produce", daemon=True
        )
        producer.start()
        try:
            counts = self._score_all(progress)
        except BaseException:  # Ctrl-C: stop the harnesses and the threads
            self.stop.set()
            for harness in self.harnesses:
                harness.process.kill()
            raise
        finally:
            progress.close()
            producer.join()
            returncodes = [harness.close() for harness in self.harnesses]
        if self.errors:
            raise self.errors[0]
        if counts["vectors"] == 0:
            raise ValueError("chunks must hold at least 1 vector, not none")
        summaries = []
        for harness, returncode in zip(self.harnesses, returncodes, strict=True):
            summary = _harness_summary(harness.log)
            if returncode != 0 or summary is None:
                raise RuntimeError(
                    f"the fast harness failed (exit status {returncode})\n{_tail(harness.log, 20)}"
                )
            summaries.append(summary)
        for harness, summary in zip(self.harnesses, summaries, strict=True):
            if summary.get("stalled"):  # a stuck stream design: what came out is scored
                if counts["first_failure"] is not None and harness is self.failed_in:
                    counts["first_failure"]["stalled_at_cycle"] = summary["cycles"]
            elif summary["vectors"] != harness.driven or summary["outputs"] != harness.records:
                name = "" if self.workers == 1 else f" {harness.log.name}"
                raise RuntimeError(
                    f"the fast harness{name} drove {summary['vectors']} vectors and saw "
                    f"{summary['outputs']} outputs; {harness.driven} and {harness.records} "
                    "were streamed"
                )
        for harness, summary in zip(self.harnesses, summaries, strict=True):
            harness.scorer.finish(counts, summary)  # in turn: the earliest failure stays first
        return counts

    def _produce(self, chunks: Iterator[tuple[np.ndarray, np.ndarray]]) -> None:
        piece = 0
        try:
            for inputs, expected in chunks:  # the scorers cut and pack alike: the first does
                for packed in self.scorers[0].pieces(inputs, expected):
                    if self.stop.is_set():
                        return
                    harness = self.harnesses[piece % self.workers]  # the pieces go round
                    self.to_score.put((harness, packed))
                    harness.put(harness.to_write, packed.words)
                    piece += 1
        except BaseException as error:  # raised by run() once the harnesses have stopped
            self.errors.append(error)
        finally:
            self.to_score.put(None)
            for harness in self.harnesses:
                harness.put(harness.to_write, None)

    def _score_all(self, progress: _Progress) -> dict[str, Any]:
        record_words = self.scorers[0].record_words
        record_bytes = 4 * record_words
        per_vector = self.scorers[0].records_per_vector
        counts = new_counts()
        while (item := self.to_score.get()) is not None:
            harness, piece = item
            failed = counts["first_failure"] is not None
            inputs, expected = piece.inputs, piece.expected
            need = expected.shape[0] * per_vector * record_bytes
            harness.take(need)
            buffer = harness.buffer
            records = min(len(buffer), need) // record_bytes
            got = records // per_vector  # vectors with all their records
            view = np.frombuffer(buffer, dtype="<u4", count=got * per_vector * record_words)
            harness.scorer.score(counts, piece, view.reshape(-1, record_words), harness.driven)
            del view  # releases the buffer, which can then shrink
            del buffer[: records * record_bytes]
            harness.driven += expected.shape[0]
            if got < expected.shape[0] and counts["first_failure"] is None:
                counts["first_failure"] = failure_record(
                    "missing",
                    counts["vectors"] + got,
                    inputs[got],
                    expected[got],
                    None,
                    list(range(expected.shape[1])),
                )
            if not failed and counts["first_failure"] is not None:
                self.failed_in = harness
            counts["vectors"] += expected.shape[0]
            counts["outputs"] += records
            counts["missing"] += expected.shape[0] - got
            harness.records += records
            progress.update(counts["vectors"])
        for harness in self.harnesses:  # what came out after the last vector's outputs
            harness.take(1 << 62)
            extra = len(harness.buffer) // record_bytes
            counts["outputs"] += extra
            counts["extra"] += extra
            harness.records += extra
            if extra and counts["first_failure"] is None:
                self.failed_in = harness
                first = np.frombuffer(harness.buffer, dtype="<u4", count=record_words)
                cycle = int(first[0]) | int(first[1]) << 32
                counts["first_failure"] = failure_record(
                    "extra", counts["vectors"], None, None, None, [], cycle=cycle
                )
        return counts


def _piece_count(manifest: dict[str, Any], n: int, chunk: int) -> int:
    """How many pieces *n* vectors in chunks of *chunk* are cut into (as the scorers cut them),
    so that no harness is started without a piece to simulate: a parallel design's chunk is
    one piece, a stream design's chunk as many as its beats need."""
    if io_kind(manifest) != "stream":
        return -(-n // chunk)
    step = stream_piece_vectors(stream_layouts(manifest))
    whole, rest = divmod(n, chunk)
    return whole * -(-chunk // step) + -(-rest // step)


def _worker_seed(seed: int, index: int) -> int:
    """The backpressure seed of harness *index*: *seed* itself for the first (one harness
    behaves as it always has), then a splitmix64 mix of *seed* and the index, so that
    harnesses, and runs with neighbouring seeds, draw unrelated ``tready`` patterns."""
    if index == 0:
        return seed
    mask = (1 << 64) - 1
    z = (seed + index * 0x9E3779B97F4A7C15) & mask
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    return z ^ (z >> 31)


def _default_workers() -> int:
    """One harness process per CPU this process may run on, at most :data:`MAX_WORKERS`."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return min(MAX_WORKERS, cpus)


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
