"""Relative-index sparse columns: the one encoder/decoder of (v, z) entries with padding.

Deep Compression stores a pruned matrix column by column (CSC) with each non-zero's *distance*
to the previous one instead of its row; EIE's PEs store the same per PE. A gap that does not
fit ``index_bits`` is bridged by a padding entry (code 0, z = max_gap). Used by the compressed
model file (whole columns) and by the packer (each PE's rows), see docs/format.md.
"""

from __future__ import annotations

import numpy as np


def encode_columns(codes: np.ndarray, max_gap: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Encode a 2-D code matrix (rows x cols, 0 = zero) column by column.

    Returns ``(v, z, colptr)``: entry codes, relative indices (zeros skipped before the entry)
    and column pointers (``len = cols + 1``; column c is ``[colptr[c], colptr[c+1])``), padding
    entries included. Padding is emitted only before a real entry.
    """
    codes = np.asarray(codes)
    if codes.ndim != 2:
        raise ValueError("encode_columns needs a 2-D matrix")
    n_rows, n_cols = codes.shape
    flat_t = np.ascontiguousarray(codes.T).reshape(-1)  # column-major order of the entries
    pos = np.flatnonzero(flat_t)
    cols, rows = np.divmod(pos, n_rows)
    span = max_gap + 1
    vtype = np.uint8 if codes.dtype.itemsize == 1 or (codes.size and codes.max() < 256) else codes.dtype
    if rows.size == 0:
        return (np.zeros(0, vtype), np.zeros(0, np.uint8), np.zeros(n_cols + 1, np.int64))
    prev = np.empty_like(rows)
    prev[0] = -1
    prev[1:] = rows[:-1]
    prev[1:][cols[1:] != cols[:-1]] = -1  # the first entry of a column counts from row -1
    gap = rows - prev - 1
    n_pad = gap // span
    end = np.cumsum(n_pad + 1)  # exclusive end of each non-zero's group (its padding, itself)
    total = int(end[-1])
    v = np.zeros(total, vtype)
    z = np.full(total, max_gap, np.uint8 if max_gap < 256 else np.int64)
    v[end - 1] = flat_t[pos]
    z[end - 1] = gap - n_pad * span
    # column c ends where the groups of its non-zeros end
    last_of_col = np.searchsorted(cols, np.arange(n_cols), side="right")
    colptr = np.zeros(n_cols + 1, np.int64)
    colptr[1:] = np.concatenate(([0], end))[last_of_col]
    return v, z, colptr


def decode_columns(v: np.ndarray, z: np.ndarray, colptr: np.ndarray, n_rows: int) -> np.ndarray:
    """Inverse of :func:`encode_columns`: back to the dense code matrix (rows x cols),
    in the dtype of ``v``."""
    v = np.asarray(v)
    z = np.asarray(z).astype(np.int64)
    colptr = np.asarray(colptr, dtype=np.int64)
    n_cols = colptr.size - 1
    out = np.zeros((n_rows, n_cols), v.dtype)
    if v.size == 0:
        return out
    col = np.repeat(np.arange(n_cols), np.diff(colptr))
    step = z + 1
    csum = np.cumsum(step)
    # running sum restarts at every column: subtract the sum before the column's first entry
    start = np.zeros(n_cols, np.int64)
    nonempty = np.diff(colptr) > 0
    first_idx = colptr[:-1][nonempty]
    start[nonempty] = csum[first_idx] - step[first_idx]
    row = csum - start[col] - 1
    real = v != 0
    if np.any(row[real] >= n_rows):
        raise ValueError("relative indices run past the last row")
    out[row[real], col[real]] = v[real]
    return out
