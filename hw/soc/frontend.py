"""The EIE behind a Wishbone B4 target: :class:`EIEBus`, the registers and memory windows of
:mod:`hw.soc.regmap` on a 32-bit bus, the core's wide host port (docs/hardware.md) inside.

One access at a time, in order:

- cycle 0: the request (``cyc & stb``) is decoded; registers are read or written, a refused
  access is recorded (``ERROR``, ``ERROR_ADDR``, ``STATUS.ERROR``);
- a register access or a refused one is answered (``ack`` or ``err``) in cycle 1;
- a memory write (the last word of an entry) drives the core's write port in cycle 1 and is
  answered in the cycle the core takes it (cycle 1: the core is ready, or the write was
  refused);
- a memory read issues a core read in cycle 1 and is answered in the cycle after the response
  (wait states; 4 cycles with the core's 2-cycle read latency).

Pipelined initiators: ``stall`` is low only in the answering cycle (``stall = ~(ack | err)``,
the B4 rule for a target that takes one request at a time), so a request is accepted and
answered in the same cycle and the next may follow in the next cycle. If the initiator drops
``cyc`` before the answer, the access completes inside and no answer is given.

Cheap in logic: a write stages one lane (the entry's lower words, then the last word) and the
core's write port gets that lane replicated onto every PE's lane, with a one-hot ``pe_mask``
(all ones for the broadcast PE); a read takes its PE's lane of the core's response.

Soft reset (``CTRL.RESET``): the core (only) is held in reset for :data:`SOFT_RESET_CYCLES`
cycles, during which ``STATUS.READY`` reads 0; the core then clears its accumulators (READY
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
from amaranth.lib.wiring import In

from sw.eie.config import EIEConfig

from ..params import HWParams, RdMem, WrMem
from ..pe import PE, PEInit
from ..top import EIE
from . import wishbone
from .regmap import DATA_WIDTH, SOFT_RESET_CYCLES, ErrorCode, Register, RegisterMap, Window, regmap

__all__ = ["EIEBus", "bus_signature", "generate"]


def bus_signature(rm: RegisterMap) -> wishbone.Signature:
    """The front end's bus, from the initiator's side."""
    return wishbone.Signature(addr_width=rm.addr_width, data_width=DATA_WIDTH,
                              features={"err", "stall"})


class EIEBus(wiring.Component):
    """The EIE for ``config`` as a Wishbone B4 target (``bus``: classic, or pipelined with
    ``stall``; ``err`` for refused accesses) at the addresses of :func:`hw.soc.regmap.regmap`.

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
        super().__init__({"bus": In(bus_signature(self.regmap))})

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
        m.d.comb += ready.eq(core.ready & ~soft_rst)

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
        wr_all = Signal()
        rd_mem = Signal(RdMem)
        rd_addr = Signal(p.rd_addr_bits)
        dat_r = Signal(DATA_WIDTH)
        answer_err = Signal()  # the answer is err (else ack)
        aborted = Signal()  # the initiator dropped cyc before the answer
        start = Signal()

        # the core's ports: a staged lane on every PE's lane; reads of one lane
        core_wr_valid = Signal()
        core_rd_valid = Signal()
        m.d.comb += [
            core.wr.valid.eq(core_wr_valid),
            core.wr.mem.eq(wr_mem),
            core.wr.addr.eq(wr_addr),
            core.wr.pe_mask.eq(Mux(wr_all, (1 << n) - 1, Const(1, n) << wr_pe)),
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
        missing = Signal()
        m.d.comb += [
            end.eq(first_layer + n_layers),
            missing.eq(Cat((first_layer <= i) & (i < end) & ~valid[i]
                           for i in range(c.max_layers)).any()),
        ]

        def refuse(code: ErrorCode) -> None:
            m.d.sync += [answer_err.eq(1), err_flag.eq(1), err_code.eq(code),
                         err_addr.eq(bus.adr)]

        def read_value(r: Register):
            if r.value is not None:
                return Const(r.value, DATA_WIDTH)
            return {
                "SCRATCH": scratch, "FIRST_LAYER": first_layer, "N_LAYERS": n_layers,
                "CTRL": Const(0), "ACT_CLEAR": Const(0),
                "STATUS": Cat(ready, core.busy, core.done, loaded, err_flag),
                "LAYER": core.layer, "CYCLES": core.cycles, "STALL_CYCLES": core.stall_cycles,
                "ERROR": err_code, "ERROR_ADDR": err_addr,
            }[r.name]

        def write_register(r: Register) -> None:
            d = bus.dat_w
            if r.access == "r":
                refuse(ErrorCode.READ_ONLY)
            elif r.name == "SCRATCH":
                m.d.sync += scratch.eq(d)
            elif r.name in ("FIRST_LAYER", "N_LAYERS"):
                reg = first_layer if r.name == "FIRST_LAYER" else n_layers
                with m.If(d[nlb:].any()):
                    refuse(ErrorCode.RANGE)
                with m.Else():
                    m.d.sync += reg.eq(d)
            elif r.name == "ACT_CLEAR":
                with m.If(~ready):
                    refuse(ErrorCode.BUSY)
                with m.Else():
                    m.d.sync += [wr_mem.eq(WrMem.ACT_CLEAR), wr_addr.eq(0), wr_all.eq(1)]
                    m.next = "WRITE"
            elif r.name == "CTRL":
                bits = {f.name: d[f.offset] for f in r.fields}
                with m.If(bits["CLEAR_ERROR"]):
                    m.d.sync += [err_flag.eq(0), err_code.eq(0), err_addr.eq(0)]
                with m.If(bits["RESET"]):
                    m.d.sync += [rst_count.eq(SOFT_RESET_CYCLES), valid.eq(valid.init)]
                with m.Elif(bits["START"]):
                    with m.If(~ready):
                        refuse(ErrorCode.BUSY)
                    with m.Elif(~loaded):
                        refuse(ErrorCode.NOT_LOADED)
                    with m.Elif((first_layer >= c.max_layers) | (end > c.max_layers) | missing):
                        refuse(ErrorCode.BAD_LAYERS)
                    with m.Else():
                        m.d.sync += start.eq(1)
            else:
                raise AssertionError(f"register {r.name}: no write behaviour")

        def window_fields(w: Window):
            a = bus.adr
            word = a[:w.word_bits]
            index = a[w.index_shift:w.index_shift + w.index_bits]
            bank = a[w.bank_shift:w.bank_shift + w.bank_bits]
            pe = a[w.pe_shift:w.pe_shift + w.pe_bits]
            ok = Const(1)
            if w.words & (w.words - 1):
                ok &= word < w.words
            if w.depth & (w.depth - 1):
                ok &= index < w.depth
            if w.per_pe:
                pe_ok = pe < w.n_pe
                if w.broadcast:
                    pe_ok |= pe == w.pe_broadcast
                ok &= pe_ok
            return word, index, bank, pe, ok

        def write_window(w: Window, word, index, pe) -> None:
            with m.If(~ready):
                refuse(ErrorCode.BUSY)
            with m.Else():
                if w.words > 1:
                    m.d.sync += stage.word_select(word, DATA_WIDTH).eq(bus.dat_w)
                else:
                    m.d.sync += stage[:DATA_WIDTH].eq(bus.dat_w)
                with m.If(word == w.words - 1):  # the last word: the entry goes to the core
                    m.d.sync += [wr_mem.eq(WrMem[w.mem]), wr_addr.eq(index)]
                    if w.per_pe:
                        m.d.sync += [wr_pe.eq(pe), wr_all.eq(pe == w.pe_broadcast)]
                    else:
                        m.d.sync += wr_all.eq(1)
                    if w.mem == WrMem.LAYER.name:
                        m.d.sync += valid.bit_select(index, 1).eq(1)
                    m.next = "WRITE"

        def read_window(w: Window, index, bank, pe) -> None:
            addr = index
            if w.banks > 1:
                addr = Cat(index, Const(0, p.local_bits - w.index_bits), bank)
            m.d.sync += [rd_mem.eq(RdMem[w.mem]), rd_addr.eq(addr), wr_pe.eq(pe)]
            m.next = "RDREQ"

        def access_window(w: Window) -> None:
            word, index, bank, pe, ok = window_fields(w)
            with m.If(~ok):
                refuse(ErrorCode.UNMAPPED)
            with m.Elif(bus.we):
                if w.access == "w":
                    write_window(w, word, index, pe)
                else:
                    refuse(ErrorCode.READ_ONLY)
            with m.Else():
                if w.access == "r":
                    read_window(w, index, bank, pe)
                else:
                    refuse(ErrorCode.WRITE_ONLY)

        reg_bits = (rm.reg_block - 1).bit_length()
        with m.FSM():
            with m.State("IDLE"):
                m.d.sync += [answer_err.eq(0), aborted.eq(0)]
                with m.If(bus.cyc & bus.stb):
                    m.next = "RESP"
                    with m.If(bus.adr[reg_bits:] == 0):
                        with m.Switch(bus.adr[:reg_bits]):
                            for r in rm.registers:
                                with m.Case(r.addr):
                                    with m.If(bus.we):
                                        write_register(r)
                                    with m.Else():
                                        m.d.sync += dat_r.eq(read_value(r))
                            with m.Default():
                                refuse(ErrorCode.UNMAPPED)
                    for w in rm.windows:
                        with m.Elif(bus.adr[w.size_bits:] == w.base >> w.size_bits):
                            access_window(w)
                    with m.Else():
                        refuse(ErrorCode.UNMAPPED)
            with m.State("RESP"):
                m.d.comb += [bus.ack.eq(bus.cyc & bus.stb & ~aborted & ~answer_err),
                             bus.err.eq(bus.cyc & bus.stb & ~aborted & answer_err)]
                m.next = "IDLE"
            with m.State("WRITE"):
                m.d.comb += core_wr_valid.eq(1)
                with m.If(core.wr.ready):
                    m.d.comb += bus.ack.eq(bus.cyc & bus.stb & ~aborted)
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
        m.d.comb += [bus.dat_r.eq(dat_r), bus.stall.eq(~(bus.ack | bus.err))]
        return m


def generate(config: EIEConfig, name: str = "eie_bus"):
    """Verilog of :class:`EIEBus` for ``config`` as module ``name``, the PE emitted once as
    ``<name>_pe`` (as :func:`hw.verilog.generate` does for the bare core)."""
    from ..verilog import Generated, _no_inline, convert, header

    pe_name = f"{name}_pe"
    pe_text = _no_inline(convert(PE(HWParams(config)), pe_name), pe_name)
    top_text = convert(EIEBus(config, pe_module=pe_name), name)
    rm = regmap(config)
    head = (header(config, name) + f"// Wishbone B4 target (bus__*: 32-bit data, {rm.addr_width}-bit "
            f"word address, err, stall); register map hash {rm.config_hash:#010x}: eie regmap\n")
    return Generated(head + pe_text + top_text, name, pe_name)
