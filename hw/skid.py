"""The skid buffer: a register stage in a valid/ready stream that cuts the ``ready`` path.

A stream stage whose ``ready`` to its producer depends on its consumer's ``ready`` in the same
cycle chains that path through every stage (the LNZD quadtree's root-to-leaf chain limited a
4-PE ECP5 build to 41.7 MHz, docs/hardware.md "Design choices"). A two-entry buffer decides its
``ready`` from its own fill level alone, so each stage's paths end at its registers, and it
still passes one item per cycle: the second entry takes the item that was already on its way
when the consumer stopped. Used at every input of an LNZD node and at the tree's root
(:mod:`hw.lnzd`).
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out


class SkidBuffer(wiring.Component):
    """A two-entry buffer between two valid/ready streams of ``shape``: ``i.ready`` = not full
    (a decode of the registered fill level, never of ``o.ready``), ``o`` = the oldest item; one
    item in and one out per cycle in steady state. ``flush`` empties it.

    Two slots written in turn and read in turn: a slot register loads the input directly (its
    enable is the only logic), and the output is one 2:1 multiplexer per bit -- a third of the
    LUTs of a head register refilled from a spare one."""

    def __init__(self, shape):
        super().__init__({
            "i": In(stream.Signature(shape)),
            "o": Out(stream.Signature(shape)),
            "flush": In(1),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        slots = [Signal.like(self.o.payload, name=f"slot{n}") for n in range(2)]
        wr, rd = Signal(), Signal()
        level = Signal(range(3))
        load, pop = Signal(), Signal()
        m.d.comb += [
            self.i.ready.eq(level != 2),
            load.eq(self.i.valid & self.i.ready & ~self.flush),
            pop.eq(self.o.valid & self.o.ready),
            self.o.valid.eq(level != 0),
            self.o.payload.eq(Mux(rd, slots[1].as_value(), slots[0].as_value())),
        ]
        with m.If(self.flush):
            m.d.sync += [level.eq(0), wr.eq(0), rd.eq(0)]
        with m.Else():
            m.d.sync += [level.eq(level + load - pop), wr.eq(wr ^ load), rd.eq(rd ^ pop)]
            for n, slot in enumerate(slots):
                with m.If(load & (wr == n)):
                    m.d.sync += slot.eq(self.i.payload)
        return m
