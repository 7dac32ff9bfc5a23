"""The frozen integer model (IR): what training hands to the hardware generator.

A model is a small graph of integer layers in topological order. Every tensor is 1-D per sample
(a convolution's ``(C, H, W)`` activations are flattened in C order) and every element has its
own fixed-point format. A layer reads the outputs of earlier layers, named in its ``inputs``
(empty: the previous layer's output, the model input ``"input"`` for the first layer).

Layer kinds (docs/ir.md):

* :class:`DenseLayer` — for each output ``i``,
  ``acc_i = sum_j (w_ij * x_j) << (F_i - fw_ij - fx_j)  +  b_i << (F_i - fb_i)`` at the
  accumulator's fractional bits ``F_i`` (:func:`accumulator_frac_bits`), then rounded to the
  output's fractional bits, activated and brought into the output format (wrap or saturate).
  Convolutions and average pooling freeze to dense layers with sparse weights.
* :class:`QuantizeLayer` — the same rounding, activation and overflow applied to one input.
* :class:`MaxPoolLayer`, :class:`AddLayer`, :class:`ConcatLayer`, :class:`LookupLayer` — exact:
  their output formats hold every result, so they never round, wrap or saturate.

The IR imports only numpy and the standard library.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .fixed import (
    MAX_REFERENCE_BITS,
    Activation,
    Overflow,
    RoundMode,
    bits_for_range,
    int_range,
    widths,
)

#: The name by which a layer's ``inputs`` refer to the model input (no layer may take it).
MODEL_INPUT = "input"
#: Most entries a :class:`LookupLayer` table may hold.
MAX_TABLE_ENTRIES = 1 << 24


@dataclass(frozen=True, eq=False)
class TensorFormat:
    """Per-element fixed-point formats of a 1-D tensor of ``size`` elements."""

    signed: np.ndarray  # bool (n,)
    int_bits: np.ndarray  # int64 (n,)
    frac_bits: np.ndarray  # int64 (n,)

    def __post_init__(self) -> None:
        object.__setattr__(self, "signed", _as_int_array(self.signed, "signed").astype(bool))
        object.__setattr__(self, "int_bits", _as_int_array(self.int_bits, "int_bits"))
        object.__setattr__(self, "frac_bits", _as_int_array(self.frac_bits, "frac_bits"))
        shapes = {a.shape for a in (self.signed, self.int_bits, self.frac_bits)}
        if len(shapes) != 1 or self.signed.ndim != 1:
            raise ValueError(f"format arrays must be 1-D and of one length, not shapes {shapes}")
        bad = np.flatnonzero(self.width < 0)
        if bad.size:
            raise ValueError(f"element {bad[0]} has a negative width {self.width[bad[0]]}")
        if self.width.size and self.width.max() > MAX_REFERENCE_BITS:
            raise ValueError(
                f"element {int(self.width.argmax())} is {int(self.width.max())} bits wide: "
                f"at most {MAX_REFERENCE_BITS} are supported"
            )

    @property
    def size(self) -> int:
        return int(self.signed.shape[0])

    @property
    def width(self) -> np.ndarray:
        return widths(self.signed, self.int_bits, self.frac_bits)

    def int_range(self) -> tuple[np.ndarray, np.ndarray]:
        """Inclusive integer range ``(lo, hi)`` of every element."""
        return int_range(self.signed, self.width)

    def describe(self, k: int) -> str:
        """Element ``k``'s format as text, e.g. ``signed 2 int 1 frac``."""
        sign = "signed" if self.signed[k] else "unsigned"
        return f"{sign} {int(self.int_bits[k])} int {int(self.frac_bits[k])} frac"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TensorFormat):
            return NotImplemented
        return all(
            np.array_equal(a, b)
            for a, b in zip(
                (self.signed, self.int_bits, self.frac_bits),
                (other.signed, other.int_bits, other.frac_bits),
                strict=True,
            )
        )


# ------------------------------------------------------------------------------------ layers


