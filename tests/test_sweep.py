"""Compression sweeps as farm tasks (sim/sweep.py, benchmarks/bench_quantizers.py): a row is
self-contained (pruned network and settings in, record out; the data read on the worker), so
in this process and on Dask workers the same rows give the same figures."""

from __future__ import annotations

import numpy as np
import torch

from sim.farm import Task, open_farm
from sim.sweep import Data, Row, quantizer_row
from sw.compression.models import build_model, weight_layers
from tests.helpers_nets import write_mnist


def test_rows_are_the_same_in_process_and_on_dask_workers(tmp_path):
    write_mnist(tmp_path, n_train=64, n_test=32)
    torch.manual_seed(0)
    base = build_model("lenet300")
    rng = np.random.default_rng(1)
    pruned = {n: np.where(rng.random(m.weight.shape) < 0.1, m.weight.detach().numpy(), 0.0)
              .astype(np.float32) for n, m in weight_layers(base)}
    data = Data(str(tmp_path), energy_inputs=2)
    rows = [Row("k-means 4", "kmeans", 4), Row("ternary", "ternary", 2)]
    tasks = [Task(f"r{i}", quantizer_row, ("lenet300", base, pruned, r, data, 0, 1), r.label)
             for i, r in enumerate(rows)]
    results = []
    for farm_args in (dict(workers=0), dict(workers=2, processes=False)):
        with open_farm(**farm_args) as farm:
            outcomes = farm.run(tasks)
        assert all(o.ok for o in outcomes), [o.error for o in outcomes]
        results.append([{k: v for k, v in o.value.items() if k != "seconds"} for o in outcomes])
    assert results[0] == results[1]
    kmeans, ternary = results[0]
    assert kmeans["quantizer"] == "k-means 4" and ternary["quantizer"] == "ternary"
    # ternary's zero level takes some of the pruned network's small weights too
    assert 0 < ternary["onchip_bytes"] <= kmeans["onchip_bytes"]
    assert ternary["weight_bits_huffman"] < kmeans["weight_bits_huffman"]
    assert ternary["ratio"] > kmeans["ratio"] > 1 and kmeans["energy_nj"] > 0
