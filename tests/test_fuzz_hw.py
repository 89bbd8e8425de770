"""Random hardware (sim/fuzz_hw.py): configurations drawn from a seed, judged by EIEConfig alone,
the illegal ones rejected with their message and never built; the legal ones built and run
(slow); steering the layer fuzz toward coverage holes (sim/fuzz.py)."""

from __future__ import annotations

import pytest

import sim.fuzz_hw as fh
from eie.cli import main
from sim.coverage import Coverage, sample_case
from sim.fuzz import fuzz_case, plan_seeds, random_case, steered_seeds
from sw.eie.config import EIEConfig
from sw.errors import ConfigError, FitError


def test_draws_are_reproducible_and_judged_by_eieconfig_alone():
    assert fh.draw_fields(17) == fh.draw_fields(17)
    p = fh.plan(200, 0)
    assert len(p.legal) == 200 and p.rejected
    seeds = [s for s, _ in p.legal] + [s for s, _ in p.rejected]
    assert sorted(seeds) == list(range(len(seeds)))  # every draw either built or rejected
    for s, msg in p.rejected:  # the message is EIEConfig's own, for that draw's fields
        with pytest.raises(ConfigError) as e:
            EIEConfig(**fh.draw_fields(s))
        assert str(e.value) == msg and msg.startswith(f"config 'hw{s}': ")
    for s, c in p.legal:
        assert c == EIEConfig(**fh.draw_fields(s))
    # the rejections come from several of EIEConfig's rules, not one
    kinds = {m.split(": ", 1)[1].split(" ")[0] for _, m in p.rejected}
    assert {"act_frac", "queue_depth", "spmat_word_bits", "entries"} <= kinds
    legal = [c for _, c in p.legal]
    # act_bits 4..16 all drawn (issue 14: the fuzz covers act_bits); N from 1 past 32
    assert {c.act_bits for c in legal} == set(range(4, 17))
    ns = [c.n_pe for c in legal]
    assert min(ns) == 1 and max(ns) > 32 and sum(n <= 16 for n in ns) > 0.85 * len(ns)
    assert {c.queue_depth for c in legal} >= {1, 2, 3, 8, 16}


def test_each_legal_draw_gets_cases_sized_to_its_memories():
    fitted = 0
    for s, c in fh.plan(30, 0).legal:
        for x in fh.case_seeds(s):
            try:
                case = random_case(x, c, c.name)
            except FitError:
                continue
            fitted += 1
            assert case.image.config == c and case.name.startswith(f"seed{x}:hw{s}:")
            lo, hi = -(1 << (c.act_bits - 1)), (1 << (c.act_bits - 1)) - 1
            assert all(lo <= v <= hi for r in case.runs for v in r.x)
    assert fitted >= 85


def test_random_case_on_a_fuzz_build_is_the_fuzz_case():
    a, b = fuzz_case(7), random_case(7, fuzz_case(7).image.config, "n2d2")
    assert a.name == b.name and [r.x.tolist() for r in a.runs] == [r.x.tolist() for r in b.runs]


def test_rejected_draws_are_never_built_and_a_failure_names_its_reproduce_command(monkeypatch):
    calls = []

    def fake(seed, cases=fh.CASES, keep=False):  # stands in for generate + build + run
        calls.append(seed)
        r = fh.HwResult(seed, fh.draw_config(seed).to_dict(), build_s=1.0, cases=["c"],
                        ok=[seed != 6], messages=["" if seed != 6 else "layer 0 PE 1 row 2"],
                        runs=2)
        return r

    monkeypatch.setattr(fh, "hw_task", fake)
    rep = fh.run_fuzz_hw(3, seed=4, log=lambda m: None)
    assert calls == [4, 6, 7]  # draw 5 is illegal
    assert rep.rejected == [(5, "config 'hw5': index_bits must be in 1..8, got 9")]
    text = "\n".join(rep.lines())
    assert "4 configurations drawn, 1 rejected by EIEConfig (never built), 3 legal" in text
    assert "rejected draw 5: config 'hw5': index_bits must be in 1..8, got 9" in text
    assert "FAIL draw 6 (reproduce: eie sim --fuzz-hw 1 --seed 6): c: layer 0 PE 1 row 2" in text
    assert not rep.ok and rep.built == 3 and rep.runs == 6


def test_bad_fuzz_hw_arguments_are_one_line(capsys):
    assert main(["sim", "--fuzz-hw", "0"]) == 2
    assert main(["sim", "--fuzz-hw", "2", "--fuzz", "2"]) == 2
    assert main(["sim", "--steer"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["eie sim: error: --fuzz-hw needs at least one configuration, got 0",
                   "eie sim: error: give --fuzz (random layers on fixed builds) or --fuzz-hw "
                   "(random builds), not both",
                   "eie sim: error: --steer needs --fuzz"]


def _bins(seed: int) -> set:
    c = Coverage()
    sample_case(c, fuzz_case(seed))
    return {(p, b) for p, bb in c.bins.items() for b, k in bb.items() if k}


def test_steered_fuzz_runs_the_seeds_that_hit_holes_first():
    builds = ["n1d1", "n3d4"]
    first = plan_seeds(3, 0, builds)
    pool = sorted(x for g in plan_seeds(12, 0, builds).values() for x in g)
    bins = {s: _bins(s) for s in pool}
    # the coverage so far: everything the first three seeds reach; a later seed reaching a
    # bin none of them does must be chosen instead of one of them
    cov = Coverage()
    for s in sorted(x for g in first.values() for x in g):
        sample_case(cov, fuzz_case(s))
    seen = {(p, b) for p, bb in cov.bins.items() for b, k in bb.items() if k}
    new = [s for s in pool if bins[s] - seen]
    assert new, "no candidate reaches a bin the first seeds miss"
    chosen = sorted(x for g in steered_seeds(3, 0, builds, cov).values() for x in g)
    assert len(chosen) == 3 and set(chosen) & set(new)
    assert set().union(*(bins[s] for s in chosen)) - seen  # the steered run reaches new bins
    # without coverage (nothing hit yet) the choice still covers at least as many bins
    unsteered = set().union(*(bins[s] for g in first.values() for s in g))
    steered = set().union(*(bins[s] for g in steered_seeds(3, 0, builds).values() for s in g))
    assert len(steered) >= len(unsteered)


@pytest.mark.slow
def test_drawn_configurations_build_and_run_bit_and_cycle_exact():
    # draws 1 (N = 7, depth 5, 7-bit activations) and 7 (N = 1, depth 1, 4 + 3 bit entries
    # in 7-bit words, act_frac 8 of 9 bits), each built and run
    for s in (1, 7):
        rep = fh.run_fuzz_hw(1, seed=s, log=lambda m: None)
        assert rep.ok and rep.built == 1 and rep.cases >= 2 and rep.runs >= 2, rep.lines()
        assert rep.results[0].config == fh.draw_config(s).to_dict()
