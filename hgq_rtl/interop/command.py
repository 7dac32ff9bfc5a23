"""The ``hgq-rtl import`` and ``hgq-rtl export-qonnx`` sub-commands (:func:`register`).

Keras, HGQ2, onnx and qonnx are imported only when a command runs, so ``hgq-rtl --help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from .hgq2_quant import InteropError


def register(sub, common: argparse.ArgumentParser) -> None:
    """Add the sub-commands to ``sub`` (the CLI's sub-parsers), with the ``common`` options."""
    i = sub.add_parser(
        "import",
        parents=[common],
        help="an HGQ2 (Keras 3, .keras) or QONNX (.onnx) model to an IR folder, checked "
        "bit-exact against HGQ2's forward or qonnx's execution",
    )
    i.add_argument("model", type=Path, help="the .keras or .onnx file")
    i.add_argument("--out", type=Path, required=True, help="IR folder to write")
    i.add_argument("--name", help="model name in the IR (default: the Keras model's)")
    i.add_argument(
        "--vectors",
        type=_positive_int,
        default=100_000,
        help="random vectors over every input format the IR must match HGQ2 on (default 100,000)",
    )
    i.add_argument(
        "--data",
        type=Path,
        help="real input data it must also match on: .npy (one input) or .npz (an array per "
        "input, named as the model's inputs), one sample per row",
    )
    i.add_argument(
        "--calibrate",
        type=Path,
        help="re-derive the integer bits of WRAP quantizers from this data first (HGQ2's "
        "trace_minmax; same file kinds as --data)",
    )
    i.set_defaults(func=cmd_import)

    q = sub.add_parser(
        "export-qonnx",
        parents=[common],
        help="an IR folder to a QONNX model (.onnx), checked against the IR with qonnx",
    )
    q.add_argument("model_dir", type=Path)
    q.add_argument("--out", type=Path, required=True, help="the .onnx file to write")
    q.add_argument(
        "--vectors",
        type=_positive_int,
        default=1000,
        help="random vectors qonnx's execute_onnx must match the IR on (default 1,000)",
    )
    q.set_defaults(func=cmd_export_qonnx)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text}")
    return value


def _say(args, text: str) -> None:
    if not args.quiet:
        print(f"hgq-rtl {args.command}: {text}", file=sys.stderr, flush=True)


def load_data(path: Path, names: list[str]) -> dict[str, np.ndarray]:
    """Real input data by IR input name from a .npy (one input) or .npz file."""
    if not path.is_file():
        raise InteropError(f"no data file {str(path)!r}")
    try:
        loaded = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise InteropError(f"cannot read {str(path)!r}: {error}") from error
    if isinstance(loaded, np.ndarray):
        if len(names) != 1:
            raise InteropError(
                f"{str(path)!r} holds one array; the model has {len(names)} inputs "
                f"({', '.join(names)}): give an .npz with one array per input"
            )
        arrays = {names[0]: loaded}
    else:
        keys = list(loaded.files)
        if len(names) == 1 and len(keys) == 1:
            arrays = {names[0]: loaded[keys[0]]}
        else:
            missing = [n for n in names if n not in keys]
            if missing:
                raise InteropError(f"{str(path)!r} has no array {missing[0]!r}")
            arrays = {n: loaded[n] for n in names}
    counts = {len(a) for a in arrays.values()}
    if len(counts) != 1 or 0 in counts:
        raise InteropError(f"{str(path)!r}: the arrays must have one, non-zero number of rows")
    for name, array in arrays.items():
        if not np.issubdtype(array.dtype, np.number) or not np.all(np.isfinite(array)):
            raise InteropError(f"{str(path)!r}: array {name!r} must hold finite numbers")
    return arrays


def _keras_names(model, conversion) -> dict[str, str]:
    return {i.name: t.name for i, t in zip(conversion.ir.inputs, model.inputs, strict=True)}


