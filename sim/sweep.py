"""Compression sweeps as farm tasks (:mod:`sim.farm`): one row of a quantizer comparison per task.

A row quantizes a shared pruned network with one quantizer at one width (the output layer keeps
4-bit k-means), fine-tunes the codebooks and measures the model file's ratio, the test error,
the on-chip bytes of the EIE image and the energy per inference on EIE. A task is
self-contained: the pruned network (a module and its pruned weights) and the settings come in,
the MNIST data is read on the worker from the path given (the same path on every machine of
a cluster), a result record goes out. ``benchmarks/bench_quantizers.py`` runs the rows this
way, with ``--workers`` / ``--scheduler`` like `eie sim`.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from hw.timing import rtl_timing
from sw.compression.compress import compress_module, default_settings
from sw.compression.data import load_mnist, to_tensors
from sw.compression.footprint import fc_chains, onchip_footprint
from sw.compression.models import weight_layers
from sw.eie.config import PRESETS
from sw.eie.cycles import simulate_layer
from sw.eie.energy import layer_energy
from sw.eie.fixedpoint import to_fixed
from sw.eie.formats import choose_formats
from sw.eie.golden import run_layer
from sw.eie.pack import pack_network

CONFIG = "eie64"  # the configuration the on-chip bytes and the energy are priced on


@dataclass(frozen=True)
class Row:
    """One row of the comparison: ``label``, the quantizer, its bits and ECSQ lambda."""

    label: str
    quantizer: str
    bits: int
    ecsq_lambda: float | None = None


@dataclass(frozen=True)
class Data:
    """Where the worker reads MNIST, and how much of it."""

    path: str | None
    limit_train: int | None = None
    limit_test: int | None = None
    energy_inputs: int = 50


def fc_inputs(module: nn.Module, x: torch.Tensor) -> np.ndarray:
    """The inputs of the first FC layer: the images through the conv part (host), flattened."""
    with torch.no_grad():
        for s in module.specs:
            if s.kind == "linear":
                break
            x = module.layer(s.name)(x)
            if s.relu:
                x = torch.relu(x)
            if s.pool:
                x = torch.nn.functional.max_pool2d(x, s.pool)
        return x.flatten(1).numpy().astype(np.float64)


def energy_per_inference(layers, x_fc: np.ndarray, calib: np.ndarray) -> float:
    """pJ per inference of the FC chain on :data:`CONFIG` (mean over the rows of ``x_fc``)."""
    cfg = PRESETS[CONFIG]
    chain = fc_chains(layers)[0]
    formats = choose_formats(chain, calib, cfg)
    image = pack_network(chain, cfg, formats=formats)
    timing = rtl_timing(cfg)
    pj = 0.0
    for x in x_fc:
        a = image.input_to_physical(to_fixed(x, image.input_frac, cfg.act_bits))
        for li in range(len(image.layers)):
            r = simulate_layer(image, li, a, timing)
            pj += layer_energy(image, li, r).total
            if li + 1 < len(image.layers):
                a = run_layer(image, li, a)
    return pj / len(x_fc)


def quantizer_row(model: str, base: nn.Module, pruned: dict[str, np.ndarray], row: Row,
                  data: Data, seed: int, finetune_epochs: int | None) -> dict:
    """The task: ``base`` (the pruned network, weights ``pruned``) quantized as ``row`` says,
    fine-tuned, measured. Deterministic for a seed, wherever it runs."""
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    tr, te = load_mnist(data.path)
    train = to_tensors(tr.take(data.limit_train))
    test = to_tensors(te.take(data.limit_test))
    names = [n for n, _ in weight_layers(base)]
    last = names[-1]
    mod = copy.deepcopy(base)
    with torch.no_grad():
        for n, m in weight_layers(mod):
            m.weight.copy_(torch.from_numpy(pruned[n]))
    density = {n: float(np.count_nonzero(pruned[n]) / pruned[n].size) for n in names}
    s = default_settings(model, seed=seed, progress=False, dense_epochs=0, prune_iters=1,
                         retrain_epochs=0, density=density, quantizer=row.quantizer,
                         bits=row.bits, layer_quantizer={last: "kmeans"}, layer_bits={last: 4},
                         ecsq_lambda=row.ecsq_lambda, finetune_epochs=finetune_epochs)
    t = time.perf_counter()
    res = compress_module(mod, train, test, s)
    fp = onchip_footprint(fc_chains(res.layers), CONFIG)
    x_fc = fc_inputs(base, test[0][: data.energy_inputs])
    calib = fc_inputs(base, train[0][:500])
    pj = energy_per_inference(res.layers, x_fc, calib)
    return {"model": model, "quantizer": row.label, "bits": row.bits,
            "ratio": res.report["ratio"], "file_bytes": res.report["compressed_bytes"],
            "error": res.report["error_compressed"],
            "error_before_finetune": res.report["error_quantized"],
            "onchip_bytes": fp.get("total_bytes"), "onchip_spmat_bytes": fp.get("spmat_bytes"),
            "energy_nj": pj / 1e3, "seconds": time.perf_counter() - t,
            "weight_bits_huffman": res.report["layers"]["total"]["weight_bits_pqh"],
            "index_bits_huffman": res.report["layers"]["total"]["index_bits_pqh"]}
