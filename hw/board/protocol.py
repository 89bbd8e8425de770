"""The UART link protocol between a host and :class:`hw.soc.bridge.UARTBridge`: frames, CRC,
status codes, and a reference model of the bridge. Pure Python (no Amaranth): the one owner of
the protocol -- the RTL imports its constants, the host driver (:mod:`hw.board.driver`) its
encoders and decoders, the tests its reference model (:class:`BridgeModel`).

A strict request / response link (one outstanding request; bytes 8N1, words little-endian)::

    request   A5  cmd  len  addr[4]  data[4 * len]  crc_hi crc_lo      (data: WRITE only)
    strided   A5  cmd  len  addr[4]  stride[2]  group  data[4 * len]  crc_hi crc_lo
    response  5A  status  len  data[4 * len]  crc_hi crc_lo

- ``cmd``: ``PING`` (``len`` 0: the answer is one word, :func:`ping_word`: magic, protocol
  version, the bridge's largest ``len``), ``READ`` (``len`` words from ``addr`` upwards),
  ``WRITE`` (``len`` words to ``addr`` upwards), ``SREAD`` / ``SWRITE`` (strided: word k of
  the frame at ``addr + (k % group) * stride + k // group``, :func:`frame_addresses`: ``group``
  words ``stride`` apart, then the next group one word further on; a window's entry of every
  PE, entry after entry, in one frame). ``len`` is 1..``max_words`` (255 at most) for the reads
  and writes; ``addr`` is a 32-bit Wishbone *word* address; ``stride`` (0..65535, little-endian)
  and ``group`` (1..255) are word counts.
- ``crc``: CRC-16/CCITT-FALSE (:func:`crc16`) over every byte after the sync byte, sent most
  significant byte first, so that the CRC over the frame including its CRC bytes is 0 (the
  bridge checks that residue).
- ``status`` (:class:`Status`): ``OK`` (READ: the words; PING: its word; WRITE: no data),
  ``BAD_CRC``, ``BAD_FRAME`` (no sync byte where a frame must start, an unknown command, a bad
  length, a byte with a framing error), ``BUS_ERROR`` (the target answered ``err``, or the
  address is beyond the bus), ``TIMEOUT`` (a bus cycle not acknowledged within the bridge's
  limit: the cycle is abandoned, the bus never hangs), ``CUT_SHORT`` (the line went quiet for the
  bridge's gap time in the middle of a frame). ``BUS_ERROR`` and ``TIMEOUT`` carry one word, the
  failing address; the words before it were transferred. The other errors carry none.
- The bridge answers a malformed frame (``BAD_FRAME``, ``BAD_CRC``) only once the line has been
  quiet for its gap time, so that no byte of a bad frame is taken for the start of the next
  one; every request gets exactly one response and the next good frame works.
- Bytes that arrive while the bridge executes a frame or sends its response are dropped (the
  host waits for the response before it sends again).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from sw.errors import EIEError

REQ_SYNC = 0xA5
RSP_SYNC = 0x5A
VERSION = 2  # 2: SREAD / SWRITE
MAX_WORDS = 255  # the largest len the frame format carries (one byte)
PING_MAGIC = 0xEB  # the top byte of the PING word

CRC_POLY = 0x1021  # CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, not reflected, xorout 0
CRC_INIT = 0xFFFF

BITS_PER_BYTE = 10  # 8N1 on the wire: start, 8 data bits, stop
REQ_OVERHEAD = 9  # sync, cmd, len, addr[4], crc[2]
STRIDE_BYTES = 3  # a strided request's stride[2] and group after its address
MAX_STRIDE = 0xFFFF
RSP_OVERHEAD = 5  # sync, status, len, crc[2]


class Cmd(enum.IntEnum):
    PING = 0x50  # 'P'
    READ = 0x52  # 'R'
    WRITE = 0x57  # 'W'
    SREAD = 0x72  # 'r'
    SWRITE = 0x77  # 'w'


WRITES = (Cmd.WRITE, Cmd.SWRITE)
STRIDED = (Cmd.SREAD, Cmd.SWRITE)


class Status(enum.IntEnum):
    OK = 0x00
    BAD_CRC = 0x01
    BAD_FRAME = 0x02
    BUS_ERROR = 0x03
    TIMEOUT = 0x04
    CUT_SHORT = 0x05


# what each status means, in the driver's one-line error
STATUS_TEXT = {
    Status.BAD_CRC: "the bridge received a frame with a wrong CRC (line noise?)",
    Status.BAD_FRAME: "the bridge received a malformed frame (no sync byte, unknown command, bad "
                      "length or a framing error; wrong baud rate?)",
    Status.BUS_ERROR: "bus error: no register or memory window at word address 0x{addr:08x}, or "
                      "the target refused the access",
    Status.TIMEOUT: "bus timeout: the target did not answer the cycle at word address 0x{addr:08x}",
    Status.CUT_SHORT: "the bridge received a frame cut short (the line went quiet mid-frame)",
}


class LinkError(EIEError):
    """An error response from the bridge, or no (or a garbled) response from the link."""

    def __init__(self, message: str, status: Status | None = None, addr: int | None = None):
        super().__init__(message)
        self.status = status
        self.addr = addr


def ping_word(max_words: int = MAX_WORDS) -> int:
    """The PING response word: magic 0xEB, protocol version, 0, the bridge's largest len."""
    return (PING_MAGIC << 24) | (VERSION << 16) | (max_words & 0xFF)


