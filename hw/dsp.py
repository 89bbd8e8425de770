"""A multiplier with its product (and optionally its operands) registered, in the FPGA's DSP
block where the platform has one that holds the registers.

A product between fabric registers on an ECP5 runs through a MULT18X18D: the routing into the
DSP column, the multiplier, and the routing back (11.8 ns, 7.3 of it routing, on the routed
16-PE design: docs/fpga.md). The MULT18X18D has input and output registers of its own; with
its output register the route back into the fabric is a path of its own, and with its input
registers too the multiplier is a path inside the block. Yosys's ``synth_ecp5`` maps a product
to a MULT18X18D but never packs registers into it (it does for Xilinx DSP48s), so on an ECP5
platform :class:`RegisteredMultiplier` instantiates the block with its registers; elsewhere
(simulation, other FPGAs, operands too wide for one block) it is the same registers in logic,
with the same latency.

Either register may be left out. The operand registers (``input_registers``): an operand
that comes from a block RAM needs a fabric register first (the DP16KD's clock-to-output delay
is 5.8 ns; straight into the DSP's input register it was the critical path, 9.05 ns, at 4 PEs),
and the write-back has one, so it uses the output register only. The output register
(``output_register``): the arithmetic unit's adder and accumulator memory follow its product
in the same cycle, and with the product in the DSP the route from the DSP column to them was
the critical path of a routed 16-PE design (12.15 ns, 10.26 of it routing: docs/fpga.md), so it
uses the operand registers only and registers the product in the fabric itself: ``o`` is then
the block's combinational output, one cycle after the operands.
"""

from __future__ import annotations

from amaranth.hdl import ClockSignal, Const, Instance, Module, Shape, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

LATENCY = 2  # operand registers, then the product register (1 without either)

# the MULT18X18D: 18 x 18 -> 36 bits, each operand signed or unsigned (SIGNEDA, SIGNEDB)
ECP5_OPERAND_BITS = 18
ECP5_PRODUCT_BITS = 36


def _ecp5(platform) -> bool:
    from amaranth.vendor import LatticeECP5Platform

    return isinstance(platform, LatticeECP5Platform)


class RegisteredMultiplier(wiring.Component):
    """``o = a * b`` of ``a`` and ``b`` ``latency`` cycles earlier (2 with both registers,
    :data:`LATENCY`; 1 with one of them), truncated or sign extended to ``o``'s width
    (``o_bits``: the product modulo ``2**o_bits``, as a signed value). Without
    ``output_register``, ``o`` is combinational from the operand registers (to be registered
    by the user).

    The registers have no reset (the DSP block's are not wired to one): ``o`` is meaningless
    until ``latency`` cycles after the first operands, which the user's valid bits cover.
    """

    def __init__(self, a_shape, b_shape, o_bits: int, *, input_registers: bool = True,
                 output_register: bool = True):
        if not (input_registers or output_register):
            raise ValueError("a RegisteredMultiplier needs its operand or product registers")
        self._a, self._b = Shape.cast(a_shape), Shape.cast(b_shape)
        self.input_registers = input_registers
        self.output_register = output_register
        self.latency = int(input_registers) + int(output_register)
        super().__init__({"a": In(self._a), "b": In(self._b), "o": Out(signed(o_bits))})

    def fits_ecp5(self) -> bool:
        """One MULT18X18D holds the operands (each at most 18 bits, signed or not)."""
        return self._a.width <= ECP5_OPERAND_BITS and self._b.width <= ECP5_OPERAND_BITS

    def elaborate(self, platform) -> Module:
        m = Module()
        if _ecp5(platform) and self.fits_ecp5():
            self._mult18x18d(m)
            return m
        if self.input_registers:
            a, b = Signal(self._a, reset_less=True), Signal(self._b, reset_less=True)
            m.d.sync += [a.eq(self.a), b.eq(self.b)]
        else:
            a, b = self.a, self.b
        if self.output_register:
            m.d.sync += self.o.eq(a * b)
        else:
            m.d.comb += self.o.eq(a * b)
        return m

    def _mult18x18d(self, m: Module) -> None:
        """The ECP5 sysDSP multiplier with the output register (``output_register``) and the
        A and B registers (``input_registers``) on CLK0, CE0 high, RST0 low, the pipeline
        register bypassed: ``P`` is ``A * B`` ``latency`` clocks after them."""
        p = Signal(ECP5_PRODUCT_BITS)

        def operand(name: str, v, shape: Shape) -> dict:
            # extended to 18 bits as its signedness says; SIGNEDx tells the block which it is
            ext = Signal(signed(ECP5_OPERAND_BITS) if shape.signed else unsigned(ECP5_OPERAND_BITS))
            m.d.comb += ext.eq(v)
            return {f"i_{name}{i}": ext[i] for i in range(ECP5_OPERAND_BITS)}

        regs = {}
        for reg in ("INPUTA", "INPUTB", "OUTPUT"):
            used = self.output_register if reg == "OUTPUT" else self.input_registers
            regs |= {f"p_REG_{reg}_CLK": "CLK0" if used else "NONE", f"p_REG_{reg}_CE": "CE0",
                     f"p_REG_{reg}_RST": "RST0"}
        m.submodules.mult = Instance(
            "MULT18X18D",
            **regs,
            p_REG_INPUTC_CLK="NONE", p_REG_PIPELINE_CLK="NONE",
            p_GSR="DISABLED", p_RESETMODE="SYNC", p_MULT_BYPASS="DISABLED",
            p_SOURCEB_MODE="B_SHIFT", p_CAS_MATCH_REG="FALSE",
            **operand("A", self.a, self._a),
            **operand("B", self.b, self._b),
            **{f"i_C{i}": Const(0, 1) for i in range(ECP5_OPERAND_BITS)},
            i_SIGNEDA=Const(int(self._a.signed), 1), i_SIGNEDB=Const(int(self._b.signed), 1),
            i_SOURCEA=Const(0, 1), i_SOURCEB=Const(0, 1),
            i_CLK0=ClockSignal("sync"), i_CE0=Const(1, 1), i_RST0=Const(0, 1),
            **{f"o_P{i}": p[i] for i in range(ECP5_PRODUCT_BITS)},
        )
        # 36 bits hold any product of two 18-bit operands: signed if either operand is
        m.d.comb += self.o.eq(p.as_signed() if self._a.signed or self._b.signed else p)
