"""Synthesise an EIE configuration for a Lattice ECP5 FPGA: resources, Fmax, per-block cost.

Generates the Verilog for the configuration (or takes --verilog FILE --top NAME), runs Yosys
synth_ecp5 (hierarchy kept for the per-block table, then flattened) and nextpnr-ecp5 out of
context on an LFE5U-85F (CABGA381) with the clock constraint of constraints/ecp5_clk.lpf, and
optionally Yosys synth_xilinx for a Xilinx 7-series estimate. Prints the report and writes
report.json / report.txt, the netlist and every tool log to --out. A configuration that does
not fit the device is reported with what overflowed (exit status 2). The tools are the YoWASP
builds from PyPI; their first run on a machine compiles them (about a minute, then cached).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sw.commands.options import add_config, describe


def add_arguments(p: argparse.ArgumentParser) -> None:
    from hw.fpga.flow import DEFAULT_DEVICE, DEVICES

    describe(p, __doc__,
             "eie synth --config ecp5_small --out build/synth",
             "eie synth --config ecp5_max --xilinx --freq 100 --out build/synth-max",
             "eie synth --verilog my.v --top my_top --no-pnr --out build/synth-my")
    add_config(p, "tiny")
    p.add_argument("--out", default="build/synth", metavar="DIR",
                   help="output directory (default: build/synth)")
    p.add_argument("--xilinx", action="store_true",
                   help="also run Yosys synth_xilinx for a Xilinx 7-series estimate")
    p.add_argument("--freq", type=float, metavar="MHZ",
                   help="clock target in MHz (default: the value in constraints/ecp5_clk.lpf)")
    p.add_argument("--lpf", metavar="FILE", help="constraint file (default: constraints/ecp5_clk.lpf)")
    p.add_argument("--device", default=DEFAULT_DEVICE, choices=sorted(DEVICES),
                   help=f"ECP5 part (default: {DEFAULT_DEVICE})")
    p.add_argument("--no-pnr", action="store_true",
                   help="stop after Yosys (resource estimate, per-block table; no Fmax)")
    p.add_argument("--router", default="router1", choices=["router1", "router2"],
                   help="nextpnr router (router2 is faster on large designs; default: router1)")
    p.add_argument("--seed", type=int, default=1, help="nextpnr placement seed (default: 1)")
    p.add_argument("--nice", type=int, default=0, metavar="N",
                   help="run the tools at a lower priority (os.nice increment; default: 0)")
    p.add_argument("--verilog", metavar="FILE", nargs="+",
                   help="synthesise these Verilog files instead of a generated configuration")
    p.add_argument("--top", metavar="NAME", help="top module of --verilog")


def run(args: argparse.Namespace) -> int:
    from hw.fpga.flow import eie_blocks, synthesize, synthesize_config
    from hw.fpga.report import check_fit
    from sw.eie.config import EIEConfig
    from sw.errors import EIEError

    kw = dict(device=args.device, freq_mhz=args.freq, lpf=args.lpf, pnr=not args.no_pnr,
              xilinx=args.xilinx, seed=args.seed, nice=args.nice, router=args.router)
    if args.verilog:
        if not args.top:
            raise EIEError("--verilog needs --top NAME (the top module)")
        # EIE block names if it is a generated EIE (eie verilog / eie rom); else per module
        report = synthesize([Path(v) for v in args.verilog], args.top, args.out,
                            blocks=eie_blocks(args.top, f"{args.top}_pe"), **kw)
    else:
        if args.top:
            raise EIEError("--top is only for --verilog (the generated top is named 'eie')")
        report = synthesize_config(EIEConfig.load(args.config), args.out, **kw)
    print(report.format())
    print(f"report: {Path(args.out) / 'report.json'}")
    check_fit(report)
    return 0
