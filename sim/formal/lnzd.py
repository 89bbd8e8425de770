"""Properties of the LNZD quadtree (hw/lnzd.py), checked around the real ``LNZDTree``.

The environment is N abstract leaves (a PE's non-zero list, hw/activation_rw.py ``NonZeroList``):
each a free stream whose accepted items have strictly ascending local index, and after an
accepted sentinel only sentinels; ``valid`` and the payload are otherwise free in every cycle
(also while not taken: stronger than the stream rules). The root's ``ready`` is free, but low
while ``flush`` is high (the central control unit takes the root only in COMPUTE and flushes
the tree outside it). ``flush`` (every group's) and the reset are free, but a flush lasts at
least two cycles (the control unit holds it from FLUSH to the next layer's start); a flush
starts a new layer, so the leaves start their lists again (the ghost counts below restart with
it).

Asserted, for the items the root hands over (``valid & ready``), j = idx * N + pe:

- ``ascending``: every non-sentinel item has a larger j than the one before (so none twice);
- ``after_sentinel``: no non-sentinel item after the root has handed over the sentinel;
- ``not_invented``: the item's pe names a real PE whose leaf sent that local index with that
  value (a scoreboard per leaf: the indices sent and their values; an index comes once);
- ``none_lost``: when the root offers the sentinel (but in the cycle after a flush), every leaf
  has sent its sentinel and every index each leaf sent has been handed over;
- ``flush``: after two cycles of flush the root offers nothing (the nodes above level 1 and the
  root's buffers are flushed a cycle after the leaves).

The tree's internal buffers are not read, so k-induction is not expected to close: these are
bounded proofs (BMC) to the depth reported.
"""

from __future__ import annotations

from amaranth.hdl import Assert, Assume, Cat, Cover, Module, Signal
from amaranth.hdl._ast import AnySeq
from amaranth.lib import wiring

from hw.lnzd import LNZDTree
from hw.params import HWParams
from sw.eie.config import EIEConfig


def small_config(n_pe: int) -> EIEConfig:
    # act_bits 6: the value tags below name (PE, index) uniquely for up to 16 PEs
    return EIEConfig(name="formal", n_pe=n_pe, queue_depth=2, act_bits=6, act_frac=2,
                     acc_bits=12, act_depth=4, spmat_words=4, ptr_depth=4, bias_depth=4,
                     max_layers=2)


class LNZDProperties(wiring.Component):
    def __init__(self, n_pe: int = 4, tree_cls=LNZDTree):
        super().__init__({})  # no ports: every input is free (AnySeq/AnyConst)
        self.config = small_config(n_pe)
        self.tree_cls = tree_cls

    def elaborate(self, platform) -> Module:
        m = Module()
        p = HWParams(self.config)
        n = p.n_pe
        m.submodules.tree = tree = self.tree_cls(p)
        flush, flushed, flushed2 = Signal(), Signal(), Signal()
        m.d.comb += [flush.eq(AnySeq(1))] + [f.eq(flush) for f in tree.flush]
        m.d.sync += [flushed.eq(flush), flushed2.eq(flushed)]
        m.d.comb += Assume(~(flushed & ~flushed2) | flush)  # two cycles at least

        # the leaves: ascending local index, then only sentinels. A scoreboard per leaf: which
        # local indices it has sent, with their values (an index comes at most once)
        depth = self.config.act_depth
        sent, ended = [], []
        for k, leaf in enumerate(tree.leaves):
            m.d.comb += [leaf.valid.eq(AnySeq(1)),
                         leaf.payload.eq(AnySeq(len(leaf.payload.as_value())))]
            hs = Signal(name=f"leaf{k}_taken")
            mask = Signal(depth, name=f"leaf{k}_sent")
            end = Signal(name=f"leaf{k}_ended")
            above = Signal(name=f"leaf{k}_above")  # idx above every index sent so far
            m.d.comb += [hs.eq(leaf.valid & leaf.ready & ~flush),
                         above.eq((mask >> leaf.payload.idx) == 0)]
            with m.If(hs & ~leaf.payload.sentinel):
                m.d.comb += Assume(~end & above)
                m.d.comb += Assume(leaf.payload.value.as_unsigned() == _tag(k, leaf.payload.idx, p))
            with m.If(flush):
                m.d.sync += [mask.eq(0), end.eq(0)]
            with m.Elif(hs):
                with m.If(leaf.payload.sentinel):
                    m.d.sync += end.eq(1)
                with m.Else():
                    m.d.sync += mask.bit_select(leaf.payload.idx, 1).eq(1)
            sent.append(mask)
            ended.append(end)

        # the root
        root = tree.root
        m.d.comb += root.ready.eq(AnySeq(1))
        m.d.comb += Assume(~(flush & root.ready))
        item = root.payload
        taken = Signal()
        j = Signal(range(n * depth))
        m.d.comb += [taken.eq(root.valid & root.ready), j.eq(item.idx * n + item.pe)]
        real = taken & ~item.sentinel
        got = [Signal(depth, name=f"root_got{k}") for k in range(n)]
        any_out, root_ended = Signal(), Signal()
        last_j = Signal.like(j)
        with m.If(real):
            m.d.comb += [
                Assert(item.pe < n, "not_invented: a real PE"),
                Assert(~any_out | (j > last_j), "ascending: j above the previous"),
                Assert(~root_ended, "after_sentinel: nothing after the sentinel"),
            ]
            for k in range(n):
                for i in range(depth):
                    with m.If((item.pe == k) & (item.idx == i)):
                        m.d.comb += [
                            Assert(sent[k][i], "not_invented: leaf k sent this index"),
                            Assert(item.value.as_unsigned() == _tag(k, i, p),
                                   "not_invented: with its value"),
                            Assert(~got[k][i], "ascending: not handed over before"),
                        ]
        with m.If(flush):
            m.d.sync += [any_out.eq(0), root_ended.eq(0)] + [g.eq(0) for g in got]
        with m.Elif(taken):
            with m.If(item.sentinel):
                m.d.sync += root_ended.eq(1)
            with m.Else():
                m.d.sync += [any_out.eq(1), last_j.eq(j)]
                for k in range(n):
                    with m.If(item.pe == k):
                        m.d.sync += got[k].bit_select(item.idx, 1).eq(1)
        for k in range(n):
            m.d.comb += Assert((got[k] & ~sent[k]) == 0, "not_invented: only what was sent")
        # (in the first cycle after a flush the root's buffer is still being flushed: it is
        # not taken then, the flush lasting two cycles)
        with m.If(root.valid & item.sentinel & ~flushed):
            m.d.comb += Assert(Cat(ended).all(), "none_lost: every leaf has ended")
            for k in range(n):
                m.d.comb += Assert(got[k] == sent[k], "none_lost: every item handed over")
        m.d.comb += Assert(~(flushed & flushed2) | ~root.valid,
                           "flush: the root is empty after a flush")

        # not vacuous: items of several PEs and then the sentinel reach the root
        m.d.comb += [
            Cover(taken & item.sentinel & (got[0] != 0) & (got[n - 1] != 0)),
            Cover(taken & item.sentinel & (got[0][0] & got[0][1] & got[n - 1][0])),
        ]
        return m


def _tag(k: int, idx, p: HWParams):
    """The value leaf k sends with local index ``idx``: values never steer the tree (it
    compares sentinel and index only), so a value that names its item checks that the value
    travels with its index, bit for bit, as well as free values would, and costs the solver
    nothing."""
    return (idx + k * p.config.act_depth)[:p.act_bits] if not isinstance(idx, int) else \
        (idx + k * p.config.act_depth) % (1 << p.act_bits)
