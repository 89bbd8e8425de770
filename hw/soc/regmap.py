"""The register map of the EIE's Wishbone front end (:mod:`hw.soc.frontend`), computed from an
:class:`sw.eie.config.EIEConfig`: the one owner of every bus address.

Word-addressed, 32-bit data (Wishbone ``adr`` is a word address; a byte-addressed CPU sees word
address ``a`` at byte address ``4 a``). At address 0 a block of 32-bit registers (identity,
configuration, control, status, counters, error); above it one *window* per memory the EIE's
host port reaches (docs/hardware.md "Host writes", "Host reads"). A window's address is built
from fields, most significant first::

    base + (pe << pe_shift) + (bank << bank_shift) + (index << index_shift) + word

so one PE's whole memory (one bank of it) is one run of consecutive addresses, which a driver
sends as one burst. ``pe`` = :attr:`RegisterMap.pe_broadcast` (all ones) in a write window
writes every PE at once (codebooks). An entry wider than 32 bits takes ``words`` consecutive
addresses, least significant word first; the lower words are held in one staging register of
the front end and the entry is written when its most significant word is written (so a write
of the last word alone repeats the staged lower words). Every field width, window size and
base is a power of two and naturally aligned, so the hardware decodes an address with
comparisons of its upper bits.

The map is written as JSON (:meth:`RegisterMap.to_json`, read back by
:meth:`RegisterMap.from_json`: the driver's source of addresses), Markdown and a C header;
`eie regmap` writes the three (docs/soc.md).
"""

from __future__ import annotations

import enum
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from sw.eie.config import EIEConfig
from sw.errors import ConfigError, DataError

from ..params import HWParams, RdMem, WrMem

__all__ = ["DATA_WIDTH", "ID_MAGIC", "REGMAP_VERSION", "SOFT_RESET_CYCLES", "ErrorCode", "Field", "Register",
           "Window", "RegisterMap", "config_hash", "regmap"]

DATA_WIDTH = 32  # bits of a bus word
ID_MAGIC = 0x45494547  # "EIEG" in ASCII: the ID register of every EIE front end
REGMAP_VERSION = (1, 0)  # (major, minor): a major change moves or redefines an address
FORMAT = "eie-regmap"  # the JSON file's "format"
# Cycles CTRL.RESET holds the core in reset (STATUS.READY reads 0 meanwhile): more than the
# core's own reset pipelining (docs/hardware.md "Reset behaviour"), so that READY, once the
# count is over, is the core's and low until its accumulator clear is done.
SOFT_RESET_CYCLES = 8


class ErrorCode(enum.IntEnum):
    """The ERROR register: why the front end answered the last refused access with ``err``."""

    NONE = 0
    UNMAPPED = 1  # the address is in no register or window (or names a PE that does not exist)
    READ_ONLY = 2  # a write to a read-only register or window
    WRITE_ONLY = 3  # a read of a window the core cannot read back
    BUSY = 4  # a write into a memory (or ACT_CLEAR, or START) while the core is not ready
    NOT_LOADED = 5  # START before any layer-table entry was written since reset
    BAD_LAYERS = 6  # START with FIRST_LAYER or layers outside the table, or not written since reset
    RANGE = 7  # a value that does not fit the register (FIRST_LAYER, N_LAYERS)


ERROR_TEXT = {
    ErrorCode.NONE: "no error",
    ErrorCode.UNMAPPED: "address outside every register and window (or a PE that does not exist)",
    ErrorCode.READ_ONLY: "write to a read-only register or window",
    ErrorCode.WRITE_ONLY: "read of a write-only window",
    ErrorCode.BUSY: "memory write, ACT_CLEAR or START while the core is not ready (running or "
                    "in reset)",
    ErrorCode.NOT_LOADED: "START before any layer-table entry was written since reset",
    ErrorCode.BAD_LAYERS: "START with FIRST_LAYER or a layer of the run outside the layer table, "
                          "or not written since reset",
    ErrorCode.RANGE: "value too large for the register",
}


