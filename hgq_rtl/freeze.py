"""Freezing a trained HGQ network into the integer IR, and check 1 (torch == reference)."""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from .ir import reference
from .ir.model import DenseLayer, IRModel, TensorFormat, accumulator_range
from .layers import QActivation, QInput, QLinear
from .quantizers import ActivationQuantizer

#: Widest accumulator for which the float64 torch forward is exact (check 1).
FLOAT64_EXACT_BITS = 53


def _float64_copy(model: nn.Sequential) -> nn.Sequential:
    return copy.deepcopy(model).double().eval()


def calibrate(model: nn.Sequential, x: np.ndarray | torch.Tensor, batch_size: int = 4096) -> None:
    """Fix every activation quantizer's sign and integer bits from ranges seen on ``x``.

    Runs the model in float64 (exactly what the integer reference computes) over ``x`` and
    records each element's min/max; afterwards eval-mode forwards apply the overflow modes.
    """
    quantizers = [m for m in model.modules() if isinstance(m, ActivationQuantizer)]
    dtype = next(model.parameters()).dtype
    was_training = model.training
    model.double().eval()
    try:
        for q in quantizers:
            q.reset_ranges()
            q.calibrated.fill_(False)
            q.observing = True
        data = torch.as_tensor(np.asarray(x), dtype=torch.float64)
        with torch.no_grad():
            for start in range(0, len(data), batch_size):
                model(data[start : start + batch_size])
        for q in quantizers:
            q.calibrate()
    finally:
        for q in quantizers:
            q.observing = False
        model.to(dtype)
        model.train(was_training)


def _format(quantizer: ActivationQuantizer) -> TensorFormat:
    frac_bits = torch.floor(quantizer.frac_bits.detach().double() + 0.5)
    return TensorFormat(
        quantizer.signed.cpu().numpy(),
        quantizer.int_bits.detach().cpu().double().numpy(),
        frac_bits.cpu().numpy(),
    )


def _integers(values: torch.Tensor, frac_bits: torch.Tensor, what: str) -> tuple:
    values = values.detach().double().cpu()
    frac = torch.floor(frac_bits.detach().double().cpu() + 0.5)
    scaled = torch.ldexp(values, frac)
    if not torch.all(torch.isfinite(scaled)):
        raise ValueError(f"{what} contains NaN or inf")
    if scaled.abs().max() >= 2.0**40:
        raise ValueError(f"{what} has integers beyond 40 bits: reduce its fractional bits")
    return scaled.numpy().astype(np.int64), frac.numpy().astype(np.int64)


def _dense(name: str, linear: QLinear, activation: QActivation) -> DenseLayer:
    weight, weight_frac = _integers(
        linear.quantized_weight(), linear.weight_quantizer.frac_bits, f"{name}.weight"
    )
    n_out = linear.out_features
    if linear.bias is None:
        bias, bias_frac = np.zeros(n_out, np.int64), np.zeros(n_out, np.int64)
    else:
        bias, bias_frac = _integers(
            linear.quantized_bias(), linear.bias_quantizer.frac_bits, f"{name}.bias"
        )
    if activation.features != n_out:
        raise ValueError(
            f"{name}: QActivation has {activation.features} features, QLinear {n_out} outputs"
        )
    return DenseLayer(
        name=name,
        weight=weight,
        weight_frac_bits=weight_frac,
        bias=bias,
        bias_frac_bits=bias_frac,
        output=_format(activation.quantizer),
        activation=activation.activation,
        round_mode=activation.quantizer.round_mode,
        overflow=activation.quantizer.overflow,
    )


#: Which torch module starts which IR layer, and how many modules it consumes.
CONVERTERS: dict[type, tuple[int, Callable[..., DenseLayer]]] = {
    QLinear: (2, _dense),
}


def _check_finite(model: nn.Module) -> None:
    for name, tensor in list(model.named_parameters()) + list(model.named_buffers()):
        if tensor.is_floating_point() and name.split(".")[-1] not in ("low", "high"):
            if not torch.all(torch.isfinite(tensor)):
                raise ValueError(f"parameter {name} contains NaN or inf")


