"""What a Wishbone B4 initiator does, cycle by cycle, written once for every simulator.

:class:`Initiator` holds the settings and statistics (classic or pipelined cycles, random idle
cycles between requests, the hang timeout, the counts of stalled and waiting cycles);
:class:`BlockCycle` is one block of words as one bus cycle (``cyc`` high throughout), without
any I/O: each cycle the simulator front end asks :meth:`BlockCycle.offer` what to drive
(a request, or ``stb`` low), samples ``stall``/``ack``/``err``/``dat_r`` before the clock edge
and, after it, hands them to :meth:`BlockCycle.clock`. Classic cycles hold ``stb`` until
``ack``/``err``; pipelined ones offer a request every cycle, accepted in a cycle with ``stall``
low, the answers counted back in order. ``err`` ends the block and raises
:class:`hw.soc.bus_host.BusError`; a request not answered within ``timeout`` cycles fails (a
hung bus). The front ends: :mod:`sim.amaranth_wishbone` (Amaranth's simulator) and
:mod:`sim.cocotb_wishbone` (cocotb).
"""

from __future__ import annotations

import numpy as np

from hw.soc.bus_host import BusError


class Initiator:
    """Settings and statistics shared by the simulator front ends."""

    def __init__(self, *, pipelined: bool = False, rng: np.random.Generator | None = None,
                 p_idle: float = 0.0, max_idle: int = 3, timeout: int = 10_000):
        self.pipelined = pipelined
        self.rng = rng
        self.p_idle = p_idle
        self.max_idle = max_idle
        self.timeout = timeout
        self.stalled = 0  # cycles a request was offered and the target stalled
        self.waited = 0  # cycles an access waited for its answer
        self.accesses = 0

    def idle_cycles(self) -> int:
        """Idle cycles before the next request (0, or 1..max_idle with probability p_idle)."""
        if self.rng is None or self.rng.random() >= self.p_idle:
            return 0
        return int(self.rng.integers(1, self.max_idle + 1))


class BlockCycle:
    """One block access: ``len(data)`` words from word address ``addr``."""

    def __init__(self, initiator: Initiator, addr: int, data: list[int], we: bool):
        self.ini = initiator
        self.addr = addr
        self.data = data
        self.we = we
        self.out: list[int] = []
        self.issued = 0  # requests accepted (pipelined) or answered (classic)
        self.gap = initiator.idle_cycles()
        self.wait = 0
        self._offered = False

    @property
    def done(self) -> bool:
        return len(self.out) >= len(self.data)

    def offer(self) -> tuple[int, int] | None:
        """The request to drive this cycle, ``(adr, dat_w)``, or None (``stb`` low)."""
        self._offered = self.issued < len(self.data) and self.gap == 0
        if not self._offered:
            return None
        return self.addr + self.issued, self.data[self.issued]

    def clock(self, stall: bool, ack: bool, err: bool, dat: int) -> None:
        """The clock edge, with what the target answered in the cycle before it."""
        ini, offered = self.ini, self._offered
        if self.gap:
            self.gap -= 1
        if ini.pipelined and offered and not stall:
            self.issued += 1
            self.gap = ini.idle_cycles()
        elif offered and stall:
            ini.stalled += 1
        at = self.addr + len(self.out)
        if err:
            raise BusError(f"err at word address {at:#x}", addr=at)
        if ack:
            self.out.append(0 if self.we else int(dat))
            ini.accesses += 1
            self.wait = 0
            if not ini.pipelined:
                self.issued += 1
                self.gap = ini.idle_cycles()
        elif offered or self.issued > len(self.out):
            ini.waited += 1
            self.wait += 1
            if self.wait > ini.timeout:
                raise AssertionError(f"the bus hung: no answer to the access at {at:#x} "
                                     f"in {ini.timeout} cycles")

    def result(self) -> list[int]:
        return [] if self.we else self.out
