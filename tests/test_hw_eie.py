"""The whole EIE (hw.top.EIE) in Amaranth's simulator, driven through its host port by the
programs of hw.host (sim.amaranth_host): bit-exact against the golden model and cycle-exact
against the cycle model."""

from __future__ import annotations

import numpy as np
import pytest
from helpers_eie import chain, random_layer
from hw_testutil import dense_column_image, run_sim

from hw import host
from hw.central_control import DRAIN, WB_TAIL, start_latency
from hw.params import HWParams, WrMem
from hw.timing import rtl_timing
from hw.top import EIE
from sim.amaranth_host import AmaranthHost, run_program, simulate, with_reset
from sw.eie import cycles, fixedpoint, golden
from sw.eie.config import PRESETS, EIEConfig
from sw.eie.pack import pack_network

TINY = PRESETS["tiny"]


def _config(n_pe: int, depth: int, **kw) -> EIEConfig:
    base = dict(name="hwtest", n_pe=n_pe, queue_depth=depth, spmat_words=256, ptr_depth=512,
                act_depth=48, bias_depth=128, max_layers=4)
    return EIEConfig(**{**base, **kw})


def _input(rng, n: int, density: float, config: EIEConfig, scale: float = 1.0) -> np.ndarray:
    x = rng.normal(0, scale, n) * (rng.random(n) < density)
    return fixedpoint.quantize_input(x, config)


def test_random_sparse_layer_is_bit_exact_with_golden_and_cycle_exact_with_model():
    rng = np.random.default_rng(4)
    img = pack_network([random_layer(rng, 40, 48, 0.3, "fc", scale=0.5)], TINY)
    x = img.input_to_physical(_input(rng, 48, 0.5, TINY, 2.0))
    (r,) = simulate(img, [x])
    want = golden.run_layer(img, 0, x)
    assert np.array_equal(r.output, want), np.flatnonzero(r.output != want)
    rep = cycles.simulate_layer(img, 0, x, rtl_timing(TINY))
    assert (r.cycles, r.stall_cycles) == (rep.cycles, rep.stall_cycles)
    assert np.array_equal(r.busy, rep.busy)
    assert np.any(want < 0)  # ReLU off: negative outputs survive


def test_two_layers_back_to_back_with_relu_on_then_off():
    rng = np.random.default_rng(5)
    layers = chain(rng, [30, 36, 12], 0.35, scale=0.5)
    img = pack_network(layers, TINY)
    x = _input(rng, 30, 0.6, TINY, 2.0)
    (r,) = simulate(img, [img.input_to_physical(x)], n_layers=2)
    ref = golden.run_network(img, x)
    assert np.array_equal(img.to_logical(1, r.output), ref[1])
    a0 = img.input_to_physical(x)
    a1 = golden.run_layer(img, 0, a0)
    assert a1.min() == 0 and np.any(a1 > 0)  # the hidden layer was ReLU'd
    t = rtl_timing(TINY)
    want = cycles.simulate_layer(img, 0, a0, t).cycles + cycles.simulate_layer(img, 1, a1, t).cycles
    assert r.cycles == want


def test_each_layer_alone_matches_the_chain_and_outputs_land_in_bank_n_layers_mod_2():
    rng = np.random.default_rng(6)
    img = pack_network(chain(rng, [20, 24, 16, 8], 0.4, scale=0.5), TINY)
    x = img.input_to_physical(_input(rng, 20, 0.7, TINY, 2.0))
    a = [x]
    for li in range(3):
        a.append(golden.run_layer(img, li, a[-1]))
    p = HWParams(TINY)
    program = host.load_program(p, img)
    for li in range(3):  # one layer at a time, each from bank 0
        program += host.inference_program(p, img, a[li], first_layer=li, n_layers=1)
    program += host.inference_program(p, img, a[0], 0, 3)
    *alone, chain_out = [y for _, y in run_program(EIE(TINY), program).outputs]
    for li in range(3):
        assert np.array_equal(alone[li], a[li + 1]), li
    assert np.array_equal(chain_out, a[3])


