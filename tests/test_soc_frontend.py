"""The Wishbone front end (hw/soc/frontend.py) in Amaranth's simulator, driven by a Wishbone
initiator model (sim/amaranth_wishbone.py) and the bus host (hw/soc/bus_host.py): networks
bit-exact with the golden model and the direct host backend (same cycle counts), every
register, every window, every error answered with err and the next access working."""

from __future__ import annotations

import numpy as np
import pytest
from helpers_eie import chain

from hw import host
from hw.params import HWParams, WrMem
from hw.soc.bus_host import AsyncBusHost, BusError, BusWrite, blocks, write_blocks
from hw.soc.frontend import EIEBus
from hw.soc.regmap import SOFT_RESET_CYCLES, ErrorCode, regmap
from hw.timing import rtl_timing
from sim.amaranth_host import run_sim, simulate
from sim.amaranth_wishbone import WishboneInitiator
from sw.eie import cycles, fixedpoint, golden
from sw.eie.config import PRESETS
from sw.eie.pack import pack_network

TINY = PRESETS["tiny"]


@pytest.fixture(scope="module")
def net():
    """A two-layer network on tiny, two inputs, and what the direct backend returns."""
    rng = np.random.default_rng(5)
    img = pack_network(chain(rng, [30, 36, 12], 0.35, scale=0.5), TINY)
    xs = [fixedpoint.quantize_input(rng.normal(0, 2, 30) * (rng.random(30) < 0.6), TINY)
          for _ in range(2)]
    phys = [img.input_to_physical(x) for x in xs]
    direct = simulate(img, phys, n_layers=2)
    return img, xs, phys, direct


def _bench(dut, body, **initiator):
    """Run ``body(ctx, wb, host)`` in Amaranth's simulator against ``dut``."""
    done = {}

    async def bench(ctx):
        wb = WishboneInitiator(ctx, dut.bus, **initiator)
        done["value"] = await body(ctx, wb, AsyncBusHost(wb, dut.regmap))
        done["wb"] = wb

    run_sim(dut, bench)
    return done["value"], done["wb"]


@pytest.mark.parametrize("mode", ["classic", "pipelined"])
def test_network_over_the_bus_is_bit_exact_and_cycle_exact(net, mode):
    img, xs, phys, direct = net
    dut = EIEBus(TINY)
    p = dut.params
    program = host.load_program(p, img)
    for a in phys:
        program += host.inference_program(p, img, a, read_back=2)

    async def body(ctx, wb, h):
        await h.identify()
        return await h.run(program)

    out, wb = _bench(dut, body, pipelined=mode == "pipelined", rng=np.random.default_rng(1),
                     p_idle=0.3 if mode == "classic" else 0.0)
    timing = rtl_timing(TINY)
    outputs = out.outputs
    for i, (x, a, d) in enumerate(zip(xs, phys, direct, strict=True)):
        (l1, y1), (l0, y0) = outputs[2 * i], outputs[2 * i + 1]
        assert (l1, l0) == (1, 0)
        ref = golden.run_network(img, x)
        assert np.array_equal(img.to_logical(1, y1), ref[1])
        assert np.array_equal(img.to_logical(0, y0), ref[0])  # the other bank
        assert np.array_equal(y1, d.output)
        c = out.counters[i]
        assert (c.cycles, c.stall_cycles) == (d.cycles, d.stall_cycles)
        assert np.array_equal(c.busy, d.busy)
        assert out.spans[i].done_cycle - out.spans[i].start_cycle == c.cycles
        model = [cycles.simulate_layer(img, li, v, timing)
                 for li, v in ((0, a), (1, golden.run_layer(img, 0, a)))]
        assert c.cycles == sum(r.cycles for r in model)
    assert wb.stalled > 0 and wb.waited > 0  # back-pressure and wait states were seen