def _layer_groups(modules: list[nn.Module]) -> list[tuple[Callable[..., DenseLayer], list]]:
    """Split the modules after ``QInput`` into converter groups, or say what is unsupported."""
    groups = []
    position = 1
    while position < len(modules):
        module = modules[position]
        entry = CONVERTERS.get(type(module))
        if entry is None:
            raise ValueError(
                f"unsupported layer {type(module).__name__} at position {position}: "
                f"supported are {', '.join(t.__name__ for t in CONVERTERS)} (+ QActivation)"
            )
        count, convert = entry
        group = modules[position : position + count]
        if len(group) < count or not isinstance(group[-1], QActivation):
            raise ValueError(f"{type(module).__name__} at position {position} needs a QActivation")
        groups.append((convert, group))
        position += count
    return groups


def freeze(
    model: nn.Sequential,
    calibration_data: np.ndarray | torch.Tensor,
    *,
    name: str = "model",
    metadata: dict | None = None,
) -> IRModel:
    """Calibrate ``model`` on ``calibration_data`` and return its frozen integer model.

    The model must be an ``nn.Sequential`` of ``QInput`` followed by ``QLinear``/``QActivation``
    pairs. Calibration happens in place (eval forwards of ``model`` then apply overflow exactly
    like the hardware); the returned IR is independent of torch.

    Raises
    ------
    ValueError
        For an unsupported layer, NaN/inf parameters, empty calibration data, or widths the
        reference cannot hold exactly.
    """
    if not isinstance(model, nn.Sequential):
        raise TypeError(f"model must be an nn.Sequential, not {type(model).__name__}")
    modules = list(model)
    if not modules or not isinstance(modules[0], QInput):
        raise ValueError("the model must start with a QInput layer")
    if len(calibration_data) == 0:
        raise ValueError("calibration_data is empty")
    groups = _layer_groups(modules)
    _check_finite(model)
    calibrate(model, calibration_data)
    layers = [convert(f"dense_{k}", *group) for k, (convert, group) in enumerate(groups)]
    if not layers:
        raise ValueError("the model has no QLinear layer")
    return IRModel(
        name=name,
        input=_format(modules[0].quantizer),
        layers=tuple(layers),
        input_overflow=modules[0].quantizer.overflow,
        metadata=dict(metadata or {}),
    )


def torch_integers(model: nn.Sequential, x: np.ndarray | torch.Tensor) -> np.ndarray:
    """The calibrated model's eval forward in float64, as output integers (``x_q * 2**f``)."""
    exact = _float64_copy(model)
    last = exact[-1]
    if not isinstance(last, QActivation):
        raise ValueError("the model must end with a QActivation")
    with torch.no_grad():
        out = exact(torch.as_tensor(np.asarray(x), dtype=torch.float64))
        frac = torch.floor(last.quantizer.frac_bits + 0.5)
        scaled = torch.ldexp(out, frac)
    if not torch.equal(scaled, torch.round(scaled)):
        raise AssertionError("torch outputs are not on their fixed-point grid")
    return scaled.numpy().astype(np.int64)


def check_frozen(model: nn.Sequential, ir: IRModel, x: np.ndarray) -> int:
    """Check 1: number of samples where the torch forward (float64) differs from the reference.

    Raises ``ValueError`` when an accumulator is too wide for float64 to be exact.
    """
    widest = max_accumulator_bits(ir)
    if widest > FLOAT64_EXACT_BITS:
        raise ValueError(
            f"an accumulator needs {widest} bits: float64 is exact only up to {FLOAT64_EXACT_BITS}"
        )
    expected = reference.run(ir, reference.quantize_input(ir, x))
    actual = torch_integers(model, x)
    return int(np.any(expected != actual, axis=1).sum())


def max_accumulator_bits(ir: IRModel) -> int:
    """Widest accumulator of the model over all inputs of its formats (sign included)."""
    widest = 0
    for layer, fmt in zip(ir.layers, ir.input_formats(), strict=True):
        los, his = accumulator_range(layer, fmt)
        for lo, hi in zip(los, his, strict=True):
            widest = max(widest, max((-lo).bit_length(), hi.bit_length()) + 1)
    return widest
