"""The Lattice ECP5 family: parts, cell counting, LPF clock constraints, nextpnr-ecp5.

A family module of :mod:`hw.fpga.flow` (see :class:`hw.fpga.flow.Family`): Yosys
``synth_ecp5 -noflatten``, then the block RAMs' output registers taken into use where the
netlist allows (:func:`absorb_bram_output_registers`), then ``nextpnr-ecp5`` *out of context*
(ports not bound to pins)
with the clock constraint of ``constraints/ecp5_clk.lpf``; its ``--report`` JSON gives the
achieved Fmax per clock, the critical paths and the utilisation. docs/fpga.md, "The flow" and
"Reading the report", describes each step and figure.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sw.errors import EIEError
from sw.fsutil import atomic_write_text

from .report import SynthReport, overflow_of
from .tools import REPO, ToolError, run_tool, tool_path, yosys_name

NAME = "ecp5"  # names the Yosys step, its log and the report's cell counts (yosys_ecp5)
DEFAULT_LPF = REPO / "constraints" / "ecp5_clk.lpf"
RESOURCES = ("LUT4", "FF", "MULT18X18D", "DP16KD")
# nextpnr cell type -> report name
_NEXTPNR_CELLS = {"TRELLIS_COMB": "LUT4", "TRELLIS_FF": "FF", "MULT18X18D": "MULT18X18D",
                  "DP16KD": "DP16KD"}


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
        return dict(zip(RESOURCES, (self.lut4, self.ff, self.mult18, self.dp16kd), strict=True))


# Numbers as nextpnr-ecp5 reports them ("available") for each part.
DEVICES: dict[str, Device] = {
    "LFE5U-25F": Device("LFE5U-25F", "--25k", "CABGA381", 24288, 24288, 28, 56),
    "LFE5U-45F": Device("LFE5U-45F", "--45k", "CABGA381", 43848, 43848, 72, 108),
    "LFE5U-85F": Device("LFE5U-85F", "--85k", "CABGA381", 83640, 83640, 156, 208),
}
DEFAULT_DEVICE = "LFE5U-85F"


# -- cell counting -------------------------------------------------------------------------

def resources(cells: Mapping[str, int]) -> dict[str, int]:
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


def dpram_overflow(cells: Mapping[str, int], device: Device) -> list[str]:
    """Distributed RAM beyond what the part can hold: each TRELLIS_DPR16X4 takes 4 of the
    LUTs that can be RAM, and only one LUT in 8 can (nextpnr's "RAM LUTs", 10,455 on the
    LFE5U-85F). A design over it still passes the LUT4 count, and nextpnr places it but does
    not finish routing it (docs/fpga.md, "Presets")."""
    used, avail = 4 * cells.get("TRELLIS_DPR16X4", 0), device.lut4 // 8
    return ([f"distributed RAM LUTs {used}/{avail} ({100 * used / avail:.0f}%)"]
            if used > avail else [])


def overflow(used: Mapping[str, int], cells: Mapping[str, int], device: Device) -> list[str]:
    """What Yosys' counts already show does not fit (place and route is then skipped)."""
    return overflow_of(used, device) + dpram_overflow(cells, device)


def platform(device: Device):
    """An Amaranth ECP5 platform of ``device`` with no board (no pins, no clock): what
    :mod:`hw.dsp` elaborates its MULT18X18D for. Only the family matters to elaboration; the
    speed grade given here is not used (nextpnr's is the flow's)."""
    from amaranth.vendor import LatticeECP5Platform

    part = type("ECP5Part", (LatticeECP5Platform,), {
        "device": device.name, "package": "BG" + re.sub(r"\D", "", device.package),
        "speed": "8", "resources": [], "connectors": []})
    return part()


# Yosys's Verilog frontend turns a memory's ``no_rw_check`` attribute (hw.params
# HOST_LOADED_MEMORY: a read never meets a write of the same word) into "such a read may return
# anything"; reading RTLIL, as the board builds do (amaranth-boards' platforms write RTLIL), it
# does not, and memory mapping then emulates old-data reads with a register and a multiplexer
# per bit after the block RAM (on the ULX3S top, a pointer bank's DP16KD -> that multiplexer
# was the critical path). Run after read_rtlil, this does what the Verilog frontend does (every
# such memory of the design has one read and one write port: the mask is one bit).
RTLIL_NO_RW_CHECK = ("proc; memory_collect; "
                     "setparam -set RD_COLLISION_X_MASK 1'1 t:$mem_v2 a:no_rw_check %i")


def read_primitives() -> str:
    """The ECP5 primitives as Yosys black boxes (what ``synth_ecp5`` reads at its start: the
    block RAMs are in ``cells_sim.v``, the DSPs in ``cells_bb.v``)."""
    return "read_verilog -lib +/ecp5/cells_sim.v +/ecp5/cells_bb.v"


def synth_script(top: str) -> str:
    """Yosys technology mapping with the hierarchy kept (the per-block table needs it)."""
    return f"synth_ecp5 -noflatten -top {top}"


