"""The command line's training defaults depend on the architecture (``CNN_DEFAULTS``)."""

from __future__ import annotations

import pytest

from hgq_rtl.cli import _train_config, parser
from hgq_rtl.train.config import CNN_DEFAULTS, TRAIN_DEFAULTS


def config(*argv: str):
    return _train_config(parser().parse_args(["train", "--out", "unused", *argv]))


def test_mlp_takes_the_trainer_defaults() -> None:
    c = config()
    assert c.arch == "mlp"
    assert (c.hidden, c.epochs, c.batch_size) == (
        TRAIN_DEFAULTS.hidden,
        TRAIN_DEFAULTS.epochs,
        TRAIN_DEFAULTS.batch_size,
    )
    assert c.beta.start == TRAIN_DEFAULTS.beta.start


def test_cnn_takes_its_own_defaults() -> None:
    c = config("--arch", "cnn")
    assert c.hidden == CNN_DEFAULTS["hidden"] == ()
    assert c.epochs == CNN_DEFAULTS["epochs"] != TRAIN_DEFAULTS.epochs
    assert c.batch_size == CNN_DEFAULTS["batch_size"]
    assert c.beta == CNN_DEFAULTS["beta"]
    # a CNN becomes a stream with one kernel per convolution: its resource term counts that
    assert c.conv_ebops == CNN_DEFAULTS["conv_ebops"] == "kernel" != TRAIN_DEFAULTS.conv_ebops


@pytest.mark.parametrize("arch", ["mlp", "cnn"])
def test_given_options_win(arch: str) -> None:
    c = config("--arch", arch, "--epochs", "3", "--batch-size", "7", "--beta", "0", "--hidden")
    assert (c.epochs, c.batch_size, c.beta.start, c.hidden) == (3, 7, 0.0, ())
    c = config("--arch", arch, "--hidden", "5", "4")
    assert c.hidden == (5, 4)
    assert config("--arch", arch, "--conv-ebops", "unrolled").conv_ebops == "unrolled"
