"""The compressed model file: Deep Compression's storage, whose size on disk IS the compressed size.

Everything is stored once, compactly: no dense masks, no float copies of weights, no column
pointers. Layout (integers little-endian; ``varint`` = unsigned LEB128)::

    header   magic b"EIEZ" | version u8 | payload length u32 | CRC32 of payload u32   (13 bytes)
    payload  varint n | n bytes zlib(JSON {"meta": meta, "layers": [{name, kind, meta}, ...]})
             one record per layer:
               varint ndim, varint dims...          weight shape (conv: out, in, kh, kw)
               u8 bits | u8 index_bits | u8 flags   flags: 1 = row-major order, 2 = has bias
               float32 codebook[1 .. 2**bits - 1]   (codebook[0] = 0 is implicit)
               float32 bias[out]                    (if flags & 2)
               varint n_entries                     (v, z) entries, padding included
               5-bit code lengths of the v stream (2**bits symbols), then of the z stream
               (2**index_bits symbols), packed MSB-first, zero-filled to a byte
               varint v_bits | v bitstream | varint z_bits | z bitstream     (canonical Huffman)

Sparse structure (Deep Compression Sec. 2 and Fig. 2; EIE's (v, z) entries): the (out x in)
index matrix (conv kernels flattened) is read as ONE long vector, column-major (CSC over the
inputs, as EIE stores it) or row-major (CSR, the transposed matrix) -- whichever gives the
smaller record -- and encoded by :func:`sw.sparse.encode_columns` as a single column:
``z`` counts the zeros skipped since the previous entry, *across* column boundaries, and a
gap longer than ``max_gap = 2**index_bits - 1`` gets padding entries (v = 0, z = max_gap).
Column ends are thereby implicit: an entry's flat position is the running sum of ``z + 1``
minus 1, and its column is that position divided by the column length, so no column pointers
or per-column counts are stored at all; a column boundary costs no more than an ordinary gap.
The index width is chosen per layer (2..8 bits, the one with the smallest Huffman-coded record,
unless given): narrow widths cost padding entries, wide ones a flatter z distribution.

The weight-index stream ``v`` and the relative-index stream ``z`` are Huffman-coded separately
(Deep Compression Sec. 4), each with its own canonical code, stored as code lengths only.

``meta`` is the caller's: the built-in networks store ``model`` and ``input_shape``; a user's
network compressed by ``eie compress --model FILE`` also stores ``meta["network"]``, its graph
and host-side float parameters (:mod:`sw.frontends.stored`), so the file holds the whole
network and the FC layers' records stay exactly as above.

:func:`layer_table` reports the paper's layer-wise table (Tables 2-3) from the same encoder
(:func:`encode_model`) that :func:`save_model` writes, so its byte counts are the file's.
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sw.compression import huffman
from sw.errors import ConfigError, DataError
from sw.fsutil import atomic_write_bytes
from sw.qlayer import QuantizedLayer
from sw.sparse import decode_columns, encode_columns

MAGIC = b"EIEZ"
VERSION = 1
_HEADER = struct.Struct("<4sBII")  # magic, version, payload length, CRC32
_LEN_BITS = 5  # width of a stored code length (0..huffman.MAX_LEN)
_AUTO_INDEX_BITS = range(2, 9)  # candidate relative-index widths when none is given
_GAP_HIST = 1 << 16  # gaps below this are counted in a histogram when sizing a layer
_ORDERS = ("col", "row")  # flag bit 0: 0 = column-major (CSC), 1 = row-major (CSR)
_FLAG_ROW, _FLAG_BIAS = 1, 2

IndexBits = int | dict[str, int] | None


@dataclass
class EncodedLayer:
    """One layer's record and the numbers the layer-wise table reports."""

    layer: QuantizedLayer
    order: str  # "col" or "row"
    index_bits: int
    nnz: int
    n_entries: int  # (v, z) entries, padding included
    v_bits: int  # Huffman-coded size of the weight-index stream
    z_bits: int  # Huffman-coded size of the relative-index stream
    record: bytes  # the bytes this layer occupies in the file


# ---------------------------------------------------------------------------------------------
# public API


