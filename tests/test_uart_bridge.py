"""The UART link (issue 12, item 2): the protocol's frames and CRC, the UART, the bridge RTL in
Amaranth's simulator (every error case, the bus never hung, the RTL == the protocol's reference
model byte for byte), and the host driver (:class:`hw.board.driver.Link`) over the reference
model, over a real pseudo-terminal with pyserial, and over the simulated RTL."""

from __future__ import annotations

import os
import random
import threading
import time
from collections import deque
from pathlib import Path

import pytest
from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In
from amaranth.sim import Simulator

from hw.board import protocol as p
from hw.board.driver import Link
from hw.board.protocol import BridgeModel, Cmd, LinkError, Response, Status
from hw.soc import wishbone
from hw.soc.bridge import UARTBridge, crc16_next
from hw.soc.uart import UARTRx, UARTTx, baud_error, divisor
from sw.errors import ConfigError, EIEError

REPO = Path(__file__).resolve().parent.parent

CLK = 100e6
PERIOD = 1 / CLK
DIV = 8  # the UART tests' divisor
BAUD = 25e6  # the bridge tests': divisor 4, the fewest cycles per bit (fast simulations)
MAX_WORDS = 8  # small frames: the driver's splitting is exercised with few words
AW = 12  # bus address bits: 4096 words; beyond that, BUS_ERROR without a cycle
RAM_WORDS = 64
ERR_BASE, HANG_BASE = 0x100, 0x200  # 256 words each: err; no answer at all
BUS_TIMEOUT = 40
GAP_BYTES = 3


# -- protocol -------------------------------------------------------------------------------------
def test_crc_is_ccitt_false_and_a_frame_with_its_crc_has_residue_zero():
    assert p.crc16(b"123456789") == 0x29B1
    frame = p.write_request(0x1234, [1, 2, 0xFFFFFFFF])
    assert frame[0] == p.REQ_SYNC and p.crc16(frame[1:]) == 0
    assert p.crc16(frame[1:-1]) != 0


def test_request_layout():
    f = p.read_request(0x01020304, 7)
    assert f[:7] == bytes([0xA5, Cmd.READ, 7, 4, 3, 2, 1]) and len(f) == p.REQ_OVERHEAD
    f = p.write_request(0x10, [0xAABBCCDD])
    assert f[:3] == bytes([0xA5, Cmd.WRITE, 1]) and f[7:11] == bytes([0xDD, 0xCC, 0xBB, 0xAA])
    assert p.ping()[1:3] == bytes([Cmd.PING, 0])
    for bad in (lambda: p.read_request(0, 256), lambda: p.write_request(1 << 32, [0]),
                lambda: p.write_request(0, [1 << 32])):
        with pytest.raises(ValueError):
            bad()


def test_response_round_trip_and_garbled_responses():
    for r in (Response(Status.OK), Response(Status.OK, (1, 2, 0xFFFFFFFF)),
              Response(Status.BUS_ERROR, (0x100,)), Response(Status.CUT_SHORT)):
        assert p.decode_response(r.encode()) == r
    good = Response(Status.OK, (5,)).encode()
    for garbled in (good[:-1], b"\x00" + good[1:], good[:4] + bytes([good[4] ^ 1]) + good[5:]):
        with pytest.raises(LinkError):
            p.decode_response(garbled)
    bad_status = p._with_crc(p.RSP_SYNC, bytes([0x77, 0]))
    with pytest.raises(LinkError, match="unknown status"):
        p.decode_response(bad_status)


def test_error_responses_become_one_line_link_errors():
    with pytest.raises(LinkError) as e:
        Response(Status.BUS_ERROR, (0x1234,)).check("write of 3 word(s) at 0x1230")
    assert isinstance(e.value, EIEError) and "\n" not in str(e.value)
    assert "0x00001234" in str(e.value) and e.value.status == Status.BUS_ERROR
    assert e.value.addr == 0x1234
    assert Response(Status.OK, (1,)).check("read") == (1,)


def test_ping_word():
    assert p.parse_ping(p.ping_word(17)) == 17
    with pytest.raises(LinkError, match="not an EIE UART bridge"):
        p.parse_ping(0x12345678)
    with pytest.raises(LinkError, match="version"):
        p.parse_ping(p.ping_word() ^ (0xFF << 16))


