"""`eie explore` as farm tasks: the cycle and energy models for every point, synthesis for the
points that need it, merged into rows, Pareto fronts, a Markdown table, JSON and a plot.

- One cycle task per PE count N (:func:`cycle_task`): every workload packed once for N PEs and
  run through the cycle model (:mod:`sw.eie.cycles`, with the RTL's latencies from
  :func:`hw.timing.rtl_timing`) at every queue depth; the workloads are rebuilt on the worker
  from their specs (seeds, file paths), not shipped.
- One synthesis task per synthesised point (:func:`synth_task`): Yosys + nextpnr-ecp5 through
  :func:`hw.fpga.flow.synthesize_config`, cached under ``build/explore/synth/<key>`` where the
  key hashes the configuration, the clock target, the tool options and the generated Verilog
  (a rerun with the same RTL is free; a changed RTL synthesises again). A result is built in a
  temporary directory and renamed into place, so two runs never write the same directory. The
  synthesis tasks form one chain (each depends on the previous): one place and route at a time,
  beside the cycle tasks.
- :func:`explore` joins them (resources from synthesis where there is one, else fitted; Fmax
  measured or interpolated) and :func:`write_outputs` writes explore.md, explore.json and
  explore.png.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sw.eie import explore as ex
from sw.eie.config import EIEConfig
from sw.errors import EIEError

from .farm import Ref, Task, progress_logger, raise_user_error
from .runner import REPO

Log = Callable[[str], None]
SYNTH_CACHE = REPO / "build" / "explore" / "synth"


@dataclass(frozen=True)
class WorkloadSpec:
    """What a worker needs to rebuild a workload: a built-in name and seed, or a model file."""

    name: str | None = None
    seed: int = 0
    model: str | None = None
    inputs: str | None = None
    limit: int = 4
    act: str = "relu"

    def build(self) -> ex.Workload:
        return _workload(self)


@functools.lru_cache(maxsize=16)
def _workload(spec: WorkloadSpec) -> ex.Workload:
    if spec.model is not None:
        return ex.model_workload(spec.model, spec.inputs, spec.limit, spec.act, seed=spec.seed)
    return ex.builtin_workload(spec.name, spec.seed)


def cycle_task(specs: tuple[WorkloadSpec, ...], base: EIEConfig, n_pe: int,
               queue_depths: tuple[int, ...], balance: bool = False) -> list[ex.Figures]:
    """Task: every workload on N PEs at every queue depth (cycle and energy models)."""
    from hw.timing import rtl_timing

    timing = rtl_timing(base.replace(n_pe=n_pe))
    out = []
    for spec in specs:
        out += ex.evaluate(spec.build(), base, n_pe, list(queue_depths), timing, balance)
    return out


def router_for(n_pe: int) -> str:
    """nextpnr's router1 up to 4 PEs, router2 above (router1 did not finish 8 PEs in 9
    minutes: docs/fpga.md)."""
    return "router1" if n_pe <= 4 else "router2"


def synth_key(config: EIEConfig, clock_mhz: float, pnr: bool, seed: int, device: str,
              verilog: str) -> str:
    body = {k: v for k, v in config.to_dict().items() if k != "name"}
    h = hashlib.sha256(json.dumps([body, clock_mhz, pnr, seed, device,
                                   router_for(config.n_pe)]).encode())
    h.update(verilog.encode())
    return h.hexdigest()[:16]


def synth_task(point: ex.Point, base: EIEConfig, pnr: bool = True, seed: int = 1,
               device: str | None = None, cache: str | None = None, nice: int = 10,
               previous: object = None) -> ex.Synthesised:
    """Task: synthesise ``point`` (or take it from the cache). ``previous``: the preceding
    synthesis task's result (a dependency: one place and route at a time)."""
    from hw.fpga.flow import DEFAULT_DEVICE, platform_of, synthesize_config
    from hw.verilog import generate

    device = device or DEFAULT_DEVICE
    config = point.config(base)
    root = Path(cache) if cache else SYNTH_CACHE
    # keyed by the Verilog the flow synthesises (elaborated for the part)
    key = synth_key(config, point.clock_mhz, pnr, seed, device,
                    generate(config, "eie", platform=platform_of(device)).text)
    final = root / f"n{point.n_pe}q{point.queue_depth}-{key}"
    if not (final / "report.json").exists():
        tmp = root / f".tmp-{final.name}-{os.getpid()}-{time.time_ns() % 10**9}"
        try:
            synthesize_config(config, tmp, freq_mhz=point.clock_mhz, pnr=pnr, seed=seed,
                              device=device, router=router_for(point.n_pe), nice=nice)
            try:
                tmp.rename(final)
            except OSError:  # another run finished the same point first: keep its result
                shutil.rmtree(tmp, ignore_errors=True)
        except EIEError as e:  # keep the failed run's logs where the message points
            failed = root / f"{final.name}.failed"
            shutil.rmtree(failed, ignore_errors=True)
            if tmp.exists():
                tmp.rename(failed)
            raise EIEError(str(e).replace(str(tmp), str(failed))) from None
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        cached = False
    else:
        cached = True
    return read_synth(point, final / "report.json", cached)


