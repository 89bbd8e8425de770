"""A small, deterministic training loop shared by dense training, retraining after pruning and
centroid fine-tuning (the three phases differ only in their parameters and step hooks).

Data are in-memory tensors; batches come from a seeded permutation; the learning rate follows
a cosine decay over the phase. ``before_step`` runs after ``backward()`` and before
``optimizer.step()`` (centroid gradients); ``after_step(optimizer)`` runs after every step
(masks re-applied, shared weights rewritten).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

OPTIMIZERS = ("adam", "sgd")


@dataclass(frozen=True)
class TrainSettings:
    epochs: int
    lr: float = 1e-3
    batch_size: int = 128
    optimizer: str = "adam"  # "adam" or "sgd" (momentum 0.9)
    weight_decay: float = 0.0
    min_lr_ratio: float = 0.01  # cosine decay from lr down to lr * min_lr_ratio


def fit(model: nn.Module, params: Iterable[torch.nn.Parameter], x: torch.Tensor, y: torch.Tensor,
        settings: TrainSettings, seed: int = 0, desc: str = "train", progress: bool = True,
        before_step: Callable[[], None] | None = None,
        after_step: Callable[[torch.optim.Optimizer], None] | None = None) -> list[float]:
    """Train ``params`` of ``model`` on (x, y) with cross-entropy; returns the mean loss per epoch."""
    params = [p for p in params if p.requires_grad]
    if settings.epochs <= 0 or not params or len(x) == 0:
        return []
    if settings.optimizer == "adam":
        opt: torch.optim.Optimizer = torch.optim.Adam(params, lr=settings.lr,
                                                      weight_decay=settings.weight_decay)
    elif settings.optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=settings.lr, momentum=0.9, weight_decay=settings.weight_decay)
    else:
        raise ValueError(f"unknown optimizer {settings.optimizer!r}")
    n = len(x)
    bs = max(1, min(settings.batch_size, n))
    steps_per_epoch = math.ceil(n / bs)
    total = settings.epochs * steps_per_epoch
    gen = torch.Generator().manual_seed(seed)
    losses: list[float] = []
    model.train()
    bar = tqdm(total=total, desc=desc, unit="batch", disable=not progress, leave=False,
               dynamic_ncols=True, mininterval=0.5)
    step = 0
    try:
        for epoch in range(settings.epochs):
            perm = torch.randperm(n, generator=gen)
            running = 0.0
            for i in range(steps_per_epoch):
                t = step / max(1, total - 1)  # cosine decay over the phase
                scale = settings.min_lr_ratio + (1 - settings.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t))
                for g in opt.param_groups:
                    g["lr"] = settings.lr * scale
                idx = perm[i * bs:(i + 1) * bs]
                model.zero_grad(set_to_none=True)
                opt.zero_grad(set_to_none=True)
                loss = F.cross_entropy(model(x[idx]), y[idx])
                loss.backward()
                if before_step is not None:
                    before_step()
                opt.step()
                if after_step is not None:
                    after_step(opt)
                running += float(loss.detach())
                step += 1
                bar.update(1)
            losses.append(running / steps_per_epoch)
            bar.set_postfix(epoch=f"{epoch + 1}/{settings.epochs}", loss=f"{losses[-1]:.4f}")
    finally:
        bar.close()
        model.zero_grad(set_to_none=True)
        model.eval()
    return losses


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 2000) -> np.ndarray:
    """Class predictions (argmax of the logits), evaluated in eval mode in fixed-size batches."""
    model.eval()
    out = [model(x[i:i + batch_size]).argmax(1) for i in range(0, len(x), batch_size)]
    return torch.cat(out).numpy() if out else np.zeros(0, np.int64)


def error_rate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of misclassified examples."""
    if len(x) == 0:
        return float("nan")
    return float(np.mean(predict(model, x) != y.numpy()))
