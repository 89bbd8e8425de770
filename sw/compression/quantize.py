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

Beyond the paper, :func:`quantize_weights` takes one of six quantizers (:data:`QUANTIZERS`),
every one of which gives a codebook EIE holds (at most ``2**bits`` entries, code 0 = 0):

- ``kmeans``: the paper's k-means above.
- ``hessian``: Hessian-weighted k-means (Choi, El-Khamy, Lee, "Towards the Limit of Network
  Quantization", ICLR 2017, Sec. 4): each weight's squared error counts with its diagonal
  Hessian ``h_i`` (estimated from squared gradients over training batches, :func:`hessian_diag`),
  so a centroid is the ``h``-weighted mean of its cluster; in 1-D the assignment is still the
  nearest centroid, so the sorted-run Lloyd iteration carries over with weighted prefix sums.
- ``uniform``: evenly spaced levels ``n * step`` (integers ``n != 0``; 0 is code 0, and a weight
  rounding to 0 is pruned by it), the step that minimises the squared error under the
  ``2**bits - 1`` level limit; entropy coding is the Huffman stage (Choi et al. Sec. 5.1).
- ``ecsq``: iterative entropy-constrained scalar quantization (Choi et al. Sec. 5.2, after Chou,
  Lookabaugh, Gray 1989): assignment cost ``(w - c_k)**2 / var(w) + lambda * (-log2 p_k)``,
  then centroids <- cluster means, probabilities <- cluster shares, until the assignment is
  stable; a larger ``lambda`` trades squared error for a lower code entropy (fewer bits after
  Huffman coding); clusters that empty are dropped.
- ``ternary``: 0 and +-alpha (TWN, Li and Liu 2016): of the surviving weights, those with
  ``|w| < 0.7 mean|w|`` become 0 too, the others ``sign(w) alpha`` with ``alpha`` the mean
  magnitude of the kept ones (the least-squares optimum).
- ``binary``: binary weights with pruning: every surviving weight becomes ``sign(w) alpha``,
  ``alpha = mean|w|`` (BinaryConnect / BWN's scale, on the pruned weights).

Ternary, binary and uniform codebooks are ``scale * base`` with a fixed integer ``base``; their
fine-tuning trains the one scale (:class:`SharedWeights` ``tied``), so they keep their defining
form (three values, equal magnitudes, even spacing); k-means, Hessian k-means and ECSQ
centroids are fine-tuned one by one as in the paper.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from sw.errors import DataError

INITS = ("linear", "density", "random")
QUANTIZERS = ("kmeans", "hessian", "uniform", "ecsq", "ternary", "binary")
FIXED_BITS = {"ternary": 2, "binary": 2}  # codes 0, -alpha, +alpha (one code unused)
TWN_DELTA = 0.7  # ternary threshold: 0.7 x mean |w| (Li and Liu, Ternary Weight Networks)
ECSQ_LAMBDA = 0.02  # default Lagrange multiplier on the code length (bits) per weight
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
              max_iter: int = 10_000, seed: int = 0, presorted: bool = False,
              sample_weight: np.ndarray | None = None) -> KMeans1D:
    """Lloyd's k-means on 1-D data, run to a fixed point.

    ``init`` is a method name (``k`` centroids) or an array of initial centroids. With
    ``presorted=True`` the caller promises ``x`` is ascending (saves the sort).
    ``sample_weight`` (positive, one per point; e.g. a diagonal Hessian) weights each point's
    squared error: centroids are weighted means and ``inertia`` the weighted sum.
    """
    xs = np.asarray(x, dtype=np.float64).ravel()
    hs = None
    if sample_weight is not None:
        hs = np.asarray(sample_weight, dtype=np.float64).ravel()
        if hs.shape != xs.shape or not np.all(np.isfinite(hs)) or np.any(hs <= 0):
            raise DataError("k-means sample weights must be one finite positive value per point")
    if not presorted:
        order = np.argsort(xs, kind="stable")
        xs = xs[order]
        hs = None if hs is None else hs[order]
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
    prefix = np.concatenate(([0.0], np.cumsum(xs if hs is None else hs * xs)))
    wprefix = None if hs is None else np.concatenate(([0.0], np.cumsum(hs)))
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
        mass = counts if wprefix is None else wprefix[b[1:]] - wprefix[b[:-1]]
        new = np.where(counts > 0, sums / np.where(counts > 0, mass, 1), c)
        if np.any(counts == 0):
            _relocate_empty(xs, b, c, new, counts, sums, mass, hs)
        c = new
    c = np.sort(c)
    labels = nearest(xs, c)
    err = (xs - c[labels]) ** 2
    inertia = float(np.sum(err if hs is None else hs * err))
    return KMeans1D(c, bounds, inertia, it, converged)


def _relocate_empty(xs: np.ndarray, b: np.ndarray, c: np.ndarray, new: np.ndarray,
                    counts: np.ndarray, sums: np.ndarray, mass: np.ndarray,
                    hs: np.ndarray | None = None) -> None:
    """Move each empty cluster's centroid onto the point farthest from its centroid.

    A centroid stranded in a gap of the data (pruning leaves one around zero) would otherwise
    stay useless. As in scikit-learn, the point leaves its old cluster, whose mean is updated.
    In 1-D the farthest point of a cluster is one of its two ends (a sorted run), so this costs
    O(k) per empty cluster. ``sums``/``mass`` are the clusters' (weighted) sums and total
    weights (``hs``: the points' weights, None = 1). Updates ``new`` in place.
    """
    lo, hi = b[:-1].copy(), b[1:].copy()  # remaining run of each cluster
    counts, sums = counts.astype(np.int64).copy(), sums.copy()
    mass = np.asarray(mass, dtype=np.float64).copy()
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
        h = 1.0 if hs is None else hs[p]
        new[e] = xs[p]
        counts[j] -= 1
        sums[j] -= h * xs[p]
        mass[j] -= h
        new[j] = sums[j] / mass[j]


def nearest(x: np.ndarray, sorted_centroids: np.ndarray) -> np.ndarray:
    """Index of the nearest centroid (ties to the lower one), O(n log k)."""
    mids = (sorted_centroids[:-1] + sorted_centroids[1:]) / 2
    return np.searchsorted(mids, x, side="left")


@dataclass
class LayerQuantization:
    """Codebook and codes of one layer, plus how the quantizer went."""

    codebook: np.ndarray  # float32, 2**bits, codebook[0] == 0, used codes ascending
    indices: np.ndarray  # uint8 codes, the weight's shape, 0 = pruned
    n_iter: int
    converged: bool
    inertia: float  # (Hessian-weighted for "hessian") squared error over the non-zero weights
    quantizer: str = "kmeans"
    base: np.ndarray | None = None  # tied codebooks: codebook = scale * base (base[0] = 0)
    info: dict = field(default_factory=dict)  # quantizer-specific figures (lambda, entropy, ...)

    @property
    def bits(self) -> int:
        return int(self.codebook.size).bit_length() - 1


def check_quantizer(quantizer: str, name: str = "") -> str:
    if quantizer not in QUANTIZERS:
        where = f" (layer {name})" if name else ""
        raise DataError(f"unknown quantizer {quantizer!r}{where} (choose from {', '.join(QUANTIZERS)})")
    return quantizer


def quantizer_bits(quantizer: str, bits: int) -> int:
    """The code width a quantizer uses: ternary and binary need 2 bits (0, -alpha, +alpha)
    whatever ``bits`` says; the others use ``bits``."""
    return FIXED_BITS.get(quantizer, bits)


def quantize_weights(weight: np.ndarray, bits: int = 4, init: str = "linear", seed: int = 0,
                     max_iter: int = 10_000, name: str = "", quantizer: str = "kmeans",
                     hessian: np.ndarray | None = None,
                     ecsq_lambda: float = ECSQ_LAMBDA) -> LayerQuantization:
    """Quantize a layer's non-zero weights into at most ``2**bits - 1`` shared values; 0 keeps
    code 0. ``quantizer`` is one of :data:`QUANTIZERS` (module docstring); ``hessian`` (the
    weight's shape, >= 0) is required by ``hessian`` and weights ``ecsq``, ``ternary`` and
    ``binary`` when given. Ternary and binary use 2 bits whatever ``bits`` is."""
    check_quantizer(quantizer, name)
    bits = check_bits(quantizer_bits(quantizer, bits), name)
    w = np.asarray(weight)
    if not np.all(np.isfinite(w)):
        raise DataError(f"layer {name or '?'}: weights hold NaN or Inf")
    flat = w.ravel()
    nz = np.flatnonzero(flat)
    if nz.size == 0:
        raise DataError(f"layer {name or '?'}: every weight is pruned, nothing to quantize")
    x = flat[nz].astype(np.float64)
    h = None
    if hessian is not None:
        hess = np.asarray(hessian, dtype=np.float64)
        if hess.shape != w.shape or not np.all(np.isfinite(hess)) or np.any(hess < 0):
            raise DataError(f"layer {name or '?'}: the Hessian estimate must be finite, >= 0 "
                            f"and shaped like the weight {w.shape}")
        h = _positive(hess.ravel()[nz])
    elif quantizer == "hessian":
        raise DataError(f"layer {name or '?'}: the hessian quantizer needs a Hessian estimate")
    k = (1 << bits) - 1
    if quantizer in ("kmeans", "hessian"):
        return _kmeans_layer(w, flat, nz, x, bits, init, seed, max_iter, quantizer,
                             h if quantizer == "hessian" else None)
    if quantizer == "uniform":
        base_levels, step, labels = uniform_levels(x, bits)
        book = np.zeros(1 << bits, np.float64)
        book[1:1 + base_levels.size] = base_levels
        codes = labels  # 0 = rounded to zero
        info = {"step": step, "levels": int(base_levels.size)}
        return _layer(w, flat, nz, x, book * step, codes, quantizer, book, info)
    if quantizer == "ecsq":
        res = ecsq_1d(x, k, ecsq_lambda, h, max_iter=min(max_iter, 1000), seed=seed)
        book = np.zeros(1 << bits, np.float64)
        book[1:1 + res.centroids.size] = res.centroids
        info = {"lambda": float(ecsq_lambda), "entropy_bits": res.entropy,
                "clusters": int(res.centroids.size)}
        q = _layer(w, flat, nz, x, book, res.labels + 1, quantizer, None, info)
        q.n_iter, q.converged = res.n_iter, res.converged
        return q
    # ternary / binary: sign(w) alpha, ternary also zeroes |w| < 0.7 mean|w|
    a = np.abs(x)
    keep = a >= TWN_DELTA * a.mean() if quantizer == "ternary" else np.ones(a.size, bool)
    hk = np.ones(a.size) if h is None else h
    alpha = float(np.sum(hk[keep] * a[keep]) / np.sum(hk[keep]))  # (weighted) least squares
    codes = np.where(keep, np.where(x < 0, 1, 2), 0)
    base = np.array([0.0, -1.0, 1.0, 0.0])
    info = {"alpha": alpha, "zeroed": int(np.count_nonzero(~keep))}
    if quantizer == "ternary":
        info["threshold"] = float(TWN_DELTA * a.mean())
    return _layer(w, flat, nz, x, base * alpha, codes, quantizer, base, info)


def _positive(h: np.ndarray) -> np.ndarray:
    """Curvatures as strictly positive sample weights (a zero estimate gets a tiny floor)."""
    top = float(h.max(initial=0.0))
    return np.maximum(h, top * 1e-9 if top > 0 else 1.0)


def _kmeans_layer(w, flat, nz, x, bits, init, seed, max_iter, quantizer, h) -> LayerQuantization:
    xs_order = np.argsort(x, kind="stable")
    xs = x[xs_order]
    k = (1 << bits) - 1
    distinct = np.unique(xs) if xs.size <= k else None
    if distinct is not None and distinct.size <= k:  # fewer values than centroids: exact
        km = KMeans1D(distinct, np.array([]), 0.0, 0, True)
    else:
        km = kmeans_1d(xs, k, init, max_iter=max_iter, seed=seed, presorted=True,
                       sample_weight=None if h is None else h[xs_order])
    codebook = np.zeros(1 << bits, np.float32)
    codebook[1:1 + km.centroids.size] = km.centroids
    indices = np.zeros(flat.shape, np.uint8)
    indices[nz] = nearest(x, km.centroids) + 1
    return LayerQuantization(codebook, indices.reshape(w.shape), km.n_iter, km.converged,
                             km.inertia, quantizer)


def _layer(w, flat, nz, x, book, codes, quantizer, base, info) -> LayerQuantization:
    """A layer from a float64 codebook and the non-zero weights' codes (0 allowed)."""
    codebook = book.astype(np.float32)
    indices = np.zeros(flat.shape, np.uint8)
    indices[nz] = codes
    if not indices.any():
        raise DataError(f"the {quantizer} quantizer set every weight of a layer to 0")
    err = float(np.sum((x - codebook[codes].astype(np.float64)) ** 2))
    return LayerQuantization(codebook, indices.reshape(w.shape), 1, True, err, quantizer,
                             None if base is None else np.asarray(base, np.float64), info)


def uniform_levels(x: np.ndarray, bits: int, candidates: int = 400,
                   sample: int = 200_000) -> tuple[np.ndarray, float, np.ndarray]:
    """Uniform quantization of ``x`` on the lattice ``n * step`` (integer ``n``; 0 is code 0).

    For each of ``candidates`` steps the lattice holds at most ``2**bits - 1`` non-zero levels
    around 0, covering ``x``'s range or, when that takes more levels, clipping the longer tail
    (its weights saturate at the last level); the step with the least squared error wins
    (searched on an evenly strided sample of at most ``sample`` points). Returns the non-zero
    integer levels (ascending), the step and each point's code (0 for a point that rounds to
    0, else 1 + its level's index).
    """
    k = (1 << bits) - 1
    x = np.asarray(x, dtype=np.float64).ravel()
    lo, hi = float(x.min()), float(x.max())
    span = max(hi, 0.0) - min(lo, 0.0)
    if span == 0:
        raise DataError("uniform quantization of all-zero weights")
    sub = x[:: max(1, x.size // sample)]

    def window(step: float) -> tuple[int, int]:
        neg, pos = max(0, -int(np.round(lo / step))), max(0, int(np.round(hi / step)))
        if neg + pos > k:  # clip the tails: each side keeps its share, at least half
            neg = min(neg, max(k - pos, k // 2))
            pos = min(pos, k - neg)
        return -neg, pos

    best = (np.inf, 0.0)
    for m in np.linspace(0.5, 2 * (k + 1), candidates):  # m = span / step
        step = span / m
        n_lo, n_hi = window(step)
        n = np.clip(np.round(sub / step), n_lo, n_hi)
        if not n.any():
            continue
        err = float(np.sum((sub - n * step) ** 2))
        if err < best[0]:
            best = (err, step)
    step = best[1]
    if step == 0:
        raise DataError(f"no uniform lattice with at most {k} levels fits the weights")
    n_lo, n_hi = window(step)
    ints = np.clip(np.round(x / step), n_lo, n_hi).astype(np.int64)
    levels = np.array([v for v in range(n_lo, n_hi + 1) if v != 0], np.int64)
    codes = np.zeros(x.size, np.int64)
    nzi = ints != 0
    codes[nzi] = np.searchsorted(levels, ints[nzi]) + 1
    return levels.astype(np.float64), float(step), codes


@dataclass
class ECSQ1D:
    """Result of :func:`ecsq_1d`: ascending centroids, each point's cluster, code entropy."""

    centroids: np.ndarray
    labels: np.ndarray  # 0-based index into centroids
    entropy: float  # bits per point of the cluster distribution
    n_iter: int
    converged: bool


def ecsq_1d(x: np.ndarray, k: int, lam: float, h: np.ndarray | None = None,
            max_iter: int = 1000, seed: int = 0, chunk: int = 1 << 18) -> ECSQ1D:
    """Iterative entropy-constrained scalar quantization of 1-D data (module docstring).

    Starts from k-means (``k`` clusters, linear init); each iteration assigns every point to
    the cluster minimising ``h_i (x_i - c_k)**2 / D + lam * (-log2 p_k)`` (``D`` the weighted
    variance of ``x``, so ``lam`` is scale-free; ``h`` = 1 without a Hessian), then sets each
    centroid to its cluster's (weighted) mean and ``p_k`` to its share, dropping empty clusters;
    it stops when the assignment no longer changes.
    """
    if not (np.isfinite(lam) and lam >= 0):
        raise DataError(f"ECSQ lambda must be >= 0, got {lam}")
    x = np.asarray(x, dtype=np.float64).ravel()
    hw = np.ones_like(x) if h is None else np.asarray(h, dtype=np.float64).ravel()
    hw = hw / hw.mean()
    mean = float(np.sum(hw * x) / np.sum(hw))
    var = float(np.sum(hw * (x - mean) ** 2) / np.sum(hw)) or 1.0
    km = kmeans_1d(x, min(k, np.unique(x).size), "linear", seed=seed,
                   sample_weight=None if h is None else hw)
    c = km.centroids
    labels = nearest(x, c)
    converged = False
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007 (it is reported)
        counts = np.bincount(labels, minlength=c.size).astype(np.float64)
        used = counts > 0
        c, counts = c[used], counts[used]
        rate = -np.log2(counts / x.size)
        new = np.empty_like(labels)
        for i in range(0, x.size, chunk):
            xi, hi = x[i:i + chunk, None], hw[i:i + chunk, None]
            new[i:i + chunk] = np.argmin(hi * (xi - c[None, :]) ** 2 / var + lam * rate[None, :],
                                         axis=1)
        remap = np.cumsum(used) - 1  # old label -> index among the used clusters
        if np.array_equal(new, remap[labels]):
            labels = new
            converged = True
            break
        labels = new
        m = np.bincount(labels, weights=hw, minlength=c.size)
        s = np.bincount(labels, weights=hw * x, minlength=c.size)
        c = np.where(m > 0, s / np.where(m > 0, m, 1), c)
    counts = np.bincount(labels, minlength=c.size)
    used = counts > 0
    c, counts = c[used], counts[used]
    labels = (np.cumsum(used) - 1)[labels]
    order = np.argsort(c, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    p = counts / x.size
    return ECSQ1D(c[order], rank[labels], float(-np.sum(p * np.log2(p))), it, converged)


def hessian_diag(module: nn.Module, layers: Mapping[str, nn.Module], x: torch.Tensor,
                 y: torch.Tensor, task: str = "classification", batch_size: int = 128,
                 max_batches: int = 100, seed: int = 0) -> dict[str, np.ndarray]:
    """Diagonal Hessian estimate of the training loss for each layer's weight: the mean of the
    squared minibatch gradients over up to ``max_batches`` batches of a seeded permutation (the
    empirical Fisher information; Choi et al. Sec. 4.3 use Adam's equivalent second moment)."""
    import torch.nn.functional as F

    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(x), generator=gen)
    bs = max(1, min(batch_size, len(x)))
    n_batches = max(1, min(max_batches, len(x) // bs))
    acc = {n: torch.zeros_like(m.weight, dtype=torch.float64) for n, m in layers.items()}
    was_training = module.training
    module.eval()
    try:
        for b in range(n_batches):
            idx = perm[b * bs:(b + 1) * bs]
            module.zero_grad(set_to_none=True)
            out = module(x[idx])
            if task == "regression":
                yb = y[idx]
                loss = F.mse_loss(out.reshape(len(out), -1), yb.reshape(len(yb), -1).to(out.dtype))
            else:
                loss = F.cross_entropy(out, y[idx])
            loss.backward()
            for n, m in layers.items():
                if m.weight.grad is not None:
                    acc[n] += m.weight.grad.double() ** 2
    finally:
        module.zero_grad(set_to_none=True)
        module.train(was_training)
    return {n: (a / n_batches).numpy() for n, a in acc.items()}


class SharedWeights:
    """Fine-tuning of shared weights: centroids are the trainable parameters, codes are fixed.

    Each layer's weight is ``C[I]``. After ``loss.backward()`` has filled the weights'
    gradients, :meth:`accumulate_grads` sets ``dL/dC_k = sum_{I_ij = k} dL/dW_ij`` (eq. 3) by a
    scatter-add; the optimizer updates the centroids; :meth:`write` puts ``C[I]`` back into the
    weights. Code 0 gets no gradient and stays exactly 0, so pruned weights stay pruned.

    A layer quantized with a tied codebook (``LayerQuantization.base``: ternary, binary,
    uniform) trains one scale instead: ``C = s * base``, ``dL/ds = sum_k base_k dL/dC_k``, so
    its codebook keeps its form (+-alpha, evenly spaced levels) through fine-tuning.
    """

    def __init__(self, layers: Mapping[str, nn.Module], quantized: Mapping[str, LayerQuantization]):
        self.layers = dict(layers)
        self.codes = {n: torch.from_numpy(quantized[n].indices.astype(np.int64)).reshape(-1)
                      for n in self.layers}
        self.centroids: dict[str, torch.Tensor] = {}
        self.bases: dict[str, torch.Tensor] = {}
        self.scales: dict[str, nn.Parameter] = {}
        for n in self.layers:
            q = quantized[n]
            if q.base is None:
                self.centroids[n] = nn.Parameter(torch.from_numpy(q.codebook.copy()))
                continue
            base = torch.from_numpy(np.asarray(q.base, np.float32))
            k = int(np.argmax(np.abs(q.base)))
            scale = float(q.codebook[k]) / float(q.base[k]) if q.base[k] else 0.0
            self.bases[n] = base
            self.scales[n] = nn.Parameter(torch.tensor(scale, dtype=torch.float32))
            self.centroids[n] = (base * scale).detach()
        self.write()

    def parameters(self) -> list[nn.Parameter]:
        return [c for n, c in self.centroids.items() if n not in self.scales] \
            + list(self.scales.values())

    def write(self) -> None:
        """Weights <- C[I] (exactly: the same float32 values the codebook holds)."""
        with torch.no_grad():
            for n, layer in self.layers.items():
                if n in self.scales:
                    self.centroids[n] = (self.bases[n] * self.scales[n]).detach()
                c = self.centroids[n]
                c[0] = 0.0
                # index_select: ~50x faster than c[codes] advanced indexing on CPU
                layer.weight.copy_(torch.index_select(c, 0, self.codes[n]).view_as(layer.weight))

    def accumulate_grads(self) -> None:
        """Centroid gradients from weight gradients: the sum over each cluster (eq. 3); a tied
        codebook's scale gets their projection on its base."""
        for n, layer in self.layers.items():
            c = self.centroids[n]
            g = layer.weight.grad
            grad = torch.zeros_like(c)
            if g is not None:
                grad.index_add_(0, self.codes[n], g.reshape(-1).to(c.dtype))
            grad[0] = 0.0  # the zero code is not a centroid
            if n in self.scales:
                self.scales[n].grad = (grad * self.bases[n]).sum()
            else:
                c.grad = grad

    def after_step(self, optimizer: torch.optim.Optimizer | None = None) -> None:
        self.write()

    def codebooks(self) -> dict[str, np.ndarray]:
        return {n: c.detach().numpy().astype(np.float32).copy() for n, c in self.centroids.items()}

    def indices(self) -> dict[str, np.ndarray]:
        return {n: self.codes[n].view(self.layers[n].weight.shape).numpy().astype(np.uint8)
                for n in self.layers}
