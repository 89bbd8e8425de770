"""Weight quantizers and bit widths compared on LeNet-300-100 and LeNet-5 (real MNIST).

Per model, the built-in recipe (`eie compress` defaults: dense training, iterative pruning
with retraining) runs once; every row then starts from the same pruned network and only
quantizes it (one quantizer at one width for every layer but the output layer, which keeps
4-bit k-means) and fine-tunes the codebooks (the defaults' epochs; distillation from the
pruned network). Columns: the Huffman-coded model file's ratio, the test error, the on-chip
bytes of the EIE image of the FC layers on eie64 (sw.compression.footprint: entries with
padding, pointers, codebooks, biases, activations) and the energy per inference of the FC
layers on EIE (sw.eie.energy from the cycle model's access counts, mean over test images).
Prints a Markdown table and writes a plot of ratio against error to build/.

    EIE_MNIST_DIR=<mnist> .venv/bin/python benchmarks/bench_quantizers.py [--models lenet300]
        [--weights lenet300=dense.pt] [--retrain-epochs N] [--finetune-epochs N]
        [--energy-inputs 50]
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from hw.timing import rtl_timing  # noqa: E402
from sw.compression.compress import compress_module, default_settings  # noqa: E402
from sw.compression.data import load_mnist, to_tensors  # noqa: E402
from sw.compression.footprint import fc_chains, onchip_footprint  # noqa: E402
from sw.compression.models import build_model, load_checkpoint, load_into, weight_layers  # noqa: E402
from sw.eie.config import PRESETS  # noqa: E402
from sw.eie.cycles import simulate_layer  # noqa: E402
from sw.eie.energy import layer_energy  # noqa: E402
from sw.eie.fixedpoint import to_fixed  # noqa: E402
from sw.eie.formats import choose_formats  # noqa: E402
from sw.eie.golden import run_layer  # noqa: E402
from sw.eie.pack import pack_network  # noqa: E402
from sw.errors import EIEError  # noqa: E402

# (label, quantizer, bits, ECSQ lambda)
GRID = [("k-means 4", "kmeans", 4, None), ("k-means 3", "kmeans", 3, None),
        ("k-means 2", "kmeans", 2, None), ("Hessian k-means 4", "hessian", 4, None),
        ("Hessian k-means 3", "hessian", 3, None), ("uniform 4", "uniform", 4, None),
        ("uniform 3", "uniform", 3, None), ("ECSQ 4, lambda 0.02", "ecsq", 4, 0.02),
        ("ECSQ 4, lambda 0.05", "ecsq", 4, 0.05), ("ECSQ 3, lambda 0.02", "ecsq", 3, 0.02),
        ("ternary", "ternary", 2, None), ("binary (pruned)", "binary", 2, None)]
CONFIG = "eie64"


def fc_inputs(module: nn.Module, x: torch.Tensor) -> np.ndarray:
    """The inputs of the first FC layer: the images through the conv part (host), flattened."""
    with torch.no_grad():
        for s in module.specs:
            if s.kind == "linear":
                break
            x = module.layer(s.name)(x)
            if s.relu:
                x = torch.relu(x)
            if s.pool:
                x = torch.nn.functional.max_pool2d(x, s.pool)
        return x.flatten(1).numpy().astype(np.float64)


def energy_per_inference(layers, x_fc: np.ndarray, calib: np.ndarray) -> float:
    """pJ per inference of the FC chain on eie64 (mean over the rows of ``x_fc``)."""
    cfg = PRESETS[CONFIG]
    chain = fc_chains(layers)[0]
    formats = choose_formats(chain, calib, cfg)
    image = pack_network(chain, cfg, formats=formats)
    timing = rtl_timing(cfg)
    pj = 0.0
    for x in x_fc:
        a = image.input_to_physical(to_fixed(x, image.input_frac, cfg.act_bits))
        for li in range(len(image.layers)):
            r = simulate_layer(image, li, a, timing)
            pj += layer_energy(image, li, r).total
            if li + 1 < len(image.layers):
                a = run_layer(image, li, a)
    return pj / len(x_fc)


def bench_model(model: str, weights: str | None, args, log) -> list[dict]:
    torch.manual_seed(args.seed)
    net = build_model(model)
    tr, te = load_mnist(None)
    train, test = to_tensors(tr.take(args.limit_train)), to_tensors(te.take(args.limit_test))
    base_s = default_settings(model, seed=args.seed, progress=False, finetune_epochs=0,
                              retrain_epochs=args.retrain_epochs)
    if weights:
        load_into(net, load_checkpoint(weights), source=weights)
        base_s.dense_epochs = 0
    t = time.perf_counter()
    base = compress_module(net, train, test, base_s, log=log)
    log(f"{model}: dense + pruning {time.perf_counter() - t:.0f} s, dense test error "
        f"{100 * base.report['error_dense']:.2f}%, pruned {100 * base.report['error_pruned']:.2f}%")
    pruned = base.weights["pruned"]
    names = [n for n, _ in weight_layers(base.module)]
    last = names[-1]
    x_fc = fc_inputs(base.module, test[0][: args.energy_inputs])
    calib = fc_inputs(base.module, train[0][:500])
    rows = []
    for label, quantizer, bits, lam in GRID:
        mod = copy.deepcopy(base.module)
        with torch.no_grad():
            for n, m in weight_layers(mod):
                m.weight.copy_(torch.from_numpy(pruned[n]))
        density = {n: float(np.count_nonzero(pruned[n]) / pruned[n].size) for n in names}
        s = default_settings(model, seed=args.seed, progress=False, dense_epochs=0,
                             prune_iters=1, retrain_epochs=0, density=density,
                             quantizer=quantizer, bits=bits,
                             layer_quantizer={last: "kmeans"}, layer_bits={last: 4},
                             ecsq_lambda=lam, finetune_epochs=args.finetune_epochs)
        t = time.perf_counter()
        res = compress_module(mod, train, test, s)
        fp = onchip_footprint(fc_chains(res.layers), CONFIG)
        pj = energy_per_inference(res.layers, x_fc, calib)
        row = {"model": model, "quantizer": label, "bits": bits, "ratio": res.report["ratio"],
               "file_bytes": res.report["compressed_bytes"],
               "error": res.report["error_compressed"],
               "error_before_finetune": res.report["error_quantized"],
               "onchip_bytes": fp.get("total_bytes"), "onchip_spmat_bytes": fp.get("spmat_bytes"),
               "energy_nj": pj / 1e3, "seconds": time.perf_counter() - t,
               "weight_bits_huffman": res.report["layers"]["total"]["weight_bits_pqh"],
               "index_bits_huffman": res.report["layers"]["total"]["index_bits_pqh"]}
        rows.append(row)
        log(f"{model} {label}: {row['ratio']:.1f}x, error {100 * row['error']:.2f}%, on-chip "
            f"{row['onchip_bytes']:,} B, {row['energy_nj']:.1f} nJ ({row['seconds']:.0f} s)")
    return rows


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(dict.fromkeys(r["model"] for r in rows))
    fig, axes = plt.subplots(1, len(models), figsize=(6.5 * len(models), 4.6), squeeze=False)
    for ax, m in zip(axes[0], models, strict=True):
        for i, r in enumerate(x for x in rows if x["model"] == m):
            ax.scatter(100 * r["error"], r["ratio"], color=f"C{i % 10}",
                       marker="os^Dv<>ph*XP"[i % 12], label=r["quantizer"])
        ax.set_xlabel("test error (%)")
        ax.set_ylabel("compression ratio (Huffman-coded file)")
        ax.set_title(f"{m}: quantizers on the same pruned network")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["lenet300", "lenet5"],
                    choices=["lenet300", "lenet5"])
    ap.add_argument("--weights", nargs="*", default=[], metavar="MODEL=FILE",
                    help="trained dense checkpoints to start from (skips dense training)")
    ap.add_argument("--finetune-epochs", type=int, default=None,
                    help="codebook fine-tuning epochs per row (default: the model's)")
    ap.add_argument("--retrain-epochs", type=int, default=None,
                    help="retraining epochs per pruning step of the shared base (default: "
                         "the model's)")
    ap.add_argument("--energy-inputs", type=int, default=50)
    ap.add_argument("--limit-train", type=int)
    ap.add_argument("--limit-test", type=int)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "build" / "bench_quantizers"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    weights = dict(w.split("=", 1) for w in args.weights)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    rows = []
    for m in args.models:
        try:
            rows += bench_model(m, weights.get(m), args, log)
        except EIEError as e:  # no MNIST, a bad checkpoint: one line
            print(f"bench_quantizers: {e}", file=sys.stderr)
            return 2
        (out / "results.json").write_text(json.dumps(rows, indent=2) + "\n")
    plot(rows, out / "ratio_vs_error.png")
    print(f"| model | quantizer (all but the output layer) | ratio | test error | before fine-tuning "
          f"| weight bits +H | on-chip bytes ({CONFIG}) | energy / inference (nJ) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['quantizer']} | {r['ratio']:.1f}x | {100 * r['error']:.2f}% | "
              f"{100 * r['error_before_finetune']:.2f}% | {r['weight_bits_huffman']:.2f} | "
              f"{r['onchip_bytes']:,} | {r['energy_nj']:.1f} |")
    print(f"plot: {out / 'ratio_vs_error.png'}; figures: {out / 'results.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
