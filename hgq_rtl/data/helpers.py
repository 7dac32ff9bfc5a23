"""Helpers the loaders share: argument checks, the seeded train/test split, reading a file
the user names (its suffix, an ``.npz``), and one-line error messages."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from hgq_rtl.ir.files import ArrayFileError, npz_headers, read_npz


def _check_seed(seed: int) -> None:
    """Raise ValueError unless ``seed`` is usable as a random seed."""
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or not 0 <= seed < 2**32:
        raise ValueError(f"`seed` must be an integer in [0, 2**32), not {seed!r}")


def _check_split_args(seed: int, test_fraction: float) -> None:
    """Raise ValueError unless ``seed`` and ``test_fraction`` are usable for a split."""
    _check_seed(seed)
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, int | float | np.floating):
        raise ValueError(f"`test_fraction` must be a number in (0, 1), not {test_fraction!r}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"`test_fraction` must be in (0, 1), not {test_fraction}")


def _split(
    x: np.ndarray, y: np.ndarray, seed: int, test_fraction: float, source: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Deterministic shuffled split, stratified by class whenever the class counts allow it."""
    n = len(y)
    n_test = math.ceil(test_fraction * n)
    if n_test < 1 or n - n_test < 1:
        raise ValueError(
            f"{source} has {n} samples, too few to split with test_fraction={test_fraction}"
        )
    return _draw_split(x, y, n_test, seed)


def _draw_split(
    x: np.ndarray, y: np.ndarray, n_test: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``x_train, x_test, y_train, y_test`` with ``n_test`` test rows drawn by ``seed``.

    Stratified by the class labels ``y`` whenever every class has two samples and both parts
    can hold one of each class.
    """
    from sklearn.model_selection import train_test_split

    counts = np.bincount(y)
    counts = counts[counts > 0]
    stratified = counts.min() >= 2 and min(n_test, len(y) - n_test) >= len(counts)
    x_train, x_test, y_train, y_test = train_test_split(
        x,
        y,
        test_size=n_test,
        random_state=int(seed),
        shuffle=True,
        stratify=y if stratified else None,
    )
    return x_train, x_test, y_train, y_test


def _existing_file(path: str | Path, suffixes: Sequence[str]) -> Path:
    """``path`` as a Path after checking its suffix and that it is an existing file."""
    file = Path(path).expanduser()
    if file.suffix.lower() not in suffixes:
        allowed = suffixes[0] if len(suffixes) == 1 else ", ".join(suffixes[:-1])
        if len(suffixes) > 1:
            allowed += f" or {suffixes[-1]}"
        raise ValueError(f"`path` must be a {allowed} file, not '{path}'")
    if not file.exists():
        raise FileNotFoundError(f"no such file: '{path}'")
    if not file.is_file():
        raise FileNotFoundError(f"'{path}' is not a file")
    return file


def _read_npz(
    file: Path, keys: Sequence[str], source: str, optional: Sequence[str] = ()
) -> dict[str, np.ndarray]:
    """The arrays ``keys`` (all required) and those of ``optional`` present in an ``.npz``."""
    names: list[str] = []
    try:
        with file.open("rb") as stream:
            if stream.read(6) == b"\x93NUMPY":  # the magic of a single .npy array
                raise ValueError(
                    f"{source} holds a single array, not the named arrays {', '.join(keys)}"
                )
        names = list(npz_headers(file, source))  # headers only: checks every member's size
        missing = [key for key in keys if key not in names]
        if missing:
            raise ValueError(f"{source} has no array '{missing[0]}' (it needs {', '.join(keys)})")
        return read_npz(file, [*keys, *optional], source)
    except ArrayFileError as exc:
        detail = str(exc).removeprefix(f"{source} ")
        if detail.startswith("is not a readable NPZ file ("):
            detail = detail.removeprefix("is not a readable NPZ file (").removesuffix(")")
        raise ValueError(f"could not read {source} as .npz: {detail}") from None
    except OSError as exc:
        raise ValueError(f"could not read {source} as .npz: {_one_line(exc)}") from exc


def _one_line(exc: BaseException) -> str:
    """The message of ``exc`` on one line (its type name if it has none)."""
    return " ".join(str(exc).split()) or type(exc).__name__
