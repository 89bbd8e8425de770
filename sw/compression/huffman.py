"""Canonical, length-limited Huffman coding over small integer alphabets (Deep Compression, Sec. 4).

Deep Compression Huffman-codes the quantized weight indices and the relative (sparse) indices
separately, offline; the skewed distributions of both save 20-30 % more storage. Here a code is
described by its code-length table alone (``lengths[s]`` bits for symbol ``s``, 0 = unused):
codes are *canonical* (DEFLATE, RFC 1951 Sec. 3.2.2): sorted by (length, symbol), each code is
the previous one plus one, shifted left when the length grows. So a file stores only lengths.

Bitstreams are MSB-first: the first code's first bit is bit 7 of byte 0.

Both directions are vectorised NumPy. Encoding places every code into 32-bit words with two
``bincount`` passes. Decoding is table-driven: the bits at *every* bit position are looked up in
a table of (code, length) (direct over the first 16 bits; longer codes by a search over the
canonical code intervals), which gives, for each position, where the next code would start if
one started there. The true code starts are the orbit of position 0 under that map, found
chunk-parallel by exploiting Huffman codes' self-synchronisation (:func:`_code_starts`), or by
pointer doubling for codes that do not resynchronise. Then one more lookup gives the symbols.
"""

from __future__ import annotations

import heapq

import numpy as np

from sw.errors import DataError

MAX_LEN = 24  # longest code: the decoder reads a window from 4 bytes (MAX_LEN + 7 <= 32)
_TABLE_BITS = 16  # direct lookup table up to this many bits; longer codes use a canonical search
_CHUNK_BITS = 4096  # decoder's speculative chunks (see _code_starts)
_RESYNC_CODES = 64  # mean codes per chunk the decoder may follow one by one
_LONG = 255  # decode-table mark: the code is longer than the table's bits


def build_code_lengths(counts: np.ndarray, max_len: int = MAX_LEN) -> np.ndarray:
    """Huffman code lengths (uint8, one per symbol, 0 = unused) for symbol ``counts``.

    Lengths are capped at ``max_len`` with the JPEG procedure (ITU T.81 Annex K.3), which keeps
    the code complete. A single used symbol gets a 1-bit code; no used symbol gives all zeros.
    """
    counts = np.asarray(counts, dtype=np.int64)
    if counts.ndim != 1 or (counts.size and counts.min() < 0):
        raise ValueError("counts must be a 1-D array of non-negative integers")
    if not 1 <= max_len <= MAX_LEN:
        raise ValueError(f"max_len must be in 1..{MAX_LEN}")
    lengths = np.zeros(counts.size, np.uint8)
    used = np.flatnonzero(counts)
    if used.size == 0:
        return lengths
    if used.size == 1:
        lengths[used] = 1
        return lengths
    if used.size > (1 << max_len):
        raise ValueError(f"{used.size} symbols do not fit {max_len}-bit codes")

    # Huffman's algorithm on the used symbols: leaves 0..n-1, internal nodes n.. in creation order
    n = used.size
    parent = np.zeros(2 * n - 1, np.int64)
    heap = [(int(c), i) for i, c in enumerate(counts[used])]
    heapq.heapify(heap)
    node = n
    while len(heap) > 1:
        c1, a = heapq.heappop(heap)
        c2, b = heapq.heappop(heap)
        parent[a] = parent[b] = node
        heapq.heappush(heap, (c1 + c2, node))
        node += 1
    depth = np.zeros(2 * n - 1, np.int64)
    for i in range(2 * n - 3, -1, -1):  # a parent is always created after its children
        depth[i] = depth[parent[i]] + 1
    bl_count = np.bincount(depth[:n], minlength=max(int(depth[:n].max()), max_len) + 1)

    # JPEG Annex K.3: move pairs of the deepest leaves up until no code is longer than max_len
    for i in range(bl_count.size - 1, max_len, -1):
        while bl_count[i] > 0:
            j = i - 2
            while bl_count[j] == 0:
                j -= 1
            bl_count[i] -= 2
            bl_count[i - 1] += 1
            bl_count[j + 1] += 2
            bl_count[j] -= 1

    # shortest codes to the most frequent symbols (ties: smaller symbol first)
    order = used[np.lexsort((used, -counts[used]))]
    lengths[order] = np.repeat(np.arange(bl_count.size), bl_count)
    return lengths


