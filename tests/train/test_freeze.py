"""Freeze and check 1: the float64 torch forward equals the integer reference exactly."""

import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from hgq_rtl.data import load_digits
from hgq_rtl.ir import io, reference
from hgq_rtl.ir.fixed import Overflow
from hgq_rtl.train.config import BetaSchedule, TrainConfig
from hgq_rtl.train.freeze import check_frozen, freeze, torch_integers
from hgq_rtl.train.layers import QActivation, QInput, QLinear, quantized_mlp
from hgq_rtl.train.loop import train


@pytest.fixture(scope="module")
def trained():
    data = load_digits(seed=1)
    config = TrainConfig(hidden=(16,), epochs=8, beta=BetaSchedule(1e-5), seed=1)
    result = train(data.x_train, data.y_train, data.x_test, data.y_test, 10, config, quiet=True)
    return data, result


def test_check1_on_every_sample(trained):
    data, result = trained
    ir = freeze(result.model, data.x_train)
    x = np.concatenate([data.x_train, data.x_test])
    assert check_frozen(result.model, ir, x) == 0
    # the integer model is a usable classifier
    assert (reference.predict(ir, data.x_test) == data.y_test).mean() > 0.8


def test_check1_holds_beyond_the_calibration_range(trained):
    """Data far outside what calibration saw overflows identically in torch and the reference."""
    data, result = trained
    ir = freeze(result.model, data.x_train)
    rng = np.random.default_rng(0)
    wild = rng.uniform(-3, 4, size=(500, 64)).astype(np.float32)
    assert check_frozen(result.model, ir, wild) == 0


def test_check1_fails_on_a_wrong_reference(trained):
    data, result = trained
    ir = freeze(result.model, data.x_train)
    expected = reference.run(ir, reference.quantize_input(ir, data.x_test))
    actual = torch_integers(result.model, data.x_test, ir)
    assert np.array_equal(expected, actual)
    # a one-LSB change of one bias must be seen
    layer = ir.layers[-1]
    bias = layer.bias.copy()
    bias[0] += 1 << max(int(layer.bias_frac_bits[0] - layer.output.frac_bits[0]), 0)
    broken = dataclasses.replace(
        ir, layers=(*ir.layers[:-1], dataclasses.replace(layer, bias=bias))
    )
    assert check_frozen(result.model, broken, data.x_test) > 0


def test_freeze_rejects_nan_weights():
    model = quantized_mlp(4, (3,), 2)
    with torch.no_grad():
        model[1].weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match="contains NaN or inf"):
        freeze(model, np.zeros((4, 4), np.float32))


def test_freeze_rejects_unsupported_layers():
    model = nn.Sequential(QInput(4), QLinear(4, 3), nn.Tanh())
    with pytest.raises(ValueError, match="must be followed by a QActivation or QLookup"):
        freeze(model, np.zeros((4, 4), np.float32))
    model = nn.Sequential(QInput(4), nn.ReLU())
    with pytest.raises(ValueError, match="unsupported layer ReLU at position 1"):
        freeze(model, np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError, match="calibration_data is empty"):
        freeze(quantized_mlp(4, (3,), 2), np.zeros((0, 4), np.float32))


def test_formats_after_freeze():
    model = nn.Sequential(
        QInput(2, init_frac_bits=2),
        QLinear(2, 2),
        QActivation(2, overflow=Overflow.SAT),
    )
    x = np.array([[0.5, -1.0], [1.0, 0.25]], np.float32)
    ir = freeze(model, x)
    assert ir.input.signed.tolist() == [False, True]
    assert ir.input.frac_bits.tolist() == [2, 2]
    assert not ir.layers[0].output.signed.any(), "ReLU outputs are unsigned"
    assert ir.layers[0].overflow is Overflow.SAT


def test_an_mlp_freezes_to_a_flat_input_and_schema_version_1():
    """Only models with spatial layers get the input's shape: an MLP over image samples keeps
    a flat input and is written as before (version 1), its shape only in the metadata."""
    model = nn.Sequential(QInput((1, 2, 2)), nn.Flatten(), QLinear(4, 2), QActivation(2))
    x = np.random.default_rng(0).normal(size=(16, 1, 2, 2)).astype(np.float32)
    ir = freeze(model, x)
    assert ir.inputs[0].shape == (4,) and ir.metadata["input_shape"] == [1, 2, 2]
    assert io.schema_version(ir) == 1
    assert check_frozen(model, ir, x) == 0
