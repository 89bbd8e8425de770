"""Central control unit: the layer table, the broadcast of non-zeros, layer sequencing, counters.

Han et al., EIE (ISCA 2016), Section IV "Central Control Unit": at the root of the LNZD tree,
it broadcasts each non-zero (j, a_j) to every PE's activation queue, stalling while any queue is
full; in computing mode it runs a layer given its pointer start address; layers run back to back
(outputs stay in the PEs as the next layer's inputs); in I/O mode the PEs are idle while the
host loads memories and activations.

Per layer (cycle 0 = LSTART; docs/hardware.md "Timing" and docs/format.md "Timing"):

- LSTART (1 cycle): latch the layer's table entry; rewind the PEs' source lists.
- COMPUTE: the LNZD tree fills (the root is valid from cycle ``levels + 2``); from then on the
  root's item is broadcast in every cycle in which every queue has room; a cycle with an item
  but a full queue is a stall. The broadcast pair is registered here and written into the
  queues in the next cycle, so a PE's registered ``room`` ("fewer than D pairs pending") does
  not yet count a pair broadcast in the previous cycle: after a broadcast the unit asks for
  ``room2`` ("fewer than D - 1") instead. Both are registers: no path runs from the PEs through
  this unit back into the PEs in one cycle. COMPUTE ends in the cycle after the first
  cycle E in which the root shows the sentinel and every PE is done (queue empty, column
  finished): the PEs' ``done`` and the root's sentinel are both registered, so both describe E.
- DRAIN (3 cycles): the sparse-matrix read (3 stages) and arithmetic (3 stages) pipelines
  after the last entry, issued in cycle E - 1 at the latest, write their last sums; the first
  write-back row is read in E + 5.
- WB (rows cycles): one local row per cycle, all PEs at once.
- TAIL (6 cycles): the write-back pipeline writes its last rows and completes the non-zero
  lists; then the next layer's LSTART, or IDLE with ``done`` set.

So a layer takes ``E + DRAIN + rows + TAIL`` cycles with DRAIN = 5, TAIL = 6 (as counted from E).
After reset the unit spends ``act_depth`` cycles (CLEAR) zeroing every PE's accumulators.
"""

from __future__ import annotations

from collections.abc import Sequence

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out

from .activation_rw import WB_STAGES
from .params import COUNTER_BITS, HWParams, lnzd_levels

DRAIN_STATES = 3  # DRAIN cycles between the decision (E + 1) and the first write-back row
TAIL_STATES = WB_STAGES  # cycles after the last write-back row until its list append is done
BROADCAST_STAGES = 1  # the broadcast pair is registered here before it reaches the queues

# Timing constants in the cycle model's terms (docs/format.md "Timing").
DRAIN = DRAIN_STATES + 2  # cycles from E (all PEs done) to the first write-back row
WB_TAIL = TAIL_STATES  # cycles from the end of the write-back rows to the next layer's start


def start_latency(n_pe: int) -> int:
    """First cycle of a layer (counted from 0 at its start) in which a broadcast can happen:
    LSTART, then one cycle per LNZD level and one for the root's buffer to fill the tree."""
    return lnzd_levels(n_pe) + 2


