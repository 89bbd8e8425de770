"""Design-space exploration, the pure part: points, workloads, the cycle and energy models on a
point, a resource estimate fitted to synthesised points, Pareto fronts, the table and the plot.

A :class:`Point` is one accelerator: PE count N, activation-queue depth, per-PE memory depths
and a clock target. A :class:`Workload` is a network as EIE runs it (FC chains, each with
inputs). For every point and workload, :func:`evaluate` runs the cycle model
(:mod:`sw.eie.cycles`, with the RTL's fixed latencies handed in as a :class:`Timing`) and the
energy model (:mod:`sw.eie.energy`) on the workload packed for N PEs with memories sized to
hold it (cycles do not depend on memory depth), and says whether the workload fits the
point's own memories (``fits``; a workload that does not would have to be streamed in pieces,
which the cycle model does not count). Resources come from synthesis (``hw.fpga``, run by the
``eie explore`` command for the points that need it) or, for the others, from
:func:`fit_resources`: a least-squares fit ``a + b N`` (``+ c N log2(queue depth)`` when the
synthesised points span several queue depths) over the synthesised points with the same memory
depths; the rows say which.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field

import numpy as np

from sw.eie.config import EIEConfig
from sw.eie.cycles import Timing, simulate_layer
from sw.eie.energy import layer_energy
from sw.eie.fixedpoint import quantize_input
from sw.eie.pack import pack_network
from sw.errors import DataError, FitError
from sw.qlayer import QuantizedLayer

RESOURCES = ("LUT4", "FF", "MULT18X18D", "DP16KD")
MEMORIES = ("spmat_words", "ptr_depth", "act_depth", "bias_depth")


@dataclass(frozen=True)
class Point:
    """One accelerator of the design space."""

    n_pe: int
    queue_depth: int
    spmat_words: int
    ptr_depth: int
    act_depth: int
    bias_depth: int
    clock_mhz: float

    def config(self, base: EIEConfig) -> EIEConfig:
        """``base`` (widths, layer table) with this point's N, queue and memory depths."""
        return base.replace(name=f"{base.name}-n{self.n_pe}q{self.queue_depth}",
                            **{k: getattr(self, k) for k in ("n_pe", "queue_depth") + MEMORIES})

    @property
    def memories(self) -> tuple[int, ...]:
        return tuple(getattr(self, k) for k in MEMORIES)

    def label(self) -> str:
        return (f"N={self.n_pe} q={self.queue_depth} spmat={self.spmat_words} "
                f"ptr={self.ptr_depth} act={self.act_depth} bias={self.bias_depth} "
                f"{self.clock_mhz:g} MHz")


@dataclass
class Workload:
    """A network as EIE runs it: its FC chains (EIE segments), each with logical float inputs
    (one row per inference; the figures are means over the rows)."""

    name: str
    segments: list[tuple[list[QuantizedLayer], np.ndarray]]

    @property
    def weights(self) -> int:
        return sum(q.n_in * q.n_out for layers, _ in self.segments for q in layers)


# Deep Compression, Table 2: LeNet-300-100's kept weights per layer; MNIST's test images have
# about 19% non-zero pixels
LENET300 = (("ip1", 784, 300, 0.08, True), ("ip2", 300, 100, 0.09, True),
            ("ip3", 100, 10, 0.26, False))
MNIST_DENSITY = 0.19
BUILTIN = ("lenet300", "alexnet")  # besides EIE's Table III layers (sw.eie.benchlayers)


def builtin_workload(name: str, seed: int = 0) -> Workload:
    """A built-in workload: an EIE Table III layer (``Alex-7``, ...), ``alexnet`` (fc6 -> fc7
    -> fc8 back to back) or ``lenet300`` (LeNet-300-100 at Deep Compression's densities on an
    input of MNIST's density); synthetic weights and input from ``seed``."""
    from sw.eie.benchlayers import (
        TABLE3,
        alexnet_chain,
        bench_input,
        bench_layer,
        synthetic_fc,
        synthetic_input,
    )

    if name in TABLE3:
        return Workload(name, [([bench_layer(name, seed)], bench_input(name, seed))])
    if name == "alexnet":
        layers, x = alexnet_chain(seed)
        return Workload("fc6-fc7-fc8", [(layers, x)])
    if name == "lenet300":
        layers = []
        for lname, n_in, n_out, d, relu in LENET300:
            q = synthetic_fc(lname, n_in, n_out, d, MNIST_DENSITY, seed)
            q.relu = relu
            layers.append(q)
        return Workload("LeNet-300-100", [(layers, synthetic_input(784, MNIST_DENSITY, seed))])
    raise DataError(f"unknown network {name!r} (built in: {', '.join(BUILTIN)}; EIE Table III: "
                    f"{', '.join(TABLE3)}; or --model FILE)")


