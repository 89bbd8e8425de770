"""Unit tests of each hardware block in Amaranth's simulator (async testbenches)."""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest
from amaranth.hdl import Module, Signal, signed
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator
from hw_testutil import mem_write, run_sim, stream_get

from hw.activation_queue import ActivationQueue
from hw.activation_rw import ActivationRW, _round_saturate
from hw.arithmetic_unit import ArithmeticUnit
from hw.lnzd import LNZDNode, LNZDTree, lnzd_fill
from hw.params import HWParams, lnzd_levels
from hw.pointer_read import COLUMN_LATENCY, PointerRead
from hw.skid import LookaheadBuffer, SkidBuffer
from hw.spmat_read import SparseMatrixRead
from sw.eie import fixedpoint
from sw.eie.config import PRESETS, EIEConfig
from sw.eie.cycles import word_reads

TINY = PRESETS["tiny"]
P = HWParams(TINY)


# -- activation queue -------------------------------------------------------------------------

def test_queue_pushed_pair_is_at_the_head_from_the_next_cycle():
    q = ActivationQueue(P)

    async def bench(ctx):
        assert ctx.get(q.room) and not ctx.get(q.o.valid)
        ctx.set(q.push, 1)
        ctx.set(q.push_data.odd, 7)
        ctx.set(q.push_data.a, -3)
        assert not ctx.get(q.o.valid)  # not in the same cycle
        await ctx.tick()
        ctx.set(q.push, 0)
        assert ctx.get(q.o.valid)
        assert (ctx.get(q.o.payload.odd), ctx.get(q.o.payload.a)) == (7, -3)

    run_sim(q, bench)


def test_queue_full_drops_room_and_a_start_does_not_make_room_in_the_same_cycle():
    depth = TINY.queue_depth
    q = ActivationQueue(P)

    async def bench(ctx):
        ctx.set(q.push, 1)
        for n in range(depth):
            assert ctx.get(q.room)
            ctx.set(q.push_data.odd, n)
            await ctx.tick()
        assert not ctx.get(q.room) and ctx.get(q.level) == ctx.get(q.pending) == depth
        ctx.set(q.o.ready, 1)  # the head leaves the FIFO: still pending, no room
        await ctx.tick()
        ctx.set(q.o.ready, 0)
        assert not ctx.get(q.room) and (ctx.get(q.level), ctx.get(q.pending)) == (depth - 1, depth)
        ctx.set(q.push_data.odd, 99)  # pushed while full: ignored
        ctx.set(q.start, 1)  # and a column starts in the same cycle
        assert not ctx.get(q.room)
        await ctx.tick()
        ctx.set(q.push, 0)
        ctx.set(q.start, 0)
        assert ctx.get(q.room) and (ctx.get(q.level), ctx.get(q.pending)) == (depth - 1, depth - 1)
        got = [(await stream_get(ctx, q.o)).odd for _ in range(depth - 1)]
        assert got == list(range(1, depth)) and not ctx.get(q.o.valid)  # 99 never entered

    run_sim(q, bench)


@pytest.mark.parametrize("depth", [1, 3, 8])
def test_queue_matches_a_fifo_model_under_random_push_pop_and_start(depth):
    p = HWParams(TINY.replace(queue_depth=depth))
    q = ActivationQueue(p)
    rng = np.random.default_rng(depth)

    async def bench(ctx):
        model: deque = deque()
        pending = 0  # pushed, not started: in the FIFO or popped and waiting downstream
        n = 0
        for _ in range(400):
            assert ctx.get(q.room) == (pending < depth)
            assert ctx.get(q.o.valid) == bool(model)
            assert (ctx.get(q.level), ctx.get(q.pending)) == (len(model), pending)
            if model:
                assert (ctx.get(q.o.payload.odd), ctx.get(q.o.payload.a)) == model[0]
            push, pop = rng.random() < 0.6, rng.random() < 0.5
            start = pending > len(model) and rng.random() < 0.5  # only popped pairs start
            item = (n % (1 << p.bank_addr_bits), int(rng.integers(-500, 500)))
            ctx.set(q.push, push)
            ctx.set(q.push_data.odd, item[0])
            ctx.set(q.push_data.a, item[1])
            ctx.set(q.o.ready, pop)
            ctx.set(q.start, start)
            room = pending < depth
            await ctx.tick()
            if pop and model:
                model.popleft()
            pending -= start
            if push and room:
                model.append(item)
                pending += 1
                n += 1

    run_sim(q, bench)


