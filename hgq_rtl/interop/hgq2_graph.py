"""The IR being built from a Keras graph: tensors, requantization, and the layer kinds every HGQ2
layer maps to.

Every Keras tensor of the model maps to a :class:`Ref`: an IR tensor (a model input or a layer
output) and, for each element of the Keras tensor in C order, the IR element that holds it
(reshapes, flattening and slicing only change that map). An IR tensor holds the Keras tensor's
values **exactly**: a dense layer's output is its exact accumulator (after ReLU), and each HGQ2
quantizer becomes a ``quantize`` layer where it is applied; :func:`fuse_requantization` then
merges each dense layer with the one ``quantize`` layer that reads it, which is what hardware
builds. A model input gets the format of the quantizer that first reads it.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

import numpy as np

from hgq_rtl.ir import (
    Activation,
    AddLayer,
    ConcatLayer,
    ConvLayer,
    DenseLayer,
    IRModel,
    MaxPoolLayer,
    ModelInput,
    Overflow,
    QuantizeLayer,
    RoundMode,
    TensorFormat,
)
from hgq_rtl.ir.dense import accumulator_frac_bits, accumulator_range
from hgq_rtl.ir.fixed import round_int
from hgq_rtl.ir.formats import concat_formats, exact_add_format, format_of_ranges

from .hgq2_quant import DIRECT_ROUND, InteropError, Quant


@dataclass(frozen=True)
class Ref:
    """A Keras tensor in the IR: IR tensor ``source``; Keras element ``k`` (C order of ``shape``)
    is IR element ``order[k]``."""

    source: str
    order: np.ndarray  # int64 (prod(shape),)
    shape: tuple[int, ...]

    def reshaped(self, shape: tuple[int, ...]) -> Ref:
        return Ref(self.source, self.order, tuple(int(d) for d in shape))


@dataclass
class _PendingInput:
    name: str
    shape: tuple[int, ...]
    signed: np.ndarray
    int_bits: np.ndarray
    frac_bits: np.ndarray
    assigned: np.ndarray  # bool: an input quantizer fixed this element's format
    quant: Quant | None = None  # the first quantizer that read it (modes for real data)


class GraphBuilder:
    """Collects IR inputs and layers while the Keras graph is walked in topological order."""

    def __init__(self) -> None:
        self.layers: list = []
        self.formats: dict[str, TensorFormat] = {}
        self.inputs: dict[str, _PendingInput] = {}
        self.names: set[str] = set()
        #: a second quantizer of a model input with the same fractional bits (a clip or wrap
        #: after a wide rounding, as QONNX writes them) becomes the input's format
        self.narrow_inputs = False

    # --- names and tensors -------------------------------------------------------------------

    def fresh(self, name: str) -> str:
        """An identifier from ``name``, unique in the model and not ``input``."""
        base = re.sub(r"\W", "_", name) or "layer"
        if not base[0].isalpha() and base[0] != "_":
            base = f"l_{base}"
        candidate, k = base, 1
        while candidate in self.names or candidate == "input":
            candidate, k = f"{base}_{k}", k + 1
        self.names.add(candidate)
        return candidate

    def add_input(self, name: str, shape: tuple[int, ...]) -> Ref:
        """A model input of Keras shape ``shape``; one of two or more dimensions,
        ``(*spatial, C)`` as Keras keeps images, is laid out ``(C, *spatial)`` in the IR, as
        its ``conv`` and ``maxpool_nd`` layers (and stream designs) read it."""
        size = int(np.prod(shape, dtype=np.int64))
        ir_shape = (shape[-1], *shape[:-1]) if len(shape) > 1 else tuple(shape)
        order = np.moveaxis(np.arange(size).reshape(ir_shape), 0, -1).reshape(-1)
        zeros = np.zeros(size, np.int64)
        self.names.add(name)
        self.inputs[name] = _PendingInput(
            name, ir_shape, zeros.copy(), zeros.copy(), zeros.copy(), np.zeros(size, bool)
        )
        return Ref(name, order, tuple(shape))

    def _add(self, layer) -> str:
        self.layers.append(layer)
        self.formats[layer.name] = layer.output
        return layer.name

    def format_of(self, ref: Ref) -> TensorFormat:
        """The formats of ``ref``'s elements (in Keras order)."""
        if ref.source in self.inputs:
            pending = self.inputs[ref.source]
            if not pending.assigned[ref.order].all():
                raise InteropError(f"model input {ref.source!r} is read before it is quantized")
            fmt = TensorFormat(pending.signed, pending.int_bits, pending.frac_bits)
        else:
            fmt = self.formats[ref.source]
        return TensorFormat(
            fmt.signed[ref.order], fmt.int_bits[ref.order], fmt.frac_bits[ref.order]
        )

    def whole(self, ref: Ref, name: str) -> Ref:
        """``ref`` itself when its elements are all of its IR tensor (in any order), else
        :meth:`materialize`."""
        size = self._source_size(ref.source)
        if ref.order.size == size and np.array_equal(np.sort(ref.order), np.arange(size)):
            return ref
        return self.materialize(ref, name)

    def materialize(self, ref: Ref, name: str) -> Ref:
        """``ref`` as a whole IR tensor in Keras order: itself when it is one, else a wiring-only
        ``maxpool`` layer of one-element windows that gathers its elements."""
        size = self._source_size(ref.source)
        if ref.order.size == size and np.array_equal(ref.order, np.arange(size)):
            return ref
        fmt = self.format_of(ref)
        layer = MaxPoolLayer(
            self.fresh(f"{name}_gather"), ref.order[:, None].copy(), fmt, inputs=(ref.source,)
        )
        return Ref(self._add(layer), np.arange(ref.order.size), ref.shape)

    def _source_size(self, source: str) -> int:
        if source in self.inputs:
            return int(self.inputs[source].assigned.size)
        return self.formats[source].size

    # --- quantizers ----------------------------------------------------------------------------

    def quantize(self, ref: Ref, quant: Quant | None, name: str) -> Ref:
        """``quant`` applied to ``ref`` (``None``: pass-through)."""
        if quant is None:
            return ref
        if ref.source in self.inputs and not self.inputs[ref.source].assigned[ref.order].any():
            return self._assign_input(ref, quant)
        ref = self.whole(ref, name)
        fmt = self._full_format(ref.source)
        if ref.source in self.inputs:
            if self.narrow_inputs and self._narrow_input(ref, quant, fmt):
                return ref
            self._check_input_requantization(ref, quant, fmt)
        quant = _in_source_order(quant, ref.order)
        shift = np.where(fmt.width > 0, fmt.frac_bits - quant.frac_bits, 0)
        rounds = (shift > 0) & (quant.width > 0)
        round_mode = DIRECT_ROUND.get(quant.round_mode)
        if round_mode is None and rounds.any():
            raise InteropError(
                f"{quant.where}: round mode {quant.round_mode} rounds element "
                f"{int(np.flatnonzero(rounds)[0])} (only RND, TRN and RND_CONV are supported "
                "there)"
            )
        out = TensorFormat(quant.signed, quant.int_bits, quant.frac_bits)
        overflow = self._overflow(fmt, quant, shift, round_mode or "RND")
        if self._is_identity(fmt, out, shift):
            return ref
        layer = QuantizeLayer(
            self.fresh(f"{name}_q"),
            out,
            Activation.LINEAR,
            RoundMode[round_mode or "RND"],
            Overflow[overflow],
            inputs=(ref.source,),
        )
        return Ref(self._add(layer), ref.order, ref.shape)

    def _narrow_input(self, ref: Ref, quant: Quant, fmt: TensorFormat) -> bool:
        pending = self.inputs[ref.source]
        same_frac = np.array_equal(fmt.frac_bits[ref.order], quant.frac_bits)
        if not same_frac or ref.order.size != pending.assigned.size:
            return False
        pending.signed[ref.order] = quant.signed
        pending.int_bits[ref.order] = quant.int_bits
        pending.quant = quant
        return True

    def _check_input_requantization(self, ref: Ref, quant: Quant, fmt: TensorFormat) -> None:
        """A model input quantized twice, differently: real data would be rounded twice."""
        pending = self.inputs[ref.source]
        q = TensorFormat(quant.signed, quant.int_bits, quant.frac_bits)
        mine = TensorFormat(
            fmt.signed[ref.order], fmt.int_bits[ref.order], fmt.frac_bits[ref.order]
        )
        if q != mine:
            raise InteropError(
                f"{quant.where}: model input {ref.source!r} is quantized differently here and "
                f"by {pending.quant.where if pending.quant else 'another layer'}"
            )

    @staticmethod
    def _rounded_range(fmt: TensorFormat, shift: np.ndarray, mode: str):
        lo, hi = fmt.int_range()
        lo, hi = lo.astype(object), hi.astype(object)
        live = fmt.width > 0
        result = []
        for bound in (lo, hi):
            values = []
            for v, s, alive in zip(bound.tolist(), shift.tolist(), live.tolist(), strict=True):
                if not alive:
                    values.append(0)
                else:
                    values.append(round_int(v, s, RoundMode[mode]))
            result.append(values)
        return result

    def _overflow(self, fmt: TensorFormat, quant: Quant, shift: np.ndarray, mode: str) -> str:
        if quant.overflow != "SAT_SYM":
            return quant.overflow
        # SAT_SYM clips signed elements to -(2^i - 2^-f): as SAT where the rounded value never
        # reaches the format's lowest integer
        lo, _ = self._rounded_range(fmt, shift, mode)
        width = quant.width
        lowest = [-(1 << (int(w) - 1)) if w > 0 else 0 for w in width]
        bad = [
            k
            for k, (v, low, s) in enumerate(zip(lo, lowest, quant.signed.tolist(), strict=True))
            if s and width[k] > 0 and v <= low
        ]
        if bad:
            raise InteropError(
                f"{quant.where}: SAT_SYM on signed element {bad[0]}, which can reach the lowest "
                "value of its format, is not supported"
            )
        return "SAT"

    def _is_identity(self, fmt: TensorFormat, out: TensorFormat, shift: np.ndarray) -> bool:
        """Whether requantizing ``fmt`` to ``out`` changes no value: no rounding and every
        value within range (zero-width inputs are 0, which every format holds)."""
        live = fmt.width > 0
        if np.any(live & (shift > 0)):
            return False
        lo, hi = self._rounded_range(fmt, shift, "TRN")
        olo, ohi = out.int_range()
        return all(
            (not alive) or (olo_ <= a and b <= ohi_)
            for a, b, olo_, ohi_, alive in zip(
                lo, hi, olo.tolist(), ohi.tolist(), live.tolist(), strict=True
            )
        )

    def _assign_input(self, ref: Ref, quant: Quant) -> Ref:
        pending = self.inputs[ref.source]
        if pending.quant is not None and pending.quant.overflow != quant.overflow:
            raise InteropError(
                f"{quant.where}: model input {ref.source!r} is quantized with overflow "
                f"{quant.overflow} here and {pending.quant.overflow} by {pending.quant.where}"
            )
        pending.signed[ref.order] = quant.signed
        pending.int_bits[ref.order] = quant.int_bits
        pending.frac_bits[ref.order] = quant.frac_bits
        pending.assigned[ref.order] = True
        pending.quant = pending.quant or quant
        return ref

    # --- exact layer kinds ------------------------------------------------------------------------

    def dense(
        self,
        ref: Ref,
        kernel: tuple[np.ndarray, np.ndarray],
        bias: tuple[np.ndarray, np.ndarray],
        relu: bool,
        name: str,
    ) -> Ref:
        """A Keras ``Dense`` over the last axis of ``ref`` (exact output): ``kernel`` is
        ``(integers, frac bits)`` of shape ``(C, U)``, ``bias`` of shape ``(U,)``."""
        k_int, k_frac = kernel
        channels, units = k_int.shape
        if ref.shape[-1] != channels:
            raise InteropError(f"layer {name!r}: kernel of {channels} inputs on {ref.shape}")
        positions = int(np.prod(ref.shape[:-1], dtype=np.int64))
        size = self._source_size(ref.source)
        weight = np.zeros((positions * units, size), np.int64)
        weight_frac = np.zeros_like(weight)
        order = ref.order.reshape(positions, channels)
        for p in range(positions):
            rows = slice(p * units, (p + 1) * units)
            weight[rows, order[p]] = k_int.T
            weight_frac[rows, order[p]] = k_frac.T
        b_int = np.tile(bias[0], positions)
        b_frac = np.tile(bias[1], positions)
        fmt = self._full_format(ref.source)
        zero = TensorFormat(*(np.zeros(positions * units, np.int64),) * 3)
        probe = DenseLayer("probe", weight, weight_frac, b_int, b_frac, zero)
        frac = accumulator_frac_bits(probe, fmt)
        lo, hi = accumulator_range(probe, fmt)
        if relu:
            lo, hi = [max(v, 0) for v in lo], [max(v, 0) for v in hi]
        out = format_of_ranges(np.array(lo, object), np.array(hi, object), frac)
        layer = DenseLayer(
            self.fresh(name),
            weight,
            weight_frac,
            b_int,
            b_frac,
            out,
            Activation.RELU if relu else Activation.LINEAR,
            RoundMode.RND,
            Overflow.WRAP,
            inputs=(ref.source,),
        )
        layer.validate_inputs((fmt,))
        return Ref(self._add(layer), np.arange(out.size), (*ref.shape[:-1], units))

    def _full_format(self, source: str) -> TensorFormat:
        size = self._source_size(source)
        return self.format_of(Ref(source, np.arange(size), (size,)))

    def relu(self, ref: Ref, name: str) -> Ref:
        """ReLU of an exact tensor (a ``quantize`` layer that never rounds or clips)."""
        ref = self.whole(ref, name)
        fmt = self._full_format(ref.source)
        lo, hi = fmt.int_range()
        live = fmt.width > 0
        lo = np.where(live, np.maximum(lo, 0), 0).astype(object)
        hi = np.where(live, np.maximum(hi, 0), 0).astype(object)
        out = format_of_ranges(lo, hi, fmt.frac_bits)
        layer = QuantizeLayer(
            self.fresh(name), out, Activation.RELU, RoundMode.TRN, Overflow.SAT, (ref.source,)
        )
        return Ref(self._add(layer), ref.order, ref.shape)

    def add(self, refs: list[Ref], name: str) -> Ref:
        refs = [self.whole(r, f"{name}_{k}") for k, r in enumerate(refs)]
        if any(not np.array_equal(r.order, refs[0].order) for r in refs):
            refs = [self.materialize(r, f"{name}_{k}") for k, r in enumerate(refs)]
        out = exact_add_format([self._full_format(r.source) for r in refs])
        layer = AddLayer(self.fresh(name), out, inputs=tuple(r.source for r in refs))
        return Ref(self._add(layer), refs[0].order, refs[0].shape)

    def concat(self, refs: list[Ref], name: str) -> Ref:
        refs = [self.materialize(r, f"{name}_{k}") for k, r in enumerate(refs)]
        out = concat_formats([self.format_of(r) for r in refs])
        layer = ConcatLayer(self.fresh(name), out, inputs=tuple(r.source for r in refs))
        return Ref(self._add(layer), np.arange(out.size), (out.size,))

    def add_layer(self, layer, shape: tuple[int, ...]) -> Ref:
        """Append a ready-made layer (a lookup table) whose output is in Keras order."""
        return Ref(self._add(layer), np.arange(layer.output.size), shape)

    # --- the model -----------------------------------------------------------------------------

    def model(self, name: str, output: Ref, metadata: dict) -> IRModel:
        output = self.materialize(output, "output")
        if not self.layers or self.layers[-1].name != output.source:
            # the output must be the last layer's: requantize-free copy through a gather
            size = self._source_size(output.source)
            layer = MaxPoolLayer(
                self.fresh("output"),
                np.arange(size)[:, None],
                self._full_format(output.source),
                inputs=(output.source,),
            )
            self._add(layer)
        inputs = []
        for pending in self.inputs.values():
            fmt = TensorFormat(
                np.where(pending.assigned, pending.signed, 0),
                np.where(pending.assigned, pending.int_bits, 0),
                np.where(pending.assigned, pending.frac_bits, 0),
            )
            overflow = "WRAP" if pending.quant and pending.quant.overflow == "WRAP" else "SAT"
            mode = DIRECT_ROUND.get(pending.quant.round_mode) if pending.quant else "RND"
            if mode != "RND":
                # quantize_input rounds real data half up; the source rounds them otherwise
                metadata.setdefault("input_rounding", {})[pending.name] = pending.quant.round_mode
            inputs.append(ModelInput(pending.name, fmt, pending.shape, Overflow[overflow]))
        return IRModel(name, None, tuple(self.layers), metadata=metadata, inputs=tuple(inputs))


