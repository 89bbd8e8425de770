"""Board builds (`eie board build`): the system on an amaranth-boards board, to a bitstream.

1. The design: :class:`hw.board.top.BoardTop` around the system (:func:`make_system`: the UART
   bridge and the EIE's Wishbone front end), elaborated by the board's amaranth-boards platform
   (``platform.prepare``), which writes the RTLIL, the Yosys script and the LPF (pins from the
   board's resources, the oscillator's ``FREQUENCY``; nextpnr derives the PLL output's from it
   and the dividers): the platform is the one owner of the pin constraints;
   ``constraints/<board>.lpf`` is its output, checked in (:func:`constraints_text`).
2. Yosys reads the RTLIL and marks the read ports of ``no_rw_check`` memories as the Verilog
   frontend would (:data:`hw.fpga.ecp5.RTLIL_NO_RW_CHECK`), then ``synth_ecp5 -noflatten`` (the
   platform's script), then ``flatten; opt_clean -purge``
   and ``stat -json`` (:data:`SCRIPT_AFTER_SYNTH`): the hierarchy is kept through technology
   mapping, as `eie synth` keeps it, so that the registers the core replicates per PE (host
   writes, reset, layer parameters: the same data into every PE) are not merged back into one
   by ``opt_merge`` on the flat design, one register driving every PE across the chip. A design
   that already overflows the part by Yosys' counts (:func:`hw.fpga.ecp5.overflow`) stops here.
3. The registers after the block RAMs' read ports become the DP16KDs' own output registers
   where they are all that reads a port (:func:`hw.fpga.ecp5.absorb_bram_output_registers`, as
   in `eie synth`); then nextpnr-ecp5 for the board's part and package (not out of context:
   every port on its pin), with ``--report`` (resources, Fmax per clock, critical paths) and
   ``--textcfg``.
4. ``ecppack --compress``: the bitstream, only when the achieved Fmax of the PLL's clock meets
   the chosen clock (or with ``allow_timing_fail``).

The output directory is built under a temporary name and renamed into place when complete
(:func:`sw.fsutil.atomic_dir`); a failed step leaves no directory behind, a missed timing
leaves the reports and no ``.bit``. With a model, its images are the memories' initial
contents (the ROM build of :mod:`hw.fpga.rom`, here through Amaranth's memory ``init``: RTLIL
carries each memory's contents as one constant) and ``images/`` + ``board.json`` record what is
in ROM; without one, the host loads images at run time over the UART (`eie board load`).
docs/fpga.md, "Board builds", describes the outputs and the measured figures.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path

from sw.eie.config import EIEConfig
from sw.errors import EIEError, FitError
from sw.fsutil import atomic_dir, atomic_write_text

from ..fpga import ecp5
from ..fpga.report import SynthReport
from ..fpga.tools import REPO, ToolError, run_tool
from .pll import PLLSetting, ecp5_pll
from .top import Board, BoardTop, board

NAME = "eie_board"  # the design's name: top module, file names
DEFAULT_BAUD = 3_000_000
CONSTRAINTS = REPO / "constraints"
STAT = "stat.json"
# synthesis with the hierarchy kept, then flattened for nextpnr without opt_merge (module
# docstring, step 2)
SYNTH_OPTS = "-noflatten"
SCRIPT_AFTER_SYNTH = f"flatten -noscopeinfo; opt_clean -purge; tee -q -o {STAT} stat -json"
# what constraints_plan elaborates: the pins are the same for every configuration, so the
# smallest one (1 PE, shallow memories) that elaborates in seconds
CONSTRAINTS_CONFIG = EIEConfig(name="board_pins", n_pe=1, queue_depth=4, spmat_words=64,
                               ptr_depth=128, act_depth=16, bias_depth=32, max_layers=1)


@dataclass
class BoardBuild:
    """What :func:`build` wrote."""

    out: Path
    bitstream: Path | None  # None when the timing was not met (and not allowed to fail)
    report: dict

    @property
    def timing_met(self) -> bool:
        return bool(self.report["timing_met"])


# -- the design --------------------------------------------------------------------------------

def load_image(config: EIEConfig, model: str, act: str = "relu", calib: str | None = None,
               balance: bool = False):
    """The packed image of ``model`` for ``config`` and its meta (as `eie rom` makes them);
    :class:`FitError` when it does not fit the configuration or is not one EIE segment."""
    from sw.commands.sources import compile_for_hardware

    compiled, meta = compile_for_hardware(config, model, None, 0, act, calib, balance)
    if len(compiled.segments) != 1:
        raise FitError(f"the network has {len(compiled.segments)} EIE segments (host operators "
                       f"between its FC chains); a ROM build holds one: build without --model "
                       f"and load the segments at run time")
    return compiled.segments[0].image, meta


def make_system(config: EIEConfig, clock_hz: float, baud: int, image=None):
    """The system the board top wraps: the UART bridge driving the EIE's Wishbone front end
    (:class:`hw.soc.system.System`); with ``image``, the EIE's memories start out holding it."""
    from hw.soc.system import System

    return System(config, clk_freq=clock_hz, baud=baud, image=image)


