import numpy as np
from helpers_eie import roomy
from hypothesis import given, settings
from hypothesis import strategies as st

from sw.balance import balanced_permutation, inverse_permutation, per_pe_work
from sw.cycles import simulate_layer
from sw.pack import pack_network
from sw.qlayer import QuantizedLayer


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 300), n_pe=st.integers(1, 70), seed=st.integers(0, 2**32 - 1))
def test_balanced_permutation_is_a_valid_row_layout(n, n_pe, seed):
    work = np.random.default_rng(seed).integers(0, 50, n)
    perm = balanced_permutation(work, n_pe)
    assert sorted(perm.tolist()) == list(range(n))  # a bijection onto the physical rows
    owned = np.bincount(perm % n_pe, minlength=n_pe)
    assert np.array_equal(owned, np.bincount(np.arange(n) % n_pe, minlength=n_pe))
    assert np.array_equal(inverse_permutation(perm)[perm], np.arange(n))
    # LPT never does worse than plain interleaving by more than one row's work
    assert per_pe_work(work, n_pe, perm).max() <= per_pe_work(work, n_pe).max() + work.max()


def test_balance_evens_out_skewed_rows_and_saves_cycles():
    rng = np.random.default_rng(0)
    n_pe, n_out, n_in = 8, 64, 200
    density = np.where(np.arange(n_out) % n_pe == 0, 0.6, 0.1)  # PE 0's rows are dense
    codes = (rng.random((n_out, n_in)) < density[:, None]) * rng.integers(1, 16, (n_out, n_in))
    q = QuantizedLayer("skew", "linear", np.linspace(0, 1, 16).astype(np.float32),
                       codes.astype(np.uint8), None, 4)
    plain = pack_network([q], roomy(n_pe))
    balanced = pack_network([q], roomy(n_pe), balance=True)
    a = np.ones(n_in, np.int64)
    r_plain, r_bal = simulate_layer(plain, 0, a), simulate_layer(balanced, 0, a)
    assert r_bal.lower_bound < 0.6 * r_plain.lower_bound
    assert r_bal.cycles < 0.6 * r_plain.cycles
    assert r_bal.load_balance > 0.95 > r_plain.load_balance
