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


# -- datasets users bring: .npz, a pair of arrays, IDX ------------------------------------------

TASKS = ("classification", "regression")
NPZ_KEYS = ("x_test, y_test and optionally x_train, y_train (Keras' names) and x_val, y_val "
            "(a validation split)")


@dataclass(frozen=True)
class Dataset:
    """Inputs and targets for a network. ``task`` is ``"classification"`` (``y`` integer class
    labels, shape (n,)) or ``"regression"`` (``y`` float32, shape (n,) or (n, k)). ``x`` is
    float32 as given (no scaling), except MNIST from IDX files: [0, 1] as :func:`to_tensors`."""

    x_test: np.ndarray
    y_test: np.ndarray
    task: str
    x_train: np.ndarray | None = None
    y_train: np.ndarray | None = None
    source: str = ""
    x_val: np.ndarray | None = None  # a validation split (``eie compress --max-loss``)
    y_val: np.ndarray | None = None

    @property
    def example_shape(self) -> tuple[int, ...]:
        return tuple(self.x_test.shape[1:])

    def for_input(self, shape: tuple[int, ...]) -> Dataset:
        """The dataset with examples shaped ``shape`` (a network's input shape, no batch).

        Examples holding the same number of values are reshaped (MNIST's 28x28 images for a
        784-input network); anything else is a DataError naming both shapes.
        """
        shape = tuple(int(s) for s in shape)
        if self.example_shape == shape:
            return self
        if int(np.prod(self.example_shape)) != int(np.prod(shape)):
            raise DataError(f"{self.source or 'dataset'}: examples have shape {self.example_shape}, "
                            f"the network's input has shape {shape}")

        def fit(x: np.ndarray | None) -> np.ndarray | None:
            return None if x is None else x.reshape(len(x), *shape)

        return Dataset(fit(self.x_test), self.y_test, self.task, fit(self.x_train),
                       self.y_train, self.source, fit(self.x_val), self.y_val)

    def metrics(self, outputs: np.ndarray, y: np.ndarray | None = None) -> dict[str, float]:
        """Accuracy (classification) or RMSE and max error (regression) of ``outputs``
        against ``y`` (default: the test targets)."""
        return evaluate(self.task, outputs, self.y_test if y is None else y)


