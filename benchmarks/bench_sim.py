"""Simulation speed of the generated 64-PE EIE under cocotb + Verilator.

Prints, for Alex-6 on eie64 (queue depth 8): simulated cycles per wall second and per CPU
second while the design runs freely (start -> done, no Python per cycle), the image load rate
through the wide write port (one Python write per cycle), and the per-run host overhead of a
small network (input writes, start, done, output and counter reads) from 200 runs of a
784-300-100-10 layer chain with random weights.

    .venv/bin/python benchmarks/bench_sim.py
    .venv/bin/python benchmarks/bench_sim.py --repeat 5 --no-small   # the speed figure only

``--repeat`` runs the layer that many times in one simulator process (one image load) and
prints every run's figure and their median: the CPU-second figure is the simulator process's
own CPU time (Verilator's model and cocotb's Python), so it is comparable on a loaded machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

from sim.regress import alexnet_entries, log_stderr, regression
from sim.session import run_job
from sw.eie.config import PRESETS
from sw.eie.fixedpoint import quantize_input
from sw.eie.pack import pack_network
from sw.qlayer import QuantizedLayer


def _lenet_like(rng: np.random.Generator) -> list[QuantizedLayer]:
    layers = []
    for i, (n_out, n_in, d) in enumerate([(300, 784, 0.08), (100, 300, 0.09), (10, 100, 0.26)]):
        codes = np.where(rng.random((n_out, n_in)) < d, rng.integers(1, 16, (n_out, n_in)), 0)
        cb = np.zeros(16, np.float32)
        cb[1:] = rng.normal(0, 0.1, 15)
        layers.append(QuantizedLayer(f"ip{i + 1}", "linear", cb, codes.astype(np.uint8),
                                     rng.normal(0, 0.1, n_out).astype(np.float32), 4))
    return layers


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--layer", default="Alex-6", help="EIE Table III layer (default Alex-6)")
    ap.add_argument("--repeat", type=int, default=1, help="runs of the layer (default 1)")
    ap.add_argument("--no-small", action="store_true", help="skip the 784-300-100-10 runs")
    args = ap.parse_args()
    config = PRESETS["eie64"]
    entries = alexnet_entries(config, [args.layer], assigns=("interleaved",), log=log_stderr)
    entries[0].case.runs = entries[0].case.runs * args.repeat
    reg = regression(config, entries, log=log_stderr)
    case = reg.result.cases[0]
    for run in case.runs:
        print(f"{args.layer} on eie64: {run.cycles:,} cycles in {run.wall_s:.2f} s wall / "
              f"{run.cpu_s:.2f} s CPU: {run.cycles / run.wall_s:,.0f} cycles/s wall, "
              f"{run.cycles / run.cpu_s:,.0f} cycles/s CPU; bit-exact and cycle-exact: {case.ok}")
    if len(case.runs) > 1:
        print(f"median of {len(case.runs)} runs: "
              f"{statistics.median(r.cycles / r.wall_s for r in case.runs):,.0f} cycles/s wall, "
              f"{statistics.median(r.cycles / r.cpu_s for r in case.runs):,.0f} cycles per CPU "
              f"second of the simulator")
    print(f"image load: {case.load_writes:,} writes in {case.load_s:.2f} s "
          f"({case.load_writes / case.load_s:,.0f} writes/s)")
    print("load average (1, 5, 15 min): " + ", ".join(f"{x:.1f}" for x in os.getloadavg()))
    if args.no_small:
        return

    from sim.design import eie_design
    from sim.job import Case, Job, make_run

    rng = np.random.default_rng(0)
    image = pack_network(_lenet_like(rng), config)
    xs = quantize_input(rng.random((200, 784)) * (rng.random((200, 784)) < 0.19), config)
    runs = [make_run(image, x) for x in xs]
    t = time.perf_counter()
    res = run_job(eie_design(config, log=log_stderr), Job([Case("lenet-like", image, runs)]))
    wall = time.perf_counter() - t
    c = res.cases[0]
    cyc = sum(r.cycles for r in c.runs)
    sim = sum(r.wall_s for r in c.runs)
    print(f"784-300-100-10 x{len(runs)}: {cyc / len(runs):,.0f} cycles per run, "
          f"{(c.wall_s - c.load_s) / len(runs) * 1e3:.1f} ms per run in the simulator process "
          f"({sim / len(runs) * 1e3:.1f} ms of it running freely), {wall:.1f} s with the "
          f"simulator launch; ok: {c.ok}")


if __name__ == "__main__":
    main()
