"""cocotb host driver of the generated EIE top level (docs/hardware.md, "Host protocol").

It replays the transactions of :mod:`hw.host` -- the one definition of the protocol, shared
with the Amaranth-simulator driver :mod:`sim.amaranth_host` -- on the Verilog through cocotb:

- clock (cocotb's C-side GPI clock: no Python per edge) and synchronous reset, then ``ready``;
- the image through the wide write port, one address of all N PEs per cycle: the write
  stream is precomputed (:class:`WriteStream`: the bus values as integers -- cocotb's fastest
  path for a wide signal, measured ~2x faster than bit strings, whose characters it validates
  -- and fields are only written when they change), so a cycle costs one handle write and one
  ``await`` (Alex-6's 13,500 writes take about a second on an idle core);
- input writes, ``start``, then ``await RisingEdge(done)``: the simulator runs the layers with
  no Python on the per-cycle path;
- pipelined reads of the outputs and the per-PE busy counters, and the ``cycles`` /
  ``stall_cycles`` ports.

Host-side stalls (:class:`Stalls`): random idle cycles between writes (``wr__valid`` low),
between read requests and before ``start``, for the randomised tests.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, First, ReadOnly, RisingEdge, Timer

from hw import host
from hw.params import HWParams, RdMem
from sw.eie.pack import NetworkImage

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

    def gaps(self, n: int) -> np.ndarray:
        g = self.rng.integers(1, self.max_gap + 1, n)
        return np.where(self.rng.random(n) < self.p, g, 0)


@dataclass
class RunCounters:
    cycles: int
    stall_cycles: int
    busy: np.ndarray  # (N,) per-PE busy cycles of the run
    start_cycle: int  # simulation cycle beginning with the edge that took start: run cycle 0
    done_cycle: int  # simulation cycle beginning with the edge that raised done


class EIEDriver:
    """Drives the host port of the ``eie`` top level (``dut``) built for ``params``."""

    def __init__(self, dut, params: HWParams, stalls: Stalls | None = None):
        self.dut = dut
        self.p = params
        self.stalls = stalls
        self.edge = RisingEdge(dut.clk)
        self._clock = None
        self._last = {"mem": None, "addr": None, "mask": None, "data": None}
        self.writes = 0  # write cycles issued

    # -- clock, reset, time ---------------------------------------------------------------
    def cycle(self) -> int:
        """The current simulation cycle: cycle k begins at the k-th rising edge of ``clk``
        (counted from 0); called right after an edge, the number of that edge."""
        from cocotb.utils import get_sim_time

        return int(get_sim_time("ns")) // CLOCK_NS

    async def reset(self, cycles: int = 2) -> None:
        """Synchronous reset; returns once the design is ``ready`` (after its accumulator
        clear)."""
        d = self.dut
        if self._clock is None:
            self._clock = Clock(d.clk, CLOCK_NS, unit="ns")
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
        await self.wait_ready(limit=self.p.config.act_depth + 16)

    async def wait_ready(self, limit: int = 1_000_000) -> None:
        d = self.dut
        await ReadOnly()
        if _high(d.ready):
            await self.edge
            return
        await self.edge
        for _ in range(limit):
            await ReadOnly()
            if _high(d.ready):
                await self.edge
                return
            await self.edge
        raise SimError(f"EIE not ready {limit} cycles after reset")

    # -- writes ----------------------------------------------------------------------------
    async def write_stream(self, s: WriteStream) -> None:
        """Issue ``s`` on the write port, one write per cycle (with host stalls if set). The
        design must be ready (idle): ``wr__ready`` is checked at the first and last write."""
        d = self.dut
        n = len(s)
        if n == 0:
            return
        gaps = self.stalls.gaps(n) if self.stalls else None
        last = self._last
        await ReadOnly()
        if not _high(d.wr__ready):
            raise SimError("write port not ready (design busy)")
        await self.edge  # leave the read-only phase
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
        await ReadOnly()
        if not _high(d.wr__ready):
            raise SimError("write port lost ready during a write stream")
        await self.edge
        self.writes += n

    async def load_image(self, image: NetworkImage) -> int:
        """Load every memory of ``image`` (hw.host.image_writes); returns the write count."""
        s = WriteStream.from_writes(self.p, host.image_writes(self.p, image))
        await self.write_stream(s)
        return len(s)

    def input_stream(self, image: NetworkImage, a_phys: np.ndarray) -> WriteStream:
        return WriteStream.from_writes(self.p, host.input_writes(self.p, image, a_phys))

    # -- runs --------------------------------------------------------------------------------
    async def run(self, first_layer: int, n_layers: int, limit: int) -> tuple[int, int]:
        """Pulse ``start`` and wait (in the simulator, not in Python) for ``done``; returns the
        simulation cycles that begin with the edge taking ``start`` (the run's cycle 0) and
        with the edge raising ``done``. ``limit``: cycles before giving up."""
        d = self.dut
        if self.stalls:
            gap = int(self.stalls.gaps(1)[0])
            if gap:
                await ClockCycles(d.clk, gap)
        d.first_layer.value = first_layer
        d.n_layers.value = n_layers
        d.start.value = 1
        await self.edge
        t0 = self.cycle()
        d.start.value = 0
        done = RisingEdge(d.done)
        timeout = Timer(limit * CLOCK_NS, "ns")
        if (await First(done, timeout)) is timeout:
            raise SimError(f"layers {first_layer}..{first_layer + n_layers - 1}: no done within "
                           f"{limit} cycles")
        t1 = self.cycle()
        await ReadOnly()
        if not _high(d.done):
            raise SimError("done rose and fell again")
        await self.edge
        return t0, t1

    async def read(self, requests: list[tuple[RdMem, int]], limit: int = 16) -> list[int]:
        """Pipelined reads (one request per cycle, responses two cycles later); returns the
        ``rd_resp__data`` values in request order."""
        d = self.dut
        n = len(requests)
        gaps = self.stalls.gaps(n) if self.stalls else np.zeros(n, np.int64)
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

    async def read_output(self, image: NetworkImage, layer: int, bank: int) -> np.ndarray:
        """Layer ``layer``'s physical outputs from activation bank ``bank``."""
        dsc = image.layers[layer]
        reqs = host.output_reads(self.p, bank, dsc.rows_per_pe)
        resp = await self.read(reqs)
        if len(resp) != len(reqs):
            raise SimError(f"{len(reqs)} reads, {len(resp)} responses")
        return host.assemble_output(self.p, resp, dsc.n_out)

    async def counters(self, t0: int, t1: int) -> RunCounters:
        d = self.dut
        await ReadOnly()
        cycles = d.cycles.value.to_unsigned()
        stalls = d.stall_cycles.value.to_unsigned()
        await self.edge
        (v,) = await self.read([(RdMem.BUSY, 0)])
        busy = host.unpack_lanes(v, self.p.n_pe, self.p.rd_lane_bits)
        return RunCounters(cycles, stalls, busy, t0, t1)
