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

Given the columns' length and ``max_gap``, the rounds are then reordered (the same local-row
order in every PE, so each PE's set of rows and the LPT balance are unchanged) to minimise the
expected padding entries: a run of ``max_gap + 1`` zero rows followed by a non-zero costs one
(docs/format.md). Under a model of independent rows with the rounds' mean densities, a local
search over swaps of two local rows; the optimum puts a dense row at local row ``max_gap``
(ending the first window), dense rows near the next window boundaries and the sparsest rows at
the bottom. On the synthetic AlexNet FC layers this cuts padding by ~15% and the cycles ~1%.
The search is cubic in the local rows, so it is done for up to ``MAX_SEARCH_ROWS`` of them.
"""

from __future__ import annotations

import numpy as np

MAX_SEARCH_ROWS = 64  # local rows up to which the padding-aware order is searched (~0.3 s)


def balanced_permutation(row_work: np.ndarray, n_pe: int, n_cols: int | None = None,
                         max_gap: int | None = None) -> np.ndarray:
    """A bijection logical row -> physical row equalising the summed ``row_work`` per PE.

    ``row_work`` is the expected work of each row (its non-zero count). With ``n_cols`` (the
    columns ``row_work`` counts over) and ``max_gap`` (the largest relative index), the local
    rows are also ordered to minimise padding entries (:func:`padding_row_order`). Returns
    ``perm`` with ``perm[i]`` the physical row of logical row ``i``.
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
    full = n // n_pe  # complete rounds; a partial last round must stay at the last local row
    if n_cols is None or max_gap is None or n_cols <= 0 or full <= max_gap + 1:
        return perm  # no local row is more than max_gap below the top: no padding possible
    if full > MAX_SEARCH_ROWS:
        return perm  # the swap search is cubic in the rows: keep decreasing density
    profile = np.sort(work)[::-1][: full * n_pe].reshape(full, n_pe).mean(axis=1) / n_cols
    local = np.arange(-(-n // n_pe))  # round -> local row
    local[padding_row_order(profile, max_gap)] = np.arange(full)
    rnd, pe = np.divmod(perm, n_pe)
    return local[rnd] * n_pe + pe


def expected_padding(density: np.ndarray, max_gap: int) -> np.ndarray:
    """Expected padding entries of one column of rows with non-zero probabilities ``density``
    (last axis, in local-row order; independent rows). A non-zero at row ``r`` is preceded by
    ``floor(gap / S)`` padding entries (``S = max_gap + 1``), i.e. one for each ``k >= 1``
    with rows ``r - kS .. r - 1`` all zero."""
    p = np.clip(np.asarray(density, dtype=np.float64), 0.0, 1.0 - 1e-12)
    span, r_total = max_gap + 1, p.shape[-1]
    log_zero = np.cumsum(np.log1p(-p), axis=-1)
    cz = np.concatenate([np.zeros(p.shape[:-1] + (1,)), log_zero], axis=-1)  # cz[i] = sum[:i]
    out = np.zeros(p.shape[:-1])
    for k in range(1, (r_total - 1) // span + 1):
        r = np.arange(k * span, r_total)
        out = out + (p[..., r] * np.exp(cz[..., r] - cz[..., r - k * span])).sum(axis=-1)
    return out


def padding_row_order(density: np.ndarray, max_gap: int, max_passes: int = 500) -> np.ndarray:
    """An order of rows (``order[position] = row``) with low :func:`expected_padding`.

    Steepest descent over swaps of two positions from decreasing density; every pass scores
    all ``R (R - 1) / 2`` swaps at once (R = 64: ~2,000 x 64, a few ms)."""
    p = np.asarray(density, dtype=np.float64).ravel()
    order = np.argsort(-p, kind="stable")
    if p.size <= max_gap + 1:
        return order
    a, b = np.triu_indices(p.size, 1)
    swaps = np.arange(a.size)
    cost = float(expected_padding(p[order], max_gap))
    for _ in range(max_passes):
        cand = np.broadcast_to(order, (a.size, p.size)).copy()
        cand[swaps, a], cand[swaps, b] = order[b], order[a]
        costs = expected_padding(p[cand], max_gap)
        best = int(np.argmin(costs))
        if costs[best] >= cost - 1e-12:
            break
        cost, order = float(costs[best]), cand[best]
    return order


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
