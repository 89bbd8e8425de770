"""The host protocol over the front end's bus: :mod:`hw.host` programs played as Wishbone word
accesses at the addresses of a :class:`hw.soc.regmap.RegisterMap`.

*Sans-IO*: :func:`program_ops` turns a program into a generator of bus operations
(:class:`BusWrite`: a block of words at consecutive addresses; :class:`BusRead`: a block read)
that is sent each read's words and returns the same :class:`hw.host.Outcome` the direct
backends return. Runners do the I/O:

- :class:`BusHost` (synchronous) over any object with ``write(addr, words)`` and
  ``read(addr, count) -> list[int]`` raising :class:`BusError` when the bus answers ``err``:
  the UART link of a board, a simulated link;
- :class:`AsyncBusHost` over an object with the same methods as coroutines (simulation
  testbenches: :mod:`sim.amaranth_wishbone`, the cocotb bench).

Each step, as bus operations (docs/soc.md "Host programs over the bus"):

- ``Reset``: CTRL.RESET, then STATUS polled until READY (at most ``limit`` reads);
  ``WaitReady``: the poll alone; ``Idle``: nothing (time passes on the bus anyway);
- ``Write``: each run of writes into one memory becomes, per PE, the words of that PE's
  entries in order (one block per run of consecutive addresses: one PE's memory is one
  block); a run whose writes all carry the same value for every PE (codebooks) is written
  once to the broadcast PE; ``ACT_CLEAR`` is the ACT_CLEAR register; layer-table entries go to
  the LAYER window;
- ``Start``: FIRST_LAYER, N_LAYERS, CTRL.START (one block: the registers are consecutive);
- ``WaitDone``: STATUS polled until DONE (at most ``limit`` reads), then CYCLES: the
  :class:`hw.host.RunSpan` counts the run from 0 to the ``cycles`` counter (a bus host does not
  see the simulator's cycle numbers);
- ``Read``/``ReadOutput``: each request's lanes read from the ACT / BUSY windows, PE by PE
  (a PE's rows are one block), reassembled into the core's response words;
- over a bus with strided blocks (``max_stride`` > 0: the UART link's SREAD / SWRITE frames),
  reads of consecutive rows and per-PE writes of one-word entries to consecutive rows of
  every PE go row by row instead, every PE's entry of a row in turn: one strided block
  (:class:`BusRead` / :class:`BusWrite` with ``group`` = the PEs, ``stride`` = the window's
  PE step) instead of one block per PE;
- ``ReadCounters``: CYCLES and STALL_CYCLES (one block), then the BUSY window (one block).

A refused access (:class:`BusError` from the bus object) is explained before it is raised
again: ERROR and ERROR_ADDR are read, the error is cleared, and the new :class:`BusError`
names the code and what the address addresses.
"""

from __future__ import annotations

import time
from collections.abc import Generator, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from sw.errors import ConfigError, EIEError

from .. import host
from ..params import HWParams, RdMem, WrMem
from .regmap import DATA_WIDTH, ERROR_TEXT, ErrorCode, RegisterMap

__all__ = ["BusError", "BusWrite", "BusRead", "Bus", "AsyncBus", "BusHost", "AsyncBusHost",
           "program_ops", "identify_ops", "write_blocks"]


class BusError(EIEError):
    """The bus refused an access (``err``), or an access could not be completed. ``code`` and
    ``addr``: the front end's ERROR and ERROR_ADDR, once known."""

    def __init__(self, message: str, *, addr: int | None = None, code: int | None = None,
                 explained: bool = False):
        super().__init__(message)
        self.addr = addr
        self.code = code
        self.explained = explained


@dataclass(frozen=True)
class BusWrite:
    """Words to consecutive word addresses from ``addr``; strided (``group`` > 0): word k to
    ``addr + (k % group) * stride + k // group``."""

    addr: int
    words: tuple[int, ...]
    stride: int = 1
    group: int = 0

    @property
    def count(self) -> int:
        return len(self.words)


@dataclass(frozen=True)
class BusRead:
    """``count`` words from consecutive word addresses from ``addr``; strided (``group`` > 0):
    word k from ``addr + (k % group) * stride + k // group``."""

    addr: int
    count: int
    stride: int = 1
    group: int = 0


