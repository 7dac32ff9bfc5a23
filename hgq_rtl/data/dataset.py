"""The container every loader returns: :class:`Dataset`, its :class:`Task`, and
:func:`default_feature_names`."""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


class Task(enum.StrEnum):
    """What a data set's targets are: class indices or real numbers."""

    CLASSIFICATION = "classification"
    """Targets are ``int64`` class indices in ``[0, n_classes)``, shape ``(samples,)``."""
    REGRESSION = "regression"
    """Targets are ``float32`` values, shape ``(samples, n_outputs)``."""


#: Most classes a classification data set may have: a label is checked against it before any
#: per-class memory (class names, one-hot targets, confusion matrices) is allocated.
MAX_CLASSES = 1 << 16


@dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """A data set split into training and test samples, for classification or regression.

    Construction converts the arrays to C-contiguous ``float32`` samples and ``int64`` labels
    (classification) or ``float32`` targets of shape ``(samples, n_outputs)`` (regression; 1-D
    targets become one column), fills in default names, and checks that the parts fit together.

    Parameters
    ----------
    name : str
        Registry name of the data set (a key of :data:`DATASETS`).
    x_train, x_test : numpy.ndarray
        Samples, shape ``(samples, *input_shape)``: ``(samples, features)`` for tabular data,
        ``(samples, channels, length)`` for sequences, ``(samples, channels, height, width)``
        for images. Finite numbers.
    y_train, y_test : numpy.ndarray
        Classification: integer class indices in ``[0, n_classes)``, shape ``(samples,)``.
        Regression: finite numbers, shape ``(samples,)`` or ``(samples, n_outputs)``.
    n_classes : int, optional
        Number of classes. Classification: defaults to ``len(class_names)`` if given, else the
        largest label plus one. Regression: must be 0 (the default).
    feature_names : tuple of str, optional
        One name per element of a sample, in C order (``n_features`` names). Defaults to
        :func:`default_feature_names` of ``input_shape``.
    class_names : tuple of str, optional
        Classification: one name per class index, default ``"0", "1", ...``. Regression: must
        be empty (the default).
    task : Task or str, default Task.CLASSIFICATION
        ``"classification"`` or ``"regression"``.

    Raises
    ------
    ValueError
        If shapes, dtypes, names, labels or the task are inconsistent, or a sample or target
        holds NaN or inf.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int | None = None
    feature_names: tuple[str, ...] | None = None
    class_names: tuple[str, ...] | None = None
    task: Task = Task.CLASSIFICATION

    def __post_init__(self) -> None:
        if self.task not in tuple(Task):
            choices = " or ".join(repr(t.value) for t in Task)
            raise ValueError(f"task must be {choices}, not {self.task!r}")
        object.__setattr__(self, "task", Task(self.task))
        for key in ("x_train", "x_test"):
            value = np.asarray(getattr(self, key))
            if value.ndim < 2 or value.dtype.kind not in "biuf" or 0 in value.shape[1:]:
                raise ValueError(
                    f"{key} must be a numeric array of shape (samples, *input_shape), not "
                    f"{value.dtype} of shape {value.shape}"
                )
            object.__setattr__(self, key, _finite(key, value, np.float32))
        if self.x_train.shape[1:] != self.x_test.shape[1:]:
            if self.x_train.ndim == self.x_test.ndim == 2:
                raise ValueError(
                    f"x_train has {self.x_train.shape[1]} features but x_test "
                    f"{self.x_test.shape[1]}"
                )
            raise ValueError(
                f"x_train has samples of shape {self.input_shape} but x_test "
                f"{self.x_test.shape[1:]}"
            )
        if self.task is Task.CLASSIFICATION:
            self._check_labels()
        else:
            self._check_targets()
        for split in ("train", "test"):
            n_x, n_y = len(getattr(self, f"x_{split}")), len(getattr(self, f"y_{split}"))
            if n_x != n_y:
                raise ValueError(f"x_{split} has {n_x} samples but y_{split} {n_y}")
        if self.feature_names is None:
            object.__setattr__(self, "feature_names", default_feature_names(self.input_shape))
        object.__setattr__(self, "feature_names", tuple(str(n) for n in self.feature_names))
        if len(self.feature_names) != self.n_features:
            raise ValueError(
                f"{len(self.feature_names)} feature names for {self.n_features} features"
            )

    def _check_labels(self) -> None:
        """Classification: convert and check the labels, fill in n_classes and class names."""
        for key in ("y_train", "y_test"):
            value = np.asarray(getattr(self, key))
            if value.ndim != 1 or value.dtype.kind not in "iu":
                raise ValueError(
                    f"{key} must be a 1-D integer array, not {value.dtype} of shape {value.shape}"
                )
            if value.size and value.max() >= MAX_CLASSES:  # before any per-class allocation
                raise ValueError(
                    f"{key} holds the label {value.max()}: labels must lie in [0, {MAX_CLASSES}) "
                    f"(at most {MAX_CLASSES} classes)"
                )
            object.__setattr__(self, key, np.ascontiguousarray(value, dtype=np.int64))
        if self.n_classes is None:
            if self.class_names is not None:
                n_classes = len(self.class_names)
            else:
                largest = max(
                    (int(y.max()) for y in (self.y_train, self.y_test) if y.size), default=-1
                )
                n_classes = largest + 1
            object.__setattr__(self, "n_classes", n_classes)
        if (
            isinstance(self.n_classes, bool)
            or not isinstance(self.n_classes, int | np.integer)
            or not 1 <= self.n_classes <= MAX_CLASSES
        ):
            raise ValueError(
                f"n_classes must be a positive integer for classification (at most "
                f"{MAX_CLASSES}), not {self.n_classes!r}"
            )
        object.__setattr__(self, "n_classes", int(self.n_classes))
        if self.class_names is None:
            object.__setattr__(self, "class_names", tuple(str(i) for i in range(self.n_classes)))
        object.__setattr__(self, "class_names", tuple(str(n) for n in self.class_names))
        if len(self.class_names) != self.n_classes:
            raise ValueError(f"{len(self.class_names)} class names for {self.n_classes} classes")
        for key in ("y_train", "y_test"):
            labels = getattr(self, key)
            bad = labels[(labels < 0) | (labels >= self.n_classes)]
            if bad.size:
                raise ValueError(
                    f"{key} holds label {bad[0]}, outside [0, {self.n_classes}) for "
                    f"{self.n_classes} classes"
                )

    def _check_targets(self) -> None:
        """Regression: convert and check the targets; there are no classes."""
        for key in ("y_train", "y_test"):
            value = np.asarray(getattr(self, key))
            if value.ndim not in (1, 2) or value.dtype.kind not in "biuf" or 0 in value.shape[1:]:
                raise ValueError(
                    f"{key} must be numeric regression targets of shape (samples,) or "
                    f"(samples, outputs), not {value.dtype} of shape {value.shape}"
                )
            value = value[:, np.newaxis] if value.ndim == 1 else value
            object.__setattr__(self, key, _finite(key, value, np.float32))
        if self.y_train.shape[1] != self.y_test.shape[1]:
            raise ValueError(
                f"y_train has {self.y_train.shape[1]} target columns but y_test "
                f"{self.y_test.shape[1]}"
            )
        if self.n_classes is None:
            object.__setattr__(self, "n_classes", 0)
        if self.class_names is None:
            object.__setattr__(self, "class_names", ())
        if isinstance(self.n_classes, bool) or self.n_classes != 0:
            raise ValueError(f"n_classes must be 0 for regression, not {self.n_classes!r}")
        object.__setattr__(self, "n_classes", 0)
        if len(self.class_names):
            raise ValueError(
                f"class_names must be empty for regression, not {tuple(self.class_names)!r}"
            )
        object.__setattr__(self, "class_names", ())

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one sample: ``(features,)``, ``(channels, length)`` or ``(c, h, w)``."""
        return tuple(int(d) for d in self.x_train.shape[1:])

    @property
    def n_features(self) -> int:
        """Number of numbers in one sample (the product of ``input_shape``)."""
        return math.prod(self.input_shape)

    @property
    def n_outputs(self) -> int:
        """Outputs a model needs: ``n_classes`` (classification) or target columns (regression)."""
        if self.task is Task.CLASSIFICATION:
            return self.n_classes
        return int(self.y_train.shape[1])

    def __repr__(self) -> str:
        head = f"Dataset(name={self.name!r}, train={self.x_train.shape}, test={self.x_test.shape}"
        if self.task is Task.CLASSIFICATION:
            return f"{head}, n_classes={self.n_classes})"
        return f"{head}, task='regression', n_outputs={self.n_outputs})"