@dataclass(frozen=True, eq=False)
class DenseLayer:
    """A fully connected layer with constant integer weights.

    ``weight[i, j]`` has ``weight_frac_bits[i, j]`` fractional bits, ``bias[i]`` has
    ``bias_frac_bits[i]``; ``output`` is the format of the layer's result after ``activation``.
    """

    name: str
    weight: np.ndarray  # int64 (out, in)
    weight_frac_bits: np.ndarray  # int64 (out, in)
    bias: np.ndarray  # int64 (out,)
    bias_frac_bits: np.ndarray  # int64 (out,)
    output: TensorFormat
    activation: Activation = Activation.LINEAR
    round_mode: RoundMode = RoundMode.RND
    overflow: Overflow = Overflow.WRAP
    inputs: tuple[str, ...] = ()
    kind: str = field(default="dense", init=False)

    def __post_init__(self) -> None:
        _check_name(self)
        _check_inputs(self, 0, 1)
        for attr in ("weight", "weight_frac_bits", "bias", "bias_frac_bits"):
            object.__setattr__(
                self, attr, _as_int_array(getattr(self, attr), f"{self.name}.{attr}")
            )
        if self.weight.ndim != 2:
            raise ValueError(f"{self.name}.weight must be 2-D, not shape {self.weight.shape}")
        n_out, _ = self.weight.shape
        expected = {
            "weight_frac_bits": self.weight.shape,
            "bias": (n_out,),
            "bias_frac_bits": (n_out,),
        }
        for attr, shape in expected.items():
            if getattr(self, attr).shape != shape:
                raise ValueError(
                    f"{self.name}.{attr} must have shape {shape}, not {getattr(self, attr).shape}"
                )
        _check_output(self, n_out, "outputs")
        _check_modes(self)

    @property
    def in_features(self) -> int:
        return int(self.weight.shape[1])

    @property
    def out_features(self) -> int:
        return int(self.weight.shape[0])

    def validate_inputs(self, formats: tuple[TensorFormat, ...]) -> None:
        """Check the layer against the formats of its inputs (``ValueError`` if it misfits)."""
        (fmt,) = formats
        if self.in_features != fmt.size:
            raise ValueError(
                f"{self.name} expects {self.in_features} inputs, it receives {fmt.size}"
            )
        check_accumulators(self, fmt)


@dataclass(frozen=True, eq=False)
class QuantizeLayer:
    """Requantization of one input: rounded from each input element's fractional bits to the
    output's (:func:`~hgq_rtl.ir.fixed.shift_round`), activated, then wrapped or saturated into
    ``output`` — the tail of a dense layer without the sum."""

    name: str
    output: TensorFormat
    activation: Activation = Activation.LINEAR
    round_mode: RoundMode = RoundMode.RND
    overflow: Overflow = Overflow.WRAP
    inputs: tuple[str, ...] = ()
    kind: str = field(default="quantize", init=False)

    def __post_init__(self) -> None:
        _check_name(self)
        _check_inputs(self, 0, 1)
        _check_output(self, None, "outputs")
        _check_modes(self)

    @property
    def out_features(self) -> int:
        return self.output.size

    def validate_inputs(self, formats: tuple[TensorFormat, ...]) -> None:
        """Check the layer against the formats of its inputs (``ValueError`` if it misfits)."""
        (fmt,) = formats
        _check_same_size(self, fmt, 0)
        shifts = quantize_shifts(self, fmt)
        if shifts.size and np.abs(shifts).max() > MAX_REFERENCE_BITS:
            i = int(np.abs(shifts).argmax())
            raise ValueError(
                f"{self.name} output {i} shifts by {int(shifts[i])} bits: "
                f"at most {MAX_REFERENCE_BITS} are supported"
            )
        lo, hi = fmt.int_range()
        for i in np.flatnonzero(shifts < 0):  # a finer output moves the value left
            bits = _bits_with_rounding(int(lo[i]), int(hi[i])) - int(shifts[i])
            if bits > MAX_REFERENCE_BITS:
                raise ValueError(
                    f"{self.name} output {i} needs {bits} bits before its overflow: "
                    f"the reference holds at most {MAX_REFERENCE_BITS} bits exactly"
                )


@dataclass(frozen=True, eq=False)
class MaxPoolLayer:
    """Maximum over windows of input elements: ``out[i] = max_j x[windows[i, j]]``, each input
    first aligned to ``output.frac_bits[i]`` by an exact left shift. The output format must hold
    the exact range of the maximum (validated), so nothing is rounded or clipped."""

    name: str
    windows: np.ndarray  # int64 (out, k): input element indices
    output: TensorFormat
    inputs: tuple[str, ...] = ()
    kind: str = field(default="maxpool", init=False)

    def __post_init__(self) -> None:
        _check_name(self)
        _check_inputs(self, 0, 1)
        object.__setattr__(self, "windows", _as_int_array(self.windows, f"{self.name}.windows"))
        if self.windows.ndim != 2 or self.windows.shape[1] < 1:
            raise ValueError(
                f"{self.name}.windows must be 2-D (outputs, window size >= 1), "
                f"not shape {self.windows.shape}"
            )
        if self.windows.size and self.windows.min() < 0:
            raise ValueError(f"{self.name}.windows holds a negative index {self.windows.min()}")
        _check_output(self, self.windows.shape[0], "windows")

    @property
    def out_features(self) -> int:
        return self.output.size

    def validate_inputs(self, formats: tuple[TensorFormat, ...]) -> None:
        """Check the layer against the formats of its inputs (``ValueError`` if it misfits)."""
        (fmt,) = formats
        if self.windows.size and self.windows.max() >= fmt.size:
            raise ValueError(
                f"{self.name}.windows refers to input element {int(self.windows.max())}, "
                f"the input has {fmt.size} elements"
            )
        lo, hi = _aligned_ranges(self, fmt, self.windows, "")
        _check_holds(self, lo.max(axis=1), hi.max(axis=1), "maximum")


