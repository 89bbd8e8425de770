"""What the chip holds: the on-chip footprint of a compressed network's EIE images.

The Huffman-coded model file (:mod:`sw.compression.modelfile`) is the smallest form of the
network; the EIE stores something else (Han et al., ISCA 2016, Section IV; docs/format.md):
fixed-width ``(v, z)`` entries (``weight_bits + index_bits`` each) with padding entries where a
gap exceeds the index span, word-aligned per layer and PE; ``n_in + 1`` pointers per layer in
every PE; one codebook of ``2**weight_bits`` ``act_bits`` values per layer; the biases; and two
activation register files per PE. The images come from the packer itself
(:func:`sw.eie.pack.pack_network`, which owns the padding and the placement); this module only
counts their bytes, per memory, from :meth:`~sw.eie.pack.NetworkImage.memory_usage` and the
images' shapes.
"""

from __future__ import annotations

from sw.eie.config import EIEConfig
from sw.eie.pack import pack_network
from sw.errors import EIEError
from sw.qlayer import QuantizedLayer

PARTS = ("spmat", "ptr", "codebook", "bias", "act")
PART_NAMES = {"spmat": "sparse matrix", "ptr": "pointers", "codebook": "codebooks",
              "bias": "biases", "act": "activations"}


def fc_chains(layers: list[QuantizedLayer]) -> list[list[QuantizedLayer]]:
    """Maximal runs of consecutive FC layers whose sizes chain (what one EIE run holds); a conv
    layer (run on the host) ends a run."""
    chains: list[list[QuantizedLayer]] = []
    for q in layers:
        if q.kind != "linear":
            if chains and chains[-1]:
                chains.append([])
            continue
        if chains and chains[-1] and chains[-1][-1].n_out == q.n_in:
            chains[-1].append(q)
        else:
            chains.append([q])
    return [c for c in chains if c]


def _bytes(bits: int) -> int:
    return -(-bits // 8)


def image_footprint(chain: list[QuantizedLayer], config: EIEConfig) -> dict:
    """Bytes of each memory the packed images of ``chain`` occupy on ``config``'s N PEs:
    sparse-matrix words used (entries, padding entries and word-alignment fill), pointers,
    codebooks, biases and the two activation register files (the rows the chain uses)."""
    image = pack_network(chain, config)
    c = config
    n = c.n_pe
    usage = image.memory_usage()
    entries = int(sum(int(d.n_entries.sum()) for d in image.layers))
    nnz = sum(q.nnz for q in chain)
    bits = {
        "spmat": int(image.words_per_pe().sum()) * c.spmat_word_bits,
        "ptr": image.ptrs_used * n * c.ptr_bits,
        "codebook": usage["codebook"]["used"] * c.act_bits,
        "bias": image.bias_used * n * c.act_bits,
        "act": 2 * usage["act"]["used"] * n * c.act_bits,
    }
    out = {f"{p}_bytes": _bytes(b) for p, b in bits.items()}
    out.update(layers=[q.name for q in chain], entries=entries, nonzeros=nnz,
               padding_entries=entries - nnz, entry_bits=c.entry_bits,
               entries_bytes=_bytes(entries * c.entry_bits),
               total_bytes=sum(out[f"{p}_bytes"] for p in PARTS))
    return out


def onchip_footprint(chains: list[list[QuantizedLayer]], config: EIEConfig | str = "eie64") -> dict:
    """The footprint of every chain's images (:func:`image_footprint`) and their sum, or
    ``{"error": ...}`` naming why the network does not fit ``config``."""
    try:
        cfg = config if isinstance(config, EIEConfig) else EIEConfig.load(config)
        if not chains:
            return {"config": cfg.name, "error": "no FC layers: nothing runs on EIE"}
        images = [image_footprint(ch, cfg) for ch in chains]
    except EIEError as e:
        return {"config": str(getattr(config, "name", config)), "error": str(e)}
    total = {k: sum(im[k] for im in images) for k in images[0] if k.endswith("_bytes")
             or k in ("entries", "nonzeros", "padding_entries")}
    return {"config": cfg.name, "n_pe": cfg.n_pe, "weight_bits": cfg.weight_bits,
            "index_bits": cfg.index_bits, "act_bits": cfg.act_bits, "images": images, **total}


def format_footprint(fp: dict, file_bytes: int | None = None) -> str:
    """One line: the on-chip bytes per memory (and the model file's size beside them)."""
    if "error" in fp:
        return f"on-chip footprint ({fp['config']}): not available: {fp['error']}"
    parts = ", ".join(f"{PART_NAMES[p]} {fp[f'{p}_bytes']:,}" for p in PARTS)
    line = (f"on-chip EIE image ({fp['config']}, {fp['n_pe']} PEs): {fp['total_bytes']:,} bytes "
            f"({parts}; {fp['entries']:,} entries of {fp['weight_bits'] + fp['index_bits']} bits, "
            f"{fp['padding_entries']:,} of them padding)")
    if file_bytes is not None:
        line += f" vs {file_bytes:,} bytes Huffman-coded file"
    return line