def test_strided_frames():
    """SREAD / SWRITE: the stride and group after the address; word k of a frame at
    addr + (k % group) * stride + k // group; a block split into frames at group boundaries
    (a group longer than a frame cut into frames of its own) covers the same addresses."""
    f = p.swrite_request(0x01020304, [5, 6], 0x0140, 3)
    assert f[:10] == bytes([0xA5, Cmd.SWRITE, 2, 4, 3, 2, 1, 0x40, 0x01, 3])
    assert len(f) == p.REQ_OVERHEAD + p.STRIDE_BYTES + 8 and p.crc16(f[1:]) == 0
    assert len(p.sread_request(0, 9, 64, 32)) == p.REQ_OVERHEAD + p.STRIDE_BYTES
    assert p.frame_addresses(10, 7, 64, 3) == [10, 74, 138, 11, 75, 139, 12]
    with pytest.raises(ValueError):
        p.sread_request(0, 1, 1 << 16, 1)
    with pytest.raises(ValueError):
        p.sread_request(0, 1, 1, 0)
    for count, stride, group, mw in [(784, 32, 32, 255), (10, 64, 32, 255), (100, 7, 300, 8),
                                     (50, 5, 8, 8), (17, 3, 9, 8)]:
        frames = p.strided_frames(100, count, stride, group, mw)
        assert all(1 <= n <= mw and 1 <= g <= mw for _, n, g in frames)
        got = [a for a0, n, g in frames for a in p.frame_addresses(a0, n, stride, g)]
        assert got == p.frame_addresses(100, count, stride, group)
    assert len(p.strided_frames(100, 784, 32, 32, 255)) == 4  # 7 groups of 32 a frame


def test_wire_bytes():
    assert p.wire_bytes(Cmd.WRITE, 255) == (9 + 1020, 5)
    assert p.wire_bytes(Cmd.READ, 10) == (9, 45)
    assert p.wire_bytes(Cmd.SREAD, 10) == (12, 45)
    assert p.wire_bytes(Cmd.SWRITE, 2) == (20, 5)


# -- a bus target and the reference model of the bridge ------------------------------------------
class PyTarget:
    """The bus target of the tests as a Python function of one bus cycle."""

    def __init__(self):
        self.ram = [0] * RAM_WORDS
        self.cycles = 0

    def __call__(self, we: bool, addr: int, data: int):
        self.cycles += 1
        if addr < RAM_WORDS:
            if we:
                self.ram[addr] = data
            return p.ACK, self.ram[addr]
        if HANG_BASE <= addr < HANG_BASE + 0x100:
            return p.STALLED, 0
        return p.ERR, 0


class ModelTransport:
    """A byte transport to the reference model: its quiet time passes when the host waits."""

    def __init__(self, model: BridgeModel):
        self.model = model
        self.out = bytearray()

    def write(self, data: bytes) -> None:
        self.out += self.model.receive(data)

    def read(self, n: int) -> bytes:
        if len(self.out) < n:
            self.out += self.model.quiet()
        got = bytes(self.out[:n])
        del self.out[:n]
        return got

    def reset_input_buffer(self) -> None:
        self.out.clear()


def model_link(max_words=MAX_WORDS):
    target = PyTarget()
    return Link(ModelTransport(BridgeModel(target, max_words, AW))), target


def test_driver_over_the_model_splits_blocks_into_frames():
    link, target = model_link()
    words = list(range(100, 100 + 50))
    link.write(3, words)
    assert link.max_words == MAX_WORDS
    assert link.read(3, 50) == words and target.ram[3:53] == words
    assert link.stats.frames == 1 + 2 * 7  # the ping, then 7 frames each way
    assert link.stats.bytes_out == p.REQ_OVERHEAD * 15 + 4 * 50


def test_driver_errors_are_one_line_and_the_next_frame_works():
    link, target = model_link()
    link.write(0, [7])
    with pytest.raises(LinkError, match=r"bus error.*0x00000040") as e:
        link.write(RAM_WORDS - 12, [1] * 16)  # the second frame runs out of the RAM
    assert e.value.status == Status.BUS_ERROR and e.value.addr == RAM_WORDS
    assert target.ram[-12:] == [1] * 12
    with pytest.raises(LinkError, match="timeout.*0x00000200"):
        link.read(HANG_BASE, 1)
    with pytest.raises(LinkError, match="bus error.*0x00001000"):
        link.read((1 << AW) - 1 + 1, 1)  # beyond the bus
    assert link.read(0, 1) == [7]


def test_model_answers_every_malformed_frame_once_the_line_is_quiet():
    target = PyTarget()
    m = BridgeModel(target, MAX_WORDS, AW)
    good = p.write_request(0, [1, 2])
    cases = {
        Status.BAD_CRC: good[:-1] + bytes([good[-1] ^ 0x40]),
        Status.BAD_FRAME: bytes([p.REQ_SYNC, 0x33, 1]) + bytes(8),  # unknown command
    }
    for status, frame in cases.items():
        assert m.receive(frame) == b""
        assert m.quiet() == Response(status).encode()
    assert m.receive(good[:5]) == b"" and m.quiet() == Response(Status.CUT_SHORT).encode()
    assert m.receive(p.read_request(0, MAX_WORDS + 1)) == b""  # too long
    assert m.quiet() == Response(Status.BAD_FRAME).encode()
    assert m.receive(b"\x00" + good) == b""  # noise: the whole burst is discarded
    assert m.quiet() == Response(Status.BAD_FRAME).encode()
    assert m.receive(good) == Response(Status.OK).encode() and m.quiet() == b""
    assert target.ram[:2] == [1, 2]


