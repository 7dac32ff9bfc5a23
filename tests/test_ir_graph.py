"""The IR as a graph: max pooling, addition, concatenation, lookup tables and requantization
(hgq_rtl.ir.layers, .model, .reference, .io, .overflow), and the RTL generator on graphs.

Every expected integer comes from plain Python loops over a few samples written here from
docs/ir.md (``_expected_*``), or is worked out by hand in a comment — never from the reference.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import pytest
from bad_inputs.helpers import assert_bad_input, cli
from ir_builders import dense, fmt, select

from hgq_rtl.ir import (
    Activation,
    AddLayer,
    ConcatLayer,
    DenseLayer,
    IRModel,
    LookupLayer,
    MaxPoolLayer,
    Overflow,
    QuantizeLayer,
    RoundMode,
    TensorFormat,
    ebops,
    load,
    quantize_input,
    run,
    run_all,
    run_named,
    save,
)
from hgq_rtl.ir import io as ir_io
from hgq_rtl.ir.dense import accumulator_range
from hgq_rtl.ir.formats import concat_formats, exact_add_format, exact_maxpool_format
from hgq_rtl.ir.layers import MAX_TABLE_ENTRIES, _slice_extrema
from hgq_rtl.ir.overflow import overflow_report
from hgq_rtl.ir.random import random_dense, random_format, random_graph
from hgq_rtl.ir.reference import random_inputs

# --------------------------------------------------------------------------- Python oracles


def _ranges(f: TensorFormat) -> list[tuple[int, int]]:
    out = []
    for s, i, q in zip(f.signed.tolist(), f.int_bits.tolist(), f.frac_bits.tolist(), strict=True):
        w = int(s) + i + q
        out.append((-(1 << (w - 1)) if s and w else 0, (1 << (w - int(s))) - 1 if w else 0))
    return out


def _align(value: int, from_frac: int, to_frac: int, width: int) -> int:
    return value * 2 ** (to_frac - from_frac) if width else 0


def _requantize(value: int, from_frac: int, to_frac: int, width_in: int, layer, out_range, w):
    """docs/ir.md steps 4-6 on one Python integer."""
    shift = from_frac - to_frac if width_in else 0
    if shift > 0:
        half = 2 ** (shift - 1) if layer.round_mode is RoundMode.RND else 0
        value = (value + half) // 2**shift
    else:
        value = value * 2**-shift
    if layer.activation is Activation.RELU:
        value = max(value, 0)
    lo, hi = out_range
    if w == 0:
        return 0
    if layer.overflow is Overflow.SAT:
        return min(max(value, lo), hi)
    return (value - lo) % 2**w + lo


def _expected_quantize(layer: QuantizeLayer, f_in: TensorFormat, x: np.ndarray) -> list:
    ranges, width_out = _ranges(layer.output), layer.output.width.tolist()
    return [
        [
            _requantize(
                int(row[i]),
                int(f_in.frac_bits[i]),
                int(layer.output.frac_bits[i]),
                int(f_in.width[i]),
                layer,
                ranges[i],
                width_out[i],
            )
            for i in range(len(row))
        ]
        for row in x
    ]


def _expected_maxpool(layer: MaxPoolLayer, f_in: TensorFormat, x: np.ndarray) -> list:
    return [
        [
            max(
                _align(
                    int(row[j]),
                    int(f_in.frac_bits[j]),
                    int(layer.output.frac_bits[i]),
                    int(f_in.width[j]),
                )
                for j in window
            )
            for i, window in enumerate(layer.windows.tolist())
        ]
        for row in x
    ]


def _expected_add(layer: AddLayer, formats, xs) -> list:
    rows = []
    for n in range(len(xs[0])):
        rows.append(
            [
                sum(
                    _align(int(x[n][i]), int(f.frac_bits[i]), int(layer.output.frac_bits[i]),
                           int(f.width[i]))
                    for f, x in zip(formats, xs, strict=True)
                )
                for i in range(layer.output.size)
            ]
        )  # fmt: skip
    return rows


def _expected_lookup(layer: LookupLayer, x: np.ndarray) -> list:
    table = layer.table.tolist()
    return [
        [table[int(layer.offsets[i]) + int(v) - int(layer.input_low[i])] for i, v in enumerate(row)]
        for row in x
    ]


def _samples(f: TensorFormat, n: int, seed: int) -> np.ndarray:
    """Every element's extremes and 0, then random integers of its range."""
    ranges = _ranges(f)
    lo = np.array([r[0] for r in ranges])
    hi = np.array([r[1] for r in ranges])
    rng = np.random.default_rng(seed)
    return np.vstack([lo, hi, np.zeros_like(lo), rng.integers(lo, hi + 1, (n, f.size))])


