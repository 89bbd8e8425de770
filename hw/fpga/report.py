"""The synthesis report: the record the flow fills in, its JSON form and its terminal table.

docs/fpga.md, "Reading the report", explains each line. Family-independent: the device is
anything with a ``name``, a ``package`` and ``available()`` resources (:class:`hw.fpga.ecp5.Device`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

from sw.errors import FitError
from sw.fsutil import atomic_write_text

from .hierarchy import ModuleCost
from .xilinx import summary as xilinx_summary

CLOCK_PORT = "clk"  # Amaranth's default ("sync") clock domain port


class Part(Protocol):
    """A device as the report sees it."""

    name: str
    package: str

    def available(self) -> dict[str, int]: ...


@dataclass
class SynthReport:
    """Everything the flow measured; ``to_dict`` is the JSON report."""

    top: str
    sources: list[str]
    device: Part
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
                    "percent": round(100.0 * self.resources[k] / avail[k], 2)} for k in avail}

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


def fmax_and_path(report: SynthReport) -> str:
    """One line for a benchmark's table: the achieved Fmax and the critical path's start, end,
    delay and its split into logic and routing."""
    cp = (report.critical_paths or [{}])[0]
    return (f"{report.fmax or 0:>8.1f}  {cp.get('start', '?')} -> {cp.get('end', '?')}: "
            f"{cp.get('delay_ns', 0):.2f} ns, {cp.get('logic_ns', 0):.2f} logic, "
            f"{cp.get('routing_ns', 0):.2f} routing")


def overflow_of(used: Mapping[str, int], device: Part) -> list[str]:
    """``["DP16KD 256/208 (123%)", ...]`` for every resource used beyond the device's."""
    avail = device.available()
    return [f"{k} {used[k]}/{avail[k]} ({100 * used[k] / avail[k]:.0f}%)"
            for k in avail if used.get(k, 0) > avail[k]]


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
    names = list(d["resources"])  # the device's resources, in its order
    lines += ["", f"{'resource':<12}{'used':>10}{'available':>11}{'util':>8}   ({src})"]
    for k, r in d["resources"].items():
        flag = "  OVERFLOW" if r["used"] > r["available"] else ""
        lines.append(f"{k:<12}{r['used']:>10,}{r['available']:>11,}{r['percent']:>7.1f}%{flag}")
    if d["fmax_mhz"]:
        for clk, f in d["fmax_mhz"].items():
            ok = "met" if f >= d["constraint"]["target_mhz"] else "NOT met"
            opts = d.get("nextpnr_options") or {}
            how = f", nextpnr {opts['router']} seed {opts['seed']}" if opts else ""
            if opts.get("dp16kd_output_registers"):
                how += f", {opts['dp16kd_output_registers']} DP16KD output registers"
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
                  f"{'block':<24}{'inst':>5}" + "".join(f"{k + '/inst':>17}" for k in names)
                  + f"{names[0] + ' total':>12}"]
        if labelled:
            mods = {m["module"]: m for m in d["modules"]}
            rows = []
            for label, b in d["blocks"].items():
                rows.append((label, b["instances"], b["per_instance"], b["total"]))
                root = mods.get(b["modules"][0]) if len(b["modules"]) == 1 else None
                # its parts, one level down; a part of one cell (a PE block's reset register,
                # hw.pe.ResetRegister) is not a row
                parts = {sub: n for sub, n in (root or {}).get("submodules", {}).items()
                         if sub in mods and sum(mods[sub]["per_instance"].values()) > 1}
                if root and len(parts) <= 8:
                    for sub, n in parts.items():
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
            lines.append(f"{name[:24]:<24}{inst:>5}" + "".join(f"{_fmt_n(per.get(k, 0)):>17}" for k in names)
                         + f"{_fmt_n(tot.get(names[0], 0)):>12}")
    if d.get("xilinx"):
        lines += ["", xilinx_summary(d["xilinx"])]
    w = d["wall_s"]
    lines += ["", "wall time: " + ", ".join(f"{k} {v:.1f} s" for k, v in w.items())]
    if d["overflow"]:
        lines.append(f"DOES NOT FIT {dev['name']}: {', '.join(d['overflow'])}")
    return "\n".join(lines)


def write_report(report: SynthReport, out_dir: str | Path) -> Path:
    """``report.json`` and ``report.txt`` in ``out_dir`` (atomically); returns the JSON path."""
    out = Path(out_dir)
    atomic_write_text(out / "report.txt", report.format() + "\n")
    atomic_write_text(out / "report.json", json.dumps(report.to_dict(), indent=1) + "\n")
    return out / "report.json"
