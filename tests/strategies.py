"""Hypothesis strategies for fuzzing: networks drawn as explicit :class:`ModelSpec` shapes.

The strategy draws every structural choice itself (layer count and sizes, formats' widths, the
modes, how many weights and elements are zero), so a failing example shrinks to a small network
with the simplest modes; :func:`~hgq_rtl.ir.random.model_from_spec` fills in the values from the
drawn seed. Graphs of every layer kind are drawn the same way (:func:`graph_specs`, built by
:func:`graph_from_spec`): which kinds, in which order, reading which earlier tensors.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st

from hgq_rtl.ir.fixed import Activation, Overflow, RoundMode
from hgq_rtl.ir.formats import (
    TensorFormat,
    concat_formats,
    exact_add_format,
    exact_maxpool_format,
)
from hgq_rtl.ir.layers import AddLayer, ConcatLayer, MaxPoolLayer, QuantizeLayer
from hgq_rtl.ir.model import IRModel
from hgq_rtl.ir.random import (
    FUZZ_MAX_FEATURES,
    FUZZ_MAX_LAYERS,
    FUZZ_MAX_WEIGHT_BITS,
    FUZZ_MAX_WIDTH,
    LayerSpec,
    ModelSpec,
    random_dense,
    random_format,
    random_lookup,
)
from rtl_gen.emit import RtlOptions

#: Fractions of zero weights / zero-width elements: none first, so examples shrink towards none.
ZERO_FRACTIONS = (0.0, 0.1, 0.3, 0.7, 1.0)


def layer_specs(max_features: int = FUZZ_MAX_FEATURES) -> st.SearchStrategy[LayerSpec]:
    """One dense layer: 1 to *max_features* outputs, every mode, widths 0 to 12 bits."""
    return st.builds(
        LayerSpec,
        outputs=st.integers(1, max_features),
        activation=st.sampled_from(Activation),
        round_mode=st.sampled_from(RoundMode),
        overflow=st.sampled_from(Overflow),
        max_width=st.integers(0, FUZZ_MAX_WIDTH),
        weight_bits=st.integers(0, FUZZ_MAX_WEIGHT_BITS),
        zero_weights=st.sampled_from(ZERO_FRACTIONS),
    )


def model_specs(
    max_layers: int = FUZZ_MAX_LAYERS, max_features: int = FUZZ_MAX_FEATURES
) -> st.SearchStrategy[ModelSpec]:
    """A network of 1 to *max_layers* layers on 1 to *max_features* inputs."""
    return st.builds(
        ModelSpec,
        inputs=st.integers(1, max_features),
        layers=st.lists(layer_specs(max_features), min_size=1, max_size=max_layers).map(tuple),
        max_input_width=st.integers(0, FUZZ_MAX_WIDTH),
        zero_width=st.sampled_from(ZERO_FRACTIONS[:3]),
        signed=st.sampled_from((0.5, 0.0, 1.0)),
        seed=st.integers(0, 2**32 - 1),
    )


def rtl_options() -> st.SearchStrategy[RtlOptions]:
    """Generator options: pipelining by adder levels or by a delay model, with and without
    shared subexpressions and the input register."""
    return st.builds(
        RtlOptions,
        adder_levels_per_stage=st.integers(1, 3),
        register_inputs=st.booleans(),
        share_subexpressions=st.booleans(),
        clock_ns=st.none() | st.sampled_from((2.0, 4.0)),
    )


# ------------------------------------------------------------------------------------ graphs

#: The layer kinds a fuzzed graph draws from.
GRAPH_KINDS = ("dense", "quantize", "maxpool", "add", "concat", "lookup")
#: Widest element of a fuzzed graph's input and of its dense and quantize outputs.
GRAPH_MAX_WIDTH = 8
#: Widest input a fuzzed lookup reads (its tables have at most 2**this entries per element).
GRAPH_LOOKUP_MAX_WIDTH = 8


@dataclass(frozen=True)
class GraphLayerSpec:
    """One layer of a fuzzed graph. ``sources`` pick the tensors it reads among those before it
    (0: the newest; counted modulo how many there are); ``size`` is a dense layer's outputs or
    a maxpool's windows (``len(sources) + 1`` wide)."""

    kind: str
    sources: tuple[int, ...]
    size: int
    activation: Activation = Activation.LINEAR
    round_mode: RoundMode = RoundMode.RND
    overflow: Overflow = Overflow.WRAP


@dataclass(frozen=True)
class GraphSpec:
    """A fuzzed graph: ``inputs`` elements, its layers, and the seed of every format, weight,
    window and table (:func:`graph_from_spec`)."""

    inputs: int
    layers: tuple[GraphLayerSpec, ...]
    seed: int = 0


