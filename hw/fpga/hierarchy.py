"""Per-module and per-block cost of a synthesised hierarchy, from Yosys' ``stat -json``.

The family's technology mapping keeps the hierarchy (``synth_ecp5 -noflatten``), so a module
instantiated N times (the EIE PE) is counted once and multiplied; docs/fpga.md, "Reading the
report", says what the per-block table means. ``resources`` is the family's cell counting
(:func:`hw.fpga.ecp5.resources`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sw.errors import EIEError

from .tools import module_cells

Resources = Callable[[Mapping[str, int]], dict[str, int]]


def _modules(stat: dict, top: str) -> dict[str, dict[str, int]]:
    mods = module_cells(stat)
    if top not in mods:
        raise EIEError(f"top module {top!r} not in the synthesised design ({', '.join(sorted(mods))})")
    return mods


@dataclass
class ModuleCost:
    """One module of the synthesised hierarchy: how often it occurs and what one copy costs."""

    module: str
    instances: int  # copies in the whole design (through every level of the hierarchy)
    per_instance: dict[str, int]  # resources of one copy, its submodules included
    depth: int  # 1 = instantiated by the top, 2 = by one of those, ...
    submodules: dict[str, int]  # modules it instantiates directly, with their counts

    @property
    def total(self) -> dict[str, int]:
        return {k: v * self.instances for k, v in self.per_instance.items()}


def hierarchy_costs(stat: dict, top: str, resources: Resources) -> tuple[dict[str, int], list[ModuleCost]]:
    """Recursive per-module cost from a hierarchical ``stat -json``.

    Returns the top's own resources (glue logic outside any submodule) and one
    :class:`ModuleCost` per module below the top, outermost first.
    """
    mods = _modules(stat, top)
    memo: dict[str, dict[str, int]] = {}

    def own(m: str) -> dict[str, int]:
        return {c: n for c, n in mods[m].items() if c not in mods}

    def cost(m: str) -> dict[str, int]:
        if m not in memo:
            r = dict(resources(own(m)))
            for c, n in mods[m].items():
                if c in mods:
                    for k, v in cost(c).items():
                        r[k] = r.get(k, 0) + n * v
            memo[m] = r
        return memo[m]

    count: dict[str, int] = {}
    depth: dict[str, int] = {}
    order: list[str] = []

    def walk(m: str, mult: int, d: int) -> None:
        for c, n in mods[m].items():
            if c in mods:
                if c not in count:
                    order.append(c)
                    depth[c] = d
                count[c] = count.get(c, 0) + mult * n
                walk(c, mult * n, d + 1)

    walk(top, 1, 1)
    return dict(resources(own(top))), [
        ModuleCost(m, count[m], cost(m), depth[m], {c: n for c, n in mods[m].items() if c in mods})
        for m in order]


def block_costs(stat: dict, top: str, patterns: Mapping[str, str],
                resources: Resources) -> dict[str, dict]:
    """Per block label: instances, and resources in total and per instance.

    A module whose name matches a label's pattern (``re.search``; the first label that matches
    wins) starts a block. Its own cells and those of its unlabelled submodules belong to that
    block; a submodule with another label starts a block of its own (an LNZD tree inside the
    central control counts as LNZD, not as CCU), one with the same label stays inside (a PE's
    submodules named after the PE). Cells outside every block -- the top's glue and unlabelled
    modules -- are reported as ``other``. The blocks add up to the whole (unflattened) design.
    """
    mods = _modules(stat, top)
    label = {m: next((lb for lb, pat in patterns.items() if re.search(pat, m)), None) for m in mods}
    totals: dict[str, dict[str, int]] = {}
    inst: dict[str, int] = {}
    roots: dict[str, list[str]] = {}  # block -> the modules that start it

    def walk(m: str, block: str, mult: int) -> None:
        own = resources({c: n for c, n in mods[m].items() if c not in mods})
        t = totals.setdefault(block, dict.fromkeys(own, 0))
        for k, v in own.items():
            t[k] = t.get(k, 0) + mult * v
        for c, n in mods[m].items():
            if c in mods:
                sub = label[c] or block
                if sub != block:
                    inst[sub] = inst.get(sub, 0) + mult * n
                    if c not in roots.setdefault(sub, []):
                        roots[sub].append(c)
                walk(c, sub, mult * n)

    walk(top, label[top] or "other", 1)
    inst.setdefault(label[top] or "other", 1)
    order = [b for b in [*patterns, "other"] if b in totals]
    return {b: {"instances": inst[b], "modules": roots.get(b, [top]), "total": totals[b],
                "per_instance": {k: v / inst[b] for k, v in totals[b].items()}} for b in order}
