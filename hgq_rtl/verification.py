"""Check 3 from Python: the input vectors a design is verified on, and the benches that drive
them through its Verilog (the cocotb bench or the fast Verilator harness, :mod:`hgq_rtl_sim`)
against the integer reference.

Vectors are integers in the layout of :func:`input_format` (every model input's elements, one
input after the other); :func:`by_name` splits them for the reference.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .ir import io as ir_io
from .ir import reference
from .ir.files import npz_headers, read_npz
from .ir.model import IRModel


def input_format(ir: IRModel):
    """The formats of every model input's elements, one input after the other: the layout of
    the integer vectors that verification drives (and the benches split by input)."""
    from .ir.formats import concat_formats

    return concat_formats([model_input.format for model_input in ir.inputs])


def by_name(ir: IRModel, x: np.ndarray):
    """Integer vectors of :func:`input_format` as the reference takes them: the array itself
    for a single-input model, else a mapping from input name to its columns."""
    if len(ir.inputs) == 1:
        return x
    split = np.cumsum([model_input.format.size for model_input in ir.inputs])[:-1]
    columns = np.split(x, split, axis=1)
    return {m.name: part for m, part in zip(ir.inputs, columns, strict=True)}


def verification_vectors(
    ir: IRModel, n_vectors: int, *, data: np.ndarray | None = None, seed: int = 0
) -> np.ndarray:
    """Integer input vectors: the data set's samples first, then every input at its minimum,
    every input at its maximum, then uniform over every format.

    Random vectors cover each input element's full range (values the data never shows, and
    overflow in later layers included).
    """
    return np.concatenate(list(verification_chunks(ir, n_vectors, data=data, seed=seed)))


def verification_chunks(
    ir: IRModel,
    n_vectors: int,
    *,
    data: np.ndarray | None = None,
    seed: int = 0,
    chunk: int | None = None,
) -> Iterator[np.ndarray]:
    """:func:`verification_vectors` in chunks of at most *chunk* vectors (default: all in one
    random draw), each generated when it is asked for, so millions need little memory."""
    if n_vectors < 1:
        raise ValueError(f"the number of vectors must be >= 1, not {n_vectors}")
    chunk = n_vectors if chunk is None else chunk
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, not {chunk}")
    fmt = input_format(ir)
    samples = np.zeros((0, fmt.size), dtype=np.int64)
    if data is not None and len(data):
        if len(ir.inputs) != 1:
            raise ValueError(
                f"{ir.name} has {len(ir.inputs)} inputs: verification takes random vectors "
                "only (no data set)"
            )
        samples = reference.quantize_input(ir, data)[:n_vectors]
    extremes = np.stack(fmt.int_range())[: n_vectors - len(samples)]
    fixed = np.concatenate([samples, extremes])
    for start in range(0, len(fixed), chunk):
        yield fixed[start : start + chunk]
    rng = np.random.default_rng(seed)
    for start in range(len(fixed), n_vectors, chunk):
        yield reference.random_inputs(fmt, min(chunk, n_vectors - start), rng)


def load_vectors_file(path: Path, ir: IRModel) -> np.ndarray:
    """Integer input vectors from an ``.npz`` holding ``inputs``, integers ``(N, n_in)``.

    Raises ``FileNotFoundError`` or ``ValueError`` (one line) when the file is missing or not
    an NPZ, lacks ``inputs``, or its shape, dtype or values do not fit the model's input formats.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"vectors file {path} does not exist")
    try:  # headers checked before any data is read (hgq_rtl.ir.files)
        names = list(npz_headers(path))
        if "inputs" not in names:
            raise ValueError(f"it lacks the array 'inputs' (it holds {sorted(names)})")
        inputs = read_npz(path, ["inputs"])["inputs"]
    except Exception as error:  # any unreadable file (bad zip, bad .npy header, pickles)
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ValueError(f"vectors file {path} is not usable: {message}") from None
    fmt = input_format(ir)
    if inputs.ndim != 2 or inputs.shape[0] == 0 or inputs.shape[1] != fmt.size:
        raise ValueError(
            f"vectors file {path}: 'inputs' must have shape (N >= 1, {fmt.size}) for "
            f"{ir.name}'s {fmt.size} inputs, not {inputs.shape}"
        )
    if inputs.dtype == np.uint64 or not np.issubdtype(inputs.dtype, np.integer):
        raise ValueError(f"vectors file {path}: 'inputs' must be integers, not {inputs.dtype}")
    return reference.check_inputs(fmt, inputs, what=f"vectors file {path}: inputs")