# --------------------------------------------------------------------------- max pooling

# e0 signed 5 bits frac 1 [-16, 15]; e1 unsigned 4 bits frac 2 [0, 15];
# e2 zero width (frac 9: the constant 0); e3 signed 5 bits frac 0 [-16, 15]
POOL_INPUT = fmt([1, 0, 0, 1], [3, 2, -9, 4], [1, 2, 9, 0])
WINDOWS = [[0, 1], [1, 3], [2, 3], [0, 2]]
# out0 (frac 2): max(e0 << 1 in [-32, 30], e1 in [0, 15]) in [0, 30]: unsigned 5 bits
# out1 (frac 2): max(e1 in [0, 15], e3 << 2 in [-64, 60]) in [0, 60]: unsigned 6 bits
# out2 (frac 0): max(0, e3 in [-16, 15]) in [0, 15]: unsigned 4 bits
# out3 (frac 1): max(e0 in [-16, 15], 0) in [0, 15]: unsigned 4 bits
POOL_OUTPUT = fmt([0, 0, 0, 0], [3, 4, 4, 3], [2, 2, 0, 1])


def _pool_model() -> IRModel:
    return IRModel("pool", POOL_INPUT, (MaxPoolLayer("pool_0", WINDOWS, POOL_OUTPUT),))


def test_maxpool_aligns_then_takes_the_maximum() -> None:
    ir = _pool_model()
    # x = [-3, 5, 0, 7]: out0 = max(-6, 5), out1 = max(5, 28), out2 = max(0, 7), out3 = max(-3, 0)
    assert run(ir, np.array([[-3, 5, 0, 7]])).tolist() == [[5, 28, 7, 0]]
    x = _samples(POOL_INPUT, 200, 1)
    assert run(ir, x).tolist() == _expected_maxpool(ir.layers[0], POOL_INPUT, x)


def test_exact_maxpool_format_is_the_smallest_holding_the_maximum() -> None:
    assert exact_maxpool_format(POOL_INPUT, np.array(WINDOWS)) == POOL_OUTPUT


def test_maxpool_validation() -> None:
    with pytest.raises(ValueError, match=r"pool_0.windows refers to input element 4, .* 4 "):
        IRModel("p", POOL_INPUT, (MaxPoolLayer("pool_0", [[0, 4]], fmt([0], [4], [0])),))
    with pytest.raises(ValueError, match="negative index -1"):
        MaxPoolLayer("pool_0", [[0, -1]], fmt([0], [4], [0]))
    with pytest.raises(ValueError, match=r"must be 2-D \(outputs, window size >= 1\)"):
        MaxPoolLayer("pool_0", np.zeros((2, 0), int), fmt([0, 0], [4, 4], [0, 0]))
    # out0 with frac 1 < e1's frac 2 would round e1
    fewer = fmt([0, 0, 0, 0], [4, 4, 4, 3], [1, 2, 0, 1])
    with pytest.raises(ValueError, match="pool_0 output 0 has 1 fractional bits, fewer than the 2"):
        IRModel("p", POOL_INPUT, (MaxPoolLayer("pool_0", WINDOWS, fewer),))
    # out1 unsigned 5 bits [0, 31] cannot hold the maximum's [0, 60]
    narrow = fmt([0, 0, 0, 0], [3, 3, 4, 3], [2, 2, 0, 1])
    with pytest.raises(ValueError, match=r"pool_0 output 1: the maximum ranges over \[0, 60\]"):
        IRModel("p", POOL_INPUT, (MaxPoolLayer("pool_0", WINDOWS, narrow),))


# --------------------------------------------------------------------------- add and concat

