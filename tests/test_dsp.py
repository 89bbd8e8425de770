"""hw/dsp.py: the registered multiplier, in logic (what simulation runs) and as an ECP5
MULT18X18D with its own registers (what `eie synth` and the board builds elaborate)."""

from __future__ import annotations

import random

import pytest
from amaranth.hdl import Fragment, Instance, Shape, signed, unsigned
from hw_testutil import run_sim

from hw.dsp import LATENCY, RegisteredMultiplier
from hw.fpga import ecp5, flow
from hw.verilog import convert

ECP5 = ecp5.platform(ecp5.DEVICES["LFE5U-85F"])


@pytest.mark.parametrize("a_shape,b_shape,o_bits,input_registers,output_register", [
    (signed(16), unsigned(16), 40, False, True),  # the write-back's bias * 2**shift
    (signed(16), signed(16), 32, False, True),
    (signed(8), signed(8), 12, True, True),       # narrower than the product: modulo 2**12
    (unsigned(18), unsigned(18), 36, True, True),
    (signed(20), unsigned(5), 30, True, True),    # too wide for one MULT18X18D: logic
    (signed(8), signed(8), 16, True, False),      # the arithmetic unit's codebook value * a_j
    (signed(20), signed(3), 23, True, False),
])
def test_product_of_the_operands_latency_cycles_earlier(a_shape, b_shape, o_bits,
                                                         input_registers, output_register):
    dut = RegisteredMultiplier(a_shape, b_shape, o_bits, input_registers=input_registers,
                               output_register=output_register)
    latency = dut.latency
    assert latency == (LATENCY if input_registers and output_register else 1)
    a_shape, b_shape = Shape.cast(a_shape), Shape.cast(b_shape)
    rng = random.Random(o_bits)

    def draw(s: Shape) -> int:
        lo, hi = (-(1 << (s.width - 1)), (1 << (s.width - 1)) - 1) if s.signed else (0, (1 << s.width) - 1)
        return rng.choice([lo, hi, 0, 1, rng.randint(lo, hi), rng.randint(lo, hi)])

    def wrap(v: int) -> int:
        v &= (1 << o_bits) - 1
        return v - (1 << o_bits) if v >> (o_bits - 1) else v

    async def bench(ctx):
        sent = []
        for cycle in range(200):
            a, b = draw(a_shape), draw(b_shape)
            ctx.set(dut.a, a)
            ctx.set(dut.b, b)
            sent.append(wrap(a * b))
            await ctx.tick()
            if cycle + 1 >= latency:
                assert ctx.get(dut.o) == sent[cycle + 1 - latency], cycle

    run_sim(dut, bench)


def _instances(frag) -> list[Instance]:
    found = []

    def walk(f):
        for sub, _name, _src in f.subfragments:
            if isinstance(sub, Instance):
                found.append(sub)
            else:
                walk(sub)
    walk(frag)
    return found


def _mult(dut, platform):
    frag = Fragment.get(dut, platform)
    return [i for i in _instances(frag) if i.type == "MULT18X18D"]


def test_ecp5_platform_gets_a_mult18x18d_with_its_input_and_output_registers():
    dut = RegisteredMultiplier(signed(16), unsigned(16), 40)
    (inst,) = _mult(dut, ECP5)
    p = inst.parameters
    for reg in ("INPUTA", "INPUTB", "OUTPUT"):  # on CLK0, always enabled, never reset
        assert (p[f"REG_{reg}_CLK"], p[f"REG_{reg}_CE"], p[f"REG_{reg}_RST"]) == ("CLK0", "CE0", "RST0")
    assert p["REG_PIPELINE_CLK"] == "NONE"  # LATENCY 2: the input registers, then the output
    assert LATENCY == 2
    ports = inst.ports
    assert ports["SIGNEDA"][0].value == 1 and ports["SIGNEDB"][0].value == 0
    assert ports["CE0"][0].value == 1 and ports["RST0"][0].value == 0
    assert {f"P{i}" for i in range(36)} <= set(ports)


def test_without_operand_registers_only_the_output_register_is_used():
    dut = RegisteredMultiplier(signed(16), signed(16), 32, input_registers=False)
    (inst,) = _mult(dut, ECP5)
    p = inst.parameters
    assert (p["REG_INPUTA_CLK"], p["REG_INPUTB_CLK"], p["REG_OUTPUT_CLK"]) == ("NONE", "NONE", "CLK0")
    assert inst.ports["SIGNEDA"][0].value == 1 and inst.ports["SIGNEDB"][0].value == 1


def test_without_the_output_register_only_the_operand_registers_are_used():
    dut = RegisteredMultiplier(signed(8), signed(8), 16, output_register=False)
    (inst,) = _mult(dut, ECP5)
    p = inst.parameters
    assert (p["REG_INPUTA_CLK"], p["REG_INPUTB_CLK"], p["REG_OUTPUT_CLK"]) == ("CLK0", "CLK0", "NONE")


def test_a_multiplier_without_registers_is_refused():
    with pytest.raises(ValueError, match="registers"):
        RegisteredMultiplier(signed(8), signed(8), 16, input_registers=False,
                             output_register=False)


def test_too_wide_or_no_ecp5_platform_gives_logic():
    assert _mult(RegisteredMultiplier(signed(16), unsigned(16), 40), None) == []
    assert _mult(RegisteredMultiplier(signed(19), unsigned(16), 40), ECP5) == []
    assert _mult(RegisteredMultiplier(signed(16), unsigned(19), 40), ECP5) == []


def test_yosys_keeps_the_registers_in_the_block_on_ecp5_only(tmp_path):
    # synth_ecp5 maps both to one MULT18X18D; only the ECP5 elaboration has no fabric
    # flip-flops around it (the logic version: 16 + 16 for the operands, the product's 33
    # significant bits less what Yosys merges)
    ff = {}
    for label, platform in (("ecp5", ECP5), ("logic", None)):
        dut = RegisteredMultiplier(signed(16), unsigned(16), 40)
        src = tmp_path / f"{label}.v"
        src.write_text(convert(dut, "mul", platform=platform))
        r = flow.synthesize([src], "mul", tmp_path / label, pnr=False)
        assert r.resources["MULT18X18D"] == 1, label
        ff[label] = r.resources["FF"]
    assert ff["ecp5"] == 0 and ff["logic"] > 16 + 16


def test_the_arithmetic_unit_multiplies_in_the_blocks_operand_registers_on_ecp5():
    # its product goes to a fabric register beside the adder (docs/fpga.md), its operands
    # (the codebook value, a_j) into the MULT18X18D's A and B registers
    from hw.arithmetic_unit import ArithmeticUnit
    from hw.params import HWParams
    from sw.eie.config import PRESETS
    (inst,) = _mult(ArithmeticUnit(HWParams(PRESETS["ecp5_small"])), ECP5)
    p = inst.parameters
    assert (p["REG_INPUTA_CLK"], p["REG_INPUTB_CLK"], p["REG_OUTPUT_CLK"]) == ("CLK0", "CLK0", "NONE")
