"""Host-side driver of the EIE top level in Amaranth's simulator (async testbenches).

It plays the protocol of :mod:`hw.host` (docs/hardware.md) on an :class:`hw.top.EIE`: load a
:class:`sw.eie.pack.NetworkImage` through the wide write port, write an input vector, start, wait
for ``done``, read the outputs and the counters. The cocotb testbenches mirror it on the
generated Verilog. Example::

    dut = EIE(image.config)
    result = simulate(dut, image, x_phys, n_layers=len(image.layers))
    result.output, result.cycles, result.busy
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from amaranth.sim import Simulator

from hw import host
from hw.params import RdMem
from hw.top import EIE
from sw.eie.pack import NetworkImage


@dataclass
class RunResult:
    """What one run returns: the last layer's physical outputs and the counters."""

    output: np.ndarray  # physical order, n_out of the last layer run
    cycles: int  # total cycles of the run (the ``cycles`` port)
    stall_cycles: int
    busy: np.ndarray  # per-PE busy cycles


class AmaranthHost:
    """Drives ``dut``'s host port from inside an async testbench (``ctx``)."""

    def __init__(self, dut: EIE, ctx):
        self.dut = dut
        self.ctx = ctx
        self.params = dut.params

    async def wait_ready(self, limit: int = 1_000_000) -> None:
        for _ in range(limit):
            if self.ctx.get(self.dut.ready):
                return
            await self.ctx.tick()
        raise TimeoutError(f"EIE not ready after {limit} cycles")

    async def write(self, w: host.HostWrite) -> None:
        """One write; waits while ``wr__ready`` is low."""
        ctx, wr = self.ctx, self.dut.wr
        ctx.set(wr.mem, w.mem)
        ctx.set(wr.addr, w.addr)
        ctx.set(wr.pe_mask, w.mask)
        ctx.set(wr.data, w.data(self.params))
        ctx.set(wr.valid, 1)
        while not ctx.get(wr.ready):
            await ctx.tick()
        await ctx.tick()
        ctx.set(wr.valid, 0)

    async def load_image(self, image: NetworkImage) -> int:
        """Load every memory of ``image``; returns the number of write cycles."""
        n = 0
        for w in host.image_writes(self.params, image):
            await self.write(w)
            n += 1
        return n

    async def write_input(self, image: NetworkImage, a_phys: np.ndarray) -> None:
        for w in host.input_writes(self.params, image, a_phys):
            await self.write(w)

    async def read(self, requests: list[tuple[RdMem, int]]) -> list[int]:
        """Pipelined reads, one request per cycle; returns the ``rd_resp__data`` values."""
        ctx, rd, resp = self.ctx, self.dut.rd, self.dut.rd_resp
        out: list[int] = []
        for req in list(requests) + [None, None]:
            if req is None:
                ctx.set(rd.valid, 0)
            else:
                ctx.set(rd.mem, req[0])
                ctx.set(rd.addr, req[1])
                ctx.set(rd.valid, 1)
            await ctx.tick()
            if ctx.get(resp.valid):
                out.append(ctx.get(resp.data))
        ctx.set(rd.valid, 0)
        return out

    async def run(self, first_layer: int, n_layers: int, limit: int = 10_000_000) -> None:
        """Start layers ``first_layer ..`` and wait for ``done``."""
        ctx, dut = self.ctx, self.dut
        await self.wait_ready()
        ctx.set(dut.first_layer, first_layer)
        ctx.set(dut.n_layers, n_layers)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        for _ in range(limit):
            if ctx.get(dut.done):
                return
            await ctx.tick()
        raise TimeoutError(f"EIE not done after {limit} cycles")

    async def read_output(self, image: NetworkImage, last_layer: int, n_layers: int) -> np.ndarray:
        d = image.layers[last_layer]
        reqs = host.output_reads(self.params, host.output_bank(n_layers), d.rows_per_pe)
        return host.assemble_output(self.params, await self.read(reqs), d.n_out)

    async def read_busy(self) -> np.ndarray:
        (v,) = await self.read([(RdMem.BUSY, 0)])
        return host.unpack_lanes(v, self.params.n_pe, self.params.rd_lane_bits)

    async def infer(self, image: NetworkImage, a_phys: np.ndarray, first_layer: int = 0,
                    n_layers: int | None = None) -> RunResult:
        """Write the input, run, read the outputs and counters (the image already loaded)."""
        n_layers = len(image.layers) - first_layer if n_layers is None else n_layers
        await self.write_input(image, a_phys)
        await self.run(first_layer, n_layers)
        out = await self.read_output(image, first_layer + n_layers - 1, n_layers)
        return RunResult(out, self.ctx.get(self.dut.cycles), self.ctx.get(self.dut.stall_cycles),
                         await self.read_busy())


def simulate(image: NetworkImage, inputs: list[np.ndarray], first_layer: int = 0,
             n_layers: int | None = None, dut: EIE | None = None,
             vcd: str | None = None) -> list[RunResult]:
    """Build (or take) an EIE for ``image.config``, load ``image`` and run every physical input
    vector of ``inputs`` through layers ``first_layer ..`` in Amaranth's simulator."""
    dut = dut or EIE(image.config)
    results: list[RunResult] = []

    async def bench(ctx):
        drv = AmaranthHost(dut, ctx)
        await drv.wait_ready()
        await drv.load_image(image)
        for a in inputs:
            results.append(await drv.infer(image, a, first_layer, n_layers))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()
    return results
