"""The EIE behind a Wishbone B4 target: :class:`EIEBus`, the registers and memory windows of
:mod:`hw.soc.regmap` on a 32-bit bus, the core's wide host port (docs/hardware.md) inside.

One access at a time, in order:

- cycle 0: the request (``cyc & stb``) is registered with its first decode: which window or
  register block, and each window's range checks;
- cycle 1: the rest of the decode, into registers: the error code, one flag per action, the
  core's write / read fields, a register's value (a START that is not refused goes to the
  core here);
- cycle 2: the action (registers written, the word staged; a refused access recorded in
  ``ERROR``, ``ERROR_ADDR``, ``STATUS.ERROR``); register accesses, refused accesses and the
  lower words of an entry are answered (``ack`` or ``err``);
- a memory write (the last word of an entry) drives the core's write port in cycle 3 and is
  answered there, whatever ``wr.ready`` says in that cycle (the core was ready in cycle 1, and
  only START or reset make it unready);
- a memory read issues a core read in cycle 3 and is answered in the cycle after the
  response (cycle 6 with the core's 2-cycle read latency).

The decode ends at a few flip-flops; the enables of the front end's registers come from
flip-flops (at ``ecp5_small`` the decode-to-enable path of a one-cycle design was the
critical path of the whole accelerator: 90.8 MHz), and the decode itself takes two cycles
(in one, from the bridge's address register to the answer's register, it was the routed
ULX3S top's critical path: 10 logic levels).

Pipelined initiators: ``stall`` is low only in the answering cycle (``stall = ~(ack | err)``,
the B4 rule for a target that takes one request at a time), so a request is accepted and
answered in the same cycle and the next may follow in the next cycle. If the initiator drops
``cyc`` before the answer, the access completes inside and no answer is given.

Cheap in logic: a write stages one lane (the entry's lower words, then the last word) and the
core's write port gets that lane replicated onto every PE's lane, with a one-hot ``pe_mask``
(all ones for the broadcast PE); a read takes its PE's lane of the core's response.

Soft reset (``CTRL.RESET``): the core (only) is held in reset for :data:`SOFT_RESET_CYCLES`
cycles, during which ``STATUS.READY``, ``BUSY``, ``DONE`` read 0; the core then clears its accumulators (READY
low). The core runs in a clock domain ``core`` with the clock of ``sync`` and reset
``rst | soft reset``, so that its own reset pipelining (docs/hardware.md "Reset behaviour")
carries the soft reset too.
"""

from __future__ import annotations

from amaranth.hdl import (
    Cat,
    ClockDomain,
    ClockSignal,
    Const,
    DomainRenamer,
    Module,
    Mux,
    ResetSignal,
    Signal,
)
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from sw.eie.config import EIEConfig

from ..params import HWParams, RdMem, WrMem
from ..pe import PE, PEInit
from ..top import EIE
from . import wishbone
from .regmap import DATA_WIDTH, SOFT_RESET_CYCLES, ErrorCode, RegisterMap, regmap

__all__ = ["EIEBus", "bus_signature", "generate"]


def bus_signature(rm: RegisterMap) -> wishbone.Signature:
    """The front end's bus, from the initiator's side."""
    return wishbone.Signature(addr_width=rm.addr_width, data_width=DATA_WIDTH,
                              features={"err", "stall"})


