"""The accelerator on an FPGA board: build a bitstream, write the board's constraints.

  build        the board top (oscillator -> PLL -> UART bridge + the EIE's Wishbone front end,
               reset button, LEDs) for an amaranth-boards board: Yosys, nextpnr-ecp5 on the
               board's pins, ecppack; the report gives resources, the Fmax of the whole top
               and the bitstream's size. With --model the model's images are in ROM (the
               memories' initial contents); without, they are loaded over the UART at run time.
  constraints  write constraints/<board>.lpf (pins and clocks) from the amaranth-boards platform

Supported boards: ulx3s (Radiona ULX3S, LFE5U-85F), ecpix5 (LambdaConcept ECPIX-5, LFE5UM5G-85F).
docs/fpga.md, "Board builds", describes the outputs. Place and route of an EIE takes minutes
(the YoWASP nextpnr is single-threaded).
"""

from __future__ import annotations

import argparse

from sw.commands.options import add_act, add_calib, add_config, describe


def _add_build(p: argparse.ArgumentParser) -> None:
    from hw.board.build import DEFAULT_BAUD
    from hw.board.top import BOARDS

    p.add_argument("--board", required=True, metavar="BOARD",
                   help=f"the board ({', '.join(BOARDS)})")
    add_config(p, "ecp5_small")
    p.add_argument("--model", metavar="FILE",
                   help="a model (as `eie rom` takes it) whose images the memories hold from "
                        "power-up (default: none, images loaded over the UART)")
    add_calib(p)
    add_act(p)
    p.add_argument("--balance", action="store_true", help="load-balance-aware row assignment")
    p.add_argument("--clock", type=float, metavar="HZ",
                   help="system clock in Hz, made by the PLL from the board's oscillator "
                        "(default: the board's, 125e6)")
    p.add_argument("--baud", type=int, default=DEFAULT_BAUD,
                   help=f"UART baud rate (default: {DEFAULT_BAUD})")
    p.add_argument("--router", default="router1", choices=["router1", "router2"],
                   help="nextpnr router (default: router1)")
    p.add_argument("--seed", type=int, default=1, help="nextpnr placement seed (default: 1)")
    p.add_argument("--nice", type=int, default=0, metavar="N",
                   help="run the tools at a lower priority (default: 0)")
    p.add_argument("--allow-timing-fail", action="store_true",
                   help="write the bitstream even when the Fmax is below --clock")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="output directory, written atomically")


def _run_build(args: argparse.Namespace) -> int:
    from hw.board.build import build, format_board_report
    from sw.eie.config import EIEConfig

    config = EIEConfig.load(args.config)
    result = build(args.board, config, args.out, clock_hz=args.clock, model=args.model,
                   act=args.act, calib=args.calib, balance=args.balance, baud=args.baud,
                   seed=args.seed, router=args.router, nice=args.nice,
                   allow_timing_fail=args.allow_timing_fail)
    print(format_board_report(result.report))
    print(f"report: {result.out / 'report.json'}")
    if result.bitstream:
        print(f"bitstream: {result.bitstream}")
    return 0


def _add_constraints(p: argparse.ArgumentParser) -> None:
    from hw.board.top import BOARDS

    p.add_argument("--board", choices=sorted(BOARDS), action="append",
                   help="the board (repeatable; default: every supported board)")


def _run_constraints(args: argparse.Namespace) -> int:
    from hw.board.build import write_constraints
    from hw.board.top import BOARDS

    for name in args.board or BOARDS:
        print(f"wrote {write_constraints(name)}")
    return 0


# sub-verb -> (add_arguments, run, one-line help)
SUBVERBS = {
    "build": (_add_build, _run_build,
              "synthesis, place and route and bitstream of the board top"),
    "constraints": (_add_constraints, _run_constraints,
                    "write constraints/<board>.lpf from the amaranth-boards platform"),
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    describe(p, __doc__,
             "eie board build --board ulx3s --config ecp5_small --out build/board_ulx3s",
             "eie board build --board ulx3s --config ecp5_max --model build/lenet300/model.eie "
             "--clock 100e6 --out build/board_lenet",
             "eie board constraints --board ulx3s")
    sub = p.add_subparsers(dest="board_verb", metavar="VERB", required=True)
    for name, (add, _, help_) in SUBVERBS.items():
        sp = sub.add_parser(name, help=help_, description=help_)
        add(sp)


def run(args: argparse.Namespace) -> int:
    return SUBVERBS[args.board_verb][1](args)
