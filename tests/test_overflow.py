"""The overflow guard (hgq_rtl.ir.overflow and ``hgq-rtl check``).

Hand-made models whose out-of-range values are worked out by hand (comments), a frozen model on
its own calibration data (nothing overflows) and on scaled-up data (it does), and the CLI's
exit codes.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from bad_inputs.helpers import cli
from ir_builders import dense, fmt

from hgq_rtl.ir import (
    Activation,
    IRModel,
    Overflow,
    RoundMode,
    quantize_input,
    run_all,
    save,
)
from hgq_rtl.ir.fixed import overflow
from hgq_rtl.ir.overflow import (
    any_overflow,
    format_table,
    load_rows,
    overflow_report,
    overflow_report_real,
    report_json,
)
from hgq_rtl.ir.random import random_model
from hgq_rtl.ir.reference import pre_overflow, random_inputs, round_input, run_layer


def _two_outputs_then_sum(mode: Overflow) -> IRModel:
    """x (signed 8-bit) -> [x as signed 3-bit [-4, 3], x as unsigned 3-bit [0, 7]] (``mode``)
    -> their sum as signed 3-bit [-4, 3], WRAP."""
    split = dense(
        "split", [[1], [1]], [[0], [0]], [0, 0], [0, 0], fmt([1, 0], [2, 3], [0, 0]), overflow=mode
    )
    total = dense("total", [[1, 1]], [[0, 0]], [0], [0], fmt([1], [2], [0]))
    return IRModel("two_outputs", fmt([1], [7], [0]), (split, total))


X = np.array([[5], [-5], [9], [-1], [3], [-9]])


@pytest.mark.parametrize("mode", [Overflow.WRAP, Overflow.SAT])
def test_counts_before_wrap_or_saturation(mode: Overflow) -> None:
    report = overflow_report(_two_outputs_then_sum(mode), X)
    assert [r.name for r in report] == ["input", "split", "total"]
    assert [r.mode for r in report] == [Overflow.SAT, mode, Overflow.WRAP]
    assert report[0].values == 0 and report[0].samples_affected == 0
    split = report[1]
    # signed [-4, 3]: 5, -5, 9, -9 are out; unsigned [0, 7]: -5, 9, -1, -9 are out.
    assert (split.values, split.samples_affected, split.samples) == (8, 5, 6)
    assert [(e.index, e.count, e.min_seen, e.max_seen, e.lo, e.hi) for e in split.worst] == [
        (0, 4, -9, 9, -4, 3),
        (1, 4, -9, 9, 0, 7),
    ]
    # The next layer sees what the hardware computes, which depends on the mode:
    # WRAP gives [[-3, 5], [3, 3], [1, 1], [-1, 7], [3, 3], [-1, 7]]: sums 2, 6, 2, 6, 6, 6;
    # SAT gives  [[3, 5], [-4, 0], [3, 7], [-1, 0], [3, 3], [-4, 0]]: sums 8, -4, 10, -1, 6, -4.
    total = report[2]
    if mode is Overflow.WRAP:
        assert (total.values, total.samples_affected) == (4, 4)
        assert (total.worst[0].min_seen, total.worst[0].max_seen) == (2, 6)
    else:
        assert (total.values, total.samples_affected) == (3, 3)
        assert (total.worst[0].min_seen, total.worst[0].max_seen) == (-4, 10)
    assert any_overflow(report)


def test_relu_comes_before_the_count() -> None:
    # Signed 3-bit output [-4, 3] of x: linear, 5 and -5 overflow; after ReLU -5 is 0.
    x = np.array([[5], [-5], [2]])
    for activation, values, min_seen in ((Activation.LINEAR, 2, -5), (Activation.RELU, 1, 0)):
        layer = dense("r", [[1]], [[0]], [0], [0], fmt([1], [2], [0]), activation=activation)
        report = overflow_report(IRModel("relu", fmt([1], [7], [0]), (layer,)), x)
        assert report[1].values == values, activation
        assert (report[1].worst[0].min_seen, report[1].worst[0].max_seen) == (min_seen, 5)


def test_rounding_comes_before_the_count() -> None:
    # 0.5 * x into signed 3-bit integers [-4, 3]: x = 7 gives 3.5, RND 4 (out), TRN 3 (in).
    x = np.array([[7], [6], [-8]])  # 3.5, 3, -4
    for mode, values in ((RoundMode.RND, 1), (RoundMode.TRN, 0)):
        layer = dense("h", [[1]], [[1]], [0], [0], fmt([1], [2], [0]), round_mode=mode)
        report = overflow_report(IRModel("round", fmt([1], [3], [0]), (layer,)), x)
        assert report[1].values == values, mode


@pytest.mark.parametrize("mode", [Overflow.SAT, Overflow.WRAP])
def test_input_overflow_on_real_data(mode: Overflow) -> None:
    # Input signed 3-bit with 1 fractional bit: integers [-4, 3], reals [-2, 1.5].
    # 2.0 -> 4 (out), -2.5 -> -5 (out), 1.75 -> 3.5 -> 4 (out, rounded up), 0.5 -> 1, -2.0 -> -4.
    layer = dense("l", [[1]], [[0]], [0], [0], fmt([1], [5], [1]))
    ir = IRModel("inp", fmt([1], [1], [1]), (layer,), input_overflow=mode)
    x = np.array([[2.0], [-2.5], [1.75], [0.5], [-2.0]])
    assert round_input(ir, x).ravel().tolist() == [4, -5, 4, 1, -4]
    report = overflow_report_real(ir, x)
    first = report[0]
    assert (first.name, first.mode, first.values, first.samples_affected) == ("input", mode, 3, 3)
    assert (first.worst[0].min_seen, first.worst[0].max_seen) == (-5, 4)
    assert (first.worst[0].lo, first.worst[0].hi, first.worst[0].frac_bits) == (-4, 3, 1)
    assert report[1].values == 0  # the layer sees the quantized inputs, within [-4, 3]


def test_zero_width_element_overflows_on_any_non_zero_value() -> None:
    # Element 1 of the output has width 0 (the constant 0): 1 * x is out of range unless x = 0.
    layer = dense("z", [[1], [1]], [[0], [0]], [0, 0], [0, 0], fmt([1, 0], [4, 0], [0, 0]))
    report = overflow_report(IRModel("z", fmt([1], [3], [0]), (layer,)), np.array([[0], [3]]))
    assert report[1].values == 1
    assert [(e.index, e.lo, e.hi, e.max_seen) for e in report[1].worst] == [(1, 0, 0, 3)]


def test_worst_elements_are_ordered_and_limited() -> None:
    # Three copies of x into signed 2-bit [-2, 1], 3-bit [-4, 3] and 4-bit [-8, 7].
    out = fmt([1, 1, 1], [1, 2, 3], [0, 0, 0])
    layer = dense("w", [[1], [1], [1]], [[0]] * 3, [0] * 3, [0] * 3, out)
    ir = IRModel("w", fmt([1], [5], [0]), (layer,))
    x = np.array([[2], [5], [9], [-3], [0]])  # out of range: [-2, 1]: 4, [-4, 3]: 2, [-8, 7]: 1
    report = overflow_report(ir, x, worst=2)
    assert [(e.index, e.count) for e in report[1].worst] == [(0, 4), (1, 2)]
    assert report[1].values == 7
    assert overflow_report(ir, x, worst=0)[1].worst == ()


def test_out_of_range_values_are_exactly_those_the_overflow_changes() -> None:
    # Random models: a layer's out-of-range values are exactly those its overflow changes.
    for seed in range(6):
        rng = np.random.default_rng(seed)
        ir = random_model(rng, (6, 5, 4, 3))
        x = random_inputs(ir.input, 400, rng)
        report = overflow_report(ir, x)
        assert report[0].values == 0
        outputs = run_all(ir, x)
        inputs = [x] + outputs[:-1]
        for layer, fmt_in, x_in, out, entry in zip(
            ir.layers, ir.input_formats(), inputs, outputs, report[1:], strict=True
        ):
            before = pre_overflow(layer, fmt_in, x_in)
            np.testing.assert_array_equal(
                overflow(before, layer.output.signed, layer.output.width, layer.overflow), out
            )
            np.testing.assert_array_equal(run_layer(layer, fmt_in, x_in), out)
            assert entry.values == int((before != out).sum()), (seed, layer.name)
            assert entry.samples_affected == int((before != out).any(axis=1).sum())


def test_quantize_input_is_round_then_overflow() -> None:
    rng = np.random.default_rng(3)
    ir = random_model(rng, (7, 3))
    x = rng.normal(0, 40, (300, 7))
    expected = overflow(round_input(ir, x), ir.input.signed, ir.input.width, ir.input_overflow)
    np.testing.assert_array_equal(quantize_input(ir, x), expected)


def test_report_rejects_bad_arguments() -> None:
    ir = _two_outputs_then_sum(Overflow.WRAP)
    with pytest.raises(ValueError, match="integers"):
        overflow_report(ir, X.astype(float))
    with pytest.raises(ValueError, match=r"shape \(n, 1\)"):
        overflow_report(ir, np.zeros((2, 3), np.int64))
    with pytest.raises(ValueError, match="3 features per row"):
        overflow_report_real(ir, np.zeros((2, 3)))
    with pytest.raises(ValueError, match="NaN"):
        overflow_report_real(ir, np.array([[np.nan]]))


def test_table_and_json() -> None:
    report = overflow_report(_two_outputs_then_sum(Overflow.SAT), X)
    lines = format_table(report).splitlines()
    assert len(lines) == 4
    assert lines[0].split()[:2] == ["layer", "mode"]
    assert lines[2].split()[:5] == ["split", "SAT", "8", "/", "12"]
    assert "element 0: 4 values, seen [-9, 9] vs range [-4, 3]" in lines[2]
    document = json.loads(report_json(report))
    assert document["overflow"] is True and document["samples"] == 6
    assert [layer["values"] for layer in document["layers"]] == [0, 8, 3]
    assert document["layers"][1]["worst"][1] == {
        "index": 1,
        "count": 4,
        "min_seen": -9,
        "max_seen": 9,
        "lo": 0,
        "hi": 7,
        "frac_bits": 0,
    }


def test_load_rows(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("f0,f1\n1.5,2\n\n-3,4e1\n")
    np.testing.assert_array_equal(load_rows(tmp_path / "a.csv"), [[1.5, 2], [-3, 40]])
    (tmp_path / "b.csv").write_text("1,2\n3,4\n")  # no header
    np.testing.assert_array_equal(load_rows(tmp_path / "b.csv"), [[1, 2], [3, 4]])
    np.savez(tmp_path / "c.npz", x=np.ones((2, 2), np.float32), y=np.zeros(2))
    np.testing.assert_array_equal(load_rows(tmp_path / "c.npz"), np.ones((2, 2)))
    np.savez(tmp_path / "d.npz", samples=np.arange(6).reshape(3, 2))
    assert load_rows(tmp_path / "d.npz").dtype == np.float64
    np.save(tmp_path / "e.npy", np.arange(4, dtype=np.int16).reshape(2, 2))
    np.testing.assert_array_equal(load_rows(tmp_path / "e.npy"), [[0, 1], [2, 3]])


# --------------------------------------------------------------------------- a frozen model


@pytest.fixture(scope="module")
def frozen(tmp_path_factory):
    from hgq_rtl.data import load_digits
    from hgq_rtl.train.config import TrainConfig
    from hgq_rtl.train.freeze import freeze
    from hgq_rtl.train.loop import train

    data = load_digits()
    result = train(
        data.x_train,
        data.y_train,
        data.x_test,
        data.y_test,
        data.n_classes,
        TrainConfig(hidden=(8,), epochs=3),
        quiet=True,
    )
    ir = freeze(result.model, data.x_train)
    folder = save(ir, tmp_path_factory.mktemp("frozen") / "model")
    return ir, folder, data


def test_frozen_model_does_not_overflow_on_its_calibration_data(frozen) -> None:
    ir, _, data = frozen
    report = overflow_report_real(ir, data.x_train)
    assert [r.values for r in report] == [0] * (len(ir.layers) + 1)
    assert [r.samples_affected for r in report] == [0] * (len(ir.layers) + 1)
    assert not any_overflow(report)


def test_frozen_model_overflows_on_scaled_up_data(frozen) -> None:
    ir, _, data = frozen
    report = overflow_report_real(ir, data.x_train * 4)
    assert report[0].values > 0  # pixels up to 4 do not fit inputs calibrated on [0, 1]
    assert sum(r.values for r in report[1:]) > 0
    assert any_overflow(report)


def test_cli_check_exit_codes(frozen, tmp_path: Path) -> None:
    ir, folder, data = frozen
    np.save(tmp_path / "calibration.npy", data.x_train)
    np.savez(tmp_path / "scaled.npz", x=data.x_train * 4)

    clean = cli("check", folder, "--data", tmp_path / "calibration.npy", cwd=tmp_path)
    assert clean.returncode == 0, clean.stderr
    lines = clean.stdout.splitlines()
    assert len(lines) == len(ir.layers) + 3  # header, input, layers, JSON
    assert [line.split()[0] for line in lines[1:-1]] == ["input"] + [x.name for x in ir.layers]
    summary = json.loads(lines[-1])
    assert summary["overflow"] is False and summary["samples"] == len(data.x_train)

    same = cli("check", folder, "--dataset", "digits", "--split", "train", cwd=tmp_path)
    assert same.returncode == 0, same.stderr
    assert json.loads(same.stdout.splitlines()[-1]) == summary

    scaled = cli("check", folder, "--data", tmp_path / "scaled.npz", cwd=tmp_path)
    assert scaled.returncode == 1, scaled.stderr
    summary = json.loads(scaled.stdout.splitlines()[-1])
    assert summary["overflow"] is True
    assert summary["layers"][0]["values"] > 0
    assert scaled.stderr == ""

    help_text = cli("check", "--help", cwd=tmp_path)
    assert help_text.returncode == 0
    assert "0 when nothing overflows, 1 when something does" in " ".join(help_text.stdout.split())