def prepare(b: Board, system, clock_hz: float, name: str = NAME, **overrides):
    """Elaborate ``system`` on board ``b`` at ``clock_hz``: (platform, top, build plan). The
    plan's files are the RTLIL (``<name>.il``), the Yosys script (``<name>.ys``, with
    ``synth_ecp5 -noflatten``, then flattened and ``stat -json`` into :data:`STAT`) and the LPF
    (``<name>.lpf``);
    ``overrides`` go to the platform (``debug_verilog=True``: ``<name>.debug.v`` too)."""
    platform = b.make_platform()
    top = BoardTop(b, system, clock_hz)
    plan = platform.prepare(top, name, emit_src=False, synth_opts=SYNTH_OPTS,
                            script_after_read=ecp5.RTLIL_NO_RW_CHECK,
                            script_after_synth=SCRIPT_AFTER_SYNTH, **overrides)
    return platform, top, plan


def device(platform) -> ecp5.Device:
    """The board's part as the flow describes it: nextpnr's part and package options from the
    amaranth platform, the resources of the LFE5U of the same size (the LFE5UM / LFE5UM5G
    parts add SERDES to the same fabric)."""
    m = re.fullmatch(r"LFE5U(?:M|M5G)?-(\d+)F", platform.device)
    base = ecp5.DEVICES.get(f"LFE5U-{m.group(1)}F") if m else None
    if base is None:
        raise EIEError(f"no resource table for {platform.device} (known: {', '.join(ecp5.DEVICES)})")
    return replace(base, name=platform.device,
                   nextpnr_flag=platform._nextpnr_device_options[platform.device],
                   package=platform._nextpnr_package_options[platform.package].upper())


# -- constraints -------------------------------------------------------------------------------

_AUTOGEN = re.compile(r"^# Automatically generated by Amaranth [^\n]*\n", re.MULTILINE)


def constraints_plan(board_name: str, **overrides):
    """The build plan :func:`constraints_text` reads: the board top at the board's default
    clock around the system of :data:`CONSTRAINTS_CONFIG` (the pins depend on neither)."""
    b = board(board_name)
    clock = b.default_clock_hz
    system = make_system(CONSTRAINTS_CONFIG, clock, DEFAULT_BAUD)
    return prepare(b, system, clock, **overrides)[2]


def constraints_text(board_name: str, plan=None) -> str:
    """``constraints/<board>.lpf``: the LPF the platform writes for the board top (of
    :func:`constraints_plan`, or ``plan``): every pin the top uses and the oscillator's
    frequency (the same for every clock and configuration); the generator's version line
    replaced by where the file comes from."""
    b = board(board_name)
    plan = plan or constraints_plan(board_name)
    head = (f"# {b.name}: pin and clock constraints of the eie-gen board top ({NAME}), written by\n"
            f"# the amaranth-boards platform {b.platform_class}; nextpnr derives the PLL's\n"
            f"# output clock from the oscillator's FREQUENCY. Regenerate: eie board constraints\n")
    return head + _AUTOGEN.sub("", _text(plan.files[f"{NAME}.lpf"])).rstrip("\n") + "\n"