# -- the clock constraint -------------------------------------------------------------------

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


def constraint(lpf: str | Path | None, freq_mhz: float | None, out: Path) -> tuple[Path, float]:
    """The LPF to use (``lpf``, default ``constraints/ecp5_clk.lpf``; with ``freq_mhz``, a copy
    at that frequency written to ``out/clk.lpf``) and its target frequency in MHz."""
    lpf_path = Path(lpf).resolve() if lpf else DEFAULT_LPF
    if not lpf_path.is_file():
        raise EIEError(f"no constraint file {lpf_path}")
    if freq_mhz is not None:
        if not (freq_mhz > 0 and math.isfinite(freq_mhz)):
            raise EIEError(f"--freq must be a positive number of MHz, got {freq_mhz}")
        derived = out / "clk.lpf"
        atomic_write_text(derived, clock_lpf(freq_mhz, lpf_path))
        lpf_path = derived
    return lpf_path, lpf_frequency(lpf_path)


# -- block RAM output registers --------------------------------------------------------------

_DO_BITS = 18  # a DP16KD read port's data outputs (DOA0..17 / DOB0..17)


def absorb_bram_output_registers(netlist: dict) -> tuple[int, int]:
    """Move the register after each DP16KD read port into the block RAM (``REGMODE_x =
    OUTREG``), in a Yosys JSON netlist after ``synth_ecp5`` and flattening, in place; returns
    (read ports changed, read ports in use).

    A DP16KD without its output register has a clock-to-output delay of 5.8 ns (nextpnr's
    timing model), with it 1.0 ns; Yosys's ECP5 memory mapping never uses it. The RTL keeps
    every block-RAM output in a register before any logic (docs/fpga.md): where that register is
    all that reads the port, it is the same register as the block RAM's own, and the port's
    data then come out one cycle after the read as before. A port is changed only when every
    used data bit drives exactly one flip-flop's ``DI`` and nothing else, and those flip-flops
    share the port's clock (not inverted), one clock enable (which becomes the port's output
    clock enable ``OCEx``), have no set/reset (``LSR`` unconnected or constant 0; the RTL
    declares them ``reset_less``) and no global set/reset, and the port is at most 18 bits
    wide or is the one read port of the 36-bit mode (:func:`_read_ports`). The flip-flops are
    removed; their outputs are the port's outputs. Cycle behaviour is unchanged: nothing the
    RTL or the cycle model know of moves."""
    top = next((m for m in netlist["modules"].values() if m.get("attributes", {}).get("top")),
               None)
    if top is None:
        raise EIEError("netlist without a top module")
    cells = top["cells"]
    sinks: dict[int, list[tuple[str, str]]] = {}
    for name, c in cells.items():
        dirs = c.get("port_directions", {})
        for port, bits in c["connections"].items():
            if dirs.get(port) == "input":
                for b in bits:
                    if isinstance(b, int):
                        sinks.setdefault(b, []).append((name, port))
    for port in top.get("ports", {}).values():
        if port["direction"] != "input":
            for b in port["bits"]:
                if isinstance(b, int):
                    sinks.setdefault(b, []).append(("", "port"))

    def const(bits, value: str) -> bool:
        return bits is None or bits == [value]

    changed = used_ports = 0
    for c in list(cells.values()):
        if c["type"] != "DP16KD":
            continue
        par, con = c["parameters"], c["connections"]
        for pins, x in _read_ports(par):
            used = [(pin, con[pin][0]) for pin in pins
                    if isinstance(con.get(pin, ["x"])[0], int) and sinks.get(con[pin][0])]
            if not used:
                continue
            used_ports += 1
            regs = {f"REGMODE_{y}" for y in ("AB" if len(pins) > _DO_BITS else x)}
            if any(par.get(r, "NOREG") != "NOREG" for r in regs) or \
                    str(par.get(f"CLK{x}MUX", f"CLK{x}")).strip() != f"CLK{x}":
                continue
            ffs = []
            for _pin, b in used:
                (ff_name, ff_port), *more = sinks[b]
                ff = cells.get(ff_name)
                if more or ff is None or ff["type"] != "TRELLIS_FF" or ff_port != "DI":
                    break
                ffs.append(ff_name)
            else:
                fc = [cells[f]["connections"] for f in ffs]
                # Yosys pads a string parameter that reads as binary with a space ("1 ")
                fp = [{k: v.strip() if isinstance(v, str) else v
                       for k, v in cells[f]["parameters"].items()} for f in ffs]
                ce = {str(f.get("CE", ["1"])) for f in fc}
                oces = [f"OCE{x}"]  # at 36 bits OCEB (a PDPW16KD's OCER), as nextpnr has it
                if (all(f["CLK"] == con[f"CLK{x}"] for f in fc)
                        and all(p.get("CLKMUX", "CLK") == "CLK" for p in fp)
                        and all(const(f.get("LSR"), "0") for f in fc)
                        and all(p.get("GSR", "DISABLED") == "DISABLED" for p in fp)
                        and all(p.get("CEMUX", "CE") in ("CE", "1") for p in fp)
                        and len(ce) == 1 and len({p.get("CEMUX", "CE") for p in fp}) == 1
                        and all(const(con.get(o), "1") for o in oces)):
                    oce = fc[0].get("CE", ["1"]) if fp[0].get("CEMUX", "CE") == "CE" else ["1"]
                    for (pin, _b), f in zip(used, fc, strict=True):
                        con[pin] = f["Q"]
                    for o in oces:
                        con[o] = oce
                    for r in regs:
                        par[r] = "OUTREG"
                    for name in ffs:
                        del cells[name]
                    changed += 1
    return changed, used_ports


