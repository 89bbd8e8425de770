"""Helpers for the Amaranth-simulator tests of hw/ (async testbenches)."""

from __future__ import annotations

import numpy as np

from sim.amaranth_host import run_sim  # noqa: F401  (the tests' clocked simulator)
from sw.eie.config import EIEConfig
from sw.eie.pack import NetworkImage, pack_network


async def stream_put(ctx, stream, payload: dict | int) -> None:
    """Offer one item on ``stream`` (valid/ready) and wait until it is taken (Glasgow's
    ``gateware/stream.py`` style). ``valid`` falls after the transfer, so back-to-back puts keep
    it high: one item per cycle."""
    if isinstance(payload, dict):
        for k, v in payload.items():
            ctx.set(getattr(stream.payload, k), v)
    else:
        ctx.set(stream.payload, payload)
    ctx.set(stream.valid, 1)
    await ctx.tick().until(stream.ready)
    ctx.set(stream.valid, 0)


async def stream_get(ctx, stream):
    """Take one item from ``stream``; returns its payload (a struct's fields as attributes)."""
    ctx.set(stream.ready, 1)
    (payload,) = await ctx.tick().sample(stream.payload).until(stream.valid)
    ctx.set(stream.ready, 0)
    return payload


async def mem_write(ctx, port, items) -> None:
    """Write ``(addr, data)`` pairs through a block's :func:`hw.signatures.write_signature`
    port, one per cycle (with ``nonzero`` where the port carries it)."""
    flagged = hasattr(port, "nonzero")
    ctx.set(port.en, 1)
    for addr, data in items:
        ctx.set(port.addr, addr)
        ctx.set(port.data, data)
        if flagged:
            ctx.set(port.nonzero, data != 0)
        await ctx.tick()
    ctx.set(port.en, 0)


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
