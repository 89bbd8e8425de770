"""Functional coverage (sim/coverage.py): the bins, their merging and report, and that each
sampler counts what an independent computation says (cycle schedule, golden accumulators,
LNZD ties); the RTL-side hooks (host stalls the driver inserted, ports at a mid-run reset) on
the small Verilator build; steering toward holes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers_eie import random_layer, reference_matvec, roomy

from hw.timing import rtl_timing
from sim.coverage import (
    POINTS,
    Coverage,
    record_coverage,
    sample_case,
    sample_job,
    sample_layer,
    steer,
)
from sim.design import eie_design
from sim.fuzz import FUZZ_CONFIGS
from sim.job import Case, Job, make_run
from sim.runner import have_simulator, simulator
from sim.session import run_job
from sw.eie.fixedpoint import int_range
from sw.eie.pack import pack_network
from sw.qlayer import QuantizedLayer


def _layer(codes, cb, bias=None, relu=False, name="fc0"):
    codes = np.asarray(codes, np.uint8)
    bits = max(1, int(np.ceil(np.log2(len(cb)))))
    full = np.zeros(1 << bits, np.float32)
    full[: len(cb)] = cb
    return QuantizedLayer(name, "linear", full, codes, bias, bits, relu=relu)


def test_bins_are_declared_before_they_are_hit_and_merge_and_round_trip_as_json(tmp_path):
    cov = Coverage()
    assert ("arith.saturation", "high") in cov.holes
    assert set(cov.bins) == set(POINTS)
    cov.declare_config(queue_depth=2, capacity=5)
    assert ("queue.level", "depth 2: 5 (full)") in cov.holes
    other = Coverage()
    other.hit("arith.saturation", "high", 3)
    cov.merge(other).merge(other)
    assert cov.bins["arith.saturation"]["high"] == 6
    with pytest.raises(KeyError):
        cov.hit("no.such.point", "x")
    cov.save(tmp_path / "c.json")
    back = Coverage.load(tmp_path / "c.json")
    assert back.bins == cov.bins
    d = json.loads((tmp_path / "c.json").read_text())
    assert d["bins"] == sum(len(b) for b in cov.bins.values())
    assert d["points"]["arith.saturation"]["source"] == "model"
    table = cov.table()
    assert "0  <- HOLE" in table and "depth 2: 5 (full)" in table
    assert f"{cov.summary()[0]} of {cov.summary()[1]} bins hit" in table


def test_bypass_is_counted_where_the_schedule_puts_same_row_entries_in_adjacent_cycles():
    # 2 PEs, one row each, dense: every column has one entry per PE in row 0, and the columns
    # follow each other every cycle (the queue holds all six pairs: no stall), so every entry
    # after the first hits the previous one's row
    cfg = roomy(2, queue_depth=4)
    img = pack_network([_layer(np.ones((2, 6)), [0.0, 0.5])], cfg)
    cov = Coverage()
    sample_layer(cov, img, 0, np.array([3, 1, 2, 4, 5, 6]))
    assert cov.bins["bypass"]["same row in consecutive cycles (bypass)"] == 2 * 5
    # a zero input in the middle: its column is not broadcast, the others still follow
    cov = Coverage()
    sample_layer(cov, img, 0, np.array([3, 1, 0, 0, 5, 6]))
    assert cov.bins["bypass"]["same row in consecutive cycles (bypass)"] == 2 * 3
    # two rows per PE, the second column hits the other row: no bypass
    img2 = pack_network([_layer([[1, 0], [1, 0], [0, 1], [0, 1]], [0.0, 0.5])], cfg)
    cov = Coverage()
    sample_layer(cov, img2, 0, np.array([1, 1]))
    assert cov.bins["bypass"]["same row in consecutive cycles (bypass)"] == 0


def test_queue_levels_reach_full_and_the_stall_is_blamed_on_the_pe_with_the_long_column():
    # the smallest queue whose capacity (depth + held pairs) exceeds the column latency + the
    # room latency: a PE taking a pair per cycle never stalls the broadcast, a long column does
    t = rtl_timing(roomy(2))
    depth = t.column_latency + t.room_latency - t.held_pairs + 1
    cfg = roomy(2, queue_depth=depth)
    assert rtl_timing(cfg) == t
    codes = np.zeros((2 * 20, 12), np.uint8)
    codes[0:40:2, 0] = 1  # PE 0 (even rows): a 20-entry first column, then one entry per column
    codes[0, 1:] = 1
    codes[1, :] = 1  # PE 1: one entry per column
    img = pack_network([_layer(codes, [0.0, 0.25])], cfg)
    cov = Coverage()
    sample_layer(cov, img, 0, np.ones(12, np.int64), rtl_stalls=5)
    full = f"depth {depth}: {depth + t.held_pairs} (full)"
    assert cov.bins["queue.level"][full] == 1  # PE 0 only
    assert cov.bins["queue.long_column"]["> queue_depth + held pairs"] == 1
    assert cov.bins["pe.first"]["caused a stall"] > 0 and cov.bins["pe.last"]["caused a stall"] == 0
    assert cov.bins["queue.stall"][f"depth {depth}"] == 1


def test_saturation_relu_and_wrap_around_agree_with_a_dense_reference():
    rng = np.random.default_rng(3)
    cfg = roomy(3, act_bits=8, act_frac=0, acc_bits=18)
    codes = np.where(np.arange(12)[:, None] < 6, 1, 2) * (rng.random((12, 40)) < 0.9)
    q = _layer(codes, [0.0, 100.0, -100.0], relu=True)
    img = pack_network([q], cfg)
    assert img.layers[0].shift == 0
    lo, hi = int_range(cfg.act_bits)
    x = np.where(rng.random(40) < 0.8, hi, lo + 1)
    cov = Coverage()
    sample_layer(cov, img, 0, x)
    acc = img.to_physical(0, reference_matvec(q, img.codebook[0], x))  # no bias, shift 0
    a_lo, a_hi = int_range(cfg.acc_bits)
    assert cov.bins["arith.accumulator"]["wraps above"] == np.count_nonzero(acc > a_hi) > 0
    assert cov.bins["arith.accumulator"]["wraps below"] == np.count_nonzero(acc < a_lo) > 0
    y = ((acc - a_lo) % (1 << cfg.acc_bits)) + a_lo  # wrapped, shift 0: no rounding
    assert cov.bins["arith.saturation"]["high"] == np.count_nonzero(y > hi)
    assert cov.bins["arith.saturation"]["low"] == np.count_nonzero(y < lo)
    assert cov.bins["arith.relu"]["clamped (negative -> 0)"] == np.count_nonzero(y < 0)
    assert cov.bins["arith.relu"]["off: negative value kept"] == 0


def test_lnzd_ties_count_local_indices_shared_by_several_pes():
    cfg = roomy(8)
    img = pack_network([_layer(np.ones((8, 24)), [0.0, 0.5])], cfg)
    x = np.zeros(24, np.int64)
    x[[0, 1]] = 1  # local index 0: PEs 0 and 1 (one leaf node)
    x[8:16] = 2  # local index 1: all 8 PEs (both leaf nodes)
    x[[16 + 2, 16 + 6, 16 + 7]] = 3  # local index 2: PEs 2, 6, 7 (across leaf nodes)
    cov = Coverage()
    sample_layer(cov, img, 0, x)
    b = cov.bins["lnzd"]
    assert (b["tie of 2 PEs"], b["tie of 3+ PEs"], b["tie of all N PEs (N > 1)"]) == (1, 2, 1)
    assert b["tie across leaf nodes"] == 2 and b["a PE with no non-zeros"] == 0
    assert cov.bins["empty"]["layer with no non-zero input"] == 0


def test_a_case_samples_its_configuration_chain_and_padding():
    cfg = roomy(3, index_bits=2, spmat_word_bits=48)  # z < 4: padding in long zero runs
    codes = np.zeros((3 * 12, 4), np.uint8)
    codes[33, :] = 1  # PE 0, local row 11: padding entries at each column's start
    img = pack_network([_layer(codes, [0.0, 0.5]), _layer(np.ones((3, 36)), [0.0, 0.5], name="fc1")],
                       cfg)
    runs = [make_run(img, np.array([1, 2, 3, 4]), 0, 2), make_run(img, np.ones(4, np.int64), 0, 1)]
    cov = Coverage()
    sample_case(cov, Case("c", img, runs))
    assert cov.bins["config"]["N not a power of 4"] == 1
    assert cov.bins["chain"]["2 layers back to back"] == 1 and cov.bins["chain"]["1 layer"] == 1
    assert cov.bins["chain"]["several runs on one image"] == 1
    assert cov.bins["padding"]["at a column's start"] == 2 * 4  # two runs, 4 columns
    assert cov.bins["padding"]["several in a row"] > 0
    assert cov.bins["empty"]["PE without entries in a layer"] >= 2  # PEs 1 and 2 in fc0


def test_steer_prefers_seeds_that_hit_holes():
    cfg = roomy(1)
    img = pack_network([_layer(np.ones((4, 4)), [0.0, 0.5], relu=True)], cfg)

    def case_of(seed: int) -> Case:  # seed 7: a negative input, so ReLU clamps; others do not
        x = np.full(4, -3 if seed == 7 else 2, np.int64)
        return Case(f"s{seed}", img, [make_run(img, x)])

    seen = Coverage()
    sample_case(seen, case_of(0))
    assert seen.bins["arith.relu"]["clamped (negative -> 0)"] == 0
    assert steer(seen, range(10), 2, case_of) == [7, 0]
    assert steer(seen, [1, 2, 3], 2, case_of) == [1, 2]  # nothing new: candidate order


def test_record_coverage_merges_into_the_file_named_by_the_environment(tmp_path, monkeypatch):
    cfg = roomy(1)
    img = pack_network([_layer(np.ones((2, 2)), [0.0, 0.5])], cfg)
    job = Job([Case("c", img, [make_run(img, np.array([1, 1]))])])
    monkeypatch.delenv("EIE_COVERAGE", raising=False)
    assert record_coverage(job, None) is None
    monkeypatch.setenv("EIE_COVERAGE", str(tmp_path / "cov.json"))
    record_coverage(job, None)
    record_coverage(job, None)
    total = Coverage.load(tmp_path / "cov.json")
    assert total.bins["chain"]["1 layer"] == 2
    assert total.bins == Coverage().merge(sample_job(job)).merge(sample_job(job)).bins


@pytest.mark.skipif(not have_simulator(simulator()), reason="no simulator")
@pytest.mark.xdist_group("sim_eie")  # the N = 3 build of tests/test_sim_eie.py, built once
def test_the_testbench_reports_host_stalls_and_the_ports_a_reset_interrupts():
    cfg = FUZZ_CONFIGS["n3d4"]
    rng = np.random.default_rng(5)
    img = pack_network([random_layer(rng, 30, 40, 0.5, scale=0.3, relu=True, name="fc0"),
                        random_layer(rng, 20, 30, 0.5, scale=0.3, name="fc1")], cfg)
    x = rng.integers(-40, 40, 40)
    aborted = make_run(img, x, 0, 2)
    aborted.reset_after = 3  # during the first layer's compute
    late = make_run(img, x, 0, 2)
    late.reset_after = aborted.model_cycles[0] + 4  # in the second layer
    job = Job([Case("c", img, [aborted, late, make_run(img, x, 0, 1)], stall_seed=1, stall_p=0.5)])
    result = run_job(eie_design(cfg), job)
    assert result.ok, result.first_failure.message
    r0, r1, _ = result.cases[0].runs
    assert (r0.reset_busy, r0.reset_layer) == (True, 0)
    assert (r1.reset_busy, r1.reset_layer) == (True, 1)
    gaps = result.cases[0].host_gaps
    assert gaps["write"] > 0 and gaps["read"] > 0
    cov = sample_job(job, result)
    assert cov.bins["reset"]["in the first layer's compute"] == 1
    assert cov.bins["reset"]["in a later layer of a chain"] == 1
    assert cov.bins["host"]["write"] == gaps["write"]


def test_a_case_of_many_runs_samples_the_layer_bins_of_at_most_max_layer_runs(monkeypatch):
    import sim.coverage as coverage

    monkeypatch.setattr(coverage, "MAX_LAYER_RUNS", 4)
    cfg = roomy(1)
    img = pack_network([_layer(np.ones((2, 2)), [0.0, 0.5])], cfg)
    cov = Coverage()
    sample_case(cov, Case("c", img, [make_run(img, np.array([0, 0])) for _ in range(10)]))
    assert cov.bins["chain"]["1 layer"] == 10  # run-level bins: every run
    assert cov.bins["lnzd"]["no non-zero at all"] == 4  # layer bins: 4 evenly spaced runs


def test_directed_cases_close_the_wrap_and_reset_holes():
    from sim.coverage import closure_cases

    small = {k: c for k, c in FUZZ_CONFIGS.items() if c.n_pe <= 8}
    cases = dict((c.name.split(":")[1], (name, c)) for name, c in closure_cases(Coverage(), small))
    name, wrap = cases["wrap"]
    assert name == "n4d8w"  # the only small build whose accumulator a layer can overflow
    cov = Coverage()
    sample_case(cov, wrap)
    assert cov.bins["arith.accumulator"]["wraps above"] > 0
    assert cov.bins["arith.accumulator"]["wraps below"] > 0
    assert "reset" in cases


@pytest.mark.skipif(not have_simulator(simulator()), reason="no simulator")
@pytest.mark.xdist_group("sim_eie")
def test_the_directed_reset_case_hits_every_reset_bin_in_the_rtl():
    from sim.coverage import _reset_case

    case = _reset_case(FUZZ_CONFIGS["n3d4"])
    job = Job([case])
    result = run_job(eie_design(FUZZ_CONFIGS["n3d4"]), job)
    assert result.ok, result.first_failure.message
    cov = sample_job(job, result)
    assert all(cov.bins["reset"].values()), cov.bins["reset"]
