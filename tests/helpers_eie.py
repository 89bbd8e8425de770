"""Small builders shared by the packer, golden-model, cycle-model and image tests."""

from __future__ import annotations

import numpy as np

from sw.eie.config import EIEConfig
from sw.qlayer import QuantizedLayer


def random_layer(rng: np.random.Generator, n_out: int, n_in: int, density: float, name: str = "fc",
                 bits: int = 4, scale: float = 0.1, bias: bool = True, relu: bool = False) -> QuantizedLayer:
    """A random quantized FC layer: codes uniform in 1..2**bits-1 at ``density``."""
    k = 1 << bits
    codes = rng.integers(1, k, (n_out, n_in)) * (rng.random((n_out, n_in)) < density)
    cb = np.zeros(k, np.float32)
    cb[1:] = np.sort(rng.normal(0.0, scale, k - 1))
    b = rng.normal(0.0, scale, n_out).astype(np.float32) if bias else None
    return QuantizedLayer(name, "linear", cb, codes.astype(np.uint8), b, bits, relu=relu)


def chain(rng: np.random.Generator, sizes: list[int], density: float, scale: float = 0.1) -> list[QuantizedLayer]:
    """Layers sizes[0] -> sizes[1] -> ... (names fc0, fc1, ...), a ReLU after each but the last."""
    n = len(sizes) - 1
    return [random_layer(rng, sizes[i + 1], sizes[i], density, f"fc{i}", scale=scale, relu=i < n - 1)
            for i in range(n)]


def roomy(n_pe: int, **changes) -> EIEConfig:
    """A configuration with memories large enough for any small test layer."""
    base = dict(name="test", n_pe=n_pe, queue_depth=4, spmat_words=1 << 14, ptr_depth=1 << 14,
                act_depth=1 << 10, bias_depth=1 << 12, max_layers=8)
    return EIEConfig(**{**base, **changes})


def reference_matvec(q: QuantizedLayer, c_int: np.ndarray, a: np.ndarray) -> np.ndarray:
    """sum_j c_int[code_ij] * a_j from the dense codes (the golden model never does this)."""
    return c_int[q.matrix_indices().astype(np.int64)] @ a.astype(np.int64)