# -- the RTL: a Wishbone target with wait states, an err region and a region that never answers -
class RamTarget(wiring.Component):
    """What :class:`PyTarget` does, as a Wishbone B4 target: ``RAM_WORDS`` words of RAM, ``err``
    at ERR_BASE.., no answer at HANG_BASE.., ``err`` elsewhere. Each access waits ``adr % 4``
    cycles (``stall`` high until the answer, as the EIE's front end does)."""

    def __init__(self):
        super().__init__({"bus": In(wishbone.Signature(addr_width=AW, data_width=32,
                                                        features={"err", "stall"}))})

    def elaborate(self, platform):
        m = Module()
        m.submodules.mem = mem = Memory(shape=32, depth=RAM_WORDS, init=[])
        rp = mem.read_port(domain="comb")
        wp = mem.write_port()
        bus = self.bus
        wait = Signal(2)
        in_ram = bus.adr < RAM_WORDS
        hang = bus.adr[8:] == HANG_BASE >> 8
        m.d.comb += [rp.addr.eq(bus.adr), wp.addr.eq(bus.adr), wp.data.eq(bus.dat_w),
                     bus.dat_r.eq(rp.data)]
        with m.If(bus.cyc & bus.stb & ~hang):
            with m.If(wait == bus.adr[:2]):
                m.d.sync += wait.eq(0)
                with m.If(in_ram):
                    m.d.comb += [bus.ack.eq(1), wp.en.eq(bus.we)]
                with m.Else():
                    m.d.comb += bus.err.eq(1)
            with m.Else():
                m.d.sync += wait.eq(wait + 1)
        with m.Else():
            m.d.sync += wait.eq(0)
        m.d.comb += bus.stall.eq(~(bus.ack | bus.err))
        return m


class SimUART:
    """A byte transport to a UART in Amaranth's simulator: written bytes are driven on ``rx``
    (8N1, back to back while the host has bytes to send), bytes on ``tx`` are collected; a read
    runs the simulation until the bytes are there or ``timeout`` (simulated seconds) passes.

    ``write_raw`` queues line events for the error tests: ``("byte", b, stop_bit)`` and
    ``("low", seconds)`` (a glitch)."""

    def __init__(self, dut, rx, tx, bit_s: float, timeout: float, watch=None):
        self.sim = Simulator(dut)
        self.sim.add_clock(PERIOD)
        self.rx, self.tx, self.bit_s, self.timeout = rx, tx, bit_s, timeout
        self.pending: deque = deque()
        self.received = bytearray()
        self.framing_errors = 0
        self.now = 0.0
        self.sim.add_testbench(self._drive, background=True)
        self.sim.add_testbench(self._watch, background=True)
        self.watch = watch  # called (ctx) after each received byte

    def write(self, data: bytes) -> None:
        self.pending.extend(("byte", b, 1) for b in data)

    def write_raw(self, *events) -> None:
        self.pending.extend(events)

    def reset_input_buffer(self) -> None:
        self.received.clear()

    def run(self, seconds: float) -> None:
        self.now += seconds
        self.sim.run_until(self.now)

    def read(self, n: int) -> bytes:
        end = self.now + self.timeout
        while len(self.received) < n and self.now < end:
            self.run(10 * self.bit_s)
        got = bytes(self.received[:n])
        del self.received[:n]
        return got

    def read_response(self) -> bytes:
        """A response frame (as far as it comes within the timeout), and whatever else arrives
        within two byte times after it."""
        got = self.read(3)
        if len(got) == 3:
            got += self.read(p.response_length(got))
        self.run(20 * self.bit_s)
        got += bytes(self.received)
        self.received.clear()
        return got

    async def _drive(self, ctx):
        ctx.set(self.rx, 1)
        while True:
            if not self.pending:
                await ctx.delay(self.bit_s)
                continue
            ev = self.pending.popleft()
            if ev[0] == "low":
                ctx.set(self.rx, 0)
                await ctx.delay(ev[1])
                ctx.set(self.rx, 1)
                await ctx.delay(self.bit_s)
                continue
            _, b, stop = ev
            for bit in [0] + [(b >> i) & 1 for i in range(8)] + [stop]:
                ctx.set(self.rx, bit)
                await ctx.delay(self.bit_s)
            ctx.set(self.rx, 1)
            if not stop:  # a framing error: the line idles for a bit before the next byte
                await ctx.delay(self.bit_s)

    async def _watch(self, ctx):
        while True:
            await ctx.negedge(self.tx)
            await ctx.delay(self.bit_s / 2)
            if ctx.get(self.tx):
                continue  # not a start bit
            b = 0
            for i in range(8):
                await ctx.delay(self.bit_s)
                b |= ctx.get(self.tx) << i
            await ctx.delay(self.bit_s)
            if not ctx.get(self.tx):
                self.framing_errors += 1
            self.received.append(b)
            if self.watch:
                self.watch(ctx)