def canonical_codes(lengths: np.ndarray) -> np.ndarray:
    """The canonical code (int64, right-aligned in ``lengths[s]`` bits) of every symbol."""
    lengths = _check_lengths(lengths)
    codes = np.zeros(lengths.size, np.int64)
    order, l_sorted = _canonical_order(lengths)
    if order.size == 0:
        return codes
    max_len = int(l_sorted[-1])
    # left-justified in max_len bits, the canonical codes are consecutive intervals from 0
    width = np.left_shift(1, max_len - l_sorted.astype(np.int64))
    start = np.concatenate(([0], np.cumsum(width)[:-1]))
    codes[order] = start >> (max_len - l_sorted)
    return codes


def encode(symbols: np.ndarray, lengths: np.ndarray) -> tuple[bytes, int]:
    """Encode ``symbols`` with the canonical code of ``lengths``: ``(bitstream, n_bits)``."""
    lengths = _check_lengths(lengths)
    symbols = np.asarray(symbols).ravel()
    if symbols.size == 0:
        return b"", 0
    if symbols.min() < 0 or symbols.max() >= lengths.size:
        raise ValueError(f"symbols out of range 0..{lengths.size - 1}")
    sym_len = lengths.astype(np.int64)[symbols]
    if sym_len.min() == 0:
        missing = int(symbols[np.argmin(sym_len)])
        raise ValueError(f"symbol {missing} has no code (length 0)")
    code = canonical_codes(lengths)[symbols]
    end = np.cumsum(sym_len)
    n_bits = int(end[-1])
    start = end - sym_len
    # each code (<= 24 bits) lands in one 32-bit big-endian word or straddles two: place it in
    # the 64 bits of its word and the next, then split
    word = start >> 5
    placed = code.astype(np.uint64) << (64 - (start & 31) - sym_len).astype(np.uint64)
    head = placed >> np.uint64(32)
    spill = placed & np.uint64(0xFFFFFFFF)
    n_words = (n_bits + 31) >> 5
    # codes never overlap, so summing the contributions of a word is OR-ing them; float64 sums
    # of values < 2**32 are exact
    words = np.bincount(word, weights=head, minlength=n_words)
    words += np.bincount(word + 1, weights=spill, minlength=n_words + 1)[:n_words]
    data = words.astype(np.uint64).astype(">u4").tobytes()
    return data[: (n_bits + 7) >> 3], n_bits


def decode(data: bytes, n_symbols: int, lengths: np.ndarray) -> np.ndarray:
    """Decode ``n_symbols`` symbols from the MSB-first ``data`` (inverse of :func:`encode`).

    Raises :class:`DataError` when the stream holds an invalid code or ends too early.
    """
    lengths = _check_lengths(lengths)
    out_dtype = np.min_scalar_type(max(lengths.size - 1, 0))
    if n_symbols < 0:
        raise ValueError("n_symbols must be >= 0")
    if n_symbols == 0:
        return np.zeros(0, out_dtype)
    order, l_sorted = _canonical_order(lengths)
    if order.size == 0:
        raise DataError("Huffman stream has symbols but the code table is empty")
    n_pos = 8 * len(data)
    if n_pos == 0:
        raise DataError("Huffman stream is truncated (no data)")
    table = _DecodeTable(l_sorted)

    # 32 bits from every byte on (4 bytes cover a max_len-bit window at any of its 8 bit offsets)
    b = np.frombuffer(bytes(data) + b"\0\0\0", np.uint8).astype(np.uint32)
    w32 = (b[:-3] << 24) | (b[1:-2] << 16) | (b[2:-1] << 8) | b[3:]

    # nxt[p]: where the next code starts if a code starts at bit p; bad (past the end) if no
    # valid code starts there or it runs past the data
    code_len = table.lengths_at(w32)
    bad = n_pos + 1
    idx_dtype = np.int32 if bad < 2**31 - 1 else np.int64
    nxt = np.arange(n_pos + 2, dtype=idx_dtype)
    nxt[:n_pos] += code_len
    nxt[np.flatnonzero(code_len == 0)] = bad
    nxt[n_pos:] = bad
    tail = nxt[max(n_pos - table.max_len, 0): n_pos]
    tail[tail > n_pos] = bad
    del code_len

    starts = _code_starts(nxt, n_pos)[:n_symbols]
    # the orbit of bit 0: each start is where the previous code ends, the last code is whole
    if (starts.size < n_symbols or starts[0] != 0 or nxt[starts[-1]] == bad
            or not np.array_equal(nxt[starts[:-1]], starts[1:])):
        raise DataError("Huffman stream is corrupt or truncated")
    return order[table.ranks_at(w32, starts)].astype(out_dtype)


