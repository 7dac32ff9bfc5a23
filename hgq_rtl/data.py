"""Data sets for training: scikit-learn's digits, the hls4ml jet tagging set, Fashion-MNIST, a
synthetic muon-track regression set, or a user's own ``.npz`` file.

Every loader returns a :class:`Dataset`: C-contiguous ``float32`` samples of shape
``(samples, *input_shape)`` and, by its :class:`Task`, either ``int64`` class indices
(classification) or ``float32`` targets of shape ``(samples, n_outputs)`` (regression). Pick one by
name with :func:`load_dataset`; the names are the keys of :data:`DATASETS`. :func:`read_idx` reads
any IDX (MNIST format) file.

Errors in what a user passes (a bad path, a malformed file) raise ``ValueError`` or
``FileNotFoundError`` with a one-line message. A failed download raises ``ConnectionError`` and a
missing optional reader (Parquet) ``ImportError``, also with one line each.
"""

from __future__ import annotations

import csv
import enum
import gzip
import http.client
import importlib.util
import inspect
import math
import pickle
import struct
import zipfile
import zlib
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

JET_OPENML_NAME = "hls4ml_lhc_jets_hlf"
"""Name of the jet tagging data set on OpenML (version 1, about 830,000 jets)."""

JET_FEATURES: tuple[str, ...] = (
    "zlogz",
    "c1_b0_mmdt",
    "c1_b1_mmdt",
    "c1_b2_mmdt",
    "c2_b1_mmdt",
    "c2_b2_mmdt",
    "d2_b1_mmdt",
    "d2_b2_mmdt",
    "d2_a1_b1_mmdt",
    "d2_a1_b2_mmdt",
    "m2_b1_mmdt",
    "m2_b2_mmdt",
    "n2_b1_mmdt",
    "n2_b2_mmdt",
    "mass_mmdt",
    "multiplicity",
)
"""The 16 high-level jet features, in the order OpenML stores them."""

JET_CLASSES: tuple[str, ...] = ("g", "q", "w", "z", "t")
"""Jet classes in class-index order (gluon, light quark, W, Z, top); not alphabetical."""

JET_LABEL_COLUMN = "class"
"""Name of the label column in a jets ``.csv`` or ``.parquet`` file."""

NPZ_KEYS: tuple[str, ...] = ("x_train", "y_train", "x_test", "y_test")
"""Arrays a user's ``.npz`` data set must hold."""

_JET_SUFFIXES = (".csv", ".npz", ".parquet")


