"""A Wishbone B4 initiator for Amaranth's simulator (async testbenches): the bus object of
:class:`hw.soc.bus_host.AsyncBusHost` for an :class:`hw.soc.frontend.EIEBus` (or anything
with a :mod:`hw.soc.wishbone` target port) in Amaranth's simulator.

Classic cycles (``stb`` held until ``ack``/``err``) or pipelined ones (a request per cycle
while ``stall`` is low, the answers counted back); a block of words is one bus cycle (``cyc``
high throughout); optional random idle cycles between requests (``stb`` low, the initiator's
wait states). ``err`` ends the block and raises :class:`hw.soc.bus_host.BusError`; a request
not answered within ``timeout`` cycles fails the test (a hung bus).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hw.soc.bus_host import BusError


class WishboneInitiator:
    """Drives ``bus`` (the target's ``In(wishbone.Signature)`` port) from testbench ``ctx``."""

    def __init__(self, ctx, bus, *, pipelined: bool = False, rng: np.random.Generator | None = None,
                 p_idle: float = 0.0, max_idle: int = 3, timeout: int = 10_000):
        self.ctx = ctx
        self.bus = bus
        self.pipelined = pipelined
        self.rng = rng
        self.p_idle = p_idle
        self.max_idle = max_idle
        self.timeout = timeout
        # statistics: cycles with a request the target stalled / did not answer yet
        self.stalled = 0
        self.waited = 0
        self.accesses = 0

    async def write(self, addr: int, words: Sequence[int]) -> None:
        await self._block(addr, [int(w) for w in words], True)

    async def read(self, addr: int, count: int) -> list[int]:
        return await self._block(addr, [0] * count, False)

    async def tick(self, n: int = 1) -> None:
        for _ in range(n):
            await self.ctx.tick()

    def _idle(self) -> int:
        if self.rng is None or self.rng.random() >= self.p_idle:
            return 0
        return int(self.rng.integers(1, self.max_idle + 1))

    def _request(self, addr: int, we: bool, data: int) -> None:
        ctx, b = self.ctx, self.bus
        ctx.set(b.stb, 1)
        ctx.set(b.adr, addr)
        ctx.set(b.we, int(we))
        ctx.set(b.dat_w, data)
        ctx.set(b.sel, (1 << len(b.sel)) - 1)

    async def _block(self, addr: int, data: list[int], we: bool) -> list[int]:
        ctx, b = self.ctx, self.bus
        n = len(data)
        out: list[int] = []
        issued = 0  # requests accepted (pipelined) or answered (classic)
        gap = self._idle()
        ctx.set(b.cyc, 1)
        wait = 0
        try:
            while len(out) < n:
                offer = issued < n and gap == 0
                if offer:
                    self._request(addr + issued, we, data[issued])
                else:
                    ctx.set(b.stb, 0)
                stall = bool(ctx.get(b.stall)) if hasattr(b, "stall") else False
                ack, err = bool(ctx.get(b.ack)), bool(ctx.get(b.err)) if hasattr(b, "err") else False
                dat = ctx.get(b.dat_r)
                await ctx.tick()
                if gap:
                    gap -= 1
                if self.pipelined and offer and not stall:
                    issued += 1
                    gap = self._idle()
                elif offer and stall:
                    self.stalled += 1
                if err:
                    raise BusError(f"err at word address {addr + len(out):#x}",
                                   addr=addr + len(out))
                if ack:
                    out.append(int(dat))
                    self.accesses += 1
                    wait = 0
                    if not self.pipelined:
                        issued += 1
                        gap = self._idle()
                        ctx.set(b.stb, 0)
                elif offer or issued > len(out):
                    self.waited += 1
                    wait += 1
                    if wait > self.timeout:
                        raise AssertionError(f"the bus hung: no answer to the access at "
                                             f"{addr + len(out):#x} in {self.timeout} cycles")
        finally:
            ctx.set(b.cyc, 0)
            ctx.set(b.stb, 0)
        return out if not we else []

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
