"""Design-space exploration: PE count, queue depth, memory depths and clock against LUT4, block RAM, speed and energy.

Every point (--pe x --queue x the memory depths x --clock) runs the cycle model and the energy
model on each network (--networks: EIE's Table III layers such as Alex-7, `alexnet` for
fc6 -> fc7 -> fc8, `lenet300` for LeNet-300-100 at Deep Compression's densities; --model for
your own model files). The points of --synth (N list, at the --synth-queue depths) go through
Yosys and nextpnr-ecp5 (cached in build/explore/synth by configuration, clock and generated
Verilog: reruns are free); the other points get resources from a least-squares fit to the
synthesised ones with the same memory depths, and an Fmax interpolated between them (the
table marks both as estimates). The clock a point runs at is min(--clock, Fmax). Written to
--out: explore.md (the Pareto fronts, LUT4 and DP16KD against inferences per second and
against energy per inference, then every point), explore.json and explore.png. The work runs
as tasks on Dask (--workers, --scheduler; see `eie sim --help`).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from sim.farm import add_farm_arguments, farm_from_args
from sw.commands.options import add_act, add_config, describe


def add_arguments(p: argparse.ArgumentParser) -> None:
    describe(p, __doc__,
             "eie explore --networks Alex-7,lenet300 --pe 1..64 --queue 1..16 --synth 1,2,4,8,16",
             "eie explore --networks Alex-6,Alex-8 --pe 4,8,16 --queue 8 --spmat-words 1024,2048 "
             "--synth 4,8 --no-pnr",
             "eie explore --model build/lenet300/model.eie --inputs $EIE_MNIST_DIR --pe 1..16")
    add_config(p, "ecp5_max")
    p.add_argument("--networks", default="Alex-7,lenet300", metavar="LIST",
                   help="built-in workloads: EIE Table III layers (Alex-6 ... NT-LSTM), "
                        "'alexnet' (fc6 -> fc7 -> fc8), 'lenet300'; 'none' with --model only")
    p.add_argument("--model", action="append", default=[], metavar="FILE",
                   help="a model file (any format eie reads; its EIE segments); repeatable")
    p.add_argument("--inputs", metavar="FILE",
                   help="inputs for --model (.npz, .npy, IDX, MNIST dir; default: one "
                        "synthetic input at 35%% density)")
    p.add_argument("--limit", type=int, default=4, metavar="N",
                   help="--inputs: the first N inputs (figures are means over them)")
    add_act(p)
    p.add_argument("--pe", default="1,2,4,8,16,32,64", metavar="LIST",
                   help="PE counts N: values and ranges A..B")
    p.add_argument("--queue", default="1,2,4,8,16", metavar="LIST", help="queue depths")
    for name, field in (("--spmat-words", "spmat_words"), ("--ptr-depth", "ptr_depth"),
                        ("--act-depth", "act_depth"), ("--bias-depth", "bias_depth")):
        p.add_argument(name, metavar="LIST", dest=field,
                       help=f"per-PE {field.replace('_', ' ')} (default: --config's)")
    p.add_argument("--clock", default="100", metavar="MHZ",
                   help="clock targets in MHz (comma-separated)")
    p.add_argument("--synth", default="", metavar="LIST",
                   help="PE counts to synthesise (Yosys + nextpnr; 5-30 min per point, "
                        "cached), at every memory depth and clock; '' for none")
    p.add_argument("--synth-queue", metavar="LIST",
                   help="queue depths of the synthesised points (default: --config's)")
    p.add_argument("--no-pnr", action="store_true",
                   help="synthesis without place and route (Yosys' counts, no Fmax)")
    p.add_argument("--pnr-seed", type=int, default=1, help="nextpnr placement seed")
    p.add_argument("--balance", action="store_true", help="load-balanced row assignment")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic workloads")
    p.add_argument("--out", default="build/explore", metavar="DIR", help="output directory")
    p.add_argument("--replot", metavar="JSON",
                   help="rank and plot the points of an earlier explore.json again (no "
                        "computation; the other options are ignored)")
    add_farm_arguments(p)


def run(args: argparse.Namespace) -> int:
    from sim.explore import WorkloadSpec, check_inputs, explore
    from sim.regress import log_stderr
    from sw.eie import explore as ex
    from sw.eie.config import EIEConfig
    from sw.errors import DataError

    t0 = time.perf_counter()
    if args.replot:
        from sim.explore import result_from_json

        result, d = result_from_json(Path(args.replot))
        meta = {k: v for k, v in d.items() if k not in ("fits", "synthesised", "pareto",
                                                          "points")}
        return _report(result, Path(args.out), meta.get("title", f"eie explore ({args.replot})"),
                       meta, t0)
    base = EIEConfig.load(args.config)
    pes = ex.parse_list(args.pe, "--pe", 1, 256)
    queues = ex.parse_list(args.queue, "--queue", 1, 256)
    mems = [ex.parse_list(getattr(args, k), f"--{k.replace('_', '-')}", 1, 1 << 24)
            if getattr(args, k) else [getattr(base, k)] for k in ex.MEMORIES]
    import itertools

    memories = list(itertools.product(*mems))
    clocks = ex.parse_clocks(args.clock)
    synth_pes = ex.parse_list(args.synth, "--synth", 1, 256) if args.synth.strip() else []
    synth_queues = ex.parse_list(args.synth_queue, "--synth-queue", 1, 256) \
        if args.synth_queue else [base.queue_depth]
    if args.limit < 1:
        raise DataError(f"--limit must be >= 1, got {args.limit}")
    if args.inputs and not args.model:
        raise DataError("--inputs needs --model FILE")
    names = [] if args.networks.strip().lower() == "none" else \
        [s.strip() for s in args.networks.split(",") if s.strip()]
    specs = [WorkloadSpec(name=n, seed=args.seed) for n in names]
    specs += [WorkloadSpec(model=str(Path(m).resolve()), inputs=args.inputs and
                           str(Path(args.inputs).resolve()), limit=args.limit, act=args.act,
                           seed=args.seed) for m in args.model]
    if not specs:
        raise DataError("nothing to explore: --networks none and no --model")
    for m in memories:  # every memory variant must be a valid configuration
        ex.Point(1, 1, *m, clocks[0]).config(base)
    check_inputs(specs)
    with farm_from_args(args, log_stderr) as farm:
        result = explore(specs, base, pes, queues, memories, clocks, synth_pes, synth_queues,
                         farm, pnr=not args.no_pnr, seed=args.pnr_seed, balance=args.balance,
                         log=log_stderr)
    title = (f"eie explore: {', '.join(dict.fromkeys(r.workload for r in result.rows))} on "
             f"{base.name} widths; N {args.pe}, queue {args.queue}, clock {args.clock} MHz")
    meta = {"command": "eie explore", "title": title, "base": base.to_dict(), "pe": pes,
            "queue": queues,
            "memories": [dict(zip(ex.MEMORIES, m, strict=True)) for m in memories],
            "clock_mhz": clocks, "synth": synth_pes, "synth_queue": synth_queues,
            "pnr": not args.no_pnr}
    return _report(result, Path(args.out), title, meta, t0)


def _report(result, out: Path, title: str, meta: dict, t0: float) -> int:
    from sim.explore import summary, write_outputs
    from sw.eie import explore as ex

    paths = write_outputs(result, out, title, meta)
    for line in summary(result):
        print(line)
    for w, fs in result.fronts.items():
        for obj, what in (("speed", "inferences/s"), ("energy", "energy per inference")):
            if fs[obj]:
                print()
                print(ex.markdown_table(fs[obj], f"{w}: Pareto front (LUT4, DP16KD vs {what})"))
    print()
    for line in result.farm:
        print(line)
    print(f"{len(result.rows)} rows; wrote {', '.join(str(p) for p in paths)}; "
          f"{time.perf_counter() - t0:.0f} s")
    if result.failed:
        print(f"eie explore: {result.failed} task(s) failed (above); their points are estimates",
              file=sys.stderr)
    return 0 if result.rows and not result.failed else 1
