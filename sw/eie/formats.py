"""Per-layer activation formats from calibration data (docs/format.md "Activation formats").

One ``act_frac`` for every layer saturates silently where a layer's activations outgrow
``2**(act_bits - 1 - act_frac)``. Here each activation vector gets the finest format in which
the largest magnitude seen on calibration inputs, times a headroom, still fits ``act_bits``.
"""

from __future__ import annotations

import math

import numpy as np

from sw.eie.config import EIEConfig
from sw.eie.fixedpoint import int_range, quantize_codebook
from sw.eie.golden import float_network
from sw.errors import DataError
from sw.qlayer import QuantizedLayer

HEADROOM = 1.25  # margin over the largest magnitude seen while calibrating


def frac_for(magnitude: float, config: EIEConfig, headroom: float = HEADROOM) -> int:
    """The largest fraction width ``f`` in ``0..act_bits-1`` with ``magnitude * headroom *
    2**f`` inside the ``act_bits`` range (``act_bits - 1`` for an all-zero vector)."""
    hi = int_range(config.act_bits)[1]
    m = float(magnitude) * headroom
    if not math.isfinite(m):
        raise DataError("calibration activations hold NaN or Inf")
    for f in range(config.act_bits - 1, -1, -1):
        if m * 2.0 ** f <= hi:
            return f
    return 0


def choose_formats(layers: list[QuantizedLayer], x_calib: np.ndarray, config: EIEConfig,
                   headroom: float = HEADROOM) -> list[int]:
    """``[in_frac_0, out_frac_0, ..., out_frac_{L-1}]`` for :func:`sw.eie.pack.pack_network`
    from the float activations of ``x_calib`` (B, n_in); each ``out_frac`` is kept within
    ``w_frac + in_frac`` (the finest the layer's products can give)."""
    x = np.atleast_2d(np.asarray(x_calib, dtype=np.float64))
    if x.size == 0:
        raise DataError("no calibration inputs to choose activation formats from")
    outs = float_network(layers, x)
    fracs = [frac_for(np.abs(x).max(), config, headroom)]
    for q, y in zip(layers, outs, strict=True):
        _, w_frac = quantize_codebook(q.codebook, config, q.name)
        fracs.append(min(frac_for(np.abs(y).max(initial=0.0), config, headroom), w_frac + fracs[-1]))
    return fracs
