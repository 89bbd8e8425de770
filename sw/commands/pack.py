"""Pack a network's FC layers into EIE memory images ($readmemh hex, raw binary, manifest.json).

The input is any model `eie` reads (ONNX, torch.export .pt2, TorchScript, a state_dict of
Linear layers, a model.eie from `eie compress`), a torchvision-format AlexNet state_dict
(classifier.1/4/6.weight|bias: pruned to Deep Compression's densities fc6 9%, fc7 9%, fc8 25%
and 4-bit quantized without retraining), or --bench NAME: one of EIE's Table III layers
(Alex-6 ... NT-LSTM) or `alexnet` (fc6 -> fc7 -> fc8), synthesized from a fixed seed. Each EIE
segment of the network (a chain of FC layers with ReLU or identity between them) is one image
directory (--out itself when there is one, --out/segmentK otherwise, with network.json: the
host/EIE split); the host segments are listed, not packed. Activation formats are chosen per
layer from --calib inputs when given (docs/format.md "Activation formats"), else act_frac
everywhere. Layers that do not fit the configured memories are refused with the sizes needed
and available.
"""

from __future__ import annotations

import argparse
import time

from sw.commands.options import add_act, add_calib, add_config, describe


def add_arguments(p: argparse.ArgumentParser) -> None:
    describe(p, __doc__,
             "eie pack build/lenet300/model.eie --config small --out build/lenet300-images",
             "eie pack --bench Alex-7 --balance --out build/alex7-images",
             "eie pack alexnet.pth --config eie64 --out build/alexnet-images",
             "eie pack my_model.onnx --calib data.npz --config small --out build/my-images")
    p.add_argument("model", nargs="?", metavar="MODEL",
                   help="a model file (ONNX, .pt2, TorchScript, state_dict, model.eie) or a "
                        "torchvision-format AlexNet state_dict")
    p.add_argument("--bench", metavar="NAME",
                   help="a built-in EIE Table III layer (Alex-6, ..., NT-LSTM) or 'alexnet'")
    p.add_argument("--seed", type=int, default=0, help="seed of the --bench synthesis")
    add_config(p)
    p.add_argument("--balance", action="store_true",
                   help="load-balance-aware row assignment (rows permuted to equalise per-PE work)")
    add_calib(p)
    add_act(p)
    p.add_argument("--out", metavar="DIR", required=True,
                   help="output directory, written atomically")


def run(args: argparse.Namespace) -> int:
    import json

    from sw.commands.sources import compile_for_hardware
    from sw.eie.config import EIEConfig
    from sw.eie.images import write_images
    from sw.fsutil import atomic_dir

    config = EIEConfig.load(args.config)
    t0 = time.perf_counter()
    model, meta = compile_for_hardware(config, args.model, args.bench, args.seed, args.act,
                                       args.calib, args.balance)
    t_pack = time.perf_counter() - t0
    segs = model.segments
    if len(segs) == 1:
        manifest = write_images(segs[0].image, args.out, meta)
        files = len(manifest["files"])
    else:
        with atomic_dir(args.out) as tmp:
            files = sum(len(write_images(s.image, tmp / f"segment{s.index}",
                                         {**meta, "segment": s.index})["files"]) for s in segs)
            (tmp / "network.json").write_text(json.dumps(meta, indent=1) + "\n")
    if len(model.network.segments) > 1:
        for line in model.describe():
            print(line)
    print(f"packed {sum(len(s.layers) for s in segs)} layer(s) in {len(segs)} EIE segment(s) "
          f"for {config.name} ({config.n_pe} PEs) in {t_pack:.2f} s -> {args.out} ({files} files)")
    for s in segs:
        _print_segment(s)
    return 0


def _print_segment(seg) -> None:
    image = seg.image
    print(f"{'layer':<10} {'in x out':>13} {'nnz':>10} {'entries':>10} {'padding':>8} "
          f"{'w_frac':>6} {'fracs':>7} {'relu':>5}")
    for q, d in zip(seg.layers, image.layers, strict=True):
        entries = int(d.n_entries.sum())
        pad = (entries - q.nnz) / entries if entries else 0.0
        print(f"{d.name:<10} {f'{d.n_in} x {d.n_out}':>13} {q.nnz:>10,} {entries:>10,} "
              f"{pad:>8.1%} {d.w_frac:>6} {f'{d.in_frac}->{d.out_frac}':>7} "
              f"{'yes' if d.relu else 'no':>5}")
    print(f"{'memory':<10} {'used':>8} {'available':>10} {'use':>6}  unit")
    for name, u in image.memory_usage().items():
        print(f"{name:<10} {u['used']:>8,} {u['available']:>10,} "
              f"{u['used'] / u['available']:>6.1%}  {u['unit']}")
