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

    def _transact(self, request: bytes, what: str, expect: int) -> tuple[int, ...]:
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
        rsp = p.decode_response(frame)
        words = rsp.check(what)
        if len(words) != expect:
            raise LinkError(f"{what}: the bridge answered {len(words)} word(s), not {expect}")
        return words

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
