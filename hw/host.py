"""The host protocol of the EIE top level as data: programs of steps, independent of any
simulator.

A *program* is a list of steps (frozen dataclasses) built from a
:class:`sw.eie.pack.NetworkImage`: :func:`load_program` (reset, load the image),
:func:`inference_program` (write an input, start, wait for done, read outputs and counters),
:func:`rom_program` (the ROM build: memories preloaded, no image writes). What each step does
on the ports, cycle by cycle, is defined once, in docs/hardware.md ("Host protocol"); every
backend plays programs with a small interpreter of these steps -- Amaranth's simulator
(:mod:`sim.amaranth_host`), cocotb (:mod:`sim.driver`), the Verilator C++ harness
(:mod:`sim.verilator_harness`) -- and returns what the reading steps saw as an
:class:`Outcome`, decoded here. The writes' contents follow docs/hardware.md ("Host writes").
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from sw.eie.pack import NetworkImage
from sw.errors import ConfigError, DataError

from .params import HWParams, RdMem, WrMem
from .pe import PEInit

RESET_CYCLES = 2  # cycles with rst high
RUN_LIMIT = 10_000  # cycles a WaitDone allows beyond its estimate (a hang is reported)


# -- steps ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Reset:
    """Hold ``rst`` for ``cycles`` cycles, then wait for ``ready`` (at most ``limit`` cycles)."""

    limit: int
    cycles: int = RESET_CYCLES


@dataclass(frozen=True)
class WaitReady:
    """Clock until ``ready`` is sampled high (at most ``limit`` cycles)."""

    limit: int


@dataclass(frozen=True)
class Write:
    """A block of host writes, one per cycle; the design must be ready (idle)."""

    writes: tuple[HostWrite, ...]


@dataclass(frozen=True)
class Idle:
    """``cycles`` cycles with no host input."""

    cycles: int


@dataclass(frozen=True)
class Start:
    """The start pulse: layers ``first_layer .. first_layer + n_layers - 1``."""

    first_layer: int
    n_layers: int


@dataclass(frozen=True)
class WaitDone:
    """Wait (at most ``limit`` cycles) for ``done``; observes a :class:`RunSpan`."""

    limit: int

    def decode(self, params: HWParams, raw: RunSpan) -> RunSpan:
        return raw


@dataclass(frozen=True)
class Read:
    """Pipelined reads, one request per cycle; observes the ``rd_resp__data`` values."""

    reqs: tuple[tuple[RdMem, int], ...]

    def requests(self, params: HWParams) -> tuple[tuple[RdMem, int], ...]:
        return self.reqs

    def decode(self, params: HWParams, raw: list[int]) -> list[int]:
        return list(raw)


@dataclass(frozen=True)
class ReadOutput:
    """A :class:`Read` of layer ``layer``'s ``rows`` local rows in activation bank ``bank``;
    observes its physical output vector (``n_out`` values)."""

    layer: int
    bank: int
    rows: int
    n_out: int

    def requests(self, params: HWParams) -> list[tuple[RdMem, int]]:
        return output_reads(params, self.bank, self.rows)

    def decode(self, params: HWParams, raw: list[int]) -> np.ndarray:
        return assemble_output(params, raw, self.n_out)


@dataclass(frozen=True)
class ReadCounters:
    """Sample ``cycles`` and ``stall_cycles``, then read the per-PE busy counters (one BUSY
    read); observes :class:`Counters`."""

    def requests(self, params: HWParams) -> list[tuple[RdMem, int]]:
        return [(RdMem.BUSY, 0)]

    def decode(self, params: HWParams, raw: tuple[int, int, list[int]]) -> Counters:
        cycles, stall_cycles, (busy,) = raw
        return Counters(cycles, stall_cycles, unpack_lanes(busy, params.n_pe, params.rd_lane_bits))


Step = Reset | WaitReady | Write | Idle | Start | WaitDone | Read | ReadOutput | ReadCounters
Program = list[Step]


# -- what a program observed ---------------------------------------------------------------------
@dataclass
class RunSpan:
    """A run as a backend saw it: the simulation cycle whose edge took ``start`` (the run's
    cycle 0) and the first cycle with ``done`` high (so ``done_cycle - start_cycle`` = the
    ``cycles`` counter), and the wall / CPU seconds the backend spent waiting for ``done``."""

    start_cycle: int
    done_cycle: int
    wall_s: float = 0.0
    cpu_s: float = 0.0


@dataclass
class Counters:
    cycles: int  # the ``cycles`` port
    stall_cycles: int
    busy: np.ndarray  # (N,) per-PE busy cycles of the run


@dataclass
class Outcome:
    """What the observing steps of a program saw, decoded, in program order."""

    seen: list[tuple[Step, object]] = field(default_factory=list)

    def record(self, params: HWParams, step: Step, raw) -> None:
        self.seen.append((step, step.decode(params, raw)))

    def _of(self, kind: type) -> list:
        return [v for s, v in self.seen if isinstance(s, kind)]

    @property
    def outputs(self) -> list[tuple[int, np.ndarray]]:
        """(layer, physical outputs) per :class:`ReadOutput`."""
        return [(s.layer, v) for s, v in self.seen if isinstance(s, ReadOutput)]

    @property
    def counters(self) -> list[Counters]:
        return self._of(ReadCounters)

    @property
    def spans(self) -> list[RunSpan]:
        return self._of(WaitDone)

    @property
    def reads(self) -> list[list[int]]:
        return self._of(Read)


# -- programs ------------------------------------------------------------------------------------
def reset_program(params: HWParams) -> Program:
    """Reset; ready once the accumulators are cleared (``act_depth`` cycles and a margin)."""
    return [Reset(limit=params.config.act_depth + 16)]


def image_load(params: HWParams, image: NetworkImage) -> Write:
    """The write block that loads every memory of ``image``."""
    return Write(tuple(image_writes(params, image)))


def input_load(params: HWParams, image: NetworkImage, a_phys: np.ndarray) -> Write:
    """The write block that places the physical input ``a_phys`` in bank 0."""
    return Write(tuple(input_writes(params, image, a_phys)))


def load_program(params: HWParams, image: NetworkImage) -> Program:
    """Reset and load ``image``."""
    return reset_program(params) + [image_load(params, image)]


def run_limit(image: NetworkImage, layers: range) -> int:
    """A generous bound on the cycles of a run of ``layers`` (a hang is reported, not waited
    for forever)."""
    total = 0
    for li in layers:
        d = image.layers[li]
        total += int(d.n_entries.max(initial=0)) + d.n_in + d.rows_per_pe + 64
    return 4 * total + RUN_LIMIT


def inference_program(params: HWParams, image: NetworkImage, a_phys: np.ndarray,
                      first_layer: int = 0, n_layers: int | None = None, read_back: int = 1,
                      limit: int | None = None) -> Program:
    """Write the physical input ``a_phys``, run layers ``first_layer ..`` (all the rest by
    default), read the outputs of the run's last ``read_back`` layers (1 or 2: the two banks)
    and the counters. The image must be loaded (or preloaded)."""
    n = len(image.layers) - first_layer if n_layers is None else n_layers
    layers = range(first_layer, first_layer + n)
    prog: Program = [input_load(params, image, a_phys), Start(first_layer, n),
                     WaitDone(run_limit(image, layers) if limit is None else limit)]
    for k in range(min(read_back, n)):  # the layer before the last wrote the other bank
        d = image.layers[layers[-1 - k]]
        prog.append(ReadOutput(layers[-1 - k], output_bank(n - k), d.rows_per_pe, d.n_out))
    return prog + [ReadCounters()]


def rom_program(params: HWParams, image: NetworkImage, a_phys: np.ndarray) -> Program:
    """The ROM build's program (memories and layer table preloaded, :func:`pe_inits`): reset,
    then one inference through every layer, with no image writes."""
    return reset_program(params) + inference_program(params, image, a_phys)


# -- the transactions: image and input writes, output reads ------------------------------------
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


# -- playing a program ---------------------------------------------------------------------------
async def play(params: HWParams, program: Program, do) -> Outcome:
    """Run ``program`` through ``do``, a backend's async interpreter of one step, which returns
    an observing step's raw observation (``None`` for the other steps)."""
    out = Outcome()
    for step in program:
        raw = await do(step)
        if raw is not None:
            out.record(params, step, raw)
    return out
