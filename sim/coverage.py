"""Functional coverage of the RTL verification: which EIE corner cases the stimulus reached
(issue 15, item 1).

A :class:`Coverage` holds cover points, each a set of named bins with hit counts; bins are
declared before they are hit (so a hole shows as a 0), coverages of many jobs merge
(:meth:`Coverage.merge`, e.g. across the fuzz's farm tasks), and the result prints as a table
(:meth:`Coverage.table`) and saves as JSON (:meth:`Coverage.to_json`). Written once here rather
than with cocotb-coverage, whose cover points live in one global database of the simulator
process: these are sampled outside it and merged across processes.

Nothing is sampled per cycle, and nothing in the simulator process: :func:`sample_job` runs
after a job, from the job (the images, inputs, golden outputs) and its result (the counters
the RTL reported, what the testbench saw at a reset, the host stalls the driver inserted). So
the simulation's speed does not change. Every point says where its bins are observed
(:data:`SOURCES`):

- ``rtl``: a value the RTL produced: its ``stall_cycles`` and per-PE busy counters, its
  ``busy`` and ``layer`` ports sampled by the testbench at a reset in the middle of a run;
- ``model``: a hardware event derived from the cycle model's schedule
  (:func:`sw.eie.cycles.schedule`: broadcast and column-start cycle of every pair in every PE),
  which every run checks to be cycle-exact with the RTL (``cycles``, ``stall_cycles`` and all
  busy counters equal), and from the golden model's accumulators, checked bit-exact;
- ``stimulus``: a property of the case (image, inputs, run structure, configuration);
- ``driver``: what the cocotb driver did on the host port (stall cycles inserted).

Steering (:func:`steer`): the stimulus and model bins of a case are known before it is
simulated, so a campaign can screen candidate seeds and simulate first those that hit bins
still at 0 (each seed still reproduces alone).
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hw.timing import rtl_timing
from sw.eie.cycles import room_made, schedule
from sw.eie.fixedpoint import int_range, rounded, wrap
from sw.eie.golden import accumulators
from sw.eie.pack import NetworkImage, decode_layer

SOURCES = {"rtl": "RTL counters/ports", "model": "cycle/golden model (checked exact vs RTL)",
           "stimulus": "case properties", "driver": "cocotb driver"}

# point -> (source, description, static bins); points whose bins depend on the configuration
# (the queue's levels) add them when a configuration is sampled (:meth:`Coverage.declare_config`)
POINTS: dict[str, tuple[str, str, list[str]]] = {
    "queue.level": ("model", "most pairs pending in a PE's queue (pairs broadcast, column not "
                    "started), per queue depth; 'full' = queue_depth + held pairs", []),
    "queue.stall": ("rtl", "the RTL's stall_cycles > 0 (a broadcast waited for a full queue), "
                    "per queue depth", []),
    "queue.long_column": ("stimulus", "a broadcast column with more entries in a PE than...",
                          ["> queue_depth", "> queue_depth + held pairs"]),
    "padding": ("stimulus", "padding entries (v = 0) in the columns read",
                ["single", "several in a row", "at a column's start"]),
    "empty": ("stimulus", "empty work",
              ["empty column in a PE", "PE without entries in a layer",
               "PE without output rows (n_out < N)", "layer with no non-zero input",
               "layer without entries"]),
    "bypass": ("model", "accumulator hits of one PE in adjacent cycles (from the schedule)",
               ["same row in consecutive cycles (bypass)", "same row two cycles apart",
                "bypass on a padding entry"]),
    "arith.saturation": ("model", "golden accumulators after rounding, outside act_bits",
                         ["high", "low"]),
    "arith.relu": ("model", "ReLU", ["clamped (negative -> 0)", "passes a positive value",
                                     "off: negative value kept"]),
    "arith.accumulator": ("model", "exact sum (bias included) outside acc_bits",
                          ["wraps above", "wraps below"]),
    "lnzd": ("stimulus", "the source vector seen by the LNZD tree (non-zeros per local index)",
             ["tie of 2 PEs", "tie of 3+ PEs", "tie of all N PEs (N > 1)",
              "tie across leaf nodes", "a PE with no non-zeros", "no non-zero at all",
              "a single non-zero"]),
    "host": ("driver", "host-side stall cycles the driver inserted", ["write", "read", "start"]),
    "reset": ("rtl", "reset in the middle of a run, by what the RTL's ports showed then",
              ["run busy (RTL busy = 1)", "in the first layer's compute", "in a write-back",
               "in a later layer of a chain", "after done (RTL busy = 0)"]),
    "chain": ("stimulus", "runs", ["1 layer", "2 layers back to back", "3+ layers back to back",
                                   "run starting at layer > 0", "several runs on one image"]),
    "pe.first": ("rtl", "PE 0 (busy counters of the RTL; stall from the schedule)",
                 ["most busy", "idle (busy = number of broadcasts)", "caused a stall"]),
    "pe.last": ("rtl", "PE N-1 (busy counters of the RTL; stall from the schedule)",
                ["most busy", "idle (busy = number of broadcasts)", "caused a stall"]),
    "config": ("stimulus", "the build", ["N = 1", "N a power of 4 (> 1)", "N not a power of 4",
                                         "LNZD with a partial node"]),
}


@dataclass
class Coverage:
    """Cover points -> bins -> hits."""

    bins: dict[str, dict[str, int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for point, (_, _, names) in POINTS.items():
            b = self.bins.setdefault(point, {})
            for n in names:
                b.setdefault(n, 0)

    def hit(self, point: str, name: str, n: int = 1) -> None:
        if point not in POINTS:
            raise KeyError(f"unknown cover point {point!r}")
        b = self.bins.setdefault(point, {})
        b[name] = b.get(name, 0) + int(n)

    def declare(self, point: str, name: str) -> None:
        self.bins.setdefault(point, {}).setdefault(name, 0)

    def declare_config(self, queue_depth: int, capacity: int) -> None:
        for level in range(1, capacity + 1):
            self.declare("queue.level", _level_bin(queue_depth, level, capacity))
        self.declare("queue.stall", f"depth {queue_depth}")

    def merge(self, other: Coverage) -> Coverage:
        for point, b in other.bins.items():
            for name, n in b.items():
                self.bins.setdefault(point, {})
                self.bins[point][name] = self.bins[point].get(name, 0) + n
        return self

    @property
    def holes(self) -> list[tuple[str, str]]:
        return [(p, n) for p, b in self.bins.items() for n, c in b.items() if c == 0]

    def summary(self) -> tuple[int, int]:
        total = sum(len(b) for b in self.bins.values())
        return total - len(self.holes), total

    def to_json(self) -> dict:
        hit, total = self.summary()
        return {"bins_hit": hit, "bins": total,
                "points": {p: {"source": POINTS[p][0], "description": POINTS[p][1],
                               "bins": dict(b)} for p, b in self.bins.items()}}

    @classmethod
    def from_json(cls, d: dict) -> Coverage:
        return cls({p: dict(v["bins"]) for p, v in d["points"].items()})

    def save(self, path: Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=1))
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> Coverage:
        return cls.from_json(json.loads(Path(path).read_text()))

    def table(self) -> str:
        rows = [("point", "source", "bin", "hits")]
        for p, b in self.bins.items():
            for i, (name, n) in enumerate(b.items()):
                rows.append((p if i == 0 else "", POINTS[p][0] if i == 0 else "", name,
                             f"{n:,}" if n else "0  <- HOLE"))
        w = [max(len(r[i]) for r in rows) for i in range(3)]
        lines = [f"{r[0]:{w[0]}}  {r[1]:{w[1]}}  {r[2]:{w[2]}}  {r[3]}" for r in rows]
        lines.insert(1, "  ".join("-" * x for x in w) + "  ----")
        hit, total = self.summary()
        lines.append(f"{hit} of {total} bins hit ({hit / max(total, 1):.0%}); sources: "
                     + ", ".join(f"{k} = {v}" for k, v in SOURCES.items()))
        return "\n".join(lines)


def _level_bin(depth: int, level: int, capacity: int) -> str:
    return f"depth {depth}: {level}" + (" (full)" if level == capacity else "")


# -- sampling ------------------------------------------------------------------------------------


def _levels_of(n: int) -> int:
    lv = 1
    while 4 ** lv < n:
        lv += 1
    return lv


def sample_config(cov: Coverage, image: NetworkImage) -> None:
    c = image.config
    t = rtl_timing(c)
    cov.declare_config(c.queue_depth, c.queue_depth + t.held_pairs)
    n = c.n_pe
    if n == 1:
        cov.hit("config", "N = 1")
    elif 4 ** _levels_of(n) == n:
        cov.hit("config", "N a power of 4 (> 1)")
    else:
        cov.hit("config", "N not a power of 4")
        cov.hit("config", "LNZD with a partial node")  # some node has fewer than 4 children


def sample_layer(cov: Coverage, image: NetworkImage, li: int, a: np.ndarray,
                 rtl_busy: np.ndarray | None = None, rtl_stalls: int | None = None) -> None:
    """Stimulus and model bins of layer ``li`` on its source vector ``a`` (physical); with the
    RTL's busy counters and stall count of this layer alone when known."""
    c = image.config
    d = image.layers[li]
    n = c.n_pe
    t = rtl_timing(c)
    cap = c.queue_depth + t.held_pairs
    a = np.asarray(a, np.int64)
    j = np.flatnonzero(a)
    m = j.size
    # LNZD: non-zeros per local index across the PEs
    pad = np.zeros(-(-d.n_in // n) * n, np.int64)
    pad[: d.n_in] = a != 0
    grid = pad.reshape(-1, n)  # (local index, PE)
    per_idx = grid.sum(axis=1)
    if m == 0:
        cov.hit("lnzd", "no non-zero at all")
        cov.hit("empty", "layer with no non-zero input")
    if m == 1:
        cov.hit("lnzd", "a single non-zero")
    if n > 1:
        cov.hit("lnzd", "tie of 2 PEs", int(np.count_nonzero(per_idx == 2)))
        cov.hit("lnzd", "tie of 3+ PEs", int(np.count_nonzero(per_idx >= 3)))
        cov.hit("lnzd", "tie of all N PEs (N > 1)", int(np.count_nonzero(per_idx == n)))
        leaf_groups = np.add.reduceat(grid, np.arange(0, n, 4), axis=1) > 0 if n > 4 else None
        if leaf_groups is not None:
            cov.hit("lnzd", "tie across leaf nodes", int(np.count_nonzero(leaf_groups.sum(axis=1) >= 2)))
    cov.hit("lnzd", "a PE with no non-zeros", int(np.count_nonzero(grid.sum(axis=0) == 0)))
    # entries of the columns read
    p = image.ptr[:, d.ptr_base: d.ptr_base + d.n_in + 1]
    e = np.diff(p, axis=1)[:, j]  # (N, M)
    if e.sum() == 0 and m:
        cov.hit("empty", "layer without entries")
    cov.hit("empty", "empty column in a PE", int(np.count_nonzero(e == 0)))
    cov.hit("empty", "PE without entries in a layer", int(np.count_nonzero(e.sum(axis=1) == 0)))
    if d.n_out < n:
        cov.hit("empty", "PE without output rows (n_out < N)", n - d.n_out)
    cov.hit("queue.long_column", "> queue_depth", int(np.count_nonzero(e > c.queue_depth)))
    cov.hit("queue.long_column", "> queue_depth + held pairs", int(np.count_nonzero(e > cap)))
    # the schedule (cycle-exact with the RTL): queue levels, stalls, issue cycles
    ent = None
    if m:
        b, s, _ = schedule(np.maximum(e, 1), cap, t.start, t.column_latency, t.room_latency)
        level = np.zeros(n, np.int64)
        for k in range(n):
            level[k] = int((np.arange(1, m + 1) - np.searchsorted(s[k], b, side="right")).max())
        for lv in np.unique(level):
            if lv >= 1:
                cov.hit("queue.level", _level_bin(c.queue_depth, int(lv), cap),
                        int(np.count_nonzero(level == lv)))
        # a PE whose queue held a broadcast back: pair m-cap's start made room only at b_m
        stalled = np.flatnonzero(np.diff(b) > 1) + 1  # broadcasts that waited
        culprits = set()
        for mm in stalled:
            if mm >= cap:
                culprits.update(np.flatnonzero(room_made(s[:, mm - cap], t.room_latency)
                                               == b[mm]).tolist())
        if 0 in culprits:
            cov.hit("pe.first", "caused a stall")
        if n - 1 in culprits:
            cov.hit("pe.last", "caused a stall")
        # entries in issue order per PE: cycle, row, padding
        ent = decode_layer(image, li, j)
        lens = e.ravel()  # (k, m) segments, PE-major, as decode_layer orders them
        seg0 = np.cumsum(lens) - lens
        offs = np.arange(int(lens.sum())) - np.repeat(seg0, lens)
        cyc = np.repeat(s.ravel(), lens) + offs
        _sample_entries(cov, ent.pe, cyc, ent.local_row, ent.v, lens, seg0)
    # arithmetic (golden accumulators, bit-exact with the RTL)
    acc = accumulators(image, li, a, ent if m else None)
    lo_acc, hi_acc = int_range(c.acc_bits)
    cov.hit("arith.accumulator", "wraps above", int(np.count_nonzero(acc > hi_acc)))
    cov.hit("arith.accumulator", "wraps below", int(np.count_nonzero(acc < lo_acc)))
    y = rounded(wrap(acc, c.acc_bits), d.shift, c)
    lo, hi = int_range(c.act_bits)
    cov.hit("arith.saturation", "high", int(np.count_nonzero(y > hi)))
    cov.hit("arith.saturation", "low", int(np.count_nonzero(y < lo)))
    if d.relu:
        cov.hit("arith.relu", "clamped (negative -> 0)", int(np.count_nonzero(y < 0)))
        cov.hit("arith.relu", "passes a positive value", int(np.count_nonzero(y > 0)))
    else:
        cov.hit("arith.relu", "off: negative value kept", int(np.count_nonzero(y < 0)))
    # RTL counters of this layer
    if rtl_busy is not None and n > 1 and m:
        busy = np.asarray(rtl_busy)
        top = busy.max()
        if busy[0] == top and busy[1:].max() < top:
            cov.hit("pe.first", "most busy")
        if busy[-1] == top and busy[:-1].max() < top:
            cov.hit("pe.last", "most busy")
        ents = e.sum(axis=1)
        if busy[0] == m and ents[0] == 0:
            cov.hit("pe.first", "idle (busy = number of broadcasts)")
        if busy[-1] == m and ents[-1] == 0:
            cov.hit("pe.last", "idle (busy = number of broadcasts)")
    if rtl_stalls:
        cov.hit("queue.stall", f"depth {c.queue_depth}")


def _sample_entries(cov: Coverage, pe, cyc, row, v, lens, seg0) -> None:
    if not pe.size:
        return
    padding = v == 0
    seg = np.repeat(np.arange(lens.size), lens)
    same_seg = seg[1:] == seg[:-1]
    pair_pad = padding[1:] & padding[:-1] & same_seg
    cov.hit("padding", "several in a row", int(np.count_nonzero(pair_pad)))
    prev_pad = np.r_[False, padding[:-1] & same_seg]
    next_pad = np.r_[padding[1:] & same_seg, False]
    cov.hit("padding", "single", int(np.count_nonzero(padding & ~prev_pad & ~next_pad)))
    nonempty = lens > 0
    cov.hit("padding", "at a column's start", int(np.count_nonzero(padding[seg0[nonempty]])))
    for gap in (1, 2):
        if pe.size <= gap:
            continue
        same = (pe[gap:] == pe[:-gap]) & (row[gap:] == row[:-gap])
        dist = cyc[gap:] - cyc[:-gap]
        one = same & (dist == 1)
        cov.hit("bypass", "same row in consecutive cycles (bypass)", int(np.count_nonzero(one)))
        cov.hit("bypass", "same row two cycles apart", int(np.count_nonzero(same & (dist == 2))))
        if gap == 1:
            cov.hit("bypass", "bypass on a padding entry",
                    int(np.count_nonzero(one & (padding[1:] | padding[:-1]))))


def sample_run(cov: Coverage, image: NetworkImage, run, result=None, layers: bool = True) -> None:
    """``run``: a :class:`sim.job.Run` (its golden outputs give each layer's source vector);
    ``result``: its :class:`sim.job.RunResult` when simulated; ``layers=False`` skips the
    per-layer bins (:func:`sample_layer`, the costly part)."""
    n = run.n_layers
    cov.hit("chain", "1 layer" if n == 1 else "2 layers back to back" if n == 2
            else "3+ layers back to back")
    if run.first_layer > 0:
        cov.hit("chain", "run starting at layer > 0")
    sources = [run.x] + list(run.expect[:-1]) if layers else []
    for idx, li in enumerate(run.layers):
        a = sources[idx] if idx < len(sources) else None
        if a is None:
            break
        busy = stalls = None
        if result is not None and n == 1 and result.ok:  # the counters are per run
            busy, stalls = result.busy, result.stall_cycles
        sample_layer(cov, image, li, a, busy, stalls)
    if result is not None and result.ok and n > 1 and result.stall_cycles:
        cov.hit("queue.stall", f"depth {image.config.queue_depth}")
    if run.reset_after is not None and result is not None and result.reset_busy is not None:
        if not result.reset_busy:
            cov.hit("reset", "after done (RTL busy = 0)")
        else:
            cov.hit("reset", "run busy (RTL busy = 1)")
            if result.reset_layer != run.first_layer:
                cov.hit("reset", "in a later layer of a chain")
            elif run.model_cycles:
                t = rtl_timing(image.config)
                wb_from = run.model_cycles[0] - t.writeback_latency - \
                    t.writeback_per_row * image.layers[run.first_layer].rows_per_pe
                cov.hit("reset", "in a write-back" if run.reset_after >= wb_from
                        else "in the first layer's compute")


# per-layer bins of at most this many runs of one case (evenly spaced): a case of many runs on
# one image (the regression's 1,000 MNIST images) would otherwise spend more time in sampling
# (~10-30 ms per layer on eie64) than in the simulator
MAX_LAYER_RUNS = 100


def sample_case(cov: Coverage, case, result=None) -> None:
    """A :class:`sim.job.Case` and, when simulated, its :class:`sim.job.CaseResult` (per-layer
    bins of at most :data:`MAX_LAYER_RUNS` of its runs)."""
    sample_config(cov, case.image)
    if len(case.runs) > 1:
        cov.hit("chain", "several runs on one image")
    results = result.runs if result is not None else []
    n = len(case.runs)
    chosen = set(range(n)) if n <= MAX_LAYER_RUNS else \
        set(np.linspace(0, n - 1, MAX_LAYER_RUNS).round().astype(int).tolist())
    for i, run in enumerate(case.runs):
        sample_run(cov, case.image, run, results[i] if i < len(results) else None, i in chosen)
    if result is not None and result.host_gaps:
        for kind, k in result.host_gaps.items():
            cov.hit("host", kind, k)


def sample_job(job, result=None) -> Coverage:
    """The coverage of a :class:`sim.job.Job` and its :class:`sim.job.JobResult`."""
    cov = Coverage()
    results = result.cases if result is not None else []
    for i, case in enumerate(job.cases):
        if case.fault is not None:
            continue  # a test of the checker, not of the design
        sample_case(cov, case, results[i] if i < len(results) else None)
    return cov


ENV = "EIE_COVERAGE"


def record_coverage(job, result) -> Coverage | None:
    """If the environment variable ``EIE_COVERAGE`` names a JSON file, sample ``job`` and its
    ``result`` and merge them into that file (under a lock: farm workers and parallel tests
    may record at once); else do nothing (no cost)."""
    path = os.environ.get(ENV)
    if not path:
        return None
    cov = sample_job(job, result)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            total = Coverage.load(path) if path.exists() else Coverage()
            total.merge(cov).save(path)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return cov


# -- steering ------------------------------------------------------------------------------------


def steer(cov: Coverage, candidates: Iterable[int], n: int,
          case_of: Callable[[int], object]) -> list[int]:
    """``n`` of the ``candidates`` seeds, those whose cases (``case_of(seed)``, sampled without
    simulating: stimulus and model bins) hit bins that ``cov`` and the seeds already chosen
    leave at 0 first (greedy, in candidate order), then the rest in candidate order. A seed
    still reproduces alone; only the choice of seeds depends on the coverage so far."""
    seen = Coverage().merge(cov)
    cands = list(candidates)
    per = {}
    for s in cands:
        c = Coverage()
        sample_case(c, case_of(s))
        per[s] = {(p, b) for p, bb in c.bins.items() for b, k in bb.items() if k}
    chosen: list[int] = []
    while len(chosen) < n:
        holes = set(seen.holes) | {(p, b) for s in per for (p, b) in per[s]
                                   if seen.bins.get(p, {}).get(b, 0) == 0}
        best = max((s for s in cands if s not in chosen), default=None,
                   key=lambda s: len(per[s] & holes))
        if best is None or not per[best] & holes:
            break
        chosen.append(best)
        for p, b in per[best]:
            seen.hit(p, b)
    chosen += [s for s in cands if s not in chosen][: n - len(chosen)]
    return chosen


# -- directed cases for bins the random generator (almost) never reaches ----------------------


def _wrap_case(config) -> object | None:
    """A layer whose sums leave ``acc_bits`` both ways: half the rows all +w, half all -w,
    every input at the activation maximum; None when no such layer fits ``config``."""
    from sim.job import Case, make_run
    from sw.eie.pack import pack_network
    from sw.errors import FitError
    from sw.qlayer import QuantizedLayer

    lo, hi = int_range(config.act_bits)
    w = float(hi >> config.act_frac) / 2  # a centroid that fits the codebook at a good w_frac
    need = (1 << (config.acc_bits - 1)) // max(1, (hi // 4) * hi) + 2  # inputs to overflow
    n_in = min(config.max_vector, max(need, 4))
    n_out = 2 * config.n_pe
    cb = np.zeros(1 << config.weight_bits, np.float32)
    cb[1], cb[2] = w, -w
    codes = np.where(np.arange(n_out)[:, None] % 2 == 0, 1, 2) * np.ones((1, n_in), np.uint8)
    q = QuantizedLayer("wrap", "linear", cb, codes.astype(np.uint8), None, config.weight_bits)
    try:
        image = pack_network([q], config)
    except FitError:
        return None
    run = make_run(image, np.full(n_in, hi, np.int64), label="wrap")
    case = Case(f"directed:wrap:{config.name}", image, [run])
    c = Coverage()
    sample_case(c, case)
    b = c.bins["arith.accumulator"]
    return case if b["wraps above"] and b["wraps below"] else None


def _reset_case(config) -> object:
    """One two-layer network, run three times, each run aborted by a reset: in the first
    layer's compute, in its write-back, in the second layer; then once after done."""
    from sim.job import Case, make_run
    from sw.eie.pack import pack_network
    from sw.qlayer import QuantizedLayer

    rng = np.random.default_rng(15)
    n = config.n_pe
    sizes = [4 * n, 6 * n, 2 * n]
    layers = []
    for i in range(2):
        codes = (rng.integers(1, 4, (sizes[i + 1], sizes[i])) * (rng.random((sizes[i + 1], sizes[i])) < 0.5))
        cb = np.zeros(1 << config.weight_bits, np.float32)
        cb[1:4] = [0.25, -0.5, 0.75]
        layers.append(QuantizedLayer(f"fc{i}", "linear", cb, codes.astype(np.uint8), None,
                                     config.weight_bits, relu=i == 0))
    image = pack_network(layers, config)
    x = rng.integers(1, 1 << config.act_frac, sizes[0])
    t = rtl_timing(config)
    probe = make_run(image, x)
    first = probe.model_cycles[0]
    wb = first - t.writeback_latency - t.writeback_per_row * image.layers[0].rows_per_pe
    runs = []
    for at in (t.start + 2, wb + 1, first + 3, sum(probe.model_cycles) + 4):
        r = make_run(image, x, label=f"reset@{at}")
        r.reset_after = int(at)
        runs.append(r)
    runs.append(make_run(image, x, label="after"))
    return Case(f"directed:reset:{config.name}", image, runs, stall_seed=15, stall_p=0.3)


CLOSURE: dict[tuple[str, str], Callable] = {
    ("arith.accumulator", "wraps above"): _wrap_case,
    ("arith.accumulator", "wraps below"): _wrap_case,
    ("reset", "in the first layer's compute"): _reset_case,
    ("reset", "in a write-back"): _reset_case,
    ("reset", "in a later layer of a chain"): _reset_case,
    ("reset", "after done (RTL busy = 0)"): _reset_case,
    ("reset", "run busy (RTL busy = 1)"): _reset_case,
}


def closure_cases(cov: Coverage, configs: dict) -> list[tuple[str, object]]:
    """Directed cases for the holes of ``cov`` that :data:`CLOSURE` knows how to hit, as
    ``(build name, case)`` on the first of ``configs`` (name -> EIEConfig) where the builder
    succeeds; each builder once."""
    out, done = [], set()
    for hole in cov.holes:
        fn = CLOSURE.get(hole)
        if fn is None or fn in done:
            continue
        done.add(fn)
        for name, config in configs.items():
            case = fn(config)
            if case is not None:
                out.append((name, case))
                break
    return out


def close(path: Path) -> Coverage:
    """Run the directed cases (:func:`closure_cases`) for the holes of the coverage in
    ``path`` on the fuzz's small builds, each checked like any job, and merge their coverage
    into ``path``."""
    from sim.design import eie_design
    from sim.fuzz import FUZZ_CONFIGS
    from sim.job import Job
    from sim.session import run_job

    cov = Coverage.load(path)
    small = {k: c for k, c in FUZZ_CONFIGS.items() if c.n_pe <= 8}
    for name, case in closure_cases(cov, small):
        job = Job([case])
        result = run_job(eie_design(small[name], log=lambda m: None), job)
        if not result.ok:
            raise SystemExit(f"directed case {case.name} failed: {result.first_failure.message}")
        print(f"{case.name} on {name}: passed ({len(case.runs)} runs)")
        cov.merge(sample_job(job, result))
    cov.save(path)
    return cov


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] in ("report", "close"):
        path = Path(argv[1])
        if not path.exists():
            print(f"sim.coverage: no coverage file {path}", file=sys.stderr)
            return 2
        cov = close(path) if argv[0] == "close" else Coverage.load(path)
        print(cov.table())
        return 0
    print("usage: python -m sim.coverage report|close FILE.json  (close: run directed cases "
          "for the holes and merge them into FILE)", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
