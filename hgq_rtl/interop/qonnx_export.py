"""The IR as a QONNX model: :func:`to_qonnx` and :func:`export_qonnx`.

Each tensor carries real values (float32, exactly ``m · 2^-frac_bits``), flat ``(N, features)``
between layers; a model input of shape ``(C, *spatial)`` is an ``(N, C, *spatial)`` graph input
(ONNX's channels-first layout is the IR's), flattened by a ``Reshape``. Then:

* a ``dense`` layer is ``MatMul`` by its real weights and ``Add`` of its real bias, the exact
  accumulator, followed by the requantization below;
* a ``conv`` layer is ``Reshape`` to ``(N, C, *spatial)``, ``Conv`` by its real weights and
  bias (strides, symmetric pads, dilations, group), ``Reshape`` back, then the requantization;
  ``maxpool_nd`` is ``MaxPool`` between two ``Reshape`` nodes;
* requantization (a dense layer's tail, a ``quantize`` layer, a model input) is a QONNX
  ``Quant`` node with power-of-two scales ``2^-frac_bits`` per element, zero point 0 and
  rounding ``FLOOR`` — after an ``Add`` of half a step for ``RND`` (round half up) — or
  ``ROUND`` for ``RND_CONV`` (round half to even, numpy's ``round`` in qonnx), then
  ``Relu`` for a ReLU activation, then the overflow: ``SAT`` by the ``Quant`` node's own clip
  when every element has one width and signedness, else by ``Max``/``Min`` with per-element
  bounds; ``WRAP`` as ``x − 2^(w−f)·Floor((x − low) / 2^(w−f))``; nothing where the value
  provably stays in range;
* ``maxpool`` is ``Gather`` of the windows and ``ReduceMax``, ``add`` is ``Add``, ``concat``
  is ``Concat``, ``lookup`` is ``Gather`` from its table at ``x · 2^frac_bits + offset −
  input_low``.

float32 holds 24 significant bits: a model whose tensors or accumulators need more is refused
(naming the layer). :func:`export_qonnx` runs qonnx's ``execute_onnx`` on random vectors over
the input formats and writes the file only when every output equals the IR reference.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hgq_rtl.ir import (
    Activation,
    AddLayer,
    ConcatLayer,
    ConvLayer,
    DenseLayer,
    IRModel,
    LookupLayer,
    MaxPoolLayer,
    MaxPoolNdLayer,
    QuantizeLayer,
    RoundMode,
    TensorFormat,
)
from hgq_rtl.ir.dense import accumulator_frac_bits, accumulator_range
from hgq_rtl.ir.fixed import round_int
from hgq_rtl.ir.layers import quantize_shifts
from hgq_rtl.ir.reference import random_inputs, run

from .hgq2_quant import InteropError

#: Significant bits of float32.
FLOAT32_BITS = 24
QONNX_DOMAIN = "qonnx.custom_op.general"


class _Graph:
    """ONNX nodes, initializers and value infos being collected."""

    def __init__(self) -> None:
        self.nodes: list = []
        self.initializers: list = []
        self.shapes: dict[str, int] = {}  # tensor -> features (the batch dimension is N)
        self.count = 0

    def name(self, base: str) -> str:
        self.count += 1
        return f"{base}_{self.count}"

    def const(self, base: str, values: np.ndarray, dtype=np.float32) -> str:
        from onnx import numpy_helper

        name = self.name(base)
        self.initializers.append(numpy_helper.from_array(np.asarray(values, dtype), name))
        return name

    def node(self, op: str, inputs: list[str], features: int, base: str, **attrs) -> str:
        from onnx import helper

        out = self.name(base)
        domain = QONNX_DOMAIN if op == "Quant" else ""
        self.nodes.append(helper.make_node(op, inputs, [out], domain=domain, **attrs))
        self.shapes[out] = features
        return out


def _exp2(frac: np.ndarray) -> np.ndarray:
    return np.exp2(-np.asarray(frac, np.float64))


def _check_bits(bits: int, where: str) -> None:
    if bits > FLOAT32_BITS:
        raise InteropError(
            f"{where} needs {bits} significant bits; QONNX export computes in float32 "
            f"({FLOAT32_BITS})"
        )


def _requantize(
    g: _Graph,
    x: str,
    values: tuple[list[int], list[int], np.ndarray],
    out: TensorFormat,
    layer,
    where: str,
) -> str:
    """Round the exact values ``x`` (integer range ``lo..hi`` at ``frac`` fractional bits, per
    element) to ``out``'s fractional bits with ``layer``'s round mode, activation and
    overflow."""
    lo, hi, frac = values
    n = out.size
    shift = np.asarray(frac, np.int64) - out.frac_bits
    half = np.where(shift > 0, _exp2(out.frac_bits + 1), 0.0)
    rnd = layer.round_mode is RoundMode.RND
    # the rounded range, exactly, per element
    rlo = [round_int(a, s, layer.round_mode) for a, s in zip(lo, shift.tolist(), strict=True)]
    rhi = [round_int(b, s, layer.round_mode) for b, s in zip(hi, shift.tolist(), strict=True)]
    for a, b, s in zip(lo, hi, shift.tolist(), strict=True):
        _check_bits(max(abs(a), abs(b), 1).bit_length() + 1 + max(0, 1 - s), where)
    if rnd and np.any(half > 0):
        x = g.node("Add", [x, g.const("half", half)], n, "round_half")
    width = out.width
    big = max(max(abs(v) for v in rlo + rhi + [1]).bit_length() + 2, 2)
    olo, ohi = out.int_range()
    uniform = len(set(zip(out.signed.tolist(), width.tolist(), strict=True))) == 1
    sat = layer.overflow.value == "SAT"
    clip_in_quant = sat and uniform and width[0] >= 2 and layer.activation is Activation.LINEAR
    bits = int(width[0]) if clip_in_quant else big
    scale = g.const("scale", _exp2(out.frac_bits))
    x = g.node(
        "Quant",
        [x, scale, g.const("zeropt", 0.0), g.const("bitwidth", float(bits))],
        n,
        "quant",
        signed=int(out.signed[0]) if clip_in_quant else 1,
        narrow=0,
        rounding_mode="ROUND" if layer.round_mode is RoundMode.RND_CONV else "FLOOR",
    )
    if layer.activation is Activation.RELU:
        x = g.node("Relu", [x], n, "relu")
        rlo = [max(v, 0) for v in rlo]
        rhi = [max(v, 0) for v in rhi]
    fits = all(
        a >= int(p) and b <= int(q)
        for a, b, p, q in zip(rlo, rhi, olo.tolist(), ohi.tolist(), strict=True)
    )
    zero = width == 0
    if clip_in_quant or fits:
        pass
    elif sat:
        x = g.node("Max", [x, g.const("low", olo * _exp2(out.frac_bits))], n, "sat_low")
        x = g.node("Min", [x, g.const("high", ohi * _exp2(out.frac_bits))], n, "sat_high")
    else:
        period = np.exp2(width.astype(np.float64)) * _exp2(out.frac_bits)
        shifted = g.node("Sub", [x, g.const("low", olo * _exp2(out.frac_bits))], n, "wrap")
        turns = g.node("Mul", [shifted, g.const("inv_period", 1.0 / period)], n, "wrap")
        turns = g.node("Floor", [turns], n, "wrap")
        back = g.node("Mul", [turns, g.const("period", period)], n, "wrap")
        x = g.node("Sub", [x, back], n, "wrapped")
    if zero.any():
        x = g.node("Mul", [x, g.const("live", (~zero).astype(np.float64))], n, "zero_width")
    return x


def _accumulator(layer: DenseLayer, fmt: TensorFormat, where: str):
    """The exact accumulator ``(lo, hi, frac)`` of ``layer`` on inputs of ``fmt``, refused
    unless every partial sum of the float32 arithmetic is exact (bounded by the sum of
    magnitudes, in whatever order the runtime adds)."""
    live = fmt.width > 0
    if np.any(np.abs(layer.weight[:, live]) >= 1 << FLOAT32_BITS):
        raise InteropError(f"{where}: a weight needs more than {FLOAT32_BITS} bits")
    weight = np.where(live[None, :], layer.weight * _exp2(layer.weight_frac_bits), 0.0)
    frac = accumulator_frac_bits(layer, fmt)
    xmax = np.maximum(np.abs(fmt.int_range()[0]), np.abs(fmt.int_range()[1])) * _exp2(fmt.frac_bits)
    bound = np.abs(weight) @ xmax + np.abs(layer.bias * _exp2(layer.bias_frac_bits))
    for i, (b, f) in enumerate(zip(bound.tolist(), frac.tolist(), strict=True)):
        _check_bits(int(np.ceil(np.log2(b * 2.0**f + 1))) + 1, f"{where} accumulator {i}")
    lo, hi = accumulator_range(layer, fmt)
    return lo, hi, frac


def _dense(g: _Graph, layer: DenseLayer, x: str, fmt: TensorFormat) -> str:
    where = f"layer {layer.name!r}"
    values = _accumulator(layer, fmt, where)
    weight = np.where((fmt.width > 0)[None, :], layer.weight * _exp2(layer.weight_frac_bits), 0.0)
    acc = g.node("MatMul", [x, g.const("weight", weight.T)], layer.out_features, "matmul")
    bias = layer.bias * _exp2(layer.bias_frac_bits)
    if np.any(bias != 0):
        acc = g.node("Add", [acc, g.const("bias", bias)], layer.out_features, "bias")
    return _requantize(g, acc, values, layer.output, layer, where)


def _reshape(g: _Graph, x: str, shape: tuple[int, ...], base: str) -> str:
    """``x`` viewed as ``(N, *shape)``."""
    target = g.const("shape", [-1, *shape], np.int64)
    return g.node("Reshape", [x, target], tuple(shape) if len(shape) > 1 else shape[0], base)


def _spatial(g: _Graph, layer: ConvLayer | MaxPoolNdLayer, x: str) -> str:
    """``Conv`` (the exact real accumulator) or ``MaxPool`` of the flat ``x``, flat again."""
    geometry = dict(
        kernel_shape=list(layer.kernel),
        strides=list(layer.stride),
        pads=list(layer.padding) * 2,
        dilations=list(layer.dilation),
    )
    image = _reshape(g, x, layer.in_shape, "image")
    if isinstance(layer, MaxPoolNdLayer):
        out = g.node("MaxPool", [image], layer.out_shape, "maxpool", **geometry)
    else:
        inputs = [image, g.const("weight", layer.weight * _exp2(layer.weight_frac_bits))]
        bias = layer.bias * _exp2(layer.bias_frac_bits)
        if np.any(bias != 0):
            inputs.append(g.const("bias", bias))
        out = g.node("Conv", inputs, layer.out_shape, "conv", group=layer.groups, **geometry)
    return _reshape(g, out, (layer.output.size,), "flat")


def _conv(g: _Graph, layer: ConvLayer, x: str, fmt: TensorFormat) -> str:
    where = f"layer {layer.name!r}"
    values = _accumulator(layer.to_dense(), fmt, where)
    return _requantize(g, _spatial(g, layer, x), values, layer.output, layer, where)


def _quantize(g: _Graph, layer: QuantizeLayer, x: str, fmt: TensorFormat) -> str:
    lo, hi = fmt.int_range()
    shift = quantize_shifts(layer, fmt)
    frac = layer.output.frac_bits + shift
    return _requantize(g, x, (lo.tolist(), hi.tolist(), frac), layer.output, layer, layer.name)


def _lookup(g: _Graph, layer: LookupLayer, x: str, fmt: TensorFormat) -> str:
    n = layer.output.size
    index = g.node(
        "Mul", [x, g.const("to_int", np.exp2(fmt.frac_bits.astype(np.float64)))], n, "lut"
    )
    index = g.node("Add", [index, g.const("offset", layer.offsets - layer.input_low)], n, "lut")
    from onnx import TensorProto

    index = g.node("Cast", [index], n, "lut_index", to=TensorProto.INT64)
    _check_bits(int(np.abs(layer.table).max(initial=1)).bit_length(), f"layer {layer.name!r} table")
    value = g.node("Gather", [g.const("table", layer.table), index], n, "lut_value", axis=0)
    return g.node("Mul", [value, g.const("scale", _exp2(layer.output.frac_bits))], n, "lut_out")


class _InputQuantization:
    """The requantization modes of a model input: round half up, linear, its overflow."""

    def __init__(self, overflow) -> None:
        self.round_mode = RoundMode.RND
        self.activation = Activation.LINEAR
        self.overflow = overflow


def to_qonnx(ir: IRModel, batch: int = 1):
    """The ONNX ``ModelProto`` of ``ir`` for batches of ``batch`` vectors (see the module
    docstring)."""
    from onnx import TensorProto, helper

    g = _Graph()
    tensors: dict[str, str] = {}
    graph_inputs = []
    for model_input in ir.inputs:
        fmt = model_input.format
        _check_bits(int(fmt.width.max(initial=0)) + 1, f"input {model_input.name!r}")
        shape = tuple(model_input.shape or (fmt.size,))
        graph_inputs.append(
            helper.make_tensor_value_info(model_input.name, TensorProto.FLOAT, [batch, *shape])
        )
        source = model_input.name
        if len(shape) > 1:
            source = _reshape(g, source, (fmt.size,), "input_flat")
        # real inputs brought into the input format as quantize_input does: any value may
        # arrive (so the overflow is always built), rounded half up from below the step
        lo, hi = fmt.int_range()
        unbounded = ((2 * lo - 4).tolist(), (2 * hi + 4).tolist(), fmt.frac_bits + 1)
        tensors[model_input.name] = _requantize(
            g,
            source,
            unbounded,
            fmt,
            _InputQuantization(model_input.overflow),
            f"input {model_input.name!r}",
        )
    for layer in ir.layers:
        formats = ir.input_formats_of(layer)
        sources = [tensors[name] for name in ir.inputs_of(layer)]
        n = layer.output.size
        if isinstance(layer, DenseLayer):
            out = _dense(g, layer, sources[0], formats[0])
        elif isinstance(layer, ConvLayer):
            out = _conv(g, layer, sources[0], formats[0])
        elif isinstance(layer, MaxPoolNdLayer):
            out = _spatial(g, layer, sources[0])
        elif isinstance(layer, QuantizeLayer):
            out = _quantize(g, layer, sources[0], formats[0])
        elif isinstance(layer, MaxPoolLayer):
            windows = g.const("windows", layer.windows, np.int64)
            gathered = g.node("Gather", [sources[0], windows], n, "pool", axis=1)
            g.shapes[gathered] = (n, layer.windows.shape[1])
            out = g.node("ReduceMax", [gathered], n, "maxpool", axes=[2], keepdims=0)
        elif isinstance(layer, AddLayer):
            out = sources[0]
            for other in sources[1:]:
                out = g.node("Add", [out, other], n, "add")
        elif isinstance(layer, ConcatLayer):
            out = g.node("Concat", sources, n, "concat", axis=1)
        elif isinstance(layer, LookupLayer):
            out = _lookup(g, layer, sources[0], formats[0])
        else:
            raise InteropError(f"layer {layer.name!r} ({layer.kind}) cannot be exported to QONNX")
        tensors[layer.name] = out
    output = tensors[ir.layers[-1].name]
    value_infos = []
    for name, features in g.shapes.items():
        if name == output or name in ir.input_names:
            continue
        shape = [batch, *features] if isinstance(features, tuple) else [batch, features]
        elem = TensorProto.INT64 if name.startswith("lut_index") else TensorProto.FLOAT
        value_infos.append(helper.make_tensor_value_info(name, elem, shape))
    graph = helper.make_graph(
        g.nodes,
        ir.name,
        graph_inputs,
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, [batch, ir.output.size])],
        initializer=g.initializers,
        value_info=value_infos,
    )
    model = helper.make_model(
        graph,
        producer_name="hgq-rtl",
        opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(QONNX_DOMAIN, 1)],
    )
    model.ir_version = 8
    return model


def execute(
    model, ir: IRModel, x: dict[str, np.ndarray], feed_names: list[str] | None = None
) -> np.ndarray:
    """qonnx's ``execute_onnx`` of ``model`` (built for the batch size of ``x``) on the real
    values of integer vectors ``x`` (by IR input name; fed to the graph inputs ``feed_names``,
    in the IR's input order, default the same names); returns the outputs as integers of
    ``ir``'s output format."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx

    wrapper = ModelWrapper(model)
    output = model.graph.output[0].name
    feed_names = feed_names or [i.name for i in ir.inputs]
    dims = {
        value.name: [d.dim_value for d in value.type.tensor_type.shape.dim][1:]
        for value in model.graph.input
    }
    real = {
        feed: (x[i.name] * _exp2(i.format.frac_bits)).astype(np.float32).reshape(-1, *dims[feed])
        for feed, i in zip(feed_names, ir.inputs, strict=True)
    }
    result = np.asarray(execute_onnx(wrapper, real)[output], np.float64)
    result = result.reshape(len(result), -1)  # an image output in C order, as the IR's
    scaled = result * np.exp2(ir.output.frac_bits.astype(np.float64))
    if not np.array_equal(scaled, np.round(scaled)):
        raise InteropError("the QONNX model gives a value off the output format's grid")
    return np.round(scaled).astype(np.int64)


def export_qonnx(ir: IRModel, path: str | Path, vectors: int = 200, seed: int = 0) -> int:
    """Write ``ir`` as QONNX to ``path`` after checking ``execute_onnx`` against the IR
    reference on ``vectors`` random vectors (the first two the lowest and highest inputs);
    returns that number. Nothing is written when they differ."""
    import onnx

    model = to_qonnx(ir)
    checked = to_qonnx(ir, batch=vectors)
    rng = np.random.default_rng(seed)
    drawn = random_inputs(ir, vectors, rng)
    x = drawn if isinstance(drawn, dict) else {ir.inputs[0].name: drawn}
    for model_input in ir.inputs:
        lo, hi = model_input.format.int_range()
        if vectors >= 2:
            x[model_input.name][0], x[model_input.name][1] = lo, hi
    expected = run(ir, x if len(x) > 1 else next(iter(x.values())))
    got = execute(checked, ir, x)
    bad = np.argwhere(got != expected)
    if bad.size:
        row, element = (int(v) for v in bad[0])
        raise InteropError(
            f"the QONNX model differs from the IR on vector {row}, output element {element} "
            f"(QONNX {got[row, element]}, IR {expected[row, element]}); nothing written"
        )
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    onnx.save(model, tmp)
    tmp.replace(path)
    return vectors
