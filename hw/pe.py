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
from .central_control import ROOM_FLAGS
from .params import COUNTER_BITS, HWParams, RdMem, WrMem
from .pointer_read import HELD_PAIRS, PointerRead
from .signatures import control_signature, status_signature
from .spmat_read import SparseMatrixRead


@dataclass
class PEInit:
    """Initial memory contents of one PE (FPGA ROM builds); empty lists mean all zeros."""

    spmat: list[int] = field(default_factory=list)
    ptr_even: list[int] = field(default_factory=list)
    ptr_odd: list[int] = field(default_factory=list)
    bias: list[int] = field(default_factory=list)
    codebook: list[int] = field(default_factory=list)


# Access counters (simulation builds only, ``PE(access_counters=True)``): per run, like the busy
# counter, the cycles in which this PE reads a sparse-matrix word, reads a pointer pair, reads
# its source non-zero list (an activation it broadcasts) and writes an activation (write-back);
# one output ``n_access``, COUNTER_BITS each from the low bits (one port: see pe_signature).
ACCESS_COUNTERS = ("n_spmat_reads", "n_ptr_reads", "n_act_reads", "n_act_writes")


def pe_signature(params: HWParams, access_counters: bool = False) -> wiring.Signature:
    """The PE's interface (from the PE's side); ``access_counters``: with the
    :data:`ACCESS_COUNTERS` as the output ``n_access``."""
    extra = {"n_access": Out(COUNTER_BITS * len(ACCESS_COUNTERS))} if access_counters else {}
    return wiring.Signature({**extra,
        "control": In(control_signature(params)),  # from the central control unit
        "status": Out(status_signature(ROOM_FLAGS)),  # to the central control unit
        "nz": Out(stream.Signature(params.leaf(0))),  # this PE's leaf of the LNZD tree
        # host port (this PE's lane). Packed structs, not signatures: Yosys breaks a module
        # header of more than 21 ports over two lines, which hw.verilog's Verilator hint and
        # the ROM flow do not expect.
        "wr": In(params.pe_wr),
        "rd": In(params.pe_rd),
        "rd_data": Out(params.rd_lane_bits),
    })