class EIEBus(wiring.Component):
    """The EIE for ``config`` as a Wishbone B4 target (``bus``: classic, or pipelined with
    ``stall``; ``err`` for refused accesses) at the addresses of :func:`hw.soc.regmap.regmap`;
    ``ready``, ``busy``, ``done``: STATUS's bits as outputs.

    ``pe_module``, ``pe_inits``, ``layer_init``: as :class:`hw.top.EIE` (a shared PE Verilog
    module; a ROM build's preloaded memories and layer table, whose entries then count as
    loaded, also after a reset)."""

    def __init__(self, config: EIEConfig, *, pe_module: str | None = None,
                 pe_inits: list[PEInit] | None = None, layer_init: list[int] | None = None):
        self.config = config
        self.params = HWParams(config)
        self.regmap = regmap(config)
        self._core_args = dict(pe_module=pe_module, pe_inits=pe_inits, layer_init=layer_init)
        self._preloaded = len(layer_init or [])
        super().__init__({"bus": In(bus_signature(self.regmap)),
                          # STATUS.READY, BUSY, DONE as outputs (LEDs; DONE is a level
                          # interrupt: high from the end of a run to the next START or reset)
                          "ready": Out(1), "busy": Out(1), "done": Out(1)})

    def elaborate(self, platform) -> Module:
        m = Module()
        p, rm, c = self.params, self.regmap, self.config
        n = c.n_pe
        bus = self.bus

        # the core, in domain ``core``: sync's clock, reset by rst or the soft reset
        core = EIE(c, **self._core_args)
        soft_rst = Signal()
        m.domains.core = cd = ClockDomain("core", local=True)
        m.d.comb += [cd.clk.eq(ClockSignal()), cd.rst.eq(ResetSignal() | soft_rst)]
        m.submodules.core = DomainRenamer("core")(core)
        rst_count = Signal(range(SOFT_RESET_CYCLES + 1))
        m.d.comb += soft_rst.eq(rst_count != 0)
        with m.If(soft_rst):
            m.d.sync += rst_count.eq(rst_count - 1)
        ready = Signal()  # the core accepts writes and start
        busy, done = Signal(), Signal()  # the core's, 0 during a soft reset
        m.d.comb += [ready.eq(core.ready & ~soft_rst), busy.eq(core.busy & ~soft_rst),
                     done.eq(core.done & ~soft_rst)]

        # front-end state
        nlb = p.n_layers_bits
        scratch = Signal(DATA_WIDTH)
        first_layer = Signal(nlb)
        n_layers = Signal(nlb)
        valid = Signal(c.max_layers, init=(1 << self._preloaded) - 1)  # table entries loaded
        loaded = Signal()
        m.d.comb += loaded.eq(valid.any())
        err_flag = Signal()
        err_code = Signal(rm.reg("ERROR").field("CODE").width)
        err_addr = Signal(rm.addr_width)
        stage_words = -(-p.lane_bits // DATA_WIDTH)
        stage = Signal(stage_words * DATA_WIDTH)  # one lane: the entry being written
        wr_mem = Signal(WrMem)
        wr_addr = Signal(p.wr_addr_bits)
        wr_pe = Signal(max(1, n.bit_length()))
        # the PEs a write goes to, decoded before its register: from this register to every
        # PE's write register there is no decode (on the ULX3S top, wr_pe -> its decode -> a
        # PE's write enable and non-zero flag was the critical path, docs/fpga.md)
        wr_mask = Signal(n)
        rd_mem = Signal(RdMem)
        rd_addr = Signal(p.rd_addr_bits)
        dat_r = Signal(DATA_WIDTH)
        aborted = Signal()  # the initiator dropped cyc before the answer
        start = Signal()

        # the core's ports: a staged lane on every PE's lane; reads of one lane
        core_wr_valid = Signal()
        core_rd_valid = Signal()
        m.d.comb += [
            core.wr.valid.eq(core_wr_valid),
            core.wr.mem.eq(wr_mem),
            core.wr.addr.eq(wr_addr),
            core.wr.pe_mask.eq(wr_mask),
            core.wr.data.eq(stage[:p.lane_bits].replicate(n)),
            core.rd.valid.eq(core_rd_valid),
            core.rd.mem.eq(rd_mem),
            core.rd.addr.eq(rd_addr),
            core.start.eq(start),
            core.first_layer.eq(first_layer),
            core.n_layers.eq(n_layers),
        ]
        m.d.sync += start.eq(0)

        # start checks: every layer of the run in the table and written since reset
        end = Signal(nlb + 1)
        bad_layers = Signal()
        m.d.comb += [
            end.eq(first_layer + n_layers),
            bad_layers.eq((first_layer >= c.max_layers) | (end > c.max_layers)
                          | Cat((first_layer <= i) & (i < end) & ~valid[i]
                                for i in range(c.max_layers)).any()),
        ]

        # -- decode: what the request addresses, and whether it is refused -------------------
        # Cycle 0 (IDLE) registers the request and its first decode (which window, which
        # register block, each window's range checks: compares of the address alone); cycle 1
        # (DECODE) decodes the rest from those registers (on the ULX3S top the whole decode in
        # one cycle, from the bridge's address register to ``ack_now``, was the critical path:
        # 10 logic levels, 8.58 ns)
        reg_bits = (rm.reg_block - 1).bit_length()
        a = Signal.like(bus.adr, name="req_adr")
        d = Signal(DATA_WIDTH, name="req_dat")
        we = Signal(name="req_we")
        is_reg = Signal()
        win_sel = {w.name: Signal(name=f"sel_{w.name.lower()}") for w in rm.windows}
        win_ok = Signal()
        reg_idx = a[:reg_bits]
        reg_sel = {r.name: is_reg & (reg_idx == r.addr) for r in rm.registers}
        reg_ro = Cat(reg_sel[r.name] for r in rm.registers if r.access == "r").any()

        def field(shift: int, bits: int, adr=a):
            return adr[shift:shift + bits]

        capture = [a.eq(bus.adr), d.eq(bus.dat_w), we.eq(bus.we),
                   is_reg.eq(bus.adr[reg_bits:] == 0)]
        ok_terms = []
        for w in rm.windows:  # from the bus's address: registered in cycle 0
            sel = bus.adr[w.size_bits:] == w.base >> w.size_bits
            ok = Const(1)
            if w.words & (w.words - 1):
                ok &= field(0, w.word_bits, bus.adr) < w.words
            if w.depth & (w.depth - 1):
                ok &= field(w.index_shift, w.index_bits, bus.adr) < w.depth
            if w.per_pe:
                pe = field(w.pe_shift, w.pe_bits, bus.adr)
                ok &= (pe < w.n_pe) | ((pe == w.pe_broadcast) if w.broadcast else Const(0))
            ok_terms.append(sel & ok)
            capture.append(win_sel[w.name].eq(sel))
        capture.append(win_ok.eq(Cat(ok_terms).any()))

        def onehot(fields, width: int):
            """The field of the selected window (a one-hot OR of ANDs)."""
            v = Const(0, width)
            for w, value in fields:
                v = v | Mux(win_sel[w.name], value, 0)
            return v

        writes = [w for w in rm.windows if w.access == "w"]
        reads = [w for w in rm.windows if w.access == "r"]
        is_write_win = Cat(win_sel[w.name] for w in writes).any()
        word_bits = max(w.word_bits for w in rm.windows)
        word = Signal(max(1, word_bits))
        last = Signal()  # the last word of an entry
        index = Signal(max(1, max(w.index_bits for w in rm.windows)))
        pe_f = Signal(max(w.pe_bits for w in rm.windows if w.per_pe))
        bank = Signal()
        m.d.comb += [
            word.eq(onehot([(w, field(0, w.word_bits)) for w in rm.windows if w.words > 1],
                           len(word))),
            last.eq(Cat(win_sel[w.name] & (field(0, w.word_bits) == w.words - 1)
                        for w in rm.windows).any()),
            index.eq(onehot([(w, field(w.index_shift, w.index_bits)) for w in rm.windows],
                            len(index))),
            pe_f.eq(onehot([(w, field(w.pe_shift, w.pe_bits)) for w in rm.windows
                            if w.per_pe], len(pe_f))),
            bank.eq(onehot([(w, field(w.bank_shift, w.bank_bits)) for w in rm.windows
                            if w.banks > 1], 1)),
        ]
        mem_w = onehot([(w, WrMem[w.mem].value) for w in writes], len(wr_mem.as_value()))
        mem_r = onehot([(w, RdMem[w.mem].value) for w in reads], len(rd_mem.as_value()))
        broadcast = pe_f == (1 << len(pe_f)) - 1
        layer_win = rm.write_window(WrMem.LAYER)
        act_win = rm.read_window(RdMem.ACT)
        ctrl_bit = {f.name: f.offset for f in rm.reg("CTRL").fields}
        ctrl = {name: d[bit] for name, bit in ctrl_bit.items()}

        code = Signal(len(err_code))
        with m.If(is_reg):
            with m.If(reg_idx >= len(rm.registers)):
                m.d.comb += code.eq(ErrorCode.UNMAPPED)
            with m.Elif(we):
                with m.If(reg_ro):
                    m.d.comb += code.eq(ErrorCode.READ_ONLY)
                with m.Elif((reg_sel["FIRST_LAYER"] | reg_sel["N_LAYERS"]) & d[nlb:].any()):
                    m.d.comb += code.eq(ErrorCode.RANGE)
                with m.Elif(reg_sel["ACT_CLEAR"] & ~ready):
                    m.d.comb += code.eq(ErrorCode.BUSY)
                with m.Elif(reg_sel["CTRL"] & ctrl["START"] & ~ctrl["RESET"]):
                    with m.If(~ready):
                        m.d.comb += code.eq(ErrorCode.BUSY)
                    with m.Elif(~loaded):
                        m.d.comb += code.eq(ErrorCode.NOT_LOADED)
                    with m.Elif(bad_layers):
                        m.d.comb += code.eq(ErrorCode.BAD_LAYERS)
        with m.Elif(~win_ok):
            m.d.comb += code.eq(ErrorCode.UNMAPPED)
        with m.Elif(we & ~is_write_win):
            m.d.comb += code.eq(ErrorCode.READ_ONLY)
        with m.Elif(we & ~ready):
            m.d.comb += code.eq(ErrorCode.BUSY)
        with m.Elif(~we & is_write_win):
            m.d.comb += code.eq(ErrorCode.WRITE_ONLY)

        reg_val = Signal(DATA_WIDTH)
        dynamic = {
            "SCRATCH": scratch, "FIRST_LAYER": first_layer, "N_LAYERS": n_layers,
            "STATUS": Cat(ready, busy, done, loaded, err_flag),
            "LAYER": core.layer, "CYCLES": core.cycles, "STALL_CYCLES": core.stall_cycles,
            "ERROR": err_code, "ERROR_ADDR": err_addr,
        }
        with m.Switch(reg_idx):
            for r in rm.registers:
                with m.Case(r.addr):
                    if r.value is not None:
                        m.d.comb += reg_val.eq(r.value)
                    elif r.access != "w":  # action registers read 0
                        m.d.comb += reg_val.eq(dynamic[r.name])

        # -- the access, one at a time -----------------------------------------------------------
        # Cycle 1 (DECODE) registers the decode: the error code, what to do (one flag per
        # action), the word and the core's write / read fields. Cycle 2 (ACT) acts on those
        # registers: the enables of the front end's registers come from flip-flops, not from
        # the address decode (which ends at a handful of flip-flops).
        code_q = Signal.like(code)
        adr_q = Signal.like(a)
        d_q = Signal(DATA_WIDTH)
        word_q = Signal.like(word)
        act = {k: Signal(name=f"do_{k}") for k in (
            "scratch", "first_layer", "n_layers", "ctrl", "act_clear", "stage", "commit",
            "layer", "read")}
        # how cycle 2 answers, decided in cycle 1 too: its ``ack`` / ``err`` are then one
        # flip-flop ANDed with the request (a routed ULX3S top's critical path ran from the
        # state and the error code through the answer into the UART bridge: 7.1 ns routing)
        err_now, ack_now = Signal(), Signal()
        with m.FSM():
            with m.State("IDLE"):  # the request's first decode (above)
                m.d.sync += aborted.eq(0)
                with m.If(bus.cyc & bus.stb):
                    m.d.sync += capture
                    m.next = "DECODE"
            with m.State("DECODE"):
                m.next = "ACT"
                win_we = ~is_reg & we
                # the actions that take cycle 3 and later (answered there, not in ACT)
                commit, read = win_we & last, ~is_reg & ~we
                act_clear = we & reg_sel["ACT_CLEAR"]
                ok = code == ErrorCode.NONE
                m.d.sync += [
                    err_now.eq(~ok),
                    ack_now.eq(ok & ~(commit | act_clear | read)),
                    code_q.eq(code), adr_q.eq(a), d_q.eq(d), word_q.eq(word),
                    dat_r.eq(reg_val),
                    act["scratch"].eq(we & reg_sel["SCRATCH"]),
                    act["first_layer"].eq(we & reg_sel["FIRST_LAYER"]),
                    act["n_layers"].eq(we & reg_sel["N_LAYERS"]),
                    act["ctrl"].eq(we & reg_sel["CTRL"]),
                    act["act_clear"].eq(act_clear),
                    act["stage"].eq(win_we),
                    act["commit"].eq(commit),
                    act["layer"].eq(commit & win_sel[layer_win.name]),
                    act["read"].eq(read),
                    # START at once: the core takes it in cycle 2 and clears DONE, so the
                    # next access (a STATUS poll) sees the new run
                    start.eq(we & reg_sel["CTRL"] & ctrl["START"] & ~ctrl["RESET"]
                             & (code == ErrorCode.NONE)),
                    # the core's request, used only if the access is not refused
                    wr_mem.eq(Mux(is_reg, WrMem.ACT_CLEAR, mem_w)),
                    wr_addr.eq(index), wr_pe.eq(pe_f),
                    wr_mask.eq(Mux(is_reg | broadcast | win_sel[layer_win.name],
                                   (1 << n) - 1, Const(1, n) << pe_f)),
                    rd_mem.eq(mem_r),
                    rd_addr.eq(Mux(win_sel[act_win.name], Cat(index[:p.local_bits], bank),
                                   index)),
                ]
            with m.State("ACT"):
                answer = bus.cyc & bus.stb & ~aborted
                m.d.comb += [bus.err.eq(err_now & answer), bus.ack.eq(ack_now & answer)]
                with m.If(err_now):
                    m.d.sync += [err_flag.eq(1), err_code.eq(code_q), err_addr.eq(adr_q)]
                    m.next = "IDLE"
                with m.Else():
                    with m.If(act["scratch"]):
                        m.d.sync += scratch.eq(d_q)
                    with m.If(act["first_layer"]):
                        m.d.sync += first_layer.eq(d_q)
                    with m.If(act["n_layers"]):
                        m.d.sync += n_layers.eq(d_q)
                    with m.If(act["ctrl"]):
                        with m.If(d_q[ctrl_bit["CLEAR_ERROR"]]):
                            m.d.sync += [err_flag.eq(0), err_code.eq(0), err_addr.eq(0)]
                        with m.If(d_q[ctrl_bit["RESET"]]):
                            m.d.sync += [rst_count.eq(SOFT_RESET_CYCLES), valid.eq(valid.init)]
                    with m.If(act["stage"]):
                        m.d.sync += stage.word_select(word_q, DATA_WIDTH).eq(d_q)
                    with m.If(act["layer"]):
                        m.d.sync += valid.bit_select(wr_addr[:max(1, layer_win.index_bits)],
                                                     1).eq(1)
                    with m.If(act["commit"] | act["act_clear"]):
                        m.next = "WRITE"
                    with m.Elif(act["read"]):
                        m.next = "RDREQ"
                    with m.Else():  # answered (ack_now)
                        m.next = "IDLE"
            with m.State("RESP"):
                m.d.comb += bus.ack.eq(bus.cyc & bus.stb & ~aborted)
                m.next = "IDLE"
            with m.State("WRITE"):
                # taken in this cycle without looking at ``wr.ready``: the core was ready in
                # cycle 0 (``code``), and only START and reset lower it (docs/hardware.md,
                # "Host protocol"), neither of which can come between. (With ``wr.ready`` in
                # ``ack`` the routed ULX3S top's critical path ran from the core's reset mask
                # through ``ack`` into the UART bridge's buffer: 8.62 ns.)
                m.d.comb += [core_wr_valid.eq(1), bus.ack.eq(bus.cyc & bus.stb & ~aborted)]
                m.next = "IDLE"
            with m.State("RDREQ"):
                m.d.comb += core_rd_valid.eq(1)
                m.next = "RDWAIT"
            with m.State("RDWAIT"):
                with m.If(core.rd_resp.valid):
                    lane = core.rd_resp.data.word_select(wr_pe[:max(1, (n - 1).bit_length())],
                                                         p.rd_lane_bits)
                    m.d.sync += dat_r.eq(lane[:DATA_WIDTH])
                    m.next = "RESP"
        with m.If(~bus.cyc):  # (IDLE clears it when a request comes)
            m.d.sync += aborted.eq(1)
        m.d.comb += [bus.dat_r.eq(dat_r), bus.stall.eq(~(bus.ack | bus.err)),
                     self.ready.eq(ready), self.busy.eq(busy), self.done.eq(done)]
        return m


def generate(config: EIEConfig, name: str = "eie_bus", platform=None):
    """Verilog of :class:`EIEBus` for ``config`` as module ``name``, the PE emitted once as
    ``<name>_pe`` (as :func:`hw.verilog.generate` does for the bare core; ``platform`` as
    there)."""
    from ..verilog import Generated, _no_inline, convert, header

    pe_name = f"{name}_pe"
    pe_text = _no_inline(convert(PE(HWParams(config)), pe_name, platform=platform), pe_name)
    top_text = convert(EIEBus(config, pe_module=pe_name), name, platform=platform)
    rm = regmap(config)
    head = (header(config, name) + f"// Wishbone B4 target (bus__*: 32-bit data, {rm.addr_width}-bit "
            f"word address, err, stall); register map hash {rm.config_hash:#010x}: eie regmap\n")
    return Generated(head + pe_text + top_text, name, pe_name)
