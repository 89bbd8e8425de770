"""Activation queue: the FIFO of broadcast (j, a_j) pairs in front of every PE.

Han et al., EIE (ISCA 2016), Section IV "Activation Queue and Load Balancing": the central
control unit broadcasts each non-zero input to every PE's queue; a PE takes the next pair when
it has finished the previous column, so a PE with a long column does not hold up the others
until its queue fills; broadcasting stalls while any queue is full (depth 8 in the paper).

Timing (docs/format.md "Timing", the room rule): a pair occupies its place until the PE *starts*
its column, also while it waits in the pointer read unit's four registers (``HELD_PAIRS``)
after leaving the FIFO; ``room`` is a register, so a start in the same cycle never makes room
for a push (the broadcast decision is an AND of registers, not of the PEs' logic). A pushed pair
is at the head from the next cycle. The central control unit's broadcast reaches the queue
``BROADCAST_STAGES`` cycles after its decision and ``room`` reaches the decision through
``STATUS_STAGES`` more registers, so ``room`` is a vector: bit ``i`` says there is room for
``i + 1`` more pairs, and the unit reads the bit for the pairs it has in flight.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out

from .params import HWParams


class ActivationQueue(wiring.Component):
    """FIFO of (j, a_j) pairs: a PE holds up to ``queue_depth + extra`` pairs whose columns have
    not started, ``extra`` of them in the registers downstream (the PE passes ``HELD_PAIRS``,
    the pointer read unit's three).
    The FIFO itself has room for all of them, so it cannot overflow whatever the downstream
    registers hold (distributed RAM is 16 words deep anyway).

    Ports:
        push, push_data: a broadcast pair; ignored while ``room[0]`` is low (the central control
            unit never pushes then).
        room: ``rooms`` registered flags, bit ``i``: fewer than ``capacity - i`` pairs pending
            (room for ``i + 1`` more; ``capacity = depth + extra``).
        o: the head (``valid`` = non-empty); ``ready`` pops it.
        start: a pair's column starts (it leaves the pending count).
        level: pairs in the FIFO (registered).
        pending: pairs pushed and not started (registered; >= ``level``).
    """

    def __init__(self, params: HWParams, extra: int = 0, rooms: int = 1):
        self._p = params
        self.depth = params.config.queue_depth + extra  # the capacity
        self.rooms = rooms
        super().__init__({
            "push": In(1),
            "push_data": In(params.queue_entry),
            "room": Out(rooms, init=sum(1 << i for i in range(rooms) if self.depth > i)),
            "o": Out(stream.Signature(params.queue_entry)),
            "start": In(1),
            "level": Out(range(self.depth + 1)),
            "pending": Out(range(self.depth + 1)),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        depth = self.depth
        # Small, asynchronously read storage: LUT RAM on an FPGA, a register file in an ASIC.
        m.submodules.mem = mem = memory.Memory(shape=self._p.queue_entry, depth=depth, init=[])
        wp = mem.write_port()
        rp = mem.read_port(domain="comb")
        wr_ptr = Signal(range(depth))
        rd_ptr = Signal(range(depth))

        do_push = self.push & self.room[0]
        do_pop = self.o.valid & self.o.ready
        m.d.comb += [
            wp.addr.eq(wr_ptr), wp.data.eq(self.push_data), wp.en.eq(do_push),
            rp.addr.eq(rd_ptr),
            self.o.payload.eq(rp.data),
            self.o.valid.eq(self.level != 0),
        ]
        _advance(m, wr_ptr, depth, do_push)
        _advance(m, rd_ptr, depth, do_pop)
        # pending + push - start < k  <=>  pending < k - push + start: the comparisons with
        # constants are made on the register, ``push`` and ``start`` only pick one
        delta = Signal(range(-1, 2))
        m.d.comb += delta.eq(do_push - self.start)
        below = {k: self.pending < k for k in range(depth - self.rooms, depth + 2)}
        m.d.sync += [
            self.level.eq(self.level + do_push - do_pop),
            self.pending.eq(self.pending + delta),
            # bit i: pending + delta < capacity - i
            self.room.eq(Cat(Mux(delta == 1, below[depth - 1 - i],
                                 Mux(delta == 0, below[depth - i], below[depth + 1 - i]))
                             for i in range(self.rooms))),
        ]
        return m


def _advance(m: Module, ptr: Signal, depth: int, en) -> None:
    """Step a circular index 0..depth-1 when ``en``."""
    with m.If(en):
        m.d.sync += ptr.eq(Mux(ptr == depth - 1, 0, ptr + 1))
