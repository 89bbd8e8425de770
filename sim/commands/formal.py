"""Formal proofs of the broadcast network (SymbiYosys): activation queue, LNZD tree, central control."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--only", nargs="*", default=None, metavar="NAME",
                   help="property sets to run (default: all): queue, queue_d1, queue_d8, "
                        "queue_mutant, lnzd_n4, lnzd_n5, control")
    p.add_argument("--fast", action="store_true", help="only the checks `make test` runs")
    p.add_argument("--out", type=Path, default=Path("build/formal"),
                   help="generated RTLIL, .sby files and sby's work directories")


def run(args: argparse.Namespace) -> int:
    from sim.formal import CHECKS, HEADER, ok, run_checks

    checks = [c for c in CHECKS if (args.only is None or c.name in args.only)
              and (not args.fast or c.fast)]
    print(HEADER)
    print("-" * len(HEADER))
    results = run_checks(checks, args.out, echo=lambda s: print(s, flush=True))
    bad = [(c, r) for c, r in results if not ok(c, r)]
    print("-" * len(HEADER))
    for c, r in results:
        if r.status == "FAIL" or not ok(c, r):
            print(f"{c.name} {c.mode}: {r.status} (expected {c.expect}), {r.workdir}")
            for line in r.detail.splitlines():
                print(f"  {line}")
    print(f"{len(results) - len(bad)}/{len(results)} as expected")
    return 1 if bad else 0
