"""Helpers for the Amaranth-simulator tests of hw/ (async testbenches)."""

from __future__ import annotations

import numpy as np

from sim.amaranth_host import run_sim  # noqa: F401  (the tests' clocked simulator)
from sw.eie.config import EIEConfig
from sw.eie.pack import NetworkImage, pack_network


async def stream_put(ctx, stream, payload: dict | int) -> None:
    """Offer one item on ``stream`` (valid/ready) and wait until it is taken."""
    if isinstance(payload, dict):
        for k, v in payload.items():
            ctx.set(getattr(stream.payload, k), v)
    else:
        ctx.set(stream.payload, payload)
    ctx.set(stream.valid, 1)
    while True:
        _, _, ready = await ctx.tick().sample(stream.ready)
        if ready:
            break
    ctx.set(stream.valid, 0)


def dense_column_image(config: EIEConfig, n_out: int, n_in: int, seed: int = 0) -> NetworkImage:
    """One layer whose every weight is non-zero: each PE has exactly ceil(n_out / N) entries in
    every column (rows PE k owns), no padding."""
    from sw.qlayer import QuantizedLayer

    rng = np.random.default_rng(seed)
    cb = np.zeros(16, np.float32)
    cb[1:] = np.sort(rng.normal(0, 0.1, 15))
    codes = rng.integers(1, 16, (n_out, n_in)).astype(np.uint8)
    q = QuantizedLayer("dense", "linear", cb, codes, rng.normal(0, 0.1, n_out).astype(np.float32), 4)
    return pack_network([q], config)
