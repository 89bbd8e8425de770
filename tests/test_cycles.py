from collections import deque
from dataclasses import replace

import numpy as np
import pytest
from helpers_eie import chain, random_layer, roomy
from hypothesis import given, settings
from hypothesis import strategies as st

from sw.eie import fixedpoint, golden
from sw.eie.cycles import Timing, schedule, simulate_layer, simulate_network
from sw.eie.pack import pack_network
from sw.errors import DataError
from sw.qlayer import QuantizedLayer

# Contract numbers chosen for these tests of the model's arithmetic (not the RTL's: those are
# hw.timing.rtl_timing, checked against the RTL in tests/test_timing.py).
T = Timing(start=3, drain=4, writeback_per_row=1, writeback_latency=2, column_latency=2,
           held_pairs=1, room_latency=0)


def cycle_by_cycle(work: np.ndarray, depth: int, start: int, column_latency: int = 1,
                   room_latency: int = 0) -> tuple[list[int], int, int]:
    """The timing contract of docs/format.md, simulated one cycle at a time (plain Python).
    A queue holds a pair until its column starts; the broadcast decision sees the starts
    ``room_latency`` cycles late (the pairs it sent itself at once).

    Returns (broadcast cycles, first cycle with every PE done, stall cycles)."""
    n_pe, m_total = work.shape
    queues = [deque() for _ in range(n_pe)]  # (pair, first cycle its column may start)
    left = [0] * n_pe  # cycles left on the current column
    started = [0] * n_pe  # columns started before this cycle
    seen = deque([[0] * n_pe] * room_latency)  # started, as of the last room_latency cycles
    sent, stalls, t = [], 0, 0
    if m_total == 0:
        return [], start, 0
    while True:
        # measured at the start of the cycle, with the starts of room_latency cycles ago
        old = seen[0] if room_latency else started
        room = all(len(sent) - old[k] < depth for k in range(n_pe))
        seen.append(list(started))
        if len(seen) > room_latency:
            seen.popleft()
        for k in range(n_pe):
            if left[k] == 0 and queues[k] and queues[k][0][1] <= t:
                m, _ = queues[k].popleft()
                left[k] = int(work[k, m])
                started[k] += 1
            if left[k]:
                left[k] -= 1
        if t >= start and len(sent) < m_total:
            if room:
                for q in queues:
                    q.append((len(sent), t + column_latency))
                sent.append(t)
            else:
                stalls += 1
        t += 1
        if len(sent) == m_total and not any(queues) and not any(left):
            return sent, t, stalls


@settings(max_examples=80, deadline=None)
@given(n_pe=st.integers(1, 6), m=st.integers(0, 40), depth=st.integers(1, 9),
       start=st.integers(0, 3), max_work=st.integers(1, 12), latency=st.integers(1, 4),
       room_latency=st.integers(0, 3), seed=st.integers(0, 2**32 - 1))
def test_recurrence_matches_a_cycle_by_cycle_simulation(n_pe, m, depth, start, max_work,
                                                        latency, room_latency, seed):
    work = np.random.default_rng(seed).integers(1, max_work + 1, (n_pe, m))
    b, _, free = schedule(work, depth, start, latency, room_latency)
    sent, done, stalls = cycle_by_cycle(work, depth, start, latency, room_latency)
    assert b.tolist() == sent
    assert (int(free.max()) if m else start) == done
    assert (int(b[-1]) - start - (m - 1) if m else 0) == stalls


@settings(max_examples=40, deadline=None)
@given(n_out=st.integers(1, 60), n_in=st.integers(1, 60), density=st.floats(0, 1),
       act_density=st.floats(0, 1), n_pe=st.sampled_from([1, 2, 4, 8]),
       depth=st.sampled_from([1, 2, 8]), seed=st.integers(0, 2**32 - 1))
def test_layer_report_is_consistent_with_the_cycle_by_cycle_simulation(
        n_out, n_in, density, act_density, n_pe, depth, seed):
    rng = np.random.default_rng(seed)
    image = pack_network([random_layer(rng, n_out, n_in, density)], roomy(n_pe, queue_depth=depth))
    a = (rng.random(n_in) < act_density).astype(np.int64) * 7
    t = replace(T, start=1, drain=3, writeback_per_row=2, writeback_latency=1,
                room_latency=seed % 3)
    r = simulate_layer(image, 0, a, t)
    p = image.ptr[:, : n_in + 1]
    e = np.diff(p, axis=1)[:, np.flatnonzero(a)]
    sent, done, stalls = cycle_by_cycle(np.maximum(e, 1), depth + t.held_pairs, t.start,
                                        t.column_latency, t.room_latency)
    assert r.cycles == done + 3 + 2 * image.layers[0].rows_per_pe + 1
    assert r.stall_cycles == stalls and r.broadcasts == len(sent)
    assert r.lower_bound == max(int(e.sum(axis=1).max(initial=0)), len(sent))
    assert r.lower_bound <= r.work_bound <= r.compute_cycles or r.broadcasts == 0
    assert 0 < r.efficiency <= 1
    assert np.all(r.idle >= 0) and np.all(r.busy + r.idle == r.compute_cycles)


def test_single_dense_column_takes_its_entries_plus_the_fixed_latencies():
    e = 20
    q = QuantizedLayer("col", "linear", np.linspace(0, 1, 16).astype(np.float32),
                       np.ones((4 * e, 1), np.uint8), None, 4)
    image = pack_network([q], roomy(4))
    t = T
    r = simulate_layer(image, 0, np.array([256]), t)
    # broadcast at `start`, started column_latency cycles later, e cycles of entries, drain,
    # write-back
    assert r.cycles == t.start + t.column_latency + e + t.drain + e * t.writeback_per_row + \
        t.writeback_latency
    assert r.lower_bound == e and r.busy.tolist() == [e] * 4 and r.stall_cycles == 0


