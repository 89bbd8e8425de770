"""Fuzz campaigns on the task farm: wall time against the number of Dask workers.

Runs the same campaign (seeds --seed .. of every fuzz build) once per worker count of
--workers (a LocalCluster of that many worker processes; 0: in this process, no Dask) and,
with --scheduler, once on an existing cluster; prints each run's wall time, the speed-up over
the first, the tasks and where they ran, and whether every run gave the same verdict and the
same message for every seed. The builds are made (or found in the cache) by a warm-up
campaign of one seed per build first, so the figures are simulation, not Verilator.

Run: .venv/bin/python benchmarks/bench_farm.py [--fuzz 200] [--workers 1,2] [--seed 0]
     [--configs n1d1,n3d4] [--scheduler tcp://127.0.0.1:8786]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sim.farm import open_farm  # noqa: E402
from sim.fuzz import FUZZ_CONFIGS, run_fuzz  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fuzz", type=int, default=200)
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--configs", default=",".join(FUZZ_CONFIGS))
    ap.add_argument("--scheduler")
    args = ap.parse_args()
    configs = [c for c in args.configs.split(",") if c]
    quiet = lambda m: None  # noqa: E731
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start")
    t = time.perf_counter()
    with open_farm(workers=len(configs)) as farm:  # warm-up: every build made or found
        run_fuzz(len(configs), args.seed, configs, quiet, chunk=1, farm=farm)
    print(f"warm-up (builds): {time.perf_counter() - t:.0f} s")
    settings = [("workers", int(w)) for w in args.workers.split(",") if w.strip()]
    if args.scheduler:
        settings.append(("scheduler", args.scheduler))
    results = []
    for kind, value in settings:
        load = os.getloadavg()[0]
        farm = open_farm(workers=value) if kind == "workers" else open_farm(scheduler=value)
        with farm:
            t = time.perf_counter()
            rep = run_fuzz(args.fuzz, args.seed, configs, quiet, farm=farm)
            wall = time.perf_counter() - t
            results.append((farm.description, wall, rep, load))
    base = results[0][1]
    print(f"\n--fuzz {args.fuzz} --seed {args.seed}, builds {', '.join(configs)}")
    print(f"{'farm':<48} {'wall s':>7} {'speed-up':>8} {'passed':>9} {'load':>5}")
    for desc, wall, rep, load in results:
        print(f"{desc:<48} {wall:>7.0f} {base / wall:>8.2f} {rep.passed:>4}/{rep.cases:<4} "
              f"{load:>5.1f}")
        for line in rep.farm:
            print(f"    {line}")
    verdicts = [sorted(rep.failures) for _, _, rep, _ in results]
    same = all(v == verdicts[0] for v in verdicts)
    print(f"same verdict and message for every seed in every run: {'yes' if same else 'NO'}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
