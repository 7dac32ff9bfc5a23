"""The fused quantizer nodes against the straight-through chains they replace: forward values
bit for bit, gradients to float rounding; the weight-bits cache of a training step; the thread
wait policy set before torch starts."""

from __future__ import annotations

import copy
import math
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from hgq_rtl.ir.fixed import RoundMode
from hgq_rtl.train import threads
from hgq_rtl.train.config import TrainConfig
from hgq_rtl.train.cost import ebops
from hgq_rtl.train.loop import eager_step, make_optimizer
from hgq_rtl.train.models import build_model
from hgq_rtl.train.quantizers import (
    ActivationQuantizer,
    WeightQuantizer,
    ceil_log2,
    floor_ste,
    quantize,
    quantize_with_bits,
    range_int_bits,
    round_ste,
)

# ------------------------------------------------------------------ the chains, as before


def chain_quantize(x, frac_bits, round_mode):
    """``x + (R(x·2^f)·2^-f − x).detach()`` with ``f = round_ste(frac_bits)``, op by op."""
    f = round_ste(frac_bits).to(x.dtype)
    scaled = x * torch.exp2(f)
    rounded = round_ste(scaled) if round_mode is RoundMode.RND else floor_ste(scaled)
    return rounded * torch.exp2(-f)


def chain_weight_bits(w_q, frac_bits):
    magnitude = w_q.abs()
    nonzero = magnitude > 0
    safe = torch.where(nonzero, magnitude, torch.ones_like(magnitude))
    bits = floor_ste(torch.log2(safe)) + 1 + round_ste(frac_bits).to(w_q.dtype)
    return torch.where(nonzero, torch.relu(bits), torch.zeros_like(bits))


def edge_tensor(dtype, generator):
    """Random values plus ties at several scales, zeros, negatives and large magnitudes."""
    base = torch.randn(4, 64, generator=generator, dtype=torch.float64) * 3
    ties = torch.arange(-8, 8, dtype=torch.float64) + 0.5  # ties at f = 0
    edges = torch.cat(
        [ties, ties / 4, ties * 8, torch.tensor([0.0, -0.0, 2.0**20, -(2.0**20), 1e-9, -1e-9])]
    )
    return torch.cat([base.flatten(), edges]).to(dtype)


FRAC = torch.tensor([-3.0, -0.5, 0.0, 0.49, 0.5, 1.5, 2.5, 3.7, 7.0, 12.0])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("mode", [RoundMode.RND, RoundMode.TRN])
@pytest.mark.parametrize("shared", [False, True], ids=["per-element", "shared"])
def test_fused_quantizer_equals_the_chain(dtype, mode, shared):
    generator = torch.Generator().manual_seed(1)
    values = edge_tensor(dtype, generator)
    for f0 in FRAC:
        x = values.clone().requires_grad_(True)
        shape = (1,) if shared else x.shape
        noise = torch.rand(shape, generator=generator) * 0.2 - 0.1
        frac = (f0 + noise).float().requires_grad_(True)
        if f0 in (0.5, 2.5):  # exact ties of the bit count itself
            frac = torch.full(shape, float(f0)).requires_grad_(True)
        x2, frac2 = x.detach().clone().requires_grad_(True), frac.detach().clone().requires_grad_()
        fused = quantize(x, frac, mode)
        chained = chain_quantize(x2, frac2, mode)
        assert torch.equal(fused, chained), f"forward differs at f={f0}"
        weights = torch.randn(x.shape, generator=generator, dtype=dtype)
        (fused * weights).sum().backward()
        (chained * weights).sum().backward()
        assert torch.equal(x.grad, x2.grad)
        assert frac.grad.dtype == frac2.grad.dtype == torch.float32
        # ln2·grad·(x − x_q): the chain gets it as a difference of two products (its rounding
        # error scales with |x|), the fused node from the error itself (and sums in its order)
        terms = (weights.abs() * (x.abs() + fused.abs())).detach().double() * math.log(2)
        scale = terms.sum() if shared else terms
        tolerance = torch.finfo(torch.float32).eps * 64 * scale + 1e-30
        assert ((frac.grad - frac2.grad).abs().double() <= tolerance).all()


