"""The convolution, pooling and view nodes of a QONNX graph (:mod:`.qonnx_import`'s reader).

:class:`SpatialNodes` is a part of the reader class of :mod:`hgq_rtl.interop.qonnx_import`: it
reads ``Conv``, ``MaxPool``, ``AveragePool``, ``GlobalMaxPool``, ``GlobalAveragePool``,
``Flatten``/``Reshape``/``Identity`` and the ``Gather``/``Mul`` selections our exporter writes,
using the reader's state (``refs``, ``consts``, ``builder``, ``windows``) and its ``ref`` /
``_sole_reader`` / ``_constant_operand`` helpers. Images are channels-first ``(C, *spatial)`` as
in ONNX, which is the IR's own layout for ``conv`` and ``maxpool_nd`` layers.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from hgq_rtl.ir import (
    ConvLayer,
    MaxPoolLayer,
    MaxPoolNdLayer,
)
from hgq_rtl.ir.formats import exact_maxpool_format
from hgq_rtl.ir.spatial import output_size

from .hgq2_graph import Ref
from .hgq2_quant import InteropError, Quant, exact_fixed
from .hgq2_spatial import _exact_output, _zeros, channels_first

#: The reader's method for each convolution and pooling node.
SPATIAL = {
    "Conv": "conv",
    "MaxPool": "max_pool",
    "AveragePool": "average_pool",
    "GlobalMaxPool": "global_pool",
    "GlobalAveragePool": "global_pool",
}


def _attributes(node) -> dict:
    from onnx import helper

    values = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    return {k: v.decode() if isinstance(v, bytes) else v for k, v in values.items()}


def _per_element(values, shape: tuple[int, ...], where: str) -> np.ndarray:
    """ONNX constant ``values`` broadcast (numpy's rules, as ONNX's) against a tensor of one
    sample's ``shape`` (a leading batch dimension of 1 dropped), flattened in C order."""
    array = np.asarray(values, np.float64)
    while array.ndim > len(shape) and array.shape[0] == 1:
        array = array[0]
    try:
        return np.broadcast_to(array, shape).reshape(-1)
    except ValueError:
        raise InteropError(
            f"{where}: a constant of shape {np.shape(values)} does not broadcast to the "
            f"tensor's {shape}"
        ) from None


