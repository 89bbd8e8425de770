"""Sparse-matrix read unit: walks a column's (v, z) entries, one per cycle.

Han et al., EIE (ISCA 2016), Section IV "Sparse Matrix Read Unit": the sparse-matrix SRAM is
64 bits wide, 8 entries of 8 bits per word; the pointer's high bits pick the word, its low 3
bits the entry (docs/format.md: entry address ``A`` is word ``A >> 3``, bits
``[8 (A & 7), 8 (A & 7) + 8)``). Columns are not word-aligned, so a column may start and end
anywhere inside a word; padding entries (``v = 0, z = 15``) are walked like any other entry.

Timing: the unit *starts* a column (takes it from the pointer read unit's column register)
in a cycle in which it has no entry left to issue; it issues the column's e entries in that
cycle and the e - 1 after it (the first from the column register, the others from a counter),
so the next column starts ``max(1, e)`` cycles later with no bubble (docs/format.md,
"Timing"). Whether it can start depends only on registers.

Word reads: the SRAM is read only when an issued entry lies in another word than the last
one read (the read port's output holds that word while its enable is low), so a column that
starts in the word the previous column ended in, or entries of one word, cost one read
(docs/format.md, "Memory accesses"). ``flush`` (the layer's start, a host write) forgets the
held word. ``word_read`` is the read enable, for access counters.
"""

from __future__ import annotations

from collections.abc import Sequence

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out

from .params import HOST_LOADED_MEMORY, HWParams
from .signatures import write_signature


class SparseMatrixRead(wiring.Component):
    """Ports:
        i: the next column ``(start, e, a)``; ``i.ready`` (= ``free``) starts it.
        free: no entry of the current column is left to issue (a register).
        o: one entry ``(v, z, first, a)`` per cycle, four cycles after its address is issued
            (the address registered, the SRAM read, the word registered, the entry selected
            from it); ``first`` marks a column's first entry.
        wr: host write of one 64-bit word.
        flush: forget the held word (the next issued entry reads its word).
        word_read: the SRAM read of a word is issued in this cycle (done in the next).
    """

    def __init__(self, params: HWParams, init: Sequence[int] = ()):
        self._p = params
        self._init = list(init)
        c = params.config
        super().__init__({
            "i": In(stream.Signature(params.column)),
            "free": Out(1),
            "o": Out(stream.Signature(params.entry, always_ready=True)),
            "wr": In(write_signature(params.spmat_addr_bits, c.spmat_word_bits)),
            "flush": In(1),
            "word_read": Out(1),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        p = self._p
        c = p.config
        pb = p.ptr_bits
        m.submodules.mem = mem = memory.Memory(shape=c.spmat_word_bits, depth=c.spmat_words,
                                               init=self._init, attrs=HOST_LOADED_MEMORY)
        wp = mem.write_port()
        rp = mem.read_port()
        m.d.comb += [wp.en.eq(self.wr.en), wp.addr.eq(self.wr.addr), wp.data.eq(self.wr.data)]

        cur = Signal(pb)  # address of the next entry of the current column
        rem = Signal(pb)  # entries of the current column not yet issued
        a_cur = Signal(signed(p.act_bits))
        issue = Signal()
        addr = Signal(pb)
        first = Signal()
        a = Signal(signed(p.act_bits))

        col = self.i.payload
        # ``free`` is a register: "rem == 0", kept up to date as rem changes
        free = Signal(init=1)
        m.d.comb += [self.free.eq(free), self.i.ready.eq(free)]
        with m.If(self.i.valid & free):  # start a column: its first entry straight away
            m.d.comb += [
                issue.eq(col.nonempty),
                addr.eq(col.start),
                first.eq(1),
                a.eq(col.a),
            ]
            m.d.sync += [
                cur.eq(col.start + 1),
                rem.eq(Mux(col.nonempty, col.e - 1, 0)),
                free.eq(col.short),
                a_cur.eq(col.a),
            ]
        with m.Elif(~free):  # continue the current column
            m.d.comb += [issue.eq(1), addr.eq(cur), a.eq(a_cur)]
            m.d.sync += [cur.eq(cur + 1), rem.eq(rem - 1), free.eq(rem == 1)]

        # R0: the word's address and read enable registered (placed by the block RAMs: the
        # column logic that decides them sits with the pointer read unit, which a routed
        # 16-PE build put far from them); R1: the SRAM read; R2: the word registered straight
        # from the block RAM (its own output register on an ECP5); R3: the entry selected from
        # its word, registered.
        sel0, sel1, sel2 = (Signal(max(1, p.entry_sel_bits), name=f"sel{n}") for n in range(3))
        v0, first0, v1, first1, v2, first2 = (Signal(name=n) for n in (
            "v0", "first0", "v1", "first1", "v2", "first2"))
        a0, a1, a2 = (Signal(signed(p.act_bits), name=f"a{n}") for n in range(3))
        # data only, no reset (v2 says when it holds a word): the ECP5 flow makes it the block
        # RAMs' own output register (hw.fpga.ecp5.absorb_bram_output_registers)
        word2 = Signal(c.spmat_word_bits, reset_less=True)
        # the word the read port's output holds (read enable low: it keeps it)
        word = Signal.like(rp.addr)
        held, held_ok = Signal.like(rp.addr), Signal()
        read = Signal()  # the word is read (its read is issued now, done next cycle)
        word0 = Signal.like(rp.addr)
        read0 = Signal()
        m.d.comb += [
            word.eq(addr >> p.entry_sel_bits),
            read.eq(issue & ~(held_ok & (held == word))),
            rp.addr.eq(word0),
            rp.en.eq(read0),
            self.word_read.eq(read),
        ]
        with m.If(self.flush | self.wr.en):
            m.d.sync += held_ok.eq(0)
        with m.Elif(read):
            m.d.sync += [held.eq(word), held_ok.eq(1)]
        m.d.sync += [
            word0.eq(word), read0.eq(read),
            v0.eq(issue),
            sel0.eq(addr[:p.entry_sel_bits] if p.entry_sel_bits else 0),
            first0.eq(first),
            a0.eq(a),
            v1.eq(v0), sel1.eq(sel0), first1.eq(first0), a1.eq(a0),
            v2.eq(v1), sel2.eq(sel1), first2.eq(first1), a2.eq(a1), word2.eq(rp.data),
        ]
        entry = word2.word_select(sel2, c.entry_bits)
        o = self.o.payload
        m.d.sync += [
            self.o.valid.eq(v2),
            o.v.eq(entry[:c.weight_bits]),
            o.z.eq(entry[c.weight_bits:]),
            o.first.eq(first2),
            o.a.eq(a2),
        ]
        return m
