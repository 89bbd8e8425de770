"""Arithmetic unit: codebook lookup, multiply, accumulate, with the read-after-write bypass.

Han et al., EIE (ISCA 2016), Section IV "Arithmetic Unit": ``b_x = b_x + v * a_j`` with ``v``
looked up in the layer's 16-entry codebook; the row ``x`` is the running sum of the entries'
relative indices; a bypass forwards the adder's output when two adjacent cycles hit the same
accumulator. The paper's pipeline is (1) codebook lookup || address accumulation, (2) output
activation read || multiply, (3) shift and add, (4) output activation write. Here:

- S1 (entry from the sparse-matrix SRAM): codebook read (a small asynchronous memory), row =
  (first ? z : row + z + 1); the codebook value and a_j go into the multiplier's operand
  registers (:class:`hw.dsp.RegisteredMultiplier`: on an ECP5 the MULT18X18D's own A and B
  registers, so the block's input routing is a path of its own).
- S2: codebook value * a_j (the product registered in the fabric, next to the adder),
  accumulator read issued at the row.
- S3: sum = accumulator (or a bypassed sum) + product, modulo 2**acc_bits, registered.
- S4: the sum written back. The LUT-RAM accumulators are spread over many slices: with the
  write in the adder's cycle, the adder's output reaching every one of them was the critical
  path (4 and 16 PEs); now the loop is the sum register -> the bypass multiplexer -> the adder.

The output shift (the layer table's ``shift``) is applied in the write-back (:mod:`hw.activation_rw`), which rounds once, as the
golden model does. A read issued in S2 sees every write up to the previous cycle, so the writes
of the two preceding entries (in S3 and S4) can be missed: that is the bypass, two deep (the
entries of one column never share a row; the last entries of a column and the first of the
next can, and a one-entry column puts entries of three columns in the pipeline at once).
"""

from __future__ import annotations

from collections.abc import Sequence

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out

from .dsp import RegisteredMultiplier
from .params import HWParams
from .signatures import accumulator_signature, write_signature


class ArithmeticUnit(wiring.Component):
    """Ports:
        i: entries ``(v, z, first, a)`` from the sparse-matrix read unit.
        layer: the running layer (selects its codebook).
        acc: the destination (accumulator) file's read port (data one cycle after the
            address) and write port (:func:`hw.signatures.accumulator_signature`).
        cb_wr: host write of codebook entry ``layer * 16 + v``.
        bypass: S3 takes the previous entry's sum (bit 0) or the sum of the entry before it
            (bit 1) instead of the accumulator read (registered: decided in S2 from the rows
            of the entries in S2, S3 and S4).
    """

    def __init__(self, params: HWParams, init_codebook: Sequence[int] = ()):
        self._p = params
        self._init = list(init_codebook)
        super().__init__({
            "i": In(stream.Signature(params.entry, always_ready=True)),
            "layer": In(params.layer_bits),
            "acc": Out(accumulator_signature(params)),
            "cb_wr": In(write_signature(params.cb_addr_bits, signed(params.act_bits))),
            "bypass": Out(2),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        p = self._p
        m.submodules.codebook = cb = memory.Memory(shape=signed(p.act_bits), depth=p.cb_depth,
                                                   init=self._init)
        cb_wp = cb.write_port()
        cb_rp = cb.read_port(domain="comb")
        m.d.comb += [cb_wp.en.eq(self.cb_wr.en), cb_wp.addr.eq(self.cb_wr.addr),
                     cb_wp.data.eq(self.cb_wr.data)]
        # the layer comes from the central control unit across the chip and is constant during
        # a layer (set at LSTART, long before the layer's first entry): registered here
        layer = Signal.like(self.layer)
        m.d.sync += layer.eq(self.layer)

        # S1: codebook lookup || address accumulation; the operands registered (in every
        # cycle: the product is used only when valid2 says the entry was valid)
        ent = self.i.payload
        row2 = Signal(p.local_bits)
        valid2 = Signal()
        m.submodules.mult = mult = RegisteredMultiplier(
            signed(p.act_bits), signed(p.act_bits), 2 * p.act_bits, input_registers=True,
            output_register=False)
        m.d.comb += [cb_rp.addr.eq(Cat(ent.v, layer)), mult.a.eq(cb_rp.data), mult.b.eq(ent.a)]
        m.d.sync += valid2.eq(self.i.valid)
        with m.If(self.i.valid):
            m.d.sync += row2.eq(Mux(ent.first, ent.z, row2 + ent.z + 1))

        # S2: multiply || accumulator read
        prod3 = Signal(signed(2 * p.act_bits), reset_less=True)
        row3 = Signal(p.local_bits, reset_less=True)
        valid3 = Signal()
        # S3 -> S4: the sum and its row registered, written in S4; the sum of the entry before
        # kept one more cycle (sum5)
        sum4 = Signal(signed(p.acc_bits), reset_less=True)
        sum5 = Signal(signed(p.acc_bits), reset_less=True)
        row4 = Signal(p.local_bits, reset_less=True)
        valid4 = Signal()
        bypass = self.bypass
        m.d.comb += self.acc.rd_addr.eq(row2)
        m.d.sync += [prod3.eq(mult.o), row3.eq(row2), valid3.eq(valid2),
                     # decided here, registered: S3 has only a multiplexer and the adder. The
                     # entry in S3 (bit 0) writes in the next cycle, the one in S4 (bit 1) in
                     # this one: the read issued here sees neither; the later one wins
                     bypass[0].eq(valid2 & valid3 & (row2 == row3)),
                     bypass[1].eq(valid2 & valid4 & (row2 == row4) & ~(valid3 & (row2 == row3)))]

        # S3: add (with the bypass), the sum registered
        old = Signal(signed(p.acc_bits))
        total = Signal(signed(p.acc_bits))
        m.d.comb += [
            old.eq(Mux(bypass[0], sum4, Mux(bypass[1], sum5, self.acc.rd_data))),
            total.eq(old + prod3),  # truncated to acc_bits: wrap-around (docs/format.md)
        ]
        m.d.sync += [sum4.eq(total), row4.eq(row3), valid4.eq(valid3), sum5.eq(sum4)]

        # S4: write
        m.d.comb += [
            self.acc.wr.en.eq(valid4),
            self.acc.wr.addr.eq(row4),
            self.acc.wr.data.eq(sum4),
        ]
        return m
