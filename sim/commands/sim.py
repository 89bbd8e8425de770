"""Verify the generated RTL in simulation: AlexNet FC layers, MNIST or your own network, bit-exact vs golden.

Generates the Verilog of --config (default eie64: 64 PEs, queue depth 8), builds it once with
Verilator (or Icarus: SIM=icarus) and runs, through cocotb, EIE's AlexNet layers fc6 / fc7 /
fc8 each alone and back to back, and LeNet-300-100 (compressed by `eie compress`) on MNIST test
images. Every output is compared bit for bit with the golden model and every cycle count with
the cycle model; a table lists RTL cycles, cycle model, EIE's published cycles, the lower bound
and the load-balance efficiency. Exit status 1 on any mismatch (the first one is localised:
layer, PE, row, column, cycle). --fuzz N runs N random layer configurations instead
(--steer: toward the coverage's holes); --fuzz-hw N draws N random hardware configurations,
builds each and runs random layers on it.
--model FILE --inputs FILE runs your network instead (any model file `eie` reads): its host
segments in PyTorch, each EIE segment on the RTL, with accuracy (or RMSE) of float, golden and
RTL and cycles per layer. WAVES=1 dumps waveforms (the path is printed).

The work runs as tasks on Dask distributed: --workers N worker processes on this machine
(default: one per core; 0: everything in this process), or --scheduler ADDRESS for an
existing Dask cluster. Fuzz campaigns are chunks of seeds per build, the regression one task
per row and the MNIST images in shards; the results merge into one report, which says where
each task ran and which were retried after a worker was lost.
"""

from __future__ import annotations

import argparse
import os
import time

from sim.farm import add_farm_arguments, farm_from_args
from sw.commands.options import add_act, add_config, add_formats, describe
from sw.errors import DataError


