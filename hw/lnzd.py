"""Leading non-zero detection: 4-input LNZD nodes forming a quadtree over the PEs.

Han et al., EIE (ISCA 2016), Section IV "Central Control Unit" / Figure 4: each group of four
PEs feeds a leading-non-zero-detection node; the nodes form a quadtree (64 PEs: 16 + 4 + 1 = 21
nodes) whose root hands the next non-zero activation to the central control unit.

Here every leaf (a PE's non-zero list, :mod:`hw.activation_rw`) is a stream of its non-zero
activations in ascending local index, ended by a *sentinel* that compares as +infinity, and
passes a two-entry buffer of its own (placed with its PE) before the wire to its node. Every
node input is a three-entry buffer (:class:`hw.skid.LookaheadBuffer`) whose ``ready`` to the
child is a decode of its own fill level and whose two oldest items are registers; a node's
output is the smallest of its four buffer heads -- ordered by (sentinel, local index, child
position), which is ascending physical ``j = local * N + k`` -- valid when every buffer holds
an item, and taking it pops that buffer. The node compares its heads a cycle ahead, from
registers only (:class:`LNZDNode`), so the loop that decides the next pop holds no comparator
and no wire to another node. Every wire between a child and its parent (a PE and its level-1
node, possibly across the chip) carries registers one way only: the child's head into the
parent's buffer, the buffer's ``ready`` back. Every node below the root sends its output
through a two-entry buffer of its own (:class:`hw.skid.SkidBuffer`, placed with the node)
before the wire to its parent, so the wires between levels, which cross a large part of the
chip at 16 PEs and more, run from register to register; the root's output goes through one
more buffer, and one more beside the central control unit, whose broadcast decision pops it.
In steady state every input buffer holds two items and passes one per cycle; while the root
is not taken the buffers fill and the flow resumes without a bubble. The root is valid
``lnzd_fill(levels)`` = 2 + 3 levels cycles after the leaves and then offers a new item every
cycle, in ascending j, and the sentinel once every list is exhausted (the leaves offer it for
as long as they are read). Positions beyond the last PE are constant sentinels. ``flush[g]``
empties the buffers of leaves 4g .. 4g + 3 and of their level-1 node at once; every node above
level 1 (and the root's buffers) is flushed by a register of its own on the flush of its first
group, one cycle later, so no net carries a flush across the chip to every node (at 24 PEs one
register driving every node's flush was the critical path). The delay is safe: a flush lasts
more than one cycle (the central control unit holds it outside compute), and an item that enters
a leaf after a flush reaches level 2 four cycles later.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .params import HWParams
from .skid import LookaheadBuffer, SkidBuffer


def lnzd_groups(n_pe: int) -> int:
    """Groups of four leaves, one per level-1 node, each with a flush of its own."""
    return -(-n_pe // 4)


def lnzd_fill(levels: int) -> int:
    """Cycles from the leaves' first valid head to the root's first item: one for the leaves'
    buffers, then three per level, then one for the root's second buffer. A node's input
    buffers take the first heads (one cycle), its comparison registers compare them (one), and
    its output goes into a buffer (the node's own before the wire to its parent, or the
    root's)."""
    return 2 + 3 * levels


class LNZDNode(wiring.Component):
    """A 4-input node at ``level`` >= 1 (level 1 takes PE leaves).

    Ports:
        i[0..3]: children (payload ``params.leaf(2 * (level - 1))``), each into a
            :class:`LookaheadBuffer`.
        o: the smallest buffered head, with the child position prepended to its PE index
            (payload ``params.leaf(2 * level)``); valid when every buffer holds an item and the
            comparison registers hold the comparisons of the present heads.
        flush: empty the buffers.
    """

    def __init__(self, params: HWParams, level: int):
        self._p = params
        self.level = level
        super().__init__({
            "i": In(stream.Signature(params.leaf(2 * (level - 1)))).array(4),
            "o": Out(stream.Signature(params.leaf(2 * level))),
            "flush": In(1),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        shape = self._p.leaf(2 * (self.level - 1))
        bufs = []
        for n, ch in enumerate(self.i):
            buf = LookaheadBuffer(shape)
            m.submodules[f"in{n}"] = buf
            wiring.connect(m, wiring.flipped(ch), buf.i)
            m.d.comb += buf.flush.eq(self.flush)
            bufs.append(buf)
        heads = [Cat(b.o.payload.idx, b.o.payload.sentinel) for b in bufs]
        nexts = [Cat(b.next.idx, b.next.sentinel) for b in bufs]

        # The comparisons in registers, computed a cycle ahead (a look-ahead node): less[a, b]
        # = b's head is below a's (a < b; a tie keeps the lower position, the smaller PE
        # index). Next cycle's heads are this cycle's, but for the popped buffer (at most one),
        # whose next item becomes its head: each pair is compared three ways (no pop, a pops,
        # b pops), registers against registers, and the pop picks one. A head that comes
        # straight from a buffer's input (the buffer was empty, or held one item and was
        # popped) was not compared: ``ahead`` is low for a cycle while the registers compare
        # the heads as they are. In steady state every buffer holds two items and the node
        # passes one per cycle; the loop is the registers -> the winner -> the pop -> the
        # choice of the next comparison, with no comparator and no wire to another node in it.
        pairs = [(a, b) for a in range(4) for b in range(a + 1, 4)]
        less = {(a, b): Signal(name=f"less{a}{b}") for a, b in pairs}
        ahead = Signal()  # the registers compare the present heads
        win = Signal(4)
        for n in range(4):
            m.d.comb += win[n].eq(Cat(*[less[(a, n)] for a in range(n)],
                                      *[~less[(n, b)] for b in range(n + 1, 4)]).all())
        sel = Signal(2)
        m.d.comb += sel.eq(Cat(win[1] | win[3], win[2] | win[3]))

        go = Signal()
        pop = Signal(4)
        m.d.comb += [
            self.o.valid.eq(Cat(b.o.valid for b in bufs).all() & ahead),
            go.eq(self.o.valid & self.o.ready),
            pop.eq(Mux(go, win, 0)),
        ]
        for n, b in enumerate(bufs):
            m.d.comb += b.o.ready.eq(pop[n])
        for a, b in pairs:
            m.d.sync += less[(a, b)].eq(
                Mux(pop[a], heads[b] < nexts[a],
                    Mux(pop[b], nexts[b] < heads[a], heads[b] < heads[a])))
        # ahead: no head loads from a buffer's input now. With a pop (go) every buffer holds an
        # item, so only the popped one's head can (it holds one and loads); without, only an
        # empty buffer's: both cases are computed without go, which then picks one (the loop is
        # go -> a multiplexer -> ahead, not go -> each pop -> each buffer's load -> ahead)
        popped_loads = Cat(b.load_one & win[n] for n, b in enumerate(bufs))
        empty_loads = Cat(b.load_empty for b in bufs)
        m.d.sync += ahead.eq(Mux(go, ~popped_loads.any(), ~empty_loads.any()))

        # the winner's item: a 4:1 multiplexer per bit (two LUT4 and a PFUMX on the ECP5)
        p = [b.o.payload.as_value() for b in bufs]
        chosen = shape(Mux(sel[1], Mux(sel[0], p[3], p[2]), Mux(sel[0], p[1], p[0])))
        out = self.o.payload
        m.d.comb += [
            out.value.eq(chosen.value),
            out.idx.eq(chosen.idx),
            out.sentinel.eq(chosen.sentinel),
            out.pe.eq(Cat(chosen.pe, sel) if self.level > 1 else sel),
        ]
        return m


class LNZDTree(wiring.Component):
    """The quadtree over ``n_pe`` leaves: ``lnzd_levels(n_pe)`` levels, one node per group of
    four non-empty subtrees.

    Ports:
        leaves[k]: PE k's non-zero head (payload ``params.leaf(0)``).
        root: the leading non-zero of all PEs (payload ``params.leaf(2 * levels)``; its ``pe``
            field is the PE index k, so ``j = idx * N + pe``).
        flush[g]: empty group g (leaves 4g .. 4g + 3, their level-1 node) now and the nodes
            above whose first group it is one cycle later (the central control unit holds it
            outside compute, for more than one cycle). One per level-1 node:
            :func:`lnzd_groups`.
    """

    def __init__(self, params: HWParams):
        self._p = params
        super().__init__({
            "leaves": In(stream.Signature(params.leaf(0))).array(params.n_pe),
            "root": Out(stream.Signature(params.leaf(2 * params.levels))),
            "flush": In(1).array(lnzd_groups(params.n_pe)),
        })

    @property
    def n_nodes(self) -> int:
        n, total = self._p.n_pe, 0
        for _ in range(self._p.levels):
            n = -(-n // 4)
            total += n
        return total

    def elaborate(self, platform) -> Module:
        m = Module()
        p = self._p
        # level 0: the leaves, each through a buffer of its own (placed with its PE: the wire
        # to the level-1 node runs from register to register, and the node's input buffers
        # can sit with the node, whose pop decision reaches them every cycle); each level
        # groups four streams of the level below
        streams, flushes = [], list(self.flush)  # flushes[g]: the flush of the g-th stream's node
        for k, leaf in enumerate(self.leaves):
            lb = SkidBuffer(p.leaf(0))
            m.submodules[f"leaf{k}"] = lb
            m.d.comb += lb.flush.eq(self.flush[k // 4])
            wiring.connect(m, wiring.flipped(leaf), lb.i)
            streams.append(lb.o)
        for level in range(1, p.levels + 1):
            nxt, nxt_flushes = [], []
            for g in range(-(-len(streams) // 4)):
                if level == 1:
                    flush = self.flush[g]
                else:  # a register of its own, on its first child's flush (reset: flushing)
                    flush = Signal(init=1, name=f"l{level}_n{g}_flush")
                    m.d.sync += flush.eq(flushes[4 * g])
                node = LNZDNode(p, level)
                m.submodules[f"l{level}_n{g}"] = node
                m.d.comb += node.flush.eq(flush)
                for n in range(4):
                    k = 4 * g + n
                    if k < len(streams):
                        wiring.connect(m, streams[k], node.i[n])
                    else:  # an empty position: a constant sentinel, always valid
                        m.d.comb += [node.i[n].valid.eq(1), node.i[n].payload.sentinel.eq(1)]
                if level < p.levels:  # the node's own output buffer before the wire up
                    ob = SkidBuffer(p.leaf(2 * level))
                    m.submodules[f"l{level}_n{g}_out"] = ob
                    m.d.comb += ob.flush.eq(flush)
                    wiring.connect(m, node.o, ob.i)
                    nxt.append(ob.o)
                else:
                    nxt.append(node.o)
                nxt_flushes.append(flush)
            streams, flushes = nxt, nxt_flushes
        assert len(streams) == 1
        # the root's output: a buffer with the root node, and a second one that the consumer
        # (the central control unit's broadcast decision) pops, which the placer can put beside
        # it: only registers cross between them (at 24 PEs the decision -> the root buffer's
        # pop, across the chip, was the critical path)
        m.submodules.out = out = SkidBuffer(p.leaf(2 * p.levels))
        m.submodules.out2 = out2 = SkidBuffer(p.leaf(2 * p.levels))
        m.d.comb += [out.flush.eq(flushes[0]), out2.flush.eq(flushes[0])]  # the root's
        wiring.connect(m, streams[0], out.i)
        wiring.connect(m, out.o, out2.i)
        wiring.connect(m, out2.o, wiring.flipped(self.root))
        return m
