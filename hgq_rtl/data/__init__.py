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

The sources, one module each: name (loader) — what ``path`` (``--data-path``) is — task.

- ``digits`` (:func:`load_digits`) — no path, bundled with scikit-learn — 10 classes.
- ``jets`` (:func:`load_jets`) — optional ``.csv``/``.npz``/``.parquet``, else OpenML — 5 classes.
- ``fashion_mnist`` (:func:`load_fashion_mnist`) — optional IDX folder or file, else
  :data:`FASHION_MNIST_DIR` — 10 classes.
- ``muon_toy`` (:func:`load_muon_toy`) — no path, generated — regression.
- ``npz`` (:func:`load_npz`) — required ``.npz``, already split — either, as the file says.

The other modules: ``dataset`` (:class:`Dataset`, :class:`Task`, :func:`default_feature_names`),
``helpers`` (argument checks, the seeded split, file and ``.npz`` reading shared by the loaders)
and ``registry`` (:data:`DATASETS` and :func:`load_dataset`).

To add a source: write ``hgq_rtl/data/<name>.py`` with a ``load_<name>`` that returns a
:class:`Dataset` named ``<name>``. Give it a ``path`` parameter if it reads a file (without a
default if the file is required), a ``seed`` parameter if it draws anything at random, and its
other options as keyword arguments: :func:`load_dataset` reads the signature to route
``--data-path``, ``--seed`` and the options. Then add it to :data:`DATASETS` in ``registry.py``,
re-export it here, name it in the ``--dataset`` (and ``--data-path``) help of ``hgq_rtl/cli.py``,
and test it in ``tests/data/test_data_<name>.py``.
"""

from .dataset import Dataset, Task, default_feature_names
from .digits import load_digits
from .fashion_mnist import (
    FASHION_MNIST_CLASSES,
    FASHION_MNIST_DIR,
    FASHION_MNIST_FILES,
    IDX_DTYPES,
    load_fashion_mnist,
    read_idx,
)
from .jets import (
    JET_CLASSES,
    JET_FEATURES,
    JET_LABEL_COLUMN,
    JET_OPENML_NAME,
    load_jets,
)
from .muon_toy import MUON_TOY_FEATURES, MUON_TOY_PLANES, MUON_TOY_STRIPS, load_muon_toy
from .npz import NPZ_KEYS, load_npz
from .registry import DATASETS, load_dataset

__all__ = [
    "DATASETS",
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_DIR",
    "FASHION_MNIST_FILES",
    "IDX_DTYPES",
    "JET_CLASSES",
    "JET_FEATURES",
    "JET_LABEL_COLUMN",
    "JET_OPENML_NAME",
    "MUON_TOY_FEATURES",
    "MUON_TOY_PLANES",
    "MUON_TOY_STRIPS",
    "NPZ_KEYS",
    "Dataset",
    "Task",
    "default_feature_names",
    "load_dataset",
    "load_digits",
    "load_fashion_mnist",
    "load_jets",
    "load_muon_toy",
    "load_npz",
    "read_idx",
]
