"""Randomised verification: many random layer configurations through a handful of RTL builds.

Every case is derived from one integer seed (:func:`fuzz_case`): its build (:data:`FUZZ_CONFIGS`,
chosen by ``seed mod`` their number, so a seed reproduces alone: ``eie sim --fuzz 1 --seed S``),
a network of 1-3 random FC layers (shapes, weight densities from empty to dense with long zero
runs that need padding entries, empty columns, codebook widths and scales up to saturation,
biases, ReLU flags, balanced or interleaved rows) and 1-4 runs (random sub-chains of layers,
input densities from 0 to 1, values up to the full activation range, random host-side stalls
on the write and read ports and before ``start``, occasionally a run aborted by a reset).
Different N and queue depths need different Verilog, so the cases are grouped per build and
each build runs its cases in one simulator process (a reset and a fresh image per case).
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
    return np.where(rng.random(n) < density, v, 0).astype(np.int64)


def fuzz_case(seed: int) -> Case:
    """The random case of ``seed`` (its build: :func:`config_of`)."""
    config = FUZZ_CONFIGS[config_of(seed)]
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
        return Case(f"seed{seed}:{config_of(seed)}:{desc}", image, runs, stall_seed=stall,
                    stall_p=float(rng.uniform(0.05, 0.5)))
    raise FitError(f"fuzz seed {seed}: no case fits {config.name} in 100 attempts")


@dataclass
class FuzzReport:
    cases: int = 0
    passed: int = 0
    runs: int = 0
    failures: list[tuple[int, str]] = field(default_factory=list)  # (seed, message)
    per_config: dict[str, list[int]] = field(default_factory=dict)  # name -> [passed, cases]
    wall_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.cases > 0 and self.passed == self.cases

    def lines(self) -> list[str]:
        out = [f"fuzz: {name} ({FUZZ_CONFIGS[name].n_pe} PEs, queue depth "
               f"{FUZZ_CONFIGS[name].queue_depth}): {p}/{n} passed"
               for name, (p, n) in self.per_config.items()]
        for seed, msg in self.failures[:20]:
            out.append(f"FAIL seed {seed} (reproduce: eie sim --fuzz 1 --seed {seed}): {msg}")
        out.append(f"fuzz {'PASS' if self.ok else 'FAIL'}: {self.passed}/{self.cases} random "
                   f"layer configurations passed ({self.runs} runs), {self.wall_s:.0f} s")
        return out


def run_fuzz(n: int, seed: int = 0, configs: list[str] | None = None,
             log: Callable[[str], None] = print, chunk: int = 250) -> FuzzReport:
    """Cases ``seed, seed + 1, ...`` (only those whose build is in ``configs``, if given)
    until ``n`` have run; one simulator process per build and ``chunk`` cases."""
    t0 = time.perf_counter()
    names = list(FUZZ_CONFIGS) if configs is None else configs
    unknown = [c for c in names if c not in FUZZ_CONFIGS]
    if unknown:
        raise DataError(f"unknown fuzz build(s) {unknown} (known: {', '.join(FUZZ_CONFIGS)})")
    seeds: dict[str, list[int]] = {c: [] for c in names}
    s, total = seed, 0
    while total < n:
        c = config_of(s)
        if c in seeds:
            seeds[c].append(s)
            total += 1
        s += 1
    rep = FuzzReport()
    for name, group in seeds.items():
        if not group:
            continue
        design = eie_design(FUZZ_CONFIGS[name], log=log)
        rep.per_config[name] = [0, 0]
        for i in range(0, len(group), chunk):
            part = group[i:i + chunk]
            t = time.perf_counter()
            cases = [fuzz_case(x) for x in part]
            prep = time.perf_counter() - t
            result = run_job(design, Job(cases, stop_on_fail=False))
            by_name = {c.name: c for c in result.cases}
            for x, case in zip(part, cases, strict=True):
                r = by_name.get(case.name)
                rep.cases += 1
                rep.per_config[name][1] += 1
                rep.runs += len(case.runs)
                if r is not None and r.ok:
                    rep.passed += 1
                    rep.per_config[name][0] += 1
                else:
                    rep.failures.append((x, r.message if r else "not run"))
            log(f"fuzz {name}: {rep.per_config[name][0]}/{rep.per_config[name][1]} passed "
                f"(cases prepared in {prep:.1f} s, simulated in {result.wall_s:.1f} s)")
    rep.wall_s = time.perf_counter() - t0
    return rep