# a: signed [1, 0, 1], int [2, 3, 0], frac [1, 0, 3]: [-8, 7], [0, 7], [-8, 7]
# b: signed [0, 1, 0], int [1, 2, -4], frac [2, 0, 4]: [0, 7], [-4, 3], zero width
A_B_INPUT = fmt([1, 0, 1, 0, 1, 0], [2, 3, 0, 1, 2, -4], [1, 0, 3, 2, 0, 4])
# e0 frac 2: a << 1 in [-16, 14] + b in [0, 7] = [-16, 21]: signed 6 bits
# e1 frac 0: [0, 7] + [-4, 3] = [-4, 10]: signed 5 bits
# e2 frac 3 (b is zero width, its frac 4 does not count): [-8, 7]: signed 4 bits
SUM_FORMAT = fmt([1, 1, 1], [3, 4, 0], [2, 0, 3])


def _add_concat_model(sum_format: TensorFormat = SUM_FORMAT) -> IRModel:
    a = select("a", A_B_INPUT, [0, 1, 2])
    b = select("b", A_B_INPUT, [3, 4, 5], inputs=("input",))
    total = AddLayer("total", sum_format, inputs=("a", "b"))
    both = ConcatLayer("both", concat_formats([b.output, a.output]), inputs=("b", "a"))
    last = ConcatLayer("last", concat_formats([total.output, both.output]), ("total", "both"))
    return IRModel("add_concat", A_B_INPUT, (a, b, total, both, last))


def test_add_sums_aligned_inputs_exactly() -> None:
    ir = _add_concat_model()
    # a = [-5, 6, 7], b = [3, -4, 0]: [-5 * 2 + 3, 6 - 4, 7 + 0]
    values = run_named(ir, np.array([[-5, 6, 7, 3, -4, 0]]))
    assert values["total"].tolist() == [[-7, 2, 7]]
    x = _samples(A_B_INPUT, 200, 2)
    values = run_named(ir, x)
    formats = (ir.layer("a").output, ir.layer("b").output)
    expected = _expected_add(ir.layer("total"), formats, (x[:, :3], x[:, 3:]))
    assert values["total"].tolist() == expected


def test_concat_joins_in_the_order_of_its_inputs() -> None:
    ir = _add_concat_model()
    out = run(ir, np.array([[-5, 6, 7, 3, -4, 0]]))
    assert out.tolist() == [[-7, 2, 7, 3, -4, 0, -5, 6, 7]]
    x = _samples(A_B_INPUT, 50, 3)
    total = run_named(ir, x)["total"]
    assert run(ir, x).tolist() == [
        t + list(r[3:]) + list(r[:3]) for t, r in zip(total.tolist(), x.tolist(), strict=True)
    ]
    assert ir.output == concat_formats([SUM_FORMAT, ir.layer("b").output, ir.layer("a").output])


def test_exact_add_format_is_the_smallest_holding_the_sum() -> None:
    ir = _add_concat_model()
    assert exact_add_format([ir.layer("a").output, ir.layer("b").output]) == SUM_FORMAT


def test_add_and_concat_validation() -> None:
    with pytest.raises(ValueError, match=r"total output 0: the sum ranges over \[-16, 21\]"):
        _add_concat_model(fmt([1, 1, 1], [2, 4, 0], [2, 0, 3]))
    with pytest.raises(ValueError, match="total output 1 has -1 fractional bits, fewer than"):
        _add_concat_model(fmt([1, 1, 1], [3, 5, 0], [2, -1, 3]))
    with pytest.raises(
        ValueError, match="total.inputs names 1 tensors: a add layer takes at least"
    ):
        AddLayer("total", SUM_FORMAT, inputs=("a",))
    a = select("a", A_B_INPUT, [0, 1, 2])
    shorter = select("b", A_B_INPUT, [3, 4], inputs=("input",))
    with pytest.raises(ValueError, match=r"total has 3 outputs, input 1 \('b'\) has 2 elements"):
        IRModel("x", A_B_INPUT, (a, shorter, AddLayer("total", SUM_FORMAT, inputs=("a", "b"))))
    wrong = fmt([1, 0, 1, 1], [2, 3, 0, 2], [1, 0, 3, 1])  # a then a signed 3-int element
    with pytest.raises(ValueError, match="both.output has 4 elements, its inputs have 6"):
        IRModel("x", A_B_INPUT, (a, ConcatLayer("both", wrong, inputs=("a", "a"))))
    wrong = fmt([1, 0, 1, 1, 0, 1], [2, 3, 0, 2, 4, 0], [1, 0, 3, 1, 0, 3])
    with pytest.raises(ValueError, match="both.output element 4 is unsigned 4 int 0 frac, the"):
        IRModel("x", A_B_INPUT, (a, ConcatLayer("both", wrong, inputs=("a", "a"))))


