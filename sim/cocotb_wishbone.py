"""A Wishbone B4 initiator model for cocotb: the bus object of
:class:`hw.soc.bus_host.AsyncBusHost` on a Verilog design with a Wishbone target port
(``<prefix>__adr``, ``__dat_w``, ``__dat_r``, ``__sel``, ``__cyc``, ``__stb``, ``__we``,
``__ack``, and optionally ``__err``, ``__stall``: Amaranth's names for a
:class:`hw.soc.wishbone.Signature` port).

What it does cycle by cycle (classic or pipelined cycles, random idle cycles, ``err``, the
hang timeout, the counts of stalled and waiting cycles that show a bench's back-pressure and
wait states happened) is :mod:`sim.wishbone_initiator`'s, shared with the Amaranth model;
this file drives and samples the signals. (:class:`CocotbextBus` puts
cocotbext-wishbone's master behind the same two methods: a third-party model of the bus.)

Every method starts in a cycle's writable phase (right after a rising edge) and returns in
the next one.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from cocotb.triggers import ReadOnly, RisingEdge

from hw.soc.bus_host import BusError

from .wishbone_initiator import BlockCycle, Initiator


def _bit(signal) -> bool:
    return str(signal.value) == "1"


class WishboneInitiator(Initiator):
    def __init__(self, dut, prefix: str = "bus", **kw):
        super().__init__(**kw)
        self.dut = dut
        self.edge = RisingEdge(dut.clk)
        self.s = {n: getattr(dut, f"{prefix}__{n}") for n in
                  ("adr", "dat_w", "dat_r", "sel", "cyc", "stb", "we", "ack")}
        for n in ("err", "stall"):
            name = f"{prefix}__{n}"
            self.s[n] = getattr(dut, name) if hasattr(dut, name) else None
        self.idle()

    def idle(self) -> None:
        s = self.s
        for n in ("cyc", "stb", "we", "adr", "dat_w"):
            s[n].value = 0
        s["sel"].value = (1 << len(s["sel"])) - 1

    async def tick(self, n: int = 1) -> None:
        for _ in range(n):
            await self.edge

    async def write(self, addr: int, words: Sequence[int]) -> None:
        await self._block(addr, [int(w) for w in words], True)

    async def read(self, addr: int, count: int) -> list[int]:
        return await self._block(addr, [0] * count, False)

    async def _block(self, addr: int, data: list[int], we: bool) -> list[int]:
        s = self.s
        blk = BlockCycle(self, addr, data, we)
        s["cyc"].value = 1
        s["we"].value = int(we)
        try:
            while not blk.done:
                req = blk.offer()
                if req is None:
                    s["stb"].value = 0
                else:
                    s["stb"].value = 1
                    s["adr"].value, s["dat_w"].value = req
                await ReadOnly()
                stall = s["stall"] is not None and _bit(s["stall"])
                ack = _bit(s["ack"])
                err = s["err"] is not None and _bit(s["err"])
                dat = s["dat_r"].value.to_unsigned() if ack and not we else 0
                await self.edge
                blk.clock(stall, ack, err, dat)
        finally:
            s["cyc"].value = 0
            s["stb"].value = 0
        return blk.result()

    async def abort_read(self, addr: int, cycles: int) -> None:
        """Start a read at ``addr`` and drop ``cyc`` after ``cycles`` cycles."""
        s = self.s
        s["cyc"].value = 1
        s["stb"].value = 1
        s["we"].value = 0
        s["adr"].value = addr
        for _ in range(cycles):
            await ReadOnly()
            if _bit(s["ack"]) or (s["err"] is not None and _bit(s["err"])):
                raise AssertionError("answered before the abort")
            await self.edge
        s["cyc"].value = 0
        s["stb"].value = 0


class CocotbextBus:
    """The bus object of :class:`hw.soc.bus_host.AsyncBusHost` over cocotbext-wishbone's
    ``WishboneMaster`` (pipelined cycles: it offers the next request once ``stall`` falls),
    with random idle cycles before requests; an ``err`` answer raises
    :class:`hw.soc.bus_host.BusError` after the cycle."""

    SIGNALS = {"cyc": "cyc", "stb": "stb", "we": "we", "adr": "adr", "datwr": "dat_w",
               "datrd": "dat_r", "ack": "ack", "err": "err", "stall": "stall", "sel": "sel"}

    def __init__(self, dut, prefix: str = "bus", *, rng: np.random.Generator | None = None,
                 p_idle: float = 0.0, max_idle: int = 3, timeout: int = 10_000):
        from cocotbext.wishbone.driver import WishboneMaster

        self.master = WishboneMaster(dut, prefix, dut.clk, width=32, timeout=timeout,
                                     signals_dict=self.SIGNALS, bus_separator="__")
        self.gaps = Initiator(rng=rng, p_idle=p_idle, max_idle=max_idle)  # the idle draws
        self.sel = (1 << len(getattr(dut, f"{prefix}__sel"))) - 1

    async def _cycle(self, addr: int, data: list[int | None]) -> list[int]:
        from cocotbext.wishbone.driver import WBOp

        ops = [WBOp(addr + i, d, idle=self.gaps.idle_cycles(), sel=self.sel) for i, d in enumerate(data)]
        res = await self.master.send_cycle(ops)
        if len(res) != len(ops):
            raise AssertionError(f"{len(ops)} requests at {addr:#x}, {len(res)} answers")
        for i, r in enumerate(res):
            if r.ack != 1:
                raise BusError(f"err at word address {addr + i:#x}", addr=addr + i)
        return [int(r.datrd) for r in res]

    async def write(self, addr: int, words: Sequence[int]) -> None:
        await self._cycle(addr, [int(w) for w in words])

    async def read(self, addr: int, count: int) -> list[int]:
        return await self._cycle(addr, [None] * count)
