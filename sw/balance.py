"""Load-balance-aware row assignment (beyond EIE).

EIE interleaves rows over the PEs (row ``i`` -> PE ``i mod N``, Han et al. 2016, Section III-B):
a PE that happens to own denser rows has more entries per column and the others wait for it
(the paper's Section VI-C: ~10% above the balanced bound). Here rows may be *permuted* before
interleaving: logical row ``i`` becomes physical row ``perm[i]``, which lives in PE
``perm[i] mod N`` at local row ``perm[i] div N`` (docs/format.md, "Work split").

The permutation must be a bijection onto ``0..n_out-1``, so every PE keeps exactly its
``ceil``/``floor(n_out / N)`` rows. The assignment is LPT (longest processing time first) with
equal cardinalities, done in rounds of N rows: rows sorted by decreasing work, round ``r`` hands
its N rows (heaviest first) to the PEs in increasing order of the load they carry so far, and
becomes local row ``r`` of each PE. The last, partial round (``n_out mod N`` lightest rows) can
only go to PEs ``0..(n_out mod N)-1``, which are the ones owning a local row there. A side
effect: inside each PE rows come in decreasing density, so zero runs collect at the bottom of
the columns, where they need no padding entries (padding is only written before a real entry).
"""

from __future__ import annotations

import numpy as np


def balanced_permutation(row_work: np.ndarray, n_pe: int) -> np.ndarray:
    """A bijection logical row -> physical row equalising the summed ``row_work`` per PE.

    ``row_work`` is the expected work of each row (its non-zero count). Returns ``perm`` with
    ``perm[i]`` the physical row of logical row ``i``.
    """
    work = np.asarray(row_work, dtype=np.float64).ravel()
    n = work.size
    perm = np.empty(n, np.int64)
    order = np.argsort(-work, kind="stable")  # heaviest first, ties in logical order
    load = np.zeros(n_pe, np.float64)
    pes = np.arange(n_pe)
    for r, start in enumerate(range(0, n, n_pe)):  # one round per local row (<= act_depth)
        rows = order[start:start + n_pe]
        eligible = pes[: rows.size]  # a partial last round: only PEs 0..rem-1 own that local row
        target = eligible[np.argsort(load[eligible], kind="stable")]
        perm[rows] = r * n_pe + target
        load[target] += work[rows]
    return perm


def per_pe_work(row_work: np.ndarray, n_pe: int, perm: np.ndarray | None = None) -> np.ndarray:
    """Summed ``row_work`` of every PE under ``perm`` (identity: plain interleaving)."""
    work = np.asarray(row_work, dtype=np.float64).ravel()
    phys = np.arange(work.size) if perm is None else np.asarray(perm)
    return np.bincount(phys % n_pe, weights=work, minlength=n_pe)


def inverse_permutation(perm: np.ndarray) -> np.ndarray:
    """``inv`` with ``inv[perm[i]] = i`` (physical row -> logical row)."""
    perm = np.asarray(perm, dtype=np.int64)
    inv = np.empty_like(perm)
    inv[perm] = np.arange(perm.size)
    return inv
