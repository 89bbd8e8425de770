"""The packer: quantized FC layers -> EIE's per-PE memory images (docs/format.md).

Han et al., EIE (ISCA 2016), Section III-B/IV: rows are interleaved over N PEs (physical row
``p`` -> PE ``p mod N``, local row ``p div N``); each PE stores its slice column by column as
``(v, z)`` entries (4-bit codebook index, 4-bit count of skipped zero rows, padding entries
``v = 0, z = 15`` bridging longer gaps), 8 entries per 64-bit sparse-matrix word, and a pointer
array with one extra entry per layer, split over an even and an odd bank. A network's layers
sit side by side in every PE's memories at per-layer start addresses; a layer table (held by
the central control unit) gives each layer's sizes, addresses, codebook scale and ReLU flag.

Encoding uses :func:`sw.sparse.encode_columns` (the project's one (v, z) encoder) once per
layer on a PE-major view of the code matrix, whose columns are ``(PE k, column j)`` pairs, so
packing is a handful of vectorised passes over the layer. Everything that does not fit the
configured memories is refused with :class:`~sw.errors.FitError`, naming the memory, the size
needed and the size available; nothing is ever truncated.

Decoding (:func:`decode_layer`) reads the images back -- pointers, then sparse-matrix words --
and is what the golden model, the unpacker and the cycle model consume.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sw.eie.balance import balanced_permutation, inverse_permutation
from sw.eie.config import EIEConfig
from sw.eie.fixedpoint import codebook_integers, quantize_codebook, to_fixed
from sw.errors import DataError, FitError
from sw.qlayer import QuantizedLayer
from sw.sparse import encode_columns


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@dataclass
class LayerDesc:
    """One entry of the layer table plus where the layer sits in every PE's memories."""

    name: str
    n_in: int
    n_out: int
    ptr_base: int  # first pointer address (same in every PE)
    bias_base: int  # first bias address (same in every PE)
    w_frac: int  # fraction bits of the codebook integers
    relu: bool
    in_frac: int  # fraction bits of the layer's input activations
    out_frac: int  # fraction bits of its outputs (and biases): the next layer's in_frac
    codebook_float: np.ndarray  # float32[codebook_size], the trained centroids ([0] = 0)
    codebook_int: np.ndarray  # int64[codebook_size], act_bits two's complement, w_frac fraction bits
    spmat_base: np.ndarray  # int64[N]: word-aligned entry address of the layer's first entry per PE
    n_entries: np.ndarray  # int64[N]: entries (padding included) of the layer per PE
    perm: np.ndarray | None  # logical output row -> physical row (None: identity)
    rows_per_pe: int  # ceil(n_out / N): local rows (accumulators, biases) per PE

    @property
    def n_ptrs(self) -> int:
        return self.n_in + 1

    @property
    def shift(self) -> int:
        """The layer table's output shift (docs/format.md "Activation formats")."""
        return self.w_frac + self.in_frac - self.out_frac


