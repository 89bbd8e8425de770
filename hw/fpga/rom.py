"""ROM builds: EIE Verilog whose memories start out holding a packed network (`eie rom`).

docs/fpga.md, "ROM builds (`eie rom`)", describes the two ways the memories are initialised
(``readmemh``, ``amaranth``) and what ``rom.json`` records. The memories come from the PE that
owns them (:attr:`hw.pe.PE.HOST_LOADED_MEMORIES`), the Verilog from :mod:`hw.verilog`.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hw import host
from hw.params import HWParams
from hw.pe import PE
from hw.top import EIE
from hw.verilog import convert, generate, header
from sw.eie.images import pe_dir, write_images
from sw.errors import EIEError
from sw.fsutil import atomic_dir

# (PE submodule, memory in the emitted Verilog, image file); the codebook is shared by every
# PE: the images' top-level file
ROM_MEMORIES = tuple((unit, mem, f"{stem}.hex")
                     for stem, (unit, mem) in PE.HOST_LOADED_MEMORIES.items())


@dataclass
class RomBuild:
    """What :func:`build_rom` wrote."""

    out: Path
    verilog: Path
    top: str
    init: str  # "readmemh" or "amaranth"
    manifest: dict


def readmemh_verilog(image, name: str, pe_dir: Callable[[int], str], codebook: str) -> tuple[str, list[dict]]:
    """Verilog of the EIE for ``image.config`` whose PE k loads its memories from
    ``pe_dir(k)/<memory>.hex`` and ``codebook`` with ``$readmemh``; the layer table is
    initialised in the central control unit. Returns the text and the list of
    (PE, module, memory, file) initialisations.

    Built from :mod:`hw.verilog`'s PE-once output: the PE's modules (``<name>_pe`` and
    ``\\<name>_pe.<unit>``) are copied once per PE as ``<name>_peNN``, each copy's image
    memories get ``initial $readmemh(...)`` instead of Amaranth's all-zero ``initial`` block,
    and the top instantiates copy NN as PE NN. Rows past the end of a file are not
    initialised (they are never read; block RAM powers up as 0).
    """
    c = image.config
    params = HWParams(c)
    host.check_image(params, image)
    pe_name = f"{name}_pe"
    # Amaranth's all-zero initial blocks kept: they are what _readmemh replaces
    pe_text = convert(PE(params), pe_name, strip_zero_init=False)
    # the layer table as constants of its layout (what a StructLayout memory's init takes)
    table = [params.layer_entry.from_bits(v) for v in host.layer_table(params, image)]
    top = EIE(c, pe_module=pe_name, layer_init=table)
    top_text = convert(top, name, strip_zero_init=False)

    width = max(2, len(str(c.n_pe - 1)))
    copies, inits = [], []
    for k in range(c.n_pe):
        copy_name = f"{pe_name}{k:0{width}d}"
        text = pe_text.replace(f"\\{pe_name}.", f"\\{copy_name}.")
        text, n = re.subn(rf"^module {re.escape(pe_name)}\(", f"module {copy_name}(", text,
                          flags=re.MULTILINE)
        _expect(n == 1, f"module {pe_name}")
        for unit, mem, file in ROM_MEMORIES:
            path = codebook if file == "codebook.hex" else f"{pe_dir(k)}/{file}"
            text = _readmemh(text, f"\\{copy_name}.{unit}", mem, path)
            inits.append({"pe": k, "module": f"{copy_name}.{unit}", "memory": mem, "file": path})
        copies.append(text)
    top_text, n = re.subn(rf"^(\s*){re.escape(pe_name)}(\s+)pe(\d+) \(",
                          lambda m: f"{m.group(1)}{pe_name}{int(m.group(3)):0{width}d}{m.group(2)}pe{m.group(3)} (",
                          top_text, flags=re.MULTILINE)
    _expect(n == c.n_pe, f"{c.n_pe} instances of {pe_name} in the top level")
    note = (f"// memories initialised with $readmemh: PE k is module {pe_name}NN (NN = k) and loads "
            f"<PE k's directory>/*.hex (PE 0: {pe_dir(0)}); codebooks from {codebook}\n")
    return header(c, name, image) + note + "".join(copies) + top_text, inits


def _expect(ok: bool, what: str) -> None:
    if not ok:  # hw.verilog's output changed shape: a bug here, not a user error
        raise RuntimeError(f"eie rom: could not find {what} in the generated Verilog")


def _readmemh(text: str, module: str, mem: str, path: str) -> str:
    """Replace ``mem``'s all-rows ``initial`` block in ``module`` by a ``$readmemh``."""
    start = text.find(f"module {module} (")
    _expect(start >= 0, f"module {module}")
    end = text.find("\nendmodule", start)
    body = text[start:end]
    pat = re.compile(rf"^(  reg (?:signed )?\[\d+:0\] {re.escape(mem)} \[\d+:0\];\n)"
                     rf"  initial begin\n(?:    {re.escape(mem)}\[\d+\] = [^\n]*\n)*  end\n",
                     re.MULTILINE)
    body, n = pat.subn(lambda m: m.group(1) + f'  initial $readmemh("{path}", {mem});\n', body)
    _expect(n == 1, f"memory {mem} of {module}")
    return text[:start] + body + text[end:]


def run_parameters(image) -> dict:
    """How the host runs a ROM build of ``image``: the start pulse's layers, the input's format
    and length, the output's bank and length (docs/hardware.md, "Host protocol")."""
    return {"first_layer": 0, "n_layers": len(image.layers), "input_frac": image.input_frac,
            "output_bank": len(image.layers) % 2,
            "input_length": image.layers[0].n_in, "output_length": image.layers[-1].n_out}


def build_rom(image, out: str | Path, *, name: str = "eie_rom", init: str = "readmemh",
              absolute_paths: bool = False, meta: dict | None = None) -> RomBuild:
    """Write ``images/``, ``<name>.v`` and ``rom.json`` for ``image`` to ``out`` (atomically)."""
    c = image.config
    if init not in ("readmemh", "amaranth"):
        raise EIEError(f"unknown memory initialisation {init!r} (readmemh or amaranth)")
    out = Path(out)
    t0 = time.monotonic()
    with atomic_dir(out) as tmp:
        images = write_images(image, tmp / "images", meta)
        if init == "readmemh":
            base = (out.resolve() / "images") if absolute_paths else Path("images")
            text, inits = readmemh_verilog(image, name, lambda k: str(base / pe_dir(k, c.n_pe)),
                                           str(base / "codebook.hex"))
        else:
            text, inits = generate(c, name, image).text, []
        vpath = tmp / f"{name}.v"
        vpath.write_text(text)
        manifest = {
            "format": "eie-rom",
            "version": 1,
            "top": name,
            "verilog": vpath.name,
            "verilog_sha256": hashlib.sha256(text.encode()).hexdigest(),
            "init": init,
            "readmemh": inits,
            "images": "images",
            "images_manifest_sha256": hashlib.sha256(
                (tmp / "images" / "manifest.json").read_bytes()).hexdigest(),
            "config": c.to_dict(),
            "layers": [{k: d[k] for k in ("name", "n_in", "n_out", "w_frac", "in_frac", "out_frac",
                                          "shift", "relu")}
                       for d in images["layers"]],
            "run": run_parameters(image),
            "generate_s": round(time.monotonic() - t0, 2),
            "meta": meta or {},
        }
        (tmp / "rom.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return RomBuild(out, out / f"{name}.v", name, init, manifest)
