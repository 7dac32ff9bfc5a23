"""Layer kinds that keep their spatial shape: :class:`ConvLayer` and :class:`MaxPoolNdLayer`.

A convolution or a max pooling over ``(C, L)`` or ``(C, H, W)`` data, described once (kernel,
stride, padding, dilation, groups) instead of unrolled over every output position, so that a
generator can see the kernel and build a window generator around one compute block. Tensors
stay 1-D per sample (``(C, *spatial)`` flattened in C order, as torch does); the shapes say how
to read them.

Their arithmetic is *defined* by their lowering: a :class:`ConvLayer` computes exactly what
:meth:`ConvLayer.to_dense` (a :class:`~hgq_rtl.ir.dense.DenseLayer` holding the kernel once per
output position, zero padding contributing no term) computes, and a :class:`MaxPoolNdLayer`
what :meth:`MaxPoolNdLayer.to_windows` (a :class:`~hgq_rtl.ir.layers.MaxPoolLayer`; padding
never wins) computes, so the two forms can never disagree.
:func:`~hgq_rtl.ir.lowering.lower_spatial` replaces them in a whole model.

The IR imports only numpy and the standard library.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from .dense import DenseLayer, check_accumulators
from .fixed import Activation, Overflow, RoundMode
from .formats import TensorFormat, _as_int_array
from .layers import MaxPoolLayer, _check_inputs, _check_modes, _check_name, _check_output

#: Spatial dimensions a convolution or pooling may have: 1 (``(C, L)``) or 2 (``(C, H, W)``).
SPATIAL_DIMS = (1, 2)


def output_size(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    """Output positions along one dimension (torch's formula, ``ceil_mode=False``)."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def window_indices(
    spatial: tuple[int, ...],
    kernel: tuple[int, ...],
    stride: tuple[int, ...],
    padding: tuple[int, ...],
    dilation: tuple[int, ...],
) -> np.ndarray:
    """``(positions, taps)``: the flat (C-order) spatial input index under kernel tap ``k`` at
    output position ``p``, both in C order; ``-1`` where the tap falls on padding."""
    out = tuple(map(output_size, spatial, kernel, stride, padding, dilation))
    n = len(spatial)
    positions = np.indices(out).reshape(n, -1)[:, :, None]
    taps = np.indices(kernel).reshape(n, -1)[:, None, :]
    column = np.array  # per-dimension parameters as (n, 1, 1) columns
    coord = (
        positions * column(stride)[:, None, None]
        - column(padding)[:, None, None]
        + taps * column(dilation)[:, None, None]
    )
    inside = np.all((coord >= 0) & (coord < column(spatial)[:, None, None]), axis=0)
    flat = np.ravel_multi_index(tuple(np.where(inside, coord, 0)), spatial)
    return np.where(inside, flat, -1).astype(np.int64)


def pool_windows(
    in_shape: tuple[int, ...],
    kernel: tuple[int, ...],
    stride: tuple[int, ...],
    padding: tuple[int, ...],
    dilation: tuple[int, ...],
) -> np.ndarray:
    """``(C·P, taps)``: the flat input element indices of every pooling window over
    ``in_shape = (C, *spatial)`` data, channel by channel (output ``c·P + p``); a tap on padding
    repeats the window's first input element, which leaves a maximum unchanged. Every window
    must hold an input element (:class:`MaxPoolNdLayer` checks it)."""
    index = window_indices(in_shape[1:], kernel, stride, padding, dilation)
    first = index[np.arange(len(index)), np.argmax(index >= 0, axis=1)]
    index = np.where(index >= 0, index, first[:, None])
    channels = np.arange(in_shape[0])[:, None, None] * math.prod(in_shape[1:])
    return (channels + index[None]).reshape(-1, index.shape[1])


