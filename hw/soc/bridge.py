"""The UART bridge: frames from a host (:mod:`hw.board.protocol`) in, Wishbone cycles out.

:class:`UARTBridge` receives a request frame into a buffer (one block RAM of ``max_words`` x 32
bits) while computing its CRC byte by byte (:func:`crc16_next`), and only when the whole frame
is in and its CRC is right performs the bus cycles: single cycles at incrementing word
addresses, one at a time, each abandoned after ``bus_timeout`` cycles without ``ack`` or
``err`` (the bus never hangs). It then sends the response frame: the words read (from the
buffer), or the status and the failing address. A malformed frame is answered once the line has
been quiet for ``gap_bytes`` byte times (docs/soc.md, "UART bridge and protocol").

A strided frame (``SREAD``/``SWRITE``) runs its bus cycles at ``addr + (k % group) * stride
+ k // group`` (``stride`` added within a group, the group's first address plus one at its end).

Bus cycles (``cyc``, ``stb``, ``adr``, ``we``, ``dat_w`` straight from flip-flops: the initiator
adds no logic in front of a target's decode): ``classic=True`` (default) holds ``stb`` until
``ack``/``err`` (Wishbone B4 classic; a target's ``stall`` only delays its answer);
``classic=False`` is a pipelined single transfer: ``stb`` until the request is taken
(``stb & ~stall``), then ``cyc`` alone until the answer.
"""

from __future__ import annotations

import math

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hw.board import protocol as p
from hw.params import HOST_LOADED_MEMORY
from sw.errors import ConfigError

from . import wishbone
from .uart import UARTRx, UARTTx, divisor

__all__ = ["UARTBridge", "crc16_next"]

DEFAULT_GAP_S = 2e-3  # the default quiet time that ends a cut-short frame


def _crc16_matrix() -> list[int]:
    """CRC-16 of one byte is linear over GF(2) in (crc, byte): output bit j is the parity of
    the bits of ``Cat(crc, byte)`` (24 bits) selected by mask j, found by running the bit-serial
    definition (most significant bit first) on symbolic bits."""
    crc = [1 << i for i in range(16)]  # bit i of the crc register: input bit i
    byte = [1 << (16 + i) for i in range(8)]
    for i in range(7, -1, -1):
        fb = crc[15] ^ byte[i]
        crc = [fb] + crc[:15]  # shift left, feedback into bit 0 ...
        crc = [c ^ (fb if (p.CRC_POLY >> j) & 1 and j else 0) for j, c in enumerate(crc)]
    return crc


_CRC_MATRIX = _crc16_matrix()


def crc16_next(crc, byte):
    """CRC-16/CCITT-FALSE (:func:`hw.board.protocol.crc16`) of one more byte, as logic: each of
    the 16 bits is the parity of some of the 24 input bits."""
    x = Cat(crc, byte)
    return Cat(*[(x & mask).xor() for mask in _CRC_MATRIX])


