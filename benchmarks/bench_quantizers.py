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

The rows are tasks on the farm (sim/sweep.py, sim/farm.py): ``--workers N`` runs them on N
worker processes of this machine (default one per core; 0: in this process), ``--scheduler
ADDRESS`` on an existing Dask cluster, as `eie sim` does; each row reads MNIST on its worker
from ``--data`` and seeds torch with ``--seed``, so a row's figures do not depend on where
or in which order it ran.

    EIE_MNIST_DIR=<mnist> .venv/bin/python benchmarks/bench_quantizers.py [--models lenet300]
        [--weights lenet300=dense.pt] [--retrain-epochs N] [--finetune-epochs N]
        [--energy-inputs 50] [--workers N | --scheduler ADDRESS]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from sim.farm import Task, add_farm_arguments, farm_from_args, progress_logger  # noqa: E402
from sim.sweep import CONFIG, Data, Row, quantizer_row  # noqa: E402
from sw.compression.compress import compress_module, default_settings  # noqa: E402
from sw.compression.data import load_mnist, to_tensors  # noqa: E402
from sw.compression.models import build_model, load_checkpoint, load_into  # noqa: E402
from sw.errors import EIEError  # noqa: E402

GRID = [Row("k-means 4", "kmeans", 4), Row("k-means 3", "kmeans", 3),
        Row("k-means 2", "kmeans", 2), Row("Hessian k-means 4", "hessian", 4),
        Row("Hessian k-means 3", "hessian", 3), Row("uniform 4", "uniform", 4),
        Row("uniform 3", "uniform", 3), Row("ECSQ 4, lambda 0.02", "ecsq", 4, 0.02),
        Row("ECSQ 4, lambda 0.05", "ecsq", 4, 0.05), Row("ECSQ 3, lambda 0.02", "ecsq", 3, 0.02),
        Row("ternary", "ternary", 2), Row("binary (pruned)", "binary", 2)]


def pruned_base(model: str, weights: str | None, data: Data, args, log):
    """The shared start of every row: the built-in recipe's dense training (or ``weights``)
    and iterative pruning with retraining, no quantization."""
    torch.manual_seed(args.seed)
    net = build_model(model)
    tr, te = load_mnist(data.path)
    train, test = to_tensors(tr.take(data.limit_train)), to_tensors(te.take(data.limit_test))
    base_s = default_settings(model, seed=args.seed, progress=False, finetune_epochs=0,
                              retrain_epochs=args.retrain_epochs)
    if weights:
        load_into(net, load_checkpoint(weights), source=weights)
        base_s.dense_epochs = 0
    t = time.perf_counter()
    base = compress_module(net, train, test, base_s, log=log)
    log(f"{model}: dense + pruning {time.perf_counter() - t:.0f} s, dense test error "
        f"{100 * base.report['error_dense']:.2f}%, pruned {100 * base.report['error_pruned']:.2f}%")
    return base.module, base.weights["pruned"]


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
    ap.add_argument("--data", default=os.environ.get("EIE_MNIST_DIR"),
                    help="MNIST directory (default: $EIE_MNIST_DIR; the same path on every "
                         "worker of a cluster)")
    ap.add_argument("--out", default=str(ROOT / "build" / "bench_quantizers"))
    add_farm_arguments(ap)
    args = ap.parse_args()
    torch.set_num_threads(1)
    data = Data(args.data, args.limit_train, args.limit_test, args.energy_inputs)
    weights = dict(w.split("=", 1) for w in args.weights)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    # each model's pruned base here, then one farm task per row (the rows of all models at
    # once: on a cluster they all run side by side)
    tasks = []
    try:
        for m in args.models:
            module, pruned = pruned_base(m, weights.get(m), data, args, log)
            tasks += [Task(f"{m}-{i}", quantizer_row, (m, module, pruned, row, data, args.seed,
                                                       args.finetune_epochs), f"{m} {row.label}")
                      for i, row in enumerate(GRID)]
        with farm_from_args(args, log) as farm:
            outcomes = farm.run(tasks, progress_logger(log, "row"))
            for line in farm.lines():
                log(line)
    except EIEError as e:  # no MNIST, a bad checkpoint, a bad --workers: one line
        print(f"bench_quantizers: {e}", file=sys.stderr)
        return 2
    failed = [o for o in outcomes if not o.ok]
    rows = [o.value for o in outcomes if o.ok]
    (out / "results.json").write_text(json.dumps(rows, indent=2) + "\n")
    for o in failed:
        print(f"bench_quantizers: row {o.task.label} failed: {o.error}", file=sys.stderr)
    if not rows:
        return 1
    plot(rows, out / "ratio_vs_error.png")
    print(f"| model | quantizer (all but the output layer) | ratio | test error | before fine-tuning "
          f"| weight bits +H | on-chip bytes ({CONFIG}) | energy / inference (nJ) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['quantizer']} | {r['ratio']:.1f}x | {100 * r['error']:.2f}% | "
              f"{100 * r['error_before_finetune']:.2f}% | {r['weight_bits_huffman']:.2f} | "
              f"{r['onchip_bytes']:,} | {r['energy_nj']:.1f} |")
    print(f"plot: {out / 'ratio_vs_error.png'}; figures: {out / 'results.json'}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