class SpatialNodes:
    """The reader's methods for convolution, pooling, view and selection nodes."""

    def reshape(self, node, where: str) -> None:
        """``Identity``, ``Flatten`` (axis 1) and ``Reshape`` change only the view: the map from
        ONNX elements (C order) to IR elements stays."""
        ref = self.ref(node.input[0], node)
        size = ref.order.size
        if node.op_type == "Identity":
            shape = ref.shape
        elif node.op_type == "Flatten":
            if _attributes(node).get("axis", 1) != 1:
                raise InteropError(f"{where}: only axis=1 (one sample flattened) is supported")
            shape = (size,)
        else:
            if node.input[1] not in self.consts or _attributes(node).get("allowzero", 0):
                raise InteropError(f"{where}: only a constant shape (allowzero=0) is supported")
            target = [int(d) for d in np.asarray(self.consts[node.input[1]]).reshape(-1)]
            if not target or target[0] not in (-1, 0, 1):
                raise InteropError(f"{where}: the shape {target} must keep the batch first")
            shape = [d if d != 0 else ref.shape[k - 1] for k, d in enumerate(target) if k]
            if shape.count(-1) == 1 and target[0] != -1:
                known = int(np.prod([d for d in shape if d != -1]))
                shape[shape.index(-1)] = size // max(known, 1)
            shape = tuple(shape)
            if -1 in shape or int(np.prod(shape)) != size:
                raise InteropError(f"{where}: the shape {target} does not hold {size} elements")
        self.refs[node.output[0]] = ref.reshaped(shape)

    def _image(self, node, where: str) -> tuple[Ref, int]:
        """The input of a convolution or pooling node and its number of spatial dimensions."""
        ref = self.ref(node.input[0], node)
        rank = len(ref.shape) - 1
        if rank not in (1, 2):
            raise InteropError(
                f"{where}: an input of shape {ref.shape} (only (C, L) or (C, H, W)) is not "
                "supported"
            )
        return ref, rank

    def _geometry(self, node, where: str, shape: tuple, kernel: tuple, average: bool = False):
        """``(stride, padding, dilation, onnx_spatial)`` of a convolution or pooling node over
        ``shape = (C, *spatial)``: the IR's one padding per dimension, and the output's ONNX
        spatial shape, at most the IR's (the rest of the IR's output is dropped)."""
        attributes = _attributes(node)
        rank = len(kernel)
        given = attributes.get("kernel_shape")
        if given is not None and tuple(given) != tuple(kernel):
            raise InteropError(f"{where}: kernel_shape {given} differs from the weights' {kernel}")
        stride = tuple(attributes.get("strides", (1,) * rank))
        dilation = tuple(attributes.get("dilations", (1,) * rank))
        pads = list(attributes.get("pads", (0,) * (2 * rank)))
        spatial = shape[1:]
        auto = attributes.get("auto_pad", "NOTSET")
        if auto == "VALID":
            pads = [0] * (2 * rank)
        elif auto in ("SAME_UPPER", "SAME_LOWER"):
            totals = [
                max((-(-n // s) - 1) * s + d * (k - 1) + 1 - n, 0)
                for n, k, s, d in zip(spatial, kernel, stride, dilation, strict=True)
            ]
            small = [t // 2 for t in totals]
            large = [t - t // 2 for t in totals]
            pads = small + large if auto == "SAME_UPPER" else large + small
        elif auto != "NOTSET":
            raise InteropError(f"{where}: auto_pad {auto} is not supported")
        ceil = bool(attributes.get("ceil_mode", 0))
        begin, end = pads[:rank], pads[rank:]
        onnx_out, floor_out, ir_out = [], [], []
        for n, k, s, d, b, e in zip(spatial, kernel, stride, dilation, begin, end, strict=True):
            span = n + b + e - d * (k - 1) - 1
            onnx_out.append((-(-span // s) if ceil else span // s) + 1)
            floor_out.append(span // s + 1)
            ir_out.append(output_size(n, k, s, b, d))
        if min(onnx_out, default=1) < 1 or any(
            o > i for o, i in zip(onnx_out, ir_out, strict=True)
        ):
            raise InteropError(
                f"{where}: pads {pads} (ceil_mode={int(ceil)}) with kernel {tuple(kernel)} and "
                f"strides {stride} are not supported: the IR pads both ends alike"
            )
        if average and onnx_out != floor_out:
            raise InteropError(f"{where}: ceil_mode=1 that adds an output is not supported")
        if average and any(pads) and not attributes.get("count_include_pad", 0):
            raise InteropError(
                f"{where}: padding with count_include_pad=0 (a mean over fewer elements) is "
                "not supported"
            )
        return stride, tuple(begin), dilation, tuple(onnx_out)

    def _spatial_out(self, name: str, channels: int, ir_spatial, onnx_spatial) -> Ref:
        """The ONNX view of the IR layer ``name`` of output ``(channels, *ir_spatial)``: its
        first ``onnx_spatial`` positions per dimension."""
        index = np.arange(channels * int(np.prod(ir_spatial))).reshape(channels, *ir_spatial)
        kept = index[(slice(None), *(slice(0, n) for n in onnx_spatial))]
        return Ref(name, kept.reshape(-1), tuple(kept.shape))

    def conv(self, node, where: str) -> None:
        """``Conv`` by constant weights (and bias): an exact IR ``conv`` layer; the ``Quant``
        (and ``Relu``) after it are merged into it later."""
        ins = list(node.input)
        if ins[1] not in self.consts or (len(ins) > 2 and ins[2] and ins[2] not in self.consts):
            raise InteropError(f"{where}: only constant weights and bias are supported")
        ref, rank = self._image(node, where)
        weight = np.asarray(self.consts[ins[1]], np.float64)
        if weight.ndim != rank + 2:
            raise InteropError(f"{where}: weights of shape {weight.shape} on {ref.shape}")
        kernel = weight.shape[2:]
        stride, padding, dilation, onnx_spatial = self._geometry(node, where, ref.shape, kernel)
        groups = int(_attributes(node).get("group", 1))
        w_int, w_frac = exact_fixed(weight, f"{where} weights")
        filters = weight.shape[0]
        if len(ins) > 2 and ins[2]:
            bias = np.asarray(self.consts[ins[2]], np.float64).reshape(-1)
            b_int, b_frac = exact_fixed(bias, f"{where} bias")
        else:
            b_int = b_frac = np.zeros(filters, np.int64)
        name = self.builder.fresh(node.name or "conv")
        source, in_shape = channels_first(self.builder, ref, False, f"{name}_in")
        geometry = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
        size = filters * _positions(in_shape, kernel, stride, padding, dilation)
        try:
            probe = ConvLayer(
                "probe", in_shape, w_int, w_frac, b_int, b_frac, _zeros(size), **geometry
            )
        except ValueError as error:  # groups that do not divide the channels, say
            raise InteropError(f"{where}: {error}") from None
        fmt = self.builder._full_format(source)
        out = _exact_output(probe.to_dense(), fmt, False)
        layer = ConvLayer(
            name, in_shape, w_int, w_frac, b_int, b_frac, out, inputs=(source,), **geometry
        )
        layer.validate_inputs((fmt,))
        self.builder._add(layer)
        self.refs[node.output[0]] = self._spatial_out(
            name, filters, layer.out_shape[1:], onnx_spatial
        )

    def max_pool(self, node, where: str) -> None:
        """``MaxPool``: an exact IR ``maxpool_nd`` layer (padding never wins, as in ONNX)."""
        if len(node.output) > 1 and node.output[1] in self.readers:
            raise InteropError(f"{where}: the Indices output is not supported")
        ref, rank = self._image(node, where)
        kernel = _kernel(node, where)
        stride, padding, dilation, onnx_spatial = self._geometry(node, where, ref.shape, kernel)
        name = self.builder.fresh(node.name or "maxpool")
        source, in_shape = channels_first(self.builder, ref, False, f"{name}_in")
        geometry = dict(stride=stride, padding=padding, dilation=dilation)
        size = in_shape[0] * _positions(in_shape, kernel, stride, padding, dilation)
        try:
            probe = MaxPoolNdLayer("probe", in_shape, kernel, _zeros(size), **geometry)
        except ValueError as error:
            raise InteropError(f"{where}: {error}") from None
        out = exact_maxpool_format(self.builder._full_format(source), probe.windows)
        layer = MaxPoolNdLayer(name, in_shape, kernel, out, inputs=(source,), **geometry)
        self.builder._add(layer)
        self.refs[node.output[0]] = self._spatial_out(
            name, in_shape[0], layer.out_shape[1:], onnx_spatial
        )

    def average_pool(self, node, where: str) -> None:
        """``AveragePool`` over a power-of-two window: a depthwise ``conv`` of weights 1 with
        ``log2(area)`` fractional bits, the exact mean (zero padding counted)."""
        ref, rank = self._image(node, where)
        kernel = _kernel(node, where)
        area = int(np.prod(kernel))
        if area & (area - 1):
            raise InteropError(f"{where}: a window of {area} elements is not a power of two")
        stride, padding, dilation, onnx_spatial = self._geometry(
            node, where, ref.shape, kernel, average=True
        )
        channels = ref.shape[0]
        w_int = np.ones((channels, 1, *kernel), np.int64)
        w_frac = np.full_like(w_int, area.bit_length() - 1)
        zero = np.zeros(channels, np.int64)
        name = self.builder.fresh(node.name or "average_pool")
        source, in_shape = channels_first(self.builder, ref, False, f"{name}_in")
        geometry = dict(stride=stride, padding=padding, dilation=dilation, groups=channels)
        size = channels * _positions(in_shape, kernel, stride, padding, dilation)
        probe = ConvLayer("probe", in_shape, w_int, w_frac, zero, zero, _zeros(size), **geometry)
        fmt = self.builder._full_format(source)
        out = _exact_output(probe.to_dense(), fmt, False)
        layer = ConvLayer(
            name, in_shape, w_int, w_frac, zero, zero, out, inputs=(source,), **geometry
        )
        self.builder._add(layer)
        self.refs[node.output[0]] = self._spatial_out(
            name, channels, layer.out_shape[1:], onnx_spatial
        )

    def global_pool(self, node, where: str) -> None:
        """``GlobalMaxPool`` (a ``maxpool`` over each channel's positions) or
        ``GlobalAveragePool`` (a dense layer of weights ``1 / positions``, a power of two);
        the output keeps ONNX's ``(C, 1, ...)`` shape."""
        ref, rank = self._image(node, where)
        channels = ref.shape[0]
        index = np.arange(ref.order.size).reshape(channels, -1)  # ONNX elements per channel
        positions = index.shape[1]
        shape = (channels, *(1,) * rank)
        name = self.builder.fresh(node.name or "global_pool")
        if node.op_type == "GlobalMaxPool":
            windows = ref.order[index]
            out = exact_maxpool_format(self.builder._full_format(ref.source), windows)
            layer = MaxPoolLayer(name, windows, out, inputs=(ref.source,))
            self.refs[node.output[0]] = self.builder.add_layer(layer, shape)
            return
        if positions & (positions - 1):
            raise InteropError(f"{where}: a mean over {positions} positions is not a power of two")
        self.builder.names.discard(name)
        kernel = np.zeros((index.size, channels), np.int64)
        kernel[index.reshape(-1), np.repeat(np.arange(channels), positions)] = 1
        frac = np.where(kernel != 0, positions.bit_length() - 1, 0)
        flat = Ref(ref.source, ref.order, (index.size,))
        zero = np.zeros(channels, np.int64)
        mean = self.builder.dense(flat, (kernel, frac), (zero, zero), False, name)
        self.refs[node.output[0]] = mean.reshaped(shape)

    def _fold_conv_bias(self, conv: ConvLayer, bias: np.ndarray, where: str) -> None:
        """Replace the last layer, ``conv``, by itself with ``bias`` added to its own (exact
        output format again)."""
        base = conv.bias * np.exp2(-conv.bias_frac_bits.astype(np.float64))
        b_int, b_frac = exact_fixed(base + bias, f"{where} bias")
        fmt = self.builder._full_format(conv.inputs[0])
        probe = dataclasses.replace(
            conv, bias=b_int, bias_frac_bits=b_frac, output=_zeros(conv.output.size)
        )
        layer = dataclasses.replace(probe, output=_exact_output(probe.to_dense(), fmt, False))
        layer.validate_inputs((fmt,))
        self.builder.layers[-1] = layer
        self.builder.formats[layer.name] = layer.output

    def gather(self, node, where: str) -> None:
        """``Gather`` of a sample's elements by constant indices: a selection (1-D indices) only
        changes the map to IR elements; windows (2-D indices) read by ``ReduceMax`` over them
        (``axes=[2]``, ``keepdims=0``, as the exporter writes ``maxpool``) are a ``maxpool``."""
        data, indices = node.input
        ref = self.ref(data, node)
        if indices not in self.consts or len(ref.shape) != 1:
            raise InteropError(f"{where}: only constant indices into a flat tensor are supported")
        if _attributes(node).get("axis", 0) != 1:
            raise InteropError(f"{where}: only axis=1 (within a sample) is supported")
        index = np.asarray(self.consts[indices], np.int64)
        index = np.where(index < 0, index + ref.order.size, index)
        if index.size and (index.min() < 0 or index.max() >= ref.order.size):
            raise InteropError(f"{where}: an index lies outside the tensor")
        if index.ndim == 1:
            self.refs[node.output[0]] = Ref(ref.source, ref.order[index], (index.size,))
            return
        reduce = self._sole_reader(node.output[0], "ReduceMax")
        attributes = _attributes(reduce) if reduce is not None else {}
        if (
            index.ndim != 2
            or reduce is None
            or list(attributes.get("axes", [])) not in ([2], [-1])
            or attributes.get("keepdims", 1)
        ):
            raise InteropError(
                f"{where}: only 1-D indices, or windows read by ReduceMax(axes=[2], "
                "keepdims=0), are supported"
            )
        self.windows[node.output[0]] = (ref, ref.order[index])

    def mask(self, node, where: str) -> None:
        """``Mul`` by a constant of zeros and ones (as the exporter zeroes elements of width
        0): those elements become zero-width, the others keep their format."""
        operand = self._constant_operand(node)
        if operand is None:
            raise InteropError(f"{where}: only a product with a constant mask is supported")
        x, values = operand
        ref = self.ref(x, node)
        keep = _per_element(values, ref.shape, where)
        if not np.all((keep == 0) | (keep == 1)):
            raise InteropError(f"{where}: only a product with zeros and ones is supported")
        fmt = self.builder.format_of(ref)
        live = keep == 1
        q = Quant(
            np.where(live, fmt.signed, 0),
            np.where(live, fmt.int_bits, -fmt.frac_bits),
            fmt.frac_bits,
            "TRN",
            "WRAP",
            where,
        )
        self.refs[node.output[0]] = self.builder.quantize(ref, q, self.builder.fresh("mask"))


def _kernel(node, where: str) -> tuple[int, ...]:
    """A pooling node's ``kernel_shape`` (which ONNX requires)."""
    kernel = _attributes(node).get("kernel_shape")
    if not kernel:
        raise InteropError(f"{where}: kernel_shape is missing")
    return tuple(int(k) for k in kernel)


def _positions(in_shape: tuple, kernel, stride, padding, dilation) -> int:
    """Output positions per channel of a convolution or pooling in the IR."""
    sizes = zip(in_shape[1:], kernel, stride, padding, dilation, strict=True)
    return int(np.prod([output_size(*v) for v in sizes]))
