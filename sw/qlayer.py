"""The quantized layer: the record the compression pipeline produces and everything after it
(model file, packer, golden model) consumes.

A layer is a codebook plus an index per weight. Code 0 always means the value 0 (a pruned
weight); codes 1..2**bits-1 index the layer's k-means centroids. The dense weight is
``codebook[indices]``. ``relu`` says whether a ReLU follows the layer (EIE applies it in the
write-back, docs/format.md "Arithmetic"); the model file stores it in the layer's metadata
(``meta["relu"]``), which is where older files already had it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sw.errors import DataError


@dataclass
class QuantizedLayer:
    name: str
    kind: str  # "linear" (weight: out x in) or "conv" (weight: out x in x kh x kw)
    codebook: np.ndarray  # float32, length 2**bits, codebook[0] == 0
    indices: np.ndarray  # integer codes, the weight's shape, 0 = pruned
    bias: np.ndarray | None  # float32, length out, or None
    bits: int
    meta: dict = field(default_factory=dict)  # e.g. stride/padding/pool of a conv
    relu: bool = False  # a ReLU follows this layer

    def __post_init__(self) -> None:
        self.meta = dict(self.meta or {})
        if "relu" in self.meta:  # the model file's spelling of the flag
            stored = bool(self.meta.pop("relu"))
            if self.relu and not stored:
                raise DataError(f"layer {self.name}: relu=True contradicts meta relu=False")
            self.relu = stored
        self.relu = bool(self.relu)
        self.codebook = np.asarray(self.codebook, dtype=np.float32)
        self.indices = np.asarray(self.indices)
        if self.kind not in ("linear", "conv"):
            raise DataError(f"layer {self.name}: unknown kind {self.kind!r}")
        if not 1 <= self.bits <= 16:
            raise DataError(f"layer {self.name}: bits must be in 1..16, got {self.bits}")
        if self.codebook.shape != (1 << self.bits,):
            raise DataError(f"layer {self.name}: codebook must have {1 << self.bits} entries, has {self.codebook.shape}")
        if self.codebook[0] != 0:
            raise DataError(f"layer {self.name}: codebook[0] must be 0 (the code of a pruned weight)")
        if not np.all(np.isfinite(self.codebook)):
            raise DataError(f"layer {self.name}: codebook holds NaN or Inf")
        if self.indices.size and (self.indices.min() < 0 or self.indices.max() >= (1 << self.bits)):
            raise DataError(f"layer {self.name}: indices out of range 0..{(1 << self.bits) - 1}")
        expected_ndim = 2 if self.kind == "linear" else 4
        if self.indices.ndim != expected_ndim:
            raise DataError(f"layer {self.name}: a {self.kind} weight has {expected_ndim} dimensions, got {self.indices.ndim}")
        if self.bias is not None:
            self.bias = np.asarray(self.bias, dtype=np.float32)
            if self.bias.shape != (self.indices.shape[0],):
                raise DataError(f"layer {self.name}: bias has shape {self.bias.shape}, expected ({self.indices.shape[0]},)")

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.indices.shape)

    @property
    def n_out(self) -> int:
        return self.indices.shape[0]

    @property
    def n_in(self) -> int:
        return int(np.prod(self.indices.shape[1:]))

    @property
    def nnz(self) -> int:
        return int(np.count_nonzero(self.indices))

    def dense(self) -> np.ndarray:
        """The float32 weight this layer stands for."""
        return self.codebook[self.indices]

    def matrix_indices(self) -> np.ndarray:
        """Indices as a 2-D (out x in) matrix (conv kernels flattened in C order)."""
        return self.indices.reshape(self.n_out, self.n_in)