def evaluate(task: str, outputs: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """``{"accuracy"}`` of argmax(outputs) for classification; ``{"rmse", "max_error"}``."""
    outputs, y = np.asarray(outputs), np.asarray(y)
    if len(outputs) != len(y):
        raise DataError(f"{len(outputs)} outputs for {len(y)} targets")
    if task == "classification":
        pred = outputs.argmax(axis=-1) if outputs.ndim > 1 else outputs
        return {"accuracy": float(np.mean(pred == y)) if len(y) else float("nan")}
    if task == "regression":
        out = outputs.reshape(len(outputs), -1).astype(np.float64)
        tgt = y.reshape(len(y), -1).astype(np.float64)
        if out.shape != tgt.shape:
            raise DataError(f"outputs have shape {outputs.shape}, targets {y.shape}")
        err = out - tgt
        return {"rmse": float(np.sqrt(np.mean(err**2))), "max_error": float(np.abs(err).max())}
    raise DataError(f"unknown task {task!r} (choose from {', '.join(TASKS)})")


def load_dataset(path: str | Path, y_path: str | Path | None = None, task: str | None = None
                 ) -> Dataset:
    """A :class:`Dataset` from what users have, recognised by content, not by name:

    - a directory: the four MNIST IDX files (as :func:`load_mnist`);
    - an ``.npz`` archive with ``x_test``, ``y_test`` (and optionally ``x_train``, ``y_train``,
      and ``x_val``, ``y_val``, a validation split);
    - inputs and targets as two files (``path``, ``y_path``), each ``.npy`` or IDX: a test set.

    ``task`` defaults to classification for integer targets and regression for real ones.
    """
    path = Path(path)
    if path.is_dir():
        if y_path is not None:
            raise DataError(f"{path} is a directory (MNIST IDX files): give no separate targets file")
        train, test = load_mnist(path)
        (xtr, ytr), (xte, yte) = ((s.inputs(), s.labels) for s in (train, test))
        return _dataset(xte, yte, task or "classification", xtr, ytr, str(path))
    raw = _read_bytes(path)
    if raw[:4] == b"PK\x03\x04":
        if y_path is not None:
            raise DataError(f"{path} is an .npz archive: give no separate targets file")
        arrays = _load_npz(path)
        missing = [k for k in ("x_test", "y_test") if k not in arrays]
        for part in ("train", "val"):
            if (f"x_{part}" in arrays) != (f"y_{part}" in arrays):
                missing.append(f"y_{part}" if f"x_{part}" in arrays else f"x_{part}")
        if missing:
            raise DataError(f"{path}: missing key(s) {', '.join(missing)} (found: "
                            f"{', '.join(sorted(arrays)) or 'none'}; expected {NPZ_KEYS})")
        return _dataset(arrays["x_test"], arrays["y_test"], task, arrays.get("x_train"),
                        arrays.get("y_train"), str(path), arrays.get("x_val"),
                        arrays.get("y_val"))
    if y_path is None:
        raise DataError(f"{path}: one array file; give the targets as a second file "
                        f"(or use an .npz with {NPZ_KEYS})")
    x = _read_array(path, raw)
    y = _read_array(Path(y_path), _read_bytes(Path(y_path)))
    return _dataset(x, y, task, None, None, f"{path} + {y_path}")


def load_inputs(path: str | Path, task: str | None = None) -> tuple[np.ndarray, Dataset | None]:
    """Inputs to run a network on: a dataset (:func:`load_dataset`: the test inputs, with their
    targets), an ``.npz`` with ``x_test`` alone, or one ``.npy`` / IDX array of inputs.
    Returns the float32 inputs and the dataset when there are targets."""
    path = Path(path)
    if not path.is_dir():
        raw = _read_bytes(path)
        if raw[:4] != b"PK\x03\x04":
            x = _read_array(path, raw)
            _numeric(x, str(path))
            if x.ndim < 2:
                raise DataError(f"{path}: inputs have shape {x.shape}; expected (examples, ...)")
            return x.astype(np.float32), None
        arrays = _load_npz(path)
        if "x_test" in arrays and "y_test" not in arrays:
            _numeric(arrays["x_test"], f"{path}: x_test")
            return np.asarray(arrays["x_test"], np.float32), None
    ds = load_dataset(path, task=task)
    return ds.x_test, ds


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror or e}") from None


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    import zipfile

    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        raise DataError(f"{path}: corrupt .npz archive ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None


def _read_array(path: Path, raw: bytes) -> np.ndarray:
    """An ``.npy`` array or an IDX file (raw or gzipped), by content."""
    import io

    if raw[:6] == b"\x93NUMPY":
        try:
            return np.load(io.BytesIO(raw), allow_pickle=False)
        except (OSError, ValueError, EOFError) as e:
            raise DataError(f"{path}: corrupt .npy file ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    if raw[:2] == b"\x1f\x8b" or raw[:2] == b"\x00\x00":
        return read_idx(path)
    raise DataError(f"{path}: not an .npy or IDX array file (first bytes 0x{raw[:4].hex()})")


def _numeric(a: np.ndarray, name: str) -> None:
    if a.dtype.kind not in "iuf":
        raise DataError(f"{name} has dtype {a.dtype}; expected numbers (float or integer)")


def _dataset(x_test, y_test, task, x_train, y_train, source: str, x_val=None,
             y_val=None) -> Dataset:
    if task is not None and task not in TASKS:
        raise DataError(f"unknown task {task!r} (choose from {', '.join(TASKS)})")
    pairs = {"test": (np.asarray(x_test), np.asarray(y_test))}
    if x_train is not None:
        pairs["train"] = (np.asarray(x_train), np.asarray(y_train))
    if x_val is not None:
        pairs["val"] = (np.asarray(x_val), np.asarray(y_val))
    for part, (x, y) in pairs.items():
        _numeric(x, f"{source}: x_{part}")
        _numeric(y, f"{source}: y_{part}")
        if x.ndim < 2:
            raise DataError(f"{source}: x_{part} has shape {x.shape}; expected (examples, ...)")
        if len(x) != len(y):
            raise DataError(f"{source}: x_{part} has {len(x)} examples, y_{part} {len(y)}")
    task = task or ("classification" if pairs["test"][1].dtype.kind in "iu" else "regression")
    out = {}
    for part, (x, y) in pairs.items():
        if task == "classification":
            if y.ndim != 1:
                raise DataError(f"{source}: y_{part} has shape {y.shape}; class labels are (n,)")
            if y.dtype.kind == "f" and not np.array_equal(y, np.round(y)):
                raise DataError(f"{source}: y_{part} has dtype {y.dtype} with fractional values; "
                                "class labels are integers (or use task='regression')")
            if y.size and y.min() < 0:
                raise DataError(f"{source}: y_{part} holds negative class label {int(y.min())}")
            y = y.astype(np.int64)
        else:
            y = y.astype(np.float32)
        x = x.astype(np.float32)
        if not np.isfinite(x).all():
            raise DataError(f"{source}: x_{part} holds NaN or Inf values")
        out[part] = (x, y)
    xtr, ytr = out.get("train", (None, None))
    xva, yva = out.get("val", (None, None))
    return Dataset(out["test"][0], out["test"][1], task, xtr, ytr, source, xva, yva)