def parse_ping(word: int) -> int:
    """The bridge's largest ``len`` from its PING word (checks the magic and version)."""
    if word >> 24 != PING_MAGIC:
        raise LinkError(f"the device answered PING with 0x{word:08x}, not an EIE UART bridge")
    version = (word >> 16) & 0xFF
    if version != VERSION:
        raise LinkError(f"the bridge speaks protocol version {version}, this driver {VERSION}")
    max_words = word & 0xFF
    if max_words == 0:
        raise LinkError(f"the bridge's PING word 0x{word:08x} gives a frame of 0 words")
    return max_words


# -- CRC-16/CCITT-FALSE ---------------------------------------------------------------------------
def _crc_table() -> list[int]:
    table = []
    for b in range(256):
        c = b << 8
        for _ in range(8):
            c = ((c << 1) ^ CRC_POLY) if c & 0x8000 else (c << 1)
        table.append(c & 0xFFFF)
    return table


_TABLE = _crc_table()


def crc16(data: bytes, crc: int = CRC_INIT) -> int:
    """CRC-16/CCITT-FALSE of ``data`` (continuing from ``crc``); ``crc16(b"123456789")`` is
    0x29B1 (the RTL's byte-serial form, :func:`hw.soc.bridge.crc16_next`, is tested against it)."""
    for b in data:
        crc = ((crc << 8) & 0xFFFF) ^ _TABLE[(crc >> 8) ^ b]
    return crc


# -- frames ---------------------------------------------------------------------------------------
def _words(words) -> bytes:
    return b"".join(int(w).to_bytes(4, "little") for w in words)


def _with_crc(sync: int, body: bytes) -> bytes:
    return bytes([sync]) + body + crc16(body).to_bytes(2, "big")


def encode_request(cmd: Cmd, addr: int = 0, words=(), length: int | None = None,
                   stride: int = 1, group: int = 1) -> bytes:
    """A request frame. ``length``: the READ / SREAD count (WRITE / SWRITE: ``len(words)``,
    PING: 0); ``stride``, ``group``: a strided frame's (SREAD, SWRITE)."""
    words = list(words)
    if cmd in WRITES:
        length = len(words)
    elif cmd == Cmd.PING:
        length = 0
    if not 0 <= length <= MAX_WORDS:
        raise ValueError(f"a frame carries 0..{MAX_WORDS} words, not {length}")
    if not 0 <= addr < 1 << 32:
        raise ValueError(f"word address {addr} is not a 32-bit value")
    for w in words:
        if not 0 <= int(w) < 1 << 32:
            raise ValueError(f"data word {w} is not a 32-bit value")
    head = bytes([int(cmd), length]) + addr.to_bytes(4, "little")
    if cmd in STRIDED:
        if not 0 <= stride <= MAX_STRIDE or not 1 <= group <= MAX_WORDS:
            raise ValueError(f"stride {stride} / group {group} not in 0..{MAX_STRIDE} / "
                             f"1..{MAX_WORDS}")
        head += stride.to_bytes(2, "little") + bytes([group])
    return _with_crc(REQ_SYNC, head + _words(words))


