"""Saving and loading the IR as ``model.json`` + ``weights.npz`` (format: docs/ir.md)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from .fixed import Activation, Overflow, RoundMode
from .formats import TensorFormat
from .model import LAYER_TYPES, IRModel, Layer

SCHEMA = "hgq-rtl-ir"
#: The version :func:`save` writes for a model that version 1 cannot express (layer kinds
#: other than dense, or explicit ``inputs``); a chain of dense layers is written as version 1,
#: byte for byte as before, so that older readers still read it.
SCHEMA_VERSION = 2
#: Every version :func:`load` reads.
SCHEMA_VERSIONS = (1, 2)
#: The integer arrays of each layer kind besides its output format, as attribute names (the
#: array of attribute ``a`` of layer ``L`` is ``L.a`` in weights.npz).
LAYER_ARRAYS: dict[str, tuple[str, ...]] = {
    "dense": ("weight", "weight_frac_bits", "bias", "bias_frac_bits"),
    "maxpool": ("windows",),
    "add": (),
    "concat": (),
    "lookup": ("input_low", "offsets", "table"),
    "quantize": (),
}
#: The enum fields of each layer kind, written in model.json by their values.
LAYER_MODES: dict[str, tuple[str, ...]] = {
    "dense": ("activation", "round_mode", "overflow"),
    "quantize": ("activation", "round_mode", "overflow"),
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
    arrays = _format_arrays("input", ir.input)
    for layer in ir.layers:
        for attr in LAYER_ARRAYS[layer.kind]:
            arrays[f"{layer.name}.{attr}"] = getattr(layer, attr)
        arrays.update(_format_arrays(f"{layer.name}.output", layer.output))
    return arrays


def schema_version(ir: IRModel) -> int:
    """The version :func:`save` writes: 1 for dense layers in a chain with default ``inputs``
    (what version 1 expresses), else :data:`SCHEMA_VERSION`."""
    if all(layer.kind == "dense" and not layer.inputs for layer in ir.layers):
        return 1
    return SCHEMA_VERSION


def _layer_entry(layer: Layer, version: int) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": layer.name, "type": layer.kind}
    if version >= 2:
        entry["inputs"] = list(layer.inputs)
    if layer.kind == "dense":
        entry["in_features"] = layer.in_features
    entry["out_features"] = layer.out_features
    for attr in LAYER_MODES.get(layer.kind, ()):
        entry[attr] = getattr(layer, attr).value
    return entry


def to_json(ir: IRModel, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """The ``model.json`` document of ``ir``."""
    version = schema_version(ir)
    return {
        "schema": SCHEMA,
        "schema_version": version,
        "name": ir.name,
        "input": {"size": ir.input.size, "overflow": ir.input_overflow.value},
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
    """Move a finished temporary folder onto ``folder`` (replacing an existing one)."""
    if folder.exists():
        old = folder.with_name(f".{folder.name}.old.{os.getpid()}")
        folder.rename(old)
        tmp.rename(folder)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(folder)


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
    arrays = _read_arrays(folder / WEIGHTS_FILE)
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
        document = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise IRFormatError(f"{path} is not valid JSON ({error})") from error
    if not isinstance(document, dict) or document.get("schema") != SCHEMA:
        raise IRFormatError(f"{path} is not an hgq-rtl IR file (schema must be {SCHEMA!r})")
    version = document.get("schema_version")
    if type(version) is not int or version not in SCHEMA_VERSIONS:  # JSON true is not 1
        readable = " and ".join(str(v) for v in SCHEMA_VERSIONS)
        raise IRFormatError(
            f"{path} has schema_version {version!r}; this hgq-rtl reads versions {readable}"
        )
    return document


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise IRFormatError(f"{path} is missing")
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise IRFormatError(f"{path} is not an NPZ archive")
        with loaded as npz:
            return {key: npz[key] for key in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        if isinstance(error, IRFormatError):
            raise
        raise IRFormatError(f"{path} is not a readable NPZ file ({error})") from error


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
    if not isinstance(document["layers"], list):
        raise IRFormatError("model.json: 'layers' must be a list")
    layers = [
        _layer_from_entry(k, entry, version, array, fmt)
        for k, entry in enumerate(document["layers"])
    ]
    input_entry = document["input"]
    if not isinstance(input_entry, dict):
        raise IRFormatError("model.json: 'input' must be an object")
    if not isinstance(document.get("metadata", {}), dict):
        raise IRFormatError("model.json: 'metadata' must be an object")
    model = IRModel(
        name=document["name"],
        input=fmt("input"),
        layers=tuple(layers),
        input_overflow=Overflow(input_entry.get("overflow", "SAT")),
        metadata=document.get("metadata", {}),
    )
    size = input_entry.get("size")
    if type(size) is not int or size != model.input.size:
        raise IRFormatError(f"input declares size {size!r}, arrays give {model.input.size}")
    return model


def _layer_from_entry(k: int, entry: Any, version: int, array, fmt) -> Layer:
    """One layer of model.json (``array``/``fmt`` read listed arrays and formats by name)."""
    if not isinstance(entry, dict):
        raise IRFormatError(f"model.json: layers[{k}] must be an object")
    kind = entry.get("type")
    kinds = ("dense",) if version == 1 else tuple(LAYER_TYPES)
    if kind in LAYER_TYPES and kind not in kinds:
        raise IRFormatError(
            f"layer {entry.get('name')!r} has type {kind!r}, which needs schema_version 2 "
            "(version 1 has only dense layers)"
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
    layer = LAYER_TYPES[kind](
        name=name,
        output=fmt(f"{name}.output"),
        inputs=tuple(inputs),
        **{attr: array(f"{name}.{attr}") for attr in LAYER_ARRAYS[kind]},
        **{attr: _MODE_ENUMS[attr](entry[attr]) for attr in LAYER_MODES.get(kind, ())},
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
