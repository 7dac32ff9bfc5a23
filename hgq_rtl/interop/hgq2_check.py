"""The import's self-check: the IR's integer reference against HGQ2's own forward.

:func:`check_against_keras` draws integer vectors uniformly over every input format (the first
two are each input's lowest and highest integers), gives HGQ2 their real values
(``m · 2^-frac_bits``, exact in float32 for inputs up to 24 bits) and the reference the
integers, and compares HGQ2's outputs, scaled by the output format's LSB, with the reference's
integers: equality, no tolerance. Real data (``--data``) is quantized for the reference with
HGQ2's input quantizer arithmetic and given to HGQ2 as it is. On a difference,
:func:`first_difference` runs the Keras graph tensor by tensor on the offending vector and
names the first layer whose output differs from the IR's tensor.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from hgq_rtl.ir import IRModel
from hgq_rtl.ir.reference import random_inputs, run, run_named

from .hgq2 import Conversion, graph_nodes
from .hgq2_quant import InteropError, Quant, quantize_numpy

#: Vectors HGQ2 evaluates at once.
BATCH = 16384


def _as_dict(ir: IRModel, x) -> dict[str, np.ndarray]:
    return x if isinstance(x, dict) else {ir.inputs[0].name: x}


def _unscale(fmt_frac: np.ndarray, ints: np.ndarray) -> np.ndarray:
    return ints * np.exp2(-fmt_frac.astype(np.float64))


def random_vectors(ir: IRModel, n: int, seed: int) -> dict[str, np.ndarray]:
    """``n`` integer vectors per input; the first two all-lowest and all-highest."""
    x = _as_dict(ir, random_inputs(ir, n, np.random.default_rng(seed)))
    for model_input in ir.inputs:
        lo, hi = model_input.format.int_range()
        if n >= 2:
            x[model_input.name][0], x[model_input.name][1] = lo, hi
    return x


def quantize_data(conversion: Conversion, data: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Real data per input, shaped ``(n, ...)``, as the integers HGQ2's input quantizers give."""
    out = {}
    for model_input in conversion.ir.inputs:
        quant = conversion.input_quants.get(model_input.name)
        values = np.asarray(data[model_input.name], np.float32).reshape(
            len(data[model_input.name]), -1
        )
        in_ir_order = np.empty_like(values)
        in_ir_order[:, conversion.input_orders[model_input.name]] = values
        values = in_ir_order
        if quant is None:
            out[model_input.name] = np.zeros(values.shape, np.int64)
            continue
        # elements no quantizer reads keep a zero-width format: their integer is 0
        fmt = model_input.format
        whole = Quant(
            fmt.signed.astype(np.int64),
            fmt.int_bits,
            fmt.frac_bits,
            quant.round_mode,
            quant.overflow,
            quant.where,
        )
        out[model_input.name] = quantize_numpy(whole, values)
    return out


def keras_outputs(model, real: list[np.ndarray]) -> np.ndarray:
    """HGQ2's outputs (inference) for the real inputs, flattened and concatenated per vector."""
    import keras

    n = len(real[0])
    parts = []
    for start in range(0, n, BATCH):
        batch = [r[start : start + BATCH].astype(keras.config.floatx()) for r in real]
        result = model(batch if len(batch) > 1 else batch[0], training=False)
        result = result if isinstance(result, list | tuple) else [result]
        parts.append(
            np.concatenate(
                [
                    np.asarray(keras.ops.convert_to_numpy(r), np.float64).reshape(len(batch[0]), -1)
                    for r in result
                ],
                axis=1,
            )
        )
    return np.concatenate(parts)