@dataclass(frozen=True, eq=False)
class AddLayer:
    """Element-wise exact sum of two (or more) inputs of one size, each aligned to
    ``output.frac_bits`` by an exact left shift; the output format must hold the exact range
    of the sum (validated), so nothing is rounded or clipped."""

    name: str
    output: TensorFormat
    inputs: tuple[str, ...]
    kind: str = field(default="add", init=False)

    def __post_init__(self) -> None:
        _check_name(self)
        _check_inputs(self, 2, None)
        _check_output(self, None, "outputs")

    @property
    def out_features(self) -> int:
        return self.output.size

    def validate_inputs(self, formats: tuple[TensorFormat, ...]) -> None:
        """Check the layer against the formats of its inputs (``ValueError`` if it misfits)."""
        index = np.arange(self.output.size)[:, None]
        lo = hi = np.zeros(self.output.size, object)
        for k, fmt in enumerate(formats):
            _check_same_size(self, fmt, k)
            a, b = _aligned_ranges(self, fmt, index, f" {k} ({self.inputs[k]!r})")
            lo, hi = lo + a[:, 0], hi + b[:, 0]
        _check_holds(self, lo, hi, "sum")


@dataclass(frozen=True, eq=False)
class ConcatLayer:
    """The concatenation of its inputs, in order; ``output`` must equal the concatenation of the
    input formats (:func:`concat_formats`)."""

    name: str
    output: TensorFormat
    inputs: tuple[str, ...]
    kind: str = field(default="concat", init=False)

    def __post_init__(self) -> None:
        _check_name(self)
        _check_inputs(self, 1, None)
        _check_output(self, None, "outputs")

    @property
    def out_features(self) -> int:
        return self.output.size

    def validate_inputs(self, formats: tuple[TensorFormat, ...]) -> None:
        """Check the layer against the formats of its inputs (``ValueError`` if it misfits)."""
        joined = concat_formats(formats)
        if joined.size != self.output.size:
            raise ValueError(
                f"{self.name}.output has {self.output.size} elements, "
                f"its inputs have {joined.size} together"
            )
        same = (
            (joined.signed == self.output.signed)
            & (joined.int_bits == self.output.int_bits)
            & (joined.frac_bits == self.output.frac_bits)
        )
        if not same.all():
            k = int(np.flatnonzero(~same)[0])
            raise ValueError(
                f"{self.name}.output element {k} is {self.output.describe(k)}, "
                f"the concatenated inputs give {joined.describe(k)}"
            )