def add_arguments(p: argparse.ArgumentParser) -> None:
    describe(p, __doc__,
             "eie sim                          # make sim: AlexNet + 1,000 MNIST images",
             "eie sim --layers none --mnist 10000   # the full MNIST test set",
             "eie sim --layers Alex-7 --mnist 0 --balance",
             "eie sim --weights alexnet.pth    # real AlexNet FC weights",
             "eie sim --model my_model.onnx --inputs data.npz --limit 200   # your network",
             "eie sim --fuzz 1000 --seed 0     # random layers on N = 1, 2, 3, 4, 8, 64",
             "eie sim --fuzz 1000 --workers 2  # two worker processes on this machine",
             "eie sim --fuzz-hw 200 --seed 0   # 200 random configurations, each built",
             "eie sim --fuzz 1000 --scheduler tcp://10.0.0.5:8786   # an existing Dask cluster",
             "SIM=icarus WAVES=1 eie sim --layers Alex-8 --mnist 0 --config eie64")
    add_config(p)
    p.add_argument("--layers", default="Alex-6,Alex-7,Alex-8,alexnet", metavar="LIST",
                   help="comma-separated EIE Table III layers (Alex-6 ... NT-LSTM) and/or "
                        "'alexnet' (fc6 -> fc7 -> fc8 back to back); 'none' for no layers")
    p.add_argument("--weights", metavar="FILE",
                   help="torchvision-format AlexNet state_dict: real fc6/fc7/fc8 weights (pruned "
                        "to 9/9/25%%, 4-bit) instead of the synthetic ones")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--balance", action="store_true",
                   help="only the load-balanced row assignment (default: both assignments for "
                        "the AlexNet layers)")
    g.add_argument("--interleaved", action="store_true",
                   help="only EIE's row interleaving (row i -> PE i mod N)")
    p.add_argument("--mnist", type=int, default=1000, metavar="N",
                   help="MNIST test images through LeNet-300-100 (0: none; skipped with a note "
                        "when no MNIST data is available)")
    p.add_argument("--data", metavar="DIR", help="MNIST directory (default: $EIE_MNIST_DIR)")
    p.add_argument("--model", metavar="FILE",
                   help="with --inputs: your network (ONNX, .pt2, TorchScript, state_dict, "
                        "model.eie) on your inputs; without: the compressed LeNet-300-100 for "
                        "the MNIST row (default build/lenet300/model.eie, made by `eie "
                        "compress` when missing)")
    p.add_argument("--inputs", metavar="FILE",
                   help="inputs for --model: .npz (x_test[, y_test, x_train, y_train]), .npy "
                        "or IDX, or an MNIST directory")
    p.add_argument("--limit", type=int, metavar="N", help="with --inputs: the first N inputs")
    add_act(p)
    add_formats(p)
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the synthetic layers and inputs (and of --fuzz)")
    p.add_argument("--fuzz", type=int, metavar="N",
                   help="run N random layer configurations (shapes, densities, N, queue depths, "
                        "inputs, host stalls, resets) instead of the regression")
    p.add_argument("--steer", action="store_true",
                   help="with --fuzz: choose the N seeds among the next 4 N toward the holes of "
                        "the coverage in $EIE_COVERAGE (empty if unset or missing): seeds whose "
                        "cases hit bins still at 0 first (each still reproduces alone)")
    p.add_argument("--fuzz-hw", type=int, metavar="N",
                   help="random hardware: draw configurations from --seed on (N, queue depth, "
                        "memory depths, every width) until N are legal, build each and run a "
                        "few random cases on it; illegal draws are listed with the reason "
                        "they are rejected")
    p.add_argument("--fuzz-configs", metavar="LIST",
                   help="restrict --fuzz to these of its builds (e.g. 'n1d1,n3d4'; default all)")
    p.add_argument("--chunk", type=int, metavar="N",
                   help="--fuzz seeds per task (default: about two tasks per worker and build, 20..250)")
    p.add_argument("--shard", type=int, default=250, metavar="N",
                   help="MNIST images per task")
    p.add_argument("--plant-fault", type=int, metavar="SEED", action="append", default=[],
                   help="with --fuzz: load a corrupted image in case SEED (a check that the "
                        "checker and the report catch it; repeatable)")
    p.add_argument("--keep", action="store_true",
                   help="keep the simulation directories (job, results, log)")
    add_farm_arguments(p)


def _mnist_available(args: argparse.Namespace) -> str | None:
    """None if MNIST can be used, else the one line saying how to provide it."""
    from sw.compression.data import HOW_TO

    if args.data is None and not os.environ.get("EIE_MNIST_DIR"):
        return f"MNIST skipped: no data ({HOW_TO}, e.g. EIE_MNIST_DIR=~/mnist make sim)"
    return None


