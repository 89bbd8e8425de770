"""Compression under an accuracy budget (``eie compress --max-loss POINTS``).

The per-layer pruning strengths of the built-in networks are constants tuned on MNIST; on
another data set they may cost far more (or far less) accuracy. With a budget, the pipeline
chooses them itself, as Deep Compression's authors did by hand (Han et al., NIPS 2015, Sec. 4
and Fig. 6: prune each layer alone, see how sensitive it is, prune the robust ones harder):

1. A validation split is held out of the training examples (``val_fraction``, seeded) unless
   one is given (an ``.npz`` with ``x_val``, ``y_val``); the dense network is trained (if it
   is to be) on the rest, which every later phase uses too.
2. Sensitivity analysis on the validation split: every layer alone is pruned to each density
   of :data:`DENSITIES` and, separately, quantized at each width from 2 bits up to its
   ``--bits`` (by its own quantizer; ``hessian`` is measured with plain k-means), the others
   untouched; the loss is the validation error (points) or RMSE above the dense network's.
   The paper's analysis is one-shot, which overstates what retraining leaves (NIPS'15 Fig. 5);
   here each pruning is followed by ``budget_steps`` minibatch steps of retraining (default
   :data:`STEPS`; 0 is the paper's one-shot), a cheap look at what retraining recovers.
3. A plan for a planning tolerance ``tau``: starting from every layer dense at its full width,
   greedily take the single-layer step (next density down, or one bit less) that saves the most
   estimated bytes per point of estimated loss, while the summed single-layer losses stay
   within ``tau``. Estimated bytes per kept weight: its code bits less half a bit of Huffman
   gain plus ``log2(1 / density) + 1.44`` bits of relative index (the entropy of a geometric gap).
4. Plans are made for tolerances from a quarter of the budget to 256 budgets (:data:`LADDER`),
   and the distinct ones ordered from cautious to aggressive. A plan is compressed for real
   (iterative pruning with retraining to the planned densities, quantization at the planned
   widths, centroid fine-tuning) and verified on the validation split. Retraining recovers
   much of the one-shot loss, so the first plan tried is the one for :data:`TAU_START` budgets;
   then a bisection over the list (the next plan halfway between the most aggressive that held
   and the most cautious that broke), for ``budget_tries`` attempts. The result is the attempt
   with the highest ratio within the budget; if none held, the one with the least loss, and the
   report (``report["budget"]``) and log say the budget was broken.

The budget is checked on the validation split (the test split stays out of every choice); the
report gives the test loss beside it.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from collections.abc import Callable

import torch
from torch import nn

from sw.compression.models import weight_layers
from sw.compression.quantize import quantize_weights, quantizer_bits
from sw.compression.train import TrainSettings, eval_error, fit
from sw.errors import DataError

DENSITIES = (0.5, 0.3, 0.2, 0.14, 0.1, 0.07, 0.05, 0.035, 0.025, 0.018, 0.012)
TAU_START = 2.0  # first planning tolerance, in budgets
STEPS = 100  # retraining steps after each pruning of the sensitivity analysis
LADDER = range(-4, 17)  # planning tolerances budget x 2**(j / 2): 0.25 to 256 budgets
MIN_BITS = 2
Log = Callable[[str], None]
Data = tuple[torch.Tensor, torch.Tensor]


def split_validation(train: Data, fraction: float, seed: int) -> tuple[Data, Data]:
    """``(train minus validation, validation)``: a seeded random ``fraction`` of the examples."""
    n = len(train[0])
    n_val = int(round(fraction * n))
    if n_val < 1 or n - n_val < 1:
        raise DataError(f"--val-fraction {fraction} of {n} training examples leaves no "
                        "validation or no training examples")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed + 7919))
    tr, va = perm[n_val:], perm[:n_val]
    return (train[0][tr], train[1][tr]), (train[0][va], train[1][va])


def loss_points(err: float, base: float, task: str) -> float:
    """The loss the budget counts: points of error (classification), RMSE above (regression)."""
    return (err - base) * (100.0 if task == "classification" else 1.0)


def sensitivity(module: nn.Module, names: list[str], val: Data, task: str, settings,
                log: Log, train: Data | None = None) -> dict:
    """Per layer, the validation loss of pruning it alone (magnitude) to each of
    :data:`DENSITIES` and of quantizing it alone at each width (module docstring). With
    ``train`` and ``settings.budget_steps`` > 0, each pruning is followed by that many
    retraining steps (the pruned layer masked) before the loss is measured, and the network
    is restored after."""
    from sw.compression.prune import Pruner

    layer_of = dict(weight_layers(module))
    base = eval_error(module, *val, task)
    saved = copy.deepcopy(module.state_dict())
    steps = settings.budget_steps if train is not None else 0
    out: dict[str, dict] = {}
    for n in names:
        w = layer_of[n].weight
        orig = w.detach().clone()
        a = orig.abs().flatten()
        prune = {}
        for d in DENSITIES:
            keep = max(1, int(round(d * a.numel())))
            thr = float(torch.topk(a, keep).values[-1])
            if steps:
                pruner = Pruner({n: layer_of[n]})
                pruner.prune({n: thr / pruner.std[n] if pruner.std[n] > 0 else 0.0})
                pruner.attach()
                try:
                    fit(module, module.parameters(), *_subset(train, steps * settings.batch_size,
                                                              settings.seed),
                        TrainSettings(epochs=1, lr=settings.retrain_lr,
                                      batch_size=settings.batch_size,
                                      optimizer=settings.optimizer, shift=settings.shift,
                                      task=task),
                        seed=settings.seed, progress=False, after_step=pruner.after_step)
                finally:
                    pruner.detach()
            else:
                with torch.no_grad():
                    w.copy_(orig * (orig.abs() >= thr))
            prune[d] = loss_points(eval_error(module, *val, task), base, task)
            if steps:
                module.load_state_dict(saved)
        quant = {}
        qn = settings.quantizer_of(n)
        top = settings.bits_of(n)
        widths = [top] if quantizer_bits(qn, 4) != 4 else list(range(MIN_BITS, top + 1))
        for b in widths:
            q = quantize_weights(orig.numpy(), b, settings.init, seed=settings.seed, name=n,
                                 quantizer="kmeans" if qn == "hessian" else qn,
                                 ecsq_lambda=settings.ecsq_lambda)
            with torch.no_grad():
                w.copy_(torch.from_numpy(q.codebook[q.indices]))
            quant[b] = loss_points(eval_error(module, *val, task), base, task)
        module.load_state_dict(saved)
        out[n] = {"weights": int(orig.numel()), "prune": prune, "quantize": quant}
        log(f"sensitivity {n}: prune " + ", ".join(f"{100 * d:g}% {v:+.2f}"
                                                   for d, v in prune.items())
            + "; quantize " + ", ".join(f"{b} bits {v:+.2f}" for b, v in quant.items()))
    return out


def _subset(data: Data, n: int, seed: int) -> Data:
    """A seeded random ``n`` examples of ``data`` (all of them if it has no more)."""
    if len(data[0]) <= n:
        return data
    idx = torch.randperm(len(data[0]), generator=torch.Generator().manual_seed(seed + 1))[:n]
    return data[0][idx], data[1][idx]


def est_bytes(weights: int, density: float, bits: int) -> float:
    """Estimated Huffman-coded bytes of a layer (module docstring, step 3)."""
    idx = math.log2(1 / density) + 1.44 if density < 1 else 1.0
    return weights * density * (max(bits - 0.5, 1.0) + idx) / 8


def plan(sens: dict, tau: float) -> tuple[dict[str, float], dict[str, int], float]:
    """Greedy per-layer densities and widths whose summed single-layer losses stay within
    ``tau`` (module docstring, step 3); returns them and the estimated loss."""
    dens_grid = {n: [1.0, *s["prune"]] for n, s in sens.items()}
    bits_grid = {n: sorted(s["quantize"], reverse=True) for n, s in sens.items()}
    di = dict.fromkeys(sens, 0)
    bi = dict.fromkeys(sens, 0)

    def loss(n: str, i: int, j: int) -> float:
        s = sens[n]
        p = 0.0 if i == 0 else max(0.0, s["prune"][dens_grid[n][i]])
        return p + max(0.0, s["quantize"][bits_grid[n][j]])

    def size(n: str, i: int, j: int) -> float:
        return est_bytes(sens[n]["weights"], dens_grid[n][i], bits_grid[n][j])

    total = sum(loss(n, 0, 0) for n in sens)
    while True:
        best = None
        for n in sens:
            for i, j in ((di[n] + 1, bi[n]), (di[n], bi[n] + 1)):
                if i >= len(dens_grid[n]) or j >= len(bits_grid[n]):
                    continue
                dl = loss(n, i, j) - loss(n, di[n], bi[n])
                if total + dl > tau:
                    continue
                saved = size(n, di[n], bi[n]) - size(n, i, j)
                score = saved / max(dl, 1e-3)
                if saved > 0 and (best is None or score > best[0]):
                    best = (score, n, i, j, dl)
        if best is None:
            break
        _, n, i, j, dl = best
        di[n], bi[n] = i, j
        total += dl
    return ({n: dens_grid[n][di[n]] for n in sens}, {n: bits_grid[n][bi[n]] for n in sens},
            total)


def compress_with_budget(compress_module: Callable, module: nn.Module, train_data: Data | None,
                         test_data: Data | None, settings, layers: list[str] | None = None,
                         meta: dict | None = None, log: Log | None = None,
                         task: str = "classification", val_data: Data | None = None):
    """``compress_module`` (:func:`sw.compression.compress.compress_module`, handed in: this
    module sits below it) under ``settings.max_loss`` (module docstring); returns the chosen
    attempt's ``CompressResult`` with ``report["budget"]``."""
    log = log or (lambda _msg: None)
    s = settings
    budget = float(s.max_loss)
    if train_data is None or len(train_data[0]) < 2:
        raise DataError("--max-loss needs training examples (a validation split is held out "
                        "of them for the sensitivity analysis and the check)")
    t0 = time.perf_counter()
    torch.manual_seed(s.seed)
    if val_data is not None and len(val_data[0]):
        train, val = train_data, val_data
    else:
        train, val = split_validation(train_data, s.val_fraction, s.seed)
    named = weight_layers(module)
    names = [n for n, _ in named if layers is None or n in layers]
    if s.dense_epochs > 0:  # dense training on the training part only
        fit(module, module.parameters(), *train,
            TrainSettings(epochs=s.dense_epochs, lr=s.lr, batch_size=s.batch_size,
                          optimizer=s.optimizer, weight_decay=s.weight_decay, shift=s.shift,
                          task=task),
            seed=s.seed, desc="dense", progress=s.progress)
    unit = "points of error" if task == "classification" else "RMSE"
    base_val = eval_error(module, *val, task)
    log(f"budget: at most {budget:g} {unit} lost on a validation split of {len(val[0]):,} "
        f"examples (dense: {_show(base_val, task)}); sensitivity analysis of {len(names)} layers")
    sens = sensitivity(module, names, val, task, s, log, train)
    dense = copy.deepcopy(module)
    t_sens = time.perf_counter() - t0

    # distinct plans, from the most cautious to the most aggressive tolerance
    plans: list[tuple[float, dict, dict, float]] = []
    for j in LADDER:
        tau = budget * 2 ** (j / 2) if budget > 0 else 0.0
        dens, bits, est = plan(sens, tau)
        if not plans or (dens, bits) != (plans[-1][1], plans[-1][2]):
            plans.append((tau, dens, bits, est))
    attempts: list[dict] = []
    results = []
    lo, hi = -1, len(plans)  # plans[lo] held the budget, plans[hi] broke it
    i = next((k for k, p in enumerate(plans) if p[0] >= TAU_START * budget), len(plans) - 1)
    for k in range(1, s.budget_tries + 1):
        if k > 1:
            i = (lo + hi) // 2
        if not lo < i < hi:
            break
        tau, dens, bits, est = plans[i]
        sk = dataclasses.replace(s, max_loss=None, dense_epochs=0, sensitivity={}, density=dens,
                                 layer_bits=dict(bits))
        log(f"budget attempt {k}/{s.budget_tries}: plan {i + 1} of {len(plans)}, tolerance "
            f"{tau:.3g} (one-shot estimate {est:.2f}): "
            + ", ".join(f"{n} {100 * dens[n]:.3g}% {bits[n]} bits" for n in names))
        net = copy.deepcopy(dense)
        res = compress_module(net, train, test_data, sk, layers=names, meta=meta, log=log,
                              task=task)
        err_val = eval_error(res.module, *val, task)
        lost = loss_points(err_val, base_val, task)
        ok = lost <= budget + 1e-9
        rec = {"plan": i + 1, "tolerance": tau, "estimated_loss": est, "density": dens,
               "bits": bits, "val_error": err_val, "val_loss": lost, "within_budget": ok,
               "ratio": res.report["ratio"], "test_error": res.report["error_compressed"]}
        attempts.append(rec)
        results.append(res)
        log(f"budget attempt {k}: validation loss {lost:+.3f} {unit} "
            f"({'within' if ok else 'over'} {budget:g}), ratio {rec['ratio']:.1f}x")
        if ok:
            lo = i
        else:
            hi = i
    ok_idx = [i for i, a in enumerate(attempts) if a["within_budget"]]
    if ok_idx:
        best = max(ok_idx, key=lambda i: attempts[i]["ratio"])
    else:
        best = min(range(len(attempts)), key=lambda i: attempts[i]["val_loss"])
        log(f"budget NOT met: no attempt lost at most {budget:g} {unit} on the validation "
            f"split; keeping the least lossy (attempt {best + 1}, "
            f"{attempts[best]['val_loss']:+.3f})")
    result = results[best]
    rep = result.report
    test_loss = None
    if rep.get("error_dense") is not None and rep.get("error_compressed") is not None:
        test_loss = loss_points(rep["error_compressed"], rep["error_dense"], task)
    rep["budget"] = {
        "max_loss": budget, "unit": unit, "met": bool(ok_idx), "chosen_attempt": best + 1,
        "validation_examples": len(val[0]), "training_examples": len(train[0]),
        "val_error_dense": base_val, "val_loss": attempts[best]["val_loss"],
        "test_loss": test_loss,
        "test_within_budget": None if test_loss is None else bool(test_loss <= budget + 1e-9),
        "sensitivity": {n: {"weights": v["weights"],
                            "prune": {str(d): x for d, x in v["prune"].items()},
                            "quantize": {str(b): x for b, x in v["quantize"].items()}}
                        for n, v in sens.items()},
        "attempts": attempts, "sensitivity_s": t_sens,
    }
    rep["timings"]["total_s"] = time.perf_counter() - t0
    rep["settings"] = {**dataclasses.asdict(s), "chosen_density": attempts[best]["density"],
                       "chosen_bits": attempts[best]["bits"]}
    log(f"budget: chose attempt {best + 1}: validation loss {attempts[best]['val_loss']:+.3f}, "
        f"test loss {'n/a' if test_loss is None else f'{test_loss:+.3f}'} {unit}, "
        f"{attempts[best]['ratio']:.1f}x")
    return result


def _show(err: float, task: str) -> str:
    return f"{100 * err:.2f}% error" if task == "classification" else f"RMSE {err:.4g}"


def summary(budget: dict) -> str:
    """The report's one-line budget verdict (printed by ``eie compress``)."""
    tl = budget["test_loss"]
    return (f"budget {budget['max_loss']:g} {budget['unit']}: "
            f"{'met' if budget['met'] else 'NOT met'} on the validation split "
            f"({budget['val_loss']:+.3f}, {budget['validation_examples']:,} examples; attempt "
            f"{budget['chosen_attempt']} of {len(budget['attempts'])}); test loss "
            f"{'n/a' if tl is None else f'{tl:+.3f}'}"
            + ("" if tl is None else f" ({'within' if budget['test_within_budget'] else 'over'}"
                                     " the budget)"))