def model_workload(path: str, inputs: str | None = None, limit: int = 4, act: str = "relu",
                   bits: int = 4, seed: int = 0) -> Workload:
    """The EIE segments of a model file (any format ``eie`` reads), 4-bit quantized as ``eie
    run`` does for a model that is not quantized yet, on the first ``limit`` inputs of
    ``inputs`` (each segment gets what the network feeds it), or without inputs on one
    synthetic input at 35% density (EIE's typical activation density)."""
    from pathlib import Path

    from sw.eie.benchlayers import synthetic_input
    from sw.frontends import load_network
    from sw.frontends.hybrid import load_inputs_for, quantized_layer

    network = load_network(path, act=act)
    chains = network.eie_layers()
    if not chains:
        raise FitError(f"{path}: no FC layer runs on the EIE")
    segs = [[quantized_layer(fc, bits)[0] for fc in chain] for chain in chains]
    if inputs is None:
        xs = [synthetic_input(layers[0].n_in, 0.35, seed)[None, :] for layers in segs]
    else:
        x = load_inputs_for(network, inputs, limit).x
        captured: dict[int, np.ndarray] = {}

        def capture(index: int, a: np.ndarray) -> np.ndarray:
            captured[index] = np.asarray(a, np.float64).reshape(len(a), -1)
            from sw.eie.golden import float_network

            return float_network(segs[index], a)[-1].astype(np.float32)

        network.run_hybrid(x, capture)
        xs = [captured[i] for i in range(len(segs))]
    return Workload(Path(path).name, list(zip(segs, xs, strict=True)))


def parse_list(text: str, what: str, lo: int = 1, hi: int = 1 << 20) -> list[int]:
    """``"1..8,16,32"`` -> [1, 2, ..., 8, 16, 32] (ranges inclusive), each in ``lo..hi``."""
    out: list[int] = []
    for item in (s.strip() for s in str(text).split(",")):
        if not item:
            continue
        try:
            if ".." in item:
                a, b = (int(v) for v in item.split("..", 1))
                if b < a:
                    raise ValueError
                out += range(a, b + 1)
            else:
                out.append(int(item))
        except ValueError:
            raise DataError(f"{what}: {item!r} is not a number or a range A..B") from None
    bad = [v for v in out if not lo <= v <= hi]
    if bad or not out:
        raise DataError(f"{what}: give values in {lo}..{hi} (got {text!r})")
    return sorted(set(out))


def parse_clocks(text: str) -> list[float]:
    out = []
    for item in (s.strip() for s in str(text).split(",") if s.strip()):
        try:
            v = float(item)
        except ValueError:
            raise DataError(f"--clock: {item!r} is not a frequency in MHz") from None
        if not 0 < v <= 2000:
            raise DataError(f"--clock: {v:g} MHz is outside 0..2000")
        out.append(v)
    if not out:
        raise DataError("--clock: give at least one frequency in MHz")
    return sorted(set(out))


