"""Processing element: activation queue -> pointer read -> sparse-matrix read -> arithmetic
unit -> activation read/write (Han et al., EIE, ISCA 2016, Figure 4 and Section IV).

The PE's ports are its Verilog module's ports when it is emitted once and instantiated N times
(:mod:`hw.verilog`); names follow Amaranth's flattening of :func:`pe_signature` (``nz__valid``
...), documented in docs/hardware.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from amaranth.hdl import (
    ClockDomain,
    ClockSignal,
    DomainRenamer,
    Instance,
    Module,
    Mux,
    ResetSignal,
    Signal,
    Value,
)
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .activation_queue import ActivationQueue
from .activation_rw import ActivationRW
from .arithmetic_unit import ArithmeticUnit
from .params import COUNTER_BITS, HWParams, RdMem, WrMem
from .pointer_read import HELD_PAIRS, PointerRead
from .spmat_read import SparseMatrixRead


@dataclass
class PEInit:
    """Initial memory contents of one PE (FPGA ROM builds); empty lists mean all zeros."""

    spmat: list[int] = field(default_factory=list)
    ptr_even: list[int] = field(default_factory=list)
    ptr_odd: list[int] = field(default_factory=list)
    bias: list[int] = field(default_factory=list)
    codebook: list[int] = field(default_factory=list)


def pe_signature(params: HWParams) -> wiring.Signature:
    """The PE's interface (from the PE's side)."""
    return wiring.Signature({
        # broadcast network and LNZD tree
        "bcast_valid": In(1),
        "bcast": In(params.queue_entry),
        "room": Out(1),
        "room2": Out(1),
        "done": Out(1),
        "nz": Out(stream.Signature(params.leaf(0))),
        # central control
        "ctl": In(params.ctl),
        "layer_start": In(1),
        "compute": In(1),
        "count_en": In(1),
        "count_clear": In(1),
        "wb": In(params.wb),
        # host port (this PE's lane)
        "wr": In(params.pe_wr),
        "rd": In(params.pe_rd),
        "rd_data": Out(params.rd_lane_bits),
    })


class PE(wiring.Component):
    """One processing element. ``done`` (registered) is high when, in the previous cycle, it had
    no pair waiting or arriving and no entry left to issue; ``busy_count`` counts
    the cycles spent on columns (``max(1, e)`` per column) while ``count_en``."""

    # The memories the host loads, by PEInit field (= image file stem, sw/eie/images.py):
    # (submodule, memory) as elaborated below, the names ROM builds initialise in the Verilog.
    HOST_LOADED_MEMORIES = {"spmat": ("spmat_read", "mem"), "ptr_even": ("ptr_read", "even"),
                            "ptr_odd": ("ptr_read", "odd"), "bias": ("act_rw", "bias"),
                            "codebook": ("arith", "codebook")}

    def __init__(self, params: HWParams, init: PEInit | None = None):
        self._p = params
        self._init = init or PEInit()
        super().__init__(pe_signature(params))

    def elaborate(self, platform) -> Module:
        m = Module()
        p = self._p
        ini = self._init
        # The PE's registers are reset by a register of its own: the reset net of a PE then
        # reaches one PE's registers only (a net from the top to every register of 8 PEs was
        # an FPGA build's critical path). Domain ``pe`` is ``sync`` with that reset.
        rst_local = Signal(init=1, reset_less=True)
        m.d.sync += rst_local.eq(ResetSignal())
        m.domains.pe = pe_domain = ClockDomain("pe", local=True)
        m.d.comb += [pe_domain.clk.eq(ClockSignal()), pe_domain.rst.eq(rst_local)]
        local = DomainRenamer("pe")
        q = ActivationQueue(p, extra=HELD_PAIRS)
        pr = PointerRead(p, ini.ptr_even, ini.ptr_odd)
        sr = SparseMatrixRead(p, ini.spmat)
        au = ArithmeticUnit(p, ini.codebook)
        arw = ActivationRW(p, ini.bias)
        m.submodules.queue = local(q)
        m.submodules.ptr_read = local(pr)
        m.submodules.spmat_read = local(sr)
        m.submodules.arith = local(au)
        m.submodules.act_rw = local(arw)

        # datapath
        m.d.comb += [
            q.push.eq(self.bcast_valid), q.push_data.eq(self.bcast), self.room.eq(q.room),
            self.room2.eq(q.room2),
            pr.ptr_base.eq(self.ctl.ptr_base),
            au.layer.eq(self.ctl.layer),
            arw.acc_rd_addr.eq(au.acc_rd_addr), au.acc_rd_data.eq(arw.acc_rd_data),
            arw.acc_wr_en.eq(au.acc_wr_en), arw.acc_wr_addr.eq(au.acc_wr_addr),
            arw.acc_wr_data.eq(au.acc_wr_data),
            arw.layer_start.eq(self.layer_start), arw.compute.eq(self.compute),
            arw.src_bank.eq(self.ctl.src_bank), arw.wb.eq(self.wb),
            arw.bias_base.eq(self.ctl.bias_base), arw.w_frac.eq(self.ctl.w_frac),
            arw.relu.eq(self.ctl.relu),
        ]
        wiring.connect(m, q.o, pr.i)
        wiring.connect(m, pr.o, sr.i)
        wiring.connect(m, sr.o, au.i)
        wiring.connect(m, arw.nz, wiring.flipped(self.nz))

        # status and the busy counter (docs/format.md: a column occupies max(1, e) cycles from
        # its start)
        start = sr.i.valid & sr.free
        busy = ~sr.free | start
        m.d.comb += q.start.eq(start)
        m.d.pe += self.done.eq((q.pending == 0) & ~self.bcast_valid & sr.free)
        busy_count = Signal(COUNTER_BITS)
        with m.If(self.count_clear):
            m.d.pe += busy_count.eq(0)
        with m.Elif(self.count_en & busy):
            m.d.pe += busy_count.eq(busy_count + 1)

        # host writes: this PE's lane
        wr = self.wr
        pb = p.ptr_bits
        m.d.comb += [
            sr.wr_en.eq(wr.en & (wr.mem == WrMem.SPMAT)),
            sr.wr_addr.eq(wr.addr), sr.wr_data.eq(wr.data),
            pr.wr_en.eq(wr.en & (wr.mem == WrMem.PTR)),
            pr.wr_addr.eq(wr.addr), pr.wr_data.eq(wr.data[:2 * pb]),
            arw.bias_wr_en.eq(wr.en & (wr.mem == WrMem.BIAS)),
            arw.bias_wr_addr.eq(wr.addr), arw.bias_wr_data.eq(wr.data[:p.act_bits]),
            au.cb_wr_en.eq(wr.en & (wr.mem == WrMem.CODEBOOK)),
            au.cb_wr_addr.eq(wr.addr), au.cb_wr_data.eq(wr.data[:p.act_bits]),
            arw.in_wr_en.eq(wr.en & (wr.mem == WrMem.ACT)),
            arw.in_clear.eq(wr.en & (wr.mem == WrMem.ACT_CLEAR)),
            arw.in_wr_addr.eq(wr.addr), arw.in_wr_data.eq(wr.data[:p.act_bits]),
        ]

        # host reads: two cycles from request to rd_data
        rd_mem = Signal(RdMem)
        m.d.comb += arw.rd_addr.eq(self.rd.addr)
        m.d.pe += [
            rd_mem.eq(self.rd.mem),
            # activations sign-extended to the lane
            self.rd_data.eq(Mux(rd_mem == RdMem.BUSY, busy_count, arw.rd_data)),
        ]
        return m


def pe_instance(params: HWParams, module: str, name: str,
                rst=None) -> tuple[wiring.PureInterface, Instance]:
    """The :class:`PE` interface realised as an instance of the separately emitted Verilog module
    ``module`` (see :mod:`hw.verilog`): returns the interface object (signals the top level
    drives and reads, as it would a :class:`PE`) and the ``Instance`` to add as a submodule;
    ``rst`` drives the instance's reset (default: the domain's).
    The top then converts in seconds for any N, and the PE's memories appear once in the
    Verilog instead of N times."""
    sig = pe_signature(params)
    intf = sig.create(path=(name,))
    ports = {"i_clk": ClockSignal(), "i_rst": ResetSignal() if rst is None else rst}
    for path, member, value in sig.flatten(intf):
        port = "__".join(map(str, path))
        ports[("i_" if member.flow == In else "o_") + port] = Value.cast(value)
    return intf, Instance(module, **ports)