def read_synth(point: ex.Point, path: Path, cached: bool) -> ex.Synthesised:
    d = json.loads(path.read_text())
    res = {k: v["used"] for k, v in d["resources"].items()}
    fmax = d.get("fmax_mhz") or {}
    f = fmax.get("clk", min(fmax.values())) if fmax else None
    return ex.Synthesised(point, res, f, d["resources_from"], d["fits"],
                          str(path.relative_to(REPO) if path.is_relative_to(REPO) else path),
                          cached)


@dataclass
class Result:
    rows: list[ex.Row]
    fronts: dict
    fits: dict
    synth: list[ex.Synthesised]
    notes: list[str] = field(default_factory=list)
    farm: list[str] = field(default_factory=list)
    failed: int = 0  # tasks that failed (their points are estimated, or missing)


def explore(specs: list[WorkloadSpec], base: EIEConfig, pes: list[int], queues: list[int],
            memories: list[tuple[int, int, int, int]], clocks: list[float],
            synth_pes: list[int], synth_queues: list[int], farm, pnr: bool = True,
            seed: int = 1, balance: bool = False, log: Log = print) -> Result:
    """Every point (``pes`` x ``queues`` x ``memories`` x ``clocks``, plus the synthesised
    ones) on every workload."""
    grid = [ex.Point(n, q, *m, c) for n, q, m, c in itertools.product(pes, queues, memories,
                                                                         clocks)]
    synth_points = [ex.Point(n, q, *m, c) for n, q, m, c in
                    itertools.product(synth_pes, synth_queues, memories, clocks)]
    points = list(dict.fromkeys(grid + synth_points))
    per_n: dict[int, set[int]] = {}
    for p in points:
        per_n.setdefault(p.n_pe, set()).add(p.queue_depth)
    tasks = [Task(f"synth-{i}", synth_task,
                  (p, base, pnr, seed, None, None, 10, Ref(f"synth-{i - 1}") if i else None),
                  f"synthesis {p.label()}", priority=10 - i)
             for i, p in enumerate(synth_points)]
    tasks += [Task(f"cycles-n{n}", cycle_task, (tuple(specs), base, n, tuple(sorted(qs)),
                                                balance),
                   f"cycle model N={n} ({len(qs)} queue depths)", priority=0)
              for n, qs in sorted(per_n.items(), key=lambda kv: -kv[0])]
    log(f"explore: {len(points)} point(s) x {len(specs)} workload(s): {len(per_n)} cycle-model "
        f"task(s), {len(synth_points)} synthesis task(s) on {farm.description}")
    outcomes = farm.run(tasks, progress_logger(log))
    # bad input (a network that cannot be read) stops here; a synthesis that failed (a tool
    # error, a crash) leaves its point to the estimates, is noted, and fails the command
    raise_user_error([o for o in outcomes if o.task.fn is not synth_task])
    synth, figures, notes = [], {}, []
    for o in outcomes:
        if not o.ok:
            notes.append(f"{o.task.label}: failed ({o.error})")
        elif o.task.fn is synth_task:
            synth.append(o.value)
        else:
            for f in o.value:
                figures[(f.workload, f.n_pe, f.queue_depth)] = f
    good = [s for s in synth if s.fits_device]
    for s in synth:
        if not s.fits_device:
            notes.append(f"{s.point.label()}: does not fit the device ({s.report}); left out of "
                         f"the resource fit")
    fits = ex.fit_resources(good)
    by_point = {s.point: s for s in synth}
    rows = []
    names = list(dict.fromkeys(w for w, _, _ in figures))
    for p in points:
        s = by_point.get(p)
        fit = fits.get(p.memories)
        if s is not None:
            res, res_from = s.resources, s.resources_from
        elif fit is not None:
            res, res_from = fit.predict(p.n_pe, p.queue_depth), "estimate"
        else:
            res, res_from = None, "none"
        same_mem = [x for x in good if x.point.memories == p.memories]
        if s is not None and s.fmax_mhz:
            fmax, fmax_from = s.fmax_mhz, "nextpnr"
        else:
            fmax = ex.fmax_estimate(same_mem, p.n_pe)
            fmax_from = "estimate" if fmax is not None else "none"
        for w in names:
            f = figures.get((w, p.n_pe, p.queue_depth))
            if f is None:
                continue
            rows.append(ex.Row(p, w, f.cycles, f.efficiency, f.energy_uj,
                               ex.fits(p, f.usage, base), res, res_from, fmax, fmax_from))
    if not synth:
        notes.append("no synthesised point: no resources, no Pareto front (give --synth N,...)")
    elif any(r.resources is None for r in rows):
        notes.append("points whose memory depths have no synthesised point have no resource "
                     "estimate and take no part in the fronts")
    fronts = ex.mark_fronts(rows)
    return Result(rows, fronts, fits, synth, notes, farm.lines(outcomes),
                  sum(not o.ok for o in outcomes))