def bridge_sim(classic: bool = True, timeout: float | None = None):
    """The bridge and :class:`RamTarget` as a :class:`SimUART` transport; ``.bridge``,
    ``.target`` and ``.bus_idle_at_each_byte`` (``cyc`` low whenever a response byte arrived)."""
    bridge = UARTBridge(CLK, BAUD, addr_width=AW, max_words=MAX_WORDS, gap_bytes=GAP_BYTES,
                        bus_timeout=BUS_TIMEOUT, classic=classic)
    target = RamTarget()
    m = Module()
    m.submodules.bridge = bridge
    m.submodules.target = target
    wiring.connect(m, bridge.bus, target.bus)
    idle = []
    bit_s = bridge.divisor * PERIOD
    link = SimUART(m, bridge.rx, bridge.tx, bit_s, timeout or 3 * bridge.timeout_s + 1e-5,
                   watch=lambda ctx: idle.append(not ctx.get(bridge.bus.cyc)))
    link.bridge, link.target, link.bus_idle_at_each_byte = bridge, target, idle
    return link


# -- UART -----------------------------------------------------------------------------------------
def test_divisor_and_baud_error():
    assert divisor(48e6, 3e6) == 16 and baud_error(48e6, 3e6) == 0
    assert divisor(125e6, 3e6) == 42 and abs(baud_error(125e6, 3e6) + 0.0079) < 1e-3
    assert divisor(100e6, 3e6) == 33
    with pytest.raises(ConfigError, match="more than 2%"):
        divisor(25e6, 3e6)  # 8: +4.2 %
    with pytest.raises(ConfigError, match="at least 4"):
        divisor(10e6, 3e6)


def uart_pair():
    m = Module()
    m.submodules.tx = tx = UARTTx(DIV)
    m.submodules.rx = rx = UARTRx(DIV)
    return m, tx, rx


@pytest.mark.parametrize("rate_error", [0.0, -0.03, 0.03])
def test_uart_rx_takes_bytes_at_a_rate_off_by_3_percent(rate_error):
    """Bytes back to back from a sender whose bit time is off by ``rate_error``; a glitch
    shorter than half a bit is no start bit; a low stop bit is a framing error."""
    m, _, rx = uart_pair()
    got, ferr = [], []

    async def collect(ctx):
        while True:
            valid, err, data = await ctx.changed(rx.valid, rx.ferr).sample(rx.data)
            if valid:
                got.append(data)
            if err:
                ferr.append(len(got))

    rng = random.Random(1)
    data = bytes(rng.randrange(256) for _ in range(24)) + b"\x00\xff\x55"
    link = SimUART(m, rx.rx, Signal(init=1), DIV * PERIOD * (1 + rate_error), 1e-3)
    link.sim.add_process(collect)
    link.write(data[:10])
    link.write_raw(("low", 3 * PERIOD))
    link.write(data[10:])
    link.write_raw(("byte", 0x3C, 0))
    link.write(b"\x42")
    link.run(12 * 10 * (len(data) + 4) * DIV * PERIOD)
    assert bytes(got) == data + b"\x42"
    assert ferr == [len(data)]


def test_uart_tx_sends_8n1_at_the_divisor():
    m, tx, _ = uart_pair()
    data = bytes(range(0, 256, 17))
    link = SimUART(m, Signal(), tx.tx, DIV * PERIOD, 1e-3)

    async def send(ctx):
        for b in data:
            ctx.set(tx.data, b)
            ctx.set(tx.valid, 1)
            await ctx.tick().until(tx.ready)
            ctx.set(tx.valid, 0)
            await ctx.tick()

    link.sim.add_testbench(send)
    assert link.read(len(data)) == data and link.framing_errors == 0


def test_uart_loopback():
    m, tx, rx = uart_pair()
    m.d.comb += rx.rx.eq(tx.tx)
    rng = random.Random(2)
    data = bytes(rng.randrange(256) for _ in range(16))
    got = []

    async def bench(ctx):
        for b in data:
            ctx.set(tx.data, b)
            ctx.set(tx.valid, 1)
            await ctx.tick().until(tx.ready)
            ctx.set(tx.valid, 0)
        await ctx.tick().repeat(12 * DIV)

    async def collect(ctx):
        async for _, _, valid, d in ctx.tick().sample(rx.valid, rx.data):
            if valid:
                got.append(d)

    sim = Simulator(m)
    sim.add_clock(PERIOD)
    sim.add_testbench(bench)
    sim.add_process(collect)
    sim.run()
    assert bytes(got) == data


# -- the bridge RTL -------------------------------------------------------------------------------
def test_crc_logic_is_the_protocols_crc():
    crc, byte, out = Signal(16), Signal(8), Signal(16)
    m = Module()
    m.d.comb += out.eq(crc16_next(crc, byte))
    rng = random.Random(3)
    cases = [(rng.randrange(1 << 16), b) for b in range(256)] + [(0xFFFF, 0x31)]

    async def bench(ctx):
        for c, b in cases:
            ctx.set(crc, c)
            ctx.set(byte, b)
            assert ctx.get(out) == p.crc16(bytes([b]), c), (c, b)

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")  # the refused ones
def test_bridge_parameters_are_checked():
    with pytest.raises(ConfigError):
        UARTBridge(CLK, BAUD, max_words=256)
    with pytest.raises(ConfigError):
        UARTBridge(CLK, BAUD, addr_width=32)
    with pytest.raises(ConfigError, match="more than 2%"):
        UARTBridge(25e6, 3e6)
    b = UARTBridge(125e6, 3e6)
    b._MustUse__silence = True  # not elaborated
    assert b.divisor == 42 and b.gap_bytes == 600 and abs(b.gap_s - 2e-3) < 2e-5


