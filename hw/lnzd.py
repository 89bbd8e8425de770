"""Leading non-zero detection: 4-input LNZD nodes forming a quadtree over the PEs.

Han et al., EIE (ISCA 2016), Section IV "Central Control Unit" / Figure 4: each group of four
PEs feeds a leading-non-zero-detection node; the nodes form a quadtree (64 PEs: 16 + 4 + 1 = 21
nodes) whose root hands the next non-zero activation to the central control unit.

Here every leaf (a PE's non-zero list, :mod:`hw.activation_rw`) is a stream of its non-zero
activations in ascending local index, ended by a *sentinel* that compares as +infinity. Every
node input is a two-entry buffer (:class:`hw.skid.SkidBuffer`) whose ``ready`` to the child is a decode
of its own fill level; a node's output is the smallest of its four buffer heads -- ordered by
(sentinel, local index, child position), which is ascending physical ``j = local * N + k`` --
valid when every buffer holds an item, and taking it pops that buffer. So every wire between a
child and its parent (a PE and its level-1 node, possibly across the chip) carries registers
one way only: the child's head into the parent's buffer, the buffer's ``ready`` back. The
longest path is one 4-way comparison into a buffer, or a ``ready`` into the popped child's
buffer, whatever N. Every node below the root sends its output through a buffer of its own
(placed with the node) before the wire to its parent, so the wires between levels, which cross
a large part of the chip at 16 PEs and more, run from register to register; the root's output
goes through one more buffer to the central control unit. In steady state every buffer holds
one item and passes one per cycle; while the root is not taken the buffers fill to two and the
flow resumes without a bubble. The root buffer is valid ``lnzd_fill(levels)`` = 2 levels
cycles after the leaves and then offers a new item every cycle, in ascending j, and the
sentinel once every list is exhausted. Positions beyond the last PE are
constant sentinels. ``flush`` empties every buffer (between layers).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .params import HWParams
from .skid import SkidBuffer


def lnzd_fill(levels: int) -> int:
    """Cycles from the leaves' first valid head to the root buffer's first item: every node
    below the root passes its output through a buffer of its own before the wire to its
    parent (two cycles per level), the root node one, the root's buffer one."""
    return 2 * (levels - 1) + 2


class LNZDNode(wiring.Component):
    """A 4-input node at ``level`` >= 1 (level 1 takes PE leaves).

    Ports:
        i[0..3]: children (payload ``params.leaf(2 * (level - 1))``), each into a
            :class:`SkidBuffer`.
        o: the smallest buffered head, with the child position prepended to its PE index
            (payload ``params.leaf(2 * level)``); valid when every buffer holds an item.
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
        bufs = []
        for n, ch in enumerate(self.i):
            # the heads in registers of their own: the comparisons start at them
            buf = SkidBuffer(self._p.leaf(2 * (self.level - 1)), head=True)
            m.submodules[f"in{n}"] = buf
            wiring.connect(m, wiring.flipped(ch), buf.i)
            m.d.comb += buf.flush.eq(self.flush)
            bufs.append(buf.o)
        keys = [Cat(b.payload.idx, b.payload.sentinel) for b in bufs]

        # All six comparisons at once (one comparator deep, not a two-round tournament); a tie
        # keeps the lower position (the smaller PE index): n wins if its key is below every
        # key before it and not above any key after it.
        less = {(a, b): keys[b] < keys[a] for a in range(4) for b in range(a + 1, 4)}
        win = Signal(4)
        for n in range(4):
            m.d.comb += win[n].eq(Cat(*[less[(a, n)] for a in range(n)],
                                      *[~less[(n, b)] for b in range(n + 1, 4)]).all())
        sel = Signal(2)
        m.d.comb += sel.eq(Cat(win[1] | win[3], win[2] | win[3]))

        m.d.comb += self.o.valid.eq(Cat(b.valid for b in bufs).all())
        for n, b in enumerate(bufs):
            m.d.comb += b.ready.eq(self.o.valid & self.o.ready & win[n])
        # the winner's item: a 4:1 multiplexer per bit (two LUT4 and a PFUMX on the ECP5)
        chosen = self._p.leaf(2 * (self.level - 1))(
            Mux(sel[1], Mux(sel[0], bufs[3].payload.as_value(), bufs[2].payload.as_value()),
                Mux(sel[0], bufs[1].payload.as_value(), bufs[0].payload.as_value())))
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
        flush: empty every node (the central control unit holds it outside compute).
    """

    def __init__(self, params: HWParams):
        self._p = params
        super().__init__({
            "leaves": In(stream.Signature(params.leaf(0))).array(params.n_pe),
            "root": Out(stream.Signature(params.leaf(2 * params.levels))),
            "flush": In(1),
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
        # level 0: the leaves; each level groups four streams of the level below
        streams = list(self.leaves)
        for level in range(1, p.levels + 1):
            nxt = []
            for g in range(-(-len(streams) // 4)):
                node = LNZDNode(p, level)
                m.submodules[f"l{level}_n{g}"] = node
                m.d.comb += node.flush.eq(self.flush)
                for n in range(4):
                    k = 4 * g + n
                    if k < len(streams):
                        wiring.connect(m, wiring.flipped(streams[k]) if level == 1 else streams[k],
                                       node.i[n])
                    else:  # an empty position: a constant sentinel, always valid
                        m.d.comb += [node.i[n].valid.eq(1), node.i[n].payload.sentinel.eq(1)]
                if level < p.levels:  # the node's own output buffer before the wire up
                    ob = SkidBuffer(p.leaf(2 * level))
                    m.submodules[f"l{level}_n{g}_out"] = ob
                    m.d.comb += ob.flush.eq(self.flush)
                    wiring.connect(m, node.o, ob.i)
                    nxt.append(ob.o)
                else:
                    nxt.append(node.o)
            streams = nxt
        assert len(streams) == 1
        m.submodules.out = out = SkidBuffer(p.leaf(2 * p.levels))
        m.d.comb += out.flush.eq(self.flush)
        wiring.connect(m, streams[0], out.i)
        wiring.connect(m, out.o, wiring.flipped(self.root))
        return m
