import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sw.compression import huffman
from sw.errors import DataError


def _round_trip(symbols: np.ndarray, alphabet: int, max_len: int = huffman.MAX_LEN) -> np.ndarray:
    lengths = huffman.build_code_lengths(np.bincount(symbols, minlength=alphabet), max_len)
    data, n_bits = huffman.encode(symbols, lengths)
    assert len(data) == (n_bits + 7) // 8
    assert n_bits == huffman.coded_bits(np.bincount(symbols, minlength=alphabet), lengths)
    decoded = huffman.decode(data, symbols.size, lengths)
    assert np.array_equal(decoded, symbols)
    return lengths


@pytest.mark.parametrize("alphabet, n, seed", [(2, 1, 0), (3, 17, 1), (16, 1000, 2),
                                                (16, 200_000, 3), (256, 50_000, 4)])
def test_round_trip_of_random_streams(alphabet, n, seed):
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.full(alphabet, 0.5))
    _round_trip(rng.choice(alphabet, n, p=p), alphabet)


def test_skewed_stream_codes_within_one_bit_of_its_entropy():
    rng = np.random.default_rng(5)
    p = 0.5 ** np.arange(1, 17) + 1e-4
    p /= p.sum()
    symbols = rng.choice(16, 100_000, p=p)
    counts = np.bincount(symbols, minlength=16)
    lengths = _round_trip(symbols, 16)
    q = counts[counts > 0] / symbols.size
    entropy = -np.sum(q * np.log2(q))
    mean_bits = huffman.coded_bits(counts, lengths) / symbols.size
    assert entropy <= mean_bits < entropy + 1
    assert mean_bits < 2.5 < 4  # far below the fixed 4-bit width


def test_single_symbol_stream_gets_a_one_bit_code():
    symbols = np.full(1000, 7)
    lengths = _round_trip(symbols, 16)
    assert lengths[7] == 1 and np.count_nonzero(lengths) == 1
    assert huffman.encode(symbols, lengths)[1] == 1000


def test_empty_stream():
    lengths = huffman.build_code_lengths(np.zeros(16, int))
    assert not lengths.any()
    assert huffman.encode(np.zeros(0, int), lengths) == (b"", 0)
    assert huffman.decode(b"", 0, lengths).size == 0


def test_256_equally_frequent_symbols_get_8_bit_codes():
    symbols = np.repeat(np.arange(256), 40)
    np.random.default_rng(6).shuffle(symbols)
    lengths = _round_trip(symbols, 256)
    assert np.all(lengths == 8)


def test_textbook_code_lengths():
    assert huffman.build_code_lengths(np.array([1, 1, 2, 4])).tolist() == [3, 3, 2, 1]
    assert huffman.build_code_lengths(np.array([0, 5, 0, 5])).tolist() == [0, 1, 0, 1]


def test_code_is_prefix_free_and_canonical():
    counts = np.random.default_rng(7).integers(0, 1000, 40)
    counts[[3, 9]] = 0
    lengths = huffman.build_code_lengths(counts)
    codes = huffman.canonical_codes(lengths)
    used = np.flatnonzero(lengths)
    words = [format(codes[s], f"0{lengths[s]}b") for s in used]
    assert len(set(words)) == len(words)
    assert not any(a != b and b.startswith(a) for a in words for b in words)
    # canonical (RFC 1951): ordered by (length, symbol), each code the previous one plus one
    order = sorted(used, key=lambda s: (lengths[s], s))
    for a, b in zip(order, order[1:], strict=False):
        assert codes[b] == (codes[a] + 1) << (int(lengths[b]) - int(lengths[a]))
    assert codes[order[0]] == 0
    assert np.sum(2.0 ** -lengths[used].astype(float)) == 1.0  # complete: Kraft sum 1


def test_length_limit_keeps_a_complete_prefix_code():
    counts = np.array([1, 1] + [int(x) for x in np.cumsum(np.arange(1, 30))])  # Fibonacci-like
    free = huffman.build_code_lengths(counts)
    assert free.max() > 8
    limited = _round_trip(np.repeat(np.arange(counts.size), counts), counts.size, max_len=8)
    assert limited.max() == 8
    assert np.sum(2.0 ** -limited.astype(float)) == 1.0
    assert huffman.coded_bits(counts, limited) >= huffman.coded_bits(counts, free)


def test_codes_longer_than_the_lookup_table_decode():
    counts = 2 ** np.arange(22)  # lengths 1..21: beyond the 16-bit direct table
    symbols = np.repeat(np.arange(22), np.minimum(counts, 300))
    np.random.default_rng(8).shuffle(symbols)
    lengths = huffman.build_code_lengths(counts)
    assert lengths.max() == 21
    data, n_bits = huffman.encode(symbols, lengths)
    assert np.array_equal(huffman.decode(data, symbols.size, lengths), symbols)


def test_code_that_never_resynchronises_decodes(monkeypatch):
    # 8 equally likely symbols: every code is 3 bits, so a decoder starting at a chunk boundary
    # (a multiple of 4096 bits) is never in step with the true codes; the fallback must work
    calls = []
    fallback = huffman._code_starts_by_doubling
    monkeypatch.setattr(huffman, "_code_starts_by_doubling",
                        lambda *a: calls.append(1) or fallback(*a))
    symbols = np.random.default_rng(9).integers(0, 8, 20_000)
    assert np.all(_round_trip(symbols, 8) == 3)
    assert calls


def test_skewed_stream_decodes_by_chunks_without_the_fallback(monkeypatch):
    monkeypatch.setattr(huffman, "_code_starts_by_doubling", None)  # must not be needed
    rng = np.random.default_rng(11)
    _round_trip(np.minimum(rng.geometric(0.1, 100_000) - 1, 31), 32)


def test_truncated_stream_raises_data_error():
    symbols = np.random.default_rng(10).integers(0, 16, 5000)
    lengths = huffman.build_code_lengths(np.bincount(symbols, minlength=16))
    data, _ = huffman.encode(symbols, lengths)
    with pytest.raises(DataError, match="corrupt or truncated"):
        huffman.decode(data[:-2], symbols.size, lengths)
    with pytest.raises(DataError, match="truncated"):
        huffman.decode(b"", 3, lengths)


def test_invalid_code_in_an_incomplete_code_raises_data_error():
    lengths = np.array([1, 2, 0])  # codes 0 and 10; 11 is not a code
    assert huffman.decode(b"\x80", 2, lengths).tolist() == [1, 0]
    with pytest.raises(DataError, match="corrupt"):
        huffman.decode(b"\xc0", 1, lengths)


def test_lengths_that_are_not_a_prefix_code_are_rejected():
    with pytest.raises(DataError, match="Kraft"):
        huffman.decode(b"\x00", 1, np.array([1, 1, 1]))


def test_symbol_without_a_code_cannot_be_encoded():
    with pytest.raises(ValueError, match="no code"):
        huffman.encode(np.array([0, 2]), np.array([1, 1, 0]))


@settings(max_examples=100, deadline=None)
@given(alphabet=st.integers(1, 300), n=st.integers(0, 3000), skew=st.floats(0.05, 5),
       max_len=st.integers(9, 24), seed=st.integers(0, 2**32 - 1))
def test_round_trip_property(alphabet, n, skew, max_len, seed):
    rng = np.random.default_rng(seed)
    symbols = rng.choice(alphabet, n, p=rng.dirichlet(np.full(alphabet, skew)))
    lengths = _round_trip(symbols, alphabet, max_len)
    assert lengths.max(initial=0) <= max_len