ENGINES = ("cocotb", "fast")
#: The most bytes the cocotb engine's vectors and expected outputs may take (they are held
#: whole); more is refused before anything is allocated (the fast engine streams in chunks).
COCOTB_VECTOR_BYTES = 2 * 2**30


def check_manifest_formats(rtl_dir: Path, manifest: dict, ir: IRModel) -> None:
    """Refuse a manifest whose port formats contradict its model.

    Every element of the input port(s), the output port and the debug taps must have the
    ``signed``, ``int_bits``, ``frac_bits`` and ``width`` of the model's element it carries
    (the benches pack and compare by the manifest; the reference computes by the model).
    Raises ``ValueError`` with one line naming the port and the first element that differs.
    """
    path = Path(rtl_dir) / "manifest.json"
    if "inputs" in manifest:
        inputs = manifest["inputs"]
        labels = [f"input {entry.get('name')!r}" for entry in inputs]
    else:
        inputs, labels = [manifest["input"]], ["input"]
    if len(inputs) != len(ir.inputs):
        raise ValueError(
            f"{path} has {len(inputs)} input port(s), its model {len(ir.inputs)} inputs"
        )
    ports = [
        (label, bus, m.format) for label, bus, m in zip(labels, inputs, ir.inputs, strict=True)
    ]
    ports.append(("output", manifest["output"], ir.output))
    layers = {layer.name: layer for layer in ir.layers}
    for tap in manifest.get("taps") or []:
        layer = layers.get(tap.get("layer"))
        if layer is None:
            raise ValueError(f"{path} taps layer {tap.get('layer')!r}, which its model lacks")
        ports.append((f"tap {layer.name!r}", tap, layer.output))
    for label, bus, fmt in ports:
        elements = bus.get("elements") or []
        if len(elements) != fmt.size:
            raise ValueError(
                f"{path} {label} has {len(elements)} elements, its model {fmt.size}: the "
                "manifest contradicts model/model.json"
            )
        for k, element in enumerate(elements):
            keys = ("signed", "int_bits", "frac_bits", "width")
            model = (bool(fmt.signed[k]), int(fmt.int_bits[k]), int(fmt.frac_bits[k]))
            model += (int(fmt.width[k]),)
            written = tuple(element.get(key) for key in keys)
            if written != model:
                shown = ", ".join(
                    f"{key} {value}" for key, value in zip(keys, written, strict=True)
                )
                wanted = ", ".join(f"{key} {value}" for key, value in zip(keys, model, strict=True))
                raise ValueError(
                    f"{path} {label} element {k} ({shown}) contradicts its model ({wanted}) in "
                    "model/model.json"
                )


