"""The hls4ml LHC jet tagging set: :func:`load_jets`, from OpenML or a local ``.csv``, ``.npz``
or ``.parquet`` file."""

from __future__ import annotations

import csv
import http.client
import importlib.util
from array import array
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .dataset import Dataset
from .helpers import _check_split_args, _existing_file, _one_line, _read_npz, _split

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

_JET_SUFFIXES = (".csv", ".npz", ".parquet")


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