@dataclass
class NetworkImage:
    """All PEs' memory contents for a network, as the hardware holds them."""

    config: EIEConfig
    layers: list[LayerDesc]
    spmat: np.ndarray  # uint64 (N, words_used): sparse-matrix words
    ptr: np.ndarray  # int64 (N, ptrs_used): absolute entry addresses, by pointer address
    bias: np.ndarray  # int64 (N, bias_used): signed act_bits values, each layer's out_frac
    codebook: np.ndarray  # int64 (n_layers, codebook_size): signed codebook integers

    # -- activation formats (docs/format.md "Activation formats") ------------------------------
    @property
    def input_frac(self) -> int:
        return self.layers[0].in_frac

    def output_frac(self, layer_index: int = -1) -> int:
        return self.layers[layer_index].out_frac

    def quantize_input(self, x: np.ndarray) -> np.ndarray:
        """Host inputs (float) -> the first layer's integer activations."""
        return to_fixed(x, self.input_frac, self.config.act_bits)

    def dequantize_output(self, y: np.ndarray, layer_index: int = -1) -> np.ndarray:
        """A layer's integer outputs -> float64 values."""
        return np.asarray(y, dtype=np.float64) / 2.0 ** self.output_frac(layer_index)

    # -- sizes -----------------------------------------------------------------------------
    @property
    def words_used(self) -> int:
        return int(self.spmat.shape[1])

    @property
    def ptrs_used(self) -> int:
        return int(self.ptr.shape[1])

    @property
    def bias_used(self) -> int:
        return int(self.bias.shape[1])

    def words_per_pe(self) -> np.ndarray:
        """Sparse-matrix words each PE really uses (all layers)."""
        epw = self.config.entries_per_word
        used = np.zeros(self.config.n_pe, np.int64)
        for d in self.layers:
            used = np.maximum(used, (d.spmat_base + d.n_entries + epw - 1) // epw)
        return used

    def memory_usage(self) -> dict[str, dict]:
        """Per memory: used and available (in the memory's own unit) and the unit."""
        c = self.config
        acts = max([_ceil_div(n, c.n_pe) for d in self.layers for n in (d.n_in, d.n_out)] or [0])
        return {
            "spmat": {"used": int(self.words_per_pe().max(initial=0)), "available": c.spmat_words,
                      "unit": f"{c.spmat_word_bits}-bit words per PE"},
            "ptr": {"used": self.ptrs_used, "available": c.ptr_depth,
                    "unit": f"{c.ptr_bits}-bit pointers per PE (both banks)"},
            "act": {"used": acts, "available": c.act_depth,
                    "unit": f"{c.act_bits}-bit activations per PE per register file"},
            "bias": {"used": self.bias_used, "available": c.bias_depth,
                     "unit": f"{c.act_bits}-bit biases per PE"},
            "codebook": {"used": len(self.layers) * c.codebook_size,
                         "available": c.max_layers * c.codebook_size,
                         "unit": f"{c.act_bits}-bit codebook entries"},
            "layers": {"used": len(self.layers), "available": c.max_layers,
                       "unit": "layer-table entries"},
        }

    # -- memories as the RTL sees them --------------------------------------------------------
    def ptr_bank(self, bank: int) -> np.ndarray:
        """Pointer bank 0 (even addresses) or 1 (odd): (N, ceil(ptrs_used / 2)), bank address
        ``a >> 1`` for pointer address ``a``; the odd bank is zero-padded at the end."""
        if bank not in (0, 1):
            raise ValueError(f"pointer bank must be 0 or 1, got {bank}")
        half = _ceil_div(self.ptrs_used, 2)
        out = np.zeros((self.config.n_pe, half), np.int64)
        part = self.ptr[:, bank::2]
        out[:, : part.shape[1]] = part
        return out

    # -- vectors: logical <-> physical order, per-PE split -------------------------------------
    def in_perm(self, layer_index: int) -> np.ndarray | None:
        """Permutation of layer ``layer_index``'s inputs (the previous layer's rows)."""
        return None if layer_index == 0 else self.layers[layer_index - 1].perm

    def to_physical(self, layer_index: int, vec_logical: np.ndarray) -> np.ndarray:
        """Layer outputs (last axis) from logical to physical order."""
        vec = np.asarray(vec_logical)
        perm = self.layers[layer_index].perm
        if perm is None:
            return vec.copy()
        out = np.empty_like(vec)
        out[..., perm] = vec
        return out

    def to_logical(self, layer_index: int, vec_physical: np.ndarray) -> np.ndarray:
        """Layer outputs (last axis) from physical to logical order (the read-out)."""
        vec = np.asarray(vec_physical)
        perm = self.layers[layer_index].perm
        return vec.copy() if perm is None else vec[..., perm]

    def input_to_physical(self, vec: np.ndarray) -> np.ndarray:
        """Layer-0 inputs to physical order (identity: the first layer's columns are not
        permuted)."""
        return np.asarray(vec).copy()

    def pe_vector(self, vec_physical: np.ndarray) -> np.ndarray:
        """Split a physical vector (last axis) per PE: ``out[..., k, r] = vec[..., r*N + k]``,
        zero-padded to ``(N, ceil(n / N))`` -- the contents of the activation register files."""
        vec = np.asarray(vec_physical)
        n_pe = self.config.n_pe
        rows = _ceil_div(vec.shape[-1], n_pe)
        pad = np.zeros(vec.shape[:-1] + (rows * n_pe,), vec.dtype)
        pad[..., : vec.shape[-1]] = vec
        return np.swapaxes(pad.reshape(vec.shape[:-1] + (rows, n_pe)), -1, -2)

    def entries(self, pe: int, layer: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One PE's entries of one layer decoded from the images: ``(v, z, colptr)``, with
        ``colptr`` relative to the layer's first entry (as :func:`encode_columns` returns)."""
        d = self.layers[layer]
        p = self.ptr[pe, d.ptr_base: d.ptr_base + d.n_in + 1]
        v, z = _split_entries(_unpack_entries(self)[pe, p[0]: p[-1]], self.config)
        return v, z, p - p[0]


@dataclass
class LayerEntries:
    """Every entry of one layer, all PEs, in memory order (PE-major, then column)."""

    pe: np.ndarray  # int64 per entry
    col: np.ndarray  # physical input column j
    local_row: np.ndarray  # row inside the PE: running sum of (z + 1) - 1
    v: np.ndarray  # codebook index (0: padding)
    z: np.ndarray
    counts: np.ndarray  # (N, n_in) entries per PE per column (padding included)

    def physical_row(self, n_pe: int) -> np.ndarray:
        return self.local_row * n_pe + self.pe


def _unpack_entries(image: NetworkImage) -> np.ndarray:
    """Every PE's sparse-matrix memory as entries: (N, words_used * epw), entry address ``A`` at
    column ``A``. Entry ``A`` is in word ``A // epw`` at bits ``[eb * (A % epw), eb * (A % epw)
    + eb)`` (little-endian packing, docs/format.md)."""
    c = image.config
    epw, eb = c.entries_per_word, c.entry_bits
    words = np.ascontiguousarray(image.spmat, dtype="<u8")
    if eb == 8 and epw == 8:  # the paper's format: entries are the words' little-endian bytes
        return words.view(np.uint8)
    shifts = (np.arange(epw, dtype=np.uint64) * np.uint64(eb))
    e = (words[:, :, None] >> shifts) & np.uint64((1 << eb) - 1)
    return e.reshape(words.shape[0], -1).astype(np.uint16 if eb <= 16 else np.uint64)


def _split_entries(e: np.ndarray, config: EIEConfig) -> tuple[np.ndarray, np.ndarray]:
    """Entries -> (v, z): ``entry = (z << weight_bits) | v``."""
    wb = config.weight_bits
    return (e & ((1 << wb) - 1)).astype(np.int64), (e >> wb).astype(np.int64)


def decode_layer(image: NetworkImage, layer_index: int, columns: np.ndarray | None = None) -> LayerEntries:
    """Read one layer back from the pointer and sparse-matrix images, checking consistency.

    Walks, per PE and per column j (all columns, or the ascending ``columns`` only -- the
    hardware reads just the columns of non-zero inputs), the entries ``[P[j], P[j+1])`` as the
    PE's sparse-matrix read unit does. A corrupt image (pointers going backwards or outside
    the memory, rows past the layer) raises :class:`DataError`.
    """
    c = image.config
    d = image.layers[layer_index]
    n_pe, n_in = c.n_pe, d.n_in
    p = image.ptr[:, d.ptr_base: d.ptr_base + n_in + 1]
    if p.shape[1] != n_in + 1:
        raise DataError(f"layer {d.name}: pointer image too short for {n_in} columns")
    counts = np.diff(p, axis=1)
    if np.any(counts < 0):
        k, j = np.argwhere(counts < 0)[0]
        raise DataError(f"layer {d.name}: pointer of PE {k} column {j} goes backwards")
    if np.any(p[:, 0] < 0) or np.any(p[:, -1] > image.words_used * c.entries_per_word):
        raise DataError(f"layer {d.name}: pointers point outside the sparse-matrix image")
    mem = _unpack_entries(image)
    if columns is None:
        # a PE's columns are consecutive: its entries of the layer are addresses [P[0], P[n_in])
        raw = np.concatenate([mem[k, p[k, 0]: p[k, -1]] for k in range(n_pe)])
        sel = np.arange(n_in, dtype=np.int64)
        lens = counts
    else:
        sel = np.asarray(columns, dtype=np.int64)
        lens = counts[:, sel]
        lengths = lens.ravel()
        seg_start = np.cumsum(lengths) - lengths
        flat_start = (np.arange(n_pe)[:, None] * mem.shape[1] + p[:, sel]).ravel()
        addr = np.repeat(flat_start - seg_start, lengths) + np.arange(int(lengths.sum()))
        raw = mem.reshape(-1)[addr]
    v, z = _split_entries(raw, c)
    lengths = lens.ravel()  # segment (k, j) in PE-major order
    pe = np.repeat(np.arange(n_pe, dtype=np.int64), lens.sum(axis=1))
    col = np.repeat(np.tile(sel, n_pe), lengths)
    # row = running sum of (z + 1) over the column, minus 1; the sum restarts at every column
    csum = np.cumsum(z + 1)
    seg_start = np.cumsum(lengths) - lengths
    before = csum[np.maximum(seg_start - 1, 0)] if csum.size else np.zeros(lengths.size, np.int64)
    before[seg_start == 0] = 0  # steps taken before each segment starts
    local_row = csum - np.repeat(before, lengths) - 1
    rows_owned = (d.n_out - np.arange(n_pe) + n_pe - 1) // n_pe  # rows k, k+N, ... < n_out
    bad = (local_row >= d.rows_per_pe) | ((v != 0) & (local_row >= rows_owned[pe]))
    if np.any(bad):
        i = int(np.argmax(bad))
        raise DataError(f"layer {d.name}: PE {pe[i]} column {col[i]} has an entry past "
                        f"its last row (local row {local_row[i]})")
    return LayerEntries(pe, col, local_row, v, z, counts)


# -- packing ------------------------------------------------------------------------------------

def _check_layers(layers: list[QuantizedLayer], config: EIEConfig) -> None:
    c = config
    if not layers:
        raise FitError("no layers to pack")
    if len(layers) > c.max_layers:
        raise FitError(f"the network has {len(layers)} layers; the layer table holds "
                       f"max_layers = {c.max_layers} (config {c.name!r})")
    for i, q in enumerate(layers):
        if q.kind != "linear":
            raise FitError(f"layer {q.name} is a {q.kind} layer: EIE runs fully connected layers "
                           f"only (pack the FC part of the network)")
        if q.n_in < 1 or q.n_out < 1:
            raise FitError(f"layer {q.name} has an empty weight matrix {q.shape}")
        if i and q.n_in != layers[i - 1].n_out:
            raise FitError(f"layer {q.name} takes {q.n_in} inputs but layer {layers[i - 1].name} "
                           f"produces {layers[i - 1].n_out} outputs")
        if q.codebook.size > c.codebook_size:
            raise FitError(f"layer {q.name} has a {q.codebook.size}-entry ({q.bits}-bit) codebook; "
                           f"the {c.weight_bits}-bit weight index holds {c.codebook_size} codes")
        for what, n in (("inputs", q.n_in), ("outputs", q.n_out)):
            need = _ceil_div(n, c.n_pe)
            if need > c.act_depth:
                raise FitError(f"activation memory: layer {q.name}'s {n} {what} need {need} "
                               f"activations per PE, act_depth = {c.act_depth} "
                               f"(at most {c.max_vector} per vector on {c.n_pe} PEs)")
    ptrs = sum(q.n_in + 1 for q in layers)
    if ptrs > c.ptr_depth:
        detail = " + ".join(f"{q.name} {q.n_in + 1}" for q in layers)
        raise FitError(f"pointer memory: the network needs {ptrs} pointers per PE ({detail}), "
                       f"ptr_depth = {c.ptr_depth}")
    biases = sum(_ceil_div(q.n_out, c.n_pe) for q in layers)
    if biases > c.bias_depth:
        raise FitError(f"bias memory: the network needs {biases} biases per PE, "
                       f"bias_depth = {c.bias_depth}")


def _check_formats(layers: list[QuantizedLayer], config: EIEConfig,
                   formats: list[int] | None) -> list[int]:
    if formats is None:
        return [config.act_frac] * (len(layers) + 1)
    fracs = [int(f) for f in formats]
    if len(fracs) != len(layers) + 1:
        raise FitError(f"{len(fracs)} activation formats given for {len(layers)} layers "
                       f"(need {len(layers) + 1}: the input's, then each layer's output)")
    for i, f in enumerate(fracs):
        if not 0 <= f < config.act_bits:
            what = "the input" if i == 0 else f"layer {layers[i - 1].name}'s output"
            raise FitError(f"{what}: {f} fraction bits is outside 0..{config.act_bits - 1}")
    return fracs


def _codebook_for(q: QuantizedLayer, config: EIEConfig, in_frac: int, out_frac: int
                  ) -> tuple[np.ndarray, int]:
    """The layer's codebook integers and ``w_frac``, lowered until ``shift = w_frac + in_frac
    - out_frac`` fits the layer table (docs/format.md "Activation formats")."""
    c_int, w_frac = quantize_codebook(q.codebook, config, q.name)
    top = config.max_shift + out_frac - in_frac  # the largest w_frac the shift field allows
    if w_frac > top:
        c_int, w_frac = codebook_integers(q.codebook, config, max(top, 0)), max(top, 0)
    if w_frac + in_frac - out_frac < 0:
        raise FitError(f"layer {q.name}: output format {out_frac} fraction bits is finer than its "
                       f"products ({w_frac} codebook + {in_frac} input fraction bits)")
    return c_int, w_frac


def _pe_major(codes: np.ndarray, n_pe: int, rows: np.ndarray | None, cols: np.ndarray | None) -> np.ndarray:
    """The physical code matrix regrouped so that column ``k * n_in + j`` is PE k's column j.

    Returns an (R, N * n_in) view of an array that is contiguous in column-major order, so the
    encoder's column-major scan is a linear pass. ``rows``/``cols`` select the physical order
    (``physical[p] = logical[rows[p]]``).
    """
    n_out, n_in = codes.shape
    r = _ceil_div(n_out, n_pe)
    pad = np.zeros((r * n_pe, n_in), np.uint8)
    if rows is None and cols is None:
        pad[:n_out] = codes
    elif cols is None:
        np.take(codes, rows, axis=0, out=pad[:n_out])
    else:
        pad[:n_out] = codes[np.ix_(np.arange(n_out) if rows is None else rows, cols)]
    return np.ascontiguousarray(pad.reshape(r, n_pe * n_in).T).T


def pack_network(layers: list[QuantizedLayer], config: EIEConfig,
                 balance: bool = False, formats: list[int] | None = None) -> NetworkImage:
    """Pack a chain of quantized FC layers into per-PE memory images (docs/format.md).

    Each layer's ReLU flag is its own (:attr:`QuantizedLayer.relu`). ``formats`` are the
    activation formats ``[in_frac_0, out_frac_0, ..., out_frac_{L-1}]`` (fraction bits;
    :func:`sw.eie.formats.choose_formats` picks them from calibration data); default
    ``act_frac`` everywhere. With
    ``balance`` every layer's rows are assigned to PEs by :func:`sw.eie.balance.balanced_permutation`
    and the next layer's columns follow (the permutations are recorded in the layer table).
    """
    c = config
    n_pe, epw = c.n_pe, c.entries_per_word
    layers = list(layers)
    _check_layers(layers, c)
    fracs = _check_formats(layers, c, formats)

    encoded, perms, books = [], [], []
    prev_inv: np.ndarray | None = None  # physical input column -> logical column
    for q in layers:
        codes = q.matrix_indices()
        if codes.size and int(codes.max()) >= c.codebook_size:
            raise FitError(f"layer {q.name} uses code {int(codes.max())}; the {c.weight_bits}-bit "
                           f"weight index holds codes 0..{c.codebook_size - 1}")
        codes = codes.astype(np.uint8, copy=False)
        books.append(_codebook_for(q, c, fracs[len(books)], fracs[len(books) + 1]))
        perm = None
        if balance:
            perm = balanced_permutation(np.count_nonzero(codes, axis=1), n_pe,
                                        n_cols=codes.shape[1], max_gap=c.max_gap)
        inv = None if perm is None else inverse_permutation(perm)
        m = _pe_major(codes, n_pe, inv, prev_inv)
        v, z, colptr = encode_columns(m, c.max_gap)
        encoded.append((v, z, colptr))
        perms.append(perm)
        prev_inv = inv

    # -- sparse-matrix placement: each layer word-aligned after the previous one, per PE ------
    starts = [cp[np.arange(n_pe) * q.n_in] for q, (_, _, cp) in zip(layers, encoded, strict=True)]
    counts = [cp[(np.arange(n_pe) + 1) * q.n_in] - s
              for q, (_, _, cp), s in zip(layers, encoded, starts, strict=True)]
    words = np.array([(n + epw - 1) // epw for n in counts])  # (L, N)
    need = words.sum(axis=0)
    if need.max(initial=0) > c.spmat_words:
        k = int(np.argmax(need))
        detail = " + ".join(f"{q.name} {int(w)}" for q, w in zip(layers, words[:, k], strict=True))
        raise FitError(f"sparse-matrix memory: PE {k} needs {int(need[k])} words ({detail}), "
                       f"spmat_words = {c.spmat_words} ({c.spmat_entries} entries of "
                       f"{c.entry_bits} bits)")
    words_used = max(1, int(need.max(initial=0)))
    ptrs_used = sum(q.n_in + 1 for q in layers)
    bias_used = sum(_ceil_div(q.n_out, n_pe) for q in layers)

    entries = np.zeros((n_pe, words_used * epw), np.uint16)
    ptr = np.zeros((n_pe, ptrs_used), np.int64)
    bias = np.zeros((n_pe, bias_used), np.int64)
    codebook = np.zeros((len(layers), c.codebook_size), np.int64)
    descs: list[LayerDesc] = []
    word_base = np.zeros(n_pe, np.int64)
    ptr_base = bias_base = 0
    for li, q in enumerate(layers):
        v, z, colptr = encoded[li]
        spmat_base = word_base * epw
        # entries: global index g (PE-major) -> address spmat_base[k] + (g - start[k])
        k_of = np.repeat(np.arange(n_pe), counts[li])
        addr = spmat_base[k_of] + np.arange(v.size) - starts[li][k_of]
        entries[k_of, addr] = (z.astype(np.uint16) << c.weight_bits) | v
        # pointers: absolute entry addresses, n_in + 1 per PE
        idx = np.arange(n_pe)[:, None] * q.n_in + np.arange(q.n_in + 1)[None, :]
        ptr[:, ptr_base: ptr_base + q.n_in + 1] = spmat_base[:, None] + colptr[idx] - starts[li][:, None]
        # biases: physical row p -> PE p % N, local p // N
        rows = _ceil_div(q.n_out, n_pe)
        b = np.zeros(rows * n_pe, np.int64)
        if q.bias is not None:
            b_int = to_fixed(q.bias, fracs[li + 1], c.act_bits)
            if perms[li] is None:
                b[: q.n_out] = b_int
            else:
                b[perms[li]] = b_int
        bias[:, bias_base: bias_base + rows] = b.reshape(rows, n_pe).T
        c_int, w_frac = books[li]
        codebook[li] = c_int
        cb_float = np.zeros(c.codebook_size, np.float32)
        cb_float[: q.codebook.size] = q.codebook
        descs.append(LayerDesc(
            name=q.name, n_in=q.n_in, n_out=q.n_out, ptr_base=ptr_base, bias_base=bias_base,
            w_frac=w_frac, relu=q.relu, in_frac=fracs[li], out_frac=fracs[li + 1],
            codebook_float=cb_float, codebook_int=c_int.copy(),
            spmat_base=spmat_base.astype(np.int64), n_entries=counts[li].astype(np.int64),
            perm=perms[li], rows_per_pe=rows))
        word_base = word_base + words[li]
        ptr_base += q.n_in + 1
        bias_base += rows
    return NetworkImage(c, descs, _pack_words(entries, c), ptr, bias, codebook)


def _pack_words(entries: np.ndarray, config: EIEConfig) -> np.ndarray:
    """(N, words * epw) entries -> (N, words) uint64 words, entry e of a word at bits
    ``[e * entry_bits, (e + 1) * entry_bits)``."""
    epw, eb = config.entries_per_word, config.entry_bits
    if eb == 8 and epw == 8:  # the paper's format: the words' little-endian bytes
        return np.ascontiguousarray(entries.astype(np.uint8)).view("<u8").astype(np.uint64)
    out = np.zeros((entries.shape[0], entries.shape[1] // epw), np.uint64)
    for e in range(epw):
        out |= entries[:, e::epw].astype(np.uint64) << np.uint64(e * eb)
    return out


# -- unpacking ----------------------------------------------------------------------------------

def unpack_network(image: NetworkImage) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Images -> per layer ``(codebook_float, indices (n_out x n_in, logical order), bias)``.

    The exact inverse of :func:`pack_network` for codebooks and indices; the bias is the
    stored ``act_bits`` integer over ``2**out_frac`` (what the hardware adds).
    """
    c = image.config
    out = []
    for li, d in enumerate(image.layers):
        e = decode_layer(image, li)
        real = e.v != 0
        rows = e.physical_row(c.n_pe)[real]
        cols = e.col[real]
        if d.perm is not None:
            rows = inverse_permutation(d.perm)[rows]
        in_perm = image.in_perm(li)
        if in_perm is not None:
            cols = inverse_permutation(in_perm)[cols]
        idx = np.zeros((d.n_out, d.n_in), np.uint8)
        idx[rows, cols] = e.v[real]
        b_phys = image.bias[:, d.bias_base: d.bias_base + d.rows_per_pe].T.ravel()[: d.n_out]
        b = image.to_logical(li, b_phys) / float(1 << d.out_frac)
        out.append((d.codebook_float.copy(), idx, b.astype(np.float64)))
    return out
