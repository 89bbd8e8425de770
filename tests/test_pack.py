import numpy as np
import pytest
from helpers_eie import chain, random_layer, roomy
from hypothesis import given, settings
from hypothesis import strategies as st

from sw.eie.config import PRESETS
from sw.eie.fixedpoint import quantize_bias
from sw.eie.pack import decode_layer, pack_network, unpack_network
from sw.errors import FitError
from sw.qlayer import QuantizedLayer

PAPER_COLUMN = [0, 0, 1, 2] + [0] * 18 + [3]  # EIE Section III-B, one PE's column


def layer_from_codes(codes, name="fc", codebook=None, bias=None) -> QuantizedLayer:
    cb = np.linspace(0, 1.5, 16).astype(np.float32) if codebook is None else codebook
    return QuantizedLayer(name, "linear", cb, np.asarray(codes, np.uint8), bias, 4)


def test_paper_padding_example_packed_into_a_pe():
    # 2 PEs: PE 0 owns the even rows, which hold the paper's column; PE 1's rows are empty
    codes = np.zeros((2 * len(PAPER_COLUMN), 1), np.uint8)
    codes[0::2, 0] = PAPER_COLUMN
    image = pack_network([layer_from_codes(codes)], roomy(2))
    v, z, colptr = image.entries(0, 0)
    assert v.tolist() == [1, 2, 0, 3] and z.tolist() == [2, 0, 15, 2]
    assert colptr.tolist() == [0, 4]
    assert image.entries(1, 0)[0].size == 0
    # entry = (z << 4) | v, little-endian in the first 64-bit word
    assert int(image.spmat[0, 0]) == 0x23_F0_02_21
    assert image.ptr[0].tolist() == [0, 4] and image.ptr[1].tolist() == [0, 0]


def test_padding_entry_when_gap_exceeds_15():
    codes = np.zeros((40, 1), np.uint8)
    codes[39] = 5
    v, z, _ = pack_network([layer_from_codes(codes)], roomy(1)).entries(0, 0)
    assert v.tolist() == [0, 0, 5] and z.tolist() == [15, 15, 7]


def test_entries_pack_eight_per_word_and_layers_start_word_aligned():
    rng = np.random.default_rng(1)
    first = np.zeros((1, 9), np.uint8)
    first[0] = np.arange(1, 10)  # 9 entries: one full word and one entry of the next
    second = rng.integers(1, 16, (3, 1)).astype(np.uint8)
    image = pack_network([layer_from_codes(first, "a"), layer_from_codes(second, "b")], roomy(1))
    words = image.spmat[0]
    for a in range(9):  # entry address A -> word A >> 3, bits 8 * (A & 7)
        assert (int(words[a >> 3]) >> (8 * (a & 7))) & 0xFF == a + 1  # z = 0, v = a + 1
    assert int(words[1]) >> 8 == 0  # unused bytes of the last word are 0
    assert image.layers[1].spmat_base.tolist() == [16]  # word-aligned start
    p1 = image.ptr[0, image.layers[1].ptr_base:]
    assert p1.tolist() == [16, 19]  # absolute entry addresses
    assert image.entries(0, 1)[0].tolist() == second[:, 0].tolist()


def test_pointer_banks_hold_even_and_odd_addresses():
    rng = np.random.default_rng(2)
    layers = chain(rng, [7, 5, 4], 0.5)  # 8 + 6 = 14 pointers per PE
    image = pack_network(layers, roomy(3))
    assert image.ptrs_used == 14 and image.layers[1].ptr_base == 8
    even, odd = image.ptr_bank(0), image.ptr_bank(1)
    assert even.shape == odd.shape == (3, 7)
    assert np.array_equal(even, image.ptr[:, 0::2]) and np.array_equal(odd, image.ptr[:, 1::2])
    # a layer's column j: P[j] and P[j+1] sit in different banks, read in the same cycle
    j = 3
    a = image.layers[1].ptr_base + j
    assert {a & 1, (a + 1) & 1} == {0, 1}
    odd_image = pack_network(chain(rng, [6, 4], 0.5), roomy(3))  # 7 pointers: odd bank padded
    assert odd_image.ptr_bank(1)[:, -1].tolist() == [0, 0, 0]