def test_writes_become_one_block_per_pe_memory_and_broadcast_codebooks(net):
    img = net[0]
    rm = regmap(TINY)
    p = HWParams(TINY)
    load = host.image_load(p, img)
    ops = write_blocks(rm, load.writes)
    spmat, cb, layer = rm.window("SPMAT"), rm.window("CODEBOOK"), rm.window("LAYER")
    words_used = img.spmat.shape[1]
    spmat_ops = [o for o in ops if spmat.base <= o.addr < spmat.base + spmat.size]
    assert [(o.addr, len(o.words)) for o in spmat_ops] == \
        [(spmat.addr(0, k), 2 * words_used) for k in range(TINY.n_pe)]
    cb_ops = [o for o in ops if cb.base <= o.addr < cb.base + cb.size]
    assert [(o.addr, len(o.words)) for o in cb_ops] == \
        [(cb.addr(0, rm.pe_broadcast), img.codebook.size)]
    assert [o.addr for o in ops if layer.base <= o.addr < layer.base + layer.size] == \
        [layer.base]
    # every word of the wide writes is sent, once per PE (codebooks once)
    n_words = sum(len(o.words) for o in ops)
    per_pe = sum(rm.write_window(w.mem).words for w in load.writes
                 if w.mem not in (WrMem.CODEBOOK, WrMem.LAYER))
    assert n_words == TINY.n_pe * per_pe + img.codebook.size + layer.words * len(img.layers)
    assert blocks([(5, 1), (6, 2), (7, 3), (9, 4)], max_burst=2) == \
        [BusWrite(5, (1, 2)), BusWrite(7, (3,)), BusWrite(9, (4,))]


async def _expect_err(wb, h, rm, op, code: ErrorCode, addr: int) -> None:
    """``op`` is answered with err; ERROR / ERROR_ADDR / STATUS.ERROR say why; cleared; the
    next access works."""
    with pytest.raises(BusError):
        await op
    status, (got_code,), (got_addr,) = (await wb.read(rm.reg("STATUS").addr, 1))[0], \
        await wb.read(rm.reg("ERROR").addr, 1), await wb.read(rm.reg("ERROR_ADDR").addr, 1)
    assert (ErrorCode(got_code), got_addr) == (code, addr)
    assert status & rm.reg("STATUS").bit("ERROR")
    await wb.write(rm.reg("CTRL").addr, [rm.reg("CTRL").bit("CLEAR_ERROR")])
    assert await wb.read(rm.reg("ERROR").addr, 2) == [0, 0]
    assert not (await wb.read(rm.reg("STATUS").addr, 1))[0] & rm.reg("STATUS").bit("ERROR")
    await wb.write(rm.reg("SCRATCH").addr, [addr ^ 0x5A5A5A5A])
    assert await wb.read(rm.reg("SCRATCH").addr, 1) == [addr ^ 0x5A5A5A5A]


