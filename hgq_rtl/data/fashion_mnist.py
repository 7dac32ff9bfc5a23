"""IDX files (the MNIST format) and Fashion-MNIST: :func:`read_idx`, :func:`load_fashion_mnist`."""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path

import numpy as np

from hgq_rtl.ir.files import check_allocation

from .dataset import Dataset
from .helpers import _check_seed, _draw_split, _one_line

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
    with file.open("rb") as stream:
        gzipped = stream.read(2) == b"\x1f\x8b"
    try:
        with (gzip.open if gzipped else open)(file, "rb") as stream:
            raw, extra = _read_idx_bytes(stream, source)
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
    expected, actual = count * dtype.itemsize, len(raw) - header + extra
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


def _read_idx_bytes(stream, source: str) -> tuple[bytes, int]:
    """The header and the data it declares, and the count of the bytes that follow (read and
    dropped): a header claiming a huge shape (or a gzip bomb) is refused by
    :func:`~hgq_rtl.ir.files.check_allocation` before the data is read."""
    raw = stream.read(4)
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] not in IDX_DTYPES:
        return raw, 0  # the caller names the problem
    raw += stream.read(4 * raw[3])
    if len(raw) < 4 + 4 * raw[3]:
        return raw, 0
    expected = math.prod(struct.unpack(f">{raw[3]}I", raw[4:])) * IDX_DTYPES[raw[2]].itemsize
    check_allocation(expected, source)
    raw += stream.read(expected)
    extra = 0
    while chunk := stream.read(1 << 20):
        extra += len(chunk)
    return raw, extra


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
