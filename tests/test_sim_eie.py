"""cocotb verification of the generated EIE RTL (sim/): small designs in the fast suite, the
AlexNet layers at 64 PEs, MNIST and the fuzz campaign marked slow (`make sim` runs those).

Every run is self-checking in the testbench (sim/tb_eie.py): outputs bit for bit against the
golden model, cycles / stall cycles / per-PE busy cycles exactly against the cycle model.
"""

from __future__ import annotations

import copy
import os
import re

import numpy as np
import pytest
from helpers_eie import random_layer

from sim.design import eie_design
from sim.fuzz import FUZZ_CONFIGS, fuzz_case, run_fuzz
from sim.job import Case, Job, make_run
from sim.regress import LENET_MODEL
from sim.runner import REPO, have_simulator, simulator
from sim.session import run_job
from sw.eie.config import PRESETS
from sw.eie.fixedpoint import quantize_input
from sw.eie.pack import pack_network

pytestmark = [pytest.mark.skipif(not have_simulator(simulator()),
                                 reason=f"simulator {simulator()} not installed"),
              # one pytest-xdist worker (make test: --dist loadgroup) runs this module, so its
              # module-scoped builds are set up once, not once per worker
              pytest.mark.xdist_group("sim_eie")]


@pytest.fixture(scope="module")
def n3():
    """N = 3 (a partial LNZD node), queue depth 4: built once, shared with the fuzz build."""
    return eie_design(FUZZ_CONFIGS["n3d4"])


@pytest.fixture(scope="module")
def n1():
    """N = 1, queue depth 1 (a broadcast at most every other cycle)."""
    return eie_design(FUZZ_CONFIGS["n1d1"])


def _network(seed: int, sizes: list[int], density: float, config, balance: bool = False,
             relu: list[bool] | None = None):
    rng = np.random.default_rng(seed)
    n = len(sizes) - 1
    relu = [i < n - 1 for i in range(n)] if relu is None else relu
    layers = [random_layer(rng, sizes[i + 1], sizes[i], density, f"fc{i}", scale=0.3, relu=relu[i])
              for i in range(n)]
    return pack_network(layers, config, balance=balance), rng


def _input(rng, n: int, density: float, config) -> np.ndarray:
    return quantize_input(rng.uniform(-1, 2, n) * (rng.random(n) < density), config)


def _check(result) -> None:
    assert result.ok, result.first_failure.message
    assert all(c.ok and c.runs for c in result.cases)


def test_random_networks_bit_exact_and_cycle_exact_on_three_pes(n3):
    config = FUZZ_CONFIGS["n3d4"]
    cases = []
    for seed, (sizes, density, balance) in enumerate([
            ([37, 50, 23, 10], 0.3, False), ([64, 64], 1.0, False), ([100, 7], 0.02, True),
            ([9, 40, 40], 0.5, True)]):
        image, rng = _network(seed, sizes, density, config, balance)
        runs = [make_run(image, _input(rng, sizes[0], d, config), label=f"d{d}")
                for d in (0.0, 0.3, 1.0)]
        if len(sizes) > 2:  # a sub-chain starting at layer 1 (its input written by the host)
            runs.append(make_run(image, _input(rng, sizes[1], 0.5, config), 1, 1, "layer1"))
        cases.append(Case(f"net{seed}", image, runs))
    result = run_job(n3, Job(cases))
    _check(result)
    # the counters are really compared: stalls happen
    assert any(r.stall_cycles > 0 for c in result.cases for r in c.runs)
    # done rises with the edge that ends the last counted cycle (the run's cycle numbering)
    assert all(r.done_cycle - r.start_cycle == r.cycles for c in result.cases for r in c.runs)
    assert sum(len(c.runs) for c in result.cases) == sum(len(c.runs) for c in cases)


def test_host_stalls_and_reset_mid_run_change_nothing(n3):
    config = FUZZ_CONFIGS["n3d4"]
    image, rng = _network(7, [30, 20, 12], 0.4, config)
    x = _input(rng, 30, 0.6, config)
    aborted = make_run(image, x, label="aborted")
    aborted.reset_after = 17  # start, then a reset 17 cycles in; reload and run again
    runs = [make_run(image, x, label="plain"), aborted, make_run(image, x, label="again")]
    result = run_job(n3, Job([Case("stalls", image, runs, stall_seed=5, stall_p=0.5)]))
    _check(result)
    outs = [r.outputs for r in result.cases[0].runs]
    assert all(np.array_equal(o[1], outs[0][1]) for o in outs)


def test_one_pe_with_depth_one_queue_matches_models(n1):
    config = FUZZ_CONFIGS["n1d1"]
    image, rng = _network(3, [40, 30, 5], 0.25, config, relu=[True, False])
    runs = [make_run(image, _input(rng, 40, d, config), label=f"d{d}") for d in (0.1, 0.9)]
    _check(run_job(n1, Job([Case("n1", image, runs)])))