def fuse_requantization(ir: IRModel) -> IRModel:
    """Merge each dense (or conv) layer whose only reader is a ``quantize`` layer into it,
    repeatedly, wherever that provably changes no value (:func:`_can_merge`). The merged layer
    keeps the dense layer's name and takes the quantize layer's place in the order."""
    while True:
        fused = _fuse_once(ir)
        if len(fused.layers) == len(ir.layers):
            return fused
        ir = fused


def _can_merge(ir: IRModel, dense, quantize: QuantizeLayer) -> RoundMode | None:
    """Whether ``quantize(dense(x))`` equals the dense arithmetic with the quantize layer's
    output format, round mode and overflow (and ReLU if either has it).

    The dense layer's own overflow must never act (its format holds every rounded result), and
    either it rounds nothing (its output is the exact accumulator, which the merged layer rounds
    once, as the quantize layer did; rounding commutes with ReLU), or the quantize layer keeps
    its fractional bits (it only activates and wraps or clips). Returns the merged layer's
    round mode (the quantize layer's, or the dense layer's in the second case), or ``None``."""
    lowered = dense.to_dense() if isinstance(dense, ConvLayer) else dense
    fmt = ir.input_formats_of(dense)[0]
    frac = accumulator_frac_bits(lowered, fmt)
    lo, hi = accumulator_range(lowered, fmt)
    out = dense.output
    live = out.width > 0
    shift = frac - out.frac_bits
    olo, ohi = out.int_range()
    for k in range(out.size):
        bounds = [round_int(v, int(shift[k]), dense.round_mode) for v in (lo[k], hi[k])]
        if dense.activation is Activation.RELU:
            bounds = [max(v, 0) for v in bounds]
        if live[k] and (bounds[0] < int(olo[k]) or bounds[1] > int(ohi[k])):
            return None
        if not live[k] and bounds != [0, 0]:
            return None
    if np.all(shift[live] <= 0):
        return quantize.round_mode
    if np.array_equal(quantize.output.frac_bits[live], out.frac_bits[live]):
        return dense.round_mode
    return None


