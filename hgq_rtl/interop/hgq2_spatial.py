"""HGQ2 convolutions, pooling and affine layers (einsum dense, batch normalization) in the IR.

Keras keeps images channels-last, ``(*spatial, C)``; the IR's ``conv`` and ``maxpool_nd`` read
``(C, *spatial)`` flattened in C order. A :class:`~hgq_rtl.interop.hgq2_graph.Ref` maps each
Keras element to its IR element, so a convolution's output simply stays in the IR's order and
the map says where each Keras element is; a layer that needs channels-first data gathers it
(wiring only) when the tensor is not already in that order.

Affine layers without a dedicated IR kind (``QEinsumDense``, ``QEinsumDenseBatchnorm``,
``QBatchNormalization``) become a dense layer whose weights are read off HGQ2's own forward:
the output on the zero vector is the bias, and the change when one input element moves by one
step of its format, divided by that step, is that element's column. Those values are exact
binary fractions; the import's self-check confirms the layer is reproduced exactly.
"""

from __future__ import annotations

import math

import numpy as np

from hgq_rtl.ir import Activation, ConvLayer, MaxPoolLayer, MaxPoolNdLayer, Overflow, RoundMode
from hgq_rtl.ir import TensorFormat as Fmt
from hgq_rtl.ir.dense import accumulator_frac_bits, accumulator_range
from hgq_rtl.ir.formats import exact_maxpool_format, format_of_ranges

from .hgq2_graph import GraphBuilder, Ref
from .hgq2_quant import InteropError, exact_fixed, read_quantizer


def _numpy(value) -> np.ndarray:
    from keras import ops

    return np.asarray(ops.convert_to_numpy(value), np.float64)


def _channels_last(layer) -> bool:
    return getattr(layer, "data_format", "channels_last") == "channels_last"


def channels_first(builder: GraphBuilder, ref: Ref, last: bool, name: str) -> tuple[str, tuple]:
    """``ref`` as an IR tensor in ``(C, *spatial)`` order: its name and that shape."""
    size = int(np.prod(ref.shape, dtype=np.int64))
    index = np.arange(size).reshape(ref.shape)
    if last:
        index = np.moveaxis(index, -1, 0)
    shape = tuple(index.shape)
    sources = ref.order[index.reshape(-1)]
    if sources.size == builder._source_size(ref.source) and np.array_equal(
        sources, np.arange(sources.size)
    ):
        return ref.source, shape
    gathered = builder.materialize(Ref(ref.source, sources, shape), name)
    return gathered.source, shape


def from_channels_first(source: str, shape: tuple, last: bool) -> Ref:
    """The Keras view of IR tensor ``source`` of shape ``(C, *spatial)``."""
    index = np.arange(int(np.prod(shape, dtype=np.int64))).reshape(shape)
    if last:
        index = np.moveaxis(index, 0, -1)
    return Ref(source, index.reshape(-1), tuple(index.shape))