@pytest.mark.parametrize("n_pe,depth", [(1, 1), (2, 3), (3, 2), (5, 4), (4, 1)])
def test_cycles_equal_cycle_model_for_any_pe_count_and_queue_depth(n_pe, depth):
    rng = np.random.default_rng(100 * n_pe + depth)
    cfg = _config(n_pe, depth)
    n_in, n_out = int(rng.integers(8, 40)), int(rng.integers(4, 40))
    q = random_layer(rng, n_out, n_in, float(rng.uniform(0.1, 0.9)), "fc")
    q.relu = bool(rng.integers(2))
    img = pack_network([q], cfg)
    xs = [img.input_to_physical(_input(rng, n_in, d, cfg)) for d in (0.0, 0.3, 1.0)]
    results = simulate(img, xs)
    for x, r in zip(xs, results, strict=True):
        assert np.array_equal(r.output, golden.run_layer(img, 0, x))
        rep = cycles.simulate_layer(img, 0, x, rtl_timing(cfg))
        assert (r.cycles, r.stall_cycles) == (rep.cycles, rep.stall_cycles)
        assert np.array_equal(r.busy, rep.busy)


def test_all_zero_input_costs_only_the_fixed_latencies():
    rng = np.random.default_rng(7)
    img = pack_network([random_layer(rng, 16, 20, 0.5, "fc")], TINY)
    (r,) = simulate(img, [np.zeros(20, np.int64)])
    rows = img.layers[0].rows_per_pe
    assert r.cycles == start_latency(TINY.n_pe) + DRAIN + rows + WB_TAIL
    assert r.stall_cycles == 0 and not r.busy.any()
    assert np.array_equal(r.output, golden.run_layer(img, 0, np.zeros(20, np.int64)))  # the bias


def test_dense_columns_run_at_one_entry_per_cycle_plus_a_fixed_latency():
    """Every PE has R entries in every column: with k non-zero inputs the layer takes k*R
    cycles of entries (no bubbles between columns) plus start + the column latency (broadcast
    register, queue, pointer read, bounds and column registers) + DRAIN + R (write-back rows) +
    WB_TAIL."""
    n_out, rows = 24, 6  # 6 rows per PE on 4 PEs
    img = dense_column_image(TINY, n_out, 40)
    fixed = start_latency(TINY.n_pe) + rtl_timing(TINY).column_latency + DRAIN + rows + WB_TAIL
    xs = []
    for k in (1, 5, 17, 40):
        x = np.zeros(40, np.int64)
        x[np.linspace(0, 39, k).astype(int)] = 300
        xs.append(x)
    results = simulate(img, xs)
    for x, r in zip(xs, results, strict=True):
        entries = int(np.count_nonzero(x)) * rows
        assert r.cycles == entries + fixed, (entries, r.cycles)
        assert list(r.busy) == [entries] * TINY.n_pe  # every PE busy every compute cycle
        assert np.array_equal(r.output, golden.run_layer(img, 0, x))


def test_padding_entries_and_long_gaps_are_walked_and_count_as_entries():
    cfg = _config(2, 2, act_depth=64)
    codes = np.zeros((100, 6), np.uint8)
    codes[[0, 40, 98], 0] = [3, 5, 7]  # PE 0: local rows 0, 20, 49 -> padding entries
    codes[[1, 99], 1] = [2, 9]  # PE 1: local rows 0, 49
    codes[:, 2] = 1  # dense
    from sw.qlayer import QuantizedLayer

    cb = np.linspace(-0.5, 0.5, 16).astype(np.float32)
    cb[0] = 0
    img = pack_network([QuantizedLayer("pad", "linear", cb, codes, None, 4)], cfg)
    assert np.diff(img.ptr[0, :7])[0] > 3  # column 0 of PE 0 holds padding
    x = np.array([256, -512, 100, 0, 7, 0], np.int64)
    (r,) = simulate(img, [x])
    assert np.array_equal(r.output, golden.run_layer(img, 0, x))
    rep = cycles.simulate_layer(img, 0, x, rtl_timing(cfg))
    assert r.cycles == rep.cycles and np.array_equal(r.busy, rep.busy)