def frame_addresses(addr: int, count: int, stride: int = 1, group: int | None = None) -> list[int]:
    """The word addresses of a frame's ``count`` words: ``addr`` upwards, or strided
    (``group`` words ``stride`` apart, then the next group one word further on)."""
    if group is None:
        return [addr + k for k in range(count)]
    return [addr + (k % group) * stride + k // group for k in range(count)]


def strided_frames(addr: int, count: int, stride: int, group: int,
                   max_words: int) -> list[tuple[int, int, int]]:
    """A strided block of ``count`` words split into frames of at most ``max_words``:
    ``(addr, count, group)`` of each (a frame starts at a group's first word when the groups
    fit a frame; a group longer than a frame is cut into frames of its own)."""
    out = []
    k = 0
    while k < count:
        i, r = k % group, k // group
        a = addr + i * stride + r
        if i == 0 and group <= max_words:
            n = min(count - k, max_words // group * group)
            out.append((a, n, group))
        else:
            n = min(count - k, group - i, max_words)
            out.append((a, n, n))
        k += n
    return out


def ping() -> bytes:
    return encode_request(Cmd.PING)


def read_request(addr: int, count: int) -> bytes:
    return encode_request(Cmd.READ, addr, length=count)


def write_request(addr: int, words) -> bytes:
    return encode_request(Cmd.WRITE, addr, words)


def sread_request(addr: int, count: int, stride: int, group: int) -> bytes:
    return encode_request(Cmd.SREAD, addr, length=count, stride=stride, group=group)


def swrite_request(addr: int, words, stride: int, group: int) -> bytes:
    return encode_request(Cmd.SWRITE, addr, words, stride=stride, group=group)


@dataclass(frozen=True)
class Response:
    status: Status
    words: tuple[int, ...] = ()

    def encode(self) -> bytes:
        return _with_crc(RSP_SYNC, bytes([int(self.status), len(self.words)])
                         + _words(self.words))

    def check(self, what: str) -> tuple[int, ...]:
        """The words of an OK response; otherwise the :class:`LinkError` it stands for."""
        if self.status == Status.OK:
            return self.words
        addr = self.words[0] if self.words else None
        text = STATUS_TEXT[self.status].format(addr=addr if addr is not None else 0)
        raise LinkError(f"{what}: {text}", self.status, addr)


def response_length(header: bytes) -> int:
    """Bytes still to come after a response's first three (sync, status, len)."""
    return 4 * header[2] + 2


def decode_response(frame: bytes) -> Response:
    """A complete response frame -> :class:`Response` (a :class:`LinkError` if garbled)."""
    if len(frame) < RSP_OVERHEAD or frame[0] != RSP_SYNC:
        raise LinkError(f"garbled response from the bridge ({frame[:8].hex()}...)")
    n = frame[2]
    if len(frame) != RSP_OVERHEAD + 4 * n:
        raise LinkError(f"response of {len(frame)} bytes, its header says {RSP_OVERHEAD + 4 * n}")
    if crc16(frame[1:]) != 0:
        raise LinkError("response from the bridge with a wrong CRC (line noise?)")
    try:
        status = Status(frame[1])
    except ValueError:
        raise LinkError(f"response with an unknown status 0x{frame[1]:02x}") from None
    words = tuple(int.from_bytes(frame[3 + 4 * i:7 + 4 * i], "little") for i in range(n))
    return Response(status, words)


def wire_bytes(cmd: Cmd, count: int) -> tuple[int, int]:
    """(request, response) bytes on the wire of a successful frame of ``count`` words."""
    req = REQ_OVERHEAD + (STRIDE_BYTES if cmd in STRIDED else 0)
    if cmd in WRITES:
        return req + 4 * count, RSP_OVERHEAD
    if cmd in (Cmd.READ, Cmd.SREAD):
        return req, RSP_OVERHEAD + 4 * count
    return req, RSP_OVERHEAD + 4


# -- reference model of the bridge ----------------------------------------------------------------
ACK, ERR, STALLED = "ack", "err", "timeout"


class BridgeModel:
    """What :class:`hw.soc.bridge.UARTBridge` does, byte by byte, without time: feed it the
    bytes that arrive (:meth:`receive`) and tell it when the line has been quiet for the gap
    time (:meth:`quiet`); both return the response bytes the bridge sends.

    ``target(we, addr, data) -> (ACK | ERR | STALLED, read data)`` is one bus cycle at a word
    address below ``1 << addr_width``."""

    def __init__(self, target, max_words: int = MAX_WORDS, addr_width: int = 30):
        if not 1 <= max_words <= MAX_WORDS:
            raise ValueError(f"max_words must be in 1..{MAX_WORDS}")
        if not 1 <= addr_width <= 31:
            raise ValueError("addr_width must be in 1..31")
        self.target = target
        self.max_words = max_words
        self.addr_width = addr_width
        self._frame = bytearray()
        self._discard: Status | None = None  # discarding until quiet, then answer this

    def receive(self, data: bytes, framing_error: bool = False) -> bytes:
        out = bytearray()
        for b in data:
            out += self._byte(b, framing_error)
        return bytes(out)

    def quiet(self) -> bytes:
        """The line has been quiet for the gap time."""
        if self._discard is not None:
            status, self._discard = self._discard, None
            return Response(status).encode()
        if self._frame:
            self._frame.clear()
            return Response(Status.CUT_SHORT).encode()
        return b""

    def _byte(self, b: int, framing_error: bool) -> bytes:
        if self._discard is not None:
            return b""
        f = self._frame
        if framing_error or (not f and b != REQ_SYNC):
            return self._bad(Status.BAD_FRAME)
        f.append(b)
        if len(f) == 2 and b not in set(Cmd):
            return self._bad(Status.BAD_FRAME)
        if len(f) == 3:
            cmd, n = Cmd(f[1]), f[2]
            if (n != 0) if cmd == Cmd.PING else not 1 <= n <= self.max_words:
                return self._bad(Status.BAD_FRAME)
        if len(f) == 10 and Cmd(f[1]) in STRIDED and b == 0:  # group 0
            return self._bad(Status.BAD_FRAME)
        if len(f) < 3 or len(f) < self._frame_length():
            return b""
        frame = bytes(f)
        f.clear()
        if crc16(frame[1:]) != 0:
            return self._bad(Status.BAD_CRC)
        cmd = Cmd(frame[1])
        stride, group, data = 1, None, frame[7:-2]
        if cmd in STRIDED:
            stride, group, data = int.from_bytes(frame[7:9], "little"), frame[9], frame[10:-2]
        return self._execute(cmd, frame[2], int.from_bytes(frame[3:7], "little"), data,
                             stride, group).encode()

    def _frame_length(self) -> int:
        cmd, n = Cmd(self._frame[1]), self._frame[2]
        return (REQ_OVERHEAD + (STRIDE_BYTES if cmd in STRIDED else 0)
                + (4 * n if cmd in WRITES else 0))

    def _bad(self, status: Status) -> bytes:
        self._frame.clear()
        self._discard = status
        return b""

    def _execute(self, cmd: Cmd, n: int, addr: int, data: bytes, stride: int = 1,
                 group: int | None = None) -> Response:
        if cmd == Cmd.PING:
            return Response(Status.OK, (ping_word(self.max_words),))
        words = []
        write = cmd in WRITES
        for i, a in enumerate(frame_addresses(addr, n, stride, group)):
            a &= 0xFFFFFFFF  # the bridge's 32-bit address register
            if a >> self.addr_width:
                return Response(Status.BUS_ERROR, (a,))
            wd = int.from_bytes(data[4 * i:4 * i + 4], "little") if write else 0
            result, value = self.target(write, a, wd)
            if result != ACK:
                return Response(Status.BUS_ERROR if result == ERR else Status.TIMEOUT, (a,))
            words.append(value)
        return Response(Status.OK, () if write else tuple(words))