def _check_shapes(model, conversion, data: dict[str, np.ndarray], path: Path) -> None:
    for model_input, tensor in zip(conversion.ir.inputs, model.inputs, strict=True):
        want = tuple(tensor.shape[1:])
        got = data[model_input.name].shape[1:]
        if int(np.prod(got)) != int(np.prod(want)):
            raise InteropError(
                f"{str(path)!r}: input {model_input.name!r} has samples of shape {got}, "
                f"the model takes {want}"
            )


def cmd_import(args) -> int:
    from hgq_rtl.ir import save

    from .hgq2 import convert, load_keras
    from .hgq2_check import check_against_keras, quantize_data, random_vectors

    start = time.perf_counter()
    if args.model.suffix == ".onnx":
        return _import_qonnx(args)
    _say(args, f"loading {args.model}")
    model = load_keras(args.model)
    loaded = time.perf_counter()
    conversion = convert(model, args.name)
    names = [i.name for i in conversion.ir.inputs]
    if args.calibrate is not None:
        from hgq.utils import trace_minmax

        calibration = load_data(args.calibrate, names)
        _check_shapes(model, conversion, calibration, args.calibrate)
        _say(args, f"calibrating integer bits on {len(calibration[names[0]])} samples")
        arrays = [
            calibration[n].reshape((-1, *tuple(t.shape[1:]))).astype(np.float32)
            for n, t in zip(names, model.inputs, strict=True)
        ]
        trace_minmax(model, arrays if len(arrays) > 1 else arrays[0], verbose=0)
        conversion = convert(model, args.name)
    _say(args, f"{len(conversion.ir.layers)} IR layers; checking against HGQ2")
    x = random_vectors(conversion.ir, args.vectors, args.seed)
    checked = check_against_keras(conversion, model, x, progress=lambda t: _say(args, t))
    if args.data is not None:
        data = load_data(args.data, names)
        _check_shapes(model, conversion, data, args.data)
        x_data = quantize_data(conversion, data)
        checked += check_against_keras(
            conversion, model, x_data, data, progress=lambda t: _say(args, t + " (--data)")
        )
    conversion.ir.metadata.update(
        {"source_file": args.model.name, "checked_vectors": checked, "seed": args.seed}
    )
    save(conversion.ir, args.out)
    _say(
        args,
        f"wrote {args.out} ({checked} vectors bit-exact with HGQ2; "
        f"{time.perf_counter() - loaded:.1f} s after loading Keras, "
        f"{time.perf_counter() - start:.1f} s in all)",
    )
    return 0


def cmd_export_qonnx(args) -> int:
    from hgq_rtl.ir import load

    from .qonnx_export import export_qonnx

    ir = load(args.model_dir)
    _say(args, f"exporting {ir.name} ({len(ir.layers)} layers); checking with qonnx")
    checked = export_qonnx(ir, args.out, vectors=args.vectors, seed=args.seed)
    _say(args, f"wrote {args.out} ({checked} vectors bit-exact with the IR under execute_onnx)")
    return 0


def _import_qonnx(args) -> int:
    import onnx

    from hgq_rtl.ir import save

    from .qonnx_import import check_against_qonnx, from_qonnx

    if args.data is not None or args.calibrate is not None:
        raise InteropError("--data and --calibrate apply to HGQ2 models only, not QONNX")
    if not args.model.is_file():
        raise InteropError(f"no model file {str(args.model)!r}")
    try:
        model = onnx.load(args.model)
    except Exception as error:  # protobuf raises its own kinds on a bad file
        raise InteropError(f"cannot read {str(args.model)!r} as ONNX: {error}") from error
    ir = from_qonnx(model, args.name)
    _say(args, f"{len(ir.layers)} IR layers; checking against qonnx's execute_onnx")
    checked = check_against_qonnx(ir, model, args.vectors, args.seed)
    ir.metadata.update({"source_file": args.model.name, "checked_vectors": checked})
    save(ir, args.out)
    _say(args, f"wrote {args.out} ({checked} vectors bit-exact with qonnx's execution)")
    return 0
