"""The regression behind ``make sim``: AlexNet's FC layers and a real MNIST network through the
generated RTL, every output checked bit for bit against the golden model and every cycle count
against the cycle model, summarised in one table.

- AlexNet fc6 / fc7 / fc8 (EIE's Alex-6/7/8: 9216x4096, 4096x4096, 4096x1000, weights 9/9/25%,
  4-bit codebooks, inputs 35.1/35.3/37.5% non-zero) on the 64-PE ``eie64`` (queue depth 8),
  each layer alone and fc6 -> fc7 -> fc8 back to back; synthetic from fixed seeds
  (:mod:`sw.eie.benchlayers`), or the real weights of a torchvision-format state_dict (pruned to
  Deep Compression's densities and 4-bit quantized, as ``eie pack`` does). Each with EIE's row
  interleaving and with the load-balanced assignment (:mod:`sw.eie.balance`).
- LeNet-300-100 compressed by ``eie compress`` on real MNIST, the test images run through the
  RTL in one batch (image loaded once; per image: input, start, done, outputs): accuracy of
  the RTL beside the golden model's and the float model's.

Table columns: layer, shape, densities (weights / inputs), RTL cycles, cycle-model cycles,
EIE's published cycles (Table IV: us x 800 MHz), the lower bound (max over PEs of the entries
in the non-zero columns, or the broadcasts; EIE Sec. VI-C), load-balance efficiency (bound /
the RTL's compute cycles, i.e. without the fixed latencies), bit-exact, simulator wall time.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sw.eie.benchlayers import TABLE3, alexnet_chain, bench_input, bench_layer
from sw.eie.config import EIEConfig
from sw.eie.cycles import CycleReport
from sw.eie.fixedpoint import quantize_input
from sw.eie.golden import float_network, run_layer_batch
from sw.eie.pack import NetworkImage, pack_network
from sw.errors import DataError
from sw.qlayer import QuantizedLayer

from .design import eie_design
from .job import Case, CaseResult, Job, JobResult, Run, make_run
from .session import run_job

Log = Callable[[str], None]
ALEX = {"Alex-6": "fc6", "Alex-7": "fc7", "Alex-8": "fc8"}
CHAIN = "alexnet"  # fc6 -> fc7 -> fc8 back to back
DEFAULT_LAYERS = ("Alex-6", "Alex-7", "Alex-8", CHAIN)
ASSIGNS = ("interleaved", "balanced")
LENET_MODEL = Path("build/lenet300/model.eie")


@dataclass
class Entry:
    """One row of the table: a case and what the models say about it."""

    label: str
    shape: str
    w_density: float
    a_density: float
    paper: int | None  # EIE's published cycles (None: not a Table III layer)
    case: Case
    model_cycles: float  # per run (mean over the case's runs)
    lower_bound: float
    overhead: float  # fixed latencies: cycles - compute cycles
    extra: dict = field(default_factory=dict)


@dataclass
class LayerFigures:
    """One layer's cycle-model figures, averaged over a case's runs (the RTL's counter equals
    the cycle model's sum over the layers of each run: the testbench checks it)."""

    name: str
    cycles: float
    compute_cycles: float
    lower_bound: float
    stall_cycles: float

    @classmethod
    def mean(cls, name: str, reports: list[CycleReport]) -> LayerFigures:
        def avg(f: str) -> float:
            return float(np.mean([getattr(r, f) for r in reports]))
        return cls(name, avg("cycles"), avg("compute_cycles"), avg("lower_bound"),
                   avg("stall_cycles"))

    @property
    def efficiency(self) -> float:
        return self.lower_bound / self.compute_cycles if self.compute_cycles else 1.0


@dataclass
class Row:
    entry: Entry
    result: CaseResult | None

    @property
    def rtl_cycles(self) -> float | None:
        if self.result is None or not self.result.runs:
            return None
        return float(np.mean([r.cycles for r in self.result.runs]))

    @property
    def efficiency(self) -> float | None:
        c = self.rtl_cycles
        if c is None:
            return None
        compute = c - self.entry.overhead
        return self.entry.lower_bound / compute if compute > 0 else 1.0


def _density(layers: list[QuantizedLayer]) -> float:
    return sum(q.nnz for q in layers) / sum(q.n_in * q.n_out for q in layers)


def _entry(label: str, image: NetworkImage, layers: list[QuantizedLayer], xs: np.ndarray,
           paper: int | None, name: str, cycles: bool = True, golden_batch: bool = False) -> Entry:
    """A case running every input of ``xs`` (logical, integer) through the whole network."""
    reports: list[CycleReport] = []
    runs: list[Run] = []
    xs = np.atleast_2d(xs)
    if golden_batch:  # many inputs: the golden model on the whole batch, layer by layer
        a = image.input_to_physical(xs)
        outs = []
        for li in range(len(image.layers)):
            a = run_layer_batch(image, li, a)
            outs.append(a)
        for b in range(xs.shape[0]):
            run = make_run(image, image.input_to_physical(xs[b]), label=f"{name}[{b}]",
                           cycles=cycles, reports=reports, golden=[o[b] for o in outs])
            runs.append(run)
    else:
        for b in range(xs.shape[0]):
            runs.append(make_run(image, image.input_to_physical(xs[b]), label=f"{name}[{b}]",
                                 cycles=cycles, reports=reports))
    n = len(runs)
    shape = "x".join(str(v) for v in [layers[0].n_in] + [q.n_out for q in layers]) \
        if len(layers) > 1 else f"{layers[0].n_in}x{layers[0].n_out}"
    per_layer = [reports[li::len(image.layers)] for li in range(len(image.layers))] \
        if reports else []
    return Entry(
        label=label, shape=shape, w_density=_density(layers),
        a_density=float(np.mean(xs != 0)), paper=paper, case=Case(name, image, runs),
        model_cycles=sum(r.cycles for r in reports) / n if reports else float("nan"),
        lower_bound=sum(r.lower_bound for r in reports) / n if reports else float("nan"),
        overhead=sum(r.cycles - r.compute_cycles for r in reports) / n if reports else 0.0,
        extra={"layers": [LayerFigures.mean(image.layers[li].name, rs)
                          for li, rs in enumerate(per_layer)]})


def real_alexnet(weights: str | Path, log: Log) -> list[QuantizedLayer]:
    """fc6 / fc7 / fc8 of a torchvision-format AlexNet state_dict, pruned to 9/9/25% and
    4-bit quantized without retraining (as ``eie pack`` does)."""
    from sw.compression.compress import compress_alexnet_fc

    t = time.perf_counter()
    layers = compress_alexnet_fc(weights)[0].layers
    log(f"compressed the AlexNet FC layers of {weights} in {time.perf_counter() - t:.0f} s")
    return layers


def alexnet_entries(config: EIEConfig, names: list[str], seed: int = 0,
                    assigns: tuple[str, ...] = ASSIGNS, weights: str | Path | None = None,
                    log: Log = print) -> list[Entry]:
    """The AlexNet rows: each of ``names`` (Table III layers or ``alexnet`` for the chain) with
    each row assignment of ``assigns``."""
    for a in assigns:
        if a not in ASSIGNS:
            raise DataError(f"unknown row assignment {a!r} (choose from {', '.join(ASSIGNS)})")
    real = real_alexnet(weights, log) if weights is not None else None
    entries = []
    for name in names:
        t = time.perf_counter()
        if name == CHAIN:
            if real is not None:
                layers, x = real, bench_input("Alex-6", seed)
            else:
                layers, x = alexnet_chain(seed)
            paper = sum(TABLE3[t].paper_cycles for t in ALEX)
            label = "fc6-fc7-fc8"
        elif name in TABLE3:
            if real is not None:
                if name not in ALEX:
                    raise DataError(f"--weights gives AlexNet's FC layers; {name} is not one")
                layers = [next(q for q in real if q.name == ALEX[name])]
            else:
                layers = [bench_layer(name, seed)]
            x = bench_input(name, seed)
            paper = TABLE3[name].paper_cycles
            label = name
        else:
            raise DataError(f"unknown layer {name!r} (Table III: {', '.join(TABLE3)}, or "
                            f"{CHAIN!r} for fc6 -> fc7 -> fc8)")
        xq = quantize_input(x, config)
        for assign in assigns:
            image = pack_network(layers, config, balance=assign == "balanced")
            tag = label + (" bal" if assign == "balanced" else "")
            entries.append(_entry(tag, image, layers, xq, paper, tag.replace(" ", "-")))
        log(f"prepared {label} ({time.perf_counter() - t:.1f} s: synthesis, packing, golden "
            f"and cycle models)")
    return entries


# -- MNIST ----------------------------------------------------------------------------------------

def lenet_model(model: str | Path | None, data: str | Path | None, log: Log) -> Path:
    """The compressed LeNet-300-100: ``model``, else build/lenet300/model.eie, produced by
    ``eie compress --model lenet300`` (as ``make demo``) when missing."""
    if model is not None:
        p = Path(model)
        if not p.exists():
            raise DataError(f"model file {p} does not exist")
        return p
    from .runner import REPO

    p = REPO / LENET_MODEL
    if p.exists():
        return p
    from sw.compression.compress import compress_builtin, default_settings

    log(f"{LENET_MODEL} is missing: compressing LeNet-300-100 on MNIST (eie compress, "
        f"default settings; a few minutes, once)")
    t = time.perf_counter()
    compress_builtin("lenet300", p.parent, default_settings("lenet300", progress=False),
                     data=data, log=lambda m: log("  " + m))
    log(f"compressed in {time.perf_counter() - t:.0f} s: {p}")
    return p


@dataclass
class MnistInfo:
    labels: np.ndarray
    float_pred: np.ndarray
    golden_pred: np.ndarray
    model: Path


def mnist_entry(config: EIEConfig, n_images: int, data: str | Path | None = None,
                model: str | Path | None = None, balance: bool = False,
                log: Log = print) -> tuple[Entry, MnistInfo]:
    """LeNet-300-100 on the first ``n_images`` MNIST test images as one case."""
    from sw.compression.data import load_split
    from sw.compression.modelfile import load_model
    from sw.eie.golden import run_network_batch

    test = load_split("test", data).take(n_images)
    path = lenet_model(model, data, log)
    t = time.perf_counter()
    layers, _ = load_model(path)
    image = pack_network(layers, config, balance=balance)
    x = test.inputs().reshape(len(test), -1)
    xq = quantize_input(x, config)
    golden = run_network_batch(image, xq)[-1]
    floats = float_network(layers, x)[-1]
    name = f"LeNet-300-100 x{len(test)}" + (" bal" if balance else "")
    entry = _entry(name, image, layers, xq, None, name.replace(" ", "-"), golden_batch=True)
    info = MnistInfo(test.labels.astype(np.int64), np.argmax(floats, axis=1),
                     np.argmax(golden, axis=1), path)
    log(f"prepared {name} from {path} ({time.perf_counter() - t:.1f} s)")
    return entry, info


# -- running and reporting ------------------------------------------------------------------------

@dataclass
class Regression:
    rows: list[Row]
    result: JobResult
    mnist: MnistInfo | None
    mnist_row: Row | None
    wall_s: float
    build_s: float
    farm: list[str] = field(default_factory=list)  # where the tasks ran, retries

    @property
    def ok(self) -> bool:
        return self.result.ok and all(r.result is not None for r in self.rows)

    def rtl_mnist_pred(self) -> np.ndarray | None:
        if self.mnist_row is None or self.mnist_row.result is None:
            return None
        image = self.mnist_row.entry.case.image
        last = len(image.layers) - 1
        return np.array([np.argmax(image.to_logical(last, r.outputs[last]))
                         for r in self.mnist_row.result.runs])

    def cycles_per_second(self, min_cycles: int = 5000, cpu: bool = False) -> float | None:
        """Simulated cycles per wall (or CPU) second from start to done, over runs of at least
        ``min_cycles`` (the simulator running freely, no Python per cycle)."""
        runs = [r for c in self.result.cases for r in c.runs if r.cycles >= min_cycles]
        secs = sum(r.cpu_s if cpu else r.wall_s for r in runs)
        return sum(r.cycles for r in runs) / secs if secs > 0 else None


def run_entries(config: EIEConfig, entries: list[Entry], log: Log = print,
               keep: bool = False) -> tuple[JobResult, float]:
    t = time.perf_counter()
    design = eie_design(config, log=log)
    build_s = time.perf_counter() - t
    job = Job([e.case for e in entries], stop_on_fail=False)
    log(f"simulating {len(entries)} case(s), {sum(len(e.case.runs) for e in entries)} run(s) "
        f"on {design.sim} ...")
    return run_job(design, job, keep=keep), build_s


# -- farm tasks -----------------------------------------------------------------------------------

def build_task(config: EIEConfig) -> float:
    """Task: generate and build the model of ``config`` (or find it in the cache directory);
    the seconds it took."""
    t = time.perf_counter()
    eie_design(config, log=lambda m: None)
    return time.perf_counter() - t


def cases_task(config: EIEConfig, cases: list[Case], keep: bool = False,
               build: float | None = None) -> JobResult:
    """Task: ``cases`` (their images and expectations travel with them) in one simulator
    process on the build of ``config``. ``build``: the build task's result (a dependency)."""
    return run_job(eie_design(config, log=lambda m: None), Job(cases, stop_on_fail=False),
                   keep=keep)


def shards(case: Case, size: int) -> list[Case]:
    """``case`` split into cases of at most ``size`` runs (each loads the same image)."""
    if len(case.runs) <= size:
        return [case]
    return [Case(f"{case.name}#{i // size}", case.image, case.runs[i:i + size], case.stall_seed,
                 case.stall_p, case.fault) for i in range(0, len(case.runs), size)]


def merge(name: str, parts: list[CaseResult]) -> CaseResult:
    """One result of a case run in shards: runs in order, the first shard's mismatch."""
    bad = next((p for p in parts if not p.ok), None)
    return CaseResult(name, [r for p in parts for r in p.runs],
                      max(p.load_writes for p in parts), sum(p.load_s for p in parts),
                      ok=bad is None, message="" if bad is None else bad.message,
                      wall_s=sum(p.wall_s for p in parts))


def regression(config: EIEConfig, entries: list[Entry], mnist: MnistInfo | None = None,
               log: Log = print, keep: bool = False, farm=None, shard: int = 250) -> Regression:
    """Every entry as a farm task (:mod:`sim.farm`; default: in this process, all entries in
    one simulator process), a case of many runs (MNIST) in shards of ``shard`` runs; the
    results merge into one row per entry."""
    from .farm import Ref, Task, progress_logger, raise_user_error

    t = time.perf_counter()
    if farm is None or farm.client is None:
        result, build_s = run_entries(config, entries, log, keep)
        outcomes = []
    else:
        tasks = [Task("build", build_task, (config,), f"build {config.name}", priority=100)]
        owner: list[tuple[str, int]] = []  # per task after the build: entry case name, shard
        for e in entries:
            parts = shards(e.case, shard)
            for i, part in enumerate(parts):
                label = e.label + (f" shard {i + 1}/{len(parts)}" if len(parts) > 1 else "")
                tasks.append(Task(f"row-{len(owner)}-{e.label.replace(' ', '-')}", cases_task,
                                  (config, [part], keep, Ref("build")), label,
                                  priority=len(part.runs) * part.image.config.n_pe))
                owner.append((e.case.name, i))
        log(f"simulating {len(entries)} case(s), {sum(len(e.case.runs) for e in entries)} "
            f"run(s) as {len(tasks) - 1} task(s) on {farm.description} ...")
        outcomes = farm.run(tasks, progress_logger(log))
        raise_user_error(outcomes)
        build_s = outcomes[0].value if outcomes[0].ok else 0.0
        parts: dict[str, list[CaseResult]] = {}
        run_dirs = []
        for (name, _), o in zip(owner, outcomes[1:], strict=True):
            if o.ok:
                parts.setdefault(name, []).extend(o.value.cases)
                if o.value.run_dir:
                    run_dirs.append(o.value.run_dir)
            else:
                parts.setdefault(name, []).append(
                    CaseResult(name, [], 0, 0.0, ok=False,
                               message=f"{name}: not run, its task failed ({o.error})"))
        result = JobResult([merge(e.case.name, parts[e.case.name]) for e in entries
                            if e.case.name in parts],
                           wall_s=sum(o.wall_s for o in outcomes[1:]),
                           run_dir=", ".join(run_dirs) or None)
    by_name = {c.name: c for c in result.cases}
    rows = [Row(e, by_name.get(e.case.name)) for e in entries]
    mrow = next((r for r in rows if r.entry.label.startswith("LeNet")), None)
    reg = Regression(rows, result, mnist, mrow if mnist else None, time.perf_counter() - t,
                     build_s)
    reg.farm = farm.lines(outcomes) if outcomes else []
    return reg


def _fmt(v: float | None, digits: int = 0) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "-"
    return f"{v:,.{digits}f}"


def format_table(rows: list[Row]) -> str:
    head = ["layer", "shape", "density w/in", "RTL cycles", "cycle model", "EIE paper",
            "lower bound", "efficiency", "bit-exact", "wall s"]
    lines = []
    for row in rows:
        e, r = row.entry, row.result
        many = len(e.case.runs) > 1
        digits = 1 if many else 0
        if r is None:
            exact = "not run"
        elif r.ok:
            exact = "yes" + (f" ({len(r.runs)}/{len(e.case.runs)})" if many else "")
        else:
            good = sum(x.ok for x in r.runs)
            exact = f"NO ({good}/{len(e.case.runs)})" if many else "NO"
        eff = row.efficiency
        lines.append([e.label, e.shape, f"{e.w_density:.1%}/{e.a_density:.1%}",
                      _fmt(row.rtl_cycles, digits), _fmt(e.model_cycles, digits),
                      _fmt(e.paper), _fmt(e.lower_bound, digits),
                      "-" if eff is None else f"{eff:.1%}", exact,
                      "-" if r is None else f"{r.wall_s:.1f}"])
    widths = [max(len(h), *(len(x[i]) for x in lines)) if lines else len(h)
              for i, h in enumerate(head)]
    out = ["  ".join(h.ljust(w) if i < 3 else h.rjust(w) for i, (h, w) in
                     enumerate(zip(head, widths, strict=True)))]
    out.append("  ".join("-" * w for w in widths))
    for x in lines:
        out.append("  ".join(v.ljust(w) if i < 3 else v.rjust(w) for i, (v, w) in
                             enumerate(zip(x, widths, strict=True))))
    return "\n".join(out)


def summary(reg: Regression) -> list[str]:
    lines = ["efficiency = lower bound / the RTL's compute cycles (its cycles minus the fixed "
             "start, drain and write-back latencies); EIE paper = Table IV latency x 800 MHz"]
    if any(r.entry.case.runs and len(r.entry.case.runs) > 1 for r in reg.rows):
        lines.append("rows over many inputs show per-input means")
    if reg.mnist is not None:
        m = reg.mnist
        rtl = reg.rtl_mnist_pred()
        n = len(m.labels)

        def acc(p: np.ndarray) -> str:
            return f"{np.mean(p == m.labels[:len(p)]):.2%}"

        if rtl is not None and len(rtl) == n:
            same = int(np.sum(rtl == m.golden_pred))
            mism = sum(not x.ok for x in reg.mnist_row.result.runs)
            lines.append(f"MNIST ({n} test images, {m.model}): accuracy RTL {acc(rtl)}, golden "
                         f"{acc(m.golden_pred)}, float {acc(m.float_pred)}; RTL == golden "
                         f"prediction on {same}/{n}, {mism} output mismatches")
        else:
            lines.append(f"MNIST: the RTL run stopped early; golden {acc(m.golden_pred)}, float "
                         f"{acc(m.float_pred)}")
    cps, cpu = reg.cycles_per_second(), reg.cycles_per_second(cpu=True)
    if cps:
        lines.append(f"simulator speed: {cps:,.0f} simulated cycles per wall second from start "
                     f"to done ({cpu:,.0f} per CPU second of the simulator; runs of >= 5,000 "
                     f"cycles)")
    loads = [(c.load_writes, c.load_s) for c in reg.result.cases if c.load_writes > 5000]
    if loads:
        w, s = max(loads)
        lines.append(f"image load: {w:,} write cycles in {s:.1f} s ({w / s:,.0f} writes/s)")
    failed = [c for c in reg.result.cases if not c.ok]
    for c in failed:
        lines.append(f"FAIL {c.message}")
    if reg.result.run_dir:
        lines.append(f"simulation files kept in {reg.result.run_dir}")
    lines += reg.farm
    lines.append(f"{'PASS' if reg.ok else 'FAIL'}: {sum(r.result is not None and r.result.ok for r in reg.rows)}"
                 f"/{len(reg.rows)} rows bit-exact and cycle-exact; simulation wall time "
                 f"{reg.wall_s:.0f} s (of which build {reg.build_s:.0f} s)")
    return lines


def log_stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)
