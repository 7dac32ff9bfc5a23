"""Classification data sets for training: scikit-learn's digits, the hls4ml jet tagging set, or
a user's own ``.npz`` file.

Every loader returns a :class:`Dataset` whose features are C-contiguous ``float32`` and whose labels
are C-contiguous ``int64`` class indices. Pick one by name with :func:`load_dataset`; the names are
the keys of :data:`DATASETS`.

Errors in what a user passes (a bad path, a malformed file) raise ``ValueError`` or
``FileNotFoundError`` with a one-line message. A failed download raises ``ConnectionError`` and a
missing optional reader (Parquet) ``ImportError``, also with one line each.
"""

from __future__ import annotations

import csv
import http.client
import importlib.util
import inspect
import math
import pickle
import zipfile
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


@dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """A classification data set split into training and test samples.

    Construction converts the arrays to C-contiguous ``float32`` features and ``int64`` labels
    and checks that the parts fit together.

    Parameters
    ----------
    name : str
        Registry name of the data set (a key of :data:`DATASETS`).
    x_train, x_test : numpy.ndarray
        Features, shape ``(samples, features)``.
    y_train, y_test : numpy.ndarray
        Integer class indices in ``[0, n_classes)``, shape ``(samples,)``.
    n_classes : int
        Number of classes.
    feature_names : tuple of str
        One name per feature column.
    class_names : tuple of str
        One name per class index.

    Raises
    ------
    ValueError
        If shapes, dtypes, names or labels are inconsistent.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int
    feature_names: tuple[str, ...]
    class_names: tuple[str, ...]

    def __post_init__(self) -> None:
        for key in ("x_train", "x_test"):
            value = np.asarray(getattr(self, key))
            if value.ndim != 2 or value.dtype.kind not in "biuf":
                raise ValueError(
                    f"{key} must be a 2-D numeric array, not {value.dtype} of shape {value.shape}"
                )
            object.__setattr__(self, key, np.ascontiguousarray(value, dtype=np.float32))
        for key in ("y_train", "y_test"):
            value = np.asarray(getattr(self, key))
            if value.ndim != 1 or value.dtype.kind not in "iu":
                raise ValueError(
                    f"{key} must be a 1-D integer array, not {value.dtype} of shape {value.shape}"
                )
            object.__setattr__(self, key, np.ascontiguousarray(value, dtype=np.int64))
        object.__setattr__(self, "feature_names", tuple(str(n) for n in self.feature_names))
        object.__setattr__(self, "class_names", tuple(str(n) for n in self.class_names))

        if self.x_train.shape[1] != self.x_test.shape[1]:
            raise ValueError(
                f"x_train has {self.x_train.shape[1]} features but x_test {self.x_test.shape[1]}"
            )
        for split in ("train", "test"):
            n_x, n_y = len(getattr(self, f"x_{split}")), len(getattr(self, f"y_{split}"))
            if n_x != n_y:
                raise ValueError(f"x_{split} has {n_x} samples but y_{split} {n_y}")
        if len(self.feature_names) != self.n_features:
            raise ValueError(
                f"{len(self.feature_names)} feature names for {self.n_features} features"
            )
        if isinstance(self.n_classes, bool) or not isinstance(self.n_classes, int | np.integer):
            raise ValueError(f"n_classes must be an integer, not {self.n_classes!r}")
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

    @property
    def n_features(self) -> int:
        """Number of feature columns."""
        return int(self.x_train.shape[1])

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, train={self.x_train.shape}, test={self.x_test.shape}, "
            f"n_classes={self.n_classes})"
        )


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
# npz


def load_npz(path: str | Path) -> Dataset:
    """A user's own data set, already split, from a ``.npz`` file.

    The file must hold ``x_train`` and ``x_test`` (2-D, samples by features, numeric) and
    ``y_train`` and ``y_test`` (1-D integer labels >= 0, one per sample). It may also hold
    ``feature_names`` and ``class_names`` (1-D string arrays). The features are used as they
    are: no standardization or scaling is applied, so prepare them the way the hardware will
    see them.

    Parameters
    ----------
    path : str or pathlib.Path
        The ``.npz`` file.

    Returns
    -------
    Dataset
        Named ``"npz"``. ``n_classes`` is the number of ``class_names`` if given, else the
        largest label plus one; feature names default to ``x0, x1, ...`` and class names to
        ``"0", "1", ...``.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not a readable ``.npz``, lacks an array, or its arrays have the wrong
        shape, dtype or values (including NaN or inf features).
    """
    file = _existing_file(path, (".npz",))
    source = f"'{path}'"
    arrays = _read_npz(file, NPZ_KEYS, source, optional=("feature_names", "class_names"))
    for key in ("x_train", "x_test"):
        x = arrays[key]
        if x.ndim != 2:
            raise ValueError(f"{key} in {source} must be 2-D (samples, features), not {x.shape}")
        if x.dtype.kind not in "biuf":
            raise ValueError(f"{key} in {source} must hold numbers, not {x.dtype}")
        if len(x) == 0:
            raise ValueError(f"{key} in {source} has no samples")
        bad = np.argwhere(~np.isfinite(x))
        if bad.size:
            row, column = bad[0]
            raise ValueError(
                f"{key} in {source} holds NaN or inf ({x[row, column]} in row {row}, "
                f"column {column})"
            )
    for key in ("y_train", "y_test"):
        y = arrays[key]
        if y.ndim != 1 or y.dtype.kind not in "iu":
            raise ValueError(
                f"{key} in {source} must be 1-D integer class labels, not {y.dtype} of "
                f"shape {y.shape}"
            )
        if y.size and y.min() < 0:
            raise ValueError(f"{key} in {source} holds the negative label {y.min()}")
        x_key = "x" + key[1:]
        if len(y) != len(arrays[x_key]):
            raise ValueError(
                f"{key} in {source} has {len(y)} labels but {x_key} {len(arrays[x_key])} samples"
            )
    n_features = arrays["x_train"].shape[1]
    if arrays["x_test"].shape[1] != n_features:
        raise ValueError(
            f"x_train in {source} has {n_features} features but x_test {arrays['x_test'].shape[1]}"
        )
    n_labels = int(max(arrays["y_train"].max(), arrays["y_test"].max())) + 1
    feature_names = _npz_names(arrays, "feature_names", source)
    class_names = _npz_names(arrays, "class_names", source)
    if feature_names is None:
        feature_names = tuple(f"x{i}" for i in range(n_features))
    elif len(feature_names) != n_features:
        raise ValueError(
            f"feature_names in {source} has {len(feature_names)} names for {n_features} features"
        )
    if class_names is None:
        class_names = tuple(str(i) for i in range(n_labels))
    elif len(class_names) < n_labels:
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
        n_classes=len(class_names),
        feature_names=feature_names,
        class_names=class_names,
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
    "npz": load_npz,
}
"""Loaders by data set name. :func:`load_dataset` passes ``path`` to a loader that has a ``path``
parameter and ``seed`` to one that has a ``seed`` parameter."""


def load_dataset(name: str, *, path: str | Path | None = None, seed: int = 0) -> Dataset:
    """Load the data set registered in :data:`DATASETS` as ``name``.

    Parameters
    ----------
    name : str
        ``"digits"``, ``"jets"`` or ``"npz"``.
    path : str or pathlib.Path, optional
        Data file: optional for ``"jets"`` (``None`` downloads it), required for ``"npz"``,
        not accepted for ``"digits"``.
    seed : int, default 0
        Seed of the train/test split; ignored by ``"npz"``, whose file is already split.

    Returns
    -------
    Dataset

    Raises
    ------
    ValueError
        If ``name`` is unknown or ``path`` is missing or not accepted, and as the loader does.
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
    return loader(**kwargs)


# --------------------------------------------------------------------------------------------
# shared helpers


def _check_split_args(seed: int, test_fraction: float) -> None:
    """Raise ValueError unless ``seed`` and ``test_fraction`` are usable for a split."""
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or not 0 <= seed < 2**32:
        raise ValueError(f"`seed` must be an integer in [0, 2**32), not {seed!r}")
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, int | float | np.floating):
        raise ValueError(f"`test_fraction` must be a number in (0, 1), not {test_fraction!r}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"`test_fraction` must be in (0, 1), not {test_fraction}")


def _split(
    x: np.ndarray, y: np.ndarray, seed: int, test_fraction: float, source: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Deterministic shuffled split, stratified by class whenever the class counts allow it."""
    from sklearn.model_selection import train_test_split

    n = len(y)
    n_test = math.ceil(test_fraction * n)
    n_train = n - n_test
    if n_test < 1 or n_train < 1:
        raise ValueError(
            f"{source} has {n} samples, too few to split with test_fraction={test_fraction}"
        )
    counts = np.bincount(y)
    counts = counts[counts > 0]
    stratified = counts.min() >= 2 and min(n_test, n_train) >= len(counts)
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
