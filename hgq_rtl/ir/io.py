"""Saving and loading the IR as ``model.json`` + ``weights.npz`` (format: docs/ir.md)."""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from .files import ArrayFileError, read_json, read_npz
from .fixed import Activation, Overflow, RoundMode
from .formats import TensorFormat
from .lowering import has_spatial_layers
from .model import LAYER_TYPES, MODEL_INPUT, IRModel, Layer, ModelInput

SCHEMA = "hgq-rtl-ir"
#: The newest version, which :func:`save` writes only for a model that needs it (see
#: :func:`schema_version`): older models are written byte for byte as before.
SCHEMA_VERSION = 3
#: Every version :func:`load` reads.
SCHEMA_VERSIONS = (1, 2, 3)
#: The layer kinds of each version.
VERSION_KINDS: dict[int, tuple[str, ...]] = {
    1: ("dense",),
    2: ("dense", "maxpool", "add", "concat", "lookup", "quantize"),
    3: tuple(LAYER_TYPES),
}
_VERSION_NOTES = {
    1: "version 1 has only dense layers",
    2: "version 2 has neither conv nor maxpool_nd layers",
}
#: The integer arrays of each layer kind besides its output format, as attribute names (the
#: array of attribute ``a`` of layer ``L`` is ``L.a`` in weights.npz).
LAYER_ARRAYS: dict[str, tuple[str, ...]] = {
    "dense": ("weight", "weight_frac_bits", "bias", "bias_frac_bits"),
    "maxpool": ("windows",),
    "add": (),
    "concat": (),
    "lookup": ("input_low", "offsets", "table"),
    "quantize": (),
    "conv": ("weight", "weight_frac_bits", "bias", "bias_frac_bits"),
    "maxpool_nd": (),
}
#: The enum fields of each layer kind, written in model.json by their values.
LAYER_MODES: dict[str, tuple[str, ...]] = {
    "dense": ("activation", "round_mode", "overflow"),
    "quantize": ("activation", "round_mode", "overflow"),
    "conv": ("activation", "round_mode", "overflow"),
}
#: The shape fields of the spatial kinds, in the order model.json lists them (integers or
#: lists of integers); :data:`LAYER_DERIVED` of them are computed, the others construct.
LAYER_GEOMETRY: dict[str, tuple[str, ...]] = {
    "conv": ("in_shape", "out_shape", "kernel", "stride", "padding", "dilation", "groups"),
    "maxpool_nd": ("in_shape", "out_shape", "kernel", "stride", "padding", "dilation"),
}
#: Fields model.json declares that follow from the arrays and the other fields (checked).
LAYER_DERIVED: dict[str, tuple[str, ...]] = {
    "conv": ("out_shape", "kernel"),
    "maxpool_nd": ("out_shape",),
}
_MODE_ENUMS = {"activation": Activation, "round_mode": RoundMode, "overflow": Overflow}
MODEL_FILE = "model.json"
WEIGHTS_FILE = "weights.npz"


class IRFormatError(ValueError):
    """A model folder that cannot be read as an hgq-rtl IR."""


def array_sha256(array: np.ndarray) -> str:
    """Hash of an array's dtype, shape and little-endian bytes (independent of the NPZ writer)."""
    array = np.ascontiguousarray(array)
    digest = hashlib.sha256(f"{array.dtype.str}{array.shape}".encode())
    digest.update(array.astype(array.dtype.newbyteorder("<")).tobytes())
    return digest.hexdigest()


def _format_arrays(prefix: str, fmt: TensorFormat) -> dict[str, np.ndarray]:
    return {
        f"{prefix}.signed": fmt.signed.astype(np.int8),
        f"{prefix}.int_bits": fmt.int_bits.astype(np.int64),
        f"{prefix}.frac_bits": fmt.frac_bits.astype(np.int64),
    }


def to_arrays(ir: IRModel) -> dict[str, np.ndarray]:
    """Every integer array of the model, keyed as in ``weights.npz``."""
    arrays = {}
    for model_input in ir.inputs:
        arrays.update(_format_arrays(model_input.name, model_input.format))
    for layer in ir.layers:
        for attr in LAYER_ARRAYS[layer.kind]:
            arrays[f"{layer.name}.{attr}"] = getattr(layer, attr)
        arrays.update(_format_arrays(f"{layer.name}.output", layer.output))
    return arrays