def _text(content: str | bytes) -> str:
    return content.decode() if isinstance(content, bytes) else content


def constraints_path(board_name: str) -> Path:
    return CONSTRAINTS / f"{board_name}.lpf"


def write_constraints(board_name: str, out: Path | None = None) -> Path:
    path = out or constraints_path(board_name)
    atomic_write_text(path, constraints_text(board_name))
    return path


# -- the build ---------------------------------------------------------------------------------

def build(board_name: str, config: EIEConfig, out: str | Path, *, clock_hz: float | None = None,
          model: str | None = None, act: str = "relu", calib: str | None = None,
          balance: bool = False, baud: int = DEFAULT_BAUD, seed: int = 1,
          router: str = "router1", nice: int = 0, allow_timing_fail: bool = False,
          log=print) -> BoardBuild:
    """Build the bitstream of ``config`` (optionally with ``model`` in ROM) for a board into
    ``out``. Raises :class:`EIEError` (one line) on bad input, a design that does not fit
    or a tool failure, leaving no output directory; on missed timing (unless
    ``allow_timing_fail``) writes the reports without a bitstream and raises after."""
    t_start = time.monotonic()
    b = board(board_name)
    clock = float(clock_hz or b.default_clock_hz)
    if baud <= 0 or baud * 4 > clock:
        raise EIEError(f"--baud {baud} needs a clock of at least 4x it ({clock / 1e6:g} MHz)")
    platform = b.make_platform()
    pll = ecp5_pll(platform.default_clk_frequency, clock)  # an impossible clock fails here
    dev = device(platform)
    image, meta = load_image(config, model, act, calib, balance) if model else (None, None)
    wall: dict[str, float] = {}
    out = Path(out)
    log(f"{b.name} ({dev.name}, {dev.package}): config {config.name} ({config.n_pe} PEs), "
        f"{pll.describe()}, UART {baud} baud, "
        + (f"model {model} in ROM" if model else "images loaded at run time over the UART"))

    with atomic_dir(out) as tmp:
        try:
            t0 = time.monotonic()
            system = make_system(config, pll.f_out, baud, image)
            _, top, plan = prepare(b, system, pll.f_out)
            for f in (f"{NAME}.il", f"{NAME}.ys", f"{NAME}.lpf"):  # not the platform's shell scripts
                (tmp / f).write_text(_text(plan.files[f]))
            wall["elaborate"] = time.monotonic() - t0
            log(f"elaborated in {wall['elaborate']:.1f} s; Yosys synth_ecp5 ...")

            wall["yosys"] = run_tool("yosys", [f"{NAME}.ys"], tmp, tmp / "yosys.log", nice)
            cells = _top_cells(json.loads((tmp / STAT).read_text()))
            rep = SynthReport(top=NAME, sources=[f"{NAME}.il"], device=dev, lpf=f"{NAME}.lpf",
                              target_mhz=pll.f_out / 1e6, resources=ecp5.resources(cells),
                              resources_from="yosys", yosys_cells=cells, glue={}, modules=[],
                              blocks={}, wall_s=wall, config=config.to_dict())
            rep.overflow = ecp5.overflow(rep.resources, cells, dev)
            check_fit(rep, b, config, "Yosys")
            log(f"Yosys {wall['yosys']:.0f} s: LUT4 {rep.resources['LUT4']:,} (estimate), "
                f"DP16KD {rep.resources['DP16KD']}; nextpnr-ecp5 {router} ...")

            args = [dev.nextpnr_flag, "--package", dev.package, "--speed", str(platform.speed),
                    "--json", f"{NAME}.json", "--lpf", f"{NAME}.lpf", "--textcfg", f"{NAME}.config",
                    "--report", "nextpnr_report.json", "--timing-allow-fail",
                    "--seed", str(seed), "--router", router]
            outreg, ports = ecp5.absorb_bram_output_registers_in(tmp / f"{NAME}.json")
            rep.nextpnr_options = {"router": router, "seed": seed,
                                   "dp16kd_output_registers": f"{outreg}/{ports}"}
            wall["nextpnr"] = run_tool("nextpnr-ecp5", args, tmp, tmp / "nextpnr.log", nice)
            ecp5.read_nextpnr_report(rep, tmp / "nextpnr_report.json")
            check_fit(rep, b, config, "nextpnr")
            fmax = clock_fmax(rep.fmax_mhz or {})
            met = fmax is not None and fmax >= pll.f_out / 1e6
            bit = None
            if met or allow_timing_fail:
                wall["ecppack"] = run_tool("ecppack", ["--compress", "--input", f"{NAME}.config",
                                                       "--bit", f"{NAME}.bit"],
                                           tmp, tmp / "ecppack.log", nice)
                bit = out / f"{NAME}.bit"
            wall["total"] = time.monotonic() - t_start
            report = board_report(b, dev, platform, config, pll, baud, rep, fmax, met,
                                  tmp / f"{NAME}.bit" if bit else None, model, image, meta)
            if image is not None:
                from sw.eie.images import write_images
                write_images(image, tmp / "images", meta)
            atomic_write_text(tmp / "report.json", json.dumps(report, indent=1) + "\n")
            atomic_write_text(tmp / "report.txt", format_board_report(report) + "\n")
        except ToolError as e:  # keep what the tool wrote, marked as failed, for its log
            raise _failed(e, tmp, out) from None

    shutil.rmtree(out.with_name(out.name + ".failed"), ignore_errors=True)  # an earlier failure's
    result = BoardBuild(out, bit, report)
    if not met and not allow_timing_fail:
        raise EIEError(f"timing not met: Fmax {fmax or 0:.1f} MHz < clock {pll.f_out / 1e6:g} MHz; "
                       f"reports in {out}, no bitstream (rebuild with --clock "
                       f"{math.floor(10 * (fmax or 0)) / 10:g}e6 or lower, or --allow-timing-fail)")
    return result


