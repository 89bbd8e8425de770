"""`eie` — one command, one subcommand per verb.

Each subcommand lives beside the code it drives (``sw/commands``, ``hw/commands``,
``sim/commands``) as a module with ``add_arguments(parser)`` and ``run(args) -> int`` and a
module docstring whose first line is the one-line help. Modules are imported only when their
subcommand runs, so ``eie compress`` never loads Amaranth and ``eie --help`` starts fast.
User errors (:class:`sw.errors.EIEError`) become one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# verb -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "compress": ("sw.commands.compress", "Deep Compression: prune, quantize, Huffman-code a network"),
    "run": ("sw.commands.run", "Run a network on a batch with the golden model (bit-exact with the hardware)"),
    "pack": ("sw.commands.pack", "Pack FC layers into EIE memory images (hex, bin, manifest)"),
    "synth": ("hw.commands.synth", "FPGA synthesis (Yosys + nextpnr-ecp5): resources, Fmax, per-block cost"),
    "rom": ("hw.commands.rom", "FPGA ROM build: Verilog whose memories initialise from a model's images"),
    "board": ("hw.commands.board", "The EIE on an FPGA board (ULX3S, ECPIX-5): bitstream builds, constraints, load/run/read over the UART"),
    "regmap": ("hw.commands.regmap", "Register map of the Wishbone front end: JSON, Markdown, C header"),
    "verilog": ("hw.commands.verilog", "Generate the EIE accelerator's Verilog for a configuration"),
    "sim": ("sim.commands.sim", "Verify the RTL in simulation (cocotb): AlexNet, MNIST or your network vs golden"),
    "explore": ("sim.commands.explore", "Design-space exploration: N, queue depth, memories, clock vs LUT4, block RAM, speed, energy"),
    "formal": ("sim.commands.formal", "Formal proofs (SymbiYosys) of the activation queue, LNZD tree and central control"),
}


def build_parser(verb: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="eie",
        description="Turn trained networks into verified EIE accelerator hardware.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_,
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        if name == verb:  # only the chosen subcommand's module is imported
            importlib.import_module(module).add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    from sw.errors import EIEError

    argv = sys.argv[1:] if argv is None else argv
    verb = next((a for a in argv if not a.startswith("-")), None)
    verb = verb if verb in COMMANDS else None
    parser = build_parser(verb)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    module = importlib.import_module(COMMANDS[args.command][0])
    try:
        return int(module.run(args) or 0)
    except EIEError as e:
        print(f"eie {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"eie {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
