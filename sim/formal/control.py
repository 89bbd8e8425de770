"""Properties of the central control unit's layer sequencing (hw/central_control.py), checked
around the real ``CentralControl``.

The environment: ``start``, ``first_layer``, ``n_layers``, the LNZD root (``valid``, payload),
every PE's ``room`` flags, ``done`` and the reset are free in every cycle; layer-table writes
are free but only while ``ready`` (the top registers the host's writes, which it takes only
while ready) and only with ``rows <= act_depth`` (a valid entry). The wrapper keeps a shadow of the table's ``rows`` fields and a ghost of the run
(first layer, layer count, layers started). The phase is read off the unit's registered outputs
(CLEAR = ``wb.clear``, IDLE = ``ready``, LSTART = ``layer_start``, COMPUTE = ``compute``, WB =
``wb.valid & ~wb.clear``, FLUSH/TAIL = ``count_en`` and none of those, before/after WB).

Asserted:

- ``phase``: exactly one phase at a time; ``busy`` = ``count_en`` (every phase but CLEAR, IDLE);
- ``clear``: after reset, CLEAR writes rows 0 .. act_depth-1, one per cycle, then IDLE;
- ``start``: a run starts (``count_clear``) exactly when ``start`` comes while ``ready``; a
  ``start`` at any other time changes nothing (the run's layers are those of the start taken);
- ``order``: the k-th LSTART of a run is layer ``first_layer + k`` (modulo the table) reading
  bank ``k mod 2``, and never more than ``n_layers`` of them;
- ``sequence``: LSTART -> COMPUTE (1 cycle); COMPUTE ends exactly ``1 + STATUS_STAGES``
  cycles after a cycle E in which the root showed the sentinel, every PE was done and no pair
  was broadcast in E - 1 or E (the PEs' flags reach the decision through ``STATUS_STAGES``
  registers); FLUSH lasts ``FLUSH_STATES`` cycles; WB writes rows
  0 .. max(1, rows)-1 of the layer's table entry, one per cycle; TAIL lasts ``TAIL_STATES``
  cycles, then the next LSTART or IDLE;
- ``done``: in IDLE, ``done`` is high exactly when a run was started and all its ``n_layers``
  layers ran (``n_layers = 0``: at once); never high outside IDLE;
- ``counters``: ``cycles`` counts the run's busy cycles and ``stall_cycles`` its COMPUTE cycles
  in which the root held a non-zero that was not taken, both from 0 at the start;
- ``broadcast``: the root is taken only in COMPUTE, only a non-zero, only when every PE had
  room ``STATUS_STAGES`` cycles before for the pairs in flight and this one (bit ``i`` of
  ``room`` with ``i`` pairs broadcast in the ``BROADCAST_STAGES + STATUS_STAGES`` cycles
  before), and then whenever it can; the pair leaves the unit for the groups' registers
  ``BROADCAST_STAGES - CONTROL_STAGES`` cycles later as the pointer banks' addresses of
  ``ptr_base + j``,
  ``j = idx * N + pe``, ``ptr_base`` the running layer's (a shadow of the table's
  ``ptr_base`` fields).

These are bounded proofs (BMC, the depth covers a reset, CLEAR and two short layers; ``cover``
shows such runs are reached).
"""

from __future__ import annotations

from amaranth.hdl import Array, Assert, Assume, Cat, Cover, Module, Mux, Signal
from amaranth.hdl._ast import AnySeq
from amaranth.lib import wiring

from hw.central_control import (
    BROADCAST_STAGES,
    CONTROL_STAGES,
    FLUSH_STATES,
    ROOM_FLAGS,
    STATUS_STAGES,
    TAIL_STATES,
    CentralControl,
)
from hw.params import HWParams
from hw.pointer_read import bank_addresses
from sw.eie.config import EIEConfig


def small_config() -> EIEConfig:
    # act_depth 2: CLEAR takes 2 cycles, so a reset and a two-layer run fit in 34 steps
    return EIEConfig(name="formal", n_pe=2, queue_depth=2, act_bits=4, act_frac=2, acc_bits=8,
                     act_depth=2, spmat_words=4, ptr_depth=4, bias_depth=4, max_layers=4)


