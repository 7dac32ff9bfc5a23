"""Training configuration (no torch import, so the CLI can read its defaults cheaply)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass(frozen=True)
class BetaSchedule:
    """β per epoch: constant ``start``, or a log-uniform ramp from ``start`` to ``end``.

    ``hold_epochs`` keep β at ``start`` before the ramp begins (HGQ's jet demo holds a small β
    first, then ramps).
    """

    start: float = 1e-6
    end: float | None = None
    hold_epochs: int = 0

    def __post_init__(self) -> None:
        if not (self.start >= 0 and math.isfinite(self.start)):
            raise ValueError(f"beta start must be a finite number >= 0, not {self.start}")
        if self.end is not None and not (self.end > 0 and self.start > 0):
            raise ValueError("a beta ramp needs start > 0 and end > 0 (it is log-uniform)")

    def __call__(self, epoch: int, epochs: int) -> float:
        if self.end is None or epoch < self.hold_epochs:
            return self.start
        span = max(epochs - 1 - self.hold_epochs, 1)
        t = min((epoch - self.hold_epochs) / span, 1.0)
        return self.start * (self.end / self.start) ** t


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs to be reproduced."""

    hidden: tuple[int, ...] = (32,)
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

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "init_bits", "threads"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        if any(not isinstance(h, int) or h < 1 for h in self.hidden):
            raise ValueError(f"hidden sizes must be positive integers, not {self.hidden}")
        for name in ("learning_rate", "bits_learning_rate"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, not {getattr(self, name)}")


TRAIN_DEFAULTS = TrainConfig()
