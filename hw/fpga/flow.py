"""The FPGA flow: Verilog (or an Amaranth component, or an EIE configuration) to resources,
Fmax and the per-block cost, on the family that owns the chosen device.

1. Yosys technology mapping with the hierarchy kept (the family's ``synth_script``), so a
   module instantiated N times (the EIE PE) is synthesised once, and ``stat -json`` of the
   mapped hierarchy gives the per-module cost (:mod:`hw.fpga.hierarchy`); then the netlist is
   flattened and cleaned (``flatten; opt_clean`` removes logic whose outputs nothing reads).
2. The family's place and route (:func:`hw.fpga.ecp5.place_and_route`), unless Yosys' counts
   already overflow the device.
3. Optionally the Xilinx 7-series estimate (:mod:`hw.fpga.xilinx`).

docs/fpga.md, "The flow", describes the steps; :mod:`hw.fpga.report` the result.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

from sw.errors import EIEError
from sw.fsutil import atomic_write_text

from . import ecp5
from .hierarchy import block_costs, hierarchy_costs
from .report import Part, SynthReport, write_report
from .tools import module_cells, repo_relative, run_tool, yosys_read
from .xilinx import estimate as xilinx_estimate
from .xilinx import resources as xilinx_resources


class Family(Protocol):
    """What the flow asks of an FPGA family. A family is a module with these names
    (:mod:`hw.fpga.ecp5`) listed in :data:`FAMILIES`: a new family is a new file."""

    NAME: str  # names its Yosys step, log and cell counts: yosys_<NAME>
    DEVICES: Mapping[str, Part]

    def constraint(self, lpf: str | Path | None, freq_mhz: float | None,
                   out: Path) -> tuple[Path, float]:
        """The constraint file to use and its clock target in MHz."""

    def read_primitives(self) -> str:
        """The Yosys command that declares the family's primitives (black boxes), read before
        the hierarchy check: a design elaborated for :meth:`platform` may instantiate them."""

    def synth_script(self, top: str) -> str:
        """The Yosys technology mapping, hierarchy kept."""

    def platform(self, device: Part):
        """An Amaranth platform of ``device`` without a board, to elaborate a design for it:
        components that use the family's primitives where Yosys does not infer them ask for it
        (:mod:`hw.dsp`)."""

    def resources(self, cells: Mapping[str, int]) -> dict[str, int]:
        """Yosys cell counts -> the device's resources."""

    def overflow(self, used: Mapping[str, int], cells: Mapping[str, int],
                 device: Part) -> list[str]:
        """What already does not fit by Yosys' counts."""

    def place_and_route(self, report: SynthReport, constraint_file: Path, out: Path, *,
                        seed: int, router: str, nice: int) -> None:
        """Place and route ``out/netlist.json``, filling ``report`` in."""


FAMILIES: tuple[Family, ...] = (ecp5,)
DEVICES: dict[str, Part] = {name: d for f in FAMILIES for name, d in f.DEVICES.items()}
DEFAULT_DEVICE = ecp5.DEFAULT_DEVICE


def family_of(device: str) -> Family:
    for f in FAMILIES:
        if device in f.DEVICES:
            return f
    raise EIEError(f"unknown device {device!r} (known: {', '.join(DEVICES)})")


def platform_of(device: str):
    """The Amaranth platform to elaborate a design for ``device`` (:meth:`Family.platform`);
    an unknown part is one line naming the known ones."""
    family = family_of(device)
    return family.platform(family.DEVICES[device])


