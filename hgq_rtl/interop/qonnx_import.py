"""QONNX models with power-of-two scales to the IR: :func:`from_qonnx`.

Tensors are ``(1, features)`` or, for images, ``(1, C, *spatial)`` (a batch of one); the graph's
nodes are read in their order (QONNX files are topologically sorted). ONNX keeps images
channels-first, as the IR's ``conv`` and ``maxpool_nd`` layers read them, so an image input is
laid out in the IR exactly as in ONNX (C order of ``(C, *spatial)``). Supported:

* ``Quant`` (``qonnx.custom_op.general``) with zero point 0 and power-of-two scales (per element,
  channel or tensor): on a constant it is folded (qonnx's own arithmetic); on a tensor it is an
  IR ``quantize`` (or, on a model input, the input's format). It clips, then rounds ``x / scale``:
  ``FLOOR`` is the IR's ``TRN``; ``FLOOR`` after an ``Add`` of half a step to the same tensor is
  ``RND`` (round half up, what :mod:`~hgq_rtl.interop.qonnx_export` writes); ``ROUND`` and
  ``HALF_EVEN`` (Brevitas' default, numpy's ``round``) are ``RND_CONV`` (round half to even);
  the other modes only where no value is rounded. ``narrow`` only where the lowest value is
  never reached; a 1-bit signed ``Quant`` (bipolar) is refused.
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

from pathlib import Path

import numpy as np

from hgq_rtl.ir import (
    Activation,
    ConvLayer,
    DenseLayer,
    IRModel,
    MaxPoolLayer,
    RoundMode,
    TensorFormat,
)
from hgq_rtl.ir.dense import accumulator_frac_bits, accumulator_range
from hgq_rtl.ir.fixed import round_int
from hgq_rtl.ir.formats import exact_maxpool_format, format_of_ranges
from hgq_rtl.ir.reference import random_inputs, run

from .hgq2_graph import GraphBuilder, Ref, fuse_requantization
from .hgq2_quant import InteropError, Quant, exact_fixed
from .qonnx_spatial import SPATIAL, SpatialNodes, _attributes, _per_element

ROUNDING = {"FLOOR": "TRN", "ROUND": "RND_CONV", "HALF_EVEN": "RND_CONV", "HALF_UP": "RND_INF"}


class _Reader(SpatialNodes):
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
        # another mode is refused where it rounds (GraphBuilder.quantize)
        mode = RoundMode.__members__.get(quant.round_mode, RoundMode.TRN)
        lo, hi = (
            np.array([round_int(v, s, mode) for v, s in zip(b, shift, strict=True)], object)
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
