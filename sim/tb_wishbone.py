"""cocotb bench of the Wishbone front end (:class:`hw.soc.frontend.EIEBus`) under Verilator,
driven by the initiator model :class:`sim.cocotb_wishbone.WishboneInitiator` (classic cycles,
and pipelined ones with random idle cycles; the target's wait states and ``stall``).

Tests (environment: ``EIE_WB_CASE``, a pickled :class:`sim.job.Case`; ``EIE_WB_SEED``):

- ``registers_and_windows``: every register read (constants as the map says) and every rw
  register written and read back; a write to every read-only register refused; every word of
  every write window written for every PE (and the broadcast PE), a read of each refused;
  every entry of the input window written and read back through the activation window, every
  PE; the other bank and the busy counters read; writes to the read windows and unmapped
  addresses refused; each refusal with ``err``, its code and address in ERROR / ERROR_ADDR,
  and the next access working;
- ``third_party_bus_model``: cocotbext-wishbone's master under the same bus host: every
  register, a refused START, a load and the case's first run against the golden model and
  the cycle model;
- ``network``: the case's image loaded and its runs played by
  :class:`hw.soc.bus_host.AsyncBusHost`, once per bus mode: outputs of both banks against the
  golden model, ``cycles`` / ``stall_cycles`` / busy counters against the cycle model; then
  START before a reload refused after a soft reset.

:func:`bus_design` builds the model (the Verilog from :func:`hw.soc.frontend.generate`,
cached by a hash of the configuration and of ``hw/``), :func:`run_bench` runs a test on it.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge

from hw import host
from hw.params import HWParams
from hw.soc.bus_host import AsyncBusHost, BusError
from hw.soc.regmap import ErrorCode, RegisterMap, regmap
from sw.eie.config import EIEConfig
from sw.fsutil import atomic_write_text

from .cocotb_wishbone import CocotbextBus, WishboneInitiator
from .job import Case, load, save
from .runner import BUILD, REPO, Design, build

CLOCK_NS = 10
TOP = "eie_bus"
MODES = {"classic": dict(pipelined=False), "pipelined": dict(pipelined=True, p_idle=0.25)}


# -- the bench -----------------------------------------------------------------------------------
async def _setup(dut) -> tuple[RegisterMap, HWParams]:
    case: Case = load(Path(os.environ["EIE_WB_CASE"]))
    config = case.image.config
    rm = regmap(config)
    if len(dut.bus__adr) != rm.addr_width:
        raise AssertionError(f"the design's bus__adr has {len(dut.bus__adr)} bits; the map of "
                             f"{config.name!r} needs {rm.addr_width}")
    Clock(dut.clk, CLOCK_NS, unit="ns", impl="gpi").start(start_high=False)
    for name in ("bus__cyc", "bus__stb", "bus__we", "bus__adr", "bus__dat_w"):
        getattr(dut, name).value = 0
    dut.rst.value = 1
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0
    await RisingEdge(dut.clk)
    return rm, HWParams(config)


def _rng() -> np.random.Generator:
    return np.random.default_rng(int(os.environ.get("EIE_WB_SEED", "1")))


async def _refused(wb: WishboneInitiator, rm: RegisterMap, op, code: ErrorCode,
                   addr: int) -> None:
    """``op`` ends with err; ERROR and ERROR_ADDR name it; cleared; the next access works."""
    try:
        await op
    except BusError:
        pass
    else:
        raise AssertionError(f"access at {addr:#x} ({rm.locate(addr)}) was not refused "
                             f"(expected {code.name})")
    got = await wb.read(rm.reg("ERROR").addr, 2)
    if got != [int(code), addr]:
        raise AssertionError(f"access at {addr:#x}: ERROR, ERROR_ADDR = {got}, expected "
                             f"{[int(code), addr]}")
    await wb.write(rm.reg("CTRL").addr, [rm.reg("CTRL").bit("CLEAR_ERROR")])
    await wb.write(rm.reg("SCRATCH").addr, [addr ^ 0xA5A5A5A5])
    if await wb.read(rm.reg("SCRATCH").addr, 1) != [addr ^ 0xA5A5A5A5]:
        raise AssertionError(f"the access after the refused one at {addr:#x} failed")


def _signed(v: int) -> int:
    return v - (1 << 32) if v >> 31 else v


@cocotb.test()
async def registers_and_windows(dut) -> None:
    rm, p = await _setup(dut)
    rng = _rng()
    c = rm.config
    for mode, kw in MODES.items():
        wb = WishboneInitiator(dut, rng=rng, **kw)
        h = AsyncBusHost(wb, rm)
        await h.run(host.reset_program(p))
        await h.identify()
        regs = await wb.read(0, len(rm.registers))
        for r, v in zip(rm.registers, regs, strict=True):
            if r.value is not None and v != r.value:
                raise AssertionError(f"{mode}: {r.name} reads {v:#x}, the map says {r.value:#x}")
        rw = [r for r in rm.registers if r.access == "rw"]
        values = [int(rng.integers(0, 1 << r.width)) for r in rw]
        for r, v in zip(rw, values, strict=True):
            await wb.write(r.addr, [v])
        assert [(await wb.read(r.addr, 1))[0] for r in rw] == values, mode
        for r in rm.registers:
            if r.access == "w":
                assert await wb.read(r.addr, 1) == [0], r.name
            elif r.access == "r":
                await _refused(wb, rm, wb.write(r.addr, [0]), ErrorCode.READ_ONLY, r.addr)
        for a in (len(rm.registers), rm.reg_block, (1 << rm.addr_width) - 1):
            await _refused(wb, rm, wb.read(a, 1), ErrorCode.UNMAPPED, a)
        # every word of every write window, every PE and the broadcast PE
        for w in rm.windows:
            if w.access != "w":
                continue
            pes = ([*range(c.n_pe), rm.pe_broadcast] if w.broadcast else list(range(c.n_pe))) \
                if w.per_pe else [None]
            for pe in pes:
                first = w.addr(0, pe)
                words = [int(x) for x in rng.integers(0, 1 << 32, w.depth * w.words,
                                                      dtype=np.uint64)]
                if w.words & (w.words - 1) == 0:
                    await wb.write(first, words)
                else:  # padding words between entries: one block per entry
                    for i in range(w.depth):
                        await wb.write(w.addr(i, pe), words[i * w.words:(i + 1) * w.words])
            last = w.addr(w.depth - 1, pes[-1], word=w.words - 1)
            await _refused(wb, rm, wb.read(last, 1), ErrorCode.WRITE_ONLY, last)
            if w.per_pe:
                beyond = w.base + (c.n_pe << w.pe_shift)
                if rm.locate(beyond) == "nothing":
                    await _refused(wb, rm, wb.write(beyond, [0]), ErrorCode.UNMAPPED, beyond)
        # the input window, read back through the activation window (bank 0), every PE
        inp, act, busy = rm.window("INPUT"), rm.window("ACT"), rm.window("BUSY")
        ab = c.act_bits
        vals = rng.integers(-(1 << (ab - 1)), 1 << (ab - 1), (c.n_pe, c.act_depth))
        await wb.write(rm.reg("ACT_CLEAR").addr, [0])
        for k in range(c.n_pe):
            await wb.write(inp.addr(0, k), [int(v) & ((1 << ab) - 1) for v in vals[k]])
        for k in range(c.n_pe):
            got = [_signed(v) for v in await wb.read(act.addr(0, k, bank=0), c.act_depth)]
            if got != [int(v) for v in vals[k]]:
                raise AssertionError(f"{mode}: PE {k}'s input read back as {got}")
            await wb.read(act.addr(0, k, bank=1), c.act_depth)
        assert await wb.read(busy.addr(0, 0), c.n_pe) == [0] * c.n_pe  # no run since reset
        for w in (act, busy):
            a = w.addr(w.depth - 1, c.n_pe - 1, bank=w.banks - 1)
            await _refused(wb, rm, wb.write(a, [1]), ErrorCode.READ_ONLY, a)
            bc = w.base + (w.pe_broadcast << w.pe_shift)
            await _refused(wb, rm, wb.read(bc, 1), ErrorCode.UNMAPPED, bc)
        await wb.abort_read(act.addr(0, 0), 2)
        await wb.tick(8)
        assert await wb.read(rm.reg("ID").addr, 1) == [rm.id_magic]
        if wb.waited == 0 or (kw["pipelined"] and wb.stalled == 0):
            raise AssertionError(f"{mode}: no wait states / back-pressure seen")
        dut._log.info(f"{mode}: {wb.accesses} accesses, {wb.waited} wait cycles, "
                      f"{wb.stalled} stalled cycles")


@cocotb.test()
async def network(dut) -> None:
    rm, p = await _setup(dut)
    case: Case = load(Path(os.environ["EIE_WB_CASE"]))
    image = case.image
    rng = _rng()
    timings = {}
    for mode, kw in MODES.items():
        wb = WishboneInitiator(dut, rng=rng, **kw)
        h = AsyncBusHost(wb, rm)
        t = time.perf_counter()
        await h.run(host.load_program(p, image))
        timings[mode] = time.perf_counter() - t
        for run in case.runs:
            out = await h.run(host.inference_program(p, image, run.x, run.first_layer,
                                                     run.n_layers, read_back=2))
            for li, y in out.outputs:
                want = run.expect[li - run.first_layer]
                if not np.array_equal(y, want):
                    raise AssertionError(f"{mode}, run {run.label}: layer {li} outputs differ "
                                         f"from the golden model at "
                                         f"{np.flatnonzero(y != want)[:8]}")
            (cnt,) = out.counters
            model = (sum(run.model_cycles), sum(run.model_stalls))
            if (cnt.cycles, cnt.stall_cycles) != model or \
                    not np.array_equal(cnt.busy, run.model_busy.sum(axis=0)):
                raise AssertionError(f"{mode}, run {run.label}: cycles/stalls "
                                     f"{(cnt.cycles, cnt.stall_cycles)}, busy {cnt.busy}; cycle "
                                     f"model {model}, {run.model_busy.sum(axis=0)}")
        # after a soft reset the layer table is forgotten: START is refused until reloaded
        await h.run(host.reset_program(p))
        try:
            await h.run([host.Start(0, 1)])
        except BusError as e:
            if e.code != ErrorCode.NOT_LOADED:
                raise
        else:
            raise AssertionError("START after a soft reset was not refused")
        dut._log.info(f"{mode}: image loaded in {timings[mode]:.2f} s of simulation, "
                      f"{len(case.runs)} runs bit-exact and cycle-exact")


@cocotb.test()
async def third_party_bus_model(dut) -> None:
    """The same bus host and checks through cocotbext-wishbone's master (random idle cycles):
    every register, one refused access, and the case's first run."""
    rm, p = await _setup(dut)
    case: Case = load(Path(os.environ["EIE_WB_CASE"]))
    bus = CocotbextBus(dut, rng=_rng(), p_idle=0.3)
    h = AsyncBusHost(bus, rm)
    await h.run(host.reset_program(p))
    await h.identify()
    regs = await bus.read(0, len(rm.registers))
    assert [v for r, v in zip(rm.registers, regs, strict=True) if r.value is not None] == \
        [r.value for r in rm.registers if r.value is not None]
    try:
        await h.run([host.Start(0, 1)])
    except BusError as e:
        if e.code != ErrorCode.NOT_LOADED:
            raise
    else:
        raise AssertionError("START before a load was not refused")
    run = case.runs[0]
    out = await h.run(host.load_program(p, case.image)
                      + host.inference_program(p, case.image, run.x, run.first_layer,
                                               run.n_layers))
    ((_, y),), (cnt,) = out.outputs, out.counters
    assert np.array_equal(y, run.expect[-1]), "outputs differ from the golden model"
    assert cnt.cycles == sum(run.model_cycles), (cnt.cycles, run.model_cycles)


