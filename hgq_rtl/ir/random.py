"""Random IR models for tests, fuzzing and benchmarks (numpy only).

:func:`random_model` draws a chain of layers of given sizes, :func:`random_graph` a small graph
with every layer kind, :func:`random_cnn` a small convolutional network (conv → quantize →
maxpool_nd → dense, built from :func:`random_conv` and :func:`random_maxpool_nd`) and
:func:`random_two_inputs` a model with two named inputs. For fuzzing, a :class:`ModelSpec`
states a network's shape and modes explicitly (what a property-based test draws and shrinks) and
:func:`model_from_spec` fills in formats, weights and biases from the spec's seed;
:func:`random_spec` draws a spec with numpy (for benchmarks).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from .dense import DenseLayer
from .fixed import Activation, Overflow, RoundMode
from .formats import TensorFormat, concat_formats, exact_add_format, exact_maxpool_format
from .layers import AddLayer, ConcatLayer, LookupLayer, MaxPoolLayer, QuantizeLayer
from .model import IRModel, ModelInput
from .spatial import ConvLayer, MaxPoolNdLayer, output_size, pool_windows


def random_format(rng: np.random.Generator, size: int, *, max_width: int = 10) -> TensorFormat:
    """Per-element formats with widths 0..max_width, either sign, and shifted binary points."""
    signed = rng.random(size) < 0.5
    width = rng.integers(0, max_width + 1, size)
    width = np.maximum(width, signed.astype(np.int64))
    frac_bits = rng.integers(-2, 6, size)
    int_bits = width - signed - frac_bits
    zero = width == 0
    return TensorFormat(
        np.where(zero, False, signed), np.where(zero, -frac_bits, int_bits), frac_bits
    )


def random_dense(
    rng: np.random.Generator,
    name: str,
    input_format: TensorFormat,
    outputs: int,
    *,
    round_mode: RoundMode | None = None,
    overflow: Overflow | None = None,
    activation: Activation | None = None,
    weight_bits: int = 6,
) -> DenseLayer:
    """A dense layer with sparse random integer weights and random per-element formats."""
    n_in = input_format.size
    weight = rng.integers(-(1 << weight_bits), 1 << weight_bits, (outputs, n_in))
    weight[rng.random((outputs, n_in)) < 0.3] = 0
    return DenseLayer(
        name=name,
        weight=weight,
        weight_frac_bits=rng.integers(-2, 7, (outputs, n_in)),
        bias=rng.integers(-(1 << 8), 1 << 8, outputs) * (rng.random(outputs) < 0.7),
        bias_frac_bits=rng.integers(0, 8, outputs),
        output=random_format(rng, outputs),
        activation=activation or rng.choice(list(Activation)),
        round_mode=round_mode or rng.choice(list(RoundMode)),
        overflow=overflow or rng.choice(list(Overflow)),
    )


def random_model(
    rng: np.random.Generator,
    sizes: tuple[int, ...] = (6, 5, 3),
    *,
    name: str = "random_net",
    **layer_options,
) -> IRModel:
    """A chain of :func:`random_dense` layers with ``sizes[0]`` inputs."""
    input_format = fmt = random_format(rng, sizes[0])
    layers = []
    for k, outputs in enumerate(sizes[1:]):
        layer = random_dense(rng, f"dense_{k}", fmt, outputs, **layer_options)
        layers.append(layer)
        fmt = layer.output
    return IRModel(name=name, input=input_format, layers=tuple(layers))


def random_graph(
    rng: np.random.Generator, inputs: int = 6, hidden: int = 5, *, name: str = "random_graph"
) -> IRModel:
    """A small graph using every layer kind, with random formats, weights, tables and modes::

    input ─► dense_0 ─► quantize_0 ─┬─► add_0 ─► maxpool_0 ─► quantize_1 ─► lookup_0 ─┐
    input ─► dense_1 ───────────────┘                                                  │
                        quantize_0 ──────────────────────────────────► concat_0 ◄──────┘
                                                                           └─► dense_2
    """
    fmt = random_format(rng, inputs)
    dense_0 = random_dense(rng, "dense_0", fmt, hidden)
    quantize_0 = QuantizeLayer(
        "quantize_0",
        random_format(rng, hidden),
        rng.choice(list(Activation)),
        rng.choice(list(RoundMode)),
        rng.choice(list(Overflow)),
    )
    dense_1 = dataclasses.replace(random_dense(rng, "dense_1", fmt, hidden), inputs=("input",))
    add_0 = AddLayer(
        "add_0",
        exact_add_format([quantize_0.output, dense_1.output]),
        inputs=("quantize_0", "dense_1"),
    )
    pooled = max(hidden - 1, 1)
    windows = np.stack([rng.choice(hidden, 2, replace=False) for _ in range(pooled)])
    maxpool_0 = MaxPoolLayer("maxpool_0", windows, exact_maxpool_format(add_0.output, windows))
    quantize_1 = QuantizeLayer("quantize_1", random_format(rng, pooled, max_width=5))
    lookup_0 = random_lookup(rng, "lookup_0", quantize_1.output, random_format(rng, pooled))
    concat_0 = ConcatLayer(
        "concat_0",
        concat_formats([lookup_0.output, quantize_0.output]),
        inputs=("lookup_0", "quantize_0"),
    )
    dense_2 = random_dense(rng, "dense_2", concat_0.output, 3)
    layers = (dense_0, quantize_0, dense_1, add_0, maxpool_0, quantize_1, lookup_0, concat_0)
    return IRModel(name=name, input=fmt, layers=(*layers, dense_2))


def random_lookup(
    rng: np.random.Generator, name: str, input_format: TensorFormat, output: TensorFormat
) -> LookupLayer:
    """A lookup layer with a random table over each element's input range; an element whose
    input and output formats equal the previous element's shares its slice half the time."""
    lo, hi = input_format.int_range()
    out_lo, out_hi = output.int_range()
    offsets, slices, used = [], [], 0
    for i in range(input_format.size):
        same = i > 0 and (lo[i], hi[i], out_lo[i], out_hi[i]) == (
            lo[i - 1],
            hi[i - 1],
            out_lo[i - 1],
            out_hi[i - 1],
        )
        if same and rng.random() < 0.5:
            offsets.append(offsets[-1])
            continue
        offsets.append(used)
        slices.append(rng.integers(out_lo[i], out_hi[i] + 1, int(hi[i] - lo[i] + 1)))
        used += slices[-1].size
    return LookupLayer(name, lo, offsets, np.concatenate(slices), output)


