"""scikit-learn's 8x8 handwritten digits: :func:`load_digits`."""

from __future__ import annotations

import numpy as np

from .dataset import Dataset
from .helpers import _check_split_args, _split


def load_digits(*, seed: int = 0, test_fraction: float = 0.25) -> Dataset:
    """scikit-learn's 8x8 handwritten digits (1,797 images, 10 classes), no download needed.

    Pixels hold integers 0..16 and are divided by 16, so every feature lies in ``[0, 1]`` and is
    exactly representable with 4 fractional bits. The split is stratified by class.

    Parameters
    ----------
    seed : int, default 0
        Seed of the train/test split; the same seed always gives the same split.
    test_fraction : float, default 0.25
        Fraction of the samples held out for testing, in ``(0, 1)``.

    Returns
    -------
    Dataset
        64 features named ``pixel_<row>_<col>``; classes ``"0"`` to ``"9"``.

    Raises
    ------
    ValueError
        If ``seed`` or ``test_fraction`` is out of range.
    """
    from sklearn import datasets as sk_datasets

    _check_split_args(seed, test_fraction)
    bunch = sk_datasets.load_digits()
    x = np.asarray(bunch.data, dtype=np.float64) / 16.0
    y = np.asarray(bunch.target, dtype=np.int64)
    x_train, x_test, y_train, y_test = _split(x, y, seed, test_fraction, "digits")
    return Dataset(
        name="digits",
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        n_classes=10,
        feature_names=tuple(bunch.feature_names),
        class_names=tuple(str(c) for c in bunch.target_names),
    )