class PE(wiring.Component):
    """One processing element. ``status.done`` (registered) is high when, in the previous
    cycle, it had no pair waiting or arriving and no entry left to issue; ``busy_count`` counts
    the cycles spent on columns (``max(1, e)`` per column) while ``control.count_en``."""

    # The memories the host loads, by PEInit field (= image file stem, sw/eie/images.py):
    # (submodule, memory) as elaborated below, the names ROM builds initialise in the Verilog.
    HOST_LOADED_MEMORIES = {"spmat": ("spmat_read", "mem"), "ptr_even": ("ptr_read", "even"),
                            "ptr_odd": ("ptr_read", "odd"), "bias": ("act_rw", "bias"),
                            "codebook": ("arith", "codebook")}

    def __init__(self, params: HWParams, init: PEInit | None = None,
                 access_counters: bool = False):
        self._p = params
        self._init = init or PEInit()
        self._access = access_counters
        super().__init__(pe_signature(params, access_counters))

    def elaborate(self, platform) -> Module:
        m = Module()
        p = self._p
        ini = self._init
        def local_domain(name: str) -> None:
            reset_domain(m, name)

        # The PE's registers are reset by a register of its own: the reset net of a PE then
        # reaches one PE's registers only (a net from the top to every register of 8 PEs was
        # an FPGA build's critical path). Domain ``pe`` is ``sync`` with that reset.
        local_domain("pe")
        q = ActivationQueue(p, extra=HELD_PAIRS, rooms=ROOM_FLAGS)
        pr = PointerRead(p, ini.ptr_even, ini.ptr_odd)
        sr = SparseMatrixRead(p, ini.spmat)
        au = ArithmeticUnit(p, ini.codebook)
        arw = ActivationRW(p, ini.bias)
        # ... and each block by a register of its own: no reset net reaches more than one
        # block (a PE's single reset net, to 940 flip-flops, was the critical path of a routed
        # 16-PE design: docs/fpga.md)
        for name, block in (("queue", q), ("ptr_read", pr), ("spmat_read", sr), ("arith", au),
                            ("act_rw", arw)):
            local_domain(f"pe_{name}")
            m.submodules[name] = DomainRenamer(f"pe_{name}")(block)

        # datapath
        control = self.control
        m.d.comb += [
            q.push.eq(control.bcast_valid), q.push_data.eq(control.bcast),
            self.status.room.eq(q.room),
            au.layer.eq(control.ctl.layer),
            arw.layer_start.eq(control.layer_start), arw.compute.eq(control.compute),
            arw.ctl.eq(control.ctl), arw.wb.eq(control.wb),
        ]
        wiring.connect(m, q.o, pr.i)
        wiring.connect(m, pr.o, sr.i)
        wiring.connect(m, sr.o, au.i)
        wiring.connect(m, au.acc, arw.acc)
        wiring.connect(m, arw.nz, wiring.flipped(self.nz))

        # status and the busy counter (docs/format.md "Timing": a column occupies max(1, e)
        # cycles from its start)
        start = sr.i.valid & sr.free
        busy = ~sr.free | start
        m.d.comb += q.start.eq(start)
        m.d.pe += self.status.done.eq((q.pending == 0) & ~control.bcast_valid & sr.free)
        busy_count = Signal(COUNTER_BITS)
        with m.If(control.count_clear):
            m.d.pe += busy_count.eq(0)
        with m.Elif(control.count_en & busy):
            m.d.pe += busy_count.eq(busy_count + 1)
        # the sparse-matrix reader forgets its held word at each layer's start
        m.d.comb += sr.flush.eq(control.layer_start)
        if self._access:
            events = (sr.word_read, pr.bank_read, arw.list_read, arw.act_write)
            for i, ev in enumerate(events):
                n = self.n_access[i * COUNTER_BITS:(i + 1) * COUNTER_BITS]
                with m.If(control.count_clear):
                    m.d.pe += n.eq(0)
                with m.Elif(control.count_en & ev):
                    m.d.pe += n.eq(n + 1)

        # host writes: registered here (the top takes them from its port, and no net carries a
        # write to more than one PE's memories), then this PE's lane into the memory ``wr.mem``
        # picks, in the cycle after the write was taken
        # (only the enables reset: the PE's reset register reaches no data register; the reset
        # net to every flip-flop of the PE's ports was the critical path of a routed 16-PE
        # design, docs/fpga.md)
        wr = Signal(p.pe_wr, reset_less=True)
        wr_en = Signal()
        m.d.pe += [wr.eq(self.wr), wr_en.eq(self.wr.en)]
        for mem, port in ((WrMem.SPMAT, sr.wr), (WrMem.PTR, pr.wr), (WrMem.BIAS, arw.bias_wr),
                          (WrMem.CODEBOOK, au.cb_wr)):
            m.d.comb += [port.en.eq(wr_en & (wr.mem == mem)), port.addr.eq(wr.addr),
                         port.data.eq(wr.data)]  # each takes the lane's low bits
        # Input activations have a register of their own (zero unless the write's memory is
        # ACT, so that synthesis keeps it apart from ``wr``), placed by the activation files
        # rather than among all the PE's memories, with the non-zero flag computed before it
        # from the act_bits the file keeps: from these registers to the non-zero list's write enable there is no
        # compare (hw.activation_rw.NonZeroList; docs/fpga.md, the 24-PE critical path)
        # Only the enable depends on the write being taken: the address, the data and the flag
        # (used only with the enable) come from the lane and the memory select alone (the
        # host's valid -> the top's acceptance -> every PE's data registers was the critical
        # path of a routed 24-PE design, and of the ULX3S top through the flag's compare)
        to_act = self.wr.mem == WrMem.ACT
        act_data = Mux(to_act, self.wr.data[:p.act_bits], 0)
        in_addr = Signal.like(arw.in_wr.addr, reset_less=True)
        in_data = Signal.like(arw.in_wr.data, reset_less=True)
        in_nonzero = Signal(reset_less=True)
        m.d.pe += [arw.in_wr.en.eq(self.wr.en & to_act), in_addr.eq(Mux(to_act, self.wr.addr, 0)),
                   in_data.eq(act_data), in_nonzero.eq(act_data != 0)]
        m.d.comb += [arw.in_wr.addr.eq(in_addr), arw.in_wr.data.eq(in_data),
                     arw.in_wr.nonzero.eq(in_nonzero)]
        m.d.comb += arw.in_clear.eq(wr_en & (wr.mem == WrMem.ACT_CLEAR))

        # host reads: two cycles from request to rd_data
        rd_mem = Signal(RdMem, reset_less=True)
        rd_data = Signal.like(self.rd_data, reset_less=True)
        m.d.comb += [arw.rd_addr.eq(self.rd.addr), self.rd_data.eq(rd_data)]
        m.d.pe += [
            rd_mem.eq(self.rd.mem),
            # activations sign-extended to the lane
            rd_data.eq(Mux(rd_mem == RdMem.BUSY, busy_count, arw.rd_data)),
        ]
        return m


class ResetRegister(wiring.Component):
    """``q``: the domain's reset, one cycle later (a register with no reset of its own)."""

    def __init__(self):
        super().__init__({"q": Out(1, init=1)})

    def elaborate(self, platform) -> Module:
        m = Module()
        q = Signal(init=1, reset_less=True)
        m.d.sync += q.eq(ResetSignal())
        m.d.comb += self.q.eq(q)
        return m


def reset_domain(m: Module, name: str, source: str = "sync") -> str:
    """Add local domain ``name`` to ``m``: ``sync``'s clock, reset by a register of its own that
    holds domain ``source``'s reset one cycle later (a module of its own, so that synthesis
    does not merge the copies). Returns ``name``."""
    reg = ResetRegister()
    m.submodules[f"{name}_rst"] = reg if source == "sync" else DomainRenamer(source)(reg)
    domain = ClockDomain(name, local=True)
    m.domains += domain
    m.d.comb += [domain.clk.eq(ClockSignal()), domain.rst.eq(reg.q)]
    return name


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
