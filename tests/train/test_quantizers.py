"""The HGQ quantizer: forward values, HGQ's gradients, integer bits from ranges, overflow."""

import math

import pytest
import torch

from hgq_rtl.ir.fixed import Overflow, RoundMode
from hgq_rtl.train.quantizers import (
    ActivationQuantizer,
    WeightQuantizer,
    apply_overflow,
    ceil_log2,
    quantize,
    range_int_bits,
    round_ste,
)


def test_frac_bits_gradient_is_minus_ln2_times_error():
    x = torch.tensor([0.3, -1.7, 2.26, 0.01], dtype=torch.float64, requires_grad=True)
    f = torch.tensor([2.2, 1.0, 3.4, 4.0], dtype=torch.float64, requires_grad=True)
    x_q = quantize(x, round_ste(f), RoundMode.RND)
    x_q.sum().backward()
    expected = -math.log(2) * (x_q.detach() - x.detach())
    assert torch.allclose(f.grad, expected, rtol=0, atol=1e-15)
    assert torch.equal(x.grad, torch.ones_like(x))


@pytest.mark.parametrize(
    ("mode", "values", "expected"),
    [
        (RoundMode.RND, [0.625, -0.625, 0.374, -0.376], [0.75, -0.5, 0.25, -0.5]),
        (RoundMode.TRN, [0.625, -0.625, 0.374, -0.376], [0.5, -0.75, 0.25, -0.5]),
    ],
)
def test_rounding_modes(mode, values, expected):
    x = torch.tensor(values, dtype=torch.float64)
    out = quantize(x, torch.full_like(x, 2.0), mode)
    assert out.tolist() == expected


def test_ceil_log2_is_exact_at_powers_of_two():
    v = torch.tensor([1.0, 2.0, 3.0, 4.0, 0.25, 0.3, 4 - 2**-30], dtype=torch.float64)
    assert ceil_log2(v).tolist() == [0, 1, 2, 2, -2, -1, 2]


def test_int_bits_hold_observed_range_exactly():
    low = torch.tensor([-4.0, 0.0, 0.0, -0.25, 0.0], dtype=torch.float64)
    high = torch.tensor([3.0, 3.0, 4.0, 0.5, 0.0], dtype=torch.float64)
    f = torch.tensor([0.0, 0.0, 0.0, 2.0, 3.0], dtype=torch.float64)
    signed, int_bits = range_int_bits(low, high, f)
    assert signed.tolist() == [True, False, False, True, False]
    # [-4, 3] signed 2 int bits; [0, 3] unsigned 2; [0, 4] needs 3; [-0.25, 0.5] step 1/4
    # needs 0 int bits; a constant-zero element gets width 0.
    assert int_bits.tolist() == [2, 2, 3, 0, -3]


@pytest.mark.parametrize("mode", [Overflow.WRAP, Overflow.SAT])
def test_overflow_modes(mode):
    # signed, 2 int bits, 0 frac bits: range [-4, 3]
    x = torch.tensor([5.0, -6.0, 3.0, -4.0], dtype=torch.float64)
    f = torch.zeros(4, dtype=torch.float64)
    signed = torch.ones(4, dtype=torch.bool)
    out = apply_overflow(x, f, signed, torch.full((4,), 2.0, dtype=torch.float64), mode)
    expected = {Overflow.WRAP: [-3.0, 2.0, 3.0, -4.0], Overflow.SAT: [3.0, -4.0, 3.0, -4.0]}
    assert out.tolist() == expected[mode]


def test_activation_quantizer_observes_in_training_and_overflows_after_calibration():
    q = ActivationQuantizer(2, init_frac_bits=1.0, overflow=Overflow.WRAP)
    q.train()
    q(torch.tensor([[0.5, -1.0], [1.5, 0.5]]))
    q.calibrate()
    assert q.signed.tolist() == [False, True]
    assert q.int_bits.tolist() == [1.0, 0.0]  # [0, 1.5] in steps of 1/2; [-1, 0.5]
    q.eval()
    out = q(torch.tensor([[2.0, 1.0]]))  # outside the calibrated ranges: wraps
    assert out.tolist() == [[0.0, -1.0]]


def test_weight_bits_surrogate():
    w = torch.tensor([0.75, -0.125, 0.0, 3.0])
    q = WeightQuantizer(w, init_bits=4)
    with torch.no_grad():
        q.frac_bits.fill_(3.0)
    bits = q.bits(q(w))
    # floor(log2|w|) + 1 + f: 0.75 → 0+3, 0.125 → -2+3, 0 → 0, 3 → 2+3
    assert bits.tolist() == [3.0, 1.0, 0.0, 5.0]


def test_bad_quantizer_options():
    with pytest.raises(TypeError, match="round_mode must be a RoundMode"):
        ActivationQuantizer(3, round_mode="RND")
    with pytest.raises(ValueError, match="training rounds with RND, TRN, not RND_CONV"):
        WeightQuantizer(torch.ones(2), round_mode=RoundMode.RND_CONV)
    with pytest.raises(ValueError, match="init_bits must be >= 1"):
        WeightQuantizer(torch.ones(2), init_bits=0)


def test_channel_ranges_give_one_format_per_channel():
    """With channel_ranges, sign and integer bits come from each channel's range over all
    positions: every element of a channel gets the same format, wide enough for all of them."""
    from hgq_rtl.train.quantizers import Granularity

    quantizer = ActivationQuantizer(
        (2, 3, 4), granularity=Granularity.CHANNEL, channel_ranges=True, init_frac_bits=3
    )
    x = torch.zeros(5, 2, 3, 4, dtype=torch.float64)
    x[0, 0, 1, 2] = 5.5  # channel 0: [0, 5.5] → unsigned, 3 integer bits everywhere
    x[1, 1, 2, 3] = -9.0  # channel 1: [-9, 0] → signed, 4 integer bits everywhere
    quantizer.train()
    quantizer(x)
    quantizer.calibrate()
    assert quantizer.signed[0].tolist() == [[False] * 4] * 3
    assert quantizer.signed[1].tolist() == [[True] * 4] * 3
    assert set(quantizer.int_bits[0].flatten().tolist()) == {3.0}
    assert set(quantizer.int_bits[1].flatten().tolist()) == {4.0}
    per_element = ActivationQuantizer((2, 3, 4), granularity=Granularity.CHANNEL)
    per_element.train()
    per_element(x)
    per_element.calibrate()
    assert per_element.int_bits[0, 0, 0] < 3  # without the option: per element, as before


def test_cnn_input_and_conv_outputs_have_one_format_per_channel():
    """build_model's cnn is stream-ready: the frozen input and every convolution output have
    one format per channel, and check 1 still holds exactly."""
    from hgq_rtl.train.config import TrainConfig
    from hgq_rtl.train.freeze import check_frozen, freeze
    from hgq_rtl.train.models import build_model

    torch.manual_seed(0)
    model = build_model(TrainConfig(arch="cnn", channels=(3,), hidden=(8,)), (2, 9, 9), 4)
    x = torch.randn(40, 2, 9, 9).numpy()
    model.train()
    model(torch.tensor(x))
    ir = freeze(model, x)
    assert check_frozen(model, ir, x) == 0

    def per_channel(fmt, channels):
        for field in (fmt.signed, fmt.int_bits, fmt.frac_bits):
            rows = field.reshape(channels, -1)
            assert (rows == rows[:, :1]).all(), field

    per_channel(ir.input, 2)
    per_channel(ir.layers[0].output, 3)
