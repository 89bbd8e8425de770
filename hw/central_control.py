"""Central control unit: the layer table, the broadcast of non-zeros, layer sequencing, counters.

Han et al., EIE (ISCA 2016), Section IV "Central Control Unit": at the root of the LNZD tree,
it broadcasts each non-zero (j, a_j) to every PE's activation queue, stalling while any queue is
full; in computing mode it runs a layer given its pointer start address; layers run back to back
(outputs stay in the PEs as the next layer's inputs); in I/O mode the PEs are idle while the
host loads memories and activations.

Per layer (cycle 0 = LSTART; the timing contract is docs/format.md "Timing", the RTL's side
of it docs/hardware.md "Timing"):

- LSTART (1 cycle): latch the layer's table entry; rewind the PEs' source lists.
- COMPUTE: the LNZD tree fills (its root is valid from cycle ``3 levels + 6``); from then on
  the root's item is broadcast in every cycle in which every queue has room; a cycle with an
  item but a full queue is a stall. The broadcast pair goes through ``BROADCAST_STAGES`` = 2 registers: the first here holds the root's item (``j = idx *
  N + pe`` and ``a_j``), the second the pointer banks' addresses of ``ptr_base + j``, in the
  register of each group of ``BROADCAST_GROUP`` PEs (:class:`GroupRegister`, in the top: no net
  carries the pair to more than a group's queues); the queues write it in the cycle after the
  second. Every other output to the PEs passes the same group register (``CONTROL_STAGES`` = 1:
  no net carries the phase or the layer's parameters from here to more than one group either),
  so the PEs see the whole sequence one cycle after this unit's registers. The PEs' ``room`` and
  ``done`` flags come back through ``STATUS_STAGES`` = 2 registers: one per group
  (:class:`StatusRegister`: the AND of its PEs' flags; no net carries a flag across the chip
  into the decision's logic), then the AND of the groups' here, beside the decision. So the
  flags the unit reads do not yet count the pairs broadcast in the ``BROADCAST_STAGES +
  STATUS_STAGES`` = 4 previous cycles: with ``i`` of them in flight the unit reads bit ``i``
  of the ``room`` flags ("fewer than D - i pairs pending" in every
  PE, ``ROOM_FLAGS`` bits), and a column's start makes room ``STATUS_STAGES`` cycles later than
  it would with the PEs' flags read directly (the cycle model's ``room_latency``). No path runs
  from the PEs through this unit back into the PEs in one cycle. COMPUTE ends ``1 +
  STATUS_STAGES`` cycles after the first cycle E in which the root shows the sentinel, every PE
  is done (queue empty, column finished, no pair arriving) and no pair is in flight: the PEs'
  ``done`` (registered in the PE, in its group, then here) and the root's sentinel (registered
  ``1 + STATUS_STAGES`` times here) both describe E, and of the pairs broadcast before the
  decision only those of E - 1 and E are not in the PEs' ``done`` of E.
- FLUSH (``FLUSH_STATES`` = 1 cycle): the sparse-matrix read (4 stages) and arithmetic
  (4 stages) pipelines write their last sums (the last entry is issued in cycle E - 1 at the
  latest) while the first row is on its way: every PE registers the rows (``WB_ROW_STAGES``).
- WB (rows cycles): one local row per cycle, all PEs at once; the PEs read the first in E + 7.
- TAIL (``TAIL_STATES`` = 8 cycles): the PEs' register on the rows and the write-back pipeline
  (7) write the last rows and complete the non-zero lists; then the next layer's LSTART, or
  IDLE with ``done`` set.

So a layer takes ``E + DRAIN + rows + WB_TAIL`` cycles (counted from E), where ``DRAIN`` =
``FLUSH_STATES + 2 + STATUS_STAGES + CONTROL_STAGES + WB_ROW_STAGES`` = 7 is the cycle model's
``drain``: E itself, the two status registers, the decision, FLUSH, the group register, the PEs'
row register; ``WB_TAIL`` = ``TAIL_STATES - WB_ROW_STAGES - CONTROL_STAGES`` = 6 (the PEs see
the next LSTART a cycle late too, which the start latency counts).
After reset the unit spends ``act_depth`` cycles (CLEAR) zeroing every PE's accumulators.
"""

from __future__ import annotations

from collections.abc import Sequence

from amaranth.hdl import Array, Cat, Const, Module, Signal
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out