def test_saturation_and_rounding_at_write_back_match_golden():
    rng = np.random.default_rng(8)
    q = random_layer(rng, 16, 16, 1.0, "big", scale=3.0)
    img = pack_network([q], TINY)
    x = fixedpoint.quantize_input(rng.choice([-100.0, 100.0], 16), TINY)  # saturates both ways
    (r,) = simulate(img, [x])
    want = golden.run_layer(img, 0, x)
    assert np.array_equal(r.output, want)
    assert want.max() == 32767 and want.min() == -32768


def test_host_port_reads_back_inputs_and_refuses_writes_while_running():
    rng = np.random.default_rng(9)
    img = pack_network([random_layer(rng, 12, 12, 0.5, "fc")], TINY)
    p = HWParams(TINY)
    x = _input(rng, 12, 0.5, TINY, 1.0)
    dut = EIE(TINY)
    seen = {}

    async def bench(ctx):
        drv = AmaranthHost(dut, ctx)
        assert not ctx.get(dut.ready)  # clearing the accumulators after power-up
        (resp,) = (await drv.run([host.WaitReady(TINY.act_depth + 16), host.image_load(p, img),
                                  host.input_load(p, img, x),
                                  host.Read(tuple(host.output_reads(p, 0, 3))),
                                  host.Start(0, 1)])).reads
        seen["input"] = host.assemble_output(p, resp, 12)
        seen["ready_while_busy"] = ctx.get(dut.wr.ready), ctx.get(dut.busy)
        out = await drv.run([host.WaitDone(10_000), host.ReadCounters()])
        seen["busy"] = out.counters[0].busy

    run_sim(dut, bench)
    assert np.array_equal(seen["input"], x)
    assert seen["ready_while_busy"] == (0, 1)
    rep = cycles.simulate_layer(img, 0, x, rtl_timing(TINY))
    assert np.array_equal(seen["busy"], rep.busy)


def test_reset_in_the_middle_of_a_layer_leaves_no_stale_state():
    rng = np.random.default_rng(10)
    img = pack_network([random_layer(rng, 32, 32, 0.6, "fc")], TINY)
    x = img.input_to_physical(_input(rng, 32, 0.8, TINY, 2.0))
    dut = EIE(TINY)
    top, rst = with_reset(dut)
    p = dut.params
    out = {}

    async def bench(ctx):
        drv = AmaranthHost(dut, ctx, rst)
        await drv.run(host.load_program(p, img)
                      + [host.input_load(p, img, x), host.Start(0, 1), host.Idle(25)])
        assert ctx.get(dut.busy)  # in the middle of the compute phase
        # a one-cycle synchronous reset: memories keep the image
        out["r"] = await drv.run([host.Reset(TINY.act_depth + 16, cycles=1)]
                                 + host.inference_program(p, img, x))

    run_sim(top, bench)
    ((_, y),) = out["r"].outputs
    assert np.array_equal(y, golden.run_layer(img, 0, x))


def test_layer_table_write_uses_lane_0_and_ignores_the_pe_mask():
    p = HWParams(TINY)
    w = list(host.image_writes(p, pack_network(
        [random_layer(np.random.default_rng(1), 8, 8, 0.5, "fc")], TINY)))
    layer_writes = [x for x in w if x.mem == WrMem.LAYER]
    assert len(layer_writes) == 1 and layer_writes[0].lanes[1:] == (0,) * (TINY.n_pe - 1)
    assert {x.mem for x in w} == {WrMem.SPMAT, WrMem.PTR, WrMem.BIAS, WrMem.CODEBOOK,
                                  WrMem.LAYER}


def test_rom_program_writes_only_the_input():
    rng = np.random.default_rng(2)
    img = pack_network(chain(rng, [20, 16, 8], 0.5, scale=0.5), TINY)
    p = HWParams(TINY)
    prog = host.rom_program(p, img, img.input_to_physical(_input(rng, 20, 0.5, TINY)))
    writes = [w for s in prog if isinstance(s, host.Write) for w in s.writes]
    assert {w.mem for w in writes} == {WrMem.ACT_CLEAR, WrMem.ACT}
    assert isinstance(prog[0], host.Reset) and sum(isinstance(s, host.Start) for s in prog) == 1


