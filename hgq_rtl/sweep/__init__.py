"""Sweeps: many training configurations on Ray Tune, one global Pareto front, hardware for
every point of it (``hgq-rtl sweep``).

* :mod:`.config`: the sweep file (TOML) → :class:`SweepPlan` (no Ray, no torch);
* :mod:`.trial`: one trial (the trainer with its per-epoch checkpoints), freezing its points;
* :mod:`.progress`: the Tune callback printing progress;
* :mod:`.front`: the global front, the build of one point (RTL, check 3, synthesis);
* :mod:`.run`: Ray start or join, Tune, the freeze and build tasks;
* :mod:`.report`: ``sweep_report.html`` / ``.md``;
* :mod:`.command`: the sub-command.
"""

from .config import SweepFileError, SweepPlan, load_plan, parse_plan

__all__ = ["SweepFileError", "SweepPlan", "load_plan", "parse_plan"]
