"""The EIE accelerator: N processing elements, the LNZD quadtree, the central control unit and
the host port (Han et al., EIE, ISCA 2016, Figure 4). docs/hardware.md documents every port and
the host protocol; :mod:`hw.host` implements the protocol from a :class:`sw.eie.pack.NetworkImage`.

Host port, in short (all synchronous to ``clk``, active-high synchronous ``rst``):

- ``wr__*``: one write per cycle while ``wr__ready`` (= ``ready``: idle, not clearing); it
  reaches the memories one cycle later (the write is registered before it fans out).
  ``wr__mem`` picks the memory (:class:`hw.params.WrMem`), ``wr__addr`` the address, lane k
  of ``wr__data`` (``lane_bits`` wide) goes to PE k if bit k of ``wr__pe_mask`` is set: every
  PE's memories are written in parallel, one address per cycle (the wide write path).
- ``rd__*``: one read request per cycle, always accepted; ``rd_resp__valid`` / ``rd_resp__data``
  (lane k = PE k, ``rd_lane_bits`` wide) two cycles later.
- ``start`` with ``first_layer`` and ``n_layers`` (sampled while ``ready`` and no write is
  offered: ``start`` and ``wr__valid`` in one cycle takes the write only) runs layers
  ``first_layer .. first_layer + n_layers - 1`` back to back on the input written to bank 0;
  ``busy`` while running; ``done`` rises (and stays until the next ``start``) when the last
  layer's outputs are in bank ``n_layers % 2``; ``cycles`` / ``stall_cycles`` count that run.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, ResetInserter, ResetSignal, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from sw.eie.config import EIEConfig

from .central_control import CentralControl
from .lnzd import LNZDTree
from .params import COUNTER_BITS, HWParams, RdMem, WrMem
from .pe import PE, PEInit, pe_instance


def host_write_signature(params: HWParams) -> wiring.Signature:
    """The host's write port, from the host's side."""
    return wiring.Signature({
        "valid": Out(1),
        "ready": In(1),
        "mem": Out(WrMem),
        "addr": Out(params.wr_addr_bits),
        "pe_mask": Out(params.n_pe),
        "data": Out(params.n_pe * params.lane_bits),
    })


def host_read_signature(params: HWParams) -> wiring.Signature:
    """The host's read-request port, from the host's side."""
    return wiring.Signature({
        "valid": Out(1),
        "mem": Out(RdMem),
        "addr": Out(params.rd_addr_bits),
    })


def eie_signature(params: HWParams) -> wiring.Signature:
    return wiring.Signature({
        "start": In(1),
        "first_layer": In(params.layer_bits),
        "n_layers": In(params.n_layers_bits),
        "ready": Out(1),
        "busy": Out(1),
        "done": Out(1),
        "layer": Out(params.layer_bits),
        "wr": In(host_write_signature(params)),
        "rd": In(host_read_signature(params)),
        "rd_resp": Out(wiring.Signature({
            "valid": Out(1), "data": Out(params.n_pe * params.rd_lane_bits)})),
        "cycles": Out(COUNTER_BITS),
        "stall_cycles": Out(COUNTER_BITS),
    })


class EIE(wiring.Component):
    """The whole accelerator for ``config``.

    ``pe_module``: if given, the PEs are instances of that separately emitted Verilog module
    (:func:`hw.verilog.generate`) instead of Amaranth submodules (which the Amaranth simulator
    needs). ``pe_inits`` / ``layer_init``: initial memory contents (FPGA ROM builds; see
    :func:`hw.host.pe_inits` and :func:`hw.host.layer_table`).
    """

    def __init__(self, config: EIEConfig, *, pe_module: str | None = None,
                 pe_inits: list[PEInit] | None = None, layer_init: list[int] | None = None):
        self.config = config
        self.params = HWParams(config)
        if pe_module is not None and pe_inits is not None:
            raise ValueError("memory initialisation needs Amaranth PEs, not a shared PE module")
        if pe_inits is not None and len(pe_inits) != config.n_pe:
            raise ValueError(f"{len(pe_inits)} PE images for {config.n_pe} PEs")
        self._pe_module = pe_module
        self._pe_inits = pe_inits
        self._layer_init = layer_init or []
        super().__init__(eie_signature(self.params))

    def elaborate(self, platform) -> Module:
        m = Module()
        p = self.params
        n = p.n_pe
        # The synchronous reset, registered once, resets every block (one cycle of latency):
        # it cuts the reset's fanout to every register of every PE from the input port, and a
        # simulator then sees the PEs' next-state logic depend on a register, not on an input
        # (Verilator evaluates input-dependent logic on every eval, i.e. twice per clock).
        # The PEs register it once more each (:class:`hw.pe.PE`), so that no net carries the
        # reset to more than one PE's registers; the LNZD tree and the control unit take the
        # same two-register delay here, and every block leaves reset in the same cycle.
        rst_q = Signal(init=1, reset_less=True)
        m.d.sync += rst_q.eq(ResetSignal())
        rst_ctl = Signal(init=1, reset_less=True)
        m.d.sync += rst_ctl.eq(rst_q)
        pes = []
        inits = self._pe_inits or [None] * n
        for k in range(n):
            if self._pe_module is not None:
                pe, inst = pe_instance(p, self._pe_module, f"pe{k}", rst_q)
                m.submodules[f"pe{k}"] = inst
            else:
                pe = PE(p, inits[k])
                m.submodules[f"pe{k}"] = ResetInserter(rst_q)(pe)
            pes.append(pe)
        lnzd = LNZDTree(p)
        ccu = CentralControl(p, self._layer_init)
        m.submodules.lnzd = ResetInserter(rst_ctl)(lnzd)
        m.submodules.ccu = ResetInserter(rst_ctl)(ccu)

        wiring.connect(m, lnzd.root, ccu.root)
        m.d.comb += [
            lnzd.flush.eq(~ccu.compute),
            ccu.rooms.eq(Cat(pe.room for pe in pes)),
            ccu.rooms2.eq(Cat(pe.room2 for pe in pes)),
            ccu.dones.eq(Cat(pe.done for pe in pes)),
            # a write lands one cycle after it is taken: start waits for a cycle without one
            ccu.start.eq(self.start & ~self.wr.valid),
            ccu.first_layer.eq(self.first_layer),
            ccu.n_layers.eq(self.n_layers),
            self.ready.eq(ccu.ready),
            self.busy.eq(ccu.busy),
            self.done.eq(ccu.done),
            self.layer.eq(ccu.layer),
            self.cycles.eq(ccu.cycles),
            self.stall_cycles.eq(ccu.stall_cycles),
        ]

        # host writes: registered here (the write port fans out to every PE's memories), then
        # every PE takes its lane in the same cycle
        wr = self.wr
        accept = Signal()
        m.d.comb += [wr.ready.eq(ccu.ready), accept.eq(wr.valid & ccu.ready)]
        wq = host_write_signature(p).flip().create(path=("wr_q",))
        m.d.sync += [wq.valid.eq(accept), wq.mem.eq(wr.mem), wq.addr.eq(wr.addr),
                     wq.pe_mask.eq(wr.pe_mask), wq.data.eq(wr.data)]
        lb = p.lane_bits
        for k, pe in enumerate(pes):
            wiring.connect(m, pe.nz, lnzd.leaves[k])
            m.d.comb += [
                pe.bcast_valid.eq(ccu.bcast_valid),
                pe.bcast.eq(ccu.bcast),
                pe.ctl.eq(ccu.ctl),
                pe.layer_start.eq(ccu.layer_start),
                pe.compute.eq(ccu.compute),
                pe.count_en.eq(ccu.count_en),
                pe.count_clear.eq(ccu.count_clear),
                pe.wb.eq(ccu.wb),
                pe.wr.en.eq(wq.valid & wq.pe_mask[k] & (wq.mem != WrMem.LAYER)),
                pe.wr.mem.eq(wq.mem),
                pe.wr.addr.eq(wq.addr),
                pe.wr.data.eq(wq.data[k * lb:(k + 1) * lb]),
                pe.rd.mem.eq(self.rd.mem),
                pe.rd.addr.eq(self.rd.addr),
            ]
        m.d.comb += [
            ccu.layer_wr_en.eq(wq.valid & (wq.mem == WrMem.LAYER)),
            ccu.layer_wr_addr.eq(wq.addr),
            ccu.layer_wr_data.eq(wq.data[:p.layer_entry.size]),
        ]

        # host reads: PEs answer two cycles after the request
        v1 = Signal()
        m.d.sync += [v1.eq(self.rd.valid), self.rd_resp.valid.eq(v1)]
        m.d.comb += self.rd_resp.data.eq(Cat(pe.rd_data for pe in pes))
        return m