Op = BusWrite | BusRead
Ops = Generator[Op, "list[int] | None", object]


class Bus(Protocol):
    def write(self, addr: int, words: Sequence[int]) -> None: ...
    def read(self, addr: int, count: int) -> list[int]: ...


class AsyncBus(Protocol):
    async def write(self, addr: int, words: Sequence[int]) -> None: ...
    async def read(self, addr: int, count: int) -> list[int]: ...


# -- words to blocks -----------------------------------------------------------------------------
def blocks(words: Iterable[tuple[int, int]], max_burst: int | None = None) -> list[BusWrite]:
    """(address, word) pairs in order -> writes of runs of consecutive addresses."""
    out: list[BusWrite] = []
    addr, run = None, []
    for a, w in words:
        if run and (a != addr + len(run) or (max_burst and len(run) >= max_burst)):
            out.append(BusWrite(addr, tuple(run)))
            run = []
        if not run:
            addr = a
        run.append(w)
    if run:
        out.append(BusWrite(addr, tuple(run)))
    return out


def _read_blocks(addrs: Sequence[int], max_burst: int | None) -> list[BusRead]:
    return [BusRead(b.addr, len(b.words)) for b in blocks(((a, 0) for a in addrs), max_burst)]


def _runs(writes: Sequence[host.HostWrite]) -> list[list[host.HostWrite]]:
    """Consecutive writes into one memory (``ACT_CLEAR`` one at a time)."""
    out: list[list[host.HostWrite]] = []
    for w in writes:
        if out and out[-1][0].mem == w.mem and w.mem != WrMem.ACT_CLEAR:
            out[-1].append(w)
        else:
            out.append([w])
    return out


def write_words(rm: RegisterMap, writes: Sequence[host.HostWrite]) -> list[tuple[int, int]]:
    """The (address, word) pairs that perform ``writes`` through the front end, in order (see
    the module docstring)."""
    n = rm.n_pe
    every = (1 << n) - 1
    out: list[tuple[int, int]] = []
    for run in _runs(writes):
        mem = run[0].mem
        if mem == WrMem.ACT_CLEAR:
            out.append((rm.reg("ACT_CLEAR").addr, 0))
            continue
        win = rm.write_window(mem)
        if not win.per_pe:  # the layer table: lane 0
            for w in run:
                out += [(win.addr(w.addr, word=i), x) for i, x in enumerate(win.split(w.lanes[0]))]
        elif all(w.mask == every and len(set(w.lanes)) == 1 for w in run):
            for w in run:
                out += [(win.addr(w.addr, win.pe_broadcast, word=i), x)
                        for i, x in enumerate(win.split(w.lanes[0]))]
        else:
            for k in range(n):
                for w in run:
                    if w.mask >> k & 1:
                        out += [(win.addr(w.addr, k, word=i), x)
                                for i, x in enumerate(win.split(w.lanes[k]))]
    return out


def _strided_run(rm: RegisterMap, run: Sequence[host.HostWrite],
                 max_stride: int) -> BusWrite | None:
    """A run of per-PE writes of one-word entries to consecutive rows of every PE as one
    strided write (row by row, PE by PE), or None."""
    n = rm.n_pe
    every = (1 << n) - 1
    mem = run[0].mem
    if mem == WrMem.ACT_CLEAR or n < 2:
        return None
    win = rm.write_window(mem)
    if not win.per_pe or win.words != 1 or (1 << win.pe_shift) > max_stride:
        return None
    if any(w.mask != every for w in run) or all(len(set(w.lanes)) == 1 for w in run):
        return None  # (a run with one value for every PE goes once, to the broadcast PE)
    if any(b.addr != a.addr + 1 for a, b in zip(run, run[1:], strict=False)):
        return None
    words = tuple(x for w in run for k in range(n) for x in win.split(w.lanes[k]))
    return BusWrite(win.addr(run[0].addr, 0), words, 1 << win.pe_shift, n)


