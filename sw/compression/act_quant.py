"""Quantization-aware fine-tuning for low-bit activations (``eie compress --act-bits B``).

DoReFa-Net (Zhou et al. 2016) trains with k-bit activations by clipping them to [0, 1],
rounding to the k-bit uniform grid in the forward pass, and passing the gradient straight
through the rounding in the backward pass (the straight-through estimator, STE). EIE's
activations are ``B``-bit two's complement integers with a power-of-two scale per activation
vector (docs/format.md "Activation formats"), so here DoReFa's [0, 1] clip becomes the
format's range ``[-2**(B-1), 2**(B-1) - 1] / 2**frac`` and its ``1 / (2**k - 1)`` grid
becomes the ``2**-frac`` grid. The fraction bits are the ones the hardware will use:
:func:`sw.eie.formats.frac_for` (the one owner of that choice) on the largest magnitude seen
on calibration inputs (the first :data:`CALIB` training examples, as ``eie run`` and ``eie
sim`` calibrate), recomputed at the start of every epoch as the weights move.

While attached (:meth:`ActQuant.attached`), every compressed ``nn.Linear`` computes what EIE
computes (docs/format.md "Arithmetic"):

- its input ``x`` -> ``fq(x, in_frac)``, rounded half to even (the host's ``to_fixed``);
- its weight -> ``fq(W, w_frac)``: the codebook entries are ``B`` bits too, at the ``w_frac``
  the packer picks (the largest at which they fit, lowered until the layer's shift fits the
  layer table, which at 8 bits costs a layer with wide-ranging activations several bits);
- its bias -> ``fq(b, out_frac)``;
- its output ``y = W x + b`` -> ``fq(y, out_frac)``, rounded half up and saturated (the
  write-back).

Backward: the STE, the gradient passed unchanged where the value lies inside the format's
range and zero where it saturated (DoReFa's clip). A layer whose input is the previous
compressed layer's output (after its ReLU; found by comparing the calibration activations) is
one EIE chain with it and takes that layer's output format as its input format, as
:func:`sw.eie.formats.choose_formats` does. Everything else in the module (convolutions and
other host nodes) stays in float, as it runs on the host.

:func:`sw.compression.compress.compress_module` attaches it while retraining after every
pruning step and while fine-tuning the centroids (``act_phases="all"``), or only while
fine-tuning (``"finetune"``: the network is pruned exactly as without ``--act-bits``, and the
centroids and biases adapt to the formats).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sw.eie.config import EIEConfig
from sw.eie.fixedpoint import int_range, quantize_codebook
from sw.eie.formats import frac_for
from sw.eie.pack import pack_network
from sw.errors import DataError
from sw.qlayer import QuantizedLayer

ACT_BITS = (4, 16)  # the range --act-bits takes
ACT_PHASES = ("all", "finetune")  # fake-quantized: retraining and fine-tuning, or fine-tuning
CALIB = 1000  # calibration examples: the first training inputs, as `eie run` takes them


def check_act_bits(bits: int | None) -> None:
    """One line if ``bits`` is not a width ``--act-bits`` takes."""
    lo, hi = ACT_BITS
    if bits is not None and (isinstance(bits, bool) or not isinstance(bits, int)
                             or not lo <= bits <= hi):
        raise DataError(f"--act-bits must be an integer in {lo}..{hi}, got {bits!r}")


def qat_config(config: EIEConfig, bits: int) -> EIEConfig:
    """``config`` with ``bits``-bit activations (``act_frac`` kept inside them)."""
    return config.replace(act_bits=bits, act_frac=min(config.act_frac, bits - 1))


class _FakeQuant(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, frac: int, bits: int, half_up: bool) -> torch.Tensor:
        lo, hi = int_range(bits)
        s = x * 2.0 ** frac  # exact: a power-of-two scale
        r = torch.floor(s + 0.5) if half_up else torch.round(s)  # torch.round: half to even
        ctx.save_for_backward((r >= lo) & (r <= hi))
        return r.clamp(lo, hi) * 2.0 ** -frac

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (inside,) = ctx.saved_tensors
        return grad * inside, None, None, None


def fake_quantize(x: torch.Tensor, frac: int, bits: int, half_up: bool = False) -> torch.Tensor:
    """``x`` on the ``bits``-bit two's complement grid with ``frac`` fraction bits: rounded
    (half to even, as :func:`sw.eie.fixedpoint.to_fixed`; ``half_up``: half up, as the
    write-back), saturated, and scaled back. Backward: the straight-through estimator, zero
    where the value saturated."""
    return _FakeQuant.apply(x, int(frac), int(bits), bool(half_up))


@dataclass(frozen=True)
class LayerFormat:
    """One compressed FC layer's fixed-point formats, as the packer will choose them."""

    in_frac: int
    out_frac: int
    w_frac: int
    chained: bool  # its input is the previous compressed layer's output (one EIE chain)