# -- building and running --------------------------------------------------------------------------
def _generator_hash(config: EIEConfig) -> str:
    h = hashlib.sha256(json.dumps(config.to_dict(), sort_keys=True).encode())
    for src in sorted((REPO / "hw").rglob("*.py")) + [REPO / "sw" / "eie" / "config.py"]:
        h.update(str(src.relative_to(REPO)).encode())
        h.update(src.read_bytes())
    return h.hexdigest()[:16]


def bus_verilog(config: EIEConfig) -> Path:
    """The Verilog of :class:`hw.soc.frontend.EIEBus` for ``config`` (generated once)."""
    path = BUILD / "rtl" / f"{TOP}-{config.name}-{_generator_hash(config)}.v"
    if not path.exists():
        from hw.soc.frontend import generate

        atomic_write_text(path, generate(config, TOP).text)
    return path


def bus_design(config: EIEConfig, sim: str | None = None) -> Design:
    """A built simulation model of the front end for ``config``."""
    return build([bus_verilog(config)], TOP, sim=sim)


def run_bench(design: Design, case: Case, testcase: str | None = None, seed: int = 1) -> Path:
    """Run the bench's tests (``testcase``: one of them) on ``design`` with ``case``; raises
    on a failure. Returns the results file."""
    run_dir = design.build_dir / "runs" / f"wb-{os.getpid()}-{time.time_ns() % 10**9}"
    run_dir.mkdir(parents=True)
    case_file = run_dir / "case.pkl"
    save(case, case_file)
    env = {"EIE_WB_CASE": str(case_file), "EIE_WB_SEED": str(seed),
           "COCOTB_LOG_LEVEL": os.environ.get("COCOTB_LOG_LEVEL", "INFO"),
           "COCOTB_REWRITE_ASSERTION_FILES": "tb_wishbone.py"}
    return design.run("sim.tb_wishbone", testcase=testcase, env=env, test_dir=run_dir / "sim",
                      quiet=True)