def test_bias_interleaved_per_pe_and_zero_past_the_last_row():
    rng = np.random.default_rng(3)
    q = random_layer(rng, 10, 6, 0.5)
    image = pack_network([q], roomy(4))
    b = quantize_bias(q.bias, image.config)
    assert image.bias.shape == (4, 3)
    for p in range(12):
        assert image.bias[p % 4, p // 4] == (b[p] if p < 10 else 0)


@settings(max_examples=60, deadline=None)
@given(sizes=st.lists(st.integers(1, 70), min_size=2, max_size=4),
       density=st.sampled_from([0.0, 0.02, 0.1, 0.4, 1.0]),
       n_pe=st.sampled_from([1, 2, 3, 4, 7, 8, 64, 100]),
       balance=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_dense_to_images_to_dense_round_trip_is_exact(sizes, density, n_pe, balance, seed):
    rng = np.random.default_rng(seed)
    layers = chain(rng, sizes, density)
    if len(sizes) > 2:  # long zero runs: a column with a single entry at the bottom
        layers[0].indices[:, 0] = 0
        layers[0].indices[-1, 0] = 7
    image = pack_network(layers, roomy(n_pe), balance=balance)
    back = unpack_network(image)
    for q, (cb, idx, bias) in zip(layers, back, strict=True):
        assert np.array_equal(idx, q.indices)
        assert np.array_equal(cb, q.codebook)
        assert np.array_equal(bias, quantize_bias(q.bias, image.config) / 256.0)
    for li, d in enumerate(image.layers):
        e = decode_layer(image, li)
        assert e.z.max(initial=0) <= 15
        assert np.array_equal(e.counts.sum(axis=1), d.n_entries)
        assert np.all(d.spmat_base % 8 == 0)


def test_all_zero_layer_and_more_pes_than_rows():
    q = layer_from_codes(np.zeros((3, 5)), bias=np.array([0.5, -0.25, 1.0], np.float32))
    image = pack_network([q], roomy(8))
    assert image.layers[0].n_entries.tolist() == [0] * 8
    assert image.ptr.tolist() == [[0] * 6] * 8
    assert image.words_used == 1 and image.layers[0].rows_per_pe == 1
    assert np.array_equal(unpack_network(image)[0][1], np.zeros((3, 5)))


def test_each_layer_table_entry_takes_the_layers_own_relu_flag():
    layers = chain(np.random.default_rng(4), [5, 4, 3, 2], 0.5)
    layers[0].relu = False
    image = pack_network(layers, roomy(2))
    assert [d.relu for d in image.layers] == [False, True, False]


def test_codebook_integers_use_the_largest_fraction_that_fits():
    cb = np.zeros(16, np.float32)
    cb[1:4] = [0.5, -1.0, 0.999]  # -1.0 fits 15 fraction bits, 0.999 * 2**15 rounds to 32735
    image = pack_network([layer_from_codes(np.ones((2, 2)), codebook=cb)], roomy(1))
    assert image.layers[0].w_frac == 15
    assert image.codebook[0, :4].tolist() == [0, 16384, -32768, 32735]
    cb[2] = 1.0  # 32768 does not fit: one fraction bit less
    image = pack_network([layer_from_codes(np.ones((2, 2)), codebook=cb)], roomy(1))
    assert image.layers[0].w_frac == 14 and image.codebook[0, 2] == 16384


@pytest.mark.parametrize("case, words", [
    ("spmat", ["sparse-matrix memory", "PE", "words", "spmat_words = 4"]),
    ("ptr", ["pointer memory", "41 pointers", "ptr_depth = 32"]),
    ("act", ["activation memory", "act_depth = 8"]),
    ("bias", ["bias memory", "2 biases", "bias_depth = 1"]),
    ("layers", ["layers", "max_layers = 1"]),
    ("codes", ["32-entry (5-bit) codebook", "16 codes"]),
    ("conv", ["conv layer", "fully connected"]),
    ("chain", ["takes 7 inputs", "produces 6 outputs"]),
    ("centroid", ["centroid magnitude", "does not fit"]),
])
def test_layers_that_do_not_fit_are_refused_with_sizes(case, words):
    rng = np.random.default_rng(5)
    cfg = roomy(2)
    layers = [random_layer(rng, 6, 40, 0.5)]
    if case == "spmat":
        cfg = cfg.replace(spmat_words=4)
    elif case == "ptr":
        cfg = cfg.replace(ptr_depth=32)
    elif case == "act":
        cfg = cfg.replace(act_depth=8)  # 40 inputs need 20 per PE
    elif case == "bias":
        layers = chain(rng, [4, 4, 4], 0.5)  # 1 + 1 biases per PE on 4 PEs
        cfg = roomy(4, bias_depth=1)
    elif case == "layers":
        layers = chain(rng, [4, 4, 4], 0.5)
        cfg = cfg.replace(max_layers=1)
    elif case == "codes":
        layers = [random_layer(rng, 6, 5, 0.5, bits=5)]
    elif case == "conv":
        layers = [QuantizedLayer("conv1", "conv", np.zeros(16, np.float32),
                                 np.zeros((2, 1, 3, 3), np.uint8), None, 4)]
    elif case == "chain":
        layers = [random_layer(rng, 6, 5, 0.5, "a"), random_layer(rng, 3, 7, 0.5, "b")]
    elif case == "centroid":
        layers[0].codebook[5] = 40000.0
    with pytest.raises(FitError) as err:
        pack_network(layers, cfg)
    msg = str(err.value)
    assert "\n" not in msg
    for w in words:
        assert w in msg, msg


def test_eie64_holds_vgg6_pointers_but_refuses_more():
    q = QuantizedLayer("vgg6", "linear", np.zeros(16, np.float32), np.zeros((64, 25088), np.uint8),
                       None, 4)
    assert pack_network([q], PRESETS["eie64"]).ptrs_used == 25089
    with pytest.raises(FitError, match="25089 pointers"):
        pack_network([q], PRESETS["eie64"].replace(ptr_depth=16384))


def test_logical_physical_vectors_and_pe_split():
    rng = np.random.default_rng(6)
    image = pack_network(chain(rng, [9, 11, 5], 0.5), roomy(4), balance=True)
    x = np.arange(11)
    phys = image.to_physical(0, x)
    assert sorted(phys.tolist()) == x.tolist()
    assert np.array_equal(image.to_logical(0, phys), x)
    assert np.array_equal(phys[image.layers[0].perm], x)
    split = image.pe_vector(phys)
    assert split.shape == (4, 3)
    for p in range(12):
        assert split[p % 4, p // 4] == (phys[p] if p < 11 else 0)
    assert np.array_equal(image.input_to_physical(np.arange(9)), np.arange(9))


@pytest.mark.parametrize("weight_bits, index_bits, word_bits", [
    (2, 2, 64),  # 4-bit entries, 16 per word
    (8, 8, 64),  # 16-bit entries, 4 per word, 256-entry codebooks
    (4, 4, 32),  # 8-bit entries, 4 per 32-bit word
    (3, 5, 64),  # 8-bit entries with 5-bit relative indices (max gap 31)
])
def test_other_entry_and_word_widths_round_trip(weight_bits, index_bits, word_bits):
    from sw.eie import fixedpoint, golden

    rng = np.random.default_rng(11)
    cfg = roomy(3, weight_bits=weight_bits, index_bits=index_bits, spmat_word_bits=word_bits)
    layers = [random_layer(rng, 70, 20, 0.1, "a", bits=weight_bits),
              random_layer(rng, 9, 70, 0.3, "b", bits=weight_bits)]
    layers[0].indices[:, 3] = 0
    layers[0].indices[-1, 3] = 1  # a long zero run
    image = pack_network(layers, cfg)
    epw = word_bits // (weight_bits + index_bits)
    assert all(np.all(d.spmat_base % epw == 0) for d in image.layers)
    for q, (_, idx, _) in zip(layers, unpack_network(image), strict=True):
        assert np.array_equal(idx, q.indices)
    v, z, _ = image.entries(2, 0)
    assert z.max(initial=0) <= cfg.max_gap and v.max(initial=0) < (1 << weight_bits)
    x = fixedpoint.quantize_input(rng.random(20), cfg)
    ref = golden.float_network(layers, fixedpoint.dequantize(x, cfg))[-1]
    assert np.abs(fixedpoint.dequantize(golden.run_network(image, x)[-1], cfg) - ref).max() < 0.05
