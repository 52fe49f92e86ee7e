"""spikeport.data: dataset readers (built-in, IDX, N-MNIST) and input encoders."""
from __future__ import annotations

import gzip
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spikeport.data import (
    DATASETS,
    ENCODERS,
    INPUT_LEVELS,
    Dataset,
    encode,
    float_view,
    is_graded,
    load_dataset,
    quantize_input,
    read_nmnist_events,
)
from spikeport.errors import SpikeportError
from tests.conftest import need_fashion_mnist

FASHION = Path("/usr/share/datasets/fashion-mnist")


def test_import_is_numpy_only():
    code = ("import sys, spikeport.data; mods = [m for m in sys.modules if m.split('.')[0] in "
            "('torch', 'lava') or (m.startswith('spikeport.') and m.split('.')[1] not in "
            "('data', 'errors', 'fileio'))]; print(mods); sys.exit(bool(mods))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


# ---------------------------------------------------------------- built-in datasets
def test_digits_shapes_split_and_cache():
    ds = load_dataset("digits")
    assert isinstance(ds, Dataset) and not ds.temporal and ds.n_classes == 10
    assert ds.x_train.shape == (1437, 1, 8, 8) and ds.x_test.shape == (360, 1, 8, 8)
    assert ds.input_shape == (1, 8, 8)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    assert ds.x_train.min() == 0.0 and ds.x_train.max() == 1.0
    all_y = np.concatenate([ds.y_train, ds.y_test])
    # stratified: every class's test share is within one sample of 20 %
    assert np.all(np.abs(np.bincount(ds.y_test, minlength=10) - 0.2 * np.bincount(all_y)) <= 1)
    assert load_dataset("digits") is ds  # cached in-process
    with pytest.raises(ValueError):
        ds.x_train[0, 0, 0, 0] = 2.0  # cached arrays are read-only
    other = load_dataset("digits", seed=1)
    assert not np.array_equal(other.y_test, ds.y_test)
    small = load_dataset("digits", limit=7)
    assert len(small.x_train) == len(small.y_train) == len(small.x_test) == 7
    np.testing.assert_array_equal(small.x_train, ds.x_train[:7])


def test_mnist5k_shapes_and_stratified_split():
    ds = load_dataset("mnist5k")
    assert ds.x_train.shape == (4000, 1, 28, 28) and ds.x_test.shape == (1000, 1, 28, 28)
    assert ds.x_train.dtype == np.float32 and 0.0 <= ds.x_train.min() and ds.x_train.max() == 1.0
    np.testing.assert_array_equal(np.bincount(ds.y_train), [400] * 10)
    np.testing.assert_array_equal(np.bincount(ds.y_test), [100] * 10)


def test_fashion_mnist_from_debian_package():
    need_fashion_mnist()
    ds = load_dataset("fashion-mnist", limit=None)
    assert ds.x_train.shape == (60000, 1, 28, 28) and ds.x_test.shape == (10000, 1, 28, 28)
    np.testing.assert_array_equal(np.bincount(ds.y_train), [6000] * 10)
    np.testing.assert_array_equal(np.bincount(ds.y_test), [1000] * 10)
    assert ds.x_train.dtype == np.float32 and ds.x_train.max() == 1.0


def test_unknown_name_and_missing_folders(tmp_path):
    with pytest.raises(SpikeportError, match="valid names: " + ", ".join(DATASETS)):
        load_dataset("cifar")
    with pytest.raises(SpikeportError, match="apt-get install dataset-fashion-mnist"):
        load_dataset("fashion-mnist", data_dir=str(tmp_path / "absent"))
    with pytest.raises(SpikeportError, match="--data-dir"):
        load_dataset("mnist")
    with pytest.raises(SpikeportError, match="missing IDX file train-images-idx3-ubyte"):
        load_dataset("mnist", data_dir=str(tmp_path))
    with pytest.raises(SpikeportError, match="no N-MNIST files"):
        load_dataset("nmnist", data_dir=str(tmp_path))


# ---------------------------------------------------------------- IDX files
TRAIN_IMAGES = np.array([[[0, 1, 2], [253, 254, 255]],
                         [[128, 0, 0], [0, 0, 64]],
                         [[9, 8, 7], [6, 5, 4]]], dtype=np.uint8)  # 3 images of 2 x 3 pixels
TRAIN_LABELS = [3, 0, 9]
TEST_IMAGES = np.array([[[255, 255, 255], [0, 0, 0]], [[1, 2, 3], [4, 5, 6]]], dtype=np.uint8)
TEST_LABELS = [9, 1]


def idx_images(images: np.ndarray, magic: int = 0x803) -> bytes:
    return struct.pack(">IIII", magic, *images.shape) + images.tobytes()


def idx_labels(labels, magic: int = 0x801) -> bytes:
    return struct.pack(">II", magic, len(labels)) + bytes(labels)


def write_idx(folder: Path, gz: bool, **override: bytes) -> dict[str, Path]:
    files = {
        "train-images-idx3-ubyte": idx_images(TRAIN_IMAGES),
        "train-labels-idx1-ubyte": idx_labels(TRAIN_LABELS),
        "t10k-images-idx3-ubyte": idx_images(TEST_IMAGES),
        "t10k-labels-idx1-ubyte": idx_labels(TEST_LABELS),
    }
    files.update({k.replace("_", "-"): v for k, v in override.items()})
    paths = {}
    for name, data in files.items():
        path = folder / (name + ".gz" if gz else name)
        path.write_bytes(gzip.compress(data) if gz else data)
        paths[name] = path
    return paths


@pytest.mark.parametrize("gz", [False, True])
def test_idx_exact_pixels(tmp_path, gz):
    write_idx(tmp_path, gz)
    ds = load_dataset("mnist", data_dir=str(tmp_path))
    assert ds.x_train.shape == (3, 1, 2, 3) and ds.x_test.shape == (2, 1, 2, 3)
    assert ds.input_shape == (1, 2, 3)
    assert ds.x_train[0, 0, 1, 2] == 1.0 and ds.x_train[1, 0, 0, 0] == np.float32(128) / np.float32(255)
    np.testing.assert_array_equal(ds.x_train[:, 0], TRAIN_IMAGES.astype(np.float32) / np.float32(255))
    np.testing.assert_array_equal(ds.x_test[:, 0], TEST_IMAGES.astype(np.float32) / np.float32(255))
    np.testing.assert_array_equal(ds.y_train, TRAIN_LABELS)
    np.testing.assert_array_equal(ds.y_test, TEST_LABELS)
    assert ds.y_train.dtype == np.int64 and ds.x_train.dtype == np.float32


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("case, file, message", [
    ("bad_magic", "train-labels-idx1-ubyte", "bad IDX magic number 0x00000803"),
    ("truncated", "train-images-idx3-ubyte", "does not match the IDX header"),
    ("extra", "t10k-images-idx3-ubyte", "does not match the IDX header"),
    ("short_header", "t10k-labels-idx1-ubyte", "truncated IDX header"),
    ("label_range", "train-labels-idx1-ubyte", "label 10 at index 1 is outside 0..9"),
    ("count", "t10k-labels-idx1-ubyte", "2 images but 3 labels"),
])
def test_idx_corruption_is_a_clear_error(tmp_path, gz, case, file, message):
    data = {
        "bad_magic": idx_labels(TRAIN_LABELS, magic=0x803),
        "truncated": idx_images(TRAIN_IMAGES)[:-1],
        "extra": idx_images(TEST_IMAGES) + b"\0",
        "short_header": b"\0\0\x08\x01\0",
        "label_range": idx_labels([3, 10, 9]),
        "count": idx_labels([9, 1, 2]),
    }[case]
    paths = write_idx(tmp_path, gz, **{file.replace("-", "_"): data})
    with pytest.raises(SpikeportError, match=message) as err:
        load_dataset("mnist", data_dir=str(tmp_path))
    named = str(paths[file]) if case != "count" else str(tmp_path)
    assert named in str(err.value) and "\n" not in str(err.value)


def test_corrupt_gzip_names_the_file(tmp_path):
    paths = write_idx(tmp_path, True)
    bad = paths["train-images-idx3-ubyte"]
    bad.write_bytes(bad.read_bytes()[:20])
    with pytest.raises(SpikeportError, match="cannot read") as err:
        load_dataset("mnist", data_dir=str(tmp_path))
    assert str(bad) in str(err.value)


# ---------------------------------------------------------------- N-MNIST
def nmnist_bytes(events) -> bytes:
    """Hand encoding: x, y, then polarity in the top bit above a 23-bit microsecond timestamp."""
    out = b""
    for x, y, p, t in events:
        word = (x << 32) | (y << 24) | (p << 23) | t
        out += word.to_bytes(5, "big")
    return out


TRAIN_EVENTS = [(0, 0, 1, 100), (5, 6, 0, 150), (5, 6, 0, 160), (33, 33, 1, 399), (2, 1, 1, 100),
                (7, 8, 1, 200), (7, 8, 1, 300)]
TEST_EVENTS = [(1, 2, 0, 5_000_000), (3, 4, 1, 5_000_003), (3, 4, 1, 5_000_001), (3, 4, 1, 5_000_002)]


def test_nmnist_event_decoding_literal_bytes(tmp_path):
    path = tmp_path / "one.bin"
    path.write_bytes(b"\x05\x06\x81\x02\x03" + b"\x21\x00\x7f\xff\xff")
    x, y, p, t = read_nmnist_events(path)
    assert x.tolist() == [5, 33] and y.tolist() == [6, 0] and p.tolist() == [1, 0]
    assert t.tolist() == [0x010203, 0x7FFFFF]


def test_nmnist_binning_exact_counts(tmp_path):
    (tmp_path / "Train" / "3").mkdir(parents=True)
    (tmp_path / "Test" / "7").mkdir(parents=True)
    (tmp_path / "Train" / "3" / "00001.bin").write_bytes(nmnist_bytes(TRAIN_EVENTS))
    (tmp_path / "Test" / "7" / "00002.bin").write_bytes(nmnist_bytes(TEST_EVENTS))
    ds = load_dataset("nmnist", data_dir=str(tmp_path), n_bins=3)
    assert ds.temporal and ds.input_shape == (2, 34, 34)
    assert ds.x_train.shape == (1, 3, 2, 34, 34) and ds.x_train.dtype == np.uint8
    assert ds.y_train.tolist() == [3] and ds.y_test.tolist() == [7]
    # train: t0 = 100 us, span = 300 us -> bin = (t - 100) * 3 // 300; index [bin, p, y, x]
    want = np.zeros((3, 2, 34, 34), dtype=np.uint8)
    want[0, 1, 0, 0] = 1   # t=100
    want[0, 0, 6, 5] = 2   # t=150, 160
    want[2, 1, 33, 33] = 1  # t=399 -> 299*3//300 = 2
    want[0, 1, 1, 2] = 1   # t=100
    want[1, 1, 8, 7] = 1   # t=200 -> 1
    want[2, 1, 8, 7] = 1   # t=300 -> 2
    np.testing.assert_array_equal(ds.x_train[0], want)
    # test: t0 = 5e6, span = 4 us -> offsets 0, 3, 1, 2 go to bins 0, 2, 0, 1
    want = np.zeros((3, 2, 34, 34), dtype=np.uint8)
    want[0, 0, 2, 1] = 1
    want[2, 1, 4, 3] = 1
    want[0, 1, 4, 3] = 1
    want[1, 1, 4, 3] = 1
    np.testing.assert_array_equal(ds.x_test[0], want)
    enc = encode(ds.x_train, 3, "events")
    assert enc.shape == (3, 1, 2, 34, 34)
    np.testing.assert_array_equal(enc[:, 0], ds.x_train[0])
    with pytest.raises(SpikeportError, match="n_bins=5"):
        encode(ds.x_train, 5, "events")


@pytest.mark.parametrize("data, message", [
    (b"\x01\x02\x03\x04", "not a multiple of 5"),
    (nmnist_bytes([(1, 1, 0, 5), (34, 2, 1, 6)]), "event 1 has x=34"),
    (nmnist_bytes([(1, 40, 0, 5)]), "event 0 has y=40"),
])
def test_nmnist_corruption(tmp_path, data, message):
    for split in ("Train", "Test"):
        (tmp_path / split / "0").mkdir(parents=True)
        (tmp_path / split / "0" / "a.bin").write_bytes(nmnist_bytes(TEST_EVENTS))
    bad = tmp_path / "Test" / "0" / "a.bin"
    bad.write_bytes(data)
    with pytest.raises(SpikeportError, match=message) as err:
        load_dataset("nmnist", data_dir=str(tmp_path), n_bins=2)
    assert str(bad) in str(err.value)


# ---------------------------------------------------------------- encoders
def test_quantize_and_direct_exact():
    x = np.array([[0.0, 1.0, 0.5, 1 / 255], [0.002, -0.1, 1.2, 0.25]], dtype=np.float32)
    want = np.array([[0, 255, 128, 1], [1, 0, 255, 64]])  # 127.5 -> 128 and 63.75 -> 64
    np.testing.assert_array_equal(quantize_input(x), want)
    enc = encode(x, 4, "direct")
    assert enc.shape == (4, 2, 4) and enc.dtype.kind == "i"
    for t in range(4):
        np.testing.assert_array_equal(enc[t], want)
    np.testing.assert_array_equal(float_view(enc, "direct")[0], want.astype(np.float32) / np.float32(255))
    assert float_view(enc, "direct").dtype == np.float32 and INPUT_LEVELS == 255


def test_rate_statistics_and_determinism():
    probs = np.array([0.0, 0.1, 0.5, 0.9, 1.0])
    x = np.repeat(probs[:, None], 20000, axis=1).astype(np.float32)  # [5, 20000]
    enc = encode(x, 50, "rate", seed=3)
    assert enc.shape == (50, 5, 20000) and enc.dtype == np.uint8 and set(np.unique(enc)) <= {0, 1}
    rates = enc.mean(axis=(0, 2))
    np.testing.assert_allclose(rates, probs, atol=0.003)  # 1e6 draws per row: std <= 5e-4
    assert rates[0] == 0.0 and rates[-1] == 1.0
    np.testing.assert_array_equal(encode(x, 50, "rate", seed=3), enc)
    assert not np.array_equal(encode(x, 50, "rate", seed=4), enc)
    np.testing.assert_array_equal(float_view(enc, "rate"), enc.astype(np.float32))


def test_latency_exact_times():
    x = np.array([[0.0, 1.0, 0.5, 0.25, 0.01]])
    enc = encode(x, 5, "latency")
    want = np.zeros((5, 1, 5), dtype=np.uint8)
    want[0, 0, 1] = 1  # x=1    -> step 0
    want[2, 0, 2] = 1  # x=0.5  -> round(0.5 * 4) = 2
    want[3, 0, 3] = 1  # x=0.25 -> round(0.75 * 4) = 3
    want[4, 0, 4] = 1  # x=0.01 -> round(3.96) = 4; x=0 never fires
    np.testing.assert_array_equal(enc, want)
    np.testing.assert_array_equal(encode(x, 1, "latency")[0], [[0, 1, 1, 1, 1]])


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(0.0, 1.0, width=32), min_size=1, max_size=16), st.integers(1, 12))
def test_encoders_properties(values, T):
    x = np.array(values, dtype=np.float32)[None]
    lat = encode(x, T, "latency")
    np.testing.assert_array_equal(lat.sum(axis=0)[0], (x[0] > 0).astype(int))
    direct = float_view(encode(x, T, "direct"), "direct")
    assert np.all(np.abs(direct - x) <= 0.5 / 255 + 1e-7)


def test_graded_and_bad_arguments():
    assert ENCODERS == ("direct", "rate", "latency", "moving")
    assert [is_graded(m) for m in ("direct", "rate", "latency", "moving", "events")] == [True, False, False, True, True]
    x = np.zeros((2, 3), dtype=np.float32)
    with pytest.raises(SpikeportError, match="unknown encoder 'poisson'"):
        encode(x, 4, "poisson")
    with pytest.raises(SpikeportError, match="unknown encoder"):
        is_graded("bogus")
    with pytest.raises(SpikeportError, match="T must be a positive integer"):
        encode(x, 0, "direct")
    with pytest.raises(SpikeportError, match="NaN"):
        encode(np.array([np.nan]), 2, "rate")
    with pytest.raises(SpikeportError, match="must be integers"):
        encode(np.zeros((1, 2, 3)), 2, "events")
    counts = np.array([[[0, 300]], [[7, 1]]], dtype=np.int32)  # [B=2, T=1, 2]
    enc = encode(counts.transpose(1, 0, 2), 2, "events")  # data [B=1, T=2, 2]
    np.testing.assert_array_equal(enc[:, 0], [[0, 255], [7, 1]])
    assert float_view(enc, "events").dtype == np.float32
