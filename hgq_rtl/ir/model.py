"""The frozen integer model (IR): what training hands to the hardware generator.

Every array holds integers. A layer computes, for each output element ``i``,

    acc_i = sum_j (w_ij * x_j) << (F_i - fw_ij - fx_j)  +  b_i << (F_i - fb_i)

at the accumulator's fractional bits ``F_i`` (:func:`accumulator_frac_bits`), then moves ``acc_i``
to the output format with the layer's rounding, applies the activation and finally the overflow
mode. The IR imports only numpy and the standard library.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .fixed import MAX_REFERENCE_BITS, Activation, Overflow, RoundMode, int_range, widths


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
    kind: str = field(default="dense", init=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ValueError(f"layer name must be an identifier, not {self.name!r}")
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
        if self.output.size != n_out:
            raise ValueError(
                f"{self.name}.output has {self.output.size} elements, the layer has {n_out} outputs"
            )
        for attr, enum in (
            ("activation", Activation),
            ("round_mode", RoundMode),
            ("overflow", Overflow),
        ):
            if not isinstance(getattr(self, attr), enum):
                raise ValueError(
                    f"{self.name}.{attr} must be a {enum.__name__}, not {getattr(self, attr)!r}"
                )

    @property
    def in_features(self) -> int:
        return int(self.weight.shape[1])

    @property
    def out_features(self) -> int:
        return int(self.weight.shape[0])


Layer = DenseLayer


@dataclass(frozen=True, eq=False)
class IRModel:
    """A frozen integer network: an input format and a chain of layers."""

    name: str
    input: TensorFormat
    layers: tuple[Layer, ...]
    input_overflow: Overflow = Overflow.SAT
    metadata: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ValueError(f"model name must be an identifier, not {self.name!r}")
        object.__setattr__(self, "layers", tuple(self.layers))
        if not isinstance(self.input_overflow, Overflow):
            raise ValueError(f"input_overflow must be an Overflow, not {self.input_overflow!r}")
        if not self.layers:
            raise ValueError("a model needs at least one layer")
        names = [layer.name for layer in self.layers]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"layer names must be unique, {duplicates[0]!r} repeats")
        fmt = self.input
        for layer in self.layers:
            if layer.in_features != fmt.size:
                raise ValueError(
                    f"{layer.name} expects {layer.in_features} inputs, it receives {fmt.size}"
                )
            check_accumulators(layer, fmt)
            fmt = layer.output

    @property
    def output(self) -> TensorFormat:
        return self.layers[-1].output

    def input_formats(self) -> list[TensorFormat]:
        """The format of each layer's input, in order."""
        return [self.input] + [layer.output for layer in self.layers[:-1]]


def accumulator_frac_bits(layer: DenseLayer, input_format: TensorFormat) -> np.ndarray:
    """Fractional bits ``F_i`` of each output's accumulator.

    The finest step among its non-zero products and its bias; an output with no terms at all
    uses the output format's fractional bits.
    """
    live = (layer.weight != 0) & (input_format.width[None, :] > 0)
    product_frac = layer.weight_frac_bits + input_format.frac_bits[None, :]
    lowest = np.iinfo(np.int64).min
    frac = np.where(live, product_frac, lowest).max(axis=1)
    frac = np.where(layer.bias != 0, np.maximum(frac, layer.bias_frac_bits), frac)
    return np.where(frac == lowest, layer.output.frac_bits, frac)


def accumulator_range(layer: DenseLayer, input_format: TensorFormat) -> tuple[list[int], list[int]]:
    """Exact inclusive range of every accumulator over all inputs of ``input_format``.

    Computed with Python integers so that it cannot overflow; used to validate the IR.
    """
    frac = accumulator_frac_bits(layer, input_format)
    x_lo, x_hi = input_format.int_range()
    live = (layer.weight != 0) & (input_format.width[None, :] > 0)
    los, his = [], []
    for i in range(layer.out_features):
        lo = hi = (
            int(layer.bias[i]) << int(frac[i] - layer.bias_frac_bits[i]) if layer.bias[i] else 0
        )
        for j in np.flatnonzero(live[i]):
            shift = int(frac[i] - layer.weight_frac_bits[i, j] - input_format.frac_bits[j])
            a = (int(layer.weight[i, j]) * int(x_lo[j])) << shift
            b = (int(layer.weight[i, j]) * int(x_hi[j])) << shift
            lo += min(a, b)
            hi += max(a, b)
        los.append(lo)
        his.append(hi)
    return los, his


def check_accumulators(layer: DenseLayer, input_format: TensorFormat) -> None:
    """Raise ``ValueError`` if an accumulator or shift exceeds what int64 holds exactly."""
    frac = accumulator_frac_bits(layer, input_format)
    shifts = frac - layer.output.frac_bits
    if shifts.size and np.abs(shifts).max() > MAX_REFERENCE_BITS:
        i = int(np.abs(shifts).argmax())
        raise ValueError(
            f"{layer.name} output {i} shifts by {int(shifts[i])} bits: "
            f"at most {MAX_REFERENCE_BITS} are supported"
        )
    los, his = accumulator_range(layer, input_format)
    for i, (lo, hi) in enumerate(zip(los, his, strict=True)):
        # +1: the rounding constant; a finer output format shifts the sum further left
        bits = max((-lo).bit_length(), (hi + 1).bit_length()) + 1 + max(-int(shifts[i]), 0)
        if bits > MAX_REFERENCE_BITS:
            raise ValueError(
                f"{layer.name} output {i} needs a {bits}-bit accumulator: "
                f"the reference holds at most {MAX_REFERENCE_BITS} bits exactly"
            )


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
