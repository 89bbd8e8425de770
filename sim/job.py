"""What one simulator process does: cases (an image loaded after a reset, then runs), the
expected results (golden model and cycle model), and what the RTL produced.

The pytest / command-line side builds a :class:`Job` (:func:`make_case` computes every
expectation from the images with :mod:`sw.eie.golden` and :mod:`sw.eie.cycles`), writes it to a file,
and runs the cocotb module :mod:`sim.tb_eie` on a built design; the testbench replays it,
checks every output bit for bit and every counter against the cycle model, and writes a
:class:`JobResult` beside it.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hw.timing import rtl_timing
from sw.eie.cycles import CycleReport, simulate_layer
from sw.eie.golden import run_layer
from sw.eie.pack import NetworkImage


@dataclass
class Run:
    """One inference: ``x`` (physical order) written to bank 0, then layers
    ``first_layer .. first_layer + n_layers - 1`` back to back."""

    x: np.ndarray
    first_layer: int
    n_layers: int
    label: str = ""
    expect: list[np.ndarray] = field(default_factory=list)  # golden outputs per layer (physical)
    model_cycles: list[int] = field(default_factory=list)  # cycle model, per layer
    model_stalls: list[int] = field(default_factory=list)
    model_busy: np.ndarray | None = None  # (n_layers, N)
    reset_after: int | None = None  # fuzz: reset this many cycles after start (aborted run)

    @property
    def layers(self) -> range:
        return range(self.first_layer, self.first_layer + self.n_layers)


@dataclass
class Case:
    """An image loaded after a reset, and the runs on it."""

    name: str
    image: NetworkImage
    runs: list[Run]
    stall_seed: int | None = None  # random host-side stalls (sim.driver.Stalls) when set
    stall_p: float = 0.2
    fault: NetworkImage | None = None  # loaded instead of ``image`` (tests of the checker)

    @property
    def loaded(self) -> NetworkImage:
        """What the testbench loads into the RTL (``image`` unless a fault is injected)."""
        return self.image if self.fault is None else self.fault


@dataclass
class Job:
    cases: list[Case]
    check_cycles: bool = True  # compare the counters with the cycle model
    diagnose: bool = True  # on a mismatch, localise it (layer, PE, row, column, cycle)
    stop_on_fail: bool = True


@dataclass
class RunResult:
    outputs: dict[int, np.ndarray]  # layer -> RTL physical outputs (the last two layers)
    cycles: int
    stall_cycles: int
    busy: np.ndarray
    start_cycle: int  # simulation cycle of the run's cycle 0 (the edge taking start)
    done_cycle: int  # simulation cycle beginning with the edge that raised done
    wall_s: float  # wall time from start to done (the simulator running freely)
    cpu_s: float = 0.0  # CPU time of the simulator process over the same span
    ok: bool = True
    # a run aborted by a reset (Run.reset_after): the RTL's busy and layer ports just before it
    reset_busy: bool | None = None
    reset_layer: int | None = None
    # builds with access counters (sim.access): counter name -> (N,) counts of the run
    access: dict[str, np.ndarray] | None = None


@dataclass
class CaseResult:
    name: str
    runs: list[RunResult]
    load_writes: int
    load_s: float
    ok: bool = True
    message: str = ""  # the first mismatch, localised
    wall_s: float = 0.0  # reset + load + every run, in the simulator process
    host_gaps: dict[str, int] | None = None  # host-side stall gaps inserted (sim.driver.Stalls)


@dataclass
class JobResult:
    cases: list[CaseResult] = field(default_factory=list)
    wall_s: float = 0.0
    run_dir: str | None = None  # kept for inspection (failures, waves)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.cases)

    @property
    def first_failure(self) -> CaseResult | None:
        return next((c for c in self.cases if not c.ok), None)


def save(obj, path: Path) -> None:
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        pickle.dump(obj, f, protocol=pickle.HIGHEST_PROTOCOL)
    tmp.replace(path)


def load(path: Path):
    with open(path, "rb") as f:
        return pickle.load(f)


def make_run(image: NetworkImage, x_phys: np.ndarray, first_layer: int = 0,
             n_layers: int | None = None, label: str = "", cycles: bool = True,
             reports: list[CycleReport] | None = None,
             golden: list[np.ndarray] | None = None) -> Run:
    """A run with its expectations: golden outputs of every layer and the cycle model's
    counters (``cycles=False`` skips the cycle model). The cycle model's per-layer reports are
    appended to ``reports`` when given; ``golden``: the layers' golden outputs when already
    computed (e.g. for a whole batch at once)."""
    n_layers = len(image.layers) - first_layer if n_layers is None else n_layers
    timing = rtl_timing(image.config)
    a = np.asarray(x_phys, dtype=np.int64)
    run = Run(a, first_layer, n_layers, label)
    busy = []
    for idx, li in enumerate(run.layers):
        if cycles:
            r = simulate_layer(image, li, a, timing)
            if reports is not None:
                reports.append(r)
            run.model_cycles.append(r.cycles)
            run.model_stalls.append(r.stall_cycles)
            busy.append(r.busy)
        a = run_layer(image, li, a) if golden is None else np.asarray(golden[idx], np.int64)
        run.expect.append(a)
    if cycles:
        run.model_busy = np.stack(busy)
    return run