@pytest.mark.parametrize("classic", [True, False], ids=["classic", "pipelined"])
def test_bridge_rtl_equals_the_reference_model_on_good_and_bad_frames(classic):
    """Every exchange (a burst of bytes, then the line quiet) gets the same response bytes from
    the RTL as from :class:`BridgeModel`: good frames, each error case, and the good frame
    after it; the bus is idle whenever a response byte goes out."""
    link = bridge_sim(classic)
    model = BridgeModel(PyTarget(), MAX_WORDS, AW)
    rng = random.Random(4)
    good_w = p.write_request(4, [rng.randrange(1 << 32) for _ in range(MAX_WORDS)])
    exchanges = [
        [p.ping()],
        [good_w],
        [p.read_request(4, MAX_WORDS)],
        [good_w[:-1] + bytes([good_w[-1] ^ 1])],  # wrong CRC
        [good_w[:12] + bytes([good_w[12] ^ 0x10]) + good_w[13:]],  # a corrupted data byte
        [bytes([p.REQ_SYNC, 0x44, 1, 0, 0, 0, 0]) + bytes(6)],  # unknown command
        [p._with_crc(p.REQ_SYNC, bytes([Cmd.READ, 0]) + bytes(4))],  # length 0
        [p._with_crc(p.REQ_SYNC, bytes([Cmd.READ, MAX_WORDS + 1]) + bytes(4))],  # too long
        [p._with_crc(p.REQ_SYNC, bytes([Cmd.PING, 1]) + bytes(4))],  # ping with a length
        [good_w[:9]],  # cut short in the data
        [good_w[:2]],  # cut short after the command
        [b"\x13" + p.read_request(4, 1)],  # noise before a frame
        [("byte", p.REQ_SYNC, 1), ("byte", Cmd.READ, 0)],  # framing error
        [p.read_request(ERR_BASE, 1)],  # err
        [p.write_request(RAM_WORDS - 2, [11, 12, 13])],  # err at the third word
        [p.read_request(RAM_WORDS - 2, 3)],
        [p.read_request(HANG_BASE + 1, 2)],  # no answer: timeout
        [p.read_request((1 << AW) - 1, 2)],  # the second word is beyond the bus
        [p.write_request(0xFFFFFFFF, [1])],
        [p.read_request(0, MAX_WORDS)],
        [p.read_request(RAM_WORDS - 2, 2)],
        [p.swrite_request(1, [rng.randrange(1 << 32) for _ in range(MAX_WORDS)], 8, 3)],
        [p.sread_request(1, MAX_WORDS, 8, 3)],  # the same addresses: the words written
        [p.sread_request(5, 6, 0, 2)],  # stride 0: each word twice
        [p.sread_request(0, 7, 20, 7)],  # one group
        [p.swrite_request(RAM_WORDS - 3, [1, 2, 3], 2, 3)],  # err at the third word
        [p._with_crc(p.REQ_SYNC, bytes([Cmd.SREAD, 2]) + bytes(4) + bytes([1, 0, 0]))],  # group 0
        [p.sread_request(0, MAX_WORDS, 1, 1)],
    ]
    for ex in exchanges:
        expect = b""
        for part in ex:
            if isinstance(part, bytes):
                link.write(part)
                expect += model.receive(part)
            else:
                link.write_raw(part)
                expect += model.receive(bytes([part[1]]), framing_error=not part[2])
        expect += model.quiet()
        got = link.read_response()
        assert got == expect, (ex, got.hex(), expect.hex())
        assert p.decode_response(got).status in set(Status)
    assert link.framing_errors == 0
    assert all(link.bus_idle_at_each_byte)


def test_bridge_ignores_a_glitch_and_answers_a_break():
    link = bridge_sim()
    link.write_raw(("low", 2 * PERIOD))
    link.write(p.ping())
    assert p.decode_response(link.read_response()) == Response(Status.OK, (p.ping_word(MAX_WORDS),))
    link.write_raw(("low", 30 * link.bit_s))  # a break: framing error, then a quiet line
    assert p.decode_response(link.read_response()) == Response(Status.BAD_FRAME)
    link.write(p.ping())
    assert p.decode_response(link.read_response()).status == Status.OK


def test_driver_code_runs_against_the_simulated_bridge():
    """The same :class:`Link` as on a board, over the RTL: ping, blocks split into frames,
    error responses as one-line errors, a bus that never hangs, the next frame working."""
    link = bridge_sim()
    drv = Link(link)
    assert drv.max_words == MAX_WORDS
    rng = random.Random(5)
    words = [rng.randrange(1 << 32) for _ in range(RAM_WORDS - 3)]
    drv.write(3, words)
    assert drv.read(3, len(words)) == words
    with pytest.raises(LinkError, match="bus error.*0x00000100"):
        drv.read(ERR_BASE, 1)
    with pytest.raises(LinkError, match="timeout.*0x00000200"):
        drv.write(HANG_BASE, [1, 2])
    drv.write_strided(3, list(range(20)), 10, 4)  # 3 frames: 8, 8, 4 words
    assert drv.read_strided(3, 20, 10, 4) == list(range(20))
    assert drv.read(3, 31)[::10] == [0, 1, 2, 3] and drv.read(4, 1) == [4]
    link.write_raw(("byte", 0x77, 1))  # junk before the next request: flushed
    link.read_response()
    assert drv.read(RAM_WORDS - 1, 1) == [words[-1]]
    assert all(link.bus_idle_at_each_byte)


