"""The table of data sources, :data:`DATASETS`, and :func:`load_dataset`, which loads one by
name."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path

from .dataset import Dataset
from .digits import load_digits
from .fashion_mnist import load_fashion_mnist
from .jets import load_jets
from .muon_toy import load_muon_toy
from .npz import load_npz

DATASETS: dict[str, Callable[..., Dataset]] = {
    "digits": load_digits,
    "jets": load_jets,
    "fashion_mnist": load_fashion_mnist,
    "muon_toy": load_muon_toy,
    "npz": load_npz,
}
"""Loaders by data set name. :func:`load_dataset` passes ``path`` to a loader that has a ``path``
parameter, ``seed`` to one that has a ``seed`` parameter, and its other options by name."""


def load_dataset(
    name: str, *, path: str | Path | None = None, seed: int = 0, **options: object
) -> Dataset:
    """Load the data set registered in :data:`DATASETS` as ``name``.

    Parameters
    ----------
    name : str
        ``"digits"``, ``"jets"``, ``"fashion_mnist"``, ``"muon_toy"`` or ``"npz"``.
    path : str or pathlib.Path, optional
        Data file or folder: optional for ``"jets"`` (``None`` downloads it) and
        ``"fashion_mnist"`` (``None`` reads :data:`FASHION_MNIST_DIR`), required for ``"npz"``,
        not accepted by ``"digits"`` and ``"muon_toy"``.
    seed : int, default 0
        Seed of the train/test split (of the subsets for ``"fashion_mnist"``, of the generator
        for ``"muon_toy"``); ignored by ``"npz"``, whose file is already split.
    **options
        Further keyword arguments of the loader, e.g. ``train_samples=6000`` for
        ``"fashion_mnist"`` or ``test_fraction=0.5``.

    Returns
    -------
    Dataset

    Raises
    ------
    ValueError
        If ``name`` is unknown, ``path`` is missing or not accepted, or an option is not one of
        the loader's, and as the loader does.
    """
    loader = DATASETS.get(name)
    if loader is None:
        raise ValueError(f"unknown dataset {name!r}: choose one of {', '.join(DATASETS)}")
    parameters = inspect.signature(loader).parameters
    kwargs: dict[str, object] = {}
    if "path" in parameters:
        if path is None and parameters["path"].default is inspect.Parameter.empty:
            raise ValueError(f"dataset {name!r} needs a data file: pass one with --data-path")
        if path is not None:
            kwargs["path"] = path
    elif path is not None:
        raise ValueError(f"dataset {name!r} takes no data file, but got '{path}'")
    if "seed" in parameters:
        kwargs["seed"] = seed
    for option, value in options.items():
        if option in ("path", "seed") or option not in parameters:
            known = [p for p in parameters if p not in ("path", "seed")]
            raise ValueError(
                f"dataset {name!r} has no option {option!r} "
                f"(its options: {', '.join(known) or 'none'})"
            )
        kwargs[option] = value
    return loader(**kwargs)