def graph_specs(max_layers: int = 6, max_size: int = 6) -> st.SearchStrategy[GraphSpec]:
    """A graph of 2 to *max_layers* layers of every kind, 1 to *max_size* elements wide."""
    layer = st.builds(
        GraphLayerSpec,
        kind=st.sampled_from(GRAPH_KINDS),
        sources=st.lists(st.integers(0, 7), min_size=2, max_size=3).map(tuple),
        size=st.integers(1, max_size),
        activation=st.sampled_from(Activation),
        round_mode=st.sampled_from(RoundMode),
        overflow=st.sampled_from(Overflow),
    )
    return st.builds(
        GraphSpec,
        inputs=st.integers(1, max_size),
        layers=st.lists(layer, min_size=2, max_size=max_layers).map(tuple),
        seed=st.integers(0, 2**32 - 1),
    )


def graph_from_spec(spec: GraphSpec) -> IRModel:
    """The IR model a :class:`GraphSpec` describes (the same spec gives the same model).

    Every layer names its inputs. An ``add`` reads tensors of its first source's size (that one
    again when there is no other); a ``lookup`` reads a tensor at most
    :data:`GRAPH_LOOKUP_MAX_WIDTH` bits wide, and is a narrow ``quantize`` when there is none.
    Formats are :func:`~hgq_rtl.ir.random.random_format`'s (zero-width elements included);
    maxpool and add outputs are the exact formats, one in three with extra integer and
    fractional bits.
    """
    rng = np.random.default_rng(spec.seed)
    x = random_format(rng, spec.inputs, max_width=GRAPH_MAX_WIDTH)
    tensors: list[tuple[str, TensorFormat]] = [("input", x)]
    layers = []
    for k, layer_spec in enumerate(spec.layers):
        kind = layer_spec.kind
        modes = (layer_spec.activation, layer_spec.round_mode, layer_spec.overflow)
        picked = [tensors[-1 - j % len(tensors)] for j in layer_spec.sources]
        (source, fmt), name = picked[0], f"{kind}_{k}"
        if kind == "lookup":
            narrow = [t for t in reversed(tensors) if t[1].width.max() <= GRAPH_LOOKUP_MAX_WIDTH]
            if not narrow:
                kind, name = "quantize", f"quantize_{k}"
            else:
                source, fmt = narrow[layer_spec.sources[0] % len(narrow)]
        if kind == "dense":
            dense = random_dense(rng, name, fmt, layer_spec.size, weight_bits=4)
            out = random_format(rng, layer_spec.size, max_width=GRAPH_MAX_WIDTH)
            layer = dataclasses.replace(
                dense,
                output=out,
                activation=modes[0],
                round_mode=modes[1],
                overflow=modes[2],
                inputs=(source,),
            )
        elif kind == "quantize":
            out = random_format(rng, fmt.size, max_width=GRAPH_LOOKUP_MAX_WIDTH)
            layer = QuantizeLayer(name, out, *modes, inputs=(source,))
        elif kind == "maxpool":
            windows = rng.integers(0, fmt.size, (layer_spec.size, len(picked) + 1))
            out = _roomier(rng, exact_maxpool_format(fmt, windows))
            layer = MaxPoolLayer(name, windows, out, inputs=(source,))
        elif kind == "add":
            alike = [t for t in tensors if t[1].size == fmt.size]
            others = [alike[j % len(alike)] for j in layer_spec.sources[1:]] or [picked[0]]
            names, formats = zip(picked[0], *others, strict=True)
            out = _roomier(rng, exact_add_format(formats))
            layer = AddLayer(name, out, tuple(names))
        elif kind == "concat":
            names = tuple(n for n, _ in picked)
            layer = ConcatLayer(name, concat_formats([f for _, f in picked]), names)
        else:
            out = random_format(rng, fmt.size, max_width=GRAPH_MAX_WIDTH)
            layer = dataclasses.replace(random_lookup(rng, name, fmt, out), inputs=(source,))
        layers.append(layer)
        tensors.append((name, layer.output))
    return IRModel("fuzz_graph", x, tuple(layers))


def _roomier(rng: np.random.Generator, exact: TensorFormat) -> TensorFormat:
    """``exact``, or (one time in three) with up to 2 more integer and fractional bits."""
    if rng.random() >= 1 / 3:
        return exact
    more_int, more_frac = rng.integers(0, 3, 2)
    return TensorFormat(exact.signed, exact.int_bits + more_int, exact.frac_bits + more_frac)