def test_registers_windows_and_every_error(net):
    img, xs, phys, direct = net
    dut = EIEBus(TINY)
    p, rm = dut.params, dut.regmap
    st = rm.reg("STATUS")
    ctrl = rm.reg("CTRL")
    R = {r.name: r.addr for r in rm.registers}

    async def status(wb):
        return (await wb.read(R["STATUS"], 1))[0]

    async def body(ctx, wb, h):
        await h.run(host.reset_program(p))
        # every register read; constants as the map says; the others at their reset values
        got = await wb.read(0, len(rm.registers))
        for r, v in zip(rm.registers, got, strict=True):
            if r.value is not None:
                assert v == r.value, r.name
        assert got[R["STATUS"]] == st.bit("READY")
        assert [got[R[n]] for n in ("SCRATCH", "FIRST_LAYER", "N_LAYERS", "CTRL", "ACT_CLEAR",
                                    "CYCLES", "STALL_CYCLES", "ERROR", "ERROR_ADDR")] == [0] * 9
        # rw registers hold what is written; w registers read 0
        await wb.write(R["SCRATCH"], [0xDEADBEEF])
        await wb.write(R["FIRST_LAYER"], [3, 4])  # FIRST_LAYER, N_LAYERS
        assert await wb.read(R["SCRATCH"], 3) == [0xDEADBEEF, 3, 4]
        assert await wb.read(R["CTRL"], 1) == [0]
        # refused accesses: each answered with err, the reason recorded, the next access fine
        for r in rm.registers:
            if r.access == "r":
                await _expect_err(wb, h, rm, wb.write(r.addr, [1]), ErrorCode.READ_ONLY, r.addr)
        too_big = 1 << p.n_layers_bits
        for name in ("FIRST_LAYER", "N_LAYERS"):
            await _expect_err(wb, h, rm, wb.write(R[name], [too_big]), ErrorCode.RANGE, R[name])
        assert await wb.read(R["FIRST_LAYER"], 2) == [3, 4]  # unchanged
        spmat = rm.window("SPMAT")
        unmapped = [len(rm.registers), rm.reg_block, spmat.base - 1,
                    spmat.base + (TINY.n_pe << spmat.pe_shift),
                    (1 << rm.addr_width) - 1]
        for a in unmapped:
            assert rm.locate(a) == "nothing"
            await _expect_err(wb, h, rm, wb.read(a, 1), ErrorCode.UNMAPPED, a)
            await _expect_err(wb, h, rm, wb.write(a, [0]), ErrorCode.UNMAPPED, a)
        for w in rm.windows:
            pe = (TINY.n_pe - 1) if w.per_pe else None
            last = w.addr(w.depth - 1, pe, w.banks - 1, w.words - 1)
            if w.access == "w":
                await _expect_err(wb, h, rm, wb.read(last, 1), ErrorCode.WRITE_ONLY, last)
            else:
                await _expect_err(wb, h, rm, wb.write(last, [0]), ErrorCode.READ_ONLY, last)
                if w.broadcast is False and w.per_pe:
                    bc = w.base + (w.pe_broadcast << w.pe_shift)
                    await _expect_err(wb, h, rm, wb.read(bc, 1), ErrorCode.UNMAPPED, bc)
        # START before any layer-table entry: NOT_LOADED (and a host program says why)
        await wb.write(R["FIRST_LAYER"], [0, 1])
        await _expect_err(wb, h, rm, wb.write(R["CTRL"], [ctrl.bit("START")]),
                          ErrorCode.NOT_LOADED, R["CTRL"])
        with pytest.raises(BusError, match="NOT_LOADED"):
            await h.run([host.Start(0, 1)])
        assert not await status(wb) & st.bit("ERROR")  # the host cleared it
        # every write window takes its first and last entry of the last PE, and broadcasts
        for w in rm.windows:
            if w.access != "w":
                continue
            pes = [TINY.n_pe - 1] + ([rm.pe_broadcast] if w.broadcast else []) \
                if w.per_pe else [None]
            for pe in pes:
                for i in (0, w.depth - 1):
                    await wb.write(w.addr(i, pe), [0] * w.words)
        assert await status(wb) & st.bit("LOADED")  # a layer-table write
        # layers outside the table, or not written since reset: BAD_LAYERS
        for first, n in ((0, 2), (TINY.max_layers - 1, 2), (TINY.max_layers, 0)):
            await wb.write(R["FIRST_LAYER"], [first, n])
            await _expect_err(wb, h, rm, wb.write(R["CTRL"], [ctrl.bit("START")]),
                              ErrorCode.BAD_LAYERS, R["CTRL"])
        # the input window read back through the activation window (bank 0), every PE
        rng = np.random.default_rng(3)
        inp, act = rm.window("INPUT"), rm.window("ACT")
        vals = rng.integers(-(1 << 15), 1 << 15, (TINY.n_pe, 5))
        await wb.write(R["ACT_CLEAR"], [0])
        for k in range(TINY.n_pe):
            await wb.write(inp.addr(0, k), [int(v) & 0xFFFF for v in vals[k]])
        for k in range(TINY.n_pe):
            got = await wb.read(act.addr(0, k, bank=0), 5)
            assert [v - (1 << 32) if v >> 31 else v for v in got] == list(vals[k])
        # a network: load, run; while it runs, memory writes, ACT_CLEAR and START are BUSY
        await h.run(host.load_program(p, img))
        await h.run([host.input_load(p, img, phys[0])])
        await wb.write(R["FIRST_LAYER"], [0, 2, ctrl.bit("START")])
        assert await status(wb) & st.bit("BUSY")
        assert (ctx.get(dut.ready), ctx.get(dut.busy), ctx.get(dut.done)) == (0, 1, 0)
        a_sp = spmat.addr(0, 0, word=1)
        await _expect_err(wb, h, rm, wb.write(a_sp, [0]), ErrorCode.BUSY, a_sp)
        await _expect_err(wb, h, rm, wb.write(R["ACT_CLEAR"], [0]), ErrorCode.BUSY, R["ACT_CLEAR"])
        await _expect_err(wb, h, rm, wb.write(R["CTRL"], [ctrl.bit("START")]), ErrorCode.BUSY,
                          R["CTRL"])
        await wb.read(act.addr(0, 0, bank=1), 1)  # reads are allowed while running
        first = await h.run([host.WaitDone(10_000), host.ReadOutput(1, 0, 3, 12),
                             host.ReadCounters()])
        assert np.array_equal(first.outputs[0][1], direct[0].output)
        assert first.counters[0].cycles == direct[0].cycles
        assert (ctx.get(dut.ready), ctx.get(dut.busy), ctx.get(dut.done)) == (1, 0, 1)
        # an aborted read: no answer, and the next access works
        await wb.abort_read(act.addr(0, 1), 2)
        await wb.tick(8)
        assert await wb.read(R["SCRATCH"], 1) == [R["CTRL"] ^ 0x5A5A5A5A]  # the last _expect_err
        # soft reset: READY low at once, the layer table forgotten, memories kept
        await wb.write(R["CTRL"], [ctrl.bit("RESET")])
        s = await status(wb)
        assert not s & (st.bit("READY") | st.bit("LOADED") | st.bit("DONE"))
        await h.run([host.WaitReady(TINY.act_depth + 4 * SOFT_RESET_CYCLES)])
        await wb.write(R["FIRST_LAYER"], [0, 2])
        await _expect_err(wb, h, rm, wb.write(R["CTRL"], [ctrl.bit("START")]),
                          ErrorCode.NOT_LOADED, R["CTRL"])
        table = [w for w in host.image_writes(p, img) if w.mem == WrMem.LAYER]
        again = await h.run([host.Write(tuple(table))]
                            + host.inference_program(p, img, phys[1]))
        return again

    again, _ = _bench(dut, body)
    assert np.array_equal(again.outputs[0][1], direct[1].output)
    assert again.counters[0].cycles == direct[1].cycles