# --------------------------------------------------------------------------- lookup

# input [-2, 1], [0, 3], [0, 1]; element 2 shares the first two entries of element 1's slice
LOOKUP_INPUT = fmt([1, 0, 0], [1, 2, 1], [0, 0, 0])
TABLE = [10, -3, 0, 7, 1, 2, 3, 4]
LOOKUP_OUTPUT = fmt([1, 0, 0], [4, 3, 2], [0, 0, 0])  # [-16, 15], [0, 7], [0, 3]


def _lookup(table=TABLE, input_low=(-2, 0, 0), offsets=(0, 4, 4), output=LOOKUP_OUTPUT):
    return LookupLayer("lut", input_low, offsets, table, output)


def test_lookup_reads_each_elements_slice() -> None:
    ir = IRModel("lut", LOOKUP_INPUT, (_lookup(),))
    # x0 = -1 -> TABLE[0 + 1]; x1 = 3 -> TABLE[4 + 3]; x2 = 1 -> TABLE[4 + 1]
    assert run(ir, np.array([[-1, 3, 1], [1, 0, 0]])).tolist() == [[-3, 4, 2], [7, 1, 1]]
    x = _samples(LOOKUP_INPUT, 100, 4)
    assert run(ir, x).tolist() == _expected_lookup(ir.layers[0], x)


def test_lookup_validation() -> None:
    def model(layer, input_format=LOOKUP_INPUT):
        return IRModel("lut", input_format, (layer,))

    with pytest.raises(ValueError, match=r"lut.input_low\[0\] is -1, its input's lowest .* -2"):
        model(_lookup(input_low=(-1, 0, 0)))
    with pytest.raises(ValueError, match=r"element 1: its input range \[0, 3\] needs 4 table"):
        model(_lookup(offsets=(0, 5, 4)))
    with pytest.raises(ValueError, match=r"lut output 1: the table slice ranges over \[1, 9\]"):
        model(_lookup(table=[10, -3, 0, 7, 1, 2, 3, 9]))
    with pytest.raises(ValueError, match=r"lut output 2: the table slice ranges over \[1, 5\]"):
        model(_lookup(table=[10, -3, 0, 7, 1, 5, 3, 4]))  # shared entry 5 too big for [0, 3]
    wide = fmt([0, 0, 0], [2, 30, 1], [0, 0, 0])
    with pytest.raises(ValueError, match="needs 1073741824 table entries"):
        model(_lookup(input_low=(0, 0, 0)), wide)
    with pytest.raises(ValueError, match=f"lut.table has {MAX_TABLE_ENTRIES + 1} entries: at most"):
        _lookup(table=np.broadcast_to(np.int8(0), (MAX_TABLE_ENTRIES + 1,)))
    with pytest.raises(ValueError, match="negative offset -1"):
        _lookup(offsets=(0, -1, 4))
    with pytest.raises(ValueError, match="lut.offsets holds 8, past the table's 8 entries"):
        _lookup(offsets=(0, 8, 4))
    with pytest.raises(ValueError, match=r"lut.output has 3 elements, the layer has 2 input_low"):
        _lookup(input_low=(-2, 0), offsets=(0, 4))


def test_lookup_slice_extrema_with_overlapping_slices() -> None:
    # Many overlapping slices of a random table: the sparse-table extrema must be exact.
    rng = np.random.default_rng(5)
    for _ in range(20):
        table = rng.integers(-1000, 1000, int(rng.integers(1, 60)))
        n = int(rng.integers(1, 12))
        starts = rng.integers(0, table.size, n)
        ends = np.array([rng.integers(s + 1, table.size + 1) for s in starts])
        low, high = _slice_extrema(table, starts, ends)
        assert low.tolist() == [int(table[s:e].min()) for s, e in zip(starts, ends, strict=True)]
        assert high.tolist() == [int(table[s:e].max()) for s, e in zip(starts, ends, strict=True)]


# --------------------------------------------------------------------------- quantize

