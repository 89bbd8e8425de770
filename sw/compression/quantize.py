"""Trained quantization (weight sharing), Deep Compression Section 3.

Per layer, the surviving (non-zero) weights are clustered by 1-D k-means into ``2**bits - 1``
centroids; code 0 is reserved for the value 0 (a pruned weight), so a 4-bit layer has 15
centroids plus zero, as in EIE. Initialization is linear between min and max (the paper's
choice: it keeps the rare large weights), density-based (equally spaced on the CDF) or random
(Forgy). The centroids are then fine-tuned: with assignments fixed, the gradient of a centroid
is the sum of the gradients of the weights that share it (eq. 3: dL/dC_k = sum over I_ij = k
of dL/dW_ij), see :class:`SharedWeights`.

The k-means is exact Lloyd iteration done in 1-D on sorted data: each cluster is a contiguous
run of the sorted weights, its boundaries are the midpoints between neighbouring centroids
(found by ``searchsorted``) and its sum comes from a prefix sum. After one O(n log n) sort an
iteration costs O(k log n), so it runs to an exact fixed point (assignments unchanged) even
for AlexNet's fc6.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from sw.errors import DataError

INITS = ("linear", "density", "random")
MAX_BITS = 8  # the paper's widest layers (conv) use 8 bits; EIE uses 4


@dataclass
class KMeans1D:
    """Result of :func:`kmeans_1d`: sorted centroids, their sorted-run boundaries, quality."""

    centroids: np.ndarray  # float64, ascending, length k
    bounds: np.ndarray  # int64, length k + 1: cluster j is sorted_x[bounds[j]:bounds[j+1]]
    inertia: float  # sum of squared distances to the nearest centroid
    n_iter: int
    converged: bool  # reached a fixed point (assignments unchanged)


def check_bits(bits: int, name: str = "") -> int:
    where = f"layer {name}: " if name else ""
    if isinstance(bits, bool) or not isinstance(bits, int | np.integer) or not 1 <= bits <= MAX_BITS:
        raise DataError(f"{where}bits must be an integer in 1..{MAX_BITS} "
                        f"(2**bits - 1 centroids + the zero code), got {bits!r}")
    return int(bits)


def init_centroids(sorted_x: np.ndarray, k: int, init: str = "linear",
                   rng: np.random.Generator | None = None) -> np.ndarray:
    """k initial centroids from ascending data, by the paper's three methods (Section 3.2)."""
    n = sorted_x.size
    if init == "linear":  # evenly spaced between min and max
        c = np.linspace(sorted_x[0], sorted_x[-1], k)
    elif init == "density":  # evenly spaced on the CDF's y axis
        c = sorted_x[np.minimum(((np.arange(k) + 0.5) / k * n).astype(np.int64), n - 1)]
    elif init == "random":  # Forgy: k distinct data points
        rng = rng if rng is not None else np.random.default_rng(0)
        c = sorted_x[np.sort(rng.choice(n, size=min(k, n), replace=False))]
    else:
        raise DataError(f"unknown k-means initialization {init!r} (choose from {', '.join(INITS)})")
    return np.sort(np.asarray(c, dtype=np.float64))


def kmeans_1d(x: np.ndarray, k: int | None = None, init: str | np.ndarray = "linear",
              max_iter: int = 10_000, seed: int = 0, presorted: bool = False) -> KMeans1D:
    """Lloyd's k-means on 1-D data, run to a fixed point.

    ``init`` is a method name (``k`` centroids) or an array of initial centroids. With
    ``presorted=True`` the caller promises ``x`` is ascending (saves the sort).
    """
    xs = np.asarray(x, dtype=np.float64).ravel()
    if not presorted:
        xs = np.sort(xs)
    n = xs.size
    if n == 0:
        raise DataError("k-means on an empty set of weights")
    if isinstance(init, str):
        if k is None or k < 1:
            raise ValueError("k must be >= 1")
        c = init_centroids(xs, k, init, np.random.default_rng(seed))
    else:
        c = np.sort(np.asarray(init, dtype=np.float64).ravel())
    k = c.size
    prefix = np.concatenate(([0.0], np.cumsum(xs)))
    bounds = None
    converged = False
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007 (it is reported)
        c = np.sort(c)
        b = np.empty(k + 1, np.int64)
        b[0], b[-1] = 0, n
        b[1:-1] = np.searchsorted(xs, (c[:-1] + c[1:]) / 2, side="right")  # x <= mid -> lower
        if bounds is not None and np.array_equal(b, bounds):
            converged = True  # same assignment as last time: centroids are already its means
            break
        bounds = b
        counts = np.diff(b)
        sums = prefix[b[1:]] - prefix[b[:-1]]
        new = np.where(counts > 0, sums / np.maximum(counts, 1), c)
        if np.any(counts == 0):
            _relocate_empty(xs, b, c, new, counts, sums)
        c = new
    c = np.sort(c)
    labels = nearest(xs, c)
    inertia = float(np.sum((xs - c[labels]) ** 2))
    return KMeans1D(c, bounds, inertia, it, converged)


