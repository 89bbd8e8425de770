"""Pack FC layers into EIE memory images ($readmemh hex, raw binary, manifest.json).

The input is a compressed model file (from `eie compress`), a torchvision-format AlexNet
state_dict (classifier.1/4/6.weight|bias: pruned to Deep Compression's densities fc6 9%,
fc7 9%, fc8 25% and 4-bit quantized without retraining), or --bench NAME: one of EIE's
Table III layers (Alex-6 ... NT-LSTM) or `alexnet` (fc6 -> fc7 -> fc8), synthesized from a
fixed seed. The images follow docs/format.md; layers that do not fit the configured memories
are refused with the sizes needed and available.
"""

from __future__ import annotations

import argparse
import time


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = __doc__
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = ("examples:\n"
                "  eie pack build/lenet300/model.eie --config small --out build/lenet300-images\n"
                "  eie pack --bench Alex-7 --balance --out build/alex7-images\n"
                "  eie pack alexnet.pth --config eie64 --out build/alexnet-images")
    p.add_argument("model", nargs="?", metavar="MODEL",
                   help="compressed model file (.eie) or a torchvision-format AlexNet state_dict")
    p.add_argument("--bench", metavar="NAME",
                   help="a built-in EIE Table III layer (Alex-6, ..., NT-LSTM) or 'alexnet'")
    p.add_argument("--seed", type=int, default=0, help="seed of the --bench synthesis")
    p.add_argument("--config", default="eie64", metavar="PRESET|FILE",
                   help="accelerator configuration: a preset (eie64, small, tiny) or a "
                        "JSON file of EIEConfig fields (optionally with \"base\": PRESET)")
    p.add_argument("--balance", action="store_true",
                   help="load-balance-aware row assignment (rows permuted to equalise per-PE work)")
    p.add_argument("--out", metavar="DIR", required=True,
                   help="output directory, written atomically")


def run(args: argparse.Namespace) -> int:
    from sw.eie.config import EIEConfig
    from sw.eie.images import write_images
    from sw.eie.load import load_layers
    from sw.eie.pack import pack_network

    config = EIEConfig.load(args.config)
    layers, meta = load_layers(args.model, args.bench, args.seed)
    t0 = time.perf_counter()
    image = pack_network(layers, config, balance=args.balance)
    t_pack = time.perf_counter() - t0
    meta = {**meta, "balance": bool(args.balance)}
    manifest = write_images(image, args.out, meta)
    print(f"packed {len(layers)} layer(s) for {config.name} ({config.n_pe} PEs) in "
          f"{t_pack:.2f} s -> {args.out} ({len(manifest['files'])} files)")
    print(f"{'layer':<10} {'in x out':>13} {'nnz':>10} {'entries':>10} {'padding':>8} "
          f"{'w_frac':>6} {'relu':>5}")
    for q, d in zip(layers, image.layers, strict=True):
        entries = int(d.n_entries.sum())
        pad = (entries - q.nnz) / entries if entries else 0.0
        print(f"{d.name:<10} {f'{d.n_in} x {d.n_out}':>13} {q.nnz:>10,} {entries:>10,} "
              f"{pad:>8.1%} {d.w_frac:>6} {'yes' if d.relu else 'no':>5}")
    print(f"{'memory':<10} {'used':>8} {'available':>10} {'use':>6}  unit")
    for name, u in image.memory_usage().items():
        print(f"{name:<10} {u['used']:>8,} {u['available']:>10,} "
              f"{u['used'] / u['available']:>6.1%}  {u['unit']}")
    return 0