def sized_config(base: EIEConfig, n_pe: int, queue_depth: int,
                 layers: list[QuantizedLayer]) -> EIEConfig:
    """``base`` with N PEs, the queue depth, and memories deep enough for the chain ``layers``
    (an upper bound: every entry in one PE, a padding entry per ``max_gap + 1`` local rows of
    every column); the cycle model's configuration, since cycles do not depend on memory
    depth."""
    rows = [-(-q.n_out // n_pe) for q in layers]
    entries = sum(q.nnz + q.n_in * -(-r // (base.max_gap + 1)) for q, r in zip(layers, rows,
                                                                                strict=True))
    cfg = base.replace(name=f"sized-n{n_pe}", n_pe=n_pe, queue_depth=queue_depth,
                       spmat_words=entries // base.entries_per_word + 2 * len(layers) + 1,
                       ptr_depth=max(2, sum(q.n_in + 1 for q in layers)),
                       act_depth=max(-(-n // n_pe) for n in [layers[0].n_in] + [q.n_out
                                                                             for q in layers]),
                       bias_depth=max(1, sum(rows)), max_layers=max(len(layers),
                                                                    base.max_layers))
    if cfg.ptr_bits > 32:
        raise FitError(f"{' -> '.join(q.name for q in layers)}: too large for one EIE")
    return cfg


@dataclass
class Figures:
    """One workload on one (N, queue depth): per inference."""

    workload: str
    n_pe: int
    queue_depth: int
    cycles: float
    energy_uj: float
    efficiency: float  # lower bound / compute cycles, over the whole inference
    usage: dict[str, int]  # per-PE memory needs: spmat words, pointers, activations, biases


def evaluate(workload: Workload, base: EIEConfig, n_pe: int, queue_depths: list[int],
             timing: Timing, balance: bool = False) -> list[Figures]:
    """The cycle and energy models of ``workload`` on N PEs at each queue depth: one packing
    per segment, the golden model once per input (the next layer's input), the cycle model
    once per layer, input and depth. Energy (it does not depend on the queue depth) with the
    memories as deep as the workload needs (the pointer width follows the sparse-matrix
    depth)."""
    from sw.eie.golden import run_layer

    cycles = dict.fromkeys(queue_depths, 0.0)
    bound = dict.fromkeys(queue_depths, 0.0)
    compute = dict.fromkeys(queue_depths, 0.0)
    pj = 0.0
    usage = dict.fromkeys(MEMORIES + ("layers",), 0)
    for layers, xs in workload.segments:
        cfg = sized_config(base, n_pe, max(queue_depths), layers)
        image = pack_network(layers, cfg, balance=balance)
        use = image.memory_usage()
        for k, m in zip(MEMORIES + ("layers",), ("spmat", "ptr", "act", "bias", "layers"),
                        strict=True):
            usage[k] = max(usage[k], use[m]["used"])
        tight = dataclasses.replace(image, config=cfg.replace(
            spmat_words=max(1, use["spmat"]["used"])))
        xs = np.atleast_2d(xs)
        for x in xs:
            a = image.input_to_physical(quantize_input(x, cfg))
            for li in range(len(image.layers)):
                for q in queue_depths:
                    r = simulate_layer(image, li, a, timing, queue_depth=q)
                    cycles[q] += r.cycles / len(xs)
                    bound[q] += r.lower_bound / len(xs)
                    compute[q] += r.compute_cycles / len(xs)
                pj += layer_energy(tight, li, r).total / len(xs)
                if li + 1 < len(image.layers):
                    a = run_layer(image, li, a)
    return [Figures(workload.name, n_pe, q, cycles[q], pj / 1e6,
                    bound[q] / compute[q] if compute[q] else 1.0, dict(usage))
            for q in queue_depths]


def fits(point: Point, usage: dict[str, int], base: EIEConfig) -> bool:
    """Whether a workload with per-PE needs ``usage`` fits the point's memories."""
    return all(usage[k] <= getattr(point, k) for k in MEMORIES) and \
        usage.get("layers", 0) <= base.max_layers


# -- resources ------------------------------------------------------------------------------------

@dataclass
class Synthesised:
    """A synthesised point: resources (after place and route, or Yosys' counts) and Fmax."""

    point: Point
    resources: dict[str, int]
    fmax_mhz: float | None
    resources_from: str  # "nextpnr" or "yosys"
    fits_device: bool
    report: str  # report.json path
    cached: bool = False


@dataclass
class ResourceFit:
    """``resource = coef . features(N, q)`` over the synthesised points of one set of memory
    depths; features ``[1, N]`` or ``[1, N, N log2 q]``."""

    memories: tuple[int, ...]
    coef: dict[str, list[float]]
    with_queue: bool
    n_points: int

    def features(self, n: int, q: int) -> list[float]:
        return [1.0, float(n)] + ([n * math.log2(q)] if self.with_queue else [])

    def predict(self, n: int, q: int) -> dict[str, int]:
        f = self.features(n, q)
        return {r: max(0, round(float(np.dot(c, f)))) for r, c in self.coef.items()}

    def describe(self) -> str:
        mem = ", ".join(f"{k} {v}" for k, v in zip(MEMORIES, self.memories, strict=True))
        terms = "a + b N" + (" + c N log2(q)" if self.with_queue else "")
        parts = []
        for r in ("LUT4", "DP16KD"):
            c = self.coef[r]
            parts.append(f"{r} = {c[0] if abs(c[0]) >= 0.5 else 0.0:,.0f} + {c[1]:,.1f} N"
                         + (f" + {c[2]:,.1f} N log2(q)" if self.with_queue else ""))
        return (f"resource estimate ({mem}; {terms}, least relative squares over {self.n_points} "
                f"synthesised point(s)): " + "; ".join(parts))


def fit_resources(synth: list[Synthesised]) -> dict[tuple[int, ...], ResourceFit]:
    """One fit per set of memory depths among the synthesised points that fit the device."""
    groups: dict[tuple[int, ...], list[Synthesised]] = {}
    for s in synth:
        groups.setdefault(s.point.memories, []).append(s)
    fits_: dict[tuple[int, ...], ResourceFit] = {}
    for mem, ss in groups.items():
        distinct = {(s.point.n_pe, s.point.queue_depth) for s in ss}
        with_q = len({q for _, q in distinct}) > 1 and len(distinct) >= 3
        if len({n for n, _ in distinct}) < 2 and not with_q:
            # one N: a PE-proportional estimate (no fixed part can be told apart)
            s = ss[0]
            coef = {r: [0.0, s.resources.get(r, 0) / s.point.n_pe] for r in RESOURCES}
            fits_[mem] = ResourceFit(mem, coef, False, len(ss))
            continue
        feats = np.array([[1.0, s.point.n_pe] + ([s.point.n_pe * math.log2(s.point.queue_depth)]
                                                 if with_q else []) for s in ss])
        coef = {}
        for r in RESOURCES:
            y = np.array([s.resources.get(r, 0) for s in ss], float)
            # relative errors (weights 1/y): in absolute terms the largest N would decide the
            # fit alone (LUT4 at N = 1 was 12% under its synthesised count)
            w = 1.0 / np.maximum(y, 1.0)
            coef[r] = [float(v) for v in np.linalg.lstsq(feats * w[:, None], y * w,
                                                         rcond=None)[0]]
        fits_[mem] = ResourceFit(mem, coef, with_q, len(ss))
    return fits_


def fmax_estimate(synth: list[Synthesised], n_pe: int) -> float | None:
    """Fmax at N from the synthesised points with a measured Fmax: linear in log2 N between
    the nearest two, the end value beyond them."""
    pts = sorted({s.point.n_pe: s.fmax_mhz for s in synth if s.fmax_mhz}.items())
    if not pts:
        return None
    if n_pe <= pts[0][0]:
        return pts[0][1]
    if n_pe >= pts[-1][0]:
        return pts[-1][1]
    for (n0, f0), (n1, f1) in zip(pts, pts[1:], strict=False):
        if n0 <= n_pe <= n1:
            t = (math.log2(n_pe) - math.log2(n0)) / (math.log2(n1) - math.log2(n0))
            return f0 + t * (f1 - f0)
    return None


# -- rows, fronts, output -------------------------------------------------------------------------

@dataclass
class Row:
    """One point and one workload, with every figure the table and the fronts use."""

    point: Point
    workload: str
    cycles: float
    efficiency: float
    energy_uj: float
    fits: bool
    resources: dict[str, int] | None
    resources_from: str  # "nextpnr", "yosys", "estimate" or "none"
    fmax_mhz: float | None
    fmax_from: str  # "nextpnr", "estimate" or "none"
    front: list[str] = field(default_factory=list)  # "speed", "energy"

    @property
    def clock_mhz(self) -> float:
        """The clock the design runs at: the target, or its Fmax when that is lower."""
        if self.fmax_mhz is not None:
            return min(self.point.clock_mhz, self.fmax_mhz)
        return self.point.clock_mhz

    @property
    def layers_per_s(self) -> float:
        """Inferences per second of the workload (EIE's "layers/s" for a one-layer one)."""
        return self.clock_mhz * 1e6 / self.cycles if self.cycles else 0.0

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self.point), "workload": self.workload,
                "cycles": round(self.cycles, 2), "efficiency": round(self.efficiency, 4),
                "energy_uj": round(self.energy_uj, 4), "fits_memories": self.fits,
                "resources": self.resources, "resources_from": self.resources_from,
                "fmax_mhz": None if self.fmax_mhz is None else round(self.fmax_mhz, 2),
                "fmax_from": self.fmax_from, "run_mhz": round(self.clock_mhz, 2),
                "inferences_per_s": round(self.layers_per_s, 2), "pareto": self.front}


