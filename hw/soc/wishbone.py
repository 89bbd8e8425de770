"""Wishbone B4 bus signatures, after amaranth-soc's ``amaranth_soc.wishbone.bus`` (that package
is not on the package index, so the conventions are followed, not the code imported).

A bus is described from the initiator's side (its request members ``Out``); a target takes
``In(signature)`` (``signature.flip()``). ``adr`` is a *word* address (``data_width /
granularity`` select bits in ``sel``). Optional members come from :class:`Feature`:
``err`` (the target refuses the cycle: an address outside every window, a forbidden write),
``stall`` (pipelined mode: the target cannot take the request this cycle), and ``rty``,
``lock``, ``cti``, ``bte`` for completeness.

Classic cycle: the initiator holds ``cyc``/``stb`` (and ``adr``, ``we``, ``dat_w``, ``sel``)
until the target answers ``ack`` (or ``err``) for one cycle. Pipelined cycle (with
``Feature.STALL``): a request is taken in every cycle with ``stb & ~stall``; the answers come
back in order, one ``ack``/``err`` each, while ``cyc`` stays high.
"""

from __future__ import annotations

import enum as py_enum

from amaranth.lib import enum, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["CycleType", "BurstTypeExt", "Feature", "Signature"]


class CycleType(enum.Enum, shape=3):
    """Wishbone registered-feedback cycle type (``cti``)."""

    CLASSIC = 0b000
    CONST_BURST = 0b001
    INCR_BURST = 0b010
    END_OF_BURST = 0b111


class BurstTypeExt(enum.Enum, shape=2):
    """Wishbone registered-feedback burst type extension (``bte``)."""

    LINEAR = 0b00
    WRAP_4 = 0b01
    WRAP_8 = 0b10
    WRAP_16 = 0b11


class Feature(py_enum.Enum):
    """Optional Wishbone members."""

    ERR = "err"
    RTY = "rty"
    STALL = "stall"
    LOCK = "lock"
    CTI = "cti"
    BTE = "bte"


class Signature(wiring.Signature):
    """A Wishbone B4 bus of ``data_width`` bits (``granularity``: bits per ``sel`` bit,
    default ``data_width``), ``addr_width`` word-address bits and the given features."""

    def __init__(self, *, addr_width: int, data_width: int, granularity: int | None = None,
                 features=frozenset()):
        if granularity is None:
            granularity = data_width
        if data_width not in (8, 16, 32, 64):
            raise ValueError(f"data width must be 8, 16, 32 or 64, not {data_width}")
        if granularity not in (8, 16, 32, 64) or granularity > data_width:
            raise ValueError(f"granularity must be 8, 16, 32 or 64 and at most the data width, "
                             f"not {granularity}")
        features = frozenset(Feature(f) for f in features)
        self._addr_width = addr_width
        self._data_width = data_width
        self._granularity = granularity
        self._features = features
        members = {
            "adr": Out(addr_width),
            "dat_w": Out(data_width),
            "dat_r": In(data_width),
            "sel": Out(data_width // granularity),
            "cyc": Out(1),
            "stb": Out(1),
            "we": Out(1),
            "ack": In(1),
        }
        if Feature.ERR in features:
            members["err"] = In(1)
        if Feature.RTY in features:
            members["rty"] = In(1)
        if Feature.STALL in features:
            members["stall"] = In(1)
        if Feature.LOCK in features:
            members["lock"] = Out(1)
        if Feature.CTI in features:
            members["cti"] = Out(CycleType)
        if Feature.BTE in features:
            members["bte"] = Out(BurstTypeExt)
        super().__init__(members)

    @property
    def addr_width(self) -> int:
        return self._addr_width

    @property
    def data_width(self) -> int:
        return self._data_width

    @property
    def granularity(self) -> int:
        return self._granularity

    @property
    def features(self) -> frozenset[Feature]:
        return self._features

    def __eq__(self, other) -> bool:
        return (isinstance(other, Signature) and self.addr_width == other.addr_width
                and self.data_width == other.data_width
                and self.granularity == other.granularity and self.features == other.features)

    def __hash__(self) -> int:
        return hash((self.addr_width, self.data_width, self.granularity, self.features))

    def __repr__(self) -> str:
        feats = "{" + ", ".join(sorted(f.value for f in self.features)) + "}"
        return (f"wishbone.Signature(addr_width={self.addr_width}, data_width={self.data_width}, "
                f"granularity={self.granularity}, features={feats})")