@dataclass(frozen=True, eq=False)
class LookupLayer:
    """An element-wise function by table: ``out[i] = table[offsets[i] + x[i] - input_low[i]]``.

    Element ``i``'s slice ``table[offsets[i] : offsets[i] + hi_i - lo_i + 1]`` covers its input
    format's whole integer range ``[lo_i, hi_i]`` (``input_low[i]`` must be ``lo_i``); elements
    may share slices. Every value of a slice must lie in the output element's range, so nothing
    is clipped. The table holds at most :data:`MAX_TABLE_ENTRIES` entries.
    """

    name: str
    input_low: np.ndarray  # int64 (n,)
    offsets: np.ndarray  # int64 (n,)
    table: np.ndarray  # int64 (entries,)
    output: TensorFormat
    inputs: tuple[str, ...] = ()
    kind: str = field(default="lookup", init=False)

    def __post_init__(self) -> None:
        _check_name(self)
        _check_inputs(self, 0, 1)
        entries = int(np.size(self.table))  # before any copy of an oversized table
        if entries > MAX_TABLE_ENTRIES:
            raise ValueError(
                f"{self.name}.table has {entries} entries: "
                f"at most {MAX_TABLE_ENTRIES} (2**24) are supported"
            )
        for attr in ("input_low", "offsets", "table"):
            value = _as_int_array(getattr(self, attr), f"{self.name}.{attr}")
            if value.ndim != 1:
                raise ValueError(f"{self.name}.{attr} must be 1-D, not shape {value.shape}")
            object.__setattr__(self, attr, value)
        if self.offsets.shape != self.input_low.shape:
            raise ValueError(
                f"{self.name}.offsets must have shape {self.input_low.shape}, "
                f"not {self.offsets.shape}"
            )
        if self.offsets.size and self.offsets.min() < 0:
            raise ValueError(f"{self.name}.offsets holds a negative offset {self.offsets.min()}")
        if self.offsets.size and self.offsets.max() >= entries:
            raise ValueError(
                f"{self.name}.offsets holds {self.offsets.max()}, "
                f"past the table's {entries} entries"
            )
        _check_output(self, self.input_low.shape[0], "input_low entries")

    @property
    def out_features(self) -> int:
        return self.output.size

    def validate_inputs(self, formats: tuple[TensorFormat, ...]) -> None:
        """Check the layer against the formats of its inputs (``ValueError`` if it misfits)."""
        (fmt,) = formats
        _check_same_size(self, fmt, 0)
        lo, hi = fmt.int_range()
        bad = np.flatnonzero(self.input_low != lo)
        if bad.size:
            i = int(bad[0])
            raise ValueError(
                f"{self.name}.input_low[{i}] is {int(self.input_low[i])}, "
                f"its input's lowest integer is {int(lo[i])}"
            )
        sizes = hi - lo + 1  # at most 2**62; offsets are below the table's size: no overflow
        ends = self.offsets + np.minimum(sizes, MAX_TABLE_ENTRIES + 1)
        bad = np.flatnonzero(ends > self.table.size)
        if bad.size:
            i = int(bad[0])
            raise ValueError(
                f"{self.name} element {i}: its input range [{int(lo[i])}, {int(hi[i])}] needs "
                f"{int(sizes[i])} table entries from offset {int(self.offsets[i])}, "
                f"the table has {self.table.size}"
            )
        low, high = _slice_extrema(self.table, self.offsets, ends)
        _check_holds(self, low, high, "table slice")


#: Every layer type, by its ``kind`` (the ``type`` of model.json).
LAYER_TYPES: dict[str, type] = {
    "dense": DenseLayer,
    "maxpool": MaxPoolLayer,
    "add": AddLayer,
    "concat": ConcatLayer,
    "lookup": LookupLayer,
    "quantize": QuantizeLayer,
}

Layer = DenseLayer | MaxPoolLayer | AddLayer | ConcatLayer | LookupLayer | QuantizeLayer


def can_overflow(layer: Layer) -> bool:
    """Whether ``layer`` rounds and wraps or saturates (dense, quantize); the others are exact."""
    return isinstance(layer, DenseLayer | QuantizeLayer)


# ------------------------------------------------------------------------------------ model