def synthesize(sources: Sequence[str | Path], top: str, out_dir: str | Path, *,
               device: str = DEFAULT_DEVICE, freq_mhz: float | None = None,
               lpf: str | Path | None = None, pnr: bool = True, xilinx: bool = False,
               blocks: Mapping[str, str] | None = None, seed: int = 1, nice: int = 0,
               router: str = "router1", config: dict | None = None,
               extra_wall: Mapping[str, float] | None = None,
               inline: Sequence[str] = (),
               xilinx_sources: Sequence[str | Path] | None = None) -> SynthReport:
    """Synthesise ``top`` from Verilog ``sources`` into ``out_dir`` and measure it.

    ``freq_mhz`` overrides the frequency of the constraint file (``lpf``, default
    ``constraints/ecp5_clk.lpf``; a copy with the new value is written to ``out_dir``).
    ``blocks`` maps a block label to a regular expression over module names (outermost match
    wins) for the per-block table. ``inline``: Yosys selections of modules whose submodules
    are flattened into them before technology mapping (components a block is built from, which
    would otherwise cost LUTs at a boundary Yosys does not optimise across). ``xilinx_sources``:
    the Verilog for the Xilinx estimate when ``sources`` hold the family's primitives (default:
    ``sources``). Place and route is skipped when ``pnr`` is false or when
    Yosys' counts already overflow the device. Writes ``report.json`` and ``report.txt``; does
    *not* raise on overflow (call :func:`hw.fpga.report.check_fit`). Raises :class:`EIEError`
    when a tool fails on the design.
    """
    family = family_of(device)
    dev = family.DEVICES[device]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for stale in ("report.json", "report.txt", "nextpnr_report.json"):
        (out / stale).unlink(missing_ok=True)
    srcs = [Path(s).resolve() for s in sources]
    for s in srcs:
        if not s.is_file():
            raise EIEError(f"no Verilog source {s}")
    cwd = out.resolve()
    constraint_file, target = family.constraint(lpf, freq_mhz, out)
    wall: dict[str, float] = dict(extra_wall or {})

    # 1. Yosys, hierarchy kept for the per-module table, then flattened.
    step = f"yosys_{family.NAME}"
    inline_cmds = "".join(f"flatten {sel}; " for sel in inline)
    if inline_cmds:
        inline_cmds = f"proc; {inline_cmds}hierarchy -top {top}; "
    script = (f"{family.read_primitives()}; {yosys_read(srcs, cwd)}; "
              f"hierarchy -check -top {top}; {inline_cmds}"
              f"{family.synth_script(top)}; "
              f"tee -q -o stat_hier.json stat -json; "
              f"flatten -noscopeinfo; opt_clean -purge; "
              f"tee -q -o stat.json stat -json; "
              f"write_json netlist.json")
    wall[step] = run_tool("yosys", ["-p", script], cwd, out / f"{step}.log", nice)
    stat_hier = json.loads((out / "stat_hier.json").read_text())
    flat_cells = module_cells(json.loads((out / "stat.json").read_text())).get(top, {})
    glue, modules = hierarchy_costs(stat_hier, top, family.resources)
    used = family.resources(flat_cells)
    report = SynthReport(top=top, sources=[repo_relative(s) for s in srcs], device=dev,
                         lpf=repo_relative(constraint_file), target_mhz=target, resources=used,
                         resources_from="yosys", yosys_cells=flat_cells, glue=glue,
                         modules=modules,
                         blocks=block_costs(stat_hier, top, blocks or {}, family.resources),
                         wall_s=wall, config=config)
    report.overflow = family.overflow(used, flat_cells, dev)

    # 2. Place and route.
    if pnr and report.fits:
        family.place_and_route(report, constraint_file, out, seed=seed, router=router, nice=nice)

    # 3. Xilinx estimate.
    if xilinx:
        xsrcs = [Path(s).resolve() for s in xilinx_sources] if xilinx_sources else srcs
        report.xilinx_cells, wall["yosys_xilinx"] = xilinx_estimate(xsrcs, top, out, nice)
        report.xilinx = xilinx_resources(report.xilinx_cells)

    wall["total"] = sum(v for k, v in wall.items() if k != "total")
    write_report(report, out)
    return report


def _synthesize_text(text: str, top: str, out: Path, t0: float, **kwargs) -> SynthReport:
    """Write ``text`` to ``<out>/<top>.v`` and run :func:`synthesize` on it; the time since
    ``t0`` is the report's ``verilog`` step."""
    atomic_write_text(out / f"{top}.v", text)
    extra = {"verilog": time.monotonic() - t0, **kwargs.pop("extra_wall", {})}
    return synthesize([out / f"{top}.v"], top, out, extra_wall=extra, **kwargs)


def synthesize_component(component, top: str, out_dir: str | Path, **kwargs) -> SynthReport:
    """Convert an Amaranth component to ``<out_dir>/<top>.v`` and run :func:`synthesize`."""
    from amaranth.back import verilog

    t0 = time.monotonic()
    return _synthesize_text(verilog.convert(component, name=top), top, Path(out_dir), t0, **kwargs)


def eie_blocks(top: str, pe_module: str | None = None) -> dict[str, str]:
    """Block patterns of the generated EIE: the PE (``pe_module``, emitted once by
    :mod:`hw.verilog`; ``<top>.pe<k>`` when the hierarchy is converted whole; ``<top>_pe<k>``
    in `eie rom` builds), the LNZD tree and the central control unit (``<top>.lnzd`` /
    ``<top>.ccu``, the submodule names of :class:`hw.top.EIE`)."""
    t = re.escape(top)
    pes = [rf"{t}\.pe\d+", rf"{t}_pe\d+"] + ([re.escape(pe_module)] if pe_module else [])
    return {"PE": rf"^({'|'.join(pes)})(\.|$)", "LNZD": rf"^{t}\.lnzd(\.|$)",
            "CCU": rf"^{t}\.ccu(\.|$)"}


def eie_inline(top: str, pe_module: str | None = None) -> list[str]:
    """The PE's blocks (the paper's boxes: ``act_rw``, ``arith``, ...) as Yosys selections:
    the components each is built from (``ActivationRW``'s ``WriteBack`` and ``NonZeroList``)
    are flattened into it, so the per-block table stays at the paper's boxes and no LUTs are
    lost at boundaries inside a box."""
    pes = [f"{pe_module}.*"] if pe_module else []
    return pes + [f"{top}.pe*.*", f"{top}_pe*.*"]


def synthesize_config(config, out_dir: str | Path, *, name: str = "eie", image=None,
                      **kwargs) -> SynthReport:
    """Generate the EIE Verilog for ``config`` (:func:`hw.verilog.generate`; with ``image``,
    the ROM build) into ``<out_dir>/<name>.v`` and run :func:`synthesize` on it."""
    from hw.verilog import generate

    t0 = time.monotonic()
    g = generate(config, name, image, platform=platform_of(kwargs.get("device", DEFAULT_DEVICE)))
    if kwargs.get("xilinx"):  # the estimate reads Verilog without the family's primitives
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        generic = out / f"{g.top}.generic.v"
        atomic_write_text(generic, generate(config, name, image).text)
        kwargs["xilinx_sources"] = [generic]
    return _synthesize_text(g.text, g.top, Path(out_dir), t0,
                            blocks=eie_blocks(g.top, g.pe_module), config=config.to_dict(),
                            inline=eie_inline(g.top, g.pe_module), **kwargs)
