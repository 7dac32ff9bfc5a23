"""Registers placed across layer boundaries (rtl_gen.schedule): latency at a clock period and
for ``latency=N``, bit-exactness (check 2 in Amaranth, check 3 in the fast harness and cocotb),
the manifest's latency equal to the observed one, and broken schedules caught."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from amaranth.sim import Simulator

from hgq_rtl.binding import seal
from hgq_rtl.ir import reference
from hgq_rtl.ir.model import IRModel
from hgq_rtl.ir.random import random_graph, random_model, random_two_inputs
from hgq_rtl.verification import verify_design
from rtl_gen.components import DenseComponent
from rtl_gen.emit import RtlOptions, build, emit, resolve_writer
from rtl_gen.network import NetworkComponent
from rtl_gen.simulate import simulate
from rtl_gen.timing import AMD, ECP5, DelayModel


def _vectors(component: NetworkComponent, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random inputs (the model's inputs side by side, the extremes first) and the reference."""
    ir = component.ir
    x = reference.random_inputs(component.input_format, n, np.random.default_rng(seed))
    lo, hi = component.input_format.int_range()
    x[0], x[1] = lo, hi
    sizes = np.cumsum([i.format.size for i in ir.inputs])[:-1]
    by_name = dict(zip(ir.input_names, np.split(x, sizes, axis=1), strict=True))
    return x, reference.run(ir, by_name if len(ir.inputs) > 1 else x)


def _mismatches(component: NetworkComponent, n: int = 150, seed: int = 0) -> int:
    x, want = _vectors(component, n, seed)
    return int(np.any(simulate(component, x) != want, axis=1).sum())


def _observed_latency(component: NetworkComponent, n: int = 40, seed: int = 1) -> int:
    """Cycles from ``data_in`` to ``data_out``, found from the data alone (``valid_out`` is not
    read): the shift at which the output sequence equals the reference's."""
    x, want = _vectors(component, n, seed)
    columns = np.cumsum([0] + [len(layout.width) for _, layout in component.input_buses.values()])
    words = [
        layout.pack(x[:, columns[k] : columns[k + 1]])
        for k, (_, layout) in enumerate(component.input_buses.values())
    ]
    ports = [getattr(component, port) for port, _ in component.input_buses.values()]
    seen: list[int] = []

    async def bench(ctx) -> None:
        for cycle in range(n + component.latency + 3):
            for port, port_words in zip(ports, words, strict=True):
                ctx.set(port, port_words[min(cycle, n - 1)])
            seen.append(ctx.get(component.data_out))  # before this cycle's clock edge
            await ctx.tick()

    sim = Simulator(component)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    got = component.output_layout.unpack(seen)
    shifts = [k for k in range(len(seen) - n + 1) if np.array_equal(got[k : k + n], want)]
    assert shifts, "no shift of the output sequence equals the reference"
    return shifts[0]


def _chain(seed: int = 0) -> IRModel:
    return random_model(np.random.default_rng(seed), (10, 8, 6, 4))


def _graph(seed: int = 0) -> IRModel:
    return random_graph(np.random.default_rng(seed), 6, 5)


MODELS = {
    "chain": _chain,
    "graph": _graph,
    "two-inputs": lambda seed=0: random_two_inputs(np.random.default_rng(seed)),
}


@pytest.mark.parametrize("clock_ns", [0.8, 1.5, 3.0, 5.0, 100.0])
@pytest.mark.parametrize("kind", sorted(MODELS))
def test_bit_exact_at_every_clock(kind: str, clock_ns: float) -> None:
    for seed in range(2):
        component = NetworkComponent(MODELS[kind](seed), clock_ns=clock_ns)
        assert _mismatches(component, seed=seed) == 0
        assert _observed_latency(component) == component.latency


def test_registers_cross_layer_boundaries() -> None:
    """A long period: no register but the input and output ones, whatever the layer count; per
    layer (no period) each layer costs at least a cycle."""
    ir = _chain()
    slow = NetworkComponent(ir, clock_ns=1000.0)
    assert slow.latency == 2 and all(block.latency == 0 for block in slow.layers)
    assert NetworkComponent(ir, clock_ns=1000.0, register_inputs=False).latency == 1
    assert NetworkComponent(ir).latency >= 1 + len(ir.layers)
    latencies = [NetworkComponent(ir, clock_ns=c).latency for c in (0.8, 1.5, 3.0, 100.0)]
    assert latencies == sorted(latencies, reverse=True) and latencies[0] > latencies[-1]


