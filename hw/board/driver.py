"""The host driver of an EIE on a board: :class:`Link` speaks the UART bridge's frames
(:mod:`hw.board.protocol`) over a byte transport; :class:`Board` plays :mod:`hw.host` programs
over it at the addresses of the front end's register map (:mod:`hw.soc.bus_host`).

A *transport* is any object with ``write(data: bytes)`` and ``read(n) -> bytes`` that returns
fewer than ``n`` bytes only when its timeout has passed (pyserial's ``serial.Serial`` and
``serial.serial_for_url(...)`` are; so are the simulation links of the tests and of
sim/tb_board.py, which is how the same driver code runs against the simulated hardware), and
optionally ``reset_input_buffer()``. :func:`open_serial` opens a serial port.

Every failure is a :class:`hw.board.protocol.LinkError` (a :class:`sw.errors.EIEError`: one
line from the CLI): an error response, no response, or a garbled one. A bus error answered by
the front end reaches :class:`hw.soc.bus_host.BusHost` as its :class:`BusError`, which reads
the front end's ERROR and ERROR_ADDR registers to say why.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sw.errors import ConfigError

from . import protocol as p
from .protocol import LinkError

DEFAULT_TIMEOUT = 1.0  # seconds a response may take (pyserial's read timeout)
MAX_NOISE = 64  # bytes skipped before a response's sync byte before giving up


@dataclass
class LinkStats:
    """What went over the link: frames (request + response pairs) and bytes each way."""

    frames: int = 0
    bytes_out: int = 0
    bytes_in: int = 0

    def wire_seconds(self, baud: float) -> float:
        """Time on the wire at ``baud`` (8N1: 10 bits a byte), requests and responses one after
        the other (the link is strictly request / response)."""
        return (self.bytes_out + self.bytes_in) * p.BITS_PER_BYTE / baud


class Link:
    """Word reads and writes over the UART bridge. ``max_words``: the longest frame (default:
    asked of the bridge with a PING on first use); longer blocks are split into frames."""

    def __init__(self, transport, max_words: int | None = None):
        if max_words is not None and not 1 <= max_words <= p.MAX_WORDS:
            raise ConfigError(f"frames carry 1..{p.MAX_WORDS} words, not {max_words}")
        self.transport = transport
        self._max_words = max_words
        self.stats = LinkStats()

    @property
    def max_words(self) -> int:
        if self._max_words is None:
            self._max_words = self.ping()
        return self._max_words

    def ping(self) -> int:
        """PING the bridge: checks it is one (magic, protocol version); returns its largest
        frame in words."""
        (word,) = self._transact(p.ping(), "ping", 1)
        return p.parse_ping(word)

    def write(self, addr: int, words: Sequence[int]) -> None:
        """Write ``words`` at consecutive word addresses from ``addr``."""
        words = [int(w) for w in words]
        n = self.max_words
        for i in range(0, len(words), n):
            chunk = words[i:i + n]
            self._transact(p.write_request(addr + i, chunk),
                           f"write of {len(chunk)} word(s) at 0x{addr + i:x}", 0)

    def read(self, addr: int, count: int) -> list[int]:
        """Read ``count`` words from consecutive word addresses from ``addr``."""
        out: list[int] = []
        n = self.max_words
        for i in range(0, count, n):
            k = min(n, count - i)
            out += self._transact(p.read_request(addr + i, k),
                                  f"read of {k} word(s) at 0x{addr + i:x}", k)
        return out

    def write_strided(self, addr: int, words: Sequence[int], stride: int, group: int) -> None:
        """Write ``words`` at ``addr + (k % group) * stride + k // group`` (SWRITE frames)."""
        words = [int(w) for w in words]
        k = 0
        for a, n, g in p.strided_frames(addr, len(words), stride, group, self.max_words):
            chunk = words[k:k + n]
            self._transact(p.swrite_request(a, chunk, stride, g),
                           f"write of {n} word(s) at 0x{a:x} (stride {stride}, group {g})", 0)
            k += n

    def read_strided(self, addr: int, count: int, stride: int, group: int) -> list[int]:
        """Read ``count`` words at ``addr + (k % group) * stride + k // group`` (SREAD
        frames)."""
        out: list[int] = []
        for a, n, g in p.strided_frames(addr, count, stride, group, self.max_words):
            out += self._transact(p.sread_request(a, n, stride, g),
                                  f"read of {n} word(s) at 0x{a:x} (stride {stride}, group {g})",
                                  n)
        return out

    def _transact(self, request: bytes, what: str, expect: int) -> tuple[int, ...]:
        words = self.exchange(request, what).check(what)
        if len(words) != expect:
            raise LinkError(f"{what}: the bridge answered {len(words)} word(s), not {expect}")
        return words

    def exchange(self, request: bytes, what: str = "request") -> p.Response:
        """Send ``request`` (any bytes: the tests send malformed frames) and return the
        decoded response, whatever its status."""
        t = self.transport
        reset = getattr(t, "reset_input_buffer", None)
        if reset is not None:
            reset()  # a stale byte (a glitch, an earlier timed-out answer) is no response
        t.write(request)
        self.stats.frames += 1
        self.stats.bytes_out += len(request)
        head = self._read(3, what)
        skipped = 0
        while head[0] != p.RSP_SYNC:  # skip noise before the response
            skipped += 1
            if skipped > MAX_NOISE:
                raise LinkError(f"{what}: garbled response from the bridge (no sync byte in "
                                f"{MAX_NOISE} bytes; wrong baud rate?)")
            head = head[1:] + self._read(1, what)
        frame = head + self._read(p.response_length(head), what)
        self.stats.bytes_in += len(frame)
        return p.decode_response(frame)

    def _read(self, n: int, what: str) -> bytes:
        data = b""
        while len(data) < n:
            got = self.transport.read(n - len(data))
            if not got:
                raise LinkError(f"{what}: no response from the bridge ({len(data)} of {n} "
                                f"bytes; is the board connected, programmed and at this baud "
                                f"rate?)")
            data += got
        return data


