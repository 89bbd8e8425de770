"""Write the register map of the EIE's Wishbone front end for a configuration.

The map (hw/soc/regmap.py: registers at address 0, one window per memory of the core, word
addresses, 32-bit data) is computed from the configuration and written three ways into --out:
regmap.json (what the Python driver reads), regmap.md (for people) and regmap.h (C defines for
firmware). docs/soc.md describes the front end and the rules of the map.
"""

from __future__ import annotations

import argparse

from sw.commands.options import add_config, describe


def add_arguments(p: argparse.ArgumentParser) -> None:
    describe(p, __doc__,
             "eie regmap --config ecp5_small --out build/regmap",
             "eie regmap --config my_config.json --out build/regmap-my")
    add_config(p)
    p.add_argument("--out", required=True, metavar="DIR",
                   help="output directory (regmap.json, regmap.md, regmap.h)")


def run(args: argparse.Namespace) -> int:
    from hw.soc.regmap import regmap
    from sw.eie.config import EIEConfig

    m = regmap(EIEConfig.load(args.config))
    paths = m.write(args.out)
    print(f"register map of {m.config.name} ({m.n_pe} PEs, hash {m.config_hash:#010x}): "
          f"{len(m.registers)} registers, {len(m.windows)} windows, {m.addr_width}-bit word "
          f"addresses -> {', '.join(str(p) for p in paths)}")
    return 0
