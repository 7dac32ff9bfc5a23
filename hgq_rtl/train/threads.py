"""How torch's CPU threads wait, chosen before torch starts (no torch import here).

With more than one thread, torch's operations run in OpenMP parallel regions. GNU OpenMP's
threads *spin* (busy-wait) for a while at the end of each region before they sleep. On a machine
where another process holds a core, a spinning thread takes the time slice that the thread it
waits for needs, and every one of the thousands of small operations of a training step can wait
a whole scheduler time slice: measured on 2 cores with one other busy process, the eager MLP step
ran 20–30× slower with 2 threads than with 1. JAX's thread pool does not spin, which is why it
kept its speed. A passive wait policy (threads sleep at once) removes the collapse.

OpenMP reads the policy once, when torch loads its runtime, so it must be in the environment
before ``import torch``. Importing :mod:`hgq_rtl.train` calls :func:`prefer_passive_waiting`
(the command line imports it before torch); a value the user set is kept.
"""

from __future__ import annotations

import os
import sys

#: The environment that makes waiting OpenMP threads sleep instead of spinning (GNU OpenMP
#: reads ``OMP_WAIT_POLICY``; Intel's, which MKL may use, reads ``KMP_BLOCKTIME``).
PASSIVE_WAITING = {"OMP_WAIT_POLICY": "PASSIVE", "KMP_BLOCKTIME": "0"}

_state = {"passive": False}


def prefer_passive_waiting() -> bool:
    """Put :data:`PASSIVE_WAITING` in the environment (keeping values already set) if torch
    is not loaded yet. Returns whether OpenMP threads of this process wait passively."""
    if "torch" not in sys.modules:
        for name, value in PASSIVE_WAITING.items():
            os.environ.setdefault(name, value)
        _state["passive"] = os.environ.get("OMP_WAIT_POLICY", "").upper() == "PASSIVE"
    return _state["passive"]


def spin_warning(threads: int) -> str | None:
    """A warning for ``threads`` > 1 in a process whose OpenMP threads spin, else ``None``."""
    if threads <= 1 or _state["passive"]:
        return None
    return (
        f"torch runs {threads} threads whose OpenMP waits spin (torch was imported before "
        "hgq_rtl.train, or OMP_WAIT_POLICY is set otherwise): with another busy process on the "
        "machine, training can be many times slower; set OMP_WAIT_POLICY=PASSIVE before starting "
        "Python, or train with 1 thread"
    )
