"""The cycle model: how many cycles EIE takes for a layer and an input (docs/format.md, Timing).

It implements the timing contract exactly, from the images (the pointers give every PE's
entries per column); an RTL that implements the same contract, with the fixed latencies of
:class:`Timing` set to its own, takes exactly the predicted number of cycles, and the
testbenches check that. Han et al., EIE (ISCA 2016), Section IV: the central control unit
broadcasts the non-zero input activations one per cycle, found by the leading-non-zero
detection tree in ascending index order; each PE queues them (depth ``queue_depth``, paper 8)
and works through its entries of a column at one per cycle; broadcasting stalls while any
queue is full.

The schedule follows from a recurrence instead of a cycle-by-cycle simulation. With pairs
``m = 0..M-1`` (the non-zero inputs in ascending physical index), ``b_m`` the broadcast cycle,
``s[k, m]`` the cycle PE ``k`` starts pair ``m``'s column and ``w[k, m] = max(1, e[k, j_m])``
its cycles on it (``e`` = entries, padding included), ``C`` the column latency and ``D`` the
pairs a PE can hold before their columns start (``queue_depth + held_pairs``)::

    s[k, m] = max(b_m + C, s[k, m-1] + w[k, m-1])        # startable from b_m + C; no bubble
    b_m     = max(b_{m-1} + 1, max_k s[k, m-D] + 1 + R)  # room at the start of the cycle:
                                                        # pair m-D must have started everywhere
    b_0     = start

(the second line: the queue of PE k holds pairs broadcast before cycle t and not started before
t; pair ``m`` may go at cycle t once that count is below D, i.e. once pair ``m-D`` was started
in an earlier cycle; ``R`` = ``room_latency``, the cycles the news of a start takes to reach the
broadcast decision: with R > 0 a start makes room R cycles later). One step per broadcast,
vectorised over the PEs: Alex-6 (3,235 broadcasts, 64 PEs) takes a few tens of milliseconds.

Reported per layer: total cycles (start, compute, drain, write-back), the lower bound
``max(max_k entries_k, M)`` over the non-zero columns (EIE Section VI-C),
``efficiency = lower_bound / compute_cycles`` (1.0: the layer runs at its bound; the fixed
latencies are left out so that short and long layers compare), per-PE busy/idle cycles, stall
cycles, and the access counts the energy model (:mod:`sw.eie.energy`) uses.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sw.eie.golden import run_layer
from sw.eie.pack import NetworkImage
from sw.errors import DataError


@dataclass(frozen=True)
class Timing:
    """The fixed latencies of the timing contract; the RTL mirrors these numbers.

    - ``start``: cycles from the layer's start to the first possible broadcast (the layer-table
      read, then one cycle per registered level of the LNZD tree and one for its root's
      buffer).
    - ``held_pairs``: pairs a PE holds beyond its queue's ``queue_depth`` before their columns
      start (the pointer-read registers of the RTL); the room rule counts
      ``queue_depth + held_pairs``.
    - ``column_latency``: cycles from a pair's broadcast to the earliest cycle a PE can start
      its column (the broadcast register, the queue write, the pointer read, the bounds and
      column registers).
    - ``room_latency``: cycles a column's start takes to make room for a broadcast beyond the
      next cycle (0: a pair may be broadcast in the cycle after the start that makes room for
      it; the RTL's registers between the PEs' room flags and the broadcast decision).
    - ``drain``: cycles from the first cycle in which every PE is done to the first write-back
      row (the arithmetic pipeline after the last entry: EIE's codebook lookup, multiply,
      shift-and-add, write).
    - ``writeback_per_row``: cycles per local row of the write-back pass (bias add, rounding,
      saturation, ReLU, write to the activation file and the non-zero list).
    - ``writeback_latency``: cycles after the last write-back row until the next layer can
      start (the write-back pipeline's tail).

    The numbers belong to the hardware: the RTL states its own once (``hw.timing.rtl_timing``)
    and hands them to the cycle model; this record has no defaults so that no second copy of
    them can drift.
    """

    start: int
    drain: int
    writeback_per_row: int
    writeback_latency: int
    column_latency: int
    held_pairs: int
    room_latency: int

    def __post_init__(self) -> None:
        if not isinstance(self.column_latency, int) or self.column_latency < 1:
            raise DataError(f"timing column_latency must be a positive integer, "
                            f"got {self.column_latency!r}")
        for name in ("start", "drain", "writeback_per_row", "writeback_latency", "held_pairs",
                     "room_latency"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 0:
                raise DataError(f"timing {name} must be a non-negative integer, got {v!r}")


@dataclass
class CycleReport:
    """The cycle model's prediction for one layer and one input."""

    layer: str
    cycles: int  # layer start -> next layer may start (all fixed latencies included)
    compute_cycles: int  # first possible broadcast -> last PE done (cycles - start - drain - wb)
    lower_bound: int  # max(max over PEs of entries in the non-zero columns, broadcasts)
    efficiency: float  # lower_bound / compute_cycles
    busy: np.ndarray  # (N,) cycles each PE spent on columns (max(1, e) per column)
    idle: np.ndarray  # (N,) compute_cycles - busy
    entries: np.ndarray  # (N,) entries read per PE (padding included)
    stall_cycles: int  # cycles the next broadcast was held back by a full queue
    broadcasts: int  # non-zero inputs M
    queue_depth: int
    spmat_word_reads: np.ndarray  # (N,) sparse-matrix word reads (a new word: word_reads)
    pointer_reads: np.ndarray  # (N,) pointer pairs read (one per popped column, both banks)
    act_reads: np.ndarray  # (N,) source non-zero list reads: the PE's non-zero inputs but
    # the first (which the hardware keeps in a register as it is written)
    act_writes: np.ndarray  # (N,) activations written (every local row, in the write-back)
    n_out: int
    rows_per_pe: int
    broadcast_cycle: np.ndarray = field(repr=False)  # (M,) cycle of each broadcast
    finish: np.ndarray = field(repr=False)  # (N,) first cycle each PE is free after its work

    @property
    def utilization(self) -> float:
        """Mean fraction of the compute cycles the PEs are busy (EIE Figure 8's measure)."""
        return float(self.busy.mean() / self.compute_cycles) if self.compute_cycles else 1.0

    @property
    def work_bound(self) -> int:
        """The bound under this timing contract, where an empty column still costs its PE a
        cycle: ``max(max_k busy_k, M)`` (>= lower_bound; NT-We's gap between the two is the
        cost of the one-cycle minimum per column)."""
        return max(int(self.busy.max(initial=0)), self.broadcasts)

    @property
    def even_bound(self) -> int:
        """The bound if this image's entries were split perfectly evenly over the PEs."""
        n = self.entries.size
        return max(-(-int(self.entries.sum()) // n), self.broadcasts) if n else self.broadcasts

    @property
    def load_balance(self) -> float:
        """Static balance of the work: mean over max of the per-PE entries."""
        m = self.entries.max(initial=0)
        return float(self.entries.mean() / m) if m else 1.0


@dataclass
class NetworkCycleReport:
    layers: list[CycleReport]

    @property
    def cycles(self) -> int:
        return sum(r.cycles for r in self.layers)


def room_made(start_cycle, room_latency: int):
    """The first cycle in which a broadcast can take the room that a column start in
    ``start_cycle`` makes (a scalar or an array of start cycles): the room rule of the
    recurrence above, ``s + 1 + R``."""
    return start_cycle + 1 + room_latency


def schedule(work: np.ndarray, queue_depth: int, start: int = 0, column_latency: int = 1,
             room_latency: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Broadcast cycles ``b (M,)``, start cycles ``s (N, M)`` and finish cycles ``f (N,)`` for a
    work matrix ``work[k, m]`` (cycles PE k spends on pair m, >= 1), by the recurrence above."""
    n_pe, m_total = work.shape
    wt = np.ascontiguousarray(work.T, dtype=np.int64)  # (M, N): one row per broadcast
    b = np.empty(m_total, np.int64)
    s_all = np.empty((m_total, n_pe), np.int64)
    s_max = np.empty(m_total, np.int64)
    free = np.zeros(n_pe, np.int64)  # first cycle each PE can pop again
    t = start - 1
    d = queue_depth
    for m in range(m_total):
        t = t + 1 if m < d else max(t + 1, room_made(int(s_max[m - d]), room_latency))
        b[m] = t
        s = np.maximum(free, t + column_latency)
        s_all[m] = s
        s_max[m] = s.max()
        free = s + wt[m]
    return b, s_all.T, free


def word_reads(lo: np.ndarray, hi: np.ndarray, entries_per_word: int) -> np.ndarray:
    """Sparse-matrix word reads per PE of a reader that keeps the last word it read
    (:mod:`hw.spmat_read`; forgotten at the layer's start): the columns ``[lo, hi)`` (entry
    addresses, ``(N, M)`` in broadcast order) read their words ``lo // epw .. (hi - 1) // epw``
    in order, and a word equal to the one read just before it costs nothing. Per PE: the
    distinct words of each column, less one for every non-empty column that starts in the
    word the previous non-empty column ended in."""
    epw = entries_per_word
    nonempty = hi > lo
    per_column = np.where(nonempty, (hi - 1) // epw - lo // epw + 1, 0).sum(axis=1)
    out = np.empty(lo.shape[0], np.int64)
    for k in range(lo.shape[0]):
        sel = nonempty[k]
        first, last = lo[k, sel] // epw, (hi[k, sel] - 1) // epw
        out[k] = per_column[k] - int(np.count_nonzero(first[1:] == last[:-1]))
    return out


def simulate_layer(image: NetworkImage, layer_index: int, a_phys: np.ndarray,
                   timing: Timing, queue_depth: int | None = None) -> CycleReport:
    """Cycles of one layer for the input ``a_phys`` (physical order; only its non-zero pattern
    matters) under the hardware's ``timing``; ``queue_depth`` overrides the configuration's
    (the images do not depend on it)."""
    c = image.config
    d = image.layers[layer_index]
    depth = c.queue_depth if queue_depth is None else int(queue_depth)
    if depth < 1:
        raise DataError(f"queue depth must be >= 1, got {depth}")
    a = np.asarray(a_phys)
    if a.shape != (d.n_in,):
        raise DataError(f"layer {d.name}: expected {d.n_in} input activations, got shape {a.shape}")
    p = image.ptr[:, d.ptr_base: d.ptr_base + d.n_in + 1]
    j = np.flatnonzero(a)  # LNZD order: ascending physical index
    e = np.diff(p, axis=1)[:, j]  # (N, M) entries per PE per broadcast column
    work = np.maximum(e, 1)  # an empty column still costs its PE one cycle
    b, _, free = schedule(work, depth + timing.held_pairs, timing.start, timing.column_latency,
                          timing.room_latency)
    m = j.size
    done = int(free.max()) if m else timing.start
    compute = done - timing.start
    busy = work.sum(axis=1)
    entries = e.sum(axis=1)
    words = word_reads(p[:, :-1][:, j], p[:, 1:][:, j], c.entries_per_word)
    bound = max(int(entries.max(initial=0)), m)
    cycles = done + timing.drain + timing.writeback_per_row * d.rows_per_pe + timing.writeback_latency
    return CycleReport(
        layer=d.name, cycles=int(cycles), compute_cycles=int(compute), lower_bound=bound,
        efficiency=bound / compute if compute else 1.0, busy=busy, idle=compute - busy,
        entries=entries, stall_cycles=int(b[-1] - timing.start - (m - 1)) if m else 0,
        broadcasts=m, queue_depth=depth, spmat_word_reads=words,
        pointer_reads=np.full(c.n_pe, m, np.int64),
        act_reads=np.maximum(np.bincount(j % c.n_pe, minlength=c.n_pe) - 1, 0).astype(np.int64),
        act_writes=np.full(c.n_pe, d.rows_per_pe, np.int64), n_out=d.n_out,
        rows_per_pe=d.rows_per_pe,
        broadcast_cycle=b, finish=free)


def simulate_network(image: NetworkImage, x_logical: np.ndarray, timing: Timing,
                     queue_depth: int | None = None) -> NetworkCycleReport:
    """Cycles of every layer for one integer input (logical order); each layer's input is the
    golden model's output of the previous layer."""
    a = image.input_to_physical(np.asarray(x_logical))
    reports = []
    for li in range(len(image.layers)):
        reports.append(simulate_layer(image, li, a, timing, queue_depth))
        if li + 1 < len(image.layers):
            a = run_layer(image, li, a)
    return NetworkCycleReport(reports)