def config_hash(config: EIEConfig) -> int:
    """A stable 32-bit hash of the configuration (every field of ``to_dict()``, the name
    included): the first four bytes of the SHA-256 of its canonical JSON, big-endian."""
    text = json.dumps(config.to_dict(), sort_keys=True, separators=(",", ":"))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big")


def _bits(n: int) -> int:
    """Bits of a field holding ``0 .. n-1`` (0 for a single value)."""
    return (n - 1).bit_length()


def _pow2(n: int) -> int:
    return 1 << _bits(n)


# -- the map's parts -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Field:
    """A bit field of a register."""

    name: str
    offset: int
    width: int
    desc: str

    @property
    def mask(self) -> int:
        return ((1 << self.width) - 1) << self.offset


@dataclass(frozen=True)
class Register:
    """A 32-bit register. ``access``: ``r`` (a write is refused: READ_ONLY), ``rw``, or ``w``
    (action bits: a write acts, a read returns 0). ``value``: the constant a read returns
    (identity and configuration registers), else None. ``width``: the bits a ``rw`` register
    holds (a write with higher bits set is refused: RANGE)."""

    name: str
    addr: int
    access: str
    desc: str
    fields: tuple[Field, ...] = ()
    value: int | None = None
    width: int = DATA_WIDTH

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"register {self.name} has no field {name}")

    def bit(self, name: str) -> int:
        """The mask of field ``name`` (for one-bit fields: the bit to write or test)."""
        return self.field(name).mask


