"""What an ECP5 block RAM's own output register is worth, by nextpnr's timing model.

Every block-RAM read in the EIE is registered in the fabric straight after the DP16KD (no logic
fits after its clock-to-output delay at 125 MHz: docs/hardware.md). The DP16KD has an output
register of its own (``REGMODE_x = "OUTREG"``, with its clock enable ``OCEx``), which Yosys's
``synth_ecp5`` never uses. This places and routes a DP16KD (1K x 18, port A writes, port B
reads) whose 18 data outputs go to 18 fabric flip-flops, once with ``REGMODE_B = "NOREG"`` and
once with ``"OUTREG"``, and prints each build's Fmax and its critical path (its logic: the
RAM's clock-to-output and the flip-flop's setup): the clock-to-output delay of the RAM is what
changes.

    .venv/bin/python benchmarks/bench_bram_outreg.py [--out build/bench_bram_outreg]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from amaranth.hdl import ClockSignal, Const, Instance, Module, Signal  # noqa: E402
from amaranth.lib import wiring  # noqa: E402
from amaranth.lib.wiring import In, Out  # noqa: E402

from hw.fpga.flow import synthesize_component  # noqa: E402
from hw.fpga.report import fmax_and_path  # noqa: E402

WIDTH, ADDR_BITS = 18, 10  # DP16KD as 1K x 18: address bits 4..13


class RamThenRegister(wiring.Component):
    def __init__(self, regmode: str):
        self.regmode = regmode
        super().__init__({"wa": In(ADDR_BITS), "wd": In(WIDTH), "we": In(1), "ra": In(ADDR_BITS),
                          "q": Out(WIDTH)})

    def elaborate(self, platform) -> Module:
        m = Module()
        d = Signal(WIDTH)
        low = {f"i_AD{p}{i}": Const(0, 1) for p in "AB" for i in range(4)}
        m.submodules.ram = Instance(
            "DP16KD",
            p_DATA_WIDTH_A=WIDTH, p_DATA_WIDTH_B=WIDTH, p_REGMODE_A="NOREG",
            p_REGMODE_B=self.regmode, p_WRITEMODE_A="NORMAL", p_GSR="DISABLED",
            p_RESETMODE="SYNC", p_CSDECODE_A="0b000", p_CSDECODE_B="0b000",
            i_CLKA=ClockSignal(), i_CEA=Const(1, 1), i_OCEA=Const(1, 1), i_WEA=self.we,
            i_RSTA=Const(0, 1), i_CLKB=ClockSignal(), i_CEB=Const(1, 1), i_OCEB=Const(1, 1),
            i_WEB=Const(0, 1), i_RSTB=Const(0, 1),
            **{f"i_CS{p}{i}": Const(0, 1) for p in "AB" for i in range(3)},
            **low,
            **{f"i_ADA{i + 4}": self.wa[i] for i in range(ADDR_BITS)},
            **{f"i_ADB{i + 4}": self.ra[i] for i in range(ADDR_BITS)},
            **{f"i_DIA{i}": self.wd[i] for i in range(WIDTH)},
            **{f"i_DIB{i}": Const(0, 1) for i in range(WIDTH)},
            **{f"o_DOB{i}": d[i] for i in range(WIDTH)},
        )
        m.d.sync += self.q.eq(d)
        return m


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default=str(REPO / "build" / "bench_bram_outreg"))
    ap.add_argument("--freq", type=float, default=200.0)
    args = ap.parse_args()
    print(f"{'REGMODE_B':<9} {'Fmax MHz':>8}  critical path")
    for regmode in ("NOREG", "OUTREG"):
        r = synthesize_component(RamThenRegister(regmode), "ram_then_register",
                                 Path(args.out) / regmode.lower(), freq_mhz=args.freq)
        print(f"{regmode:<9} {fmax_and_path(r)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