def run(args: argparse.Namespace) -> int:
    from sim.regress import (
        alexnet_entries,
        format_table,
        log_stderr,
        mnist_entry,
        regression,
        summary,
    )
    from sw.eie.config import EIEConfig

    t0 = time.perf_counter()
    config = EIEConfig.load(args.config)
    if args.inputs is not None:
        return _run_network(args, t0)
    if args.plant_fault and args.fuzz is None:
        raise DataError("--plant-fault needs --fuzz")
    if args.steer and args.fuzz is None:
        raise DataError("--steer needs --fuzz")
    if args.fuzz_hw is not None:
        from sim.fuzz_hw import plan, run_fuzz_hw

        if args.fuzz is not None:
            raise DataError("give --fuzz (random layers on fixed builds) or --fuzz-hw (random "
                            "builds), not both")
        plan(args.fuzz_hw, args.seed)  # bad input: one line before any worker starts
        with farm_from_args(args, log_stderr) as farm:
            log_stderr(f"farm: {farm.description}")
            report = run_fuzz_hw(args.fuzz_hw, seed=args.seed, log=log_stderr, farm=farm,
                                 keep=args.keep)
        for line in report.lines():
            print(line)
        return 0 if report.ok else 1
    if args.fuzz is not None:
        from sim.fuzz import plan_seeds, run_fuzz

        configs = None if not args.fuzz_configs else \
            [s.strip() for s in args.fuzz_configs.split(",") if s.strip()]
        plan_seeds(args.fuzz, args.seed, configs)  # bad input: one line before any worker starts
        if args.chunk is not None and args.chunk < 1:
            raise DataError(f"--chunk must be >= 1, got {args.chunk}")
        steer = None
        if args.steer:
            from pathlib import Path

            from sim.coverage import ENV, Coverage

            path = os.environ.get(ENV)
            try:
                steer = Coverage.load(Path(path)) if path and Path(path).exists() \
                    else Coverage()
            except (ValueError, KeyError) as e:
                raise DataError(f"{ENV}={path}: not a coverage file ({e})") from None
        with farm_from_args(args, log_stderr) as farm:
            log_stderr(f"farm: {farm.description}")
            report = run_fuzz(args.fuzz, seed=args.seed, configs=configs, log=log_stderr,
                              chunk=args.chunk, farm=farm, planted=tuple(args.plant_fault),
                              steer=steer)
        for line in report.lines():
            print(line)
        return 0 if report.ok else 1
    if args.mnist < 0:
        raise DataError(f"--mnist must be >= 0, got {args.mnist}")
    names = [] if args.layers.strip().lower() == "none" else \
        [s.strip() for s in args.layers.split(",") if s.strip()]
    assigns = ("balanced",) if args.balance else ("interleaved",) if args.interleaved else \
        ("interleaved", "balanced")
    entries = alexnet_entries(config, names, args.seed, assigns, args.weights, log_stderr) \
        if names else []
    mnist = None
    notes = []
    if args.mnist:
        missing = _mnist_available(args)
        if missing:
            notes.append(missing)
        else:
            entry, mnist = mnist_entry(config, args.mnist, args.data, args.model, args.balance,
                                       log_stderr)
            entries.append(entry)
    if not entries:
        raise DataError("nothing to simulate: --layers none and "
                        + (notes[0] if notes else "--mnist 0"))
    if args.shard < 1:
        raise DataError(f"--shard must be >= 1, got {args.shard}")
    with farm_from_args(args, log_stderr) as farm:
        log_stderr(f"farm: {farm.description}")
        reg = regression(config, entries, mnist, log_stderr, keep=args.keep, farm=farm,
                         shard=args.shard)
    print(f"EIE RTL vs golden and cycle models: config {config.name} (N={config.n_pe}, queue "
          f"depth {config.queue_depth}), simulator {os.environ.get('SIM', 'verilator')}")
    print(format_table(reg.rows))
    for line in notes + summary(reg):
        print(line)
    print(f"total wall time {time.perf_counter() - t0:.0f} s")
    return 0 if reg.ok else 1


def _run_network(args: argparse.Namespace, t0: float) -> int:
    """--model FILE --inputs FILE: the user's network through float, golden and the RTL."""
    from sim.hybrid import simulate_network
    from sim.regress import log_stderr
    from sw.commands.run import prepare

    if args.model is None:
        raise DataError("--inputs needs --model FILE (the network to run them through)")
    model, inputs = prepare(args, log=print)
    report = simulate_network(model, inputs.x, inputs.data, log_stderr, keep=args.keep)
    print(f"{args.model} on {len(inputs.x)} input(s) of {args.inputs}: EIE RTL vs golden and "
          f"cycle models, config {model.config.name} (N={model.config.n_pe}, queue depth "
          f"{model.config.queue_depth}), simulator {os.environ.get('SIM', 'verilator')}")
    for line in report.lines():
        print(line)
    print(f"{'PASS' if report.ok else 'FAIL'}: {len(report.rows)} EIE segment(s) bit-exact and "
          f"cycle-exact; total wall time {time.perf_counter() - t0:.0f} s")
    return 0 if report.ok else 1
