"""The cocotb bench of stream designs (``"io": "stream"``), called by :mod:`hgq_rtl_sim.bench`.

All samples are streamed back to back as beats on the input port (``s_axis_*``) with random
bubbles (``tvalid`` low, with ``bubble_probability`` per beat offered; a beat once offered stays
until it is taken, as AXI4-Stream requires, and a bubble carries another beat's data and a random
``tlast``); the output (``m_axis_*``) is held back at random (``tready`` low with
``backpressure_probability`` per cycle). Every output beat taken is recorded with its ``tlast``
and cycle, and the output is watched for handshake errors: once ``tvalid`` is high it must stay
high, with the same data and ``tlast``, until the beat is taken.

With both probabilities 0 the run is at full throughput and its timing is checked as well
(:mod:`hgq_rtl_sim.stream_score`). The run ends once every sample's output has come and a few
more cycles showed nothing extra, or when nothing moved for long (the design is stuck: the
samples without output are reported missing).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from cocotb.triggers import ReadOnly

from .config import BenchConfig
from .drive import DRAIN_MARGIN_CYCLES, Coins, Progress, port, reader, start_and_reset
from .interface import stream_layouts
from .stream_score import score_stream

__all__ = ["drive_stream"]


async def drive_stream(dut: Any, config: BenchConfig, manifest: dict[str, Any]) -> dict[str, Any]:
    """Stream the vectors of *config* through the design; return the scored results."""
    in_layout, out_layout = stream_layouts(manifest)
    latency = int(manifest["latency_cycles"])
    interval = int(manifest["initiation_interval"])
    with np.load(config.vectors) as vectors:
        inputs = vectors["inputs"]
        expected = vectors["expected"]
    n_samples = int(inputs.shape[0])
    beats_in, beats_out = in_layout.beats, out_layout.beats
    words = in_layout.pack(inputs)
    total_in, total_out = len(words), n_samples * beats_out

    s_data = port(dut, in_layout.port, in_layout.slots.width, "input")
    s_valid, s_last = port(dut, in_layout.valid, 1, "input"), port(dut, in_layout.last, 1, "input")
    s_ready = port(dut, in_layout.ready, 1, "input")
    m_data = port(dut, out_layout.port, out_layout.slots.width, "output")
    m_valid, m_last = (
        port(dut, out_layout.valid, 1, "output"),
        port(dut, out_layout.last, 1, "output"),
    )
    m_ready = port(dut, out_layout.ready, 1, "output")
    falling = await start_and_reset(dut, manifest, [s_data, s_valid, s_last, m_ready])

    bubbles = Coins(config.bubble_probability, config.seed)
    stalls = Coins(config.backpressure_probability, config.seed + 1)
    junk = np.random.default_rng(config.seed + 2)
    check_timing = config.bubble_probability == 0 and config.backpressure_probability == 0
    # Nothing moving for this long means the design is stuck (a stall this long by chance has
    # a probability below e^-64).
    throughput = (1 - config.bubble_probability) * (1 - config.backpressure_probability)
    stall_limit = int((2 * (latency + interval + beats_in + beats_out) + 64) / throughput)
    drain = DRAIN_MARGIN_CYCLES + 2 * beats_out

    read_s_ready, read_m_valid = reader(s_ready), reader(m_valid)
    read_m_data, read_m_last = reader(m_data), reader(m_last)
    settled = ReadOnly()
    progress = Progress(config.progress, n_samples)
    beats: list[int | str] = []
    lasts: list[str] = []
    beat_cycles: list[int] = []
    protocol_errors: list[dict[str, Any]] = []
    unknown_valid_cycles: list[int] = []
    first_input_cycle = None
    sent = 0  # input beats taken
    offering = False  # whether a beat is offered (s_axis_tvalid)
    valid = False  # s_axis_tvalid as driven
    ready = None  # m_axis_tready as driven
    held = None  # (data, last) of an output beat offered and not taken last cycle
    idle = 0  # cycles since the last handshake
    after = 0  # cycles since the last expected output beat
    cycle = 0
    started = time.perf_counter()
    while after < drain and idle < stall_limit:
        await falling
        if not offering and sent < total_in:
            offering = not bubbles.flip()
            if offering:
                s_data.value = words[sent]
                s_last.value = int(sent % beats_in == beats_in - 1)
            else:  # a bubble: another beat's data
                s_data.value = words[int(junk.integers(total_in))]
                s_last.value = int(junk.integers(2))
        if offering != valid:
            s_valid.value = int(offering)
            valid = offering
        wanted = len(beats) >= total_out or not stalls.flip()
        if wanted != ready:
            m_ready.value = int(wanted)
            ready = wanted
        await settled

        idle += 1
        if offering and read_s_ready() == "1":
            if sent == 0:
                first_input_cycle = cycle
            sent += 1
            offering = False
            idle = 0
            if sent % beats_in == 0:
                progress.update(sent // beats_in)
        flag = read_m_valid()
        if flag == "1":
            bits, last = read_m_data(), read_m_last()
            if held is not None and held != (bits, last):
                protocol_errors.append(
                    _protocol(cycle, len(beats), out_layout.ready, "changed its data or tlast")
                )
            if ready:
                try:
                    beats.append(int(bits, 2))
                except ValueError:  # X/Z bits: kept as text for the report
                    beats.append(bits)
                lasts.append(last)
                beat_cycles.append(cycle)
                held = None
                idle = 0
            else:
                held = (bits, last)
        else:
            if flag != "0":
                unknown_valid_cycles.append(cycle)
            if held is not None:
                protocol_errors.append(
                    _protocol(cycle, len(beats), out_layout.ready, "dropped tvalid")
                )
            held = None
        if len(beats) >= total_out and sent == total_in:
            after += 1
        cycle += 1
    seconds = time.perf_counter() - started
    progress.write(n_samples)

    results = score_stream(
        out_layout,
        inputs,
        expected,
        beats,
        lasts,
        beat_cycles,
        first_input_cycle=first_input_cycle,
        latency=latency,
        interval=interval,
        check_timing=check_timing,
        protocol_errors=protocol_errors,
        unknown_valid_cycles=unknown_valid_cycles,
    )
    if idle >= stall_limit:
        results["stalled_at_cycle"] = cycle - idle
    results.update(
        cycles=cycle,
        input_beats=sent,
        sim_seconds=seconds,
        us_per_vector=1e6 * seconds / max(1, n_samples),
    )
    return results


def _protocol(cycle: int, beat: int, ready: str, what: str) -> dict[str, Any]:
    message = f"the output {what} before the beat was taken ({ready} low)"
    return {"cycle": cycle, "beat": beat, "message": message}
