"""MNIST in IDX format (LeCun's original files, gzipped or raw), read with NumPy alone.

The directory comes from ``--data`` or the ``EIE_MNIST_DIR`` environment variable; nothing
else is searched. Every problem (no directory, a missing file, a bad magic number, a header
that disagrees with the payload, a truncated or corrupt gzip stream) raises
:class:`sw.errors.DataError` with one line naming the file and saying how to fix it.
"""

from __future__ import annotations

import gzip
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sw.errors import DataError

ENV_VAR = "EIE_MNIST_DIR"
HOW_TO = f"pass --data DIR or set {ENV_VAR} to a directory holding the four MNIST IDX files"

# IDX type codes (http://yann.lecun.com/exdb/mnist/): third byte of the magic number.
_IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

# split -> (images stem, labels stem); both the usual '-idx3-' and the '.idx3-' spelling.
_STEMS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "train": (("train-images-idx3-ubyte", "train-images.idx3-ubyte"),
              ("train-labels-idx1-ubyte", "train-labels.idx1-ubyte")),
    "test": (("t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"),
             ("t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte")),
}


@dataclass(frozen=True)
class Split:
    """One MNIST split: ``images`` uint8 (n, 28, 28), ``labels`` uint8 (n,)."""

    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def inputs(self) -> np.ndarray:
        """The images as the networks' inputs: float32 (n, 28, 28) in [0, 1] (pixel / 255;
        Caffe's LeNet uses the same scale), well inside EIE's 16-bit fixed-point activations.
        The one definition of the scaling: training and the hardware runs both take it."""
        return self.images.astype(np.float32) / 255.0

    def take(self, n: int | None) -> Split:
        """The first ``n`` examples (all of them when ``n`` is None)."""
        if n is None or n >= len(self):
            return self
        return Split(self.images[:n], self.labels[:n])


def parse_idx(raw: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decode an uncompressed IDX byte string (magic 0x0000TTNN, NN big-endian dims, data)."""
    if len(raw) < 4:
        raise DataError(f"{name}: truncated IDX file ({len(raw)} bytes, no header); {HOW_TO}")
    if raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES or not 1 <= raw[3] <= 4:
        raise DataError(f"{name}: not an IDX file (bad magic number 0x{raw[:4].hex()}); {HOW_TO}")
    dtype, ndim = _IDX_DTYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{name}: truncated IDX header ({len(raw)} bytes); {HOW_TO}")
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", ndim, 4))
    want = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    got = len(raw) - header
    if got != want:
        what = "truncated" if got < want else "has trailing bytes"
        raise DataError(f"{name}: {what}: header says {'x'.join(map(str, dims))} "
                        f"({want} data bytes), file holds {got}; {HOW_TO}")
    return np.frombuffer(raw, dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


def idx_bytes(a: np.ndarray) -> bytes:
    """Encode an array as IDX (the inverse of :func:`parse_idx`; big-endian payload)."""
    a = np.asarray(a)
    code = next((c for c, dt in _IDX_DTYPES.items() if dt.kind == a.dtype.kind
                 and dt.itemsize == a.dtype.itemsize), None)
    if code is None or not 1 <= a.ndim <= 4:
        raise ValueError(f"IDX cannot hold a {a.ndim}-D {a.dtype} array")
    header = bytes([0, 0, code, a.ndim]) + np.asarray(a.shape, ">u4").tobytes()
    return header + a.astype(_IDX_DTYPES[code]).tobytes()


def write_idx(path: str | Path, a: np.ndarray) -> None:
    """Write an IDX file, gzipped when the name ends in ``.gz`` (atomically)."""
    from sw.fsutil import atomic_write_bytes

    raw = idx_bytes(a)
    atomic_write_bytes(path, gzip.compress(raw) if str(path).endswith(".gz") else raw)


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file; gzip is recognised by its magic bytes, not by the file name."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror or e}; {HOW_TO}") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise DataError(f"{path}: corrupt gzip data ({e}); {HOW_TO}") from None
    return parse_idx(raw, str(path))


def mnist_dir(data: str | Path | None = None) -> Path:
    """The MNIST directory: ``data`` if given, else ``$EIE_MNIST_DIR``."""
    src = data if data is not None else os.environ.get(ENV_VAR) or None
    if src is None:
        raise DataError(f"no MNIST data: {HOW_TO}")
    d = Path(src)
    if not d.is_dir():
        raise DataError(f"MNIST directory {d} does not exist; {HOW_TO}")
    return d


def _find(d: Path, stems: tuple[str, ...]) -> Path:
    for stem in stems:
        for suffix in (".gz", ""):
            p = d / (stem + suffix)
            if p.is_file():
                return p
    raise DataError(f"{d}: missing {stems[0]}.gz (or {stems[0]}); {HOW_TO}")


def load_split(split: str, data: str | Path | None = None) -> Split:
    """Load ``"train"`` (60,000) or ``"test"`` (10,000) and check images and labels agree."""
    if split not in _STEMS:
        raise ValueError(f"unknown split {split!r}")
    d = mnist_dir(data)
    img_path, lbl_path = (_find(d, s) for s in _STEMS[split])
    images, labels = read_idx(img_path), read_idx(lbl_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataError(f"{img_path}: expected uint8 images (n x rows x cols), "
                        f"got {images.dtype} {images.shape}")
    if labels.ndim != 1 or labels.dtype != np.uint8:
        raise DataError(f"{lbl_path}: expected uint8 labels (n), got {labels.dtype} {labels.shape}")
    if images.shape[0] != labels.shape[0]:
        raise DataError(f"{d}: {images.shape[0]} {split} images but {labels.shape[0]} labels")
    if labels.size and labels.max() > 9:
        raise DataError(f"{lbl_path}: label {int(labels.max())} out of range 0..9")
    return Split(images, labels)


def load_mnist(data: str | Path | None = None) -> tuple[Split, Split]:
    """``(train, test)`` from ``data`` or ``$EIE_MNIST_DIR``."""
    return load_split("train", data), load_split("test", data)


def to_tensors(split: Split):
    """Images as float32 (n, 1, 28, 28) (:meth:`Split.inputs`) and labels as int64 tensors."""
    import torch

    x = torch.from_numpy(split.inputs()).unsqueeze(1)
    y = torch.from_numpy(split.labels.astype(np.int64))
    return x, y
