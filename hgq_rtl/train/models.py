"""Ready-made HGQ networks, built from a :class:`~hgq_rtl.train.config.TrainConfig`."""

from __future__ import annotations

from math import prod

import torch
from torch import nn

from ..ir.fixed import Activation
from .config import TrainConfig
from .layers import (
    QActivation,
    QConv1d,
    QConv1dBN,
    QConv2d,
    QConv2dBN,
    QInput,
    QLinear,
    QLinearBN,
    quantized_mlp,
)
from .quantizers import Granularity


def build_model(config: TrainConfig, input_shape: tuple[int, ...], n_outputs: int) -> nn.Sequential:
    """The network ``config.arch`` names, for samples of ``input_shape`` and ``n_outputs``.

    ``"mlp"``: dense layers of ``config.hidden`` sizes with ReLU, on the flattened sample.
    ``"cnn"``: for each entry of ``config.channels`` a ``config.kernel_size`` convolution
    (no padding), ReLU and max pooling by 2; then ``nn.Flatten``, the ``config.hidden`` dense
    layers with ReLU, and the output layer. It needs ``(channels, length)`` or
    ``(channels, height, width)`` samples. The input and the convolutions' outputs get one
    format per channel (fractional bits per channel, sign and integer bits from the channel's
    range; per tensor with ``granularity="tensor"``) so the network can be generated as a
    stream, one datapath per layer for all positions. ``config.batch_norm`` fuses a BatchNorm
    into every hidden dense and convolution layer. ``config.conv_ebops`` says how the
    resource term counts the convolutions (``"kernel"``: once, as a stream builds them). The
    output is linear (logits or regression values).
    """
    input_shape = tuple(int(d) for d in input_shape)
    if not input_shape or min(input_shape) < 1:
        raise ValueError(f"input_shape must hold positive sizes, not {input_shape}")
    if not isinstance(n_outputs, int) or n_outputs < 1:
        raise ValueError(f"n_outputs must be a positive integer, not {n_outputs!r}")
    granularity = Granularity(config.granularity)
    q = {"init_frac_bits": config.init_frac_bits, "granularity": granularity}
    w = {"init_bits": config.init_bits, "granularity": granularity}
    if config.arch == "mlp":
        model = quantized_mlp(
            prod(input_shape),
            config.hidden,
            n_outputs,
            init_bits=config.init_bits,
            init_frac_bits=config.init_frac_bits,
            granularity=granularity,
            batch_norm=config.batch_norm,
        )
        if len(input_shape) > 1:  # quantize the sample as it is, then flatten it
            model[0] = QInput(input_shape, **q)
            model.insert(1, nn.Flatten())
        return model
    if len(input_shape) not in (2, 3):
        raise ValueError(
            f"a cnn needs (channels, length) or (channels, height, width) samples, not "
            f"{input_shape}"
        )
    two_d = len(input_shape) == 3
    conv = (
        (QConv2dBN if config.batch_norm else QConv2d)
        if two_d
        else (QConv1dBN if config.batch_norm else QConv1d)
    )
    pool = nn.MaxPool2d if two_d else nn.MaxPool1d
    # A streaming design computes every position of a channel on one datapath, so the input
    # and every convolution output have one format per channel (TENSOR stays per tensor).
    per_channel = {
        **q,
        "granularity": Granularity.TENSOR
        if granularity is Granularity.TENSOR
        else Granularity.CHANNEL,
        "channel_ranges": True,
    }
    layers: list[nn.Module] = [QInput(input_shape, **per_channel)]
    shape = input_shape
    for channels in config.channels:
        layer = conv(
            shape[0], channels, config.kernel_size, kernel_ebops=config.conv_ebops == "kernel", **w
        )
        shape = _conv_shape(layer, shape)
        if min(shape[1:]) < 2:
            raise ValueError(
                f"samples of shape {input_shape} are too small for {len(config.channels)} "
                f"convolution/pooling stages of kernel {config.kernel_size}"
            )
        layers += [layer, QActivation(shape, **per_channel), pool(2)]
        shape = (shape[0], *(size // 2 for size in shape[1:]))
    layers.append(nn.Flatten())
    sizes = (prod(shape), *config.hidden)
    hidden_layer = QLinearBN if config.batch_norm else QLinear
    for size_in, size_out in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [hidden_layer(size_in, size_out, **w), QActivation(size_out, **q)]
    layers += [QLinear(sizes[-1], n_outputs, **w), QActivation(n_outputs, Activation.LINEAR, **q)]
    return nn.Sequential(*layers)


def _conv_shape(layer: nn.Module, shape: tuple[int, ...]) -> tuple[int, ...]:
    with torch.no_grad():
        return tuple(layer._product(torch.zeros((1, *shape)), layer.weight).shape[1:])