def encode_model(layers: list[QuantizedLayer], meta: dict | None = None,
                 index_bits: IndexBits = None) -> tuple[bytes, dict]:
    """The complete file contents and its layer-wise table (one encoding pass)."""
    if isinstance(index_bits, dict):
        unknown = sorted(set(index_bits) - {layer.name for layer in layers})
        if unknown:
            raise ConfigError(f"index bits given for unknown layer(s): {', '.join(unknown)}")
    encoded = [encode_layer(layer, _index_bits_for(layer, index_bits)) for layer in layers]
    payload = b"".join([_info_block(layers, meta)] + [e.record for e in encoded])
    blob = _HEADER.pack(MAGIC, VERSION, len(payload), zlib.crc32(payload)) + payload
    return blob, _table(encoded, len(blob))


def meta_bytes(layers: list[QuantizedLayer], meta: dict | None = None) -> int:
    """Bytes the metadata block (varint length + zlib JSON of ``meta`` and the layer list)
    takes in the file :func:`save_model` writes: without encoding the layers."""
    return len(_info_block(layers, meta))


def _info_block(layers: list[QuantizedLayer], meta: dict | None) -> bytes:
    info = {"meta": meta or {},
            "layers": [{"name": q.name, "kind": q.kind, "meta": {**q.meta, "relu": q.relu}}
                       for q in layers]}
    try:
        info_json = json.dumps(info, separators=(",", ":"), allow_nan=False).encode()
    except (TypeError, ValueError) as err:
        raise DataError(f"model metadata is not JSON-serialisable: {err}") from None
    info_z = zlib.compress(info_json, 9)
    return _varint(len(info_z)) + info_z


def save_model(path: str | Path, layers: list[QuantizedLayer], meta: dict | None = None,
               index_bits: IndexBits = None) -> int:
    """Write the compressed model file atomically; returns the bytes written (= its size)."""
    blob, _ = encode_model(layers, meta, index_bits)
    atomic_write_bytes(path, blob)
    return len(blob)


def load_model(path: str | Path) -> tuple[list[QuantizedLayer], dict]:
    """Read a compressed model file back to exactly the quantized layers and ``meta``.

    Indices come back as uint8 (bits <= 8) or uint16 arrays of the layer's shape.
    """
    try:
        blob = Path(path).read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None
    if len(blob) < len(MAGIC) or blob[: len(MAGIC)] != MAGIC:
        raise DataError(f"{path}: not an eie compressed model (bad magic)")
    if len(blob) < _HEADER.size:
        raise DataError(f"{path}: truncated ({len(blob)} bytes, the header is {_HEADER.size})")
    _, version, length, crc = _HEADER.unpack_from(blob)
    if version != VERSION:
        raise DataError(f"{path}: unsupported eie model format version {version} "
                        f"(this version reads {VERSION})")
    payload = blob[_HEADER.size:]
    if len(payload) < length:
        raise DataError(f"{path}: truncated ({len(blob)} of {_HEADER.size + length} bytes)")
    if len(payload) > length:
        raise DataError(f"{path}: {len(payload) - length} bytes of trailing data after the model")
    if zlib.crc32(payload) != crc:
        raise DataError(f"{path}: checksum mismatch (the file is corrupt)")
    try:
        return _parse(payload)
    except (DataError, ValueError, KeyError, IndexError, TypeError, zlib.error) as e:
        raise DataError(f"{path}: corrupt model file ({e})") from None


def layer_table(layers: list[QuantizedLayer], index_bits: IndexBits = None,
                meta: dict | None = None) -> dict:
    """The paper's layer-wise table (Deep Compression Tables 2-3) for these layers.

    Computed by :func:`encode_model`, so ``compressed_bytes`` is the size :func:`save_model`
    writes for the same ``layers``, ``meta`` and ``index_bits``. Keys: ``layers`` (one row per
    layer), ``total`` (the same columns over all layers), ``original_bytes`` (float32 weights
    and biases), ``compressed_bytes``, ``overhead_bytes`` (header and metadata), ``ratio``.
    """
    return encode_model(layers, meta, index_bits)[1]