class UARTBridge(wiring.Component):
    """A Wishbone initiator driven over a UART link by :mod:`hw.board.protocol` frames.

    ``clk_freq``: the ``sync`` clock in Hz; ``baud``: the line rate (:func:`hw.soc.uart.divisor`
    refuses one more than 2 % off); ``addr_width``: word-address bits of ``bus`` (a frame's
    address at or beyond ``1 << addr_width`` gets ``BUS_ERROR`` without a cycle);
    ``max_words``: the largest frame (and the buffer's depth); ``gap_bytes``: the quiet time, in
    byte times, that ends a cut-short frame and precedes the answer to a malformed one (default:
    2 ms, at least 4); ``bus_timeout``: cycles a bus cycle may take.
    """

    def __init__(self, clk_freq: float, baud: float, *, addr_width: int = 30,
                 max_words: int = p.MAX_WORDS, gap_bytes: int | None = None,
                 bus_timeout: int = 1 << 16, classic: bool = True):
        if not 1 <= addr_width <= 31:
            raise ConfigError(f"bridge address width must be in 1..31, not {addr_width}")
        if not 1 <= max_words <= p.MAX_WORDS:
            raise ConfigError(f"bridge max_words must be in 1..{p.MAX_WORDS}, not {max_words}")
        if bus_timeout < 2:
            raise ConfigError(f"bus_timeout must be at least 2 cycles, not {bus_timeout}")
        self.clk_freq = clk_freq
        self.baud = baud
        self.divisor = divisor(clk_freq, baud)
        if gap_bytes is None:
            gap_bytes = max(4, math.ceil(DEFAULT_GAP_S * baud / p.BITS_PER_BYTE))
        if gap_bytes < 2:
            raise ConfigError(f"gap_bytes must be at least 2, not {gap_bytes}")
        self.gap_bytes = gap_bytes
        self.gap_cycles = gap_bytes * p.BITS_PER_BYTE * self.divisor
        self.addr_width = addr_width
        self.max_words = max_words
        self.bus_timeout = bus_timeout
        self.classic = classic
        super().__init__({
            "rx": In(1, init=1),
            "tx": Out(1, init=1),
            "bus": Out(wishbone.Signature(addr_width=addr_width, data_width=32,
                                          features={"err", "stall"})),
        })

    @property
    def gap_s(self) -> float:
        """The quiet time in seconds."""
        return self.gap_cycles / self.clk_freq

    @property
    def timeout_s(self) -> float:
        """The longest a bridge takes to answer a frame of ``max_words`` words once the line is
        quiet (bus cycles at their limit, the gap, the response): a host waits at least this."""
        byte = p.BITS_PER_BYTE * self.divisor / self.clk_freq
        rsp = (p.RSP_OVERHEAD + 4 * self.max_words) * byte
        return self.bus_timeout / self.clk_freq + self.gap_s + rsp

    def elaborate(self, platform):
        m = Module()
        m.submodules.rx = rx = UARTRx(self.divisor)
        m.submodules.tx = tx = UARTTx(self.divisor)
        m.d.comb += [rx.rx.eq(self.rx), self.tx.eq(tx.tx)]
        # a read is used only if issued in a state that writes nothing (BUS_ADDR, T_LOAD): no
        # read that is used meets a write of the same word, and Yosys maps the buffer without a
        # collision bypass between the block RAM and its register (on the ULX3S top that bypass
        # was the critical path)
        m.submodules.buf = buf = Memory(shape=32, depth=self.max_words, init=[],
                                        attrs=HOST_LOADED_MEMORY)
        wp = buf.write_port()
        rp = buf.read_port(domain="sync")
        # The buffer's read data, registered: a block RAM's output (DP16KD: 5.8 ns from the
        # clock) is never used before a flip-flop (a cycle more per bus cycle and per response
        # word; the line is thousands of cycles per word). No reset: on an ECP5 it is the
        # DP16KD's own output register (hw.fpga.ecp5.absorb_bram_output_registers).
        rdata = Signal(32, reset_less=True)
        m.d.sync += rdata.eq(rp.data)
        # ... and the bus's write data one more register, in the fabric (from the DP16KD's
        # output register through the route to a target's decode was the ULX3S top's
        # critical path)
        dat_w = Signal(32, reset_less=True)
        m.d.sync += dat_w.eq(rdata)
        bus = self.bus
        aw = self.addr_width

        cmd = Signal(8)
        is_write = Signal()  # WRITE or SWRITE
        strided = Signal()  # SREAD or SWRITE
        stride = Signal(16)
        group = Signal(8)  # 0: no groups (READ, WRITE)
        inner = Signal(8)  # the word in its group
        row = Signal(32)  # the address of the group's first word
        length = Signal(8)  # the request's word count
        addr = Signal(32)  # the next bus address
        idx = Signal(8)  # the word in the buffer
        nb = Signal(2)  # the byte in the word
        word = Signal(32)
        crc = Signal(16)
        status = Signal(8)
        rlen = Signal(8)  # the response's word count
        rword = Signal(32)  # the response's word when not from the buffer (PING, failing address)
        from_buf = Signal()
        got_ack, got_err = Signal(), Signal()  # the bus cycle's answer (BUS_END)
        cyc = Signal()  # the bus outputs come from flip-flops (adr, we, dat_w too)
        stb = Signal()
        gap = Signal(range(self.gap_cycles + 1))
        btimer = Signal(range(self.bus_timeout))
        quiet = gap == self.gap_cycles

        with m.If(rx.valid | rx.ferr):
            m.d.sync += gap.eq(0)
        with m.Elif(~quiet):
            m.d.sync += gap.eq(gap + 1)
        # A word the bus returns is written into the buffer a cycle later (BUS_END), from
        # registers (``bw_*``): no path runs from the bus's ``ack`` to the block RAM's data or
        # enable (on the ULX3S top, stb -> the target's ack -> the buffer's write data was the
        # critical path: 8.63 ns, 6.53 of it routing). The read port reads that word in the
        # same cycle, but only reads issued in BUS_ADDR and T_LOAD are used.
        bw_en = Signal()
        bw_idx = Signal(8, reset_less=True)
        bw_data = Signal(32, reset_less=True)
        m.d.sync += bw_en.eq(0)
        # A request's word is written as its last byte arrives (DATA): only the enable depends
        # on the state, the data is the word's register and the byte, whatever the state
        rx_en = Signal()
        rx_word = Cat(word[8:], rx.data)
        m.d.comb += [rp.addr.eq(idx), wp.addr.eq(Mux(bw_en, bw_idx, idx)),
                     wp.data.eq(Mux(bw_en, bw_data, rx_word)), wp.en.eq(bw_en | rx_en)]

        def answer(code, w=None):
            """Send a response with ``code`` and, if given, the one word ``w``."""
            m.d.sync += [status.eq(code), rlen.eq(0 if w is None else 1), from_buf.eq(0)]
            if w is not None:
                m.d.sync += rword.eq(w)
            m.next = "T_SYNC"

        def bad(code):
            """A malformed frame: discard until the line is quiet, then answer ``code``."""
            m.d.sync += status.eq(code)
            m.next = "DISCARD"

        def take_byte():
            m.d.sync += crc.eq(crc16_next(crc, rx.data))

        def in_frame(on_byte):
            """A state inside a request frame: a byte, a framing error, or the line quiet."""
            with m.If(rx.ferr):
                bad(p.Status.BAD_FRAME)
            with m.Elif(rx.valid):
                take_byte()
                on_byte()
            with m.Elif(quiet):
                answer(p.Status.CUT_SHORT)

        def send(value, on_sent):
            m.d.comb += [tx.data.eq(value), tx.valid.eq(1)]
            with m.If(tx.ready):
                on_sent()

        with m.FSM():
            # -- the request ------------------------------------------------------------------
            with m.State("IDLE"):
                with m.If(rx.ferr | (rx.valid & (rx.data != p.REQ_SYNC))):
                    bad(p.Status.BAD_FRAME)
                with m.Elif(rx.valid):
                    m.d.sync += crc.eq(p.CRC_INIT)
                    m.next = "CMD"

            with m.State("CMD"):
                def on_cmd():
                    m.d.sync += [cmd.eq(rx.data),
                                 is_write.eq((rx.data == p.Cmd.WRITE) | (rx.data == p.Cmd.SWRITE)),
                                 strided.eq((rx.data == p.Cmd.SREAD) | (rx.data == p.Cmd.SWRITE)),
                                 stride.eq(1), group.eq(0)]
                    with m.If(Cat(rx.data == c for c in p.Cmd).any()):
                        m.next = "LEN"
                    with m.Else():
                        bad(p.Status.BAD_FRAME)
                in_frame(on_cmd)

            with m.State("LEN"):
                def on_len():
                    m.d.sync += [length.eq(rx.data), nb.eq(0)]
                    ping = cmd == p.Cmd.PING
                    with m.If(ping & (rx.data != 0)
                              | ~ping & ((rx.data == 0) | (rx.data > self.max_words))):
                        bad(p.Status.BAD_FRAME)
                    with m.Else():
                        m.next = "ADDR"
                in_frame(on_len)

            with m.State("ADDR"):
                def on_addr():
                    m.d.sync += [addr.eq(Cat(addr[8:], rx.data)), nb.eq(nb + 1), idx.eq(0)]
                    with m.If((nb == 3) & strided):
                        m.next = "STRIDE"
                    with m.Elif((nb == 3) & is_write):
                        m.next = "DATA"
                    with m.Elif(nb == 3):
                        m.next = "CRC_H"
                in_frame(on_addr)

            with m.State("STRIDE"):  # stride[2], group (nb counts on from 0)
                def on_stride():
                    m.d.sync += nb.eq(nb + 1)
                    with m.If(nb == 0):
                        m.d.sync += stride[:8].eq(rx.data)
                    with m.Elif(nb == 1):
                        m.d.sync += stride[8:].eq(rx.data)
                    with m.Else():
                        m.d.sync += [group.eq(rx.data), nb.eq(0)]
                        with m.If(rx.data == 0):
                            bad(p.Status.BAD_FRAME)
                        with m.Elif(is_write):
                            m.next = "DATA"
                        with m.Else():
                            m.next = "CRC_H"
                in_frame(on_stride)

            with m.State("DATA"):
                def on_data():
                    m.d.sync += [word.eq(rx_word), nb.eq(nb + 1)]
                    with m.If(nb == 3):
                        m.d.comb += rx_en.eq(1)
                        m.d.sync += idx.eq(idx + 1)
                        with m.If(idx == length - 1):
                            m.next = "CRC_H"
                in_frame(on_data)

            with m.State("CRC_H"):
                def on_crc_h():
                    m.next = "CRC_L"
                in_frame(on_crc_h)

            with m.State("CRC_L"):
                def on_crc_l():
                    m.next = "CHECK"
                in_frame(on_crc_l)

            with m.State("CHECK"):
                m.d.sync += [idx.eq(0), inner.eq(0), row.eq(addr)]
                with m.If(crc != 0):
                    bad(p.Status.BAD_CRC)
                with m.Elif(cmd == p.Cmd.PING):
                    answer(p.Status.OK, p.ping_word(self.max_words))
                with m.Else():
                    m.next = "BUS_ADDR"

            with m.State("DISCARD"):
                with m.If(quiet):
                    m.d.sync += [rlen.eq(0), from_buf.eq(0)]
                    m.next = "T_SYNC"

            # -- the bus cycles ---------------------------------------------------------------
            with m.State("BUS_ADDR"):  # the buffer's read port presents word idx next cycle
                m.d.sync += btimer.eq(0)
                with m.If(addr[aw:] != 0):
                    answer(p.Status.BUS_ERROR, addr)
                with m.Else():
                    m.next = "BUS_DATA"

            with m.State("BUS_DATA"):  # ... rdata holds it in the cycle after ...
                m.next = "BUS_WORD"

            with m.State("BUS_WORD"):  # ... and dat_w in the cycle after that
                m.d.sync += [cyc.eq(1), stb.eq(1)]
                m.next = "BUS"

            with m.State("BUS"):  # cyc (and stb) high
                if not self.classic:
                    with m.If(~bus.stall):  # the request is taken
                        m.d.sync += stb.eq(0)
                m.d.sync += btimer.eq(btimer + 1)
                # the answer ends the cycle at once, and is acted on in the next cycle, from
                # registers (the routed ULX3S top's critical path ran from stb through the
                # target's ack into this state's decisions: 8.18 ns, 9 logic levels)
                with m.If(bus.ack | bus.err | (btimer == self.bus_timeout - 1)):
                    m.d.sync += [cyc.eq(0), stb.eq(0), got_ack.eq(bus.ack), got_err.eq(bus.err)]
                    m.next = "BUS_END"
                with m.If(bus.ack & ~is_write):
                    m.d.sync += [bw_en.eq(1), bw_idx.eq(idx), bw_data.eq(bus.dat_r)]

            with m.State("BUS_END"):
                with m.If(got_ack):
                    m.d.sync += idx.eq(idx + 1)
                    with m.If((group != 0) & (inner == group - 1)):  # the next group
                        m.d.sync += [inner.eq(0), row.eq(row + 1), addr.eq(row + 1)]
                    with m.Else():
                        m.d.sync += [inner.eq(inner + 1), addr.eq(addr + stride)]
                    with m.If(idx == length - 1):
                        m.d.sync += [status.eq(p.Status.OK), from_buf.eq(1),
                                     rlen.eq(Mux(is_write, 0, length))]
                        m.next = "T_SYNC"
                    with m.Else():
                        m.next = "BUS_ADDR"
                with m.Elif(got_err):
                    answer(p.Status.BUS_ERROR, addr)
                with m.Else():
                    answer(p.Status.TIMEOUT, addr)

            # -- the response -----------------------------------------------------------------
            with m.State("T_SYNC"):
                def sent_sync():
                    m.d.sync += crc.eq(p.CRC_INIT)
                    m.next = "T_STATUS"
                send(p.RSP_SYNC, sent_sync)

            with m.State("T_STATUS"):
                def sent_status():
                    m.d.sync += crc.eq(crc16_next(crc, status))
                    m.next = "T_LEN"
                send(status, sent_status)

            with m.State("T_LEN"):
                def sent_len():
                    m.d.sync += [crc.eq(crc16_next(crc, rlen)), idx.eq(0), nb.eq(0)]
                    with m.If(rlen == 0):
                        m.next = "T_CRC_H"
                    with m.Else():
                        m.next = "T_LOAD"
                send(rlen, sent_len)

            with m.State("T_LOAD"):  # the read port presents word idx next cycle
                m.next = "T_WAIT"

            with m.State("T_WAIT"):  # ... and rdata holds it in the cycle after
                m.next = "T_LATCH"

            with m.State("T_LATCH"):
                m.d.sync += word.eq(Mux(from_buf, rdata, rword))
                m.next = "T_DATA"

            with m.State("T_DATA"):
                def sent_data():
                    m.d.sync += [crc.eq(crc16_next(crc, word[:8])), word.eq(word >> 8),
                                 nb.eq(nb + 1)]
                    with m.If(nb == 3):
                        m.d.sync += idx.eq(idx + 1)
                        with m.If(idx == rlen - 1):
                            m.next = "T_CRC_H"
                        with m.Else():
                            m.next = "T_LOAD"
                send(word[:8], sent_data)

            with m.State("T_CRC_H"):
                def sent_crc_h():
                    m.next = "T_CRC_L"
                send(crc[8:], sent_crc_h)

            with m.State("T_CRC_L"):
                def sent_crc_l():
                    m.next = "IDLE"
                send(crc[:8], sent_crc_l)
        m.d.comb += [bus.cyc.eq(cyc), bus.stb.eq(stb), bus.adr.eq(addr[:aw]), bus.we.eq(is_write),
                     bus.dat_w.eq(dat_w), bus.sel.eq(-1)]
        return m
