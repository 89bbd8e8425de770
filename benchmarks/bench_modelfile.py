"""Huffman coding and the compressed model file: bits per weight / index, and speed.

1. A synthetic layer shaped like LeNet-300-100 ip1 (300 x 784, 8 % kept, 4-bit codes): magnitude
   pruning of Gaussian weights whose scale per input pixel follows a bump over the 28x28 image
   (dead border pixels, as in a trained MNIST net), then 1-D k-means with linear initialisation
   (15 centroids + zero). Prints weight and index bits per entry after Huffman (paper Table 2,
   ip1 at 6-bit weights / 5-bit indices: 4.4 and 3.7 bits), for uniformly random positions too.
2. An AlexNet fc6-sized layer (4096 x 9216, 9 % kept, 4-bit codes): encode and decode time of
   the model file and of the Huffman streams alone.

Run: ``.venv/bin/python benchmarks/bench_modelfile.py``
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from sw.compression import huffman
from sw.compression.modelfile import encode_layer, format_table, layer_table, load_model, save_model
from sw.qlayer import QuantizedLayer
from sw.sparse import encode_columns


class Timer:
    """Wall and CPU time of a block (the CPU figure is what the machine's load does not inflate)."""

    def __enter__(self) -> Timer:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu

    def __str__(self) -> str:
        return f"{self.wall:.2f} s wall / {self.cpu:.2f} s CPU"


def kmeans_codes(w: np.ndarray, bits: int, iters: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """Codes (0 = pruned) and codebook of the non-zero weights: 1-D Lloyd, linear init."""
    nz = w[w != 0]
    c = np.linspace(nz.min(), nz.max(), (1 << bits) - 1)
    for _ in range(iters):
        a = np.abs(nz[:, None] - c[None, :]).argmin(axis=1)
        sums = np.bincount(a, weights=nz, minlength=c.size)
        cnt = np.bincount(a, minlength=c.size)
        c = np.where(cnt > 0, sums / np.maximum(cnt, 1), c)
    codes = np.zeros(w.shape, np.uint8)
    codes[w != 0] = np.abs(nz[:, None] - c[None, :]).argmin(axis=1) + 1
    return codes, np.concatenate([[0.0], c]).astype(np.float32)


def pruned_layer(name: str, out: int, inp: int, keep: float, scale_in: np.ndarray | None,
                 bits: int, rng: np.random.Generator) -> QuantizedLayer:
    w = rng.normal(0, 1, (out, inp)) * (1.0 if scale_in is None else scale_in[None, :])
    thr = np.quantile(np.abs(w), 1 - keep)
    w[np.abs(w) < thr] = 0
    codes, codebook = kmeans_codes(w, bits)
    bias = rng.normal(0, 0.1, out).astype(np.float32)
    return QuantizedLayer(name, "linear", codebook, codes, bias, bits)


def lenet_ip1(rng: np.random.Generator) -> None:
    print("== LeNet-300-100 ip1 (300 x 784), 8% kept, 4-bit codes ==")
    yy, xx = np.mgrid[0:28, 0:28]
    bump = np.exp(-((yy - 13.5) ** 2 + (xx - 13.5) ** 2) / (2 * 6.0**2)).ravel()
    layers = {}
    for label, scale in (("MNIST-like input structure", bump), ("uniform positions", None)):
        layer = layers[label] = pruned_layer("ip1", 300, 784, 0.08, scale, 4, rng)
        counts = np.bincount(layer.indices.ravel(), minlength=16)[1:]
        p = counts / counts.sum()
        print(f"-- {label}: kept {100 * layer.nnz / layer.indices.size:.2f}%, "
              f"code entropy {-(p[p > 0] * np.log2(p[p > 0])).sum():.2f} bits")
        for ib in (None, 4, 5):
            row = layer_table([layer], index_bits=ib)["layers"][0]
            print(f"   index bits {'auto' if ib is None else ib} -> {row['index_bits_pq']} "
                  f"({row['order']}): weight bits 4 -> {row['weight_bits_pqh']:.2f}, "
                  f"index bits {row['index_bits_pq']} -> {row['index_bits_pqh']:.2f} per entry, "
                  f"padding {row['padding']} entries, size {row['size_pct_pq']:.2f}% -> "
                  f"{row['size_pct_pqh']:.2f}% of dense ({100 / row['size_pct_pqh']:.1f}x); "
                  f"record {8 * row['bytes'] / layer.nnz:.2f} bits per kept weight")
    print()
    print(format_table(layer_table([layers["MNIST-like input structure"]])))
    print()


def fc6(rng: np.random.Generator) -> None:
    print("== AlexNet fc6 (4096 x 9216 = 37.7M weights), 9% kept, 4-bit codes ==")
    shape = (4096, 9216)
    mask = rng.random(shape, dtype=np.float32) < 0.09
    p = np.linspace(1.0, 0.1, 15)
    codes = np.zeros(shape, np.uint8)
    codes[mask] = rng.choice(np.arange(1, 16, dtype=np.uint8), int(mask.sum()), p=p / p.sum())
    del mask
    codebook = np.concatenate([[0], np.sort(rng.normal(0, 0.01, 15))]).astype(np.float32)
    layer = QuantizedLayer("fc6", "linear", codebook, codes, np.zeros(4096, np.float32), 4)
    print(f"nonzeros {layer.nnz:,}")
    with tempfile.TemporaryDirectory() as d:
        for ib in (4, None):
            path = Path(d) / "fc6.eiez"
            with Timer() as t_save:
                n = save_model(path, [layer], {"arch": "fc6"}, index_bits=ib)
            with Timer() as t_load:
                (back,), _ = load_model(path)
            assert np.array_equal(back.indices, codes)
            print(f"index bits {'auto' if ib is None else ib}: file {n:,} bytes "
                  f"({4 * (codes.size + 4096) / n:.1f}x); save (encode + write) {t_save}; "
                  f"load (read + decode) {t_load}")
    enc = encode_layer(layer, 4)
    print(f"(v, z) streams at index bits 4 ({enc.order}): {enc.n_entries:,} entries each")
    # Huffman alone on those streams, rebuilt with the same encoder
    flat = codes.T.ravel() if enc.order == "col" else codes.ravel()
    pos = np.flatnonzero(flat)
    marker = np.zeros((flat.size, 1), np.uint8)
    marker[pos, 0] = 1
    marks, z, _ = encode_columns(marker, 15)
    v = np.zeros(marks.size, np.uint8)
    v[marks != 0] = flat[pos]
    for label, s, a in (("v", v, 16), ("z", z, 16)):
        lengths = huffman.build_code_lengths(np.bincount(s, minlength=a))
        with Timer() as t_enc:
            data, n_bits = huffman.encode(s, lengths)
        with Timer() as t_dec:
            out = huffman.decode(data, s.size, lengths)
        assert np.array_equal(out, s)
        print(f"Huffman {label} stream: {s.size:,} symbols, {n_bits / s.size:.2f} bits each; "
              f"encode {t_enc}, decode {t_dec}")


if __name__ == "__main__":
    rng = np.random.default_rng(0)
    lenet_ip1(rng)
    fc6(rng)
