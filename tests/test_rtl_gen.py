"""The generator: CSD, exact range analysis, and check 2 (Amaranth simulation == reference)."""

import itertools

import numpy as np
import pytest

from hgq_rtl.ir import reference
from hgq_rtl.ir.dense import DenseLayer
from hgq_rtl.ir.fixed import Activation, Overflow, RoundMode
from hgq_rtl.ir.formats import TensorFormat
from hgq_rtl.ir.model import IRModel
from hgq_rtl.ir.random import random_dense, random_format, random_model
from rtl_gen.adder_tree import RangeModel, csd, dot_product_leaves, plan_sum
from rtl_gen.components import DenseComponent, DensePlan
from rtl_gen.network import NetworkComponent
from rtl_gen.simulate import simulate


@pytest.mark.parametrize("value", [0, 1, -1, 3, 7, -7, 12, 0b1011101, -(2**20) + 5, 2**31 - 1])
def test_csd_is_exact_and_canonical(value):
    digits = csd(value)
    assert sum(d << p for p, d in digits) == value
    positions = [p for p, _ in digits]
    assert all(b - a >= 2 for a, b in itertools.pairwise(positions)), "adjacent non-zero digits"
    assert all(d in (1, -1) for _, d in digits)


def test_csd_is_minimal_on_all_small_integers():
    # a CSD has minimal weight: never more digits than the binary form's ones
    for value in range(-512, 513):
        assert len(csd(value)) <= bin(abs(value)).count("1")
    assert len(csd(7)) == 2  # 8 - 1


def test_tree_ranges_are_exact():
    """Every node's range equals the brute-force min/max over all inputs."""
    ranges = RangeModel([-4, 0, -2], [3, 5, 1])
    leaves = dot_product_leaves(ranges, [7, -3, 5], [0, 2, 1], [True, True, True])
    leaves.append(ranges.const(-6))
    plan = plan_sum(ranges, leaves)
    grid = list(itertools.product(range(-4, 4), range(0, 6), range(-2, 2)))
    for node in plan.adders():
        values = []
        for x in grid:
            v = sum(c * x[j] for j, c in node.coefficients.items()) + node.constant
            values.append((-v if node.negative else v) >> node.shift)
        assert (node.lo, node.hi) == (min(values), max(values))
    root = plan.root
    assert root.coefficients == {0: 7, 1: -12, 2: 10}


def _check2(ir: IRModel, n: int = 120, seed: int = 0, **options) -> int:
    rng = np.random.default_rng(seed)
    x = reference.random_inputs(ir.input, n, rng)
    y = simulate(NetworkComponent(ir, **options), x)
    return int(np.any(y != reference.run(ir, x), axis=1).sum())


@pytest.mark.parametrize(
    ("round_mode", "overflow", "activation"),
    list(itertools.product(RoundMode, Overflow, Activation)),
)
def test_check2_every_requantizer_mode(round_mode, overflow, activation):
    rng = np.random.default_rng(hash((round_mode.value, overflow.value, activation.value)) % 2**32)
    fmt = random_format(rng, 7)
    layer = random_dense(
        rng, "dense_0", fmt, 6, round_mode=round_mode, overflow=overflow, activation=activation
    )
    ir = IRModel("mode_test", fmt, (layer,))
    assert _check2(ir) == 0


@pytest.mark.parametrize("seed", range(6))
def test_check2_random_networks(seed):
    rng = np.random.default_rng(100 + seed)
    ir = random_model(rng, (8, 6, 5, 3))
    levels = 1 + seed % 3
    assert _check2(ir, seed=seed, adder_levels_per_stage=levels, register_inputs=seed % 2 == 0) == 0


