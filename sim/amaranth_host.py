"""The host protocol's backend for Amaranth's simulator (async testbenches).

:class:`AmaranthHost` plays a program of :mod:`hw.host` steps on an :class:`hw.top.EIE`, each
step as docs/hardware.md ("Host protocol") defines it. Example::

    results = simulate(image, [x_phys])   # reset, load, one inference per input vector
    results[0].output, results[0].cycles, results[0].busy
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from amaranth.hdl import ClockDomain, Module
from amaranth.sim import Simulator

from hw import host
from hw.params import RdMem
from hw.top import EIE
from sw.eie.pack import NetworkImage


class ProtocolError(AssertionError):
    """The design broke the host protocol (timeout, port not ready, dropped response)."""


@dataclass
class RunResult:
    """What one inference returns: the last layer's physical outputs and the counters."""

    output: np.ndarray  # physical order, n_out of the last layer run
    cycles: int  # total cycles of the run (the ``cycles`` port)
    stall_cycles: int
    busy: np.ndarray  # per-PE busy cycles


def with_reset(dut: EIE) -> tuple[Module, object]:
    """``dut`` in a module with an explicit ``sync`` domain, and that domain's reset signal
    (what a :class:`hw.host.Reset` step drives)."""
    top = Module()
    top.domains.sync = cd = ClockDomain("sync")
    top.submodules.dut = dut
    return top, cd.rst


class AmaranthHost:
    """Plays programs on ``dut``'s host port from inside an async testbench (``ctx``);
    ``rst``: the sync domain's reset (:func:`with_reset`), needed by ``Reset`` steps."""

    def __init__(self, dut: EIE, ctx, rst=None):
        self.dut = dut
        self.ctx = ctx
        self.rst = rst
        self.params = dut.params
        self.cycle = 0  # edges since the bench began: the number of the current cycle
        self._start_cycle = 0

    async def run(self, program: host.Program) -> host.Outcome:
        return await host.play(self.params, program, self.step)

    async def step(self, s: host.Step):
        ctx, dut = self.ctx, self.dut
        match s:
            case host.Reset():
                if self.rst is None:
                    raise ProtocolError("a Reset step needs the domain's reset (with_reset)")
                for sig in (dut.wr.valid, dut.rd.valid, dut.start):
                    ctx.set(sig, 0)
                ctx.set(self.rst, 1)
                await self._tick(s.cycles)
                ctx.set(self.rst, 0)
                await self._wait(dut.ready, s.limit)
            case host.WaitReady():
                await self._wait(dut.ready, s.limit)
            case host.Write():
                await self._write(s.writes)
            case host.Idle():
                await self._tick(s.cycles)
            case host.Start():
                self._require(dut.ready, "start")
                ctx.set(dut.first_layer, s.first_layer)
                ctx.set(dut.n_layers, s.n_layers)
                ctx.set(dut.start, 1)
                await self._tick()
                ctx.set(dut.start, 0)
                self._start_cycle = self.cycle
            case host.WaitDone():
                t = time.perf_counter()
                done = await self._wait(dut.done, s.limit)
                return host.RunSpan(self._start_cycle, done, time.perf_counter() - t)
            case host.ReadCounters():
                counts = ctx.get(dut.cycles), ctx.get(dut.stall_cycles)
                await self._tick()
                return (*counts, await self._read(s.requests(self.params)))
            case host.Read() | host.ReadOutput():
                return await self._read(s.requests(self.params))

    async def _tick(self, n: int = 1) -> None:
        for _ in range(n):
            await self.ctx.tick()
        self.cycle += n

    def _require(self, signal, what: str) -> None:
        if not self.ctx.get(signal):
            raise ProtocolError(f"{what} in cycle {self.cycle}: the design is not ready")

    async def _wait(self, signal, limit: int) -> int:
        """Clock until ``signal`` is high, then past that cycle; returns that cycle."""
        for _ in range(limit):
            if self.ctx.get(signal):
                seen = self.cycle
                await self._tick()
                return seen
            await self._tick()
        raise ProtocolError(f"{signal.name} not high after {limit} cycles")

    async def _write(self, writes: tuple[host.HostWrite, ...]) -> None:
        ctx, wr = self.ctx, self.dut.wr
        self._require(wr.ready, "write")
        await self._tick()
        ctx.set(wr.valid, 1)
        for w in writes:
            ctx.set(wr.mem, w.mem)
            ctx.set(wr.addr, w.addr)
            ctx.set(wr.pe_mask, w.mask)
            ctx.set(wr.data, w.data(self.params))
            await self._tick()
        ctx.set(wr.valid, 0)
        self._require(wr.ready, "end of a write block")
        await self._tick()

    async def _read(self, requests: list[tuple[RdMem, int]], limit: int = 16) -> list[int]:
        ctx, rd, resp = self.ctx, self.dut.rd, self.dut.rd_resp
        n, i, idle = len(requests), 0, 0
        out: list[int] = []
        while len(out) < n:
            if i < n:
                ctx.set(rd.mem, requests[i][0])
                ctx.set(rd.addr, requests[i][1])
                ctx.set(rd.valid, 1)
                i += 1
            else:
                ctx.set(rd.valid, 0)
            await self._tick()
            if ctx.get(resp.valid):
                out.append(ctx.get(resp.data))
            elif i == n:
                idle += 1
                if idle > limit:
                    raise ProtocolError(f"{n} read requests, {len(out)} responses")
        ctx.set(rd.valid, 0)
        await self._tick()
        return out


def run_sim(dut, *benches, processes=(), vcd: str | None = None) -> None:
    """Run async testbenches (and processes) on ``dut`` with a clock; optional VCD."""
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    for b in benches:
        sim.add_testbench(b)
    for p in processes:
        sim.add_process(p)
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()


def run_program(dut: EIE, program: host.Program, vcd: str | None = None) -> host.Outcome:
    """Play ``program`` on ``dut`` (wrapped by :func:`with_reset`) in Amaranth's simulator."""
    top, rst = with_reset(dut)
    result = {}

    async def bench(ctx):
        result["out"] = await AmaranthHost(dut, ctx, rst).run(program)

    run_sim(top, bench, vcd=vcd)
    return result["out"]


def simulate(image: NetworkImage, inputs: list[np.ndarray], first_layer: int = 0,
             n_layers: int | None = None, dut: EIE | None = None,
             vcd: str | None = None) -> list[RunResult]:
    """Build (or take) an EIE for ``image.config``, load ``image`` and run every physical input
    vector of ``inputs`` through layers ``first_layer ..`` in Amaranth's simulator."""
    dut = dut or EIE(image.config)
    p = dut.params
    program = host.load_program(p, image)
    for a in inputs:
        program += host.inference_program(p, image, a, first_layer, n_layers)
    out = run_program(dut, program, vcd)
    return [RunResult(y, c.cycles, c.stall_cycles, c.busy)
            for (_, y), c in zip(out.outputs, out.counters, strict=True)]
