"""The host protocol's backend for cocotb: :class:`EIEDriver` plays a program of :mod:`hw.host`
steps on the generated Verilog, each step as docs/hardware.md ("Host protocol") defines it.

What keeps Python off the per-cycle path:

- the clock is cocotb's C-side GPI clock (no Python per edge);
- a write block is precomputed (:class:`WriteStream`: the bus values as integers -- cocotb's
  fastest path for a wide signal, measured ~2x faster than bit strings, whose characters it
  validates -- and fields are only written when they change), so a write cycle costs one
  handle write and one ``await`` (Alex-6's 13,498 writes take about a second on an idle core);
- ``WaitDone`` is one ``await RisingEdge(done)``: the simulator runs the layers on its own.

Host-side stalls (:class:`Stalls`): random idle cycles between writes (``wr__valid`` low),
between read requests and before ``start``, for the randomised tests.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, First, ReadOnly, RisingEdge, Timer
from cocotb.utils import get_sim_time

from hw import host
from hw.params import HWParams, RdMem

CLOCK_NS = 10  # 100 MHz: the simulated period (only sim time depends on it)


def _high(signal) -> bool:
    """A 1-bit port is 1 (X and Z read as not 1)."""
    return str(signal.value) == "1"


class SimError(AssertionError):
    """The design broke the host protocol (timeout, dropped response)."""


@dataclass
class WriteStream:
    """Host writes as the bus values the driver puts on the port, cycle by cycle."""

    mem: list[int]
    addr: list[int]
    mask: list[int]
    data: list[int]  # wr__data

    @classmethod
    def from_writes(cls, params: HWParams, writes: Iterable[host.HostWrite]) -> WriteStream:
        mem, addr, mask, data = [], [], [], []
        for w in writes:
            mem.append(int(w.mem.value))
            addr.append(int(w.addr))
            mask.append(int(w.mask))
            data.append(w.data(params))
        return cls(mem, addr, mask, data)

    def __len__(self) -> int:
        return len(self.mem)


@dataclass
class Stalls:
    """Random host-side idle cycles: each gap is 0 with probability ``1 - p``, else uniform in
    ``1..max_gap``."""

    rng: np.random.Generator
    p: float = 0.2
    max_gap: int = 3
    inserted: dict[str, int] = field(default_factory=lambda: dict.fromkeys(
        ("write", "read", "start"), 0))  # gaps inserted so far, per place (for coverage)

    def gaps(self, n: int, kind: str) -> np.ndarray:
        g = self.rng.integers(1, self.max_gap + 1, n)
        g = np.where(self.rng.random(n) < self.p, g, 0)
        self.inserted[kind] += int(np.count_nonzero(g))
        return g


class EIEDriver:
    """Plays programs on the host port of the ``eie`` top level (``dut``) built for ``params``."""

    def __init__(self, dut, params: HWParams, stalls: Stalls | None = None):
        self.dut = dut
        self.p = params
        self.stalls = stalls
        self.edge = RisingEdge(dut.clk)
        self._clock = None
        self._last = {"mem": None, "addr": None, "mask": None, "data": None}
        self._start_cycle = 0

    def cycle(self) -> int:
        """The current simulation cycle: cycle k begins at the k-th rising edge of ``clk``
        (counted from 0); called right after an edge, the number of that edge."""
        return int(get_sim_time("ns")) // CLOCK_NS

    async def run(self, program: host.Program) -> host.Outcome:
        return await host.play(self.p, program, self.step)

    async def step(self, s: host.Step):
        d = self.dut
        match s:
            case host.Reset():
                await self._reset(s.cycles)
                await self._wait(d.ready, s.limit)
            case host.WaitReady():
                await self._wait(d.ready, s.limit)
            case host.Write():
                await self._write(WriteStream.from_writes(self.p, s.writes))
            case host.Idle():
                if s.cycles:
                    await ClockCycles(d.clk, s.cycles)
            case host.Start():
                await self._start(s)
            case host.WaitDone():
                return await self._wait_done(s.limit)
            case host.ReadCounters():
                await ReadOnly()
                counts = d.cycles.value.to_unsigned(), d.stall_cycles.value.to_unsigned()
                await self.edge
                return (*counts, await self._read(s.requests(self.p)))
            case host.Read() | host.ReadOutput():
                return await self._read(s.requests(self.p))

    def sample_run_ports(self) -> tuple[bool, int]:
        """The ``busy`` and ``layer`` ports now (read between steps, no clock edge taken)."""
        d = self.dut
        layer = d.layer.value  # a Logic, not a LogicArray, when the port is one bit wide
        return _high(d.busy), int(layer.to_unsigned() if hasattr(layer, "to_unsigned") else layer)

    async def _reset(self, cycles: int) -> None:
        d = self.dut
        if self._clock is None:
            # impl="gpi": toggled in C by cocotb's GPI; the default ("auto") picks the Python
            # coroutine unless COCOTB_TRUST_INERTIAL_WRITES is set, which wakes Python twice
            # per cycle even while the design runs freely.
            self._clock = Clock(d.clk, CLOCK_NS, unit="ns", impl="gpi")
            self._clock.start(start_high=False)
        for s in (d.wr__valid, d.rd__valid, d.start):
            s.value = 0
        for name in ("wr__mem", "wr__addr", "wr__pe_mask", "wr__data", "rd__mem", "rd__addr",
                     "first_layer", "n_layers"):
            getattr(d, name).value = 0
        self._last = dict.fromkeys(self._last)
        d.rst.value = 1
        await ClockCycles(d.clk, cycles)
        d.rst.value = 0

    async def _wait(self, signal, limit: int) -> None:
        """Clock until ``signal`` is sampled high, then past that cycle."""
        for _ in range(limit):
            await ReadOnly()
            if _high(signal):
                await self.edge
                return
            await self.edge
        raise SimError(f"{signal._name} not high after {limit} cycles")

    async def _require(self, signal, what: str) -> None:
        """Sample ``signal`` (a ready) in this cycle, which ends the cycle's writable phase."""
        await ReadOnly()
        if not _high(signal):
            raise SimError(f"{what} in cycle {self.cycle()}: the design is not ready")

    async def _write(self, s: WriteStream) -> None:
        """``s`` on the write port, one write per cycle (with host stalls if set)."""
        d = self.dut
        n = len(s)
        gaps = self.stalls.gaps(n, "write") if self.stalls else None
        last = self._last
        await self._require(d.wr__ready, "write")
        await self.edge
        valid = d.wr__valid
        hm, ha, hk, hd = d.wr__mem, d.wr__addr, d.wr__pe_mask, d.wr__data
        valid.value = 1
        for i in range(n):
            if gaps is not None and gaps[i]:
                valid.value = 0
                await ClockCycles(d.clk, int(gaps[i]))
                valid.value = 1
            m, a, k, x = s.mem[i], s.addr[i], s.mask[i], s.data[i]
            if m != last["mem"]:
                hm.value = m
                last["mem"] = m
            if a != last["addr"]:
                ha.value = a
                last["addr"] = a
            if k != last["mask"]:
                hk.value = k
                last["mask"] = k
            if x != last["data"]:
                hd.value = x
                last["data"] = x
            await self.edge
        valid.value = 0
        await self._require(d.wr__ready, "end of a write block")
        await self.edge

    async def _start(self, s: host.Start) -> None:
        d = self.dut
        if self.stalls:
            gap = int(self.stalls.gaps(1, "start")[0])
            if gap:
                await ClockCycles(d.clk, gap)
        d.first_layer.value = s.first_layer
        d.n_layers.value = s.n_layers
        d.start.value = 1
        await self._require(d.ready, "start")
        await self.edge
        self._start_cycle = self.cycle()
        d.start.value = 0

    async def _wait_done(self, limit: int) -> host.RunSpan:
        """Wait in the simulator, not in Python, for ``done``."""
        d = self.dut
        t, c = time.perf_counter(), time.process_time()
        done = RisingEdge(d.done)
        timeout = Timer(limit * CLOCK_NS, "ns")
        if (await First(done, timeout)) is timeout:
            raise SimError(f"no done within {limit} cycles of the start in cycle "
                           f"{self._start_cycle}")
        span = host.RunSpan(self._start_cycle, self.cycle(), time.perf_counter() - t,
                            time.process_time() - c)
        await ReadOnly()
        if not _high(d.done):
            raise SimError("done rose and fell again")
        await self.edge
        return span

    async def _read(self, requests: list[tuple[RdMem, int]], limit: int = 16) -> list[int]:
        """Pipelined reads (one request per cycle, with host stalls if set); the
        ``rd_resp__data`` values in request order."""
        d = self.dut
        n = len(requests)
        gaps = self.stalls.gaps(n, "read") if self.stalls else np.zeros(n, np.int64)
        out: list[int] = []
        i = idle = 0

        def drive() -> None:
            nonlocal i
            if i < n and gaps[i] > 0:
                gaps[i] -= 1
                d.rd__valid.value = 0
            elif i < n:
                mem, addr = requests[i]
                d.rd__mem.value = int(mem.value)
                d.rd__addr.value = int(addr)
                d.rd__valid.value = 1
                i += 1
            else:
                d.rd__valid.value = 0

        drive()
        while len(out) < n:
            await self.edge
            drive()
            await ReadOnly()
            if _high(d.rd_resp__valid):
                out.append(d.rd_resp__data.value.to_unsigned())
                idle = 0
            elif i == n:
                idle += 1
                if idle > limit:
                    raise SimError(f"{n} read requests, {len(out)} responses")
        await self.edge
        d.rd__valid.value = 0
        return out