def _fuse_once(ir: IRModel) -> IRModel:
    readers: dict[str, list[str]] = {}
    for layer in ir.layers:
        for source in ir.inputs_of(layer):
            readers.setdefault(source, []).append(layer.name)
    by_name = {layer.name: layer for layer in ir.layers}
    merged: dict[str, DenseLayer | ConvLayer] = {}  # quantize name -> fused dense
    dropped: set[str] = set()
    for layer in ir.layers:
        if not isinstance(layer, QuantizeLayer):
            continue
        (source,) = ir.inputs_of(layer)
        dense = by_name.get(source)
        if not isinstance(dense, DenseLayer | ConvLayer) or readers.get(source) != [layer.name]:
            continue
        round_mode = None if dense.name in dropped else _can_merge(ir, dense, layer)
        if round_mode is None:
            continue
        relu = Activation.RELU in (dense.activation, layer.activation)
        merged[layer.name] = dataclasses.replace(
            dense,
            output=layer.output,
            activation=Activation.RELU if relu else Activation.LINEAR,
            round_mode=round_mode,
            overflow=layer.overflow,
            inputs=ir.inputs_of(dense),
        )
        dropped.add(dense.name)
    rename = {q: fused.name for q, fused in merged.items()}
    layers = []
    for layer in ir.layers:
        if layer.name in dropped:
            continue
        layer = merged.get(layer.name, layer)
        sources = tuple(rename.get(s, s) for s in ir.inputs_of(layer))
        layers.append(_with_inputs(layer, sources))
    return IRModel(ir.name, None, tuple(layers), metadata=ir.metadata, inputs=ir.inputs)


def _in_source_order(quant: Quant, order: np.ndarray) -> Quant:
    """``quant``'s per-element arrays (Keras order) rearranged to the IR tensor's order."""
    arrays = []
    for values in (quant.signed, quant.int_bits, quant.frac_bits):
        out = np.empty_like(values)
        out[order] = values
        arrays.append(out)
    return dataclasses.replace(quant, signed=arrays[0], int_bits=arrays[1], frac_bits=arrays[2])


def _with_inputs(layer, sources: tuple[str, ...]):
    return dataclasses.replace(layer, inputs=sources)
