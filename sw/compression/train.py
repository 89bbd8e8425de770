"""A small, deterministic training loop shared by dense training, retraining after pruning and
centroid fine-tuning (the three phases differ only in their parameters and step hooks).

Data are in-memory tensors; batches come from a seeded permutation; images can be shifted by
a few pixels at random every epoch (augmentation); the learning rate follows a cosine decay
over the phase. ``before_epoch(epoch)`` runs at the start of every epoch (activation formats
recalibrated); ``before_step`` runs after ``backward()`` and before ``optimizer.step()``
(centroid gradients); ``after_step(optimizer)`` runs after every step (masks re-applied,
shared weights rewritten).
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
TASKS = ("classification", "regression")  # the loss: cross-entropy or mean squared error


@dataclass(frozen=True)
class TrainSettings:
    epochs: int
    lr: float = 1e-3
    batch_size: int = 128
    optimizer: str = "adam"  # "adam" or "sgd" (momentum 0.9)
    weight_decay: float = 0.0
    min_lr_ratio: float = 0.01  # cosine decay from lr down to lr * min_lr_ratio
    distill: float = 0.0  # weight of the distillation term (0: plain cross-entropy)
    temperature: float = 4.0  # softmax temperature of the distillation term
    shift: int = 0  # random translation of image inputs (N, C, H, W) by up to this many pixels
    task: str = "classification"  # cross-entropy on class labels; "regression": MSE on targets


def fit(model: nn.Module, params: Iterable[torch.nn.Parameter], x: torch.Tensor, y: torch.Tensor,
        settings: TrainSettings, seed: int = 0, desc: str = "train", progress: bool = True,
        before_step: Callable[[], None] | None = None,
        after_step: Callable[[torch.optim.Optimizer], None] | None = None,
        teacher: nn.Module | None = None,
        before_epoch: Callable[[int], None] | None = None) -> list[float]:
    """Train ``params`` of ``model`` on (x, y); returns the mean loss per epoch.

    The loss is cross-entropy, or with a ``teacher`` network (e.g. the dense one, frozen) and
    ``settings.distill = a > 0``, knowledge distillation (Hinton et al. 2015):
    ``(1 - a) CE + a T^2 KL(softmax(teacher / T) || softmax(student / T))`` on the same batch.
    For ``settings.task == "regression"`` it is the mean squared error against ``y`` (reshaped
    to the outputs), and distillation is ``(1 - a) MSE(y) + a MSE(teacher's outputs)``.
    """
    if settings.task not in TASKS:
        raise ValueError(f"unknown task {settings.task!r}")
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
            if before_epoch is not None:
                before_epoch(epoch)
            perm = torch.randperm(n, generator=gen)
            xe = random_shift(x, settings.shift, gen) if settings.shift else x
            running = 0.0
            for i in range(steps_per_epoch):
                t = step / max(1, total - 1)  # cosine decay over the phase
                scale = settings.min_lr_ratio + (1 - settings.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t))
                for g in opt.param_groups:
                    g["lr"] = settings.lr * scale
                idx = perm[i * bs:(i + 1) * bs]
                model.zero_grad(set_to_none=True)
                opt.zero_grad(set_to_none=True)
                xb = xe[idx]
                out = model(xb)
                if settings.task == "regression":
                    loss = _mse(out, y[idx])
                    if teacher is not None and settings.distill > 0:
                        with torch.no_grad():
                            target = teacher(xb)
                        loss = (1 - settings.distill) * loss + settings.distill * _mse(out, target)
                else:
                    loss = F.cross_entropy(out, y[idx])
                if settings.task == "classification" and teacher is not None and settings.distill > 0:
                    a, temp = settings.distill, settings.temperature
                    with torch.no_grad():
                        soft = F.log_softmax(teacher(xb) / temp, 1)
                    kd = F.kl_div(F.log_softmax(out / temp, 1), soft, reduction="batchmean",
                                  log_target=True)
                    loss = (1 - a) * loss + a * temp * temp * kd
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


def _mse(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(out.reshape(len(out), -1), target.reshape(len(target), -1).to(out.dtype))


@torch.no_grad()
def random_shift(x: torch.Tensor, max_shift: int, gen: torch.Generator) -> torch.Tensor:
    """Translate each image (N, C, H, W) by its own random (dy, dx) in [-max_shift, max_shift],
    filling with zeros. Vectorised per shift value: (2 max_shift + 1)**2 slice copies."""
    if x.dim() != 4 or max_shift <= 0:
        return x
    n, _, h, w = x.shape
    k = 2 * max_shift + 1
    code = torch.randint(0, k * k, (n,), generator=gen)
    out = torch.zeros_like(x)
    for c in range(k * k):
        dy, dx = c // k - max_shift, c % k - max_shift
        idx = torch.nonzero(code == c).squeeze(1)
        if idx.numel() == 0 or abs(dy) >= h or abs(dx) >= w:
            continue
        out[idx, :, max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
            x[idx, :, max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
    return out


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


@torch.no_grad()
def outputs(model: nn.Module, x: torch.Tensor, batch_size: int = 2000) -> torch.Tensor:
    """The model's outputs, evaluated in eval mode in fixed-size batches."""
    model.eval()
    out = [model(x[i:i + batch_size]) for i in range(0, len(x), batch_size)]
    return torch.cat(out) if out else torch.zeros(0)


def eval_error(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
               task: str = "classification") -> float:
    """The error ``compress_module`` reports: the misclassified fraction (classification) or
    the root mean squared error over all outputs (regression)."""
    if task == "classification":
        return error_rate(model, x, y)
    if len(x) == 0:
        return float("nan")
    out = outputs(model, x).reshape(len(x), -1).double()
    return float(torch.sqrt(torch.mean((out - y.reshape(len(y), -1).double()) ** 2)))