class ActQuant:
    """Fake quantization of the compressed ``nn.Linear`` layers of ``module`` to ``config``'s
    ``act_bits`` (module docstring). ``relu``: whether EIE applies a ReLU after each layer
    (its output format is chosen from the activations after it); ``calib``: the inputs the
    formats are chosen from."""

    def __init__(self, module: nn.Module, layers: Mapping[str, nn.Module],
                 relu: Mapping[str, bool], config: EIEConfig, calib: torch.Tensor) -> None:
        self.module = module
        self.layers = {n: m for n, m in layers.items() if isinstance(m, nn.Linear)}
        self.relu = {n: bool(relu.get(n, False)) for n in self.layers}
        self.config = config
        self.calib = calib[:CALIB]
        if len(self.calib) == 0:
            raise DataError("--act-bits needs calibration inputs (training examples)")
        self.formats: dict[str, LayerFormat] = {}
        self._active = False

    @property
    def bits(self) -> int:
        return self.config.act_bits

    @torch.no_grad()
    def calibrate(self, _epoch: int | None = None) -> dict[str, LayerFormat]:
        """Choose every layer's formats from the float activations of the calibration inputs
        (fake quantization off, eval mode); returns them (also in :attr:`formats`)."""
        seen: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

        def hook(name: str, _m: nn.Module, args: tuple, out: torch.Tensor) -> None:
            if name not in seen:  # the first call (a layer called twice keeps its first use)
                seen[name] = (args[0].detach(), out.detach())

        handles = [m.register_forward_hook(functools.partial(hook, n))
                   for n, m in self.layers.items()]
        was_training, active = self.module.training, self._active
        self._active = False
        try:
            self.module.eval()
            self.module(self.calib)
        finally:
            for h in handles:
                h.remove()
            self._active = active
            self.module.train(was_training)
        formats: dict[str, LayerFormat] = {}
        prev: tuple[str, torch.Tensor] | None = None
        for name, (x, y) in seen.items():  # in the order the layers ran
            a = torch.relu(y) if self.relu[name] else y
            chained = prev is not None and prev[1].shape == x.shape and torch.equal(prev[1], x)
            in_frac = formats[prev[0]].out_frac if chained else \
                frac_for(float(x.abs().max()), self.config)
            formats[name] = self._layer_format(name, in_frac, float(a.abs().max()), chained)
            prev = (name, a)
        self.formats = formats
        return formats

    def _layer_format(self, name: str, in_frac: int, out_max: float, chained: bool) -> LayerFormat:
        w = self.layers[name].weight.detach()
        # the codebook's extremes decide its w_frac; a stand-in layer holding just them gets
        # the formats sw.eie.formats.choose_formats and sw.eie.pack.pack_network would give
        cb = np.zeros(4, np.float32)
        cb[1], cb[2] = float(w.min()), float(w.max())
        stand_in = QuantizedLayer(name, "linear", cb, np.array([[1, 2]], np.uint8), None, 2)
        _, w0 = quantize_codebook(stand_in.codebook, self.config, name)
        out_frac = min(frac_for(out_max, self.config), w0 + in_frac)
        image = pack_network([stand_in], self.config, formats=[in_frac, out_frac])
        return LayerFormat(in_frac, out_frac, image.layers[0].w_frac, chained)

    def _forward(self, name: str, layer: nn.Linear, x: torch.Tensor) -> torch.Tensor:
        f = self.formats.get(name)
        if not self._active or f is None:
            return F.linear(x, layer.weight, layer.bias)
        b = self.bits
        w = fake_quantize(layer.weight, f.w_frac, b)
        bias = None if layer.bias is None else fake_quantize(layer.bias, f.out_frac, b)
        y = F.linear(fake_quantize(x, f.in_frac, b), w, bias)
        return fake_quantize(y, f.out_frac, b, half_up=True)

    @contextmanager
    def attached(self) -> Iterator[ActQuant]:
        """Calibrate, then fake-quantize every layer's forward until the block ends."""
        self.calibrate()
        for n, m in self.layers.items():
            m.forward = functools.partial(self._forward, n, m)
        self._active = True
        try:
            yield self
        finally:
            self._active = False
            for m in self.layers.values():
                m.__dict__.pop("forward", None)

    def describe(self) -> str:
        """``ip1 6/3/3 (in/out/codebook fraction bits), ...``"""
        return ", ".join(f"{n} {f.in_frac}/{f.out_frac}/{f.w_frac}"
                         for n, f in self.formats.items()) + " (in/out/codebook fraction bits)"


def act_footprint(chains: list[list[QuantizedLayer]], config: EIEConfig, bits: int) -> dict:
    """The on-chip footprint (:func:`sw.compression.footprint.onchip_footprint`) of ``chains``
    on ``config`` with ``bits``-bit activations beside the same with 16-bit ones: ``{"bits":
    b, "at": {b: footprint, 16: footprint}, "saved_bytes": ...}`` (codebooks, biases and the
    activation register files are ``act_bits`` wide; the sparse matrix and pointers are not)."""
    from sw.compression.footprint import onchip_footprint

    at = {b: onchip_footprint(chains, qat_config(config, b)) for b in dict.fromkeys((bits, 16))}
    out: dict = {"bits": bits, "at": at}
    if not any("error" in fp for fp in at.values()):
        out["saved_bytes"] = at[16]["total_bytes"] - at[bits]["total_bytes"]
    return out


def format_act_footprint(fp: dict) -> str:
    """One line: what ``--act-bits`` saves on chip (from :func:`act_footprint`)."""
    b, at = fp["bits"], fp["at"]
    if "saved_bytes" not in fp:
        err = next(f["error"] for f in at.values() if "error" in f)
        return f"on-chip footprint at {b}-bit activations: not available: {err}"
    lo, hi = at[b], at[16]
    parts = ", ".join(f"{what} {lo[k]:,} vs {hi[k]:,}" for what, k in
                      (("activations", "act_bytes"), ("biases", "bias_bytes"),
                       ("codebooks", "codebook_bytes")))
    return (f"{b}-bit activations ({lo['config']}, {lo['n_pe']} PEs): on-chip image "
            f"{lo['total_bytes']:,} bytes vs {hi['total_bytes']:,} at 16 bits ({parts}): "
            f"{fp['saved_bytes']:,} bytes saved ({100 * fp['saved_bytes'] / hi['total_bytes']:.1f}%)")
