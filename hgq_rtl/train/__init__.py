"""The trainer: HGQ in PyTorch, from quantized layers to a frozen integer model.

One module per concern, in import order (each imports only those above it):

- :mod:`~hgq_rtl.train.threads` — how torch's CPU threads wait (no torch; see below);
- :mod:`~hgq_rtl.train.config` — :class:`TrainConfig`, :class:`BetaSchedule` (no torch);
- :mod:`~hgq_rtl.train.quantizers` — learnable fixed-point quantizers (surrogate gradients);
- :mod:`~hgq_rtl.train.layers` — drop-in quantized layers (``QLinear``, ``QConv2d``, …);
- :mod:`~hgq_rtl.train.cost` — the resource terms of the loss: differentiable EBOPs and Σf;
- :mod:`~hgq_rtl.train.models` — the ready-made networks of the command line;
- :mod:`~hgq_rtl.train.metrics` — task metrics, of the model or of the integer reference (no torch);
- :mod:`~hgq_rtl.train.freeze` — a trained model to the IR, and check 1 (torch == reference);
- :mod:`~hgq_rtl.train.checkpoint` — atomic files and per-epoch checkpoints;
- :mod:`~hgq_rtl.train.plots` — figure helpers and the bit-width plots;
- :mod:`~hgq_rtl.train.pareto` — the Pareto keeper, the front's evaluation and its files;
- :mod:`~hgq_rtl.train.loop` — the training loop itself (:func:`train`).

The trainer hands the hardware side nothing but the IR (:mod:`hgq_rtl.ir`): see
``docs/architecture.md``. Importing this package is cheap (no torch); the names below load
their module on first use, so ``from hgq_rtl.train import train, TrainConfig`` works (``freeze``
is both a module and its function: import it as ``from hgq_rtl.train.freeze import freeze``).

Importing this package before torch makes torch's OpenMP threads wait passively (sleep instead
of spinning), unless ``OMP_WAIT_POLICY`` is set already: spinning threads make training many
times slower when another process is busy on the machine (see :mod:`~hgq_rtl.train.threads`).
"""

from __future__ import annotations

import importlib
from typing import Any

from .threads import prefer_passive_waiting

prefer_passive_waiting()

#: Public name → the module of this package that defines it.
_EXPORTS = {
    "BetaSchedule": "config",
    "TrainConfig": "config",
    "TRAIN_DEFAULTS": "config",
    "Granularity": "quantizers",
    "build_model": "models",
    "ebops": "cost",
    "METRICS": "metrics",
    "reference_metrics": "metrics",
    "check_frozen": "freeze",
    "evaluate_front": "pareto",
    "train": "loop",
    "TrainResult": "loop",
    "TrainingDiverged": "loop",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