def test_driver_reports_a_silent_link():
    class Silent:
        def write(self, data):
            pass

        def read(self, n):
            return b""

    with pytest.raises(LinkError, match="no response from the bridge"):
        Link(Silent(), max_words=4).read(0, 1)

    class Noisy(Silent):
        def read(self, n):
            return b"\x00" * n

    with pytest.raises(LinkError, match="garbled"):
        Link(Noisy(), max_words=4).read(0, 1)


# -- pyserial over a pseudo-terminal --------------------------------------------------------------
def test_driver_over_pyserial_on_a_pty_with_the_model_at_the_other_end():
    """A real ``serial.Serial`` on a pseudo-terminal; the reference model answers at the other
    end (its quiet time: 20 ms without a byte)."""
    import select

    import serial

    master, slave = os.openpty()
    target = PyTarget()
    model = BridgeModel(target, MAX_WORDS, AW)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            ready, _, _ = select.select([master], [], [], 0.02)
            if ready:
                out = model.receive(os.read(master, 4096))
            else:
                out = model.quiet()
            if out:
                os.write(master, out)

    th = threading.Thread(target=serve, daemon=True)
    th.start()
    port = serial.Serial(os.ttyname(slave), 3_000_000, timeout=1.0)
    try:
        import termios
        import tty

        tty.setraw(master)
        attrs = termios.tcgetattr(master)
        termios.tcsetattr(master, termios.TCSANOW, attrs)
        link = Link(port)
        link.write(0, list(range(20)))
        assert link.read(0, 20) == list(range(20)) == target.ram[:20]
        with pytest.raises(LinkError, match="bus error"):
            link.read(ERR_BASE, 1)
        port.write(p.write_request(0, [1, 2])[:6])  # cut short: the answer comes after 20 ms
        time.sleep(0.1)
        assert link.read(19, 1) == [19]  # (the driver flushed the CUT_SHORT answer)
    finally:
        stop.set()
        th.join()
        port.close()
        os.close(master)
        os.close(slave)


# -- the driver against the front end in Amaranth's simulator ------------------------------------
class SimBusTarget:
    """The target callable of :class:`BridgeModel` on a Wishbone target ``dut.bus`` in Amaranth's
    simulator: each call is one classic bus cycle (``bus_timeout`` cycles at most). The
    simulation advances only during calls (a run on the core proceeds while the host polls)."""

    def __init__(self, dut, bus_timeout: int = BUS_TIMEOUT):
        self.sim = Simulator(dut)
        self.sim.add_clock(PERIOD)
        self.bus = dut.bus
        self.bus_timeout = bus_timeout
        self.req = self.res = None
        self.sim.add_testbench(self._serve, background=True)

    def __call__(self, we: bool, addr: int, data: int):
        self.req, self.res = (we, addr, data), None
        while self.res is None:
            self.sim.advance()
        return self.res

    async def _serve(self, ctx):
        b = self.bus
        ctx.set(b.sel, (1 << len(b.sel)) - 1)
        while True:
            if self.req is None:
                await ctx.tick()
                continue
            we, addr, data = self.req
            for sig, v in ((b.cyc, 1), (b.stb, 1), (b.we, int(we)), (b.adr, addr), (b.dat_w, data)):
                ctx.set(sig, v)
            result = (p.STALLED, 0)
            for _ in range(self.bus_timeout):
                ack, err, dat = ctx.get(b.ack), ctx.get(b.err), ctx.get(b.dat_r)
                await ctx.tick()
                if ack or err:
                    result = (p.ACK if ack else p.ERR, dat)
                    break
            ctx.set(b.cyc, 0)
            ctx.set(b.stb, 0)
            self.req, self.res = None, result


