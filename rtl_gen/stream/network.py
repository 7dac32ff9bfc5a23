"""A whole network as a stream: IR convolutions and pooling onto window generators and shared
kernels, the flatten onto a collector, the dense tail onto pipelined dense stages.

A convolutional IR (``conv`` / ``maxpool_nd`` layers on a ``(C, *spatial)`` input, then dense
layers on the flattened map) becomes one :class:`~rtl_gen.stream.top.StreamChain`:

* each convolution: a :class:`~rtl_gen.stream.window.WindowGenerator` and **one**
  :class:`~rtl_gen.components.DenseComponent` evaluated on every window — the kernel as a
  constant ``(F, C/groups·kh·kw)`` matrix over the window vector (the shared adder graph,
  ternary adders and the delay model all apply) — in a :class:`StreamStage`;
* each max pooling: a window generator and a :class:`~rtl_gen.stream.pool.MaxTree`;
* the flatten: a :class:`~rtl_gen.stream.collect.Collector`; the first dense layer's columns are
  permuted from torch's ``(C, H, W)`` order to the collector's ``(H, W, C)`` order;
* each dense layer of the tail: a :class:`DenseComponent` in a :class:`StreamStage`.

With ``pixels_per_beat`` ``P`` above 1 the input carries ``P`` pixels of a row per beat, a
convolution or pooling on a stream of ``P`` pixels per beat gets a
:class:`~rtl_gen.stream.wide.WideWindowGenerator` and ``Q = min(ceil(P / stride_w), out_w)``
copies of its block (a :class:`~rtl_gen.stream.wide.Replicated`), so the stages after it run at
``Q`` pixels per beat (down to the one-pixel blocks at ``Q = 1``), and the collector drops the
slots past each row's end.

Exactness: every element of a channel must have the same format (the datapath is shared by all
positions; ``--arch cnn`` trains such models). Zero padding enters the kernel as zero values,
which add nothing; every accumulator is exact and the requantizer rounds the exact sum, so each
output equals the unrolled layer's (:meth:`hgq_rtl.ir.spatial.ConvLayer.to_dense`) exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from amaranth.lib import wiring

from hgq_rtl.ir.dense import DenseLayer
from hgq_rtl.ir.formats import TensorFormat
from hgq_rtl.ir.model import IRModel
from hgq_rtl.ir.spatial import ConvLayer, MaxPoolNdLayer

from ..components import DEFAULT_ADDER_LEVELS_PER_STAGE, DenseComponent
from ..timing import AMD, DelayModel
from .collect import Collector, beat_order
from .geometry import WindowGeometry
from .pool import MaxTree
from .stage import StreamStage
from .top import StreamChain
from .wide import Replicated, WideWindowGenerator, beat_elements, wide_slots, windows_per_beat
from .window import WindowGenerator

__all__ = ["StreamDesign", "build_stream", "stream_problem"]


@dataclass(frozen=True)
class DenseOptions:
    """How every dense datapath of the stream is built (see :class:`DenseComponent`)."""

    adder_levels_per_stage: int = DEFAULT_ADDER_LEVELS_PER_STAGE
    clock_ns: float | None = None
    share: bool = True
    ternary: bool = False
    delay_model: DelayModel = AMD


@dataclass(frozen=True)
class StreamDesign:
    """A streaming network and how its beats map onto the model's tensors.

    ``chain`` is the component (AXI4-Stream ports). ``input_slots`` / ``output_slots`` are the
    formats of one beat's fields (the same for every beat), ``input_beats`` /
    ``output_beats`` give, per beat, the model input / output element each field carries
    (arrays ``(beats, fields)``; -1 where a field carries none). ``pixels_per_beat`` is the
    input's pixels per beat (:mod:`rtl_gen.stream.wide`).
    """

    chain: StreamChain
    input_slots: TensorFormat
    input_beats: np.ndarray
    output_slots: TensorFormat
    output_beats: np.ndarray
    layers: tuple[dict, ...]
    #: Pixels per input beat.
    pixels_per_beat: int = 1

    @property
    def latency(self) -> int:
        return self.chain.latency_cycles()

    @property
    def initiation_interval(self) -> int:
        return self.chain.initiation_interval()


class StreamError(ValueError):
    """The model cannot be generated as a stream (the message says why and what to do)."""


def stream_problem(ir: IRModel, pixels_per_beat: int = 1) -> str | None:
    """Why ``ir`` cannot be built as a stream at ``pixels_per_beat`` pixels per input beat, or
    ``None`` when it can."""
    try:
        _plan(ir, pixels_per_beat=pixels_per_beat)
    except StreamError as error:
        return str(error)
    return None


def _input_shape(ir: IRModel) -> tuple[int, ...]:
    if len(ir.inputs) != 1:
        raise StreamError(
            f"stream generation takes a model with one input; {ir.name} has {len(ir.inputs)} "
            "(use --io parallel)"
        )
    shape = ir.inputs[0].shape
    if not shape or len(shape) not in (2, 3):
        raise StreamError(
            "stream generation needs the model input's shape (C, L) or (C, H, W); "
            f"{ir.name} has {shape or 'none'} (freeze the model again, or use --io parallel)"
        )
    return tuple(int(d) for d in shape)


def channel_formats(fmt: TensorFormat, channels: int, what: str) -> TensorFormat:
    """The one format per channel of a ``(channels, positions)`` tensor, or a
    :class:`StreamError` naming ``what`` when a channel's elements differ."""
    fields = [
        np.asarray(a).reshape(channels, -1) for a in (fmt.signed, fmt.int_bits, fmt.frac_bits)
    ]
    for k, field in enumerate(fields):
        differs = np.flatnonzero((field != field[:, :1]).any(axis=1))
        if differs.size:
            raise StreamError(
                f"stream generation needs one format per channel; channel {int(differs[0])} of "
                f"{what} has several ({('signs', 'integer bits', 'fractional bits')[k]} differ). "
                "Train with --arch cnn (one format per channel) or use --io parallel"
            )
    return TensorFormat(fields[0][:, 0], fields[1][:, 0], fields[2][:, 0])


