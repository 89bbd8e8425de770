"""Low-bit activations on LeNet-300-100: the golden model's test error at several `act_bits`
for networks compressed with and without `eie compress --act-bits` (README "Low-bit
activations").

    # 1. the dense network every run starts from (the lenet300 recipe's 20 dense epochs, seed 0)
    EIE_MNIST_DIR=... python benchmarks/bench_act_bits.py dense build/aq/lenet300_dense.pt
    # 2. compress it with and without --act-bits (the README lists the commands), then
    EIE_MNIST_DIR=... python benchmarks/bench_act_bits.py table build/aq/base build/aq/qat8 ...

`table` reads each output directory's report.json and model.eie and runs all 10,000 MNIST test
images through the golden model (`eie run`'s path: formats from the first 1,000 training
images) on eie64 with 16-, 8-, 6- and 4-bit activations (`--bits`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def dense(out: str) -> int:
    import torch

    from sw.compression.compress import default_settings
    from sw.compression.data import load_mnist, to_tensors
    from sw.compression.models import build_model
    from sw.compression.train import TrainSettings, eval_error, fit

    torch.set_num_threads(1)
    s = default_settings("lenet300", progress=False)
    torch.manual_seed(s.seed)
    np.random.seed(s.seed)
    net = build_model("lenet300")
    tr, te = load_mnist(None)
    train, test = to_tensors(tr), to_tensors(te)
    torch.manual_seed(s.seed)
    t = time.perf_counter()
    fit(net, net.parameters(), *train,
        TrainSettings(epochs=s.dense_epochs, lr=s.lr, batch_size=s.batch_size,
                      optimizer=s.optimizer, weight_decay=s.weight_decay, shift=s.shift),
        seed=s.seed, progress=False)
    torch.save(net.state_dict(), out)
    print(f"dense lenet300: {s.dense_epochs} epochs in {time.perf_counter() - t:.0f} s, test error "
          f"{100 * eval_error(net, *test):.2f}% -> {out}")
    return 0


def table(dirs: list[str], bits: list[int]) -> int:
    from sw.compression.act_quant import qat_config
    from sw.eie.config import EIEConfig
    from sw.frontends import load_network
    from sw.frontends.hybrid import compile_network, load_inputs_for

    base = EIEConfig.load("eie64")
    head = f"{'model':24} {'act-bits':>8} {'phases':>8} {'ratio':>6} {'float':>6}" + "".join(
        f" {'golden ' + str(b):>10}" for b in bits) + f" {'on-chip B / 16':>16}"
    print(head)
    print("-" * len(head))
    for d in dirs:
        rep = json.loads((Path(d) / "report.json").read_text())
        aq = rep.get("act_quant", {})
        net = load_network(Path(d) / "model.eie")
        inputs = load_inputs_for(net, _mnist_dir())  # as `eie run --inputs <mnist>` loads them
        errs = []
        for b in bits:
            model = compile_network(net, qat_config(base, b), inputs.calib)
            pred = model.run_golden(inputs.x).argmax(1)
            errs.append(float(np.mean(pred != inputs.data.y_test)))
        fp = aq.get("onchip", {}).get("at", {})
        onchip = (f"{fp[str(aq['act_bits'])]['total_bytes']:,} / {fp['16']['total_bytes']:,}"
                  if fp else f"{rep['onchip']['total_bytes']:,}")
        print(f"{Path(d).name:24} {aq.get('act_bits', '-')!s:>8} {aq.get('phases', 'all' if aq else '-'):>8} "
              f"{rep['ratio']:5.1f}x {100 * rep['error_compressed']:5.2f}%"
              + "".join(f" {100 * e:9.2f}%" for e in errs) + f" {onchip:>16}")
    return 0


def _mnist_dir() -> str:
    import os

    d = os.environ.get("EIE_MNIST_DIR")
    if not d:
        raise SystemExit("set EIE_MNIST_DIR to the MNIST directory")
    return d


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("dense", help="train and save the dense LeNet-300-100")
    p.add_argument("out")
    p = sub.add_parser("table", help="golden test error per act_bits of compressed networks")
    p.add_argument("dirs", nargs="+", help="eie compress output directories")
    p.add_argument("--bits", type=int, nargs="+", default=[16, 8, 6, 4])
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    return dense(args.out) if args.cmd == "dense" else table(args.dirs, args.bits)


if __name__ == "__main__":
    raise SystemExit(main())
