"""QONNX models with power-of-two scales to the IR: :func:`from_qonnx`.

Tensors are ``(1, features)`` or, for images, ``(1, C, *spatial)`` (a batch of one); the graph's
nodes are read in their order (QONNX files are topologically sorted). ONNX keeps images
channels-first, as the IR's ``conv`` and ``maxpool_nd`` layers read them, so an image input is
laid out in the IR exactly as in ONNX (C order of ``(C, *spatial)``). Supported:

* ``Quant`` (``qonnx.custom_op.general``) with zero point 0 and power-of-two scales (per element,
  channel or tensor): on a constant it is folded (qonnx's own arithmetic); on a tensor it is an
  IR ``quantize`` (or, on a model input, the input's format). It clips, then rounds ``x / scale``:
  ``FLOOR`` is the IR's ``TRN``; ``FLOOR`` after an ``Add`` of half a step to the same tensor is
  ``RND`` (round half up, what :mod:`~hgq_rtl.interop.qonnx_export` writes); the other modes only
  where no value is rounded. ``narrow`` only where the lowest value is never reached; a 1-bit
  signed ``Quant`` (bipolar) is refused.
* ``MatMul`` and ``Gemm`` by constant weights, ``Add`` of a constant (folded into the dense
  layer before it as its bias, or a dense layer of its own), ``Add`` of tensors, ``Relu``,
  ``Max``/``Min`` with a constant that is the bound of a fixed-point format (a clip),
  ``Flatten``, ``Reshape``, ``Identity``.
* ``Conv`` (1-D and 2-D, constant weights and bias, strides, dilations, groups) as an IR
  ``conv`` layer; ``MaxPool`` as ``maxpool_nd``; ``GlobalMaxPool`` as ``maxpool``;
  ``AveragePool`` (zero padding counted, ``count_include_pad=1``, or none) and
  ``GlobalAveragePool`` over windows of a power-of-two area, the exact mean (a depthwise
  ``conv``, or a dense layer). The IR pads both ends of a dimension alike: ONNX pads that
  differ are taken where the output reads only the shared part (the extra end padding is never
  read, or the IR's extra outputs are dropped), else refused; so is ``ceil_mode`` where it adds
  an output. An ``Add`` of one constant per channel after a ``Conv`` is folded into its bias.
* What :mod:`~hgq_rtl.interop.qonnx_export` writes besides: ``Gather`` by constant indices
  (a selection; windows read by ``ReduceMax`` are a ``maxpool``) and ``Mul`` by a mask of zeros
  and ones (zero-width elements).

A ``Quant`` on a tensor whose clip can never act (its input's exact range, rounded, fits)
declares the exact range of its values instead of its bit width: the same values, in the
narrowest formats, as the exporter's wide rounding-only ``Quant`` nodes had them before.

Anything else raises :class:`~hgq_rtl.interop.hgq2_quant.InteropError` naming the node and its
type. :func:`check_against_qonnx` compares the IR with qonnx's ``execute_onnx``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from hgq_rtl.ir import (
    Activation,
    ConvLayer,
    DenseLayer,
    IRModel,
    MaxPoolLayer,
    MaxPoolNdLayer,
    TensorFormat,
)
from hgq_rtl.ir.dense import accumulator_frac_bits, accumulator_range
from hgq_rtl.ir.formats import exact_maxpool_format, format_of_ranges
from hgq_rtl.ir.reference import random_inputs, run
from hgq_rtl.ir.spatial import output_size

from .hgq2_graph import GraphBuilder, Ref, fuse_requantization
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
ROUNDING = {"FLOOR": "TRN", "ROUND": "RND_CONV", "HALF_EVEN": "RND_CONV", "HALF_UP": "RND_INF"}


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


class _Reader:
    def __init__(self, model) -> None:
        from onnx import numpy_helper

        self.model = model
        self.builder = GraphBuilder()
        self.builder.narrow_inputs = True
        self.consts = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
        self.refs: dict[str, Ref] = {}
        self.halves: dict[str, tuple[str, np.ndarray]] = {}  # Add(x, c) output -> (x, c)
        self.skipped: set[str] = set()  # outputs of nodes folded into a later one
        self.clips: dict[str, tuple[str, np.ndarray]] = {}  # Max(x, c) output -> (x, c)
        self.windows: dict[str, tuple[Ref, np.ndarray]] = {}  # Gather of windows -> IR windows
        self.readers: dict[str, list] = {}
        for node in model.graph.node:
            for name in node.input:
                self.readers.setdefault(name, []).append(node)

    def where(self, node) -> str:
        return f"node {node.name or node.output[0]!r} ({node.op_type})"

    def ref(self, name: str, node) -> Ref:
        if name not in self.refs:
            raise InteropError(f"{self.where(node)}: input {name!r} is not a supported tensor")
        return self.refs[name]

    def read(self) -> None:
        for value in self.model.graph.input:
            if value.name in self.consts:
                continue
            dims = [d.dim_value for d in value.type.tensor_type.shape.dim]
            if len(dims) < 2 or dims[0] not in (0, 1) or min(dims[1:]) < 1:
                raise InteropError(f"input {value.name!r} must be (1, ...), not {dims}")
            name = self.builder.fresh(value.name)
            self.builder.names.discard(name)
            shape = tuple(dims[1:])
            if len(shape) == 1:
                self.refs[value.name] = self.builder.add_input(name, shape)
            else:  # (C, *spatial): the IR's layout already; add_input takes (*spatial, C)
                self.builder.add_input(name, (*shape[1:], shape[0]))
                self.refs[value.name] = Ref(name, np.arange(int(np.prod(shape))), shape)
        for node in self.model.graph.node:
            self.node(node)

    def node(self, node) -> None:
        op, ins, out = node.op_type, list(node.input), node.output[0]
        where = self.where(node)
        if op == "Constant":
            from onnx import numpy_helper

            self.consts[out] = numpy_helper.to_array(_attributes(node)["value"])
        elif op == "Quant":
            self.quant(node, where)
        elif all(name in self.consts for name in ins):
            raise InteropError(f"{where}: constant folding of {op} is not supported")
        elif op in ("Identity", "Flatten", "Reshape"):
            self.reshape(node, where)
        elif op in SPATIAL:
            getattr(self, SPATIAL[op])(node, where)
        elif op == "Relu":
            self.refs[out] = self.builder.relu(self.ref(ins[0], node), self.builder.fresh("relu"))
        elif op in ("MatMul", "Gemm"):
            self.matmul(node, where)
        elif op == "Add":
            self.add(node, where)
        elif op in ("Max", "Min"):
            self.clip(node, where)
        elif op == "Sub":
            self.wrap(node, where)
        elif op in ("Mul", "Floor") and out in self.skipped:
            pass
        elif op == "Mul":
            self.mask(node, where)
        elif op == "Gather":
            self.gather(node, where)
        elif op == "ReduceMax" and ins[0] in self.windows:
            ref, windows = self.windows[ins[0]]
            fmt = self.builder._full_format(ref.source)
            name = self.builder.fresh(node.name or "maxpool")
            pool = MaxPoolLayer(name, windows, exact_maxpool_format(fmt, windows), (ref.source,))
            self.refs[out] = self.builder.add_layer(pool, (len(windows),))
        else:
            raise InteropError(f"{where} is not supported")

    def matmul(self, node, where: str) -> None:
        ins = list(node.input)
        if ins[1] not in self.consts:
            raise InteropError(f"{where}: only constant weights are supported")
        weight = np.asarray(self.consts[ins[1]], np.float64)
        attributes = _attributes(node)
        if node.op_type == "Gemm":
            if attributes.get("transA", 0) or attributes.get("alpha", 1.0) != 1.0:
                raise InteropError(f"{where}: only transA=0, alpha=1 is supported")
            if attributes.get("transB", 0):
                weight = weight.T
        units = weight.shape[1]
        bias = np.zeros(units)
        if len(ins) > 2:
            bias = np.broadcast_to(
                np.asarray(self.consts[ins[2]], np.float64) * attributes.get("beta", 1.0), (units,)
            )
        ref = self.ref(ins[0], node)
        ref = ref.reshaped((ref.order.size,))
        self.refs[node.output[0]] = self.builder.dense(
            ref,
            exact_fixed(weight, f"{where} weights"),
            exact_fixed(bias, f"{where} bias"),
            False,
            self.builder.fresh(node.name or "dense"),
        )

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

    def add(self, node, where: str) -> None:
        a, b = node.input
        if a in self.consts:
            a, b = b, a
        if b not in self.consts:
            self.refs[node.output[0]] = self.builder.add(
                [self.ref(a, node), self.ref(b, node)], self.builder.fresh(node.name or "add")
            )
            return
        ref = self.ref(a, node)
        constant = _per_element(self.consts[b], ref.shape, where)
        if self._is_rounding_offset(node.output[0], constant, ref.shape):
            self.halves[node.output[0]] = (a, constant)
            return
        if ref.source in self.builder.inputs:
            raise InteropError(f"{where}: a constant added to a model input is not supported")
        last = self.builder.layers[-1] if self.builder.layers else None
        fold = (
            isinstance(last, DenseLayer | ConvLayer)
            and last.name == ref.source
            and len(self.readers.get(a, [])) == 1
            and np.array_equal(ref.order, np.arange(last.out_features))
        )
        if fold and isinstance(last, ConvLayer):
            per_channel = constant.reshape(last.out_shape[0], -1)
            if np.all(per_channel == per_channel[:, :1]):  # a bias: one value per channel
                self._fold_conv_bias(last, per_channel[:, 0], where)
                self.refs[node.output[0]] = ref
                return
        elif fold:
            self.builder.layers.pop()
            weight = (last.weight, last.weight_frac_bits)
            base = last.bias * np.exp2(-last.bias_frac_bits.astype(np.float64))
            source = Ref(last.inputs[0], np.arange(last.in_features), (last.in_features,))
            self.builder.names.discard(last.name)
            self.refs[node.output[0]] = self.builder.dense(
                source,
                (weight[0].T, weight[1].T),
                exact_fixed(base + constant, f"{where} bias"),
                False,
                last.name,
            )
            return
        size = ref.order.size
        added = self.builder.dense(
            ref.reshaped((size,)),
            (np.eye(size, dtype=np.int64), np.zeros((size, size), np.int64)),
            exact_fixed(constant, f"{where} constant"),
            False,
            self.builder.fresh(node.name or "add_constant"),
        )
        self.refs[node.output[0]] = added.reshaped(ref.shape)

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

    def _is_rounding_offset(self, name: str, constant: np.ndarray, shape: tuple) -> bool:
        """Whether ``Add(x, constant)`` named ``name`` is read only by a ``FLOOR`` ``Quant`` of
        power-of-two scales with ``constant`` half its step: together, round half up."""
        readers = self.readers.get(name, [])
        if len(readers) != 1 or readers[0].op_type != "Quant":
            return False
        quant = readers[0]
        mode = _attributes(quant).get("rounding_mode", "ROUND")
        mode = mode.decode() if isinstance(mode, bytes) else mode
        if mode.upper() != "FLOOR" or quant.input[1] not in self.consts:
            return False
        try:
            half = _per_element(self.consts[quant.input[1]], shape, "") / 2
        except InteropError:
            return False
        return bool(np.array_equal(half, constant))

    def quant(self, node, where: str) -> None:
        from qonnx.custom_op.general.quant import quant

        x_name, scale, zeropt, bits = node.input
        attributes = _attributes(node)
        signed, narrow = int(attributes.get("signed", 1)), int(attributes.get("narrow", 0))
        mode = attributes.get("rounding_mode", "ROUND")
        mode = mode.decode() if isinstance(mode, bytes) else mode
        for name in (scale, zeropt, bits):
            if name not in self.consts:
                raise InteropError(f"{where}: scale, zero point and bit width must be constants")
        scale_v, zero_v = self.consts[scale], self.consts[zeropt]
        bits_v = np.asarray(self.consts[bits], np.float64)
        if x_name in self.consts:
            self.consts[node.output[0]] = quant(
                np.asarray(self.consts[x_name], np.float64),
                scale_v,
                zero_v,
                bits_v,
                signed,
                narrow,
                mode,
            )
            return
        if np.any(np.asarray(zero_v) != 0):
            raise InteropError(f"{where}: a non-zero zero point is not supported")
        frac = -np.log2(np.asarray(scale_v, np.float64))
        if bits_v.size != 1 or not np.all(frac == np.round(frac)):
            raise InteropError(
                f"{where}: scales must be powers of two and the bit width one number"
            )
        width = int(bits_v.reshape(-1)[0])
        if signed and width == 1:
            raise InteropError(f"{where}: 1-bit signed (bipolar) quantization is not supported")
        if narrow and not signed:
            raise InteropError(f"{where}: narrow unsigned quantization is not supported")
        rounding = ROUNDING.get(mode.upper())
        if rounding is None:
            raise InteropError(f"{where}: rounding mode {mode} is not supported")
        source = x_name
        if x_name in self.halves:
            source, rounding = self.halves[x_name][0], "RND"
        ref = self.ref(source, node)
        f = np.round(_per_element(frac, ref.shape, where)).astype(np.int64)
        k = np.full(f.shape, signed, np.int64)
        q = Quant(k, width - signed - f, f, rounding, "SAT_SYM" if narrow else "SAT", where)
        self.refs[node.output[0]] = self.builder.quantize(
            ref, self._tightened(ref, q), self.builder.fresh("quant")
        )

    def _tightened(self, ref: Ref, quant: Quant) -> Quant:
        """``quant`` with the smallest formats of the values it gives where its clip never acts
        (a wide ``Quant`` that only rounds, as the exporter writes one where the range is known
        to fit): the same values, declared as narrowly as they are. A model input keeps the
        ``Quant``'s format (real data may lie anywhere)."""
        if ref.source in self.builder.inputs:
            return quant
        fmt = self.builder.format_of(ref)
        shift = np.where(fmt.width > 0, fmt.frac_bits - quant.frac_bits, 0).tolist()
        half = [(1 << (s - 1)) if s > 0 and quant.round_mode == "RND" else 0 for s in shift]
        lo, hi = (
            np.array(
                [
                    v << -s if s <= 0 else (v + c) >> s
                    for v, s, c in zip(b, shift, half, strict=True)
                ],
                object,
            )
            for b in self._exact_range(ref)
        )
        given = TensorFormat(quant.signed, quant.int_bits, quant.frac_bits)
        low, high = given.int_range()
        if np.any(quant.width < 1) or np.any((lo < low) | (hi > high)):
            return quant
        tight = format_of_ranges(lo, hi, quant.frac_bits)
        return Quant(
            tight.signed, tight.int_bits, tight.frac_bits, quant.round_mode, "SAT", quant.where
        )

    def _exact_range(self, ref: Ref) -> tuple[list[int], list[int]]:
        """The integer range of ``ref``'s elements: a linear dense or conv layer's exact
        accumulator range (tighter than its format's), else its format's."""
        layers = [layer for layer in self.builder.layers if layer.name == ref.source]
        layer = layers[0] if layers else None
        if isinstance(layer, DenseLayer | ConvLayer) and layer.activation is Activation.LINEAR:
            dense = layer.to_dense() if isinstance(layer, ConvLayer) else layer
            fmt = self.builder._full_format(layer.inputs[0])
            if np.array_equal(accumulator_frac_bits(dense, fmt), layer.output.frac_bits):
                lo, hi = accumulator_range(dense, fmt)
                return [lo[k] for k in ref.order], [hi[k] for k in ref.order]
        lo, hi = self.builder.format_of(ref).int_range()
        return [int(v) for v in lo], [int(v) for v in hi]

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

    def _sole_reader(self, name: str, op: str):
        readers = self.readers.get(name, [])
        return readers[0] if len(readers) == 1 and readers[0].op_type == op else None

    def _constant_operand(self, node) -> tuple[str, np.ndarray] | None:
        a, b = node.input
        if a in self.consts and node.op_type != "Sub":
            a, b = b, a
        if b not in self.consts or a in self.consts:
            return None
        return a, np.asarray(self.consts[b], np.float64)

    def clip(self, node, where: str) -> None:
        """``Max(x, low)`` then ``Min(·, high)`` (or ``Min`` then ``Max``): saturation into
        the fixed-point format whose range is ``[low, high]``."""
        operand = self._constant_operand(node)
        if operand is None:
            raise InteropError(f"{where}: only a clip by a constant is supported")
        x, bound = operand
        other = "Min" if node.op_type == "Max" else "Max"
        if x not in self.clips:
            if self._sole_reader(node.output[0], other) is None:
                raise InteropError(f"{where}: only Max and Min together (a clip) are supported")
            self.clips[node.output[0]] = (x, bound)
            return
        x, first = self.clips[x]
        low, high = (first, bound) if node.op_type == "Min" else (bound, first)
        ref = self.builder.whole(self.ref(x, node), "clip")
        low, high = (_per_element(v, ref.shape, where) for v in (low, high))
        fmt = self.builder.format_of(Ref(ref.source, np.arange(ref.order.size), ref.shape))
        out = self._format_of_bounds(low, high, fmt.frac_bits, ref, where)
        q = Quant(out.signed.astype(np.int64), out.int_bits, out.frac_bits, "TRN", "SAT", where)
        self.refs[node.output[0]] = self.builder.quantize(ref, _keras_order(q, ref), "clip")

    def _format_of_bounds(self, low, high, frac, ref: Ref, where: str):
        """The formats (in the IR tensor's order) with ranges exactly ``[low, high]``."""
        size = ref.order.size
        low_k = np.broadcast_to(np.asarray(low).reshape(-1), (size,))
        high_k = np.broadcast_to(np.asarray(high).reshape(-1), (size,))
        lo, hi = np.empty(size), np.empty(size)
        lo[ref.order], hi[ref.order] = low_k, high_k
        step = np.exp2(frac.astype(np.float64))
        lo_i, hi_i = lo * step, hi * step
        if not (np.array_equal(lo_i, np.round(lo_i)) and np.array_equal(hi_i, np.round(hi_i))):
            raise InteropError(f"{where}: the bounds are not on the tensor's grid")
        lo_i, hi_i = np.round(lo_i).astype(np.int64), np.round(hi_i).astype(np.int64)
        out = format_of_ranges(lo_i.astype(object), hi_i.astype(object), frac)
        olo, ohi = out.int_range()
        if not (np.array_equal(olo, lo_i) and np.array_equal(ohi, hi_i)):
            raise InteropError(f"{where}: the bounds are not those of a fixed-point format")
        return out

    def wrap(self, node, where: str) -> None:
        """``x − period·Floor((x − low)·(1/period))`` (as the exporter writes ``WRAP``): the
        two's complement wrap into the format of range ``[low, low + period − step]``."""
        if node.output[0] in self.skipped:
            return
        operand = self._constant_operand(node)
        chain = operand and self._sole_reader(node.output[0], "Mul")
        floor = chain and self._sole_reader(chain.output[0], "Floor")
        back = floor and self._sole_reader(floor.output[0], "Mul")
        final = back and self._sole_reader(back.output[0], "Sub")
        if not final or final.input[0] != operand[0] or final.input[1] != back.output[0]:
            raise InteropError(f"{where} is not supported (except in the WRAP pattern)")
        x, low = operand
        inverse = self._constant_operand(chain)[1]
        period = self._constant_operand(back)[1]
        if not np.array_equal(inverse * period, np.ones_like(inverse * period)):
            raise InteropError(f"{where}: the WRAP pattern's periods disagree")
        ref = self.builder.whole(self.ref(x, node), "wrap")
        fmt = self.builder.format_of(Ref(ref.source, np.arange(ref.order.size), ref.shape))
        step = np.exp2(-fmt.frac_bits.astype(np.float64))
        size = ref.order.size
        period_ir, low_ir = np.empty(size), np.empty(size)
        period_ir[ref.order] = _per_element(period, ref.shape, where)
        low_ir[ref.order] = _per_element(low, ref.shape, where)
        high = low_ir + period_ir - step
        low_k, high_k = low_ir[ref.order], high[ref.order]
        out = self._format_of_bounds(low_k, high_k, fmt.frac_bits, ref, where)
        q = Quant(out.signed.astype(np.int64), out.int_bits, out.frac_bits, "TRN", "WRAP", where)
        self.skipped.update({chain.output[0], floor.output[0], back.output[0], final.output[0]})
        self.refs[final.output[0]] = self.builder.quantize(ref, _keras_order(q, ref), "wrap")


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