def test_queue_depth_one_waits_for_each_column_to_start():
    q = QuantizedLayer("diag", "linear", np.linspace(0, 1, 16).astype(np.float32),
                       np.eye(32, dtype=np.uint8), None, 4)
    image = pack_network([q], roomy(4))
    a = np.ones(32, np.int64)
    c = T.column_latency
    t = replace(T, held_pairs=0)
    deep = simulate_layer(image, 0, a, t, queue_depth=8)
    shallow = simulate_layer(image, 0, a, t, queue_depth=1)
    # one cycle per column everywhere: depth 8 broadcasts every cycle; depth 1 (and nothing
    # held past the queue) holds the next pair until the previous one's column has started,
    # column_latency cycles after it went
    assert np.diff(deep.broadcast_cycle).tolist() == [1] * 31 and deep.stall_cycles == 0
    assert np.diff(shallow.broadcast_cycle).tolist() == [c + 1] * 31
    assert shallow.stall_cycles == 31 * c and shallow.cycles == deep.cycles + 31 * c


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_pe=st.sampled_from([2, 4, 16]))
def test_deeper_queues_never_take_more_cycles(seed, n_pe):
    rng = np.random.default_rng(seed)
    image = pack_network([random_layer(rng, 64, 48, 0.3)], roomy(n_pe))
    a = (rng.random(48) < 0.5).astype(np.int64)
    cycles = [simulate_layer(image, 0, a, T, queue_depth=d).cycles for d in (1, 2, 4, 8, 64)]
    assert cycles == sorted(cycles, reverse=True)
    assert simulate_layer(image, 0, a, T, queue_depth=64).compute_cycles >= \
        simulate_layer(image, 0, a, T, queue_depth=64).lower_bound


def test_no_non_zero_input_costs_only_the_fixed_latencies():
    image = pack_network(chain(np.random.default_rng(1), [10, 9], 0.5), roomy(4))
    t = T
    r = simulate_layer(image, 0, np.zeros(10, np.int64), t)
    assert r.broadcasts == 0 and r.compute_cycles == 0 and r.efficiency == 1.0
    assert r.cycles == t.start + t.drain + 3 * t.writeback_per_row + t.writeback_latency


def test_network_cycles_follow_the_golden_activations():
    rng = np.random.default_rng(2)
    layers = chain(rng, [20, 16, 8], 0.4, scale=0.5)
    image = pack_network(layers, roomy(4), balance=True)
    x = fixedpoint.quantize_input(rng.random(20), image.config)
    net = simulate_network(image, x, T)
    hidden = image.to_physical(0, golden.run_network(image, x)[0])
    assert net.layers[1].broadcasts == np.count_nonzero(hidden)
    assert net.cycles == sum(r.cycles for r in net.layers)


def test_bad_inputs_and_timings_are_refused():
    image = pack_network(chain(np.random.default_rng(3), [6, 5], 0.5), roomy(2))
    with pytest.raises(DataError, match="expected 6"):
        simulate_layer(image, 0, np.zeros(5), T)
    with pytest.raises(DataError, match="queue depth"):
        simulate_layer(image, 0, np.zeros(6), T, queue_depth=0)
    with pytest.raises(DataError, match="drain"):
        replace(T, drain=-1)
    with pytest.raises(DataError, match="column_latency"):
        replace(T, column_latency=0)


def test_word_reads_keep_the_last_word_across_columns():
    from sw.eie.cycles import word_reads

    # one PE, 8 entries per word; columns [lo, hi) in broadcast order
    lo = np.array([[0, 3, 3, 20, 23, 40]])
    hi = np.array([[3, 3, 10, 23, 24, 48]])
    # words read: 0 | (empty) | 0 (held: no read), 1 | 2 | 2 (held) | 5
    assert word_reads(lo, hi, 8).tolist() == [1 + 0 + 1 + 1 + 0 + 1]
    # distinct words per column (a reader that forgets its word) would be 1 + 2 + 1 + 1 + 1 = 6
    per_column = np.where(hi > lo, (hi - 1) // 8 - lo // 8 + 1, 0).sum()
    assert per_column == 6


def test_access_counts_of_a_layer():
    cfg = roomy(4)
    rng = np.random.default_rng(5)
    img = pack_network([random_layer(rng, 24, 40, density=0.3)], cfg)
    a = np.where(rng.random(40) < 0.5, rng.integers(1, 50, 40), 0)
    r = simulate_layer(img, 0, a, T)
    j = np.flatnonzero(a)
    assert r.pointer_reads.tolist() == [j.size] * 4  # one pair per broadcast in every PE
    # the owner of j is PE j mod N; its first non-zero comes from a register, not the list
    assert r.act_reads.tolist() == [max(0, int(np.sum(j % 4 == k)) - 1) for k in range(4)]
    assert r.act_writes.tolist() == [img.layers[0].rows_per_pe] * 4
    p = img.ptr[:, : 41]
    lo, hi = p[:, :-1][:, j], p[:, 1:][:, j]
    distinct = np.where(hi > lo, (hi - 1) // cfg.entries_per_word - lo // cfg.entries_per_word
                        + 1, 0).sum(axis=1)
    assert (r.spmat_word_reads <= distinct).all() and (r.spmat_word_reads > 0).all()
