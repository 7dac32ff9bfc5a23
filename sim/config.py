"""The bench's settings, handed from the runner to the simulator process as one JSON file.

The runner writes the file and names it in the ``HGQ_RTL_BENCH`` environment variable; the bench
(running inside the simulator) reads it back. Nothing else travels through the environment.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = ["CONFIG_VARIABLE", "BenchConfig", "check_probability"]

CONFIG_VARIABLE = "HGQ_RTL_BENCH"


def check_probability(name: str, value: float) -> float:
    """*value* as a float if it is a probability in [0, 1); else ValueError naming *name*."""
    if not 0.0 <= float(value) < 1.0:
        raise ValueError(f"{name} must be in [0, 1), not {value}")
    return float(value)


@dataclass(frozen=True)
class BenchConfig:
    """Where the bench finds its design and vectors and writes its results.

    Attributes
    ----------
    manifest:
        The design's ``manifest.json``.
    vectors:
        An ``.npz`` with int64 arrays ``inputs`` (N, n_in) and ``expected`` (N, n_out).
    results:
        Where the bench writes its results JSON.
    progress:
        A file the bench rewrites with ``"<done> <total>"`` as vectors go in (None: no progress).
    seed:
        Seed of the random valid bubbles.
    bubble_probability:
        Chance that a cycle is a bubble (``valid_in`` or ``s_axis_tvalid`` low), in [0, 1).
    backpressure_probability:
        Stream designs: chance that a cycle holds the output back (``m_axis_tready`` low).
    """

    manifest: Path
    vectors: Path
    results: Path
    progress: Path | None = None
    seed: int = 0
    bubble_probability: float = 0.05
    backpressure_probability: float = 0.2

    def __post_init__(self) -> None:
        check_probability("bubble_probability", self.bubble_probability)
        check_probability("backpressure_probability", self.backpressure_probability)

    def write(self, path: Path) -> None:
        fields = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self).items()}
        Path(path).write_text(json.dumps(fields, indent=1))

    @classmethod
    def read(cls, path: Path) -> BenchConfig:
        fields = json.loads(Path(path).read_text())
        progress = fields.get("progress")
        return cls(
            manifest=Path(fields["manifest"]),
            vectors=Path(fields["vectors"]),
            results=Path(fields["results"]),
            progress=Path(progress) if progress else None,
            seed=int(fields.get("seed", 0)),
            bubble_probability=float(fields.get("bubble_probability", 0.05)),
            backpressure_probability=float(fields.get("backpressure_probability", 0.2)),
        )

    @classmethod
    def from_environment(cls) -> BenchConfig:
        path = os.environ.get(CONFIG_VARIABLE)
        if not path:
            raise RuntimeError(
                f"the bench needs {CONFIG_VARIABLE} naming its settings file; "
                "run it through hgq_rtl_sim.runner.verify"
            )
        return cls.read(Path(path))
