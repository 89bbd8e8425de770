"""Leading non-zero detection: 4-input LNZD nodes forming a quadtree over the PEs.

Han et al., EIE (ISCA 2016), Section IV "Central Control Unit" / Figure 4: each group of four
PEs feeds a leading-non-zero-detection node; the nodes form a quadtree (64 PEs: 16 + 4 + 1 = 21
nodes) whose root hands the next non-zero activation to the central control unit.

Here every leaf (a PE's non-zero list, :mod:`hw.activation_rw`) is a stream of its non-zero
activations in ascending local index, ended by a *sentinel* that compares as +infinity. A node
takes the smallest of its four children's heads -- ordered by (sentinel, local index, child
position), which is ascending physical ``j = local * N + k`` -- into a two-entry buffer whenever
the buffer is not full and every child has a head. Every head a node compares is a register, and
whether a node takes is decided from its own registered fill level, never from its parent's
``ready``: the longest combinational path is one 4-way comparison and the selection of the
popped child, whatever the depth of the tree (a single-register node would need the parent's
``ready`` to refill in the same cycle, a root-to-leaf chain through every level). In steady state
every buffer holds one item and passes one per cycle; while the root is not taken the buffers
fill to two and the flow resumes without a bubble. So, exactly as with one register per node,
the root is valid ``levels`` cycles after the leaves and then offers a new item every cycle, in
ascending j, and the sentinel once every list is exhausted. Positions beyond the last PE are
constant sentinels. ``flush`` empties every buffer (between layers).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .params import HWParams


class LNZDNode(wiring.Component):
    """A 4-input node at ``level`` >= 1 (level 1 takes PE leaves).

    Ports:
        i[0..3]: children (payload ``params.leaf(2 * (level - 1))``); ``valid`` once filled.
        o: the smallest child head, with the child position prepended to its PE index
            (payload ``params.leaf(2 * level)``).
        flush: empty the register.
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
        keys = [Cat(ch.payload.idx, ch.payload.sentinel) for ch in self.i]

        # Two-level tournament; a tie keeps the lower position (the smaller PE index).
        def pick(a: int, b: int):
            take_b = keys[b] < keys[a]
            return take_b, Mux(take_b, keys[b], keys[a])

        b01, k01 = pick(0, 1)
        b23, k23 = pick(2, 3)
        hi = Signal()
        sel = Signal(2)
        m.d.comb += [hi.eq(k23 < k01), sel.eq(Mux(hi, Cat(b23, 1), Cat(b01, 0)))]

        # the two-entry buffer: head (what the parent sees) and spare; fill level 0..2
        lay = self.o.payload.shape()
        head, spare = Signal(lay), Signal(lay)
        level = Signal(range(3))
        all_valid = Signal()
        load = Signal()
        pop = Signal()
        m.d.comb += [
            all_valid.eq(Cat(ch.valid for ch in self.i).all()),
            load.eq((level != 2) & all_valid & ~self.flush),
            pop.eq(self.o.valid & self.o.ready),
            self.o.valid.eq(level != 0),
            self.o.payload.eq(head),
        ]
        for n, ch in enumerate(self.i):
            m.d.comb += ch.ready.eq(load & (sel == n))

        chosen = self._p.leaf(2 * (self.level - 1))(
            Mux(sel[1], Mux(sel[0], self.i[3].payload.as_value(), self.i[2].payload.as_value()),
                Mux(sel[0], self.i[1].payload.as_value(), self.i[0].payload.as_value())))
        item = Signal(lay)
        m.d.comb += [
            item.value.eq(chosen.value),
            item.idx.eq(chosen.idx),
            item.sentinel.eq(chosen.sentinel),
            item.pe.eq(Cat(chosen.pe, sel) if self.level > 1 else sel),
        ]
        with m.If(self.flush):
            m.d.sync += level.eq(0)
        with m.Else():
            m.d.sync += level.eq(level + load - pop)
            # the head moves on when taken; the new item goes to the first free place
            with m.If(pop):
                m.d.sync += head.eq(Mux(level == 2, spare, item))
            with m.Elif(level == 0):
                m.d.sync += head.eq(item)
            with m.If(load & (level - pop == 1)):
                m.d.sync += spare.eq(item)
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
                nxt.append(node.o)
            streams = nxt
        assert len(streams) == 1
        wiring.connect(m, streams[0], wiring.flipped(self.root))
        return m