def test_check2_fails_on_a_wrong_design():
    """A design built from a model with one weight off by one must not pass check 2."""
    rng = np.random.default_rng(7)
    ir = random_model(rng, (6, 4), round_mode=RoundMode.TRN, overflow=Overflow.SAT)
    layer = ir.layers[0]
    weight = layer.weight.copy()
    i, j = np.argwhere((weight != 0) & (ir.input.width[None, :] > 0))[0]
    weight[i, j] += 1
    broken_layer = DenseLayer(
        layer.name,
        weight,
        layer.weight_frac_bits,
        layer.bias,
        layer.bias_frac_bits,
        layer.output,
        layer.activation,
        layer.round_mode,
        layer.overflow,
    )
    broken = IRModel(ir.name, ir.input, (broken_layer,))
    x = reference.random_inputs(ir.input, 200, rng)
    y = simulate(NetworkComponent(broken), x)
    assert np.any(y != reference.run(ir, x))


def test_latency_and_depth():
    rng = np.random.default_rng(3)
    ir = random_model(rng, (16, 8, 4))
    for levels in (1, 2, 4):
        component = NetworkComponent(ir, adder_levels_per_stage=levels)
        expected = 1 + sum(
            max(1, -(-DensePlan(layer, fmt).depth // levels))
            for layer, fmt in zip(ir.layers, ir.input_formats(), strict=True)
        )
        assert component.latency == expected


def test_zero_width_and_zero_weights_cost_nothing():
    rng = np.random.default_rng(5)
    fmt = random_format(rng, 4)
    layer = random_dense(rng, "dense_0", fmt, 3)
    plan = DensePlan(layer, fmt)
    used = {
        j
        for n in plan.neurons
        for level in n.tree.levels
        for node in level
        for j in node.coefficients
    }
    live = {j for j in range(4) if fmt.width[j] > 0 and np.any(layer.weight[:, j] != 0)}
    assert used <= live


def test_shared_patterns_save_adders_and_keep_exact_ranges():
    """Two outputs that both contain 5*x0 + 6*x1 (as CSD terms) share the pattern."""
    fmt = TensorFormat(np.array([1, 0, 1]), np.array([3, 4, 2]), np.array([0, 0, 0]))
    weight = np.array([[5, 6, 1], [5, 6, -3], [10, 12, 0]])
    layer = DenseLayer(
        "dense_0", weight, np.zeros((3, 3), int), np.zeros(3, int), np.zeros(3, int),
        TensorFormat(np.ones(3), np.full(3, 9), np.zeros(3)),
    )  # fmt: skip
    shared = DensePlan(layer, fmt, share=True)
    tree = DensePlan(layer, fmt, share=False)
    assert shared.shared, "no pattern was shared"
    assert shared.adder_count() < tree.adder_count()
    grid = itertools.product(range(-8, 8), range(0, 16), range(-4, 4))
    x = np.array(list(grid))
    for node in shared.adders():
        v = x @ np.array([node.coefficients.get(j, 0) for j in range(3)]) + node.constant
        expr = (-v if node.negative else v) >> node.shift
        assert (node.lo, node.hi) == (expr.min(), expr.max())
    ir = IRModel("shared_net", fmt, (layer,))
    y = simulate(NetworkComponent(ir, share=True), x[::7])
    assert np.array_equal(y, reference.run(ir, x[::7]))


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize(("share", "clock_ns"), [(False, None), (True, None), (True, 2.0)])
def test_check2_sharing_and_delay_pipelining(seed, share, clock_ns):
    rng = np.random.default_rng(300 + seed)
    ir = random_model(rng, (12, 10, 6))
    assert _check2(ir, seed=seed, share=share, clock_ns=clock_ns) == 0


def test_delay_model_places_registers_within_the_period():
    rng = np.random.default_rng(9)
    ir = random_model(rng, (24, 16))
    layer = DenseComponent(ir.layers[0], ir.input, clock_ns=1.5)
    model = layer.delay_model
    budget = 1.5 - model.register_ns
    for adder in layer.plan.adders():
        stage, arrival = layer.timing[adder.ident]
        # an adder starts a new stage when chaining it would pass the period
        assert arrival <= budget or arrival == pytest.approx(model.adder(adder.width))
    slow = DenseComponent(ir.layers[0], ir.input, clock_ns=100.0)
    assert slow.latency == 1 and slow.register_bits() == 0
    assert layer.latency > slow.latency