@pytest.mark.parametrize("clock_ns", [0.8, 1.5, 3.0])
def test_every_path_meets_the_period_by_the_model(clock_ns: float) -> None:
    """Every adder ends within the period after its stage's register (unless it alone is longer),
    and every layer's unregistered output leaves the next layer time for its first operation."""
    model = DelayModel()
    budget = model.budget(clock_ns)
    component = NetworkComponent(_chain(3), clock_ns=clock_ns, delay_model=model)
    for block in component.layers:
        assert block.start_ns <= budget
        for adder in block.plan.adders():
            _, finish = block.timing[adder.ident]
            assert finish <= budget or finish == model.adder(adder.width, len(adder.operands))
        assert block.output_ns <= budget


def test_graph_delay_lines_come_from_the_schedule() -> None:
    """Branches of different lengths meet aligned: the shorter one through a delay line."""
    ir = _graph(1)
    component = NetworkComponent(ir, clock_ns=0.8)
    arrival = component.arrival
    for layer in ir.layers:
        sources = ir.inputs_of(layer)
        delays = component.input_delays[layer.name]
        starts = {arrival[s] + d for s, d in zip(sources, delays, strict=True)}
        assert len(starts) == 1, f"{layer.name}'s inputs are misaligned"
    assert any(any(d) for d in component.input_delays.values())


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_latency_n_takes_exactly_n_cycles(kind: str) -> None:
    ir = MODELS[kind](0)
    fewest = NetworkComponent(ir, clock_ns=1000.0).latency
    longest = NetworkComponent(ir, clock_ns=0.8).latency
    for latency in sorted({fewest, fewest + 1, (fewest + longest) // 2, longest + 2}):
        component = NetworkComponent(ir, latency=latency)
        assert component.latency == latency and component.latency_target == latency
        assert _mismatches(component) == 0
        assert _observed_latency(component) == latency
    # more cycles never need a longer period
    periods = [NetworkComponent(ir, latency=n).clock_ns for n in range(fewest, longest + 1)]
    assert periods == sorted(periods, reverse=True)
    with pytest.raises(ValueError, match=f"latency must be at least {fewest} cycles"):
        NetworkComponent(ir, latency=fewest - 1)


def test_latency_with_a_clock() -> None:
    ir = _chain()
    at_clock = NetworkComponent(ir, clock_ns=1.5)
    padded = NetworkComponent(ir, clock_ns=1.5, latency=at_clock.latency + 2)
    assert padded.latency == at_clock.latency + 2 and padded.output_registers == 3
    assert (
        padded.register_bits() == at_clock.register_bits() + 2 * at_clock.output_layout.port_width
    )
    assert _mismatches(padded) == 0
    with pytest.raises(ValueError, match="cannot meet clock_ns 1.5"):
        NetworkComponent(ir, clock_ns=1.5, latency=at_clock.latency - 1)
    with pytest.raises(ValueError, match="positive integer"):
        NetworkComponent(ir, latency=0)
    with pytest.raises(ValueError, match="positive integer"):
        RtlOptions(latency=1.5)


def test_a_layer_latency_off_by_one_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """A dense layer's registers follow its stages by construction (any stages that never
    decrease along a path give a bit-exact layer); what a schedule can get wrong is the count.
    A layer that reports one register fewer than it has makes the network misalign its paths
    and its valid, and check 2 sees it."""
    schedule = DenseComponent.schedule

    def short(self, *args, **kwargs) -> None:
        schedule(self, *args, **kwargs)
        self.latency -= int(self.latency > 0)

    for ir in (_chain(), _graph(1)):
        assert _mismatches(NetworkComponent(ir, clock_ns=0.8)) == 0
        with monkeypatch.context() as patch:
            patch.setattr(DenseComponent, "schedule", short)
            component = NetworkComponent(ir, clock_ns=0.8)
        assert any(b.latency != b.final_stage for b in component.layers if hasattr(b, "plan"))
        assert _mismatches(component) > 0


def test_a_misaligned_delay_line_is_caught() -> None:
    component = NetworkComponent(_graph(1), clock_ns=0.8)
    name, delays = next((n, d) for n, d in component.input_delays.items() if any(d))
    k = next(k for k, d in enumerate(delays) if d)
    component.input_delays[name] = tuple(d - (i == k) for i, d in enumerate(delays))
    assert _mismatches(component) > 0


def test_manifest_records_latency_and_register_stages(tmp_path: Path) -> None:
    ir = _graph(1)
    document = emit(ir, tmp_path / "rtl", RtlOptions(clock_ns=1.5))
    component = NetworkComponent(ir, clock_ns=1.5)
    assert document["latency_cycles"] == component.latency
    stages = document["register_stages"]
    assert [s["cycle"] for s in stages] == list(range(1, component.latency + 1))
    assert stages[0]["registers"][0] == "data_in" and "data_out" in stages[-1]["registers"]
    assert all(s["registers"] for s in stages), "every cycle has a register"
    document = emit(ir, tmp_path / "n", RtlOptions(latency=component.latency + 1))
    assert document["latency_cycles"] == component.latency + 1
    assert document["options"]["latency"] == component.latency + 1


@pytest.mark.slow
@pytest.mark.parametrize(
    ("kind", "options"),
    [
        ("chain", RtlOptions(clock_ns=1.5, writer="direct")),
        (
            "chain",
            RtlOptions(latency=2, writer="direct", ternary_adders=True, xilinx_primitives=True),
        ),
        ("graph", RtlOptions(clock_ns=1.5)),
        ("two-inputs", RtlOptions(latency=3)),
    ],
    ids=["chain-direct-clock", "chain-xilinx-latency-2", "graph-clock", "two-inputs-latency-3"],
)
def test_fast_harness_bit_exact(kind: str, options: RtlOptions, tmp_path: Path) -> None:
    out = tmp_path / "rtl"
    emit(MODELS[kind](2), out, options)
    result = verify_design(out, 20_000, engine="fast", quiet=True, optimize=False)
    assert result.passed and result.mismatches == 0 and result.vectors == 20_000


@pytest.mark.slow
def test_fast_harness_catches_manifest_latency_off_by_one(tmp_path: Path) -> None:
    out = tmp_path / "rtl"
    emit(_chain(2), out, RtlOptions(clock_ns=1.5, writer="direct"))
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["latency_cycles"] -= 1
    (out / "manifest.json").write_text(json.dumps(seal(manifest)))  # a consistent, wrong one
    result = verify_design(out, 2000, engine="fast", quiet=True, optimize=False)
    assert not result.passed


@pytest.mark.slow
def test_cocotb_bit_exact_with_taps(tmp_path: Path) -> None:
    """cocotb (valid bubbles, debug taps read at their manifest latency) across boundaries."""
    out = tmp_path / "rtl"
    emit(_graph(2), out, RtlOptions(clock_ns=1.5, debug_taps=True))
    result = verify_design(out, 300, quiet=True)
    assert result.passed and result.mismatches == 0


def test_the_direct_writer_falls_back_to_amaranth_with_a_note(tmp_path: Path) -> None:
    """``writer_fallback``: a model the direct writer does not take is written by the Amaranth
    writer (no AMD/Xilinx cells), and the note says why; a dense chain keeps the direct one."""
    cells = RtlOptions(
        clock_ns=5.0,
        writer="direct",
        ternary_adders=True,
        xilinx_primitives=True,
        writer_fallback=True,
    )
    options, note = resolve_writer(_chain(), cells)
    assert options == cells and note is None
    options, note = resolve_writer(_graph(), cells)
    assert options.writer.value == "amaranth" and not options.xilinx_primitives
    assert options.ternary_adders and "not a chain of dense layers" in note
    document = emit(_graph(), tmp_path / "rtl", cells)
    assert document["options"]["writer"] == "amaranth"
    assert document["options"]["xilinx_primitives"] is False
    without = RtlOptions(**{**cells.__dict__, "writer_fallback": False})
    with pytest.raises(ValueError, match="writes chains of dense layers only"):
        emit(_graph(), tmp_path / "refused", without)


def test_cli_latency_and_its_refusal(tmp_path: Path) -> None:
    """``hgq-rtl rtl --latency N``: N cycles in the manifest; too few cycles: one line, exit 2,
    nothing written."""
    from bad_inputs.helpers import assert_bad_input, cli

    from hgq_rtl.ir import save

    save(_graph(1), tmp_path / "graph")
    result = cli(
        "rtl", tmp_path / "graph", "--out", tmp_path / "three", "--latency", "3", "-q", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    manifest = json.loads((tmp_path / "three" / "manifest.json").read_text())
    assert manifest["latency_cycles"] == 3 and manifest["options"]["latency"] == 3
    result = cli(
        "rtl", tmp_path / "graph", "--out", tmp_path / "one", "--latency", "1", "-q", cwd=tmp_path
    )
    assert_bad_input(result, "latency must be at least 2 cycles for this network")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["graph", "three"]


@pytest.mark.parametrize("ternary", [False, True], ids=["binary", "ternary"])
def test_critical_path_fits_the_period_it_was_placed_for(ternary: bool) -> None:
    """The model's longest register-to-register path (what benchmarks/delay_model.py compares
    with nextpnr) never passes the period the same model placed the registers for, grows with
    the adder levels per stage, and is the sum of its own levels and carry bits."""
    ir = random_model(np.random.default_rng(3), (16, 16, 8), name="m")
    model = DelayModel()
    for clock_ns in (2.5, 4.0):  # (a period shorter than one adder is passed by that adder)
        layer = DenseComponent(ir.layers[0], ir.input, clock_ns=clock_ns, ternary=ternary)
        ns, levels, bits = layer.critical_path()
        assert ns <= clock_ns + 1e-9
        assert ns == pytest.approx(
            levels * model.level_ns + bits * model.bit_ns + model.register_ns
        )
    by_levels = [
        DenseComponent(ir.layers[0], ir.input, adder_levels_per_stage=k).critical_path()[0]
        for k in (1, 2, 4, 16)
    ]
    assert by_levels == sorted(by_levels) and by_levels[0] < by_levels[-1]
    # the constants of another model: the same registers, another prediction
    slow = DelayModel(level_ns=1.0, bit_ns=0.1, register_ns=1.0)
    ns, levels, bits = DenseComponent(ir.layers[0], ir.input, clock_ns=2.5).critical_path(slow)
    assert ns == pytest.approx(levels * 1.0 + bits * 0.1 + 1.0) and ns > 2.5


def test_the_portable_family_schedules_with_the_ecp5_model(tmp_path: Path) -> None:
    """``family="portable"``: the ECP5 constants (fitted to nextpnr-ecp5) place the registers,
    more of them than the AMD ones at the same period since every ECP5 adder is slower; the
    design stays bit-exact and every path meets the period by the ECP5 model; the manifest
    names the model. An unknown family is refused."""
    ir = _chain()
    portable = build(ir, RtlOptions(clock_ns=5.0, family="portable"))
    amd = build(ir, RtlOptions(clock_ns=5.0))
    assert portable.delay_model == DelayModel(1.871, 0.0723, 1.045) and amd.delay_model == AMD
    assert ECP5.adder(14) == pytest.approx(1.871 + 14 * 0.0723)  # one 14-bit adder's LUT + carry
    assert ECP5.budget(5.0) == pytest.approx(5.0 - 1.045)
    assert portable.latency > amd.latency
    assert _mismatches(portable) == 0 and _observed_latency(portable) == portable.latency
    budget = ECP5.budget(5.0)
    for block in portable.layers:
        for adder in block.plan.adders():
            _, finish = block.timing[adder.ident]
            assert finish <= budget or finish == ECP5.adder(adder.width, len(adder.operands))
        assert block.output_ns <= budget and block.critical_path()[0] <= 5.0 + 1e-9
    # a layer in one stage: its predicted path is its LUT levels and carry bits at ECP5 rates
    layer = DenseComponent(ir.layers[0], ir.input, clock_ns=1e6, delay_model=ECP5)
    ns, levels, bits = layer.critical_path()
    assert layer.latency == 1 and levels > 1
    assert ns == pytest.approx(levels * 1.871 + bits * 0.0723 + 1.045)
    document = emit(ir, tmp_path / "rtl", RtlOptions(clock_ns=5.0, family="portable"))
    assert document["options"]["delay_model"] == {
        "name": "ecp5-nextpnr-fitted",
        "level_ns": 1.871,
        "bit_ns": 0.0723,
        "register_ns": 1.045,
    }
    assert document["latency_cycles"] == portable.latency
    levels_only = emit(ir, tmp_path / "levels", RtlOptions(family="portable"))
    assert levels_only["options"]["delay_model"] is None  # no delay model placed its registers
    with pytest.raises(ValueError, match="family must be one of 'amd', 'portable', not 'ice40'"):
        RtlOptions(family="ice40")


def test_cli_family_portable_places_registers_for_ecp5(tmp_path: Path) -> None:
    """``hgq-rtl rtl --family portable --clock-ns N``: the ECP5 model's registers (more cycles
    than ``--family amd`` at the same period), named in the manifest."""
    from bad_inputs.helpers import cli

    from hgq_rtl.ir import save

    save(_chain(), tmp_path / "chain")
    manifests = {}
    for family in ("amd", "portable"):
        out = tmp_path / family
        args = ("rtl", tmp_path / "chain", "--out", out, "--clock-ns", "5", "--family", family)
        result = cli(*args, "-q", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        manifests[family] = json.loads((out / "manifest.json").read_text())
    assert manifests["amd"]["options"]["delay_model"]["name"] == "amd-ultrascale-plus-guess"
    assert manifests["portable"]["options"]["delay_model"]["name"] == "ecp5-nextpnr-fitted"
    assert manifests["portable"]["latency_cycles"] > manifests["amd"]["latency_cycles"]
