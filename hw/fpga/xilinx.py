"""The Xilinx 7-series estimate: Yosys ``synth_xilinx -flatten -noiopad`` cell counts.

Synthesis only (no place and route, no timing): what the design would take on a 7-series
part, beside the ECP5 figures (``eie synth --xilinx``; docs/fpga.md, "The flow", step 4).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from .tools import module_cells, run_tool, yosys_read

# LUT-equivalents of the 7-series distributed-RAM / shift-register primitives.
_LUTRAM = {"RAM32M": 4, "RAM32M16": 8, "RAM64M": 4, "RAM64M8": 8, "RAM32X1D": 2,
           "RAM64X1D": 2, "RAM128X1D": 4, "RAM32X1S": 1, "RAM64X1S": 1, "RAM128X1S": 2,
           "RAM256X1S": 4, "RAM256X1D": 8, "SRL16E": 1, "SRLC32E": 1}


def resources(cells: Mapping[str, int]) -> dict[str, float]:
    """Yosys ``synth_xilinx`` (xc7) cell counts -> LUT, LUTRAM, FF, DSP48, BRAM (36 Kb units)."""
    lut = sum(n for c, n in cells.items() if re.fullmatch(r"LUT[1-6]", c))
    lutram = sum(_LUTRAM[c] * n for c, n in cells.items() if c in _LUTRAM)
    ff = sum(n for c, n in cells.items() if re.fullmatch(r"FD[A-Z]*", c))
    dsp = sum(n for c, n in cells.items() if c.startswith("DSP48"))
    b36 = sum(n for c, n in cells.items() if re.fullmatch(r"RAMB36E\d", c))
    b18 = sum(n for c, n in cells.items() if re.fullmatch(r"RAMB18E\d", c))
    return {"LUT": lut, "LUTRAM": lutram, "FF": ff, "DSP48": dsp, "BRAM36": b36 + b18 / 2,
            "RAMB36": b36, "RAMB18": b18, "CARRY4": cells.get("CARRY4", 0)}


def estimate(sources: Sequence[Path], top: str, out: Path, nice: int = 0) -> tuple[dict[str, int], float]:
    """Run ``synth_xilinx`` on ``sources`` in ``out``; returns the flattened top's cell counts
    and the wall time in s (log: ``out/yosys_xilinx.log``)."""
    cwd = out.resolve()
    script = (f"{yosys_read(sources, cwd)}; hierarchy -check -top {top}; "
              f"synth_xilinx -flatten -noiopad -top {top}; "
              f"tee -q -o stat_xilinx.json stat -json")
    wall = run_tool("yosys", ["-p", script], cwd, out / "yosys_xilinx.log", nice)
    return module_cells(json.loads((out / "stat_xilinx.json").read_text())).get(top, {}), wall


def summary(x: Mapping[str, float]) -> str:
    """The report's line for :func:`resources`."""
    return (f"Xilinx 7-series estimate (synth_xilinx): LUT {x['LUT']:,}  LUTRAM {x['LUTRAM']:,}  "
            f"FF {x['FF']:,}  DSP48 {x['DSP48']:,}  BRAM36 {x['BRAM36']:g} "
            f"(RAMB36 {x['RAMB36']}, RAMB18 {x['RAMB18']})  CARRY4 {x['CARRY4']:,}")
