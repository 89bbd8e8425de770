"""A Wishbone B4 initiator for Amaranth's simulator (async testbenches): the bus object of
:class:`hw.soc.bus_host.AsyncBusHost` for an :class:`hw.soc.frontend.EIEBus` (or anything
with a :mod:`hw.soc.wishbone` target port) in Amaranth's simulator.

What it does cycle by cycle (classic or pipelined cycles, idle cycles, ``err``, the hang
timeout) is :mod:`sim.wishbone_initiator`'s, shared with the cocotb model; this file only
drives and samples the signals.
"""

from __future__ import annotations

from collections.abc import Sequence

from .wishbone_initiator import BlockCycle, Initiator


class WishboneInitiator(Initiator):
    """Drives ``bus`` (the target's ``In(wishbone.Signature)`` port) from testbench ``ctx``."""

    def __init__(self, ctx, bus, **kw):
        super().__init__(**kw)
        self.ctx = ctx
        self.bus = bus

    async def write(self, addr: int, words: Sequence[int]) -> None:
        await self._block(addr, [int(w) for w in words], True)

    async def read(self, addr: int, count: int) -> list[int]:
        return await self._block(addr, [0] * count, False)

    async def tick(self, n: int = 1) -> None:
        for _ in range(n):
            await self.ctx.tick()

    def _request(self, addr: int, we: bool, data: int) -> None:
        ctx, b = self.ctx, self.bus
        ctx.set(b.stb, 1)
        ctx.set(b.adr, addr)
        ctx.set(b.we, int(we))
        ctx.set(b.dat_w, data)
        ctx.set(b.sel, (1 << len(b.sel)) - 1)

    async def _block(self, addr: int, data: list[int], we: bool) -> list[int]:
        ctx, b = self.ctx, self.bus
        blk = BlockCycle(self, addr, data, we)
        ctx.set(b.cyc, 1)
        try:
            while not blk.done:
                req = blk.offer()
                if req is None:
                    ctx.set(b.stb, 0)
                else:
                    self._request(req[0], we, req[1])
                stall = bool(ctx.get(b.stall)) if hasattr(b, "stall") else False
                err = bool(ctx.get(b.err)) if hasattr(b, "err") else False
                ack, dat = bool(ctx.get(b.ack)), ctx.get(b.dat_r)
                await ctx.tick()
                blk.clock(stall, ack, err, dat)
        finally:
            ctx.set(b.cyc, 0)
            ctx.set(b.stb, 0)
        return blk.result()

    async def abort_read(self, addr: int, cycles: int) -> None:
        """Start a read at ``addr`` and drop ``cyc`` after ``cycles`` cycles (no answer
        expected)."""
        ctx, b = self.ctx, self.bus
        ctx.set(b.cyc, 1)
        self._request(addr, False, 0)
        for _ in range(cycles):
            if ctx.get(b.ack) or (hasattr(b, "err") and ctx.get(b.err)):
                raise AssertionError("answered before the abort")
            await ctx.tick()
        ctx.set(b.cyc, 0)
        ctx.set(b.stb, 0)