def _real_inputs(model, conversion: Conversion, x: dict, data=None) -> list[np.ndarray]:
    """HGQ2's inputs, in Keras' shapes: ``data`` as it is, or the real values of ``x`` (whose
    elements are in the IR's order)."""
    arrays = []
    for tensor, model_input in zip(model.inputs, conversion.ir.inputs, strict=True):
        if data is not None:
            values = np.asarray(data[model_input.name], np.float64)
        else:
            values = _unscale(model_input.format.frac_bits, x[model_input.name])
            values = values[:, conversion.input_orders[model_input.name]]
        arrays.append(values.reshape((len(values), *tuple(tensor.shape[1:]))))
    return arrays


def check_against_keras(
    conversion: Conversion,
    model,
    x: dict[str, np.ndarray],
    data: dict[str, np.ndarray] | None = None,
    progress: Callable[[str], None] | None = None,
) -> int:
    """Compare the IR (``conversion.ir``) with HGQ2 on integer vectors ``x`` (by input name;
    with ``data``, the real values that ``x`` quantizes). Returns the number of vectors; raises
    :class:`InteropError` naming the first layer, element and vector that differ."""
    ir = conversion.ir
    n = len(next(iter(x.values())))
    real = _real_inputs(model, conversion, x, data)
    expected = run(ir, x if len(x) > 1 else next(iter(x.values())))
    got = keras_outputs(model, real)
    scaled = got * np.exp2(ir.output.frac_bits.astype(np.float64))
    bad = np.argwhere((scaled != expected) | ~np.isfinite(scaled))
    if progress:
        progress(f"checked {n} vectors against HGQ2: {len(np.unique(bad[:, 0]))} differ")
    if bad.size:
        row, element = (int(v) for v in bad[0])
        one = {name: array[row : row + 1] for name, array in x.items()}
        one_real = [r[row : row + 1] for r in real]
        where = first_difference(conversion, model, one, one_real)
        mine = float(expected[row, element]) * 2.0 ** -int(ir.output.frac_bits[element])
        raise InteropError(
            f"the imported IR differs from HGQ2 on vector {row}, output element {element} "
            f"(HGQ2 {got[row, element]!r}, IR {mine!r}): "
            f"{where}; nothing written"
        )
    return n


def first_difference(conversion: Conversion, model, x: dict, real: list[np.ndarray]) -> str:
    """The first Keras layer (in execution order) whose output on the one vector ``x``
    (integers by input name; ``real``, HGQ2's inputs) differs from the IR's exact tensor."""
    import keras

    raw = conversion.raw
    named = run_named(raw, x if len(x) > 1 else next(iter(x.values())))
    values = {
        id(t): keras.ops.convert_to_tensor(r.astype(keras.config.floatx()))
        for t, r in zip(model.inputs, real, strict=True)
    }
    for node in graph_nodes(model):
        args, kwargs = node.arguments.fill_in(values)
        kwargs["training"] = (
            False if "training" in _params(node.operation) else kwargs.get("training")
        )
        if kwargs["training"] is None:
            kwargs.pop("training")
        outputs = node.operation(*args, **kwargs)
        outputs = outputs if isinstance(outputs, list | tuple) else [outputs]
        for tensor, value in zip(node.outputs, outputs, strict=True):
            values[id(tensor)] = value
        ref, layer_name = conversion.refs[id(node.outputs[0])]
        mine = named[ref.source][0, ref.order].astype(np.float64)
        fmt = raw.format_of(ref.source)
        mine = mine * np.exp2(-fmt.frac_bits[ref.order].astype(np.float64))
        theirs = np.asarray(keras.ops.convert_to_numpy(outputs[0]), np.float64).reshape(-1)
        differs = np.flatnonzero(mine != theirs)
        if differs.size:
            k = int(differs[0])
            return (
                f"first at layer {layer_name!r} ({type(node.operation).__name__}), element {k}: "
                f"HGQ2 {theirs[k]!r}, IR {mine[k]!r}"
            )
    return "every layer's output agrees, so the difference is in the requantization merge"


def _params(operation) -> tuple[str, ...]:
    import inspect

    try:
        return tuple(inspect.signature(operation.call).parameters)
    except (TypeError, ValueError):
        return ()
