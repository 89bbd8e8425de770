"""The generated EIE Verilog as a simulation model: generate once, build once, reuse.

:func:`eie_design` turns an :class:`sw.eie.config.EIEConfig` into a built cocotb :class:`Design`:
the Verilog comes from :func:`hw.verilog.generate` (cached under ``build/sim/rtl`` by a hash of
the configuration and of the generator's sources, so a changed ``hw/`` file regenerates it) and
the simulator build is cached by :func:`sim.runner.build` (by a hash of the Verilog).
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path

from sw.eie.config import EIEConfig
from sw.fsutil import atomic_write_text

from .runner import BUILD, REPO, Design, build

RTL = BUILD / "rtl"
TOP = "eie"  # the top module's name in the generated Verilog


def _generator_hash(config: EIEConfig) -> str:
    """Hash of everything the generated Verilog depends on."""
    h = hashlib.sha256(json.dumps(config.to_dict(), sort_keys=True).encode())
    for src in sorted((REPO / "hw").glob("*.py")) + [REPO / "sw" / "eie" / "config.py"]:
        h.update(src.name.encode())
        h.update(src.read_bytes())
    return h.hexdigest()[:16]


def verilog_for(config: EIEConfig, log=None) -> Path:
    """The Verilog of ``config`` (generated on first use, then reused)."""
    path = RTL / f"{config.name}-n{config.n_pe}-d{config.queue_depth}-{_generator_hash(config)}.v"
    if not path.exists():
        from hw.verilog import generate  # Amaranth is imported only when needed

        t0 = time.perf_counter()
        text = generate(config, name=TOP).text
        atomic_write_text(path, text)
        if log:
            log(f"generated {path} ({len(text) / 1e3:.0f} kB, "
                f"{time.perf_counter() - t0:.1f} s)")
    return path


def eie_design(config: EIEConfig, sim: str | None = None, waves: bool | None = None,
               log=None) -> Design:
    """A built simulation model of the EIE for ``config`` (Verilator by default; ``SIM``)."""
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    src = verilog_for(config, log)
    t0 = time.perf_counter()
    design = build([src], TOP, sim=sim, waves=waves)
    if design.fresh:
        log(f"built {design.sim} model of {config.name} (N={config.n_pe}, depth "
            f"{config.queue_depth}) in {time.perf_counter() - t0:.0f} s: {design.build_dir}")
    return design
