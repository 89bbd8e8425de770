"""Properties of the activation queue (hw/activation_queue.py), checked around the real block.

The environment is the PE's: ``push``/``push_data``, ``o.ready`` and the reset are free in
every cycle; ``start`` (a pair's column starts) is assumed only while a pair has left the FIFO
and not yet started (``pending > level``: the pointer read unit holds it). Nothing bounds how
many pairs the downstream registers hold: the block promises that its FIFO cannot overflow
whatever they hold.

Asserted in every cycle, D = ``queue_depth + HELD_PAIRS`` as docs/format.md "Timing" defines it
(taken from the configuration, not from the block, so a block with the wrong capacity fails):

- ``bounds``: ``level <= pending <= D`` (no overflow, and pending never below the FIFO's fill);
- ``no_overflow``: a push is taken only while the FIFO has a free slot; ``no_underflow``: a pop
  only while it holds a pair (``o.valid`` = ``level != 0``);
- ``room``: bit ``i`` of ``room`` is ``pending < D - i`` (``i`` = 0 .. ``ROOM_FLAGS - 1``),
  registered, as the central control unit reads them;
- ``order``: a pair chosen by the solver (any push, any data) comes out of ``o`` with its data
  after exactly the pairs that were in the FIFO when it went in (a FIFO, nothing lost, nothing
  invented: ``level`` counts pushes taken minus pops).

For k-induction the wrapper reads the FIFO's state through the block's own memory: extra
asynchronous read ports on its ``mem`` (one per slot; the write and read ports' addresses are
the write and read pointers). Reading does not change the block.
"""

from __future__ import annotations

from amaranth.hdl import Assert, Assume, Cover, Module, Mux, Signal
from amaranth.hdl._ast import AnySeq  # Amaranth 0.5 exports the formal values only here
from amaranth.lib import wiring

from hw.activation_queue import ActivationQueue
from hw.central_control import ROOM_FLAGS
from hw.params import HWParams
from hw.pointer_read import HELD_PAIRS
from sw.eie.config import EIEConfig


def small_config(queue_depth: int = 2) -> EIEConfig:
    return EIEConfig(name="formal", n_pe=2, queue_depth=queue_depth, act_bits=4, act_frac=2,
                     acc_bits=8, act_depth=4, spmat_words=4, ptr_depth=4, bias_depth=4,
                     max_layers=2)


class QueueProperties(wiring.Component):
    """``queue_cls(params, extra=HELD_PAIRS, rooms=ROOM_FLAGS)`` with free inputs and the
    properties above."""

    def __init__(self, config: EIEConfig | None = None, queue_cls=ActivationQueue):
        super().__init__({})  # no ports: every input is free (AnySeq/AnyConst)
        self.config = config or small_config()
        self.queue_cls = queue_cls

    def elaborate(self, platform) -> Module:
        m = Module()
        p = HWParams(self.config)
        D = self.config.queue_depth + HELD_PAIRS  # the contract's capacity
        q = self.queue_cls(p, extra=HELD_PAIRS, rooms=ROOM_FLAGS)
        q._MustUse__silence = True  # elaborated here, so that its memory can be read
        dut = q.elaborate(platform)
        m.submodules.dut = dut
        mem = dut.submodules.mem
        size = mem.depth
        wr_ptr, rd_ptr = mem.write_ports[0].addr, mem.read_ports[0].addr
        slots = []
        for n in range(size):
            port = mem.read_port(domain="comb")
            m.d.comb += port.addr.eq(n)
            slots.append(port.data)

        # the environment
        m.d.comb += [
            q.push.eq(AnySeq(1)), q.push_data.eq(AnySeq(len(q.push_data.as_value()))),
            q.o.ready.eq(AnySeq(1)), q.start.eq(AnySeq(1)),
        ]
        m.d.comb += Assume(~q.start | (q.pending > q.level))

        do_push = Signal()
        do_pop = Signal()
        m.d.comb += [do_push.eq(q.push & q.room[0]), do_pop.eq(q.o.valid & q.o.ready)]

        # bounds, overflow, underflow, room
        m.d.comb += [
            Assert(q.level <= q.pending, "bounds: level <= pending"),
            Assert(q.pending <= D, "bounds: pending <= D"),
            Assert(~do_push | (q.level < D), "no_overflow: push into a free slot"),
            Assert(q.o.valid == (q.level != 0), "no_underflow: valid iff the FIFO holds a pair"),
        ]
        m.d.comb += [Assert(q.room[i] == (q.pending < D - i), f"room[{i}] == (pending < D - {i})")
                     for i in range(ROOM_FLAGS)]

        # order: one tracked pair; ``ahead`` = pairs in the FIFO in front of it
        track = Signal()  # the solver picks this cycle's push (once)
        tracking, seen = Signal(), Signal()
        data = Signal.like(q.push_data)
        ahead = Signal(range(size + 1))
        m.d.comb += track.eq(AnySeq(1) & do_push & ~tracking & ~seen)
        with m.If(track):
            m.d.sync += [tracking.eq(1), data.eq(q.push_data), ahead.eq(q.level - do_pop)]
        with m.Elif(tracking & do_pop):
            with m.If(ahead == 0):
                m.d.sync += [tracking.eq(0), seen.eq(1)]
            with m.Else():
                m.d.sync += ahead.eq(ahead - 1)
        with m.If(tracking & do_pop & (ahead == 0)):
            m.d.comb += Assert(q.o.payload.as_value() == data.as_value(),
                               "order: the tracked pair comes out with its data")

        # invariants that close the induction: pointers, and the tracked pair in its slot
        m.d.comb += [
            Assert((rd_ptr < size) & (wr_ptr < size), "invariant: pointers in range"),
            Assert(wr_ptr == _wrap(rd_ptr + q.level, size), "invariant: pointers"),
        ]
        where = Signal(range(size))
        m.d.comb += where.eq(_wrap(rd_ptr + ahead, size))
        with m.If(tracking):
            m.d.comb += Assert(ahead < q.level, "order: the tracked pair is in the FIFO")
            for n, slot in enumerate(slots):
                with m.If(where == n):
                    m.d.comb += Assert(slot.as_value() == data.as_value(),
                                       "invariant: the tracked pair's slot")

        # not vacuous: the queue fills, reports no room, and the tracked pair comes out
        m.d.comb += [
            Cover(q.pending == D),
            Cover((q.level == size) & ~q.room[0]),
            Cover(tracking & do_pop & (ahead == 0) & (q.level > 1)),
        ]
        return m


def _wrap(value, size: int):
    """``value mod size`` for 0 <= value < 2 * size."""
    return Mux(value >= size, value - size, value)


class RoomOffByOne(ActivationQueue):
    """A deliberately broken queue for the tests: its capacity is one more than the contract's
    (as if ``room`` compared with ``queue_depth + extra + 1``). The real block is untouched."""

    def __init__(self, params: HWParams, extra: int = 0, rooms: int = 1):
        super().__init__(params, extra, rooms)
        self.depth += 1