def verify_design(
    rtl_dir: Path,
    n_vectors: int,
    *,
    data: np.ndarray | None = None,
    simulator: str = "verilator",
    seed: int = 0,
    quiet: bool = False,
    waves_dir: Path | None = None,
    vectors_file: Path | None = None,
    engine: str = "cocotb",
    optimize: bool = True,
    backpressure: float = 0.0,
    build_dir: Path | None = None,
):
    """Check 3: simulate the Verilog in ``rtl_dir`` and compare with the IR reference.

    With ``vectors_file`` (see :func:`load_vectors_file`) exactly its vectors are driven, in place
    of ``data`` and ``n_vectors`` random ones.

    ``engine="cocotb"`` runs the cocotb bench (:func:`hgq_rtl_sim.runner.verify`: random valid
    bubbles, X/Z detection, debug taps, waveforms); ``engine="fast"`` the Verilator C++ harness
    (:func:`hgq_rtl_sim.fast.verify_fast_stream`: no bubbles, outputs only, millions of vectors
    per run; vectors and their reference are generated in chunks while it runs). ``optimize``
    (fast engine): compile the design's C++ for the fastest run, or (False) the fastest build.

    ``backpressure`` (fast engine, stream designs): how often ``m_axis_tready`` is held low.
    ``build_dir`` (fast engine): build the harness there, or reuse the build found there.
    With ``waves_dir``, the build, logs and a waveform are kept there. A design generated with
    debug taps has every hidden layer's output compared too (cocotb engine).

    Before anything is simulated, the manifest must be bound to its files
    (:func:`hgq_rtl.binding.check_design`), its port formats must be the model's
    (:func:`check_manifest_formats`), and the cocotb engine's vectors must fit
    :data:`COCOTB_VECTOR_BYTES`.
    """
    from hgq_rtl_sim.manifest import load_manifest
    from hgq_rtl_sim.runner import verify

    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, not {engine!r}")
    if engine == "fast" and simulator != "verilator":
        raise ValueError(f"simulator must be 'verilator' with engine 'fast', not {simulator!r}")
    if engine == "fast" and waves_dir is not None:
        raise ValueError(
            f"waves_dir must be None with engine 'fast' (it records no waveform), not {waves_dir}"
        )
    rtl_dir = Path(rtl_dir)
    manifest = load_manifest(rtl_dir)
    model_dir = rtl_dir / manifest.get("model", "model")
    if not model_dir.is_dir():
        raise FileNotFoundError(f"{rtl_dir} has no model/ folder: regenerate it with hgq-rtl rtl")
    ir = ir_io.load(model_dir)
    check_manifest_formats(rtl_dir, manifest, ir)
    if engine == "fast":
        return _verify_fast(
            rtl_dir,
            ir,
            n_vectors,
            data,
            seed,
            quiet,
            vectors_file,
            optimize,
            backpressure,
            build_dir,
        )
    if vectors_file is not None:
        inputs = load_vectors_file(vectors_file, ir)
    else:
        per_vector = 8 * (input_format(ir).size + sum(layer.output.size for layer in ir.layers))
        if n_vectors * per_vector > COCOTB_VECTOR_BYTES:
            most = COCOTB_VECTOR_BYTES // per_vector
            raise ValueError(
                f"{n_vectors:,} vectors of {ir.name} would take {n_vectors * per_vector:,} bytes "
                f"in the cocotb engine: give at most {most:,}, or use --engine fast (streamed)"
            )
        inputs = verification_vectors(ir, n_vectors, data=data, seed=seed)
    outputs = reference.run_all(ir, by_name(ir, inputs))
    taps = [outputs[k] for k in range(len(manifest.get("taps") or []))]
    return verify(
        rtl_dir,
        inputs,
        outputs[-1],
        simulator=simulator,
        seed=seed,
        quiet=quiet,
        waves=waves_dir is not None,
        build_dir=waves_dir,
        expected_taps=taps or None,
    )


def _verify_fast(
    rtl_dir, ir, n_vectors, data, seed, quiet, vectors_file, optimize, backpressure, build_dir
):
    """Check 3 with the fast harness; the reference of each chunk is computed while the
    harness simulates the chunk before it."""
    from hgq_rtl_sim.fast import DEFAULT_CHUNK, verify_fast_stream

    if vectors_file is not None:
        inputs = load_vectors_file(vectors_file, ir)
        chunks = (inputs[s : s + DEFAULT_CHUNK] for s in range(0, len(inputs), DEFAULT_CHUNK))
        total = len(inputs)
    else:
        chunks = verification_chunks(ir, n_vectors, data=data, seed=seed, chunk=DEFAULT_CHUNK)
        total = n_vectors
    pairs = ((x, reference.run(ir, by_name(ir, x))) for x in chunks)
    return verify_fast_stream(
        rtl_dir,
        pairs,
        total=total,
        optimize=optimize,
        quiet=quiet,
        backpressure_probability=backpressure,
        seed=seed,
        build_dir=build_dir,
    )
