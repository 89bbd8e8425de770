"""The RTL's timing (hw.timing.rtl_timing, the one statement of it) handed to the cycle model
predicts the RTL's ``cycles`` and ``stall_cycles`` counters exactly: on every preset (its PE
count, queue depth and widths; memories shrunk, which no latency depends on) and on random
configurations, in Amaranth's simulator."""

from __future__ import annotations

import numpy as np
import pytest
from helpers_eie import chain

from hw.params import HWParams, lnzd_levels
from hw.timing import rtl_timing
from sim.amaranth_host import simulate
from sw.eie import cycles, fixedpoint, golden
from sw.eie.config import PRESETS, EIEConfig
from sw.eie.pack import pack_network


def _small_memories(config: EIEConfig, n_out: int, n_in: int) -> EIEConfig:
    rows = -(-n_out // config.n_pe)
    return config.replace(name=f"{config.name}-timing", spmat_words=64, ptr_depth=2 * (n_in + 2),
                          act_depth=max(8, -(-n_in // config.n_pe), rows), bias_depth=2 * rows + 8,
                          max_layers=2)


def _rtl_equals_model(config: EIEConfig, seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_in, n_mid, n_out = (int(v) for v in rng.integers(3, 3 * config.n_pe + 12, 3))
    cfg = _small_memories(config, max(n_mid, n_out), max(n_in, n_mid))
    img = pack_network(chain(rng, [n_in, n_mid, n_out], float(rng.uniform(0.2, 0.8)), scale=0.5), cfg)
    x = fixedpoint.quantize_input(rng.normal(0, 2, n_in) * (rng.random(n_in) < 0.6), cfg)
    a0 = img.input_to_physical(x)
    (r,) = simulate(img, [a0], n_layers=2)
    t = rtl_timing(cfg)
    want = [cycles.simulate_layer(img, 0, a0, t), cycles.simulate_layer(img, 1, golden.run_layer(img, 0, a0), t)]
    assert r.cycles == sum(w.cycles for w in want), (config.name, seed)
    assert r.stall_cycles == sum(w.stall_cycles for w in want), (config.name, seed)
    assert np.array_equal(img.to_logical(1, r.output), golden.run_network(img, x)[1])


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_runs_in_the_cycles_its_timing_predicts(name):
    _rtl_equals_model(PRESETS[name], seed=len(name))


@pytest.mark.parametrize("seed", range(6))
def test_random_configurations_run_in_the_cycles_their_timing_predicts(seed):
    rng = np.random.default_rng(100 + seed)
    act_bits = int(rng.choice([8, 12, 16]))
    cfg = EIEConfig(name=f"rand{seed}", n_pe=int(rng.integers(1, 10)),
                    queue_depth=int(rng.integers(1, 9)), act_bits=act_bits,
                    act_frac=int(rng.integers(2, 7)), acc_bits=2 * act_bits + int(rng.integers(0, 9)))
    _rtl_equals_model(cfg, seed)


def test_start_latency_follows_the_lnzd_tree_depth():
    assert [lnzd_levels(n) for n in (1, 4, 5, 16, 17, 64, 65, 256)] == [1, 1, 2, 2, 3, 3, 4, 4]
    for cfg in PRESETS.values():
        assert rtl_timing(cfg).start == 3 * HWParams(cfg).levels + 6
