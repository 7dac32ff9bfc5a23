"""Convolutional and graph networks as hardware: streaming CNNs and a muon-tracking-shaped graph.

Usage::

    .venv/bin/python benchmarks/cnn_stream.py [--rows svhn svhn_small muon fashion]
        [--vectors 200] [--fashion-model DIR] [--no-synth] [--no-fmax] [--out DIR]
        [--clock-ns 5] [--pixels-per-beat 1 [2 4 ...]]

Rows (one JSON object each, then a summary line):

* ``svhn`` — an SVHN-shaped CNN (the architecture of the hls4ml SVHN paper): input 32×32×3,
  three 3×3 convolutions of 16, 16 and 24 filters, each followed by ReLU and 2×2 max pooling,
  then dense 42, 64, 10; integer weights and per-channel formats drawn at the bit widths HGQ
  reaches (weights of 2–6 bits, a third of them zero; activations of 4–8 bits). SVHN itself is
  not reachable here. Generated as a stream, one row per ``--pixels-per-beat`` value (default
  1).
* ``svhn_small`` — the same architecture at 16×16×3 with two convolutions of 8 and 12 filters
  (each with pooling) and dense 16, 10: small enough for Yosys on a shared 2-core machine.
* ``muon`` — a muon-tracking-shaped graph: three inputs of 50×3, 50×2 and 50×2, a point-wise
  1-D convolution of each to 8 channels, their sum, ReLU requantization, then dense 32, 16, 8,
  1 (a regression). Several inputs and an add: generated fully unrolled (parallel I/O).
* ``fashion`` — the Fashion-MNIST CNN of ``hgq-rtl train|run --dataset fashion_mnist --arch
  cnn``: ``--fashion-model DIR`` is its IR folder (or a run folder holding ``model/``); every one
  of the 10,000 test images goes through the Verilog (``--vectors`` is ignored for it).

For each: LUT, FF, BRAM (RAMB36 tiles), LUTRAM and DSP from Yosys ``synth_xilinx -family xcup``,
latency and initiation interval in cycles (from the manifest, which the bench's timing check
holds the Verilog to), Fmax from nextpnr-ecp5, generation seconds, and the vectors verified
through the Verilog (check 3, Verilator fast harness) with their mismatches. For the streamed
CNNs also the EBOPs of the same network fully unrolled against the EBOPs of one kernel
evaluation per layer (what the stream builds), as the size a parallel design would need.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from hgq_rtl.data import load_dataset
from hgq_rtl.ir import io as ir_io
from hgq_rtl.ir import reference
from hgq_rtl.ir.dense import DenseLayer
from hgq_rtl.ir.fixed import Activation, Overflow, RoundMode
from hgq_rtl.ir.formats import TensorFormat, exact_add_format, exact_maxpool_format
from hgq_rtl.ir.layers import AddLayer, QuantizeLayer
from hgq_rtl.ir.model import IRModel, ModelInput
from hgq_rtl.ir.spatial import ConvLayer, MaxPoolNdLayer, pool_windows
from hgq_rtl.verification import verify_design
from rtl_gen.emit import RtlOptions, emit
from rtl_gen.stream.network import channel_formats, kernel_layer, repeated
from rtl_gen.synth import SynthError, synthesize


def _channel_format(rng, channels: int, positions: int, signed: bool, bits=(4, 8)) -> TensorFormat:
    """One format per channel (``bits`` wide in total), repeated over the positions."""
    width = rng.integers(bits[0], bits[1] + 1, channels)
    frac = rng.integers(1, 4, channels)
    sign = np.full(channels, signed)
    return TensorFormat(*(np.repeat(a, positions) for a in (sign, width - frac - sign, frac)))


def _weights(rng, shape) -> tuple[np.ndarray, np.ndarray]:
    """Integer weights of 2–6 bits, a third of them zero, and their fractional bits."""
    bits = rng.integers(2, 7, shape)
    weight = rng.integers(-(1 << (bits - 1)), 1 << (bits - 1))
    weight[rng.random(shape) < 1 / 3] = 0
    return weight, rng.integers(2, 5, shape)


def _dense(rng, name: str, n_in: int, n_out: int, output: TensorFormat, activation) -> DenseLayer:
    weight, frac = _weights(rng, (n_out, n_in))
    return DenseLayer(
        name, weight, frac, rng.integers(-8, 8, n_out), np.full(n_out, 3), output, activation
    )


def svhn_ir(
    seed: int = 0,
    size: int = 32,
    convolutions: tuple[int, ...] = (16, 16, 24),
    hidden: tuple[int, ...] = (42, 64),
    name: str = "svhn_cnn",
) -> IRModel:
    """The SVHN-shaped CNN (see the module docstring); smaller with ``size`` (the image's side),
    ``convolutions`` (filters of each) and ``hidden`` (the dense sizes before the 10 outputs)."""
    rng = np.random.default_rng(seed)
    shape = (3, size, size)
    fmt = _channel_format(rng, 3, size * size, False, bits=(8, 8))
    layers: list = []
    current = fmt
    for k, filters in enumerate(convolutions):
        channels, spatial = shape[0], shape[1:]
        out = tuple(n - 2 for n in spatial)
        weight, frac = _weights(rng, (filters, channels, 3, 3))
        conv = ConvLayer(
            name=f"conv{k}",
            in_shape=shape,
            weight=weight,
            weight_frac_bits=frac,
            bias=rng.integers(-8, 8, filters),
            bias_frac_bits=np.full(filters, 3),
            output=_channel_format(rng, filters, math.prod(out), False),
            activation=Activation.RELU,
            overflow=Overflow.SAT,
        )
        windows = pool_windows((filters, *out), (2, 2), (2, 2), (0, 0), (1, 1))
        pooled = tuple(n // 2 for n in out)
        pool = MaxPoolNdLayer(
            f"pool{k}",
            (filters, *out),
            (2, 2),
            exact_maxpool_format(conv.output, windows),
            stride=(2, 2),
        )
        layers += [conv, pool]
        shape, current = (filters, *pooled), pool.output
    sizes = (current.size, *hidden)
    for k, (n_in, n_out) in enumerate(zip(sizes, sizes[1:], strict=False)):
        out = _channel_format(rng, n_out, 1, False)
        layers.append(_dense(rng, f"dense{k}", n_in, n_out, out, Activation.RELU))
    out = TensorFormat(np.ones(10, bool), np.full(10, 6), np.full(10, 4))
    layers.append(_dense(rng, "logits", sizes[-1], 10, out, Activation.LINEAR))
    return IRModel(name, None, tuple(layers), inputs=(ModelInput("image", fmt, (3, size, size)),))


def muon_ir(seed: int = 0) -> IRModel:
    """The muon-tracking-shaped graph (see the module docstring)."""
    rng = np.random.default_rng(seed)
    inputs, convs = [], []
    for name, channels in (("hits", 3), ("angles", 2), ("flags", 2)):
        fmt = _channel_format(rng, channels, 50, True, bits=(6, 8))
        inputs.append(ModelInput(name, fmt, (channels, 50)))
        weight, frac = _weights(rng, (8, channels, 1))
        convs.append(
            ConvLayer(
                name=f"conv_{name}",
                in_shape=(channels, 50),
                weight=weight,
                weight_frac_bits=frac,
                bias=rng.integers(-8, 8, 8),
                bias_frac_bits=np.full(8, 3),
                output=_channel_format(rng, 8, 50, True, bits=(8, 10)),
                inputs=(name,),
            )
        )
    add = AddLayer("sum", exact_add_format([c.output for c in convs]), tuple(c.name for c in convs))
    relu = QuantizeLayer(
        "relu", _channel_format(rng, 8, 50, False), Activation.RELU, RoundMode.RND, Overflow.SAT
    )
    layers: list = [*convs, add, relu]
    sizes = (400, 32, 16, 8)
    for k, (n_in, n_out) in enumerate(zip(sizes, sizes[1:], strict=False)):
        layers.append(
            _dense(
                rng,
                f"dense{k}",
                n_in,
                n_out,
                _channel_format(rng, n_out, 1, False),
                Activation.RELU,
            )
        )
    out = TensorFormat(np.ones(1, bool), np.full(1, 6), np.full(1, 8))
    layers.append(_dense(rng, "angle", 8, 1, out, Activation.LINEAR))
    return IRModel("muon_graph", None, tuple(layers), inputs=tuple(inputs))


def kernel_ebops(ir: IRModel) -> int:
    """EBOPs of one evaluation of every layer's kernel (what a stream builds once)."""
    total = 0
    for layer, fmt in zip(ir.layers, ir.input_formats(), strict=True):
        if isinstance(layer, ConvLayer):
            channel = channel_formats(fmt, layer.in_shape[0], layer.name)
            taps = math.prod(layer.kernel)
            window = repeated(channel, taps)
            out = channel_formats(layer.output, layer.out_shape[0], layer.name)
            total += reference.layer_ebops(kernel_layer(layer, out), window)
        elif isinstance(layer, DenseLayer):
            total += reference.layer_ebops(layer, fmt)
    return int(total)


def measure(ir: IRModel, work: Path, args, io: str, data=None, pixels: int = 1) -> dict[str, Any]:
    row: dict[str, Any] = {"model": ir.name, "io": io}
    if io == "stream":
        row["pixels_per_beat"] = pixels
    start = time.perf_counter()
    options = RtlOptions(io=io, clock_ns=args.clock_ns, pixels_per_beat=pixels)
    manifest = emit(ir, work / "rtl", options)
    row["generation_seconds"] = round(time.perf_counter() - start, 3)
    row["latency_cycles"] = manifest["latency_cycles"]
    row["initiation_interval"] = manifest.get("initiation_interval", 1)
    row["ebops"] = int(reference.ebops(ir))
    if io == "stream":
        row["ebops_one_kernel_per_layer"] = kernel_ebops(ir)
    vectors = args.vectors if data is None else len(data)
    result = verify_design(work / "rtl", vectors, data=data, engine="fast", quiet=True)
    row["vectors"], row["mismatches"] = result.vectors, result.mismatches
    if args.synth:
        try:
            synth = synthesize(
                work / "rtl",
                work / "synth",
                clock_ns=args.clock_ns,
                nextpnr=args.fmax,
                quiet=True,
            )
        except SynthError as error:
            row["synth_error"] = str(error).splitlines()[0]
        else:
            row.update(
                lut=synth.lut,
                ff=synth.ff,
                carry=synth.carry,
                dsp=synth.dsp,
                bram=synth.bram,
                lutram=synth.lutram,
                fmax_mhz=synth.fmax_mhz,
                yosys_seconds=synth.yosys_seconds,
            )
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rows",
        nargs="+",
        default=["svhn", "muon"],
        choices=["svhn", "svhn_small", "muon", "fashion"],
    )
    parser.add_argument(
        "--pixels-per-beat",
        type=int,
        nargs="+",
        default=[1],
        metavar="P",
        help="stream rows: one row per value (pixels of a row per input beat)",
    )
    parser.add_argument("--vectors", type=int, default=200)
    parser.add_argument("--fashion-model", type=Path, help="the Fashion-MNIST CNN's IR folder")
    parser.add_argument("--no-synth", dest="synth", action="store_false")
    parser.add_argument("--no-fmax", dest="fmax", action="store_false")
    parser.add_argument("--clock-ns", type=float, default=5.0)
    parser.add_argument("--out", type=Path, help="keep the designs here")
    args = parser.parse_args(argv)
    base = args.out or Path(tempfile.mkdtemp(prefix="cnn_stream."))
    rows = []
    for name in args.rows:
        if name == "svhn":
            ir, io = svhn_ir(), "stream"
        elif name == "svhn_small":
            ir, io = svhn_ir(0, 16, (8, 12), (16,), "svhn_small_cnn"), "stream"
        elif name == "muon":
            ir, io = muon_ir(), "parallel"
        data = None
        if name == "fashion":
            if args.fashion_model is None:
                print(
                    "cnn_stream: error: --rows fashion needs --fashion-model DIR", file=sys.stderr
                )
                return 2
            folder = args.fashion_model
            ir = ir_io.load(folder if (folder / "model.json").is_file() else folder / "model")
            io, data = "stream", load_dataset("fashion_mnist").x_test
        for pixels in args.pixels_per_beat if io == "stream" else [1]:
            folder = base / (name if pixels == 1 else f"{name}_p{pixels}")
            row = measure(ir, folder, args, io, data, pixels)
            rows.append(row)
            print(json.dumps(row), flush=True)
    print(
        json.dumps(
            {
                "summary": {
                    r["model"] + (f"@p{r['pixels_per_beat']}" if "pixels_per_beat" in r else ""): {
                        k: r.get(k)
                        for k in (
                            "lut",
                            "ff",
                            "bram",
                            "latency_cycles",
                            "initiation_interval",
                            "mismatches",
                        )
                    }
                    for r in rows
                }
            }
        )
    )
    return 0 if all(r.get("mismatches") == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
