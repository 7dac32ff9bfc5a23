"""Task metrics: what ranks a model (accuracy, or the resolution of a regression) and how the
integer reference of a frozen model is scored on data.

Torch-free: the front evaluation, the flow and the report use it without the training loop.
"""

from __future__ import annotations

import math

import numpy as np

from ..ir import reference
from ..ir.model import IRModel
from .config import TASKS

#: Per task: the metric that ranks models, and whether higher is better.
METRICS = {"classification": ("accuracy", True), "regression": ("resolution", False)}


def task_metrics(task: str, outputs: np.ndarray, targets: np.ndarray) -> dict[str, float]:
    """``{"accuracy"}`` (arg-max of ``outputs`` against class indices) for classification,
    ``{"resolution", "mse"}`` (RMS and mean square of ``outputs - targets``) for regression."""
    outputs = np.asarray(outputs, np.float64)
    if task == "classification":
        return {"accuracy": float((outputs.argmax(axis=1) == np.asarray(targets)).mean())}
    error = outputs - np.asarray(targets, np.float64).reshape(outputs.shape)
    mse = float(np.mean(error**2))
    return {"resolution": math.sqrt(mse), "mse": mse}


def reference_metrics(ir: IRModel, x: np.ndarray, y: np.ndarray, task: str) -> dict[str, float]:
    """:func:`task_metrics` of the integer reference (what the hardware computes) on ``x``."""
    outputs = reference.to_real(ir.output, reference.run(ir, reference.quantize_input(ir, x)))
    return task_metrics(task, outputs, y)


def resolve_task(config_task: str | None, data_task: str | None) -> str:
    """The task of a run: the configuration's, else the data set's, else classification.

    Either may be a string or a :class:`hgq_rtl.data.Task` (a string enum); the result is a
    plain string.
    """
    config_task = None if config_task is None else str(config_task)
    data_task = None if data_task is None else str(data_task)
    for what, task in (("config.task", config_task), ("task", data_task)):
        if task is not None and task not in TASKS:
            raise ValueError(f"{what} must be one of {', '.join(TASKS)}, not {task!r}")
    if config_task and data_task and config_task != data_task:
        raise ValueError(f"config.task is {config_task!r} but the data set's task is {data_task!r}")
    return config_task or data_task or "classification"