def format_table(table: dict) -> str:
    """The layer-wise table as aligned text for the terminal."""
    head = ("layer", "weights", "kept", "w bits P+Q", "+H", "idx bits P+Q", "+H",
            "size P+Q", "+H", "ratio", "order")
    rows = [head]
    for r in table["layers"] + [table["total"]]:
        rows.append((
            r["name"], f"{r['weights']:,}", f"{r['kept_pct']:.1f}%",
            _num(r["weight_bits_pq"]), f"{r['weight_bits_pqh']:.2f}",
            _num(r["index_bits_pq"]), f"{r['index_bits_pqh']:.2f}",
            f"{r['size_pct_pq']:.2f}%", f"{r['size_pct_pqh']:.2f}%", f"{r['ratio']:.1f}x",
            r.get("order", ""),
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in
                       enumerate(zip(row, widths, strict=True))).rstrip() for row in rows]
    lines.insert(1, "-" * len(lines[0]))
    lines.insert(len(lines) - 1, "-" * len(lines[0]))
    lines.append(f"{table['original_bytes']:,} bytes (float32 weights + biases) -> "
                 f"{table['compressed_bytes']:,} bytes compressed: {table['ratio']:.1f}x")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# encoding


def encode_layer(layer: QuantizedLayer, index_bits: int | None = None) -> EncodedLayer:
    """Encode one layer, choosing the order (and, if ``index_bits`` is None, the index width)
    that gives the smallest record."""
    if index_bits is not None and not 1 <= index_bits <= 8:
        raise ConfigError(f"layer {layer.name}: index bits must be in 1..8, got {index_bits}")
    widths = _AUTO_INDEX_BITS if index_bits is None else (index_bits,)
    codes = layer.matrix_indices().astype(_code_dtype(layer.bits), copy=False)
    best = None
    for order in _ORDERS:
        flat = codes.T.ravel() if order == "col" else codes.ravel()
        pos = np.flatnonzero(flat)
        vals = flat[pos]
        del flat
        v_counts = np.bincount(vals, minlength=1 << layer.bits)
        gaps = np.diff(pos, prepend=-1) - 1  # zeros skipped before each non-zero
        # gap histogram (long gaps kept apart so the histogram stays small)
        short = gaps < _GAP_HIST
        hist = np.bincount(gaps[short])
        g, long_gaps = np.arange(hist.size), gaps[~short]
        for ib in widths:
            # the entries encode_columns will produce, counted without building them: a gap g
            # costs g >> ib padding entries (v = 0, z = max_gap), then z = g mod 2**ib
            mask = (1 << ib) - 1
            pad = int(np.dot(hist, g >> ib) + np.sum(long_gaps >> ib))
            z_counts = (np.bincount(g & mask, weights=hist, minlength=mask + 1).astype(np.int64)
                        + np.bincount(long_gaps & mask, minlength=mask + 1))
            z_counts[mask] += pad
            vc = v_counts.copy()
            vc[0] += pad
            size = _record_size(layer, ib, vc, z_counts)
            if best is None or size < best[0]:
                best = (size, order, ib, pos, vals)
    _, order, ib, pos, vals = best
    return _encode_layer_as(layer, order, ib, pos, vals)


def _encode_layer_as(layer: QuantizedLayer, order: str, index_bits: int, pos: np.ndarray,
                     vals: np.ndarray) -> EncodedLayer:
    """The record of ``layer`` whose non-zero codes ``vals`` sit at flat positions ``pos``."""
    # the one (v, z) encoder, over the whole flattened matrix as a single column; it sees only
    # the sparsity pattern (v = 1 marks a real entry), so any code width passes through it
    marker = np.zeros((layer.n_out * layer.n_in, 1), np.uint8)
    marker[pos, 0] = 1
    marks, z, _ = encode_columns(marker, (1 << index_bits) - 1)
    del marker
    v = np.zeros(marks.size, vals.dtype)
    v[marks != 0] = vals
    v_len = huffman.build_code_lengths(np.bincount(v, minlength=1 << layer.bits))
    z_len = huffman.build_code_lengths(np.bincount(z, minlength=1 << index_bits))
    v_data, v_bits = huffman.encode(v, v_len)
    z_data, z_bits = huffman.encode(z, z_len)
    flags = (_FLAG_ROW if order == "row" else 0) | (_FLAG_BIAS if layer.bias is not None else 0)
    parts = [_varint(len(layer.shape))] + [_varint(d) for d in layer.shape]
    parts += [bytes([layer.bits, index_bits, flags]), layer.codebook[1:].astype("<f4").tobytes()]
    if layer.bias is not None:
        parts.append(layer.bias.astype("<f4").tobytes())
    parts += [_varint(v.size), _pack_lengths(np.concatenate([v_len, z_len])),
              _varint(v_bits), v_data, _varint(z_bits), z_data]
    return EncodedLayer(layer, order, index_bits, int(pos.size), int(v.size),
                        v_bits, z_bits, b"".join(parts))