@dataclass(frozen=True, eq=False)
class ConvLayer:
    """A convolution with constant integer weights over ``in_shape = (C, *spatial)`` data.

    ``weight[f, c, *k]`` (shape ``(F, C // groups, *kernel)``) has ``weight_frac_bits`` of the
    same shape, ``bias[f]`` has ``bias_frac_bits[f]``. Output channel ``f`` reads input
    channels ``g·C/groups … (g+1)·C/groups − 1`` of its group ``g = f // (F / groups)``. At output
    position ``o`` kernel tap ``k`` reads input position ``o·stride − padding + k·dilation``
    (per spatial dimension); taps on the zero padding contribute no term. ``output`` is the
    format of the ``(F, *out_spatial)`` result flattened in C order. ``stride``, ``padding``
    and ``dilation`` take one integer per spatial dimension (an int, or empty for the defaults
    1, 0, 1, applies to every dimension).

    The arithmetic is that of :meth:`to_dense` (docs/ir.md, "dense layer arithmetic").
    """

    name: str
    in_shape: tuple[int, ...]
    weight: np.ndarray  # int64 (F, C // groups, *kernel)
    weight_frac_bits: np.ndarray  # int64, weight's shape
    bias: np.ndarray  # int64 (F,)
    bias_frac_bits: np.ndarray  # int64 (F,)
    output: TensorFormat
    stride: tuple[int, ...] = ()
    padding: tuple[int, ...] = ()
    dilation: tuple[int, ...] = ()
    groups: int = 1
    activation: Activation = Activation.LINEAR
    round_mode: RoundMode = RoundMode.RND
    overflow: Overflow = Overflow.WRAP
    inputs: tuple[str, ...] = ()
    kind: str = field(default="conv", init=False)

    def __post_init__(self) -> None:
        _check_name(self)
        _check_inputs(self, 0, 1)
        _check_in_shape(self)
        for attr in ("weight", "weight_frac_bits", "bias", "bias_frac_bits"):
            object.__setattr__(
                self, attr, _as_int_array(getattr(self, attr), f"{self.name}.{attr}")
            )
        dims = len(self.in_shape) - 1
        if self.weight.ndim != dims + 2 or min(self.weight.shape, default=0) < 1:
            raise ValueError(
                f"{self.name}.weight must have shape (out_channels, in_channels // groups, "
                f"*kernel) with {dims} kernel dimension(s) of at least 1, not {self.weight.shape}"
            )
        groups = self.groups
        if not _is_int(groups) or groups < 1:
            raise ValueError(f"{self.name}.groups must be a positive integer, not {groups!r}")
        object.__setattr__(self, "groups", int(groups))
        channels, out_channels = self.in_shape[0], self.weight.shape[0]
        if channels % groups or out_channels % groups:
            raise ValueError(
                f"{self.name}.groups ({groups}) must divide both the input channels "
                f"({channels}) and the output channels ({out_channels})"
            )
        if self.weight.shape[1] != channels // groups:
            raise ValueError(
                f"{self.name}.weight has {self.weight.shape[1]} input channels per group, "
                f"in_shape {self.in_shape} with groups={groups} gives {channels // groups}"
            )
        expected = {
            "weight_frac_bits": self.weight.shape,
            "bias": (out_channels,),
            "bias_frac_bits": (out_channels,),
        }
        for attr, shape in expected.items():
            if getattr(self, attr).shape != shape:
                raise ValueError(
                    f"{self.name}.{attr} must have shape {shape}, not {getattr(self, attr).shape}"
                )
        _check_geometry(self, dims)
        _check_output(self, math.prod(self.out_shape), f"outputs (out_shape {self.out_shape})")
        _check_modes(self)

    @property
    def kernel(self) -> tuple[int, ...]:
        return tuple(int(k) for k in self.weight.shape[2:])

    @property
    def out_shape(self) -> tuple[int, ...]:
        return (int(self.weight.shape[0]), *_out_spatial(self))

    @property
    def in_features(self) -> int:
        return math.prod(self.in_shape)

    @property
    def out_features(self) -> int:
        return self.output.size

    def to_dense(self) -> DenseLayer:
        """The exactly equivalent dense layer (same name, output, modes and inputs).

        ``weight[f·P + p, c·S + s]`` (``P`` output and ``S`` input positions per channel) is the
        kernel's weight of the tap that reads input element ``(c, s)`` at output position ``p``,
        with that tap's fractional bits; every other entry is 0 with 0 fractional bits. The
        bias repeats over each channel's positions. Computed once per layer.
        """
        return self._dense

    @cached_property
    def _dense(self) -> DenseLayer:
        rows, cols, taps = self._pairs()
        out_channels = self.weight.shape[0]
        positions = math.prod(self.out_shape[1:])
        weight = np.zeros((out_channels * positions, self.in_features), np.int64)
        frac = np.zeros_like(weight)
        weight[rows, cols] = self.weight.reshape(out_channels, -1)[rows // positions, taps]
        frac[rows, cols] = self.weight_frac_bits.reshape(out_channels, -1)[rows // positions, taps]
        return DenseLayer(
            name=self.name,
            weight=weight,
            weight_frac_bits=frac,
            bias=np.repeat(self.bias, positions),
            bias_frac_bits=np.repeat(self.bias_frac_bits, positions),
            output=self.output,
            activation=self.activation,
            round_mode=self.round_mode,
            overflow=self.overflow,
            inputs=self.inputs,
        )

    def _pairs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every live (output element, input element, kernel tap) of the unrolled convolution;
        the tap indexes ``weight.reshape(F, -1)``."""
        index = window_indices(
            self.in_shape[1:], self.kernel, self.stride, self.padding, self.dilation
        )
        position, tap = np.nonzero(index >= 0)
        spatial_in = index[position, tap]
        positions, taps = index.shape
        out_channels = self.weight.shape[0]
        per_group = self.in_shape[0] // self.groups
        f = np.arange(out_channels)[:, None, None]
        c = np.arange(per_group)[None, :, None]
        group = f // (out_channels // self.groups)
        shape = (out_channels, per_group, position.size)
        rows = np.broadcast_to(f * positions + position, shape)
        spatial = math.prod(self.in_shape[1:])
        cols = np.broadcast_to((group * per_group + c) * spatial + spatial_in, shape)
        kernel_taps = np.broadcast_to(c * taps + tap, shape)
        return rows.reshape(-1), cols.reshape(-1), kernel_taps.reshape(-1)

    def validate_inputs(self, formats: tuple[TensorFormat, ...]) -> None:
        """Check the layer against the formats of its inputs (``ValueError`` if it misfits):
        the input's size, and the accumulators of :meth:`to_dense`."""
        (fmt,) = formats
        _check_input_size(self, fmt)
        check_accumulators(self.to_dense(), fmt)


@dataclass(frozen=True, eq=False)
class MaxPoolNdLayer:
    """Max pooling over ``in_shape = (C, *spatial)`` data, channel by channel (torch's
    ``MaxPool1d``/``MaxPool2d`` with ``ceil_mode=False``).

    Output ``(c, o)`` is the maximum of the input elements ``(c, o·stride − padding +
    k·dilation)`` over the kernel taps ``k`` that fall inside the input: padded positions never
    win (torch pads with −∞), and every window must hold at least one input element. Each value
    is first aligned to the output's fractional bits; the output format must hold the exact
    range of the maximum. ``stride`` defaults to ``kernel``, ``padding`` to 0, ``dilation`` to
    1. The arithmetic is that of :meth:`to_windows`.
    """

    name: str
    in_shape: tuple[int, ...]
    kernel: tuple[int, ...]
    output: TensorFormat
    stride: tuple[int, ...] = ()
    padding: tuple[int, ...] = ()
    dilation: tuple[int, ...] = ()
    inputs: tuple[str, ...] = ()
    kind: str = field(default="maxpool_nd", init=False)

    def __post_init__(self) -> None:
        _check_name(self)
        _check_inputs(self, 0, 1)
        _check_in_shape(self)
        dims = len(self.in_shape) - 1
        object.__setattr__(self, "kernel", _spatial_tuple(self, "kernel", self.kernel, dims, 1))
        _check_geometry(self, dims)
        empty = np.flatnonzero(np.all(self._taps() < 0, axis=1))
        if empty.size:
            raise ValueError(
                f"{self.name}: output position {int(empty[0])} of every channel pools only "
                f"padding (padding {self.padding}, kernel {self.kernel}): every window must "
                "hold an input element"
            )
        _check_output(self, math.prod(self.out_shape), f"outputs (out_shape {self.out_shape})")

    @property
    def out_shape(self) -> tuple[int, ...]:
        return (self.in_shape[0], *_out_spatial(self))

    @property
    def in_features(self) -> int:
        return math.prod(self.in_shape)

    @property
    def out_features(self) -> int:
        return self.output.size

    def _taps(self) -> np.ndarray:
        return window_indices(
            self.in_shape[1:], self.kernel, self.stride, self.padding, self.dilation
        )

    @property
    def windows(self) -> np.ndarray:
        """``(C·P, taps)`` input element indices of each output's window (as
        :class:`~hgq_rtl.ir.layers.MaxPoolLayer` takes them); a tap on padding repeats the
        window's first input element, which leaves the maximum unchanged."""
        return self.to_windows().windows

    def to_windows(self) -> MaxPoolLayer:
        """The exactly equivalent :class:`~hgq_rtl.ir.layers.MaxPoolLayer` (same name, output
        and inputs). Computed once per layer."""
        return self._windows

    @cached_property
    def _windows(self) -> MaxPoolLayer:
        geometry = self.in_shape, self.kernel, self.stride, self.padding, self.dilation
        return MaxPoolLayer(self.name, pool_windows(*geometry), self.output, inputs=self.inputs)

    def validate_inputs(self, formats: tuple[TensorFormat, ...]) -> None:
        """Check the layer against the formats of its inputs (``ValueError`` if it misfits):
        the input's size, and the exactness of :meth:`to_windows`."""
        (fmt,) = formats
        _check_input_size(self, fmt)
        self.to_windows().validate_inputs(formats)


SpatialLayer = ConvLayer | MaxPoolNdLayer


# ------------------------------------------------------------------------------------ checks


def _is_int(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _check_in_shape(layer: SpatialLayer) -> None:
    shape = layer.in_shape
    ok = isinstance(shape, tuple | list) and len(shape) - 1 in SPATIAL_DIMS
    if not ok or not all(_is_int(d) and d >= 1 for d in shape):
        raise ValueError(
            f"{layer.name}.in_shape must be (channels, length) or (channels, height, width) of "
            f"positive integers, not {shape!r}"
        )
    object.__setattr__(layer, "in_shape", tuple(int(d) for d in shape))


def _spatial_tuple(
    layer: SpatialLayer, attr: str, value: object, dims: int, least: int
) -> tuple[int, ...]:
    """``value`` as one integer ``>= least`` per spatial dimension (an int applies to all)."""
    values = (value,) * dims if _is_int(value) else value
    ok = isinstance(values, tuple | list) and len(values) == dims
    if not ok or not all(_is_int(v) and v >= least for v in values):
        what = "positive integers" if least == 1 else "integers >= 0"
        raise ValueError(
            f"{layer.name}.{attr} must be {what}, one per spatial dimension ({dims}), not {value!r}"
        )
    return tuple(int(v) for v in values)


def _check_geometry(layer: SpatialLayer, dims: int) -> None:
    """Normalize stride, padding and dilation and check that every output dimension is >= 1."""
    kernel = layer.kernel
    defaults = {"stride": kernel if layer.kind == "maxpool_nd" else 1, "padding": 0, "dilation": 1}
    for attr, default in defaults.items():
        value = getattr(layer, attr)
        if isinstance(value, tuple | list) and len(value) == 0:
            value = default
        least = 0 if attr == "padding" else 1
        object.__setattr__(layer, attr, _spatial_tuple(layer, attr, value, dims, least))
    out = _out_spatial(layer)
    if min(out) < 1:
        raise ValueError(
            f"{layer.name}: in_shape {layer.in_shape} with kernel {kernel}, stride "
            f"{layer.stride}, padding {layer.padding} and dilation {layer.dilation} leaves "
            f"output dimensions {out}: each must be at least 1"
        )


def _out_spatial(layer: SpatialLayer) -> tuple[int, ...]:
    sizes = layer.in_shape[1:], layer.kernel, layer.stride, layer.padding, layer.dilation
    return tuple(map(output_size, *sizes))


def _check_input_size(layer: SpatialLayer, fmt: TensorFormat) -> None:
    if fmt.size != layer.in_features:
        raise ValueError(
            f"{layer.name} has in_shape {layer.in_shape} ({layer.in_features} elements), "
            f"its input has {fmt.size} elements"
        )