def result_from_json(path: Path) -> tuple[Result, dict]:
    """An earlier run's result from its explore.json, its fronts ranked again."""
    try:
        d = json.loads(Path(path).read_text())
        rows, synth, fits = ex.rows_from_json(d)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise EIEError(f"{path}: not an explore.json ({e})") from None
    return Result(rows, ex.mark_fronts(rows), fits, synth,
                  [f"re-ranked from {path} (no computation)"]), d


def write_outputs(result: Result, out: Path, title: str, meta: dict) -> list[Path]:
    """explore.md (the fronts, then every point), explore.json, explore.png."""
    from sw.fsutil import atomic_write_text

    out.mkdir(parents=True, exist_ok=True)
    md = [f"# {title}", ""]
    md += [f"- {line}" for line in summary(result)]
    for w, fs in result.fronts.items():
        for obj, what in (("speed", "inferences per second"), ("energy", "energy per inference")):
            md += ["", ex.markdown_table(fs[obj], f"{w}: Pareto front, LUT4 and DP16KD against "
                                                  f"{what}")]
    md += ["", "## Every point", ""]
    for w in result.fronts:
        md += [ex.markdown_table([r for r in result.rows if r.workload == w], w), ""]
    paths = [out / "explore.md", out / "explore.json", out / "explore.png"]
    atomic_write_text(paths[0], "\n".join(md) + "\n")
    atomic_write_text(paths[1], ex.to_json(result.rows, result.fronts, result.fits,
                                           result.synth, meta))
    if any(f["speed"] for f in result.fronts.values()):
        ex.plot(result.rows, result.fronts, paths[2], title)
    else:
        paths = paths[:2]
    return paths


def summary(result: Result) -> list[str]:
    lines = []
    for s in sorted(result.synth, key=lambda s: (s.point.n_pe, s.point.queue_depth)):
        r = s.resources
        lines.append(f"synthesised {s.point.label()}: LUT4 {r['LUT4']:,}, FF {r['FF']:,}, "
                     f"DP16KD {r['DP16KD']}, MULT18X18D {r['MULT18X18D']}, Fmax "
                     + (f"{s.fmax_mhz:.1f} MHz" if s.fmax_mhz else "- (no place and route)")
                     + f" ({s.resources_from}{', cached' if s.cached else ''}; {s.report})")
    for f in result.fits.values():
        lines.append(f.describe())
    est = sum(r.resources_from == "estimate" for r in result.rows)
    if est:
        lines.append(f"{est} of {len(result.rows)} rows have estimated resources (from: "
                     f"estimate) and an Fmax interpolated in log2 N between synthesised points "
                     f"(est.); the clock is min(target, Fmax)")
    unfit = sum(not r.fits for r in result.rows)
    if unfit:
        lines.append(f"{unfit} rows: the network does not fit the point's memories (fits: no); "
                     f"their cycles are the network's on N PEs with memories large enough")
    return lines + result.notes


def check_inputs(specs: list[WorkloadSpec]) -> None:
    """Build each workload here once (bad names and files: one line before any task runs)."""
    for s in specs:
        try:
            s.build()
        except EIEError:
            raise
        except (OSError, ValueError) as e:
            raise EIEError(f"{s.model or s.name}: {e}") from None