def open_serial(port: str, baud: int, timeout: float = DEFAULT_TIMEOUT):
    """A serial port (or a pyserial URL: ``loop://``, ``socket://host:port``, ``rfc2217://``)
    as a transport."""
    import serial

    try:
        return serial.serial_for_url(port, baudrate=baud, timeout=timeout)
    except (serial.SerialException, ValueError) as e:
        raise LinkError(f"cannot open {port} at {baud} baud: {e}") from None


# -- the accelerator over the link ----------------------------------------------------------------
class LinkBus:
    """A :class:`Link` as the bus of :class:`hw.soc.bus_host.BusHost`: a ``BUS_ERROR`` answer
    becomes its :class:`hw.soc.bus_host.BusError` (which the host explains from the front
    end's ERROR registers); other link failures stay :class:`LinkError`."""

    max_stride = p.MAX_STRIDE  # write_strided / read_strided: every PE's entry in one frame

    def __init__(self, link: Link):
        self.link = link

    def write(self, addr: int, words: Sequence[int]) -> None:
        self._call(self.link.write, addr, words)

    def read(self, addr: int, count: int) -> list[int]:
        return self._call(self.link.read, addr, count)

    def write_strided(self, addr: int, words: Sequence[int], stride: int, group: int) -> None:
        self._call(self.link.write_strided, addr, words, stride, group)

    def read_strided(self, addr: int, count: int, stride: int, group: int) -> list[int]:
        return self._call(self.link.read_strided, addr, count, stride, group)

    @staticmethod
    def _call(f, *args):
        from hw.soc.bus_host import BusError

        try:
            return f(*args)
        except LinkError as e:
            if e.status == p.Status.BUS_ERROR:
                raise BusError(str(e), addr=e.addr) from None
            raise


@dataclass
class RunCounters:
    """One run's counters: ``cycles``, ``stall_cycles`` and, when read, the per-PE busy
    cycles."""

    cycles: int
    stall_cycles: int
    busy: np.ndarray | None = None


@dataclass
class BoardRun:
    """A batch through the board: the network's outputs and, per EIE segment, each run's
    counters."""

    outputs: np.ndarray
    counters: dict[int, list[RunCounters]]


