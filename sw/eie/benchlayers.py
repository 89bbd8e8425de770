"""EIE's nine benchmark layers (Table III) as synthetic quantized layers, from fixed seeds.

Han et al., EIE (ISCA 2016), Table III lists the layers' shapes and their weight and
activation densities; Table IV their measured latency at 64 PEs (cycles = us x 800 MHz). The
real weights are not public, so each layer is synthesized:

- dense weights ``w_ij = s_i * t_j * g_ij`` with ``g`` standard normal and per-row and
  per-column scales ``s, t`` log-normal (sigma ``spread`` = 0.15), so that -- as in a trained
  layer -- some neurons and some inputs keep more weights than others;
- magnitude pruning to the table's weight density (one threshold for the layer, estimated
  from a sample of the same distribution, so the density is met to ~0.1%);
- 4-bit weight sharing: :func:`sw.compression.quantize.quantize_weights` (linear-init 1-D k-means over the
  survivors, 15 centroids + the zero code), scaled so that outputs are O(1) for the layer's
  inputs;
- input activations: the table's density of non-zeros at uniformly random positions, values
  uniform in [1/16, 1) (non-negative: they follow a ReLU).

:func:`alexnet_chain` builds fc6 -> fc7 -> fc8 as one network whose biases are set so that
the ReLU outputs of fc6 and fc7 have about the activation densities of Alex-7 and Alex-8.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtri

from sw.compression.quantize import quantize_weights
from sw.errors import DataError
from sw.qlayer import QuantizedLayer

ACT_LOW, ACT_HIGH = 1.0 / 16, 1.0  # non-zero input activations are uniform in [low, high)
SPREAD = 0.15  # sigma of the log-normal per-row / per-column weight scales


@dataclass(frozen=True)
class BenchLayer:
    """One row of EIE's Table III and its Table IV latency."""

    name: str
    n_in: int
    n_out: int
    weight_density: float
    act_density: float
    paper_us: float  # Table IV, EIE actual time at 64 PEs, batch 1
    paper_theoretical_us: float | None  # Table IV (VGG-6's is a copy error in the paper)
    relu: bool = True  # a ReLU follows (not after a classifier's last layer)

    @property
    def paper_cycles(self) -> int:
        return int(round(self.paper_us * 800))  # 800 MHz


TABLE3: dict[str, BenchLayer] = {b.name: b for b in [
    BenchLayer("Alex-6", 9216, 4096, 0.09, 0.351, 30.3, 28.1),
    BenchLayer("Alex-7", 4096, 4096, 0.09, 0.353, 12.2, 11.7),
    BenchLayer("Alex-8", 4096, 1000, 0.25, 0.375, 9.9, 8.9, relu=False),
    BenchLayer("VGG-6", 25088, 4096, 0.04, 0.183, 34.4, None),
    BenchLayer("VGG-7", 4096, 4096, 0.04, 0.375, 8.7, 7.9),
    BenchLayer("VGG-8", 4096, 1000, 0.23, 0.411, 8.4, 7.3, relu=False),
    BenchLayer("NT-We", 4096, 600, 0.10, 1.0, 8.0, 5.2),
    BenchLayer("NT-Wd", 600, 8791, 0.11, 1.0, 13.9, 13.0),
    BenchLayer("NT-LSTM", 1201, 2400, 0.10, 1.0, 7.5, 6.5),
]}


