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

from amaranth.hdl import (
    Cat,
    ClockDomain,
    ClockSignal,
    DomainRenamer,
    Module,
    Mux,
    ResetInserter,
    ResetSignal,
    Signal,
)
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from sw.eie.config import EIEConfig

from .central_control import BROADCAST_GROUP, CentralControl, GroupRegister, broadcast_groups
from .lnzd import LNZDTree
from .params import HWParams, WrMem
from .pe import PE, PEInit, pe_instance, reset_domain
from .signatures import host_read_signature, host_write_signature, run_members


def eie_signature(params: HWParams) -> wiring.Signature:
    run = run_members(params)
    counters = {name: run.pop(name) for name in ("cycles", "stall_cycles")}  # the ports' order
    return wiring.Signature({
        **run,
        "wr": In(host_write_signature(params)),
        "rd": In(host_read_signature(params)),
        "rd_resp": Out(wiring.Signature({
            "valid": Out(1), "data": Out(params.n_pe * params.rd_lane_bits)})),
        **counters,
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
        # reset to more than one PE's registers; the LNZD tree, the control unit and each
        # group register take the same two-register delay here, each through a reset register
        # of its own (:func:`ctl_domain`), and every block leaves reset in the same cycle. The
        # reset port (on a board, logic: the Wishbone front end's core reset) reaches none of
        # their registers (it reached the control unit's registers through their reset
        # inputs, the routed ULX3S top's critical path), and no reset net spans the chip (one
        # register for the tree, the unit and every group was a routed 24-PE design's
        # critical path: one net detoured across the chip, docs/fpga.md).
        rst_q = Signal(init=1, reset_less=True)
        m.d.sync += rst_q.eq(ResetSignal())
        m.domains.rst_q = rst_domain = ClockDomain("rst_q", local=True)
        m.d.comb += [rst_domain.clk.eq(ClockSignal()), rst_domain.rst.eq(rst_q)]

        def ctl_domain(name: str) -> str:  # reset by rst_q one cycle later, in a register
            return reset_domain(m, name, source="rst_q")

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
        m.submodules.lnzd = DomainRenamer(ctl_domain("ctl_lnzd"))(lnzd)
        m.submodules.ccu = DomainRenamer(ctl_domain("ctl_ccu"))(ccu)

        wiring.connect(m, lnzd.root, ccu.root)
        # each group of PEs takes the control unit's outputs through a register of its own (no
        # net carries them to more than BROADCAST_GROUP PEs); it resets with the unit
        g = BROADCAST_GROUP
        groups = []
        for i in range(broadcast_groups(n)):
            reg = GroupRegister(p)
            m.submodules[f"group{i}"] = DomainRenamer(ctl_domain(f"ctl_group{i}"))(reg)
            wiring.connect(m, reg.o, *(pe.control for pe in pes[i * g:(i + 1) * g]))
            groups.append(reg)
        wiring.connect(m, ccu.pes, *(reg.i for reg in groups))
        for k, pe in enumerate(pes):
            wiring.connect(m, pe.status, ccu.status[k])
            wiring.connect(m, pe.nz, lnzd.leaves[k])
        # the tree is flushed on the PEs' time, as its leaves are: each group of four leaves by
        # the register of the PEs it belongs to
        for i, flush in enumerate(lnzd.flush):
            m.d.comb += flush.eq(~groups[4 * i // BROADCAST_GROUP].o.compute)
        # the host's run ports are the control unit's, except that a write lands one cycle
        # after it is taken: start waits for a cycle without one. While the reset is on its way
        # to the control unit (the two cycles after the reset port was high) the outputs read
        # 0, as if the unit were already reset (its reset values: ready, busy and done low, the
        # layer and the counters 0). What a host does then anyway is lost: a write reaches PEs
        # held in reset, a start a unit about to be reset. (Only the outputs are masked, by one
        # register: the mask on the start and on the writes' acceptance put a path from it
        # into the control unit and into every PE, the critical path of routed 16- and 24-PE
        # designs.)
        resetting = Signal(init=1, reset_less=True)  # = rst_q | the ctl domains' reset, in a register
        m.d.sync += resetting.eq(ResetSignal() | rst_q)
        for name, member in run_members(p).items():
            if name == "start":
                m.d.comb += ccu.start.eq(self.start & ~self.wr.valid)
            elif member.flow == In:
                m.d.comb += getattr(ccu, name).eq(getattr(self, name))
            else:
                m.d.comb += getattr(self, name).eq(Mux(resetting, 0, getattr(ccu, name)))

        # host writes: every PE registers its lane (hw.pe.PE) and the control unit's layer
        # table write is registered here, so a write reaches every memory in the cycle after it
        # is taken and no net carries it to more than one PE's memories
        wr = self.wr
        accept = Signal()
        m.d.comb += [wr.ready.eq(self.ready), accept.eq(wr.valid & ccu.ready)]
        lb = p.lane_bits
        for k, pe in enumerate(pes):
            m.d.comb += [
                pe.wr.en.eq(accept & wr.pe_mask[k] & (wr.mem != WrMem.LAYER)),
                pe.wr.mem.eq(wr.mem),
                pe.wr.addr.eq(wr.addr),
                pe.wr.data.eq(wr.data[k * lb:(k + 1) * lb]),
            ]
        layer_wr = ccu.layer_wr
        m.d.sync += [
            layer_wr.en.eq(accept & (wr.mem == WrMem.LAYER)),
            layer_wr.addr.eq(wr.addr),
            layer_wr.data.eq(wr.data[:p.layer_entry.size]),
        ]
        for pe in pes:
            m.d.comb += [pe.rd.mem.eq(self.rd.mem), pe.rd.addr.eq(self.rd.addr)]

        # host reads: PEs answer two cycles after the request
        v1 = Signal()
        m.d.sync += [v1.eq(self.rd.valid), self.rd_resp.valid.eq(v1)]
        m.d.comb += self.rd_resp.data.eq(Cat(pe.rd_data for pe in pes))
        return m
