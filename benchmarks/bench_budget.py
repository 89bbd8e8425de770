"""The accuracy budget (`eie compress --max-loss`) on data sets the defaults were never tuned on.

Two data sets, both made by scikit-learn without a download, each written as an .npz with
Keras' keys plus ``x_val``/``y_val`` (a validation split the network never trained on):

- ``synthetic``: ``make_classification``, 10 classes of 2 Gaussian clusters each in 64
  dimensions (24 informative, 8 redundant), 20,000 training / 10,000 validation / 10,000
  test examples: fine enough to resolve a 0.2-point budget (20 test examples);
- ``digits``: the handwritten digits bundled with scikit-learn (1,797 8x8 images; 1,000 /
  300 / 497): one test example is 0.2 points, one validation example 0.33, so a 0.2-point
  budget there means "not one more mistake".

An MLP (64-256-256-10, ReLU) is trained on the training examples only and saved as a
state_dict. The same `eie compress` command then runs with the model-file defaults (9% / 25%
densities, 4 bits) and with ``--max-loss`` budgets; the table gives the test error before and
after, the loss in points, the ratio and the on-chip bytes.

    .venv/bin/python benchmarks/bench_budget.py [--dataset synthetic|digits] [--budgets 0.2 0.5]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

SPLITS = {"digits": (1000, 300), "synthetic": (20_000, 10_000)}  # training, validation


def dataset_npz(name: str, path: Path, seed: int = 0) -> dict[str, np.ndarray]:
    """The data set (module docstring), shuffled with ``seed``, split (``SPLITS``; the rest
    is the test split) and saved to ``path``."""
    if name == "digits":
        from sklearn.datasets import load_digits

        d = load_digits()
        x = (d.data / 16.0).astype(np.float32)
        y = d.target.astype(np.int64)
    else:
        from sklearn.datasets import make_classification

        x, y = make_classification(n_samples=40_000, n_features=64, n_informative=24,
                                   n_redundant=8, n_classes=10, n_clusters_per_class=2,
                                   class_sep=1.5, random_state=seed)
        x, y = x.astype(np.float32), y.astype(np.int64)
    perm = np.random.default_rng(seed).permutation(len(x))
    x, y = x[perm], y[perm]
    a, b = SPLITS[name][0], sum(SPLITS[name])
    arrays = {"x_train": x[:a], "y_train": y[:a], "x_val": x[a:b], "y_val": y[a:b],
              "x_test": x[b:], "y_test": y[b:]}
    np.savez(path, **arrays)
    return arrays


def train_mlp(arrays: dict, path: Path, seed: int = 0, epochs: int = 60) -> float:
    """An MLP trained on x_train only (Adam, minibatches of 64); returns its test error."""
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                        nn.Linear(256, 10))
    x, y = torch.from_numpy(arrays["x_train"]), torch.from_numpy(arrays["y_train"])
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, weight_decay=1e-4)
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), 64):
            idx = perm[i:i + 64]
            opt.zero_grad()
            nn.functional.cross_entropy(net(x[idx]), y[idx]).backward()
            opt.step()
    net.eval()
    sd = {f"fc{i}.{k}": v for i, j in enumerate((0, 2, 4), 1)
          for k, v in net[j].state_dict().items()}
    torch.save(sd, path)
    with torch.no_grad():
        pred = net(torch.from_numpy(arrays["x_test"])).argmax(1).numpy()
    return float(np.mean(pred != arrays["y_test"]))


def run(argv: list[str]) -> tuple[dict, float]:
    from eie.cli import main

    t = time.perf_counter()
    code = main(["compress", *argv])
    if code != 0:
        raise SystemExit(f"eie compress {' '.join(argv)} failed ({code})")
    out = Path(argv[argv.index("--out") + 1])
    return json.loads((out / "report.json").read_text()), time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", choices=sorted(SPLITS), default="synthetic")
    ap.add_argument("--budgets", type=float, nargs="+", default=[0.2, 0.5])
    ap.add_argument("--out", help="output directory (default build/budget/<dataset>)")
    ap.add_argument("--extra", default="", help="further eie compress options for every run")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out or ROOT / "build" / "budget" / args.dataset)
    out.mkdir(parents=True, exist_ok=True)
    data = out / f"{args.dataset}.npz"
    arrays = dataset_npz(args.dataset, data, args.seed)
    small = args.dataset == "digits"
    dense_err = train_mlp(arrays, out / "mlp.pt", args.seed, epochs=60 if small else 20)
    n_tr, n_val = SPLITS[args.dataset]
    print(f"{args.dataset}: {n_tr:,} training / {n_val:,} validation / "
          f"{len(arrays['y_test']):,} test examples; MLP 64-256-256-10 test error "
          f"{100 * dense_err:.2f}%")
    epochs = ["--retrain-epochs", "8", "--finetune-epochs", "8"] if small else \
        ["--retrain-epochs", "2", "--finetune-epochs", "3"]
    common = ["--model", str(out / "mlp.pt"), "--data", str(data), *epochs, "--batch-size", "64",
              "--no-plots", "--quiet", "--seed", str(args.seed), *args.extra.split()]
    rows = []
    runs = [("defaults", [])] + [(f"--max-loss {b:g}", ["--max-loss", str(b)]) for b in args.budgets]
    for name, extra in runs:
        tag = name.replace("--", "").replace(" ", "_")
        rep, wall = run([*common, *extra, "--out", str(out / tag)])
        before = 1 - rep["metrics"]["original"]["accuracy"]
        after = 1 - rep["metrics"]["compressed"]["accuracy"]
        b = rep.get("budget")
        dens = {n: p["density"] for n, p in rep["pruning"].items()}
        bits = {n: q["bits"] for n, q in rep["quantization"].items()}
        print(f"{name}: eie compress {' '.join([*common, *extra])}", flush=True)
        rows.append((name, before, after, 100 * (after - before), rep["ratio"],
                     rep["onchip"].get("total_bytes"), dens, bits,
                     None if b is None else b["val_loss"], None if b is None else b["met"], wall))
    print("\n| run | test error before | after | loss (points) | ratio | on-chip bytes (eie64) "
          "| kept per layer | bits | validation loss | budget met (val) | wall s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, before, after, lost, ratio, chip, dens, bits, vloss, met, wall in rows:
        kept = " / ".join(f"{100 * d:.1f}%" for d in dens.values())
        bw = " / ".join(str(v) for v in bits.values())
        print(f"| {name} | {100 * before:.2f}% | {100 * after:.2f}% | {lost:+.2f} | {ratio:.1f}x | "
              f"{chip:,} | {kept} | {bw} | {'-' if vloss is None else f'{vloss:+.2f}'} | "
              f"{'-' if met is None else ('yes' if met else 'NO')} | {wall:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
