"""cocotb bench: drive every vector through a generated design and score its outputs.

Run by :func:`hgq_rtl_sim.runner.verify` (``test_module="hgq_rtl_sim.bench"``). Its settings come
from the JSON file named by the ``HGQ_RTL_BENCH`` environment variable
(:class:`hgq_rtl_sim.config.BenchConfig`); the ports, element formats and latency come from the
design's manifest. A stream design (``"io": "stream"``) is driven by
:mod:`hgq_rtl_sim.stream_bench`; a parallel one here. Results: see
:func:`hgq_rtl_sim.scoreboard.score`.

Timing (:mod:`hgq_rtl_sim.drive`): an input driven at falling edge ``t`` must come out at falling
edge ``t + latency`` (``valid_out`` high exactly ``latency`` rising edges later). A design with
several inputs (``"inputs"``) has every input port driven on the same cycle, under one valid.
"""

from __future__ import annotations

import json
import time
from typing import Any

import cocotb
import numpy as np
from cocotb.triggers import ReadOnly

from .config import BenchConfig
from .drive import DRAIN_MARGIN_CYCLES, Progress, port, reader, start_and_reset
from .interface import input_buses, io_kind, output_bus
from .scoreboard import first_differing_layer, score, score_taps
from .stream_bench import drive_stream


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


@cocotb.test()
async def verify_vectors(dut: Any) -> None:
    """Drive all vectors, collect outputs, score, write results.

    If the bench itself breaks (a port the manifest names is missing, ...), the results file
    holds ``{"error": "<message>"}`` instead.
    """
    config = BenchConfig.from_environment()
    try:
        manifest = json.loads(config.manifest.read_text())
        if io_kind(manifest) == "stream":
            results = await drive_stream(dut, config, manifest)
        else:
            results = await _drive_and_score(dut, config, manifest)
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


async def _drive_and_score(
    dut: Any, config: BenchConfig, manifest: dict[str, Any]
) -> dict[str, Any]:
    in_buses = input_buses(manifest)
    out_layout = output_bus(manifest)
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
    seed = config.seed

    schedule = _valid_schedule(n_vectors, config.bubble_probability, seed)
    # Bubble cycles carry another vector's data, so a valid pipeline out of step with the data
    # pipeline shows even when neighbouring vectors are equal.
    junk = np.random.default_rng(seed + 1).integers(0, n_vectors, size=len(schedule)).tolist()
    # (port handle, its words), one per input port
    drives = [
        (port(dut, bus.port, bus.width, bus.name), words)
        for bus, words in zip(in_buses.buses, in_buses.pack(inputs), strict=True)
    ]
    valid_in = port(dut, in_buses.valid)
    data_out = port(dut, out_layout.port, out_layout.width, out_layout.name)
    valid_out = port(dut, out_layout.valid)
    falling = await start_and_reset(dut, manifest, [valid_in, *(h for h, _ in drives)])

    # Hot loop, per cycle: at the falling edge drive the next input, let the design settle
    # (ReadOnly), then sample. Output k is thus seen on the cycle its settled value first shows,
    # so a combinational path counts as latency 0 and a registered stage as 1.
    settled = ReadOnly()
    outputs: list[int | str] = []
    output_cycles: list[int] = []
    input_cycles: list[int] = []
    read_valid = reader(valid_out)
    read_data = reader(data_out)
    unknown_valid_cycles: list[int] = []
    tap_readers = [reader(port(dut, tap["port"])) for tap, _ in taps]
    tap_words: list[list[str]] = [[] for _ in taps]
    progress = Progress(config.progress, n_vectors)
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
                for handle, words in drives:
                    handle.value = words[driven]
                input_cycles.append(cycle)
                driven += 1
                progress.update(driven)
            else:
                for handle, words in drives:
                    handle.value = words[junk[cycle]]
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
        for read_tap, words_seen in zip(tap_readers, tap_words, strict=True):
            words_seen.append(read_tap())
    seconds = time.perf_counter() - started
    progress.write(n_vectors)

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
