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


_LN2 = 0.6931471805599453


def _rounded(frac_bits: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The fractional bits the forward uses: ``floor(f + 1/2)`` (what :func:`round_ste` gives)."""
    return torch.floor(frac_bits + 0.5).to(dtype)


def _quantize_values(x: torch.Tensor, frac_bits: torch.Tensor, trn: bool) -> torch.Tensor:
    """``R(x * 2**f) * 2**-f`` for integer-valued ``frac_bits`` of ``x``'s dtype (no autograd)."""
    y = x * torch.exp2(frac_bits)
    if not trn:
        y = y.add_(0.5)
    return y.floor_().mul_(torch.exp2(-frac_bits))  # exact: a power of two


class _Quantize(torch.autograd.Function):
    """``R(x * 2**round(f)) * 2**-round(f)`` and its gradients as one autograd node.

    Forward: the same values as ``quantize(x, round_ste(f))`` written as the straight-through
    chain, in one pass over ``x``. Backward: ``d/dx = grad`` and
    ``d/df = -ln2 * Σ grad * (x_q - x)`` over the axes along which ``f`` was broadcast (both
    roundings straight-through, HGQ's gradients). Written with ``setup_context`` so that
    ``torch.func.grad`` (the compiled step) can differentiate it too.
    """

    @staticmethod
    def forward(x: torch.Tensor, frac_bits: torch.Tensor, trn: bool) -> torch.Tensor:
        return _quantize_values(x, _rounded(frac_bits, x.dtype), trn)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        x, frac_bits, _ = inputs
        if ctx.needs_input_grad[1]:
            ctx.save_for_backward(x, output)
        ctx.frac_shape, ctx.frac_dtype = frac_bits.shape, frac_bits.dtype

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        grad_frac = None
        if ctx.needs_input_grad[1]:
            x, out = ctx.saved_tensors
            error = grad * (out - x)
            grad_frac = _sum_to(error, ctx.frac_shape).mul_(-_LN2).to(ctx.frac_dtype)
        return grad, grad_frac, None


def _weight_bits(out: torch.Tensor, f: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """``(bits, active, safe)`` of quantized weights ``out`` with rounded fractional bits ``f``:
    the bits, where they are positive (and the weight nonzero), and ``|out|`` with 1 for 0."""
    magnitude = out.abs()
    nonzero = magnitude > 0
    safe = torch.where(nonzero, magnitude, torch.ones_like(magnitude))
    bits = torch.floor(torch.log2(safe)).add_(1).add_(f)
    active = nonzero & (bits > 0)
    return torch.where(active, bits, torch.zeros_like(bits)), active, safe


class _QuantizeWithBits(torch.autograd.Function):
    """A weight's quantized values and bits ``relu(floor(log2|w_q|) + 1 + round(f))`` (0 where
    ``w_q == 0``) as one autograd node: what the layer's forward and its EBOPs both need,
    computed once.

    The gradients are those of the straight-through chain: ``bits`` reaches ``w_q`` through
    ``d log2|w_q| / d w_q = sign(w_q) / (|w_q| ln2)`` (floor straight through) where the bits
    are positive, and ``f`` directly with 1; ``w_q`` reaches ``w`` with 1 and ``f`` with
    ``-ln2 * (w_q - w)``.
    """

    @staticmethod
    def forward(w: torch.Tensor, frac_bits: torch.Tensor, trn: bool):
        f = _rounded(frac_bits, w.dtype)
        out = _quantize_values(w, f, trn)
        return out, _weight_bits(out, f)[0]

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        w, frac_bits, _ = inputs
        ctx.save_for_backward(w, frac_bits, output[0])
        ctx.frac_shape, ctx.frac_dtype = frac_bits.shape, frac_bits.dtype

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor, grad_bits: torch.Tensor):
        w, frac_bits, out = ctx.saved_tensors
        _, active, safe = _weight_bits(out, _rounded(frac_bits, w.dtype))
        bits_term = torch.where(active, grad_bits, torch.zeros_like(grad_bits))
        grad_w = grad_out + bits_term / (safe * _LN2) * torch.sgn(out)
        grad_frac = None
        if ctx.needs_input_grad[1]:
            grad_frac = _sum_to(grad_w * (out - w), ctx.frac_shape).mul_(-_LN2)
            grad_frac = grad_frac.add_(_sum_to(bits_term, ctx.frac_shape)).to(ctx.frac_dtype)
        return grad_w, grad_frac, None


class _Width(torch.autograd.Function):
    """``relu(base + round(f))`` where ``seen`` (else 0), gradient 1 to ``f`` where positive."""

    @staticmethod
    def forward(frac_bits: torch.Tensor, base: torch.Tensor, seen: torch.Tensor):
        width = base + _rounded(frac_bits, base.dtype)
        return torch.where(seen & (width > 0), width, torch.zeros_like(width))

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        frac_bits = inputs[0]
        ctx.save_for_backward(output)
        ctx.frac_shape, ctx.frac_dtype = frac_bits.shape, frac_bits.dtype

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (width,) = ctx.saved_tensors
        kept = torch.where(width > 0, grad, torch.zeros_like(grad))
        return _sum_to(kept, ctx.frac_shape).to(ctx.frac_dtype), None, None


def _sum_to(values: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Sum ``values`` over the axes along which a tensor of ``shape`` was broadcast to it."""
    lead = values.dim() - len(shape)
    axes = list(range(lead)) + [
        lead + k for k, size in enumerate(shape) if size == 1 and values.shape[lead + k] != 1
    ]
    return values.sum(dim=axes, keepdim=True).reshape(shape) if axes else values


def _check_round_mode(round_mode: RoundMode) -> None:
    if not isinstance(round_mode, RoundMode):
        raise TypeError(f"round_mode must be a RoundMode, not {round_mode!r}")
    if round_mode not in _ROUNDERS:  # RND_CONV: models imported from QONNX/HGQ2 only
        trained = ", ".join(mode.value for mode in _ROUNDERS)
        raise ValueError(f"training rounds with {trained}, not {round_mode.value}")


def _chain_quantize(x: torch.Tensor, frac_bits: torch.Tensor, round_mode: RoundMode):
    """:func:`quantize` as the straight-through chain of plain operations (what
    ``torch.compile`` traces: inductor fuses and differentiates it itself)."""
    f = round_ste(frac_bits).to(x.dtype)
    return _ROUNDERS[round_mode](x * torch.exp2(f)) * torch.exp2(-f)


def _chain_weight_bits(w_q: torch.Tensor, frac_bits: torch.Tensor) -> torch.Tensor:
    """``relu(floor(log2|w_q|) + 1 + round(f))``, 0 for 0, as a straight-through chain."""
    magnitude = w_q.abs()
    nonzero = magnitude > 0
    safe = torch.where(nonzero, magnitude, torch.ones_like(magnitude))
    bits = floor_ste(torch.log2(safe)) + 1 + round_ste(frac_bits).to(w_q.dtype)
    return torch.where(nonzero, torch.relu(bits), torch.zeros_like(bits))


def quantize(x: torch.Tensor, frac_bits: torch.Tensor, round_mode: RoundMode) -> torch.Tensor:
    """``R(x * 2**f) * 2**-f`` with straight-through gradients: ``d/dx = 1`` and
    ``d/df = -ln2 * (x_q - x)``.

    ``frac_bits`` are rounded half up to integers first (straight through, as
    :func:`round_ste` does), so a learnable parameter can be passed as it is. Eager, one fused
    autograd node; traced by ``torch.compile``, the equivalent chain of plain operations.
    """
    _check_round_mode(round_mode)
    if torch.compiler.is_compiling():
        return _chain_quantize(x, frac_bits, round_mode)
    return _Quantize.apply(x, frac_bits, round_mode is RoundMode.TRN)


def quantize_with_bits(
    w: torch.Tensor, frac_bits: torch.Tensor, round_mode: RoundMode
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(quantize(w, frac_bits, round_mode), bits)`` with the bits of every quantized value,
    ``relu(floor(log2|w_q|) + 1 + round(f))`` and 0 for 0, in one pass (see
    :meth:`WeightQuantizer.bits`)."""
    _check_round_mode(round_mode)
    if torch.compiler.is_compiling():
        w_q = _chain_quantize(w, frac_bits, round_mode)
        return w_q, _chain_weight_bits(w_q, frac_bits)
    return _QuantizeWithBits.apply(w, frac_bits, round_mode is RoundMode.TRN)


def ceil_log2(values: torch.Tensor) -> torch.Tensor:
    """Exact ``ceil(log2(v))`` for positive ``v`` (``-inf`` where ``v == 0``), no gradient.

    Eager: from ``torch.frexp`` (``v = m * 2**e`` with ``m`` in ``[1/2, 1)``: ``e``, or
    ``e - 1`` when ``m == 1/2``). Traced by ``torch.compile`` (inductor's C++ backend cannot
    compile ``frexp`` in float64 kernels): ``log2`` is within one of the answer, and two
    comparisons with exact powers of two correct it.
    """
    if torch.compiler.is_compiling():
        guess = torch.ceil(torch.log2(values))
        guess = torch.where(torch.exp2(guess - 1) >= values, guess - 1, guess)
        guess = torch.where(torch.exp2(guess) < values, guess + 1, guess)
    else:
        mantissa, exponent = torch.frexp(values)
        guess = exponent.to(values.dtype) - (mantissa == 0.5).to(values.dtype)
    return torch.where(values > 0, guess, torch.full_like(values, float("-inf")))


def range_int_bits(
    low: torch.Tensor, high: torch.Tensor, frac_bits: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sign and integer bits that hold every quantized value in ``[low, high]`` exactly.

    ``int_bits = max(ceil(log2|low|), ceil(log2(high + 2**-f)))`` (each term only where
    ``low < 0``, resp. ``high > 0``) and ``signed = low < 0``. ``ceil_log2`` grows with its
    argument, so this is ``ceil_log2`` of the larger argument: one evaluation. An element that
    was only ever 0 gets ``int_bits = -f``: width 0, the constant 0.
    """
    signed = low < 0
    below = torch.clamp_min(-low, 0)
    above = torch.where(high > 0, high + torch.exp2(-frac_bits), torch.zeros_like(high))
    int_bits = ceil_log2(torch.maximum(below, above))
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
        _check_round_mode(round_mode)
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
        return quantize(weight, self.frac_bits, self.round_mode)

    def forward_with_bits(self, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(self(weight), self.bits(self(weight)))`` computed together (one autograd node)."""
        return quantize_with_bits(weight, self.frac_bits, self.round_mode)

    def bits(self, weight_q: torch.Tensor) -> torch.Tensor:
        """Differentiable bit count per element: ``relu(floor(log2|w_q|) + 1 + f)``; 0 for 0."""
        return _chain_weight_bits(weight_q, self.frac_bits)


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
        _check_round_mode(round_mode)
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
        x_q = quantize(x, self.frac_bits, self.round_mode)
        if self.training or self.observing:
            self._observe(x_q.detach())
        elif bool(self.calibrated):
            frac_bits = _rounded(self.frac_bits.detach(), x_q.dtype)
            x_q = apply_overflow(
                x_q, frac_bits, self.signed, self.int_bits.to(x_q.dtype), self.overflow
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
        low = torch.nan_to_num(low.double(), posinf=0.0, neginf=0.0)  # never observed: 0
        high = torch.nan_to_num(high.double(), posinf=0.0, neginf=0.0)
        signed, int_bits = range_int_bits(low, high, frac_bits.double())
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
        with torch.no_grad():
            signed, int_bits, _ = self.observed_format()
            base = signed.to(self.frac_bits.dtype) + int_bits
            seen = (self.low < 0) | (self.high > 0)  # observed, and not only zeros
        if torch.compiler.is_compiling():
            width = torch.relu(base + round_ste(self.frac_bits))
            return torch.where(seen, width, torch.zeros_like(width))
        return _Width.apply(self.frac_bits, base, seen)


def clamp_frac_bits(module: nn.Module) -> None:
    """Keep every quantizer's fractional bits inside :data:`FRAC_BITS_LIMITS` (after a step)."""
    with torch.no_grad():
        for sub in module.modules():
            if isinstance(sub, WeightQuantizer | ActivationQuantizer):
                sub.frac_bits.clamp_(*FRAC_BITS_LIMITS)