def test_board_driver_runs_a_network_on_the_front_end():
    """:class:`hw.board.driver.Board` (the code `eie board` runs) over frames answered by the
    reference model of the bridge, whose bus cycles go to :class:`hw.soc.frontend.EIEBus` on
    ``tiny`` in Amaranth's simulator: identify, a configuration mismatch, a run before any image
    is loaded, an access outside every window (explained from ERROR / ERROR_ADDR) and one beyond
    the bus: one-line errors, the board working after each; then a two-layer network, two
    inputs, bit-exact with the golden model and cycle-exact with the cycle model."""
    import numpy as np
    from helpers_eie import chain

    from hw import host
    from hw.board.driver import Board
    from hw.soc.bus_host import BusError
    from hw.soc.frontend import EIEBus
    from hw.soc.regmap import regmap
    from hw.soc.system import System
    from hw.timing import rtl_timing
    from sw.eie import cycles, fixedpoint, golden
    from sw.eie.config import PRESETS
    from sw.eie.pack import pack_network

    tiny = PRESETS["tiny"]
    rng = np.random.default_rng(5)
    img = pack_network(chain(rng, [30, 36, 12], 0.35, scale=0.5), tiny)
    xs = [fixedpoint.quantize_input(rng.normal(0, 2, 30) * (rng.random(30) < 0.6), tiny)
          for _ in range(2)]
    dut = EIEBus(tiny)
    rm = dut.regmap
    link = Link(ModelTransport(BridgeModel(SimBusTarget(dut, 64), p.MAX_WORDS, rm.addr_width)))
    with pytest.raises(ConfigError, match="another configuration"):
        Board(link, regmap(PRESETS["small"]))
    board = Board(link, rm)
    board.host.run(host.reset_program(board.params))  # (and wait for READY)
    board.loaded = img  # pretend: the layer table was never written
    with pytest.raises(BusError, match="NOT_LOADED") as e:
        board.infer(img, xs[0])
    assert "\n" not in str(e.value)
    with pytest.raises(BusError, match="UNMAPPED.*0x1f"):  # explained from ERROR, ERROR_ADDR
        board.read(rm.reg_block - 1)
    with pytest.raises(LinkError, match="bus error.*0xffffffff"):  # beyond the bus: no cycle
        board.write(0xFFFFFFFF, [0])
    board.load(img)
    timing = rtl_timing(tiny)
    for x in xs:
        y, c = board.infer(img, x, busy=True)
        assert np.array_equal(y, golden.run_network(img, x)[-1])
        assert c.cycles == cycles.simulate_network(img, x, timing).cycles
        assert c.busy is not None and len(c.busy) == tiny.n_pe
        y2, c2 = board.infer(img, x)  # cycles and stalls only
        assert np.array_equal(y2, y)
        assert (c2.cycles, c2.stall_cycles) == (c.cycles, c.stall_cycles)
    # over a link with strided frames (the default), an input and the outputs take one frame
    # each instead of one per PE
    f0 = link.stats.frames
    board.infer(img, xs[0])
    strided_frames = link.stats.frames - f0
    board.host.max_stride = 0
    f0 = link.stats.frames
    y3, _ = board.infer(img, xs[0])
    assert np.array_equal(y3, golden.run_network(img, xs[0])[-1])
    assert link.stats.frames - f0 == strided_frames + 2 * (tiny.n_pe - 1)
    board.host.max_stride = p.MAX_STRIDE
    regs = board.registers()
    assert regs["ID"] == rm.id_magic and regs["STATUS"] & 0b1101 == 0b1101
    # the system joins the bridge to this front end at its address width
    system = System(tiny, clk_freq=CLK, baud=BAUD)
    assert system.bridge.addr_width == rm.addr_width and system.regmap == rm
    for c in (system, system.bridge, system.eie):
        c._MustUse__silence = True


# -- the whole system under Verilator, driven by the board's driver code over cocotbext-uart ----
LENET = REPO / "build" / "lenet300" / "model.eie"
BOARD_CONFIG = "ecp5_max"  # the largest ECP5 preset: what a board runs LeNet-300-100 on


@pytest.mark.slow
def test_bad_input_over_the_simulated_uart_gets_defined_answers():
    """A run before any image is loaded, a corrupted frame, a wrong CRC, a frame cut short, an
    unknown command, addresses outside every window and beyond the bus: each a defined answer
    and a one-line driver error, the next good frame working (sim/tb_board.py ``bad_input``)."""
    import numpy as np
    from helpers_eie import chain

    from sim.job import Case
    from sim.tb_board import board_design, run_board
    from sw.eie.config import PRESETS
    from sw.eie.pack import pack_network

    tiny = PRESETS["tiny"]
    img = pack_network(chain(np.random.default_rng(1), [16, 8], 0.5), tiny)
    result = run_board(board_design(tiny), Case("bad input", img, []), "bad_input")
    assert len(result["errors"]) == 8
    for line in result["errors"]:
        print(line)


@pytest.mark.slow
@pytest.mark.mnist
@pytest.mark.skipif(not os.environ.get("EIE_MNIST_DIR"), reason="EIE_MNIST_DIR not set")
@pytest.mark.skipif(not LENET.exists(), reason=f"no {LENET} (make demo produces it)")
def test_lenet300_classifies_100_mnist_images_over_the_simulated_uart():
    """The issue's figure: UART model -> bridge -> Wishbone -> front end -> EIE, the compressed
    LeNet-300-100 loaded over the UART and 100 MNIST test images classified, every output
    bit-exact with the golden model and every run's cycles equal to the cycle model, by the
    same driver code as a board (sim/tb_board.py ``network``). Prints the link's traffic and
    the end-to-end time per image at 3 Mbaud, computed from the frames."""
    import numpy as np

    from sim.regress import mnist_entry
    from sim.tb_board import board_design, run_board
    from sw.eie.config import PRESETS

    config = PRESETS[BOARD_CONFIG]
    n = int(os.environ.get("EIE_BOARD_IMAGES", "100"))
    entry, info = mnist_entry(config, n, model=LENET, log=lambda m: None)
    design = board_design(config)
    result = run_board(design, entry.case, "network")
    assert result["runs"] == n
    assert np.array_equal(result["pred"], info.golden_pred)
    print("\n".join(board_report(result, 3e6, 100e6)))