def _record_size(layer: QuantizedLayer, index_bits: int, v_counts: np.ndarray,
                 z_counts: np.ndarray) -> int:
    """Bytes of a layer record with these stream statistics (mirrors _encode_layer_as)."""
    v_bits = huffman.coded_bits(v_counts, huffman.build_code_lengths(v_counts))
    z_bits = huffman.coded_bits(z_counts, huffman.build_code_lengths(z_counts))
    n_bias = 0 if layer.bias is None else layer.bias.size
    fixed = (len(_varint(len(layer.shape))) + sum(len(_varint(d)) for d in layer.shape) + 3
             + 4 * ((1 << layer.bits) - 1) + 4 * n_bias)
    n_len = (1 << layer.bits) + (1 << index_bits)
    return (fixed + len(_varint(int(v_counts.sum()))) + (n_len * _LEN_BITS + 7) // 8
            + len(_varint(v_bits)) + (v_bits + 7) // 8 + len(_varint(z_bits)) + (z_bits + 7) // 8)


def _index_bits_for(layer: QuantizedLayer, index_bits: IndexBits) -> int | None:
    if isinstance(index_bits, dict):
        return index_bits.get(layer.name)
    return index_bits


def _code_dtype(bits: int) -> type:
    return np.uint8 if bits <= 8 else np.uint16


# ---------------------------------------------------------------------------------------------
# decoding


def _parse(payload: bytes) -> tuple[list[QuantizedLayer], dict]:
    r = _Reader(payload)
    info = json.loads(zlib.decompress(r.take(r.varint())))
    layers = [_parse_layer(r, entry) for entry in info["layers"]]
    if not any("relu" in (entry.get("meta") or {}) for entry in info["layers"]):
        for q in layers[:-1]:  # a file from before the flag was stored: a classifier chain
            q.relu = True
    if r.pos != len(payload):
        raise DataError(f"{len(payload) - r.pos} bytes left after the last layer")
    return layers, info["meta"]


def _parse_layer(r: _Reader, entry: dict) -> QuantizedLayer:
    name = entry["name"]
    shape = tuple(r.varint() for _ in range(r.varint()))
    bits, index_bits, flags = r.take(3)
    if not 1 <= bits <= 16 or not 1 <= index_bits <= 8 or len(shape) not in (2, 4):
        raise DataError(f"layer {name}: bad layer header")
    codebook = np.concatenate((np.zeros(1, np.float32),
                               np.frombuffer(r.take(4 * ((1 << bits) - 1)), "<f4")))
    bias = None
    if flags & _FLAG_BIAS:
        bias = np.frombuffer(r.take(4 * shape[0]), "<f4").astype(np.float32)
    n_entries = r.varint()
    n_v, n_z = 1 << bits, 1 << index_bits
    lengths = _unpack_lengths(r.take(((n_v + n_z) * _LEN_BITS + 7) // 8), n_v + n_z)
    v_bits = r.varint()
    v = huffman.decode(r.take((v_bits + 7) // 8), n_entries, lengths[:n_v])
    z_bits = r.varint()
    z = huffman.decode(r.take((z_bits + 7) // 8), n_entries, lengths[n_v:])
    if (huffman.coded_bits(np.bincount(v, minlength=n_v), lengths[:n_v]) != v_bits
            or huffman.coded_bits(np.bincount(z, minlength=n_z), lengths[n_v:]) != z_bits):
        raise DataError(f"layer {name}: bitstream length does not match its symbols")
    n_out, n_in = shape[0], int(np.prod(shape[1:]))
    try:
        flat = decode_columns(v, z, np.array([0, n_entries]), n_out * n_in)[:, 0]
    except ValueError as e:
        raise DataError(f"layer {name}: {e}") from None
    flat = flat.astype(_code_dtype(bits))
    matrix = flat.reshape(n_out, n_in) if flags & _FLAG_ROW else flat.reshape(n_in, n_out).T
    return QuantizedLayer(name=name, kind=entry["kind"], codebook=codebook,
                          indices=np.ascontiguousarray(matrix).reshape(shape), bias=bias,
                          bits=bits, meta=entry["meta"])


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise DataError("record runs past the end of the file")
        out = self.data[self.pos: self.pos + n]
        self.pos += n
        return out

    def varint(self) -> int:
        value, shift = 0, 0
        while True:
            byte = self.take(1)[0]
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                return value
            shift += 7
            if shift > 63:
                raise DataError("varint too long")


# ---------------------------------------------------------------------------------------------
# small encodings


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def _pack_lengths(lengths: np.ndarray) -> bytes:
    """Code lengths as 5-bit fields, MSB-first."""
    bits = (lengths.astype(np.uint8)[:, None] >> np.arange(_LEN_BITS - 1, -1, -1)) & 1
    return np.packbits(bits.ravel()).tobytes()


def _unpack_lengths(data: bytes, n: int) -> np.ndarray:
    bits = np.unpackbits(np.frombuffer(data, np.uint8))[: n * _LEN_BITS].reshape(n, _LEN_BITS)
    return (bits.astype(np.uint8) << np.arange(_LEN_BITS - 1, -1, -1).astype(np.uint8)).sum(
        axis=1).astype(np.uint8)


# ---------------------------------------------------------------------------------------------
# the layer-wise table


def _table(encoded: list[EncodedLayer], file_bytes: int) -> dict:
    rows = []
    tot = dict(weights=0, nnz=0, entries=0, n_bias=0, v_bits=0, z_bits=0, pq_bits=0,
               w_entry_bits=0, i_entry_bits=0, bytes=0)
    for e in encoded:
        layer = e.layer
        weights = layer.n_out * layer.n_in
        n_bias = 0 if layer.bias is None else layer.bias.size
        # P+Q storage (paper): every entry at fixed width, plus a float32 codebook
        pq_bits = e.n_entries * (layer.bits + e.index_bits) + 32 * (1 << layer.bits)
        weight_bytes = len(e.record) - 4 * n_bias
        rows.append(_row(layer.name, weights, e.nnz, e.n_entries, layer.bits, e.v_bits,
                         e.index_bits, e.z_bits, pq_bits, weight_bytes, len(e.record), n_bias,
                         order=e.order))
        for k, val in (("weights", weights), ("nnz", e.nnz), ("entries", e.n_entries),
                       ("n_bias", n_bias), ("v_bits", e.v_bits), ("z_bits", e.z_bits),
                       ("pq_bits", pq_bits), ("w_entry_bits", e.n_entries * layer.bits),
                       ("i_entry_bits", e.n_entries * e.index_bits), ("bytes", len(e.record))):
            tot[k] += val
    n = max(tot["entries"], 1)
    total = _row("total", tot["weights"], tot["nnz"], tot["entries"], tot["w_entry_bits"] / n,
                 tot["v_bits"], tot["i_entry_bits"] / n, tot["z_bits"], tot["pq_bits"],
                 tot["bytes"] - 4 * tot["n_bias"], tot["bytes"], tot["n_bias"])
    original = 4 * (tot["weights"] + tot["n_bias"])
    return {"layers": rows, "total": total, "original_bytes": original,
            "compressed_bytes": file_bytes, "overhead_bytes": file_bytes - tot["bytes"],
            "ratio": original / file_bytes}


def _row(name: str, weights: int, nnz: int, entries: int, bits: float, v_bits: int,
         index_bits: float, z_bits: int, pq_bits: int, weight_bytes: int, record_bytes: int,
         n_bias: int, order: str | None = None) -> dict:
    dense_bits = 32 * max(weights, 1)
    row = {
        "name": name, "weights": weights, "nonzeros": nnz, "entries": entries,
        "padding": entries - nnz, "kept_pct": 100.0 * nnz / max(weights, 1),
        "weight_bits_pq": bits, "weight_bits_pqh": v_bits / entries if entries else 0.0,
        "index_bits_pq": index_bits, "index_bits_pqh": z_bits / entries if entries else 0.0,
        "size_pct_pq": 100.0 * pq_bits / dense_bits,
        "size_pct_pqh": 100.0 * 8 * weight_bytes / dense_bits,
        "bytes": record_bytes, "dense_bytes": 4 * (weights + n_bias),
        "ratio": 4 * (weights + n_bias) / record_bytes if record_bytes else 0.0,
    }
    if order is not None:
        row["order"] = order
    return row


def _num(x: float) -> str:
    return f"{x:g}" if float(x).is_integer() else f"{x:.2f}"