def _free(m: Module, *targets) -> None:
    for t in targets:
        m.d.comb += t.eq(AnySeq(len(t.as_value()) if hasattr(t, "as_value") else len(t)))



class ControlProperties(wiring.Component):
    def __init__(self, config: EIEConfig | None = None, control_cls=CentralControl):
        super().__init__({})  # no ports: every input is free (AnySeq/AnyConst)
        self.config = config or small_config()
        self.control_cls = control_cls

    def elaborate(self, platform) -> Module:
        m = Module()
        c = self.config
        p = HWParams(c)
        m.submodules.ccu = ccu = self.control_cls(p)
        pes = ccu.pes  # to every group's register (hw.central_control.GroupRegister)

        # the environment
        _free(m, ccu.start, ccu.first_layer, ccu.n_layers, ccu.root.valid, ccu.root.payload,
              ccu.layer_wr.en, ccu.layer_wr.addr, ccu.layer_wr.data)
        for st in ccu.status:
            _free(m, st.room, st.done)
        # the host writes while ready, and only valid entries: rows = ceil(n_out / N) <= act_depth
        # (with more, the write-back row would wrap: the first BMC run found that)
        m.d.comb += Assume(~ccu.layer_wr.en | (ccu.ready & (ccu.layer_wr.data.rows <= c.act_depth)))
        # (the table is a memory: a reset keeps it, so the shadow is not reset either)
        rows = Array(Signal.like(ccu.layer_wr.data.rows, name=f"rows{i}", reset_less=True)
                     for i in range(c.max_layers))
        ptr_bases = Array(Signal.like(ccu.layer_wr.data.ptr_base, name=f"ptr_base{i}",
                                      reset_less=True) for i in range(c.max_layers))
        with m.If(ccu.layer_wr.en):
            m.d.sync += [rows[ccu.layer_wr.addr].eq(ccu.layer_wr.data.rows),
                         ptr_bases[ccu.layer_wr.addr].eq(ccu.layer_wr.data.ptr_base)]

        # the phase, from the registered outputs
        clear, idle, lstart, compute = pes.wb.clear, ccu.ready, pes.layer_start, pes.compute
        wb = Signal()
        other = Signal()
        m.d.comb += [wb.eq(pes.wb.valid & ~pes.wb.clear),
                     other.eq(pes.count_en & ~lstart & ~compute & ~wb)]
        after_wb = Signal()  # FLUSH before WB, TAIL after
        with m.If(wb):
            m.d.sync += after_wb.eq(1)
        with m.Elif(lstart):
            m.d.sync += after_wb.eq(0)
        flush, tail = other & ~after_wb, other & after_wb
        phases = Cat(clear, idle, lstart, compute, wb, other)
        m.d.comb += [
            Assert(phases.any() & ((phases & (phases - 1)) == 0), "phase: exactly one"),
            Assert(ccu.busy == pes.count_en, "phase: busy = count_en"),
            Assert(~(clear | idle) == pes.count_en, "phase: busy in every phase but CLEAR, IDLE"),
            Assert(~clear | pes.wb.valid, "phase: CLEAR writes rows"),
        ]

        # cycles spent in the current phase
        phase_q = Signal.like(phases, init=1)  # CLEAR after reset
        m.d.sync += phase_q.eq(phases)
        t = Signal(8)
        m.d.sync += t.eq(t + 1)
        with m.If(phases != phase_q):
            m.d.sync += t.eq(1)
        age = Signal(8)  # cycles of this phase before this one
        m.d.comb += age.eq(Mux(phases != phase_q, 0, t))
        prev = {name: Signal(name=f"prev_{name}") for name in
                ("clear", "idle", "lstart", "compute", "wb", "flush", "tail", "exit")}
        prev_age = Signal(8)
        # sent_q[i]: the root showed the sentinel i + 1 COMPUTE cycles before (0 after LSTART)
        sent_q = Signal(1 + STATUS_STAGES)
        # every PE's flags as of STATUS_STAGES cycles before (ghosts)
        all_done = Cat(st.done for st in ccu.status).all()
        all_room = Cat(Cat(st.room[i] for st in ccu.status).all() for i in range(ROOM_FLAGS))
        for _ in range(STATUS_STAGES):
            done_q, room_q = Signal(), Signal(ROOM_FLAGS, init=(1 << ROOM_FLAGS) - 1)
            m.d.sync += [done_q.eq(all_done), room_q.eq(all_room)]
            all_done, all_room = done_q, room_q
        # fires[i]: a pair was broadcast i + 1 cycles before (a ghost)
        fires = Signal(BROADCAST_STAGES + STATUS_STAGES)
        m.d.sync += fires.eq(Cat(ccu.root.ready, fires[:-1]))
        in_flight = Signal(range(len(fires) + 1))
        m.d.comb += in_flight.eq(sum(fires[i] for i in range(len(fires))))
        m.d.sync += [prev["clear"].eq(clear), prev["idle"].eq(idle), prev["lstart"].eq(lstart),
                     prev["compute"].eq(compute), prev["wb"].eq(wb), prev["flush"].eq(flush),
                     prev["tail"].eq(tail),
                     prev["exit"].eq(compute & sent_q[-1] & all_done
                                     & ~fires[STATUS_STAGES:].any()),
                     prev_age.eq(age)]
        with m.If(compute):
            m.d.sync += sent_q.eq(Cat(ccu.root.valid & ccu.root.payload.sentinel, sent_q[:-1]))
        with m.Elif(lstart):
            m.d.sync += sent_q.eq(0)

        # the run
        run = Signal()  # a run was started since reset
        first = Signal.like(ccu.first_layer)
        n = Signal.like(ccu.n_layers)
        ran = Signal.like(ccu.n_layers)  # LSTARTs of this run
        taken = Signal()
        m.d.comb += taken.eq(ccu.start & ccu.ready)
        cycles = Signal.like(ccu.cycles)
        stalls = Signal.like(ccu.stall_cycles)
        with m.If(taken):
            m.d.sync += [run.eq(1), first.eq(ccu.first_layer), n.eq(ccu.n_layers), ran.eq(0),
                         cycles.eq(0), stalls.eq(0)]
        with m.Else():
            with m.If(lstart):
                m.d.sync += ran.eq(ran + 1)
            with m.If(pes.count_en):
                m.d.sync += cycles.eq(cycles + 1)
            with m.If(compute & ccu.root.valid & ~ccu.root.payload.sentinel & ~ccu.root.ready):
                m.d.sync += stalls.eq(stalls + 1)
        layer_k = Signal.like(ccu.layer)  # the k-th layer of the run, modulo the table
        layer_r = Signal.like(ccu.layer)  # the running one (k - 1)
        m.d.comb += [layer_k.eq(first + ran), layer_r.eq(first + ran - 1)]

        m.d.comb += Assert(pes.count_clear == taken, "start: a run starts iff start while ready")
        with m.If(lstart):
            m.d.comb += [
                Assert(run & (ran < n), "order: no more than n_layers LSTARTs"),
                Assert(ccu.layer == layer_k, "order: the k-th LSTART is layer first + k"),
                Assert(pes.ctl.src_bank == ran[0], "order: the k-th layer reads bank k mod 2"),
            ]
        with m.If(compute | other | wb):
            m.d.comb += [
                Assert(run & (ran >= 1) & (ran <= n), "order: within the run's layers"),
                Assert(ccu.layer == layer_r, "order: the running layer"),
                Assert(pes.ctl.layer == ccu.layer, "order: the PEs' layer"),
            ]

        # the sequence
        m.d.comb += [
            Assert(~prev["lstart"] | compute, "sequence: LSTART -> COMPUTE"),
            Assert(~(prev["compute"] & ~compute) | prev["exit"], "sequence: COMPUTE ends on E"),
            Assert(~prev["exit"] | flush, "sequence: E -> FLUSH"),
            Assert(~flush | (age < FLUSH_STATES), "sequence: FLUSH length"),
            Assert(~(prev["flush"] & ~flush) | (wb & (prev_age == FLUSH_STATES - 1)),
                   "sequence: FLUSH -> WB"),
            Assert(~tail | (age < TAIL_STATES), "sequence: TAIL length"),
            Assert(~(prev["tail"] & ~tail) | ((lstart | idle) & (prev_age == TAIL_STATES - 1)),
                   "sequence: TAIL -> LSTART or IDLE"),
            Assert(~(prev["idle"] & ~idle) | lstart, "sequence: IDLE -> LSTART only"),
            Assert(~(prev["clear"] & ~clear) | (idle & (prev_age == c.act_depth - 1)),
                   "clear: act_depth rows, then IDLE"),
            Assert(~clear | ((age < c.act_depth) & (pes.wb.row == age)), "clear: rows in order"),
        ]
        wb_rows = Signal(8)
        row_entry = rows[ccu.layer]
        m.d.comb += wb_rows.eq(Mux(row_entry == 0, 1, row_entry))
        with m.If(wb):
            m.d.comb += [
                Assert(pes.wb.row == age, "sequence: WB rows in order"),
                Assert(age < wb_rows, "sequence: WB length"),
            ]
        m.d.comb += Assert(~(prev["wb"] & ~wb) | (tail & (prev_age == wb_rows - 1)),
                           "sequence: WB -> TAIL after max(1, rows) rows")
        with m.If(lstart & (ran != 0)):
            m.d.comb += Assert(prev["tail"], "sequence: a layer follows the previous one's TAIL")
        with m.If(idle & prev["tail"]):
            m.d.comb += Assert(ran == n, "sequence: IDLE after the last layer")

        # done
        m.d.comb += [
            Assert(~ccu.done | idle, "done: only in IDLE"),
            Assert(~idle | (ccu.done == (run & (ran == n))), "done: iff all n_layers ran"),
        ]

        # counters
        with m.If(run):
            m.d.comb += [Assert(ccu.cycles == cycles, "counters: cycles = busy cycles"),
                         Assert(ccu.stall_cycles == stalls, "counters: stall cycles")]

        # broadcast
        room = Signal()  # every PE had room for the pairs in flight and one more
        m.d.comb += room.eq(Array(all_room[i] for i in range(ROOM_FLAGS))[in_flight])
        item = ccu.root.payload
        with m.If(ccu.root.ready):
            m.d.comb += [
                Assert(compute & ccu.root.valid & ~item.sentinel, "broadcast: a non-zero, in COMPUTE"),
                Assert(room, "broadcast: every PE has room"),
            ]
        m.d.comb += Assert(ccu.root.ready == (compute & ccu.root.valid & ~item.sentinel & room),
                           "broadcast: whenever it can")
        fired = Signal()
        want = Signal.like(pes.bcast)
        even, odd, odd_first = bank_addresses(p, ptr_bases[ccu.layer] + item.idx * p.n_pe + item.pe)
        # the unit's own stages (the group registers in the top hold the rest)
        own = BROADCAST_STAGES - CONTROL_STAGES
        m.d.comb += [fired.eq(fires[own - 1])]
        sent = Signal.like(pes.bcast)
        m.d.comb += [sent.even.eq(even), sent.odd.eq(odd), sent.odd_first.eq(odd_first),
                     sent.a.eq(item.value)]
        delayed = sent
        for _ in range(own):
            q = Signal.like(pes.bcast)
            m.d.sync += q.eq(delayed)
            delayed = q
        m.d.comb += want.eq(delayed)
        m.d.comb += Assert(pes.bcast_valid == fired, "broadcast: registered, once")
        with m.If(fired):
            m.d.comb += Assert(pes.bcast.as_value() == want.as_value(),
                               "broadcast: column j's pointer bank addresses, a_j")

        # not vacuous: a two-layer run completes; a run with a stall completes
        done_rise = Signal()
        m.d.comb += done_rise.eq(ccu.done & prev["tail"])
        m.d.comb += [
            Cover(done_rise & (n == 2)),
            Cover(done_rise & (stalls != 0)),
            Cover(ccu.done & (n == 0) & run),
        ]
        return m