class Board:
    """The accelerator behind a :class:`Link`, at the addresses of ``regmap`` (a
    :class:`hw.soc.regmap.RegisterMap`, e.g. ``RegisterMap.from_json("regmap.json")``).

    The constructor checks that the link reaches a front end of that map's configuration (ID,
    VERSION, CONFIG_HASH registers: :meth:`identify`). :meth:`load` loads an image,
    :meth:`infer` runs one input, :meth:`run` a batch through a compiled network (each EIE
    segment's image loaded when its turn comes), :meth:`read` / :meth:`registers` read words."""

    def __init__(self, link: Link, regmap, check: bool = True):
        from hw.params import HWParams
        from hw.soc.bus_host import BusHost

        self.link = link
        self.regmap = regmap
        self.params = HWParams(regmap.config)
        self.host = BusHost(LinkBus(link), regmap)
        self.loaded = None  # the image the board holds (as far as this object knows)
        if check:
            self.identify()

    def identify(self) -> None:
        """Refuse a link that does not reach a front end of this register map's configuration."""
        self.host.identify()

    def load(self, image) -> None:
        """Reset the accelerator and load ``image`` (a :class:`sw.eie.pack.NetworkImage`)."""
        from hw import host

        self.loaded = None
        self.host.run(host.load_program(self.params, image))
        self.loaded = image

    def infer(self, image, x, busy: bool = False) -> tuple[np.ndarray, RunCounters]:
        """One input vector ``x`` (the first layer's integer activations, logical order)
        through every layer of the loaded ``image``: the last layer's integer outputs (logical
        order) and the run's counters (``busy``: also the per-PE busy counters)."""
        from hw import host

        if self.loaded is not image:
            raise LinkError("infer: the board does not hold this image (load it first)")
        prog = host.inference_program(self.params, image, image.input_to_physical(x))
        if not busy:
            prog = [s for s in prog if not isinstance(s, host.ReadCounters)]
        out = self.host.run(prog)
        (layer, y), = out.outputs
        if busy:
            (c,) = out.counters
            counters = RunCounters(c.cycles, c.stall_cycles, c.busy)
        else:
            cycles, stalls = self.read(self.regmap.reg("CYCLES").addr, 2)
            counters = RunCounters(cycles, stalls)
        return image.to_logical(layer, y), counters

    def run(self, model, x: np.ndarray, busy: bool = False, progress=None) -> BoardRun:
        """A batch ``x`` through ``model`` (a :class:`sw.frontends.hybrid.HybridModel`
        compiled for this configuration): host segments in PyTorch, each EIE segment on the
        board, input by input. ``progress(segment, done, total)`` is called after each input."""
        if model.config != self.regmap.config:
            raise ConfigError(f"the model is compiled for {model.config.name!r}, the board's "
                              f"register map is {self.regmap.config.name!r}")
        counters: dict[int, list[RunCounters]] = {}

        def runner(index: int, a: np.ndarray) -> np.ndarray:
            seg = model.segments[index]
            if self.loaded is not seg.image:
                self.load(seg.image)
            xq = seg.image.quantize_input(a)
            ys = []
            for i, row in enumerate(xq):
                y, c = self.infer(seg.image, row, busy)
                ys.append(y)
                counters.setdefault(index, []).append(c)
                if progress:
                    progress(index, i + 1, len(xq))
            return seg.image.dequantize_output(np.stack(ys)).astype(np.float32)

        return BoardRun(model.run(x, runner), counters)

    def read(self, addr: int, count: int = 1) -> list[int]:
        """``count`` words from ``addr`` upwards; an access the front end refuses is explained
        (:meth:`explain`)."""
        return self._raw(self.link.read, addr, count)

    def write(self, addr: int, words: Sequence[int]) -> None:
        """``words`` to ``addr`` upwards; a refused access is explained (:meth:`explain`)."""
        self._raw(self.link.write, addr, words)

    def _raw(self, f, *args):
        try:
            return f(*args)
        except LinkError as e:
            if e.status != p.Status.BUS_ERROR:
                raise
            self.explain(e)

    def explain(self, e: LinkError):
        """Raise ``e`` as a :class:`hw.soc.bus_host.BusError` with the front end's reason:
        ERROR and ERROR_ADDR read, then cleared (as the bus host does). Without a recorded
        reason (an address beyond the bus, refused by the bridge itself), ``e`` as it is."""
        from hw.soc.bus_host import BusError
        from hw.soc.regmap import ERROR_TEXT, ErrorCode

        rm = self.regmap
        code, addr = self.link.read(rm.reg("ERROR").addr, 2)  # ERROR, ERROR_ADDR
        code &= rm.reg("ERROR").field("CODE").mask
        if code == ErrorCode.NONE:
            raise e
        ctrl = rm.reg("CTRL")
        self.link.write(ctrl.addr, [ctrl.bit("CLEAR_ERROR")])
        try:
            reason = f"{ErrorCode(code).name} ({ERROR_TEXT[ErrorCode(code)]})"
        except ValueError:
            reason = f"error code {code}"
        what = str(e).split(": ")[0]
        raise BusError(f"{what}: refused by the accelerator: {reason} at word address "
                       f"{addr:#x} ({rm.locate(addr)})", addr=addr, code=code,
                       explained=True) from None

    def registers(self) -> dict[str, int]:
        """Every register of the map (one frame: the register block is consecutive)."""
        regs = self.regmap.registers
        words = self.read(regs[0].addr, regs[-1].addr - regs[0].addr + 1)
        return {r.name: words[r.addr - regs[0].addr] for r in regs}
