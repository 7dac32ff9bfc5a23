"""The sweep file: a TOML document read with :mod:`tomllib` into a :class:`SweepPlan`, every
trial expanded and its :class:`~hgq_rtl.train.config.TrainConfig` built before Ray starts.

Sections (unknown sections and keys are refused, each by name):

* ``[data]``: ``dataset`` (as ``hgq-rtl train --dataset``), optional ``path`` and ``seed`` (of
  the split).
* ``[train]``: fixed :class:`TrainConfig` fields for every trial (``epochs``, ``batch_size``,
  ``learning_rate``, ``beta`` ...). A trial with ``arch = "cnn"`` takes
  :data:`~hgq_rtl.train.config.CNN_DEFAULTS` for those of ``hidden``, ``epochs``,
  ``batch_size``, ``beta`` and ``conv_ebops`` the file does not give, as ``hgq-rtl train
  --arch cnn`` does.
* ``[space]``: the searched fields. A list is a grid axis (every value is tried with every value
  of the other axes); a table with one key is a random draw per trial: ``{loguniform = [lo,
  hi]}``, ``{uniform = [lo, hi]}``, ``{randint = [lo, hi]}`` (both ends included) or
  ``{choice = [a, b, ...]}``. ``hidden`` and ``channels`` values are lists themselves
  (``hidden = [[16], [32, 16]]``); ``beta`` values are numbers (constant β) or tables with the
  fields of :class:`BetaSchedule` (``{start = 1e-6, end = 1e-4}``).
* ``[budget]``: ``samples`` (the grid is repeated this many times, with new random draws each
  time; trials = grid size × samples), ``seed`` (of the draws), ``workers`` (trials at once;
  default: as many as the cluster's CPUs allow), ``cpus_per_trial``, ``max_failures`` (restarts
  of a trial whose worker died), and ``[budget.early_stopping]`` with ``scheduler`` (``"asha"``
  or ``"none"``), ``grace_period`` and ``reduction_factor``.
* ``[build]``: what happens to the global front: ``rtl`` (generate and verify every point,
  default true), ``synth`` (synthesize each too, default true), ``nextpnr`` (also the ECP5
  place and route for Fmax, default true), ``vectors`` (check 3, default 10,000) and
  ``clock_ns``.
"""

from __future__ import annotations

import dataclasses
import itertools
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..train.config import CNN_DEFAULTS, TRAIN_DEFAULTS, BetaSchedule, TrainConfig

#: TrainConfig fields a sweep file may set, in [train] or [space].
TRAIN_KEYS = tuple(f.name for f in dataclasses.fields(TrainConfig))
RANDOM_KINDS = ("loguniform", "uniform", "randint", "choice")
SECTIONS = ("data", "train", "space", "budget", "build")
_DATA_KEYS = ("dataset", "path", "seed")
_BUDGET_KEYS = ("samples", "seed", "workers", "cpus_per_trial", "max_failures", "early_stopping")
_EARLY_KEYS = ("scheduler", "grace_period", "reduction_factor")
_BUILD_KEYS = ("rtl", "synth", "nextpnr", "vectors", "clock_ns")
SCHEDULERS = ("asha", "none")


class SweepFileError(ValueError):
    """A sweep file that cannot be run; the message names the file and the key."""


@dataclass(frozen=True)
class Trial:
    """One trial: its id (``t000`` ...), the searched values it got, and its full config."""

    id: str
    params: dict[str, Any]
    config: TrainConfig


@dataclass(frozen=True)
class Budget:
    samples: int = 1
    seed: int = 0
    workers: int | None = None
    cpus_per_trial: int = 1
    max_failures: int = 3
    scheduler: str = "asha"
    grace_period: int = 1
    reduction_factor: int = 2


@dataclass(frozen=True)
class BuildOptions:
    rtl: bool = True
    synth: bool = True
    nextpnr: bool = True
    vectors: int = 10_000
    clock_ns: float = 5.0


