"""Random hardware: the configuration itself drawn from a seed, generated, built and run.

:mod:`sim.fuzz` draws random layers but runs them on six fixed builds. Here draw ``S`` of a
campaign is an :class:`~sw.eie.config.EIEConfig` whose every field comes from seed ``S``
(:func:`draw_fields`): N (mostly 1..16, sometimes up to 32 or 64), the queue depth, the
memories' depths (small: a build compiles in seconds), the layer table, the weight, relative
index, sparse-matrix word, activation (4..16 bits), fraction and accumulator widths. The
ranges reach a little past what the hardware allows, so that some draws are illegal on
purpose; :class:`EIEConfig` alone judges them (its ``__post_init__`` is the one owner of
legality; nothing here restates a rule), and a rejected draw is reported with its
:class:`~sw.errors.ConfigError` message and never generated. Each legal draw is one farm task
(:mod:`sim.farm`): generate the Verilog (:func:`sim.design.verilog_for`), build it with
Verilator (``fast``: unoptimised C++, :func:`sim.runner.build`), run :data:`CASES` random cases
on it (:func:`sim.fuzz.random_case`: layers, inputs, host stalls and resets sized to the drawn
memories), bit- and cycle-exact against the golden and cycle models, then delete the build
(``keep``: leave it). A draw reproduces alone: ``eie sim --fuzz-hw 1 --seed S``.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from sw.eie.config import EIEConfig
from sw.errors import ConfigError, DataError, FitError

CASES = 3  # random cases per drawn configuration
SALT = 0x4857  # "HW": the draws' streams differ from the layer fuzz's


def draw_fields(seed: int) -> dict:
    """The configuration fields of draw ``seed`` (legal or not: :func:`draw_config` asks
    :class:`EIEConfig`). About one draw in seven has a field just outside its range."""
    rng = np.random.default_rng([seed, SALT])

    def off(p: float = 0.02) -> bool:  # a field drawn past its range, on purpose
        return bool(rng.random() < p)

    u = rng.random()
    n_pe = int(rng.integers(1, 17)) if u < 0.92 else int(rng.integers(17, 33)) if u < 0.98 \
        else int(rng.integers(33, 65))
    weight_bits = int(rng.integers(1, 9)) if not off() else int(rng.choice([0, 9]))
    index_bits = int(rng.integers(1, 9)) if not off() else int(rng.choice([0, 9]))
    act_bits = int(rng.integers(4, 17)) if not off() else 3
    entry = weight_bits + index_bits
    if off(0.04):  # any width (usually not a whole number of entries) or 3, 5, 6 entries
        word = int(rng.integers(8, 65)) if rng.random() < 0.5 else \
            entry * int(rng.choice([3, 5, 6]))
    else:  # words of at most 64 bits: wider ones EIEConfig accepts (the SoC's register map
        # serves them), but the images and the packer (sw/eie/pack.py) hold 64 at most
        word = entry * int(rng.choice([k for k in (1, 2, 4, 8) if entry * k <= 64]))
    return dict(
        name=f"hw{seed}",
        n_pe=n_pe,
        queue_depth=int(rng.choice([1, 2, 3, 4, 5, 8, 12, 16])) if not off() else 0,
        weight_bits=weight_bits,
        index_bits=index_bits,
        act_bits=act_bits,
        act_frac=int(rng.integers(0, act_bits)) if not off() else act_bits,
        acc_bits=min(64, 2 * act_bits + int(rng.integers(0, 17))) if not off() else
        2 * act_bits - 1,
        spmat_word_bits=word,
        spmat_words=int(rng.choice([16, 32, 64, 128, 256])),
        ptr_depth=int(rng.integers(8, 257)) if not off() else 1,
        act_depth=int(rng.integers(2, 65)),
        bias_depth=int(rng.integers(8, 129)),
        max_layers=int(rng.integers(1, 5)),
    )


def draw_config(seed: int) -> EIEConfig:
    """Draw ``seed`` as a configuration; raises :class:`ConfigError` (the configuration's own
    message) when it is illegal."""
    return EIEConfig(**draw_fields(seed))


def reproduce_command(seed: int) -> str:
    return f"eie sim --fuzz-hw 1 --seed {seed}"


@dataclass
class Plan:
    """The draws of a campaign: the legal ones (to build) and the rejected ones."""

    legal: list[tuple[int, EIEConfig]] = field(default_factory=list)
    rejected: list[tuple[int, str]] = field(default_factory=list)  # (seed, ConfigError message)


def plan(n: int, seed: int = 0) -> Plan:
    """Draws ``seed, seed + 1, ...`` until ``n`` are legal."""
    if n < 1:
        raise DataError(f"--fuzz-hw needs at least one configuration, got {n}")
    p = Plan()
    s = seed
    while len(p.legal) < n:
        try:
            p.legal.append((s, draw_config(s)))
        except ConfigError as e:
            p.rejected.append((s, str(e)))
        s += 1
    return p


def case_seeds(seed: int, cases: int = CASES) -> list[int]:
    """The seeds of draw ``seed``'s random cases (distinct across draws)."""
    return [seed * 16 + k for k in range(cases)]


