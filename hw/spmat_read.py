"""Sparse-matrix read unit: walks a column's (v, z) entries, one per cycle.

Han et al., EIE (ISCA 2016), Section IV "Sparse Matrix Read Unit": the sparse-matrix SRAM is
64 bits wide, 8 entries of 8 bits per word; the pointer's high bits pick the word, its low 3
bits the entry (docs/format.md: entry address ``A`` is word ``A >> 3``, bits
``[8 (A & 7), 8 (A & 7) + 8)``). Columns are not word-aligned, so a column may start and end
anywhere inside a word; padding entries (``v = 0, z = 15``) are walked like any other entry.

Timing: a column popped in cycle t arrives from the pointer read unit in t+1 with its bounds;
its e entries are issued in cycles t+1 .. t+e (the first straight from the pointer banks'
outputs), and ``free`` rises in the cycle that issues the last one (or in t+1 when e <= 1),
so the next column is popped then and its first entry follows with no bubble: a PE spends
``max(1, e)`` cycles per column (docs/format.md, "Timing").
"""

from __future__ import annotations

from collections.abc import Sequence

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out

from .params import HWParams


class SparseMatrixRead(wiring.Component):
    """Ports:
        i: a column ``(start, end, a)`` from the pointer read unit (one cycle, no backpressure).
        free: the unit can take a new column in the next cycle (combinational: it is true in
            the cycle that issues a column's last entry, so columns follow back to back).
        o: one entry ``(v, z, first, a)`` per cycle, one cycle after its address is issued
            (the SRAM read); ``first`` marks a column's first entry.
        wr_en, wr_addr, wr_data: host write of one 64-bit word.
    """

    def __init__(self, params: HWParams, init: Sequence[int] = ()):
        self._p = params
        self._init = list(init)
        c = params.config
        super().__init__({
            "i": In(stream.Signature(params.column, always_ready=True)),
            "free": Out(1),
            "o": Out(stream.Signature(params.entry, always_ready=True)),
            "wr_en": In(1),
            "wr_addr": In(params.spmat_addr_bits),
            "wr_data": In(c.spmat_word_bits),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        p = self._p
        c = p.config
        pb = p.ptr_bits
        m.submodules.mem = mem = memory.Memory(shape=c.spmat_word_bits, depth=c.spmat_words,
                                               init=self._init)
        wp = mem.write_port()
        rp = mem.read_port()
        m.d.comb += [wp.en.eq(self.wr_en), wp.addr.eq(self.wr_addr), wp.data.eq(self.wr_data)]

        cur = Signal(pb)  # address of the next entry of the current column
        rem = Signal(pb)  # entries of the current column not yet issued
        a_cur = Signal(signed(p.act_bits))
        issue = Signal()
        addr = Signal(pb)
        first = Signal()
        a = Signal(signed(p.act_bits))

        e = Signal(pb)
        m.d.comb += e.eq(self.i.payload.end - self.i.payload.start)
        with m.If(self.i.valid):  # a fresh column: issue its first entry straight away
            m.d.comb += [
                self.free.eq(e <= 1),
                issue.eq(e != 0),
                addr.eq(self.i.payload.start),
                first.eq(1),
                a.eq(self.i.payload.a),
            ]
            m.d.sync += [
                cur.eq(self.i.payload.start + 1),
                rem.eq(Mux(e != 0, e - 1, 0)),
                a_cur.eq(self.i.payload.a),
            ]
        with m.Else():  # continue the current column
            m.d.comb += [
                self.free.eq(rem <= 1),
                issue.eq(rem != 0),
                addr.eq(cur),
                a.eq(a_cur),
            ]
            with m.If(rem != 0):
                m.d.sync += [cur.eq(cur + 1), rem.eq(rem - 1)]

        sel = Signal(max(1, p.entry_sel_bits))
        first_q = Signal()
        a_q = Signal(signed(p.act_bits))
        m.d.comb += rp.addr.eq(addr >> p.entry_sel_bits)
        m.d.sync += [
            self.o.valid.eq(issue),
            sel.eq(addr[:p.entry_sel_bits] if p.entry_sel_bits else 0),
            first_q.eq(first),
            a_q.eq(a),
        ]
        entry = rp.data.word_select(sel, c.entry_bits)
        m.d.comb += [
            self.o.payload.v.eq(entry[:c.weight_bits]),
            self.o.payload.z.eq(entry[c.weight_bits:]),
            self.o.payload.first.eq(first_q),
            self.o.payload.a.eq(a_q),
        ]
        return m