def default_feature_names(input_shape: Sequence[int]) -> tuple[str, ...]:
    """Names of the elements of a sample of ``input_shape``, in C order.

    ``(features,)`` gives ``x0, x1, ...``; ``(channels, length)`` gives ``c0_t0, c0_t1, ...``;
    ``(channels, height, width)`` gives ``c0_y0_x0, c0_y0_x1, ...``; other ranks give ``x`` and
    the indices joined by ``_``, such as ``x0_2_1_3``.
    """
    shape = tuple(int(d) for d in input_shape)
    prefixes = {1: ("x",), 2: ("c", "t"), 3: ("c", "y", "x")}.get(len(shape))
    if prefixes is None:
        return tuple("x" + "_".join(map(str, index)) for index in np.ndindex(*shape))
    return tuple(
        "_".join(f"{p}{i}" for p, i in zip(prefixes, index, strict=True))
        for index in np.ndindex(*shape)
    )


def _finite(key: str, value: np.ndarray, dtype: type) -> np.ndarray:
    """``value`` as a C-contiguous ``dtype`` array, after checking it holds no NaN or inf."""
    converted = np.ascontiguousarray(value, dtype=dtype)
    bad = ~np.isfinite(converted)
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"{key} must hold finite numbers, not {converted[index]} at {index}")
    return converted