def _code_starts(nxt: np.ndarray, n_pos: int) -> np.ndarray:
    """The bit positions where codes start: the orbit of 0 under ``nxt``.

    Following it one code at a time is sequential; instead every chunk of ``_CHUNK_BITS`` bits is
    decoded speculatively from its first bit, all chunks at once. Huffman codes resynchronise
    after a few codes, so the true path, entering a chunk a few bits in, soon lands on a
    speculative start; from there on the speculative starts are the true ones. Only those first
    few codes per chunk are followed one by one. Codes that do not resynchronise (e.g. all of one
    length that does not divide the chunk size) fall back to :func:`_code_starts_by_doubling`.
    """
    chunk_start = np.arange(0, n_pos, _CHUNK_BITS, dtype=nxt.dtype)
    chunk_end = np.minimum(chunk_start + _CHUNK_BITS, n_pos).astype(nxt.dtype)
    spec = np.zeros(n_pos + 2, bool)  # speculative code starts
    spec[chunk_start] = True
    cur = chunk_start.copy()
    while True:
        step = nxt[cur]
        inside = step < chunk_end
        if not inside.any():
            break
        spec[step[inside]] = True
        cur = np.where(inside, step, cur)
    spec_exit = nxt[cur]  # the first speculative start past each chunk

    entry = 0  # where the true path enters the chunk
    budget = _RESYNC_CODES * chunk_start.size  # codes followed one by one before giving up
    for c in range(chunk_start.size):
        lo, hi = int(chunk_start[c]), int(chunk_end[c])
        if entry >= n_pos:  # the path ended (or hit an invalid code): nothing more is a start
            spec[lo:] = False
            break
        p, true_starts = entry, []
        while p < hi and not spec[p]:
            true_starts.append(p)
            p = int(nxt[p])
        budget -= len(true_starts)
        if budget < 0:
            return _code_starts_by_doubling(nxt, n_pos)
        merged = p < hi
        spec[lo: p if merged else hi] = False
        spec[true_starts] = True
        entry = int(spec_exit[c]) if merged else p
    return np.flatnonzero(spec[:n_pos])


def _code_starts_by_doubling(nxt: np.ndarray, n_pos: int) -> np.ndarray:
    """The orbit of 0 under ``nxt`` by pointer doubling: every 32nd start via ``nxt**32`` (five
    gathers over the stream), then the 31 starts in between for all of them at once."""
    jump = nxt
    for _ in range(5):
        jump = jump[jump]
    anchors = [0]
    while anchors[-1] < n_pos:
        anchors.append(int(jump[anchors[-1]]))
    cur = np.array(anchors[:-1], nxt.dtype)
    starts = np.empty((32, cur.size), nxt.dtype)
    for t in range(32):
        starts[t] = cur
        cur = nxt[cur]
    starts = starts.T.ravel()
    return starts[starts < n_pos]


