"""Randomised verification: many random layer configurations through a handful of RTL builds.

Every case is derived from one integer seed (:func:`fuzz_case`): its build (:data:`FUZZ_CONFIGS`,
chosen by ``seed mod`` their number, so a seed reproduces alone: ``eie sim --fuzz 1 --seed S``),
a network of 1-3 random FC layers (shapes, weight densities from empty to dense with long zero
runs that need padding entries, empty columns, codebook widths and scales up to saturation,
biases, ReLU flags, balanced or interleaved rows) and 1-4 runs (random sub-chains of layers,
input densities from 0 to 1, values up to the full activation range, random host-side stalls
on the write and read ports and before ``start``, occasionally a run aborted by a reset).
Different N and queue depths need different Verilog, so the cases are grouped per build; a
campaign is farm tasks (:mod:`sim.farm`): one per build (generate and build the model, or find
it in the cache directory), then chunks of one build's seeds, each chunk in one simulator
process (a reset and a fresh image per case); the chunks' results merge into one
:class:`FuzzReport`. ``plant_fault`` corrupts one case's loaded image, a check that the checker
and the report catch and name it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from sw.eie.config import PRESETS, EIEConfig
from sw.eie.fixedpoint import int_range
from sw.eie.pack import pack_network
from sw.errors import DataError, FitError
from sw.qlayer import QuantizedLayer

from .design import eie_design
from .job import Case, Job, make_run
from .session import run_job


def _cfg(name: str, **kw) -> EIEConfig:
    base = dict(spmat_words=512, ptr_depth=512, act_depth=64, bias_depth=256, max_layers=4)
    return EIEConfig(name=f"fuzz-{name}", **{**base, **kw})


# The builds: N in (1, 2, 3, 4, 8, 64), queue depths 1, 2, 3, 4, 8, and non-default widths
# (3-bit weight index with 5-bit relative index; 2-bit relative index on 48-bit words, which
# needs many padding entries; 12-bit activations with a 26-bit wrapping accumulator).
FUZZ_CONFIGS: dict[str, EIEConfig] = {
    "n1d1": _cfg("n1d1", n_pe=1, queue_depth=1, act_depth=128),
    "n2d2": _cfg("n2d2", n_pe=2, queue_depth=2),
    "n3d4": _cfg("n3d4", n_pe=3, queue_depth=4),
    "n4d8w": _cfg("n4d8w", n_pe=4, queue_depth=8, weight_bits=3, index_bits=5, act_bits=12,
                  act_frac=5, acc_bits=26),
    "n8d3z": _cfg("n8d3z", n_pe=8, queue_depth=3, index_bits=2, spmat_word_bits=48,
                  act_frac=6),
    "n64d8": PRESETS["eie64"],
}


def config_of(seed: int) -> str:
    names = list(FUZZ_CONFIGS)
    return names[seed % len(names)]


def _layer(rng: np.random.Generator, name: str, n_out: int, n_in: int,
           config: EIEConfig) -> QuantizedLayer:
    bits = int(rng.integers(1, config.weight_bits + 1))
    style = rng.choice(["uniform", "sparse", "dense", "empty", "columns", "rows"],
                       p=[0.35, 0.2, 0.1, 0.05, 0.15, 0.15])
    if style == "empty":
        mask = np.zeros((n_out, n_in), bool)
    elif style == "dense":
        mask = rng.random((n_out, n_in)) < rng.uniform(0.8, 1.0)
    elif style == "sparse":  # long zero runs: padding entries
        mask = rng.random((n_out, n_in)) < rng.uniform(0.001, 0.03)
    else:
        mask = rng.random((n_out, n_in)) < rng.uniform(0.02, 0.6)
        if style == "columns":  # some columns empty
            mask[:, rng.random(n_in) < rng.uniform(0.1, 0.9)] = False
        elif style == "rows":  # some rows empty, others full: unbalanced PEs
            r = rng.random(n_out)
            mask[r < 0.4] = False
            mask[r > 0.9] = True
    codes = np.where(mask, rng.integers(1, 1 << bits, (n_out, n_in)), 0).astype(np.uint8)
    scale = float(rng.choice([0.01, 0.1, 0.5, 2.0, 50.0]))  # large: outputs saturate
    cb = np.zeros(1 << bits, np.float32)
    cb[1:] = rng.normal(0.0, scale, (1 << bits) - 1)
    bias = None if rng.random() < 0.3 else \
        rng.normal(0.0, float(rng.choice([0.1, 1.0, 20.0])), n_out).astype(np.float32)
    return QuantizedLayer(name, "linear", cb, codes, bias, bits)


def _input(rng: np.random.Generator, n: int, config: EIEConfig) -> np.ndarray:
    density = float(rng.choice([0.0, 1.0, rng.uniform(0, 1), rng.uniform(0, 0.2)],
                               p=[0.05, 0.15, 0.6, 0.2]))
    lo, hi = int_range(config.act_bits)
    one = 1 << config.act_frac
    kind = rng.integers(3)
    if kind == 0:  # typical activations: 0..2
        v = rng.integers(-one, 2 * one + 1, n)
    elif kind == 1:  # the full range, extremes included
        v = rng.integers(lo, hi + 1, n)
        v[rng.random(n) < 0.1] = hi
        v[rng.random(n) < 0.1] = lo
    else:  # small integers
        v = rng.integers(-4, 5, n)
    v = np.clip(v, lo, hi)  # "typical" exceeds the range when act_frac is near act_bits
    return np.where(rng.random(n) < density, v, 0).astype(np.int64)


def fuzz_case(seed: int) -> Case:
    """The random case of ``seed`` (its build: :func:`config_of`)."""
    return random_case(seed, FUZZ_CONFIGS[config_of(seed)], config_of(seed))


def random_case(seed: int, config: EIEConfig, label: str) -> Case:
    """The random case of ``seed`` on any build ``config`` (named ``label`` in the case's name):
    the layers, inputs, runs, stalls and resets :func:`fuzz_case` draws, sized to ``config``'s
    memories (another draw while the network does not fit them)."""
    for attempt in range(100):
        rng = np.random.default_rng([seed, attempt, 0xE1E])
        cap = int(rng.choice([8, 40, 160, 600])) * max(1, config.n_pe // 8)
        cap = max(1, min(cap, config.max_vector))
        n_layers = int(rng.integers(1, min(3, config.max_layers) + 1))
        sizes = [int(rng.integers(1, cap + 1)) for _ in range(n_layers + 1)]
        layers = [_layer(rng, f"fc{i}", sizes[i + 1], sizes[i], config) for i in range(n_layers)]
        for q in layers:
            q.relu = bool(rng.random() < 0.6)
        try:
            image = pack_network(layers, config, balance=bool(rng.random() < 0.3))
        except FitError:
            continue  # too big for this build's memories: draw again
        runs = []
        for r in range(int(rng.integers(1, 5))):
            first = int(rng.integers(n_layers)) if rng.random() < 0.3 else 0
            n = int(rng.integers(1, n_layers - first + 1)) if rng.random() < 0.3 \
                else n_layers - first
            x = _input(rng, image.layers[first].n_in, config)
            run = make_run(image, x, first, n, label=f"run{r}")
            if rng.random() < 0.1:
                run.reset_after = int(rng.integers(1, 2 * max(run.model_cycles[0], 1) + 1))
            runs.append(run)
        stall = int(rng.integers(1 << 31)) if rng.random() < 0.5 else None
        desc = "-".join(map(str, sizes))
        return Case(f"seed{seed}:{label}:{desc}", image, runs, stall_seed=stall,
                    stall_p=float(rng.uniform(0.05, 0.5)))
    raise FitError(f"fuzz seed {seed}: no case fits {config.name} in 100 attempts")


def plant_fault(case: Case, seed: int) -> Case:
    """``case`` with a corrupted image loaded instead of its own (a check of the checker): one
    codebook value of one layer changed so that the golden model's outputs of some run differ
    from the expected ones; raises :class:`DataError` when no such change exists (every run's
    inputs zero, say)."""
    import copy

    from sw.eie.golden import run_layer

    image = case.image
    lo, hi = int_range(image.config.act_bits)
    for li in range(len(image.layers)):
        for code in range(1, image.codebook.shape[1]):
            fault = copy.deepcopy(image)
            v = int(fault.codebook[li, code])
            fault.codebook[li, code] = hi if v <= 0 else lo
            for run in case.runs:
                if li not in run.layers or run.reset_after is not None:
                    continue  # an aborted run's outputs are not checked
                idx = li - run.first_layer
                a = run.x if idx == 0 else run.expect[idx - 1]
                if not np.array_equal(run_layer(fault, li, a), run.expect[idx]):
                    return Case(case.name + ":planted-fault", image, case.runs,
                                case.stall_seed, case.stall_p, fault=fault)
    raise DataError(f"fuzz seed {seed}: no codebook change is visible in its outputs (choose "
                    f"another seed for --plant-fault)")


def reproduce_command(seed: int, planted: bool = False) -> str:
    """The command that runs case ``seed`` alone."""
    return f"eie sim --fuzz 1 --seed {seed}" + (f" --plant-fault {seed}" if planted else "")


@dataclass
class BuildInfo:
    """A fuzz build as a worker found or made it."""

    name: str
    build_dir: str
    fresh: bool  # built by this task (else from the cache directory)
    seconds: float
    host: str


def fuzz_build(name: str) -> BuildInfo:
    """Task: the simulator build of ``name`` (generated and built once per cache directory,
    :func:`sim.design.eie_design`; concurrent requests wait on its lock)."""
    import socket

    t = time.perf_counter()
    design = eie_design(FUZZ_CONFIGS[name], log=lambda m: None)
    return BuildInfo(name, str(design.build_dir), design.fresh, time.perf_counter() - t,
                     socket.gethostname())


@dataclass
class ChunkResult:
    """What one fuzz task returns: per seed, passed or the first mismatch."""

    name: str
    seeds: list[int]
    ok: list[bool]
    messages: list[str]
    runs: list[int]
    prep_s: float
    sim_s: float


def fuzz_chunk(name: str, seeds: list[int], build: BuildInfo | None = None,
               planted: tuple[int, ...] = ()) -> ChunkResult:
    """Task: the cases of ``seeds`` (all of build ``name``) in one simulator process; a seed in
    ``planted`` gets a corrupted image (:func:`plant_fault`). ``build``: the build task's
    result (a dependency, so that builds run before their chunks)."""
    design = eie_design(FUZZ_CONFIGS[name], log=lambda m: None)
    t = time.perf_counter()
    cases = []
    for x in seeds:
        case = fuzz_case(x)
        cases.append(plant_fault(case, x) if x in planted else case)
    prep = time.perf_counter() - t
    result = run_job(design, Job(cases, stop_on_fail=False))
    by_name = {c.name: c for c in result.cases}
    ok, msgs = [], []
    for case in cases:
        r = by_name.get(case.name)
        ok.append(r is not None and r.ok)
        msgs.append("not run" if r is None else r.message)
    return ChunkResult(name, list(seeds), ok, msgs, [len(c.runs) for c in cases], prep,
                       result.wall_s)


@dataclass
class FuzzReport:
    cases: int = 0
    passed: int = 0
    runs: int = 0
    failures: list[tuple[int, str]] = field(default_factory=list)  # (seed, message)
    per_config: dict[str, list[int]] = field(default_factory=dict)  # name -> [passed, cases]
    wall_s: float = 0.0
    planted: tuple[int, ...] = ()
    builds: list[BuildInfo] = field(default_factory=list)
    farm: list[str] = field(default_factory=list)  # where the tasks ran, retries

    @property
    def ok(self) -> bool:
        return self.cases > 0 and self.passed == self.cases

    def lines(self) -> list[str]:
        out = [f"fuzz: {name} ({FUZZ_CONFIGS[name].n_pe} PEs, queue depth "
               f"{FUZZ_CONFIGS[name].queue_depth}): {p}/{n} passed"
               for name, (p, n) in self.per_config.items()]
        fresh = [b for b in self.builds if b.fresh]
        if self.builds:
            out.append(f"fuzz builds: {len(self.builds) - len(fresh)} from the cache"
                       + "".join(f", {b.name} built in {b.seconds:.0f} s on {b.host}"
                                 for b in fresh))
        out += self.farm
        for seed, msg in self.failures[:20]:
            out.append(f"FAIL seed {seed} (reproduce: "
                       f"{reproduce_command(seed, seed in self.planted)}): {msg}")
        if len(self.failures) > 20:
            out.append(f"... and {len(self.failures) - 20} more failing seed(s): "
                       + " ".join(str(s) for s, _ in self.failures[20:]))
        out.append(f"fuzz {'PASS' if self.ok else 'FAIL'}: {self.passed}/{self.cases} random "
                   f"layer configurations passed ({self.runs} runs), {self.wall_s:.0f} s")
        return out


def plan_seeds(n: int, seed: int = 0, configs: list[str] | None = None) -> dict[str, list[int]]:
    """Seeds ``seed, seed + 1, ...`` of the builds in ``configs`` (all: None) until ``n``,
    grouped per build."""
    names = list(FUZZ_CONFIGS) if configs is None else configs
    unknown = [c for c in names if c not in FUZZ_CONFIGS]
    if unknown:
        raise DataError(f"unknown fuzz build(s) {unknown} (known: {', '.join(FUZZ_CONFIGS)})")
    if n < 1:
        raise DataError(f"--fuzz needs at least one case, got {n}")
    seeds: dict[str, list[int]] = {c: [] for c in names}
    s, total = seed, 0
    while total < n:
        c = config_of(s)
        if c in seeds:
            seeds[c].append(s)
            total += 1
        s += 1
    return {c: g for c, g in seeds.items() if g}


STEER_POOL = 4  # --steer: candidate seeds per case run


def steered_seeds(n: int, seed: int = 0, configs: list[str] | None = None, cov=None,
                  pool: int = STEER_POOL) -> dict[str, list[int]]:
    """Like :func:`plan_seeds`, but ``n`` of the first ``pool * n`` candidate seeds, those
    whose cases hit bins that ``cov`` (a :class:`sim.coverage.Coverage`; None: empty) leaves at
    0 first (:func:`sim.coverage.steer`: stimulus and model bins, known without simulating),
    then the rest in seed order; each seed still reproduces alone."""
    from .coverage import Coverage, steer

    cands = sorted(x for g in plan_seeds(pool * n, seed, configs).values() for x in g)
    chosen = set(steer(cov if cov is not None else Coverage(), cands, n, fuzz_case))
    out: dict[str, list[int]] = {}
    for x in cands:
        if x in chosen:
            out.setdefault(config_of(x), []).append(x)
    return out


def auto_chunk(seeds: dict[str, list[int]], workers: int) -> int:
    """Seeds per task: about two tasks per worker and build, 20..250 (a simulator process
    takes 1-3 s to start; smaller chunks balance the load and lose less to a dead worker)."""
    if workers <= 1:
        return 250
    most = max(len(g) for g in seeds.values())
    return max(20, min(250, -(-most // (2 * workers))))


def run_fuzz(n: int, seed: int = 0, configs: list[str] | None = None,
             log: Callable[[str], None] = print, chunk: int | None = None, farm=None,
             planted: tuple[int, ...] = (), steer=None) -> FuzzReport:
    """Cases ``seed, seed + 1, ...`` (only those whose build is in ``configs``, if given)
    until ``n`` have run, as farm tasks (:mod:`sim.farm`; default: in this process): one
    build task per build, then chunks of ``chunk`` seeds of one build each (one simulator
    process per chunk). ``planted``: seeds whose case gets a corrupted image. ``steer`` (a
    :class:`sim.coverage.Coverage`): the ``n`` seeds are chosen toward its holes
    (:func:`steered_seeds`) instead of the first ``n``."""
    from .farm import Ref, Task, chunks, open_farm, progress_logger

    t0 = time.perf_counter()
    if steer is not None:
        holes = len(steer.holes)
        seeds = steered_seeds(n, seed, configs, steer)
        log(f"fuzz: steered toward {holes} hole(s) of the coverage so far: {n} of "
            f"{STEER_POOL * n} candidate seeds from {seed}, in {time.perf_counter() - t0:.0f} s")
    else:
        seeds = plan_seeds(n, seed, configs)
    own = farm is None
    farm = open_farm(workers=0) if own else farm
    try:
        size = chunk or auto_chunk(seeds, farm.n_workers)
        if size < 1:
            raise DataError(f"--chunk must be >= 1, got {size}")
        wanted = set(planted)
        tasks = []
        order = sorted(seeds, key=lambda c: -FUZZ_CONFIGS[c].n_pe)  # slowest builds first
        for name in order:
            tasks.append(Task(f"build-{name}", fuzz_build, (name,), f"build {name}",
                              priority=100))
        for name in order:
            for part in chunks(seeds[name], size):
                tasks.append(Task(f"fuzz-{name}-{part[0]}-{part[-1]}", fuzz_chunk,
                                  (name, part, Ref(f"build-{name}"),
                                   tuple(x for x in part if x in wanted)),
                                  f"fuzz {name} seeds {part[0]}..{part[-1]} ({len(part)})",
                                  priority=FUZZ_CONFIGS[name].n_pe))
        outcomes = farm.run(tasks, progress_logger(log))
    finally:
        if own:
            farm.close()
    rep = FuzzReport(planted=tuple(sorted(wanted & {x for g in seeds.values() for x in g})))
    from .farm import raise_user_error

    raise_user_error(outcomes)
    for o in outcomes:
        if o.task.fn is fuzz_build:
            if o.ok:
                rep.builds.append(o.value)
            continue
        name, part = o.task.args[0], o.task.args[1]
        pc = rep.per_config.setdefault(name, [0, 0])
        if o.ok:
            r: ChunkResult = o.value
            for x, good, msg, runs in zip(r.seeds, r.ok, r.messages, r.runs, strict=True):
                rep.cases += 1
                pc[1] += 1
                rep.runs += runs
                if good:
                    rep.passed += 1
                    pc[0] += 1
                else:
                    rep.failures.append((x, msg))
        else:
            for x in part:
                rep.cases += 1
                pc[1] += 1
                rep.failures.append((x, f"not run: its task failed ({o.error})"))
    rep.per_config = {c: rep.per_config[c] for c in seeds if c in rep.per_config}
    rep.failures.sort()
    rep.farm = farm.lines(outcomes) if not own or any(o.retried or not o.ok for o in outcomes) \
        else []
    rep.wall_s = time.perf_counter() - t0
    return rep