def _failed(e: ToolError, tmp: Path, out: Path) -> EIEError:
    """A tool failed: the unfinished directory is copied to ``<out>.failed`` (never taken for a
    finished build: no report, no bitstream) and the error names the tool's log there."""
    failed = out.with_name(out.name + ".failed")
    shutil.rmtree(failed, ignore_errors=True)
    shutil.copytree(tmp, failed)
    return EIEError(f"{e.tool} failed (exit {e.code}): {e.message} (log: {failed / e.log.name})")


def check_fit(rep: SynthReport, b: Board, config: EIEConfig, counted_by: str) -> None:
    """:class:`FitError` (one line) when ``rep`` overflows the board's part."""
    if rep.overflow:
        raise FitError(f"config {config.name} does not fit the {b.name}'s {rep.device.name}: "
                       f"{', '.join(rep.overflow)} used/available ({counted_by})")


def _top_cells(stat: dict) -> dict[str, int]:
    """Cell counts of the flattened top from Yosys' ``stat -json``."""
    mods = stat.get("modules", {})
    top = mods.get(f"\\{NAME}") or mods.get(NAME) or {}
    return {k.lstrip("\\"): int(v) for k, v in top.get("num_cells_by_type", {}).items()}


def clock_fmax(fmax_mhz: dict[str, float]) -> float | None:
    """The achieved Fmax of the system clock (the PLL's output; the oscillator drives nothing
    else): the lowest of nextpnr's clocks, so that no domain is overlooked."""
    return min(fmax_mhz.values()) if fmax_mhz else None