class _DecodeTable:
    """Canonical-code lookup: a direct table over the first ``T = min(max_len, 16)`` bits of a
    window; the rare windows that start a longer code are resolved by a search over the code
    intervals (left-justified canonical codes are consecutive intervals of window values)."""

    def __init__(self, l_sorted: np.ndarray) -> None:
        self.max_len = int(l_sorted[-1])
        self.t = min(self.max_len, _TABLE_BITS)
        self.l_sorted = l_sorted.astype(np.uint8)
        width = np.left_shift(np.int64(1), self.max_len - l_sorted.astype(np.int64))
        self.start = np.concatenate(([0], np.cumsum(width)))  # interval of each code; end
        prefix = np.arange(1 << self.t, dtype=np.int64) << (self.max_len - self.t)
        rank = np.searchsorted(self.start, prefix, side="right") - 1
        valid = prefix < self.start[-1]
        rank[~valid] = 0
        self.rank = rank.astype(np.int32)
        # code length per prefix; _LONG: a code longer than t bits starts with this prefix
        self.length = np.where(valid, self.l_sorted[rank], 0).astype(np.uint8)
        self.length[valid & (self.l_sorted[rank] > self.t)] = _LONG

    def _windows(self, w32: np.ndarray, pos: np.ndarray, bits: int) -> np.ndarray:
        """The ``bits``-bit window at bit positions ``pos``."""
        shift = (32 - bits - (pos & 7)).astype(np.uint32)
        return (w32[pos >> 3] >> shift) & np.uint32((1 << bits) - 1)

    def lengths_at(self, w32: np.ndarray) -> np.ndarray:
        """Code length at every bit position of the stream (uint8, 0 = invalid)."""
        shifts = (32 - self.t - np.arange(8)).astype(np.uint32)
        top = ((w32[:, None] >> shifts) & np.uint32((1 << self.t) - 1)).ravel()
        code_len = self.length[top]
        if self.max_len > self.t:
            long = np.flatnonzero(code_len == _LONG)
            code_len[long] = self._search(self._windows(w32, long, self.max_len), lengths=True)
        return code_len

    def ranks_at(self, w32: np.ndarray, pos: np.ndarray) -> np.ndarray:
        """Canonical rank of the (valid) code starting at each of the bit positions ``pos``."""
        top = self._windows(w32, pos, self.t)
        rank = self.rank[top]
        if self.max_len > self.t:
            long = np.flatnonzero(self.length[top] == _LONG)
            rank[long] = self._search(self._windows(w32, pos[long], self.max_len))
        return rank

    def _search(self, window: np.ndarray, lengths: bool = False) -> np.ndarray:
        rank = np.searchsorted(self.start, window, side="right") - 1
        valid = window < self.start[-1]
        if lengths:
            return np.where(valid, self.l_sorted[np.minimum(rank, self.l_sorted.size - 1)], 0)
        return rank


def coded_bits(counts: np.ndarray, lengths: np.ndarray) -> int:
    """Bits needed to code symbols with these ``counts`` under code ``lengths``."""
    counts = np.asarray(counts, np.int64)
    return int(np.dot(counts, np.asarray(lengths, np.int64)[: counts.size]))


def _check_lengths(lengths: np.ndarray) -> np.ndarray:
    lengths = np.asarray(lengths)
    if lengths.ndim != 1:
        raise ValueError("code lengths must be a 1-D array")
    if lengths.size and (lengths.min() < 0 or lengths.max() > MAX_LEN):
        raise DataError(f"Huffman code lengths must be in 0..{MAX_LEN}")
    lengths = lengths.astype(np.uint8)
    used = lengths[lengths > 0].astype(np.int64)
    if used.size and np.sum(np.ldexp(1.0, -used)) > 1.0:  # Kraft: exact for lengths <= 24
        raise DataError("Huffman code lengths do not form a prefix code (Kraft sum > 1)")
    return lengths


def _canonical_order(lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Used symbols sorted by (length, symbol), and their lengths."""
    used = np.flatnonzero(lengths)
    order = used[np.lexsort((used, lengths[used]))]
    return order, lengths[order]