def test_rom_build_behind_the_bus_needs_only_the_input(net):
    img, xs, phys, direct = net
    p = HWParams(TINY)
    dut = EIEBus(TINY, pe_inits=host.pe_inits(img), layer_init=host.layer_table(p, img))
    rm = dut.regmap

    async def body(ctx, wb, h):
        out = await h.run(host.reset_program(p) + host.inference_program(p, img, phys[0]))
        s = (await wb.read(rm.reg("STATUS").addr, 1))[0]
        return out, s

    (out, s), _ = _bench(dut, body, pipelined=True)
    assert s & rm.reg("STATUS").bit("LOADED")  # preloaded entries stay loaded over a reset
    assert np.array_equal(out.outputs[0][1], direct[0].output)


@pytest.mark.slow
def test_cocotb_bench_under_verilator(net):
    """sim/tb_wishbone.py: every register and window through the initiator model (classic and
    pipelined with idle cycles), cocotbext-wishbone's master, and the network's runs checked
    against the golden model and the cycle model in the bench."""
    from sim.job import Case, make_run
    from sim.runner import have_simulator
    from sim.tb_wishbone import bus_design, run_bench

    if not have_simulator("verilator"):
        pytest.fail("Verilator is not installed (make setup)")
    img, xs, phys, direct = net
    runs = [make_run(img, a, label=f"x{i}") for i, a in enumerate(phys)]
    runs.append(make_run(img, runs[0].expect[0], first_layer=1, label="layer 1 alone"))
    run_bench(bus_design(TINY), Case("wishbone", img, runs))