def test_fused_quantizer_rejects_what_the_chain_rejected():
    for function in (quantize, quantize_with_bits):
        with pytest.raises(TypeError, match="round_mode must be a RoundMode"):
            function(torch.ones(2), torch.ones(2), "RND")
        with pytest.raises(ValueError, match="training rounds with RND, TRN, not RND_CONV"):
            function(torch.ones(2), torch.ones(2), RoundMode.RND_CONV)


@pytest.mark.parametrize("granularity", ["element", "channel"])
def test_weights_and_their_bits_in_one_node_equal_the_chain(granularity):
    from hgq_rtl.train.quantizers import Granularity

    generator = torch.Generator().manual_seed(2)
    w = torch.randn(16, 8, generator=generator) * 2
    w[0, :4] = torch.tensor([0.0, 2.0**-9, -(2.0**-9), 3.0])  # zero, bits ≤ 0 after rounding
    q = WeightQuantizer(w, init_bits=4, granularity=Granularity(granularity))
    with torch.no_grad():
        q.frac_bits.add_(torch.rand(q.frac_bits.shape, generator=generator) * 4 - 2)
    w1 = w.clone().requires_grad_(True)
    w_q, bits = q.forward_with_bits(w1)
    g1 = torch.autograd.grad((w_q * 0.3).sum() + (bits * 0.7).sum(), [w1, q.frac_bits])
    w2 = w.clone().requires_grad_(True)
    w_q2 = chain_quantize(w2, q.frac_bits, RoundMode.RND)
    w_q3 = chain_quantize(w2, q.frac_bits, RoundMode.RND)  # the old EBOPs recomputed it
    bits2 = chain_weight_bits(w_q3, q.frac_bits)
    g2 = torch.autograd.grad((w_q2 * 0.3).sum() + (bits2 * 0.7).sum(), [w2, q.frac_bits])
    assert torch.equal(w_q, w_q2)
    assert torch.equal(bits, bits2)
    assert torch.equal(bits, q.bits(w_q))
    assert (bits == 0).any() and (bits > 0).any()
    for fused, chained in zip(g1, g2, strict=True):
        torch.testing.assert_close(fused, chained, rtol=1e-5, atol=1e-6)


def test_activation_bits_equal_the_chain():
    generator = torch.Generator().manual_seed(3)
    q = ActivationQuantizer((6, 5), init_frac_bits=3.0)
    with torch.no_grad():
        q.frac_bits.add_(torch.rand(q.frac_bits.shape, generator=generator) * 6 - 3)
    q.train()
    data = torch.randn(40, 6, 5, generator=generator) * 4
    data[:, 0] = 0.0  # only zeros: width 0
    data[:, 1] = data[:, 1].abs()  # unsigned
    q(data)
    with torch.no_grad():
        q.low[2, 0], q.high[2, 0] = float("inf"), float("-inf")  # never observed
    width = q.bits()
    (grad,) = torch.autograd.grad((width * torch.arange(30.0).reshape(6, 5)).sum(), q.frac_bits)
    frac = q.frac_bits.detach().clone().requires_grad_(True)
    signed, int_bits, _ = q.observed_format()
    chained = signed.float() + int_bits + round_ste(frac)
    seen = torch.isfinite(q.low) & ((q.low != 0) | (q.high != 0))
    chained = torch.where(seen, torch.relu(chained), torch.zeros_like(chained))
    (grad2,) = torch.autograd.grad((chained * torch.arange(30.0).reshape(6, 5)).sum(), frac)
    assert torch.equal(width, chained)
    assert torch.equal(grad, grad2)
    assert (width[0] == 0).all() and width[2, 0] == 0


def _ceil_log2_by_python(v: float) -> float:
    if v <= 0:
        return -math.inf
    k = math.floor(math.log2(v)) - 2
    while 2.0**k < v:
        k += 1
    return float(k)


