"""Memory accesses the RTL makes, counted in simulation, against the cycle model's counts.

The energy model (:mod:`sw.eie.energy`) prices the cycle model's access counts
(:class:`sw.eie.cycles.CycleReport`): sparse-matrix word reads, pointer-pair reads, source
activation reads and activation writes, per PE. Here the RTL counts them itself: a build of
the generated Verilog whose PE module has four extra counters as outputs
(``hw.verilog.generate(access_counters=True)``, :data:`hw.pe.ACCESS_COUNTERS`; the top leaves
them unconnected, so the shipped RTL has none of their flip-flops), each counting, while the
busy counter counts, the cycles in which that PE

- reads its sparse-matrix SRAM (``hw.spmat_read``: only for a word it does not hold),
- reads its two pointer banks (``hw.pointer_read``: once per pair it takes from its queue),
- reads an entry of its source non-zero list (an activation it owns, to broadcast),
- writes an activation in the write-back.

The testbench reads the counters inside the PE instances after each run (``EIE_SIM_ACCESS``,
:func:`sim.tb_eie.read_access_counters`, a Verilator control file making them readable) and
:func:`compare` sets them beside the cycle model's sums over the run's layers.

    python -m sim.access [--config eie64] [--layers Alex-6,Alex-7,Alex-8]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from dataclasses import dataclass

import numpy as np

from hw.pe import ACCESS_COUNTERS
from sw.eie.config import EIEConfig

from .runner import BUILD, Design, build

# counter -> the cycle model's field (sw.eie.cycles.CycleReport)
MODEL_FIELD = {"n_spmat_reads": "spmat_word_reads", "n_ptr_reads": "pointer_reads",
               "n_act_reads": "act_reads", "n_act_writes": "act_writes"}
LABEL = {"n_spmat_reads": "sparse-matrix word reads", "n_ptr_reads": "pointer-pair reads",
         "n_act_reads": "activation reads", "n_act_writes": "activation writes"}


def counting_design(config: EIEConfig, log=None) -> Design:
    """A Verilator build of ``config`` whose PEs count their accesses (generated and built
    once per Verilog text)."""
    from hw.verilog import generate

    text = generate(config, name="eie", access_counters=True).text
    h = hashlib.sha256(text.encode()).hexdigest()[:16]
    path = BUILD / "rtl" / f"{config.name}-access-{h}.v"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    t = time.perf_counter()
    design = build([path], "eie", public=(("eie_pe", "n_access"),))
    if design.fresh and log:
        log(f"built the counting model of {config.name} in {time.perf_counter() - t:.0f} s")
    return design


@dataclass
class Comparison:
    name: str
    rtl: dict[str, np.ndarray]  # counter -> (N,)
    model: dict[str, np.ndarray]
    per_column_words: int = 0  # word reads of a reader that forgets its word between columns

    @property
    def equal(self) -> bool:
        return all(np.array_equal(self.rtl[k], self.model[k]) for k in ACCESS_COUNTERS)

    def row(self) -> str:
        cells = []
        for k in ACCESS_COUNTERS:
            r, m = int(self.rtl[k].sum()), int(self.model[k].sum())
            same = "=" if np.array_equal(self.rtl[k], self.model[k]) else "PER-PE DIFF"
            cells.append(f"{r:,} {same} {m:,}" if r == m else f"RTL {r:,} / model {m:,} {same}")
        return f"| {self.name} | " + " | ".join(cells) + f" | {self.per_column_words:,} |"


def model_counts(image, run) -> tuple[dict[str, np.ndarray], int]:
    """The cycle model's counts of ``run`` (:class:`sim.job.Run`), summed over its layers, and
    the sparse-matrix word reads of a reader that does not keep its word across columns (the
    distinct words of each column: the count before the reader kept it)."""
    from hw.timing import rtl_timing
    from sw.eie.cycles import simulate_layer
    from sw.eie.golden import run_layer

    timing = rtl_timing(image.config)
    a = np.asarray(run.x, np.int64)
    out = {k: np.zeros(image.config.n_pe, np.int64) for k in ACCESS_COUNTERS}
    epw = image.config.entries_per_word
    per_column = 0
    for li in run.layers:
        r = simulate_layer(image, li, a, timing)
        for k, f in MODEL_FIELD.items():
            out[k] += getattr(r, f)
        d = image.layers[li]
        p = image.ptr[:, d.ptr_base: d.ptr_base + d.n_in + 1]
        j = np.flatnonzero(a)
        lo, hi = p[:, :-1][:, j], p[:, 1:][:, j]
        per_column += int(np.where(hi > lo, (hi - 1) // epw - lo // epw + 1, 0).sum())
        a = run_layer(image, li, a)
    return out, per_column


def compare(design: Design, cases: list) -> list[Comparison]:
    """Run ``cases`` (:class:`sim.job.Case`, checked bit- and cycle-exact as always) on a
    counting build and compare every run's counters with the cycle model's."""
    from .job import Job
    from .session import run_job

    os.environ["EIE_SIM_ACCESS"] = "1"
    try:
        result = run_job(design, Job(cases, stop_on_fail=False))
    finally:
        os.environ.pop("EIE_SIM_ACCESS", None)
    out = []
    for case, cr in zip(cases, result.cases, strict=False):
        if not cr.ok:
            raise RuntimeError(f"{case.name}: {cr.message}")
        for run, rr in zip(case.runs, cr.runs, strict=True):
            counts, per_column = model_counts(case.image, run)
            out.append(Comparison(f"{case.name} {run.label}".strip(), rr.access, counts,
                                  per_column))
    return out


def table(rows: list[Comparison]) -> str:
    head = "| run | " + " | ".join(f"{LABEL[k]} (RTL = model)" for k in ACCESS_COUNTERS) + \
        " | word reads, distinct per column |"
    return "\n".join([head, "|---" * (len(ACCESS_COUNTERS) + 2) + "|"] + [r.row() for r in rows])


def main(argv: list[str]) -> int:
    from .regress import alexnet_entries

    ap = argparse.ArgumentParser(prog="python -m sim.access", description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="eie64")
    ap.add_argument("--layers", default="Alex-6,Alex-7,Alex-8")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    config = EIEConfig.load(args.config)
    entries = alexnet_entries(config, args.layers.split(","), args.seed, ("interleaved",), None,
                              log)
    cases = [e.case for e in entries]
    t = time.perf_counter()
    rows = compare(counting_design(config, log), cases)
    print(f"access counts, config {config.name} (N={config.n_pe}): RTL counters = cycle model")
    print(table(rows))
    ok = all(r.equal for r in rows)
    print(f"{'EQUAL' if ok else 'DIFFERENT'}: {len(rows)} run(s), {time.perf_counter() - t:.0f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