@dataclass(frozen=True)
class Window:
    """A window onto one memory of the core: ``depth`` entries of ``width`` bits per PE (per
    bank), each ``words`` consecutive bus words (least significant first; the entry is written
    when its last word is). ``mem``: the core's memory (``WrMem`` name for write windows,
    ``RdMem`` name for read windows). ``per_pe``: the address has a PE field (``pe_bits``
    wide; PE ``2**pe_bits - 1`` = every PE, in windows with ``broadcast``)."""

    name: str
    mem: str
    access: str  # "w" or "r"
    base: int
    width: int
    depth: int
    desc: str
    banks: int = 1
    per_pe: bool = True
    pe_bits: int = 0
    n_pe: int = 1
    broadcast: bool = False

    @property
    def words(self) -> int:
        """Bus words per entry (those used; the address field holds a power of two)."""
        return -(-self.width // DATA_WIDTH)

    @property
    def word_bits(self) -> int:
        return _bits(self.words)

    @property
    def index_bits(self) -> int:
        return _bits(self.depth)

    @property
    def bank_bits(self) -> int:
        return _bits(self.banks)

    @property
    def index_shift(self) -> int:
        return self.word_bits

    @property
    def bank_shift(self) -> int:
        return self.index_shift + self.index_bits

    @property
    def pe_shift(self) -> int:
        return self.bank_shift + self.bank_bits

    @property
    def size_bits(self) -> int:
        return self.pe_shift + (self.pe_bits if self.per_pe else 0)

    @property
    def size(self) -> int:
        """Words of address space (a power of two; ``base`` is a multiple of it)."""
        return 1 << self.size_bits

    @property
    def pe_broadcast(self) -> int:
        return (1 << self.pe_bits) - 1

    def addr(self, index: int, pe: int | None = None, bank: int = 0, word: int = 0) -> int:
        """The bus address of word ``word`` of entry ``index`` (bank ``bank``) of PE ``pe``
        (:attr:`pe_broadcast` for every PE; None in a window without a PE field)."""
        if not 0 <= index < self.depth:
            raise ValueError(f"{self.name}: index {index} outside 0..{self.depth - 1}")
        if not 0 <= bank < self.banks:
            raise ValueError(f"{self.name}: bank {bank} outside 0..{self.banks - 1}")
        if not 0 <= word < self.words:
            raise ValueError(f"{self.name}: word {word} outside 0..{self.words - 1}")
        a = self.base + (bank << self.bank_shift) + (index << self.index_shift) + word
        if not self.per_pe:
            if pe is not None:
                raise ValueError(f"{self.name} has no PE field")
            return a
        if pe is None or not (0 <= pe < self.n_pe or (self.broadcast and pe == self.pe_broadcast)):
            raise ValueError(f"{self.name}: PE {pe} outside 0..{self.n_pe - 1}"
                             + (f" (or {self.pe_broadcast}: every PE)" if self.broadcast else ""))
        return a + (pe << self.pe_shift)

    def split(self, value: int) -> list[int]:
        """An entry's value as its bus words, least significant first."""
        if not 0 <= value < (1 << self.width):
            raise ValueError(f"{self.name}: value {value:#x} does not fit {self.width} bits")
        m = (1 << DATA_WIDTH) - 1
        return [(value >> (DATA_WIDTH * w)) & m for w in range(self.words)]

    def locate(self, addr: int) -> str | None:
        """What ``addr`` names in this window (``SPMAT[pe 1][12].w1``), or None if it names
        nothing (outside, a padding word, a PE or entry that does not exist)."""
        off = addr - self.base
        if not 0 <= off < self.size:
            return None
        word = off & ((1 << self.word_bits) - 1)
        index = (off >> self.index_shift) & ((1 << self.index_bits) - 1)
        bank = (off >> self.bank_shift) & ((1 << self.bank_bits) - 1)
        pe = off >> self.pe_shift
        if word >= self.words or index >= self.depth or bank >= self.banks:
            return None
        text = self.name
        if self.per_pe:
            if pe == self.pe_broadcast and self.broadcast:
                text += "[every PE]"
            elif pe < self.n_pe:
                text += f"[pe {pe}]"
            else:
                return None
        if self.banks > 1:
            text += f"[bank {bank}]"
        text += f"[{index}]"
        return text + (f".w{word}" if self.words > 1 else "")


# -- the map -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RegisterMap:
    """Every bus address of the front end for ``config`` (:func:`regmap` builds it)."""

    config: EIEConfig
    addr_width: int
    reg_block: int  # words of the register block at address 0 (a power of two)
    registers: tuple[Register, ...]
    windows: tuple[Window, ...]
    version: tuple[int, int] = REGMAP_VERSION
    id_magic: int = ID_MAGIC
    config_hash: int = 0
    reset_cycles: int = SOFT_RESET_CYCLES
    data_width: int = DATA_WIDTH
    _regs: dict = field(default=None, init=False, repr=False, compare=False)
    _wins: dict = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self):  # a register and a window may share a name (LAYER)
        object.__setattr__(self, "_regs", {r.name: r for r in self.registers})
        object.__setattr__(self, "_wins", {w.name: w for w in self.windows})

    @property
    def n_pe(self) -> int:
        return self.config.n_pe

    @property
    def pe_broadcast(self) -> int:
        return next(w.pe_broadcast for w in self.windows if w.per_pe)

    @property
    def version_word(self) -> int:
        return (self.version[0] << 16) | self.version[1]

    def reg(self, name: str) -> Register:
        r = self._regs.get(name)
        if r is None:
            raise KeyError(f"no register {name}")
        return r

    def window(self, name: str) -> Window:
        w = self._wins.get(name)
        if w is None:
            raise KeyError(f"no window {name}")
        return w

    def write_window(self, mem: WrMem) -> Window:
        """The window of a core write memory."""
        return next(w for w in self.windows if w.access == "w" and w.mem == mem.name)

    def read_window(self, mem: RdMem) -> Window:
        return next(w for w in self.windows if w.access == "r" and w.mem == mem.name)

    def locate(self, addr: int) -> str:
        """What a bus address names, for messages."""
        for r in self.registers:
            if r.addr == addr:
                return r.name
        for w in self.windows:
            where = w.locate(addr)
            if where is not None:
                return where
        return "nothing"

    # -- files -----------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "format": FORMAT,
            "version": list(self.version),
            "id": self.id_magic,
            "config_hash": self.config_hash,
            "config": self.config.to_dict(),
            "data_width": self.data_width,
            "addr_width": self.addr_width,
            "reg_block": self.reg_block,
            "reset_cycles": self.reset_cycles,
            "registers": [
                {"name": r.name, "addr": r.addr, "access": r.access, "desc": r.desc,
                 "value": r.value, "width": r.width,
                 "fields": [{"name": f.name, "offset": f.offset, "width": f.width,
                             "desc": f.desc} for f in r.fields]}
                for r in self.registers],
            "windows": [
                {"name": w.name, "mem": w.mem, "access": w.access, "base": w.base,
                 "size": w.size, "width": w.width, "depth": w.depth, "banks": w.banks,
                 "words": w.words, "per_pe": w.per_pe, "pe_bits": w.pe_bits, "n_pe": w.n_pe,
                 "broadcast": w.broadcast, "pe_shift": w.pe_shift, "bank_shift": w.bank_shift,
                 "index_shift": w.index_shift, "desc": w.desc}
                for w in self.windows],
            "errors": [{"code": int(c), "name": c.name, "desc": ERROR_TEXT[c]}
                       for c in ErrorCode],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1) + "\n"

    @classmethod
    def from_dict(cls, d: dict) -> RegisterMap:
        """The map a :meth:`to_dict` wrote; raises :class:`sw.errors.DataError` if it is not
        one or is of another major version."""
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise DataError(f"not an EIE register map (no \"format\": \"{FORMAT}\")")
        version = tuple(d.get("version", ()))
        if len(version) != 2 or version[0] != REGMAP_VERSION[0]:
            raise DataError(f"register map version {version}, this driver reads "
                            f"{REGMAP_VERSION[0]}.x")
        try:
            config = EIEConfig.from_dict(d["config"])
            regs = tuple(Register(r["name"], r["addr"], r["access"], r["desc"],
                                  tuple(Field(f["name"], f["offset"], f["width"], f["desc"])
                                        for f in r["fields"]), r["value"], r["width"])
                         for r in d["registers"])
            wins = tuple(Window(w["name"], w["mem"], w["access"], w["base"], w["width"],
                                w["depth"], w["desc"], w["banks"], w["per_pe"], w["pe_bits"],
                                w["n_pe"], w["broadcast"]) for w in d["windows"])
            out = cls(config, d["addr_width"], d["reg_block"], regs, wins, version, d["id"],
                      d["config_hash"], d["reset_cycles"], d["data_width"])
        except (KeyError, TypeError) as e:
            raise DataError(f"register map: missing or malformed entry ({e})") from None
        for w, wd in zip(out.windows, d["windows"], strict=True):
            derived = (w.size, w.words, w.pe_shift, w.bank_shift, w.index_shift)
            stated = (wd["size"], wd["words"], wd["pe_shift"], wd["bank_shift"],
                      wd["index_shift"])
            if derived != stated:
                raise DataError(f"register map: window {w.name}'s fields {stated} do not follow "
                                f"from its sizes {derived}")
        return out

    @classmethod
    def from_json(cls, source: str | Path) -> RegisterMap:
        """Read a map from JSON text or from a file holding it."""
        text = str(source)
        if not text.lstrip().startswith("{"):
            try:
                text = Path(source).read_text()
            except OSError as e:
                raise DataError(f"register map {source}: {e.strerror}") from None
        try:
            d = json.loads(text)
        except ValueError as e:
            raise DataError(f"register map: not valid JSON ({e})") from None
        return cls.from_dict(d)

    def to_markdown(self) -> str:
        c = self.config
        lines = [
            f"# EIE register map: `{c.name}` ({c.n_pe} PEs)",
            "",
            f"Generated by eie-gen from the configuration (`eie regmap --config {c.name}`); "
            f"register map version {self.version[0]}.{self.version[1]}, configuration hash "
            f"`{self.config_hash:#010x}`. Wishbone B4, {self.data_width}-bit data, "
            f"{self.addr_width}-bit *word* addresses (byte address = 4 x word address). "
            "docs/soc.md describes the front end.",
            "",
            "## Registers",
            "",
            "| address | name | access | description |",
            "|---|---|---|---|",
        ]
        for r in self.registers:
            desc = r.desc + ("" if r.value is None else f" (`{r.value:#x}`)")
            for f in r.fields:
                bits = (f"{f.offset}" if f.width == 1
                        else f"{f.offset + f.width - 1}:{f.offset}")
                desc += f"; [{bits}] `{f.name}`: {f.desc}"
            lines.append(f"| `{r.addr:#06x}` | `{r.name}` | {r.access} | {_md(desc)} |")
        lines += [
            "",
            "Access: `r` read-only (a write is refused with `err`, code READ_ONLY), `rw` read "
            "and write, `w` action bits (a write acts; a read returns 0).",
            "",
            "## Windows",
            "",
            "Address of word `w` of entry `i` (bank `b`) of PE `p`: "
            "`base + (p << pe_shift) + (b << bank_shift) + (i << index_shift) + w`. "
            f"PE `{self.pe_broadcast}` in a window marked *broadcast* writes every PE. "
            "An entry of several words is written when its last (most significant) word is "
            "written; the lower words are staged first.",
            "",
            "| window | base | size | access | PE shift | bank shift | index shift | entries "
            "| bits (words) | broadcast | description |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for w in self.windows:
            pe = str(w.pe_shift) if w.per_pe else "-"
            bank = str(w.bank_shift) if w.banks > 1 else "-"
            entries = f"{w.banks} x {w.depth}" if w.banks > 1 else str(w.depth)
            lines.append(
                f"| `{w.name}` | `{w.base:#06x}` | {w.size} | {w.access} | {pe} | {bank} | "
                f"{w.index_shift} | {entries} | {w.width} ({w.words}) | "
                f"{'yes' if w.broadcast else 'no'} | {_md(w.desc)} |")
        lines += ["", "## Error codes (register `ERROR`)", "", "| code | name | meaning |",
                  "|---|---|---|"]
        lines += [f"| {int(e)} | `{e.name}` | {ERROR_TEXT[e]} |" for e in ErrorCode]
        return "\n".join(lines) + "\n"

    def to_c_header(self, prefix: str = "EIE") -> str:
        c = self.config
        guard = f"{prefix}_REGMAP_{_c_name(c.name)}_H"
        out = [
            f"/* EIE register map for configuration '{c.name}' ({c.n_pe} PEs), generated by "
            "eie-gen:",
            " * do not edit. Wishbone B4, 32-bit data; every address here is a WORD address",
            f" * (byte address = word address * 4: {prefix}_BYTE_ADDR). docs/soc.md. */",
            f"#ifndef {guard}",
            f"#define {guard}",
            "",
            f"#define {prefix}_BYTE_ADDR(word) ((word) * 4u)",
            f"#define {prefix}_ID_MAGIC 0x{self.id_magic:08x}u",
            f"#define {prefix}_REGMAP_VERSION 0x{self.version_word:08x}u",
            f"#define {prefix}_CONFIG_HASH 0x{self.config_hash:08x}u",
            f"#define {prefix}_ADDR_WIDTH {self.addr_width}u",
            f"#define {prefix}_N_PE {c.n_pe}u",
            f"#define {prefix}_PE_BROADCAST {self.pe_broadcast}u",
            f"#define {prefix}_RESET_CYCLES {self.reset_cycles}u",
            "",
            "/* registers */",
        ]
        for r in self.registers:
            n = f"{prefix}_REG_{r.name}"
            out.append(f"#define {n} 0x{r.addr:04x}u /* {r.access}: {r.desc} */")
            for f in r.fields:
                out.append(f"#define {n}_{f.name}_SHIFT {f.offset}u")
                out.append(f"#define {n}_{f.name}_MASK 0x{f.mask:08x}u")
        out += ["", "/* windows: word address of word w of entry i (bank b) of PE p (PE "
                f"{prefix}_PE_BROADCAST: every PE, in windows that allow it) */"]
        for w in self.windows:
            n = f"{prefix}_WIN_{w.name}"
            out += [f"/* {w.name} ({w.access}): {w.desc} */",
                    f"#define {n}_BASE 0x{w.base:04x}u",
                    f"#define {n}_SIZE {w.size}u",
                    f"#define {n}_DEPTH {w.depth}u",
                    f"#define {n}_WIDTH {w.width}u",
                    f"#define {n}_WORDS {w.words}u",
                    f"#define {n}_INDEX_SHIFT {w.index_shift}u"]
            args, expr = ["i"], f"{n}_BASE + ((i) << {n}_INDEX_SHIFT)"
            if w.banks > 1:
                out += [f"#define {n}_BANKS {w.banks}u", f"#define {n}_BANK_SHIFT {w.bank_shift}u"]
                args.insert(0, "b")
                expr += f" + ((b) << {n}_BANK_SHIFT)"
            if w.per_pe:
                out.append(f"#define {n}_PE_SHIFT {w.pe_shift}u")
                args.insert(0, "p")
                expr += f" + ((p) << {n}_PE_SHIFT)"
            if w.words > 1:
                args.append("w")
                expr += " + (w)"
            out.append(f"#define {n}_ADDR({', '.join(args)}) ({expr})")
        out += ["", "/* error codes (register ERROR) */"]
        out += [f"#define {prefix}_ERR_{e.name} {int(e)}u /* {ERROR_TEXT[e]} */" for e in ErrorCode]
        out += ["", f"#endif /* {guard} */", ""]
        return "\n".join(out)

    def write(self, out_dir: str | Path, stem: str = "regmap") -> list[Path]:
        """Write ``<stem>.json``, ``<stem>.md`` and ``<stem>.h`` into ``out_dir``."""
        from sw.fsutil import atomic_write_text

        out = Path(out_dir)
        paths = [out / f"{stem}.json", out / f"{stem}.md", out / f"{stem}.h"]
        for p, text in zip(paths, (self.to_json(), self.to_markdown(), self.to_c_header()),
                           strict=True):
            atomic_write_text(p, text)
        return paths


def _md(text: str) -> str:
    """Text for a Markdown table cell."""
    return text.replace("|", "\\|")


def _c_name(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in name).upper()


# -- building the map from a configuration ------------------------------------------------------
def _registers(config: EIEConfig, params: HWParams, chash: int) -> list[Register]:
    nlb = params.n_layers_bits
    regs = [
        Register("ID", 0, "r", "identity: \"EIEG\"", value=ID_MAGIC),
        Register("VERSION", 0, "r", "register-map version: major << 16 | minor",
                 value=(REGMAP_VERSION[0] << 16) | REGMAP_VERSION[1]),
        Register("CONFIG_HASH", 0, "r", "hash of the configuration (the driver checks it)",
                 value=chash),
        Register("SCRATCH", 0, "rw", "scratch word for bus tests; no effect"),
        Register("FIRST_LAYER", 0, "rw", "first layer-table entry of the next run", width=nlb),
        Register("N_LAYERS", 0, "rw", "layers the next run runs back to back (0: done at once)",
                 width=nlb),
        Register("CTRL", 0, "w", "control; bits act in the order RESET, CLEAR_ERROR, START", (
            Field("START", 0, 1, "start a run of N_LAYERS layers from FIRST_LAYER on the input "
                                 "in bank 0 (refused: BUSY, NOT_LOADED, BAD_LAYERS)"),
            Field("RESET", 1, 1, f"reset the core ({SOFT_RESET_CYCLES} cycles; then it clears its "
                                 "accumulators, READY low); forgets the loaded layer table; "
                                 "memories keep their contents; START ignored"),
            Field("CLEAR_ERROR", 2, 1, "clear ERROR, ERROR_ADDR and STATUS.ERROR"))),
        Register("STATUS", 0, "r", "core and front-end status", (
            Field("READY", 0, 1, "the core is idle: memory writes and START are accepted"),
            Field("BUSY", 1, 1, "a run is in progress"),
            Field("DONE", 2, 1, "the last run completed (until the next START or reset)"),
            Field("LOADED", 3, 1, "a layer-table entry was written since reset"),
            Field("ERROR", 4, 1, "an access was refused since the last CLEAR_ERROR"))),
        Register("LAYER", 0, "r", "layer-table index of the running (or last) layer"),
        Register("CYCLES", 0, "r", "cycles of the current or last run"),
        Register("STALL_CYCLES", 0, "r",
                 "cycles of that run in which a non-zero waited for a full queue"),
        Register("ERROR", 0, "r", "why the last refused access was refused", (
            Field("CODE", 0, 4, "an error code (below); 0 after CLEAR_ERROR"),)),
        Register("ERROR_ADDR", 0, "r", "word address of the last refused access"),
        Register("ACT_CLEAR", 0, "w", "any write empties bank 0's non-zero lists (before "
                                      "writing a new input; refused while not READY: BUSY)"),
    ]
    for f in config.to_dict():
        if f != "name":
            regs.append(Register(f"CFG_{f.upper()}", 0, "r", f"configuration: {f}",
                                 value=getattr(config, f)))
    return [Register(r.name, a, r.access, r.desc, r.fields, r.value, r.width)
            for a, r in enumerate(regs)]


def _windows(config: EIEConfig, params: HWParams) -> list[Window]:
    n = config.n_pe
    pe = dict(per_pe=True, pe_bits=n.bit_length(), n_pe=n)
    cb = config.codebook_size
    return [
        Window("SPMAT", WrMem.SPMAT.name, "w", 0, config.spmat_word_bits, config.spmat_words,
               "sparse-matrix words (entry e of a word in bits [8e, 8e+8))", broadcast=True,
               **pe),
        Window("PTR", WrMem.PTR.name, "w", 0, 2 * params.ptr_bits, params.bank_depth,
               f"pointer pairs: entry b = pointer 2b | pointer 2b+1 << {params.ptr_bits}",
               broadcast=True, **pe),
        Window("BIAS", WrMem.BIAS.name, "w", 0, params.act_bits, config.bias_depth,
               "biases (two's complement)", broadcast=True, **pe),
        Window("CODEBOOK", WrMem.CODEBOOK.name, "w", 0, params.act_bits, config.max_layers * cb,
               f"codebooks: entry layer * {cb} + v (the same in every PE: write with the "
               "broadcast PE)", broadcast=True, **pe),
        Window("INPUT", WrMem.ACT.name, "w", 0, params.act_bits, config.act_depth,
               "input activations into bank 0 (a_j, j = i * N_PE + p); after ACT_CLEAR, in "
               "ascending i per PE", broadcast=True, **pe),
        Window("LAYER", WrMem.LAYER.name, "w", 0, params.layer_entry.size, config.max_layers,
               "layer-table entries (docs/hardware.md); a write marks the entry loaded",
               per_pe=False),
        Window("ACT", RdMem.ACT.name, "r", 0, params.rd_lane_bits, config.act_depth,
               "activations of bank b (outputs), sign-extended; read any time", banks=2, **pe),
        Window("BUSY", RdMem.BUSY.name, "r", 0, params.rd_lane_bits, 1,
               "per-PE busy-cycle counters of the last run", **pe),
    ]


def regmap(config: EIEConfig) -> RegisterMap:
    """The register map of the front end for ``config``: the register block at address 0,
    then the windows, largest first, each at the next multiple of its size."""
    params = HWParams(config)
    chash = config_hash(config)
    regs = _registers(config, params, chash)
    reg_block = max(16, _pow2(len(regs)))
    placed = []
    top = reg_block
    for w in sorted(_windows(config, params), key=lambda w: -w.size):  # stable: ties in order
        base = -(-top // w.size) * w.size
        placed.append(Window(w.name, w.mem, w.access, base, w.width, w.depth, w.desc, w.banks,
                             w.per_pe, w.pe_bits, w.n_pe, w.broadcast))
        top = base + w.size
    addr_width = max(1, (top - 1).bit_length())
    if addr_width > 30:
        raise ConfigError(f"config {config.name!r}: the register map needs {addr_width} word "
                          "address bits; a 32-bit byte address holds 30")
    return RegisterMap(config, addr_width, reg_block, tuple(regs), tuple(placed),
                       config_hash=chash)