def _keras_order(quant: Quant, ref: Ref) -> Quant:
    """``quant``'s arrays, given in the IR tensor's order, in the order of ``ref``'s elements."""
    arrays = [np.asarray(v)[ref.order] for v in (quant.signed, quant.int_bits, quant.frac_bits)]
    return Quant(*arrays, quant.round_mode, quant.overflow, quant.where)


def from_qonnx(path_or_model, name: str | None = None) -> IRModel:
    """The IR of a QONNX model (a path or a ``ModelProto``)."""
    import onnx

    model = onnx.load(path_or_model) if isinstance(path_or_model, str | Path) else path_or_model
    reader = _Reader(model)
    reader.read()
    outputs = [reader.ref(o.name, model.graph.node[-1]) for o in model.graph.output]
    if len(outputs) != 1:
        raise InteropError(f"models with {len(outputs)} outputs are not supported")
    model_name = reader.builder.fresh(name or model.graph.name or "qonnx_model")
    raw = reader.builder.model(model_name, outputs[0], {"source": "QONNX"})
    return fuse_requantization(raw)


def check_against_qonnx(ir: IRModel, model, vectors: int, seed: int = 0) -> int:
    """Compare ``ir`` with qonnx's ``execute_onnx`` of ``model`` on random vectors over the
    input formats; raises :class:`InteropError` at the first difference."""
    from .qonnx_export import execute

    drawn = random_inputs(ir, vectors, np.random.default_rng(seed))
    x = drawn if isinstance(drawn, dict) else {ir.inputs[0].name: drawn}
    constants = {t.name for t in model.graph.initializer}
    names = [v.name for v in model.graph.input if v.name not in constants]
    got = execute(_with_batch(model, vectors), ir, x, feed_names=names)
    expected = run(ir, x if len(x) > 1 else next(iter(x.values())))
    if got.shape != expected.shape:
        raise InteropError(
            f"qonnx's execution gives {got.shape[1]} outputs, the imported IR "
            f"{expected.shape[1]}; nothing written"
        )
    bad = np.argwhere(got != expected)
    if bad.size:
        row, element = (int(v) for v in bad[0])
        raise InteropError(
            f"the imported IR differs from qonnx's execution on vector {row}, output element "
            f"{element} (QONNX {got[row, element]}, IR {expected[row, element]}); nothing written"
        )
    return vectors


def _with_batch(model, batch: int):
    """``model`` for batches of ``batch``, every tensor's shape inferred (qonnx needs them)."""
    import copy

    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.infer_shapes import InferShapes

    model = copy.deepcopy(model)
    del model.graph.value_info[:]
    for value in [*model.graph.input, *model.graph.output]:
        dims = value.type.tensor_type.shape.dim
        if dims:
            dims[0].dim_value = batch
    return ModelWrapper(model).transform(InferShapes()).model
