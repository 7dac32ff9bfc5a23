"""A user's own data set, already split, from an ``.npz`` file: :func:`load_npz`."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .dataset import MAX_CLASSES, Dataset, Task
from .helpers import _existing_file, _read_npz

NPZ_KEYS: tuple[str, ...] = ("x_train", "y_train", "x_test", "y_test")
"""Arrays a user's ``.npz`` data set must hold."""


def load_npz(path: str | Path) -> Dataset:
    """A user's own data set, already split, from a ``.npz`` file.

    The file must hold ``x_train`` and ``x_test`` (numeric, shape ``(samples, *input_shape)``:
    ``(samples, features)``, ``(samples, channels, length)`` or ``(samples, channels, height,
    width)``) and ``y_train`` and ``y_test`` (one target per sample). It may also hold
    ``feature_names`` (1-D strings, one per element of a sample in C order), ``class_names``
    (1-D strings; classification only) and ``task`` (the string ``"classification"`` or
    ``"regression"``). The samples are used as they are: no standardization or scaling is
    applied, so prepare them the way the hardware will see them.

    The task is ``task`` when the file holds it. Otherwise it follows the targets' dtype:
    integer targets are class labels (classification); floating-point targets with any value
    that is not a whole number are regression targets; floating-point targets holding only
    whole numbers are refused as ambiguous (store class labels as integers, or add
    ``task="regression"``). Classification needs 1-D integer labels >= 0; regression takes
    numbers of shape ``(samples,)`` or ``(samples, outputs)``.

    Parameters
    ----------
    path : str or pathlib.Path
        The ``.npz`` file.

    Returns
    -------
    Dataset
        Named ``"npz"``. Classification: ``n_classes`` is the number of ``class_names`` if
        given, else the largest label plus one; class names default to ``"0", "1", ...``.
        Feature names default to :func:`default_feature_names` (``x0, x1, ...`` for tabular
        samples).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not a readable ``.npz``, lacks an array, its task is unclear, or its
        arrays have the wrong shape, dtype or values (including NaN or inf).
    """
    file = _existing_file(path, (".npz",))
    source = f"'{path}'"
    optional = ("feature_names", "class_names", "task")
    arrays = _read_npz(file, NPZ_KEYS, source, optional=optional)
    for key in ("x_train", "x_test"):
        x = arrays[key]
        if x.ndim < 2 or 0 in x.shape[1:]:
            raise ValueError(
                f"{key} in {source} must have shape (samples, features) or (samples, "
                f"*input_shape), not {x.shape}"
            )
        if x.dtype.kind not in "biuf":
            raise ValueError(f"{key} in {source} must hold numbers, not {x.dtype}")
        if len(x) == 0:
            raise ValueError(f"{key} in {source} has no samples")
        _check_npz_finite(key, x, source)
    task = _npz_task(arrays, source)
    for key in ("y_train", "y_test"):
        y = arrays[key]
        if task is Task.CLASSIFICATION:
            if y.ndim != 1 or y.dtype.kind not in "iu":
                raise ValueError(
                    f"{key} in {source} must be 1-D integer class labels, not {y.dtype} of "
                    f"shape {y.shape}"
                )
            if y.size and y.min() < 0:
                raise ValueError(f"{key} in {source} holds the negative label {y.min()}")
            if y.size and y.max() >= MAX_CLASSES:
                raise ValueError(
                    f"{key} in {source} holds the label {y.max()}: labels must lie in "
                    f"[0, {MAX_CLASSES}) (at most {MAX_CLASSES} classes)"
                )
        else:
            if y.ndim not in (1, 2) or y.dtype.kind not in "biuf" or 0 in y.shape[1:]:
                raise ValueError(
                    f"{key} in {source} must be numeric regression targets of shape (samples,) "
                    f"or (samples, outputs), not {y.dtype} of shape {y.shape}"
                )
            _check_npz_finite(key, y, source)
        x_key = "x" + key[1:]
        if len(y) != len(arrays[x_key]):
            raise ValueError(
                f"{key} in {source} has {len(y)} labels but {x_key} {len(arrays[x_key])} samples"
            )
    input_shape = arrays["x_train"].shape[1:]
    if arrays["x_test"].shape[1:] != input_shape:
        if len(input_shape) == 1 == arrays["x_test"].ndim - 1:
            raise ValueError(
                f"x_train in {source} has {input_shape[0]} features but x_test "
                f"{arrays['x_test'].shape[1]}"
            )
        raise ValueError(
            f"x_train in {source} has samples of shape {input_shape} but x_test "
            f"{arrays['x_test'].shape[1:]}"
        )
    n_features = math.prod(input_shape)
    feature_names = _npz_names(arrays, "feature_names", source)
    if feature_names is not None and len(feature_names) != n_features:
        raise ValueError(
            f"feature_names in {source} has {len(feature_names)} names for {n_features} features"
        )
    class_names = _npz_names(arrays, "class_names", source)
    if task is Task.REGRESSION:
        if class_names is not None:
            raise ValueError(
                f"class_names in {source} is for classification, but the task is regression"
            )
        columns = {arrays[k].shape[1] if arrays[k].ndim == 2 else 1 for k in ("y_train", "y_test")}
        if len(columns) > 1:
            raise ValueError(
                f"y_train and y_test in {source} have different numbers of target columns"
            )
    else:
        n_labels = int(max(arrays["y_train"].max(), arrays["y_test"].max())) + 1
        if class_names is not None and len(class_names) < n_labels:
            raise ValueError(
                f"class_names in {source} has {len(class_names)} names but the labels go up to "
                f"{n_labels - 1}"
            )
    return Dataset(
        name="npz",
        x_train=arrays["x_train"],
        y_train=arrays["y_train"],
        x_test=arrays["x_test"],
        y_test=arrays["y_test"],
        feature_names=feature_names,
        class_names=class_names,
        task=task,
    )