@dataclass(frozen=True, eq=False)
class IRModel:
    """A frozen integer network: an input format and layers in topological order.

    Each layer reads the outputs named in its ``inputs`` — earlier layers or
    :data:`MODEL_INPUT` — or, when ``inputs`` is empty, the previous layer's output (the model
    input for the first layer). The model's output is the last layer's.
    """

    name: str
    input: TensorFormat
    layers: tuple[Layer, ...]
    input_overflow: Overflow = Overflow.SAT
    metadata: dict = field(default_factory=dict)
    _sources: dict = field(init=False, repr=False, default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ValueError(f"model name must be an identifier, not {self.name!r}")
        if not isinstance(self.input, TensorFormat):
            raise ValueError(f"input must be a TensorFormat, not {type(self.input).__name__}")
        object.__setattr__(self, "layers", tuple(self.layers))
        if not isinstance(self.input_overflow, Overflow):
            raise ValueError(f"input_overflow must be an Overflow, not {self.input_overflow!r}")
        if not self.layers:
            raise ValueError("a model needs at least one layer")
        layer_types = tuple(LAYER_TYPES.values())
        for k, layer in enumerate(self.layers):
            if not isinstance(layer, layer_types):
                raise ValueError(
                    f"layers[{k}] must be an IR layer ({', '.join(LAYER_TYPES)}), "
                    f"not {type(layer).__name__}"
                )
        names = [layer.name for layer in self.layers]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"layer names must be unique, {duplicates[0]!r} repeats")
        if MODEL_INPUT in names:
            raise ValueError(f"no layer may be named {MODEL_INPUT!r}: it names the model input")
        formats = {MODEL_INPUT: self.input}
        previous = MODEL_INPUT
        for layer in self.layers:
            sources = layer.inputs or (previous,)
            for source in sources:
                if source in formats:
                    continue
                if source == layer.name:
                    raise ValueError(f"{layer.name}.inputs names the layer itself")
                if source in names:
                    raise ValueError(
                        f"{layer.name}.inputs names {source!r}, which comes after it: "
                        "layers must be in topological order (no cycles)"
                    )
                raise ValueError(
                    f"{layer.name}.inputs names {source!r}, "
                    f"which is neither {MODEL_INPUT!r} nor a layer"
                )
            layer.validate_inputs(tuple(formats[s] for s in sources))
            self._sources[layer.name] = sources
            formats[layer.name] = layer.output
            previous = layer.name

    @property
    def output(self) -> TensorFormat:
        return self.layers[-1].output

    def layer(self, name: str) -> Layer:
        """The layer called ``name`` (``KeyError`` if there is none)."""
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)

    def format_of(self, name: str) -> TensorFormat:
        """The format of a named tensor: :data:`MODEL_INPUT` or a layer's output."""
        return self.input if name == MODEL_INPUT else self.layer(name).output

    def inputs_of(self, layer: Layer | str) -> tuple[str, ...]:
        """The names ``layer`` reads, resolved (an empty ``inputs`` becomes the previous one)."""
        return self._sources[layer if isinstance(layer, str) else layer.name]

    def input_formats_of(self, layer: Layer | str) -> tuple[TensorFormat, ...]:
        """The formats of all of ``layer``'s inputs, in order."""
        return tuple(self.format_of(name) for name in self.inputs_of(layer))

    def input_formats(self) -> list[TensorFormat]:
        """The format of each layer's (first) input, in layer order."""
        return [self.input_formats_of(layer)[0] for layer in self.layers]

    def dense_chain_problem(self) -> str | None:
        """Why the model is not a chain of dense layers (the first offending layer), or None."""
        previous = MODEL_INPUT
        for layer in self.layers:
            if not isinstance(layer, DenseLayer):
                return f"layer {layer.name!r} is a {layer.kind} layer"
            if self.inputs_of(layer) != (previous,):
                names = ", ".join(repr(n) for n in self.inputs_of(layer))
                return f"layer {layer.name!r} reads {names}, not the previous {previous!r}"
            previous = layer.name
        return None

    def is_dense_chain(self) -> bool:
        """True when every layer is dense and reads the previous layer's output."""
        return self.dense_chain_problem() is None


# ------------------------------------------------------------------------------------ formats


def concat_formats(formats: tuple[TensorFormat, ...] | list[TensorFormat]) -> TensorFormat:
    """The formats of ``formats`` one after the other (a :class:`ConcatLayer`'s output)."""
    return TensorFormat(
        np.concatenate([f.signed for f in formats]),
        np.concatenate([f.int_bits for f in formats]),
        np.concatenate([f.frac_bits for f in formats]),
    )


def exact_add_format(formats: tuple[TensorFormat, ...] | list[TensorFormat]) -> TensorFormat:
    """The smallest formats holding the exact sum of ``formats`` (an :class:`AddLayer`'s
    output): the finest fractional bits of the non-zero-width inputs, the sum's range."""
    frac = _finest_frac(
        np.stack([f.frac_bits for f in formats], axis=1),
        np.stack([f.width for f in formats], axis=1),
    )
    index = np.arange(frac.size)[:, None]
    lo = hi = np.zeros(frac.size, object)
    for fmt in formats:
        a, b = _shifted_ranges(frac, fmt, index)
        lo, hi = lo + a[:, 0], hi + b[:, 0]
    return format_of_ranges(lo, hi, frac)


def exact_maxpool_format(input_format: TensorFormat, windows: np.ndarray) -> TensorFormat:
    """The smallest formats holding the exact maximum over each window (a
    :class:`MaxPoolLayer`'s output): the window's finest fractional bits, the maximum's range."""
    windows = np.asarray(windows, np.int64)
    frac = _finest_frac(input_format.frac_bits[windows], input_format.width[windows])
    lo, hi = _shifted_ranges(frac, input_format, windows)
    return format_of_ranges(lo.max(axis=1), hi.max(axis=1), frac)


def alignment_shifts(out_frac: np.ndarray, fmt: TensorFormat, index: np.ndarray) -> np.ndarray:
    """Left shifts ``out_frac[i] - frac(fmt[index[i, j]])`` that align input elements to the
    output's fractional bits (0 for zero-width inputs, which are the constant 0)."""
    index = np.asarray(index, np.int64)
    live = fmt.width[index] > 0
    return np.where(live, np.asarray(out_frac)[:, None] - fmt.frac_bits[index], 0)


