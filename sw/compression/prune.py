"""Magnitude pruning with masks that survive every optimizer step (Han et al., NIPS 2015).

Per layer the threshold is ``quality x std(W)`` (NIPS'15 Section 3: "a quality parameter
multiplied by the standard deviation of a layer's weights"); ``std`` is taken once, over the
trained dense weights, so a layer's final density follows from its quality parameter alone.
Pruning is iterative (prune -> retrain -> prune harder; NIPS'15 Section 3.3, which took
AlexNet from 5x to 9x): :func:`quality_schedule` ramps the quality parameter up over the
iterations and masks only ever lose entries.

Masks are plain boolean tensors, in the spirit of ``torch.nn.utils.prune`` without its
``weight_orig`` indirection. A pruned weight stays exactly 0 because (1) a gradient hook
zeroes its gradient, (2) :meth:`Pruner.after_step` re-applies the mask after every optimizer
step (weight decay or momentum would otherwise move it) and (3) it zeroes the optimizer's
per-weight state (SGD momentum, Adam moments) at pruned positions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from sw.errors import DataError


@dataclass
class LayerPruning:
    """What happened to one layer: its std, the quality parameter and threshold, the survivors."""

    name: str
    std: float
    quality: float
    threshold: float
    kept: int
    total: int

    @property
    def density(self) -> float:
        return self.kept / self.total if self.total else 0.0


def quality_for_density(weight: np.ndarray | torch.Tensor, density: float, std: float | None = None) -> float:
    """The quality parameter whose threshold keeps (about) the ``density`` largest magnitudes."""
    if not 0.0 < density <= 1.0:
        raise DataError(f"density must be in (0, 1], got {density}")
    a = np.abs(_np(weight)).ravel()
    std = float(np.std(_np(weight))) if std is None else std
    keep = max(1, int(round(density * a.size)))
    if keep >= a.size:
        return 0.0
    thr = float(np.partition(a, a.size - keep)[a.size - keep])  # keep-th largest magnitude
    return thr / std if std > 0 else 0.0


def quality_schedule(final: float, iterations: int, step: int) -> float:
    """Quality parameter of iteration ``step`` (1-based) of ``iterations``: a linear ramp."""
    return final * step / iterations


class Pruner:
    """Masks for some weight layers of a module, kept in force through training.

    ``layers`` maps a layer name to its nn.Linear / nn.Conv2d. Use :meth:`attach` before
    training (gradient hooks), :meth:`after_step` after every ``optimizer.step()``.
    """

    def __init__(self, layers: Mapping[str, nn.Module]):
        self.layers = dict(layers)
        self.masks: dict[str, torch.Tensor] = {
            n: torch.ones_like(m.weight, dtype=torch.bool) for n, m in self.layers.items()}
        # std of the dense weights, fixed at creation (the reference for quality x std)
        self.std: dict[str, float] = {n: float(m.weight.detach().double().std(unbiased=False))
                                      for n, m in self.layers.items()}
        self.records: dict[str, LayerPruning] = {}
        self._hooks: list = []

    # -- pruning ------------------------------------------------------------------------------
    def prune(self, qualities: Mapping[str, float]) -> dict[str, LayerPruning]:
        """Drop every weight with ``|w| < quality x std`` (cumulative: masks only shrink)."""
        for name, q in qualities.items():
            if q < 0 or not np.isfinite(q):
                raise DataError(f"layer {name}: quality parameter must be >= 0, got {q}")
            w = self.layers[name].weight
            thr = q * self.std[name]
            mask = self.masks[name] & (w.detach().abs() >= thr)
            kept = int(mask.sum())
            if kept == 0:
                raise DataError(f"layer {name}: every weight pruned (threshold {thr:.4g} = quality "
                                f"{q:.4g} x std {self.std[name]:.4g}); lower its sensitivity")
            self.masks[name] = mask
            self.records[name] = LayerPruning(name, self.std[name], float(q), thr, kept, mask.numel())
        self.apply()
        return dict(self.records)

    def apply(self) -> None:
        """Zero the pruned weights in place."""
        with torch.no_grad():
            for name, layer in self.layers.items():
                layer.weight.mul_(self.masks[name])

    # -- keeping them pruned during training --------------------------------------------------
    def attach(self) -> None:
        """Register gradient hooks that zero the gradient of every pruned weight."""
        self.detach()
        for name, layer in self.layers.items():
            mask = self.masks[name]
            self._hooks.append(layer.weight.register_hook(lambda g, m=mask: g * m))

    def detach(self) -> None:
        for h in self._hooks:
            h.remove()
        self._hooks = []

    def after_step(self, optimizer: torch.optim.Optimizer | None = None) -> None:
        """Re-apply the masks and clear the optimizer's state of pruned weights."""
        self.apply()
        if optimizer is None:
            return
        with torch.no_grad():
            for name, layer in self.layers.items():
                state = optimizer.state.get(layer.weight, {})
                for v in state.values():
                    if isinstance(v, torch.Tensor) and v.shape == layer.weight.shape:
                        v.mul_(self.masks[name])

    # -- summary ------------------------------------------------------------------------------
    def kept(self) -> int:
        return sum(int(m.sum()) for m in self.masks.values())

    def total(self) -> int:
        return sum(m.numel() for m in self.masks.values())


def _np(x: np.ndarray | torch.Tensor) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