@dataclass
class HwResult:
    """What one task returns: the build and, per case, passed or the first mismatch."""

    seed: int
    config: dict
    build_s: float = 0.0
    sim_s: float = 0.0
    cases: list[str] = field(default_factory=list)
    ok: list[bool] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    runs: int = 0
    error: str | None = None  # generation, build or case preparation failed
    host: str = ""


def hw_task(seed: int, cases: int = CASES, keep: bool = False) -> HwResult:
    """Task: generate, build and run draw ``seed`` (legal: the planner drew it first)."""
    import socket

    from .design import TOP, verilog_for
    from .fuzz import random_case
    from .job import Job
    from .runner import build
    from .session import run_job

    config = draw_config(seed)
    res = HwResult(seed, config.to_dict(), host=socket.gethostname())
    t = time.perf_counter()
    try:
        design = build([verilog_for(config)], TOP, fast=True)
    except Exception as e:  # noqa: BLE001 - a legal configuration that does not build: a finding
        res.error = f"generate/build failed: {type(e).__name__}: {e}"
        return res
    res.build_s = time.perf_counter() - t
    try:
        todo = []
        for x in case_seeds(seed, cases):
            try:
                todo.append(random_case(x, config, config.name))
            except FitError as e:  # the memories hold no network of this draw: not a mismatch
                res.cases.append(f"seed{x}")
                res.ok.append(True)
                res.messages.append(f"no case: {e}")
        t = time.perf_counter()
        if todo:
            result = run_job(design, Job(todo, stop_on_fail=False))
            by_name = {c.name: c for c in result.cases}
            for case in todo:
                r = by_name.get(case.name)
                res.cases.append(case.name)
                res.ok.append(r is not None and r.ok)
                res.messages.append("not run" if r is None else r.message)
                res.runs += len(case.runs)
        res.sim_s = time.perf_counter() - t
    except Exception as e:  # noqa: BLE001 - reported with the seed, never retried blindly
        res.error = f"{type(e).__name__}: {e}"
    finally:
        if not keep and (res.error is None and all(res.ok)):
            shutil.rmtree(design.build_dir, ignore_errors=True)
            design.build_dir.with_suffix(".lock").unlink(missing_ok=True)
    return res