def write_blocks(rm: RegisterMap, writes: Sequence[host.HostWrite],
                 max_burst: int | None = None, max_stride: int = 0) -> list[BusWrite]:
    """The bus writes that perform a ``Write`` step's ``writes`` (``max_stride`` > 0: a bus
    with strided blocks of strides up to that)."""
    if not max_stride:
        return blocks(write_words(rm, writes), max_burst)
    out: list[BusWrite] = []
    pending: list[host.HostWrite] = []
    for run in _runs(writes):
        op = _strided_run(rm, run, max_stride)
        if op is None:
            pending += run
            continue
        out += blocks(write_words(rm, pending), max_burst)
        pending = []
        out.append(op)
    return out + blocks(write_words(rm, pending), max_burst)


# -- the player ----------------------------------------------------------------------------------
class _Player:
    def __init__(self, rm: RegisterMap, params: HWParams, max_burst: int | None,
                 max_stride: int = 0):
        self.rm = rm
        self.p = params
        self.max_burst = max_burst
        self.max_stride = max_stride

    def op(self, op: Op, what: str):
        """Do ``op``; a refused access is explained (ERROR, ERROR_ADDR read, then cleared)."""
        try:
            got = yield op
        except BusError as e:
            if e.explained:
                raise
            yield from self.explain(e, what)
        if isinstance(op, BusRead) and (got is None or len(got) != op.count):
            raise BusError(f"{what}: read of {op.count} word(s) at {op.addr:#x} returned "
                           f"{'nothing' if got is None else len(got)}")
        return got

    def explain(self, e: BusError, what: str):
        rm = self.rm
        try:
            code = (yield BusRead(rm.reg("ERROR").addr, 1))[0]
            addr = (yield BusRead(rm.reg("ERROR_ADDR").addr, 1))[0]
            code = code & rm.reg("ERROR").field("CODE").mask
            yield BusWrite(rm.reg("CTRL").addr, (rm.reg("CTRL").bit("CLEAR_ERROR"),))
        except (BusError, TypeError, ValueError):
            raise e from None
        try:
            name, text = ErrorCode(code).name, ERROR_TEXT[ErrorCode(code)]
        except ValueError:
            name, text = str(code), "unknown error code"
        raise BusError(f"{what}: refused by the accelerator: {name} ({text}) at word address "
                       f"{addr:#x} ({rm.locate(addr)})", addr=addr, code=code,
                       explained=True) from None

    def write(self, addr: int, words: Sequence[int], what: str):
        yield from self.op(BusWrite(addr, tuple(words)), what)

    def read(self, addr: int, count: int, what: str):
        return (yield from self.op(BusRead(addr, count), what))

    def reg(self, name: str, what: str):
        return (yield from self.read(self.rm.reg(name).addr, 1, what))[0]

    def poll(self, field: str, limit: int, what: str) -> int:
        """Read STATUS until ``field`` is set (at most ``limit`` reads); returns the reads."""
        bit = self.rm.reg("STATUS").bit(field)
        for i in range(max(1, limit)):
            if (yield from self.reg("STATUS", what)) & bit:
                return i + 1
        raise BusError(f"{what}: STATUS.{field} not set after {max(1, limit)} reads")

    def lanes(self, reqs: Sequence[tuple[RdMem, int]], what: str) -> list[int]:
        """Read requests of the core's read port, each as the core's response word (lane k =
        PE k), from the read windows PE by PE."""
        rm, p = self.rm, self.p
        lb = p.local_bits
        if self.max_stride and rm.n_pe > 1:
            return (yield from self.strided_lanes(reqs, what))
        per_pe: list[list[int]] = []
        for k in range(rm.n_pe):
            addrs = []
            for mem, a in reqs:
                win = rm.read_window(mem)
                if mem == RdMem.ACT:
                    addrs.append(win.addr(a & ((1 << lb) - 1), k, bank=a >> lb))
                else:
                    addrs.append(win.addr(0, k))
            got: list[int] = []
            for b in _read_blocks(addrs, self.max_burst):
                got += (yield from self.op(b, what))
            per_pe.append(got)
        return [host.pack_lanes([per_pe[k][i] for k in range(rm.n_pe)], p.rd_lane_bits)
                for i in range(len(reqs))]

    def strided_lanes(self, reqs: Sequence[tuple[RdMem, int]], what: str) -> list[int]:
        """:meth:`lanes` over a bus with strided blocks: requests of consecutive rows of one
        window read row by row, every PE's entry in turn (one strided read)."""
        rm, p = self.rm, self.p
        n, lb = rm.n_pe, p.local_bits
        addr0 = []  # each request's address in PE 0, and its window's PE step
        for mem, a in reqs:
            win = rm.read_window(mem)
            a0 = win.addr(a & ((1 << lb) - 1), 0, bank=a >> lb) if mem == RdMem.ACT \
                else win.addr(0, 0)
            addr0.append((a0, 1 << win.pe_shift))
        lanes: list[int] = []
        i = 0
        while i < len(reqs):
            a0, step = addr0[i]
            j = i + 1
            while j < len(reqs) and addr0[j] == (a0 + j - i, step):
                j += 1
            if step > self.max_stride:
                raise BusError(f"{what}: a PE step of {step} words is beyond the bus's "
                               f"strides (at most {self.max_stride})")
            got = yield from self.op(BusRead(a0, (j - i) * n, step, n), what)
            lanes += [host.pack_lanes(got[r * n:(r + 1) * n], p.rd_lane_bits)
                      for r in range(j - i)]
            i = j
        return lanes

    def step(self, s: host.Step):
        """One step's operations; returns the step's raw observation (as the direct backends
        return it) or None."""
        rm = self.rm
        ctrl = rm.reg("CTRL")
        match s:
            case host.Reset():
                yield from self.write(ctrl.addr, [ctrl.bit("RESET")], "reset")
                yield from self.poll("READY", s.limit, "reset")
            case host.WaitReady():
                yield from self.poll("READY", s.limit, "wait for ready")
            case host.Idle():
                pass
            case host.Write():
                for b in write_blocks(rm, s.writes, self.max_burst, self.max_stride):
                    yield from self.op(b, f"write of {len(b.words)} word(s) at {b.addr:#x} "
                                          f"({rm.locate(b.addr)})")
            case host.Start():
                words = [(rm.reg("FIRST_LAYER").addr, s.first_layer),
                         (rm.reg("N_LAYERS").addr, s.n_layers), (ctrl.addr, ctrl.bit("START"))]
                for b in blocks(words, self.max_burst):
                    yield from self.op(b, f"start of layers {s.first_layer}.."
                                          f"{s.first_layer + s.n_layers - 1}")
            case host.WaitDone():
                t = time.perf_counter()
                yield from self.poll("DONE", s.limit, "wait for done")
                cycles = yield from self.reg("CYCLES", "wait for done")
                return host.RunSpan(0, cycles, time.perf_counter() - t)
            case host.ReadCounters():
                c0 = rm.reg("CYCLES").addr
                counts = []
                for b in _read_blocks([c0, rm.reg("STALL_CYCLES").addr], self.max_burst):
                    counts += (yield from self.op(b, "read counters"))
                return (*counts, (yield from self.lanes(s.requests(self.p), "read counters")))
            case host.Read() | host.ReadOutput():
                return (yield from self.lanes(s.requests(self.p), "read"))
            case _:
                raise TypeError(f"not a host step: {s!r}")
        return None

    def program(self, program: host.Program):
        out = host.Outcome()
        for s in program:
            raw = yield from self.step(s)
            if raw is not None:
                out.record(self.p, s, raw)
        return out

    def identify(self):
        """Check that the bus reaches an EIE front end of this map's configuration."""
        rm = self.rm
        ident, version, chash = yield from self.read(rm.reg("ID").addr, 3, "identify")
        if rm.reg("VERSION").addr != rm.reg("ID").addr + 1 or \
                rm.reg("CONFIG_HASH").addr != rm.reg("ID").addr + 2:
            raise AssertionError("ID, VERSION, CONFIG_HASH are consecutive registers")
        if ident != rm.id_magic:
            raise BusError(f"no EIE front end on the bus: ID reads {ident:#010x}, expected "
                           f"{rm.id_magic:#010x}")
        if version >> 16 != rm.version[0]:
            raise BusError(f"the accelerator's register map is version {version >> 16}."
                           f"{version & 0xFFFF}, this driver speaks {rm.version[0]}.x")
        if chash != rm.config_hash:
            raise ConfigError(f"the accelerator was built for another configuration: hash "
                              f"{chash:#010x}, the register map of {rm.config.name!r} has "
                              f"{rm.config_hash:#010x}")
        return None


