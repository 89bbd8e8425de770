"""Pointer read unit: p_j and p_{j+1} from two single-ported banks in one cycle.

Han et al., EIE (ISCA 2016), Section IV "Pointer Read Unit": the pointers sit in an even and an
odd SRAM bank, so the two consecutive pointers that bound column j are always in different banks
and are read in the same cycle. Pointer address ``a = ptr_base + j`` is in bank ``a & 1`` at bank
address ``a >> 1`` (docs/format.md), so p_j and p_{j+1} are (:func:`bank_addresses`, computed
by the central control unit as it broadcasts, so the queues hold bank addresses)

- even ``a``: even[a >> 1], odd[a >> 1];
- odd ``a``:  odd[a >> 1], even[(a >> 1) + 1].

Registered stages, so that no combinational path runs from a block RAM's output into a
decision of the same cycle (a 4-PE ECP5 build was limited to 55.7 MHz by pointer banks ->
column length -> "free" -> queue pop):

- the *pointer stage* reads the banks with the queue head as the address in every cycle in
  which it takes a pair (one is there, and the stage is empty or its pair moves on): one read
  of both banks per pair; the bounds are the banks' outputs in the next cycle, held there
  (read enable low) while the pair waits;
- the *bounds register* takes the banks' outputs as they are (on an ECP5 it is the block
  RAMs' own output register: hw.fpga.ecp5.absorb_bram_output_registers);
- the *span register* holds the column's ``start`` and ``end`` (which bank holds which): a
  register placed between the block RAMs and the column logic, which a routed 4-PE build put
  far apart (the bounds -> the column's length and flags was its critical path, 5.7 ns of
  routing in 8.7 ns);
- the *column register* holds the next column: ``start``, its length ``e = end - start``
  and ``a_j``, ready for the sparse-matrix read unit, which starts it whenever it has
  issued the previous column's entries.

Each stage moves on when the one after it is empty or moving, so columns flow one per cycle.
A pair at the queue head in cycle t is in the column register from t + 4 at the earliest: with
the queue's write, its column can start ``COLUMN_LATENCY`` = 5 cycles after it is pushed, 7
after the central control unit decided to broadcast it (docs/format.md, "Timing":
``column_latency``).
"""

from __future__ import annotations

from collections.abc import Sequence

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out

from .params import HOST_LOADED_MEMORY, HWParams
from .signatures import write_signature

# queue write (1) -> pointer read (1) -> bounds (1) -> span (1) -> column register (1): the
# earliest start of a pair's column after the cycle it is pushed into the queue
COLUMN_LATENCY = 5
# pairs held here (pointer stage, bounds, span and column registers) that still count against
# the queue's room: a PE holds queue_depth + HELD_PAIRS pairs whose columns have not started
HELD_PAIRS = 4


def bank_addresses(params: HWParams, addr) -> tuple:
    """Where column j's bounds are, for pointer address ``addr = ptr_base + j``: the even bank's
    address, the odd bank's, and whether p_j is the odd bank's (``addr`` odd). The central
    control unit computes them as it broadcasts j (:class:`hw.central_control.CentralControl`),
    the queues hold them (``HWParams.queue_entry``)."""
    bb = params.bank_addr_bits
    return ((addr + 1) >> 1)[:bb], (addr >> 1)[:bb], addr[0]