def _read_ports(par: dict) -> list[tuple[list[str], str]]:
    """A DP16KD's read ports: (data output pins, the port whose clock and enables they use).
    At 36 bits (``DATA_WIDTH_A`` 36: the pseudo-dual-port mode, as nextpnr-ecp5 converts a
    PDPW16KD) one port reads all 36 bits on DOB0-17 and DOA0-17 with port B's clock and clock
    enables, and one output register setting covers both halves: nextpnr sets ``REGMODE_A``
    and ``REGMODE_B`` alike and the output clock enable on ``OCEB`` only."""
    def width(x):
        return int(str(par.get(f"DATA_WIDTH_{x}", "0")).strip() or "0", 2)
    if width("A") > 18 or width("B") > 18:
        return [([f"DOB{i}" for i in range(_DO_BITS)] + [f"DOA{i}" for i in range(_DO_BITS)], "B")]
    return [([f"DO{x}{i}" for i in range(_DO_BITS)], x) for x in "AB"]


def absorb_bram_output_registers_in(path: Path) -> tuple[int, int]:
    """:func:`absorb_bram_output_registers` on the JSON netlist at ``path`` (rewritten
    atomically)."""
    netlist = json.loads(path.read_text())
    counts = absorb_bram_output_registers(netlist)
    atomic_write_text(path, json.dumps(netlist))
    return counts


# -- place and route ------------------------------------------------------------------------

def place_and_route(report: SynthReport, constraint_file: Path, out: Path, *, seed: int,
                    router: str, nice: int) -> None:
    """nextpnr-ecp5 out of context on ``out/netlist.json`` (after
    :func:`absorb_bram_output_registers`, which rewrites it); fills ``report`` in (resources,
    Fmax, critical paths, utilisation, or what did not fit)."""
    dev, cwd = report.device, out.resolve()
    outreg, ports = absorb_bram_output_registers_in(out / "netlist.json")
    report.nextpnr_options = {"router": router, "seed": seed,
                              "dp16kd_output_registers": f"{outreg}/{ports}"}
    args = [dev.nextpnr_flag, "--package", dev.package, "--json", "netlist.json",
            "--lpf", tool_path(constraint_file, cwd), "--report", "nextpnr_report.json",
            "--lpf-allow-unconstrained", "--timing-allow-fail", "--out-of-context",
            "--seed", str(seed), "--router", router]
    try:
        report.wall_s["nextpnr"] = run_tool("nextpnr-ecp5", args, cwd, out / "nextpnr.log", nice)
    except ToolError as e:
        # out of cells ("no BELs remaining") or out of routing: the design does not fit
        placed = _nextpnr_log_utilisation(e.log)
        ovf = overflow_of({**report.resources, **placed}, dev)
        if ovf or "no BELs remaining" in e.message:
            report.overflow = ovf or [e.message]
        elif re.search(r"\brout(e|ing)\b", e.message, re.IGNORECASE):
            report.overflow = [f"routing failed ({e.message})"]
        else:
            raise
    else:
        _read_nextpnr(report, out / "nextpnr_report.json")


def _read_nextpnr(report: SynthReport, path: Path) -> None:
    rep = json.loads(path.read_text())
    util = rep.get("utilization", {})
    report.utilization = {k: v for k, v in util.items() if v.get("used", 0) > 0}
    placed = {name: int(util[cell]["used"]) for cell, name in _NEXTPNR_CELLS.items() if cell in util}
    report.resources = {**report.resources, **placed}
    report.resources_from = "nextpnr"
    report.fmax_mhz = {yosys_name(k).removeprefix("$glbnet$"): round(float(v["achieved"]), 2)
                       for k, v in rep.get("fmax", {}).items()}
    report.critical_paths = [summarise_path(cp) for cp in rep.get("critical_paths", [])]
    report.overflow = overflow_of(report.resources, report.device)


def read_nextpnr_report(report: SynthReport, path: Path) -> None:
    """Fill ``report`` in from nextpnr-ecp5's ``--report`` JSON at ``path`` (resources, Fmax
    per clock, critical paths, utilisation, overflow): for flows that run nextpnr themselves
    (the board builds of :mod:`hw.board.build`)."""
    _read_nextpnr(report, path)


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