def pareto(rows: list[Row], objective: str) -> list[Row]:
    """The rows no other row dominates on (LUT4 down, DP16KD down, objective): ``speed``
    (inferences per second, up) or ``energy`` (per inference, down); of rows equal on all
    three, only the one with the smallest queue and memories (the cheaper hardware, which an
    estimate may not see). Rows without resources take no part."""
    cand = [r for r in rows if r.resources is not None]

    def key(r: Row) -> tuple[float, float, float]:
        v = -r.layers_per_s if objective == "speed" else r.energy_uj
        return (r.resources["LUT4"], r.resources["DP16KD"], v)

    def cost(r: Row) -> tuple[int, int]:
        return (r.point.queue_depth, sum(r.point.memories))

    keys = [key(r) for r in cand]
    out = []
    for i, r in enumerate(cand):
        ki = keys[i]
        dominated = any(all(a <= b for a, b in zip(kj, ki, strict=True))
                        and (kj != ki or (cost(cand[j]), j) < (cost(r), i))
                        for j, kj in enumerate(keys) if j != i)
        if not dominated:
            out.append(r)
    return sorted(out, key=key)


def rows_from_json(d: dict) -> tuple[list[Row], list[Synthesised], dict]:
    """The rows, synthesised points and fits of an ``explore.json`` (re-ranking and re-plotting
    an exploration without computing it again)."""
    fields = [f.name for f in dataclasses.fields(Point)]
    rows = [Row(Point(**{k: p[k] for k in fields}), p["workload"], p["cycles"], p["efficiency"],
                p["energy_uj"], p["fits_memories"], p["resources"], p["resources_from"],
                p["fmax_mhz"], p["fmax_from"]) for p in d["points"]]
    synth = [Synthesised(Point(**{k: s[k] for k in fields}), s["resources"], s["fmax_mhz"],
                         s["resources_from"], s["fits_device"], s["report"], s["cached"])
             for s in d["synthesised"]]
    fits_ = {tuple(f["memories"][k] for k in MEMORIES):
             ResourceFit(tuple(f["memories"][k] for k in MEMORIES), f["coef"], f["with_queue"],
                         f["points"]) for f in d["fits"]}
    return rows, synth, fits_


