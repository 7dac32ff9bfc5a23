"""Round half to even (``RoundMode.RND_CONV``, issue 16): the integer reference on ties, saving
and loading, the requantizers of every parallel writer bit-exact in Verilator (Amaranth, direct
portable, direct with AMD/Xilinx cells), and round-half-up hardware for a half-to-even model
caught by the bench."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from hgq_rtl.ir import reference
from hgq_rtl.ir.dense import accumulator_frac_bits, accumulator_range
from hgq_rtl.ir.fixed import (
    Activation,
    Overflow,
    RoundMode,
    bits_for_range,
    round_int,
    shift_folded,
    shift_round,
)
from hgq_rtl.ir.formats import TensorFormat
from hgq_rtl.ir.io import load, save
from hgq_rtl.ir.layers import QuantizeLayer
from hgq_rtl.ir.model import IRModel
from hgq_rtl.ir.random import random_dense, random_format
from rtl_gen.components import RequantizeSteps
from rtl_gen.emit import RtlOptions, emit


def _conv(values, shift):
    return shift_round(np.asarray(values, np.int64), shift, RoundMode.RND_CONV).tolist()


def test_ties_go_to_even_at_shift_one():
    # y = v / 2: -2.5 -2 -1.5 -1 -0.5 0 0.5 1 1.5 2 2.5 3.5
    values = [-5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 7]
    assert _conv(values, 1) == [-2, -2, -2, -1, 0, 0, 0, 1, 2, 2, 2, 4]
    rnd = shift_round(np.asarray(values), 1, RoundMode.RND).tolist()
    assert rnd == [-2, -2, -1, -1, 0, 0, 1, 1, 2, 2, 3, 4]


def test_ties_and_non_ties_at_larger_shifts():
    # shift 3: y = v / 8; ties at v = 4 (mod 8)
    values = [-20, -12, -4, 4, 12, 20, 28, 5, 3, -3, -5, -13]
    # -2.5 -1.5 -0.5 0.5 1.5 2.5 3.5 | 0.625 0.375 -0.375 -0.625 -1.625
    assert _conv(values, 3) == [-2, -2, 0, 0, 2, 2, 4, 1, 0, 0, -1, -2]
    # per-element shifts, zero and negative shifts append zeros exactly
    assert _conv([6, 6, 6, 6, -6], [2, 1, 0, -2, 2]) == [2, 3, 6, 24, -2]
    # a large shift: 2^40 + 2^39 is 1.5 units, 2^41 + 2^39 (2.5 units) goes down to 2
    big = [(1 << 40) + (1 << 39), (1 << 41) + (1 << 39), -(1 << 40) - (1 << 39)]
    assert _conv(big, 40) == [2, 2, -2]


def test_matches_numpy_round_and_the_scalar_form():
    rng = np.random.default_rng(0)
    values = rng.integers(-(1 << 20), 1 << 20, 20_000)
    for shift in (1, 2, 5, 13):
        want = np.round(values / 2.0**shift).astype(np.int64)  # numpy rounds half to even
        got = shift_round(values, shift, RoundMode.RND_CONV)
        assert np.array_equal(got, want)
        assert [round_int(int(v), shift, RoundMode.RND_CONV) for v in values[:500]] == list(
            want[:500]
        )


def test_the_hardware_form_is_the_reference():
    """``+1/2`` folded in, shift, LSB cleared where the dropped bits are 0 (what the
    requantizers build) equals the reference, and its range is the rounded range."""
    for shift in range(1, 7):
        values = np.arange(-300, 300)
        folded = [shift_folded(int(v) + (1 << (shift - 1)), -shift, True) for v in values]
        assert folded == shift_round(values, shift, RoundMode.RND_CONV).tolist()
        steps = RequantizeSteps.of(
            -300 + (1 << (shift - 1)),
            299 + (1 << (shift - 1)),
            -shift,
            Activation.LINEAR,
            Overflow.SAT,
            -8,
            7,
            even=True,
        )
        assert (steps.lo, steps.hi) == (min(folded), max(folded))


def test_refuses_a_mode_that_is_not_a_round_mode():
    with pytest.raises(ValueError, match="round_mode must be a RoundMode"):
        shift_round(np.array([1]), 1, "RND_CONV")
    with pytest.raises(ValueError, match="round_mode must be a RoundMode"):
        round_int(1, 1, "RND_CONV")


def _even_dense(rng, name, fmt, outputs, overflow, activation):
    """A random dense layer with RND_CONV that drops 1 to 3 bits per output (ties are common)."""
    layer = random_dense(
        rng, name, fmt, outputs, round_mode=RoundMode.RND_CONV, overflow=overflow,
        activation=activation, weight_bits=5,
    )  # fmt: skip
    drop = rng.integers(1, 4, outputs)
    frac = accumulator_frac_bits(layer, fmt) - drop
    # wide enough for the rounded range, or (a third of the elements) a bit short of it
    width = [
        bits_for_range(min(lo >> s, -1), hi >> s)[1] - (rng.random() < 0.3)
        for lo, hi, s in zip(*accumulator_range(layer, fmt), drop.tolist(), strict=True)
    ]
    out = TensorFormat(np.ones(outputs, bool), np.array(width) - 1 - frac, frac)
    return dataclasses.replace(layer, output=out)


def even_chain(seed: int, sizes=(10, 8, 6, 4), *, quantize: bool = False) -> IRModel:
    """Three RND_CONV dense layers (SAT+ReLU, WRAP, SAT), with ``quantize`` an RND_CONV
    quantize layer (2 bits dropped, SAT) after the first."""
    rng = np.random.default_rng(seed)
    input_format = fmt = random_format(rng, sizes[0])
    layers = []
    modes = [(Overflow.SAT, Activation.RELU), (Overflow.WRAP, Activation.LINEAR)]
    modes.append((Overflow.SAT, Activation.LINEAR))
    for k, ((overflow, activation), size) in enumerate(zip(modes, sizes[1:], strict=True)):
        layer = _even_dense(rng, f"dense_{k}", fmt, size, overflow, activation)
        layers.append(layer)
        fmt = layer.output
        if quantize and k == 0:
            out = TensorFormat(fmt.signed, fmt.int_bits - 1, fmt.frac_bits - 2)
            q = QuantizeLayer("requant", out, Activation.LINEAR, RoundMode.RND_CONV, Overflow.SAT)
            layers.append(q)
            fmt = out
    return IRModel("even_net", input_format, tuple(layers))


def with_round_mode(ir: IRModel, mode: RoundMode) -> IRModel:
    layers = tuple(dataclasses.replace(layer, round_mode=mode) for layer in ir.layers)
    return IRModel(ir.name, ir.input, layers)


def _inputs(ir: IRModel, n: int = 600, seed: int = 0) -> np.ndarray:
    return reference.random_inputs(ir.input, n, np.random.default_rng(seed))


def test_the_test_models_hit_ties():
    """Every model the tests below simulate: the rounding differs on most vectors."""
    for ir in (even_chain(3, quantize=True), even_chain(4), even_chain(7, (5, 4, 3, 2))):
        x = _inputs(ir)
        conv, rnd = (reference.run(m, x) for m in (ir, with_round_mode(ir, RoundMode.RND)))
        assert (conv != rnd).any(axis=1).mean() > 0.3


def test_saved_and_loaded(tmp_path):
    ir = even_chain(2, quantize=True)
    loaded = load(save(ir, tmp_path / "ir"))
    assert [layer.round_mode for layer in loaded.layers] == [RoundMode.RND_CONV] * 4
    text = (tmp_path / "ir" / "model.json").read_text()
    assert text.count('"round_mode": "RND_CONV"') == 4
    x = _inputs(ir)
    assert np.array_equal(reference.run(loaded, x), reference.run(ir, x))


def _verify(ir: IRModel, rtl, expected_ir: IRModel | None = None, taps: bool = False):
    from hgq_rtl_sim.runner import verify

    x = _inputs(ir, 400, seed=5)
    outputs = reference.run_all(expected_ir or ir, x)
    return verify(
        rtl, x, outputs[-1], quiet=True, expected_taps=outputs[:-1] if taps else None, seed=5
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("ir", "options"),
    [
        (even_chain(3, quantize=True), RtlOptions(debug_taps=True)),
        (even_chain(4), RtlOptions(writer="direct", clock_ns=2.0, debug_taps=True)),
        (
            even_chain(7, (5, 4, 3, 2)),
            RtlOptions(
                writer="direct", ternary_adders=True, xilinx_primitives=True, debug_taps=True
            ),
        ),
    ],
    ids=["amaranth-quantize", "direct-portable", "direct-xilinx-cells"],
)
def test_parallel_writers_are_bit_exact_in_verilator(ir, options, tmp_path):
    emit(ir, tmp_path / "rtl", options)
    text = (tmp_path / "rtl" / f"{ir.name}.v").read_text()
    if options.writer.value == "direct":
        assert "_e = {" in text  # the tie-to-even step is written
    result = _verify(ir, tmp_path / "rtl", taps=True)
    assert (result.vectors, result.mismatches) == (400, 0), result.summary()


@pytest.mark.slow
def test_round_half_up_hardware_fails_a_half_to_even_model(tmp_path):
    ir = even_chain(4)
    wrong = with_round_mode(ir, RoundMode.RND)
    emit(wrong, tmp_path / "rtl", RtlOptions(writer="direct"))
    result = _verify(wrong, tmp_path / "rtl", expected_ir=ir)
    assert not result.passed and result.mismatches > 40, result.summary()
