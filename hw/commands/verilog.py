"""Generate the EIE accelerator's Verilog for a configuration.

The PE is emitted once as module <name>_pe and instantiated N times by the top module <name>;
memories start empty and are loaded through the host port at run time (docs/hardware.md: ports
and host protocol). The output is deterministic (same configuration, same bytes) and written
atomically. For Verilog whose memories hold a model's images (FPGA ROM builds) see `eie rom`.

--bus wishbone: the accelerator behind a 32-bit Wishbone B4 target instead (hw/soc/frontend.py;
ports bus__*, ready, busy, done), at the addresses `eie regmap` writes (docs/soc.md).

--device PART: elaborated for that FPGA part's primitives, as `eie synth` does (hw/dsp.py: on an
ECP5 the write-back's product in a MULT18X18D with its own output register, which Yosys does not
infer); without it the Verilog is portable (what the simulations run).
"""

from __future__ import annotations

import argparse
import time

from sw.commands.options import add_config, describe


def add_arguments(p: argparse.ArgumentParser) -> None:
    describe(p, __doc__,
             "eie verilog --config eie64 --out build/eie.v",
             "eie verilog --config my_config.json --name eie_small --out build/eie_small.v",
             "eie verilog --config ecp5_small --bus wishbone --name eie_bus --out build/eie_bus.v",
             "eie verilog --config ecp5_small --device LFE5U-85F --out build/eie_ecp5.v")
    add_config(p)
    p.add_argument("--name", default="eie", help="top module name (default: eie)")
    p.add_argument("--bus", choices=["none", "wishbone"], default="none",
                   help="host interface: the core's wide port (none) or a Wishbone B4 target "
                        "with the register map of `eie regmap` (wishbone)")
    p.add_argument("--device", metavar="PART", default=None,
                   help="elaborate for this FPGA part's primitives (e.g. LFE5U-85F; default: "
                        "portable Verilog)")
    p.add_argument("--out", required=True, metavar="FILE", help="output Verilog file")


def run(args: argparse.Namespace) -> int:
    import re

    from sw.eie.config import EIEConfig
    from sw.errors import ConfigError
    from sw.fsutil import atomic_write_text

    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", args.name):
        raise ConfigError(f"--name {args.name!r} is not a Verilog identifier")
    config = EIEConfig.load(args.config)
    t0 = time.perf_counter()
    if args.bus == "wishbone":
        from hw.soc.frontend import generate
    else:
        from hw.verilog import generate

    platform = None
    if args.device is not None:
        from hw.fpga.flow import platform_of

        platform = platform_of(args.device)
    g = generate(config, name=args.name, platform=platform)
    atomic_write_text(args.out, g.text)
    dt = time.perf_counter() - t0
    print(f"wrote {args.out}: module {g.top} ({config.n_pe} x {g.pe_module}), "
          f"{len(g.text.encode()) / 1e6:.2f} MB, {dt:.1f} s")
    return 0