# e0, e1 signed 6 bits frac 2; e2 unsigned 3 bits frac 0; e3 zero width (frac 5)
QUANT_INPUT = fmt([1, 1, 0, 0], [3, 3, 3, -5], [2, 2, 0, 5])
# e0, e1 signed 3 bits frac 0 [-4, 3]; e2 unsigned 5 bits frac 2 [0, 31]; e3 zero width
QUANT_OUTPUT = fmt([1, 1, 0, 0], [2, 2, 3, 0], [0, 0, 2, 0])


@pytest.mark.parametrize(
    ("round_mode", "overflow", "activation", "want"),
    [
        # x = [-6, 15, 7, 0]: -6/4 = -1.5, 15/4 = 3.75, 7 << 2 = 28
        (RoundMode.RND, Overflow.WRAP, Activation.LINEAR, [-1, -4, 28, 0]),  # 4 wraps to -4
        (RoundMode.RND, Overflow.SAT, Activation.LINEAR, [-1, 3, 28, 0]),
        (RoundMode.TRN, Overflow.WRAP, Activation.LINEAR, [-2, 3, 28, 0]),
        (RoundMode.RND, Overflow.WRAP, Activation.RELU, [0, -4, 28, 0]),  # ReLU, then wrap
    ],
)
def test_quantize_rounds_activates_and_overflows(round_mode, overflow, activation, want) -> None:
    layer = QuantizeLayer("q", QUANT_OUTPUT, activation, round_mode, overflow)
    ir = IRModel("q", QUANT_INPUT, (layer,))
    assert run(ir, np.array([[-6, 15, 7, 0]])).tolist() == [want]
    x = _samples(QUANT_INPUT, 300, 6)
    assert run(ir, x).tolist() == _expected_quantize(layer, QUANT_INPUT, x)


def test_quantize_validation() -> None:
    with pytest.raises(ValueError, match="q has 4 outputs, its input has 3 elements"):
        IRModel("q", fmt([1, 1, 0], [3, 3, 3], [2, 2, 0]), (QuantizeLayer("q", QUANT_OUTPUT),))
    # a 40-bit input (41 with the rounding constant, as for dense accumulators) moved 30 left
    with pytest.raises(ValueError, match="q output 0 needs 71 bits before its overflow"):
        IRModel("q", fmt([1], [39], [0]), (QuantizeLayer("q", fmt([1], [31], [30])),))
    with pytest.raises(ValueError, match="q output 0 shifts by 70 bits"):
        IRModel("q", fmt([1], [-65], [70]), (QuantizeLayer("q", fmt([1], [4], [0])),))
    with pytest.raises(ValueError, match=r"q.round_mode must be a RoundMode, not 'RND'"):
        QuantizeLayer("q", QUANT_OUTPUT, round_mode="RND")


# --------------------------------------------------------------------------- a residual graph

# input signed 5 bits frac 1 [-16, 15]
RES_INPUT = fmt([1, 1, 1], [3, 3, 3], [1, 1, 1])


def _residual_model() -> IRModel:
    # weights frac 1 times inputs frac 1, biases frac 2: every accumulator at frac 2, output
    # frac 2 (signed 9 bits): the dense output is the exact accumulator.
    fc = dense(
        "fc",
        [[1, -2, 0], [3, 1, 1], [0, 0, 2]],
        np.ones((3, 3), int),
        [1, 0, -3],
        [2, 0, 2],
        fmt([1, 1, 1], [6, 6, 6], [2, 2, 2]),
    )
    requant = QuantizeLayer(
        "requant", fmt([0, 0, 0], [4, 4, 4], [1, 1, 1]), Activation.RELU, overflow=Overflow.SAT
    )
    # [0, 31] + [-16, 15] = [-16, 46] at frac 1: signed 7 bits
    residual = AddLayer("residual", fmt([1, 1, 1], [5, 5, 5], [1, 1, 1]), ("requant", "input"))
    return IRModel("residual_net", RES_INPUT, (fc, requant, residual))