def _relocate_empty(xs: np.ndarray, b: np.ndarray, c: np.ndarray, new: np.ndarray,
                    counts: np.ndarray, sums: np.ndarray) -> None:
    """Move each empty cluster's centroid onto the point farthest from its centroid.

    A centroid stranded in a gap of the data (pruning leaves one around zero) would otherwise
    stay useless. As in scikit-learn, the point leaves its old cluster, whose mean is updated.
    In 1-D the farthest point of a cluster is one of its two ends (a sorted run), so this costs
    O(k) per empty cluster. Updates ``new`` in place.
    """
    lo, hi = b[:-1].copy(), b[1:].copy()  # remaining run of each cluster
    counts, sums = counts.astype(np.int64).copy(), sums.copy()
    for e in np.flatnonzero(counts == 0):
        donors = counts > 1  # a donor keeps at least one point
        if not donors.any():
            return
        left = np.where(donors, c - xs[np.minimum(lo, xs.size - 1)], -np.inf)
        right = np.where(donors, xs[np.maximum(hi - 1, 0)] - c, -np.inf)
        j_left, j_right = int(np.argmax(left)), int(np.argmax(right))
        if max(left[j_left], right[j_right]) <= 0:
            return  # every point sits on its centroid: nothing to gain
        if left[j_left] >= right[j_right]:
            j, p = j_left, lo[j_left]
            lo[j] += 1
        else:
            j, p = j_right, hi[j_right] - 1
            hi[j] -= 1
        new[e] = xs[p]
        counts[j] -= 1
        sums[j] -= xs[p]
        new[j] = sums[j] / counts[j]


def nearest(x: np.ndarray, sorted_centroids: np.ndarray) -> np.ndarray:
    """Index of the nearest centroid (ties to the lower one), O(n log k)."""
    mids = (sorted_centroids[:-1] + sorted_centroids[1:]) / 2
    return np.searchsorted(mids, x, side="left")


@dataclass
class LayerQuantization:
    """Codebook and codes of one layer, plus how the k-means went."""

    codebook: np.ndarray  # float32, 2**bits, codebook[0] == 0, codebook[1..k] ascending
    indices: np.ndarray  # uint8 codes, the weight's shape, 0 = pruned
    n_iter: int
    converged: bool
    inertia: float


def quantize_weights(weight: np.ndarray, bits: int = 4, init: str = "linear", seed: int = 0,
                     max_iter: int = 10_000, name: str = "") -> LayerQuantization:
    """Cluster a layer's non-zero weights into ``2**bits - 1`` shared values; 0 keeps code 0."""
    bits = check_bits(bits, name)
    w = np.asarray(weight)
    if not np.all(np.isfinite(w)):
        raise DataError(f"layer {name or '?'}: weights hold NaN or Inf")
    flat = w.ravel()
    nz = np.flatnonzero(flat)
    if nz.size == 0:
        raise DataError(f"layer {name or '?'}: every weight is pruned, nothing to quantize")
    x = flat[nz].astype(np.float64)
    xs = np.sort(x)
    k = (1 << bits) - 1
    distinct = np.unique(xs) if xs.size <= k else None
    if distinct is not None and distinct.size <= k:  # fewer values than centroids: exact
        km = KMeans1D(distinct, np.array([]), 0.0, 0, True)
    else:
        km = kmeans_1d(xs, k, init, max_iter=max_iter, seed=seed, presorted=True)
    codebook = np.zeros(1 << bits, np.float32)
    codebook[1:1 + km.centroids.size] = km.centroids
    indices = np.zeros(flat.shape, np.uint8)
    indices[nz] = nearest(x, km.centroids) + 1
    return LayerQuantization(codebook, indices.reshape(w.shape), km.n_iter, km.converged, km.inertia)


class SharedWeights:
    """Fine-tuning of shared weights: centroids are the trainable parameters, codes are fixed.

    Each layer's weight is ``C[I]``. After ``loss.backward()`` has filled the weights'
    gradients, :meth:`accumulate_grads` sets ``dL/dC_k = sum_{I_ij = k} dL/dW_ij`` (eq. 3) by a
    scatter-add; the optimizer updates the centroids; :meth:`write` puts ``C[I]`` back into the
    weights. Code 0 gets no gradient and stays exactly 0, so pruned weights stay pruned.
    """

    def __init__(self, layers: Mapping[str, nn.Module], quantized: Mapping[str, LayerQuantization]):
        self.layers = dict(layers)
        self.codes = {n: torch.from_numpy(quantized[n].indices.astype(np.int64)).reshape(-1)
                      for n in self.layers}
        self.centroids = {n: nn.Parameter(torch.from_numpy(quantized[n].codebook.copy()))
                          for n in self.layers}
        self.write()

    def parameters(self) -> list[nn.Parameter]:
        return list(self.centroids.values())

    def write(self) -> None:
        """Weights <- C[I] (exactly: the same float32 values the codebook holds)."""
        with torch.no_grad():
            for n, layer in self.layers.items():
                c = self.centroids[n]
                c[0] = 0.0
                # index_select: ~50x faster than c[codes] advanced indexing on CPU
                layer.weight.copy_(torch.index_select(c, 0, self.codes[n]).view_as(layer.weight))

    def accumulate_grads(self) -> None:
        """Centroid gradients from weight gradients: the sum over each cluster (eq. 3)."""
        for n, layer in self.layers.items():
            c = self.centroids[n]
            g = layer.weight.grad
            grad = torch.zeros_like(c)
            if g is not None:
                grad.index_add_(0, self.codes[n], g.reshape(-1).to(c.dtype))
            grad[0] = 0.0  # the zero code is not a centroid
            c.grad = grad

    def after_step(self, optimizer: torch.optim.Optimizer | None = None) -> None:
        self.write()

    def codebooks(self) -> dict[str, np.ndarray]:
        return {n: c.detach().numpy().astype(np.float32).copy() for n, c in self.centroids.items()}

    def indices(self) -> dict[str, np.ndarray]:
        return {n: self.codes[n].view(self.layers[n].weight.shape).numpy().astype(np.uint8)
                for n in self.layers}