from .activation_rw import LEAF_CONTROL_STAGES, LEAF_READ_STAGES, WB_ROW_STAGES, WB_STAGES
from .lnzd import lnzd_fill
from .params import HWParams, lnzd_levels
from .pointer_read import bank_addresses
from .signatures import control_signature, run_members, status_signature, write_signature

# the PEs' room and done flags are registered once per group of PEs, then once more (their AND
# over the groups) beside the decision
STATUS_STAGES = 2
# every output to the PEs passes its group's register (GroupRegister) on the way
CONTROL_STAGES = 1
# FLUSH cycles between the decision (E + 1 + STATUS_STAGES) and the first write-back row this
# unit sends (the state itself): the pipelines need 5 after E + 1 before the PEs read the first
# row (the sparse-matrix read's address register and the arithmetic unit's sum register, S4,
# took the spare cycles), which the two status registers, the group and the PEs' row registers
# (WB_ROW_STAGES) and one FLUSH cycle cover
FLUSH_STATES = 1
assert FLUSH_STATES + STATUS_STAGES + CONTROL_STAGES + WB_ROW_STAGES >= 5
# cycles after the last write-back row this unit sends until its list append is done in the PEs
TAIL_STATES = WB_ROW_STAGES + WB_STAGES
# the broadcast pair is registered twice before it reaches the queues: the root's item here,
# then the pointer banks' addresses in each group's register (GroupRegister, BROADCAST_GROUP
# PEs)
BROADCAST_STAGES = 2
assert BROADCAST_STAGES == 1 + CONTROL_STAGES
BROADCAST_GROUP = 4
# the PEs' room flags: bit i, room for i + 1 more pairs (0 .. BROADCAST_STAGES + STATUS_STAGES
# pairs in flight)
ROOM_FLAGS = BROADCAST_STAGES + STATUS_STAGES + 1

# Timing constants in the cycle model's terms (docs/format.md "Timing"), the rows counted where
# the PEs read them (W0).
DRAIN = FLUSH_STATES + 2 + STATUS_STAGES + CONTROL_STAGES + WB_ROW_STAGES  # E (all done) -> W0
WB_TAIL = TAIL_STATES - WB_ROW_STAGES - CONTROL_STAGES  # last row's W0 + 1 -> next LSTART


def start_latency(n_pe: int) -> int:
    """First cycle of a layer (counted from 0 at its start) in which a broadcast can happen:
    LSTART, the group registers (``CONTROL_STAGES``), the PEs' register on the layer's start
    (``LEAF_CONTROL_STAGES``), the leaf's list read (``LEAF_READ_STAGES``), then the LNZD
    tree's fill (:func:`hw.lnzd.lnzd_fill`: the leaves' buffers, three cycles per level: a
    node's input buffers, its comparison registers, its output buffer; and the root's second
    buffer, beside this unit)."""
    return (1 + CONTROL_STAGES + LEAF_CONTROL_STAGES + LEAF_READ_STAGES
            + lnzd_fill(lnzd_levels(n_pe)))