class _FakeBus:
    """A synchronous bus that answers from a dict and refuses the (address, value) writes of
    ``refuse`` (recording the code and address as the front end does): for the synchronous
    runner."""

    def __init__(self, rm, refuse: dict[tuple[int, int], ErrorCode]):
        self.rm = rm
        self.mem = {r.addr: r.value or 0 for r in rm.registers}
        self.mem[rm.reg("STATUS").addr] = rm.reg("STATUS").bit("READY") | \
            rm.reg("STATUS").bit("DONE")
        self.refuse = refuse
        self.log = []

    def write(self, addr, words):
        self.log.append(("w", addr, list(words)))
        for i, w in enumerate(words):
            if (addr + i, w) in self.refuse:
                self.mem[self.rm.reg("ERROR").addr] = int(self.refuse[addr + i, w])
                self.mem[self.rm.reg("ERROR_ADDR").addr] = addr + i
                raise BusError("err")
            self.mem[addr + i] = w

    def read(self, addr, count):
        self.log.append(("r", addr, count))
        return [self.mem.get(addr + i, 0) for i in range(count)]


def test_synchronous_runner_identifies_splits_bursts_and_explains_refusals(net):
    from hw.soc.bus_host import BusHost
    from sw.errors import ConfigError

    img = net[0]
    rm = regmap(TINY)
    p = HWParams(TINY)
    ctrl = rm.reg("CTRL")
    bus = _FakeBus(rm, {(ctrl.addr, ctrl.bit("START")): ErrorCode.NOT_LOADED})
    h = BusHost(bus, rm, max_burst=16)
    h.identify()
    h.run(host.load_program(p, img))
    assert all(len(op[2]) <= 16 for op in bus.log if op[0] == "w")
    with pytest.raises(BusError, match=r"NOT_LOADED .* at word address 0x6 \(CTRL\)") as e:
        h.run([host.Start(0, 2)])
    assert (e.value.code, e.value.addr) == (ErrorCode.NOT_LOADED, ctrl.addr)
    assert bus.log[-1] == ("w", ctrl.addr, [ctrl.bit("CLEAR_ERROR")])  # cleared
    bus.mem[rm.reg("CONFIG_HASH").addr] ^= 1
    with pytest.raises(ConfigError, match="another configuration"):
        h.identify()
    bus.mem[rm.reg("ID").addr] = 0
    with pytest.raises(BusError, match="no EIE front end"):
        h.identify()


def test_eie_verilog_bus_wishbone(tmp_path):
    import re
    import subprocess
    import sys

    out = tmp_path / "eie_bus.v"
    r = subprocess.run([sys.executable, "-m", "eie", "verilog", "--config", "tiny", "--bus",
                        "wishbone", "--name", "eie_bus", "--out", str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    text = out.read_text()
    rm = regmap(TINY)
    assert re.search(rf"input \[{rm.addr_width - 1}:0\] bus__adr;", text)
    for port in ("bus__err", "bus__stall", "bus__ack", "ready", "busy", "done"):
        assert re.search(rf"output {port};", text), port
    assert f"register map hash {rm.config_hash:#010x}" in text
    assert "module eie_bus_pe(" in text and "wr__data" not in text.split("module eie_bus(")[1] \
        .split(");")[0]  # the wide port is internal
