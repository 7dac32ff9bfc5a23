"""Hypothesis strategies for fuzzing: networks drawn as explicit :class:`ModelSpec` shapes.

The strategy draws every structural choice itself (layer count and sizes, formats' widths, the
modes, how many weights and elements are zero), so a failing example shrinks to a small network
with the simplest modes; :func:`~hgq_rtl.ir.random.model_from_spec` fills in the values from the
drawn seed.
"""

from __future__ import annotations

from hypothesis import strategies as st

from hgq_rtl.ir.fixed import Activation, Overflow, RoundMode
from hgq_rtl.ir.random import (
    FUZZ_MAX_FEATURES,
    FUZZ_MAX_LAYERS,
    FUZZ_MAX_WEIGHT_BITS,
    FUZZ_MAX_WIDTH,
    LayerSpec,
    ModelSpec,
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
