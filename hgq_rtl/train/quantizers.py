"""HGQ quantizers: one learnable number of fractional bits per element.

Forward: ``x_q = R(x * 2**f) * 2**-f`` with ``f = round(f_real)``. Both roundings are
straight-through (``y + (R(y) - y).detach()``), which gives exactly HGQ's gradients:
``d x_q / d x = 1`` and ``d x_q / d f = -ln2 * (x_q - x)``.
"""

from __future__ import annotations

from enum import Enum

import torch
from torch import nn

from ..ir.fixed import Overflow, RoundMode

#: Fractional bits are kept inside this range during training (see :func:`clamp_frac_bits`).
FRAC_BITS_LIMITS = (-16.0, 24.0)


class Granularity(Enum):
    """How many learnable fractional-bit counts a quantizer has.

    The first axis of a shape is its channel axis (output channels of a weight, channels or
    features of a data sample). Sign and integer bits of data stay per element whatever the
    granularity: they come from each element's observed range, which costs nothing to learn.
    """

    #: One per element: HGQ's default and finest choice.
    ELEMENT = "element"
    #: One per channel, shared along the other axes.
    CHANNEL = "channel"
    #: One for the whole tensor.
    TENSOR = "tensor"


def granular_shape(shape: tuple[int, ...], granularity: Granularity) -> tuple[int, ...]:
    """Shape of the fractional-bit parameter of a tensor of ``shape`` (broadcastable to it)."""
    if not isinstance(granularity, Granularity):
        raise TypeError(f"granularity must be a Granularity, not {granularity!r}")
    if granularity is Granularity.ELEMENT or not shape:
        return tuple(shape)
    if granularity is Granularity.CHANNEL:
        return (shape[0],) + (1,) * (len(shape) - 1)
    return (1,) * len(shape)


def round_ste(y: torch.Tensor) -> torch.Tensor:
    """Round half up (``floor(y + 1/2)``) forward, identity backward."""
    return y + (torch.floor(y + 0.5) - y).detach()


def floor_ste(y: torch.Tensor) -> torch.Tensor:
    """Floor forward, identity backward."""
    return y + (torch.floor(y) - y).detach()


_ROUNDERS = {RoundMode.RND: round_ste, RoundMode.TRN: floor_ste}


class _Quantize(torch.autograd.Function):
    """``R(x * 2**f) * 2**-f`` in one node: HGQ's gradients without the autograd graph of the
    straight-through expression (fewer passes over activations, less memory)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, frac_bits: torch.Tensor, trn: bool) -> torch.Tensor:
        scale = torch.exp2(frac_bits)
        y = x * scale
        if not trn:
            y = y.add_(0.5)
        out = y.floor_().mul_(torch.exp2(-frac_bits))  # exact: a power of two
        if ctx.needs_input_grad[1]:
            ctx.save_for_backward(out - x)
        ctx.frac_shape = frac_bits.shape
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        grad_frac = None
        if ctx.needs_input_grad[1]:
            (error,) = ctx.saved_tensors
            grad_frac = _sum_to(grad * error, ctx.frac_shape).mul_(-_LN2)
        return grad, grad_frac, None


_LN2 = 0.6931471805599453


def _sum_to(values: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Sum ``values`` over the axes along which a tensor of ``shape`` was broadcast to it."""
    lead = values.dim() - len(shape)
    axes = list(range(lead)) + [
        lead + k for k, size in enumerate(shape) if size == 1 and values.shape[lead + k] != 1
    ]
    return values.sum(dim=axes, keepdim=True).reshape(shape) if axes else values


def quantize(x: torch.Tensor, frac_bits: torch.Tensor, round_mode: RoundMode) -> torch.Tensor:
    """``R(x * 2**f) * 2**-f`` with straight-through gradients: ``d/dx = 1`` and
    ``d/df = -ln2 * (x_q - x)``.

    ``frac_bits`` must already be integer-valued (use :func:`round_ste` on the parameter).
    """
    if round_mode not in _ROUNDERS:
        raise ValueError(f"round_mode must be a RoundMode, not {round_mode!r}")
    return _Quantize.apply(x, frac_bits.to(x.dtype), round_mode is RoundMode.TRN)


def ceil_log2(values: torch.Tensor) -> torch.Tensor:
    """Exact ``ceil(log2(v))`` for positive ``v`` (``-inf`` where ``v == 0``), no gradient.

    ``log2`` is within one of the answer; two comparisons with exact powers of two correct it.
    (Not ``torch.frexp``: inductor's C++ backend cannot compile it in float64 kernels.)
    """
    guess = torch.ceil(torch.log2(values))
    guess = torch.where(torch.exp2(guess - 1) >= values, guess - 1, guess)
    guess = torch.where(torch.exp2(guess) < values, guess + 1, guess)
    return torch.where(values > 0, guess, torch.full_like(values, float("-inf")))


