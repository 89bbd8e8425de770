import gzip
import os
import struct

import numpy as np
import pytest

from sw.compression.data import idx_bytes, load_mnist, load_split, parse_idx, read_idx, write_idx
from sw.errors import DataError


def write_mnist(d, n_train=6, n_test=4, gz=True, skip=None):
    """A fake MNIST directory of random images (the real files' names and layout)."""
    rng = np.random.default_rng(0)
    files = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    for stem, a in files.items():
        if stem != skip:
            write_idx(d / (stem + (".gz" if gz else "")), a)
    return files


@pytest.mark.parametrize("gz", [True, False])
def test_loads_gzipped_and_raw_idx_files(tmp_path, gz):
    files = write_mnist(tmp_path, gz=gz)
    train, test = load_mnist(tmp_path)
    assert np.array_equal(train.images, files["train-images-idx3-ubyte"])
    assert np.array_equal(train.labels, files["train-labels-idx1-ubyte"])
    assert np.array_equal(test.images, files["t10k-images-idx3-ubyte"])
    assert len(test) == 4 and len(train.take(2)) == 2


def test_big_endian_multibyte_idx_payload():
    raw = bytes([0, 0, 0x0C, 2]) + struct.pack(">2I", 2, 3) + np.arange(6, dtype=">i4").tobytes()
    out = parse_idx(raw)
    assert out.tolist() == [[0, 1, 2], [3, 4, 5]] and out.dtype.isnative
    assert idx_bytes(out) == raw


def test_data_directory_from_environment_variable(tmp_path, monkeypatch):
    write_mnist(tmp_path)
    monkeypatch.setenv("EIE_MNIST_DIR", str(tmp_path))
    assert len(load_split("train")) == 6


def test_no_directory_says_how_to_provide_one(monkeypatch):
    monkeypatch.delenv("EIE_MNIST_DIR", raising=False)
    with pytest.raises(DataError, match="--data DIR or set EIE_MNIST_DIR"):
        load_mnist(None)


def test_missing_file_is_named(tmp_path):
    write_mnist(tmp_path, skip="t10k-labels-idx1-ubyte")
    with pytest.raises(DataError, match="missing t10k-labels-idx1-ubyte"):
        load_mnist(tmp_path)


def test_wrong_magic_number(tmp_path):
    p = tmp_path / "x-idx1-ubyte"
    p.write_bytes(b"\x12\x34\x08\x01" + struct.pack(">I", 1) + b"\x00")
    with pytest.raises(DataError, match="bad magic number 0x12340801"):
        read_idx(p)


def test_truncated_payload(tmp_path):
    raw = idx_bytes(np.zeros((3, 28, 28), np.uint8))
    p = tmp_path / "t.gz"
    p.write_bytes(gzip.compress(raw[:-10]))
    with pytest.raises(DataError, match="truncated.*3x28x28"):
        read_idx(p)


def test_corrupt_header_too_short_for_its_dimensions():
    with pytest.raises(DataError, match="truncated IDX header"):
        parse_idx(bytes([0, 0, 8, 3, 0, 0]))


def test_corrupt_gzip_stream(tmp_path):
    data = gzip.compress(idx_bytes(np.zeros((2, 28, 28), np.uint8)))
    p = tmp_path / "c.gz"
    p.write_bytes(data[:20])  # gzip magic, then a cut-off stream
    with pytest.raises(DataError, match="corrupt gzip"):
        read_idx(p)


def test_image_and_label_counts_must_agree(tmp_path):
    write_mnist(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(
        gzip.compress(idx_bytes(np.zeros(5, np.uint8))))
    with pytest.raises(DataError, match="6 train images but 5 labels"):
        load_mnist(tmp_path)


@pytest.mark.mnist
def test_real_mnist_shapes_and_class_counts():
    d = os.environ.get("EIE_MNIST_DIR")
    if not d:
        pytest.skip("EIE_MNIST_DIR is not set (point it at the MNIST IDX files)")
    train, test = load_mnist(d)
    assert train.images.shape == (60000, 28, 28) and test.images.shape == (10000, 28, 28)
    assert np.bincount(test.labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
