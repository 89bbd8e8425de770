"""Small networks trained inside the tests: one training loop and one synthetic data set
shared by the model-file, compression and command-line tests."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def train(model: nn.Module, x, y, steps: int = 80, loss=nn.functional.cross_entropy) -> nn.Module:
    """A few full-batch Adam steps (``x``, ``y`` tensors or arrays), so the weights are trained,
    not just initialised; returns the model in eval mode."""
    x, y = (torch.as_tensor(np.asarray(v)) if not torch.is_tensor(v) else v for v in (x, y))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        opt.zero_grad()
        loss(model(x), y).backward()
        opt.step()
    return model.eval()


def blobs(n: int = 500, d: int = 12, k: int = 4, seed: int = 0, spread: float = 2.0):
    """``n`` points around ``k`` random centres in ``d`` dimensions, and their class labels."""
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(k, d, generator=g) * spread
    y = torch.randint(0, k, (n,), generator=g)
    return centers[y] + torch.randn(n, d, generator=g), y


def write_mnist(d, n_train=32, n_test=8):
    """A fake MNIST directory of random images (the real files' names and layout)."""
    from sw.compression.data import write_idx

    rng = np.random.default_rng(0)
    for stem, shape in (("train-images-idx3-ubyte", (n_train, 28, 28)),
                        ("train-labels-idx1-ubyte", (n_train,)),
                        ("t10k-images-idx3-ubyte", (n_test, 28, 28)),
                        ("t10k-labels-idx1-ubyte", (n_test,))):
        hi = 256 if len(shape) == 3 else 10
        write_idx(d / f"{stem}.gz", rng.integers(0, hi, shape, dtype=np.uint8))