def repeated(fmt: TensorFormat, times: int) -> TensorFormat:
    """Every element's format ``times`` times in a row: the window elements ``(c, tap)`` of
    per-channel formats, or a map's ``(c, position)`` elements."""
    return TensorFormat(*(np.repeat(a, times) for a in (fmt.signed, fmt.int_bits, fmt.frac_bits)))


def kernel_layer(layer: ConvLayer, output: TensorFormat) -> DenseLayer:
    """The convolution's kernel as one dense layer over the window vector (elements
    ``(c, *tap)`` over all input channels; weights of other groups are 0)."""
    out_channels, per_group = layer.weight.shape[:2]
    channels, taps = layer.in_shape[0], math.prod(layer.kernel)
    weight = np.zeros((out_channels, channels, taps), np.int64)
    frac = np.zeros_like(weight)
    group = np.arange(out_channels) // (out_channels // layer.groups)
    for f in range(out_channels):
        first = group[f] * per_group
        weight[f, first : first + per_group] = layer.weight[f].reshape(per_group, taps)
        frac[f, first : first + per_group] = layer.weight_frac_bits[f].reshape(per_group, taps)
    return DenseLayer(
        name=layer.name,
        weight=weight.reshape(out_channels, -1),
        weight_frac_bits=frac.reshape(out_channels, -1),
        bias=layer.bias,
        bias_frac_bits=layer.bias_frac_bits,
        output=output,
        activation=layer.activation,
        round_mode=layer.round_mode,
        overflow=layer.overflow,
    )


def _widths(fmt: TensorFormat) -> list[int]:
    return [int(w) for w in fmt.width]