def _padding(layer, where: str, kernel, stride, dilation) -> tuple[int, ...]:
    if layer.padding == "valid":
        return (0,) * len(kernel)
    if layer.padding == "same" and all(s == 1 for s in stride):
        totals = [d * (k - 1) for k, d in zip(kernel, dilation, strict=True)]
        if all(t % 2 == 0 for t in totals):
            return tuple(t // 2 for t in totals)
    raise InteropError(
        f"{where}: padding {layer.padding!r} with kernel {tuple(kernel)} and strides "
        f"{tuple(stride)} pads unevenly; only 'valid' and even 'same' padding are supported"
    )


def _exact_output(probe_dense, fmt: Fmt, relu: bool) -> Fmt:
    frac = accumulator_frac_bits(probe_dense, fmt)
    lo, hi = accumulator_range(probe_dense, fmt)
    if relu:
        lo, hi = [max(v, 0) for v in lo], [max(v, 0) for v in hi]
    return format_of_ranges(np.array(lo, object), np.array(hi, object), frac)


def _zeros(size: int) -> Fmt:
    zero = np.zeros(size, np.int64)
    return Fmt(zero, zero, zero)


def conv(builder: GraphBuilder, layer, ref: Ref, where: str, activation: str) -> Ref:
    """A QConv1D/QConv2D: its input quantizer, then an exact ``conv`` layer."""
    if layer.enable_iq:
        ref = builder.quantize(
            ref, read_quantizer(layer.iq, ref.shape, f"{where} input"), layer.name
        )
    last = _channels_last(layer)
    source, in_shape = channels_first(builder, ref, last, f"{layer.name}_in")
    rank = len(in_shape) - 1
    kernel = _numpy(layer.qkernel)  # (*kernel, C / groups, F)
    weight = np.transpose(kernel, (rank + 1, rank, *range(rank)))
    w_int, w_frac = exact_fixed(weight, f"{where} kernel")
    filters = weight.shape[0]
    if layer.use_bias:
        b_int, b_frac = exact_fixed(_numpy(layer.qbias), f"{where} bias")
    else:
        b_int = b_frac = np.zeros(filters, np.int64)
    stride, dilation = tuple(layer.strides), tuple(layer.dilation_rate)
    padding = _padding(layer, where, weight.shape[2:], stride, dilation)
    geometry = dict(stride=stride, padding=padding, dilation=dilation, groups=layer.groups)
    fmt = builder._full_format(source)
    out_shape = _out_shape(in_shape, weight.shape[2:], stride, padding, dilation, filters)
    size = int(np.prod(out_shape))
    probe = ConvLayer("probe", in_shape, w_int, w_frac, b_int, b_frac, _zeros(size), **geometry)
    relu = activation == "relu"
    out = _exact_output(probe.to_dense(), fmt, relu)
    result = ConvLayer(
        builder.fresh(layer.name),
        in_shape,
        w_int,
        w_frac,
        b_int,
        b_frac,
        out,
        activation=Activation.RELU if relu else Activation.LINEAR,
        round_mode=RoundMode.RND,
        overflow=Overflow.WRAP,
        inputs=(source,),
        **geometry,
    )
    result.validate_inputs((fmt,))
    return from_channels_first(builder._add(result), tuple(out_shape), last)


def max_pool(builder: GraphBuilder, layer, ref: Ref, where: str) -> Ref:
    """A (Q)MaxPooling1D/2D: an exact ``maxpool_nd`` layer."""
    if getattr(layer, "enable_iq", False):
        ref = builder.quantize(
            ref, read_quantizer(layer.iq, ref.shape, f"{where} input"), layer.name
        )
    last = _channels_last(layer)
    source, in_shape = channels_first(builder, ref, last, f"{layer.name}_in")
    kernel, stride = tuple(layer.pool_size), tuple(layer.strides)
    padding = _padding(layer, where, kernel, stride, (1,) * len(kernel))
    geometry = dict(stride=stride, padding=padding)
    out_shape = _out_shape(in_shape, kernel, stride, padding, (1,) * len(kernel), in_shape[0])
    probe = MaxPoolNdLayer("probe", in_shape, kernel, _zeros(int(np.prod(out_shape))), **geometry)
    fmt = builder._full_format(source)
    out = exact_maxpool_format(fmt, probe.windows)
    result = MaxPoolNdLayer(
        builder.fresh(layer.name), in_shape, kernel, out, inputs=(source,), **geometry
    )
    return from_channels_first(builder._add(result), tuple(out_shape), last)


def _out_shape(in_shape, kernel, stride, padding, dilation, channels) -> tuple[int, ...]:
    """``(channels, *out_spatial)`` by torch's formula (docs/ir.md, spatial layer kinds)."""
    spatial = [
        (n + 2 * p - d * (k - 1) - 1) // s + 1
        for n, k, s, p, d in zip(in_shape[1:], kernel, stride, padding, dilation, strict=True)
    ]
    if min(spatial, default=1) < 1:
        raise InteropError(f"a window larger than the input {tuple(in_shape[1:])}")
    return (int(channels), *spatial)


def average_pool(builder: GraphBuilder, layer, ref: Ref, where: str) -> Ref:
    """A (Q)AveragePooling1D/2D over windows of a power-of-two area: a depthwise ``conv`` of
    weights 1 with ``log2(area)`` fractional bits (the exact mean)."""
    if getattr(layer, "enable_iq", False):
        ref = builder.quantize(
            ref, read_quantizer(layer.iq, ref.shape, f"{where} input"), layer.name
        )
    if layer.padding != "valid":
        raise InteropError(f"{where}: only 'valid' padding is supported for average pooling")
    kernel, stride = tuple(layer.pool_size), tuple(layer.strides)
    area = math.prod(kernel)
    if area & (area - 1):
        raise InteropError(f"{where}: a window of {area} elements is not a power of two")
    last = _channels_last(layer)
    source, in_shape = channels_first(builder, ref, last, f"{layer.name}_in")
    channels = in_shape[0]
    w_int = np.ones((channels, 1, *kernel), np.int64)
    w_frac = np.full_like(w_int, area.bit_length() - 1)
    zero = np.zeros(channels, np.int64)
    geometry = dict(stride=stride, padding=(0,) * len(kernel), groups=channels)
    zeros = (0,) * len(kernel)
    out_shape = _out_shape(in_shape, kernel, stride, zeros, (1,) * len(kernel), channels)
    size = int(np.prod(out_shape))
    probe = ConvLayer("probe", in_shape, w_int, w_frac, zero, zero, _zeros(size), **geometry)
    fmt = builder._full_format(source)
    out = _exact_output(probe.to_dense(), fmt, False)
    result = ConvLayer(
        builder.fresh(layer.name),
        in_shape,
        w_int,
        w_frac,
        zero,
        zero,
        out,
        inputs=(source,),
        **geometry,
    )
    return from_channels_first(builder._add(result), tuple(out_shape), last)


def global_pool(builder: GraphBuilder, layer, ref: Ref, where: str, kind: str) -> Ref:
    """A (Q)GlobalMax/AveragePooling1D/2D (``keepdims`` False): a ``maxpool`` over each
    channel's positions, or a dense layer of weights ``1 / positions`` (a power of two)."""
    if getattr(layer, "enable_iq", False):
        ref = builder.quantize(
            ref, read_quantizer(layer.iq, ref.shape, f"{where} input"), layer.name
        )
    if getattr(layer, "keepdims", False):
        raise InteropError(f"{where}: keepdims=True is not supported")
    index = np.arange(int(np.prod(ref.shape))).reshape(ref.shape)
    index = np.moveaxis(index, -1, 0) if _channels_last(layer) else index
    index = index.reshape(index.shape[0], -1)  # (C, positions) Keras element indices
    channels, positions = index.shape
    if kind == "max":
        windows = ref.order[index]
        fmt = builder._full_format(ref.source)
        out = exact_maxpool_format(fmt, windows)
        result = MaxPoolLayer(builder.fresh(layer.name), windows, out, inputs=(ref.source,))
        return builder.add_layer(result, (channels,))
    if positions & (positions - 1):
        raise InteropError(f"{where}: a mean over {positions} positions is not a power of two")
    kernel = np.zeros((index.size, channels), np.int64)
    kernel[index.reshape(-1), np.repeat(np.arange(channels), positions)] = 1
    frac = np.where(kernel != 0, positions.bit_length() - 1, 0)
    flat = Ref(ref.source, ref.order, (index.size,))
    zero = np.zeros(channels, np.int64)
    return builder.dense(flat, (kernel, frac), (zero, zero), False, layer.name)


def affine_by_probing(builder: GraphBuilder, layer, ref: Ref, out_shape, where: str) -> Ref:
    """An affine layer (einsum dense, batch normalization) read off HGQ2's forward."""
    import keras

    if layer.enable_iq:
        ref = builder.quantize(
            ref, read_quantizer(layer.iq, ref.shape, f"{where} input"), layer.name
        )
    activation = getattr(layer, "activation", None)
    name = getattr(activation, "__name__", "linear")
    if name not in ("linear", "relu"):
        raise InteropError(f"{where}: activation {name!r} is not supported")
    fmt = builder.format_of(ref)
    n = fmt.size
    lo, hi = fmt.int_range()
    step = np.where(hi >= 1, 1, -1) * np.exp2(-fmt.frac_bits.astype(np.float64))
    live = fmt.width > 0
    batch = np.zeros((n + 1, n))
    batch[1 + np.flatnonzero(live), np.flatnonzero(live)] = step[live]
    saved_activation, saved_oq = activation, layer._enable_oq
    try:
        if activation is not None:
            layer.activation = keras.activations.linear
        layer._enable_oq = False
        values = layer(batch.reshape((n + 1, *ref.shape)).astype(keras.config.floatx()))
        values = _numpy(values).reshape(n + 1, -1)
    finally:
        if activation is not None:
            layer.activation = saved_activation
        layer._enable_oq = saved_oq
    bias = values[0]
    columns = np.zeros((n, bias.size))
    columns[live] = (values[1:][live] - bias[None, :]) / step[live, None]
    kernel = exact_fixed(columns, f"{where} weights")
    result = builder.dense(
        Ref(ref.source, ref.order, (n,)),
        kernel,
        exact_fixed(bias, f"{where} bias"),
        name == "relu",
        layer.name,
    )
    result = result.reshaped(tuple(out_shape))
    if layer.enable_oq:
        quant = read_quantizer(layer.oq, result.shape, f"{where} output quantizer")
        result = builder.quantize(result, quant, f"{layer.name}_out")
    return result
