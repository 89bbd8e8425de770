"""Mutation score of the EIE RTL's tests (issue 15, item 4; sim/mutation.py).

Draws ``--per-block`` mutants (default 7) of each of the nine blocks of hw/ (activation queue,
LNZD tree + skid buffer, pointer read, sparse-matrix read, arithmetic unit, activation r/w,
central control, PE, top) from a snapshot of ``--commit`` (default HEAD) with ``--seed``
(default 0), runs each in a temporary copy of the tree against its block's fast tests and, if
they pass, the regression on the small ``n8d3z`` build (Verilator); prints one line per mutant,
the score per block and overall, and every survivor with the reason it survives (the
explanations below, keyed by the mutant; a survivor without one is flagged UNEXPLAINED).
Writes the outcomes as JSON (``--json``, default build/mutation.json).

Run: .venv/bin/python benchmarks/bench_mutation.py [--seed 0] [--per-block 7] [--jobs 1]
     [--only BLOCK ...] [--no-regression] [--commit REV] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sim.mutation import BLOCKS, draw, resolve_commit, run_mutant, tree_snapshot

ROOT = Path(__file__).resolve().parent.parent

# Why a surviving mutant survives, keyed by Mutant.key ("path|operator|old|new"): an
# equivalent mutant (the argument why no input can tell it apart), or the test added to kill it.
EXPLANATIONS: dict[str, str] = {
    "hw/pointer_read.py|constant|addr = Signal(p.ptr_addr_bits + 1)|1|0":
        "equivalent: the pointer address ptr_base + j loses its carry bit, but a packed layer "
        "keeps ptr_base + n_in <= ptr_depth - 1 (the pointers p_j and p_j+1 both exist), so "
        "ptr_base + j <= ptr_depth - 2 < 2**ptr_addr_bits always fits without it; the even "
        "bank's (addr + 1) >> 1 is computed at the sum's own (wider) width either way",
    "hw/arithmetic_unit.py|delete-assignment|m.d.comb += self.busy.eq(self.i.valid | valid2 | "
    "valid3)|m.d.comb += self.busy.eq(self.i.valid | valid2 | valid3)|pass":
        "equivalent: ArithmeticUnit.busy has no reader (hw/pe.py counts busy cycles from the "
        "sparse-matrix reader's `free` and the column start, not from this port): a dead "
        "output, reported to the RTL owner",
    "hw/top.py|constant|rst_ctl = Signal(init=1, reset_less=True)|1|0":
        "equivalent: only the power-up value of the control unit's and LNZD tree's reset "
        "register changes. In cycle 0 their registers hold their init values, which are their "
        "reset values, so being in reset or not then changes no output (ready, busy, done are "
        "low in CLEAR either way); in cycle 1 rst_ctl = rst_q = 1 in both, so every state "
        "reached in cycle 0 is reset again and both leave reset in cycle 2 with the PEs. "
        "After any rst pulse rst_ctl follows rst_q, the same in both",
    "hw/lnzd.py|constant|less = {(a, b): keys[b] < keys[a] for a in range(4) for b in "
    "range(a + 1, 4)}|4|3":
        "equivalent: the same design. The outer range only stops one step earlier, at a = 3, "
        "whose inner range(4, 4) is empty: both comprehensions build the same six comparisons "
        "(0, 1) .. (2, 3) (a different source text, not a different circuit)",
    "hw/spmat_read.py|constant|rem.eq(Mux(col.nonempty, col.e - 1, 0)),|0|1":
        "equivalent: rem is read only while free is low (the continue branch: rem - 1 and "
        "free <= rem == 1), and every column start writes it. A column with nonempty low comes "
        "from the pointer reader's column register with e = 0, hence short = (e <= 1) high, "
        "so that start sets free: the mutant's rem = 1 (instead of 0) is never read before the "
        "next column start overwrites it (after reset rem = 0 and free = 1 as before)",
    "hw/arithmetic_unit.py|operator|m.d.comb += self.busy.eq(self.i.valid | valid2 | valid3)|"
    "self.i.valid | valid2 | valid3|((self.i.valid | valid2) & valid3)":
        "equivalent: ArithmeticUnit.busy has no reader (hw/pe.py counts busy cycles from the "
        "sparse-matrix reader's `free` and the column start), as for its deleted assignment "
        "at 9928eda: a dead output, reported to the RTL owner",
    "hw/pe.py|operator|m.d.pe += n.eq(n + 1)|n + 1|(n - 1)":
        "a missing test, added after the 4b66a06 run: tests/test_hw_eie.py::"
        "test_access_counters_count_what_the_cycle_model_counts kills it (the "
        "simulation build's access counters were checked only by the slow Verilator test "
        "tests/test_access.py, which the fast suite skips)",
    "hw/top.py|delete-assignment|m.d.comb += ccu.start.eq(self.start & ~self.wr.valid)|"
    "m.d.comb += ccu.start.eq(self.start & ~self.wr.valid)|pass":
        "a missing test, added after the 4b66a06 run: tests/test_hw_eie.py::"
        "test_a_start_with_a_host_write_in_the_same_cycle_waits_for_a_cycle_without_one kills "
        "it (without the line the run-port loop drives ccu.start = start "
        "ungated, and no test asserted start in a cycle with a write)",
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--per-block", type=int, default=7)
    ap.add_argument("--jobs", type=int, default=1, help="mutants run at once")
    ap.add_argument("--only", nargs="*", choices=list(BLOCKS), help="these blocks only")
    ap.add_argument("--no-regression", action="store_true", help="fast tests only")
    ap.add_argument("--commit", default="HEAD")
    ap.add_argument("--test-timeout", type=float, default=300)
    ap.add_argument("--regress-timeout", type=float, default=900)
    ap.add_argument("--json", type=Path, default=ROOT / "build" / "mutation.json")
    args = ap.parse_args(argv)

    commit = resolve_commit(args.commit)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="eie-mutants-") as tmp:
        base = tree_snapshot(Path(tmp) / "base", commit)
        mutants = draw(base, args.seed, args.per_block, args.only)
        print(f"{len(mutants)} mutants of commit {commit[:12]}, seed {args.seed}, "
              f"{args.per_block} per block", flush=True)

        def one(i_m):
            i, m = i_m
            o = run_mutant(m, base, Path(tmp) / f"m{i}", args.test_timeout, args.regress_timeout,
                           regression=not args.no_regression)
            verdict = f"killed ({o.stage})" if o.killed else "SURVIVED"
            print(f"[{i + 1:3d}/{len(mutants)}] {verdict:20s} {o.seconds:6.1f} s  "
                  f"{m.describe()[:110]}\n{'':29s}{o.reason[:140]}", flush=True)
            return o

        with ThreadPoolExecutor(max(1, args.jobs)) as ex:
            outcomes = list(ex.map(one, enumerate(mutants)))

    print()
    print(f"{'block':18s} {'mutants':>7s} {'killed':>6s} {'score':>6s}")
    for block in BLOCKS:
        os_ = [o for o in outcomes if o.mutant.block == block]
        if os_:
            k = sum(o.killed for o in os_)
            print(f"{block:18s} {len(os_):7d} {k:6d} {k / len(os_):6.0%}")
    killed = sum(o.killed for o in outcomes)
    by_stage = {s: sum(o.stage == s and o.killed for o in outcomes) for s in ("tests", "regression")}
    timeouts = sum(o.killed and o.reason.startswith("timeout") for o in outcomes)
    print(f"{'total':18s} {len(outcomes):7d} {killed:6d} {killed / max(1, len(outcomes)):6.1%}"
          f"   (killed by the fast tests {by_stage['tests']}, by the regression "
          f"{by_stage['regression']}; {timeouts} by a timeout)")
    survivors = [o for o in outcomes if not o.killed]
    unexplained = 0
    if survivors:
        print("\nsurviving mutants:")
        for o in survivors:
            why = EXPLANATIONS.get(o.mutant.key)
            unexplained += why is None
            print(f"- {o.mutant.describe()}\n    {why or 'UNEXPLAINED: needs analysis'}")
    print(f"\n{time.perf_counter() - t0:.0f} s wall")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({
        "commit": commit, "seed": args.seed, "per_block": args.per_block,
        "regression": not args.no_regression, "mutants": len(outcomes), "killed": killed,
        "score": killed / max(1, len(outcomes)),
        "outcomes": [o.to_dict() | {"explanation": EXPLANATIONS.get(o.mutant.key)}
                     for o in outcomes]}, indent=1))
    print(f"outcomes: {args.json}")
    return 0 if unexplained == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