def quantize_shifts(layer: QuantizeLayer, fmt: TensorFormat) -> np.ndarray:
    """Right shifts ``frac(input) - frac(output)`` of a quantize layer (negative: left); 0 for a
    zero-width input element, whose value is the constant 0."""
    return np.where(fmt.width > 0, fmt.frac_bits - layer.output.frac_bits, 0)


# ------------------------------------------------------------------------------------ dense


def accumulator_frac_bits(layer: DenseLayer, input_format: TensorFormat) -> np.ndarray:
    """Fractional bits ``F_i`` of each output's accumulator.

    The finest step among its non-zero products and its bias; an output with no terms at all
    uses the output format's fractional bits.
    """
    return _live_terms(layer, input_format)[0]


def _live_terms(
    layer: DenseLayer, input_format: TensorFormat
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(F, rows, cols)``: the accumulator fractional bits and the live products (non-zero
    weight, non-zero-width input) in row-major order. Touches the dense matrices once, so that
    large sparse layers (frozen convolutions) stay fast."""
    rows, cols = np.nonzero(layer.weight)
    keep = input_format.width[cols] > 0
    rows, cols = rows[keep], cols[keep]
    lowest = np.iinfo(np.int64).min
    frac = np.full(layer.out_features, lowest)
    if rows.size:
        product_frac = layer.weight_frac_bits[rows, cols] + input_format.frac_bits[cols]
        starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
        frac[rows[starts]] = np.maximum.reduceat(product_frac, starts)
    frac = np.where(layer.bias != 0, np.maximum(frac, layer.bias_frac_bits), frac)
    return np.where(frac == lowest, layer.output.frac_bits, frac), rows, cols


def accumulator_range(layer: DenseLayer, input_format: TensorFormat) -> tuple[list[int], list[int]]:
    """Exact inclusive range of every accumulator over all inputs of ``input_format``.

    Returned as Python integers. Vectorized over the live products in ``int64`` when a bound
    shows that no term and no sum can reach ``2**62``; with Python integers otherwise.
    """
    return _accumulator_range(layer, input_format, *_live_terms(layer, input_format))


def _accumulator_range(
    layer: DenseLayer,
    input_format: TensorFormat,
    frac: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
) -> tuple[list[int], list[int]]:
    weight = layer.weight[rows, cols]
    shift = frac[rows] - layer.weight_frac_bits[rows, cols] - input_format.frac_bits[cols]
    bias_rows = np.flatnonzero(layer.bias)
    bias_shift = frac[bias_rows] - layer.bias_frac_bits[bias_rows]
    x_lo, x_hi = input_format.int_range()
    # |w x| << s < 2**(bits(|w|) + width(x) + s); a row of t terms and a bias stays below
    # (t + 1) times the largest of them.
    term_bits = _bit_length_of(np.abs(weight)) + input_format.width[cols] + shift
    bias_bits = _bit_length_of(np.abs(layer.bias[bias_rows])) + bias_shift
    terms_per_row = np.bincount(rows, minlength=layer.out_features) + 1
    widest = max(term_bits.max(initial=0), bias_bits.max(initial=0))
    if widest + _bit_length_of(terms_per_row.max(initial=1)) <= MAX_REFERENCE_BITS:
        a = (weight * x_lo[cols]) << shift
        b = (weight * x_hi[cols]) << shift
        lo = np.zeros(layer.out_features, np.int64)
        np.add.at(lo, rows, np.minimum(a, b))
        hi = np.zeros(layer.out_features, np.int64)
        np.add.at(hi, rows, np.maximum(a, b))
        bias = layer.bias[bias_rows] << bias_shift
        lo[bias_rows] += bias
        hi[bias_rows] += bias
        return lo.tolist(), hi.tolist()
    los = [0] * layer.out_features
    his = [0] * layer.out_features
    terms = zip(rows.tolist(), weight.tolist(), shift.tolist(), cols.tolist(), strict=True)
    for i, w, s, j in terms:
        a, b = (w * int(x_lo[j])) << s, (w * int(x_hi[j])) << s
        los[i] += min(a, b)
        his[i] += max(a, b)
    for i, s in zip(bias_rows.tolist(), bias_shift.tolist(), strict=True):
        los[i] += int(layer.bias[i]) << s
        his[i] += int(layer.bias[i]) << s
    return los, his


def check_accumulators(layer: DenseLayer, input_format: TensorFormat) -> None:
    """Raise ``ValueError`` if an accumulator or shift exceeds what int64 holds exactly."""
    frac, rows, cols = _live_terms(layer, input_format)
    shifts = frac - layer.output.frac_bits
    if shifts.size and np.abs(shifts).max() > MAX_REFERENCE_BITS:
        i = int(np.abs(shifts).argmax())
        raise ValueError(
            f"{layer.name} output {i} shifts by {int(shifts[i])} bits: "
            f"at most {MAX_REFERENCE_BITS} are supported"
        )
    los, his = _accumulator_range(layer, input_format, frac, rows, cols)
    for i, (lo, hi, shift) in enumerate(zip(los, his, shifts.tolist(), strict=True)):
        # a finer output format shifts the sum further left
        bits = _bits_with_rounding(lo, hi) + max(-shift, 0)
        if bits > MAX_REFERENCE_BITS:
            raise ValueError(
                f"{layer.name} output {i} needs a {bits}-bit accumulator: "
                f"the reference holds at most {MAX_REFERENCE_BITS} bits exactly"
            )


# ------------------------------------------------------------------------------------ helpers


def _bits_with_rounding(lo: int, hi: int) -> int:
    """Two's complement bits of ``[lo, hi + 1]`` (+1: the rounding constant)."""
    return max((-lo).bit_length(), (hi + 1).bit_length()) + 1


def _bit_length_of(values: np.ndarray) -> np.ndarray:
    """``int.bit_length`` of non-negative int64 values, element-wise (exact: no floats)."""
    values = np.asarray(values, np.int64)
    out = np.zeros(values.shape, np.int64)
    for step in (32, 16, 8, 4, 2, 1):
        big = values >= (np.int64(1) << step)
        out += np.where(big, step, 0)
        values = np.where(big, values >> step, values)
    return out + (values > 0)


def _check_name(layer: Layer) -> None:
    if not isinstance(layer.name, str) or not layer.name.isidentifier():
        raise ValueError(f"layer name must be an identifier, not {layer.name!r}")


def _check_inputs(layer: Layer, least: int, most: int | None) -> None:
    inputs = layer.inputs
    if isinstance(inputs, str) or not isinstance(inputs, tuple | list):
        raise ValueError(f"{layer.name}.inputs must be a tuple of names, not {inputs!r}")
    if not all(isinstance(n, str) and n.isidentifier() for n in inputs):
        raise ValueError(f"{layer.name}.inputs must hold identifiers, not {list(inputs)!r}")
    object.__setattr__(layer, "inputs", tuple(inputs))
    if len(inputs) < least or (most is not None and len(inputs) > most):
        expected = f"{least} to {most}" if most is not None else f"at least {least}"
        raise ValueError(
            f"{layer.name}.inputs names {len(inputs)} tensors: a {layer.kind} layer takes "
            f"{expected}"
        )


def _check_output(layer: Layer, size: int | None, what: str) -> None:
    if not isinstance(layer.output, TensorFormat):
        raise ValueError(
            f"{layer.name}.output must be a TensorFormat, not {type(layer.output).__name__}"
        )
    if size is not None and layer.output.size != size:
        raise ValueError(
            f"{layer.name}.output has {layer.output.size} elements, the layer has {size} {what}"
        )


def _check_modes(layer: DenseLayer | QuantizeLayer) -> None:
    for attr, enum in (
        ("activation", Activation),
        ("round_mode", RoundMode),
        ("overflow", Overflow),
    ):
        if not isinstance(getattr(layer, attr), enum):
            raise ValueError(
                f"{layer.name}.{attr} must be a {enum.__name__}, not {getattr(layer, attr)!r}"
            )


def _check_same_size(layer: Layer, fmt: TensorFormat, k: int) -> None:
    if fmt.size != layer.output.size:
        source = f"input {k} ({layer.inputs[k]!r})" if layer.inputs else "its input"
        raise ValueError(
            f"{layer.name} has {layer.output.size} outputs, {source} has {fmt.size} elements"
        )


def _aligned_ranges(
    layer: MaxPoolLayer | AddLayer, fmt: TensorFormat, index: np.ndarray, which: str
) -> tuple[np.ndarray, np.ndarray]:
    """Exact ranges (object arrays of Python ints, shape of ``index``) of the input elements
    ``fmt[index]`` aligned to the layer's output fractional bits; refuses a right shift."""
    shift = alignment_shifts(layer.output.frac_bits, fmt, index)
    if shift.size and shift.min() < 0:
        i, j = (int(v) for v in np.argwhere(shift < 0)[0])
        element = int(np.asarray(index)[i, j])
        raise ValueError(
            f"{layer.name} output {i} has {int(layer.output.frac_bits[i])} fractional bits, "
            f"fewer than the {int(fmt.frac_bits[element])} of input{which} element {element}: "
            "it would have to round"
        )
    if shift.size and shift.max() > MAX_REFERENCE_BITS:
        i, j = (int(v) for v in np.argwhere(shift == shift.max())[0])
        raise ValueError(
            f"{layer.name} output {i} shifts input{which} element {int(np.asarray(index)[i, j])} "
            f"by {int(shift[i, j])} bits: at most {MAX_REFERENCE_BITS} are supported"
        )
    return _shifted_ranges(layer.output.frac_bits, fmt, index)


def _shifted_ranges(
    out_frac: np.ndarray, fmt: TensorFormat, index: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    shift = alignment_shifts(out_frac, fmt, index).astype(object)
    lo, hi = fmt.int_range()
    return lo[index].astype(object) << shift, hi[index].astype(object) << shift


def _check_holds(layer: Layer, lo: np.ndarray, hi: np.ndarray, what: str) -> None:
    """Refuse an output element whose format does not hold the exact range ``[lo, hi]``."""
    out_lo, out_hi = layer.output.int_range()
    bad = np.flatnonzero((lo < out_lo) | (hi > out_hi))
    if bad.size:
        i = int(bad[0])
        raise ValueError(
            f"{layer.name} output {i}: the {what} ranges over [{lo[i]}, {hi[i]}], its format "
            f"({layer.output.describe(i)}) holds only [{int(out_lo[i])}, {int(out_hi[i])}]"
        )


def _finest_frac(frac: np.ndarray, width: np.ndarray) -> np.ndarray:
    """Per row, the largest ``frac`` among entries of non-zero ``width`` (0 if there is none)."""
    lowest = np.iinfo(np.int64).min
    finest = np.where(width > 0, frac, lowest).max(axis=1)
    return np.where(finest == lowest, 0, finest)


def format_of_ranges(lo: np.ndarray, hi: np.ndarray, frac: np.ndarray) -> TensorFormat:
    """Smallest formats with fractional bits ``frac`` holding the integer ranges ``[lo, hi]``
    (:func:`~hgq_rtl.ir.fixed.bits_for_range` per element)."""
    pairs = [bits_for_range(a, b) for a, b in zip(lo.tolist(), hi.tolist(), strict=True)]
    signed = np.array([is_signed for is_signed, _ in pairs], bool)
    width = np.array([bits for _, bits in pairs], np.int64)
    return TensorFormat(signed, width - signed - frac, frac)


def _slice_extrema(
    table: np.ndarray, starts: np.ndarray, ends: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Minimum and maximum of every non-empty ``table[starts[i]:ends[i]]``.

    Slices may overlap arbitrarily: the table is cut into the segments between all slice ends,
    and each slice's extrema come from a sparse table over those segments, so the cost is
    ``O(len(table) + n log n)`` however the slices overlap.
    """
    if starts.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    cuts = np.unique(np.concatenate([starts, ends]))
    segment_starts = cuts[:-1]  # segment k: table[cuts[k]:cuts[k + 1]], never empty
    first = np.searchsorted(cuts, starts)
    stop = np.searchsorted(cuts, ends)  # slice i covers segments first[i] .. stop[i] - 1
    # floor(log2(length)), exact for lengths below 2**53
    level = np.frexp((stop - first).astype(np.float64))[1] - 1
    extrema = []
    for reduce in (np.minimum, np.maximum):
        # levels[p][k]: extremum of segments k .. k + 2**p - 1 (edge-padded to one length)
        levels = [reduce.reduceat(table[: cuts[-1]], segment_starts)]
        while (1 << len(levels)) <= levels[0].size:
            step = 1 << (len(levels) - 1)
            prev = levels[-1]
            levels.append(np.concatenate([reduce(prev[:-step], prev[step:]), prev[-step:]]))
        stacked = np.stack(levels)
        extrema.append(reduce(stacked[level, first], stacked[level, stop - (1 << level)]))
    return extrema[0], extrema[1]


def _as_int_array(values: object, what: str) -> np.ndarray:
    array = np.asarray(values)
    if array.dtype == bool:
        return array.astype(np.int64)
    if not np.issubdtype(array.dtype, np.integer):
        if np.issubdtype(array.dtype, np.floating) and not np.all(np.isfinite(array)):
            raise ValueError(f"{what} contains NaN or inf")
        if np.issubdtype(array.dtype, np.floating) and np.array_equal(array, np.round(array)):
            return array.astype(np.int64)
        raise ValueError(f"{what} must hold integers, not {array.dtype}")
    return array.astype(np.int64)