class Task(enum.StrEnum):
    """What a data set's targets are: class indices or real numbers."""

    CLASSIFICATION = "classification"
    """Targets are ``int64`` class indices in ``[0, n_classes)``, shape ``(samples,)``."""
    REGRESSION = "regression"
    """Targets are ``float32`` values, shape ``(samples, n_outputs)``."""


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
            or self.n_classes < 1
        ):
            raise ValueError(
                f"n_classes must be a positive integer for classification, not {self.n_classes!r}"
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


# --------------------------------------------------------------------------------------------
# digits


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


# --------------------------------------------------------------------------------------------
# jets


def load_jets(
    path: str | Path | None = None,
    *,
    cache_dir: str | Path | None = None,
    seed: int = 0,
    test_fraction: float = 0.2,
) -> Dataset:
    """The hls4ml LHC jet tagging set: 16 high-level features, 5 classes (g, q, w, z, t).

    Without ``path`` the data set ``hls4ml_lhc_jets_hlf`` (version 1) is fetched from OpenML
    through :func:`sklearn.datasets.fetch_openml`, which caches the download under
    ``cache_dir``. With ``path`` a local file is read instead:

    - ``.csv``: a header row, then one jet per row; a column named ``class`` holds the label and
      every other column is a feature (16 of them, kept in file order).
    - ``.npz``: an array ``x`` of shape ``(n, 16)`` and an array ``y`` of ``n`` labels.
    - ``.parquet``: columns as for ``.csv``; needs pandas and pyarrow.

    Labels may be the names ``g, q, w, z, t`` (any case) or the class indices 0 to 4 in that
    order. The split is deterministic for a seed and stratified by class where every class
    present has at least two jets. Features are standardized with the mean and standard
    deviation of the training split only (a constant feature becomes 0).

    Parameters
    ----------
    path : str or pathlib.Path, optional
        Local ``.csv``, ``.npz`` or ``.parquet`` file; ``None`` downloads from OpenML.
    cache_dir : str or pathlib.Path, optional
        Where OpenML downloads are cached (scikit-learn's ``data_home``); ``None`` uses
        scikit-learn's default (``~/scikit_learn_data``). Ignored with ``path``.
    seed : int, default 0
        Seed of the train/test split.
    test_fraction : float, default 0.2
        Fraction of the jets held out for testing, in ``(0, 1)``.

    Returns
    -------
    Dataset
        Standardized 16-feature jets with classes ``("g", "q", "w", "z", "t")``.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file has the wrong suffix, not 16 features, NaN or inf features, unknown labels,
        or is otherwise malformed; or if ``seed`` or ``test_fraction`` is out of range.
    ImportError
        If a ``.parquet`` file is given but pandas or pyarrow is not installed.
    ConnectionError
        If the OpenML download fails.
    """
    _check_split_args(seed, test_fraction)
    if path is None:
        x, labels, feature_names = _fetch_openml_jets(cache_dir)
        source = f"OpenML {JET_OPENML_NAME}"
    else:
        file = _existing_file(path, _JET_SUFFIXES)
        source = f"'{path}'"
        if file.suffix.lower() == ".csv":
            x, labels, feature_names = _read_jets_csv(file, source)
        elif file.suffix.lower() == ".npz":
            x, labels, feature_names = _read_jets_npz(file, source)
        else:
            x, labels, feature_names = _read_jets_parquet(file, source)

    x = _check_jet_features(x, feature_names, source)
    y = _jet_labels(labels, source)
    if len(y) != len(x):
        raise ValueError(f"{source} has {len(x)} feature rows but {len(y)} labels")
    x_train, x_test, y_train, y_test = _split(x, y, seed, test_fraction, source)
    x_train, x_test = _standardize(x_train, x_test)
    return Dataset(
        name="jets",
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        n_classes=len(JET_CLASSES),
        feature_names=feature_names,
        class_names=JET_CLASSES,
    )


def _fetch_openml_jets(
    cache_dir: str | Path | None,
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Features, raw labels and feature names of the OpenML jets, downloaded or from the cache."""
    import sklearn.datasets

    # The pandas ARFF parser is much faster, but the pure-Python one needs nothing extra.
    parser = "pandas" if importlib.util.find_spec("pandas") is not None else "liac-arff"
    data_home = None if cache_dir is None else str(Path(cache_dir).expanduser())
    try:
        bunch = sklearn.datasets.fetch_openml(
            JET_OPENML_NAME, version=1, data_home=data_home, as_frame=False, parser=parser
        )
    except (OSError, http.client.HTTPException) as exc:
        raise ConnectionError(
            f"could not download {JET_OPENML_NAME} from OpenML ({_one_line(exc)}): "
            "pass a local file with --data-path"
        ) from exc
    names = getattr(bunch, "feature_names", None) or JET_FEATURES
    # With as_frame=False the target is an object array of the class names as str.
    return np.asarray(bunch.data), np.asarray(bunch.target), tuple(str(n) for n in names)


def _read_jets_csv(file: Path, source: str) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Features, raw labels and feature names of a jets ``.csv`` file."""
    with file.open(newline="", encoding="utf-8-sig") as stream:
        reader = csv.reader(stream, skipinitialspace=True)
        header = next((row for row in reader if row), None)
        if header is None:
            raise ValueError(f"{source} is empty: it needs a header row and one row per jet")
        header = [name.strip() for name in header]
        feature_columns = _table_columns(header, source)
        label_column = header.index(JET_LABEL_COLUMN)
        values: array[float] = array("d")
        labels: list[str] = []
        for row in reader:
            if not row:
                continue
            if len(row) != len(header):
                raise ValueError(
                    f"{source} line {reader.line_num} has {len(row)} fields, "
                    f"the header {len(header)}"
                )
            try:
                values.extend([float(row[i]) for i in feature_columns])
            except ValueError:
                column = next(i for i in feature_columns if not _is_float(row[i]))
                raise ValueError(
                    f"{source} line {reader.line_num}, column '{header[column]}': "
                    f"{row[column]!r} is not a number"
                ) from None
            labels.append(row[label_column])
    x = np.frombuffer(values, dtype=np.float64).reshape(len(labels), len(feature_columns))
    return x, np.asarray(labels, dtype=str), tuple(header[i] for i in feature_columns)


def _read_jets_npz(file: Path, source: str) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Features, raw labels and feature names of a jets ``.npz`` file (arrays ``x`` and ``y``)."""
    arrays = _read_npz(file, ("x", "y"), source)
    return arrays["x"], arrays["y"], JET_FEATURES


def _read_jets_parquet(file: Path, source: str) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Features, raw labels and feature names of a jets ``.parquet`` file."""
    missing = [m for m in ("pandas", "pyarrow") if importlib.util.find_spec(m) is None]
    if missing:
        raise ImportError(
            f"reading {source} needs {' and '.join(missing)}, which "
            f"{'is' if len(missing) == 1 else 'are'} not installed: "
            f"pip install {' '.join(missing)}, or convert the file to .csv or .npz"
        )
    import pandas as pd

    try:
        frame = pd.read_parquet(file)
    except (ValueError, OSError) as exc:
        raise ValueError(f"could not read {source} as Parquet: {_one_line(exc)}") from exc
    header = [str(name) for name in frame.columns]
    feature_columns = _table_columns(header, source)
    try:
        x = frame.iloc[:, feature_columns].to_numpy(dtype=np.float64)
    except (ValueError, TypeError):
        raise ValueError(f"{source} has feature columns that are not numeric") from None
    labels = frame.iloc[:, header.index(JET_LABEL_COLUMN)].to_numpy()
    return x, labels, tuple(header[i] for i in feature_columns)


def _table_columns(header: Sequence[str], source: str) -> list[int]:
    """Indices of the feature columns of a jets table, checking the header."""
    duplicates = sorted({name for name in header if header.count(name) > 1})
    if duplicates:
        raise ValueError(f"{source} has duplicate columns: {', '.join(duplicates)}")
    if JET_LABEL_COLUMN not in header:
        raise ValueError(
            f"{source} has no '{JET_LABEL_COLUMN}' column with the jet labels "
            f"(columns: {_preview(header)})"
        )
    features = [i for i, name in enumerate(header) if name != JET_LABEL_COLUMN]
    if len(features) != len(JET_FEATURES):
        raise ValueError(
            f"jets data needs {len(JET_FEATURES)} features, {source} has {len(features)} "
            f"columns besides '{JET_LABEL_COLUMN}'"
        )
    return features


def _check_jet_features(x: np.ndarray, feature_names: tuple[str, ...], source: str) -> np.ndarray:
    """``x`` as float64 after checking its shape, dtype and values."""
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"jets features in {source} must be 2-D (jets, features), not {x.shape}")
    if x.shape[1] != len(JET_FEATURES):
        raise ValueError(f"jets data needs {len(JET_FEATURES)} features, {source} has {x.shape[1]}")
    if len(feature_names) != x.shape[1]:
        raise ValueError(f"{source} names {len(feature_names)} features but has {x.shape[1]}")
    if x.dtype.kind not in "iuf":
        raise ValueError(f"jets features in {source} must be numbers, not {x.dtype}")
    x = x.astype(np.float64, copy=False)
    bad = np.argwhere(~np.isfinite(x))
    if bad.size:
        row, column = bad[0]
        raise ValueError(
            f"jets features in {source} hold NaN or inf ({x[row, column]} in row {row}, "
            f"feature '{feature_names[column]}')"
        )
    return x


def _jet_labels(raw: np.ndarray, source: str) -> np.ndarray:
    """Class indices (``int64``) of jet labels given as names ``g, q, w, z, t`` or as 0 to 4."""
    raw = np.asarray(raw)
    if raw.ndim != 1:
        raise ValueError(f"jet labels in {source} must be 1-D, not of shape {raw.shape}")
    if raw.dtype.kind not in "iufUSO":
        raise ValueError(f"jet labels in {source} must be names or integers, not {raw.dtype}")
    text = raw.astype(str) if raw.dtype.kind in "USO" else raw
    uniques, inverse = np.unique(text, return_inverse=True)
    codes = np.array([_jet_class_index(value) for value in uniques.tolist()], dtype=np.int64)
    bad = uniques[codes < 0]
    if bad.size:
        shown = ", ".join(repr(v) for v in bad[:5].tolist())
        raise ValueError(
            f"unknown jet labels in {source}: {shown} "
            f"(expected {', '.join(JET_CLASSES)} or 0-{len(JET_CLASSES) - 1})"
        )
    return codes[inverse.reshape(-1)]


def _jet_class_index(value: object) -> int:
    """Class index of one jet label, or -1 if it is not one."""
    if isinstance(value, str):
        key = value.strip().strip("'\"").lower()
        if key in JET_CLASSES:
            return JET_CLASSES.index(key)
        try:
            value = float(key)
        except ValueError:
            return -1
    if isinstance(value, int | float) and float(value).is_integer():
        index = int(value)
        return index if 0 <= index < len(JET_CLASSES) else -1
    return -1


def _standardize(x_train: np.ndarray, x_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both splits shifted and scaled by the training split's per-feature mean and std."""
    mean = x_train.mean(axis=0)
    std = x_train.std(axis=0)
    # A constant feature: exact offset (rounding in the mean would leave noise) and scale 1.
    constant = x_train.min(axis=0) == x_train.max(axis=0)
    mean[constant] = x_train[0, constant]
    std[constant | (std == 0)] = 1.0
    return (x_train - mean) / std, (x_test - mean) / std


# --------------------------------------------------------------------------------------------
# IDX files and Fashion-MNIST


IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
"""Element types of the IDX format by their code (the file's third byte), all big-endian."""

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
"""Where Debian's package ``dataset-fashion-mnist`` installs the four IDX files."""

FASHION_MNIST_FILES: dict[str, str] = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
"""File names of the official Fashion-MNIST splits, each read gzipped (``.gz``) or raw."""

FASHION_MNIST_CLASSES: tuple[str, ...] = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
"""Fashion-MNIST classes in label order."""


def read_idx(path: str | Path) -> np.ndarray:
    """The array stored in an IDX file (the MNIST format), gzipped or raw.

    An IDX file is a 4-byte header — two zero bytes, an element type code (see
    :data:`IDX_DTYPES`: ``0x08`` unsigned byte, ``0x09`` signed byte, ``0x0B`` 16-bit,
    ``0x0C`` 32-bit integer, ``0x0D`` float32, ``0x0E`` float64) and the number of dimensions —
    then one big-endian unsigned 32-bit size per dimension, then the elements in C order,
    big-endian. A file starting with the gzip magic bytes is decompressed first, whatever its
    name.

    Parameters
    ----------
    path : str or pathlib.Path
        The IDX file.

    Returns
    -------
    numpy.ndarray
        A writable array in native byte order with the file's shape and element type
        (``uint8``, ``int8``, ``int16``, ``int32``, ``float32`` or ``float64``).

    Raises
    ------
    FileNotFoundError
        If ``path`` is not an existing file.
    ValueError
        If the file is not valid gzip, not IDX (bad magic, unknown type code, no dimensions),
        truncated, or has bytes after its data.
    """
    file = Path(path).expanduser()
    if not file.is_file():
        raise FileNotFoundError(
            f"no such file: '{path}'" if not file.exists() else f"'{path}' is not a file"
        )
    source = f"'{path}'"
    raw = file.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise ValueError(f"could not decompress {source} (gzip): {_one_line(exc)}") from exc
    if len(raw) < 4 or raw[:2] != b"\0\0":
        raise ValueError(
            f"{source} is not an IDX file: it starts with bytes [{raw[:4].hex(' ')}], "
            "not [00 00 <type> <dimensions>]"
        )
    code, ndim = raw[2], raw[3]
    if code not in IDX_DTYPES:
        codes = ", ".join(f"0x{c:02X}" for c in IDX_DTYPES)
        raise ValueError(
            f"{source} is not an IDX file: unknown element type code 0x{code:02X} "
            f"(expected one of {codes})"
        )
    if ndim == 0:
        raise ValueError(f"{source} is not an IDX file: its header declares 0 dimensions")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(
            f"{source} is truncated: its header declares {ndim} dimensions, which need "
            f"{header} header bytes, but the file holds {len(raw)}"
        )
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = IDX_DTYPES[code]
    count = math.prod(shape)
    expected, actual = count * dtype.itemsize, len(raw) - header
    described = f"{'×'.join(map(str, shape))} {dtype.newbyteorder('=').name} values"
    if actual < expected:
        raise ValueError(
            f"{source} is truncated: its header declares {described} ({expected} bytes), "
            f"but only {actual} bytes follow"
        )
    if actual > expected:
        raise ValueError(f"{source} is malformed: {actual - expected} bytes follow its {described}")
    values = np.frombuffer(raw, dtype=dtype, count=count, offset=header).reshape(shape)
    return values.astype(dtype.newbyteorder("="))


def load_fashion_mnist(
    path: str | Path | None = None,
    *,
    seed: int = 0,
    train_samples: int | None = None,
    test_samples: int | None = None,
) -> Dataset:
    """Fashion-MNIST: 28×28 grey images of clothes in 10 classes, official 60,000/10,000 split.

    Reads the four IDX files :data:`FASHION_MNIST_FILES` (each gzipped ``<name>.gz`` or raw
    ``<name>``; the older ``train-images.idx3-ubyte`` spelling is accepted too) from the folder
    ``path``, by default :data:`FASHION_MNIST_DIR`, where Debian's package
    ``dataset-fashion-mnist`` puts them. Pixels (bytes 0..255) are divided by 256, so every
    input lies in ``[0, 255/256]`` and is exact with 8 fractional bits: the hardware receives
    the raw byte. No standardization is applied.

    Parameters
    ----------
    path : str or pathlib.Path, optional
        Folder holding the IDX files, or one of those files (its folder is used).
    seed : int, default 0
        Seed of the subsets drawn with ``train_samples`` and ``test_samples``; the full splits
        keep the files' order and do not depend on it.
    train_samples, test_samples : int, optional
        Use only this many training or test images, drawn without replacement and
        stratified by class (a quick run or test); ``None`` keeps every image.

    Returns
    -------
    Dataset
        Images of shape ``(samples, 1, 28, 28)`` (``input_shape`` ``(1, 28, 28)``), features
        named ``c0_y<row>_x<col>``, classes :data:`FASHION_MNIST_CLASSES`.

    Raises
    ------
    FileNotFoundError
        If a file is missing (the message names the folder, ``apt-get install
        dataset-fashion-mnist`` and ``--data-path``).
    ValueError
        If a file is not valid IDX, the images are not unsigned bytes of shape
        ``(n, height, width)``, the labels are not 0..9, the counts disagree, or an argument is
        out of range.
    """
    _check_seed(seed)
    folder = _fashion_folder(path)
    arrays = {
        key: read_idx(_fashion_file(folder, stem)) for key, stem in FASHION_MNIST_FILES.items()
    }
    for split in ("train", "test"):
        images, labels = arrays[f"x_{split}"], arrays[f"y_{split}"]
        source = f"'{folder / FASHION_MNIST_FILES[f'x_{split}']}'"
        if images.dtype != np.uint8 or images.ndim != 3:
            raise ValueError(
                f"{source} must hold unsigned-byte images of shape (n, height, width), not "
                f"{images.dtype} of shape {images.shape}"
            )
        source = f"'{folder / FASHION_MNIST_FILES[f'y_{split}']}'"
        if labels.dtype != np.uint8 or labels.ndim != 1:
            raise ValueError(
                f"{source} must hold unsigned-byte labels of shape (n,), not {labels.dtype} of "
                f"shape {labels.shape}"
            )
        if labels.size and labels.max() >= len(FASHION_MNIST_CLASSES):
            raise ValueError(
                f"{source} holds label {labels.max()}, outside 0..{len(FASHION_MNIST_CLASSES) - 1}"
            )
        if len(labels) != len(images):
            raise ValueError(
                f"Fashion-MNIST {split} split has {len(images)} images but {len(labels)} labels"
            )
    if arrays["x_train"].shape[1:] != arrays["x_test"].shape[1:]:
        raise ValueError(
            f"Fashion-MNIST training images are {arrays['x_train'].shape[1:]} but test images "
            f"{arrays['x_test'].shape[1:]}"
        )
    for split, samples in (("train", train_samples), ("test", test_samples)):
        arrays[f"x_{split}"], arrays[f"y_{split}"] = _subset(
            arrays[f"x_{split}"], arrays[f"y_{split}"], samples, seed, f"{split}_samples"
        )
    scaled = {
        key: (arrays[key][:, np.newaxis] / np.float32(256)).astype(np.float32)
        for key in ("x_train", "x_test")
    }
    return Dataset(
        name="fashion_mnist",
        x_train=scaled["x_train"],
        y_train=arrays["y_train"],
        x_test=scaled["x_test"],
        y_test=arrays["y_test"],
        n_classes=len(FASHION_MNIST_CLASSES),
        class_names=FASHION_MNIST_CLASSES,
    )


def _fashion_names(stem: str) -> tuple[str, ...]:
    """Accepted file names of one Fashion-MNIST file, in the order they are looked for."""
    dotted = stem.replace("-idx", ".idx")
    return (f"{stem}.gz", stem, f"{dotted}.gz", dotted)


def _fashion_folder(path: str | Path | None) -> Path:
    """The folder to read the Fashion-MNIST files from."""
    if path is None:
        return FASHION_MNIST_DIR
    given = Path(path).expanduser()
    if given.is_file():
        if not any(given.name in _fashion_names(s) for s in FASHION_MNIST_FILES.values()):
            raise ValueError(
                f"`path` must be a folder holding the Fashion-MNIST IDX files, or one of them, "
                f"not '{path}'"
            )
        return given.parent
    return given


def _fashion_file(folder: Path, stem: str) -> Path:
    """The first existing file of ``_fashion_names(stem)`` in ``folder``."""
    for name in _fashion_names(stem):
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(
        f"Fashion-MNIST not found: no {stem}.gz or {stem} in '{folder}' "
        "(apt-get install dataset-fashion-mnist, or pass the folder of the IDX files with "
        "--data-path)"
    )


def _subset(
    x: np.ndarray, y: np.ndarray, samples: int | None, seed: int, name: str
) -> tuple[np.ndarray, np.ndarray]:
    """``samples`` of the rows of ``x`` and ``y``, drawn by ``seed`` (all of them for None)."""
    if samples is None:
        return x, y
    if (
        isinstance(samples, bool)
        or not isinstance(samples, int | np.integer)
        or not 1 <= samples <= len(y)
    ):
        raise ValueError(f"`{name}` must be an integer in [1, {len(y)}], not {samples!r}")
    if samples == len(y):
        return x, y
    _, x_drawn, _, y_drawn = _draw_split(x, y, int(samples), seed)
    return x_drawn, y_drawn


# --------------------------------------------------------------------------------------------
# muon_toy (regression)


MUON_TOY_PLANES = 8
"""Detector planes a toy muon crosses; each gives a position and a hit flag."""

MUON_TOY_STRIPS = 64
"""Readout strips per unit length: hit positions are multiples of 1/64 (6 fractional bits)."""

MUON_TOY_FEATURES: tuple[str, ...] = (
    *(f"plane{k}_x" for k in range(MUON_TOY_PLANES)),
    *(f"plane{k}_hit" for k in range(MUON_TOY_PLANES)),
)
"""The 16 features of :func:`load_muon_toy`: positions first, then hit flags."""


def load_muon_toy(*, seed: int = 0, n_samples: int = 8000, test_fraction: float = 0.25) -> Dataset:
    """A small synthetic regression set: the angle of a straight muon track from its hits.

    Generated, not downloaded; the same ``seed`` always gives the same arrays. A track with
    angle ``θ ~ U(-0.5, 0.5)`` rad and offset ``b ~ U(-0.25, 0.25)`` crosses
    :data:`MUON_TOY_PLANES` planes at depths ``z = 0, 1/7, ..., 1``; plane ``k`` measures
    ``b + z_k·tan θ`` plus Gaussian noise (σ = 0.01), rounded to its strip pitch 1/64. Each
    hit is lost with probability 0.1: its position then reads 0 and its flag 0 (else 1). The
    target is ``θ`` in radians (standard deviation 0.29). A least-squares line through the hits
    present recovers it to about 0.012 rad RMS, a linear model of the 16 features only to about
    0.07 rad: ignoring lost hits takes a non-linear model.

    Parameters
    ----------
    seed : int, default 0
        Seed of the generator.
    n_samples : int, default 8000
        Number of tracks generated, at least 2.
    test_fraction : float, default 0.25
        Fraction of the tracks (the last ones generated) held out for testing, in ``(0, 1)``.

    Returns
    -------
    Dataset
        Named ``"muon_toy"``, task regression, 16 features :data:`MUON_TOY_FEATURES` (exact
        with 6 fractional bits), one target column.

    Raises
    ------
    ValueError
        If an argument is out of range.
    """
    _check_split_args(seed, test_fraction)
    if isinstance(n_samples, bool) or not isinstance(n_samples, int | np.integer) or n_samples < 2:
        raise ValueError(f"`n_samples` must be an integer >= 2, not {n_samples!r}")
    n_test = min(max(math.ceil(test_fraction * n_samples), 1), n_samples - 1)
    rng = np.random.default_rng(seed)
    angle = rng.uniform(-0.5, 0.5, n_samples)
    offset = rng.uniform(-0.25, 0.25, n_samples)
    depth = np.linspace(0.0, 1.0, MUON_TOY_PLANES)
    position = offset[:, None] + np.tan(angle)[:, None] * depth
    position += rng.normal(0.0, 0.01, position.shape)
    position = np.round(position * MUON_TOY_STRIPS) / MUON_TOY_STRIPS
    hit = rng.random(position.shape) >= 0.1
    x = np.concatenate([np.where(hit, position, 0.0), hit], axis=1)
    y = angle[:, None]
    n_train = n_samples - n_test
    return Dataset(
        name="muon_toy",
        x_train=x[:n_train],
        y_train=y[:n_train],
        x_test=x[n_train:],
        y_test=y[n_train:],
        feature_names=MUON_TOY_FEATURES,
        task=Task.REGRESSION,
    )


# --------------------------------------------------------------------------------------------
# npz


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


# --------------------------------------------------------------------------------------------
# registry


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


# --------------------------------------------------------------------------------------------
# shared helpers


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
    unreadable = (ValueError, OSError, EOFError, zipfile.BadZipFile, pickle.UnpicklingError)
    try:
        npz = np.load(file, allow_pickle=False)
    except unreadable as exc:
        raise ValueError(f"could not read {source} as .npz: {_one_line(exc)}") from exc
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise ValueError(f"{source} holds a single array, not the named arrays {', '.join(keys)}")
    with npz:
        missing = [key for key in keys if key not in npz.files]
        if missing:
            raise ValueError(f"{source} has no array '{missing[0]}' (it needs {', '.join(keys)})")
        try:
            return {key: npz[key] for key in (*keys, *optional) if key in npz.files}
        except unreadable as exc:
            raise ValueError(f"could not read {source} as .npz: {_one_line(exc)}") from exc


def _one_line(exc: BaseException) -> str:
    """The message of ``exc`` on one line (its type name if it has none)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _preview(names: Sequence[str], limit: int = 6) -> str:
    """At most ``limit`` names, comma-separated."""
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")