@dataclass(frozen=True)
class SweepPlan:
    """A validated sweep: the data set, every trial, the budget and the build options.
    ``record`` is the plan as plain JSON values (written as ``sweep.json``; ``--resume``
    compares it)."""

    dataset: str
    data_path: Path | None
    data_seed: int
    trials: tuple[Trial, ...]
    budget: Budget = field(default_factory=Budget)
    build: BuildOptions = field(default_factory=BuildOptions)

    def record(self) -> dict[str, Any]:
        from ..train.checkpoint import config_record

        return {
            "data": {
                "dataset": self.dataset,
                "path": None if self.data_path is None else str(self.data_path),
                "seed": self.data_seed,
            },
            "budget": dataclasses.asdict(self.budget),
            "build": dataclasses.asdict(self.build),
            "trials": [
                {"id": t.id, "params": _plain(t.params), "config": config_record(t.config)}
                for t in self.trials
            ],
        }


def _plain(value: Any) -> Any:
    if isinstance(value, BetaSchedule):
        return dataclasses.asdict(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def load_plan(path: str | Path) -> SweepPlan:
    """Read and validate a sweep file; every trial's TrainConfig is built here.

    Raises
    ------
    SweepFileError
        (a ``ValueError``) with one line ``<file>: <key>: <problem>``.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise SweepFileError(f"cannot read the sweep file {path}: {error.strerror}") from None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise SweepFileError(f"{path}: not valid TOML: {error}") from None
    try:
        return parse_plan(document, base=path.parent)
    except SweepFileError as error:
        raise SweepFileError(f"{path}: {error}") from None


def parse_plan(document: dict[str, Any], base: Path = Path(".")) -> SweepPlan:
    """:func:`load_plan` of a parsed document (relative data paths are taken from ``base``)."""
    _known(document, SECTIONS, "")
    data = _table(document, "data", required=True)
    _known(data, _DATA_KEYS, "data.")
    dataset = _get(data, "dataset", "data.", str, required=True)
    from ..data.registry import DATASETS

    if dataset not in DATASETS:
        raise SweepFileError(
            f"data.dataset: unknown dataset {dataset!r}: one of {', '.join(DATASETS)}"
        )
    raw_path = _get(data, "path", "data.", str)
    data_path = None if raw_path is None else (base / raw_path)
    data_seed = _get(data, "seed", "data.", int, default=0)

    fixed = _table(document, "train")
    space = _table(document, "space")
    _known(fixed, TRAIN_KEYS, "train.")
    _known(space, TRAIN_KEYS, "space.")
    for key in fixed.keys() & space.keys():
        raise SweepFileError(f"space.{key}: also set in [train]; give it in one of them")
    grid: dict[str, list[Any]] = {}
    draws: dict[str, tuple[str, list[Any]]] = {}
    for key, value in space.items():
        if isinstance(value, list):
            if not value:
                raise SweepFileError(f"space.{key}: an empty list leaves nothing to try")
            grid[key] = [_value(key, v, f"space.{key}[{i}]") for i, v in enumerate(value)]
        elif isinstance(value, dict):
            draws[key] = _draw_spec(key, value)
        else:
            raise SweepFileError(
                f"space.{key}: must be a list of values (a grid) or a table like "
                f"{{loguniform = [1e-4, 1e-2]}} (a random draw), not {value!r}"
            )
    fixed_values = {key: _value(key, value, f"train.{key}") for key, value in fixed.items()}
    budget = _budget(_table(document, "budget"))
    build = _build(_table(document, "build"))

    rng = np.random.default_rng(budget.seed)
    trials = []
    combinations = list(itertools.product(*grid.values())) if grid else [()]
    for _ in range(budget.samples):
        for combination in combinations:
            params = dict(zip(grid, combination, strict=True))
            for key in sorted(draws):
                params[key] = _sample(key, *draws[key], rng)
            trial_id = f"t{len(trials):03d}"
            values = {**fixed_values, **params}
            if values.get("arch") == "cnn":
                for key, default in CNN_DEFAULTS.items():
                    values.setdefault(key, default)
            try:
                config = TrainConfig(**values)
            except (TypeError, ValueError) as error:
                where = _where(str(error), params, fixed_values)
                raise SweepFileError(f"{where}: {error} (trial {trial_id})") from None
            trials.append(Trial(trial_id, params, config))
    tasks = {t.config.task for t in trials}
    if len(tasks) > 1:
        raise SweepFileError(
            f"task: every trial must have the same task, not {sorted(map(str, tasks))}"
        )
    if budget.scheduler == "asha":
        epochs = min(t.config.epochs for t in trials)
        if budget.grace_period > epochs:
            raise SweepFileError(
                f"budget.early_stopping.grace_period: {budget.grace_period} is more than the "
                f"epochs of a trial ({epochs})"
            )
    return SweepPlan(dataset, data_path, data_seed, tuple(trials), budget, build)


def _where(message: str, params: dict, fixed: dict) -> str:
    """The sweep key a TrainConfig error is about (its message starts with the field name)."""
    for key in sorted((*params, *fixed), key=len, reverse=True):
        if message.startswith(key) or message.startswith(key.replace("_", " ")):
            return f"space.{key}" if key in params else f"train.{key}"
    for key in ("beta", "epochs"):
        if key in message:
            return f"space.{key}" if key in params else f"train.{key}"
    return "train"


def _known(table: dict, keys: tuple[str, ...], prefix: str) -> None:
    for key in table:
        if key not in keys:
            raise SweepFileError(f"{prefix}{key}: unknown key; known keys: {', '.join(keys)}")


def _table(document: dict, key: str, required: bool = False) -> dict:
    value = document.get(key)
    if value is None:
        if required:
            raise SweepFileError(f"[{key}]: missing section")
        return {}
    if not isinstance(value, dict):
        raise SweepFileError(f"{key}: must be a table ([{key}]), not {value!r}")
    return value


def _get(table: dict, key: str, prefix: str, kind: type, *, required=False, default=None):
    if key not in table:
        if required:
            raise SweepFileError(f"{prefix}{key}: missing")
        return default
    value = table[key]
    ok = isinstance(value, kind) and not (kind is not bool and isinstance(value, bool))
    if kind is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok:
        raise SweepFileError(f"{prefix}{key}: must be {kind.__name__}, not {value!r}")
    return float(value) if kind is float else value


def _positive(table: dict, key: str, prefix: str, default: int | None) -> int | None:
    value = _get(table, key, prefix, int, default=default)
    if value is not None and value < 1:
        raise SweepFileError(f"{prefix}{key}: must be a positive integer, not {value}")
    return value


def _value(key: str, value: Any, where: str) -> Any:
    """A TOML value as the TrainConfig field ``key`` takes it."""
    if key in ("hidden", "channels"):
        if not isinstance(value, list) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in value
        ):
            raise SweepFileError(
                f"{where}: must be a list of layer sizes like [32, 16], not {value!r}"
            )
        return tuple(value)
    if key == "beta":
        try:
            if isinstance(value, int | float) and not isinstance(value, bool):
                return BetaSchedule(float(value))
            if isinstance(value, dict):
                allowed = {f.name for f in dataclasses.fields(BetaSchedule)}
                for name in value:
                    if name not in allowed:
                        raise ValueError(
                            f"unknown key {name!r}; known: {', '.join(sorted(allowed))}"
                        )
                fields = dict(value)
                if "steps" in fields:
                    fields["steps"] = tuple(tuple(step) for step in fields["steps"])
                return BetaSchedule(**fields)
        except (TypeError, ValueError) as error:
            raise SweepFileError(f"{where}: {error}") from None
        raise SweepFileError(
            f"{where}: must be a number or a table like {{start = 1e-6, end = 1e-4}}, not {value!r}"
        )
    default = getattr(TRAIN_DEFAULTS, key)
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _draw_spec(key: str, table: dict) -> tuple[str, list[Any]]:
    where = f"space.{key}"
    if len(table) != 1 or next(iter(table)) not in RANDOM_KINDS:
        raise SweepFileError(
            f"{where}: a random draw is a table with one key of {', '.join(RANDOM_KINDS)}, "
            f"not {table!r}"
        )
    kind, arguments = next(iter(table.items()))
    if not isinstance(arguments, list) or not arguments:
        raise SweepFileError(f"{where}.{kind}: must be a non-empty list, not {arguments!r}")
    if kind == "choice":
        return kind, [_value(key, v, f"{where}.choice[{i}]") for i, v in enumerate(arguments)]
    numbers = all(isinstance(a, int | float) and not isinstance(a, bool) for a in arguments)
    if len(arguments) != 2 or not numbers or not arguments[0] <= arguments[1]:
        raise SweepFileError(
            f"{where}.{kind}: must be [low, high] with low <= high, not {arguments}"
        )
    if kind == "loguniform" and arguments[0] <= 0:
        raise SweepFileError(f"{where}.loguniform: the ends must be > 0, not {arguments}")
    if kind == "randint" and not all(isinstance(a, int) for a in arguments):
        raise SweepFileError(f"{where}.randint: the ends must be integers, not {arguments}")
    if kind != "randint" and isinstance(getattr(TRAIN_DEFAULTS, key), int | tuple | bool):
        raise SweepFileError(f"{where}.{kind}: {key} takes integers: use randint or choice")
    return kind, arguments


def _sample(key: str, kind: str, arguments: list[Any], rng: np.random.Generator) -> Any:
    if kind == "choice":
        return arguments[int(rng.integers(len(arguments)))]
    low, high = arguments
    if kind == "randint":
        return int(rng.integers(low, high + 1))
    if kind == "uniform":
        return float(rng.uniform(low, high))
    value = float(np.exp(rng.uniform(np.log(low), np.log(high))))
    return BetaSchedule(value) if key == "beta" else value


def _budget(table: dict) -> Budget:
    _known(table, _BUDGET_KEYS, "budget.")
    early = _table(table, "early_stopping")
    _known(early, _EARLY_KEYS, "budget.early_stopping.")
    scheduler = _get(early, "scheduler", "budget.early_stopping.", str, default="asha")
    if scheduler not in SCHEDULERS:
        raise SweepFileError(
            f"budget.early_stopping.scheduler: one of {', '.join(SCHEDULERS)}, not {scheduler!r}"
        )
    reduction = _positive(early, "reduction_factor", "budget.early_stopping.", 2)
    if reduction < 2:
        raise SweepFileError("budget.early_stopping.reduction_factor: must be >= 2")
    max_failures = _get(table, "max_failures", "budget.", int, default=3)
    if max_failures < 0:
        raise SweepFileError(f"budget.max_failures: must be >= 0, not {max_failures}")
    return Budget(
        samples=_positive(table, "samples", "budget.", 1),
        seed=_get(table, "seed", "budget.", int, default=0),
        workers=_positive(table, "workers", "budget.", None),
        cpus_per_trial=_positive(table, "cpus_per_trial", "budget.", 1),
        max_failures=max_failures,
        scheduler=scheduler,
        grace_period=_positive(early, "grace_period", "budget.early_stopping.", 1),
        reduction_factor=reduction,
    )


def _build(table: dict) -> BuildOptions:
    _known(table, _BUILD_KEYS, "build.")
    clock = _get(table, "clock_ns", "build.", float, default=5.0)
    if not clock > 0:
        raise SweepFileError(f"build.clock_ns: must be > 0, not {clock}")
    rtl = _get(table, "rtl", "build.", bool, default=True)
    if not rtl and table.get("synth") is True:
        raise SweepFileError("build.synth: synthesis needs the RTL: set build.rtl = true")
    return BuildOptions(
        rtl=rtl,
        synth=rtl and _get(table, "synth", "build.", bool, default=True),
        nextpnr=_get(table, "nextpnr", "build.", bool, default=True),
        vectors=_positive(table, "vectors", "build.", 10_000),
        clock_ns=clock,
    )


def config_from_record(record: dict[str, Any]) -> TrainConfig:
    """Rebuild a TrainConfig from :func:`~hgq_rtl.train.checkpoint.config_record`'s values."""
    values = dict(record)
    for key in ("hidden", "channels"):
        values[key] = tuple(values[key])
    beta = dict(values["beta"])
    beta["steps"] = tuple(tuple(step) for step in beta["steps"])
    values["beta"] = BetaSchedule(**beta)
    return TrainConfig(**values)
