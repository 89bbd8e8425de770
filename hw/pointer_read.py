"""Pointer read unit: p_j and p_{j+1} from two single-ported banks in one cycle.

Han et al., EIE (ISCA 2016), Section IV "Pointer Read Unit": the pointers sit in an even and an
odd SRAM bank, so the two consecutive pointers that bound column j are always in different banks
and are read in the same cycle. Pointer address ``a = ptr_base + j`` is in bank ``a & 1`` at bank
address ``a >> 1`` (docs/format.md), so p_j and p_{j+1} are

- even ``a``: even[a >> 1], odd[a >> 1];
- odd ``a``:  odd[a >> 1], even[(a >> 1) + 1].

The banks are read with the *queue head* as the address every cycle; when the PE pops the head
(``i.valid & i.ready``), the column's bounds leave on ``o`` in the next cycle, so a popped column
costs one cycle of pointer read before its first entry (docs/hardware.md, "Pipeline").
"""

from __future__ import annotations

from collections.abc import Sequence

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out

from .params import HWParams


class PointerRead(wiring.Component):
    """Ports:
        i: the activation queue's head; ``i.ready`` (= ``free``) pops it.
        free: the sparse-matrix read unit can start a column in the cycle after this one.
        ptr_base: the running layer's first pointer address.
        o: a column ``(start, end, a)``, valid for one cycle, one cycle after its pop.
        wr_en, wr_addr, wr_data: host write of bank address ``wr_addr`` in both banks:
            ``wr_data`` = even pointer | odd pointer << ptr_bits.
    """

    def __init__(self, params: HWParams, init_even: Sequence[int] = (),
                 init_odd: Sequence[int] = ()):
        self._p = params
        self._init = (list(init_even), list(init_odd))
        super().__init__({
            "i": In(stream.Signature(params.queue_entry)),
            "free": In(1),
            "ptr_base": In(params.ptr_addr_bits),
            "o": Out(stream.Signature(params.column, always_ready=True)),
            "wr_en": In(1),
            "wr_addr": In(params.bank_addr_bits),
            "wr_data": In(2 * params.ptr_bits),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        p = self._p
        pb = p.ptr_bits
        banks = []
        for b, name in enumerate(("even", "odd")):
            mem = memory.Memory(shape=pb, depth=p.bank_depth, init=self._init[b])
            m.submodules[name] = mem
            wp = mem.write_port()
            m.d.comb += [wp.en.eq(self.wr_en), wp.addr.eq(self.wr_addr),
                         wp.data.eq(self.wr_data[b * pb:(b + 1) * pb])]
            banks.append(mem.read_port())
        even, odd = banks

        addr = Signal(p.ptr_addr_bits + 1)
        m.d.comb += [
            addr.eq(self.ptr_base + self.i.payload.j),
            even.addr.eq((addr + 1) >> 1),
            odd.addr.eq(addr >> 1),
            self.i.ready.eq(self.free),
        ]
        odd_first = Signal()
        a = Signal(signed(p.act_bits))
        m.d.sync += [
            self.o.valid.eq(self.i.valid & self.free),
            odd_first.eq(addr[0]),
            a.eq(self.i.payload.a),
        ]
        m.d.comb += [
            self.o.payload.start.eq(Mux(odd_first, odd.data, even.data)),
            self.o.payload.end.eq(Mux(odd_first, even.data, odd.data)),
            self.o.payload.a.eq(a),
        ]
        return m