def test_first_mismatch_names_layer_row_column_and_cycle(n3):
    config = FUZZ_CONFIGS["n3d4"]
    image, rng = _network(11, [24, 18, 6], 0.5, config, relu=[False, False])
    # inject a fault into the loaded image: one real entry of layer 0 gets another code
    fault = copy.deepcopy(image)
    pe, j = 1, 5
    d = image.layers[0]
    start = image.ptr[pe, d.ptr_base + j]
    entries = fault.spmat.view(np.uint8).reshape(config.n_pe, -1)  # 8-bit entries, LE words
    a = next(a for a in range(start, image.ptr[pe, d.ptr_base + j + 1]) if entries[pe, a] & 15)
    v = int(entries[pe, a] & 15)
    entries[pe, a] = (entries[pe, a] & 0xF0) | (v % 15 + 1)
    z_rows = np.cumsum((image.spmat.view(np.uint8).reshape(config.n_pe, -1)
                        [pe, start:a + 1] >> 4).astype(int) + 1) - 1
    row = int(z_rows[-1]) * config.n_pe + pe  # physical = logical (no balancing)
    x = _input(rng, 24, 1.0, config)
    case = Case("fault", image, [make_run(image, x, label="chain")], fault=fault)
    result = run_job(n3, Job([case], check_cycles=True))
    assert not result.ok
    msg = result.first_failure.message
    assert "layer fc0" in msg
    assert re.search(rf"first: row {row} \(physical {row}: PE {pe}, local row {row // 3}\)", msg), msg
    assert f"once column {j} " in msg, msg
    assert re.search(r"broadcast in cycle \d+ of the run", msg), msg
    assert re.search(r"written back in cycle \d+ of the run \(simulation cycle \d+\)", msg), msg


def test_cycle_mismatch_is_reported_with_the_layer(n3):
    config = FUZZ_CONFIGS["n3d4"]
    image, rng = _network(12, [20, 20, 10], 0.5, config)
    run = make_run(image, _input(rng, 20, 0.7, config), label="off-by-one")
    run.model_cycles[1] += 1  # pretend the model predicted one more cycle for layer 1
    result = run_job(n3, Job([Case("cycles", image, [run])]))
    assert not result.ok
    msg = result.first_failure.message
    assert "Alone, layer fc1: RTL" in msg and "cycles" in msg, msg


def test_fuzz_smoke_on_small_builds(n1, n3):
    rep = run_fuzz(8, seed=100, configs=["n1d1", "n3d4"], log=lambda m: None)
    assert rep.ok, rep.lines()
    assert rep.cases == 8 and rep.runs >= 8


def test_fuzz_case_is_reproducible_from_its_seed():
    a, b = fuzz_case(42), fuzz_case(42)
    assert a.name == b.name and len(a.runs) == len(b.runs)
    assert np.array_equal(a.image.spmat, b.image.spmat)
    assert all(np.array_equal(x.x, y.x) for x, y in zip(a.runs, b.runs, strict=True))


@pytest.mark.icarus
def test_icarus_runs_the_same_checks():
    """Opt-in (`pytest -m icarus`): Icarus Verilog is not installable with pip, so the default
    suite does not collect it; asked for without Icarus, it fails instead of passing quietly."""
    assert have_simulator("icarus"), "Icarus Verilog (iverilog) is not installed"
    config = FUZZ_CONFIGS["n3d4"]
    design = eie_design(config, sim="icarus")
    image, rng = _network(21, [20, 12, 6], 0.4, config)
    runs = [make_run(image, _input(rng, 20, 0.5, config), label="icarus")]
    _check(run_job(design, Job([Case("icarus", image, runs, stall_seed=1)])))


# -- slow: the 64-PE design (make sim runs these through `eie sim`) ------------------------------

@pytest.mark.slow
def test_alexnet_layers_on_64_pes_bit_exact_and_cycle_exact():
    from sim.regress import alexnet_entries, regression

    config = PRESETS["eie64"]
    entries = alexnet_entries(config, ["Alex-6", "Alex-7", "Alex-8", "alexnet"],
                              log=lambda m: None)
    reg = regression(config, entries, log=lambda m: None)
    assert reg.ok, [c.message for c in reg.result.cases if not c.ok]
    for row in reg.rows:
        assert row.rtl_cycles == row.entry.model_cycles


@pytest.mark.slow
@pytest.mark.mnist
@pytest.mark.skipif(not os.environ.get("EIE_MNIST_DIR"), reason="EIE_MNIST_DIR not set")
@pytest.mark.skipif(not (REPO / LENET_MODEL).exists(),
                    reason=f"no {LENET_MODEL} (make demo, or eie sim, produces it)")
def test_mnist_lenet300_through_rtl_equals_golden():
    from sim.regress import mnist_entry, regression

    config = PRESETS["eie64"]
    entry, info = mnist_entry(config, 200, log=lambda m: None)
    reg = regression(config, [entry], info, log=lambda m: None)
    assert reg.ok, [c.message for c in reg.result.cases if not c.ok]
    assert np.array_equal(reg.rtl_mnist_pred(), info.golden_pred)


@pytest.mark.slow
def test_fuzz_every_build():
    rep = run_fuzz(120, seed=1000, log=lambda m: None)
    assert rep.ok, rep.lines()
