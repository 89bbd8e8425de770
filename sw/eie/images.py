"""Memory images on disk: what ``eie pack`` writes and the RTL, testbenches and FPGA flows read.

Layout of an image directory (docs/format.md, "Images on disk")::

    manifest.json            config, layer table, memory sizes, codebooks, permutations, SHA-256
    codebook.hex / .bin      all layers' codebooks, layer l at addresses [16 l, 16 l + 16)
    pe00/spmat.hex / .bin    sparse-matrix words (spmat_word_bits each)
    pe00/ptr_even.hex / .bin pointer bank 0 (pointer addresses 0, 2, 4, ...), ptr_bits each
    pe00/ptr_odd.hex / .bin  pointer bank 1 (1, 3, 5, ...), zero-padded to the even bank's length
    pe00/bias.hex / .bin     biases (act_bits, two's complement)
    pe01/ ...

``.hex`` files are ``$readmemh`` input: one word per line, ``ceil(width / 4)`` lower-case hex
digits, two's complement values masked to the memory width. ``.bin`` files hold the same words
little-endian in the smallest of 1, 2, 4 or 8 bytes that holds the width (masked, zero-extended).
Files hold the used part of each memory; the rest of the memory is 0. The directory is
written atomically (built under a temporary name, then renamed).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from sw.eie.config import EIEConfig
from sw.eie.pack import LayerDesc, NetworkImage
from sw.errors import DataError, EIEError
from sw.fsutil import atomic_dir

FORMAT = "eie-images"
VERSION = 1


def container_bytes(bits: int) -> int:
    """Bytes per word in a ``.bin`` file."""
    for n in (1, 2, 4, 8):
        if bits <= 8 * n:
            return n
    raise ValueError(f"words wider than 64 bits are not supported ({bits})")


def hex_lines(values: np.ndarray, bits: int) -> bytes:
    """``$readmemh`` text: one value per line, ``ceil(bits / 4)`` hex digits, masked to ``bits``."""
    v = np.asarray(values).astype(np.int64).view(np.uint64).ravel()
    v = v & np.uint64((1 << bits) - 1) if bits < 64 else v
    digits = -(-bits // 4)
    out = np.empty((v.size, digits + 1), np.uint8)
    table = np.frombuffer(b"0123456789abcdef", np.uint8)
    for d in range(digits):
        out[:, d] = table[((v >> np.uint64(4 * (digits - 1 - d))) & np.uint64(15)).astype(np.intp)]
    out[:, digits] = ord("\n")
    return out.tobytes()


def bin_words(values: np.ndarray, bits: int) -> bytes:
    """Little-endian words, masked to ``bits``, in :func:`container_bytes` bytes each."""
    v = np.asarray(values).astype(np.int64).view(np.uint64).ravel()
    v = v & np.uint64((1 << bits) - 1) if bits < 64 else v
    return v.astype(f"<u{container_bytes(bits)}").tobytes()


def _from_bin(data: bytes, bits: int, signed: bool) -> np.ndarray:
    v = np.frombuffer(data, dtype=f"<u{container_bytes(bits)}").astype(np.uint64)
    v = v & np.uint64((1 << bits) - 1) if bits < 64 else v
    out = v.view(np.int64) if bits == 64 else v.astype(np.int64)
    if signed and bits < 64:
        out = np.where(out >= (1 << (bits - 1)), out - (1 << bits), out)
    return out


def pe_dir(k: int, n_pe: int) -> str:
    return f"pe{k:0{max(2, len(str(n_pe - 1)))}d}"


def _per_pe_memories(image: NetworkImage) -> list[tuple[str, np.ndarray, int]]:
    """(file stem, (N, depth) contents, width) of every per-PE memory file."""
    c = image.config
    return [("spmat", image.spmat, c.spmat_word_bits), ("ptr_even", image.ptr_bank(0), c.ptr_bits),
            ("ptr_odd", image.ptr_bank(1), c.ptr_bits), ("bias", image.bias, c.act_bits)]


def write_images(image: NetworkImage, out_dir: str | Path, meta: dict | None = None) -> dict:
    """Write ``image`` as an image directory (atomically); returns the manifest."""
    c = image.config
    files: dict[str, bytes] = {}
    for stem, contents, bits in _per_pe_memories(image):
        for k in range(c.n_pe):
            files[f"{pe_dir(k, c.n_pe)}/{stem}.hex"] = hex_lines(contents[k], bits)
            files[f"{pe_dir(k, c.n_pe)}/{stem}.bin"] = bin_words(contents[k], bits)
    files["codebook.hex"] = hex_lines(image.codebook, c.act_bits)
    files["codebook.bin"] = bin_words(image.codebook, c.act_bits)
    usage = image.memory_usage()
    usage["spmat"]["per_pe"] = image.words_per_pe().tolist()
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "config": c.to_dict(),
        "layers": [_layer_json(d) for d in image.layers],
        "memories": usage,
        "arrays": {"spmat_words": image.words_used, "ptrs": image.ptrs_used,
                   "ptr_bank_words": -(-image.ptrs_used // 2), "bias": image.bias_used,
                   "codebook": int(image.codebook.size)},
        "widths": {"spmat": c.spmat_word_bits, "ptr": c.ptr_bits, "bias": c.act_bits,
                   "codebook": c.act_bits, "entry": c.entry_bits},
        "pe_dirs": [pe_dir(k, c.n_pe) for k in range(c.n_pe)],
        "files": {name: hashlib.sha256(data).hexdigest() for name, data in sorted(files.items())},
        "meta": meta or {},
    }
    text = json.dumps(manifest, indent=1) + "\n"
    with atomic_dir(out_dir) as tmp:
        try:
            for d in manifest["pe_dirs"]:
                (tmp / d).mkdir()
            for name, data in files.items():
                (tmp / name).write_bytes(data)
            (tmp / "manifest.json").write_text(text)
        except OSError as e:
            raise EIEError(f"cannot write images to {out_dir}: {e.strerror or e}") from None
    return manifest


def _layer_json(d: LayerDesc) -> dict:
    return {
        "name": d.name, "n_in": d.n_in, "n_out": d.n_out, "ptr_base": d.ptr_base,
        "bias_base": d.bias_base, "w_frac": d.w_frac, "relu": bool(d.relu),
        "in_frac": d.in_frac, "out_frac": d.out_frac, "shift": d.shift,
        "rows_per_pe": d.rows_per_pe,
        "codebook_float": [float(x) for x in d.codebook_float],
        "codebook_int": [int(x) for x in d.codebook_int],
        "spmat_base": [int(x) for x in d.spmat_base],
        "n_entries": [int(x) for x in d.n_entries],
        "perm": None if d.perm is None else [int(x) for x in d.perm],
    }


def read_images(directory: str | Path) -> NetworkImage:
    """Read an image directory back, verifying every file's SHA-256 (DataError if missing or
    corrupt)."""
    root = Path(directory)
    mpath = root / "manifest.json"
    try:
        manifest = json.loads(mpath.read_text())
    except FileNotFoundError:
        raise DataError(f"{root}: no manifest.json (not an image directory)") from None
    except (OSError, ValueError) as e:
        raise DataError(f"{mpath}: unreadable or not JSON ({e})") from None
    try:
        return _parse(root, manifest)
    except (KeyError, TypeError, ValueError, IndexError) as e:
        raise DataError(f"{mpath}: malformed manifest ({type(e).__name__}: {e})") from None


def _parse(root: Path, m: dict) -> NetworkImage:
    if m.get("format") != FORMAT:
        raise DataError(f"{root}/manifest.json: not an EIE image manifest")
    if m.get("version") != VERSION:
        raise DataError(f"{root}/manifest.json: unsupported image format version {m.get('version')}")
    c = EIEConfig.from_dict(m["config"])
    data: dict[str, bytes] = {}
    for name, digest in m["files"].items():
        path = root / name
        try:
            raw = path.read_bytes()
        except OSError:
            raise DataError(f"{root}: image file {name} is missing") from None
        if hashlib.sha256(raw).hexdigest() != digest:
            raise DataError(f"{root}: image file {name} is corrupt (SHA-256 mismatch)")
        data[name] = raw
    a = m["arrays"]
    n_pe = c.n_pe
    shapes = {"spmat": a["spmat_words"], "ptr_even": a["ptr_bank_words"],
              "ptr_odd": a["ptr_bank_words"], "bias": a["bias"]}
    widths = {"spmat": c.spmat_word_bits, "ptr_even": c.ptr_bits, "ptr_odd": c.ptr_bits,
              "bias": c.act_bits}
    arrays = {}
    for stem, depth in shapes.items():
        rows = []
        for k in range(n_pe):
            name = f"{pe_dir(k, n_pe)}/{stem}.bin"
            if name not in data:
                raise DataError(f"{root}: manifest lists no file {name}")
            v = _from_bin(data[name], widths[stem], signed=stem == "bias")
            if v.size != depth:
                raise DataError(f"{root}: {name} holds {v.size} words, the manifest says {depth}")
            rows.append(v)
        arrays[stem] = np.stack(rows)
    ptr = np.zeros((n_pe, 2 * a["ptr_bank_words"]), np.int64)
    ptr[:, 0::2], ptr[:, 1::2] = arrays["ptr_even"], arrays["ptr_odd"]
    layers = []
    for d in m["layers"]:
        perm = None if d["perm"] is None else np.asarray(d["perm"], np.int64)
        if perm is not None and not np.array_equal(np.sort(perm), np.arange(d["n_out"])):
            raise DataError(f"{root}: layer {d['name']}'s permutation is not a permutation of its rows")
        layers.append(LayerDesc(
            name=d["name"], n_in=int(d["n_in"]), n_out=int(d["n_out"]), ptr_base=int(d["ptr_base"]),
            bias_base=int(d["bias_base"]), w_frac=int(d["w_frac"]), relu=bool(d["relu"]),
            # manifests from before per-layer formats: act_frac everywhere
            in_frac=int(d.get("in_frac", c.act_frac)), out_frac=int(d.get("out_frac", c.act_frac)),
            codebook_float=np.asarray(d["codebook_float"], np.float32),
            codebook_int=np.asarray(d["codebook_int"], np.int64),
            spmat_base=np.asarray(d["spmat_base"], np.int64),
            n_entries=np.asarray(d["n_entries"], np.int64), perm=perm,
            rows_per_pe=int(d["rows_per_pe"])))
    cb = _from_bin(data["codebook.bin"], c.act_bits, signed=True)
    if cb.size != len(layers) * c.codebook_size:
        raise DataError(f"{root}: codebook.bin holds {cb.size} entries for {len(layers)} layers")
    codebook = cb.reshape(len(layers), c.codebook_size)
    for li, d in enumerate(layers):
        if not np.array_equal(codebook[li], d.codebook_int):
            raise DataError(f"{root}: codebook.bin and the manifest disagree on layer {d.name}")
    return NetworkImage(c, layers, arrays["spmat"].astype(np.uint64), ptr[:, : a["ptrs"]],
                        arrays["bias"], codebook)
