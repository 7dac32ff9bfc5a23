"""The frozen integer model (IR): what training hands to the hardware generator.

A model (:class:`IRModel`) is a small graph of integer layers in topological order over one or
more named inputs (:class:`ModelInput`). Every tensor is 1-D per sample (a convolution's
``(C, H, W)`` activations are flattened in C order) and every element has its own fixed-point
format (:mod:`hgq_rtl.ir.formats`). A layer reads the tensors named in its ``inputs`` — model
inputs or earlier layers' outputs — or, when ``inputs`` is empty, the previous layer's output
(the first model input for the first layer). The layer kinds are in :mod:`hgq_rtl.ir.dense`,
:mod:`hgq_rtl.ir.layers` and :mod:`hgq_rtl.ir.spatial`; :data:`LAYER_TYPES` lists them all.

The IR imports only numpy and the standard library.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .dense import DenseLayer
from .fixed import Overflow
from .formats import TensorFormat
from .layers import AddLayer, ConcatLayer, LookupLayer, MaxPoolLayer, QuantizeLayer
from .spatial import ConvLayer, MaxPoolNdLayer, _is_int

#: The name of the single input of a model built from one ``input`` format (and of every
#: version 1 and 2 file); no layer may take it.
MODEL_INPUT = "input"

#: Every layer type, by its ``kind`` (the ``type`` of model.json).
LAYER_TYPES: dict[str, type] = {
    "dense": DenseLayer,
    "maxpool": MaxPoolLayer,
    "add": AddLayer,
    "concat": ConcatLayer,
    "lookup": LookupLayer,
    "quantize": QuantizeLayer,
    "conv": ConvLayer,
    "maxpool_nd": MaxPoolNdLayer,
}

Layer = (
    DenseLayer
    | MaxPoolLayer
    | AddLayer
    | ConcatLayer
    | LookupLayer
    | QuantizeLayer
    | ConvLayer
    | MaxPoolNdLayer
)


def can_overflow(layer: Layer) -> bool:
    """Whether ``layer`` rounds and wraps or saturates (dense, conv, quantize); the others are
    exact."""
    return isinstance(layer, DenseLayer | ConvLayer | QuantizeLayer)


@dataclass(frozen=True)
class ModelInput:
    """One named input tensor of a model.

    ``shape`` is one sample's shape, informational (``prod(shape)`` must equal
    ``format.size``; the tensor itself is 1-D, the shape flattened in C order); ``None`` means
    flat, ``(format.size,)``. ``overflow`` brings real inputs out of range into ``format``
    (:func:`hgq_rtl.ir.reference.quantize_input`).
    """

    name: str
    format: TensorFormat
    shape: tuple[int, ...] | None = None
    overflow: Overflow = Overflow.SAT

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ValueError(f"input name must be an identifier, not {self.name!r}")
        if not isinstance(self.format, TensorFormat):
            raise ValueError(
                f"input {self.name!r}: format must be a TensorFormat, "
                f"not {type(self.format).__name__}"
            )
        shape = (self.format.size,) if self.shape is None else self.shape
        ok = isinstance(shape, tuple | list) and len(shape) >= 1
        if not ok or not all(_is_int(d) for d in shape):
            raise ValueError(
                f"input {self.name!r}: shape must be a tuple of positive integers, not {shape!r}"
            )
        if min(shape) < 1 or math.prod(shape) != self.format.size:
            raise ValueError(
                f"input {self.name!r}: shape {tuple(shape)} must hold its {self.format.size} "
                "elements (positive sizes whose product is the format's size)"
            )
        object.__setattr__(self, "shape", tuple(int(d) for d in shape))
        if not isinstance(self.overflow, Overflow):
            raise ValueError(
                f"input {self.name!r}: overflow must be an Overflow, not {self.overflow!r}"
            )

    @property
    def is_flat(self) -> bool:
        """Whether the shape says nothing beyond the size (one dimension)."""
        return len(self.shape) == 1


@dataclass(frozen=True, eq=False)
class IRModel:
    """A frozen integer network: named inputs and layers in topological order.

    Either ``input`` (one format: the single input :data:`MODEL_INPUT`, flat, brought into range
    with ``input_overflow``, default ``SAT``) or ``inputs`` (:class:`ModelInput` s with their
    names, shapes and overflow modes). Afterwards both are set: ``inputs`` always, and for a
    single-input model ``input``/``input_overflow`` are that input's format and mode; for a
    model with several inputs they are ``None`` (use ``inputs`` or :meth:`format_of`).

    Each layer reads the tensors named in its ``inputs`` — model inputs or earlier layers — or,
    when ``inputs`` is empty, the previous layer's output (the first model input for the first
    layer). The model's output is the last layer's.
    """

    name: str
    input: TensorFormat | None
    layers: tuple[Layer, ...]
    input_overflow: Overflow | None = None
    metadata: dict = field(default_factory=dict)
    inputs: tuple[ModelInput, ...] = ()
    _sources: dict = field(init=False, repr=False, default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ValueError(f"model name must be an identifier, not {self.name!r}")
        self._resolve_inputs()
        object.__setattr__(self, "layers", tuple(self.layers))
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
        formats = {model_input.name: model_input.format for model_input in self.inputs}
        known = (
            repr(self.inputs[0].name)
            if len(self.inputs) == 1
            else f"a model input ({', '.join(map(repr, formats))})"
        )
        for reserved in (MODEL_INPUT, *formats):
            if reserved in names:
                raise ValueError(f"no layer may be named {reserved!r}: it names a model input")
        previous = self.inputs[0].name
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
                    f"{layer.name}.inputs names {source!r}, which is neither {known} nor a layer"
                )
            layer.validate_inputs(tuple(formats[s] for s in sources))
            self._sources[layer.name] = sources
            formats[layer.name] = layer.output
            previous = layer.name

    def _resolve_inputs(self) -> None:
        """Fill ``inputs`` from ``input`` or the other way round, refusing disagreements."""
        inputs = self.inputs
        if isinstance(inputs, ModelInput) or not isinstance(inputs, tuple | list):
            raise ValueError(f"inputs must be a tuple of ModelInputs, not {inputs!r}")
        overflow = self.input_overflow
        if overflow is not None and not isinstance(overflow, Overflow):
            raise ValueError(f"input_overflow must be an Overflow, not {overflow!r}")
        if not inputs:
            if not isinstance(self.input, TensorFormat):
                raise ValueError(f"input must be a TensorFormat, not {type(self.input).__name__}")
            overflow = overflow or Overflow.SAT
            inputs = (ModelInput(MODEL_INPUT, self.input, None, overflow),)
        for k, model_input in enumerate(inputs):
            if not isinstance(model_input, ModelInput):
                raise ValueError(
                    f"inputs[{k}] must be a ModelInput, not {type(model_input).__name__}"
                )
        names = [model_input.name for model_input in inputs]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"input names must be unique, {duplicates[0]!r} repeats")
        if len(inputs) == 1:
            (single,) = inputs
            if self.input is not None and self.input != single.format:
                raise ValueError("input and inputs[0].format disagree: give one of them")
            if overflow is not None and overflow is not single.overflow:
                raise ValueError("input_overflow and inputs[0].overflow disagree: give one")
            resolved = (single.format, single.overflow)
        elif self.input is not None or overflow is not None:
            raise ValueError(
                f"a model with {len(inputs)} inputs takes neither input nor input_overflow "
                "(each ModelInput has its format and overflow)"
            )
        else:
            resolved = (None, None)
        object.__setattr__(self, "inputs", tuple(inputs))
        object.__setattr__(self, "input", resolved[0])
        object.__setattr__(self, "input_overflow", resolved[1])

    @property
    def output(self) -> TensorFormat:
        return self.layers[-1].output

    @property
    def input_names(self) -> tuple[str, ...]:
        """The names of the model inputs, in order."""
        return tuple(model_input.name for model_input in self.inputs)

    def model_input(self, name: str) -> ModelInput:
        """The model input called ``name`` (``KeyError`` if there is none)."""
        for model_input in self.inputs:
            if model_input.name == name:
                return model_input
        raise KeyError(name)

    def layer(self, name: str) -> Layer:
        """The layer called ``name`` (``KeyError`` if there is none)."""
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)

    def format_of(self, name: str) -> TensorFormat:
        """The format of a named tensor: a model input or a layer's output."""
        if name in self.input_names:
            return self.model_input(name).format
        return self.layer(name).output

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
        """Why the model is not a chain of dense layers on one input (the first offending
        layer), or None."""
        if len(self.inputs) != 1:
            return f"the model has {len(self.inputs)} inputs ({', '.join(self.input_names)})"
        previous = self.inputs[0].name
        for layer in self.layers:
            if isinstance(layer, ConvLayer | MaxPoolNdLayer):
                return (
                    f"layer {layer.name!r} is a {layer.kind} layer "
                    "(hgq_rtl.ir.lowering.lower_spatial unrolls it)"
                )
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