def range_int_bits(
    low: torch.Tensor, high: torch.Tensor, frac_bits: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sign and integer bits that hold every quantized value in ``[low, high]`` exactly.

    ``int_bits = max(ceil(log2|low|), ceil(log2(high + 2**-f)))`` and ``signed = low < 0``.
    An element that was only ever 0 gets ``int_bits = -f``: width 0, the constant 0.
    """
    signed = low < 0
    neg = torch.where(signed, ceil_log2(-low), torch.full_like(low, float("-inf")))
    pos = torch.where(
        high > 0, ceil_log2(high + torch.exp2(-frac_bits)), torch.full_like(high, float("-inf"))
    )
    int_bits = torch.maximum(neg, pos)
    int_bits = torch.where(torch.isinf(int_bits), -frac_bits, int_bits)
    return signed, int_bits


def apply_overflow(
    x_q: torch.Tensor,
    frac_bits: torch.Tensor,
    signed: torch.Tensor,
    int_bits: torch.Tensor,
    mode: Overflow,
) -> torch.Tensor:
    """Wrap or saturate quantized values into ``(signed, int_bits, frac_bits)``.

    The result's gradient passes straight through (overflow only happens on data that the
    calibration did not see).
    """
    width = signed.to(x_q.dtype) + int_bits + frac_bits
    scale = torch.exp2(frac_bits)
    m = x_q * scale
    lo = torch.where(signed, -torch.exp2(width - 1), torch.zeros_like(width))
    hi = torch.where(signed, torch.exp2(width - 1), torch.exp2(width)) - 1
    if mode is Overflow.SAT:
        out = torch.minimum(torch.maximum(m, lo), hi)
    else:
        out = torch.remainder(m - lo, torch.exp2(width)) + lo
    out = torch.where(width > 0, out, torch.zeros_like(out))
    return x_q + (out / scale - x_q).detach()


class WeightQuantizer(nn.Module):
    """Per-element fractional bits for a constant tensor; integer bits follow from each value."""

    def __init__(
        self,
        weight: torch.Tensor,
        *,
        init_bits: int = 8,
        round_mode: RoundMode = RoundMode.RND,
        granularity: Granularity = Granularity.ELEMENT,
        channel_ranges: bool = False,
    ) -> None:
        super().__init__()
        if not isinstance(round_mode, RoundMode):
            raise TypeError(f"round_mode must be a RoundMode, not {round_mode!r}")
        if not isinstance(channel_ranges, bool):
            raise TypeError(f"channel_ranges must be True or False, not {channel_ranges!r}")
        if init_bits < 1:
            raise ValueError(f"init_bits must be >= 1, not {init_bits}")
        self.round_mode = round_mode
        self.granularity = granularity
        shape = granular_shape(tuple(weight.shape), granularity)
        with torch.no_grad():
            magnitude = weight.detach().abs().clamp_min(2.0**-12)
            int_bits = torch.floor(torch.log2(magnitude)) + 1
            init = (init_bits - int_bits).clamp(*FRAC_BITS_LIMITS)
            # a shared count starts where the group's largest weight keeps init_bits bits
            reduce = [axis for axis, size in enumerate(shape) if size == 1 < weight.shape[axis]]
            if reduce:
                init = init.amin(dim=reduce, keepdim=True)
        self.frac_bits = nn.Parameter(init.to(torch.float32).reshape(shape))

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return quantize(weight, round_ste(self.frac_bits), self.round_mode)

    def bits(self, weight_q: torch.Tensor) -> torch.Tensor:
        """Differentiable bit count per element: ``relu(floor(log2|w_q|) + 1 + f)``; 0 for 0."""
        magnitude = weight_q.abs()
        nonzero = magnitude > 0
        safe = torch.where(nonzero, magnitude, torch.ones_like(magnitude))
        bits = floor_ste(torch.log2(safe)) + 1 + round_ste(self.frac_bits)
        return torch.where(nonzero, torch.relu(bits), torch.zeros_like(bits))


class ActivationQuantizer(nn.Module):
    """Per-element fractional bits for a data tensor; sign and integer bits from observed ranges.

    In training mode, the running min/max of the quantized values are recorded (reset each
    epoch with :meth:`reset_ranges`). :meth:`calibrate` fixes sign and integer bits from the
    recorded ranges; from then on, eval-mode forwards apply the overflow mode, exactly like the
    hardware does.

    ``channel_ranges=True`` takes sign and integer bits per channel (dimension 0) from the
    channel's range over all positions instead of per element: a streaming design computes every
    position of a channel on one datapath, which needs one format per channel (with
    ``Granularity.CHANNEL`` fractional bits).
    """

    def __init__(
        self,
        shape: tuple[int, ...] | int,
        *,
        init_frac_bits: float = 6.0,
        round_mode: RoundMode = RoundMode.RND,
        overflow: Overflow = Overflow.WRAP,
        granularity: Granularity = Granularity.ELEMENT,
        channel_ranges: bool = False,
    ) -> None:
        super().__init__()
        if not isinstance(round_mode, RoundMode):
            raise TypeError(f"round_mode must be a RoundMode, not {round_mode!r}")
        if not isinstance(channel_ranges, bool):
            raise TypeError(f"channel_ranges must be True or False, not {channel_ranges!r}")
        if not isinstance(overflow, Overflow):
            raise TypeError(f"overflow must be an Overflow, not {overflow!r}")
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        if not shape or any(not isinstance(d, int) or d < 1 for d in shape):
            raise ValueError(f"shape must hold positive integers, not {shape}")
        self.shape = shape
        self.round_mode = round_mode
        self.overflow = overflow
        self.granularity = granularity
        self.channel_ranges = channel_ranges
        self.frac_bits = nn.Parameter(
            torch.full(granular_shape(shape, granularity), float(init_frac_bits))
        )
        self.register_buffer("low", torch.full(shape, float("inf")))
        self.register_buffer("high", torch.full(shape, float("-inf")))
        self.register_buffer("calibrated", torch.tensor(False))
        self.register_buffer("signed", torch.zeros(shape, dtype=torch.bool))
        self.register_buffer("int_bits", torch.zeros(shape))
        self.observing = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        frac_bits = round_ste(self.frac_bits)
        x_q = quantize(x, frac_bits, self.round_mode)
        if self.training or self.observing:
            self._observe(x_q.detach())
        elif bool(self.calibrated):
            x_q = apply_overflow(
                x_q, frac_bits.detach(), self.signed, self.int_bits.to(x_q.dtype), self.overflow
            )
        return x_q

    @torch.no_grad()
    def _observe(self, x_q: torch.Tensor) -> None:
        flat = x_q.reshape(-1, *self.low.shape)  # amin and amax beat aminmax several times
        torch.minimum(self.low, flat.amin(dim=0).to(self.low.dtype), out=self.low)
        torch.maximum(self.high, flat.amax(dim=0).to(self.high.dtype), out=self.high)

    @torch.no_grad()
    def reset_ranges(self) -> None:
        """Forget the observed ranges (the trainer calls this at the start of every epoch)."""
        self.low.fill_(float("inf"))
        self.high.fill_(float("-inf"))

    def element_frac_bits(self) -> torch.Tensor:
        """Rounded fractional bits of every element (the shared counts broadcast), no gradient."""
        return torch.floor(self.frac_bits.detach() + 0.5).expand(self.shape)

    def observed_format(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(signed, int_bits, frac_bits)`` covering the ranges observed so far (no gradient)."""
        frac_bits = self.element_frac_bits()
        low, high = self.low, self.high
        if self.channel_ranges and low.dim() > 1:
            positions = tuple(range(1, low.dim()))
            low = low.amin(dim=positions, keepdim=True).expand(low.shape)
            high = high.amax(dim=positions, keepdim=True).expand(high.shape)
        low = torch.where(torch.isinf(low), torch.zeros_like(low), low)
        high = torch.where(torch.isinf(high), torch.zeros_like(high), high)
        signed, int_bits = range_int_bits(low.double(), high.double(), frac_bits.double())
        return signed, int_bits.to(frac_bits.dtype), frac_bits

    @torch.no_grad()
    def calibrate(self) -> None:
        """Fix sign and integer bits from the observed ranges; eval forwards then overflow."""
        signed, int_bits, _ = self.observed_format()
        self.signed.copy_(signed)
        self.int_bits.copy_(int_bits)
        self.calibrated.fill_(True)

    def bits(self) -> torch.Tensor:
        """Differentiable width per element, ``relu(signed + int_bits + f)``.

        Sign and integer bits come from the observed ranges (no gradient), ``f`` carries the
        gradient.
        """
        signed, int_bits, _ = self.observed_format()
        frac_bits = round_ste(self.frac_bits)
        width = signed.to(frac_bits.dtype) + int_bits + frac_bits
        seen = torch.isfinite(self.low) & ((self.low != 0) | (self.high != 0))
        return torch.where(seen, torch.relu(width), torch.zeros_like(width))


def clamp_frac_bits(module: nn.Module) -> None:
    """Keep every quantizer's fractional bits inside :data:`FRAC_BITS_LIMITS` (after a step)."""
    with torch.no_grad():
        for sub in module.modules():
            if isinstance(sub, WeightQuantizer | ActivationQuantizer):
                sub.frac_bits.clamp_(*FRAC_BITS_LIMITS)