def test_access_counters_count_what_the_cycle_model_counts(monkeypatch):
    """The simulation build's per-PE access counters (``PE(access_counters=True)``: sparse-matrix
    word reads, pointer-pair reads, source-list reads, activation writes; sim/access.py compares
    them through Verilator in a slow test) equal the cycle model's counts, which the energy
    model prices: here in Amaranth's simulator, on a two-layer run and then a one-layer run (the
    counters restart at each start and sum over the run's layers). Added for the surviving
    mutant ``n + 1 -> n - 1`` of the counters (benchmarks/bench_mutation.py)."""
    import hw.top
    from hw.params import COUNTER_BITS
    from hw.pe import ACCESS_COUNTERS, PE
    from sim.access import MODEL_FIELD

    pes = []

    def counting_pe(params, init=None):
        pes.append(PE(params, init, access_counters=True))
        return pes[-1]

    monkeypatch.setattr(hw.top, "PE", counting_pe)
    rng = np.random.default_rng(12)
    img = pack_network(chain(rng, [40, 36, 12], 0.35, scale=0.5), TINY)
    xs = [img.input_to_physical(_input(rng, 40, d, TINY, 2.0)) for d in (0.6, 0.3)]
    runs = [(xs[0], 2), (xs[1], 1)]
    dut = EIE(TINY)
    top, rst = with_reset(dut)
    p = dut.params
    seen = []

    async def bench(ctx):
        drv = AmaranthHost(dut, ctx, rst)
        await drv.run(host.load_program(p, img))
        for x, n in runs:
            await drv.run(host.inference_program(p, img, x, 0, n))
            seen.append([ctx.get(pe.n_access) for pe in pes])

    run_sim(top, bench)
    assert len(pes) == TINY.n_pe
    t = rtl_timing(TINY)
    mask = (1 << COUNTER_BITS) - 1
    for (x, n), raw in zip(runs, seen, strict=True):
        got = {k: np.array([(v >> (i * COUNTER_BITS)) & mask for v in raw])
               for i, k in enumerate(ACCESS_COUNTERS)}
        want = {k: np.zeros(TINY.n_pe, np.int64) for k in ACCESS_COUNTERS}
        a = x
        for li in range(n):
            rep = cycles.simulate_layer(img, li, a, t)
            for k in ACCESS_COUNTERS:
                want[k] += getattr(rep, MODEL_FIELD[k])
            a = golden.run_layer(img, li, a)
        for k in ACCESS_COUNTERS:
            assert np.array_equal(got[k], want[k]), (n, k, got[k], want[k])
            assert want[k].sum() > 0, (n, k)  # every counter counts something


def test_a_start_with_a_host_write_in_the_same_cycle_waits_for_a_cycle_without_one():
    """hw.top: a write lands one cycle after it is taken, so ``start`` is not taken in a cycle
    with ``wr.valid`` (docs/hardware.md): the control unit stays idle and ready, and a later
    start runs the layer bit-exact and cycle-exact. Added for the surviving mutant that deleted
    the gate ``ccu.start = start & ~wr.valid`` (benchmarks/bench_mutation.py)."""
    rng = np.random.default_rng(13)
    img = pack_network([random_layer(rng, 16, 20, 0.5, "fc")], TINY)
    x = img.input_to_physical(_input(rng, 20, 0.6, TINY, 2.0))
    dut = EIE(TINY)
    top, rst = with_reset(dut)
    p = dut.params
    out = {}

    async def bench(ctx):
        drv = AmaranthHost(dut, ctx, rst)
        await drv.run(host.load_program(p, img) + [host.input_load(p, img, x)])
        assert ctx.get(dut.ready) and ctx.get(dut.wr.ready)
        # start together with a write that selects no PE (pe_mask 0: no memory changes)
        ctx.set(dut.first_layer, 0)
        ctx.set(dut.n_layers, 1)
        ctx.set(dut.wr.mem, WrMem.BIAS)
        ctx.set(dut.wr.addr, 0)
        ctx.set(dut.wr.pe_mask, 0)
        ctx.set(dut.wr.data, 0)
        ctx.set(dut.wr.valid, 1)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.wr.valid, 0)
        ctx.set(dut.start, 0)
        out["after"] = []
        for _ in range(6):
            await ctx.tick()
            out["after"].append((ctx.get(dut.ready), ctx.get(dut.busy), ctx.get(dut.cycles)))
        out["run"] = await drv.run(host.inference_program(p, img, x))

    run_sim(top, bench)
    assert out["after"] == [(1, 0, 0)] * 6  # the start was not taken
    ((_, y),) = out["run"].outputs
    assert np.array_equal(y, golden.run_layer(img, 0, x))
    rep = cycles.simulate_layer(img, 0, x, rtl_timing(TINY))
    assert out["run"].counters[0].cycles == rep.cycles


