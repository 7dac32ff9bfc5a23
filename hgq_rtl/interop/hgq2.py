"""HGQ2 (Keras 3) models to the IR: :func:`load_keras` and :func:`convert`.

The Keras functional graph is walked in Keras' own execution order; each layer maps to IR
layers through :class:`~hgq_rtl.interop.hgq2_graph.GraphBuilder`, reading the quantizer values
stored in the model (:mod:`~hgq_rtl.interop.hgq2_quant`) and the quantized weights that HGQ2
itself computes (``qkernel``, ``qbias``), written exactly as integers with their fewest
fractional bits. Supported: ``QDense`` (and ``QBatchNormDense``, whose fused kernel HGQ2
computes), ``QAdd``, ``QUnaryFunctionLUT`` (a lookup table filled by HGQ2's own forward on
every input value), output quantizers, Keras ``Activation``/``ReLU`` (ReLU or linear),
``Reshape``, ``Flatten``, ``Concatenate``, ``Add``, ``Dropout``, several model inputs and
outputs. Anything else raises :class:`~hgq_rtl.interop.hgq2_quant.InteropError` naming the
layer and its class.

Keras and HGQ2 are imported inside the functions (the ``interop`` extra); Keras runs on the
torch backend unless ``KERAS_BACKEND`` says otherwise.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hgq_rtl.ir import IRModel, LookupLayer, TensorFormat

from .hgq2_graph import GraphBuilder, Ref, fuse_requantization
from .hgq2_quant import InteropError, exact_fixed, read_quantizer
from .hgq2_spatial import affine_by_probing, average_pool, conv, global_pool, max_pool

#: Most entries a lookup table of a QUnaryFunctionLUT may have per element (2^16).
MAX_LUT_INPUT_BITS = 16


def load_keras(path: str | Path):
    """Load a ``.keras`` model (HGQ2's layers registered), on the torch backend by default."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    path = Path(path)
    if not path.is_file():
        raise InteropError(f"no model file {str(path)!r}")
    try:
        import hgq  # noqa: F401  (registers HGQ2's layers with Keras)
        import keras
    except ImportError as error:
        raise InteropError(
            f"{error}: install the interop extra (pip install -e '.[interop]')"
        ) from error
    try:
        return keras.models.load_model(path, compile=False)
    except Exception as error:  # Keras raises many kinds on a bad file
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise InteropError(f"cannot load {str(path)!r} as a Keras model: {first}") from error


@dataclass
class Conversion:
    """An imported model: the IR as built (every Keras tensor exact, ``raw``), the IR to write
    (dense layers merged with their requantization, ``ir``), and for each Keras tensor (by
    ``id``) its :class:`Ref` in ``raw`` and the layer that produced it."""

    raw: IRModel
    ir: IRModel
    refs: dict[int, tuple[Ref, str]] = field(default_factory=dict)
    input_quants: dict = field(default_factory=dict)
    #: per model input, for each Keras element (C order) its element in the IR input
    input_orders: dict[str, np.ndarray] = field(default_factory=dict)


def _shape(tensor, where: str) -> tuple[int, ...]:
    shape = tuple(tensor.shape[1:])
    if any(d is None for d in shape):
        raise InteropError(f"{where}: tensor shape {shape} is not fully known")
    return tuple(int(d) for d in shape)


def graph_nodes(model):
    """The model's call nodes in Keras' execution order (deepest first, as Keras runs them)."""
    nodes_by_depth = model._nodes_by_depth
    for depth in sorted(nodes_by_depth, reverse=True):
        for node in nodes_by_depth[depth]:
            if node.operation is not None and not node.is_input:
                yield node


def convert(model, name: str | None = None) -> Conversion:
    """The IR of HGQ2 model ``model`` (see the module docstring)."""
    builder = GraphBuilder()
    refs: dict[int, tuple[Ref, str]] = {}
    single_flat = len(model.inputs) == 1 and len(model.inputs[0].shape) == 2
    for tensor in model.inputs:
        input_name = "input" if single_flat else builder.fresh(tensor.name)
        builder.names.discard(input_name)
        refs[id(tensor)] = (builder.add_input(input_name, _shape(tensor, input_name)), "")
    for node in graph_nodes(model):
        layer = node.operation
        where = f"layer {layer.name!r} ({type(layer).__name__})"
        inputs = [refs[id(t)][0] for t in node.input_tensors]
        outputs = node.outputs
        if len(outputs) != 1:
            raise InteropError(f"{where}: layers with {len(outputs)} outputs are not supported")
        out_shape = _shape(outputs[0], where)
        result = _convert_layer(builder, layer, inputs, out_shape, where)
        if result.shape != out_shape:
            raise InteropError(f"{where}: shape {result.shape} where Keras has {out_shape}")
        refs[id(outputs[0])] = (result, layer.name)
    outs = [refs[id(t)][0] for t in model.outputs]
    output = outs[0] if len(outs) == 1 else builder.concat(outs, "outputs")
    model_name = builder.fresh(name or model.name or "hgq2_model")
    metadata = {"source": "HGQ2", "keras_model": model.name}
    input_quants = {n: p.quant for n, p in builder.inputs.items()}
    pairs = zip(builder.inputs, model.inputs, strict=True)
    orders = {name: refs[id(tensor)][0].order for name, tensor in pairs}
    raw = builder.model(model_name, output, metadata)
    return Conversion(raw, fuse_requantization(raw), refs, input_quants, orders)


#: Layer classes (by name, from hgq or keras) and the converter of each kind.
CONVOLUTIONS = {"QConv1D", "QConv2D"}
MAX_POOLS = {"QMaxPooling1D", "QMaxPooling2D", "MaxPooling1D", "MaxPooling2D"}
AVERAGE_POOLS = {"QAveragePooling1D", "QAveragePooling2D", "AveragePooling1D", "AveragePooling2D"}
GLOBAL_POOLS = {
    f"{q}Global{kind}Pooling{d}D": kind.lower()[:3]
    for q in ("", "Q")
    for kind in ("Max", "Average")
    for d in (1, 2)
}
AFFINE = {"QEinsumDense", "QEinsumDenseBatchnorm", "QBatchNormalization"}
QUANTIZED = {"QDense", "QBatchNormDense", "QAdd", "QUnaryFunctionLUT"}


def _convert_layer(builder: GraphBuilder, layer, inputs: list[Ref], out_shape, where) -> Ref:
    import keras

    kind = type(layer).__name__
    module = type(layer).__module__
    if not module.startswith(("hgq.", "keras.")):
        raise InteropError(f"{where} is not supported")
    if kind in AFFINE:
        return affine_by_probing(builder, layer, inputs[0], out_shape, where)
    if kind == "QUnaryFunctionLUT":
        return _lookup(builder, layer, inputs[0], where)
    if kind in CONVOLUTIONS:
        activation = _activation_name(layer.activation)
        if activation not in ("linear", "relu"):
            raise InteropError(f"{where}: activation {activation!r} is not supported")
        result = conv(builder, layer, inputs[0], where, activation)
    elif kind in MAX_POOLS:
        result = max_pool(builder, layer, inputs[0], where)
    elif kind in AVERAGE_POOLS:
        result = average_pool(builder, layer, inputs[0], where)
    elif kind in GLOBAL_POOLS:
        result = global_pool(builder, layer, inputs[0], where, GLOBAL_POOLS[kind])
    elif kind in ("QDense", "QBatchNormDense"):
        result = _dense(builder, layer, inputs[0], where)
    elif kind == "QAdd":
        quants = (
            [
                read_quantizer(q, r.shape, f"{where} input quantizer {k}")
                for k, (q, r) in enumerate(zip(layer.iq, inputs, strict=True))
            ]
            if layer.enable_iq
            else [None] * len(inputs)
        )
        quantized = [
            builder.quantize(r, q, f"{layer.name}_in{k}")
            for k, (r, q) in enumerate(zip(inputs, quants, strict=True))
        ]
        result = builder.add(quantized, layer.name)
    elif isinstance(layer, keras.layers.Dropout):
        return inputs[0]
    elif kind in ("Reshape", "Flatten"):
        return inputs[0].reshaped(out_shape)
    elif kind in ("Activation", "ReLU"):
        return _activation(builder, layer, inputs[0], where)
    elif kind == "Add":
        return builder.add(inputs, layer.name)
    elif kind == "Concatenate":
        return _concatenate(builder, layer, inputs, out_shape)
    else:
        raise InteropError(f"{where} is not supported")
    if getattr(layer, "enable_oq", False):
        quant = read_quantizer(layer.oq, result.shape, f"{where} output quantizer")
        result = builder.quantize(result, quant, f"{layer.name}_out")
    return result


def _activation_name(function) -> str:
    return getattr(function, "__name__", type(function).__name__)


def _activation(builder: GraphBuilder, layer, ref: Ref, where: str) -> Ref:
    import keras

    if isinstance(layer, keras.layers.ReLU):
        plain = (
            layer.max_value is None
            and float(layer.negative_slope) == 0.0
            and float(layer.threshold) == 0.0
        )
        if not plain:
            raise InteropError(f"{where}: only a plain ReLU is supported")
        return builder.relu(ref, layer.name)
    name = _activation_name(layer.activation)
    if name == "linear":
        return ref
    if name == "relu":
        return builder.relu(ref, layer.name)
    raise InteropError(f"{where}: activation {name!r} is not supported (use QUnaryFunctionLUT)")


def _numpy(value) -> np.ndarray:
    from keras import ops

    return np.asarray(ops.convert_to_numpy(value), np.float64)


def _dense(builder: GraphBuilder, layer, ref: Ref, where: str) -> Ref:
    activation = _activation_name(layer.activation)
    if activation not in ("linear", "relu"):
        raise InteropError(f"{where}: activation {activation!r} is not supported")
    if layer.enable_iq:
        quant = read_quantizer(layer.iq, ref.shape, f"{where} input quantizer")
        ref = builder.quantize(ref, quant, f"{layer.name}_in")
    kernel = exact_fixed(_numpy(layer.qkernel), f"{where} kernel")
    units = kernel[0].shape[1]
    if layer.use_bias:
        bias = exact_fixed(_numpy(layer.qbias), f"{where} bias")
    else:
        bias = (np.zeros(units, np.int64), np.zeros(units, np.int64))
    return builder.dense(ref, kernel, bias, activation == "relu", layer.name)


def _lookup(builder: GraphBuilder, layer, ref: Ref, where: str) -> Ref:
    """A QUnaryFunctionLUT as a lookup table: HGQ2's own forward (input quantizer, function,
    output quantizer) on every integer of each element's input format."""
    import keras

    if layer.enable_iq:
        quant = read_quantizer(layer.iq, ref.shape, f"{where} input quantizer")
        ref = builder.quantize(ref, quant, f"{layer.name}_in")
    if not layer.enable_oq:
        raise InteropError(f"{where}: a table without an output quantizer is not supported")
    ref = builder.materialize(ref, layer.name)
    fmt = builder.format_of(ref)
    if fmt.width.max(initial=0) > MAX_LUT_INPUT_BITS:
        raise InteropError(
            f"{where}: an input of {int(fmt.width.max())} bits is wider than the "
            f"{MAX_LUT_INPUT_BITS} a table may read"
        )
    lo, hi = fmt.int_range()
    rows = int((hi - lo).max(initial=0)) + 1
    grid = lo[None, :] + np.minimum(np.arange(rows)[:, None], (hi - lo)[None, :])
    real = grid * np.exp2(-fmt.frac_bits.astype(np.float64))
    batch = real.reshape((rows, *ref.shape)).astype(keras.config.floatx())
    values = _numpy(layer(batch, training=False)).reshape(rows, -1)
    quant = read_quantizer(layer.oq, ref.shape, f"{where} output quantizer")
    out = TensorFormat(quant.signed, quant.int_bits, quant.frac_bits)
    scaled = values * np.exp2(out.frac_bits.astype(np.float64))
    if not np.array_equal(scaled, np.round(scaled)):
        raise InteropError(f"{where}: table values are not on the output quantizer's grid")
    ints = np.round(scaled).astype(np.int64)
    table, offsets, slices = [], np.zeros(out.size, np.int64), {}
    position = 0
    for k in range(out.size):
        piece = ints[: int(hi[k] - lo[k]) + 1, k]
        key = piece.tobytes()
        if key not in slices:
            slices[key] = position
            table.append(piece)
            position += piece.size
        offsets[k] = slices[key]
    layer_ir = LookupLayer(
        builder.fresh(layer.name), lo, offsets, np.concatenate(table), out, (ref.source,)
    )
    return builder.add_layer(layer_ir, ref.shape)


def _concatenate(builder: GraphBuilder, layer, inputs: list[Ref], out_shape) -> Ref:
    flat = builder.concat(inputs, layer.name)
    parts, start = [], 0
    for ref in inputs:
        size = int(np.prod(ref.shape, dtype=np.int64))
        parts.append(np.arange(start, start + size).reshape(ref.shape))
        start += size
    order = np.concatenate(parts, axis=layer.axis).reshape(-1)
    return Ref(flat.source, order, tuple(out_shape))