def _expected_residual(x: np.ndarray) -> list:
    weight, bias = [[1, -2, 0], [3, 1, 1], [0, 0, 2]], [1, 0, -3]
    rows = []
    for row in x.tolist():
        acc = [
            sum(w * v for w, v in zip(ws, row, strict=True)) + b
            for ws, b in zip(weight, bias, strict=True)
        ]
        q = [min(max((a + 1) // 2, 0), 31) for a in acc]  # frac 2 -> 1, RND, ReLU, SAT
        rows.append([qi + v for qi, v in zip(q, row, strict=True)])
    return rows


def test_residual_graph() -> None:
    ir = _residual_model()
    assert ir.inputs_of("residual") == ("requant", "input")
    assert ir.inputs_of("requant") == ("fc",)
    assert ir.input_formats() == [RES_INPUT, ir.layer("fc").output, ir.layer("requant").output]
    assert ir.input_formats_of("residual") == (ir.layer("requant").output, RES_INPUT)
    # x = [3, -2, 5]: acc = [3 + 4 + 1, 9 - 2 + 5, 10 - 3] = [8, 12, 7] -> q = [4, 6, 4]
    assert run(ir, np.array([[3, -2, 5]])).tolist() == [[7, 4, 9]]
    x = _samples(RES_INPUT, 300, 7)
    assert run(ir, x).tolist() == _expected_residual(x)
    assert [v.tolist() for v in run_all(ir, x[:2])] == [
        run_named(ir, x[:2])[name].tolist() for name in ("fc", "requant", "residual")
    ]
    # EBOPs: dense layers only: bit_span [1, 1, 0; 2, 1, 1; 0, 0, 1] = 7, times width 5
    assert ebops(ir) == 35


def test_a_wrong_expectation_fails() -> None:
    """The comparisons are exact: one weight off by one changes the outputs the oracle gives."""
    ir = _residual_model()
    fc = ir.layer("fc")
    weight = fc.weight.copy()
    weight[1, 2] += 1
    wrong = dataclasses.replace(ir, layers=(dataclasses.replace(fc, weight=weight), *ir.layers[1:]))
    x = _samples(RES_INPUT, 300, 7)
    assert run(wrong, x).tolist() != _expected_residual(x)
    table = np.array(TABLE)
    table[5] -= 1
    x = _samples(LOOKUP_INPUT, 50, 4)
    wrong = IRModel("lut", LOOKUP_INPUT, (_lookup(table=table),))
    assert run(wrong, x).tolist() != _expected_lookup(_lookup(), x)


def test_overflow_guard_on_a_graph() -> None:
    ir = _residual_model()
    # requant saturates acc / 2 above 31: x = [15, -16, 0] gives acc0 = 15 + 32 + 1 = 48 -> 24,
    # acc1 = 45 - 16 = 29 -> 15; x = [15, 15, 15]: acc1 = 45 + 15 + 15 = 75 -> 38 > 31
    x = np.array([[15, -16, 0], [15, 15, 15], [0, 0, 0]])
    report = overflow_report(ir, x)
    assert [(r.name, r.mode) for r in report] == [
        ("input", Overflow.SAT),
        ("fc", Overflow.WRAP),
        ("requant", Overflow.SAT),
    ]
    assert [r.values for r in report] == [0, 0, 1]
    assert report[2].worst[0].index == 1 and report[2].worst[0].max_seen == 38
    rng = np.random.default_rng(8)
    graph = random_graph(rng)
    entries = overflow_report(graph, random_inputs(graph.input, 100, rng))
    assert [e.name for e in entries] == ["input"] + [
        layer.name for layer in graph.layers if layer.kind in ("dense", "quantize")
    ]


# --------------------------------------------------------------------------- graph validation


def test_inputs_must_name_earlier_tensors() -> None:
    fc, requant, residual = _residual_model().layers
    with pytest.raises(ValueError, match="residual.inputs names 'reqant', which is neither"):
        IRModel(
            "g", RES_INPUT, (fc, requant, dataclasses.replace(residual, inputs=("reqant", "fc")))
        )
    with pytest.raises(ValueError, match="requant.inputs names 'residual', which comes after it"):
        IRModel("g", RES_INPUT, (fc, dataclasses.replace(requant, inputs=("residual",)), residual))
    with pytest.raises(ValueError, match="requant.inputs names the layer itself"):
        IRModel("g", RES_INPUT, (fc, dataclasses.replace(requant, inputs=("requant",)), residual))
    with pytest.raises(ValueError, match="no layer may be named 'input'"):
        IRModel("g", RES_INPUT, (dataclasses.replace(fc, name="input"),))
    with pytest.raises(ValueError, match="fc.inputs names 2 tensors: a dense layer takes 0 to 1"):
        dataclasses.replace(fc, inputs=("input", "input"))
    with pytest.raises(ValueError, match="fc.inputs must be a tuple of names"):
        dataclasses.replace(fc, inputs="input")
    with pytest.raises(ValueError, match=r"layers\[0\] must be an IR layer"):
        IRModel("g", RES_INPUT, (RES_INPUT,))


def test_is_dense_chain() -> None:
    rng = np.random.default_rng(9)
    f = random_format(rng, 4)
    d0 = random_dense(rng, "d0", f, 3)
    d1 = random_dense(rng, "d1", d0.output, 2)
    assert IRModel("c", f, (d0, d1)).is_dense_chain()
    explicit = (dataclasses.replace(d0, inputs=("input",)), dataclasses.replace(d1, inputs=("d0",)))
    assert IRModel("c", f, explicit).is_dense_chain()
    parallel = dataclasses.replace(random_dense(rng, "d1", f, 2), inputs=("input",))
    ir = IRModel("p", f, (d0, parallel))
    assert not ir.is_dense_chain()
    assert ir.dense_chain_problem() == "layer 'd1' reads 'input', not the previous 'd0'"
    assert _residual_model().dense_chain_problem() == "layer 'requant' is a quantize layer"


# --------------------------------------------------------------------------- save and load


def test_graph_round_trip(tmp_path: Path) -> None:
    for k, ir in enumerate(
        [_residual_model(), _add_concat_model(), random_graph(np.random.default_rng(10))]
    ):
        folder = save(ir, tmp_path / f"ir{k}")
        assert json.loads((folder / "model.json").read_text())["schema_version"] == 2
        back = load(folder)
        assert [(a.name, a.kind, a.inputs) for a in back.layers] == [
            (a.name, a.kind, a.inputs) for a in ir.layers
        ]
        original, loaded = ir_io.to_arrays(ir), ir_io.to_arrays(back)
        assert original.keys() == loaded.keys()
        for key in original:
            np.testing.assert_array_equal(original[key], loaded[key], err_msg=key)
        x = random_inputs(ir.input, 200, np.random.default_rng(k))
        assert run(back, x).tolist() == run(ir, x).tolist()
        # saving what was loaded writes the same bytes
        again = save(back, tmp_path / f"again{k}")
        assert (again / "model.json").read_bytes() == (folder / "model.json").read_bytes()


def test_a_dense_chain_is_still_written_as_version_1(tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    f = random_format(rng, 4)
    ir = IRModel("c", f, (random_dense(rng, "d0", f, 3),))
    document = json.loads((save(ir, tmp_path / "ir") / "model.json").read_text())
    assert document["schema_version"] == 1
    assert "inputs" not in document["layers"][0]


def test_quantize_input_flattens_each_sample() -> None:
    f = fmt([1] * 6, [3] * 6, [1] * 6)
    ir = IRModel("img", f, (QuantizeLayer("q", f),))
    x = np.arange(12, dtype=float).reshape(2, 1, 2, 3) / 4 - 1  # (n, C, H, W)
    flat = quantize_input(ir, x.reshape(2, 6))
    assert quantize_input(ir, x).tolist() == flat.tolist()
    # -1 + k/4 at frac 1: round half up of 2 (-1 + k/4) = -2 + k/2
    assert flat[0].tolist() == [-2, -1, -1, 0, 0, 1]
    with pytest.raises(ValueError, match=r"shape \(n, 6\)"):
        quantize_input(ir, np.zeros((2, 2, 2)))


# --------------------------------------------------------------------------- dense performance


def _python_accumulator_range(layer: DenseLayer, f: TensorFormat) -> tuple[list, list]:
    """docs/ir.md steps 1-3 with Python integers, row by row."""
    ranges = _ranges(f)
    los, his = [], []
    for i in range(layer.out_features):
        terms = [
            (int(layer.weight[i, j]), int(layer.weight_frac_bits[i, j]) + int(f.frac_bits[j]), j)
            for j in range(layer.in_features)
            if layer.weight[i, j] != 0 and f.width[j] > 0
        ]
        b, fb = int(layer.bias[i]), int(layer.bias_frac_bits[i])
        fracs = [t[1] for t in terms] + ([fb] if b else [])
        big_f = max(fracs) if fracs else int(layer.output.frac_bits[i])
        lo = hi = b * 2 ** (big_f - fb) if b else 0
        for w, frac, j in terms:
            a, c = (w * ranges[j][0] * 2 ** (big_f - frac), w * ranges[j][1] * 2 ** (big_f - frac))
            lo, hi = lo + min(a, c), hi + max(a, c)
        los.append(lo)
        his.append(hi)
    return los, his


def test_vectorized_accumulator_range_is_exact() -> None:
    rng = np.random.default_rng(12)
    for k in range(12):
        f = random_format(rng, 9, max_width=12)
        bits = 6 if k % 2 else 61  # odd: the int64 path; even: the Python-integer path
        layer = random_dense(rng, "d", f, 7, weight_bits=bits)
        assert accumulator_range(layer, f) == _python_accumulator_range(layer, f)


def test_a_large_sparse_dense_layer_validates_quickly() -> None:
    # A frozen 3x3 convolution, 1 -> 16 channels on 28x28: 10816 x 784 with 9 taps per row.
    rng = np.random.default_rng(13)
    n_out, n_in, taps = 10816, 784, 9
    cols = rng.integers(0, n_in, n_out)[:, None] + np.array([0, 1, 2, 28, 29, 30, 56, 57, 58])
    weight = np.zeros((n_out, n_in), np.int64)
    weight[np.arange(n_out)[:, None], cols % n_in] = rng.integers(-127, 128, (n_out, taps))
    layer = DenseLayer(
        "conv",
        weight,
        np.full(weight.shape, 6),
        rng.integers(-100, 100, n_out),
        np.full(n_out, 6),
        fmt([1] * n_out, [8] * n_out, [4] * n_out),
    )
    start = time.perf_counter()
    IRModel("big", fmt([0] * n_in, [1] * n_in, [7] * n_in), (layer,))
    elapsed = time.perf_counter() - start
    assert elapsed < 2.0, f"validating a 10816 x 784 layer took {elapsed:.2f} s"


# --------------------------------------------------------------------------- RTL builds graphs


def test_rtl_generation_builds_a_graph() -> None:
    from rtl_gen.network import NetworkComponent
    from rtl_gen.simulate import simulate

    x = _samples(RES_INPUT, 100, 11)
    component = NetworkComponent(_residual_model())
    assert simulate(component, x).tolist() == _expected_residual(x)
    # the residual input waits for fc and requant in a delay line
    assert component.input_delays["residual"] == (0, component.arrival["requant"] - 1)
    f = random_format(np.random.default_rng(14), 3)
    d0 = select("d0", f, [0, 1, 2])
    d1 = select("d1", f, [2, 1, 0], inputs=("input",))
    x = _samples(f, 20, 12)
    assert simulate(NetworkComponent(IRModel("two", f, (d0, d1))), x).tolist() == [
        row[::-1] for row in x.tolist()
    ]


def test_cli_rtl_on_a_graph(tmp_path: Path) -> None:
    folder = save(_residual_model(), tmp_path / "graph")
    result = cli("rtl", folder, "--out", tmp_path / "design", "-q", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    manifest = json.loads((tmp_path / "design" / "manifest.json").read_text())
    assert [(e["name"], e["kind"]) for e in manifest["layers"]] == [
        ("fc", "dense"),
        ("requant", "quantize"),
        ("residual", "add"),
    ]
    # the direct writer (--xilinx-cells) writes dense chains only: one line, nothing written
    result = cli("rtl", folder, "--out", tmp_path / "cells", "--xilinx-cells", cwd=tmp_path)
    assert_bad_input(
        result,
        "the direct Verilog writer (writer='direct', --xilinx-cells) writes chains of dense",
        "layer 'requant' is a quantize layer; use the Amaranth writer",
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["design", "graph"]


def test_cli_check_on_a_graph(tmp_path: Path) -> None:
    folder = save(_residual_model(), tmp_path / "graph")
    # real rows at frac 1: [7.5, 7.5, 7.5] is x = [15, 15, 15]: requant sees 38 > 31
    np.save(tmp_path / "rows.npy", np.array([[7.5, -8.0, 0.0], [7.5, 7.5, 7.5], [0.0, 0.0, 0.0]]))
    result = cli("check", folder, "--data", tmp_path / "rows.npy", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    summary = json.loads(result.stdout.splitlines()[-1])
    assert [(e["name"], e["values"]) for e in summary["layers"]] == [
        ("input", 0),
        ("fc", 0),
        ("requant", 1),
    ]