def board_report(b: Board, dev: ecp5.Device, platform, config: EIEConfig, pll: PLLSetting,
                 baud: int, rep: SynthReport, fmax: float | None, met: bool,
                 bit: Path | None, model: str | None, image, meta) -> dict:
    d = rep.to_dict()
    report = {
        "format": "eie-board-build", "version": 1, "board": b.name,
        "platform": type(platform).__name__, "device": d["device"],
        "speed_grade": str(platform.speed), "config": config.to_dict(),
        "clock": {"oscillator_hz": pll.f_in, "target_hz": pll.f_target, "pll": pll.to_dict()},
        "uart": {"baud": baud}, "resources": d["resources"],
        "resources_from": d["resources_from"], "fmax_mhz": d["fmax_mhz"],
        "fmax_system_mhz": fmax, "timing_met": met, "critical_paths": d["critical_paths"],
        "nextpnr": d["nextpnr_options"], "nextpnr_utilization": d["nextpnr_utilization"],
        "yosys_ecp5_cells": d["yosys_ecp5_cells"],
        "bitstream": None if bit is None else {
            "file": bit.name, "bytes": bit.stat().st_size, "compressed": True,
            "sha256": hashlib.sha256(bit.read_bytes()).hexdigest()},
        "model": None, "wall_s": d["wall_s"],
        "leds": b.led_labels, "reset": b.reset_label,
    }
    if image is not None:
        from hw.fpga.rom import run_parameters
        report["model"] = {"file": model, "images": "images", "meta": meta,
                           "run": run_parameters(image)}
    return report


def format_board_report(r: dict) -> str:
    dev, clk = r["device"], r["clock"]
    p = clk["pll"]
    c = r["config"]
    lines = [f"{NAME} on {r['board']} ({r['platform']}): {dev['name']} ({dev['package']}, speed "
             f"{r['speed_grade']}), placed and routed on its pins",
             f"config {c['name']}: N={c['n_pe']} PEs; UART {r['uart']['baud']:,} baud; "
             + (f"model {r['model']['file']} in ROM" if r["model"] else
                "images loaded at run time over the UART"),
             f"clock: {p['f_in_hz'] / 1e6:g} MHz oscillator -> EHXPLLL CLKI_DIV {p['CLKI_DIV']}, "
             f"CLKFB_DIV {p['CLKFB_DIV']}, CLKOP_DIV {p['CLKOP_DIV']} (VCO "
             f"{p['f_vco_hz'] / 1e6:.4g} MHz) -> {p['f_out_hz'] / 1e6:.4g} MHz "
             f"(target {p['f_target_hz'] / 1e6:g} MHz)", "",
             f"{'resource':<12}{'used':>10}{'available':>11}{'util':>8}   "
             f"({'after place and route' if r['resources_from'] == 'nextpnr' else 'Yosys'})"]
    for k, u in r["resources"].items():
        lines.append(f"{k:<12}{u['used']:>10,}{u['available']:>11,}{u['percent']:>7.1f}%")
    target = p["f_out_hz"] / 1e6
    opts = r.get("nextpnr") or {}
    for net, f in (r["fmax_mhz"] or {}).items():
        lines.append(f"{'Fmax ' + net:<24}{f:>8.1f} MHz (target {target:.4g} MHz: "
                     f"{'met' if f >= target else 'NOT met'}, nextpnr {opts.get('router')} "
                     f"seed {opts.get('seed')}"
                     + (f", {opts['dp16kd_output_registers']} DP16KD output registers"
                        if opts.get("dp16kd_output_registers") else "") + ")")
    for cp in (r["critical_paths"] or [])[:1]:
        lines.append(f"critical path {cp['from']} -> {cp['to']}: {cp['delay_ns']:.2f} ns "
                     f"({cp['logic_ns']:.2f} logic + {cp['routing_ns']:.2f} routing, "
                     f"{cp['logic_levels']} logic levels)")
        lines.append(f"  from {cp['start']}")
        lines.append(f"  to   {cp['end']}")
        if cp.get("through"):
            lines.append(f"  through {' -> '.join(cp['through'])}")
    bs = r["bitstream"]
    lines.append("")
    lines.append(f"bitstream: {bs['file']}, {bs['bytes']:,} bytes (ecppack --compress)" if bs else
                 "bitstream: none (timing not met)")
    if r["model"]:
        run = r["model"]["run"]
        lines.append(f"ROM: {run['n_layers']} layer(s), input {run['input_length']}, output "
                     f"{run['output_length']} (bank {run['output_bank']}); images in images/")
    lines.append("LEDs: " + ", ".join(f"{role} {label}" for role, label in r["leds"].items())
                 + f"; reset: {r['reset']}")
    lines.append("wall time: " + ", ".join(f"{k} {v:.1f} s" for k, v in r["wall_s"].items()))
    return "\n".join(lines)