@pytest.mark.parametrize("traced", [False, True], ids=["eager-frexp", "compiled-log2"])
def test_ceil_log2_both_ways_is_exact(monkeypatch, traced):
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: traced)
    generator = torch.Generator().manual_seed(4)
    powers = torch.exp2(torch.arange(-30.0, 31.0, dtype=torch.float64))
    values = torch.cat(
        [
            powers,
            powers * (1 + 2.0**-52),
            powers * (1 - 2.0**-53),
            torch.rand(500, generator=generator, dtype=torch.float64) * 1e4,
            torch.zeros(1, dtype=torch.float64),
        ]
    )
    expected = [_ceil_log2_by_python(v) for v in values.tolist()]
    assert ceil_log2(values).tolist() == expected


def test_range_int_bits_takes_the_larger_side():
    low = torch.tensor([-4.0, -4.0, -5.0, 0.0, -0.0], dtype=torch.float64)
    high = torch.tensor([4.0, 3.5, 1.0, 0.0, 0.0], dtype=torch.float64)
    f = torch.tensor([0.0, 1.0, 0.0, 2.0, 1.0], dtype=torch.float64)
    signed, int_bits = range_int_bits(low, high, f)
    # 4 + 1 needs 3 int bits; [-4, 3.5] in halves fits 2; -5 needs 3; zeros: -f
    assert int_bits.tolist() == [3.0, 2.0, 3.0, -2.0, -1.0]
    assert signed.tolist() == [True, True, True, False, False]


# ------------------------------------------------------------------ the training step


def test_step_reuses_the_forwards_weight_bits_only_while_valid():
    config = TrainConfig(hidden=(8,))
    torch.manual_seed(0)
    model = build_model(config, (6,), 3)
    optimizer = make_optimizer(model, config)
    x, y = torch.randn(32, 6), torch.randint(0, 3, (32,))
    model.train()
    model(x)
    copied = copy.deepcopy(model)  # a training forward leaves nothing un-copyable behind
    assert torch.equal(ebops(model).detach(), ebops(copied).detach())
    step = eager_step(model, optimizer, F.cross_entropy, config.gamma)
    for _ in range(3):
        step(x, y, 1e-4)
    model(x)  # caches the bits of these weights ...
    with torch.no_grad():
        model[1].weight.mul_(1.7)  # ... which then change
        model[1].weight_quantizer.frac_bits.add_(1.0)
    fresh = copy.deepcopy(model)
    assert torch.equal(ebops(model).detach(), ebops(fresh).detach())


def test_fused_adam_and_clamp_keep_bits_in_range():
    config = TrainConfig(hidden=(8,), bits_learning_rate=50.0)
    torch.manual_seed(0)
    model = build_model(config, (6,), 3)
    optimizer = make_optimizer(model, config)
    assert optimizer.defaults["fused"]
    step = eager_step(model, optimizer, F.cross_entropy, config.gamma)
    x, y = torch.randn(32, 6), torch.randint(0, 3, (32,))
    model.train()
    for _ in range(5):
        loss, task = step(x, y, 1.0)
        assert loss.requires_grad is False and torch.isfinite(loss)
    bits = torch.cat([p.flatten() for n, p in model.named_parameters() if "frac_bits" in n])
    assert bits.min() >= -16 and bits.max() <= 24 and (bits == -16).any()


# ------------------------------------------------------------------ threads


def _environment_after_import(env: dict) -> str:
    code = (
        "import os, hgq_rtl.train, torch; "
        "print(os.environ.get('OMP_WAIT_POLICY'), hgq_rtl.train.threads.spin_warning(2) is None)"
    )
    clean = {k: v for k, v in os.environ.items() if k not in threads.PASSIVE_WAITING}
    done = subprocess.run(
        [sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_importing_the_trainer_first_makes_threads_wait_passively():
    assert _environment_after_import({}) == "PASSIVE True"


def test_a_users_wait_policy_is_kept_and_warned_about():
    assert _environment_after_import({"OMP_WAIT_POLICY": "ACTIVE"}) == "ACTIVE False"
    assert threads.spin_warning(1) is None
