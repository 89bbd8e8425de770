"""Make the README's "I have my_model.onnx and data.npz": a small CNN trained on MNIST in
PyTorch, exported to ONNX, and its data as a Keras-style .npz.

    python examples/my_model.py --data $EIE_MNIST_DIR --out build/example

The network: conv 5x5 (8 channels) + ReLU + 2x2 max-pool + flatten on the host, then FC
1152 -> 256, ReLU, 256 -> 64, GELU, 64 -> 10: two FC chains for the EIE with a GELU (a host
operator) between them.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from sw.compression.data import load_mnist


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", help="MNIST directory (default: $EIE_MNIST_DIR)")
    p.add_argument("--out", default="build/example")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--train", type=int, default=20000, help="training images kept in data.npz")
    args = p.parse_args()
    torch.manual_seed(0)
    train, test = load_mnist(args.data)
    x_tr, y_tr = train.inputs()[:, None], train.labels.astype(np.int64)
    x_te, y_te = test.inputs()[:, None], test.labels.astype(np.int64)
    net = nn.Sequential(nn.Conv2d(1, 8, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                        nn.Linear(8 * 12 * 12, 256), nn.ReLU(), nn.Linear(256, 64), nn.GELU(),
                        nn.Linear(64, 10))
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    t = time.perf_counter()
    for epoch in range(args.epochs):
        perm = torch.randperm(len(x_tr))
        for i in range(0, len(perm), 128):
            idx = perm[i:i + 128]
            opt.zero_grad()
            nn.functional.cross_entropy(net(torch.from_numpy(x_tr[idx])), torch.from_numpy(y_tr[idx])).backward()
            opt.step()
        with torch.no_grad():
            acc = (net(torch.from_numpy(x_te)).argmax(1).numpy() == y_te).mean()
        print(f"epoch {epoch + 1}: test accuracy {acc:.2%} ({time.perf_counter() - t:.0f} s)")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    net.eval()
    torch.onnx.export(net, torch.from_numpy(x_te[:1]), str(out / "my_model.onnx"), dynamo=False)
    np.savez(out / "data.npz", x_train=x_tr[:args.train], y_train=y_tr[:args.train],
             x_test=x_te, y_test=y_te)
    print(f"wrote {out / 'my_model.onnx'} and {out / 'data.npz'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
