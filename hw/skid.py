"""Skid buffers: register stages in a valid/ready stream that cut the ``ready`` path.

A stream stage whose ``ready`` to its producer depends on its consumer's ``ready`` in the same
cycle chains that path through every stage (the LNZD quadtree's root-to-leaf chain limited a
4-PE ECP5 build to 41.7 MHz, docs/hardware.md "Design choices"). A two-entry buffer decides its
``ready`` from its own fill level alone, so each stage's paths end at its registers, and it
still passes one item per cycle: the second entry takes the item that was already on its way
when the consumer stopped. :class:`SkidBuffer` (two entries) is used at every LNZD leaf and
node output and twice at the tree's root (the second beside the central control unit),
:class:`LookaheadBuffer` (three entries, the two oldest in registers of their own) at every
node input (:mod:`hw.lnzd`).
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, Value
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out


class SkidBuffer(wiring.Component):
    """A two-entry buffer between two valid/ready streams of ``shape``: ``i.ready`` = not full
    (a decode of the registered fill level, never of ``o.ready``), ``o`` = the oldest item; one
    item in and one out per cycle in steady state. ``flush`` empties it.

    Two slots written in turn and read in turn: a slot register loads the input directly (its
    enable is the only logic), and ``o.payload`` is one 2:1 multiplexer per bit. The cheapest
    in LUTs, and the shortest path *into* the buffer: used where a long path ends (an LNZD
    node's output buffers, after its selection, and the tree's root)."""

    def __init__(self, shape):
        super().__init__({
            "i": In(stream.Signature(shape)),
            "o": Out(stream.Signature(shape)),
            "flush": In(1),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        level = Signal(range(3))
        load, pop = Signal(), Signal()
        m.d.comb += [
            self.i.ready.eq(level != 2),
            load.eq(self.i.valid & self.i.ready & ~self.flush),
            pop.eq(self.o.valid & self.o.ready),
            self.o.valid.eq(level != 0),
        ]
        with m.If(self.flush):
            m.d.sync += level.eq(0)
        with m.Else():
            m.d.sync += level.eq(level + load - pop)
        slots = [Signal.like(self.o.payload, name=f"slot{n}") for n in range(2)]
        wr, rd = Signal(), Signal()
        m.d.comb += self.o.payload.eq(Mux(rd, Value.cast(slots[1]), Value.cast(slots[0])))
        with m.If(self.flush):
            m.d.sync += [wr.eq(0), rd.eq(0)]
        with m.Else():
            m.d.sync += [wr.eq(wr ^ load), rd.eq(rd ^ pop)]
            for n, slot in enumerate(slots):
                with m.If(load & (wr == n)):
                    m.d.sync += slot.eq(self.i.payload)
        return m


class LookaheadBuffer(wiring.Component):
    """A three-entry buffer whose two oldest items are registers of their own: ``o.payload``
    is the oldest (the *head*), ``next`` the one behind it (when it holds two). An LNZD
    node compares heads a cycle ahead (:class:`hw.lnzd.LNZDNode`): for the heads it will have
    after a pop it needs the popped buffer's next item, and only registers may feed that
    comparison. ``i.ready`` = not full (a decode of the registered fill level); with one item
    taken per cycle the buffer holds two and still accepts one per cycle; the third entry
    (``spare``) takes the item already on its way when the consumer stops.

    ``load_empty`` / ``load_one``: an item loads in this cycle while the buffer is empty / holds
    one. The head register then loads the input (if empty, or if it holds one and is popped):
    its next head was not a register before, so a look-ahead comparison could not have seen it.
    ``flush`` empties the buffer. The three item registers
    have no reset: the fill level says which of them hold an item."""

    def __init__(self, shape):
        super().__init__({
            "i": In(stream.Signature(shape)),
            "o": Out(stream.Signature(shape)),
            "next": Out(shape),
            "load_empty": Out(1),
            "load_one": Out(1),
            "flush": In(1),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        level = Signal(range(4))
        load, pop = Signal(), Signal()
        head = Signal.like(self.o.payload, name="head", reset_less=True)
        nxt = Signal.like(self.o.payload, name="nxt", reset_less=True)
        spare = Signal.like(self.o.payload, name="spare", reset_less=True)
        # where an item loaded now goes: entry level - pop (0 head, 1 next, 2 spare)
        to_head, to_next, to_spare = Signal(), Signal(), Signal()
        m.d.comb += [
            self.i.ready.eq(level != 3),
            load.eq(self.i.valid & self.i.ready & ~self.flush),
            pop.eq(self.o.valid & self.o.ready),
            self.o.valid.eq(level != 0),
            self.o.payload.eq(head),
            self.next.eq(nxt),
            to_head.eq(load & ((level == 0) | ((level == 1) & pop))),
            to_next.eq(load & (((level == 1) & ~pop) | ((level == 2) & pop))),
            to_spare.eq(load & (level == 2) & ~pop),
            self.load_empty.eq(load & (level == 0)),
            self.load_one.eq(load & (level == 1)),
        ]
        with m.If(self.flush):
            m.d.sync += level.eq(0)
        with m.Else():
            m.d.sync += level.eq(level + load - pop)
        with m.If(pop & (level >= 2)):
            m.d.sync += head.eq(nxt)
        with m.Elif(to_head):
            m.d.sync += head.eq(self.i.payload)
        with m.If(pop & (level == 3)):
            m.d.sync += nxt.eq(spare)
        with m.Elif(to_next):
            m.d.sync += nxt.eq(self.i.payload)
        with m.If(to_spare):
            m.d.sync += spare.eq(self.i.payload)
        return m