def tiled(fmt: TensorFormat, times: int) -> TensorFormat:
    """The formats ``times`` times over: the slots of ``times`` pixels of per-channel formats."""
    return TensorFormat(*(np.tile(a, times) for a in (fmt.signed, fmt.int_bits, fmt.frac_bits)))


def _check_pixels_per_beat(pixels_per_beat: int, width: int) -> None:
    if type(pixels_per_beat) is not int or pixels_per_beat < 1:
        raise StreamError(
            f"pixels_per_beat (--pixels-per-beat) must be an integer >= 1, not {pixels_per_beat!r}"
        )
    if width % pixels_per_beat:
        raise StreamError(
            f"pixels_per_beat (--pixels-per-beat) must divide the input's width {width} (a beat "
            f"holds consecutive pixels of one row), not {pixels_per_beat}"
        )


def _plan(
    ir: IRModel,
    options: DenseOptions | None = None,
    *,
    build: bool = False,
    pixels_per_beat: int = 1,
):
    """Walk the chain; with ``build``, also make the components. Returns
    ``(stages, input channel format, input shape, output slots, output beats, layer stats)``."""
    options = options or DenseOptions()
    dense = {
        "adder_levels_per_stage": options.adder_levels_per_stage,
        "clock_ns": options.clock_ns,
        "share": options.share,
        "ternary": options.ternary,
        "delay_model": options.delay_model,
    }
    shape = _input_shape(ir)
    channels, spatial = shape[0], shape[1:]
    _check_pixels_per_beat(pixels_per_beat, spatial[-1])
    par = pixels_per_beat  # pixels per beat of the stream at this point
    current = channel_formats(ir.input, channels, "the input")
    input_channels = current
    stages: list[wiring.Component] = []
    stats: list[dict] = []
    previous = None
    flat: TensorFormat | None = None  # the collected tensor once the map is flattened
    for layer in ir.layers:
        if layer.inputs not in ((), (previous,)) and previous is not None:
            raise StreamError(
                f"stream generation takes a chain of layers; {layer.name} reads "
                f"{', '.join(layer.inputs)} (use --io parallel)"
            )
        previous = layer.name
        if isinstance(layer, ConvLayer | MaxPoolNdLayer):
            if flat is not None:
                raise StreamError(
                    f"{layer.name} ({layer.kind}) comes after the map was flattened; stream "
                    "generation takes convolutions and pooling first, dense layers last"
                )
            if tuple(layer.in_shape) != (channels, *spatial):
                raise StreamError(
                    f"{layer.name} expects input shape {tuple(layer.in_shape)}, the stream "
                    f"carries {(channels, *spatial)}"
                )
            geometry = WindowGeometry(
                channels,
                tuple(spatial),
                layer.kernel,
                layer.stride or 1,
                layer.padding or 0,
                layer.dilation or 1,
            )
            taps = math.prod(geometry.kernel)
            window_fmt = repeated(current, taps)
            out_channels = layer.out_shape[0]
            out_fmt = channel_formats(layer.output, out_channels, f"{layer.name}'s output")
            if isinstance(layer, MaxPoolNdLayer) and any(geometry.padding):
                raise StreamError(
                    f"{layer.name}: max pooling with padding is not streamed yet (padded "
                    "positions must never win); use --io parallel"
                )
            copies = windows_per_beat(geometry, par)
            if build:
                if par == 1:
                    stages.append(WindowGenerator(geometry, _widths(current)))
                else:
                    stages.append(WideWindowGenerator(geometry, _widths(current), par))
                blocks = []
                for _ in range(copies):  # the one kernel, once per window of a beat
                    if isinstance(layer, ConvLayer):
                        kernel = kernel_layer(layer, out_fmt)
                        blocks.append(DenseComponent(kernel, window_fmt, **dense))
                    else:
                        blocks.append(MaxTree(taps, window_fmt, out_fmt, name=layer.name))
                block = blocks[0]
                if isinstance(layer, ConvLayer):
                    stats.append(_dense_stats(layer, block, geometry))
                else:
                    stats.append(
                        {
                            "name": layer.name,
                            "kind": layer.kind,
                            "latency_cycles": block.latency,
                            "windows_per_image": geometry.out_positions,
                        }
                    )
                if copies > 1:
                    stats[-1]["copies"] = copies
                    block = Replicated(blocks)
                stages.append(StreamStage(block, name=layer.name))
            par = copies
            channels, spatial, current = out_channels, tuple(layer.out_shape[1:]), out_fmt
        elif isinstance(layer, DenseLayer):
            if flat is None:
                order = beat_order(channels, spatial)
                positions = math.prod(spatial)
                flat = _collected_format(current, order, positions)
                layer = replace(
                    layer,
                    weight=layer.weight[:, order],
                    weight_frac_bits=layer.weight_frac_bits[:, order],
                )
                if build and par == 1:
                    stages.append(Collector(positions, _widths(current)))
                elif build:  # drop the slots past each row's end
                    slots = wide_slots(spatial[-1], par)
                    keep = [
                        column >= 0
                        for _ in range(positions // spatial[-1])
                        for beat in slots
                        for column in beat
                        for _ in range(channels)
                    ]
                    beats = len(keep) // (par * channels)
                    stages.append(Collector(beats, _widths(current) * par, keep))
            if build:
                block = DenseComponent(layer, flat, **dense)
                stats.append(_dense_stats(layer, block, None))
                stages.append(StreamStage(block, name=layer.name))
            flat = layer.output
        else:
            raise StreamError(
                f"stream generation does not take {layer.kind} layers yet ({layer.name}); "
                "use --io parallel"
            )
    if not ir.layers or isinstance(ir.layers[0], DenseLayer):
        raise StreamError(
            f"{ir.name} starts with no convolution or pooling: nothing to stream "
            "(use --io parallel)"
        )
    if flat is None:  # the output is still a map, in the wide row layout
        out_slots = tiled(current, par)
        out_beats = beat_elements(channels, spatial, par)
    else:
        out_slots = flat
        out_beats = np.arange(flat.size)[None, :]
    return stages, input_channels, shape, out_slots, out_beats, tuple(stats)


def _collected_format(channel_fmt: TensorFormat, order: np.ndarray, positions: int) -> TensorFormat:
    """The collected map's format: per-channel formats over all positions, in collector order."""
    full = repeated(channel_fmt, positions)
    return TensorFormat(full.signed[order], full.int_bits[order], full.frac_bits[order])


def _dense_stats(layer, block: DenseComponent, geometry: WindowGeometry | None) -> dict:
    stats = {
        "name": layer.name,
        "kind": layer.kind,
        "latency_cycles": block.latency,
        "adder_depth": block.plan.depth,
        "adders": block.plan.adder_count(),
        "adder_bits": block.plan.adder_bits(),
        "shared_adders": len(block.plan.shared),
        "pipeline_register_bits": block.register_bits(),
    }
    if geometry is not None:
        stats["windows_per_image"] = geometry.out_positions
    return stats


def build_stream(
    ir: IRModel, options: DenseOptions | None = None, *, pixels_per_beat: int = 1
) -> StreamDesign:
    """The streaming design of ``ir`` taking ``pixels_per_beat`` consecutive pixels of a row per
    input beat (a divisor of the input's width; raises :class:`StreamError` with the reason
    when the model cannot be streamed so)."""
    stages, input_channels, shape, out_slots, out_beats, stats = _plan(
        ir, options, build=True, pixels_per_beat=pixels_per_beat
    )
    return StreamDesign(
        chain=StreamChain(stages),
        input_slots=tiled(input_channels, pixels_per_beat),
        input_beats=beat_elements(shape[0], shape[1:], pixels_per_beat),
        output_slots=out_slots,
        output_beats=out_beats,
        layers=stats,
        pixels_per_beat=pixels_per_beat,
    )