# -- pointer read -----------------------------------------------------------------------------

@pytest.mark.parametrize("ptr_base,p_in,p_out", [(0, 1.0, 1.0), (5, 1.0, 1.0), (0, 0.7, 0.6),
                                                 (5, 0.5, 0.8)])
def test_pointer_read_gives_each_columns_bounds_in_order_under_backpressure(ptr_base, p_in, p_out):
    rng = np.random.default_rng(ptr_base + int(10 * p_in))
    ptrs = np.cumsum(rng.integers(0, 9, 40))
    pr = PointerRead(P)
    n_cols = len(ptrs) - ptr_base - 1  # a = ptr_base + j: both parities

    async def bench(ctx):
        await mem_write(ctx, pr.wr, [(b, int(ptrs[2 * b]) | (int(ptrs[2 * b + 1]) << P.ptr_bits))
                                     for b in range(len(ptrs) // 2)])
        taken, got, out_cycles = [], [], []
        j = 0
        for cycle in range(400):
            if len(got) == n_cols:
                break
            offer = j < n_cols and rng.random() < p_in
            ctx.set(pr.i.valid, offer)
            a = ptr_base + j  # the queue holds its banks' addresses (the control unit's split)
            ctx.set(pr.i.payload.even, (a + 1) >> 1)
            ctx.set(pr.i.payload.odd, a >> 1)
            ctx.set(pr.i.payload.odd_first, a & 1)
            ctx.set(pr.i.payload.a, j - 7)
            take_out = rng.random() < p_out
            ctx.set(pr.o.ready, take_out)
            if offer and ctx.get(pr.i.ready):
                taken.append(j)
                j += 1
            if ctx.get(pr.o.valid) and take_out:
                o = pr.o.payload
                got.append((ctx.get(o.start), ctx.get(o.e), ctx.get(o.a)))
                e = ctx.get(o.e)
                assert (ctx.get(o.nonempty), ctx.get(o.short)) == (int(e != 0), int(e <= 1))
                out_cycles.append(cycle)
            await ctx.tick()
        want = [(int(ptrs[ptr_base + j]), int(ptrs[ptr_base + j + 1] - ptrs[ptr_base + j]), j - 7)
                for j in taken]
        assert taken == list(range(n_cols)) and got == want
        if p_in == p_out == 1.0:  # in the column register four cycles after it was taken
            # (the banks' read, the bounds, the span), then one per cycle
            assert out_cycles == list(range(out_cycles[0], out_cycles[0] + n_cols))
            assert out_cycles[0] == COLUMN_LATENCY - 1

    run_sim(pr, bench)


# -- sparse-matrix read -----------------------------------------------------------------------

def _entries_to_words(entries: list[int]) -> list[int]:
    padded = entries + [0] * (-len(entries) % 8)
    return [int.from_bytes(bytes(padded[w * 8:(w + 1) * 8]), "little")
            for w in range(len(padded) // 8)]


def test_spmat_read_walks_across_word_boundaries_one_entry_per_cycle_without_bubbles():
    rng = np.random.default_rng(3)
    entries = [int(x) for x in rng.integers(0, 256, 70)]
    # columns (start, end): inside a word, across one and two word boundaries, empty,
    # single-entry at word ends, back to back
    cols = [(0, 3), (3, 3), (3, 11), (11, 12), (15, 16), (16, 16), (17, 34), (34, 35),
            (40, 40), (63, 64), (64, 70)]
    sr = SparseMatrixRead(P)
    outs: list[tuple[int, int, int, int, int]] = []
    reads = []

    async def bench(ctx):
        await mem_write(ctx, sr.wr, enumerate(_entries_to_words(entries)))
        todo = list(enumerate(cols))
        starts = []
        for cycle in range(200):
            # the column register always holds the next column (the pointer read unit keeps up)
            ctx.set(sr.i.valid, bool(todo))
            if todo:
                n, (s, e) = todo[0]
                ctx.set(sr.i.payload.start, s)
                ctx.set(sr.i.payload.e, e - s)
                ctx.set(sr.i.payload.nonempty, e > s)
                ctx.set(sr.i.payload.short, e - s <= 1)
                ctx.set(sr.i.payload.a, n)
            if ctx.get(sr.o.valid):
                o = sr.o.payload
                outs.append((cycle, ctx.get(o.v), ctx.get(o.z), ctx.get(o.first), ctx.get(o.a)))
            reads.append(ctx.get(sr.word_read))
            if todo and ctx.get(sr.i.ready):  # started in this cycle
                todo.pop(0)
                starts.append(cycle)
            await ctx.tick()
        # the PE starts column n in starts[n] and spends max(1, e) cycles on it
        work = [max(1, e - s) for s, e in cols]
        assert np.array_equal(np.diff(starts), work[:-1])
        # a column's first entry is issued when it starts: out four cycles later (address
        # register, SRAM read, word register, selection from the word)
        firsts = [o[0] for o in outs if o[3]]
        assert firsts == [c + 4 for c, (s, e) in zip(starts, cols, strict=True) if e > s]

    run_sim(sr, bench)
    want = [(entries[a] & 15, entries[a] >> 4, int(a == s), n)
            for n, (s, e) in enumerate(cols) for a in range(s, e)]
    assert [o[1:] for o in outs] == want
    # one entry per cycle: output cycles are consecutive except one cycle per empty column
    gaps = np.diff([o[0] for o in outs])
    assert set(gaps) <= {1, 2} and int((gaps == 2).sum()) == sum(s == e for s, e in cols[1:-1])
    # the SRAM is read only for a word it does not hold: the cycle model's count
    lo, hi = np.array([[s for s, _ in cols]]), np.array([[e for _, e in cols]])
    per_column = sum(len({a // 8 for a in range(s, e)}) for s, e in cols)
    assert sum(reads) == int(word_reads(lo, hi, 8)[0]) < per_column


# -- arithmetic unit --------------------------------------------------------------------------

class _AUBench(wiring.Component):
    """An arithmetic unit with its accumulator file, as the PE wires it."""

    def __init__(self, params: HWParams):
        self.p = params
        self.au = ArithmeticUnit(params)
        self.acc = memory.Memory(shape=signed(params.acc_bits), depth=params.config.act_depth,
                                 init=[])
        super().__init__({"unused": In(1), "bypass": Out(2)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.au = au = self.au
        m.submodules.acc = self.acc
        rp, wp = self.acc.read_port(), self.acc.write_port()
        m.d.comb += [rp.addr.eq(au.acc.rd_addr), au.acc.rd_data.eq(rp.data),
                     wp.en.eq(au.acc.wr.en), wp.addr.eq(au.acc.wr.addr),
                     wp.data.eq(au.acc.wr.data), self.bypass.eq(au.bypass)]
        return m


def _feed_entries(cols, layer):
    """(v, z, first, a) per cycle for columns given as (a, [(v, row), ...])."""
    out = []
    for a, ents in cols:
        prev = -1
        for n, (v, row) in enumerate(ents):
            out.append((v, row - prev - 1, int(n == 0), a))
            prev = row
    return out


def test_arithmetic_unit_bypass_on_back_to_back_hits_of_the_same_accumulator():
    rng = np.random.default_rng(11)
    book = [0] + [int(x) for x in rng.integers(-30000, 30000, 15)]
    # column 0 ends at row 9 and column 1 starts at row 9 (adjacent cycles: bypass of the
    # previous sum); column 2's single entry hits row 9 again right after column 1's row-9
    # entry (and two after column 0's: the later sum wins); row 4 recurs at distance 2 (the
    # bypass of the sum before the previous one), row 6 at distance 3 (no bypass: written)
    cols = [(1234, [(3, 1), (5, 4), (7, 9)]), (-777, [(2, 9)]), (32767, [(15, 9)]),
            (-32768, [(1, 4), (4, 5)]), (5, [(6, 4), (8, 6)]), (99, [(9, 2)]), (-3, [(3, 3)]),
            (7, [(11, 6)])]
    bench_dut = _AUBench(P)
    au = bench_dut.au
    stream = _feed_entries(cols, 1)
    seen = {"bypass": 0, "bypass2": 0}

    async def bench(ctx):
        await mem_write(ctx, au.cb_wr, [(16 + v, val) for v, val in enumerate(book)])  # layer 1
        ctx.set(au.layer, 1)
        await ctx.tick()  # the unit registers the layer (constant during a layer) before use
        for ent in stream + [None] * 5:
            ctx.set(au.i.valid, ent is not None)
            if ent is not None:
                for f, x in zip(("v", "z", "first", "a"), ent, strict=True):
                    ctx.set(getattr(au.i.payload, f), x)
            seen["bypass"] += ctx.get(bench_dut.bypass) & 1
            seen["bypass2"] += ctx.get(bench_dut.bypass) >> 1
            await ctx.tick()
        seen["acc"] = [ctx.get(bench_dut.acc.data[r]) for r in range(12)]

    run_sim(bench_dut, bench)
    want = np.zeros(12, np.int64)
    for a, ents in cols:
        for v, row in ents:
            want[row] += book[v] * a
    assert seen["acc"] == list(fixedpoint.wrap(want, P.acc_bits))
    assert seen["bypass"] == 2  # row 9 twice in a row, twice
    assert seen["bypass2"] == 1  # row 4 two entries apart


# -- LNZD ---------------------------------------------------------------------------------------

def _fifo_model_run(dut, depth: int, seed: int, check_extra=None):
    """Drive ``dut`` (a stream buffer of ``depth`` entries) under random valid / ready / flush
    against a FIFO model: the same ready, valid and payload in every cycle, nothing lost,
    nothing duplicated; ``check_extra(ctx, fifo, load, pop)`` checks ports of its own."""
    import random

    rng = random.Random(seed)

    async def bench(ctx):
        fifo, nxt, popped = deque(), 0, 0
        for _ in range(3000):
            valid, ready = rng.random() < 0.7, rng.random() < 0.6
            flush = rng.random() < 0.02
            ctx.set(dut.i.valid, valid)
            ctx.set(dut.i.payload, nxt)
            ctx.set(dut.o.ready, ready)
            ctx.set(dut.flush, flush)
            assert ctx.get(dut.i.ready) == (len(fifo) < depth)
            assert ctx.get(dut.o.valid) == bool(fifo)
            if fifo:
                assert ctx.get(dut.o.payload) == fifo[0]
            load, pop = valid and len(fifo) < depth and not flush, ready and bool(fifo)
            if check_extra:
                check_extra(ctx, fifo, load, pop)
            await ctx.tick()
            if flush:
                fifo.clear()
                continue
            if pop:
                fifo.popleft()
                popped += 1
            if load:
                fifo.append(nxt)
                nxt += 1
        assert popped > 500

    run_sim(dut, bench)


def test_skid_buffer_is_a_two_entry_fifo_cycle_for_cycle():
    _fifo_model_run(SkidBuffer(16), 2, seed=5)


def test_lookahead_buffer_is_a_three_entry_fifo_with_its_next_item_in_view():
    dut = LookaheadBuffer(16)
    seen = {"from_input": 0, "next": 0}

    def check(ctx, fifo, load, pop):
        if len(fifo) >= 2:
            assert ctx.get(dut.next) == fifo[1]
            seen["next"] += 1
        # the head loads the input exactly when the item goes straight to the front
        from_input = load and len(fifo) - pop == 0
        assert ctx.get(dut.load_empty) == (load and not fifo)
        assert ctx.get(dut.load_one) == (load and len(fifo) == 1)
        assert (ctx.get(dut.load_empty) or ctx.get(dut.load_one) and pop) == from_input
        seen["from_input"] += from_input

    _fifo_model_run(dut, 3, seed=6, check_extra=check)
    assert seen["from_input"] > 50 and seen["next"] > 500


def _lnzd_run(n_pe: int, lists: list[list[int]], ready_p: float, seed: int):
    cfg = TINY.replace(n_pe=n_pe)
    p = HWParams(cfg)
    tree = LNZDTree(p)
    rng = np.random.default_rng(seed)
    got: list[tuple[int, int]] = []  # (cycle, j)
    heads = [0] * n_pe
    total = sum(len(lst) for lst in lists)

    def drive_leaves(ctx):  # each leaf shows its list's head, or the sentinel
        for k in range(n_pe):
            lf = tree.leaves[k]
            ctx.set(lf.valid, 1)
            end = heads[k] >= len(lists[k])
            ctx.set(lf.payload.sentinel, end)
            ctx.set(lf.payload.idx, 0 if end else lists[k][heads[k]])
            ctx.set(lf.payload.value, 0 if end else 100 * k + heads[k] + 1)

    async def bench(ctx):
        cycle = 0
        while len(got) < total and cycle < 20 * (total + 10):
            drive_leaves(ctx)
            root = tree.root
            take = ctx.get(root.valid) and not ctx.get(root.payload.sentinel) and \
                rng.random() < ready_p
            ctx.set(root.ready, take)
            if take:
                j = ctx.get(root.payload.idx) * n_pe + ctx.get(root.payload.pe)
                k = j % n_pe
                assert ctx.get(root.payload.value) == 100 * k + lists[k].index(j // n_pe) + 1
                got.append((cycle, j))
            pops = [ctx.get(tree.leaves[k].ready) for k in range(n_pe)]
            await ctx.tick()
            for k in range(n_pe):
                if pops[k] and heads[k] < len(lists[k]):
                    heads[k] += 1
            cycle += 1
        # after the last item the root shows the sentinel
        ctx.set(tree.root.ready, 0)
        for _ in range(lnzd_fill(lnzd_levels(n_pe)) + 1):
            drive_leaves(ctx)
            await ctx.tick()
        got.append((-1, int(ctx.get(tree.root.valid) and ctx.get(tree.root.payload.sentinel))))

    run_sim(tree, bench)
    return got


@pytest.mark.parametrize("n_pe", [1, 3, 4, 5, 16, 17])
def test_lnzd_tree_emits_every_nonzero_in_ascending_physical_index(n_pe):
    rng = np.random.default_rng(n_pe)
    lists = [sorted(rng.choice(12, int(rng.integers(0, 8)), replace=False).tolist())
             for _ in range(n_pe)]
    got = _lnzd_run(n_pe, lists, ready_p=0.7, seed=n_pe)
    want = sorted(idx * n_pe + k for k in range(n_pe) for idx in lists[k])
    assert [j for _, j in got[:-1]] == want
    assert got[-1] == (-1, 1)  # then the sentinel


def test_lnzd_tree_picks_the_lower_pe_on_equal_local_index_and_streams_one_per_cycle():
    n_pe = 16
    lists = [[0, 1, 2, 3] for _ in range(n_pe)]  # every PE has the same indices: all ties
    got = _lnzd_run(n_pe, lists, ready_p=1.0, seed=0)
    cycles_, js = zip(*got[:-1], strict=True)
    assert list(js) == list(range(4 * n_pe))
    assert np.all(np.diff(cycles_) == 1)  # after the fill, one per cycle
    # fill: the leaves' buffers, then three cycles per level (a node's input buffers, its
    # comparison registers, its output buffer or the root's), then the root's second buffer
    assert cycles_[0] == lnzd_fill(lnzd_levels(n_pe)) == 2 + 3 * lnzd_levels(n_pe)


def test_lnzd_tree_with_all_zero_inputs_shows_the_sentinel_at_once():
    got = _lnzd_run(64, [[] for _ in range(64)], ready_p=1.0, seed=0)
    assert got == [(-1, 1)]


def test_lnzd_node_counts_match_the_paper_for_64_pes():
    from amaranth.hdl import Fragment

    tree = LNZDTree(HWParams(TINY.replace(n_pe=64)))
    assert tree.n_nodes == 21  # 16 + 4 + 1
    frag = Fragment.get(tree, None)
    nodes = [sub for sub, _name, _loc in frag.subfragments if isinstance(sub.origins[0], LNZDNode)]
    assert len(nodes) == 21


# -- activation read/write: write-back and the non-zero list ----------------------------------

async def _read_list(ctx, arw) -> list[tuple[int, int]]:
    """Start a layer on ``arw``'s source bank and take its non-zero list up to the sentinel."""
    ctx.set(arw.layer_start, 1)
    await ctx.tick()
    ctx.set(arw.layer_start, 0)
    ctx.set(arw.compute, 1)
    items = []
    while not (item := await stream_get(ctx, arw.nz)).sentinel:
        items.append((item.idx, item.value))
    return items


@pytest.mark.parametrize("shift,relu", [(0, False), (1, True), (7, False), (15, True)])
def test_write_back_matches_golden_requantize_and_builds_the_nonzero_list(shift, relu):
    cfg = TINY
    p = HWParams(cfg)
    arw = ActivationRW(p)
    rng = np.random.default_rng(shift)
    rows = 20
    acc_lim = 1 << (cfg.acc_bits - 1)
    acc = rng.integers(-(1 << 30), 1 << 30, rows) >> rng.integers(0, 30, rows)
    acc[[0, 1, 2]] = [acc_lim - 1, -acc_lim, 0]  # wrap-around with the bias; zero
    bias = rng.integers(-32768, 32768, rows)
    bias[3] = 0
    acc[3] = 0  # an exact zero output
    bias_base = 17
    seen = {}

    async def bench(ctx):
        await mem_write(ctx, arw.acc.wr, [(r, int(acc[r])) for r in range(rows)])
        await mem_write(ctx, arw.bias_wr, [(bias_base + r, int(bias[r])) for r in range(rows)])
        ctx.set(arw.ctl.src_bank, 0)  # destination: bank 1
        ctx.set(arw.ctl.bias_base, bias_base)
        ctx.set(arw.ctl.shift, shift)
        ctx.set(arw.ctl.relu, relu)
        ctx.set(arw.layer_start, 1)
        await ctx.tick()
        ctx.set(arw.layer_start, 0)
        for r in range(rows):
            ctx.set(arw.wb.valid, 1)
            ctx.set(arw.wb.row, r)
            await ctx.tick()
        ctx.set(arw.wb.valid, 0)
        await ctx.tick().repeat(5)
        dense = []
        for r in range(rows):
            ctx.set(arw.rd_addr, (1 << p.local_bits) | r)
            await ctx.tick()
            dense.append(ctx.get(arw.rd_data))
        cleared = []
        for r in range(rows):
            ctx.set(arw.acc.rd_addr, r)
            await ctx.tick()
            cleared.append(ctx.get(arw.acc.rd_data))
        # read bank 1's list as the next layer's source
        ctx.set(arw.ctl.src_bank, 1)
        items = await _read_list(ctx, arw)
        seen.update(dense=dense, cleared=cleared, items=items)

    run_sim(arw, bench)
    want = fixedpoint.requantize(acc + (bias << shift), shift, relu, cfg)
    assert seen["dense"] == list(want)
    assert seen["cleared"] == [0] * rows
    assert seen["items"] == [(r, int(want[r])) for r in range(rows) if want[r] != 0]
    assert want[3] == 0  # the zero row is not in the list


def test_write_back_nonzero_flag_is_y_not_zero_for_every_input():
    """W3's non-zero flag (from the flags, ahead of the adder) against its own y, exhaustively
    at 4 bits: every s, rounding bit, out-of-range flag, sign and ReLU."""
    m = Module()
    s, r, over, neg, relu = Signal(signed(4)), Signal(), Signal(), Signal(), Signal()
    y, nonzero = Signal(signed(4)), Signal()
    y_v, nz_v = _round_saturate(s, r, over, neg, relu)
    m.d.comb += [y.eq(y_v), nonzero.eq(nz_v)]
    bad = []

    async def bench(ctx):
        for v in range(-8, 8):
            for bits in range(16):
                ins = (bits & 1, bits >> 1 & 1, bits >> 2 & 1, bits >> 3 & 1)
                for sig, x in zip((r, over, neg, relu), ins, strict=True):
                    ctx.set(sig, x)
                ctx.set(s, v)
                if ctx.get(nonzero) != (ctx.get(y) != 0):
                    bad.append((v, ins, ctx.get(y), ctx.get(nonzero)))

    sim = Simulator(m)  # combinational: no clock
    sim.add_testbench(bench)
    sim.run()
    assert bad == []


def test_input_writes_build_the_list_and_act_clear_empties_it():
    arw = ActivationRW(P)
    seen = {}

    async def bench(ctx):
        for vec in ([0, 5, 0, -2, 7], [3, 0, 0, 0, 0, 0, 9]):
            ctx.set(arw.in_clear, 1)
            await ctx.tick()
            ctx.set(arw.in_clear, 0)
            await mem_write(ctx, arw.in_wr, enumerate(vec))
            ctx.set(arw.ctl.src_bank, 0)
            seen[len(vec)] = await _read_list(ctx, arw)
            ctx.set(arw.compute, 0)

    run_sim(arw, bench)
    assert seen[5] == [(1, 5), (3, -2), (4, 7)]
    assert seen[7] == [(0, 3), (6, 9)]


def test_hw_params_widths_for_eie64():
    p = HWParams(PRESETS["eie64"])
    assert p.config.ptr_depth == 32768 and p.config.spmat_words == 16384
    assert (p.ptr_bits, p.ptr_addr_bits, p.bank_addr_bits, p.spmat_addr_bits) == (18, 15, 14, 14)
    assert (p.local_bits, p.j_bits, p.levels, p.lane_bits, p.rd_lane_bits) == (9, 15, 3, 64, 32)
    assert p.layer_entry.size <= p.lane_bits
    with pytest.raises(ValueError, match="rows"):
        p.pack_layer_entry(1 << 11, 0, 0, 0, False)
    assert EIEConfig  # the configuration object is the only source of these numbers
