"""Verilog for the 64-PE eie64 preset: generation time and size, Verilator lint and build, and
EIE's AlexNet layers run on the Verilated design (C++ harness, no cocotb): RTL cycles against
the cycle model and the paper, bit-exactness against the golden model, simulation speed.

    .venv/bin/python benchmarks/bench_verilog.py [--config eie64] [--layers Alex-6,Alex-7,Alex-8]
        [--balance]
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from hw import host  # noqa: E402
from hw.params import HWParams  # noqa: E402
from hw.timing import rtl_timing  # noqa: E402
from hw.verilog import generate  # noqa: E402
from sim import verilator_harness  # noqa: E402
from sw.eie import cycles, fixedpoint, golden  # noqa: E402
from sw.eie.benchlayers import TABLE3, bench_input, bench_layer  # noqa: E402
from sw.eie.config import EIEConfig  # noqa: E402
from sw.eie.pack import pack_network  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--config", default="eie64")
    ap.add_argument("--layers", default="Alex-6,Alex-7,Alex-8")
    ap.add_argument("--balance", action="store_true", help="load-balanced row assignment")
    ap.add_argument("--out", default=str(REPO / "build" / "bench_verilog"))
    args = ap.parse_args()
    cfg = EIEConfig.load(args.config)
    p = HWParams(cfg)
    work = Path(args.out)
    work.mkdir(parents=True, exist_ok=True)

    t0 = time.perf_counter()
    g = generate(cfg)
    t_gen = time.perf_counter() - t0
    v = work / "eie.v"
    v.write_text(g.text)
    print(f"config {cfg.name}: {cfg.n_pe} PEs, queue depth {cfg.queue_depth}"
          f"{', load-balanced rows' if args.balance else ''}")
    print(f"generate  {t_gen:6.1f} s   {len(g.text.encode()) / 1e6:.2f} MB  {v}")
    t0 = time.perf_counter()
    warnings = verilator_harness.lint(v, "eie", work / "lint")
    print(f"lint      {time.perf_counter() - t0:6.1f} s   {len(warnings)} warnings "
          f"(verilator --lint-only -Wall, waivers {' '.join(verilator_harness.LINT_WAIVERS)})")
    built = verilator_harness.build(v, "eie", work)
    print(f"build     {built.build_seconds:6.1f} s   {built.exe}")

    print(f"\n{'layer':8} {'shape':>12} {'writes':>7} {'RTL cyc':>8} {'model':>8} {'paper':>7} "
          f"{'bound':>7} {'stall':>6} {'exact':>5} {'run s':>6} {'cyc/s':>8}")
    for name in args.layers.split(","):
        spec = TABLE3[name]
        img = pack_network([replace(bench_layer(name), relu=True)], cfg, balance=args.balance)
        x = img.input_to_physical(fixedpoint.quantize_input(bench_input(name), cfg))
        load = host.image_load(p, img)
        out = verilator_harness.run(built.exe, p, host.reset_program(p) + [load]
                                    + host.inference_program(p, img, x, 0, 1), work)
        ((_, y),), (c,), (span,) = out.outputs, out.counters, out.spans
        exact = np.array_equal(y, golden.run_layer(img, 0, x))
        rep = cycles.simulate_layer(img, 0, x, rtl_timing(cfg))
        cyc, stall, secs = c.cycles, c.stall_cycles, span.wall_s
        assert cyc == rep.cycles and stall == rep.stall_cycles and np.array_equal(c.busy, rep.busy), \
            f"{name}: RTL {cyc}/{stall} cycles/stalls, model {rep.cycles}/{rep.stall_cycles}"
        print(f"{name:8} {spec.n_in:>5}x{spec.n_out:<6} {len(load.writes):>7} {cyc:>8} {rep.cycles:>8} "
              f"{spec.paper_cycles:>7} {rep.lower_bound:>7} {stall:>6} {'yes' if exact else 'NO':>5} "
              f"{secs:>6.2f} {cyc / secs:>8.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