class CentralControl(wiring.Component):
    """Ports (to the PEs): bcast_valid / bcast (the pair), ctl (layer parameters), layer_start,
    compute, count_en, count_clear, wb (write-back rows).
    From the PEs: rooms[k] / rooms2[k] (queue k has room for one / two more pairs), dones[k]
    (PE k done), all registered.
    From the LNZD tree: root (``ready`` = broadcast now).
    Host: start / first_layer / n_layers (sampled while ``ready``), ready, busy, done,
    layer_wr_* (layer table writes), cycles, stall_cycles, layer.
    """

    def __init__(self, params: HWParams, init_layers: Sequence[int] = ()):
        self._p = params
        # layer-table words (ints, as the host writes them) -> constants of the entry layout
        self._init = [params.layer_entry.from_bits(v) if isinstance(v, int) else v
                      for v in init_layers]
        n = params.n_pe
        super().__init__({
            "root": In(stream.Signature(params.leaf(2 * params.levels))),
            "rooms": In(n),
            "rooms2": In(n),
            "dones": In(n),
            "bcast_valid": Out(1),
            "bcast": Out(params.queue_entry),
            "ctl": Out(params.ctl),
            "layer_start": Out(1),
            "compute": Out(1),
            "count_en": Out(1),
            "count_clear": Out(1),
            "wb": Out(params.wb, init={"valid": 1, "clear": 1}),  # CLEAR after reset
            "start": In(1),
            "first_layer": In(params.layer_bits),
            "n_layers": In(params.n_layers_bits),
            "ready": Out(1),
            "busy": Out(1),
            "done": Out(1),
            "layer_wr_en": In(1),
            "layer_wr_addr": In(params.layer_bits),
            "layer_wr_data": In(params.layer_entry),
            "cycles": Out(COUNTER_BITS),
            "stall_cycles": Out(COUNTER_BITS),
            "layer": Out(params.layer_bits),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        p = self._p
        c = p.config
        m.submodules.table = table = memory.Memory(shape=p.layer_entry, depth=c.max_layers,
                                                   init=self._init)
        t_wp = table.write_port()
        t_rp = table.read_port(domain="comb")
        m.d.comb += [t_wp.en.eq(self.layer_wr_en), t_wp.addr.eq(self.layer_wr_addr),
                     t_wp.data.eq(self.layer_wr_data), t_rp.addr.eq(self.layer)]

        cur = Signal(p.layer_entry)  # the running layer's entry
        left = Signal(p.n_layers_bits)  # layers still to run, the current one included
        src_bank = Signal()
        row = Signal(p.local_bits + 1)
        timer = Signal(range(max(DRAIN_STATES, TAIL_STATES) + 1))
        sentinel_q = Signal()  # the root showed the sentinel in the previous cycle
        m.d.comb += [
            self.ctl.ptr_base.eq(cur.ptr_base),
            self.ctl.layer.eq(self.layer),
            self.ctl.bias_base.eq(cur.bias_base),
            self.ctl.w_frac.eq(cur.w_frac),
            self.ctl.relu.eq(cur.relu),
            self.ctl.src_bank.eq(src_bank),
        ]

        # broadcast: j = local index * N + PE index, registered on its way to the queues
        root = self.root.payload
        room = Signal()
        real = Signal()
        fire = Signal()
        m.d.comb += [
            room.eq(Mux(self.bcast_valid, self.rooms2.all(), self.rooms.all())),
            real.eq(self.root.valid & ~root.sentinel),
            self.root.ready.eq(fire),
        ]
        m.d.sync += [
            self.bcast_valid.eq(fire),
            self.bcast.j.eq(root.idx * p.n_pe + root.pe),
            self.bcast.a.eq(root.value),
        ]

        with m.If(self.count_en):
            m.d.sync += self.cycles.eq(self.cycles + 1)
        with m.If(self.count_en & self.compute & real & ~room):
            m.d.sync += self.stall_cycles.eq(self.stall_cycles + 1)

        # The outputs to the PEs are registers, not decodes of the state: each transition sets
        # them for the state it enters (they fan out to every PE and into its address logic).
        outs = {  # state -> (layer_start, compute, count_en, wb.valid, wb.clear, ready)
            "CLEAR": (0, 0, 0, 1, 1, 0), "IDLE": (0, 0, 0, 0, 0, 1), "LSTART": (1, 0, 1, 0, 0, 0),
            "COMPUTE": (0, 1, 1, 0, 0, 0), "DRAIN": (0, 0, 1, 0, 0, 0), "WB": (0, 0, 1, 1, 0, 0),
            "TAIL": (0, 0, 1, 0, 0, 0),
        }
        regs = (self.layer_start, self.compute, self.count_en, self.wb.valid, self.wb.clear,
                self.ready)

        def goto(state: str) -> None:
            m.next = state
            m.d.sync += [r.eq(v) for r, v in zip(regs, outs[state], strict=True)]

        m.d.comb += self.wb.row.eq(row)
        with m.FSM(init="CLEAR"):
            with m.State("CLEAR"):  # zero every accumulator after reset
                m.d.sync += row.eq(row + 1)
                with m.If(row == c.act_depth - 1):
                    m.d.sync += row.eq(0)
                    goto("IDLE")
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.comb += self.count_clear.eq(1)
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
                m.d.sync += sentinel_q.eq(self.root.valid & root.sentinel)
                with m.If(sentinel_q & self.dones.all()):
                    m.d.sync += timer.eq(DRAIN_STATES - 1)
                    goto("DRAIN")
            with m.State("DRAIN"):
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
        m.d.comb += self.busy.eq(self.count_en)
        return m