# ------------------------------------------------------------------------ spatial and inputs


def random_conv(
    rng: np.random.Generator,
    name: str,
    in_shape: tuple[int, ...],
    out_channels: int,
    kernel: int | tuple[int, ...] = 3,
    *,
    stride: int | tuple[int, ...] = 1,
    padding: int | tuple[int, ...] = 0,
    dilation: int | tuple[int, ...] = 1,
    groups: int = 1,
    weight_bits: int = 4,
    activation: Activation | None = None,
    round_mode: RoundMode | None = None,
    overflow: Overflow | None = None,
) -> ConvLayer:
    """A conv layer over ``in_shape`` with sparse random integer weights, random biases, modes
    (unless given) and output formats."""
    dims = len(in_shape) - 1
    kernel = (kernel,) * dims if isinstance(kernel, int) else tuple(kernel)
    shape = (out_channels, in_shape[0] // groups, *kernel)
    weight = rng.integers(-(1 << weight_bits), 1 << weight_bits, shape)
    weight[rng.random(shape) < 0.3] = 0
    geometry = (stride, padding, dilation)
    spatial = [_per_dim(v, dims) for v in geometry]
    sizes = in_shape[1:], kernel, *spatial
    positions = [max(output_size(*dim), 0) for dim in zip(*sizes, strict=True)]
    out = out_channels * int(np.prod(positions))  # 0 if empty: ConvLayer says why
    return ConvLayer(
        name=name,
        in_shape=tuple(in_shape),
        weight=weight,
        weight_frac_bits=rng.integers(-2, 7, shape),
        bias=rng.integers(-(1 << 8), 1 << 8, out_channels) * (rng.random(out_channels) < 0.7),
        bias_frac_bits=rng.integers(0, 8, out_channels),
        output=random_format(rng, out),
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        activation=activation or rng.choice(list(Activation)),
        round_mode=round_mode or rng.choice(list(RoundMode)),
        overflow=overflow or rng.choice(list(Overflow)),
    )


def _per_dim(value: int | tuple[int, ...], dims: int) -> tuple[int, ...]:
    return (value,) * dims if isinstance(value, int) else tuple(value)


def random_maxpool_nd(
    rng: np.random.Generator,
    name: str,
    input_format: TensorFormat,
    in_shape: tuple[int, ...],
    kernel: int | tuple[int, ...] | None = None,
    *,
    stride: int | tuple[int, ...] | None = None,
    padding: int | tuple[int, ...] | None = None,
    dilation: int | tuple[int, ...] = 1,
) -> MaxPoolNdLayer:
    """A maxpool_nd layer over ``in_shape`` data of ``input_format`` with the exact (smallest)
    output format. What is not given is drawn: ``kernel`` 1 to 3 (at most each spatial size),
    ``padding`` 0 to ``kernel // 2`` per dimension; ``stride`` defaults to ``kernel``."""
    dims = len(in_shape) - 1
    if kernel is None:
        kernel = tuple(int(rng.integers(1, min(3, size) + 1)) for size in in_shape[1:])
    kernel = _per_dim(kernel, dims)
    if padding is None:
        padding = tuple(int(rng.integers(0, k // 2 + 1)) for k in kernel)
    stride = kernel if stride is None else _per_dim(stride, dims)
    padding, dilation = _per_dim(padding, dims), _per_dim(dilation, dims)
    windows = pool_windows(tuple(in_shape), kernel, stride, padding, dilation)
    output = exact_maxpool_format(input_format, windows)
    return MaxPoolNdLayer(name, tuple(in_shape), kernel, output, stride, padding, dilation)


def random_cnn(
    rng: np.random.Generator,
    in_shape: tuple[int, ...] = (2, 6, 6),
    channels: int = 3,
    *,
    kernel: int = 3,
    padding: int = 1,
    groups: int = 1,
    outputs: int = 3,
    name: str = "random_cnn",
) -> IRModel:
    """A small convolutional network with random formats, weights and modes, its input shaped
    ``in_shape`` (``(C, L)`` or ``(C, H, W)``)::

        input ─► conv_0 ─► quantize_0 ─► maxpool_0 (kernel 2, padding 1) ─► dense_0
    """
    fmt = random_format(rng, int(np.prod(in_shape)))
    conv = random_conv(rng, "conv_0", in_shape, channels, kernel, padding=padding, groups=groups)
    quantize = QuantizeLayer(
        "quantize_0",
        random_format(rng, conv.output.size, max_width=6),
        rng.choice(list(Activation)),
        rng.choice(list(RoundMode)),
        rng.choice(list(Overflow)),
    )
    pool = random_maxpool_nd(rng, "maxpool_0", quantize.output, conv.out_shape, 2, padding=1)
    dense = random_dense(rng, "dense_0", pool.output, outputs)
    model_input = ModelInput("input", fmt, tuple(in_shape))
    return IRModel(name, None, (conv, quantize, pool, dense), inputs=(model_input,))


def random_two_inputs(
    rng: np.random.Generator, shapes: tuple[tuple[int, ...], ...] = ((2, 3), (4,))
) -> IRModel:
    """A model with one named input per shape (``x0``, ``x1``, ...), each read by its own dense
    layer, then concatenated and read by a last dense layer::

        x0 ─► dense_0 ─┐
        x1 ─► dense_1 ─┴─► concat_0 ─► dense_2
    """
    inputs = tuple(
        ModelInput(f"x{k}", random_format(rng, int(np.prod(shape))), tuple(shape))
        for k, shape in enumerate(shapes)
    )
    denses = [
        dataclasses.replace(
            random_dense(rng, f"dense_{k}", model_input.format, 3), inputs=(model_input.name,)
        )
        for k, model_input in enumerate(inputs)
    ]
    concat = ConcatLayer(
        "concat_0",
        concat_formats([dense.output for dense in denses]),
        inputs=tuple(dense.name for dense in denses),
    )
    last = random_dense(rng, f"dense_{len(denses)}", concat.output, 2)
    return IRModel("random_inputs", None, (*denses, concat, last), inputs=inputs)


# ------------------------------------------------------------------------------------ fuzzing

#: Fractional bits of the fuzzed formats and weights: negative ones (a step coarser than 1) too.
FUZZ_FRAC_BITS = (-2, 6)
#: Upper limits of the fuzzed shapes: every accumulator then fits the reference's 62 bits.
FUZZ_MAX_LAYERS = 4
FUZZ_MAX_FEATURES = 32
FUZZ_MAX_WIDTH = 12
FUZZ_MAX_WEIGHT_BITS = 8


@dataclass(frozen=True)
class LayerSpec:
    """The shape of one fuzzed dense layer; its values come from :attr:`ModelSpec.seed`.

    Attributes
    ----------
    outputs:
        Output elements, 1 to ``FUZZ_MAX_FEATURES``.
    activation, round_mode, overflow:
        The layer's modes.
    max_width:
        Widest output element in bits (0 to ``FUZZ_MAX_WIDTH``).
    weight_bits:
        Weights are drawn from ``[-2**weight_bits, 2**weight_bits)`` (0 to
        ``FUZZ_MAX_WEIGHT_BITS``; 0 gives weights of -1 and 0 only).
    zero_weights:
        Fraction of the weights (and of the biases) that are 0, in [0, 1].
    """

    outputs: int
    activation: Activation = Activation.LINEAR
    round_mode: RoundMode = RoundMode.RND
    overflow: Overflow = Overflow.WRAP
    max_width: int = 8
    weight_bits: int = 6
    zero_weights: float = 0.3

    def __post_init__(self) -> None:
        _check_int("outputs", self.outputs, 1, FUZZ_MAX_FEATURES)
        _check_int("max_width", self.max_width, 0, FUZZ_MAX_WIDTH)
        _check_int("weight_bits", self.weight_bits, 0, FUZZ_MAX_WEIGHT_BITS)
        _check_fraction("zero_weights", self.zero_weights)
        for attr, enum in (
            ("activation", Activation),
            ("round_mode", RoundMode),
            ("overflow", Overflow),
        ):
            if not isinstance(getattr(self, attr), enum):
                raise ValueError(f"{attr} must be a {enum.__name__}, not {getattr(self, attr)!r}")


@dataclass(frozen=True)
class ModelSpec:
    """The shape of a fuzzed network (:func:`model_from_spec` turns it into an IR model).

    Attributes
    ----------
    inputs:
        Input elements, 1 to ``FUZZ_MAX_FEATURES``.
    layers:
        1 to ``FUZZ_MAX_LAYERS`` layers.
    max_input_width:
        Widest input element in bits (0 to ``FUZZ_MAX_WIDTH``).
    zero_width:
        Fraction of the input and output elements that are 0 bits wide, in [0, 1].
    signed:
        Fraction of the elements that are signed, in [0, 1].
    seed:
        Seed of the numpy generator that draws every format, weight and bias.
    """

    inputs: int
    layers: tuple[LayerSpec, ...]
    max_input_width: int = 8
    zero_width: float = 0.1
    signed: float = 0.5
    seed: int = 0

    def __post_init__(self) -> None:
        _check_int("inputs", self.inputs, 1, FUZZ_MAX_FEATURES)
        _check_int("max_input_width", self.max_input_width, 0, FUZZ_MAX_WIDTH)
        _check_fraction("zero_width", self.zero_width)
        _check_fraction("signed", self.signed)
        _check_int("seed", self.seed, 0, 2**63 - 1)
        object.__setattr__(self, "layers", tuple(self.layers))
        if not 1 <= len(self.layers) <= FUZZ_MAX_LAYERS:
            raise ValueError(
                f"layers must hold 1 to {FUZZ_MAX_LAYERS} LayerSpecs, not {len(self.layers)}"
            )
        if not all(isinstance(layer, LayerSpec) for layer in self.layers):
            raise ValueError(f"layers must hold LayerSpecs, not {self.layers!r}")


def random_spec(rng: np.random.Generator) -> ModelSpec:
    """A random :class:`ModelSpec`: every shape, mode and feature the fuzzer covers."""
    fractions = (0.0, 0.1, 0.3, 0.7, 1.0)
    layers = tuple(
        LayerSpec(
            outputs=int(rng.integers(1, FUZZ_MAX_FEATURES + 1)),
            activation=rng.choice(list(Activation)),
            round_mode=rng.choice(list(RoundMode)),
            overflow=rng.choice(list(Overflow)),
            max_width=int(rng.integers(0, FUZZ_MAX_WIDTH + 1)),
            weight_bits=int(rng.integers(0, FUZZ_MAX_WEIGHT_BITS + 1)),
            zero_weights=float(rng.choice(fractions)),
        )
        for _ in range(int(rng.integers(1, FUZZ_MAX_LAYERS + 1)))
    )
    return ModelSpec(
        inputs=int(rng.integers(1, FUZZ_MAX_FEATURES + 1)),
        layers=layers,
        max_input_width=int(rng.integers(0, FUZZ_MAX_WIDTH + 1)),
        zero_width=float(rng.choice(fractions[:3])),
        signed=float(rng.choice((0.0, 0.5, 1.0))),
        seed=int(rng.integers(0, 2**63 - 1)),
    )


def model_from_spec(spec: ModelSpec, *, name: str = "fuzz_net") -> IRModel:
    """The IR model a :class:`ModelSpec` describes (the same spec gives the same model).

    Formats take widths from 0 to the spec's maximum and fractional bits in ``FUZZ_FRAC_BITS``,
    so integer bits can be negative too; weights and biases have their own fractional bits.
    """
    rng = np.random.default_rng(spec.seed)
    fmt = input_format = _fuzz_format(rng, spec.inputs, spec.max_input_width, spec)
    layers = []
    low, high = FUZZ_FRAC_BITS
    for k, layer in enumerate(spec.layers):
        shape = (layer.outputs, fmt.size)
        limit = 1 << layer.weight_bits
        weight = rng.integers(-limit, limit, shape) * (rng.random(shape) >= layer.zero_weights)
        bias = rng.integers(-(1 << 8), 1 << 8, layer.outputs)
        bias *= rng.random(layer.outputs) >= layer.zero_weights
        dense = DenseLayer(
            name=f"dense_{k}",
            weight=weight,
            weight_frac_bits=rng.integers(low, high + 1, shape),
            bias=bias,
            bias_frac_bits=rng.integers(0, high + 1, layer.outputs),
            output=_fuzz_format(rng, layer.outputs, layer.max_width, spec),
            activation=layer.activation,
            round_mode=layer.round_mode,
            overflow=layer.overflow,
        )
        layers.append(dense)
        fmt = dense.output
    return IRModel(name=name, input=input_format, layers=tuple(layers))


def _fuzz_format(
    rng: np.random.Generator, size: int, max_width: int, spec: ModelSpec
) -> TensorFormat:
    low, high = FUZZ_FRAC_BITS
    signed = rng.random(size) < spec.signed
    width = rng.integers(0, max_width + 1, size)
    width[rng.random(size) < spec.zero_width] = 0
    signed &= width > 0
    frac_bits = rng.integers(low, high + 1, size)
    return TensorFormat(signed, width - signed - frac_bits, frac_bits)


def _check_int(name: str, value: object, low: int, high: int) -> None:
    integer = isinstance(value, int | np.integer) and not isinstance(value, bool)
    if not integer or not low <= value <= high:
        raise ValueError(f"{name} must be an int in [{low}, {high}], not {value!r}")


def _check_fraction(name: str, value: object) -> None:
    if not isinstance(value, float | int) or isinstance(value, bool) or not 0 <= value <= 1:
        raise ValueError(f"{name} must be a number in [0, 1], not {value!r}")
