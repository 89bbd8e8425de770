"""Widths, packed layouts and host-port codes of one EIE instance, all derived from
:class:`sw.eie.config.EIEConfig` (the one source of widths and depths; docs/format.md).

Every block of ``hw/`` takes an :class:`HWParams` and reads its widths from here, so a width is
computed in exactly one place. The host-port codes (:class:`WrMem`, :class:`RdMem`) and the
layer-table layout are part of the documented interface (docs/hardware.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from amaranth.hdl import signed
from amaranth.lib import data, enum

from sw.eie.config import EIEConfig

# Attributes of a memory whose reads never need to see a write to the same address in the same
# cycle (the host-loaded memories: host writes happen in I/O mode, reads in compute mode; the
# UART bridge's buffer, hw.soc.bridge): Yosys then maps it to block RAM without the bypass logic
# that emulates a defined read-during-write result.
HOST_LOADED_MEMORY = {"no_rw_check": 1}
COUNTER_BITS = 32  # cycle counters (total, stall, per-PE busy); wrap after 2**32 cycles


class WrMem(enum.Enum, shape=3):
    """Host write port: which memory ``wr__addr`` / ``wr__data`` address (docs/hardware.md)."""

    SPMAT = 0  # addr: word; lane k: PE k's 64-bit sparse-matrix word
    PTR = 1  # addr: bank address b; lane k: even pointer (address 2b) | odd pointer (2b+1) << ptr_bits
    BIAS = 2  # addr: bias address; lane k: PE k's bias (act_bits, two's complement)
    CODEBOOK = 3  # addr: layer * codebook_size + v; lane k: the entry (the same in every PE)
    ACT = 4  # addr: local index in the input file; lane k: a_j for j = addr * N + k
    ACT_CLEAR = 5  # empties the input non-zero lists (before writing a new input vector)
    LAYER = 6  # addr: layer index; lane 0: a LAYER_ENTRY (see HWParams.layer_entry)


class RdMem(enum.Enum, shape=1):
    """Host read port: what ``rd__addr`` addresses."""

    ACT = 0  # addr: bank << act_addr_bits | local index; lane k: PE k's activation
    BUSY = 1  # lane k: PE k's busy-cycle counter of the last run


def addr_bits(depth: int) -> int:
    """Bits of an address into ``depth`` entries (at least 1)."""
    return max(1, (depth - 1).bit_length())


def bits_for(n: int) -> int:
    """Bits of an unsigned value ``0..n`` (at least 1)."""
    return max(1, n.bit_length())


def lnzd_levels(n_pe: int) -> int:
    """Levels of 4-input LNZD nodes over ``n_pe`` leaves (at least one node)."""
    levels, span = 1, 4
    while span < n_pe:
        levels, span = levels + 1, span * 4
    return levels


@dataclass(frozen=True)
class HWParams:
    """Derived hardware widths of one configuration."""

    config: EIEConfig

    # -- scalar widths -----------------------------------------------------------------------
    @property
    def n_pe(self) -> int:
        return self.config.n_pe

    @property
    def act_bits(self) -> int:
        return self.config.act_bits

    @property
    def acc_bits(self) -> int:
        return self.config.acc_bits

    @property
    def ptr_bits(self) -> int:
        """Pointer values: absolute entry addresses 0..spmat_entries."""
        return self.config.ptr_bits

    @property
    def local_bits(self) -> int:
        """Local row / activation index inside one PE."""
        return addr_bits(self.config.act_depth)

    @property
    def count_bits(self) -> int:
        """Non-zero list lengths 0..act_depth."""
        return bits_for(self.config.act_depth)

    @property
    def j_bits(self) -> int:
        """Physical input index j < N * act_depth."""
        return addr_bits(self.config.n_pe * self.config.act_depth)

    @property
    def levels(self) -> int:
        return lnzd_levels(self.config.n_pe)

    @property
    def ptr_addr_bits(self) -> int:
        return addr_bits(self.config.ptr_depth)

    @property
    def bank_depth(self) -> int:
        return (self.config.ptr_depth + 1) // 2

    @property
    def bank_addr_bits(self) -> int:
        return addr_bits(self.bank_depth)

    @property
    def spmat_addr_bits(self) -> int:
        return addr_bits(self.config.spmat_words)

    @property
    def entry_sel_bits(self) -> int:
        """Low pointer bits that pick the entry inside a word."""
        return (self.config.entries_per_word - 1).bit_length()

    @property
    def bias_addr_bits(self) -> int:
        return addr_bits(self.config.bias_depth)

    @property
    def layer_bits(self) -> int:
        return addr_bits(self.config.max_layers)

    @property
    def n_layers_bits(self) -> int:
        return bits_for(self.config.max_layers)

    @property
    def cb_depth(self) -> int:
        return self.config.max_layers * self.config.codebook_size

    @property
    def cb_addr_bits(self) -> int:
        return addr_bits(self.cb_depth)

    @property
    def shift_bits(self) -> int:
        return self.config.shift_bits  # the layer table's shift field (docs/format.md)

    @property
    def rows_bits(self) -> int:
        return bits_for(self.config.act_depth)

    @property
    def lane_bits(self) -> int:
        """Width of one PE's lane of the host write bus."""
        return max(self.config.spmat_word_bits, 2 * self.ptr_bits, self.act_bits,
                   self.layer_entry.size)

    @property
    def rd_lane_bits(self) -> int:
        """Width of one PE's lane of the host read-response bus."""
        return max(self.act_bits, COUNTER_BITS)

    @property
    def wr_addr_bits(self) -> int:
        return max(self.spmat_addr_bits, self.bank_addr_bits, self.bias_addr_bits,
                   self.cb_addr_bits, self.local_bits, self.layer_bits)

    @property
    def rd_addr_bits(self) -> int:
        return self.local_bits + 1

    # -- packed layouts ----------------------------------------------------------------------
    @cached_property
    def layer_entry(self) -> data.StructLayout:
        """One layer-table entry (held by the central control unit).

        ``rows`` is ``ceil(n_out / N)`` (local rows per PE: the write-back pass length); the
        other fields are those of docs/format.md. ``n_in`` is not needed: the broadcast ends
        when the non-zero lists are exhausted.
        """
        return data.StructLayout({
            "rows": self.rows_bits,
            "ptr_base": self.ptr_addr_bits,
            "bias_base": self.bias_addr_bits,
            "shift": self.shift_bits,
            "relu": 1,
        })

    @cached_property
    def queue_entry(self) -> data.StructLayout:
        """A broadcast pair (j, a_j) as the activation queues hold it: column j's pointer
        address ``ptr_base + j`` already split into the two pointer banks' addresses
        (:func:`hw.pointer_read.bank_addresses`: ``even``, ``odd``, ``odd_first``), so that the
        PE's path from its queue to the pointer banks has no adder; and a_j."""
        return data.StructLayout({"even": self.bank_addr_bits, "odd": self.bank_addr_bits,
                                  "odd_first": 1, "a": signed(self.act_bits)})

    @cached_property
    def column(self) -> data.StructLayout:
        """Pointer read -> sparse-matrix read: the column's first entry, its length and its
        activation; ``nonempty`` (e != 0) and ``short`` (e <= 1) decided ahead."""
        return data.StructLayout({
            "start": self.ptr_bits, "e": self.ptr_bits, "a": signed(self.act_bits),
            "nonempty": 1, "short": 1})

    @cached_property
    def entry(self) -> data.StructLayout:
        """Sparse-matrix read -> arithmetic unit: one (v, z) entry with its column context."""
        c = self.config
        return data.StructLayout({
            "v": c.weight_bits, "z": c.index_bits, "first": 1, "a": signed(self.act_bits)})

    def leaf(self, pe_bits: int) -> data.StructLayout:
        """A non-zero activation on its way up the LNZD tree. ``pe_bits`` bits of PE index are
        known at this level; ``sentinel`` marks an exhausted subtree (compares as +infinity)."""
        fields = {"value": signed(self.act_bits), "idx": self.local_bits}
        if pe_bits:  # no zero-width field at the leaves (Verilog cannot declare it)
            fields["pe"] = pe_bits
        fields["sentinel"] = 1
        return data.StructLayout(fields)

    @cached_property
    def nz_item(self) -> data.StructLayout:
        """One element of a PE's non-zero list: local index and value."""
        return data.StructLayout({"idx": self.local_bits, "value": signed(self.act_bits)})

    @cached_property
    def ctl(self) -> data.StructLayout:
        """Per-layer parameters the central control unit drives into every PE."""
        return data.StructLayout({
            "layer": self.layer_bits,
            "bias_base": self.bias_addr_bits,
            "shift": self.shift_bits,
            "relu": 1,
            "src_bank": 1,
        })

    @cached_property
    def wb(self) -> data.StructLayout:
        """One write-back (or post-reset accumulator clear) row, the same in every PE."""
        return data.StructLayout({"valid": 1, "row": self.local_bits, "clear": 1})

    @cached_property
    def pe_wr(self) -> data.StructLayout:
        """One PE's slice of a host write."""
        return data.StructLayout({
            "en": 1, "mem": WrMem, "addr": self.wr_addr_bits, "data": self.lane_bits})

    @cached_property
    def pe_rd(self) -> data.StructLayout:
        """A host read request as every PE sees it."""
        return data.StructLayout({"mem": RdMem, "addr": self.rd_addr_bits})

    # -- host-side packing -------------------------------------------------------------------
    def pack_layer_entry(self, rows: int, ptr_base: int, bias_base: int, shift: int,
                         relu: bool) -> int:
        """The integer a LAYER write carries in lane 0."""
        fields = {"rows": rows, "ptr_base": ptr_base, "bias_base": bias_base,
                  "shift": shift, "relu": int(bool(relu))}
        value = 0
        for name, f in self.layer_entry:
            v = fields[name]
            if not 0 <= v < (1 << f.width):
                raise ValueError(f"layer entry field {name}={v} does not fit {f.width} bits")
            value |= v << f.offset
        return value