def program_ops(rm: RegisterMap, program: host.Program, max_burst: int | None = None,
                max_stride: int = 0) -> Ops:
    """The bus operations of ``program`` (a generator: send each :class:`BusRead` its words,
    throw a :class:`BusError` into it for a refused access); returns the
    :class:`hw.host.Outcome`. ``max_burst``: the longest block (words) of one operation;
    ``max_stride`` > 0: the bus takes strided blocks (strides up to that)."""
    return _Player(rm, HWParams(rm.config), max_burst, max_stride).program(program)


def identify_ops(rm: RegisterMap) -> Ops:
    """Check the bus reaches a front end of ``rm``'s configuration (ID, VERSION, CONFIG_HASH);
    raises :class:`BusError` / :class:`sw.errors.ConfigError` otherwise."""
    return _Player(rm, HWParams(rm.config), None).identify()


def _check(words, op: BusRead) -> list[int]:
    words = [int(w) for w in words]
    if any(not 0 <= w < (1 << DATA_WIDTH) for w in words):
        raise BusError(f"read at {op.addr:#x} returned a value that is not a 32-bit word")
    return words


# -- runners -------------------------------------------------------------------------------------
class BusHost:
    """Plays programs over a synchronous ``bus`` (``write(addr, words)``,
    ``read(addr, count)``; :class:`BusError` on ``err``). A bus with ``max_stride`` > 0 also
    has ``write_strided(addr, words, stride, group)`` and ``read_strided(addr, count, stride,
    group)`` (:class:`BusWrite` / :class:`BusRead` with ``group``)."""

    def __init__(self, bus: Bus, rm: RegisterMap, max_burst: int | None = None):
        self.bus = bus
        self.rm = rm
        self.params = HWParams(rm.config)
        self.max_burst = max_burst
        self.max_stride = int(getattr(bus, "max_stride", 0))

    def drive(self, gen: Ops):
        """Run a generator of bus operations to its end; returns its value."""
        try:
            op = next(gen)
            while True:
                got = None
                try:
                    if isinstance(op, BusWrite) and op.group:
                        self.bus.write_strided(op.addr, list(op.words), op.stride, op.group)
                    elif isinstance(op, BusWrite):
                        self.bus.write(op.addr, list(op.words))
                    elif op.group:
                        got = self.bus.read_strided(op.addr, op.count, op.stride, op.group)
                    else:
                        got = self.bus.read(op.addr, op.count)
                except BusError as e:
                    op = gen.throw(e)
                    continue
                op = gen.send(None if got is None else _check(got, op))
        except StopIteration as stop:
            return stop.value

    def run(self, program: host.Program) -> host.Outcome:
        return self.drive(program_ops(self.rm, program, self.max_burst, self.max_stride))

    def identify(self) -> None:
        self.drive(identify_ops(self.rm))


class AsyncBusHost:
    """Plays programs over an asynchronous ``bus`` (simulation testbenches)."""

    def __init__(self, bus: AsyncBus, rm: RegisterMap, max_burst: int | None = None):
        self.bus = bus
        self.rm = rm
        self.params = HWParams(rm.config)
        self.max_burst = max_burst

    async def drive(self, gen: Ops):
        try:
            op = next(gen)
            while True:
                got = None
                try:
                    if isinstance(op, BusWrite):
                        await self.bus.write(op.addr, list(op.words))
                    else:
                        got = await self.bus.read(op.addr, op.count)
                except BusError as e:
                    op = gen.throw(e)
                    continue
                op = gen.send(None if got is None else _check(got, op))
        except StopIteration as stop:
            return stop.value

    async def run(self, program: host.Program) -> host.Outcome:
        return await self.drive(program_ops(self.rm, program, self.max_burst))

    async def identify(self) -> None:
        await self.drive(identify_ops(self.rm))
