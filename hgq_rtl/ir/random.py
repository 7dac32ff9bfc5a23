"""Random IR models for tests, fuzzing and benchmarks (numpy only)."""

from __future__ import annotations

import numpy as np

from .fixed import Activation, Overflow, RoundMode
from .model import DenseLayer, IRModel, TensorFormat


def random_format(rng: np.random.Generator, size: int, *, max_width: int = 10) -> TensorFormat:
    """Per-element formats with widths 0..max_width, either sign, and shifted binary points."""
    signed = rng.random(size) < 0.5
    width = rng.integers(0, max_width + 1, size)
    width = np.maximum(width, signed.astype(np.int64))
    frac_bits = rng.integers(-2, 6, size)
    int_bits = width - signed - frac_bits
    zero = width == 0
    return TensorFormat(
        np.where(zero, False, signed), np.where(zero, -frac_bits, int_bits), frac_bits
    )


def random_dense(
    rng: np.random.Generator,
    name: str,
    input_format: TensorFormat,
    outputs: int,
    *,
    round_mode: RoundMode | None = None,
    overflow: Overflow | None = None,
    activation: Activation | None = None,
    weight_bits: int = 6,
) -> DenseLayer:
    """A dense layer with sparse random integer weights and random per-element formats."""
    n_in = input_format.size
    weight = rng.integers(-(1 << weight_bits), 1 << weight_bits, (outputs, n_in))
    weight[rng.random((outputs, n_in)) < 0.3] = 0
    return DenseLayer(
        name=name,
        weight=weight,
        weight_frac_bits=rng.integers(-2, 7, (outputs, n_in)),
        bias=rng.integers(-(1 << 8), 1 << 8, outputs) * (rng.random(outputs) < 0.7),
        bias_frac_bits=rng.integers(0, 8, outputs),
        output=random_format(rng, outputs),
        activation=activation or rng.choice(list(Activation)),
        round_mode=round_mode or rng.choice(list(RoundMode)),
        overflow=overflow or rng.choice(list(Overflow)),
    )


def random_model(
    rng: np.random.Generator,
    sizes: tuple[int, ...] = (6, 5, 3),
    *,
    name: str = "random_net",
    **layer_options,
) -> IRModel:
    """A chain of :func:`random_dense` layers with ``sizes[0]`` inputs."""
    input_format = fmt = random_format(rng, sizes[0])
    layers = []
    for k, outputs in enumerate(sizes[1:]):
        layer = random_dense(rng, f"dense_{k}", fmt, outputs, **layer_options)
        layers.append(layer)
        fmt = layer.output
    return IRModel(name=name, input=input_format, layers=tuple(layers))