def board_report(result: dict, baud: float, clock_hz: float) -> list[str]:
    """Lines on the link's traffic and the end-to-end time per image at ``baud``: the wire
    time of the frames (requests and responses one after the other) plus the runs' cycles at
    ``clock_hz`` (the turnaround in the bridge, a few cycles per frame, and the host's latency
    are not counted)."""
    import numpy as np

    from hw.board.protocol import BITS_PER_BYTE

    load = result["load"]
    runs = np.array(result["per_run"], dtype=np.float64)  # frames, bytes out, bytes in, cycles
    frames, out, inn, cyc = runs.mean(axis=0)
    wire = (out + inn) * BITS_PER_BYTE / baud
    compute = cyc / clock_hz
    load_s = (load["bytes_out"] + load["bytes_in"]) * BITS_PER_BYTE / baud
    return [
        f"{result['config']} ({result['n_pe']} PEs), {result['runs']} images bit-exact, "
        f"simulated at {result['baud'] / 1e6:g} Mbaud in {result['wall_s']:.0f} s",
        f"load: {load['frames']} frames, {load['bytes_out']:,} bytes out, {load['bytes_in']:,} "
        f"in: {load_s:.3f} s at {baud / 1e6:g} Mbaud",
        f"per image: {frames:.1f} frames, {out:,.0f} bytes out, {inn:,.0f} in; "
        f"{wire * 1e3:.2f} ms on the wire + {cyc:,.0f} cycles ({compute * 1e6:.1f} us at "
        f"{clock_hz / 1e6:g} MHz) = {(wire + compute) * 1e3:.2f} ms per image at "
        f"{baud / 1e6:g} Mbaud ({1 / (wire + compute):.0f} images/s)",
    ]


# -- `eie board` end to end over a pseudo-terminal ------------------------------------------------
def test_eie_board_commands_over_a_serial_port(tmp_path, capsys):
    """`eie board read|load|run` on a real serial port (a pseudo-terminal); at the other end the
    reference model of the bridge drives :class:`hw.soc.frontend.EIEBus` (``tiny``) in
    Amaranth's simulator: registers read, a trained network run bit-exact with the golden
    model (loading its images, then again with the images of `eie board load`), and a refused
    address, a wrong configuration and an unopenable port as one-line errors."""
    import select

    import numpy as np
    import torch
    from helpers_nets import blobs, train
    from torch import nn

    from eie.cli import main
    from hw.soc.frontend import EIEBus
    from sw.eie.config import PRESETS

    x, y = blobs(n=200, d=12, k=4, seed=3)
    net = train(nn.Sequential(nn.Linear(12, 20), nn.ReLU(), nn.Linear(20, 4)), x, y)
    model = tmp_path / "net.pt"
    torch.save(net.state_dict(), model)
    data = tmp_path / "data.npz"
    np.savez(data, x_train=x[:150].numpy(), y_train=y[:150].numpy(), x_test=x[150:].numpy(),
             y_test=y[150:].numpy())

    dut = EIEBus(PRESETS["tiny"])
    bridge = BridgeModel(SimBusTarget(dut, 64), p.MAX_WORDS, dut.regmap.addr_width)
    master, slave = os.openpty()
    import tty

    tty.setraw(master)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            ready, _, _ = select.select([master], [], [], 0.05)
            out = bridge.receive(os.read(master, 4096)) if ready else bridge.quiet()
            if out:
                os.write(master, out)

    th = threading.Thread(target=serve, daemon=True)
    th.start()
    port = ["--port", os.ttyname(slave), "--config", "tiny", "--timeout", "60"]
    net_args = ["--model", str(model), "--inputs", str(data), "--limit", "3"]
    try:
        assert main(["board", "read", *port]) == 0
        out = capsys.readouterr().out
        assert f"ID               0x{dut.regmap.id_magic:08x}" in out and "READY=" in out
        assert main(["board", "run", *port, *net_args]) == 0
        out = capsys.readouterr().out
        assert "board outputs == golden model: yes" in out and "board   accuracy" in out
        assert main(["board", "load", *port, "--model", str(model), "--calib", str(data)]) == 0
        assert main(["board", "run", *port, *net_args, "--no-load", "--busy"]) == 0
        out = capsys.readouterr().out
        assert "board outputs == golden model: yes" in out and "busy per PE" in out
        assert main(["board", "read", *port, "--addr", "0x1f", "--count", "1"]) == 2
        err = capsys.readouterr().err
        assert "UNMAPPED" in err and err.count("\n") == 1
        assert main(["board", "read", *port[:2], "--config", "small"]) == 2
        assert "another configuration" in capsys.readouterr().err
    finally:
        stop.set()
        th.join()
        os.close(master)
        os.close(slave)
    assert main(["board", "read", "--port", str(tmp_path / "no-such-port"), "--config",
                 "tiny"]) == 2
    assert "cannot open" in capsys.readouterr().err
