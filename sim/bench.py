"""cocotb bench: drive every vector through a generated pipeline and score its outputs.

Run by :func:`hgq_rtl_sim.runner.verify` (``test_module="hgq_rtl_sim.bench"``). Its settings come
from the JSON file named by the ``HGQ_RTL_BENCH`` environment variable
(:class:`hgq_rtl_sim.config.BenchConfig`); the ports, element formats and latency come from the
design's manifest. Results: see :func:`hgq_rtl_sim.scoreboard.score`.

Timing: inputs are driven on the falling clock edge, half a cycle away from the rising edge that
registers them, and outputs are sampled once the design has settled in that same time step, so
every simulator shows the same values. An input driven at falling edge ``t`` must come out at
falling edge ``t + latency`` (``valid_out`` high exactly ``latency`` rising edges later).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly

from .bus import BusLayout
from .config import BenchConfig
from .scoreboard import first_differing_layer, score, score_taps

CLOCK_PERIOD_NS = 10
RESET_CYCLES = 4
DRAIN_MARGIN_CYCLES = 16
PROGRESS_STEPS = 50


def _valid_schedule(n_vectors: int, bubble_probability: float, seed: int) -> list[bool]:
    """Per cycle, whether a vector is driven; exactly *n_vectors* True entries."""
    rng = np.random.default_rng(seed)
    # Bubbles before each vector: geometric, i.e. an independent coin per cycle.
    bubbles = rng.geometric(1.0 - bubble_probability, size=n_vectors) - 1
    schedule: list[bool] = []
    for count in bubbles.tolist():
        schedule.extend([False] * count)
        schedule.append(True)
    return schedule


def _write_progress(path: Path | None, done: int, total: int) -> None:
    if path is None:
        return
    tmp = path.with_suffix(".tmp")
    tmp.write_text(f"{done} {total}")
    os.replace(tmp, path)


@cocotb.test()
async def verify_vectors(dut: Any) -> None:
    """Drive all vectors (II = 1 with random bubbles), collect outputs, score, write results.

    If the bench itself breaks (a port the manifest names is missing, ...), the results file
    holds ``{"error": "<message>"}`` instead.
    """
    config = BenchConfig.from_environment()
    try:
        results = await _drive_and_score(dut, config)
    except Exception as error:
        config.results.write_text(json.dumps({"error": f"{type(error).__name__}: {error}"}))
        raise
    config.results.write_text(json.dumps(results, indent=1))
    cocotb.log.info(
        "%d vectors in %.2f s (%.1f us/vector): %d mismatches, %d latency errors, "
        "%d missing, %d extra",
        results["vectors"],
        results["sim_seconds"],
        results["us_per_vector"],
        results["mismatches"],
        results["latency_errors"],
        results["missing"],
        results["extra"],
    )
    assert results["first_failure"] is None, (
        f"RTL differs from the reference: first failure {results['first_failure']}"
    )


async def _drive_and_score(dut: Any, config: BenchConfig) -> dict[str, Any]:
    manifest = json.loads(config.manifest.read_text())
    in_layout = BusLayout.from_manifest("input", manifest["input"])
    out_layout = BusLayout.from_manifest("output", manifest["output"])
    latency = int(manifest["latency_cycles"])
    with np.load(config.vectors) as vectors:
        inputs = vectors["inputs"]
        expected = vectors["expected"]
        # debug taps (hidden layers' outputs) are checked when the runner gave their reference
        taps = [
            (tap, vectors[f"tap_{k}"])
            for k, tap in enumerate(manifest.get("taps", []))
            if f"tap_{k}" in vectors.files
        ]
    n_vectors = int(inputs.shape[0])
    progress_path = config.progress
    seed = config.seed

    words = in_layout.pack(inputs)
    schedule = _valid_schedule(n_vectors, config.bubble_probability, seed)
    # Bubble cycles carry another vector's data, so a valid pipeline out of step with the data
    # pipeline shows even when neighbouring vectors are equal.
    junk = np.random.default_rng(seed + 1).integers(0, n_vectors, size=len(schedule)).tolist()

    clk = getattr(dut, manifest["clock"])
    rst = getattr(dut, manifest["reset"])
    data_in = getattr(dut, in_layout.port)
    valid_in = getattr(dut, in_layout.valid)
    data_out = getattr(dut, out_layout.port)
    valid_out = getattr(dut, out_layout.valid)
    for layout, port in ((in_layout, data_in), (out_layout, data_out)):
        if len(port) != layout.width:
            raise ValueError(
                f"{layout.name} port {layout.port} must be {layout.width} bits wide as the "
                f"manifest says, not {len(port)}"
            )

    Clock(clk, CLOCK_PERIOD_NS, unit="ns").start(start_high=False)
    falling = FallingEdge(clk)
    valid_in.value = 0
    data_in.value = 0
    rst.value = 1
    for _ in range(RESET_CYCLES):
        await falling
    rst.value = 0

    # Hot loop, per cycle: at the falling edge drive the next input, let the design settle
    # (ReadOnly), then sample. Output k is thus seen on the cycle its settled value first shows,
    # so a combinational path counts as latency 0 and a registered stage as 1.
    settled = ReadOnly()
    outputs: list[int | str] = []
    output_cycles: list[int] = []
    input_cycles: list[int] = []
    read_valid = valid_out._handle.get_signal_val_binstr  # the public .value builds a LogicArray
    read_data = data_out._handle.get_signal_val_binstr
    unknown_valid_cycles: list[int] = []
    tap_readers = [getattr(dut, tap["port"])._handle.get_signal_val_binstr for tap, _ in taps]
    tap_words: list[list[str]] = [[] for _ in taps]
    step = max(1, n_vectors // PROGRESS_STEPS)
    next_report = step
    driven = 0
    current_valid = False
    n_scheduled = len(schedule)
    total_cycles = n_scheduled + latency + DRAIN_MARGIN_CYCLES
    started = time.perf_counter()
    for cycle in range(total_cycles):
        await falling
        if cycle < n_scheduled:
            wanted = schedule[cycle]
            if wanted:
                data_in.value = words[driven]
                input_cycles.append(cycle)
                driven += 1
                if driven == next_report:
                    _write_progress(progress_path, driven, n_vectors)
                    next_report += step
            else:
                data_in.value = words[junk[cycle]]
            if wanted != current_valid:
                valid_in.value = int(wanted)
                current_valid = wanted
        elif current_valid:
            valid_in.value = 0
            current_valid = False
        await settled
        flag = read_valid()
        if flag == "1":
            bits = read_data()
            try:
                outputs.append(int(bits, 2))
            except ValueError:  # X/Z bits: kept as text for the report
                outputs.append(bits)
            output_cycles.append(cycle)
        elif flag != "0":
            unknown_valid_cycles.append(cycle)
        for reader, words_seen in zip(tap_readers, tap_words, strict=True):
            words_seen.append(reader())
    seconds = time.perf_counter() - started
    _write_progress(progress_path, n_vectors, n_vectors)

    results = score(
        out_layout,
        inputs,
        expected,
        outputs,
        input_cycles,
        output_cycles,
        latency,
        unknown_valid_cycles,
    )
    if taps:
        results["taps"] = score_taps(taps, tap_words, input_cycles)
        failure = results["first_failure"]
        if failure is not None and failure.get("index") is not None:
            failure["first_differing_layer"] = first_differing_layer(
                results["taps"], failure["index"], manifest
            )
    results.update(
        cycles=total_cycles,
        sim_seconds=seconds,
        us_per_vector=1e6 * seconds / max(1, n_vectors),
    )
    return results
