"""EIE's fixed-point number formats: the one definition, imported by the packer (to quantize
codebooks and biases) and by the golden model (to requantize accumulators). The rules are
docs/format.md, "Arithmetic"; :mod:`sw.eie.golden` states them as equations.
"""

from __future__ import annotations

import numpy as np

from sw.eie.config import EIEConfig
from sw.errors import DataError, FitError

# -- number formats ----------------------------------------------------------------------------


def int_range(bits: int) -> tuple[int, int]:
    """The range of a ``bits``-wide two's complement integer."""
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def saturate(x: np.ndarray, bits: int) -> np.ndarray:
    lo, hi = int_range(bits)
    return np.clip(np.asarray(x, dtype=np.int64), lo, hi)


def wrap(x: np.ndarray, bits: int) -> np.ndarray:
    """Two's complement wrap-around of int64 values to ``bits`` (<= 64) bits."""
    x = np.asarray(x, dtype=np.int64)
    s = np.uint64(64 - bits)
    return ((x.view(np.uint64) << s).view(np.int64)) >> s.astype(np.int64)


def to_fixed(x: np.ndarray, frac: int, bits: int) -> np.ndarray:
    """``round_half_even(x * 2**frac)`` saturated to ``bits`` (host-side quantization)."""
    x = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(x)):
        raise DataError("cannot quantize NaN or Inf values to fixed point")
    lo, hi = int_range(bits)
    return np.clip(np.rint(x * 2.0 ** frac), lo, hi).astype(np.int64)


def quantize_input(x_float: np.ndarray, config: EIEConfig) -> np.ndarray:
    """Host inputs -> ``act_bits`` integers with ``act_frac`` fraction bits."""
    return to_fixed(x_float, config.act_frac, config.act_bits)


def dequantize(x_int: np.ndarray, config: EIEConfig) -> np.ndarray:
    """Activation integers -> float64 values."""
    return np.asarray(x_int, dtype=np.float64) / 2.0 ** config.act_frac


def quantize_bias(bias_float: np.ndarray, config: EIEConfig) -> np.ndarray:
    """Biases are activations: ``act_bits`` wide, ``act_frac`` fraction bits."""
    return to_fixed(bias_float, config.act_frac, config.act_bits)


def choose_w_frac(codebook_float: np.ndarray, act_bits: int) -> int | None:
    """The largest ``w_frac`` in ``0..act_bits-1`` at which every centroid fits ``act_bits``
    after ``round_half_even``; None if none does."""
    cb = np.asarray(codebook_float, dtype=np.float64)
    lo, hi = int_range(act_bits)
    for f in range(act_bits - 1, -1, -1):
        r = np.rint(cb * 2.0 ** f)
        if r.min(initial=0) >= lo and r.max(initial=0) <= hi:
            return f
    return None


def quantize_codebook(codebook_float: np.ndarray, config: EIEConfig, name: str = "?") -> tuple[np.ndarray, int]:
    """A layer's float centroids -> (``codebook_size`` integers, ``w_frac``); code 0 stays 0."""
    cb = np.zeros(config.codebook_size, np.float64)
    src = np.asarray(codebook_float, dtype=np.float64)
    cb[: src.size] = src
    if cb[0] != 0:
        raise DataError(f"layer {name}: codebook entry 0 must be 0 (the code of a pruned weight)")
    f = choose_w_frac(cb, config.act_bits)
    if f is None:
        big = float(np.abs(cb).max())
        raise FitError(f"layer {name}: centroid magnitude {big:g} does not fit a {config.act_bits}-bit "
                       f"codebook entry (largest {int_range(config.act_bits)[1]} at w_frac = 0)")
    return codebook_integers(cb, config, f), f


def codebook_integers(codebook_float: np.ndarray, config: EIEConfig, w_frac: int) -> np.ndarray:
    """A layer's float centroids as integers at a given ``w_frac`` (at most the largest that
    fits, so they still fit ``act_bits``)."""
    cb = np.zeros(config.codebook_size, np.float64)
    src = np.asarray(codebook_float, dtype=np.float64)
    cb[: src.size] = src
    return to_fixed(cb, w_frac, config.act_bits)


def rounded(acc: np.ndarray, shift: int, config: EIEConfig) -> np.ndarray:
    """Steps 1 (wrap) and 2 of docs/format.md "Arithmetic": the accumulator (bias included)
    shifted to the output format, rounded half up, before saturation."""
    acc = wrap(acc, config.acc_bits)
    return acc if shift == 0 else (acc >> shift) + ((acc >> (shift - 1)) & 1)


def saturated(y: np.ndarray, config: EIEConfig) -> int:
    """How many of the values ``y`` (from :func:`rounded`) step 3 saturates."""
    lo, hi = int_range(config.act_bits)
    return int(np.count_nonzero((y < lo) | (y > hi)))


def requantize(acc: np.ndarray, shift: int, relu: bool, config: EIEConfig) -> np.ndarray:
    """Steps 1 (wrap) to 4 of docs/format.md "Arithmetic" on accumulator values."""
    y = saturate(rounded(acc, shift, config), config.act_bits)
    return np.maximum(y, 0) if relu else y
