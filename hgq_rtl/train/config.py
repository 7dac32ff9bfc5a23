"""Training configuration (no torch import, so the CLI can read its defaults cheaply)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..ir.reference import CONV_EBOPS


@dataclass(frozen=True)
class BetaSchedule:
    """β (the weight of EBOPs in the loss) per epoch.

    Three shapes:

    * constant: ``BetaSchedule(start)``;
    * log-uniform ramp from ``start`` to ``end`` over the epochs, after ``hold_epochs`` epochs at
      ``start`` (HGQ's jet demo holds a small β first, then ramps);
    * piecewise constant: ``steps`` of ``(epoch, value)``, epochs strictly increasing; from each
      step's epoch on β is its value, and ``start`` before the first step.

    Raises
    ------
    ValueError
        For a negative or non-finite value, a ramp whose ends are not > 0, a hold without a
        ramp, steps together with a ramp, or steps whose epochs do not increase.
    """

    start: float = 1e-6
    end: float | None = None
    hold_epochs: int = 0
    steps: tuple[tuple[int, float], ...] = ()

    def __post_init__(self) -> None:
        _check_beta("beta start", self.start)
        if self.end is not None:
            _check_beta("beta end", self.end)
            if not (self.end > 0 and self.start > 0):
                raise ValueError(
                    f"a beta ramp is log-uniform: start and end must be > 0, not "
                    f"{self.start} and {self.end}"
                )
        if isinstance(self.hold_epochs, bool) or not isinstance(self.hold_epochs, int):
            raise ValueError(f"beta hold_epochs must be an integer, not {self.hold_epochs!r}")
        if self.hold_epochs < 0:
            raise ValueError(f"beta hold_epochs must be >= 0, not {self.hold_epochs}")
        if self.hold_epochs and self.end is None:
            raise ValueError("beta hold_epochs needs a ramp: give an end value too")
        try:
            steps = tuple((epoch, float(value)) for epoch, value in self.steps)
        except (TypeError, ValueError):
            raise ValueError(
                f"beta steps must be (epoch, value) pairs, not {self.steps!r}"
            ) from None
        if steps and self.end is not None:
            raise ValueError("beta steps and a beta ramp (end) exclude each other: choose one")
        previous = -1
        for epoch, value in steps:
            if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch <= previous:
                raise ValueError(
                    "beta step epochs must be integers >= 0 in increasing order, not "
                    f"{[e for e, _ in steps]}"
                )
            _check_beta(f"beta at epoch {epoch}", value)
            previous = epoch
        object.__setattr__(self, "steps", steps)

    def check_epochs(self, epochs: int) -> None:
        """Refuse a schedule that needs more than ``epochs`` epochs to show itself."""
        if self.hold_epochs and self.hold_epochs >= epochs:
            raise ValueError(
                f"beta hold_epochs ({self.hold_epochs}) must be less than epochs ({epochs}): "
                "the ramp would never start"
            )
        if self.steps and self.steps[-1][0] >= epochs:
            raise ValueError(
                f"a beta step at epoch {self.steps[-1][0]} never applies: the last epoch is "
                f"{epochs - 1} (epochs count from 0)"
            )

    def __call__(self, epoch: int, epochs: int) -> float:
        if self.steps:
            values = [value for step, value in self.steps if step <= epoch]
            return values[-1] if values else self.start
        if self.end is None or epoch < self.hold_epochs:
            return self.start
        span = max(epochs - 1 - self.hold_epochs, 1)
        t = min((epoch - self.hold_epochs) / span, 1.0)
        return self.start * (self.end / self.start) ** t


def _check_beta(what: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{what} must be a number, not {value!r}")
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{what} must be a finite number >= 0, not {value}")


#: Network families :func:`hgq_rtl.train.models.build_model` knows.
ARCHITECTURES = ("mlp", "cnn")
#: How finely fractional bits are learned: one per element, per channel, or per tensor.
GRANULARITIES = ("element", "channel", "tensor")
#: What a network learns: class indices (cross-entropy, accuracy) or real targets (MSE).
TASKS = ("classification", "regression")


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs to be reproduced.

    ``arch`` picks the network :func:`hgq_rtl.train.models.build_model` builds: ``"mlp"`` (dense
    layers of ``hidden`` sizes) or ``"cnn"`` (per entry of ``channels``: a ``kernel_size``
    convolution, ReLU and 2×2 max pooling; then flatten and the ``hidden`` dense layers).
    ``granularity`` is that of every quantizer's fractional bits: ``"element"``, ``"channel"``
    or ``"tensor"``. ``batch_norm`` fuses a BatchNorm into every hidden dense/conv layer.
    ``task`` is ``"classification"`` or ``"regression"``; ``None`` takes the data set's.
    ``conv_ebops`` is how the resource term counts a convolution: ``"unrolled"`` (every output
    position has its own kernel: ``rtl --io parallel``) or ``"kernel"`` (one kernel for all
    positions: ``--io stream``, the default for convolutions); HGQ counts one kernel application
    times its parallel instances (``hgq_rtl.ir.reference.CONV_EBOPS``).
    """

    arch: str = "mlp"
    hidden: tuple[int, ...] = (32,)
    channels: tuple[int, ...] = (16, 32)
    kernel_size: int = 3
    batch_norm: bool = False
    granularity: str = "element"
    epochs: int = 150
    batch_size: int = 64
    learning_rate: float = 3e-3
    bits_learning_rate: float = 3e-3
    beta: BetaSchedule = field(default_factory=lambda: BetaSchedule(5e-6))
    gamma: float = 2e-6
    init_bits: int = 8
    init_frac_bits: float = 6.0
    seed: int = 0
    device: str = "auto"
    threads: int = 1
    compile: bool = False
    task: str | None = None
    conv_ebops: str = "unrolled"

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "init_bits", "threads"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        if any(not isinstance(h, int) or h < 1 for h in self.hidden):
            raise ValueError(f"hidden sizes must be positive integers, not {self.hidden}")
        if any(not isinstance(c, int) or c < 1 for c in self.channels):
            raise ValueError(f"channels must be positive integers, not {self.channels}")
        if not isinstance(self.kernel_size, int) or self.kernel_size < 1:
            raise ValueError(f"kernel_size must be a positive integer, not {self.kernel_size!r}")
        if self.arch not in ARCHITECTURES:
            raise ValueError(f"arch must be one of {', '.join(ARCHITECTURES)}, not {self.arch!r}")
        if self.granularity not in GRANULARITIES:
            raise ValueError(
                f"granularity must be one of {', '.join(GRANULARITIES)}, not {self.granularity!r}"
            )
        if not isinstance(self.compile, bool):
            raise ValueError(f"compile must be True or False, not {self.compile!r}")
        for name in ("learning_rate", "bits_learning_rate"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, not {getattr(self, name)}")
        if not isinstance(self.beta, BetaSchedule):
            raise TypeError(f"beta must be a BetaSchedule, not {self.beta!r}")
        self.beta.check_epochs(self.epochs)
        if not (math.isfinite(self.gamma) and self.gamma >= 0):
            raise ValueError(f"gamma must be a finite number >= 0, not {self.gamma}")
        if self.conv_ebops not in CONV_EBOPS:
            raise ValueError(
                f"conv_ebops must be one of {', '.join(CONV_EBOPS)}, not {self.conv_ebops!r}"
            )
        if self.task is not None and self.task not in TASKS:
            raise ValueError(f"task must be one of {', '.join(TASKS)} or None, not {self.task!r}")


TRAIN_DEFAULTS = TrainConfig()

#: What the command line uses for ``--arch cnn`` where the user gives none of these options
#: (the other defaults are :data:`TRAIN_DEFAULTS`'). A CNN is generated as a stream, one kernel
#: per convolution, so its resource term counts each convolution once (``conv_ebops``); its
#: EBOPs are then ~10^5 on Fashion-MNIST, where the dense tail after flattening dominates (as it
#: does the hardware). An epoch of Fashion-MNIST costs ~30 s on one core, so 150 epochs would
#: take over an hour. These values train the Fashion-MNIST CNN (16, 32 channels, no hidden
#: dense layer) to 0.892 test accuracy of the integer model at 55,350 EBOPs (β 1e-6: 0.876 at
#: 28,016; the earlier unrolled count with β 1e-9: 0.8957 at 122,263 counted this way) in 12
#: epochs (README, "Fashion-MNIST CNN").
CNN_DEFAULTS = {
    "hidden": (),
    "epochs": 12,
    "batch_size": 128,
    "beta": BetaSchedule(3e-7),
    "conv_ebops": "kernel",
}
