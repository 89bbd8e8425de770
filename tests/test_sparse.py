import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from sw.sparse import decode_columns, encode_columns


def test_paper_padding_example():
    col = np.array([0, 0, 1, 2] + [0] * 18 + [3]).reshape(-1, 1)
    v, z, colptr = encode_columns(col, max_gap=15)
    assert v.tolist() == [1, 2, 0, 3]
    assert z.tolist() == [2, 0, 15, 2]
    assert colptr.tolist() == [0, 4]


def test_padding_entry_when_gap_exceeds_the_index_span():
    col = np.zeros((40, 1), int)
    col[39] = 5  # a gap of 39 zeros: two padding entries (16 + 16) then z = 7
    v, z, _ = encode_columns(col, max_gap=15)
    assert v.tolist() == [0, 0, 5] and z.tolist() == [15, 15, 7]
    v, z, _ = encode_columns(col, max_gap=31)  # 5-bit indices: one padding entry
    assert v.tolist() == [0, 5] and z.tolist() == [31, 7]


def test_empty_columns_and_all_zero_matrix():
    m = np.zeros((5, 3), int)
    v, z, colptr = encode_columns(m, 15)
    assert v.size == 0 and colptr.tolist() == [0, 0, 0, 0]
    assert np.array_equal(decode_columns(v, z, colptr, 5), m)


@settings(max_examples=200, deadline=None)
@given(
    rows=st.integers(1, 80), cols=st.integers(1, 12), density=st.floats(0, 1),
    max_gap=st.sampled_from([1, 3, 15, 31]), seed=st.integers(0, 2**32 - 1),
)
def test_round_trip(rows, cols, density, max_gap, seed):
    rng = np.random.default_rng(seed)
    m = rng.integers(1, 16, (rows, cols)) * (rng.random((rows, cols)) < density)
    v, z, colptr = encode_columns(m, max_gap)
    assert z.max(initial=0) <= max_gap
    assert np.array_equal(decode_columns(v, z, colptr, rows), m)


def test_codes_wider_than_a_byte_survive():
    m = np.array([[0, 300], [7, 0]])
    v, z, colptr = encode_columns(m, 15)
    assert v.tolist() == [7, 300]
    assert np.array_equal(decode_columns(v, z, colptr, 2), m)