class CentralControl(wiring.Component):
    """Ports:
        pes: to every group's :class:`GroupRegister` (:func:`broadcast_groups`;
            :func:`hw.signatures.control_signature`), and through it to the PEs: the broadcast
            pair (its pointer-bank addresses computed from stage A's register), the layer's
            parameters, the phase, the write-back rows.
        status[k]: from PE k (:func:`hw.signatures.status_signature`): room for 1 ..
            ``ROOM_FLAGS`` more pairs, done; all registered.
        root: from the LNZD tree (``ready`` = broadcast now).
        start ... stall_cycles: the host's (:func:`hw.signatures.run_members`; ``start``,
            ``first_layer``, ``n_layers`` sampled while ``ready``).
        layer_wr: layer-table writes (:func:`hw.signatures.write_signature`).
    """

    def __init__(self, params: HWParams, init_layers: Sequence[int] = ()):
        self._p = params
        # layer-table words (ints, as the host writes them) -> constants of the entry layout
        self._init = [params.layer_entry.from_bits(v) if isinstance(v, int) else v
                      for v in init_layers]
        super().__init__({
            "root": In(stream.Signature(params.leaf(2 * params.levels))),
            "status": In(status_signature(ROOM_FLAGS)).array(params.n_pe),
            "pes": Out(control_signature(params)),
            **run_members(params),
            "layer_wr": In(write_signature(params.layer_bits, params.layer_entry)),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        p = self._p
        c = p.config
        m.submodules.table = table = memory.Memory(shape=p.layer_entry, depth=c.max_layers,
                                                   init=self._init)
        t_wp = table.write_port()
        t_rp = table.read_port(domain="comb")
        m.d.comb += [t_wp.en.eq(self.layer_wr.en), t_wp.addr.eq(self.layer_wr.addr),
                     t_wp.data.eq(self.layer_wr.data), t_rp.addr.eq(self.layer)]

        cur = Signal(p.layer_entry)  # the running layer's entry
        left = Signal(p.n_layers_bits)  # layers still to run, the current one included
        src_bank = Signal()
        row = Signal(p.local_bits + 1)
        timer = Signal(range(max(FLUSH_STATES, TAIL_STATES) + 1))
        # sentinel_q[i]: the root showed the sentinel i + 1 cycles before (in COMPUTE)
        sentinel_q = Signal(1 + STATUS_STAGES)
        pes = self.pes
        ctl = pes.ctl
        m.d.comb += [
            ctl.layer.eq(self.layer),
            ctl.bias_base.eq(cur.bias_base),
            ctl.shift.eq(cur.shift),
            ctl.relu.eq(cur.relu),
            ctl.src_bank.eq(src_bank),
        ]

        # broadcast: stage A registers the root's item as j = local index * N + PE index and
        # a_j; stage B (each group's register) column j's pointer banks' addresses
        # (ptr_base + j split by bank)
        root = self.root.payload
        j = root.idx * p.n_pe + root.pe
        # hist[i]: a pair was broadcast i + 1 cycles ago (hist[0] is stage A's valid)
        hist = Signal(BROADCAST_STAGES + STATUS_STAGES)
        a_valid = hist[0]
        a_j = Signal(j.shape())
        a_value = Signal.like(root.value)
        fire = Signal()
        m.d.sync += [hist.eq(Cat(fire, hist[:-1])), a_j.eq(j), a_value.eq(root.value)]
        even, odd, odd_first = bank_addresses(p, cur.ptr_base + a_j)
        pair = pes.bcast
        m.d.comb += [pair.even.eq(even), pair.odd.eq(odd), pair.odd_first.eq(odd_first),
                     pair.a.eq(a_value), pes.bcast_valid.eq(a_valid)]

        # the groups' status registers: the AND of their PEs' room flags and done
        groups = []
        for g in range(broadcast_groups(p.n_pe)):
            members = self.status[g * BROADCAST_GROUP:(g + 1) * BROADCAST_GROUP]
            m.submodules[f"status{g}"] = sreg = StatusRegister(len(members))
            for k, st in enumerate(members):
                m.d.comb += [sreg.room[k].eq(st.room), sreg.done[k].eq(st.done)]
            groups.append(sreg)
        # ... and their AND over the groups, registered here (STATUS_STAGES - 1 more times): the
        # decision reads registers beside it (at 16 PEs a group's register -> the decision ->
        # the root buffer's pop was the critical path, 11.3 ns of routing)
        room_all = Cat(Cat(gr.room_all[i] for gr in groups).all() for i in range(ROOM_FLAGS))
        all_done = Cat(gr.done_all for gr in groups).all()
        for s in range(STATUS_STAGES - 1):
            room_q = Signal(ROOM_FLAGS, init=(1 << ROOM_FLAGS) - 1, name=f"room_q{s}")
            done_q = Signal(name=f"done_q{s}")
            m.d.sync += [room_q.eq(room_all), done_q.eq(all_done)]
            room_all, all_done = room_q, done_q
        # room: the flags do not count the pairs broadcast in the previous
        # BROADCAST_STAGES + STATUS_STAGES cycles; with i of them, every PE needs room for i + 1
        rooms = Array(room_all[i] for i in range(ROOM_FLAGS))
        room = Signal()
        real = Signal()
        m.d.comb += [
            room.eq(rooms[sum(hist)]),
            real.eq(self.root.valid & ~root.sentinel),
            self.root.ready.eq(fire),
        ]

        with m.If(pes.count_en):
            m.d.sync += self.cycles.eq(self.cycles + 1)
        with m.If(pes.count_en & pes.compute & real & ~room):
            m.d.sync += self.stall_cycles.eq(self.stall_cycles + 1)

        # The outputs to the PEs are registers, not decodes of the state: each transition sets
        # them for the state it enters (they fan out to every PE and into its address logic).
        outs = {  # state -> (layer_start, compute, count_en, wb.valid, wb.clear, ready)
            "CLEAR": (0, 0, 0, 1, 1, 0), "IDLE": (0, 0, 0, 0, 0, 1), "LSTART": (1, 0, 1, 0, 0, 0),
            "COMPUTE": (0, 1, 1, 0, 0, 0), "FLUSH": (0, 0, 1, 0, 0, 0), "WB": (0, 0, 1, 1, 0, 0),
            "TAIL": (0, 0, 1, 0, 0, 0),
        }
        regs = (pes.layer_start, pes.compute, pes.count_en, pes.wb.valid, pes.wb.clear,
                self.ready)

        def goto(state: str) -> None:
            m.next = state
            m.d.sync += [r.eq(v) for r, v in zip(regs, outs[state], strict=True)]

        m.d.comb += pes.wb.row.eq(row)
        with m.FSM(init="CLEAR"):
            with m.State("CLEAR"):  # zero every accumulator after reset
                m.d.sync += row.eq(row + 1)
                with m.If(row == c.act_depth - 1):
                    m.d.sync += row.eq(0)
                    goto("IDLE")
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.comb += pes.count_clear.eq(1)
                    m.d.sync += [
                        self.cycles.eq(0), self.stall_cycles.eq(0),
                        self.layer.eq(self.first_layer), left.eq(self.n_layers),
                        src_bank.eq(0), self.done.eq(self.n_layers == 0),
                    ]
                    with m.If(self.n_layers != 0):
                        goto("LSTART")
            with m.State("LSTART"):
                m.d.sync += [cur.eq(t_rp.data), sentinel_q.eq(0)]
                goto("COMPUTE")
            with m.State("COMPUTE"):
                m.d.comb += fire.eq(real & room)
                m.d.sync += sentinel_q.eq(Cat(self.root.valid & root.sentinel, sentinel_q[:-1]))
                # E = STATUS_STAGES + 1 cycles ago: the sentinel, every PE done, and no pair
                # broadcast in E - 1 or E (the ones the PEs' done of E does not count yet)
                with m.If(sentinel_q[-1] & all_done & ~hist[STATUS_STAGES:].any()):
                    m.d.sync += timer.eq(FLUSH_STATES - 1)
                    goto("FLUSH")
            with m.State("FLUSH"):
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    m.d.sync += row.eq(0)
                    goto("WB")
            with m.State("WB"):
                m.d.sync += row.eq(row + 1)
                with m.If(row + 1 >= cur.rows):
                    m.d.sync += timer.eq(TAIL_STATES - 1)
                    goto("TAIL")
            with m.State("TAIL"):
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    m.d.sync += left.eq(left - 1)
                    with m.If(left == 1):
                        m.d.sync += self.done.eq(1)
                        goto("IDLE")
                    with m.Else():
                        m.d.sync += [self.layer.eq(self.layer + 1), src_bank.eq(~src_bank)]
                        goto("LSTART")
        m.d.comb += self.busy.eq(pes.count_en)
        return m


def broadcast_groups(n_pe: int) -> int:
    """Groups of PEs with a register of their own (:class:`GroupRegister`, and a
    :class:`StatusRegister` on the way back): PEs ``g * BROADCAST_GROUP`` to
    ``(g + 1) * BROADCAST_GROUP - 1`` form group ``g``."""
    return -(-n_pe // BROADCAST_GROUP)


class StatusRegister(wiring.Component):
    """A group's status on its way back to the unit: the AND of its PEs' ``room`` flags (bit by
    bit) and of their ``done``, registered (a module of its own, placed near its group)."""

    def __init__(self, n: int):
        super().__init__({"room": In(ROOM_FLAGS).array(n), "done": In(1).array(n),
                          "room_all": Out(ROOM_FLAGS, init=(1 << ROOM_FLAGS) - 1),
                          "done_all": Out(1)})

    def elaborate(self, platform) -> Module:
        m = Module()
        room = Const((1 << ROOM_FLAGS) - 1, ROOM_FLAGS)
        for r in self.room:
            room = room & r
        m.d.sync += [self.room_all.eq(room), self.done_all.eq(Cat(self.done).all())]
        return m


class GroupRegister(wiring.Component):
    """A group's copy of everything the control unit sends the PEs, registered: the broadcast
    pair's second stage and the rest one cycle late (``CONTROL_STAGES``). A module of its own,
    so that synthesis does not merge the copies: each drives its group's PEs only. It resets
    with the control unit (to a CLEAR row, as the unit's own registers start)."""

    def __init__(self, params: HWParams):
        super().__init__({"i": In(control_signature(params)), "o": Out(control_signature(params))})

    def elaborate(self, platform) -> Module:
        m = Module()
        for name in self.i.signature.members:
            m.d.sync += getattr(self.o, name).eq(getattr(self.i, name))
        return m