@dataclass
class HwReport:
    drawn: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)
    results: list[HwResult] = field(default_factory=list)
    failures: list[tuple[int, str]] = field(default_factory=list)  # (seed, message)
    wall_s: float = 0.0
    farm: list[str] = field(default_factory=list)

    @property
    def built(self) -> int:
        return sum(1 for r in self.results if r.build_s > 0)

    @property
    def cases(self) -> int:
        return sum(sum(1 for m in r.messages if not m.startswith("no case")) for r in self.results)

    @property
    def runs(self) -> int:
        return sum(r.runs for r in self.results)

    @property
    def ok(self) -> bool:
        return bool(self.results) and not self.failures

    def lines(self) -> list[str]:
        out = [f"fuzz-hw: {self.drawn} configurations drawn, {len(self.rejected)} rejected by "
               f"EIEConfig (never built), {len(self.results)} legal"]
        for s, msg in self.rejected[:30]:
            out.append(f"  rejected draw {s}: {msg}")
        if len(self.rejected) > 30:
            out.append(f"  ... and {len(self.rejected) - 30} more")
        if self.results:
            ns = sorted(r.config["n_pe"] for r in self.results)
            acts = sorted({r.config["act_bits"] for r in self.results})
            bs = [r.build_s for r in self.results if r.build_s]
            empty = sum(1 for r in self.results for m in r.messages if m.startswith("no case"))
            out.append(f"fuzz-hw: N {ns[0]}..{ns[-1]} (median {ns[len(ns) // 2]}), act_bits "
                       f"{','.join(map(str, acts))}; builds {sum(bs):.0f} s "
                       f"(mean {np.mean(bs) if bs else 0:.1f} s, max {max(bs, default=0):.0f} s), "
                       f"simulation {sum(r.sim_s for r in self.results):.0f} s"
                       + (f"; {empty} case draw(s) fit no network in the memories" if empty
                          else ""))
        out += self.farm
        for seed, msg in self.failures[:20]:
            out.append(f"FAIL draw {seed} (reproduce: {reproduce_command(seed)}): {msg}")
        if len(self.failures) > 20:
            out.append(f"... and {len(self.failures) - 20} more failing draw(s)")
        out.append(f"fuzz-hw {'PASS' if self.ok else 'FAIL'}: {self.built} configurations "
                   f"built, {self.cases} cases ({self.runs} runs), {len(self.failures)} "
                   f"failure(s) in {len({s for s, _ in self.failures})} configuration(s), "
                   f"{self.wall_s:.0f} s")
        return out


def run_fuzz_hw(n: int, seed: int = 0, log: Callable[[str], None] = print, farm=None,
                cases: int = CASES, keep: bool = False) -> HwReport:
    """Draws ``seed, seed + 1, ...`` until ``n`` legal ones, each a farm task (build and its
    ``cases`` random cases); the rejected draws are listed with their messages."""
    from .farm import Task, open_farm, progress_logger, raise_user_error

    t0 = time.perf_counter()
    p = plan(n, seed)
    rep = HwReport(drawn=len(p.legal) + len(p.rejected), rejected=p.rejected)
    for s, msg in p.rejected:
        log(f"draw {s} rejected: {msg}")
    own = farm is None
    farm = open_farm(workers=0) if own else farm
    try:
        tasks = [Task(f"fuzz-hw-{s}", hw_task, (s, cases, keep),
                      f"hw draw {s} (N={c.n_pe}, depth {c.queue_depth}, act {c.act_bits} bit)",
                      priority=c.n_pe)  # the largest builds first: they bound the wall time
                 for s, c in p.legal]
        outcomes = farm.run(tasks, progress_logger(log))
    finally:
        if own:
            farm.close()
    raise_user_error(outcomes)
    for o in outcomes:
        s = o.task.args[0]
        if not o.ok:
            rep.failures.append((s, f"its task failed ({o.error})"))
            continue
        r: HwResult = o.value
        rep.results.append(r)
        if r.error is not None:
            rep.failures.append((s, r.error))
        for name, good, msg in zip(r.cases, r.ok, r.messages, strict=True):
            if not good:
                rep.failures.append((s, f"{name}: {msg}"))
    rep.failures.sort()
    rep.farm = farm.lines(outcomes) if not own or any(o.retried or not o.ok for o in outcomes) \
        else []
    rep.wall_s = time.perf_counter() - t0
    return rep