def _rng(seed: int, name: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def _spec(name: str) -> BenchLayer:
    if name not in TABLE3:
        raise DataError(f"unknown benchmark layer {name!r} (Table III: {', '.join(TABLE3)})")
    return TABLE3[name]


def synthetic_fc(name: str, n_in: int, n_out: int, density: float, input_density: float = 1.0,
                 seed: int = 0, bits: int = 4, spread: float = SPREAD,
                 bias_std: float = 0.05) -> QuantizedLayer:
    """A magnitude-pruned, k-means-quantized random FC layer (see the module docstring)."""
    if not 0.0 < density <= 1.0:
        raise DataError(f"layer {name}: weight density must be in (0, 1], got {density}")
    rng = _rng(seed, name)
    s_row = np.exp(spread * rng.standard_normal(n_out)).astype(np.float32)
    s_col = np.exp(spread * rng.standard_normal(n_in)).astype(np.float32)
    # the pruning threshold: the (1 - density) quantile of |w|, from a sample of its distribution
    n_s = 1 << 20
    sample = np.abs(s_row[rng.integers(n_out, size=n_s)] * s_col[rng.integers(n_in, size=n_s)]
                    * rng.standard_normal(n_s, dtype=np.float32))
    thr = -1.0 if density >= 1.0 else float(np.quantile(sample, 1.0 - density))
    block = max(1, (1 << 22) // n_in)  # rows per block: ~4M weights at a time
    flat, vals = [], []
    for r0 in range(0, n_out, block):
        g = rng.standard_normal((min(block, n_out - r0), n_in), dtype=np.float32)
        w = g * s_row[r0: r0 + g.shape[0], None] * s_col[None, :]
        keep = np.flatnonzero(np.abs(w) > thr)
        flat.append(keep + r0 * n_in)
        vals.append(w.ravel()[keep])
    flat_idx, values = np.concatenate(flat), np.concatenate(vals).astype(np.float64)
    indices = np.zeros((n_out, n_in), np.uint8)
    if values.size == 0:
        return QuantizedLayer(name, "linear", np.zeros(1 << bits, np.float32), indices, None, bits)
    # scale so that an output's standard deviation is ~1 for inputs of the given density
    m2 = input_density * (ACT_HIGH ** 3 - ACT_LOW ** 3) / (3 * (ACT_HIGH - ACT_LOW))
    values /= np.sqrt(n_in * density * float(np.mean(values ** 2)) * m2)
    lq = quantize_weights(values, bits, name=name)
    indices.ravel()[flat_idx] = lq.indices
    bias = (bias_std * rng.standard_normal(n_out)).astype(np.float32)
    return QuantizedLayer(name, "linear", lq.codebook, indices, bias, bits)


def bench_layer(name: str, seed: int = 0, bits: int = 4) -> QuantizedLayer:
    """Table III layer ``name`` (``Alex-6`` ... ``NT-LSTM``) as a quantized layer."""
    b = _spec(name)
    q = synthetic_fc(name, b.n_in, b.n_out, b.weight_density, b.act_density, seed, bits)
    q.relu = b.relu
    return q


def synthetic_input(n: int, density: float, seed: int = 0, name: str = "input") -> np.ndarray:
    """``round(density * n)`` non-zeros at random positions, values uniform in [1/16, 1)."""
    rng = _rng(seed, name + "/input")
    k = int(round(density * n))
    x = np.zeros(n, np.float64)
    x[rng.choice(n, size=k, replace=False)] = rng.uniform(ACT_LOW, ACT_HIGH, size=k)
    return x


def bench_input(name: str, seed: int = 0) -> np.ndarray:
    """An input activation vector of Table III layer ``name`` at its activation density."""
    b = _spec(name)
    return synthetic_input(b.n_in, b.act_density, seed, name)


def alexnet_chain(seed: int = 0, bits: int = 4, calibration: int = 32) -> tuple[list[QuantizedLayer], np.ndarray]:
    """AlexNet's fc6 -> fc7 -> fc8 (Alex-6/7/8 shapes and densities) as one network, and an
    input of fc6. Biases of fc6 and fc7 put their ReLU outputs at about Alex-7's and Alex-8's
    activation densities (over ``calibration`` synthetic inputs); every layer's codebook is
    scaled so that its pre-activations have a median standard deviation of 1."""
    names = [("fc6", "Alex-6"), ("fc7", "Alex-7"), ("fc8", "Alex-8")]
    xs = np.stack([bench_input("Alex-6", seed + 1000 + i) for i in range(calibration)])
    layers = []
    a = xs
    for i, (name, table_name) in enumerate(names):
        b = TABLE3[table_name]
        q = synthetic_fc(name, b.n_in, b.n_out, b.weight_density, seed=seed, bits=bits)
        y = a @ q.dense().T.astype(np.float64)
        scale = 1.0 / max(float(np.median(y.std(axis=0))), 1e-12)
        q.codebook = (q.codebook * scale).astype(np.float32)
        y *= scale
        if i + 1 < len(names):  # ReLU output density -> the next layer's table density
            target = TABLE3[names[i + 1][1]].act_density
            q.bias = (-(y.mean(axis=0) + ndtri(1.0 - target) * y.std(axis=0))).astype(np.float32)
            a = np.maximum(y + q.bias, 0.0)
        q.relu = i + 1 < len(names)
        layers.append(q)
    return layers, bench_input("Alex-6", seed)
