"""The host protocol of the EIE top level, independent of any simulator.

Turns a :class:`sw.eie.pack.NetworkImage` and input vectors into the host-port transactions of
docs/hardware.md ("Host protocol"), and read responses back into vectors. The Amaranth-simulator
driver (:mod:`sim.amaranth_host`) and the cocotb testbenches replay the same transactions, so the
protocol is written once:

1. after reset, wait for ``ready`` (the accumulator clear takes ``act_depth`` cycles);
2. :func:`image_writes`: sparse-matrix words, pointer pairs, biases, codebooks, layer table;
3. :func:`input_writes`: ACT_CLEAR, then the input's local rows 0, 1, ... in ascending order;
4. ``start`` with ``first_layer`` and ``n_layers``; wait for ``done``;
5. :func:`output_reads` in bank ``n_layers % 2``, :func:`assemble_output`; counters from the
   ``cycles`` / ``stall_cycles`` ports and a BUSY read.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from sw.eie.pack import NetworkImage

from .params import HWParams, RdMem, WrMem
from .pe import PEInit


@dataclass(frozen=True)
class HostWrite:
    """One cycle on the write port: ``lanes[k]`` goes to PE k (if bit k of ``mask`` is set)."""

    mem: WrMem
    addr: int
    lanes: tuple[int, ...]
    mask: int

    def data(self, params: HWParams) -> int:
        """The ``wr__data`` bus value."""
        return pack_lanes(self.lanes, params.lane_bits)


def pack_lanes(lanes, lane_bits: int) -> int:
    """Concatenate non-negative lane values, lane 0 in the least significant bits."""
    if lane_bits == 64:
        return int.from_bytes(np.asarray(lanes, dtype="<u8").tobytes(), "little")
    value = 0
    for k, v in enumerate(lanes):
        value |= int(v) << (k * lane_bits)
    return value


def unpack_lanes(value: int, n: int, lane_bits: int, signed_bits: int | None = None) -> np.ndarray:
    """Split a bus value into ``n`` lanes; ``signed_bits``: interpret the low bits as signed."""
    mask = (1 << lane_bits) - 1
    out = np.array([(value >> (k * lane_bits)) & mask for k in range(n)], dtype=object)
    if signed_bits is not None:
        lo = (1 << signed_bits) - 1
        sign = 1 << (signed_bits - 1)
        out = np.array([((int(v) & lo) ^ sign) - sign for v in out], dtype=np.int64)
    return out.astype(np.int64)


def _twos(values: np.ndarray, bits: int) -> list[int]:
    return [int(v) & ((1 << bits) - 1) for v in np.asarray(values, dtype=np.int64)]


def _all(n: int) -> int:
    return (1 << n) - 1


def layer_table(params: HWParams, image: NetworkImage) -> list[int]:
    """Layer-table words (:attr:`HWParams.layer_entry`) of the image's layers."""
    return [params.pack_layer_entry(d.rows_per_pe, d.ptr_base, d.bias_base, d.shift, d.relu)
            for d in image.layers]


def check_image(params: HWParams, image: NetworkImage) -> None:
    """Refuse an image built for another configuration."""
    from sw.errors import ConfigError

    if image.config != params.config:
        raise ConfigError(f"image packed for config {image.config.name!r}, hardware built for "
                          f"{params.config.name!r} (the configurations differ)")


def image_writes(params: HWParams, image: NetworkImage) -> Iterator[HostWrite]:
    """Every write that loads ``image``: one address of every PE per cycle."""
    check_image(params, image)
    c = params.config
    n, pb = c.n_pe, params.ptr_bits
    every = _all(n)
    spmat = np.asarray(image.spmat, dtype=np.uint64)
    for w in range(spmat.shape[1]):
        yield HostWrite(WrMem.SPMAT, w, tuple(int(x) for x in spmat[:, w]), every)
    even, odd = image.ptr_bank(0), image.ptr_bank(1)
    for b in range(even.shape[1]):
        lanes = tuple(int(e) | (int(o) << pb) for e, o in zip(even[:, b], odd[:, b], strict=True))
        yield HostWrite(WrMem.PTR, b, lanes, every)
    for a in range(image.bias.shape[1]):
        yield HostWrite(WrMem.BIAS, a, tuple(_twos(image.bias[:, a], c.act_bits)), every)
    for li in range(image.codebook.shape[0]):
        for v, val in enumerate(_twos(image.codebook[li], c.act_bits)):
            yield HostWrite(WrMem.CODEBOOK, li * c.codebook_size + v, (val,) * n, every)
    for li, word in enumerate(layer_table(params, image)):
        yield HostWrite(WrMem.LAYER, li, (word,) + (0,) * (n - 1), every)


def input_writes(params: HWParams, image: NetworkImage, a_phys: np.ndarray) -> Iterator[HostWrite]:
    """Writes that place a physical input vector in bank 0 and build its non-zero lists."""
    c = params.config
    every = _all(c.n_pe)
    per_pe = image.pe_vector(np.asarray(a_phys, dtype=np.int64))  # (N, rows)
    if per_pe.shape[1] > c.act_depth:
        from sw.errors import DataError

        raise DataError(f"input of {len(a_phys)} activations needs {per_pe.shape[1]} per PE, "
                        f"act_depth = {c.act_depth}")
    yield HostWrite(WrMem.ACT_CLEAR, 0, (0,) * c.n_pe, every)
    for r in range(per_pe.shape[1]):
        yield HostWrite(WrMem.ACT, r, tuple(_twos(per_pe[:, r], c.act_bits)), every)


def output_bank(n_layers: int) -> int:
    """The bank holding the outputs of a run of ``n_layers`` layers."""
    return n_layers % 2


def output_reads(params: HWParams, bank: int, rows: int) -> list[tuple[RdMem, int]]:
    """Read requests for local rows ``0 .. rows-1`` of activation bank ``bank``."""
    return [(RdMem.ACT, (bank << params.local_bits) | r) for r in range(rows)]


def assemble_output(params: HWParams, responses: list[int], n_out: int) -> np.ndarray:
    """Read responses (one per local row, in order) -> the physical output vector."""
    n = params.n_pe
    rows = np.stack([unpack_lanes(v, n, params.rd_lane_bits, params.act_bits)
                     for v in responses], axis=1) if responses else np.zeros((n, 0), np.int64)
    return rows.T.reshape(-1)[:n_out]  # out[r * N + k] = rows[k, r]


def pe_inits(image: NetworkImage) -> list[PEInit]:
    """Per-PE initial memory contents for an FPGA ROM build (the same data
    :func:`image_writes` loads at run time)."""
    c = image.config
    even, odd = image.ptr_bank(0), image.ptr_bank(1)
    cb = [int(v) for row in np.asarray(image.codebook, dtype=np.int64) for v in row]
    return [PEInit(spmat=[int(w) for w in np.asarray(image.spmat[k], dtype=np.uint64)],
                   ptr_even=[int(x) for x in even[k]], ptr_odd=[int(x) for x in odd[k]],
                   bias=[int(x) for x in image.bias[k]],
                   codebook=cb)
            for k in range(c.n_pe)]
