"""k-means speed on an AlexNet fc6-sized layer: our sorted 1-D Lloyd vs scikit-learn's KMeans.

A 4096 x 9216 weight matrix (37.7M weights, Laplace-distributed like trained fc weights) is
pruned to 9% (Deep Compression Table 4) and quantized to 4 bits (15 centroids + zero). Timed:

- ours: the whole per-layer quantization step, ``sw.compression.quantize.quantize_weights`` (gather the
  survivors, sort, k-means to a fixed point, assign every weight, build codebook and indices);
- scikit-learn: ``KMeans(n_init=1)`` on the same survivors from the same linear initial
  centroids, ``tol=0`` (run until the assignments stop changing) and the same iteration cap.

Both inertias are printed: ours must be the same or lower.

    .venv/bin/python benchmarks/bench_kmeans.py [--bits 4] [--density 0.09] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sw.compression.quantize import init_centroids, kmeans_1d, quantize_weights  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=4096)
    ap.add_argument("--cols", type=int, default=9216)
    ap.add_argument("--density", type=float, default=0.09)
    ap.add_argument("--bits", type=int, default=4)
    ap.add_argument("--max-iter", type=int, default=10_000)
    ap.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-sklearn", action="store_true")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))

    rng = np.random.default_rng(args.seed)
    w = rng.laplace(0.0, 0.005, size=(args.rows, args.cols)).astype(np.float32)
    thr = np.quantile(np.abs(w), 1 - args.density)
    w[np.abs(w) < thr] = 0
    nnz = int(np.count_nonzero(w))
    k = (1 << args.bits) - 1
    print(f"layer {args.rows}x{args.cols} = {w.size:,} weights, pruned to {nnz:,} "
          f"({100 * nnz / w.size:.2f}%), {args.bits} bits = {k} centroids + zero")

    t = time.perf_counter()
    q = quantize_weights(w, bits=args.bits, init="linear", max_iter=args.max_iter)
    t_ours = time.perf_counter() - t
    print(f"ours:    whole quantization step {t_ours:7.2f} s  ({q.n_iter} Lloyd iterations, "
          f"converged={q.converged}), inertia {q.inertia:.9e}")

    x = w[w != 0].astype(np.float64)
    t = time.perf_counter()
    km = kmeans_1d(x, k, "linear", max_iter=args.max_iter)
    print(f"ours:    k-means alone (incl. sort)  {time.perf_counter() - t:7.2f} s")

    if args.skip_sklearn:
        return 0
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits

    init = init_centroids(np.sort(x), k, "linear")[:, None]
    t = time.perf_counter()
    with threadpool_limits(args.threads):
        sk = KMeans(n_clusters=k, init=init, n_init=1, max_iter=args.max_iter, tol=0.0,
                    algorithm="lloyd").fit(x[:, None])
    t_sk = time.perf_counter() - t
    print(f"sklearn: KMeans fit                {t_sk:7.2f} s  ({sk.n_iter_} iterations), "
          f"inertia {sk.inertia_:.9e}")
    print(f"speed-up {t_sk / t_ours:.1f}x; inertia ours/sklearn = {q.inertia / sk.inertia_:.12f} "
          f"({'same or lower' if q.inertia <= sk.inertia_ * (1 + 1e-9) else 'HIGHER'})")
    sk_c = np.sort(sk.cluster_centers_.ravel())
    print(f"max |centroid difference| = {np.max(np.abs(sk_c - km.centroids)):.3e}")
    return 0 if q.inertia <= sk.inertia_ * (1 + 1e-9) else 1


if __name__ == "__main__":
    raise SystemExit(main())