class PointerRead(wiring.Component):
    """Ports:
        i: the activation queue's head (the banks' addresses of its column's bounds and
            a_j); ``i.ready`` takes it into the pointer stage.
        o: the column register ``(start, e, a)``; ``o.ready`` (the sparse-matrix read unit
            starts the column) empties it.
        wr: host write of bank address ``wr.addr`` in both banks: ``wr.data`` = even
            pointer | odd pointer << ptr_bits.
    """

    def __init__(self, params: HWParams, init_even: Sequence[int] = (),
                 init_odd: Sequence[int] = ()):
        self._p = params
        self._init = (list(init_even), list(init_odd))
        super().__init__({
            "i": In(stream.Signature(params.queue_entry)),
            "o": Out(stream.Signature(params.column)),
            "wr": In(write_signature(params.bank_addr_bits, 2 * params.ptr_bits)),
            "bank_read": Out(1),  # both banks are read in this cycle (for access counters)
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        p = self._p
        pb = p.ptr_bits
        banks = []
        for b, name in enumerate(("even", "odd")):
            mem = memory.Memory(shape=pb, depth=p.bank_depth, init=self._init[b],
                                attrs=HOST_LOADED_MEMORY)
            m.submodules[name] = mem
            wp = mem.write_port()
            m.d.comb += [wp.en.eq(self.wr.en), wp.addr.eq(self.wr.addr),
                         wp.data.eq(self.wr.data[b * pb:(b + 1) * pb])]
            banks.append(mem.read_port())
        even, odd = banks

        # Four stages, each moving on when the next one is empty or moving:
        # R (read): the banks' outputs, for the pair taken in the previous cycle (held while
        #   the pair waits: read enable low); B: the bounds registered straight from the block
        #   RAMs (whose clock-to-output delay leaves no time for logic in the same cycle);
        # S: the span (start and end, in a register between the block RAMs and the column
        # logic); C: the column register (start, e = end - start, a_j).
        r_valid, b_valid, s_valid = Signal(), Signal(), Signal()
        odd_r, odd_b = Signal(), Signal()
        a_r, a_b, a_s = (Signal(signed(p.act_bits), name=f"a_{n}") for n in "rbs")
        start_s, end_s = Signal(pb), Signal(pb)
        # (data only, no reset: b_valid says when they hold the bounds; so the ECP5 flow can
        # make them the block RAMs' own output registers, hw.fpga.ecp5.absorb_bram_output_registers)
        even_b = Signal(pb, reset_less=True)
        odd_data_b = Signal(pb, reset_less=True)
        col = self.o.payload
        c_load, s_load, b_load = Signal(), Signal(), Signal()
        m.d.comb += [
            c_load.eq(s_valid & (~self.o.valid | self.o.ready)),
            s_load.eq(b_valid & (~s_valid | c_load)),
            b_load.eq(r_valid & (~b_valid | s_load)),
            self.i.ready.eq(~r_valid | b_load),
        ]
        # the queue holds the banks' addresses, computed by the central control unit as it
        # broadcasts (bank_addresses): no adder between the queue and the banks (docs/fpga.md)
        # (read enable only for a pair that is there: without one the stage takes nothing and
        # the banks' outputs are not used)
        head = self.i.payload
        m.d.comb += [
            self.bank_read.eq(self.i.ready & self.i.valid),
            even.addr.eq(head.even), even.en.eq(self.bank_read),
            odd.addr.eq(head.odd), odd.en.eq(self.bank_read),
        ]
        with m.If(self.i.ready):
            m.d.sync += [r_valid.eq(self.i.valid), odd_r.eq(head.odd_first), a_r.eq(head.a)]
        with m.If(b_load):
            m.d.sync += [even_b.eq(even.data), odd_data_b.eq(odd.data), odd_b.eq(odd_r),
                         a_b.eq(a_r)]
        with m.If(s_load):
            m.d.sync += b_valid.eq(b_load)
        with m.Elif(b_load):
            m.d.sync += b_valid.eq(1)
        with m.If(s_load):
            m.d.sync += [start_s.eq(Mux(odd_b, odd_data_b, even_b)),
                         end_s.eq(Mux(odd_b, even_b, odd_data_b)), a_s.eq(a_b)]
        with m.If(c_load):
            m.d.sync += s_valid.eq(s_load)
        with m.Elif(s_load):
            m.d.sync += s_valid.eq(1)

        e = Signal(pb)
        m.d.comb += e.eq(end_s - start_s)
        with m.If(c_load):
            m.d.sync += [self.o.valid.eq(1), col.start.eq(start_s), col.e.eq(e), col.a.eq(a_s),
                         col.nonempty.eq(e != 0), col.short.eq(e <= 1)]
        with m.Elif(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        return m