def _check_npz_finite(key: str, values: np.ndarray, source: str) -> None:
    """Raise ValueError if the numeric array ``values`` holds NaN or inf."""
    bad = np.argwhere(~np.isfinite(values))
    if bad.size:
        index = tuple(int(i) for i in bad[0])
        where = f"column {index[1]}" if len(index) == 2 else f"position {index[1:]}"
        raise ValueError(
            f"{key} in {source} holds NaN or inf ({values[index]} in row {index[0]}"
            + (f", {where})" if len(index) > 1 else ")")
        )


def _npz_task(arrays: dict[str, np.ndarray], source: str) -> Task:
    """The task of a user's ``.npz``: its ``task`` string, else the rule of :func:`load_npz`."""
    if "task" in arrays:
        value = arrays["task"]
        text = value.reshape(-1)[0] if value.size == 1 and value.dtype.kind in "US" else None
        text = text.decode(errors="replace") if isinstance(text, bytes) else text
        choices = " or ".join(repr(t.value) for t in Task)
        if text is None or text.strip().lower() not in tuple(Task):
            shown = repr(str(text)) if text is not None else f"{value.dtype} of shape {value.shape}"
            raise ValueError(f"task in {source} must be the string {choices}, not {shown}")
        return Task(text.strip().lower())
    targets = [(key, arrays[key]) for key in ("y_train", "y_test")]
    floats = [(key, y) for key, y in targets if y.dtype.kind == "f"]
    if not floats:
        return Task.CLASSIFICATION
    if any(not np.array_equal(y, np.round(y)) for _, y in floats):
        return Task.REGRESSION
    key, y = floats[0]
    raise ValueError(
        f"{key} in {source} is {y.dtype} holding only whole numbers: store class labels as "
        "integers, or add task='regression' to the file"
    )


def _npz_names(arrays: dict[str, np.ndarray], key: str, source: str) -> tuple[str, ...] | None:
    """The optional name array ``key`` as a tuple of str, or None if absent."""
    if key not in arrays:
        return None
    names = arrays[key]
    if names.ndim != 1 or names.dtype.kind not in "US":
        raise ValueError(f"{key} in {source} must be a 1-D array of strings")
    return tuple(names.astype(str).tolist())