def mark_fronts(rows: list[Row]) -> dict[str, dict[str, list[Row]]]:
    """Per workload, both fronts; each row records the fronts it is on."""
    fronts: dict[str, dict[str, list[Row]]] = {}
    for w in dict.fromkeys(r.workload for r in rows):
        mine = [r for r in rows if r.workload == w]
        fronts[w] = {obj: pareto(mine, obj) for obj in ("speed", "energy")}
        for obj, front in fronts[w].items():
            for r in front:
                r.front.append(obj)
    return fronts


def markdown_table(rows: list[Row], title: str) -> str:
    head = ["N", "queue", "spmat", "ptr", "act", "bias", "MHz", "cycles", "inf/s", "uJ/inf",
            "eff", "LUT4", "DP16KD", "from", "Fmax", "fits", "front"]
    lines = [f"#### {title}", "", "| " + " | ".join(head) + " |",
             "|" + "---|" * len(head)]
    for r in rows:
        p, res = r.point, r.resources or {}
        lines.append("| " + " | ".join([
            str(p.n_pe), str(p.queue_depth), str(p.spmat_words), str(p.ptr_depth),
            str(p.act_depth), str(p.bias_depth), f"{r.clock_mhz:.1f}", f"{r.cycles:,.0f}",
            f"{r.layers_per_s:,.0f}", f"{r.energy_uj:.3f}", f"{r.efficiency:.1%}",
            f"{res['LUT4']:,}" if res else "-", f"{res['DP16KD']:,}" if res else "-",
            r.resources_from,
            "-" if r.fmax_mhz is None else f"{r.fmax_mhz:.1f}" + ("" if r.fmax_from == "nextpnr"
                                                               else " (est.)"),
            "yes" if r.fits else "no", ",".join(r.front) or ""]) + " |")
    return "\n".join(lines)


