"""The dense layer (:class:`DenseLayer`) and its accumulator arithmetic.

For each output ``i``,
``acc_i = sum_j (w_ij * x_j) << (F_i - fw_ij - fx_j)  +  b_i << (F_i - fb_i)`` at the
accumulator's fractional bits ``F_i`` (:func:`accumulator_frac_bits`), then rounded to the
output's fractional bits, activated and brought into the output format (wrap or saturate).
A convolution (:class:`~hgq_rtl.ir.spatial.ConvLayer`) is defined by its lowering to a dense
layer with sparse weights.
:func:`accumulator_range` gives every accumulator's exact range; :func:`check_accumulators`
refuses a layer whose accumulators the int64 reference cannot hold exactly.

The IR imports only numpy and the standard library.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .fixed import MAX_REFERENCE_BITS, Activation, Overflow, RoundMode
from .formats import TensorFormat, _as_int_array
from .layers import _bits_with_rounding, _check_inputs, _check_modes, _check_name, _check_output


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


def _bit_length_of(values: np.ndarray) -> np.ndarray:
    """``int.bit_length`` of non-negative int64 values, element-wise (exact: no floats)."""
    values = np.asarray(values, np.int64)
    out = np.zeros(values.shape, np.int64)
    for step in (32, 16, 8, 4, 2, 1):
        big = values >= (np.int64(1) << step)
        out += np.where(big, step, 0)
        values = np.where(big, values >> step, values)
    return out + (values > 0)