def test_what_a_host_does_in_the_two_cycles_after_a_reset_is_lost_and_the_outputs_read_zero():
    """hw.top: while the reset is on its way to the control unit (the two cycles after the
    reset port was high) the host outputs read 0, and a host that ignores ``ready`` then loses
    what it sends: an input write reaches PEs held in reset, a start a unit about to be reset.
    After the accumulator clear the design runs the same layer bit-exact and cycle-exact."""
    rng = np.random.default_rng(14)
    img = pack_network([random_layer(rng, 16, 16, 0.5, "fc")], TINY)
    p = HWParams(TINY)
    x = img.input_to_physical(_input(rng, 16, 0.6, TINY, 2.0))
    dut = EIE(TINY)
    top, rst = with_reset(dut)
    out = {}

    async def bench(ctx):
        drv = AmaranthHost(dut, ctx, rst)
        await drv.run(host.load_program(p, img) + [host.input_load(p, img, x),
                                                   host.Start(0, 1), host.Idle(20)])
        assert ctx.get(dut.busy) and ctx.get(dut.cycles) > 0
        ctx.set(rst, 1)
        await ctx.tick()
        ctx.set(rst, 0)
        # in both cycles: a write of 1 into every PE's input row 0, and a start
        ctx.set(dut.wr.mem, WrMem.ACT)
        ctx.set(dut.wr.addr, 0)
        ctx.set(dut.wr.pe_mask, (1 << TINY.n_pe) - 1)
        ctx.set(dut.wr.data, host.pack_lanes((1,) * TINY.n_pe, p.lane_bits))
        ctx.set(dut.first_layer, 0)
        ctx.set(dut.n_layers, 1)
        out["masked"] = []
        for cycle in range(2):
            ctx.set(dut.wr.valid, cycle == 0)
            ctx.set(dut.start, cycle == 1)
            out["masked"].append(tuple(ctx.get(s) for s in (
                dut.ready, dut.wr.ready, dut.busy, dut.done, dut.cycles, dut.stall_cycles)))
            await ctx.tick()
        ctx.set(dut.wr.valid, 0)
        ctx.set(dut.start, 0)
        busy = []
        for _ in range(TINY.act_depth + 8):  # the clear, then idle: nothing started
            busy.append(ctx.get(dut.busy))
            await ctx.tick()
        out["busy"] = any(busy)
        out["ready"] = ctx.get(dut.ready)
        (resp,) = (await drv.run([host.Read(tuple(host.output_reads(p, 0, 1)))])).reads
        out["row0"] = host.assemble_output(p, resp, TINY.n_pe)
        out["run"] = await drv.run(host.inference_program(p, img, x))

    run_sim(top, bench)
    assert out["masked"] == [(0, 0, 0, 0, 0, 0)] * 2
    assert not out["busy"] and out["ready"]  # the start was lost
    assert np.array_equal(out["row0"], x[:TINY.n_pe])  # the write was lost
    ((_, y),) = out["run"].outputs
    assert np.array_equal(y, golden.run_layer(img, 0, x))
    assert out["run"].counters[0].cycles == cycles.simulate_layer(img, 0, x,
                                                                  rtl_timing(TINY)).cycles