def to_json(rows: list[Row], fronts: dict, fits_: dict, synth: list[Synthesised],
            meta: dict) -> str:
    return json.dumps({
        **meta,
        "fits": [{"memories": dict(zip(MEMORIES, f.memories, strict=True)),
                  "with_queue": f.with_queue, "points": f.n_points, "coef": f.coef}
                 for f in fits_.values()],
        "synthesised": [{**dataclasses.asdict(s.point), "resources": s.resources,
                         "fmax_mhz": s.fmax_mhz, "resources_from": s.resources_from,
                         "fits_device": s.fits_device, "report": s.report, "cached": s.cached}
                        for s in synth],
        "pareto": {w: {obj: [r.to_dict() for r in front] for obj, front in fs.items()}
                   for w, fs in fronts.items()},
        "points": [r.to_dict() for r in rows],
    }, indent=1)


def plot(rows: list[Row], fronts: dict, path, title: str) -> None:
    """One row of two panels per workload: LUT4 against inferences/s and against energy per
    inference; colour = block RAM, hollow = estimated resources, the front joined."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    workloads = list(fronts)
    fig, axes = plt.subplots(len(workloads), 2, figsize=(12, 4.2 * len(workloads)),
                             squeeze=False)
    for wi, w in enumerate(workloads):
        mine = [r for r in rows if r.workload == w and r.resources is not None]
        bram = [r.resources["DP16KD"] for r in mine]
        vmax = max(bram) if bram else 1
        for ax, obj, ylabel in ((axes[wi][0], "speed", "inferences per second"),
                                (axes[wi][1], "energy", "energy per inference (uJ)")):
            for est, marker in ((False, "o"), (True, "o")):
                sel = [r for r in mine if (r.resources_from == "estimate") == est]
                if not sel:
                    continue
                ys = [r.layers_per_s if obj == "speed" else r.energy_uj for r in sel]
                sc = ax.scatter([r.resources["LUT4"] for r in sel], ys,
                                c=[r.resources["DP16KD"] for r in sel], cmap="viridis",
                                vmin=0, vmax=vmax, s=14 if est else 46, marker=marker,
                                alpha=0.45 if est else 1.0,
                                edgecolors="none" if est else "k",
                                label="estimated resources" if est else "synthesised")
            front = fronts[w][obj]
            ax.plot([r.resources["LUT4"] for r in front],
                    [r.layers_per_s if obj == "speed" else r.energy_uj for r in front],
                    "r-", lw=1, label="Pareto front (LUT4, DP16KD)")
            for r in front[:: max(1, len(front) // 8)]:
                ax.annotate(f"N{r.point.n_pe} q{r.point.queue_depth}",
                            (r.resources["LUT4"],
                             r.layers_per_s if obj == "speed" else r.energy_uj),
                            fontsize=7, xytext=(3, 3), textcoords="offset points")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("LUT4")
            ax.set_ylabel(ylabel)
            ax.set_title(f"{w}: {ylabel} vs LUT4 (colour: DP16KD)", fontsize=10)
            ax.grid(alpha=0.3, which="both")
            ax.legend(fontsize=7, loc="best")
            if mine:
                fig.colorbar(sc, ax=ax, label="DP16KD")
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
