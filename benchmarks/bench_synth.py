"""FPGA design space: the EIE on a Lattice LFE5U-85F for N = 1, 2, 4, ... PEs.

For each N, the ecp5_max memory depths (per PE: 512 x 64-bit sparse matrix, 2K pointers, 32
activations per register file, 1K biases) with N PEs go through `hw.fpga` (Yosys synth_ecp5,
nextpnr-ecp5 out of context at the 125 MHz constraint of constraints/ecp5_clk.lpf); the table
gives the resources, the achieved Fmax and, from the cycle model (sw.eie.cycles) on EIE's Alex-7
layer (4096 x 4096, 9% weights, 35% activations; synthetic, sw.eie.benchlayers), the cycles per
layer at that N and the layers/s at that Fmax. Alex-7 needs ~1.6M entries: far more than the
FPGA's block RAM holds at any N, so this is the throughput on Alex-7-*sized* work (the cycle
model does not depend on memory depth). The sweep stops at the first N that does not fit,
reported with what overflowed (Yosys' counts: no place and route). Then a least-squares fit
of each resource to a + b N: b is the cost of one PE.

Run: nice .venv/bin/python benchmarks/bench_synth.py [--n 1,2,4,8,16,32,36] [--no-pnr]
     [--reuse] [--router router2] [--out build/bench_synth]
--reuse takes an existing report of the same configuration instead of running the tools again
and says whether the RTL has changed since (place and route of 16 PEs takes about 8 minutes
with router2 in the WebAssembly nextpnr on a shared 2-core machine, 32 PEs much longer).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hw.fpga import ecp5, flow  # noqa: E402
from hw.timing import rtl_timing  # noqa: E402
from sw.eie import fixedpoint  # noqa: E402
from sw.eie.benchlayers import TABLE3, bench_input, bench_layer  # noqa: E402
from sw.eie.config import PRESETS, EIEConfig  # noqa: E402
from sw.eie.cycles import simulate_layer  # noqa: E402
from sw.eie.pack import pack_network  # noqa: E402

# the per-PE memory depths of the FPGA presets (sw/eie/config.py ecp5_small / ecp5_max)
FPGA_DEPTHS = dict(queue_depth=8, spmat_words=1024, ptr_depth=2048, act_depth=64,
                   bias_depth=1024, max_layers=4)


def fpga_config(n: int) -> EIEConfig:
    base = PRESETS.get("ecp5_max")
    fields = {k: getattr(base, k) for k in FPGA_DEPTHS} if base else FPGA_DEPTHS
    return EIEConfig(name=f"ecp5_n{n}", n_pe=n, **fields)


def alex7_cycles(n: int, queue_depth: int, layer, x: np.ndarray) -> int:
    """Cycle-model cycles of Alex-7 on N PEs (memories sized for the layer, not the FPGA)."""
    b = TABLE3["Alex-7"]
    rows = -(-b.n_out // n)
    cfg = EIEConfig(name=f"alex7_n{n}", n_pe=n, queue_depth=queue_depth,
                    spmat_words=1 << 20, ptr_depth=b.n_in + 2, act_depth=max(-(-b.n_in // n), rows),
                    bias_depth=rows, max_layers=1)
    image = pack_network([replace(layer, relu=True)], cfg)
    a = image.input_to_physical(fixedpoint.quantize_input(x, cfg))
    return simulate_layer(image, 0, a, rtl_timing(cfg)).cycles


def run_one(n: int, out: Path, pnr: bool, reuse: bool, router: str) -> dict:
    from hw.verilog import generate

    cfg = fpga_config(n)
    d = out / f"n{n}"
    rep = d / "report.json"
    if reuse and rep.exists():
        old = json.loads(rep.read_text())
        same_cfg = {k: v for k, v in (old.get("config") or {}).items() if k != "name"} == \
            {k: v for k, v in cfg.to_dict().items() if k != "name"}
        if same_cfg and (old["resources_from"] == "nextpnr" or not pnr or not old["fits"]):
            v = d / "eie.v"
            fresh = v.exists() and _body(v.read_text()) == _body(generate(cfg, "eie").text)
            old["reused"] = "same RTL" if fresh else "RTL changed since"
            return old
    return flow.synthesize_config(cfg, d, pnr=pnr, router=router).to_dict()


def _body(verilog: str) -> str:
    """The Verilog without its header comments (which name the configuration)."""
    return "\n".join(ln for ln in verilog.splitlines() if not ln.startswith("//"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", default="1,2,4,8,16,32,36", help="PE counts (comma-separated)")
    ap.add_argument("--no-pnr", action="store_true", help="Yosys only: no Fmax")
    ap.add_argument("--reuse", action="store_true", help="reuse reports of unchanged designs")
    ap.add_argument("--out", default=str(ROOT / "build" / "bench_synth"))
    ap.add_argument("--router", default="auto", choices=("auto", "router1", "router2"),
                    help="nextpnr router; auto: router1 (the better Fmax) up to 4 PEs, router2 "
                         "above (router1 had not routed 8 PEs after 9 minutes here)")
    args = ap.parse_args()
    ns = [int(v) for v in args.n.split(",")]
    out = Path(args.out)

    print(f"EIE on {flow.DEFAULT_DEVICE} (out of context), per PE: {FPGA_DEPTHS}")
    hdr = (f"{'N':>3} {'LUT4':>7} {'%':>4} {'FF':>6} {'MULT':>4} {'DP16KD':>6} {'%':>4} "
           f"{'Fmax MHz':>8} {'Alex-7 cyc':>10} {'layers/s':>9} {'GOP/s':>6} {'synth s':>8} {'P&R s':>7}")
    print(hdr)
    rows = []
    alex7 = bench_layer("Alex-7"), bench_input("Alex-7")
    for n in ns:
        router = args.router if args.router != "auto" else ("router1" if n <= 4 else "router2")
        r = run_one(n, out, not args.no_pnr, args.reuse, router)
        res = r["resources"]
        if not r["fits"]:
            print(f"{n:>3} does not fit: {', '.join(r['overflow'])} (Yosys counts)")
            break
        cyc = alex7_cycles(n, fpga_config(n).queue_depth, *alex7)
        f = (r["fmax_mhz"] or {}).get("clk")
        lps = f * 1e6 / cyc if f else None
        # EIE counts 2 ops per weight (multiply + add) over the dense layer, Table IV's GOP/s
        gops = lps * 2 * 4096 * 4096 / 1e9 if lps else None
        w = r["wall_s"]
        print(f"{n:>3} {res['LUT4']['used']:>7,} {res['LUT4']['percent']:>4.0f} "
              f"{res['FF']['used']:>6,} {res['MULT18X18D']['used']:>4} {res['DP16KD']['used']:>6} "
              f"{res['DP16KD']['percent']:>4.0f} {f if f else float('nan'):>8.1f} {cyc:>10,} "
              f"{lps if lps else float('nan'):>9,.0f} {gops if gops else float('nan'):>6.1f} "
              f"{w.get('verilog', 0) + w.get('yosys_ecp5', 0):>8.0f} {w.get('nextpnr', 0):>7.0f}"
              + f"  {(r.get('nextpnr_options') or {}).get('router', router)}"
              + (f"  (reused report, {r['reused']})" if r.get("reused") else ""), flush=True)
        rows.append((n, {k: v["used"] for k, v in res.items()}, r))
    if len(rows) >= 2:
        nn = np.array([n for n, _, _ in rows], float)
        print("\nleast-squares fit, resource = a + b N (b: one PE; a: LNZD root, CCU, glue):")
        for k in ecp5.RESOURCES:
            y = np.array([u[k] for _, u, _ in rows], float)
            b, a = np.polyfit(nn, y, 1)
            print(f"  {k:<11} a = {a:9.1f}   b = {b:8.1f} per PE")
        print("per-PE cost from Yosys' hierarchy (PE block per instance):")
        for n, _, r in rows:
            pe = r["blocks"].get("PE", {}).get("per_instance", {})
            print(f"  N={n:<3} " + "  ".join(f"{k} {pe.get(k, 0):,.0f}" for k in ecp5.RESOURCES))
    best = rows[-1] if rows else None
    if best:
        cp = (best[2].get("critical_paths") or [None])[0]
        if cp:
            print(f"\ncritical path at N={best[0]}: {cp['delay_ns']:.2f} ns, {cp['logic_levels']} "
                  f"logic levels, {cp['start']} -> {cp['end']}\n  through "
                  + " -> ".join(cp.get("through", [])))
    print(f"\npaper (45 nm ASIC): 64 PEs at 800 MHz, Alex-7 {TABLE3['Alex-7'].paper_cycles:,} cycles, "
          "81,967 layers/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