def schema_version(ir: IRModel) -> int:
    """The version :func:`save` writes: the oldest that expresses the model.

    3 for conv or maxpool_nd layers, several inputs, or an input that is not the flat
    ``"input"``; else 1 for dense layers in a chain with default ``inputs``; else 2.
    """
    (first, *others) = ir.inputs
    if has_spatial_layers(ir) or others or first.name != MODEL_INPUT or not first.is_flat:
        return 3
    if all(layer.kind == "dense" and not layer.inputs for layer in ir.layers):
        return 1
    return 2


def _layer_entry(layer: Layer, version: int) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": layer.name, "type": layer.kind}
    if version >= 2:
        entry["inputs"] = list(layer.inputs)
    for attr in LAYER_GEOMETRY.get(layer.kind, ()):
        value = getattr(layer, attr)
        entry[attr] = value if isinstance(value, int) else list(value)
    if layer.kind == "dense":
        entry["in_features"] = layer.in_features
    entry["out_features"] = layer.out_features
    for attr in LAYER_MODES.get(layer.kind, ()):
        entry[attr] = getattr(layer, attr).value
    return entry


def to_json(ir: IRModel, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """The ``model.json`` document of ``ir``."""
    version = schema_version(ir)
    document: dict[str, Any] = {"schema": SCHEMA, "schema_version": version, "name": ir.name}
    if version < 3:
        document["input"] = {"size": ir.input.size, "overflow": ir.input_overflow.value}
    else:
        document["inputs"] = [
            {
                "name": model_input.name,
                "size": model_input.format.size,
                "shape": list(model_input.shape),
                "overflow": model_input.overflow.value,
            }
            for model_input in ir.inputs
        ]
    return document | {
        "layers": [_layer_entry(layer, version) for layer in ir.layers],
        "arrays": {key: array_sha256(value) for key, value in sorted(arrays.items())},
        "metadata": ir.metadata,
    }


def save(ir: IRModel, folder: str | Path) -> Path:
    """Write ``folder/model.json`` and ``folder/weights.npz`` atomically; returns the folder.

    The folder is built beside its destination and renamed into place, so a failure never
    leaves a half-written model behind. An existing folder is replaced.
    """
    folder = Path(folder)
    arrays = to_arrays(ir)
    document = to_json(ir, arrays)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        np.savez(tmp / WEIGHTS_FILE, **arrays)
        (tmp / MODEL_FILE).write_text(json.dumps(document, indent=2) + "\n")
        replace_folder(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def replace_folder(tmp: Path, folder: Path) -> None:
    """Move a finished temporary folder onto ``folder`` (replacing an existing one in one
    exchange of names: :func:`hgq_rtl.guard.replace_folder`)."""
    from .. import guard

    guard.replace_folder(tmp, folder)


def load(folder: str | Path) -> IRModel:
    """Read an IR folder written by :func:`save` (or by any tool following docs/ir.md).

    Raises
    ------
    IRFormatError
        With one line naming the problem: missing files, malformed JSON, a wrong schema or
        version, missing or corrupted arrays (hash mismatch), or an inconsistent model.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise IRFormatError(f"model folder {folder} does not exist")
    document = _read_json(folder / MODEL_FILE)
    arrays = _read_arrays(folder / WEIGHTS_FILE, document.get("arrays"))
    try:
        return _from_documents(document, arrays)
    except IRFormatError:
        raise
    except (ValueError, TypeError, KeyError) as error:
        raise IRFormatError(f"{folder / MODEL_FILE}: {_message(error)}") from error


def _message(error: Exception) -> str:
    if isinstance(error, KeyError) and error.args:
        return f"lacks the key {error.args[0]!r}"
    return str(error)


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise IRFormatError(f"{path} is missing")
    try:
        document = read_json(path)
    except ArrayFileError as error:
        raise IRFormatError(str(error)) from None
    if not isinstance(document, dict) or document.get("schema") != SCHEMA:
        raise IRFormatError(f"{path} is not an hgq-rtl IR file (schema must be {SCHEMA!r})")
    version = document.get("schema_version")
    if type(version) is not int or version not in SCHEMA_VERSIONS:  # JSON true is not 1
        readable = " and ".join(str(v) for v in SCHEMA_VERSIONS)
        raise IRFormatError(
            f"{path} has schema_version {version!r}; this hgq-rtl reads versions {readable}"
        )
    return document


def _read_arrays(path: Path, listed: Any) -> dict[str, np.ndarray]:
    """The arrays model.json lists (``listed``); the others stay unread, so neither their size
    nor a lying header costs memory, and each listed one's header is checked before its data is
    read (:mod:`hgq_rtl.ir.files`)."""
    if not path.is_file():
        raise IRFormatError(f"{path} is missing")
    if not isinstance(listed, dict):
        raise IRFormatError("model.json: 'arrays' must map array names to sha256 hashes")
    try:
        return read_npz(path, list(listed))
    except ArrayFileError as error:
        message = str(error)
        if any(cause in message for cause in ("Python objects", "no readable .npy header")):
            message = f"{path} is not a readable NPZ file ({message})"
        raise IRFormatError(message) from None


def _from_documents(document: dict[str, Any], arrays: dict[str, np.ndarray]) -> IRModel:
    hashes = document["arrays"]
    if not isinstance(hashes, dict):
        raise IRFormatError("model.json: 'arrays' must map array names to sha256 hashes")
    for key, expected in hashes.items():
        if key not in arrays:
            raise IRFormatError(f"weights.npz lacks the array {key!r}")
        if array_sha256(arrays[key]) != expected:
            raise IRFormatError(
                f"weights.npz array {key!r} does not match its sha256 in model.json"
            )

    def array(key: str) -> np.ndarray:
        if key not in hashes:
            raise IRFormatError(f"model.json lists no array {key!r}")
        return arrays[key]

    def fmt(prefix: str) -> TensorFormat:
        return TensorFormat(
            array(f"{prefix}.signed"), array(f"{prefix}.int_bits"), array(f"{prefix}.frac_bits")
        )

    version = document["schema_version"]
    inputs = _inputs_from(document, version, fmt)
    if not isinstance(document["layers"], list):
        raise IRFormatError("model.json: 'layers' must be a list")
    layers = [
        _layer_from_entry(k, entry, version, array, fmt)
        for k, entry in enumerate(document["layers"])
    ]
    if not isinstance(document.get("metadata", {}), dict):
        raise IRFormatError("model.json: 'metadata' must be an object")
    model = IRModel(
        name=document["name"],
        input=None,
        layers=tuple(layers),
        metadata=document.get("metadata", {}),
        inputs=tuple(model_input for model_input, _ in inputs),
    )
    for model_input, size in inputs:
        if type(size) is not int or size != model_input.format.size:  # JSON true is not 1
            which = "input" if "input" in document else f"input {model_input.name!r}"
            raise IRFormatError(
                f"{which} declares size {size!r}, arrays give {model_input.format.size}"
            )
    return model


def _inputs_from(document: dict[str, Any], version: int, fmt) -> list[tuple[ModelInput, Any]]:
    """The model inputs of model.json with their declared sizes (checked by the caller once
    the model is built): ``input`` (one input named "input"), or from version 3 ``inputs``."""
    if "inputs" in document and version < 3:
        raise IRFormatError(
            f"model.json has 'inputs', which needs schema_version 3 (version {version} has one "
            "'input')"
        )
    if "inputs" in document and "input" in document:
        raise IRFormatError("model.json has both 'input' and 'inputs': give one of them")
    if "inputs" in document:
        entries = document["inputs"]
        if not isinstance(entries, list) or not entries:
            raise IRFormatError("model.json: 'inputs' must be a non-empty list of objects")
    else:
        entries = [document["input"]]
        if not isinstance(entries[0], dict):
            raise IRFormatError("model.json: 'input' must be an object")
        if "shape" in entries[0] and version < 3:
            raise IRFormatError("model.json: 'input' has 'shape', which needs schema_version 3")
        entries = [{"name": MODEL_INPUT, **entries[0]}]
    inputs = []
    for k, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise IRFormatError(f"model.json: inputs[{k}] must be an object")
        name = entry["name"]
        if not isinstance(name, str) or not name.isidentifier():
            raise IRFormatError(f"model.json: inputs[{k}] name must be an identifier, not {name!r}")
        shape = entry.get("shape")
        if shape is not None:
            shape = _json_ints(f"input {name!r}", "shape", shape)
        model_input = ModelInput(name, fmt(name), shape, Overflow(entry.get("overflow", "SAT")))
        inputs.append((model_input, entry.get("size")))
    return inputs


def _json_ints(owner: str, key: str, value: Any) -> int | tuple[int, ...]:
    """A JSON integer (``groups``) or list of integers (shapes), refusing anything else."""
    if key == "groups" and type(value) is int:
        return value
    if key != "groups" and isinstance(value, list) and all(type(v) is int for v in value):
        return tuple(value)
    expected = "an integer" if key == "groups" else "a list of integers"
    raise IRFormatError(f"{owner}: {key!r} must be {expected}, not {value!r}")


def _layer_from_entry(k: int, entry: Any, version: int, array, fmt) -> Layer:
    """One layer of model.json (``array``/``fmt`` read listed arrays and formats by name)."""
    if not isinstance(entry, dict):
        raise IRFormatError(f"model.json: layers[{k}] must be an object")
    kind = entry.get("type")
    kinds = VERSION_KINDS[version]
    if kind in LAYER_TYPES and kind not in kinds:
        needed = min(v for v, known in VERSION_KINDS.items() if kind in known)
        raise IRFormatError(
            f"layer {entry.get('name')!r} has type {kind!r}, which needs schema_version "
            f"{needed} ({_VERSION_NOTES[version]})"
        )
    if kind not in kinds:
        raise IRFormatError(
            f"layer {entry.get('name')!r} has unknown type {kind!r} "
            f"(supported in version {version}: {', '.join(kinds)})"
        )
    name = entry["name"]
    if not isinstance(name, str):
        raise IRFormatError(f"model.json: layers[{k}] name must be a string, not {name!r}")
    inputs = entry.get("inputs", [])
    if version == 1 and "inputs" in entry:
        raise IRFormatError(f"layer {name!r} has 'inputs', which needs schema_version 2")
    if not isinstance(inputs, list) or not all(isinstance(n, str) for n in inputs):
        raise IRFormatError(f"layer {name!r}: 'inputs' must be a list of names, not {inputs!r}")
    geometry = {
        attr: _json_ints(f"layer {name!r}", attr, entry[attr])
        for attr in LAYER_GEOMETRY.get(kind, ())
    }
    derived = {attr: geometry.pop(attr) for attr in LAYER_DERIVED.get(kind, ())}
    layer = LAYER_TYPES[kind](
        name=name,
        output=fmt(f"{name}.output"),
        inputs=tuple(inputs),
        **geometry,
        **{attr: array(f"{name}.{attr}") for attr in LAYER_ARRAYS[kind]},
        **{attr: _MODE_ENUMS[attr](entry[attr]) for attr in LAYER_MODES.get(kind, ())},
    )
    for attr, value in derived.items():
        if value != getattr(layer, attr):
            actual = list(getattr(layer, attr))
            raise IRFormatError(
                f"layer {name!r} declares {attr}={list(value)}, its arrays and shapes give {actual}"
            )
    declared = {"in_features": layer.in_features} if kind == "dense" else {}
    declared["out_features"] = layer.out_features
    for key, actual in declared.items():
        value = entry.get(key)
        if type(value) is not int or value != actual:  # JSON true is not 1
            raise IRFormatError(f"layer {name!r} declares {key}={value!r}, arrays give {actual}")
    return layer


def model_sha256(folder: str | Path) -> str:
    """Hash identifying a saved model: sha256 of ``model.json`` (which hashes the arrays)."""
    return hashlib.sha256((Path(folder) / MODEL_FILE).read_bytes()).hexdigest()
