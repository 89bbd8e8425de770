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

from amaranth.hdl import Module, Mux, Signal, Value
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out


class SkidBuffer(wiring.Component):
    """A two-entry buffer between two valid/ready streams of ``shape``: ``i.ready`` = not full
    (a decode of the registered fill level, never of ``o.ready``), ``o`` = the oldest item; one
    item in and one out per cycle in steady state. ``flush`` empties it.

    Two layouts, the same behaviour cycle for cycle:

    - ``head=False``: two slots written in turn and read in turn. A slot register loads the
      input directly (its enable is the only logic), and ``o.payload`` is one 2:1 multiplexer
      per bit. The cheapest in LUTs, and the shortest path *into* the buffer: used where a
      long path ends (an LNZD node's output buffers, after its selection).
    - ``head=True``: the oldest item in a register of its own, which is ``o.payload`` with no
      logic between; ``spare`` takes the item that arrives while the head is held. The head
      loads the input (when the buffer is empty, or popped with one item) or ``spare`` (when
      popped with two): the 2:1 multiplexer is in front of it. The shortest path *out of* the
      buffer: used where a long path starts (an LNZD node's input buffers, whose heads its
      comparisons read; docs/fpga.md, "What limits the clock")."""

    def __init__(self, shape, *, head: bool = False):
        self._head = head
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
        if self._head:
            self._head_and_spare(m, load, pop, level)
        else:
            self._slots(m, load, pop)
        return m

    def _head_and_spare(self, m: Module, load, pop, level) -> None:
        head = Signal.like(self.o.payload, name="head")
        spare = Signal.like(self.o.payload, name="spare")
        m.d.comb += self.o.payload.eq(head)
        with m.If(pop & (level == 2)):
            m.d.sync += head.eq(spare)
        with m.Elif(load & ((level == 0) | pop)):
            m.d.sync += head.eq(self.i.payload)
        with m.If(load & (level == 1) & ~pop):
            m.d.sync += spare.eq(self.i.payload)

    def _slots(self, m: Module, load, pop) -> None:
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
