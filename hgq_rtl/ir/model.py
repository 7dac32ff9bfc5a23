"""The frozen integer model (IR): what training hands to the hardware generator.

A model (:class:`IRModel`) is a small graph of integer layers in topological order. Every
tensor is 1-D per sample (a convolution's ``(C, H, W)`` activations are flattened in C order)
and every element has its own fixed-point format (:mod:`hgq_rtl.ir.formats`). A layer reads the
outputs of earlier layers, named in its ``inputs`` (empty: the previous layer's output, the
model input ``"input"`` for the first layer). The layer kinds are in :mod:`hgq_rtl.ir.dense`
and :mod:`hgq_rtl.ir.layers`; :data:`LAYER_TYPES` lists them all.

The IR imports only numpy and the standard library.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .dense import DenseLayer
from .fixed import Overflow
from .formats import TensorFormat
from .layers import AddLayer, ConcatLayer, LookupLayer, MaxPoolLayer, QuantizeLayer

#: The name by which a layer's ``inputs`` refer to the model input (no layer may take it).
MODEL_INPUT = "input"

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
