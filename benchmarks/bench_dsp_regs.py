"""Which of an ECP5 MULT18X18D's own registers a product between fabric registers should use,
by nextpnr's timing model.

The EIE's products sit between fabric logic: the arithmetic unit's ``codebook value * a_j``
feeds an adder and the accumulator memory in the next cycle, the write-back's ``bias *
2**shift`` an adder. :class:`hw.dsp.RegisteredMultiplier` can use the block's operand (A, B)
registers, its output register, both, or neither (Yosys's mapping of ``a * b`` between fabric
flip-flops). This places and routes one signed 16 x 16 product in each arrangement, always
between fabric flip-flops (operands from fabric registers unless the block's own registers take
them; the product into a fabric register, after the block's output register if that is used),
and prints each build's Fmax and critical path.

    .venv/bin/python benchmarks/bench_dsp_regs.py [--out build/bench_dsp_regs]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from amaranth.hdl import Module, Signal, signed  # noqa: E402
from amaranth.lib import wiring  # noqa: E402
from amaranth.lib.wiring import In, Out  # noqa: E402

from hw.dsp import RegisteredMultiplier  # noqa: E402
from hw.fpga import ecp5, flow  # noqa: E402
from hw.fpga.report import fmax_and_path  # noqa: E402
from hw.verilog import convert  # noqa: E402

BITS = 16
# label -> (the block's operand registers, its output register); "fabric": neither, the
# operands and the product in fabric flip-flops around a combinational MULT18X18D
ARRANGEMENTS = {"fabric": (False, False), "operands": (True, False), "output": (False, True),
                "both": (True, True)}


class ProductBetweenRegisters(wiring.Component):
    def __init__(self, operands: bool, output: bool):
        self.operands, self.output = operands, output
        super().__init__({"a": In(signed(BITS)), "b": In(signed(BITS)), "o": Out(signed(2 * BITS))})

    def elaborate(self, platform) -> Module:
        m = Module()
        a, b = self.a, self.b
        if not self.operands:  # fabric operand registers
            a, b = Signal(signed(BITS)), Signal(signed(BITS))
            m.d.sync += [a.eq(self.a), b.eq(self.b)]
        if self.operands or self.output:
            m.submodules.mult = mult = RegisteredMultiplier(
                signed(BITS), signed(BITS), 2 * BITS, input_registers=self.operands,
                output_register=self.output)
            m.d.comb += [mult.a.eq(a), mult.b.eq(b)]
            product = mult.o
        else:
            product = a * b
        m.d.sync += self.o.eq(product)  # the fabric register the product goes to
        return m


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default=str(REPO / "build" / "bench_dsp_regs"))
    ap.add_argument("--freq", type=float, default=200.0)
    args = ap.parse_args()
    platform = ecp5.platform(ecp5.DEVICES["LFE5U-85F"])
    print(f"{'registers':<9} {'Fmax MHz':>8}  critical path")
    for label, (operands, output) in ARRANGEMENTS.items():
        out = Path(args.out) / label
        out.mkdir(parents=True, exist_ok=True)
        src = out / "product.v"
        src.write_text(convert(ProductBetweenRegisters(operands, output), "product",
                               platform=platform))
        r = flow.synthesize([src], "product", out, freq_mhz=args.freq)
        assert r.resources["MULT18X18D"] == 1, label
        print(f"{label:<9} {fmax_and_path(r)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
